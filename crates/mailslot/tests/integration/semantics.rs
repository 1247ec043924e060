//! The local behaviours of `docs/windows-semantics.md` (B1-B40) that apply
//! to our API, one test each, named after the item it guards.

use std::time::{Duration, Instant};

use mailslot::name::NameError;
use mailslot::{Error, Reader, ReaderOptions, SlotName, Writer};

use crate::util::{Child, PATIENCE, Spawn, TestResult, namespace, slot};

fn opts() -> ReaderOptions {
    ReaderOptions::default()
}

fn now_opts() -> ReaderOptions {
    ReaderOptions::default().read_timeout(Some(Duration::ZERO))
}

#[test]
fn b01_reader_name_has_the_mailslot_path_form() -> TestResult {
    let (_tmp, ns) = namespace();
    let name = SlotName::parse(r"\\.\mailslot\foo")?;
    assert_eq!(name.path(), r"\\.\mailslot\foo");
    // `/` works as in Win32 paths; it is the same slot.
    assert_eq!(SlotName::parse("//./mailslot/foo")?, name);
    let mut reader = Reader::create_in(&ns, &name, &now_opts())?;
    Writer::open_in(&ns, &slot("//./mailslot/foo"))?.write(b"x")?;
    assert_eq!(reader.read_message()?.data, b"x");
    // Anything but `\\.\mailslot\NAME` is refused.
    for bad in [
        r"\\.\pipe\foo",
        r"\\.\mailslotx\foo",
        r"\.\mailslot\foo",
        r"\\.\mailslot\",
        r"\\.\mailslot",
    ] {
        assert!(SlotName::parse(bad).is_err(), "{bad} was accepted");
    }
    Ok(())
}

#[test]
fn b02_levels_are_one_flat_key_without_parents() -> TestResult {
    let (tmp, ns) = namespace();
    let deep = slot(r"\\.\mailslot\abc\def\ghi");
    let mut reader = Reader::create_in(&ns, &deep, &now_opts())?;
    // No parent level exists or is needed, in the slot space or on disk.
    for parent in [r"\\.\mailslot\abc", r"\\.\mailslot\abc\def"] {
        let e = Writer::open_in(&ns, &slot(parent)).unwrap_err();
        assert!(matches!(e, Error::NotFound { .. }), "{parent}: {e}");
    }
    let dirs = std::fs::read_dir(tmp.path())?
        .filter(|e| e.as_ref().is_ok_and(|e| e.path().is_dir()))
        .count();
    assert_eq!(dirs, 0, "a level became a directory");
    // A parent level can be a slot of its own.
    let mut parent = Reader::create_in(&ns, &slot(r"\\.\mailslot\abc"), &now_opts())?;
    Writer::open_in(&ns, &deep)?.write(b"deep")?;
    assert_eq!(reader.read_message()?.data, b"deep");
    assert!(matches!(
        parent.try_read(&mut [0; 8]),
        Err(Error::TimedOut { .. })
    ));
    let names: Vec<String> = ns.list()?.into_iter().map(|s| s.name).collect();
    assert_eq!(names, [r"\\.\mailslot\abc", r"\\.\mailslot\abc\def\ghi"]);
    Ok(())
}

#[test]
fn b03_names_are_case_insensitive() -> TestResult {
    let (_tmp, ns) = namespace();
    let mut reader = Reader::create_in(&ns, &slot(r"\\.\mailslot\Demo\Jobs"), &now_opts())?;
    Writer::open_in(&ns, &slot(r"\\.\MAILSLOT\dEMO\jobs"))?.write(b"1")?;
    Writer::open_in(&ns, &SlotName::from_bare("DEMO/JOBS")?)?.write(b"2")?;
    assert_eq!(reader.read_message()?.data, b"1");
    assert_eq!(reader.read_message()?.data, b"2");
    let e = Reader::create_in(&ns, &slot(r"\\.\mailslot\DEMO\JOBS"), &opts()).unwrap_err();
    assert!(matches!(e, Error::AlreadyExists { .. }), "{e}");
    // The slot keeps the spelling its reader gave.
    assert_eq!(ns.list()?[0].name, r"\\.\mailslot\Demo\Jobs");
    Ok(())
}

