//! The one seam between the library and the operating system.
//!
//! Every system call the crate makes goes through this module, via `rustix`
//! (no raw `libc`). The only `unsafe` code of the crate is here, in
//! [`SharedMap`]: mapping a memory file, copying to or from the mapping, and
//! atomics in it (the shared-memory lane, `ring.rs`).
//! It provides:
//!
//! - clocks: [`monotonic_ns`] (the writer's ordering stamp);
//! - identity: [`euid`], [`pid`];
//! - files in the namespace directory, always relative to a directory fd and
//!   never following symlinks: [`open_dir`], [`open_lock_file`],
//!   [`open_regular_read`], [`create_new`], [`stat_at`], [`unlink_at`],
//!   [`rename_at`], [`chmod_at`], [`fchmod`], [`mkdir`], [`chmod_path`], [`lstat_path`];
//! - advisory locks: [`try_flock`], [`unlock`];
//! - AF_UNIX `SOCK_SEQPACKET` sockets: [`seqpacket_socket`], [`unix_addr`],
//!   [`bind`], [`listen`], [`connect`], [`accept`], [`peer_cred`],
//!   [`send_frame`], [`recv_frame`], [`recv_packet`], [`peek_packet`],
//!   [`wait_writable`], [`wait_readable`],
//!   [`queued_bytes`];
//! - readiness: [`Poller`] (epoll) and [`EventFd`] (the reader's waker);
//! - sealed memory files for large messages: [`sealed_memfd`],
//!   [`fixed_size_memfd`], [`check_memfd`], [`pwrite_all`], [`pread_exact`],
//!   and [`SharedMap`] (`mmap` of a reusable one);
//! - with the `network` feature: [`interfaces`] (netlink `RTM_GETLINK` +
//!   `RTM_GETADDR`), [`local_addr_for`] (`connect` + `getsockname` on a UDP
//!   socket), [`udp_socket`] (`socket` + `bind` + `SO_BROADCAST`),
//!   [`hostname`] (`/proc/sys/kernel/hostname`).
//!
//! Each wrapper's first doc line names the system call it makes.

use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::time::Duration;

use rustix::event::{EventfdFlags, PollFd, PollFlags, epoll};
use rustix::fs::{AtFlags, FlockOperation, Mode, OFlags, SealFlags};
use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags, SocketAddrUnix, SocketFlags, SocketType,
};

pub(crate) use rustix::fs::Stat;

fn to_io(e: rustix::io::Errno) -> io::Error {
    io::Error::from(e)
}

fn timespec(d: Duration) -> rustix::time::Timespec {
    rustix::time::Timespec {
        tv_sec: d.as_secs().min(i64::MAX as u64) as i64,
        tv_nsec: i64::from(d.subsec_nanos()),
    }
}

/// `clock_gettime(CLOCK_MONOTONIC)`, in nanoseconds.
pub(crate) fn monotonic_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    (t.tv_sec as u64).wrapping_mul(1_000_000_000) + t.tv_nsec as u64
}

/// `geteuid()`.
pub(crate) fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// `getpid()`.
pub(crate) fn pid() -> u32 {
    rustix::process::getpid().as_raw_nonzero().get() as u32
}

/// `open(path, O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)`.
pub(crate) fn open_dir(path: &Path) -> io::Result<OwnedFd> {
    rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(to_io)
}

/// `lstat(path)`.
pub(crate) fn lstat_path(path: &Path) -> io::Result<Stat> {
    rustix::fs::lstat(path).map_err(to_io)
}

/// `mkdir(path, mode)`.
pub(crate) fn mkdir(path: &Path, mode: u32) -> io::Result<()> {
    rustix::fs::mkdir(path, Mode::from_raw_mode(mode)).map_err(to_io)
}

/// `chmod(path, mode)`.
pub(crate) fn chmod_path(path: &Path, mode: u32) -> io::Result<()> {
    rustix::fs::chmod(path, Mode::from_raw_mode(mode)).map_err(to_io)
}

/// `fstat(fd)`.
pub(crate) fn fstat(fd: BorrowedFd<'_>) -> io::Result<Stat> {
    rustix::fs::fstat(fd).map_err(to_io)
}

/// `openat(dir, name, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600)`.
///
/// Mode 0600: another user who could open the lock file could also hold a
/// `flock` on it and so pin a crashed reader's name.
pub(crate) fn open_lock_file(dir: BorrowedFd<'_>, name: &str) -> io::Result<OwnedFd> {
    rustix::fs::openat(
        dir,
        name,
        OFlags::RDWR | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )
    .map_err(to_io)
}

/// `openat(dir, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)`.
///
/// `O_NONBLOCK` keeps a planted FIFO from blocking the caller; the caller
/// checks the file type with [`fstat`].
pub(crate) fn open_regular_read(dir: BorrowedFd<'_>, name: &str) -> io::Result<OwnedFd> {
    rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(to_io)
}

/// `openat(dir, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode)`.
pub(crate) fn create_new(dir: BorrowedFd<'_>, name: &str, mode: u32) -> io::Result<OwnedFd> {
    rustix::fs::openat(
        dir,
        name,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(mode),
    )
    .map_err(to_io)
}

/// `write(fd, data)` until all of `data` is written.
pub(crate) fn write_all(fd: BorrowedFd<'_>, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        match rustix::io::write(fd, data) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => data = &data[n..],
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(to_io(e)),
        }
    }
    Ok(())
}

/// `read(fd, buf)` until end of file; at most `limit` bytes.
pub(crate) fn read_to_end(fd: BorrowedFd<'_>, limit: usize) -> io::Result<Vec<u8>> {
    let mut out = vec![0u8; 4096];
    let mut len = 0;
    loop {
        if len == out.len() {
            if out.len() >= limit {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("file larger than {limit} bytes"),
                ));
            }
            out.resize((out.len() * 2).min(limit), 0);
        }
        match rustix::io::read(fd, &mut out[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(to_io(e)),
        }
    }
    out.truncate(len);
    Ok(out)
}

