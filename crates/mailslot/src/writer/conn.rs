//! One frame onto one reader connection's socket: waiting for room, the announce, the reader gone.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::time::Instant;

use super::{Slot, Tally};
use crate::error::{Result, io_err};
use crate::frame::{HEADER_LEN, Header, Kind};
use crate::receipt::{Ledger, Receipts};
use crate::sys;

/// Sends one frame on `fd`, announced first when it carries a descriptor
/// and the reader wants that (see `frame.rs`), waiting for room up to
/// `deadline`. An inline frame too large for the socket buffer goes as a
/// memory file instead; a closed connection is named (refused, or the
/// reader gone). An announce whose frame then times out is harmless: the
/// reader receives the next frame, whatever it is, with `recvmsg`.
pub(super) fn send_frame(
    slot: &Slot,
    fd: BorrowedFd<'_>,
    header: Header,
    payload: &[u8],
    memfd: Option<BorrowedFd<'_>>,
    deadline: Option<Instant>,
) -> Result<()> {
    if memfd.is_some() && slot.announce {
        let announce = Header::new(Kind::Announce, 0, 0);
        send_frame(slot, fd, announce, &[], None, deadline)?;
    }
    let hdr: [u8; HEADER_LEN] = header.encode();
    loop {
        match sys::send_frame(fd, &hdr, payload, memfd, true) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let remaining = deadline.map(|d| d.saturating_duration_since(Instant::now()));
                let ready = remaining.is_none_or(|r| !r.is_zero())
                    && sys::wait_writable(fd, remaining)
                        .map_err(io_err("waiting for room", &slot.name))?;
                if !ready {
                    return Err(slot.timed_out("writing to"));
                }
            }
            // The socket buffer cannot hold this inline frame at all:
            // send it as a sealed memfd instead.
            Err(e)
                if e.raw_os_error() == Some(rustix::io::Errno::MSGSIZE.raw_os_error())
                    && header.kind == Kind::Inline
                    && header.flags == 0 =>
            {
                let m = sys::sealed_memfd(payload)
                    .map_err(io_err("preparing a large message", &slot.name))?;
                let h = Header {
                    kind: Kind::Memfd,
                    ..header
                };
                return send_frame(slot, fd, h, &[], Some(m.as_fd()), deadline);
            }
            Err(e)
                // A reader that closed before it accepted us leaves a
                // connection the kernel may report as refused.
                if matches!(
                    e.kind(),
                    io::ErrorKind::BrokenPipe
                        | io::ErrorKind::ConnectionReset
                        | io::ErrorKind::ConnectionRefused
                        | io::ErrorKind::NotConnected
                ) =>
            {
                return Err(slot.gone(refusal_on(fd)));
            }
            Err(e) => return Err(io_err("sending a message", &slot.name)(e)),
        }
    }
}

/// Asks the reader at the other end of `fd` to count, in a new receipt
/// file of this writer's, each message of this connection that a read
/// returns; `ledger` keeps the file from the number of messages sent so far.
pub(super) fn send_receipts(
    slot: &Slot,
    fd: BorrowedFd<'_>,
    tally: &Tally,
    ledger: &mut Ledger,
    deadline: Option<Instant>,
) -> Result<()> {
    let (receipts, memfd) =
        Receipts::create().map_err(io_err("creating a receipt file", &slot.name))?;
    let head = Header::new(Kind::Receipts, 0, 0);
    send_frame(slot, fd, head, &[], Some(memfd.as_fd()), deadline)?;
    ledger.join(fd.as_raw_fd() as u64, tally.sent(), receipts);
    Ok(())
}

/// Whether the reader at the other end of `fd` has closed it (notices it
/// sent are read and dropped).
pub(super) fn peer_closed(fd: BorrowedFd<'_>) -> bool {
    let mut buf = [0u8; HEADER_LEN];
    loop {
        match sys::recv_packet(fd, &mut buf) {
            Ok(sys::Recv::Frame { .. }) => {}
            Ok(sys::Recv::WouldBlock) => return false,
            Ok(sys::Recv::Closed) | Err(_) => return true,
        }
    }
}

/// Takes what the reader left on a connection it closed; the reason if it
/// refused the connection.
fn refusal_on(fd: BorrowedFd<'_>) -> Option<u16> {
    let mut buf = [0u8; HEADER_LEN];
    while let Ok(sys::Recv::Frame { len, .. }) = sys::recv_packet(fd, &mut buf) {
        if let Ok(h) = Header::decode(&buf[..len.min(HEADER_LEN)]) {
            if h.kind == Kind::Refused {
                return Some(h.flags);
            }
        }
    }
    None
}