#[test]
fn b04_blah_is_not_a_mailslot_name() {
    let e = SlotName::parse("blah").unwrap_err();
    assert!(matches!(e, NameError::NotAMailslotPath { .. }), "{e}");
    let e: Error = e.into();
    assert!(matches!(e, Error::InvalidName(_)));
    assert!(e.to_string().contains("blah"), "{e}");
}

#[test]
fn b05_empty_name_is_refused() {
    assert_eq!(SlotName::parse("").unwrap_err(), NameError::Empty);
    assert_eq!(SlotName::from_bare("").unwrap_err(), NameError::Empty);
    assert_eq!(SlotName::parse_or_bare("").unwrap_err(), NameError::Empty);
}

#[test]
fn b09_open_missing_slot_is_not_found() {
    let (_tmp, ns) = namespace();
    let e = Writer::open_in(&ns, &slot(r"\\.\mailslot\nobody\home")).unwrap_err();
    match e {
        Error::NotFound { ref name } => assert_eq!(name, r"\\.\mailslot\nobody\home"),
        other => panic!("expected NotFound, got {other}"),
    }
}

#[test]
fn b10_second_create_fails_with_already_exists() -> TestResult {
    let (_tmp, ns) = namespace();
    let name = slot(r"\\.\mailslot\once");
    let _reader = Reader::create_in(&ns, &name, &opts())?;
    match Reader::create_in(&ns, &name, &opts()) {
        Err(Error::AlreadyExists { name, pid }) => {
            assert_eq!(name, r"\\.\mailslot\once");
            assert_eq!(pid, std::process::id());
        }
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    Ok(())
}

#[test]
fn b11_name_stays_taken_while_a_writer_is_open() -> TestResult {
    let (_tmp, ns) = namespace();
    let name = slot(r"\\.\mailslot\busy");
    let reader = Reader::create_in(&ns, &name, &opts())?;
    let writer = Writer::open_in(&ns, &name)?;
    let e = Reader::create_in(&ns, &name, &opts()).unwrap_err();
    assert!(matches!(e, Error::AlreadyExists { .. }), "{e}");
    drop(reader);
    // The open writer does not keep the name (B13: the slot dies with its reader).
    let _again = Reader::create_in(&ns, &name, &opts())?;
    assert!(matches!(
        writer.write(b"x"),
        Err(Error::ReaderClosed { .. })
    ));
    Ok(())
}

#[test]
fn b12_name_can_be_created_again_at_once_after_drop() -> TestResult {
    let (tmp, ns) = namespace();
    let name = slot(r"\\.\mailslot\again");
    for round in 0..50u32 {
        let mut reader = Reader::create_in(&ns, &name, &now_opts())?;
        let w = Writer::open_in(&ns, &name)?;
        w.write(&round.to_le_bytes())?;
        drop(w);
        let m = reader.read_message()?;
        assert_eq!(
            m.data,
            round.to_le_bytes(),
            "a message of an earlier round leaked"
        );
        drop(reader);
    }
    // Nothing is left behind.
    assert_eq!(std::fs::read_dir(tmp.path())?.count(), 0);
    assert!(ns.list()?.is_empty());
    Ok(())
}

/// B13 for a reader that is dropped (closed) with messages still queued:
/// they are gone, its writers are not carried over to the next reader of
/// the name, and the name is free at once. `drain_first` makes the reader
/// read one message first, so the writer's later messages go through the
/// ring the reader took, not the socket.
fn b13_scenario(drain_first: bool) -> TestResult {
    let (tmp, ns) = namespace();
    let name = slot(r"\\.\mailslot\b13");
    let mut reader = Reader::create_in(&ns, &name, &now_opts())?;
    let w = Writer::open_in(&ns, &name)?;
    if drain_first {
        w.write(b"taken")?;
        assert_eq!(reader.read_message()?.data, b"taken");
    }
    w.write(b"unread")?;
    w.write(&vec![7u8; 200_000])?;
    w.write(b"")?;
    assert_eq!(reader.info()?.count, 3);
    drop(reader);
    match w.write(b"after") {
        Err(Error::ReaderClosed { name }) => assert_eq!(name, r"\\.\mailslot\b13"),
        other => panic!("expected ReaderClosed, got {other:?}"),
    }
    let e = Writer::open_in(&ns, &name).unwrap_err();
    assert!(matches!(e, Error::NotFound { .. }), "{e}");
    assert!(ns.list()?.is_empty(), "the closed reader is still listed");
    assert_eq!(std::fs::read_dir(tmp.path())?.count(), 0);

    let mut again = Reader::create_in(&ns, &name, &now_opts())?;
    assert_eq!(again.info()?.count, 0, "the old reader's messages survived");
    let e = w.write(b"old writer").unwrap_err();
    assert!(matches!(e, Error::ReaderClosed { .. }), "{e}");
    Writer::open_in(&ns, &name)?.write(b"new")?;
    assert_eq!(again.read_message()?.data, b"new");
    let e = again.try_read(&mut [0; 16]).unwrap_err();
    assert!(matches!(e, Error::TimedOut { .. }), "{e}");
    Ok(())
}

#[test]
fn b13_unread_messages_die_with_the_reader() -> TestResult {
    b13_scenario(false)
}

#[test]
fn b13_unread_ring_messages_die_with_the_reader() -> TestResult {
    b13_scenario(true)
}

#[test]
fn b27_each_write_is_one_message_of_exact_length() -> TestResult {
    let (_tmp, ns) = namespace();
    let name = slot(r"\\.\mailslot\b27");
    let mut reader = Reader::create_in(&ns, &name, &now_opts())?;
    let w = Writer::open_in(&ns, &name)?;
    w.write(b"12345678")?;
    let mut buf = [0u8; 16];
    assert_eq!(reader.read(&mut buf)?, 8);
    assert_eq!(&buf[..8], b"12345678");
    let sizes = [1usize, 7, 100, 4096, 65_536, 65_537];
    for (i, &n) in sizes.iter().enumerate() {
        w.write(&vec![i as u8; n])?;
    }
    assert_eq!(reader.info()?.count, sizes.len());
    let mut big = vec![0u8; 1 << 20];
    for (i, &n) in sizes.iter().enumerate() {
        assert_eq!(reader.read(&mut big)?, n);
        assert!(big[..n].iter().all(|&b| b == i as u8));
    }
    assert!(matches!(reader.read(&mut big), Err(Error::TimedOut { .. })));
    Ok(())
}

fn b28_expect(reader: &mut Reader, pids: [u32; 2]) -> TestResult {
    let mut buf = [0u8; 16];
    let (n, s) = reader.read_with_sender(&mut buf)?;
    assert_eq!((&buf[..n], s.pid), (&b"a"[..], pids[0]));
    let (n, s) = reader.read_with_sender(&mut buf)?;
    assert_eq!((&buf[..n], s.pid), (&b"bc"[..], pids[1]));
    let (n, s) = reader.read_with_sender(&mut buf)?;
    assert_eq!((n, s.pid), (0, pids[0]));
    let e = reader.read(&mut buf).unwrap_err();
    assert!(matches!(e, Error::TimedOut { .. }), "{e}");
    Ok(())
}

#[test]
fn b28_fifo_across_writers() -> TestResult {
    let (_tmp, ns) = namespace();
    let name = slot(r"\\.\mailslot\b28");
    let mut reader = Reader::create_in(&ns, &name, &now_opts())?;
    let w1 = Writer::open_in(&ns, &name)?;
    let w2 = Writer::open_in(&ns, &name)?;
    w1.write(b"a")?;
    w2.write(b"bc")?;
    w1.write(b"")?;
    assert_eq!(reader.info()?.count, 3);
    let me = std::process::id();
    b28_expect(&mut reader, [me, me])
}

#[test]
fn b28_fifo_across_writer_processes() -> TestResult {
    let (tmp, ns) = namespace();
    let name = slot(r"\\.\mailslot\b28\procs");
    let mut reader = Reader::create_in(&ns, &name, &now_opts())?;
    let spawn = || Spawn::new("writer", tmp.path()).slot(r"b28\procs").start();
    let (mut c1, mut c2): (Child, Child) = (spawn(), spawn());
    for c in [&mut c1, &mut c2] {
        assert!(c.recv().starts_with("id "));
        assert_eq!(c.ask("open"), "ok");
    }
    // Each write is sent only after the previous one returned (the answer
    // comes back through the pipe after `write` returned).
    assert_eq!(c1.ask("write a"), "ok");
    assert_eq!(c2.ask("write bc"), "ok");
    assert_eq!(c1.ask("write0"), "ok");
    let pids = [c1.pid(), c2.pid()];
    c1.finish_within(PATIENCE);
    c2.finish_within(PATIENCE);
    b28_expect(&mut reader, pids)
}

/// A reader that has read everything watches its writers' rings; a ring
/// message found then is returned at once unless the kernel holds an
/// earlier one: here each round's new writer connects and writes (its
/// first message goes through its socket, from the listener's backlog)
/// before the long-lived ring writer writes. The reader finds the ring
/// message first, and must still return the new writer's first. With the
/// io_uring watch the reader learns of the socket without a system call;
/// `MAILSLOT_NO_IO_URING` runs the same through `epoll_wait`.
#[test]
fn b28_a_new_writers_first_message_comes_before_a_later_ring_message() -> TestResult {
    b28_new_writer_before_ring_message(Read::Message)
}

/// The same through `read` into a buffer, which takes a message straight
/// from the ring while the reader has one writer (its direct path): the
/// new writer, not yet accepted, must still send it the merge's way.
#[test]
fn b28_a_new_writers_first_message_comes_first_through_direct_reads() -> TestResult {
    b28_new_writer_before_ring_message(Read::Buffer)
}

/// How [`b28_new_writer_before_ring_message`]'s reader reads.
#[derive(Clone, Copy)]
enum Read {
    Message,
    Buffer,
}

fn b28_new_writer_before_ring_message(how: Read) -> TestResult {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    const ROUNDS: usize = 3000;
    const SYNC: usize = 3;
    const PER_ROUND: usize = SYNC + 2;
    let (_tmp, ns) = namespace();
    let name = slot(r"\\.\mailslot\b28\watch");
    let mut reader = Reader::create_in(
        &ns,
        &name,
        &opts().read_timeout(Some(Duration::from_secs(10))),
    )?;
    if std::env::var_os("MAILSLOT_NO_IO_URING").is_none() && io_uring_allowed() {
        assert!(
            crate::util::fd_targets()
                .iter()
                .any(|t| t.contains("io_uring")),
            "the reader polls without its io_uring watch"
        );
    }
    let ring = Writer::open_in(&ns, &name)?;
    // The long-lived writer's ring is in use once a message went through it.
    for _ in 0..3 {
        ring.write(b"warm")?;
        assert_eq!(reader.read_message()?.data, b"warm");
    }
    let read = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&read);
    let t = std::thread::spawn(move || -> Result<Vec<Vec<u8>>, Error> {
        let mut got = Vec::new();
        let mut buf = [0u8; 64];
        while got.len() < ROUNDS * PER_ROUND {
            got.push(match how {
                Read::Message => reader.read_message()?.data,
                Read::Buffer => {
                    let n = reader.read(&mut buf)?;
                    buf[..n].to_vec()
                }
            });
            seen.store(got.len(), Ordering::Release);
        }
        Ok(got)
    });
    // Waits (spinning: the reader watches its rings for only 20 µs) until
    // the reader has returned `n` messages.
    let wait_read = |n: usize| {
        let deadline = Instant::now() + PATIENCE;
        while read.load(Ordering::Acquire) < n {
            assert!(Instant::now() < deadline, "the reader stalled at {n}");
            std::hint::spin_loop();
        }
    };
    let mut n = 0;
    for i in 0..ROUNDS {
        // Ring messages alone first, until a pass of the reader finds its
        // sockets and listener quiet (the last writer's goodbye is seen).
        for _ in 0..SYNC {
            ring.write(b"sync")?;
            n += 1;
            wait_read(n);
        }
        let fresh = Writer::open_in(&ns, &name)?;
        fresh.write(format!("new {i}").as_bytes())?;
        ring.write(format!("ring {i}").as_bytes())?;
        n += 2;
        wait_read(n);
        drop(fresh);
    }
    let got = t.join().expect("reader thread")?;
    for (i, round) in got.chunks(PER_ROUND).enumerate() {
        let tail: Vec<String> = round[SYNC..]
            .iter()
            .map(|m| String::from_utf8_lossy(m).into_owned())
            .collect();
        assert_eq!(
            tail,
            [format!("new {i}"), format!("ring {i}")],
            "round {i}: the later ring message came first"
        );
    }
    Ok(())
}

