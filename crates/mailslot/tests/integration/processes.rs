//! Many processes at once: the 4 x 100 000 stress, ordering across
//! processes, a reader killed with SIGKILL, backpressure.

use std::collections::HashMap;
use std::sync::mpsc::channel;
use std::time::{Duration, Instant};

use mailslot::{Error, Namespace, Reader, ReaderOptions, SlotName, Writer};

use crate::util::{Child, PATIENCE, Rng, Spawn, TestResult, env_u64, namespace, say, slot};

const STRESS_WRITERS: u32 = 4;
const STRESS_MESSAGES: u32 = 100_000;
const STRESS_MAX: usize = 4096;
const POOL_LEN: usize = 64 * 1024;
const TAG_LEN: usize = 16;

/// The random bytes every stress message is cut from.
fn stress_pool() -> Vec<u8> {
    Rng::new(0x6d61_696c_736c_6f74).word_bytes(POOL_LEN + STRESS_MAX)
}

/// The size and content plan of one writer.
fn stress_plan(writer: u32) -> Rng {
    Rng::new(0x5eed_0000 + u64::from(writer))
}

/// Message `seq` of `writer`: size 0..=4096 from the plan; content a 16-byte
/// tag (writer, seq, size, pool offset) followed by pool bytes, cut to the
/// size. The reader regenerates it and compares every byte, which is a
/// stronger check than a checksum.
fn stress_message(pool: &[u8], plan: &mut Rng, writer: u32, seq: u32, out: &mut Vec<u8>) {
    let len = plan.below(STRESS_MAX as u64 + 1) as usize;
    let off = plan.below(POOL_LEN as u64) as usize;
    out.clear();
    for v in [writer, seq, len as u32, off as u32] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend_from_slice(&pool[off..off + len.saturating_sub(TAG_LEN)]);
    out.truncate(len);
}

/// Child role `stress`: writes the plan of writer `WRITER_ID`.
pub fn stress_writer(ns: &Namespace, name: &SlotName) {
    let id = env_u64("WRITER_ID") as u32;
    let count = env_u64("COUNT") as u32;
    let pool = stress_pool();
    let mut plan = stress_plan(id);
    let w = Writer::open_in(ns, name).expect("stress child: open");
    let mut msg = Vec::with_capacity(STRESS_MAX);
    for seq in 0..count {
        stress_message(&pool, &mut plan, id, seq, &mut msg);
        w.write(&msg).expect("stress child: write");
    }
    say("done");
}

fn describe(m: &[u8]) -> String {
    if m.len() < TAG_LEN {
        return format!("{} bytes (untagged)", m.len());
    }
    let f = |i: usize| u32::from_le_bytes(m[i * 4..i * 4 + 4].try_into().unwrap());
    format!(
        "writer {} seq {} len {} ({} bytes)",
        f(0),
        f(1),
        f(2),
        m.len()
    )
}

#[test]
fn four_writer_processes_100k_messages_each_none_lost_merged_split_duplicated_or_reordered()
-> TestResult {
    let (tmp, ns) = namespace();
    let name = slot(r"\\.\mailslot\stress");
    let timeout = Some(Duration::from_secs(30));
    let mut reader =
        Reader::create_in(&ns, &name, &ReaderOptions::default().read_timeout(timeout))?;
    let started = Instant::now();
    let children: Vec<Child> = (0..STRESS_WRITERS)
        .map(|id| {
            Spawn::new("stress", tmp.path())
                .slot("stress")
                .env("WRITER_ID", id)
                .env("COUNT", STRESS_MESSAGES)
                .start()
        })
        .collect();
    let writer_of: HashMap<u32, u32> = children
        .iter()
        .enumerate()
        .map(|(i, c)| (c.pid(), i as u32))
        .collect();
    let pool = stress_pool();
    let mut plans: Vec<Rng> = (0..STRESS_WRITERS).map(stress_plan).collect();
    let mut next_seq = vec![0u32; STRESS_WRITERS as usize];
    let mut expected = Vec::with_capacity(STRESS_MAX);
    let mut buf = vec![0u8; STRESS_MAX + 1];
    let mut zero_len = 0u32;
    let total = STRESS_WRITERS * STRESS_MESSAGES;
    for i in 0..total {
        let (n, sender) = reader.read_with_sender(&mut buf)?;
        let got = &buf[..n];
        let Some(&w) = writer_of.get(&sender.pid) else {
            panic!(
                "message {i} from unknown pid {}: {}",
                sender.pid,
                describe(got)
            );
        };
        let seq = next_seq[w as usize];
        assert!(
            seq < STRESS_MESSAGES,
            "writer {w} sent more than it wrote (duplicate?)"
        );
        stress_message(&pool, &mut plans[w as usize], w, seq, &mut expected);
        assert!(
            got == expected.as_slice(),
            "message {i} from writer {w}: expected {}, got {}",
            describe(&expected),
            describe(got)
        );
        next_seq[w as usize] += 1;
        zero_len += u32::from(n == 0);
    }
    let read_all = started.elapsed();
    let e = reader
        .read_timeout_once(&mut buf, Some(Duration::ZERO))
        .unwrap_err();
    assert!(matches!(e, Error::TimedOut { .. }), "an extra message: {e}");
    assert_eq!(next_seq, vec![STRESS_MESSAGES; STRESS_WRITERS as usize]);
    assert!(zero_len > 0, "the plan made no zero-length message");
    for mut c in children {
        assert_eq!(c.recv(), "done");
        c.finish_within(PATIENCE);
    }
    eprintln!(
        "stress: {total} messages from {STRESS_WRITERS} processes read and checked in {read_all:?}"
    );
    Ok(())
}

