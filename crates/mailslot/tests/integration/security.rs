//! Who may do what: slot permissions, the namespace directory's safety,
//! `list`/`clean_stale`, and writers that break the protocol.

use std::io::IoSlice;
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use mailslot::{Error, Namespace, Reader, ReaderOptions, RemoteOrigin, SlotName, Writer};
use rustix::fs::SealFlags;
use rustix::net::{
    AddressFamily, RecvFlags, SendAncillaryBuffer, SendAncillaryMessage, SendFlags, SocketAddrUnix,
    SocketType,
};

use crate::util::{
    PATIENCE, Spawn, TestResult, cpu_time, namespace, nobody, shared_namespace, slot,
};

fn now() -> ReaderOptions {
    ReaderOptions::default().read_timeout(Some(Duration::ZERO))
}

#[test]
fn nobody_cannot_write_to_a_0600_slot_but_can_to_a_0666_slot() -> TestResult {
    let Some((nobody_uid, nobody_gid)) = nobody() else {
        eprintln!("skipped: needs root, user nobody and setpriv");
        return Ok(());
    };
    let (tmp, ns) = shared_namespace();
    let _private = Reader::create_in(&ns, &slot(r"\\.\mailslot\private"), &now())?;
    let mut public = Reader::create_in(&ns, &slot(r"\\.\mailslot\public"), &now().mode(0o666))?;
    let mut c = Spawn::new("writer", tmp.path())
        .slot("private")
        .user_nobody()
        .start();
    let id = c.recv();
    assert_eq!(id, format!("id {} {nobody_uid} {nobody_gid}", c.pid()));
    assert_eq!(c.ask("open"), "err PermissionDenied");
    c.finish_within(PATIENCE);

    let mut c = Spawn::new("writer", tmp.path())
        .slot("public")
        .user_nobody()
        .start();
    assert!(c.recv().starts_with("id "));
    assert_eq!(c.ask("open"), "ok");
    assert_eq!(c.ask("write from nobody"), "ok");
    let m = public.read_message_timeout(Some(Duration::from_secs(10)))?;
    assert_eq!(m.data, b"from nobody");
    assert_eq!(
        (m.sender.pid, m.sender.uid, m.sender.gid),
        (c.pid(), nobody_uid, nobody_gid)
    );
    c.finish_within(PATIENCE);
    Ok(())
}

#[test]
fn origin_flag_from_an_untrusted_user_is_refused() -> TestResult {
    if nobody().is_none() {
        eprintln!("skipped: needs root, user nobody and setpriv");
        return Ok(());
    }
    let (tmp, ns) = shared_namespace();
    let name = slot(r"\\.\mailslot\net");
    let mut reader = Reader::create_in(&ns, &name, &now().mode(0o666))?;
    let mut c = Spawn::new("writer", tmp.path())
        .slot("net")
        .user_nobody()
        .start();
    assert!(c.recv().starts_with("id "));
    assert_eq!(c.ask("open"), "ok");
    assert_eq!(c.ask("remote forged"), "ok");
    // Root (trusted, like the daemon) may say where a message came from.
    let w = Writer::open_in(&ns, &name)?;
    let origin = RemoteOrigin::new([192, 0, 2, 1].into(), 138, "PEERA<00>", "HOST<03>");
    w.write_remote(b"forwarded", &origin)?;
    assert_eq!(reader.info()?.count, 1);
    assert_eq!(reader.rejected_frames(), 1);
    let m = reader.read_message()?;
    assert_eq!(m.data, b"forwarded");
    assert_eq!(m.sender.remote, Some(origin));
    assert!(matches!(
        reader.try_read(&mut [0; 64]),
        Err(Error::TimedOut { .. })
    ));
    // The forger's connection is closed.
    assert_eq!(c.ask("write more"), "err ReaderClosed");
    c.finish_within(PATIENCE);
    Ok(())
}

#[test]
fn symlink_planted_as_lock_file_is_refused() -> TestResult {
    let (tmp, ns) = namespace();
    let name = slot(r"\\.\mailslot\planted");
    let lock = tmp.path().join(format!("{}.lock", name.file_stem()));
    let target = tempfile::NamedTempFile::new()?;
    std::fs::write(target.path(), b"precious")?;
    for to in [target.path(), Path::new("/nonexistent/dangling")] {
        std::os::unix::fs::symlink(to, &lock)?;
        match Reader::create_in(&ns, &name, &now()) {
            Err(Error::UnsafeFile { path, .. }) => assert_eq!(path, lock),
            other => panic!("expected UnsafeFile, got {other:?}"),
        }
        std::fs::remove_file(&lock)?;
    }
    assert_eq!(std::fs::read(target.path())?, b"precious");
    // A FIFO is no lock file either, and must not block us.
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &lock,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )?;
    let e = Reader::create_in(&ns, &name, &now()).unwrap_err();
    assert!(
        matches!(e, Error::UnsafeFile { .. } | Error::Io { .. }),
        "{e}"
    );
    std::fs::remove_file(&lock)?;
    let _ok = Reader::create_in(&ns, &name, &now())?;
    Ok(())
}

