//! `mailslot bench`: throughput, CPU and latency of mailslots against the
//! plain kernel facilities they are built on, measured in the same run.
//!
//! Baselines: raw `SOCK_SEQPACKET`, `SOCK_DGRAM`, POSIX message queues, and
//! a raw ring in shared memory per writer ([`shm_ring`]), the physical
//! reference: what a message costs with nothing but the copies and the
//! wake-ups.
//!
//! Every measurement runs the reader and each writer as separate processes
//! (this same binary, re-executed with a hidden `--worker` argument; see
//! [`worker`]). Each path under test ([`transport`]) goes through the same
//! harness: same process layout, same message tags, same checks. Baselines
//! and ours are interleaved, so a noisy machine disturbs both alike, and
//! `--repeat N` reports medians.
//!
//! Throughput: W writers send size-S messages for T seconds, then an
//! end-of-run message; msgs/s is counted at the reader, from its first
//! message to its last. CPU per message is the CPU time (user + system) of
//! the reader and all writers during the run, over the messages delivered.
//! Latency: two processes, each reading its own endpoint and writing to the
//! other's; one-way latency is half the round trip.

// The raw ring baseline maps shared memory: the crate's one `unsafe` module.
#[allow(unsafe_code)]
mod shm;
mod shm_ring;
mod transport;
mod worker;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::Failure;
use transport::{Endpoint, Transport};
use worker::{Report, Role, Spec};

const AFTER_HELP: &str = "\
Without --json, --size, --writers or --mode, runs the full matrix (64 B, 1 KiB, 60 KiB and
1 MiB messages; 1 and 4 writers; then ping-pong latency per size) for --seconds per cell
(default 1) and prints tables. With any of them, runs that one cell (defaults: --size 64
--writers 1 --mode plain); --json prints it as one JSON object. Ratios compare ours with
each baseline measured in the same run; a baseline the kernel cannot run (e.g. a 1 MiB
datagram) shows n/a and why. Baselines: raw SOCK_SEQPACKET (/seqp), SOCK_DGRAM (/dgram),
POSIX mq (/mq), and a raw shared-memory ring per writer (/ring, JSON key shm-ring): about the
least a checked message can cost between two processes.

Every message is checked (length, writer id, sequence, check byte); any loss or corruption
fails the run with exit code 1. Bad arguments exit with 2.";

/// Arguments of `mailslot bench`.
#[derive(clap::Args, Debug)]
#[command(after_help = AFTER_HELP)]
pub struct Args {
    /// Print one JSON object (for scripts) instead of tables.
    #[arg(long)]
    json: bool,
    /// Message size: bytes, or with a binary suffix (1k, 1KiB, 60k, 1m, 1MiB, 64m); at least 12.
    #[arg(long, value_parser = parse_size)]
    size: Option<usize>,
    /// Writer processes.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=64))]
    writers: Option<u32>,
    /// How long each measurement runs, in seconds (fractions allowed).
    #[arg(long, default_value = "1", value_parser = parse_seconds)]
    seconds: f64,
    /// Our writing path: `plain` (one Writer::write per message) or `queued` (coalesced).
    #[arg(long, value_parser = ["plain", "queued"])]
    mode: Option<String>,
    /// Also measure ping-pong latency (single-cell mode; the matrix always does).
    #[arg(long)]
    latency: bool,
    /// Run each measurement this many times and report medians.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=99))]
    repeat: u32,
    /// Internal: measure only these paths (comma-separated keys), for profiling.
    #[arg(long, hide = true, value_delimiter = ',')]
    only: Vec<String>,
    /// Internal: run as a worker process.
    #[arg(long, hide = true)]
    worker: Option<String>,
}

fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim().to_ascii_lowercase();
    let t = t
        .strip_suffix("ib")
        .or_else(|| t.strip_suffix('b'))
        .unwrap_or(&t);
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1usize << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        _ => (t, 1),
    };
    let n: usize = num
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a size (examples: 64, 1k, 1KiB, 60k, 1m, 1MiB)"))?;
    let size = n
        .checked_mul(mult)
        .filter(|&b| b <= 1 << 30)
        .ok_or_else(|| format!("`{s}` is more than the 1 GiB the benchmark allows"))?;
    if size < worker::TAG_LEN {
        return Err(format!(
            "{size} bytes is too small for the benchmark: every message carries a {}-byte tag \
             (writer id and sequence number) so that loss and corruption are caught; use at least {}",
            worker::TAG_LEN,
            worker::TAG_LEN
        ));
    }
    Ok(size)
}

