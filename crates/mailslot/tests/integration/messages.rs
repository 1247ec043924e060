//! Message transport: large messages through sealed memfds, `write_batch`.

use std::time::Duration;

use mailslot::{Error, Reader, ReaderOptions, Writer};

use crate::util::{PATIENCE, Rng, Spawn, TestResult, namespace, say, slot};

fn now() -> ReaderOptions {
    ReaderOptions::default().read_timeout(Some(Duration::ZERO))
}

#[test]
fn large_messages_round_trip_intact() -> TestResult {
    let (_tmp, ns) = namespace();
    let name = slot(r"\\.\mailslot\large");
    let mut reader = Reader::create_in(&ns, &name, &now())?;
    let w = Writer::open_in(&ns, &name)?;
    let mut rng = Rng::new(64);
    let inline = rng.word_bytes(60 * 1024);
    let mib = rng.word_bytes(1 << 20);
    let huge = rng.word_bytes(64 << 20);
    w.write(&inline)?;
    w.write(&mib)?;
    w.write(&huge)?;
    w.write(b"after")?;
    let st = reader.info()?;
    assert_eq!((st.count, st.next_size), (4, Some(inline.len())));
    let m = reader.read_message()?;
    assert!(m.data == inline, "60 KiB message corrupted");
    let mut buf = vec![0u8; 1 << 20];
    assert_eq!(reader.read(&mut buf)?, mib.len());
    assert!(buf == mib, "1 MiB message corrupted");
    let m = reader.read_message()?;
    assert_eq!(m.data.len(), huge.len());
    assert!(m.data == huge, "64 MiB message corrupted");
    assert_eq!(m.sender.pid, std::process::id());
    assert_eq!(reader.read_message()?.data, b"after");
    Ok(())
}

