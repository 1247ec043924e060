//! AF_UNIX `SOCK_SEQPACKET` sockets: connections, frames with `SCM_RIGHTS`, peer credentials.

use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::Path;
use std::time::Duration;

use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags, SocketAddrUnix, SocketFlags, SocketType,
};

use super::to_io;

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
