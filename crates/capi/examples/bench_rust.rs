//! The Rust side of the C API's throughput comparison: the same loop as
//! `crates/capi/bench/bench.c` (one writer process, one reader process,
//! COUNT messages of SIZE bytes carrying their sequence number, rate
//! measured at the reader from the first message to the last) through the
//! `mailslot` crate directly. `crates/capi/bench/run.sh` runs both.
//!
//! Usage: `bench_rust SIZE COUNT` (prints `rust SIZE COUNT SECONDS MSGS_PER_SEC`).

use std::process::{Command, ExitCode};
use std::time::Instant;

use ms::{Reader, ReaderOptions, SlotName, Writer};

fn writer(name: &str, size: usize, count: u64) -> Result<(), ms::Error> {
    let w = Writer::open(&SlotName::from_bare(name)?)?;
    let mut msg = vec![0u8; size];
    for i in 0..count {
        msg[..8].copy_from_slice(&i.to_ne_bytes());
        w.write(&msg)?;
    }
    Ok(())
}

fn reader(size: usize, count: u64) -> Result<f64, Box<dyn std::error::Error>> {
    let name = format!("bench\\rust-{}", std::process::id());
    let opts = ReaderOptions::default().accept_remote(false);
    let mut r = Reader::create(&SlotName::from_bare(&name)?, &opts)?;
    let mut child = Command::new(std::env::current_exe()?)
        .args(["--writer", &name, &size.to_string(), &count.to_string()])
        .spawn()?;
    let mut buf = vec![0u8; size];
    let mut start = Instant::now();
    for i in 0..count {
        let len = r.read(&mut buf)?;
        let seq = u64::from_ne_bytes(buf[..8].try_into()?);
        if len != size || seq != i {
            return Err(format!("message {i}: got sequence {seq}, {len} bytes").into());
        }
        if i == 0 {
            start = Instant::now();
        }
    }
    let secs = start.elapsed().as_secs_f64();
    if !child.wait()?.success() {
        return Err("the writer failed".into());
    }
    Ok(secs)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let num = |s: &str| s.parse::<u64>().unwrap_or(0);
    if args.len() == 5 && args[1] == "--writer" {
        return match writer(&args[2], num(&args[3]) as usize, num(&args[4])) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("bench_rust: writer: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if args.len() != 3 || num(&args[1]) < 8 || num(&args[2]) < 2 {
        eprintln!("usage: bench_rust SIZE COUNT (SIZE >= 8, COUNT >= 2)");
        return ExitCode::from(2);
    }
    let (size, count) = (num(&args[1]) as usize, num(&args[2]));
    match reader(size, count) {
        Ok(secs) => {
            println!(
                "rust {size} {count} {secs:.6} {:.0}",
                (count - 1) as f64 / secs
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("bench_rust: {e}");
            ExitCode::FAILURE
        }
    }
}