/// Whether this system lets processes create an io_uring.
fn io_uring_allowed() -> bool {
    std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled").map_or(true, |v| v.trim() == "0")
}

#[test]
fn b29_zero_length_message_is_real() -> TestResult {
    let (_tmp, ns) = namespace();
    let name = slot(r"\\.\mailslot\b29");
    let mut reader = Reader::create_in(&ns, &name, &now_opts())?;
    assert_eq!(reader.info()?.next_size, None);
    Writer::open_in(&ns, &name)?.write(b"")?;
    let st = reader.info()?;
    assert_eq!((st.count, st.next_size), (1, Some(0)));
    assert_eq!(reader.read(&mut [])?, 0);
    let st = reader.info()?;
    assert_eq!((st.count, st.next_size), (0, None));
    Ok(())
}

#[test]
fn b30_small_buffer_fails_and_keeps_the_message() -> TestResult {
    let (_tmp, ns) = namespace();
    let name = slot(r"\\.\mailslot\b30");
    let mut reader = Reader::create_in(&ns, &name, &now_opts())?;
    let w = Writer::open_in(&ns, &name)?;
    w.write(b"xy")?;
    // The same for a large (memfd) message.
    let large: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
    w.write(&large)?;
    let mut small = [0u8; 1];
    match reader.read(&mut small) {
        Err(Error::BufferTooSmall { needed, got, .. }) => assert_eq!((needed, got), (2, 1)),
        other => panic!("expected BufferTooSmall, got {other:?}"),
    }
    assert_eq!(small, [0], "something was copied");
    let st = reader.info()?;
    assert_eq!((st.count, st.next_size), (2, Some(2)));
    let mut buf = [0u8; 2];
    assert_eq!(reader.read(&mut buf)?, 2);
    assert_eq!(&buf, b"xy");
    let mut almost = vec![0u8; large.len() - 1];
    match reader.read(&mut almost) {
        Err(Error::BufferTooSmall { needed, .. }) => assert_eq!(needed, large.len()),
        other => panic!("expected BufferTooSmall, got {other:?}"),
    }
    let st = reader.info()?;
    assert_eq!((st.count, st.next_size), (1, Some(large.len())));
    let mut buf = vec![0u8; large.len() + 10];
    assert_eq!(reader.read(&mut buf)?, large.len());
    assert_eq!(buf[..large.len()], large[..]);
    Ok(())
}