/// `fstatat(dir, name, AT_SYMLINK_NOFOLLOW)`.
pub(crate) fn stat_at(dir: BorrowedFd<'_>, name: &str) -> io::Result<Stat> {
    rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW).map_err(to_io)
}

/// `unlinkat(dir, name, 0)`; a missing file is not an error.
pub(crate) fn unlink_at(dir: BorrowedFd<'_>, name: &str) -> io::Result<()> {
    match rustix::fs::unlinkat(dir, name, AtFlags::empty()) {
        Ok(()) | Err(rustix::io::Errno::NOENT) => Ok(()),
        Err(e) => Err(to_io(e)),
    }
}

/// `renameat(dir, from, dir, to)`.
pub(crate) fn rename_at(dir: BorrowedFd<'_>, from: &str, to: &str) -> io::Result<()> {
    rustix::fs::renameat(dir, from, dir, to).map_err(to_io)
}

/// `fchmodat(dir, name, mode, 0)`.
pub(crate) fn chmod_at(dir: BorrowedFd<'_>, name: &str, mode: u32) -> io::Result<()> {
    rustix::fs::chmodat(dir, name, Mode::from_raw_mode(mode), AtFlags::empty()).map_err(to_io)
}

/// `fchmod(fd, mode)`: the exact mode, whatever the umask.
pub(crate) fn fchmod(fd: BorrowedFd<'_>, mode: u32) -> io::Result<()> {
    rustix::fs::fchmod(fd, Mode::from_raw_mode(mode)).map_err(to_io)
}

/// `flock(fd, LOCK_EX | LOCK_NB)` or `LOCK_SH | LOCK_NB`; `Ok(false)` when held elsewhere.
pub(crate) fn try_flock(fd: BorrowedFd<'_>, exclusive: bool) -> io::Result<bool> {
    let op = if exclusive {
        FlockOperation::NonBlockingLockExclusive
    } else {
        FlockOperation::NonBlockingLockShared
    };
    match rustix::fs::flock(fd, op) {
        Ok(()) => Ok(true),
        Err(rustix::io::Errno::WOULDBLOCK) => Ok(false),
        Err(e) => Err(to_io(e)),
    }
}

/// `flock(fd, LOCK_UN)`.
pub(crate) fn unlock(fd: BorrowedFd<'_>) -> io::Result<()> {
    rustix::fs::flock(fd, FlockOperation::Unlock).map_err(to_io)
}

/// `socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC [| SOCK_NONBLOCK], 0)`.
pub(crate) fn seqpacket_socket(nonblocking: bool) -> io::Result<OwnedFd> {
    let mut flags = SocketFlags::CLOEXEC;
    if nonblocking {
        flags |= SocketFlags::NONBLOCK;
    }
    rustix::net::socket_with(AddressFamily::UNIX, SocketType::SEQPACKET, flags, None).map_err(to_io)
}

/// The `sockaddr_un` for `dir/file`.
///
/// When the full path does not fit the 108-byte `sun_path`, the address goes
/// through `/proc/self/fd/<dirfd>/file`, which the kernel resolves like the
/// real path; so a long `MAILSLOT_DIR` still works.
pub(crate) fn unix_addr(
    dir: &Path,
    dirfd: BorrowedFd<'_>,
    file: &str,
) -> io::Result<SocketAddrUnix> {
    let full = dir.join(file);
    match SocketAddrUnix::new(&full) {
        Ok(a) => Ok(a),
        Err(_) => {
            use std::os::fd::AsRawFd;
            let alt = format!("/proc/self/fd/{}/{}", dirfd.as_raw_fd(), file);
            SocketAddrUnix::new(alt.as_str()).map_err(to_io)
        }
    }
}

/// `bind(fd, addr)`.
pub(crate) fn bind(fd: BorrowedFd<'_>, addr: &SocketAddrUnix) -> io::Result<()> {
    rustix::net::bind(fd, addr).map_err(to_io)
}

/// `listen(fd, backlog)`.
pub(crate) fn listen(fd: BorrowedFd<'_>, backlog: i32) -> io::Result<()> {
    rustix::net::listen(fd, backlog).map_err(to_io)
}

/// `connect(fd, addr)`, retried on `EINTR`.
pub(crate) fn connect(fd: BorrowedFd<'_>, addr: &SocketAddrUnix) -> io::Result<()> {
    loop {
        match rustix::net::connect(fd, addr) {
            Err(rustix::io::Errno::INTR) => continue,
            r => return r.map_err(to_io),
        }
    }
}

/// `connect(fd, addr)` waiting at most `timeout` (`None`: as long as it
/// takes) for room in the listener's backlog: zero connects without
/// waiting (`O_NONBLOCK`), anything else bounds the kernel's wait with
/// `SO_SNDTIMEO`. A full backlog past the bound fails with `WouldBlock`.
pub(crate) fn connect_bounded(
    fd: BorrowedFd<'_>,
    addr: &SocketAddrUnix,
    timeout: Option<Duration>,
) -> io::Result<()> {
    match timeout {
        None => connect(fd, addr),
        Some(t) if t.is_zero() => {
            set_nonblocking(fd, true)?;
            let r = connect(fd, addr);
            set_nonblocking(fd, false)?;
            r
        }
        Some(t) => {
            let t = t.max(Duration::from_micros(1));
            rustix::net::sockopt::set_socket_timeout(
                fd,
                rustix::net::sockopt::Timeout::Send,
                Some(t),
            )
            .map_err(to_io)?;
            let r = connect(fd, addr);
            rustix::net::sockopt::set_socket_timeout(fd, rustix::net::sockopt::Timeout::Send, None)
                .map_err(to_io)?;
            r
        }
    }
}

