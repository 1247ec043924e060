//! The worker processes: `mailslot bench --worker SPEC` (hidden), started by
//! the benchmark itself, one per reader and per writer, as in real use.
//!
//! A worker talks to the parent in lines: it prints `ready` once its end is
//! set up, waits for `go` on stdin where it has to, and ends with one JSON
//! line, [`Report`]. Anything else it prints is an error message.
//!
//! Every message carries a tag in its first 12 bytes: the writer's id
//! (`u32`, little-endian; bit 31 marks a writer's end-of-run message, whose
//! sequence field then holds how many messages it sent) and its sequence
//! number (`u64`); its last byte is a check byte derived from both. The
//! receiver checks length, writer id, sequence and check byte of every
//! message, so loss, duplication, reordering within a writer and corruption
//! all fail the run.

use std::io::{BufRead, Write};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::transport::{self, Endpoint, Transport};

/// Bytes of the tag at the start of every message.
pub const TAG_LEN: usize = 12;
const END: u32 = 1 << 31;

/// What a worker does.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Role {
    /// Receive from `writers` writers until each has sent its end message.
    Receive { writers: u32 },
    /// Send for `seconds`, then the end message.
    Send { id: u32, seconds: f64 },
    /// Ping-pong, measuring side: own endpoint `ep`, peer endpoint `peer`.
    Ping { peer: Endpoint, seconds: f64 },
    /// Ping-pong, echoing side.
    Pong { peer: Endpoint },
}

/// The hidden worker argument, as JSON.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Spec {
    pub role: Role,
    pub transport: Transport,
    pub size: usize,
    /// Own endpoint (the receiving one; for a sender, where it sends).
    pub ep: Endpoint,
}

/// What a worker reports at the end.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Report {
    /// Messages sent or received (end messages not counted).
    pub messages: u64,
    /// Receiver: ns from the first to the last message received.
    pub elapsed_ns: u64,
    /// CPU time (user + system) this process spent in the measured part.
    pub cpu_ns: u64,
    /// Receiver: peak resident set (`VmHWM`), KiB. Counts the writers'
    /// large-message buffers the reader maps, which are not its own memory.
    pub hwm_kib: u64,
    /// Receiver: peak of its private memory (`RssAnon`, sampled every
    /// 10 ms), KiB.
    #[serde(default)]
    pub private_kib: u64,
    /// Ping: sorted one-way latencies (RTT / 2) at p50, p99, p99.9, ns.
    pub one_way_ns: Option<[u64; 3]>,
}

fn cpu_ns() -> u64 {
    // CLOCK_PROCESS_CPUTIME_ID is the kernel's utime + stime of this
    // process (what getrusage reports), at nanosecond resolution.
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// A `/proc/self/status` field in KiB (0 if missing).
fn status_kib(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Samples `RssAnon` every 10 ms until dropped; `peak()` is the largest seen.
struct PrivatePeak {
    peak: std::sync::Arc<std::sync::atomic::AtomicU64>,
    stop: std::sync::mpsc::Sender<()>,
}

impl PrivatePeak {
    fn start() -> PrivatePeak {
        use std::sync::atomic::Ordering;
        let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(status_kib("RssAnon")));
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let p = peak.clone();
        std::thread::spawn(move || {
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                stopped.recv_timeout(std::time::Duration::from_millis(10))
            {
                p.fetch_max(status_kib("RssAnon"), Ordering::Relaxed);
            }
        });
        PrivatePeak { peak, stop }
    }

    fn peak(&self) -> u64 {
        let now = status_kib("RssAnon");
        self.peak
            .fetch_max(now, std::sync::atomic::Ordering::Relaxed)
            .max(now)
    }
}

impl Drop for PrivatePeak {
    fn drop(&mut self) {
        let _ = self.stop.send(());
    }
}

fn check_byte(id: u32, seq: u64) -> u8 {
    (seq as u8) ^ (id as u8).wrapping_mul(31) ^ 0x5A
}

/// Writes the tag and check byte of message `seq` of writer `id` into `msg`.
pub fn stamp(msg: &mut [u8], id: u32, seq: u64) {
    msg[..4].copy_from_slice(&id.to_le_bytes());
    msg[4..12].copy_from_slice(&seq.to_le_bytes());
    let last = msg.len() - 1;
    if last >= TAG_LEN {
        msg[last] = check_byte(id & !END, seq);
    }
}

fn tag(msg: &[u8]) -> (u32, u64) {
    (
        u32::from_le_bytes(msg[..4].try_into().expect("4 bytes")),
        u64::from_le_bytes(msg[4..12].try_into().expect("8 bytes")),
    )
}

/// Checks one received message of `n` bytes; returns its (id, seq).
fn check(buf: &[u8], n: usize, size: usize) -> Result<(u32, u64), String> {
    if n != size {
        return Err(format!(
            "corruption: a message of {n} bytes, expected {size}"
        ));
    }
    let (id, seq) = tag(buf);
    if n > TAG_LEN && buf[n - 1] != check_byte(id & !END, seq) {
        return Err(format!(
            "corruption: message {seq} of writer {} has a wrong check byte",
            id & !END
        ));
    }
    Ok((id, seq))
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn wait_go() -> Result<(), String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| format!("reading go: {e}"))?;
    if line.trim() == "go" {
        Ok(())
    } else {
        Err("the benchmark went away before go".into())
    }
}