#[test]
fn b31_zero_length_read_on_empty_slot_times_out() -> TestResult {
    let (_tmp, ns) = namespace();
    let mut reader = Reader::create_in(&ns, &slot(r"\\.\mailslot\b31"), &now_opts())?;
    let e = reader.read(&mut []).unwrap_err();
    assert!(matches!(e, Error::TimedOut { .. }), "{e}");
    assert_eq!(reader.info()?.count, 0);
    Ok(())
}

#[test]
fn b32_max_message_size_is_reported_and_enforced() -> TestResult {
    let (_tmp, ns) = namespace();
    let any = slot(r"\\.\mailslot\b32\any");
    let mut r0 = Reader::create_in(&ns, &any, &now_opts())?;
    assert_eq!(r0.info()?.max_message_size, 0);
    assert_eq!(Writer::open_in(&ns, &any)?.max_message_size(), 0);
    let huge = slot(r"\\.\mailslot\b32\huge");
    let mut rmax = Reader::create_in(&ns, &huge, &now_opts().max_message_size(u32::MAX))?;
    assert_eq!(rmax.info()?.max_message_size, u32::MAX);
    assert_eq!(Writer::open_in(&ns, &huge)?.max_message_size(), u32::MAX);
    let listed: Vec<u64> = ns.list()?.iter().map(|s| s.max_message_size).collect();
    assert_eq!(listed, [0, u64::from(u32::MAX)]);

    let small = slot(r"\\.\mailslot\b32\small");
    let mut r = Reader::create_in(&ns, &small, &now_opts().max_message_size(10))?;
    let w = Writer::open_in(&ns, &small)?;
    w.write(&[1; 10])?;
    match w.write(&[2; 11]) {
        Err(
            e @ Error::MessageTooLarge {
                size: 11, max: 10, ..
            },
        ) => {
            let text = e.to_string();
            assert!(text.contains("11") && text.contains("10"), "{text}");
        }
        other => panic!("expected MessageTooLarge, got {other:?}"),
    }
    assert_eq!(r.info()?.count, 1, "the refused message was queued");
    assert_eq!(r.read_message()?.data, [1; 10]);
    assert!(matches!(
        r.try_read(&mut [0; 64]),
        Err(Error::TimedOut { .. })
    ));
    Ok(())
}