/// The content of large message number `seed`: cheap to make, different
/// for every seed and every 8-byte word.
pub fn large_message(seed: u64, len: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(len + 8);
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

/// Message memory files (`memfd:mailslot-message`) this process holds open.
pub fn message_memfds() -> usize {
    crate::util::fd_targets()
        .iter()
        .filter(|t| t.starts_with("/memfd:mailslot-message"))
        .count()
}

fn read_large(reader: &mut Reader, seed: u64, len: usize, what: &str) -> TestResult {
    let m = reader.read_message_timeout(Some(PATIENCE))?;
    assert_eq!(m.data.len(), len, "{what}: length");
    assert!(
        m.data == large_message(seed, len),
        "{what}: message {seed} corrupted"
    );
    Ok(())
}

/// Large messages go in the writer's reusable buffers; a buffer is filled
/// again only after the reader has read what it held, so nothing is ever
/// overwritten, whether the reader keeps up or lets many pile up.
#[test]
fn reused_large_message_buffers_never_overwrite_unread_messages() -> TestResult {
    let (tmp, ns) = namespace();
    let name = slot(r"\\.\mailslot\large\reuse");
    let mut reader = Reader::create_in(&ns, &name, &now())?;
    let mut w = Spawn::new("writer", tmp.path())
        .slot(r"large\reuse")
        .start();
    assert!(w.recv().starts_with("id "));
    assert_eq!(w.ask("open"), "ok");
    let len = 300_000;
    // The reader keeps up: one buffer serves every message.
    for i in 0..20 {
        assert_eq!(w.ask(&format!("large {i} 1 {len}")), "ok");
        read_large(&mut reader, i, len, "in step")?;
    }
    assert_eq!(w.ask("memfds"), "memfds 1", "the buffer was not reused");
    // The reader falls behind: every buffer is out, later messages get
    // memory files of their own; all arrive intact and in order.
    assert_eq!(w.ask(&format!("large 100 12 {len}")), "ok");
    assert_eq!(reader.info()?.count, 12);
    for i in 0..12 {
        read_large(&mut reader, 100 + i, len, "backlog")?;
    }
    // Sizes change: smaller and larger messages share the pool.
    for (i, l) in [70_000usize, 1 << 20, 200_000, 3 << 20, 65_537]
        .into_iter()
        .enumerate()
    {
        let seed = 200 + i as u64;
        assert_eq!(w.ask(&format!("large {seed} 1 {l}")), "ok");
        read_large(&mut reader, seed, l, "mixed sizes")?;
    }
    let held: usize = w.ask("memfds").trim_start_matches("memfds ").parse()?;
    assert!(
        (1..=8).contains(&held),
        "the pool holds {held} buffers, at most 8"
    );
    // Mid-sized messages (32-64 KiB) take a free buffer too, and go inline
    // when none is free, without waiting.
    for i in 0..5 {
        assert_eq!(w.ask(&format!("large {} 1 40000", 400 + i)), "ok");
        read_large(&mut reader, 400 + i, 40_000, "mid-sized")?;
    }
    // Eight take buffers, three go inline (more would fill the socket
    // buffer of a reader that is not reading, and block).
    let t = std::time::Instant::now();
    assert_eq!(w.ask("large 500 11 40000"), "ok");
    say(format!(
        "11 mid-sized writes, reader idle: {:?}",
        t.elapsed()
    ));
    for i in 0..11 {
        read_large(&mut reader, 500 + i, 40_000, "mid-sized backlog")?;
    }
    // No cache: nothing kept, messages still intact.
    assert_eq!(w.ask("cache 0"), "ok");
    assert_eq!(w.ask(&format!("large 300 3 {len}")), "ok");
    for i in 0..3 {
        read_large(&mut reader, 300 + i, len, "no cache")?;
    }
    assert_eq!(w.ask("memfds"), "memfds 0");
    w.finish();
    Ok(())
}

/// A writer that closes with release notices it never collected makes the
/// kernel flag its connection reset; what it sent before must still arrive.
#[test]
fn writer_closing_with_uncollected_release_notices_loses_nothing() -> TestResult {
    let (_tmp, ns) = namespace();
    let name = slot(r"\\.\mailslot\large\notices");
    let mut reader = Reader::create_in(&ns, &name, &now())?;
    let w = Writer::open_in(&ns, &name)?;
    w.write(&large_message(1, 200_000))?;
    read_large(&mut reader, 1, 200_000, "large")?;
    // The release notice now waits, unread, in the writer's socket.
    for i in 0..100 {
        w.write(format!("small {i}").as_bytes())?;
    }
    drop(w);
    for i in 0..100 {
        assert_eq!(reader.read_message()?.data, format!("small {i}").as_bytes());
    }
    assert!(matches!(
        reader.try_read(&mut [0; 8]),
        Err(Error::TimedOut { .. })
    ));
    Ok(())
}

#[test]
fn over_size_memfd_message_is_refused_by_the_writer() -> TestResult {
    let (_tmp, ns) = namespace();
    let name = slot(r"\\.\mailslot\large\capped");
    let max = 100_000u32;
    let mut reader = Reader::create_in(&ns, &name, &now().max_message_size(max))?;
    let w = Writer::open_in(&ns, &name)?;
    let big = vec![7u8; max as usize + 1];
    match w.write(&big) {
        Err(Error::MessageTooLarge { size, max: m, .. }) => {
            assert_eq!((size, m), (big.len(), u64::from(max)));
        }
        other => panic!("expected MessageTooLarge, got {other:?}"),
    }
    assert_eq!(reader.info()?.count, 0);
    // Exactly the maximum still goes (through a memfd).
    w.write(&big[..max as usize])?;
    assert_eq!(reader.read_message()?.data.len(), max as usize);
    // A batch with one over-size message sends nothing at all.
    match w.write_batch(&[&b"ok"[..], &big[..]]) {
        Err((0, Error::MessageTooLarge { .. })) => {}
        other => panic!("expected MessageTooLarge before sending, got {other:?}"),
    }
    assert!(matches!(
        reader.try_read(&mut [0; 8]),
        Err(Error::TimedOut { .. })
    ));
    Ok(())
}

#[test]
fn write_batch_messages_arrive_separately_in_order() -> TestResult {
    let (_tmp, ns) = namespace();
    let name = slot(r"\\.\mailslot\batch");
    let opts = ReaderOptions::default().read_timeout(Some(Duration::from_secs(30)));
    let mut reader = Reader::create_in(&ns, &name, &opts)?;
    let w = Writer::open_in(&ns, &name)?;
    let mut rng = Rng::new(7);
    let mut msgs: Vec<Vec<u8>> = (0..3000)
        .map(|i| {
            let mut m = format!("{i}:").into_bytes();
            let extra = rng.below(300) as usize;
            m.extend(rng.word_bytes(extra));
            m
        })
        .collect();
    msgs[10] = Vec::new();
    msgs[11] = Vec::new();
    // Larger than one batch packet: sent on its own, in its place.
    msgs[500] = rng.word_bytes(Writer::BATCH_BYTES + 10);
    msgs[501] = rng.word_bytes(Writer::BATCH_BYTES - 4);
    // More than the connection's socket buffer holds: write from a thread.
    let sent = msgs.clone();
    let t = std::thread::spawn(move || {
        w.write_batch(&sent)
            .map_err(|(n, e)| format!("after {n}: {e}"))
    });
    for (i, want) in msgs.iter().enumerate() {
        let m = reader.read_message()?;
        assert!(&m.data == want, "message {i} differs");
        assert_eq!(m.sender.pid, std::process::id());
    }
    t.join().unwrap()?;
    assert!(matches!(
        reader.try_read(&mut [0; 8]),
        Err(Error::TimedOut { .. })
    ));
    Ok(())
}

#[test]
fn write_batch_and_write_from_two_writers_keep_per_writer_order() -> TestResult {
    let (tmp, ns) = namespace();
    let name = slot(r"\\.\mailslot\batch\mix");
    let mut reader = Reader::create_in(
        &ns,
        &name,
        &ReaderOptions::default().read_timeout(Some(Duration::from_secs(30))),
    )?;
    let mut a = Spawn::new("writer", tmp.path()).slot(r"batch\mix").start();
    let mut b = Spawn::new("writer", tmp.path()).slot(r"batch\mix").start();
    for k in [&mut a, &mut b] {
        assert!(k.recv().starts_with("id "));
        assert_eq!(k.ask("open"), "ok");
    }
    // In turn: a batch of A, a write of B, a write of A, a batch of B...
    // Each step starts after the previous one returned.
    let rounds = 200;
    let (pa, pb) = (a.pid(), b.pid());
    let mut expected = Vec::new();
    for r in 0..rounds {
        expected.extend((0..1 + r % 7).map(|i| (format!("a{r}.{i}"), pa)));
        expected.push((format!("b{r}"), pb));
        expected.push((format!("a{r}"), pa));
        expected.extend((0..1 + r % 5).map(|i| (format!("b{r}.{i}"), pb)));
    }
    let want = expected.clone();
    // More than the socket buffers hold: read while they write.
    let check = std::thread::spawn(move || -> Result<(), String> {
        for (i, (text, pid)) in want.iter().enumerate() {
            let m = reader
                .read_message()
                .map_err(|e| format!("message {i}: {e}"))?;
            let got = (String::from_utf8_lossy(&m.data).into_owned(), m.sender.pid);
            if got != (text.clone(), *pid) {
                return Err(format!(
                    "message {i}: expected {text} from {pid}, got {got:?}"
                ));
            }
        }
        match reader.read_message_timeout(Some(Duration::ZERO)) {
            Err(Error::TimedOut { .. }) => Ok(()),
            other => Err(format!("extra message: {other:?}")),
        }
    });
    let batch = |p: &str, r: usize, n: usize| {
        let v: Vec<String> = (0..n).map(|i| format!("{p}{r}.{i}")).collect();
        format!("batch {}", v.join(","))
    };
    for r in 0..rounds {
        let steps = [
            (0, batch("a", r, 1 + r % 7)),
            (1, format!("write b{r}")),
            (0, format!("write a{r}")),
            (1, batch("b", r, 1 + r % 5)),
        ];
        for (who, cmd) in steps {
            let k = if who == 0 { &mut a } else { &mut b };
            if check.is_finished() {
                break;
            }
            assert_eq!(k.ask(&cmd), "ok", "round {r}: {cmd}");
        }
    }
    check.join().unwrap()?;
    a.finish_within(PATIENCE);
    b.finish_within(PATIENCE);
    Ok(())
}

/// Open descriptors above stderr, with their `fdinfo` flags.
fn descriptors() -> Vec<(u32, u32)> {
    let mut v: Vec<(u32, u32)> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|&fd| fd > 2)
        .filter_map(|fd: u32| {
            let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).ok()?;
            let flags = info.lines().find_map(|l| l.strip_prefix("flags:"))?;
            Some((fd, u32::from_str_radix(flags.trim(), 8).ok()?))
        })
        .collect();
    v.sort();
    v
}

