//! Throughput of the queued writer against plain writes, in one process
//! (a writer thread, the reader on the main thread), measured in the same
//! run: plain `Writer::write`, then the queued writer coalescing (the
//! default), then the queued writer with one packet per message.
//! Not a test: numbers depend on the machine; the ratios are what matter.
//! `mailslot bench --mode queued` measures across processes.
//!
//! Run: `cargo run --release -p mailslot --example queued_throughput [COUNT] [SIZE]`
//! (defaults: 200 000 messages of 64 bytes).

use std::time::{Duration, Instant};

use mailslot::{
    Namespace, Priority, QueuedOptions, QueuedWriter, Reader, ReaderOptions, SlotName, Writer,
};

/// How the writer thread sends.
#[derive(Clone, Copy)]
enum Mode {
    Plain,
    Queued { coalesce: bool },
}

/// Messages per second, and the packets the queued writer sent.
fn run(
    ns: &Namespace,
    count: usize,
    size: usize,
    mode: Mode,
) -> Result<(f64, Option<u64>), Box<dyn std::error::Error>> {
    let name = SlotName::parse(r"\\.\mailslot\example\throughput")?;
    let mut reader = Reader::create_in(ns, &name, &ReaderOptions::default())?;
    let msg = vec![0x5Au8; size];
    let mut buf = vec![0u8; size.max(1)];
    let read_all = |reader: &mut Reader, buf: &mut [u8]| -> Result<(), mailslot::Error> {
        for _ in 0..count {
            reader.read(buf)?;
        }
        Ok(())
    };
    match mode {
        Mode::Plain => {
            let writer = Writer::open_in(ns, &name)?;
            let t = Instant::now();
            std::thread::scope(|s| {
                s.spawn(|| {
                    for _ in 0..count {
                        writer.write(&msg).expect("write");
                    }
                });
                read_all(&mut reader, &mut buf)
            })?;
            Ok((count as f64 / t.elapsed().as_secs_f64(), None))
        }
        Mode::Queued { coalesce } => {
            let opts = QueuedOptions::default().coalesce(coalesce);
            let writer = QueuedWriter::open_in(ns, &name, opts)?;
            let t = Instant::now();
            std::thread::scope(|s| {
                s.spawn(|| {
                    for _ in 0..count {
                        writer.send_slice(&msg, Priority::Normal).expect("send");
                    }
                });
                read_all(&mut reader, &mut buf)
            })?;
            let rate = count as f64 / t.elapsed().as_secs_f64();
            let packets = writer.stats().packets;
            assert!(writer.close(Duration::from_secs(10)).is_empty());
            Ok((rate, Some(packets)))
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let count: usize = args.next().map_or(Ok(200_000), |a| a.parse())?;
    let size: usize = args.next().map_or(Ok(64), |a| a.parse())?;
    let tmp = tempfile::tempdir()?;
    let ns = Namespace::at(tmp.path())?;
    let (plain, _) = run(&ns, count, size, Mode::Plain)?;
    let (coalesced, coalesced_packets) = run(&ns, count, size, Mode::Queued { coalesce: true })?;
    let (single, single_packets) = run(&ns, count, size, Mode::Queued { coalesce: false })?;
    let packets = |p: Option<u64>| p.unwrap_or_default();
    println!("{count} messages of {size} bytes, writer thread -> reader thread");
    println!("plain writes:            {plain:>12.0} msg/s");
    println!(
        "queued, coalesced:       {coalesced:>12.0} msg/s ({} packets) {:.2}x plain",
        packets(coalesced_packets),
        coalesced / plain
    );
    println!(
        "queued, one packet each: {single:>12.0} msg/s ({} packets) {:.2}x plain",
        packets(single_packets),
        single / plain
    );
    Ok(())
}
