//! The queued writer against real readers: priorities, restarts (threads
//! and processes), overflow policies, flush and close, retargeting.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use mailslot::{
    Namespace, Overflow, Priority, QueueError, QueuedOptions, QueuedWriter, Reader, ReaderOptions,
    SlotName,
};

mod common;

use common::{LONG, name, ns};

fn reader(ns: &Namespace, n: &SlotName) -> Reader {
    let mut r = Reader::create_in(ns, n, &ReaderOptions::default()).unwrap();
    r.set_read_timeout(Some(LONG));
    r
}

fn read_n(r: &mut Reader, n: usize) -> Vec<Vec<u8>> {
    (0..n).map(|_| r.read_message().unwrap().data).collect()
}

/// `h17` / `n4`: priority letter and sequence number.
fn tag(p: Priority, i: usize) -> Vec<u8> {
    let c = if p == Priority::High { 'h' } else { 'n' };
    format!("{c}{i}").into_bytes()
}

fn untag(m: &[u8]) -> (Priority, usize) {
    let s = std::str::from_utf8(m).unwrap();
    let p = if s.starts_with('h') {
        Priority::High
    } else {
        Priority::Normal
    };
    (p, s[1..].parse().unwrap())
}

#[test]
fn high_priority_first_then_fifo_within_each_priority() {
    let (_tmp, ns) = ns();
    let n = name("prio");
    let w = QueuedWriter::open_in(&ns, &n, QueuedOptions::default()).unwrap();
    // The reader is absent while everything is queued: 5000 normal, then
    // 500 high interleaved with 1000 more normal.
    for i in 0..5000 {
        w.send(tag(Priority::Normal, i), Priority::Normal).unwrap();
    }
    for i in 0..1500 {
        if i % 3 == 0 {
            w.send(tag(Priority::High, i / 3), Priority::High).unwrap();
        } else {
            w.send(
                tag(Priority::Normal, 5000 + i - i / 3 - 1),
                Priority::Normal,
            )
            .unwrap();
        }
    }
    assert_eq!(w.stats().queued, 6500);
    assert_eq!(w.stats().sent, 0);
    let mut r = reader(&ns, &n);
    let got: Vec<_> = read_n(&mut r, 6500).iter().map(|m| untag(m)).collect();
    let want: Vec<_> = (0..500)
        .map(|i| (Priority::High, i))
        .chain((0..6000).map(|i| (Priority::Normal, i)))
        .collect();
    assert_eq!(got, want);
    w.wait_read(LONG).unwrap();
    let s = w.stats();
    assert_eq!(
        (s.sent, s.read, s.queued, s.dropped, s.reconnects),
        (6500, 6500, 0, 0, 0)
    );
    assert!(s.packets < s.sent / 10, "coalescing: {s:?}");
    assert!(w.close(LONG).is_empty());
}

/// Checks that each priority's sequence is exactly 0, 1, 2, ... .
fn assert_each_priority_in_order(all: &[Vec<u8>], highs: usize, normals: usize) {
    let mut next = [0usize; 2];
    for m in all {
        let (p, i) = untag(m);
        let k = usize::from(p == Priority::Normal);
        assert_eq!(i, next[k], "{p:?} message out of order, lost or duplicated");
        next[k] += 1;
    }
    assert_eq!(next, [highs, normals]);
}

/// Sends tagged messages, every `every`-th (from the first) at high
/// priority, the rest normal; counts each priority for
/// [`assert_each_priority_in_order`].
struct Mixed {
    every: usize,
    hi: usize,
    no: usize,
}

impl Mixed {
    fn every(every: usize) -> Mixed {
        Mixed {
            every,
            hi: 0,
            no: 0,
        }
    }

    fn send(&mut self, w: &QueuedWriter, count: usize) {
        for _ in 0..count {
            if (self.hi + self.no) % self.every == 0 {
                w.send(tag(Priority::High, self.hi), Priority::High)
                    .unwrap();
                self.hi += 1;
            } else {
                w.send(tag(Priority::Normal, self.no), Priority::Normal)
                    .unwrap();
                self.no += 1;
            }
        }
    }

    fn assert_in_order(&self, all: &[Vec<u8>]) {
        assert_each_priority_in_order(all, self.hi, self.no);
    }
}