#[test]
fn b35_each_read_removes_one_message() -> TestResult {
    let (_tmp, ns) = namespace();
    let name = slot(r"\\.\mailslot\b35");
    let mut reader = Reader::create_in(&ns, &name, &now_opts())?;
    let w = Writer::open_in(&ns, &name)?;
    for i in 0..3u8 {
        w.write(&[i; 3])?;
    }
    for i in 0..3u8 {
        assert_eq!(reader.info()?.count, 3 - usize::from(i));
        assert_eq!(reader.read_message()?.data, [i; 3]);
    }
    assert_eq!(reader.info()?.count, 0);
    let e = reader.read(&mut [0; 8]).unwrap_err();
    assert!(matches!(e, Error::TimedOut { .. }), "{e}");
    Ok(())
}

#[test]
fn b36_timeout_zero_fails_at_once() -> TestResult {
    let (_tmp, ns) = namespace();
    let mut reader = Reader::create_in(&ns, &slot(r"\\.\mailslot\b36"), &now_opts())?;
    let t = Instant::now();
    let e = reader.read(&mut [0; 8]).unwrap_err();
    let took = t.elapsed();
    match e {
        Error::TimedOut { timeout, op, .. } => {
            assert_eq!(timeout, Duration::ZERO);
            assert_eq!(op, "reading from");
        }
        other => panic!("expected TimedOut, got {other}"),
    }
    assert!(took < Duration::from_millis(100), "took {took:?}");
    Ok(())
}