/// Child role `fds`: runs every kind of message through a slot and checks
/// that all descriptors the library opened are close-on-exec and that none
/// is left open afterwards. In a child, so other tests' descriptors do not
/// interfere.
pub fn descriptor_hygiene(ns: &mailslot::Namespace) {
    const O_CLOEXEC: u32 = 0o2000000;
    let before: Vec<u32> = descriptors().into_iter().map(|(fd, _)| fd).collect();
    let name = slot(r"\\.\mailslot\fds");
    let mut reader = Reader::create_in(ns, &name, &now()).unwrap();
    let w = Writer::open_in(ns, &name).unwrap();
    w.write(b"small").unwrap();
    w.write(&vec![1u8; 1 << 20]).unwrap();
    w.write(&vec![2u8; 200_000]).unwrap();
    w.write_batch(&[&b"x"[..], b"y"]).unwrap();
    w.write(&vec![3u8; 100_000]).unwrap();
    for (fd, flags) in descriptors() {
        if !before.contains(&fd) {
            assert!(
                flags & O_CLOEXEC != 0,
                "descriptor {fd} is not close-on-exec"
            );
        }
    }
    assert_eq!(reader.read_message().unwrap().data, b"small");
    assert!(matches!(
        reader.read(&mut [0; 10]),
        Err(Error::BufferTooSmall { .. })
    ));
    assert_eq!(reader.read(&mut vec![0; 1 << 20]).unwrap(), 1 << 20);
    assert_eq!(reader.read_message().unwrap().data.len(), 200_000);
    assert_eq!(reader.info().unwrap().count, 3);
    reader.read_message().unwrap();
    reader.read_message().unwrap();
    assert_eq!(reader.read_message().unwrap().data.len(), 100_000);
    // By now the reader has taken the writer's ring (and its eventfd):
    // these go through it, and its descriptors are checked too.
    for m in [&b"ring 1"[..], b"ring 2", &[4u8; 40_000]] {
        w.write(m).unwrap();
        assert!(reader.read_message().unwrap().data == m, "ring message");
    }
    for (fd, flags) in descriptors() {
        if !before.contains(&fd) {
            assert!(
                flags & O_CLOEXEC != 0,
                "descriptor {fd} is not close-on-exec"
            );
        }
    }
    // The last (memfd) message is never read: dropping the reader frees it.
    w.write(&vec![5u8; 1 << 20]).unwrap();
    drop(w);
    drop(reader);
    let after: Vec<u32> = descriptors().into_iter().map(|(fd, _)| fd).collect();
    assert_eq!(before, after, "descriptors leaked");
    say("ok");
}