#[test]
fn unsafe_namespace_directories_are_refused() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("ns");
    std::fs::create_dir(&dir)?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777))?;
    match Namespace::at(&dir) {
        Err(Error::Namespace { dir: d, problem }) => {
            assert_eq!(d, dir);
            assert!(problem.contains("sticky"), "{problem}");
        }
        other => panic!("expected Error::Namespace, got {other:?}"),
    }
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777))?;
    Namespace::at(&dir)?;
    let link = tmp.path().join("link");
    std::os::unix::fs::symlink(&dir, &link)?;
    assert!(matches!(Namespace::at(&link), Err(Error::Namespace { .. })));
    if rustix::process::geteuid().is_root() {
        std::os::unix::fs::chown(&dir, Some(12345), Some(12345))?;
        assert!(matches!(Namespace::at(&dir), Err(Error::Namespace { .. })));
    }
    // A missing directory is created with mode 1777.
    let fresh = tmp.path().join("fresh");
    Namespace::at(&fresh)?;
    assert_eq!(
        std::fs::metadata(&fresh)?.permissions().mode() & 0o7777,
        0o1777
    );
    Ok(())
}

#[test]
fn another_users_stale_lock_file_is_refused_but_root_takes_it_over() -> TestResult {
    if nobody().is_none() {
        eprintln!("skipped: needs root, user nobody and setpriv");
        return Ok(());
    }
    let (tmp, ns) = shared_namespace();
    let name = SlotName::from_bare("stale")?;
    let lock = tmp.path().join(format!("{}.lock", name.file_stem()));
    std::fs::write(&lock, b"")?;
    std::fs::set_permissions(&lock, std::fs::Permissions::from_mode(0o644))?;
    std::os::unix::fs::chown(&lock, Some(12345), Some(12345))?;
    let mut c = Spawn::new("writer", tmp.path())
        .slot("stale")
        .user_nobody()
        .start();
    assert!(c.recv().starts_with("id "));
    assert_eq!(c.ask("create 666"), "err PermissionDenied");
    // Root may take another user's stale name.
    let mut reader = Reader::create_in(&ns, &name, &now().mode(0o666))?;
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(&lock)?.uid(), 0);
    // While it lives, nobody is told the name exists, and can write to it.
    assert_eq!(c.ask("create 666"), "err AlreadyExists");
    assert_eq!(c.ask("open"), "ok");
    assert_eq!(c.ask("write hi"), "ok");
    assert_eq!(
        reader
            .read_message_timeout(Some(Duration::from_secs(10)))?
            .data,
        b"hi"
    );
    c.finish_within(PATIENCE);
    Ok(())
}

#[test]
fn list_shows_live_slots_and_clean_stale_removes_a_sigkilled_readers_files() -> TestResult {
    let (tmp, ns) = namespace();
    let mut holder = Spawn::new("writer", tmp.path())
        .slot(r"listed\Child")
        .start();
    assert!(holder.recv().starts_with("id "));
    assert_eq!(holder.ask("create 640 424"), "ok");
    let mine = slot(r"\\.\mailslot\listed\Mine");
    let mut reader = Reader::create_in(&ns, &mine, &now())?;
    let list = ns.list()?;
    assert_eq!(list.len(), 2);
    let (child, me) = (&list[0], &list[1]);
    assert_eq!(child.name, r"\\.\mailslot\listed\Child");
    assert_eq!((child.pid, child.uid), (holder.pid(), 0));
    assert_eq!((child.mode, child.max_message_size), (0o640, 424));
    assert_eq!(me.name, r"\\.\mailslot\listed\Mine");
    assert_eq!(
        (me.pid, me.max_message_size, me.mode),
        (std::process::id(), 0, 0o600)
    );
    assert!(me.accept_remote);
    // Nothing is stale yet.
    assert_eq!(ns.clean_stale()?, 0);
    assert_eq!(ns.list()?.len(), 2);

    holder.kill();
    let stem = SlotName::from_bare(r"listed\child")?.file_stem();
    let files = |stem: &str| {
        ["lock", "meta", "sock"]
            .iter()
            .filter(|x| tmp.path().join(format!("{stem}.{x}")).exists())
            .count()
    };
    assert_eq!(files(&stem), 3, "the killed reader left no files to clean");
    let names: Vec<String> = ns.list()?.into_iter().map(|s| s.name).collect();
    assert_eq!(names, [r"\\.\mailslot\listed\Mine"]);
    assert_eq!(ns.clean_stale()?, 1);
    assert_eq!(files(&stem), 0);
    assert_eq!(files(&mine.file_stem()), 3);
    // The live slot is untouched.
    Writer::open_in(&ns, &mine)?.write(b"still here")?;
    assert_eq!(reader.read_message()?.data, b"still here");
    Ok(())
}

/// Receives the reader's next notice on a raw connection, skipping its
/// welcome (kind 10); `Ok(0)` at end of stream.
pub(crate) fn recv_notice(raw: &OwnedFd, buf: &mut [u8]) -> rustix::io::Result<usize> {
    loop {
        let (_, n) = rustix::net::recv(raw, &mut *buf, RecvFlags::DONTWAIT)?;
        if n < 2 || buf[1] != 10 {
            return Ok(n);
        }
    }
}