/// `fcntl(fd, F_SETFL, ±O_NONBLOCK)`.
fn set_nonblocking(fd: BorrowedFd<'_>, on: bool) -> io::Result<()> {
    let flags = rustix::fs::fcntl_getfl(fd).map_err(to_io)?;
    let flags = if on {
        flags | rustix::fs::OFlags::NONBLOCK
    } else {
        flags - rustix::fs::OFlags::NONBLOCK
    };
    rustix::fs::fcntl_setfl(fd, flags).map_err(to_io)
}

/// `accept4(fd, SOCK_CLOEXEC | SOCK_NONBLOCK)`; `Ok(None)` when none is pending.
pub(crate) fn accept(fd: BorrowedFd<'_>) -> io::Result<Option<OwnedFd>> {
    loop {
        match rustix::net::accept_with(fd, SocketFlags::CLOEXEC | SocketFlags::NONBLOCK) {
            Ok(c) => return Ok(Some(c)),
            Err(rustix::io::Errno::AGAIN) => return Ok(None),
            Err(rustix::io::Errno::INTR) => continue,
            // The peer gave up before we accepted it: nothing to do.
            Err(rustix::io::Errno::CONNABORTED) => continue,
            Err(e) => return Err(to_io(e)),
        }
    }
}

/// `getrlimit(RLIMIT_NOFILE)`: the soft limit on open descriptors
/// (1024 when unknown or unlimited beyond any use).
pub(crate) fn nofile_limit() -> u64 {
    rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(1 << 20)
}

/// The most a Unix socket connection can hold unread, in the kernel's
/// accounting: a sender's buffer is at most twice `net.core.wmem_max`
/// (read from `/proc`; 212 992 when unreadable). Root may exceed it
/// (`SO_SNDBUFFORCE`); root is trusted.
pub(crate) fn socket_buffer_max() -> u64 {
    let wmem_max = std::fs::read_to_string("/proc/sys/net/core/wmem_max")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(212_992);
    2 * wmem_max
}

/// Credentials of a connected peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Cred {
    pub pid: u32,
    pub uid: u32,
    pub gid: u32,
}

/// `getsockopt(fd, SOL_SOCKET, SO_PEERCRED)`.
pub(crate) fn peer_cred(fd: BorrowedFd<'_>) -> io::Result<Cred> {
    let c = rustix::net::sockopt::socket_peercred(fd).map_err(to_io)?;
    Ok(Cred {
        pid: c.pid.as_raw_nonzero().get() as u32,
        uid: c.uid.as_raw(),
        gid: c.gid.as_raw(),
    })
}

/// Frames up to this size without a descriptor are copied into one buffer
/// and sent with `send`: for small messages the copy costs less than what
/// `sendmsg` adds in the kernel (message header and iovec import), about a
/// tenth of a small message's sending cost (measured with `mailslot bench`).
const SMALL_FRAME: usize = 2048;

/// `sendmsg(fd, [header, payload], SCM_RIGHTS?, MSG_NOSIGNAL [| MSG_DONTWAIT])`,
/// or `send` of a copy for a small frame without a descriptor.
///
/// Sends one whole frame; `EINTR` is retried.
pub(crate) fn send_frame(
    fd: BorrowedFd<'_>,
    header: &[u8],
    payload: &[u8],
    pass: Option<BorrowedFd<'_>>,
    nonblocking: bool,
) -> io::Result<()> {
    let mut flags = SendFlags::NOSIGNAL;
    if nonblocking {
        flags |= SendFlags::DONTWAIT;
    }
    let len = header.len() + payload.len();
    if pass.is_none() && len <= TINY_FRAME {
        // The common case: a small buffer to zero first, not 2 KiB.
        let mut frame = [0u8; TINY_FRAME];
        return send_copied(fd, &mut frame, header, payload, flags);
    }
    if pass.is_none() && len <= SMALL_FRAME {
        let mut frame = [0u8; SMALL_FRAME];
        return send_copied(fd, &mut frame, header, payload, flags);
    }
    let iov = [IoSlice::new(header), IoSlice::new(payload)];
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let fds;
    let mut control = SendAncillaryBuffer::new(&mut space);
    if let Some(p) = pass {
        fds = [p];
        control.push(SendAncillaryMessage::ScmRights(&fds));
    }
    loop {
        match rustix::net::sendmsg(fd, &iov, &mut control, flags) {
            Ok(_) => return Ok(()),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(to_io(e)),
        }
    }
}

/// Frames up to this size are built in a buffer of this size.
const TINY_FRAME: usize = 256;

/// `send(fd, header + payload)` from `frame`, which holds both.
fn send_copied(
    fd: BorrowedFd<'_>,
    frame: &mut [u8],
    header: &[u8],
    payload: &[u8],
    flags: SendFlags,
) -> io::Result<()> {
    let len = header.len() + payload.len();
    frame[..header.len()].copy_from_slice(header);
    frame[header.len()..len].copy_from_slice(payload);
    loop {
        match rustix::net::send(fd, &frame[..len], flags) {
            Ok(_) => return Ok(()),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(to_io(e)),
        }
    }
}

/// What [`recv_frame`] got.
pub(crate) enum Recv {
    /// A frame of `len` bytes (more than the buffer when `truncated`), with
    /// a passed descriptor if one came along.
    Frame {
        len: usize,
        truncated: bool,
        fd: Option<OwnedFd>,
    },
    /// Nothing queued right now.
    WouldBlock,
    /// The peer closed its end and everything it sent has been read.
    Closed,
}

