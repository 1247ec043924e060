//! Throughput of the queued writer for 64-byte messages, coalesced (the
//! default) against one packet per message, measured in the same run.
//! Not a test: numbers depend on the machine; the ratio is what matters.
//!
//! Run: `cargo run --release -p mailslot --example queued_throughput [COUNT]`

use std::time::{Duration, Instant};

use mailslot::{Namespace, Priority, QueuedOptions, QueuedWriter, Reader, ReaderOptions, SlotName};

fn run(
    ns: &Namespace,
    count: usize,
    coalesce: bool,
) -> Result<(f64, u64), Box<dyn std::error::Error>> {
    let name = SlotName::parse(r"\\.\mailslot\example\throughput")?;
    let mut reader = Reader::create_in(ns, &name, &ReaderOptions::default())?;
    let opts = QueuedOptions::default().coalesce(coalesce);
    let writer = QueuedWriter::open_in(ns, &name, opts)?;
    let msg = [0x5Au8; 64];
    let t = Instant::now();
    std::thread::scope(|s| -> Result<(), mailslot::Error> {
        s.spawn(|| {
            for _ in 0..count {
                writer.send(&msg[..], Priority::Normal).expect("send");
            }
        });
        for _ in 0..count {
            reader.read_message()?;
        }
        Ok(())
    })?;
    let secs = t.elapsed().as_secs_f64();
    let packets = writer.stats().packets;
    assert!(writer.close(Duration::from_secs(10)).is_empty());
    Ok((count as f64 / secs, packets))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let count: usize = std::env::args().nth(1).map_or(Ok(200_000), |a| a.parse())?;
    let tmp = tempfile::tempdir()?;
    let ns = Namespace::at(tmp.path())?;
    let (single, single_packets) = run(&ns, count, false)?;
    let (coalesced, coalesced_packets) = run(&ns, count, true)?;
    println!("{count} messages of 64 bytes, writer thread -> reader thread");
    println!("one packet each: {single:>12.0} msg/s ({single_packets} packets)");
    println!("coalesced:       {coalesced:>12.0} msg/s ({coalesced_packets} packets)");
    println!("ratio:           {:>12.2}x", coalesced / single);
    Ok(())
}
