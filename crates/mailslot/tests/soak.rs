//! Soak (issue 8): writer processes send numbered messages of random sizes
//! to one reader process that stalls at random; every message must arrive
//! exactly once, whole, and in its writer's order, while the reader's memory
//! stays within its queue bound and no process leaks a file descriptor.
//!
//! The short version runs in CI (4 writers x 25 000 messages). The long one
//! (4 writers x 2 500 000 = 10 million messages) runs with `MAILSLOT_SOAK=1`,
//! best in a release build:
//!
//! ```sh
//! MAILSLOT_SOAK=1 cargo test --release -p mailslot --features soak --test soak -- --nocapture
//! ```
//!
//! Both are needed: CI builds with `--all-features`, so the `soak` feature
//! alone must not pick the long sizes, and the environment variable alone
//! would run them in a debug build by accident. Figures are printed on
//! stderr as `soak: ...` lines.

mod harness;

use std::time::{Duration, Instant};

use harness::{Rng, env_u64, fd_count, own_fd_count, say, spawn, status_bytes};
use mailslot::{Error, Namespace, Reader, ReaderOptions, SlotName, Writer};

const WRITERS: u64 = 4;
/// Reader queue bound: messages and bytes.
const QUEUE_MESSAGES: usize = 4096;
const QUEUE_BYTES: usize = 1 << 20;
/// The largest inline frame (a message or a coalesced batch).
const FRAME_MAX: u64 = 64 * 1024 + 16;
const POOL_LEN: usize = 1 << 20;
const TAG_LEN: usize = 16;

fn per_writer() -> u64 {
    if harness::long_run() {
        2_500_000
    } else {
        25_000
    }
}

fn slot() -> SlotName {
    SlotName::parse(r"\\.\mailslot\soak\main").unwrap()
}

/// The bytes every message is cut from.
fn pool() -> Vec<u8> {
    Rng::new(0x736f_616b).bytes(POOL_LEN)
}

/// The size and content plan of one writer; the reader replays it.
struct Plan {
    rng: Rng,
    id: u32,
    seq: u32,
}

impl Plan {
    fn new(id: u32) -> Plan {
        Plan {
            rng: Rng::new(0x5eed_5eed_0000 + u64::from(id)),
            id,
            seq: 0,
        }
    }

    /// The next message: a 16-byte tag (writer, seq, size, pool offset) and
    /// pool bytes. Sizes: 70 % under 64 bytes, 29 % up to 2 KiB, 1 % up to
    /// 64 KiB, and one in 20 000 over 64 KiB (sent as a sealed memfd).
    fn next(&mut self, pool: &[u8], out: &mut Vec<u8>) {
        let r = self.rng.below(20_000);
        let len = TAG_LEN
            + match r {
                0 => 65_536 + self.rng.below(200_000),
                1..14_000 => self.rng.below(48),
                14_000..19_800 => 48 + self.rng.below(2_000),
                _ => 2_048 + self.rng.below(62_000),
            } as usize;
        let off = self.rng.below((POOL_LEN - len) as u64) as usize;
        out.clear();
        for v in [self.id, self.seq, len as u32, off as u32] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&pool[off..off + len - TAG_LEN]);
        self.seq += 1;
    }
}

fn describe(m: &[u8]) -> String {
    if m.len() < TAG_LEN {
        return format!("{} bytes (untagged)", m.len());
    }
    let f = |i: usize| u32::from_le_bytes(m[i * 4..i * 4 + 4].try_into().unwrap());
    format!(
        "writer {} seq {} size {} (tag says {})",
        f(0),
        f(1),
        m.len(),
        f(2)
    )
}

/// The entry point of child processes.
#[test]
fn child_entry() {
    match harness::role().as_deref() {
        Some("soak-writer") => writer_child(),
        Some("soak-reader") => reader_child(),
        Some("soak-blaster") => blaster_child(),
        _ => {}
    }
}

