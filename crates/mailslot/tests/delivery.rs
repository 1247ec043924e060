//! The queued writer's delivery guarantee: a message it accepted is
//! returned by exactly one read of one reader, or handed back by `close`,
//! whatever its readers do — exit early, close with messages unread, die
//! by SIGKILL — and the order of each priority holds across them. Also
//! what a killed writer costs its reader (nothing but its own messages).
//!
//! `MAILSLOT_SOAK=1` with `--features soak` runs more messages.

mod harness;

use std::sync::Arc;
use std::time::{Duration, Instant};

use harness::{Rng, env_u64, say, spawn};
use mailslot::{
    Error, Namespace, Priority, QueuedOptions, QueuedWriter, Reader, ReaderOptions, SlotName,
    Writer,
};

const LONG: Duration = Duration::from_secs(60);

fn slot(s: &str) -> SlotName {
    SlotName::parse(&format!(r"\\.\mailslot\delivery\{s}")).unwrap()
}

/// The entry point of child processes.
#[test]
fn child_entry() {
    match harness::role().as_deref() {
        Some("victim") => victim_child(),
        Some("queued-writer") => queued_writer_child(),
        _ => {}
    }
}

/// Message `seq` of priority `p`: its size (0 B to 3 MiB, mostly small),
/// the same for writer and reader.
fn size_of(p: Priority, seq: u64) -> usize {
    let mut h = (seq << 1 | u64::from(p == Priority::High)).wrapping_add(0x9E37_79B9_7F4A_7C15);
    h = (h ^ (h >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    h ^= h >> 31;
    if p == Priority::Normal && seq % 997 == 0 {
        return 0;
    }
    match h % 10_000 {
        // About one in 2 000: 64 KiB to 3 MiB, through memory files.
        0..5 => (64 << 10) + (h >> 20) as usize % ((3 << 20) - (64 << 10)),
        // One in 40: 2 to 64 KiB.
        5..255 => 2048 + (h >> 20) as usize % (62 << 10),
        // The rest: 9 bytes to 2 KiB, through the ring.
        _ => 9 + (h >> 20) as usize % 2039,
    }
}

/// The message itself: a priority byte, its sequence number, a pattern.
fn message(p: Priority, seq: u64) -> Vec<u8> {
    let len = size_of(p, seq);
    if len == 0 {
        return Vec::new();
    }
    let mut m = vec![if p == Priority::High { b'H' } else { b'N' }];
    m.extend_from_slice(&seq.to_le_bytes());
    m.extend((9..len).map(|i| (i as u64 ^ seq) as u8));
    m
}

/// What a reader says about a message: `H seq`, `N seq` or `E` (empty);
/// `BAD ...` when its bytes are wrong.
fn token_of(m: &[u8]) -> String {
    if m.is_empty() {
        return "E".into();
    }
    let (p, tag) = match m[0] {
        b'H' => (Priority::High, 'H'),
        b'N' => (Priority::Normal, 'N'),
        b => return format!("BAD tag {b}"),
    };
    let Some(seq) = m
        .get(1..9)
        .map(|b| u64::from_le_bytes(b.try_into().unwrap()))
    else {
        return format!("BAD short message of {} bytes", m.len());
    };
    if m != message(p, seq) {
        return format!("BAD bytes of {tag} {seq} ({} bytes)", m.len());
    }
    format!("{tag} {seq}")
}

/// Child: a reader that reports each message before it reads the next,
/// stalling now and then. Runs until killed.
fn victim_child() {
    let ns = Namespace::at(std::env::var("DELIVERY_DIR").unwrap().as_ref()).unwrap();
    let mut rng = Rng::new(env_u64("DELIVERY_SEED"));
    let opts = ReaderOptions::default().max_message_size(0);
    let mut reader = Reader::create_in(&ns, &slot("victim"), &opts).unwrap();
    say("READY");
    loop {
        let m = reader.read_message().unwrap();
        say(token_of(&m.data));
        if rng.below(300) == 0 {
            std::thread::sleep(Duration::from_micros(rng.below(3_000)));
        }
    }
}

/// Checks that the `got` tokens of one priority are the `want` ones in
/// order, without a duplicate, some missing; returns how many are missing.
fn missing_from(what: &str, want: &[String], got: &[String]) -> usize {
    let mut w = want.iter();
    for (i, g) in got.iter().enumerate() {
        assert!(
            w.by_ref().any(|x| x == g),
            "{what}: {g} (read {i} of {}) is duplicated or out of order",
            got.len()
        );
    }
    want.len() - got.len()
}

#[test]
fn readers_killed_at_random_lose_nothing_a_read_did_not_return() {
    let long = harness::long_run();
    let (total, kills) = if long { (1_000_000, 50) } else { (100_000, 20) };
    let mut rng = Rng::from_time("delivery");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().display().to_string();
    let ns = Namespace::at(tmp.path()).unwrap();
    let name = slot("victim");

    // Which messages, in which order: one in ten high priority.
    let mut plan = Vec::with_capacity(total);
    let (mut highs, mut normals) = (0u64, 0u64);
    for _ in 0..total {
        if rng.below(10) == 0 {
            plan.push((Priority::High, highs));
            highs += 1;
        } else {
            plan.push((Priority::Normal, normals));
            normals += 1;
        }
    }
    let qw = Arc::new(
        QueuedWriter::open_in(
            &ns,
            &name,
            QueuedOptions::default()
                .queue_limit(1 << 20, 64 << 20)
                .reconnect_backoff(Duration::from_millis(1), Duration::from_millis(5)),
        )
        .unwrap(),
    );
    let feeder = {
        let (qw, plan) = (qw.clone(), plan.clone());
        std::thread::spawn(move || {
            for (p, seq) in plan {
                qw.send(message(p, seq), p).unwrap();
            }
        })
    };

    // Readers that are killed after a random number of reads.
    let mut got: Vec<String> = Vec::new();
    let started = Instant::now();
    for _ in 0..kills {
        let mut child = spawn(
            "victim",
            &[
                ("DELIVERY_DIR", dir.clone()),
                ("DELIVERY_SEED", rng.next_u64().to_string()),
            ],
            None,
        );
        child.expect("READY");
        // Together they take at most this many: some are left for the last.
        let at = 1 + rng.below(total as u64 / (kills as u64 + 1));
        for _ in 0..at {
            let t = child.recv();
            assert!(!t.starts_with("BAD"), "victim: {t}");
            got.push(t);
        }
        child.kill();
        for t in child.drain() {
            assert!(!t.starts_with("BAD"), "victim: {t}");
            got.push(t);
        }
    }

    // The last reader reads the rest, until the writer says it all was read.
    let mut reader =
        Reader::create_in(&ns, &name, &ReaderOptions::default().max_message_size(0)).unwrap();
    let deadline = Instant::now() + LONG * 3;
    loop {
        match reader.read_message_timeout(Some(Duration::from_millis(50))) {
            Ok(m) => {
                let t = token_of(&m.data);
                assert!(!t.starts_with("BAD"), "last reader: {t}");
                got.push(t);
            }
            Err(Error::TimedOut { .. }) if feeder.is_finished() && qw.stats().queued == 0 => {
                break;
            }
            Err(Error::TimedOut { .. }) => {}
            Err(e) => panic!("last reader: {e}"),
        }
        assert!(Instant::now() < deadline, "not all read: {:?}", qw.stats());
    }
    feeder.join().unwrap();
    let took = started.elapsed();

    // Per priority: in order, no duplicates; missing at most one message
    // per kill (read, and not yet reported when the reader died).
    let want = |p: Priority| -> Vec<String> {
        plan.iter()
            .filter(|(q, _)| *q == p)
            .map(|&(q, seq)| token_of(&message(q, seq)))
            .collect()
    };
    let of = |tag: char| -> Vec<String> {
        got.iter()
            .filter(|t| t.starts_with(tag) || (tag == 'N' && *t == "E"))
            .cloned()
            .collect()
    };
    let missing_high = missing_from("high", &want(Priority::High), &of('H'));
    let missing_normal = missing_from("normal", &want(Priority::Normal), &of('N'));
    let s = qw.stats();
    eprintln!(
        "delivery: {total} messages ({highs} high, {normals} normal, 0 B to 3 MiB) through {kills} killed readers and one more in {took:?}: {} read, {} missing (at most one per kill may be), {} sent, {} sent again, {} reconnects",
        got.len(),
        missing_high + missing_normal,
        s.sent,
        s.resent,
        s.reconnects
    );
    assert!(
        missing_high + missing_normal <= kills,
        "{missing_high} high and {missing_normal} normal messages missing after {kills} kills"
    );
    assert_eq!(s.read, total as u64, "a read returned each message");
    let qw = Arc::into_inner(qw).unwrap();
    assert!(qw.close(LONG).is_empty());
}

#[test]
fn a_reader_closed_with_messages_unread_leaves_them_to_the_next() {
    let tmp = tempfile::tempdir().unwrap();
    let ns = Namespace::at(tmp.path()).unwrap();
    let name = slot("graceful");
    let mut first = Reader::create_in(&ns, &name, &ReaderOptions::default()).unwrap();
    let w = QueuedWriter::open_in(&ns, &name, QueuedOptions::default()).unwrap();
    // Small ones through the ring, a batch, and a large one in a memory file.
    let msgs: Vec<Vec<u8>> = (0..300u32)
        .map(|i| {
            let len = if i == 150 {
                200_000
            } else {
                (i as usize * 7) % 3000
            };
            (0..len).map(|j| (j as u32 ^ i) as u8).collect()
        })
        .collect();
    for m in &msgs {
        w.send(m.clone(), Priority::Normal).unwrap();
    }
    for m in &msgs[..100] {
        assert_eq!(&first.read_message().unwrap().data, m);
    }
    harness::eventually(LONG, "the first reader has more", || w.stats().unread > 0);
    drop(first);
    let mut second = Reader::create_in(&ns, &name, &ReaderOptions::default()).unwrap();
    second.set_read_timeout(Some(LONG));
    for (i, m) in msgs[100..].iter().enumerate() {
        assert_eq!(
            &second.read_message().unwrap().data,
            m,
            "message {}",
            i + 100
        );
    }
    w.wait_read(LONG).unwrap();
    let s = w.stats();
    assert_eq!((s.read, s.queued, s.unread), (300, 0, 0));
    assert!(s.resent > 0 && s.resent <= 200, "{s:?}");
    assert!(matches!(
        second.read_message_timeout(Some(Duration::from_millis(50))),
        Err(Error::TimedOut { .. })
    ));
    assert!(w.close(LONG).is_empty());
}

#[test]
fn close_hands_back_what_the_reader_has_not_read_and_it_is_never_returned() {
    let tmp = tempfile::tempdir().unwrap();
    let ns = Namespace::at(tmp.path()).unwrap();
    let name = slot("handback");
    let mut r = Reader::create_in(&ns, &name, &ReaderOptions::default()).unwrap();
    let w = QueuedWriter::open_in(&ns, &name, QueuedOptions::default()).unwrap();
    for i in 0..10u8 {
        w.send(vec![i; 100], Priority::Normal).unwrap();
    }
    w.flush(LONG).unwrap();
    assert_eq!(r.read_message().unwrap().data, vec![0u8; 100]);
    let left = w.close(Duration::from_millis(100));
    let back: Vec<u8> = left.pending.iter().map(|m| m.data[0]).collect();
    assert_eq!(back, (1..10).collect::<Vec<u8>>());
    // The reader still holds them, but no read returns one.
    assert!(matches!(
        r.read_message_timeout(Some(Duration::ZERO)),
        Err(Error::TimedOut { .. })
    ));
}

/// The same through plain `read`s (no sender asked for), which take ring
/// messages by a shorter path: a message whose writer took it back is not
/// returned there either.
#[test]
fn close_hands_back_what_plain_reads_have_not_returned_and_none_is_returned() {
    let tmp = tempfile::tempdir().unwrap();
    let ns = Namespace::at(tmp.path()).unwrap();
    let name = slot("handback-plain");
    let mut r = Reader::create_in(&ns, &name, &ReaderOptions::default()).unwrap();
    let w = QueuedWriter::open_in(&ns, &name, QueuedOptions::default()).unwrap();
    let mut buf = [0u8; 2048];
    // The first message opens the ring; the rest go through it.
    w.send(vec![100u8; 1000], Priority::Normal).unwrap();
    assert_eq!(r.read(&mut buf).unwrap(), 1000);
    w.wait_read(LONG).unwrap();
    for i in 0..10u8 {
        w.send(vec![i; 1000], Priority::Normal).unwrap();
    }
    w.flush(LONG).unwrap();
    let n = r.read(&mut buf).unwrap();
    assert_eq!(&buf[..n], &[0u8; 1000][..]);
    let left = w.close(Duration::from_millis(100));
    let back: Vec<u8> = left.pending.iter().map(|m| m.data[0]).collect();
    assert_eq!(back, (1..10).collect::<Vec<u8>>());
    // The reader still holds them, but no read returns one.
    assert!(matches!(
        r.read_timeout_once(&mut buf, Some(Duration::ZERO)),
        Err(Error::TimedOut { .. })
    ));
}

#[test]
fn shared_slot_each_reader_gets_each_message_once_and_what_every_one_lost_goes_to_the_next() {
    let tmp = tempfile::tempdir().unwrap();
    let ns = Namespace::at(tmp.path()).unwrap();
    let name = slot("shared");
    let opts = ReaderOptions::default()
        .shared(true)
        .read_timeout(Some(LONG));
    let mut a = Reader::create_in(&ns, &name, &opts).unwrap();
    let mut b = Reader::create_in(&ns, &name, &opts).unwrap();
    let w = QueuedWriter::open_in(&ns, &name, QueuedOptions::default()).unwrap();
    let msg = |i: u32| i.to_le_bytes().to_vec();
    for i in 0..1000 {
        w.send(msg(i), Priority::Normal).unwrap();
    }
    w.flush(LONG).unwrap();
    // Both readers have every message; a reads 100 of them, b 50; both go.
    for i in 0..100 {
        assert_eq!(a.read_message().unwrap().data, msg(i));
    }
    for i in 0..50 {
        assert_eq!(b.read_message().unwrap().data, msg(i));
    }
    drop(a);
    // While b lives, a's unread ones are b's to read: nothing is resent.
    let mut c = Reader::create_in(&ns, &name, &opts).unwrap();
    for i in 50..60 {
        assert_eq!(b.read_message().unwrap().data, msg(i));
    }
    drop(b);
    // 60..100 were read by a: delivered. 100..1000 neither read: c gets
    // them, in order, once.
    for i in 100..1000 {
        assert_eq!(c.read_message().unwrap().data, msg(i), "message {i}");
    }
    w.wait_read(LONG).unwrap();
    assert!(matches!(
        c.read_message_timeout(Some(Duration::from_millis(50))),
        Err(Error::TimedOut { .. })
    ));
    assert_eq!(w.stats().resent, 900);
    assert!(w.close(LONG).is_empty());
}

/// Child: a queued writer sending numbered messages as fast as it can,
/// saying how many it has queued every 1000. Runs until killed.
fn queued_writer_child() {
    let ns = Namespace::at(std::env::var("DELIVERY_DIR").unwrap().as_ref()).unwrap();
    let w = QueuedWriter::open_in(&ns, &slot("writer"), QueuedOptions::default()).unwrap();
    for i in 0u64.. {
        w.send(i.to_le_bytes().to_vec(), Priority::Normal).unwrap();
        if i % 1000 == 999 {
            say(format!("QUEUED {}", i + 1));
        }
    }
}

#[test]
fn a_killed_writer_loses_only_its_own_unsent_messages_and_the_reader_reads_on() {
    let tmp = tempfile::tempdir().unwrap();
    let ns = Namespace::at(tmp.path()).unwrap();
    let name = slot("writer");
    let mut r = Reader::create_in(&ns, &name, &ReaderOptions::default()).unwrap();
    let mut child = spawn(
        "queued-writer",
        &[("DELIVERY_DIR", tmp.path().display().to_string())],
        None,
    );
    // Read while it writes, then kill it mid-stream.
    let mut next = 0u64;
    while next < 20_000 {
        let m = r.read_message().unwrap();
        assert_eq!(m.data, next.to_le_bytes(), "in order, once");
        next += 1;
    }
    child.kill();
    // What it had sent is still read, in order; what was in its memory is
    // gone with it (documented); the reader is not disturbed.
    loop {
        match r.read_message_timeout(Some(Duration::from_millis(100))) {
            Ok(m) => {
                assert_eq!(m.data, next.to_le_bytes(), "in order, once");
                next += 1;
            }
            Err(Error::TimedOut { .. }) => break,
            Err(e) => panic!("reader disturbed by the killed writer: {e}"),
        }
    }
    let other = Writer::open_in(&ns, &name).unwrap();
    other.write(b"after").unwrap();
    assert_eq!(r.read_message().unwrap().data, b"after");
    eprintln!("delivery: killed writer: {next} of its messages read");
}