#[test]
fn b37_timeout_waits_at_least_n_ms() -> TestResult {
    let (_tmp, ns) = namespace();
    let ms200 = Duration::from_millis(200);
    let opts = ReaderOptions::default().read_timeout(Some(ms200));
    let mut reader = Reader::create_in(&ns, &slot(r"\\.\mailslot\b37"), &opts)?;
    let t = Instant::now();
    let e = reader.read(&mut [0; 8]).unwrap_err();
    let took = t.elapsed();
    assert!(
        matches!(e, Error::TimedOut { timeout, .. } if timeout == ms200),
        "{e}"
    );
    assert!(took >= ms200, "returned after {took:?}");
    assert!(took < Duration::from_secs(5), "returned after {took:?}");
    Ok(())
}

#[test]
fn b38_forever_blocks_until_a_write_from_another_thread() -> TestResult {
    let (_tmp, ns) = namespace();
    let name = slot(r"\\.\mailslot\b38");
    let mut reader = Reader::create_in(&ns, &name, &opts())?;
    assert_eq!(reader.read_timeout(), None);
    let w = Writer::open_in(&ns, &name)?;
    let delay = Duration::from_millis(300);
    let t = Instant::now();
    let writer = std::thread::spawn(move || {
        // The scenario, not a race fix: the read must wait this long.
        std::thread::sleep(delay);
        w.write(b"late").unwrap();
    });
    let m = reader.read_message()?;
    assert_eq!(m.data, b"late");
    assert!(t.elapsed() >= delay);
    writer.join().unwrap();
    Ok(())
}