/// `recv(fd, buf, MSG_DONTWAIT | MSG_TRUNC)`: like [`recv_frame`] but
/// cheaper, and any descriptor sent with the frame is closed by the kernel
/// (so `fd` is always `None`).
pub(crate) fn recv_packet(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<Recv> {
    loop {
        match rustix::net::recv(fd, &mut *buf, RecvFlags::DONTWAIT | RecvFlags::TRUNC) {
            Ok((_, 0)) => return Ok(Recv::Closed),
            Ok((_, len)) => {
                return Ok(Recv::Frame {
                    len: len.min(buf.len()),
                    truncated: len > buf.len(),
                    fd: None,
                });
            }
            Err(rustix::io::Errno::INTR) => {}
            Err(rustix::io::Errno::AGAIN) => return Ok(Recv::WouldBlock),
            // See `recv_frame`.
            Err(rustix::io::Errno::CONNRESET) => {}
            Err(e) => return Err(to_io(e)),
        }
    }
}

/// `recv(fd, 1 byte, MSG_DONTWAIT | MSG_PEEK)`: whether a frame waits,
/// without taking it.
pub(crate) fn peek_packet(fd: BorrowedFd<'_>) -> io::Result<Recv> {
    let mut b = [0u8; 1];
    loop {
        match rustix::net::recv(fd, &mut b, RecvFlags::DONTWAIT | RecvFlags::PEEK) {
            Ok((_, 0)) => return Ok(Recv::Closed),
            Ok((_, len)) => {
                return Ok(Recv::Frame {
                    len,
                    truncated: true,
                    fd: None,
                });
            }
            Err(rustix::io::Errno::INTR) => {}
            Err(rustix::io::Errno::AGAIN) => return Ok(Recv::WouldBlock),
            // See `recv_frame`.
            Err(rustix::io::Errno::CONNRESET) => {}
            Err(e) => return Err(to_io(e)),
        }
    }
}

/// `recvmsg(fd, buf, MSG_DONTWAIT | MSG_TRUNC | MSG_CMSG_CLOEXEC)`.
pub(crate) fn recv_frame(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<Recv> {
    let mut iov = [IoSliceMut::new(buf)];
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(2))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let flags = RecvFlags::DONTWAIT | RecvFlags::TRUNC | RecvFlags::CMSG_CLOEXEC;
    let r = loop {
        match rustix::net::recvmsg(fd, &mut iov, &mut control, flags) {
            Ok(r) => break r,
            Err(rustix::io::Errno::INTR) => continue,
            Err(rustix::io::Errno::AGAIN) => return Ok(Recv::WouldBlock),
            // A peer that closes with frames of ours unread (a writer with
            // release notices it never collected) leaves ECONNRESET pending
            // *before* the frames it sent: reading the error clears it, so
            // read on; end-of-stream comes after the last frame.
            Err(rustix::io::Errno::CONNRESET) => continue,
            Err(e) => return Err(to_io(e)),
        }
    };
    let mut passed = None;
    for msg in control.drain() {
        if let RecvAncillaryMessage::ScmRights(fds) = msg {
            for f in fds {
                // Keep the first; any extra descriptor is closed on drop.
                if passed.is_none() {
                    passed = Some(f);
                }
            }
        }
    }
    // Every frame carries a header, so zero bytes with no descriptor is
    // end-of-stream, never a message.
    if r.bytes == 0 && passed.is_none() {
        return Ok(Recv::Closed);
    }
    Ok(Recv::Frame {
        len: r.bytes,
        truncated: r.flags.contains(rustix::net::ReturnFlags::TRUNC),
        fd: passed,
    })
}

/// Whether the next frame's descriptor could be received now.
#[derive(Debug)]
pub(crate) enum PeekFd {
    /// It could (or the frame has none).
    Fits,
    /// This process is out of descriptors: the frame stays queued.
    NoRoom,
    /// Nothing queued.
    WouldBlock,
    /// The peer has closed its end (or the connection failed).
    Closed,
}

/// `recvmsg(fd, 1 byte, MSG_DONTWAIT | MSG_PEEK | MSG_CMSG_CLOEXEC)`:
/// whether the next frame's descriptor can be taken without losing it. A
/// receive that cannot install the descriptor (`MSG_CTRUNC`, out of
/// descriptors) would drop it with the frame; a peek leaves both queued.
pub(crate) fn peek_frame_fd(fd: BorrowedFd<'_>) -> PeekFd {
    let mut b = [0u8; 1];
    let mut iov = [IoSliceMut::new(&mut b)];
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(2))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let flags = RecvFlags::DONTWAIT | RecvFlags::PEEK | RecvFlags::CMSG_CLOEXEC;
    let r = loop {
        match rustix::net::recvmsg(fd, &mut iov, &mut control, flags) {
            Ok(r) => break r,
            Err(rustix::io::Errno::INTR | rustix::io::Errno::CONNRESET) => continue,
            Err(rustix::io::Errno::AGAIN) => return PeekFd::WouldBlock,
            Err(_) => return PeekFd::Closed,
        }
    };
    // The peeked copies of any descriptor are closed here.
    let _ = control.drain().count();
    if r.flags.contains(rustix::net::ReturnFlags::CTRUNC) {
        PeekFd::NoRoom
    } else if r.bytes == 0 {
        PeekFd::Closed
    } else {
        PeekFd::Fits
    }
}

/// `ioctl(fd, FIONREAD)`: bytes waiting in a socket's receive queue (for
/// `SOCK_SEQPACKET`, the sum over every queued packet).
pub(crate) fn queued_bytes(fd: BorrowedFd<'_>) -> io::Result<usize> {
    rustix::io::ioctl_fionread(fd)
        .map(|n| n as usize)
        .map_err(to_io)
}

/// `poll(fd, POLLOUT, timeout)`; `Ok(false)` on timeout.
pub(crate) fn wait_writable(fd: BorrowedFd<'_>, timeout: Option<Duration>) -> io::Result<bool> {
    wait_for(fd, PollFlags::OUT, timeout)
}

/// `poll(fd, POLLIN, timeout)`; `Ok(false)` on timeout.
pub(crate) fn wait_readable(fd: BorrowedFd<'_>, timeout: Option<Duration>) -> io::Result<bool> {
    wait_for(fd, PollFlags::IN, timeout)
}

