//! An async reader used as a `Stream`, fed by an async writer task, on
//! tokio's current-thread runtime.
//!
//! Run: `cargo run -p mailslot --features tokio --example async_stream`

use std::future::poll_fn;
use std::pin::Pin;
use std::time::Duration;

use futures_core::Stream;
use mailslot::{AsyncReader, AsyncWriter, Namespace, ReaderOptions, SlotName};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let tmp = tempfile::tempdir()?;
    let ns = Namespace::at(tmp.path())?;
    let name = SlotName::parse(r"\\.\mailslot\example\stream")?;

    let mut reader = AsyncReader::create_in(&ns, &name, &ReaderOptions::default())?;
    let writer = AsyncWriter::open_in(&ns, &name)?;
    let producer = tokio::spawn(async move {
        for i in 0..5 {
            writer.write(format!("tick {i}").as_bytes()).await?;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok::<_, mailslot::Error>(())
    });

    // Read the stream until it has been quiet for 200 ms. A read that loses
    // the race against the timer loses no message (cancel-safe).
    loop {
        let next = poll_fn(|cx| Pin::new(&mut reader).poll_next(cx));
        tokio::select! {
            item = next => {
                let msg = item.expect("the stream never ends")?;
                println!("stream: {:?}", String::from_utf8_lossy(&msg.data));
            }
            () = tokio::time::sleep(Duration::from_millis(200)) => break,
        }
    }
    producer.await??;
    println!("left in the slot: {}", reader.info().await?.count);
    Ok(())
}