/// Two processes write in turn, each write only after the other's returned;
/// the reader must see exactly that order. `burst` messages per turn.
fn alternate(rounds: usize, burst: impl Fn(usize) -> usize + Send + Copy + 'static) -> TestResult {
    let (tmp, ns) = namespace();
    let name = slot(r"\\.\mailslot\turns");
    let mut reader = Reader::create_in(
        &ns,
        &name,
        &ReaderOptions::default().read_timeout(Some(Duration::from_secs(30))),
    )?;
    let mut kids: Vec<Child> = (0..2)
        .map(|_| Spawn::new("writer", tmp.path()).slot("turns").start())
        .collect();
    for k in &mut kids {
        assert!(k.recv().starts_with("id "));
        assert_eq!(k.ask("open"), "ok");
    }
    let pids = [kids[0].pid(), kids[1].pid()];
    let (done_tx, done_rx) = channel();
    let check = std::thread::spawn(move || -> Result<(), String> {
        let mut buf = [0u8; 64];
        for r in 0..rounds {
            for (side, pid) in pids.iter().enumerate() {
                for i in 0..burst(r) {
                    let want = format!("{side}.{r}.{i}");
                    let (n, s) = reader
                        .read_with_sender(&mut buf)
                        .map_err(|e| format!("round {r}: {e}"))?;
                    let got = String::from_utf8_lossy(&buf[..n]);
                    if got != want || s.pid != *pid {
                        return Err(format!(
                            "expected {want} from {pid}, got {got} from {}",
                            s.pid
                        ));
                    }
                }
            }
        }
        done_tx.send(()).unwrap();
        match reader.read_timeout_once(&mut buf, Some(Duration::ZERO)) {
            Err(Error::TimedOut { .. }) => Ok(()),
            other => Err(format!("extra message: {other:?}")),
        }
    });
    'drive: for r in 0..rounds {
        for (side, k) in kids.iter_mut().enumerate() {
            let n = burst(r);
            let cmd = if n == 1 {
                format!("write {side}.{r}.0")
            } else {
                format!("burst {side}.{r}. {n}")
            };
            // The checker failing ends the reader, and so the writes.
            if check.is_finished() || k.ask(&cmd) != "ok" {
                break 'drive;
            }
        }
    }
    check.join().unwrap()?;
    assert!(done_rx.try_recv().is_ok());
    for k in kids {
        k.finish_within(PATIENCE);
    }
    Ok(())
}

#[test]
fn two_processes_writing_in_turn_are_read_strictly_alternating() -> TestResult {
    alternate(10_000, |_| 1)
}

#[test]
fn bursts_written_in_turn_by_two_processes_keep_their_order() -> TestResult {
    // Bursts make the reader fetch many messages of one writer per pass,
    // widening the window in which the other writer's turn can land.
    alternate(1_000, |r| 1 + r % 40)
}