#[test]
fn library_descriptors_are_close_on_exec_and_none_leak() {
    let (tmp, _ns) = namespace();
    let mut child = Spawn::new("fds", tmp.path()).start();
    assert_eq!(child.recv(), "ok");
    child.finish_within(PATIENCE);
}

/// Child role `mixed`: writes `COUNT` messages whose sizes hop between the
/// paths a message can take (ring, socket inline, reusable and one-off
/// memory files, batches), each tagged with its sequence number and filled
/// from it, so the reader can check every byte and the order.
pub fn mixed_writer(ns: &mailslot::Namespace, name: &mailslot::SlotName) {
    let count = crate::util::env_u64("COUNT");
    let w = Writer::open_in(ns, name).unwrap();
    let mut rng = Rng::new(crate::util::env_u64("SEED"));
    let mut seq = 0u64;
    while seq < count {
        if rng.below(10) == 0 {
            let n = (1 + rng.below(20)).min(count - seq);
            let batch: Vec<Vec<u8>> = (0..n)
                .map(|i| mixed_message(seq + i, mixed_size(&mut rng).min(2000)))
                .collect();
            w.write_batch(&batch).unwrap();
            seq += n;
        } else {
            w.write(&mixed_message(seq, mixed_size(&mut rng))).unwrap();
            seq += 1;
        }
    }
    say("done");
}