/// `poll(fd, what, timeout)`; `Ok(false)` on timeout.
fn wait_for(fd: BorrowedFd<'_>, what: PollFlags, timeout: Option<Duration>) -> io::Result<bool> {
    let mut fds = [PollFd::new(&fd, what)];
    let ts = timeout.map(timespec);
    loop {
        match rustix::event::poll(&mut fds, ts.as_ref()) {
            Ok(0) => return Ok(false),
            Ok(_) => return Ok(true),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(to_io(e)),
        }
    }
}

/// An epoll instance with `u64` tokens.
///
/// Holds no event buffer (rustix's `epoll::Event` carries a raw pointer and
/// is not `Send`), so a `Reader` can move to another thread.
pub(crate) struct Poller {
    fd: OwnedFd,
}

impl Poller {
    /// `epoll_create1(EPOLL_CLOEXEC)`.
    pub(crate) fn new() -> io::Result<Poller> {
        Ok(Poller {
            fd: epoll::create(epoll::CreateFlags::CLOEXEC).map_err(to_io)?,
        })
    }

    /// `epoll_ctl(EPOLL_CTL_ADD, fd, EPOLLIN | EPOLLRDHUP)`, level-triggered.
    pub(crate) fn add(&self, fd: BorrowedFd<'_>, token: u64) -> io::Result<()> {
        self.add_with(fd, token, epoll::EventFlags::RDHUP)
    }

    /// `epoll_ctl(EPOLL_CTL_ADD, fd, EPOLLIN | EPOLLET)`: one event per
    /// signal of an eventfd, so it never needs to be read (and a peer that
    /// holds the other copy cannot make a read block).
    pub(crate) fn add_edge(&self, fd: BorrowedFd<'_>, token: u64) -> io::Result<()> {
        self.add_with(fd, token, epoll::EventFlags::ET)
    }

    fn add_with(&self, fd: BorrowedFd<'_>, token: u64, extra: epoll::EventFlags) -> io::Result<()> {
        let events = epoll::EventFlags::IN | extra;
        epoll::add(&self.fd, fd, epoll::EventData::new_u64(token), events).map_err(to_io)
    }

    /// `epoll_ctl(EPOLL_CTL_DEL, fd)`.
    pub(crate) fn delete(&self, fd: BorrowedFd<'_>) -> io::Result<()> {
        epoll::delete(&self.fd, fd).map_err(to_io)
    }

    /// `epoll_wait(timeout)`: fills `tokens` with up to `max` ready tokens
    /// (cleared first). `None` waits forever; `EINTR` returns no events.
    pub(crate) fn wait(
        &mut self,
        tokens: &mut Vec<u64>,
        max: usize,
        timeout: Option<Duration>,
    ) -> io::Result<()> {
        tokens.clear();
        let mut events: Vec<epoll::Event> = Vec::with_capacity(max.max(8));
        let ts = timeout.map(timespec);
        match epoll::wait(
            &self.fd,
            rustix::buffer::spare_capacity(&mut events),
            ts.as_ref(),
        ) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => return Ok(()),
            Err(e) => return Err(to_io(e)),
        }
        tokens.extend(events.iter().map(|e| e.data.u64()));
        Ok(())
    }
}

impl AsFd for Poller {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// A non-blocking eventfd used to interrupt a waiting reader.
#[derive(Debug)]
pub(crate) struct EventFd {
    fd: OwnedFd,
}

impl EventFd {
    /// `eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)`.
    pub(crate) fn new() -> io::Result<EventFd> {
        Ok(EventFd {
            fd: rustix::event::eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)
                .map_err(to_io)?,
        })
    }

    /// `write(eventfd, 1)`.
    pub(crate) fn signal(&self) -> io::Result<()> {
        match rustix::io::write(&self.fd, &1u64.to_ne_bytes()) {
            Ok(_) | Err(rustix::io::Errno::AGAIN) => Ok(()),
            Err(e) => Err(to_io(e)),
        }
    }

    /// `read(eventfd)`: consumes pending signals; true if there were any.
    pub(crate) fn drain(&self) -> bool {
        let mut b = [0u8; 8];
        matches!(rustix::io::read(&self.fd, &mut b), Ok(8))
    }
}

impl AsFd for EventFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

const ALL_SEALS: SealFlags = SealFlags::SEAL
    .union(SealFlags::SHRINK)
    .union(SealFlags::GROW)
    .union(SealFlags::WRITE);

/// `memfd_create("mailslot-message", MFD_CLOEXEC | MFD_ALLOW_SEALING)` and
/// `ftruncate(size)`.
fn memfd(size: u64) -> io::Result<OwnedFd> {
    let fd = rustix::fs::memfd_create(
        "mailslot-message",
        rustix::fs::MemfdFlags::CLOEXEC | rustix::fs::MemfdFlags::ALLOW_SEALING,
    )
    .map_err(to_io)?;
    rustix::fs::ftruncate(&fd, size).map_err(to_io)?;
    Ok(fd)
}

/// `pwrite(fd, data, 0)` until all of `data` is written.
pub(crate) fn pwrite_all(fd: BorrowedFd<'_>, data: &[u8]) -> io::Result<()> {
    let mut off = 0usize;
    while off < data.len() {
        match rustix::io::pwrite(fd, &data[off..], off as u64) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => off += n,
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(to_io(e)),
        }
    }
    Ok(())
}

/// `memfd_create("mailslot-message", MFD_CLOEXEC | MFD_ALLOW_SEALING)`, then
/// `write` the data and `fcntl(F_ADD_SEALS)` so nobody can change it.
pub(crate) fn sealed_memfd(data: &[u8]) -> io::Result<OwnedFd> {
    let fd = memfd(data.len() as u64)?;
    pwrite_all(fd.as_fd(), data)?;
    rustix::fs::fcntl_add_seals(&fd, ALL_SEALS).map_err(to_io)?;
    Ok(fd)
}