#[test]
fn reader_killed_by_sigkill_ends_writers_and_frees_the_name() -> TestResult {
    let (tmp, ns) = namespace();
    let name = slot(r"\\.\mailslot\killed");
    let mut holder = Spawn::new("writer", tmp.path()).slot("killed").start();
    assert!(holder.recv().starts_with("id "));
    assert_eq!(holder.ask("create 600 0"), "ok");
    let reader_pid = holder.pid();
    // One connection the reader accepted (it read from it), one still in
    // the listen backlog.
    let accepted = Writer::open_in(&ns, &name)?;
    assert_eq!(accepted.reader_pid(), reader_pid);
    accepted.write(b"read")?;
    assert_eq!(holder.ask("read"), "msg read");
    let w = Writer::open_in(&ns, &name)?;
    w.write(b"unread")?;
    let listed = ns.list()?;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].pid, reader_pid);

    holder.kill();
    for w in [&accepted, &w] {
        match w.write(b"after") {
            Err(Error::ReaderClosed { name }) => assert_eq!(name, r"\\.\mailslot\killed"),
            other => panic!("expected ReaderClosed, got {other:?}"),
        }
    }
    match Writer::open_in(&ns, &name) {
        Err(Error::NotFound { .. }) => {}
        other => panic!("expected NotFound, got {other:?}"),
    }
    assert!(ns.list()?.is_empty(), "a dead reader is still listed");
    // A new reader takes the name at once, without the old messages.
    let mut reader = Reader::create_in(
        &ns,
        &name,
        &ReaderOptions::default().read_timeout(Some(Duration::ZERO)),
    )?;
    assert!(matches!(
        w.write(b"old writer"),
        Err(Error::ReaderClosed { .. })
    ));
    Writer::open_in(&ns, &name)?.write(b"new")?;
    assert_eq!(reader.read_message()?.data, b"new");
    assert!(matches!(
        reader.try_read(&mut [0; 16]),
        Err(Error::TimedOut { .. })
    ));
    Ok(())
}

/// Writes with a zero write timeout until the connection's buffer is full.
fn fill_until_blocked(w: &mut Writer) -> usize {
    w.set_write_timeout(Some(Duration::ZERO));
    let mut n = 0;
    loop {
        match w.write(format!("m{n}").as_bytes()) {
            Ok(()) => n += 1,
            Err(Error::TimedOut { .. }) => break,
            Err(e) => panic!("write {n}: {e}"),
        }
        assert!(n < 10_000_000, "writes never blocked");
    }
    n
}

#[test]
fn dropping_the_reader_releases_a_writer_blocked_on_a_full_queue() -> TestResult {
    let (_tmp, ns) = namespace();
    let name = slot(r"\\.\mailslot\full");
    let reader = Reader::create_in(&ns, &name, &ReaderOptions::default().queue_limit(1, 1))?;
    let mut w = Writer::open_in(&ns, &name)?;
    let sent = fill_until_blocked(&mut w);
    assert!(sent > 0);
    w.set_write_timeout(None);
    let (tx, rx) = channel();
    let t = std::thread::spawn(move || {
        let r = w.write(b"blocked");
        tx.send(Instant::now()).unwrap();
        r
    });
    // The write must still be waiting: nobody has made room.
    assert!(
        rx.recv_timeout(Duration::from_millis(300)).is_err(),
        "the write did not block"
    );
    let dropped = Instant::now();
    drop(reader);
    let returned = rx
        .recv_timeout(Duration::from_secs(5))
        .expect("the write stayed blocked");
    assert!(returned.duration_since(dropped) < Duration::from_millis(500));
    match t.join().unwrap() {
        Err(Error::ReaderClosed { .. }) => {}
        other => panic!("expected ReaderClosed, got {other:?}"),
    }
    Ok(())
}