fn parse_seconds(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v > 0.0 && v <= 3600.0 => Ok(v),
        Ok(_) => Err(format!(
            "--seconds {s}: must be more than 0 and at most 3600"
        )),
        Err(_) => Err(format!("--seconds {s}: not a number of seconds")),
    }
}

/// Runs `mailslot bench`.
pub fn run(args: Args) -> Result<u8, Failure> {
    if let Some(spec) = &args.worker {
        return Ok(worker::main(spec));
    }
    let single = args.json || args.size.is_some() || args.writers.is_some() || args.mode.is_some();
    let mut h = Harness::new(args.only.clone())?;
    if single {
        let ours = match args.mode.as_deref() {
            Some("queued") => Transport::Queued,
            _ => Transport::Plain,
        };
        let cell = CellSpec {
            size: args.size.unwrap_or(64),
            writers: args.writers.unwrap_or(1),
        };
        single_cell(&mut h, &args, ours, cell)
    } else {
        matrix(&mut h, &args)
    }
}

/// One throughput configuration.
#[derive(Clone, Copy, Debug)]
struct CellSpec {
    size: usize,
    writers: u32,
}

/// Throughput numbers of one run of one path.
#[derive(Clone, Copy, Debug, Default)]
struct Throughput {
    msgs_per_s: f64,
    mb_per_s: f64,
    cpu_ns_per_msg: f64,
    reader_cpu_ns_per_msg: f64,
    reader_hwm_kib: f64,
    reader_private_kib: f64,
}

/// Latency numbers of one run of one path (one-way, µs).
#[derive(Clone, Copy, Debug, Default)]
struct Latency {
    p50_us: f64,
    p99_us: f64,
    p999_us: f64,
}

/// Why a measurement has no number.
#[derive(Clone, Debug)]
enum Missing {
    /// The path cannot carry this at all (e.g. a datagram over the socket buffer).
    Unavailable(String),
    /// Lost, duplicated, reordered or corrupted messages, or a stall.
    Integrity(String),
}

fn classify(e: String) -> Missing {
    if e.starts_with("loss") || e.starts_with("corruption") || e.contains("stalled") {
        Missing::Integrity(e)
    } else {
        Missing::Unavailable(e)
    }
}

/// A running worker process.
struct Proc {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    what: String,
}