/// A raw `SOCK_SEQPACKET` client of the slot's socket.
pub(crate) fn raw_client(dir: &Path, name: &SlotName) -> OwnedFd {
    let fd = rustix::net::socket(AddressFamily::UNIX, SocketType::SEQPACKET, None).unwrap();
    let addr = SocketAddrUnix::new(dir.join(format!("{}.sock", name.file_stem()))).unwrap();
    rustix::net::connect(&fd, &addr).unwrap();
    fd
}

pub(crate) const ALL_SEALS: SealFlags = SealFlags::SEAL
    .union(SealFlags::SHRINK)
    .union(SealFlags::GROW)
    .union(SealFlags::WRITE);

/// A memory file holding `data`, with `seals` added.
pub(crate) fn memfd(data: &[u8], seals: SealFlags) -> std::io::Result<OwnedFd> {
    let fd = rustix::fs::memfd_create(
        "test",
        rustix::fs::MemfdFlags::CLOEXEC | rustix::fs::MemfdFlags::ALLOW_SEALING,
    )?;
    rustix::io::write(&fd, data)?;
    if !seals.is_empty() {
        rustix::fs::fcntl_add_seals(&fd, seals)?;
    }
    Ok(fd)
}

pub(crate) fn header(kind: u8, flags: u16, len: u32) -> Vec<u8> {
    let mut h = vec![0xA7, kind];
    h.extend_from_slice(&flags.to_le_bytes());
    h.extend_from_slice(&len.to_le_bytes());
    h.extend_from_slice(&1u64.to_le_bytes());
    h
}

pub(crate) fn send_with_fd(sock: &OwnedFd, bytes: &[u8], fd: &OwnedFd) {
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    let fds = [rustix::fd::AsFd::as_fd(fd)];
    control.push(SendAncillaryMessage::ScmRights(&fds));
    // A connection the reader cut off refuses it; callers look at the
    // next plain send.
    let _ = rustix::net::sendmsg(
        sock,
        &[IoSlice::new(bytes)],
        &mut control,
        SendFlags::NOSIGNAL,
    );
}

#[test]
fn hostile_raw_writer_is_disconnected_and_counted_while_others_get_through() -> TestResult {
    let (tmp, ns) = namespace();
    let name = slot(r"\\.\mailslot\hostile");
    let mut reader = Reader::create_in(&ns, &name, &now().max_message_size(100))?;
    let good = Writer::open_in(&ns, &name)?;
    let unsealed = memfd(b"0123456789", SealFlags::empty())?;
    let sealed = memfd(b"0123456789", ALL_SEALS)?;
    // A recyclable buffer: sealed against shrinking and growing only.
    let fixed = memfd(b"0123456789", SealFlags::SHRINK | SealFlags::GROW)?;
    let token = 5u64.to_le_bytes();
    let with_payload = |mut h: Vec<u8>, p: &[u8]| {
        h.extend_from_slice(p);
        h
    };
    let cases: Vec<(&str, Vec<u8>, Option<&OwnedFd>)> = vec![
        ("bad magic", vec![0u8; 20], None),
        ("shorter than a header", vec![0xA7, 0, 0], None),
        (
            "length mismatch",
            with_payload(header(0, 0, 10), b"12345"),
            None,
        ),
        ("unknown kind", header(9, 0, 0), None),
        ("memfd kind without a descriptor", header(1, 0, 10), None),
        ("unsealed memfd", header(1, 0, 10), Some(&unsealed)),
        (
            "malformed batch",
            with_payload(header(2, 0, 6), &[9, 0, 0, 0, 1, 2]),
            None,
        ),
        (
            "over the maximum size",
            with_payload(header(0, 0, 101), &[0; 101]),
            None,
        ),
        (
            "malformed origin block",
            with_payload(header(0, 1, 3), &[7, 7, 7]),
            None,
        ),
        (
            "sealed memfd of the wrong size",
            header(1, 0, 20),
            Some(&sealed),
        ),
        ("sealed memfd with flags", header(1, 1, 10), Some(&sealed)),
        (
            "writable memfd without the recycle flag",
            header(1, 0, 10),
            Some(&fixed),
        ),
        (
            "recyclable memfd without a token",
            header(1, 2, 10),
            Some(&fixed),
        ),
        (
            "recyclable memfd that can shrink",
            with_payload(header(1, 2, 10), &token),
            Some(&unsealed),
        ),
        (
            "recyclable memfd shorter than the message",
            with_payload(header(1, 2, 11), &token),
            Some(&fixed),
        ),
        (
            "recyclable memfd with another flag",
            with_payload(header(1, 3, 10), &token),
            Some(&fixed),
        ),
        ("release notice from a writer", header(3, 0, 0), None),
        (
            "inline frame with a descriptor",
            with_payload(header(0, 0, 2), b"hi"),
            Some(&sealed),
        ),
        (
            "larger than any inline frame",
            with_payload(header(0, 0, 70_000), &[0; 70_000]),
            None,
        ),
        (
            "unknown flags on a batch",
            with_payload(header(2, 4, 0), &[]),
            None,
        ),
    ];
    for (i, (what, bytes, pass_fd)) in cases.iter().enumerate() {
        let bad = raw_client(tmp.path(), &name);
        if let Some(fd) = pass_fd {
            // Announced, as our writers do, so the reader takes the
            // descriptor and has to judge it.
            rustix::net::send(&bad, &header(4, 0, 0), SendFlags::NOSIGNAL)?;
            send_with_fd(&bad, bytes, fd);
        } else {
            rustix::net::send(&bad, bytes, SendFlags::NOSIGNAL)?;
        }
        good.write(format!("good {i}").as_bytes())?;
        let st = reader.info()?;
        assert_eq!(
            reader.rejected_frames(),
            i as u64 + 1,
            "{what} was not rejected"
        );
        assert_eq!(st.count, 1, "{what}");
        assert_eq!(reader.read_message()?.data, format!("good {i}").as_bytes());
        // The hostile connection was closed: end of stream, not "would block".
        let mut b = [0u8; 16];
        let r = recv_notice(&bad, &mut b[..]);
        assert!(matches!(r, Ok(0)), "{what}: connection still open: {r:?}");
    }
    // A descriptor sent without an announce never reaches the reader (the
    // kernel closes it): a memfd frame then has none, and is refused...
    let bad = raw_client(tmp.path(), &name);
    send_with_fd(&bad, &header(1, 0, 10), &sealed);
    good.write(b"after unannounced")?;
    assert_eq!(reader.read_message()?.data, b"after unannounced");
    assert_eq!(reader.rejected_frames(), cases.len() as u64 + 1);
    // ...and an inline frame is just a message.
    let sneaky = raw_client(tmp.path(), &name);
    send_with_fd(&sneaky, &with_payload(header(0, 0, 2), b"hi"), &sealed);
    assert_eq!(reader.read_message()?.data, b"hi");
    assert_eq!(reader.rejected_frames(), cases.len() as u64 + 1);
    // A well-formed raw frame is fine.
    let raw = raw_client(tmp.path(), &name);
    rustix::net::send(
        &raw,
        &with_payload(header(0, 0, 3), b"raw"),
        SendFlags::NOSIGNAL,
    )?;
    assert_eq!(reader.read_message()?.data, b"raw");
    assert_eq!(reader.rejected_frames(), cases.len() as u64 + 1);
    Ok(())
}