/// Runs the worker described by `spec` (JSON); returns the exit code.
pub fn main(spec: &str) -> u8 {
    let result = serde_json::from_str::<Spec>(spec)
        .map_err(|e| format!("bad worker spec: {e}"))
        .and_then(|s| run(&s));
    match result {
        Ok(r) => {
            say(&serde_json::to_string(&r).expect("a report serializes"));
            0
        }
        Err(e) => {
            say(&format!("error: {e}"));
            1
        }
    }
}

fn run(s: &Spec) -> Result<Report, String> {
    match &s.role {
        Role::Receive { writers } => receive(s, *writers),
        Role::Send { id, seconds } => send(s, *id, *seconds),
        Role::Ping { peer, seconds } => ping(s, peer, *seconds),
        Role::Pong { peer } => pong(s, peer),
    }
}

fn receive(s: &Spec, writers: u32) -> Result<Report, String> {
    let mut rx = transport::bind(s.transport, &s.ep, s.size)?;
    let private = PrivatePeak::start();
    say("ready");
    let mut buf = vec![0u8; s.size + 1];
    let mut next = vec![0u64; writers as usize];
    let mut ended = 0;
    let mut count = 0u64;
    let cpu0 = cpu_ns();
    let mut first = None;
    let mut last = Instant::now();
    while ended < writers {
        let n = rx.recv(&mut buf).map_err(|e| format!("receiving: {e}"))?;
        last = Instant::now();
        first.get_or_insert(last);
        let (id, seq) = check(&buf, n, s.size)?;
        let w = (id & !END) as usize;
        let Some(expected) = next.get_mut(w) else {
            return Err(format!("corruption: unknown writer id {w}"));
        };
        if id & END != 0 {
            if seq != *expected {
                return Err(format!(
                    "loss: writer {w} sent {seq} messages, {} arrived",
                    *expected
                ));
            }
            ended += 1;
            continue;
        }
        if seq != *expected {
            return Err(format!(
                "loss or reordering: writer {w}'s message {seq} arrived when {} was due",
                *expected
            ));
        }
        *expected += 1;
        count += 1;
    }
    let cpu = cpu_ns() - cpu0;
    transport::cleanup(s.transport, &s.ep);
    Ok(Report {
        messages: count,
        elapsed_ns: first.map_or(0, |f| (last - f).as_nanos() as u64),
        cpu_ns: cpu,
        hwm_kib: status_kib("VmHWM"),
        private_kib: private.peak(),
        one_way_ns: None,
    })
}