#[test]
fn reader_restarted_ten_times_during_100k_messages_loses_and_duplicates_nothing() {
    let (_tmp, ns) = ns();
    let n = name("restart");
    let w = QueuedWriter::open_in(&ns, &n, QueuedOptions::default()).unwrap();
    const GENS: usize = 10;
    const PER_GEN: usize = 10_000;
    let mut mixed = Mixed::every(7);
    let mut all = Vec::with_capacity(GENS * PER_GEN);
    for _ in 0..GENS {
        // Half queued while no reader exists (the writer polls for it)...
        mixed.send(&w, PER_GEN / 2);
        let r = reader(&ns, &n);
        let t = std::thread::spawn(move || {
            let mut r = r;
            // Reads what was queued for it, then goes away: drained, so no
            // message dies in its socket buffer (the documented window).
            read_n(&mut r, PER_GEN)
        });
        // ...and half while it reads.
        mixed.send(&w, PER_GEN / 2);
        all.extend(t.join().unwrap());
    }
    assert_eq!(all.len(), GENS * PER_GEN);
    mixed.assert_in_order(&all);
    let s = w.stats();
    assert_eq!(
        (s.sent, s.queued, s.dropped),
        ((GENS * PER_GEN) as u64, 0, 0)
    );
    assert_eq!(s.reconnects, (GENS - 1) as u64);
    assert!(w.close(LONG).is_empty());
}

/// Environment of a child reader process (see `child_reader_process`).
const CHILD_DIR: &str = "MAILSLOT_QTEST_DIR";
const CHILD_NAME: &str = "MAILSLOT_QTEST_NAME";
const CHILD_COUNT: &str = "MAILSLOT_QTEST_COUNT";
const CHILD_OUT: &str = "MAILSLOT_QTEST_OUT";

/// Not a test on its own: the body of the reader process that
/// `reader_process_restarts_lose_nothing` starts (this test binary, run
/// again with the variables above). Without them it does nothing.
#[test]
fn child_reader_process() {
    let Some(dir) = std::env::var_os(CHILD_DIR) else {
        return;
    };
    let ns = Namespace::at(std::path::Path::new(&dir)).unwrap();
    let n = name(&std::env::var(CHILD_NAME).unwrap());
    let count: usize = std::env::var(CHILD_COUNT).unwrap().parse().unwrap();
    let mut r = reader(&ns, &n);
    let mut out = Vec::new();
    for m in read_n(&mut r, count) {
        out.extend_from_slice(&m);
        out.push(b'\n');
    }
    std::fs::write(std::env::var_os(CHILD_OUT).unwrap(), out).unwrap();
}

#[test]
fn reader_process_restarts_lose_nothing() {
    let (tmp, ns) = ns();
    let n = name("restart-process");
    let w = QueuedWriter::open_in(&ns, &n, QueuedOptions::default()).unwrap();
    let mut mixed = Mixed::every(5);
    let mut all = Vec::new();
    let mut pids = Vec::new();
    for g in 0..3 {
        let out = tmp.path().join(format!("out{g}"));
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "child_reader_process", "--test-threads=1"])
            .env(CHILD_DIR, ns.dir())
            .env(CHILD_NAME, n.name())
            .env(CHILD_COUNT, "2000")
            .env(CHILD_OUT, &out)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        pids.push(child.id());
        mixed.send(&w, 2000);
        assert!(child.wait().unwrap().success());
        let text = std::fs::read(&out).unwrap();
        all.extend(
            text.split(|&b| b == b'\n')
                .filter(|l| !l.is_empty())
                .map(<[u8]>::to_vec),
        );
    }
    assert_eq!(all.len(), 6000);
    mixed.assert_in_order(&all);
    assert_eq!(w.stats().reconnects, 2);
    assert!(w.close(LONG).is_empty());
}