/// A local user who opens more connections than the reader may hold
/// descriptors must not make it spin: the reader stops accepting until a
/// descriptor frees up (or a moment passes), keeps serving the writers it
/// has, and takes the waiting ones later.
#[test]
fn writers_beyond_the_readers_descriptor_limit_do_not_make_it_spin() -> TestResult {
    let (tmp, ns) = namespace();
    let name = slot(r"\\.\mailslot\nofile");
    let mut holder = Spawn::new("writer", tmp.path()).slot("nofile").start();
    assert!(holder.recv().starts_with("id "));
    assert_eq!(holder.ask("nofile 32"), "ok");
    assert_eq!(holder.ask("create 600 0"), "ok");
    let first = Writer::open_in(&ns, &name)?;
    first.write(b"first")?;
    assert_eq!(holder.ask("read"), "msg first");
    // Far more connections than 32 descriptors: the rest wait in the
    // listen backlog and every accept fails with EMFILE.
    let mut crowd = Vec::new();
    for _ in 0..60 {
        crowd.push(Writer::open_in(&ns, &name)?);
    }
    // The reader waits for a message meanwhile.
    holder.send("read");
    let pid = holder.pid();
    let before = cpu_time(pid);
    std::thread::sleep(Duration::from_secs(1)); // the span we measure, not a sync
    let used = cpu_time(pid) - before;
    crate::util::say(format!("reader CPU in 1 s out of descriptors: {used:?}"));
    assert!(
        used < Duration::from_millis(300),
        "the reader used {used:?} of CPU in 1 s while out of descriptors"
    );
    // It still serves a writer it accepted.
    first.write(b"served")?;
    assert_eq!(holder.recv(), "msg served");
    // Descriptors free up: the last writer in the backlog gets through.
    let last = crowd.pop().expect("writers");
    drop(crowd);
    last.write(b"last")?;
    assert_eq!(holder.ask("read"), "msg last");
    holder.finish();
    Ok(())
}

/// An announce and the frame it announces may arrive in different fills:
/// the reader keeps expecting the descriptor across them.
#[test]
fn announced_descriptor_arriving_later_is_still_received() -> TestResult {
    let (tmp, ns) = namespace();
    let name = slot(r"\\.\mailslot\announce\late");
    let mut reader = Reader::create_in(&ns, &name, &now())?;
    let raw = raw_client(tmp.path(), &name);
    let sealed = memfd(b"0123456789", ALL_SEALS)?;
    rustix::net::send(&raw, &header(4, 0, 0), SendFlags::NOSIGNAL)?;
    // The reader takes the announce, finds nothing after it yet.
    assert!(matches!(
        reader.try_read(&mut [0; 16]),
        Err(Error::TimedOut { .. })
    ));
    send_with_fd(&raw, &header(1, 0, 10), &sealed);
    assert_eq!(reader.read_message()?.data, b"0123456789");
    assert_eq!(reader.rejected_frames(), 0);
    Ok(())
}