#[test]
fn b38_forever_blocks_until_a_write_from_another_process() -> TestResult {
    let (tmp, ns) = namespace();
    let name = slot(r"\\.\mailslot\b38\proc");
    let mut reader = Reader::create_in(&ns, &name, &opts())?;
    let mut child = Spawn::new("writer", tmp.path()).slot(r"b38\proc").start();
    assert!(child.recv().starts_with("id "));
    assert_eq!(child.ask("open"), "ok");
    let pid = child.pid();
    let ask = std::thread::spawn(move || {
        assert_eq!(child.ask("write hello"), "ok");
        child.finish_within(PATIENCE);
    });
    let m = reader.read_message()?;
    assert_eq!((m.data.as_slice(), m.sender.pid), (&b"hello"[..], pid));
    ask.join().unwrap();
    Ok(())
}

#[test]
fn b39_info_reports_the_read_timeout() -> TestResult {
    let (_tmp, ns) = namespace();
    let cases = [
        None,
        Some(Duration::ZERO),
        Some(Duration::from_millis(1500)),
    ];
    for (i, t) in cases.into_iter().enumerate() {
        let name = slot(&format!(r"\\.\mailslot\b39\{i}"));
        let mut r = Reader::create_in(&ns, &name, &ReaderOptions::default().read_timeout(t))?;
        assert_eq!(r.info()?.read_timeout, t);
        assert_eq!(r.read_timeout(), t);
    }
    Ok(())
}

#[test]
fn b40_set_read_timeout_changes_later_reads() -> TestResult {
    let (_tmp, ns) = namespace();
    let mut r = Reader::create_in(&ns, &slot(r"\\.\mailslot\b40"), &opts())?;
    assert_eq!(r.info()?.read_timeout, None);
    r.set_read_timeout(Some(Duration::ZERO));
    assert_eq!(r.info()?.read_timeout, Some(Duration::ZERO));
    let t = Instant::now();
    assert!(matches!(r.read(&mut [0; 4]), Err(Error::TimedOut { .. })));
    assert!(t.elapsed() < Duration::from_millis(100));
    let d = Duration::from_millis(150);
    r.set_read_timeout(Some(d));
    assert_eq!(r.info()?.read_timeout, Some(d));
    let t = Instant::now();
    let e = r.read(&mut [0; 4]).unwrap_err();
    assert!(
        matches!(e, Error::TimedOut { timeout, .. } if timeout == d),
        "{e}"
    );
    assert!(t.elapsed() >= d);
    r.set_read_timeout(None);
    assert_eq!(r.info()?.read_timeout, None);
    Ok(())
}