#[test]
fn overflow_fail_refuses_and_keeps_what_was_queued() {
    let (_tmp, ns) = ns();
    let n = name("fail");
    let opts = QueuedOptions::default()
        .queue_limit(3, 10)
        .overflow(Overflow::Fail);
    let w = QueuedWriter::open_in(&ns, &n, opts).unwrap();
    w.send(&b"aaaa"[..], Priority::Normal).unwrap();
    w.send(&b"bbbb"[..], Priority::High).unwrap();
    // The byte limit: 8 + 4 > 10.
    let e = w.send(&b"cccc"[..], Priority::Normal).unwrap_err();
    assert!(
        matches!(
            e,
            QueueError::Full {
                messages: 2,
                bytes: 8,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains(r"\\.\mailslot\fail"), "{e}");
    w.send(&b""[..], Priority::Normal).unwrap();
    // The message limit.
    assert!(matches!(
        w.send(&b""[..], Priority::High),
        Err(QueueError::Full { messages: 3, .. })
    ));
    // Never fits at all.
    assert!(matches!(
        w.send(vec![0u8; 11], Priority::High),
        Err(QueueError::TooLarge {
            size: 11,
            max: 10,
            ..
        })
    ));
    let mut r = reader(&ns, &n);
    assert_eq!(read_n(&mut r, 3), [&b"bbbb"[..], b"aaaa", b""]);
    w.flush(LONG).unwrap();
    assert_eq!(w.stats().dropped, 0);
}

/// Messages a read has returned stop counting against the queue's limit
/// before a send is refused for it: a writer whose reader keeps up never
/// finds its queue full (before, they counted until the receipts were
/// next looked at, every 64 sends or a few milliseconds).
#[test]
fn messages_read_do_not_fill_the_queue() {
    let (_tmp, ns) = ns();
    let n = name("read\\room");
    let mut r = reader(&ns, &n);
    let size = 30_000;
    let opts = QueuedOptions::default()
        .queue_limit(1000, 3 * size)
        .overflow(Overflow::Fail);
    let w = QueuedWriter::open_in(&ns, &n, opts).unwrap();
    let mut buf = vec![0u8; size];
    for i in 0..200 {
        let msg = vec![(i % 251) as u8; size];
        w.send_slice(&msg, Priority::Normal)
            .unwrap_or_else(|e| panic!("send {i}: {e}"));
        assert_eq!(r.read(&mut buf).unwrap(), size);
        assert!(buf == msg, "message {i} intact");
    }
    assert!(w.close(LONG).is_empty());
}

#[test]
fn overflow_drop_oldest_normal_counts_drops_and_never_drops_high() {
    let (_tmp, ns) = ns();
    let n = name("drop");
    let opts = QueuedOptions::default()
        .queue_limit(3, 1 << 20)
        .overflow(Overflow::DropOldestNormal);
    let w = QueuedWriter::open_in(&ns, &n, opts).unwrap();
    w.send(tag(Priority::Normal, 0), Priority::Normal).unwrap();
    w.send(tag(Priority::Normal, 1), Priority::Normal).unwrap();
    w.send(tag(Priority::High, 0), Priority::High).unwrap();
    w.send(tag(Priority::Normal, 2), Priority::Normal).unwrap(); // drops n0
    w.send(tag(Priority::High, 1), Priority::High).unwrap(); // drops n1
    assert_eq!(w.stats().dropped, 2);
    w.send(tag(Priority::High, 2), Priority::High).unwrap(); // drops n2
    // Only high messages left: nothing may be dropped, so it fails.
    assert!(matches!(
        w.send(tag(Priority::Normal, 3), Priority::Normal),
        Err(QueueError::Full { messages: 3, .. })
    ));
    let s = w.stats();
    assert_eq!((s.dropped, s.queued), (3, 3));
    let mut r = reader(&ns, &n);
    assert_eq!(read_n(&mut r, 3), [b"h0", b"h1", b"h2"]);
    assert!(w.close(LONG).is_empty());
    assert_eq!(r.info().unwrap().count, 0);
}

#[test]
fn overflow_block_waits_until_a_reader_makes_room() {
    let (_tmp, ns) = ns();
    let n = name("block");
    let opts = QueuedOptions::default().queue_limit(2, 1 << 20);
    let w = QueuedWriter::open_in(&ns, &n, opts).unwrap();
    w.send(&b"1"[..], Priority::Normal).unwrap();
    w.send(&b"2"[..], Priority::Normal).unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::scope(|s| {
        s.spawn(|| {
            w.send(&b"3"[..], Priority::Normal).unwrap();
            tx.send(()).unwrap();
        });
        // Without a reader there is no room: the third send stays blocked.
        assert_eq!(
            rx.recv_timeout(Duration::from_millis(200)),
            Err(mpsc::RecvTimeoutError::Timeout)
        );
        // Sent to a reader but not read, the two are still held: still
        // no room.
        let mut r = reader(&ns, &n);
        w.flush(LONG).unwrap();
        assert_eq!(
            rx.recv_timeout(Duration::from_millis(200)),
            Err(mpsc::RecvTimeoutError::Timeout)
        );
        // A read makes room.
        assert_eq!(read_n(&mut r, 1), [b"1"]);
        rx.recv_timeout(LONG).unwrap();
        assert_eq!(read_n(&mut r, 2), [b"2", b"3"]);
    });
    assert_eq!(w.stats().dropped, 0);
}

#[test]
fn flush_times_out_without_a_reader_and_says_why() {
    let (_tmp, ns) = ns();
    let w = QueuedWriter::open_in(&ns, &name("nobody"), QueuedOptions::default()).unwrap();
    w.send(&b"abc"[..], Priority::Normal).unwrap();
    w.send(&b"de"[..], Priority::High).unwrap();
    let t = Instant::now();
    let e = w.flush(Duration::from_millis(50)).unwrap_err();
    assert!(t.elapsed() >= Duration::from_millis(50));
    match &e {
        QueueError::FlushTimedOut {
            messages,
            bytes,
            last_error,
            ..
        } => {
            assert_eq!((*messages, *bytes), (2, 5));
            if let Some(why) = last_error {
                assert!(why.contains("not found"), "{e}");
            }
        }
        _ => panic!("{e}"),
    }
    // Once the delivery thread has looked for the slot, the error says why.
    let give_up = Instant::now() + LONG;
    loop {
        match w.flush(Duration::from_millis(10)) {
            Err(QueueError::FlushTimedOut {
                last_error: Some(why),
                ..
            }) => {
                assert!(why.contains("not found"), "{why}");
                break;
            }
            Err(QueueError::FlushTimedOut { .. }) => assert!(Instant::now() < give_up),
            r => panic!("{r:?}"),
        }
    }
    let s = w.stats();
    assert!(!s.connected);
    assert_eq!((s.queued, s.queued_bytes, s.sent), (2, 5, 0));
    // Still queued, so close hands both back.
    let u = w.close(Duration::ZERO);
    assert_eq!((u.len(), u.bytes()), (2, 5));
}

#[test]
fn close_returns_what_it_could_not_deliver_by_the_deadline() {
    let (_tmp, ns) = ns();
    let w = QueuedWriter::open_in(&ns, &name("nobody"), QueuedOptions::default()).unwrap();
    w.send(&b"n1"[..], Priority::Normal).unwrap();
    w.send(&b"h1"[..], Priority::High).unwrap();
    w.send(&b"n2"[..], Priority::Normal).unwrap();
    let t = Instant::now();
    let u = w.close(Duration::from_millis(30));
    let took = t.elapsed();
    assert!(took >= Duration::from_millis(30), "{took:?}");
    assert!(took < Duration::from_secs(2), "{took:?}");
    let got: Vec<_> = u
        .pending
        .iter()
        .map(|m| (m.priority, m.data.as_slice()))
        .collect();
    assert_eq!(
        got,
        [
            (Priority::High, &b"h1"[..]),
            (Priority::Normal, b"n1"),
            (Priority::Normal, b"n2")
        ]
    );
    assert_eq!((u.len(), u.bytes()), (3, 6));
    assert!(u.rejected.is_empty());
}

#[test]
fn close_delivers_everything_when_a_reader_is_there() {
    let (_tmp, ns) = ns();
    let n = name("drain");
    let mut r = reader(&ns, &n);
    let w = QueuedWriter::open_in(&ns, &n, QueuedOptions::default()).unwrap();
    for i in 0..1000 {
        w.send(tag(Priority::Normal, i), Priority::Normal).unwrap();
    }
    // The reader reads meanwhile: 1000 messages need not fit in the
    // connection's buffers (in as many frames as the writer's thread made
    // of them, which depends on how it raced the sends above).
    let reading = std::thread::spawn(move || {
        let got = read_n(&mut r, 1000);
        (r, got)
    });
    let u = w.close(LONG);
    assert!(u.is_empty(), "{u:?}");
    let (mut r, got) = reading.join().unwrap();
    assert_each_priority_in_order(&got, 0, 1000);
    assert_eq!(r.info().unwrap().count, 0);
}

#[test]
fn messages_over_the_slot_maximum_are_rejected_and_returned() {
    let (_tmp, ns) = ns();
    let n = name("small");
    let w = QueuedWriter::open_in(&ns, &n, QueuedOptions::default()).unwrap();
    w.send(&b"fits"[..], Priority::Normal).unwrap();
    w.send(&b"far too long"[..], Priority::Normal).unwrap();
    w.send(&b"ok"[..], Priority::Normal).unwrap();
    let mut r = Reader::create_in(&ns, &n, &ReaderOptions::default().max_message_size(8)).unwrap();
    w.flush(LONG).unwrap();
    assert_eq!(read_n(&mut r, 2), [&b"fits"[..], b"ok"]);
    assert_eq!(w.stats().rejected, 1);
    // Now that the slot's limit is known, send refuses at once.
    assert!(matches!(
        w.send(&b"also too long"[..], Priority::High),
        Err(QueueError::TooLarge { max: 8, .. })
    ));
    let u = w.close(LONG);
    assert!(u.pending.is_empty());
    let rejected: Vec<_> = u
        .rejected
        .iter()
        .map(|m| (m.priority, m.data.as_slice()))
        .collect();
    assert_eq!(rejected, [(Priority::Normal, &b"far too long"[..])]);
}

/// Message `i` of the retarget test: its length and every byte depend on `i`.
fn patterned(i: usize) -> Vec<u8> {
    let len = 1 + (i * 37) % 700;
    (0..len).map(|j| (i * 31 + j * 7) as u8).collect()
}

/// The classic implementation garbled every second message after it
/// followed a reader re-created under a new name.
#[test]
fn retarget_to_a_recreated_reader_delivers_every_message_intact() {
    let (_tmp, ns) = ns();
    let (old, new) = (name(r"app\v1"), name(r"app\v2"));
    let w = QueuedWriter::open_in(&ns, &old, QueuedOptions::default()).unwrap();
    let mut a = reader(&ns, &old);
    for i in 0..10 {
        w.send(patterned(i), Priority::Normal).unwrap();
    }
    w.flush(LONG).unwrap();
    for i in 0..10 {
        assert_eq!(a.read_message().unwrap().data, patterned(i));
    }
    // The reader goes away and comes back under a new name.
    drop(a);
    w.send(&b"sent while no reader"[..], Priority::Normal)
        .unwrap();
    let mut b = reader(&ns, &new);
    w.retarget(&new);
    assert_eq!(w.target(), new);
    for i in 0..1000 {
        w.send(patterned(i), Priority::Normal).unwrap();
    }
    assert_eq!(b.read_message().unwrap().data, b"sent while no reader");
    for i in 0..1000 {
        let m = b.read_message().unwrap();
        assert_eq!(m.data, patterned(i), "message {i} garbled");
        assert_eq!(m.sender.pid, std::process::id());
    }
    w.flush(LONG).unwrap();
    assert_eq!(b.info().unwrap().count, 0);
    assert!(w.stats().reconnects >= 1);
    assert!(w.close(LONG).is_empty());
}

#[test]
fn retarget_takes_unread_messages_from_the_old_reader_to_the_new() {
    let (_tmp, ns) = ns();
    let (old, new) = (name("first"), name("second"));
    let mut a = reader(&ns, &old);
    let mut b = reader(&ns, &new);
    let w = QueuedWriter::open_in(&ns, &old, QueuedOptions::default()).unwrap();
    for i in 0..5 {
        w.send(patterned(i), Priority::Normal).unwrap();
    }
    w.flush(LONG).unwrap();
    // The old reader returns two; the other three go with the writer.
    for i in 0..2 {
        assert_eq!(a.read_message().unwrap().data, patterned(i));
    }
    w.retarget(&new);
    for i in 5..1000 {
        w.send(patterned(i), Priority::Normal).unwrap();
    }
    for i in 2..1000 {
        assert_eq!(b.read_message().unwrap().data, patterned(i), "message {i}");
    }
    w.wait_read(LONG).unwrap();
    assert_eq!(b.info().unwrap().count, 0);
    // The old reader still has them queued, but no read returns them.
    assert!(matches!(
        a.read_message_timeout(Some(Duration::ZERO)),
        Err(mailslot::Error::TimedOut { .. })
    ));
    let s = w.stats();
    assert_eq!((s.reconnects, s.resent, s.read), (1, 3, 1000));
}

#[test]
fn large_messages_travel_alone_and_intact() {
    let (_tmp, ns) = ns();
    let n = name("large");
    let mut r = reader(&ns, &n);
    let w = QueuedWriter::open_in(&ns, &n, QueuedOptions::default()).unwrap();
    let big: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
    w.send(&b"small"[..], Priority::Normal).unwrap();
    w.send(big.clone(), Priority::Normal).unwrap();
    w.send(&b""[..], Priority::Normal).unwrap();
    assert_eq!(r.read_message().unwrap().data, b"small");
    assert_eq!(r.read_message().unwrap().data, big);
    assert_eq!(r.read_message().unwrap().data, b"");
    assert!(w.close(LONG).is_empty());
}

#[test]
fn queued_writer_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<QueuedWriter>();
    check::<QueueError>();
}

#[test]
fn shared_slot_gets_every_message_once_at_each_reader() {
    let (_tmp, ns) = ns();
    let n = name("shared");
    let opts = ReaderOptions::default().shared(true);
    let mut a = Reader::create_in(&ns, &n, &opts).unwrap();
    let mut b = Reader::create_in(&ns, &n, &opts).unwrap();
    let w = QueuedWriter::open_in(&ns, &n, QueuedOptions::default()).unwrap();
    for i in 0..500 {
        w.send(tag(Priority::Normal, i), Priority::Normal).unwrap();
    }
    for r in [&mut a, &mut b] {
        r.set_read_timeout(Some(LONG));
        let got = read_n(r, 500);
        assert_each_priority_in_order(&got, 0, 500);
    }
    assert!(w.close(LONG).is_empty());
    assert_eq!((a.info().unwrap().count, b.info().unwrap().count), (0, 0));
}

#[test]
fn direct_sends_interleave_with_queued_ones_in_order() {
    let (_tmp, ns) = ns();
    let n = name("direct");
    let w = QueuedWriter::open_in(&ns, &n, QueuedOptions::default()).unwrap();
    let mut mixed = Mixed::every(5);
    // Queued while no reader exists.
    mixed.send(&w, 3000);
    assert_eq!(w.stats().queued, 3000);
    const TOTAL: usize = 3000 + 50 * 1000;
    let r = reader(&ns, &n);
    let t = std::thread::spawn(move || {
        let mut r = r;
        read_n(&mut r, TOTAL)
    });
    // More while the thread drains: queued behind the backlog, or sent
    // directly once the queue is empty and the thread idle; the bursts
    // fill the reader's buffer (direct sends then fall back to the queue)
    // and the pauses let the queue run empty.
    for round in 0..50 {
        mixed.send(&w, 1000);
        if round % 5 == 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let all = t.join().unwrap();
    assert_eq!(all.len(), TOTAL);
    mixed.assert_in_order(&all);
    w.wait_read(LONG).unwrap();

    // Idle and connected, the reader having read everything: a send is
    // delivered before it returns.
    let before = w.stats();
    assert_eq!((before.sent, before.queued), (TOTAL as u64, 0));
    assert!(before.packets <= before.sent);
    let mut r = reader(&ns, &n);
    w.retarget(&n); // Follow the new reader: drop the old connection.
    w.send(&b"q"[..], Priority::Normal).unwrap(); // Queued: no connection yet.
    w.flush(LONG).unwrap();
    assert_eq!(read_n(&mut r, 1), [b"q"]);
    w.wait_read(LONG).unwrap();
    w.send(&b"d"[..], Priority::High).unwrap();
    let s = w.stats();
    assert_eq!((s.sent, s.queued, s.unread), (TOTAL as u64 + 2, 1, 1));
    assert_eq!(s.packets, before.packets + 2);
    assert_eq!(read_n(&mut r, 1), [b"d"]);
    w.wait_read(LONG).unwrap();
    assert_eq!(w.stats().read, TOTAL as u64 + 2);
    assert!(w.close(LONG).is_empty());
}

/// A stream of small messages to a reader that reads along goes in
/// packets of several (cheaper for both sides than one each), in order,
/// and the last few, gathered when the sender stops, arrive without
/// another send or a flush.
#[test]
fn small_messages_are_gathered_into_packets_and_the_tail_is_not_stranded() {
    let (_tmp, ns) = ns();
    let n = name("gather");
    let mut r = reader(&ns, &n);
    let w = QueuedWriter::open_in(&ns, &n, QueuedOptions::default()).unwrap();
    // Connected, and the first message read.
    w.send(tag(Priority::Normal, 0), Priority::Normal).unwrap();
    assert_eq!(read_n(&mut r, 1), vec![tag(Priority::Normal, 0)]);
    const COUNT: usize = 20_000;
    let before = w.stats().packets;
    std::thread::scope(|s| {
        s.spawn(|| {
            for i in 1..=COUNT {
                w.send(tag(Priority::Normal, i), Priority::Normal).unwrap();
            }
        });
        // Reads along, every message in order; the last ones only come if
        // the delivery thread sends what the sender left gathered.
        r.set_read_timeout(Some(Duration::from_secs(5)));
        for i in 1..=COUNT {
            let m = r
                .read_message()
                .unwrap_or_else(|e| panic!("message {i}: {e}"));
            assert_eq!(untag(&m.data), (Priority::Normal, i));
        }
    });
    let packets = w.stats().packets - before;
    assert!(
        packets <= (COUNT / 2) as u64,
        "{COUNT} small messages took {packets} packets"
    );
    w.wait_read(LONG).unwrap();
}

/// Messages of 512 bytes and more that a caller sends one right after
/// another go into the ring unpublished, up to 16 at a time: the last ones
/// of a burst come only if the delivery thread publishes them once the
/// caller stops. A reader that reads along gets them all, in order, with
/// no flush.
#[test]
fn a_burst_of_larger_messages_is_published_to_its_end_without_a_flush() {
    let (_tmp, ns) = ns();
    let n = name("burst");
    let mut r = reader(&ns, &n);
    let w = QueuedWriter::open_in(&ns, &n, QueuedOptions::default()).unwrap();
    let big = |i: usize| {
        let mut m = tag(Priority::Normal, i);
        m.resize(1024, (i % 251) as u8);
        m
    };
    // Connected, the ring open, and the first message read.
    w.send(big(0), Priority::Normal).unwrap();
    assert_eq!(read_n(&mut r, 1), vec![big(0)]);
    r.set_read_timeout(Some(Duration::from_secs(5)));
    for burst in 0..20 {
        let first = 1 + burst * 37;
        // 37: never a multiple of the 16 published together.
        for i in first..first + 37 {
            w.send(big(i), Priority::Normal).unwrap();
        }
        for i in first..first + 37 {
            let m = r
                .read_message()
                .unwrap_or_else(|e| panic!("burst {burst}, message {i}: {e}"));
            assert_eq!(m.data, big(i), "burst {burst}");
        }
    }
    w.wait_read(LONG).unwrap();
    assert_eq!(w.stats().read, 1 + 20 * 37);
}

/// A large message waiting for one of the connection's reusable buffers
/// (every one held by a reader that does not read) must not hold up other
/// threads that need the queue (their sends, `stats`).
#[test]
fn a_large_send_waiting_for_room_does_not_hold_up_other_threads() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let (_tmp, ns) = ns();
    let n = name("stall");
    // Present, never reading: the writer's buffers stay out.
    let _r = reader(&ns, &n);
    let opts = QueuedOptions::default().queue_limit(100_000, 1 << 30);
    let w = QueuedWriter::open_in(&ns, &n, opts).unwrap();
    w.flush(LONG).unwrap();
    // 1 MiB: a buffer of the connection's is waited for 10 ms (see
    // `MemfdPool::patience`). Sent with pauses; the other thread only
    // looks at the queue (a send of its own could change how these go).
    let big = vec![7u8; 1 << 20];
    let done = AtomicBool::new(false);
    let (slow, worst, looks) = std::thread::scope(|s| {
        s.spawn(|| {
            for _ in 0..30 {
                w.send_slice(&big, Priority::Normal).unwrap();
                std::thread::sleep(Duration::from_millis(2));
            }
            done.store(true, Ordering::SeqCst);
        });
        let (mut slow, mut worst, mut looks) = (0, Duration::ZERO, 0);
        while !done.load(Ordering::SeqCst) {
            let t = Instant::now();
            drop(w.stats());
            let took = t.elapsed();
            slow += usize::from(took >= Duration::from_millis(5));
            worst = worst.max(took);
            looks += 1;
            std::thread::sleep(Duration::from_micros(200));
        }
        (slow, worst, looks)
    });
    // Held for the wait, the lock kept the other thread out 10 ms or more
    // once per large send after the eighth; a busy machine may still delay
    // one or two looks.
    assert!(
        slow <= 2,
        "{slow} of {looks} looks at the queue took 5 ms or more (worst {worst:?}) while large sends waited for room"
    );
    assert!(looks > 30, "the other thread ran alongside ({looks} looks)");
    let st = w.stats();
    assert_eq!((st.queued, st.sent), (30, 30), "every large one was sent");
}

/// Large messages sent while another thread sends small ones, to a reader
/// that falls behind at first (so large sends wait for buffers, lent out of
/// the queue's lock): every message arrives once, intact, and each
/// thread's in the order it sent them.
#[test]
fn large_and_small_senders_side_by_side_lose_and_reorder_nothing() {
    let (_tmp, ns) = ns();
    let n = name("side");
    let mut r = reader(&ns, &n);
    let w = QueuedWriter::open_in(&ns, &n, QueuedOptions::default()).unwrap();
    w.flush(LONG).unwrap();
    let large = |i: usize| -> Vec<u8> {
        let len = (64 << 10) + 1 + (i * 37_813) % (2 << 20);
        let mut v = vec![(i % 251) as u8; len];
        v[..8].copy_from_slice(&(i as u64).to_le_bytes());
        v
    };
    let (nl, ns_) = (150, 3000);
    std::thread::scope(|s| {
        s.spawn(|| {
            for i in 0..nl {
                w.send(large(i), Priority::Normal).unwrap();
            }
        });
        s.spawn(|| {
            for i in 0..ns_ {
                w.send(format!("s{i}").into_bytes(), Priority::Normal)
                    .unwrap();
            }
        });
        // Behind at first: the writer's reusable buffers run out.
        std::thread::sleep(Duration::from_millis(50));
        let (mut next_l, mut next_s) = (0, 0);
        for _ in 0..nl + ns_ {
            let m = r.read_message().unwrap().data;
            if m.len() > 64 << 10 {
                let i = u64::from_le_bytes(m[..8].try_into().unwrap()) as usize;
                assert_eq!(i, next_l, "large messages in order");
                assert!(m == large(i), "large message {i} intact");
                next_l += 1;
            } else {
                assert_eq!(
                    m,
                    format!("s{next_s}").into_bytes(),
                    "small messages in order"
                );
                next_s += 1;
            }
        }
        assert_eq!((next_l, next_s), (nl, ns_));
    });
    assert!(w.close(LONG).is_empty());
    assert!(matches!(
        r.read_message_timeout(Some(Duration::ZERO)),
        Err(mailslot::Error::TimedOut { .. })
    ));
}

/// Retargeted while a large send waits for a buffer on the old reader's
/// connection (lent out of the queue's lock): the messages the old reader
/// never read, that one included, all reach the new reader, once and in
/// order.
#[test]
fn retarget_while_a_large_send_waits_for_room_moves_everything() {
    let (_tmp, ns) = ns();
    let (old, new) = (name("stuck"), name("fresh"));
    // Present, never reading: the writer's buffers stay out.
    let a = reader(&ns, &old);
    let mut b = reader(&ns, &new);
    let w = QueuedWriter::open_in(&ns, &old, QueuedOptions::default()).unwrap();
    // Connected: the old reader holds this one unread.
    w.send(&b"hello"[..], Priority::Normal).unwrap();
    w.flush(LONG).unwrap();
    let big = |i: usize| vec![i as u8; (1 << 20) + i];
    std::thread::scope(|s| {
        s.spawn(|| {
            for i in 0..12 {
                w.send(big(i), Priority::Normal).unwrap();
            }
        });
        // "hello" and eight fill the buffers; the ninth waits 10 ms for one.
        let until = Instant::now() + LONG;
        while w.stats().sent < 9 && Instant::now() < until {
            std::thread::sleep(Duration::from_micros(100));
        }
        std::thread::sleep(Duration::from_millis(2));
        w.retarget(&new);
    });
    assert_eq!(b.read_message().unwrap().data, b"hello");
    for i in 0..12 {
        assert!(b.read_message().unwrap().data == big(i), "message {i}");
    }
    w.wait_read(LONG).unwrap();
    assert!(matches!(
        b.read_message_timeout(Some(Duration::ZERO)),
        Err(mailslot::Error::TimedOut { .. })
    ));
    drop(a);
    assert!(w.close(LONG).is_empty());
}