// --- The ring lane, spoken by hand (layout: `crates/mailslot/src/ring.rs`). ---

fn with_payload(mut h: Vec<u8>, p: &[u8]) -> Vec<u8> {
    h.extend_from_slice(p);
    h
}

const RING_DATA: u64 = 2 << 20;
const RING_DATA_OFF: u64 = 8192;

/// A ring memory file as a writer makes it: 8 KiB of control words, then
/// the records; sealed against shrinking and growing.
fn ring_file(len: u64) -> std::io::Result<OwnedFd> {
    let fd = rustix::fs::memfd_create(
        "test-ring",
        rustix::fs::MemfdFlags::CLOEXEC | rustix::fs::MemfdFlags::ALLOW_SEALING,
    )?;
    rustix::fs::ftruncate(&fd, len)?;
    rustix::fs::fcntl_add_seals(&fd, SealFlags::SHRINK | SealFlags::GROW)?;
    Ok(fd)
}

/// Offers `ring` and `wake` on `raw` the way a writer does (each frame
/// announced), has the reader take the offer, and returns its answer.
fn offer_ring(reader: &mut Reader, raw: &OwnedFd, ring: &OwnedFd, wake: &OwnedFd) -> bool {
    rustix::net::send(raw, &header(4, 0, 0), SendFlags::NOSIGNAL).unwrap();
    send_with_fd(raw, &header(5, 0, 0), ring);
    rustix::net::send(raw, &header(4, 0, 0), SendFlags::NOSIGNAL).unwrap();
    send_with_fd(raw, &header(6, 0, 0), wake);
    assert!(matches!(
        reader.try_read(&mut [0; 16]),
        Err(Error::TimedOut { .. })
    ));
    let mut answer = [0u8; 16];
    let n = recv_notice(raw, &mut answer).unwrap();
    assert_eq!((n, answer[0], answer[1]), (16, 0xA7, 7), "a ring answer");
    answer[2] & 1 != 0
}

/// Writes a record at ring position `pos`: `u32 len`, `u32 tag`, bytes.
fn put_record(ring: &OwnedFd, pos: u64, tag: u32, bytes: &[u8]) -> u64 {
    let mut rec = (bytes.len() as u32).to_le_bytes().to_vec();
    rec.extend_from_slice(&tag.to_le_bytes());
    rec.extend_from_slice(bytes);
    while rec.len() % 8 != 0 {
        rec.push(0);
    }
    rustix::io::pwrite(ring, &rec, RING_DATA_OFF + pos % RING_DATA).unwrap();
    pos + rec.len() as u64
}

fn publish(ring: &OwnedFd, wake: &OwnedFd, tail: u64) {
    rustix::io::pwrite(ring, &tail.to_le_bytes(), 0).unwrap();
    rustix::io::write(wake, &1u64.to_ne_bytes()).unwrap();
}

fn eventfd() -> OwnedFd {
    rustix::event::eventfd(0, rustix::event::EventfdFlags::CLOEXEC).unwrap()
}