/// A reusable buffer: a memfd of `size` bytes sealed against shrinking and
/// growing (so a reader's `pread` of it never comes up short) but still
/// writable, to be filled with [`pwrite_all`] again and again.
pub(crate) fn fixed_size_memfd(size: u64) -> io::Result<OwnedFd> {
    let fd = memfd(size)?;
    rustix::fs::fcntl_add_seals(&fd, SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL)
        .map_err(to_io)?;
    Ok(fd)
}

/// `fstat`, then `fcntl(F_GET_SEALS)` unless `sealed_before`: the
/// descriptor must be a fully sealed memfd of exactly `len` bytes, or with
/// `writable`, a memfd sealed against shrinking and growing of at least
/// `len` bytes (see [`fixed_size_memfd`]). `sealed_before(dev, ino)` says
/// the file was checked before (seals are never removed, so a file that had
/// them still has them).
pub(crate) fn check_memfd(
    fd: BorrowedFd<'_>,
    len: u64,
    writable: bool,
    sealed_before: impl FnOnce(u64, u64) -> bool,
) -> io::Result<Stat> {
    // A descriptor opened write-only (e.g. through `/proc/PID/fd`) passes
    // every seal check and then fails every read: refuse it here, where it
    // costs only its own connection.
    let mode = rustix::fs::fcntl_getfl(fd).map_err(to_io)? & rustix::fs::OFlags::RWMODE;
    if mode != rustix::fs::OFlags::RDONLY && mode != rustix::fs::OFlags::RDWR {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "passed memory file is not open for reading",
        ));
    }
    let st = fstat(fd)?;
    let size = st.st_size as u64;
    if size != len && !(writable && size > len) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("passed memory file holds {size} bytes, header says {len}"),
        ));
    }
    if writable && sealed_before(st.st_dev, st.st_ino) {
        return Ok(st);
    }
    let seals = rustix::fs::fcntl_get_seals(fd).map_err(to_io)?;
    let needed = if writable {
        SealFlags::SHRINK | SealFlags::GROW
    } else {
        SealFlags::SHRINK | SealFlags::GROW | SealFlags::WRITE
    };
    if !seals.contains(needed) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "passed memory file is not sealed",
        ));
    }
    Ok(st)
}

pub(crate) use shm::SharedMap;

/// Shared mappings of reusable message buffers: two copies of a large
/// message through mappings that stay in place cost about half of what
/// `pwrite` and `pread` cost, which look up and lock every 4 KiB page.
#[allow(unsafe_code)]
mod shm {
    use std::io;
    use std::os::fd::BorrowedFd;
    use std::ptr::NonNull;
    use std::sync::atomic::{AtomicU32, AtomicU64};

    use rustix::fs::SealFlags;
    use rustix::mm::{MapFlags, ProtFlags};

    /// A `MAP_SHARED` mapping of a whole memory file that cannot shrink.
    ///
    /// Every access stays within the mapping, and the file is sealed
    /// against shrinking, so no access can fault for a missing page
    /// (`SIGBUS`). Another process may change the bytes while we copy them
    /// (the file's writer, or a reader that kept its descriptor): copies go
    /// through raw pointers and never make a reference to the mapped
    /// memory, so that yields odd bytes at worst, which only that process
    /// could have sent anyway.
    pub(crate) struct SharedMap {
        ptr: NonNull<u8>,
        len: usize,
        writable: bool,
    }

    // SAFETY: the mapping belongs to this value alone; nothing else in this
    // process points into it, so moving it to another thread is sound.
    unsafe impl Send for SharedMap {}