fn send(s: &Spec, id: u32, seconds: f64) -> Result<Report, String> {
    let mut tx = transport::connect(s.transport, &s.ep, s.size)?;
    let mut msg = vec![0xA5u8; s.size];
    say("ready");
    wait_go()?;
    let cpu0 = cpu_ns();
    let end = Instant::now() + Duration::from_secs_f64(seconds);
    // Reading the clock costs about as much as copying a 1 KiB message.
    let every = if s.size >= 4096 { 1 } else { 64 };
    let mut seq = 0u64;
    loop {
        stamp(&mut msg, id, seq);
        tx.send(&msg)
            .map_err(|e| format!("sending message {seq}: {e}"))?;
        seq += 1;
        if seq % every == 0 && Instant::now() >= end {
            break;
        }
    }
    stamp(&mut msg, id | END, seq);
    tx.send(&msg)
        .map_err(|e| format!("sending the end message: {e}"))?;
    tx.finish().map_err(|e| format!("flushing: {e}"))?;
    Ok(Report {
        messages: seq,
        cpu_ns: cpu_ns() - cpu0,
        ..Report::default()
    })
}

/// The echoing side: receives a message, sends it back unchanged.
fn pong(s: &Spec, peer: &Endpoint) -> Result<Report, String> {
    let mut rx = transport::bind(s.transport, &s.ep, s.size)?;
    say("ready");
    wait_go()?;
    let mut tx = transport::connect(s.transport, peer, s.size)?;
    say("ready");
    let mut buf = vec![0u8; s.size + 1];
    let cpu0 = cpu_ns();
    let mut expected = 0u64;
    loop {
        let n = rx.recv(&mut buf).map_err(|e| format!("receiving: {e}"))?;
        let (id, seq) = check(&buf, n, s.size)?;
        if seq != expected {
            return Err(format!("loss: ping {seq} arrived when {expected} was due"));
        }
        tx.send(&buf[..n]).map_err(|e| format!("echoing: {e}"))?;
        if id & END != 0 {
            tx.finish().map_err(|e| format!("echoing: {e}"))?;
            break;
        }
        expected += 1;
    }
    transport::cleanup(s.transport, &s.ep);
    Ok(Report {
        messages: expected,
        cpu_ns: cpu_ns() - cpu0,
        ..Report::default()
    })
}

/// The measuring side: one message out, wait for its echo, repeat.
fn ping(s: &Spec, peer: &Endpoint, seconds: f64) -> Result<Report, String> {
    let mut rx = transport::bind(s.transport, &s.ep, s.size)?;
    let mut tx = transport::connect(s.transport, peer, s.size)?;
    say("ready");
    wait_go()?;
    let mut msg = vec![0xA5u8; s.size];
    let mut buf = vec![0u8; s.size + 1];
    let mut rtts = Vec::with_capacity(1 << 16);
    let cpu0 = cpu_ns();
    let start = Instant::now();
    // A tenth of the time (at most 200 ms) warms caches and the scheduler.
    let warm = start + Duration::from_secs_f64((seconds / 10.0).min(0.2));
    let end = start + Duration::from_secs_f64(seconds);
    let mut seq = 0u64;
    let mut round = |id: u32, seq: u64| -> Result<Duration, String> {
        stamp(&mut msg, id, seq);
        let t0 = Instant::now();
        tx.send(&msg)
            .map_err(|e| format!("sending ping {seq}: {e}"))?;
        let n = rx
            .recv(&mut buf)
            .map_err(|e| format!("receiving echo {seq}: {e}"))?;
        let rtt = t0.elapsed();
        let got = check(&buf, n, s.size)?;
        if got != (id, seq) {
            return Err(format!(
                "corruption: echo of ping {seq} came back as {got:?}"
            ));
        }
        Ok(rtt)
    };
    loop {
        let rtt = round(0, seq)?;
        seq += 1;
        let now = Instant::now();
        if now >= warm {
            rtts.push(rtt.as_nanos() as u64 / 2);
        }
        if now >= end {
            break;
        }
    }
    round(END, seq)?;
    let cpu = cpu_ns() - cpu0;
    transport::cleanup(s.transport, &s.ep);
    rtts.sort_unstable();
    let pct = |p: f64| rtts[((rtts.len() as f64 * p) as usize).min(rtts.len() - 1)];
    Ok(Report {
        messages: rtts.len() as u64,
        cpu_ns: cpu,
        one_way_ns: (!rtts.is_empty()).then(|| [pct(0.5), pct(0.99), pct(0.999)]),
        ..Report::default()
    })
}