/// A ring written by hand, record by record as documented, is read; one
/// that breaks the rules costs only its own connection.
#[test]
fn hand_made_ring_is_read_and_a_corrupt_one_is_cut_off() -> TestResult {
    let (tmp, ns) = namespace();
    let name = slot(r"\\.\mailslot\ring\raw");
    let mut reader = Reader::create_in(&ns, &name, &now().max_message_size(100))?;
    let good = Writer::open_in(&ns, &name)?;

    // A well-formed ring: one inline frame in a record, then the answer
    // of the reader's `info` counts it, and it reads as sent.
    let raw = raw_client(tmp.path(), &name);
    let (ring, wake) = (ring_file(RING_DATA_OFF + RING_DATA)?, eventfd());
    assert!(offer_ring(&mut reader, &raw, &ring, &wake), "accepted");
    rustix::net::send(&raw, &header(8, 0, 0), SendFlags::NOSIGNAL)?;
    let mut frame = header(0, 0, 3);
    frame.extend_from_slice(b"abc");
    let tail = put_record(&ring, 0, 1, &frame);
    assert_eq!(tail, 32);
    publish(&ring, &wake, tail);
    let st = reader.info()?;
    assert_eq!((st.count, st.next_size), (1, Some(3)));
    let m = reader.read_message()?;
    assert_eq!(m.data, b"abc");
    assert_eq!(m.sender.pid, std::process::id());
    // The reader gave the record back: the head (offset 64) is the tail.
    let mut head = [0u8; 8];
    rustix::io::pread(&ring, &mut head, 64)?;
    assert_eq!(u64::from_le_bytes(head), 32);
    // A batch record: each message read on its own, small or not.
    let long = [b'L'; 80];
    let mut batch = Vec::new();
    for m in [&b"x"[..], &long, b""] {
        batch.extend_from_slice(&(m.len() as u32).to_le_bytes());
        batch.extend_from_slice(m);
    }
    let tail = put_record(
        &ring,
        tail,
        1,
        &with_payload(header(2, 0, batch.len() as u32), &batch),
    );
    publish(&ring, &wake, tail);
    assert_eq!(reader.read_message()?.data, b"x");
    assert_eq!(reader.read_message()?.data, long);
    assert_eq!(reader.read_message()?.data, b"");
    // A message record: the writer's stamp, then the message.
    let mut stamped = 7u64.to_le_bytes().to_vec();
    stamped.extend_from_slice(b"plain");
    let tail = put_record(&ring, tail, 4, &stamped);
    publish(&ring, &wake, tail);
    assert_eq!(reader.read_message()?.data, b"plain");
    // A hand-off record sends the reader back to the socket.
    let tail = put_record(&ring, tail, 2, &[]);
    publish(&ring, &wake, tail);
    rustix::net::send(
        &raw,
        &with_payload(header(0, 0, 4), b"sock"),
        SendFlags::NOSIGNAL,
    )?;
    assert_eq!(reader.read_message()?.data, b"sock");
    assert_eq!(reader.rejected_frames(), 0);

    // Offers the reader turns down, politely: the connection stays.
    let raw2 = raw_client(tmp.path(), &name);
    let small = ring_file(RING_DATA_OFF + 4096)?;
    assert!(
        !offer_ring(&mut reader, &raw2, &small, &eventfd()),
        "wrong size"
    );
    rustix::net::send(
        &raw2,
        &with_payload(header(0, 0, 2), b"ok"),
        SendFlags::NOSIGNAL,
    )?;
    assert_eq!(reader.read_message()?.data, b"ok");
    let unsealed = memfd(
        &vec![0u8; (RING_DATA_OFF + RING_DATA) as usize],
        SealFlags::empty(),
    )?;
    assert!(
        !offer_ring(&mut reader, &raw2, &unsealed, &eventfd()),
        "unsealed"
    );
    assert_eq!(reader.rejected_frames(), 0);

    // Rings that break the rules: each loses its connection, counted.
    let mut inline_big = header(0, 0, 101);
    inline_big.extend_from_slice(&[7u8; 101]);
    let in_ring_memfd = header(1, 0, 10);
    type Corrupt = Box<dyn Fn(&OwnedFd) -> u64>;
    let cases: Vec<(&str, Corrupt)> = vec![
        ("tail not a multiple of 8", Box::new(|_| 12)),
        ("tail more than a ring ahead", Box::new(|_| RING_DATA + 8)),
        ("unknown tag", Box::new(|r| put_record(r, 0, 99, &[]))),
        (
            "record longer than what was published",
            Box::new(|r| {
                put_record(r, 0, 1, &[0u8; 64]);
                16
            }),
        ),
        (
            "record past the end of the ring",
            Box::new(|r| {
                let at = RING_DATA - 16;
                put_record(r, at, 1, &header(0, 0, 0));
                // The tail covers it, so only the ring's end is crossed.
                rustix::io::pwrite(r, &(RING_DATA as u32).to_le_bytes(), RING_DATA_OFF + at)
                    .unwrap();
                RING_DATA + 64
            }),
        ),
        (
            "garbage frame",
            Box::new(|r| put_record(r, 0, 1, &[0x55; 24])),
        ),
        (
            "batch length beyond the record",
            Box::new(|r| {
                put_record(
                    r,
                    0,
                    1,
                    &with_payload(header(2, 0, 8), &[200, 0, 0, 0, 1, 2, 3, 4]),
                )
            }),
        ),
        (
            "batch with a cut length",
            Box::new(|r| put_record(r, 0, 1, &with_payload(header(2, 0, 3), &[1, 0, 9]))),
        ),
        (
            "batch message over the slot's maximum",
            Box::new(|r| {
                let mut b = 101u32.to_le_bytes().to_vec();
                b.extend_from_slice(&[1u8; 101]);
                put_record(r, 0, 1, &with_payload(header(2, 0, b.len() as u32), &b))
            }),
        ),
        (
            "over the slot's maximum",
            Box::new(move |r| put_record(r, 0, 1, &inline_big)),
        ),
        (
            "message record over the slot's maximum",
            Box::new(|r| put_record(r, 0, 4, &[3u8; 8 + 101])),
        ),
        (
            "message record shorter than its stamp",
            Box::new(|r| put_record(r, 0, 4, &[0u8; 4])),
        ),
        (
            "memfd frame in the ring",
            Box::new(move |r| put_record(r, 0, 1, &in_ring_memfd)),
        ),
        (
            "reader-to-writer kind",
            Box::new(|r| put_record(r, 0, 1, &header(9, 0, 0))),
        ),
    ];
    let mut rejected = reader.rejected_frames();
    for (what, corrupt) in cases {
        let bad = raw_client(tmp.path(), &name);
        let (ring, wake) = (ring_file(RING_DATA_OFF + RING_DATA)?, eventfd());
        assert!(
            offer_ring(&mut reader, &bad, &ring, &wake),
            "{what}: accepted"
        );
        rustix::net::send(&bad, &header(8, 0, 0), SendFlags::NOSIGNAL)?;
        let tail = corrupt(&ring);
        publish(&ring, &wake, tail);
        good.write(what.as_bytes())?;
        assert_eq!(reader.read_message()?.data, what.as_bytes(), "{what}");
        rejected += 1;
        assert_eq!(reader.rejected_frames(), rejected, "{what}: counted");
        // The reader closed that connection, and marked the ring closed.
        let mut b = [0u8; 16];
        rustix::net::sockopt::set_socket_timeout(
            &bad,
            rustix::net::sockopt::Timeout::Recv,
            Some(PATIENCE),
        )?;
        let gone = loop {
            match rustix::net::recv(&bad, &mut b, RecvFlags::empty()) {
                Ok((_, 0)) => break true,
                Ok(_) => continue,
                Err(rustix::io::Errno::AGAIN) => break false,
                Err(_) => break true,
            }
        };
        assert!(gone, "{what}: disconnected");
        let mut closed = [0u8; 4];
        rustix::io::pread(&ring, &mut closed, 256)?;
        assert_eq!(u32::from_le_bytes(closed), 1, "{what}: ring marked closed");
    }
    // A to-ring frame without a ring is a broken protocol too.
    let bad = raw_client(tmp.path(), &name);
    rustix::net::send(&bad, &header(8, 0, 0), SendFlags::NOSIGNAL)?;
    good.write(b"after")?;
    assert_eq!(reader.read_message()?.data, b"after");
    assert_eq!(reader.rejected_frames(), rejected + 1);
    Ok(())
}

