//! A callback reader: each message handled on a background thread, then a
//! prompt stop that gives the reader back.
//!
//! Run: `cargo run -p mailslot --example callback_reader`

use std::sync::mpsc;
use std::time::{Duration, Instant};

use mailslot::{CallbackReader, Namespace, ReaderOptions, SlotName, Writer};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let tmp = tempfile::tempdir()?;
    let ns = Namespace::at(tmp.path())?;
    let name = SlotName::parse(r"\\.\mailslot\example\events")?;

    let (done_tx, done_rx) = mpsc::channel();
    let handle = CallbackReader::spawn_new_in(&ns, &name, &ReaderOptions::default(), move |msg| {
        println!(
            "callback: {:?} from pid {}",
            String::from_utf8_lossy(&msg.data),
            msg.sender.pid
        );
        if msg.data == b"last" {
            let _ = done_tx.send(());
        }
    })?;

    let writer = Writer::open_in(&ns, &name)?;
    for event in ["started", "working", "last"] {
        writer.write(event.as_bytes())?;
    }
    done_rx.recv_timeout(Duration::from_secs(10))?;

    // The thread is idle, waiting for messages; stop() wakes it at once.
    let t = Instant::now();
    let reader = handle.stop()?;
    println!(
        "stop() took {:?}; {} is ours again",
        t.elapsed(),
        reader.name()
    );
    Ok(())
}