/// Child: writes its plan, sometimes coalesced (`write_batch`), reopening
/// its writer now and then; reports its descriptor counts.
fn writer_child() {
    let ns = Namespace::at(std::env::var("SOAK_DIR").unwrap().as_ref()).unwrap();
    let id = env_u64("SOAK_ID") as u32;
    let count = env_u64("SOAK_COUNT") as u32;
    let pool = pool();
    let mut plan = Plan::new(id);
    let mut shape = Rng::new(0xba7c_0000 + u64::from(id));
    let fds_before = own_fd_count();
    let mut w = Writer::open_in(&ns, &slot()).expect("soak writer: open");
    let (mut reopens, mut batches) = (0u32, 0u32);
    let mut msg = Vec::new();
    let mut batch: Vec<Vec<u8>> = Vec::new();
    let mut seq = 0u32;
    while seq < count {
        let r = shape.below(1 << 20);
        if r < 200 {
            // A new connection; order must hold across the two (B28).
            drop(w);
            w = Writer::open_in(&ns, &slot()).expect("soak writer: reopen");
            reopens += 1;
        }
        if r % 16 == 1 {
            let k = (2 + r % 31).min(u64::from(count - seq)) as usize;
            batch.resize_with(k, Vec::new);
            for m in &mut batch {
                plan.next(&pool, m);
            }
            w.write_batch(&batch)
                .unwrap_or_else(|(n, e)| panic!("soak writer {id}: batch failed after {n}: {e}"));
            seq += k as u32;
            batches += 1;
        } else {
            plan.next(&pool, &mut msg);
            w.write(&msg)
                .unwrap_or_else(|e| panic!("soak writer {id}: write {seq} failed: {e}"));
            seq += 1;
        }
    }
    drop(w);
    let fds_after = own_fd_count();
    say(format!(
        "WDONE {id} {count} fds {fds_before} {fds_after} reopens {reopens} batches {batches}"
    ));
}

/// Child: the reader. Checks every byte of every message against the
/// writers' plans, stalls at random, asks `info()` at random, samples its
/// memory; once the parent says the writers are gone, checks that every
/// connection was closed.
fn reader_child() {
    let ns = Namespace::at(std::env::var("SOAK_DIR").unwrap().as_ref()).unwrap();
    let writers = env_u64("SOAK_WRITERS") as usize;
    let count = env_u64("SOAK_COUNT");
    let stall_one_in = env_u64("SOAK_STALL_ONE_IN");
    let me = std::process::id();
    let opts = ReaderOptions::default().queue_limit(QUEUE_MESSAGES, QUEUE_BYTES);
    let fds_before = own_fd_count();
    let mut reader = Reader::create_in(&ns, &slot(), &opts).unwrap();
    let pool = pool();
    let mut plans: Vec<Plan> = (0..writers as u32).map(Plan::new).collect();
    let mut want = Vec::new();
    let fds0 = own_fd_count();
    let hwm0 = status_bytes(me, "VmHWM");
    let mut rng = Rng::new(env_u64("SOAK_SEED"));
    let (mut stalls, mut stalled, mut infos, mut rss_max) = (0u64, Duration::ZERO, 0u64, 0u64);
    let mut bytes = 0u64;
    say("READY");
    let total = count * writers as u64;
    for i in 0..total {
        let m = reader
            .read_message_timeout(Some(Duration::from_secs(60)))
            .unwrap_or_else(|e| panic!("soak reader: message {i} of {total}: {e}"));
        let (id, seq) = if m.data.len() >= 8 {
            let f = |k: usize| u32::from_le_bytes(m.data[k * 4..k * 4 + 4].try_into().unwrap());
            (f(0) as usize, f(1))
        } else {
            panic!("soak reader: a {}-byte message: split?", m.data.len())
        };
        assert!(
            id < writers,
            "soak reader: unknown writer in {}",
            describe(&m.data)
        );
        let plan = &mut plans[id];
        assert_eq!(
            seq,
            plan.seq,
            "soak reader: writer {id} expected seq {} got {} (loss or reorder)",
            plan.seq,
            describe(&m.data)
        );
        plan.next(&pool, &mut want);
        assert!(
            m.data == want,
            "soak reader: {} differs from what was sent (merge, split or corruption)",
            describe(&m.data)
        );
        bytes += m.data.len() as u64;
        let r = rng.below(stall_one_in);
        if r == 0 {
            let d = Duration::from_micros(rng.below(30_000));
            std::thread::sleep(d);
            stalls += 1;
            stalled += d;
        } else if r == 1 {
            // info() fetches everything in the kernel buffers: still bounded?
            reader.info().unwrap();
            infos += 1;
        }
        if i % 8192 == 0 {
            rss_max = rss_max.max(status_bytes(me, "VmRSS"));
        }
    }
    let hwm1 = status_bytes(me, "VmHWM");
    say(format!("READ {total} {bytes}"));
    // The parent says when every writer has exited.
    assert_eq!(harness::command().as_deref(), Some("writers-gone"));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match reader.read_message_timeout(Some(Duration::ZERO)) {
            Err(Error::TimedOut { .. }) => {}
            other => panic!("soak reader: expected nothing more, got {other:?}"),
        }
        if own_fd_count() <= fds0 || Instant::now() > deadline {
            break;
        }
        // Closed connections are noticed at the next read; poll.
        std::thread::sleep(Duration::from_millis(1));
    }
    let fds1 = own_fd_count();
    drop(reader);
    let fds2 = own_fd_count();
    say(format!(
        "RDONE fds {fds_before} {fds0} {fds1} {fds2} hwm {hwm0} {hwm1} rss_max {rss_max} stalls {stalls} stalled_ms {} infos {infos} rejected 0",
        stalled.as_millis()
    ));
}