#[test]
fn tiny_queue_limit_blocks_writers_and_loses_nothing() -> TestResult {
    let (_tmp, ns) = namespace();
    let name = slot(r"\\.\mailslot\tiny");
    let mut reader = Reader::create_in(
        &ns,
        &name,
        &ReaderOptions::default()
            .queue_limit(2, 64)
            .read_timeout(Some(Duration::ZERO)),
    )?;
    let mut w = Writer::open_in(&ns, &name)?;
    let limit = Duration::from_millis(100);
    w.set_write_timeout(Some(limit));
    let mut sent = 0usize;
    loop {
        let t = Instant::now();
        match w.write(format!("m{sent}").as_bytes()) {
            Ok(()) => sent += 1,
            Err(Error::TimedOut { op, timeout, .. }) => {
                assert!(t.elapsed() >= limit, "gave up after {:?}", t.elapsed());
                assert_eq!((op, timeout), ("writing to", limit));
                break;
            }
            Err(e) => return Err(e.into()),
        }
        assert!(sent < 10_000_000, "writes never blocked");
    }
    assert!(sent >= 2);
    // A second writer has its own room, and its messages keep their place.
    let w2 = Writer::open_in(&ns, &name)?;
    w2.write(b"second")?;
    let mut got = 0usize;
    let mut buf = [0u8; 32];
    while got < sent {
        let n = reader.read(&mut buf)?;
        assert_eq!(&buf[..n], format!("m{got}").as_bytes());
        got += 1;
    }
    assert_eq!(reader.read_message()?.data, b"second");
    let e = reader.read(&mut buf).unwrap_err();
    assert!(
        matches!(e, Error::TimedOut { .. }),
        "the timed-out write was delivered: {e}"
    );
    // Room again.
    w.write(b"again")?;
    assert_eq!(reader.read_message()?.data, b"again");
    Ok(())
}

#[test]
fn sender_pid_uid_gid_match_the_writing_process() -> TestResult {
    let (tmp, ns) = namespace();
    let name = slot(r"\\.\mailslot\who");
    let mut reader = Reader::create_in(
        &ns,
        &name,
        &ReaderOptions::default().read_timeout(Some(Duration::from_secs(30))),
    )?;
    let mut ids = Vec::new();
    let mut kids = Vec::new();
    for _ in 0..2 {
        let mut k = Spawn::new("writer", tmp.path()).slot("who").start();
        let id = k.recv();
        let f: Vec<u32> = id[3..].split(' ').map(|x| x.parse().unwrap()).collect();
        assert_eq!(f[0], k.pid());
        ids.push((f[0], f[1], f[2]));
        assert_eq!(k.ask("open"), "ok");
        kids.push(k);
    }
    for (i, k) in kids.iter_mut().enumerate() {
        assert_eq!(k.ask(&format!("write from{i}")), "ok");
    }
    Writer::open_in(&ns, &name)?.write(b"from me")?;
    let me = (
        std::process::id(),
        rustix::process::geteuid().as_raw(),
        rustix::process::getegid().as_raw(),
    );
    for (i, want) in [ids[0], ids[1], me].into_iter().enumerate() {
        let m = reader.read_message()?;
        let s = &m.sender;
        assert_eq!((s.pid, s.uid, s.gid), want, "message {i}");
        assert_eq!(s.remote, None);
    }
    for k in kids {
        k.finish_within(PATIENCE);
    }
    Ok(())
}

#[test]
fn writer_killed_mid_stream_leaves_only_whole_messages_in_order() -> TestResult {
    let (tmp, ns) = namespace();
    let name = slot(r"\\.\mailslot\cut");
    let mut reader = Reader::create_in(
        &ns,
        &name,
        &ReaderOptions::default().read_timeout(Some(Duration::from_secs(30))),
    )?;
    let mut child = Spawn::new("writer", tmp.path()).slot("cut").start();
    assert!(child.recv().starts_with("id "));
    assert_eq!(child.ask("open"), "ok");
    // Padded so that the socket buffer fills after a few hundred messages.
    let pad = "p".repeat(1000);
    child.send(&format!("burst {pad}. 1000000"));
    let mut buf = vec![0u8; 4096];
    for i in 0..10 {
        let n = reader.read(&mut buf)?;
        assert_eq!(&buf[..n], format!("{pad}.{i}").as_bytes());
    }
    // Killed wherever it is: writing, or blocked on a full buffer.
    child.kill();
    let mut i = 10;
    loop {
        match reader.read_timeout_once(&mut buf, Some(Duration::ZERO)) {
            Ok(n) => assert_eq!(&buf[..n], format!("{pad}.{i}").as_bytes(), "message {i}"),
            Err(Error::TimedOut { .. }) => break,
            Err(e) => return Err(e.into()),
        }
        i += 1;
    }
    assert!(i < 1_000_000, "{i} messages");
    // The slot works on for others.
    Writer::open_in(&ns, &name)?.write(b"next")?;
    assert_eq!(reader.read_message()?.data, b"next");
    Ok(())
}