#[test]
fn waker_interrupts_a_forever_read_within_100ms() -> TestResult {
    let (_tmp, ns) = namespace();
    let name = slot(r"\\.\mailslot\waker");
    let mut reader = Reader::create_in(&ns, &name, &opts())?;
    let waker = reader.waker();
    let (tx, rx) = std::sync::mpsc::channel();
    let t = std::thread::spawn(move || {
        let started = Instant::now();
        let r = reader.read(&mut [0; 8]);
        tx.send(Instant::now()).unwrap();
        (r, started, reader)
    });
    // Let the read get well into its wait; then measure the wake-up latency.
    std::thread::sleep(Duration::from_millis(200));
    let woke = Instant::now();
    waker.wake();
    let done = rx
        .recv_timeout(Duration::from_secs(5))
        .expect("the read was not interrupted");
    let (r, started, mut reader) = t.join().unwrap();
    assert!(matches!(r, Err(Error::Interrupted { .. })), "{r:?}");
    assert!(done.duration_since(woke) < Duration::from_millis(100));
    assert!(woke.duration_since(started) >= Duration::from_millis(150));

    // Messages written before a wake are still delivered: a read that finds
    // a message does not wait, so it is not interrupted. The pending wake
    // interrupts the next read that would wait, and only that one.
    let w = Writer::open_in(&ns, &name)?;
    w.write(b"one")?;
    w.write(b"two")?;
    waker.wake();
    assert_eq!(reader.read_message()?.data, b"one");
    assert_eq!(reader.read_message()?.data, b"two");
    let e = reader.read(&mut [0; 8]).unwrap_err();
    assert!(matches!(e, Error::Interrupted { .. }), "{e}");
    let e = reader
        .read_timeout_once(&mut [0; 8], Some(Duration::ZERO))
        .unwrap_err();
    assert!(matches!(e, Error::TimedOut { .. }), "{e}");
    Ok(())
}

/// The reader's descriptor (for `poll`/epoll users) is woken by a writer
/// whose messages go through its ring, once a read has returned `TimedOut`.
#[test]
fn descriptor_wakes_for_ring_messages_after_a_read_found_nothing() -> TestResult {
    use std::os::fd::AsFd;
    let (_tmp, ns) = namespace();
    let name = slot(r"\\.\mailslot\ring\poll");
    let mut reader = Reader::create_in(&ns, &name, &now_opts())?;
    let w = Writer::open_in(&ns, &name)?;
    // The first write offers a ring, the reader takes it while reading,
    // and the next write goes through it.
    for m in [&b"offer"[..], b"ring"] {
        w.write(m)?;
        assert_eq!(reader.read_message_timeout(Some(PATIENCE))?.data, m);
    }
    for round in 0..20 {
        assert!(matches!(
            reader.try_read(&mut [0; 16]),
            Err(Error::TimedOut { .. })
        ));
        let msg = format!("round {round}");
        let waiter = {
            let writer = &w;
            let msg = msg.clone();
            std::thread::scope(|s| {
                let t = s.spawn(move || {
                    // Give the poll below a head start now and then; the
                    // wake must come either way.
                    if round % 2 == 0 {
                        std::thread::yield_now();
                    }
                    writer.write(msg.as_bytes()).unwrap();
                });
                let fd = reader.as_fd();
                let mut fds = [rustix::event::PollFd::new(
                    &fd,
                    rustix::event::PollFlags::IN,
                )];
                let limit = rustix::time::Timespec {
                    tv_sec: PATIENCE.as_secs() as i64,
                    tv_nsec: 0,
                };
                let n = rustix::event::poll(&mut fds, Some(&limit)).unwrap();
                t.join().unwrap();
                n
            })
        };
        assert_eq!(
            waiter, 1,
            "round {round}: the descriptor never became readable"
        );
        assert_eq!(reader.read_message()?.data, msg.as_bytes());
    }
    Ok(())
}