/// The tests of this file count this process's descriptors: one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn soak_writers_random_sizes_stalling_reader_lose_nothing_and_stay_bounded() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let count = per_writer();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().display().to_string();
    let mut rng = Rng::from_time("soak");
    let stall_one_in = if count > 100_000 { 20_000 } else { 2_000 };
    let mut reader = spawn(
        "soak-reader",
        &[
            ("SOAK_DIR", dir.clone()),
            ("SOAK_WRITERS", WRITERS.to_string()),
            ("SOAK_COUNT", count.to_string()),
            ("SOAK_STALL_ONE_IN", stall_one_in.to_string()),
            ("SOAK_SEED", rng.next_u64().to_string()),
        ],
        None,
    );
    reader.expect("READY");
    let reader_fds_start = fd_count(reader.pid());
    let start = Instant::now();
    let writers: Vec<_> = (0..WRITERS)
        .map(|id| {
            spawn(
                "soak-writer",
                &[
                    ("SOAK_DIR", dir.clone()),
                    ("SOAK_ID", id.to_string()),
                    ("SOAK_COUNT", count.to_string()),
                ],
                None,
            )
        })
        .collect();
    let read = reader.expect("READ");
    let elapsed = start.elapsed();
    for mut w in writers {
        let done = w.expect("WDONE");
        let f: Vec<&str> = done.split_whitespace().collect();
        assert_eq!(f[4], f[5], "writer {} leaked descriptors: {done}", f[1]);
        eprintln!("soak: {done}");
        w.finish();
    }
    reader.send("writers-gone");
    let done = reader.expect("RDONE");
    eprintln!("soak: reader {done}");
    let f: Vec<&str> = done.split_whitespace().collect();
    let num = |i: usize| f[i].parse::<u64>().unwrap();
    let (fds_before, fds0, fds1, fds2) = (num(2), num(3), num(4), num(5));
    let (hwm0, hwm1, rss_max) = (num(7), num(8), num(10));
    assert_eq!(
        fds1, fds0,
        "the reader kept closed connections open: {done}"
    );
    assert_eq!(
        fds2, fds_before,
        "dropping the reader left descriptors open: {done}"
    );
    // What the reader may hold: its bound, one frame per connection more,
    // the bookkeeping of a full queue of tiny messages, and a constant for
    // the allocator and the checking code (the pool, one expected message).
    let bound = QUEUE_BYTES as u64
        + (WRITERS + 1) * FRAME_MAX
        + QUEUE_MESSAGES as u64 * 128
        + 4 * 1024 * 1024;
    let growth = hwm1.saturating_sub(hwm0);
    let total = count * WRITERS;
    let total_bytes: u64 = read.split_whitespace().nth(2).unwrap().parse().unwrap();
    eprintln!(
        "soak: {total} messages, {:.1} MiB, in {:.1} s ({:.0} msgs/s); reader peak RSS growth {} KiB (VmHWM {} -> {} KiB, sampled RSS max {} KiB) vs bound {} KiB; reader fds {fds0} at start, {fds1} after the writers left, {fds2} after drop (parent saw {reader_fds_start})",
        total_bytes as f64 / 1048576.0,
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64(),
        growth / 1024,
        hwm0 / 1024,
        hwm1 / 1024,
        rss_max / 1024,
        bound / 1024,
    );
    assert!(
        growth <= bound,
        "reader memory grew {growth} bytes, over its bound of {bound}: {done}"
    );
    reader.finish();
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        0,
        "slot files left behind"
    );
}

