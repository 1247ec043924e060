//! A queued writer that starts before its reader and outlives a reader
//! restart, with priorities and a close report.
//!
//! Run: `cargo run -p mailslot --example queued_writer`

use std::time::Duration;

use mailslot::{Namespace, Priority, QueuedOptions, QueuedWriter, Reader, ReaderOptions, SlotName};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A private namespace directory, so the example needs no setup.
    let tmp = tempfile::tempdir()?;
    let ns = Namespace::at(tmp.path())?;
    let name = SlotName::parse(r"\\.\mailslot\example\jobs")?;

    // No reader yet: the writer opens anyway and keeps what is sent.
    let writer = QueuedWriter::open_in(&ns, &name, QueuedOptions::default())?;
    for i in 0..3 {
        writer.send(format!("routine job {i}"), Priority::Normal)?;
    }
    writer.send("urgent job", Priority::High)?;
    println!("queued while no reader exists: {:?}", writer.stats());

    // The reader appears; high priority comes first, then FIFO.
    let mut reader = Reader::create_in(&ns, &name, &ReaderOptions::default())?;
    for _ in 0..4 {
        let m = reader.read_message()?;
        println!("reader 1 got {:?}", String::from_utf8_lossy(&m.data));
    }

    // The reader restarts (drained first, so it loses nothing).
    drop(reader);
    writer.send("sent during the restart", Priority::Normal)?;
    let mut reader = Reader::create_in(&ns, &name, &ReaderOptions::default())?;
    let m = reader.read_message()?;
    println!("reader 2 got {:?}", String::from_utf8_lossy(&m.data));

    let stats = writer.stats();
    println!(
        "sent {} messages in {} packets, {} reconnect(s)",
        stats.sent, stats.packets, stats.reconnects
    );

    // close() drains with a deadline and reports what it could not deliver.
    drop(reader);
    writer.send("nobody will read this", Priority::Normal)?;
    let undelivered = writer.close(Duration::from_millis(100));
    println!(
        "undelivered at close: {} message(s), {} bytes",
        undelivered.len(),
        undelivered.bytes()
    );
    Ok(())
}