/// A read that finds its only writer's ring empty watches it and takes
/// the next message straight from it (the reader's direct path). What it
/// takes is checked as everywhere else: a message record longer than the
/// slot allows, published by hand while the reader watches (or just
/// before: the delay varies by round), costs that writer its connection
/// and is never read. An honest writer is read after each.
#[test]
fn a_ring_message_over_the_size_limit_is_never_read_even_directly() -> TestResult {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Instant;
    const ROUNDS: u64 = 40;
    let (tmp, ns) = namespace();
    let name = slot(r"\\.\mailslot\ring\oversize");
    let opts = ReaderOptions::default().max_message_size(16);
    let mut reader = Reader::create_in(&ns, &name, &opts)?;
    let mut buf = [0u8; 64];
    for round in 0..ROUNDS {
        let raw = raw_client(tmp.path(), &name);
        let (ring, wake) = (ring_file(RING_DATA_OFF + RING_DATA)?, eventfd());
        assert!(offer_ring(&mut reader, &raw, &ring, &wake), "accepted");
        rustix::net::send(&raw, &header(8, 0, 0), SendFlags::NOSIGNAL)?;
        // The reader takes "to ring" and finds the ring empty.
        let r = reader.read_timeout_once(&mut buf, Some(Duration::from_millis(20)));
        assert!(
            matches!(r, Err(Error::TimedOut { .. })),
            "round {round}: {r:?}"
        );
        let (ready, go) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
        );
        let (spinning, started) = (Arc::clone(&ready), Arc::clone(&go));
        // Published without a signal, as a writer does while the reader
        // has not asked for one.
        let hostile = std::thread::spawn(move || {
            spinning.store(true, Ordering::Release);
            while !started.load(Ordering::Acquire) {
                std::hint::spin_loop();
            }
            let until = Instant::now() + Duration::from_nanos(round * 1000);
            while Instant::now() < until {
                std::hint::spin_loop();
            }
            let mut stamped = 7u64.to_le_bytes().to_vec();
            stamped.extend_from_slice(&[b'x'; 40]);
            let tail = put_record(&ring, 0, 4, &stamped);
            rustix::io::pwrite(&ring, &tail.to_le_bytes(), 0).unwrap();
            ring
        });
        while !ready.load(Ordering::Acquire) {
            std::hint::spin_loop();
        }
        go.store(true, Ordering::Release);
        let r = reader.read_timeout_once(&mut buf, Some(Duration::from_millis(30)));
        assert!(
            matches!(r, Err(Error::TimedOut { .. })),
            "round {round}: a 40-byte message in a slot of 16-byte ones was read: {r:?}"
        );
        drop(hostile.join().expect("hostile writer"));
        let honest = Writer::open_in(&ns, &name)?;
        honest.write(b"honest")?;
        assert_eq!(reader.read_message()?.data, b"honest", "round {round}");
    }
    assert_eq!(reader.rejected_frames(), ROUNDS, "each cut off and counted");
    Ok(())
}