impl Proc {
    fn line(&mut self, timeout: Duration) -> Result<String, String> {
        match self.lines.recv_timeout(timeout) {
            Ok(l) => match l.strip_prefix("error: ") {
                Some(e) => Err(e.to_string()),
                None => Ok(l),
            },
            Err(mpsc::RecvTimeoutError::Timeout) => Err(format!(
                "stalled: the {} did not finish within {timeout:?}",
                self.what
            )),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = self.child.wait().map(|s| s.to_string()).unwrap_or_default();
                Err(format!(
                    "the {} exited ({status}) without a report",
                    self.what
                ))
            }
        }
    }

    fn ready(&mut self) -> Result<(), String> {
        match self.line(Duration::from_secs(20))?.as_str() {
            "ready" => Ok(()),
            other => Err(format!("the {} said {other:?}", self.what)),
        }
    }

    fn go(&mut self) -> Result<(), String> {
        let w = self.stdin.as_mut().expect("stdin is piped");
        writeln!(w, "go")
            .and_then(|()| w.flush())
            .map_err(|e| format!("starting the {}: {e}", self.what))
    }

    fn report(&mut self, timeout: Duration) -> Result<Report, String> {
        let l = self.line(timeout)?;
        serde_json::from_str(&l).map_err(|e| format!("the {} reported {l:?}: {e}", self.what))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        drop(self.stdin.take());
        // Give a worker that finished a moment to exit; kill one that did not.
        for _ in 0..50 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts workers and hands out endpoints in a private directory.
struct Harness {
    exe: std::path::PathBuf,
    dir: tempfile::TempDir,
    next: u32,
    only: Vec<String>,
}

impl Harness {
    fn new(only: Vec<String>) -> Result<Harness, Failure> {
        let exe = std::env::current_exe()
            .map_err(|e| Failure::op(format!("finding this program to start workers: {e}")))?;
        let dir = tempfile::Builder::new()
            .prefix("mailslot-bench-")
            .tempdir()
            .map_err(|e| Failure::op(format!("creating a temporary directory: {e}")))?;
        Ok(Harness {
            exe,
            dir,
            next: 0,
            only,
        })
    }

    fn skips(&self, t: Transport) -> bool {
        !self.only.is_empty() && !self.only.iter().any(|k| k == t.key())
    }

    fn endpoint(&mut self) -> Endpoint {
        self.next += 1;
        Endpoint {
            dir: self.dir.path().to_path_buf(),
            name: format!("c{}", self.next),
            run: std::process::id(),
        }
    }

    fn spawn(&self, spec: &Spec, what: String) -> Result<Proc, String> {
        let mut child = Command::new(&self.exe)
            .arg("bench")
            .arg("--worker")
            .arg(serde_json::to_string(spec).expect("a spec serializes"))
            .env_remove("MAILSLOT_DIR")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("starting the {what}: {e}"))?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(stdout).lines() {
                let Ok(l) = l else { break };
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        Ok(Proc {
            stdin: child.stdin.take(),
            child,
            lines: rx,
            what,
        })
    }

    /// One throughput run of `t`.
    fn throughput(
        &mut self,
        t: Transport,
        cell: CellSpec,
        seconds: f64,
    ) -> Result<Throughput, Missing> {
        let ep = self.endpoint();
        let r = self.throughput_inner(t, cell, seconds, &ep);
        transport::cleanup(t, &ep);
        r.map_err(classify)
    }

    fn throughput_inner(
        &mut self,
        t: Transport,
        cell: CellSpec,
        seconds: f64,
        ep: &Endpoint,
    ) -> Result<Throughput, String> {
        let spec = |role| Spec {
            role,
            transport: t,
            size: cell.size,
            ep: ep.clone(),
        };
        let mut reader = self.spawn(
            &spec(Role::Receive {
                writers: cell.writers,
            }),
            format!("{} reader", t.label()),
        )?;
        reader.ready()?;
        let mut writers = Vec::new();
        for id in 0..cell.writers {
            let mut w = self.spawn(
                &spec(Role::Send { id, seconds }),
                format!("{} writer {id}", t.label()),
            )?;
            w.ready()?;
            writers.push(w);
        }
        for w in &mut writers {
            w.go()?;
        }
        let limit = Duration::from_secs_f64(seconds) + Duration::from_secs(60);
        let mut sent = 0;
        let mut cpu = 0;
        for w in &mut writers {
            // A writer that fails leaves the reader waiting: report the writer.
            let r = w.report(limit)?;
            sent += r.messages;
            cpu += r.cpu_ns;
        }
        let r = reader.report(Duration::from_secs(60))?;
        if r.messages != sent {
            return Err(format!(
                "loss: {sent} messages sent, {} received",
                r.messages
            ));
        }
        let secs = (r.elapsed_ns.max(1)) as f64 / 1e9;
        let rate = r.messages as f64 / secs;
        Ok(Throughput {
            msgs_per_s: rate,
            mb_per_s: rate * cell.size as f64 / 1e6,
            cpu_ns_per_msg: (cpu + r.cpu_ns) as f64 / r.messages.max(1) as f64,
            reader_cpu_ns_per_msg: r.cpu_ns as f64 / r.messages.max(1) as f64,
            reader_hwm_kib: r.hwm_kib as f64,
            reader_private_kib: r.private_kib as f64,
        })
    }

    /// One ping-pong run of `t`.
    fn latency(&mut self, t: Transport, size: usize, seconds: f64) -> Result<Latency, Missing> {
        let (a, b) = (self.endpoint(), self.endpoint());
        let r = self.latency_inner(t, size, seconds, &a, &b);
        // A process that failed or was killed leaves its queue behind, and
        // POSIX queues count against a small per-user limit.
        transport::cleanup(t, &a);
        transport::cleanup(t, &b);
        r.map_err(classify)
    }

    fn latency_inner(
        &mut self,
        t: Transport,
        size: usize,
        seconds: f64,
        a: &Endpoint,
        b: &Endpoint,
    ) -> Result<Latency, String> {
        let (a, b) = (a.clone(), b.clone());
        let mut pong = self.spawn(
            &Spec {
                role: Role::Pong { peer: a.clone() },
                transport: t,
                size,
                ep: b.clone(),
            },
            format!("{} echo process", t.label()),
        )?;
        pong.ready()?;
        let mut ping = self.spawn(
            &Spec {
                role: Role::Ping { peer: b, seconds },
                transport: t,
                size,
                ep: a,
            },
            format!("{} ping process", t.label()),
        )?;
        ping.ready()?;
        pong.go()?;
        pong.ready()?;
        ping.go()?;
        let limit = Duration::from_secs_f64(seconds) + Duration::from_secs(60);
        let r = ping.report(limit)?;
        pong.report(Duration::from_secs(20))?;
        let [p50, p99, p999] = r
            .one_way_ns
            .ok_or_else(|| "the ping process measured no round trip".to_string())?;
        Ok(Latency {
            p50_us: p50 as f64 / 1e3,
            p99_us: p99 as f64 / 1e3,
            p999_us: p999 as f64 / 1e3,
        })
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The medians of repeated runs; the first failure wins.
fn combine<T: Copy>(
    runs: Vec<Result<T, Missing>>,
    fields: &[fn(&T) -> f64],
    build: fn(&[f64]) -> T,
) -> Result<T, Missing> {
    let mut ok = Vec::new();
    for r in runs {
        ok.push(r?);
    }
    let meds: Vec<f64> = fields
        .iter()
        .map(|f| median(ok.iter().map(f).collect()))
        .collect();
    Ok(build(&meds))
}

fn combine_tp(runs: Vec<Result<Throughput, Missing>>) -> Result<Throughput, Missing> {
    combine(
        runs,
        &[
            |t| t.msgs_per_s,
            |t| t.mb_per_s,
            |t| t.cpu_ns_per_msg,
            |t| t.reader_cpu_ns_per_msg,
            |t| t.reader_hwm_kib,
            |t| t.reader_private_kib,
        ],
        |m| Throughput {
            msgs_per_s: m[0],
            mb_per_s: m[1],
            cpu_ns_per_msg: m[2],
            reader_cpu_ns_per_msg: m[3],
            reader_hwm_kib: m[4],
            reader_private_kib: m[5],
        },
    )
}

fn combine_lat(runs: Vec<Result<Latency, Missing>>) -> Result<Latency, Missing> {
    combine(runs, &[|l| l.p50_us, |l| l.p99_us, |l| l.p999_us], |m| {
        Latency {
            p50_us: m[0],
            p99_us: m[1],
            p999_us: m[2],
        }
    })
}

/// The medians of each path's runs, and each run's key number (msgs/s or
/// p50), so ratios can be taken run by run.
struct Results<T> {
    med: BTreeMap<&'static str, Result<T, Missing>>,
    key: BTreeMap<&'static str, Vec<Option<f64>>>,
}

impl<T> std::ops::Index<&str> for Results<T> {
    type Output = Result<T, Missing>;
    fn index(&self, k: &str) -> &Self::Output {
        &self.med[k]
    }
}

impl<T> Results<T> {
    /// The median over runs of `a`'s key number over `b`'s in the same
    /// repetition: measured moments apart, so a machine that got busier
    /// between repetitions skews it less than a ratio of medians.
    fn ratio(&self, a: Transport, b: Transport) -> Option<f64> {
        let (ra, rb) = (self.key.get(a.key())?, self.key.get(b.key())?);
        let v: Vec<f64> = ra
            .iter()
            .zip(rb)
            .filter_map(|(x, y)| Some(x.as_ref()? / y.as_ref()?))
            .collect();
        (!v.is_empty()).then(|| median(v))
    }
}

/// Every run of one path, in repetition order.
type Runs<T> = Vec<Result<T, Missing>>;

fn results<T: Copy>(
    runs: BTreeMap<&'static str, Runs<T>>,
    key: fn(&T) -> f64,
    combine: fn(Runs<T>) -> Result<T, Missing>,
) -> Results<T> {
    let keys = runs
        .iter()
        .map(|(k, v)| (*k, v.iter().map(|r| r.as_ref().ok().map(key)).collect()))
        .collect();
    Results {
        med: runs.into_iter().map(|(k, v)| (k, combine(v))).collect(),
        key: keys,
    }
}

/// Runs `run` on each of `paths` in turn, `repeat` times (interleaved,
/// so a machine that gets busier skews every path alike), and combines the
/// runs of each path.
fn measure<T: Copy>(
    h: &mut Harness,
    paths: &[Transport],
    repeat: u32,
    mut run: impl FnMut(&mut Harness, Transport) -> Result<T, Missing>,
    key: fn(&T) -> f64,
    combine: fn(Runs<T>) -> Result<T, Missing>,
) -> Results<T> {
    let mut runs: BTreeMap<&'static str, Runs<T>> = BTreeMap::new();
    for _ in 0..repeat {
        for &t in paths {
            let r = if h.skips(t) {
                Err(Missing::Unavailable("not measured (--only)".into()))
            } else {
                run(h, t)
            };
            runs.entry(t.key()).or_default().push(r);
        }
    }
    results(runs, key, combine)
}

/// Measures throughput of `paths` for `cell`, interleaved, `repeat` times.
fn measure_tp(
    h: &mut Harness,
    paths: &[Transport],
    cell: CellSpec,
    seconds: f64,
    repeat: u32,
) -> Results<Throughput> {
    let run = |h: &mut Harness, t| h.throughput(t, cell, seconds);
    measure(h, paths, repeat, run, |t| t.msgs_per_s, combine_tp)
}

/// Measures latency of `paths` for `size`, interleaved, `repeat` times.
fn measure_lat(
    h: &mut Harness,
    paths: &[Transport],
    size: usize,
    seconds: f64,
    repeat: u32,
) -> Results<Latency> {
    let run = |h: &mut Harness, t| h.latency(t, size, seconds);
    measure(h, paths, repeat, run, |l| l.p50_us, combine_lat)
}

/// The first integrity failure in `results`, as the run's failure.
fn integrity<T>(results: &Results<T>, what: &str) -> Result<(), Failure> {
    for (k, r) in &results.med {
        if let Err(Missing::Integrity(e)) = r {
            return Err(Failure::op(format!("{what}, path {k}: {e}")));
        }
    }
    Ok(())
}

fn ours_ok<'a, T>(results: &'a Results<T>, ours: Transport, what: &str) -> Result<&'a T, Failure> {
    match &results[ours.key()] {
        Ok(t) => Ok(t),
        Err(Missing::Unavailable(e) | Missing::Integrity(e)) => {
            Err(Failure::op(format!("{what}: {} failed: {e}", ours.label())))
        }
    }
}

fn size_text(size: usize) -> String {
    if size >= 1 << 20 && size % (1 << 20) == 0 {
        format!("{} MiB", size >> 20)
    } else if size >= 1 << 10 && size % (1 << 10) == 0 {
        format!("{} KiB", size >> 10)
    } else {
        format!("{size} B")
    }
}

fn single_cell(
    h: &mut Harness,
    args: &Args,
    ours: Transport,
    cell: CellSpec,
) -> Result<u8, Failure> {
    // The queued path is judged against the plain one too (latency at low load).
    let mut paths = vec![ours];
    if ours == Transport::Queued {
        paths.push(Transport::Plain);
    }
    paths.extend(Transport::BASELINES);
    let what = format!(
        "{} messages, {} writer(s)",
        size_text(cell.size),
        cell.writers
    );
    let tp = measure_tp(h, &paths, cell, args.seconds, args.repeat);
    integrity(&tp, &what)?;
    let lat = args
        .latency
        .then(|| measure_lat(h, &paths, cell.size, args.seconds, args.repeat));
    if let Some(l) = &lat {
        integrity(l, &format!("latency, {}", size_text(cell.size)))?;
    }
    let t = ours_ok(&tp, ours, &what)?;
    let l = match &lat {
        Some(l) => Some(ours_ok(l, ours, "latency")?),
        None => None,
    };
    if args.json {
        let mut o = json!({
            "size": cell.size,
            "writers": cell.writers,
            "seconds": args.seconds,
            "repeat": args.repeat,
            "mode": ours.key(),
            "msgs_per_s": t.msgs_per_s.round(),
            "mb_per_s": round2(t.mb_per_s),
            "cpu_ns_per_msg": t.cpu_ns_per_msg.round(),
            "reader_cpu_ns_per_msg": t.reader_cpu_ns_per_msg.round(),
            "reader_hwm_kib": t.reader_hwm_kib,
            "reader_private_kib": t.reader_private_kib,
            "loss": false,
        });
        if let Some(l) = l {
            o["p50_us"] = json!(round2(l.p50_us));
            o["p99_us"] = json!(round2(l.p99_us));
            o["p999_us"] = json!(round2(l.p999_us));
        }
        let mut base = serde_json::Map::new();
        for b in Transport::BASELINES {
            let mut v = match &tp[b.key()] {
                Ok(bt) => json!({
                    "msgs_per_s": bt.msgs_per_s.round(),
                    "mb_per_s": round2(bt.mb_per_s),
                    "cpu_ns_per_msg": bt.cpu_ns_per_msg.round(),
                    "reader_cpu_ns_per_msg": bt.reader_cpu_ns_per_msg.round(),
                    "ratio": tp.ratio(ours, b).map(round2),
                }),
                Err(Missing::Unavailable(e) | Missing::Integrity(e)) => json!({ "error": e }),
            };
            if let (Some(_), Some(lat)) = (l, &lat) {
                match &lat[b.key()] {
                    Ok(bl) => {
                        v["p50_us"] = json!(round2(bl.p50_us));
                        v["p99_us"] = json!(round2(bl.p99_us));
                        v["p999_us"] = json!(round2(bl.p999_us));
                        v["p50_ratio"] = json!(lat.ratio(ours, b).map(round2));
                    }
                    Err(Missing::Unavailable(e) | Missing::Integrity(e)) => {
                        v["latency_error"] = json!(e);
                    }
                }
            }
            base.insert(b.key().into(), v);
        }
        o["baselines"] = Value::Object(base);
        if ours == Transport::Queued {
            let mut v = match &tp[Transport::Plain.key()] {
                Ok(pt) => json!({
                    "msgs_per_s": pt.msgs_per_s.round(),
                    "ratio": tp.ratio(ours, Transport::Plain).map(round2),
                }),
                Err(Missing::Unavailable(e) | Missing::Integrity(e)) => json!({ "error": e }),
            };
            if let (Some(_), Some(Ok(pl))) = (l, lat.as_ref().map(|m| &m[Transport::Plain.key()])) {
                v["p50_us"] = json!(round2(pl.p50_us));
                v["p50_ratio"] = json!(
                    lat.as_ref()
                        .and_then(|m| m.ratio(ours, Transport::Plain))
                        .map(round2)
                );
            }
            o["plain"] = v;
        }
        println!("{o}");
    } else {
        print_tp_header();
        print_tp_rows(cell, &paths, ours, &tp);
        if let Some(lat) = &lat {
            println!();
            print_lat_header();
            print_lat_rows(cell.size, &paths, ours, lat);
        }
    }
    Ok(0)
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

const SIZES: [usize; 4] = [64, 1 << 10, 60 << 10, 1 << 20];

fn matrix(h: &mut Harness, args: &Args) -> Result<u8, Failure> {
    let paths = [
        Transport::Plain,
        Transport::Queued,
        Transport::Seqpacket,
        Transport::Dgram,
        Transport::Mq,
        Transport::ShmRing,
    ];
    println!(
        "mailslot bench: {} s per measurement, {} repeat(s) (medians), {} cores; reader and writers are separate processes",
        args.seconds,
        args.repeat,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!();
    print_tp_header();
    let mut notes = Vec::new();
    for size in SIZES {
        for writers in [1, 4] {
            let cell = CellSpec { size, writers };
            let tp = measure_tp(h, &paths, cell, args.seconds, args.repeat);
            integrity(
                &tp,
                &format!("{} messages, {writers} writer(s)", size_text(size)),
            )?;
            print_tp_rows(cell, &paths, Transport::Plain, &tp);
            collect_notes(&tp, &mut notes);
        }
    }
    println!();
    print_lat_header();
    for size in SIZES {
        let lat = measure_lat(h, &paths, size, args.seconds, args.repeat);
        integrity(&lat, &format!("latency, {}", size_text(size)))?;
        print_lat_rows(size, &paths, Transport::Plain, &lat);
        collect_notes(&lat, &mut notes);
    }
    if !notes.is_empty() {
        println!();
        for n in notes {
            println!("n/a: {n}");
        }
    }
    Ok(0)
}

fn collect_notes<T>(r: &Results<T>, notes: &mut Vec<String>) {
    for (k, v) in &r.med {
        if let Err(Missing::Unavailable(e)) = v {
            let n = format!("{k}: {e}");
            if !notes.contains(&n) {
                notes.push(n);
            }
        }
    }
}

fn print_tp_header() {
    println!(
        "{:<8} {:>2}  {:<30} {:>11} {:>9} {:>8} {:>9}  {:>7} {:>7} {:>7} {:>7}",
        "size",
        "W",
        "path",
        "msgs/s",
        "MB/s",
        "CPU ns",
        "rd mem",
        "/seqp",
        "/dgram",
        "/mq",
        "/ring"
    );
}

/// The ratio columns of path `p`'s row: against each baseline for our own
/// paths, nothing for a baseline's row.
fn ratio_columns<T>(results: &Results<T>, p: Transport, ours: Transport) -> String {
    if !(p == ours || p == Transport::Queued || p == Transport::Plain) {
        return String::new();
    }
    let ratio = |b: Transport| match results.ratio(p, b) {
        Some(r) => format!("{r:.2}x"),
        None => "n/a".into(),
    };
    format!(
        "{:>7} {:>7} {:>7} {:>7}",
        ratio(Transport::Seqpacket),
        ratio(Transport::Dgram),
        ratio(Transport::Mq),
        ratio(Transport::ShmRing)
    )
}

fn print_tp_rows(cell: CellSpec, paths: &[Transport], ours: Transport, tp: &Results<Throughput>) {
    for &p in paths {
        match &tp[p.key()] {
            Ok(t) => {
                let ratios = ratio_columns(tp, p, ours);
                println!(
                    "{:<8} {:>2}  {:<30} {:>11.0} {:>9.1} {:>8.0} {:>5.1} MiB  {}",
                    size_text(cell.size),
                    cell.writers,
                    p.label(),
                    t.msgs_per_s,
                    t.mb_per_s,
                    t.cpu_ns_per_msg,
                    t.reader_private_kib / 1024.0,
                    ratios
                );
            }
            Err(_) => println!(
                "{:<8} {:>2}  {:<30} {:>11}",
                size_text(cell.size),
                cell.writers,
                p.label(),
                "n/a"
            ),
        }
    }
}

fn print_lat_header() {
    println!(
        "{:<8} {:<30} {:>9} {:>9} {:>9}  {:>7} {:>7} {:>7} {:>7}",
        "size",
        "one-way latency",
        "p50 us",
        "p99 us",
        "p99.9 us",
        "/seqp",
        "/dgram",
        "/mq",
        "/ring"
    );
}

fn print_lat_rows(size: usize, paths: &[Transport], ours: Transport, lat: &Results<Latency>) {
    for &p in paths {
        match &lat[p.key()] {
            Ok(l) => {
                let ratios = ratio_columns(lat, p, ours);
                println!(
                    "{:<8} {:<30} {:>9.2} {:>9.2} {:>9.2}  {}",
                    size_text(size),
                    p.label(),
                    l.p50_us,
                    l.p99_us,
                    l.p999_us,
                    ratios
                );
            }
            Err(_) => println!("{:<8} {:<30} {:>9}", size_text(size), p.label(), "n/a"),
        }
    }
}