    impl SharedMap {
        /// `mmap(NULL, size, PROT_READ [| PROT_WRITE], MAP_SHARED, fd, 0)`
        /// for a memory file of `size` bytes sealed against shrinking and
        /// growing (checked here with `fcntl(F_GET_SEALS)` and `fstat`).
        pub(crate) fn new(fd: BorrowedFd<'_>, writable: bool) -> io::Result<SharedMap> {
            let seals = rustix::fs::fcntl_get_seals(fd)?;
            if !seals.contains(SealFlags::SHRINK | SealFlags::GROW) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "memory file can change size; not mapping it",
                ));
            }
            let len = usize::try_from(rustix::fs::fstat(fd)?.st_size)
                .map_err(|_| io::Error::from(io::ErrorKind::InvalidData))?;
            if len == 0 {
                return Err(io::Error::from(io::ErrorKind::InvalidData));
            }
            let prot = if writable {
                ProtFlags::READ | ProtFlags::WRITE
            } else {
                ProtFlags::READ
            };
            // SAFETY: a fresh mapping chosen by the kernel (no address
            // given), so it cannot overlap memory Rust already uses.
            let p = unsafe {
                rustix::mm::mmap(std::ptr::null_mut(), len, prot, MapFlags::SHARED, fd, 0)?
            };
            let ptr =
                NonNull::new(p.cast::<u8>()).ok_or_else(|| io::Error::other("mmap gave NULL"))?;
            Ok(SharedMap { ptr, len, writable })
        }

        /// Bytes mapped: the file's size.
        pub(crate) fn len(&self) -> usize {
            self.len
        }

        /// Copies the first `dst.len()` bytes of the mapping into `dst`.
        pub(crate) fn copy_to(&self, dst: &mut [u8]) {
            assert!(dst.len() <= self.len, "copy beyond the mapping");
            // SAFETY: the source lies within our live mapping (checked
            // above) and `dst` is a distinct, exclusively borrowed buffer.
            unsafe {
                std::ptr::copy_nonoverlapping(self.ptr.as_ptr(), dst.as_mut_ptr(), dst.len());
            }
        }

        /// Copies `src` to the start of a writable mapping.
        pub(crate) fn copy_from(&self, src: &[u8]) {
            self.write_at(0, src);
        }

        /// Copies `dst.len()` bytes from offset `off` of the mapping.
        pub(crate) fn read_at(&self, off: usize, dst: &mut [u8]) {
            assert!(
                off <= self.len && dst.len() <= self.len - off,
                "copy beyond the mapping"
            );
            // SAFETY: the source lies within our live mapping (checked
            // above) and `dst` is a distinct, exclusively borrowed buffer.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    self.ptr.as_ptr().add(off),
                    dst.as_mut_ptr(),
                    dst.len(),
                );
            }
        }

        /// Copies `src` to offset `off` of a writable mapping.
        pub(crate) fn write_at(&self, off: usize, src: &[u8]) {
            assert!(
                self.writable && off <= self.len && src.len() <= self.len - off,
                "write beyond the mapping"
            );
            // SAFETY: the destination lies within our live, writable
            // mapping (checked above) and `src` is ordinary memory.
            unsafe {
                std::ptr::copy_nonoverlapping(src.as_ptr(), self.ptr.as_ptr().add(off), src.len());
            }
        }

        /// The 8-byte word at `off` of a writable mapping, as an atomic.
        ///
        /// Another process may change it at any time, which is what atomics
        /// are for: the value read is any value, never undefined behaviour.
        pub(crate) fn atomic_u64(&self, off: usize) -> &AtomicU64 {
            assert!(
                self.writable && off % 8 == 0 && off <= self.len && 8 <= self.len - off,
                "atomic beyond the mapping or misaligned"
            );
            // SAFETY: in bounds and 8-aligned (the mapping starts on a page),
            // writable so stores cannot fault, and valid for the lifetime of
            // `&self` (unmapped only on drop). `AtomicU64` has the layout of
            // `u64` and every bit pattern is a valid value.
            unsafe { &*self.ptr.as_ptr().add(off).cast::<AtomicU64>() }
        }

        /// The 4-byte word at `off` of a writable mapping, as an atomic.
        pub(crate) fn atomic_u32(&self, off: usize) -> &AtomicU32 {
            assert!(
                self.writable && off % 4 == 0 && off <= self.len && 4 <= self.len - off,
                "atomic beyond the mapping or misaligned"
            );
            // SAFETY: as for `atomic_u64`.
            unsafe { &*self.ptr.as_ptr().add(off).cast::<AtomicU32>() }
        }
    }

    impl Drop for SharedMap {
        /// `munmap`.
        fn drop(&mut self) {
            // SAFETY: we mapped exactly this range and hand out no
            // references into it, so nothing uses it after this.
            let _ = unsafe { rustix::mm::munmap(self.ptr.as_ptr().cast(), self.len) };
        }
    }

    impl std::fmt::Debug for SharedMap {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("SharedMap").field("len", &self.len).finish()
        }
    }
}

/// `pread(fd, buf, 0)` until `buf` is full.
pub(crate) fn pread_exact(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<()> {
    let mut off = 0usize;
    while off < buf.len() {
        match rustix::io::pread(fd, &mut buf[off..], off as u64) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => off += n,
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(to_io(e)),
        }
    }
    Ok(())
}

/// Major and minor device numbers of `dev` (`major(3)`, `minor(3)`).
pub(crate) fn dev_major_minor(dev: u64) -> (u32, u32) {
    (rustix::fs::major(dev), rustix::fs::minor(dev))
}

// --- Network sends (the `network` feature, `crate::net`). ---

#[cfg(feature = "network")]
pub(crate) use network::*;

#[cfg(feature = "network")]
pub(crate) mod network {
    use std::fs::File;
    use std::io::{self, Read, Write};
    use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
    use std::os::fd::OwnedFd;

    /// Reads `/proc/sys/kernel/hostname` (the UTS host name).
    pub(crate) fn hostname() -> String {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    }

    /// `socket(AF_INET, SOCK_DGRAM)` + `bind(0.0.0.0:0)` + `setsockopt(SO_BROADCAST)`:
    /// an ephemeral UDP socket that may send to broadcast addresses.
    pub(crate) fn udp_socket() -> io::Result<UdpSocket> {
        let s = UdpSocket::bind("0.0.0.0:0")?;
        s.set_broadcast(true)?;
        Ok(s)
    }