/// Stamps in message records are the writer's word too. A ring writer
/// that stamps its messages 0 and `u64::MAX` in turn, while two honest
/// writers take turns (one on its socket, one on its ring) and a reader
/// reads as they write, neither reorders the honest messages nor keeps
/// them waiting, and its own still arrive. (A reader that delivered what
/// a pass found without the pass rule reads the honest writers out of
/// turn here: a ring record found after the pass's `epoll_wait` overtakes
/// a socket frame sent before it.)
#[test]
fn forged_stamps_in_a_ring_cannot_reorder_or_starve_honest_writers() -> TestResult {
    const TURNS: usize = 50_000;
    const LIES: usize = 20_000;
    let (tmp, ns) = namespace();
    let name = slot(r"\\.\mailslot\ring\liar");
    let mut reader = Reader::create_in(&ns, &name, &now())?;
    let raw = raw_client(tmp.path(), &name);
    let (ring, wake) = (ring_file(RING_DATA_OFF + RING_DATA)?, eventfd());
    assert!(offer_ring(&mut reader, &raw, &ring, &wake), "accepted");
    rustix::net::send(&raw, &header(8, 0, 0), SendFlags::NOSIGNAL)?;
    // An honest writer on its socket (stamping as a writer does) and one
    // on its ring.
    let on_socket = raw_client(tmp.path(), &name);
    let on_ring = Writer::open_in(&ns, &name)?;
    let check = std::thread::spawn(move || -> Result<u64, String> {
        let (mut honest, mut lies) = (0, 0);
        let mut buf = [0u8; 64];
        while honest < 2 * TURNS || lies < LIES {
            let n = reader
                .read_timeout_once(&mut buf, Some(Duration::from_secs(30)))
                .map_err(|e| format!("after {honest} honest, {lies} forged: {e}"))?;
            if &buf[..n] == b"liar" {
                lies += 1;
                continue;
            }
            let want = format!("{}{}", ["s", "r"][honest % 2], honest / 2);
            if buf[..n] != *want.as_bytes() {
                let got = String::from_utf8_lossy(&buf[..n]);
                return Err(format!("expected {want}, got {got}"));
            }
            honest += 1;
        }
        Ok(reader.rejected_frames())
    });
    let liar = std::thread::spawn(move || {
        // 24-byte records, all within the ring: no wrap needed.
        let mut tail = 0;
        for i in 0..LIES {
            let stamp = if i % 2 == 0 { 0 } else { u64::MAX };
            let mut rec = stamp.to_le_bytes().to_vec();
            rec.extend_from_slice(b"liar");
            tail = put_record(&ring, tail, 4, &rec);
            publish(&ring, &wake, tail);
            if i % 16 == 0 {
                std::thread::yield_now();
            }
        }
        (ring, raw)
    });
    let written = (0..TURNS).try_for_each(|i| -> TestResult {
        let body = format!("s{i}");
        let mut frame = header(0, 0, body.len() as u32);
        let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
        let stamp = t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64;
        frame[8..16].copy_from_slice(&stamp.to_le_bytes());
        frame.extend_from_slice(body.as_bytes());
        rustix::net::send(&on_socket, &frame, SendFlags::NOSIGNAL)?;
        on_ring.write(format!("r{i}").as_bytes())?;
        Ok(())
    });
    let _liar_ends = liar.join().expect("liar");
    // The checker's verdict first: a failed write only follows from it.
    let rejected = check.join().expect("checker")?;
    written?;
    assert_eq!(rejected, 0, "the liar's records are well-formed");
    Ok(())
}

/// `list` reads the kernel's lock table (`/proc/locks`), which comes a
/// page (about 78 locks) per read and which other processes' locks change
/// while it is read: a live slot must never drop out of the list, however
/// many locks the machine holds and however many come and go meanwhile.
#[test]
fn list_keeps_a_live_slot_while_other_slots_come_and_go() -> TestResult {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let (_tmp, ns) = namespace();
    let _steady = Reader::create_in(
        &ns,
        &slot(r"\\.\mailslot\steady"),
        &ReaderOptions::default(),
    )?;
    // Locks taken later come first in the table: 300 of them put the
    // slot's a few pages in, as on a busy machine.
    let others = tempfile::tempdir()?;
    let _locked: Vec<std::fs::File> = (0..300)
        .map(|i| {
            let f = std::fs::File::create(others.path().join(i.to_string()))?;
            rustix::fs::flock(&f, rustix::fs::FlockOperation::LockShared)?;
            Ok(f)
        })
        .collect::<std::io::Result<_>>()?;
    let stop = Arc::new(AtomicBool::new(false));
    let churners: Vec<_> = (0..4)
        .map(|t| {
            let (stop, dir) = (Arc::clone(&stop), ns.dir().to_path_buf());
            std::thread::spawn(move || {
                let ns = Namespace::at(&dir).expect("namespace");
                // Each round takes and drops a batch of locks.
                while !stop.load(Ordering::Relaxed) {
                    let batch: Vec<_> = (0..16)
                        .map(|i| {
                            Reader::create_in(
                                &ns,
                                &slot(&format!(r"\\.\mailslot\churn{t}x{i}")),
                                &ReaderOptions::default(),
                            )
                            .expect("create")
                        })
                        .collect();
                    drop(batch);
                }
            })
        })
        .collect();
    let mut missed = 0;
    for _ in 0..500 {
        if !ns.list()?.iter().any(|s| s.name == r"\\.\mailslot\steady") {
            missed += 1;
        }
    }
    stop.store(true, Ordering::Relaxed);
    for c in churners {
        c.join().expect("churner");
    }
    assert_eq!(
        missed, 0,
        "the live slot was missing from {missed} of 500 lists"
    );
    Ok(())
}