fn mixed_size(rng: &mut Rng) -> usize {
    const SIZES: [usize; 14] = [
        0,
        1,
        8,
        64,
        65,
        1000,
        16_384,
        16_385,
        32_768,
        61_440,
        65_536,
        65_537,
        300_000,
        3 << 20,
    ];
    let s = SIZES[rng.below(SIZES.len() as u64) as usize];
    // The largest only now and then, to keep the test quick.
    if s > 1 << 20 && rng.below(8) != 0 {
        100
    } else {
        s
    }
}

/// Message `seq` of `len` bytes: the sequence number, then bytes from it.
fn mixed_message(seq: u64, len: usize) -> Vec<u8> {
    let mut m: Vec<u8> = (0..len).map(|i| (seq as usize * 31 + i) as u8).collect();
    let tag = seq.to_le_bytes();
    let n = len.min(8);
    m[..n].copy_from_slice(&tag[..n]);
    m
}

/// Messages of every size and path from two writer processes, one stream
/// each: every message arrives whole, once, in its writer's order, while
/// the writers keep moving between the ring and the socket.
#[test]
fn mixed_sizes_keep_order_across_ring_and_socket() -> TestResult {
    let (tmp, ns) = namespace();
    let name = slot(r"\\.\mailslot\mixed");
    let mut reader = Reader::create_in(
        &ns,
        &name,
        &ReaderOptions::default().read_timeout(Some(PATIENCE)),
    )?;
    const COUNT: u64 = 3000;
    let mut writers: Vec<_> = [1u64, 2]
        .iter()
        .map(|&seed| {
            Spawn::new("mixed", tmp.path())
                .slot(r"mixed")
                .env("COUNT", COUNT)
                .env("SEED", seed)
                .start()
        })
        .collect();
    let pids: Vec<u32> = writers.iter().map(|w| w.pid()).collect();
    let mut next = [0u64; 2];
    let mut lens = [0usize; 2];
    while next.iter().any(|&n| n < COUNT) {
        let m = reader.read_message()?;
        let w = pids
            .iter()
            .position(|&p| p == m.sender.pid)
            .expect("a message from one of the writers");
        let seq = next[w];
        let want = mixed_message(seq, m.data.len());
        assert!(
            m.data == want,
            "writer {w}: message {seq} ({} bytes) is not the next one",
            m.data.len()
        );
        lens[w] += m.data.len();
        next[w] += 1;
    }
    for w in &mut writers {
        assert_eq!(w.recv(), "done");
    }
    for w in writers {
        w.finish_within(PATIENCE);
    }
    match reader.read_message_timeout(Some(Duration::ZERO)) {
        Err(Error::TimedOut { .. }) => {}
        Ok(m) => panic!(
            "an extra message of {} bytes from pid {}",
            m.data.len(),
            m.sender.pid
        ),
        Err(e) => panic!("{e}"),
    }
    eprintln!("mixed: {COUNT} messages per writer, {lens:?} bytes");
    Ok(())
}