    /// One up, broadcast-capable IPv4 address of this host.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct Interface {
        /// Interface name, e.g. `eth0`.
        pub name: String,
        /// Our address on it.
        pub addr: Ipv4Addr,
        /// The subnet's directed broadcast address.
        pub broadcast: Ipv4Addr,
    }

    const NLMSG_ERROR: u16 = 2;
    const NLMSG_DONE: u16 = 3;
    const RTM_NEWLINK: u16 = 16;
    const RTM_GETLINK: u16 = 18;
    const RTM_NEWADDR: u16 = 20;
    const RTM_GETADDR: u16 = 22;
    const NLM_F_REQUEST: u16 = 1;
    const NLM_F_DUMP: u16 = 0x300;
    const IFF_UP: u32 = 1;
    const IFF_BROADCAST: u32 = 2;
    const IFF_LOOPBACK: u32 = 8;
    const IFA_LOCAL: u16 = 2;
    const IFA_LABEL: u16 = 3;
    const IFA_BROADCAST: u16 = 4;
    const IFA_ADDRESS: u16 = 1;
    const AF_INET: u8 = 2;

    /// Netlink `RTM_GETLINK` and `RTM_GETADDR` dumps: the up, non-loopback,
    /// broadcast-capable interfaces with their IPv4 address and broadcast
    /// address (computed from the prefix when the kernel has none).
    pub(crate) fn interfaces() -> io::Result<Vec<Interface>> {
        let links = netlink_dump(RTM_GETLINK, 1)?;
        let addrs = netlink_dump(RTM_GETADDR, 2)?;
        let mut up = std::collections::HashMap::new();
        for (ty, body) in &links {
            if *ty != RTM_NEWLINK || body.len() < 16 {
                continue;
            }
            let index = u32::from_ne_bytes(body[4..8].try_into().unwrap_or_default());
            let flags = u32::from_ne_bytes(body[8..12].try_into().unwrap_or_default());
            let usable =
                flags & IFF_UP != 0 && flags & IFF_LOOPBACK == 0 && flags & IFF_BROADCAST != 0;
            up.insert(index, usable);
        }
        let mut out = Vec::new();
        for (ty, body) in &addrs {
            if *ty != RTM_NEWADDR || body.len() < 8 || body[0] != AF_INET {
                continue;
            }
            let prefix = body[1];
            let index = u32::from_ne_bytes(body[4..8].try_into().unwrap_or_default());
            if !up.get(&index).copied().unwrap_or(false) {
                continue;
            }
            let (mut local, mut address, mut brd, mut label) = (None, None, None, String::new());
            for (t, v) in attrs(&body[8..]) {
                let ip = || <[u8; 4]>::try_from(v).ok().map(Ipv4Addr::from);
                match t {
                    IFA_LOCAL => local = ip(),
                    IFA_ADDRESS => address = ip(),
                    IFA_BROADCAST => brd = ip(),
                    IFA_LABEL => {
                        label = String::from_utf8_lossy(v.split(|&b| b == 0).next().unwrap_or(&[]))
                            .into_owned()
                    }
                    _ => {}
                }
            }
            let Some(addr) = local.or(address) else {
                continue;
            };
            let broadcast = match brd {
                Some(b) if !b.is_unspecified() => b,
                _ if prefix < 31 => {
                    let mask = u32::MAX << (32 - u32::from(prefix));
                    Ipv4Addr::from(u32::from(addr) | !mask)
                }
                _ => continue,
            };
            out.push(Interface {
                name: label,
                addr,
                broadcast,
            });
        }
        Ok(out)
    }

    /// Splits rtattrs: `(type, value)`.
    fn attrs(mut b: &[u8]) -> Vec<(u16, &[u8])> {
        let mut out = Vec::new();
        while b.len() >= 4 {
            let len = usize::from(u16::from_ne_bytes([b[0], b[1]]));
            let ty = u16::from_ne_bytes([b[2], b[3]]);
            if len < 4 || len > b.len() {
                break;
            }
            out.push((ty, &b[4..len]));
            let next = (len + 3) & !3;
            b = b.get(next..).unwrap_or(&[]);
        }
        out
    }

    /// Sends one netlink dump request and collects `(type, body)` of every reply.
    fn netlink_dump(request: u16, seq: u32) -> io::Result<Vec<(u16, Vec<u8>)>> {
        use rustix::net::{AddressFamily, SocketFlags, SocketType};
        let fd: OwnedFd = rustix::net::socket_with(
            AddressFamily::NETLINK,
            SocketType::RAW,
            SocketFlags::CLOEXEC,
            None, // NETLINK_ROUTE
        )?;
        let mut f = File::from(fd);
        // nlmsghdr (16) + a 16-byte ifinfomsg / 8-byte ifaddrmsg, family AF_INET.
        let body_len = if request == RTM_GETLINK { 16 } else { 8 };
        let mut req = Vec::with_capacity(16 + body_len);
        req.extend_from_slice(&((16 + body_len) as u32).to_ne_bytes());
        req.extend_from_slice(&request.to_ne_bytes());
        req.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
        req.extend_from_slice(&seq.to_ne_bytes());
        req.extend_from_slice(&0u32.to_ne_bytes());
        let mut body = vec![0u8; body_len];
        if request == RTM_GETADDR {
            body[0] = AF_INET;
        }
        req.extend_from_slice(&body);
        f.write_all(&req)?;
        let mut out = Vec::new();
        let mut buf = vec![0u8; 32 * 1024];
        // Bounded: a dump of a few thousand addresses ends well before this.
        for _ in 0..1024 {
            let n = f.read(&mut buf)?;
            let mut b = &buf[..n];
            while b.len() >= 16 {
                let len = u32::from_ne_bytes(b[0..4].try_into().unwrap_or_default()) as usize;
                let ty = u16::from_ne_bytes([b[4], b[5]]);
                if len < 16 || len > b.len() {
                    break;
                }
                match ty {
                    NLMSG_DONE => return Ok(out),
                    NLMSG_ERROR => {
                        let errno = i32::from_ne_bytes(b[16..20].try_into().unwrap_or_default());
                        return Err(io::Error::from_raw_os_error(-errno));
                    }
                    _ => out.push((ty, b[16..len].to_vec())),
                }
                let next = (len + 3) & !3;
                b = b.get(next..).unwrap_or(&[]);
            }
        }
        Err(io::Error::other("netlink dump did not end"))
    }

    /// `connect()` + `getsockname()` on a UDP socket: our address on the route to `dest`.
    pub(crate) fn local_addr_for(dest: Ipv4Addr) -> io::Result<Ipv4Addr> {
        let s = UdpSocket::bind("0.0.0.0:0")?;
        s.set_broadcast(true)?;
        s.connect(SocketAddrV4::new(dest, 9))?;
        match s.local_addr()? {
            std::net::SocketAddr::V4(a) => Ok(*a.ip()),
            std::net::SocketAddr::V6(_) => Err(io::Error::other("no IPv4 route")),
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn rtattrs_are_bounds_checked() {
            let mut b = Vec::new();
            b.extend_from_slice(&8u16.to_ne_bytes());
            b.extend_from_slice(&IFA_LOCAL.to_ne_bytes());
            b.extend_from_slice(&[10, 0, 0, 1]);
            b.extend_from_slice(&200u16.to_ne_bytes()); // runs past the end
            b.extend_from_slice(&IFA_BROADCAST.to_ne_bytes());
            let a = attrs(&b);
            assert_eq!(a, vec![(IFA_LOCAL, &[10u8, 0, 0, 1][..])]);
        }
    }
}