/// Open and close many readers and writers in one process: the process
/// ends with exactly the descriptors it started with.
#[test]
fn thousands_of_open_close_cycles_leak_no_descriptors() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let rounds = if harness::long_run() { 20_000 } else { 1_000 };
    let tmp = tempfile::tempdir().unwrap();
    let ns = Namespace::at(tmp.path()).unwrap();
    let name = SlotName::parse(r"\\.\mailslot\soak\cycles").unwrap();
    let shared = SlotName::parse(r"\\.\mailslot\soak\cycles-shared").unwrap();
    // Warm up lazily allocated descriptors (none expected, but be fair).
    drop(Reader::create_in(&ns, &name, &ReaderOptions::default()).unwrap());
    let fds0 = own_fd_count();
    for i in 0..rounds {
        let mut r = Reader::create_in(
            &ns,
            &name,
            &ReaderOptions::default().read_timeout(Some(Duration::from_secs(10))),
        )
        .unwrap();
        let w = Writer::open_in(&ns, &name).unwrap();
        w.write(&[i as u8; 100_000]).unwrap(); // a memfd message
        w.write(b"small").unwrap();
        if i % 2 == 0 {
            // Read everything...
            assert_eq!(r.read_message().unwrap().data.len(), 100_000);
            assert_eq!(r.read_message().unwrap().data, b"small");
        }
        // ...or drop with unread messages (and their memfds) queued.
        if i % 3 == 0 {
            drop(r);
            assert!(matches!(w.write(b"x"), Err(Error::ReaderClosed { .. })));
        } else {
            drop(w);
            drop(r);
        }
        let mut a =
            Reader::create_in(&ns, &shared, &ReaderOptions::default().shared(true)).unwrap();
        let b = Reader::create_in(&ns, &shared, &ReaderOptions::default().shared(true)).unwrap();
        let w = Writer::open_in(&ns, &shared).unwrap();
        w.write(b"both").unwrap();
        drop(b);
        w.write(b"one").unwrap();
        assert_eq!(a.read_message().unwrap().data, b"both");
        drop((a, w));
    }
    assert_eq!(
        own_fd_count(),
        fds0,
        "descriptors leaked over {rounds} rounds"
    );
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
}

/// Child: writes coalesced batches of tiny messages as fast as it can until
/// the reader goes away.
fn blaster_child() {
    let ns = Namespace::at(std::env::var("SOAK_DIR").unwrap().as_ref()).unwrap();
    let w = Writer::open_in(&ns, &SlotName::parse(r"\\.\mailslot\soak\info").unwrap()).unwrap();
    let batch = vec![[7u8; 8]; 4096];
    say("BLASTING");
    while w.write_batch(&batch).is_ok() {}
}

/// `info()` fetches what is in the kernel buffers; writers that keep those
/// buffers full must not make it read without end or hold unbounded memory.
#[test]
fn info_under_writers_blasting_batches_returns_and_stays_bounded() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let ns = Namespace::at(tmp.path()).unwrap();
    let name = SlotName::parse(r"\\.\mailslot\soak\info").unwrap();
    let mut reader = Reader::create_in(&ns, &name, &ReaderOptions::default()).unwrap();
    let me = std::process::id();
    let rss0 = status_bytes(me, "VmRSS");
    let mut blasters: Vec<_> = (0..2)
        .map(|_| {
            spawn(
                "soak-blaster",
                &[("SOAK_DIR", tmp.path().display().to_string())],
                None,
            )
        })
        .collect();
    for b in &mut blasters {
        b.expect("BLASTING");
    }
    let mut worst = Duration::ZERO;
    let mut rss_max = 0;
    for _ in 0..20 {
        let start = Instant::now();
        let st = reader.info().unwrap();
        worst = worst.max(start.elapsed());
        rss_max = rss_max.max(status_bytes(me, "VmRSS"));
        for _ in 0..st.count.min(100_000) {
            reader.read_message().unwrap();
        }
    }
    eprintln!(
        "soak: info() under 2 blasting writers: slowest {worst:?}, RSS {} -> {} KiB",
        rss0 / 1024,
        rss_max / 1024
    );
    drop(reader);
    for b in blasters {
        b.finish();
    }
    assert!(worst < Duration::from_secs(5), "info() took {worst:?}");
    assert!(rss_max < rss0 + (32 << 20), "info() grew RSS to {rss_max}");
}
