//! The local route: one reader over one connection, through its ring, its socket, or memory files for large messages.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{Slot, Tally, conn};
use crate::error::{Error, Result, io_err};
use crate::frame::{FLAG_ACCEPTED, FLAG_RECYCLE, HEADER_LEN, Header, INLINE_MAX, Kind};
use crate::memfd_pool::{self, MemfdPool};
use crate::namespace::{Meta, Namespace};
use crate::ring::{self, RingWriter};
use crate::sys;

/// While its messages go through the ring, a writer looks at its socket
/// (release and room notices, the reader gone) when at least this long has
/// passed since it last did, not on every write: so a write right after a
/// reader crashed may still succeed, unread, as one just before it would.
/// A reader that closes normally marks the ring, which every write checks.
const CHECK_NS: u64 = 20_000;

/// A write that may wait to be published (see [`Local::write_maybe_deferred`])
/// waits only when the previous record went into the ring less than this
/// long before: a message alone is published at once. Under the time a
/// reply takes (a ping-pong round trip of 64 B is 0.8 µs here), so that a
/// writer answering messages does not count as a stream; a stream of 1 KiB
/// messages comes every 0.15–0.4 µs. (Unoptimized builds write some twenty
/// times slower; their tests must still see streams.)
const STREAM_GAP_NS: u64 = if cfg!(debug_assertions) {
    1_000_000
} else {
    500
};
/// A writer of a small record (see [`ring::SMALL_RECORD`]) short of room
/// in the ring watches the reader's head this long (yielding the
/// processor) before it asks for a room notice and sleeps: a reader a
/// little behind frees room within microseconds, while the notice costs it
/// a socket send and wakes the writer, which the scheduler then often puts
/// on the reader's processor. Writers of large records sleep at once: their
/// reader copies for longer between notices, and a spinning writer would
/// slow its copies on a shared core.
const ROOM_SPIN_NS: u64 = 20_000;
/// ... and at most this many records, or bytes, wait to be published.
const DEFER_RECORDS: u32 = 16;
const DEFER_BYTES: usize = 16 << 10;

/// A writer gives up on an offered ring that the reader has not answered
/// after this many writes (an old reader that ignores the offer).
const OFFER_CHECKS: u32 = 1000;

/// Messages from this size up go in a reusable buffer when one is free,
/// though they would fit inline: a socket buffer that large costs more to
/// allocate and fill than the memfd round trip. Measured with `mailslot
/// bench` (1 / 4 writers, GB/s, inline -> reusable buffer): 16 KiB 4.2 ->
/// 4.5 / 4.3 -> 4.0 (so not below 32 KiB), 32 KiB 3.7 -> 6.1 / 4.8 -> 5.1,
/// 60 KiB 3.9 -> 7.8 / 5.4 -> 6.5 (POSIX mq: 7.1-8.2 / 5.9).
pub(super) const MEMFD_MIN: usize = 32 * 1024;

/// A writer's connection to one reader.
#[derive(Debug)]
pub(super) struct Local {
    sock: Sock,
    // Held across stamp-and-send so one connection's stamps stay ordered.
    // Guards the reusable buffers for large messages, when the reader
    // takes them back, and the ring.
    send_lock: Mutex<SendState>,
}

/// The connection's socket: what the send lock does not guard.
#[derive(Debug)]
struct Sock {
    fd: OwnedFd,
}

/// What the send lock guards.
#[derive(Debug)]
struct SendState {
    pool: Option<MemfdPool>,
    lane: Lane,
    /// The reader has taken the connection (its welcome came).
    welcomed: bool,
    /// The reader refused the connection, with this reason.
    refused: Option<u16>,
    /// The reader's answer to the ring offer, once it came and until the
    /// offer's next look takes it. Kept here, not returned, because any
    /// look at the notices may find it: a queued writer's delivery thread,
    /// looking whether the reader is still there, took it with it, and the
    /// connection never used its ring (60 KiB queued ping-pong: 27 µs
    /// through a memory file each, against 5 µs through the ring).
    ring_answer: Option<bool>,
    /// Records in the ring not published yet (see [`Local::write_maybe_deferred`]),
    /// and their bytes.
    deferred: u32,
    deferred_bytes: usize,
    /// The current write may leave its record unpublished.
    may_defer: bool,
    /// When the last record went into the ring.
    pushed_ns: u64,
}

/// What [`Local::collect`] found on the connection.
struct Notices {
    /// The reader has closed it.
    closed: bool,
}

/// The shared-memory lane of a connection (see `ring.rs`).
#[derive(Debug)]
enum Lane {
    /// Everything goes through the socket.
    Off,
    /// The reader takes rings; the first write offers one.
    Ready,
    /// Offered; each write looks for the reader's answer.
    Offered { ring: RingWriter, checks: u32 },
    /// Accepted. `on_ring`: the reader is reading the ring now (else the
    /// socket, until a to-ring frame).
    Open {
        ring: RingWriter,
        on_ring: bool,
        checked_ns: u64,
    },
}

impl Local {
    /// A connection on `fd`: with reusable buffers for large messages when
    /// the reader gives them back (`recycle`), offering a ring at the first
    /// write when `ring`.
    pub(super) fn new(fd: OwnedFd, recycle: bool, ring: bool) -> Local {
        Local {
            sock: Sock { fd },
            send_lock: Mutex::new(SendState {
                pool: recycle.then(|| MemfdPool::new(memfd_pool::DEFAULT_BYTES)),
                lane: if ring { Lane::Ready } else { Lane::Off },
                welcomed: false,
                refused: None,
                ring_answer: None,
                deferred: 0,
                deferred_bytes: 0,
                may_defer: false,
                pushed_ns: 0,
            }),
        }
    }

    /// Connects to the socket `STEM.SUFFIX` of the exclusive slot `stem`
    /// (named `name` in errors), waiting at most `timeout` for room in the
    /// reader's connection queue; returns the connection with the metadata
    /// and process id of the reader that took it.
    pub(super) fn connect(
        ns: &Namespace,
        stem: &str,
        suffix: &str,
        name: &str,
        timeout: Option<Duration>,
    ) -> Result<(Local, Meta, u32)> {
        let sock = format!("{stem}.{suffix}");
        // The metadata must belong to the reader we connected to; a reader
        // being replaced at this very moment can make them disagree once.
        for _ in 0..8 {
            let fd = sys::seqpacket_socket(false).map_err(io_err("creating a socket", name))?;
            let addr = sys::unix_addr(ns.dir(), ns.fd(), &sock)
                .map_err(io_err("building the socket address", name))?;
            if let Err(e) = sys::connect_bounded(fd.as_fd(), &addr, timeout) {
                return Err(match e.kind() {
                    io::ErrorKind::WouldBlock => Error::TimedOut {
                        name: name.to_string(),
                        op: "connecting to",
                        timeout: timeout.unwrap_or_default(),
                    },
                    io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => Error::NotFound {
                        name: name.to_string(),
                    },
                    io::ErrorKind::PermissionDenied => Error::PermissionDenied {
                        name: name.to_string(),
                        detail: format!(
                            "the slot's mode does not let uid {} write to it; its reader can create it with a wider mode (e.g. 0666)",
                            sys::euid()
                        ),
                    },
                    _ => io_err("connecting", name)(e),
                });
            }
            let cred = sys::peer_cred(fd.as_fd())
                .map_err(io_err("reading the reader's credentials", name))?;
            match Meta::read(ns, stem) {
                Ok(meta) if meta.pid == cred.pid && meta.uid == cred.uid => {
                    let ring = meta.ring && meta.announce && suffix == "sock";
                    return Ok((Local::new(fd, meta.recycle, ring), meta, cred.pid));
                }
                _ => continue,
            }
        }
        Err(Error::NotFound {
            name: name.to_string(),
        })
    }

    /// The connection's socket.
    pub(super) fn fd(&self) -> BorrowedFd<'_> {
        self.sock.fd.as_fd()
    }

    /// Sends `data` as one message: through the ring when it is open,
    /// else in a reusable buffer or a memory file when large, else inline
    /// on the socket. When it went into the ring, returns where it lies
    /// there.
    pub(super) fn write(&self, slot: &Slot, data: &[u8]) -> Result<Option<usize>> {
        self.write_maybe_deferred(slot, data, false)
            .map(|(at, _)| at)
    }

    /// [`write`](Local::write); when `defer`, a message that goes into the ring while
    /// a stream of them does (the last record went in under
    /// [`STREAM_GAP_NS`] ago) may stay unpublished — invisible to a
    /// reader busy with earlier ones; one about to sleep reads it as staged
    /// (see `ring.rs`) — until [`DEFER_RECORDS`] or [`DEFER_BYTES`] wait, the next
    /// write that is not deferred, a wait for room, or
    /// [`publish_deferred`](Local::publish_deferred): the reader then
    /// takes them with one look at the tail, and the writer pays one
    /// publication (a fence and the tail's cache line) for all of them.
    /// Only for messages whose write need not be visible when it returns
    /// (the queued writer's). Also returns whether records now wait to be
    /// published.
    pub(super) fn write_maybe_deferred(
        &self,
        slot: &Slot,
        data: &[u8],
        defer: bool,
    ) -> Result<(Option<usize>, bool)> {
        let len = slot.frame_len(data)?;
        if data.len() > INLINE_MAX {
            return self
                .write_large(slot, data, len, true)
                .map(|_| (None, false));
        }
        let mut st = self.send_lock.lock().unwrap_or_else(|p| p.into_inner());
        self.sock
            .write_maybe_deferred(slot, &mut st, data, len, defer)
    }

    /// [`write_maybe_deferred`](Local::write_maybe_deferred) by the
    /// connection's only user: no send lock to take (two atomic
    /// operations less per message, each of which waits for the message's
    /// stores into the ring to complete). Returns where the message went:
    /// its ring offset, or the token of the reusable buffer only this
    /// writer can write that holds it; and whether records wait unpublished.
    /// A large message waits for a reusable buffer only when `patient`
    /// (see [`write_large`](Local::write_large)).
    pub(super) fn write_exclusive(
        &mut self,
        slot: &Slot,
        data: &[u8],
        defer: bool,
        patient: bool,
    ) -> Result<(Option<usize>, Option<u64>, bool)> {
        let len = slot.frame_len(data)?;
        if data.len() > INLINE_MAX {
            return self
                .write_large(slot, data, len, patient)
                .map(|t| (None, t, false));
        }
        let Local { sock, send_lock } = self;
        let st = send_lock.get_mut().unwrap_or_else(|p| p.into_inner());
        let (at, deferred) = sock.write_maybe_deferred(slot, st, data, len, defer)?;
        Ok((at, None, deferred))
    }

    /// A copy of the `len` bytes sent with buffer `token` (see
    /// [`write_exclusive`](Local::write_exclusive)), while the reader has
    /// not given the buffer back.
    pub(super) fn read_back_buffer(&self, token: u64, len: usize) -> Option<Vec<u8>> {
        let st = self.send_lock.lock().unwrap_or_else(|p| p.into_inner());
        st.pool.as_ref()?.read_out(token, len)
    }

    /// Publishes the records [`write_maybe_deferred`](Local::write_maybe_deferred) left
    /// unpublished, if any; true if there were.
    pub(super) fn publish_deferred(&mut self) -> bool {
        let st = self.send_lock.get_mut().unwrap_or_else(|p| p.into_inner());
        let any = st.deferred > 0;
        publish(st);
        any
    }

    /// Sends one unstamped frame without a descriptor (a message with its
    /// network origin), through the ring when it can.
    pub(super) fn write_frame(&self, slot: &Slot, head: Header, payload: &[u8]) -> Result<()> {
        let mut st = self.send_lock.lock().unwrap_or_else(|p| p.into_inner());
        let open = self.sock.ring_open(slot, &mut st);
        self.sock.send(slot, &mut st, open, head, payload, None)
    }

    /// Sends the messages `chunk` (`len` payload bytes, framed) as one
    /// batch frame `head`: each copied straight into its ring record, or
    /// framed into `buf` for the socket.
    pub(super) fn write_chunk<M: AsRef<[u8]>>(
        &self,
        slot: &Slot,
        head: Header,
        chunk: &[M],
        len: usize,
        buf: &mut Vec<u8>,
    ) -> Result<()> {
        let mut st = self.send_lock.lock().unwrap_or_else(|p| p.into_inner());
        // Through the ring, each message is copied once, straight into
        // its record; the socket takes the batch from one buffer.
        if HEADER_LEN + len <= ring::FRAME_MAX && self.sock.ring_open(slot, &mut st) {
            let small = len <= ring::SMALL_RECORD;
            self.sock
                .ring_push(slot, &mut st, None, small, |ring, stamp| {
                    ring.push_batch(&head.stamped(stamp).encode(), chunk, len)
                })
        } else {
            super::frame_batch(buf, chunk);
            self.sock.send(slot, &mut st, false, head, buf, None)
        }
    }

    /// Whether mid-sized messages should travel alone in a reusable buffer
    /// rather than in a batch (see `MEMFD_MIN`): the reader takes buffers
    /// back and the ring is not open.
    pub(super) fn pooled(&self) -> bool {
        let st = self.send_lock.lock().unwrap_or_else(|p| p.into_inner());
        st.pool.is_some() && !matches!(st.lane, Lane::Open { .. })
    }

    /// A copy of the message of `len` bytes that [`write`](Local::write)
    /// left at `at` in the ring.
    pub(super) fn read_back(&self, at: usize, len: usize) -> Option<Vec<u8>> {
        let st = self.send_lock.lock().unwrap_or_else(|p| p.into_inner());
        match &st.lane {
            Lane::Open { ring, .. } => Some(ring.read_back(at, len)),
            _ => None,
        }
    }

    /// Keeps this connection's messages on the socket (no ring); if the
    /// reader is reading the ring, sends it back to the socket first,
    /// waiting for room in the ring if it is full.
    #[cfg(feature = "tokio")]
    pub(super) fn socket_only(&mut self, slot: &Slot) -> Result<()> {
        let mut st = self.send_lock.lock().unwrap_or_else(|p| p.into_inner());
        self.sock.leave_ring(slot, &mut st, None)?;
        st.lane = Lane::Off;
        Ok(())
    }

    /// Bounds the memory kept to reuse for large messages (see
    /// [`Writer::set_large_message_cache`](super::Writer::set_large_message_cache)).
    pub(super) fn set_large_message_cache(&mut self, bytes: u64) {
        let st = self.send_lock.get_mut().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = &mut st.pool {
            p.set_limit(bytes);
        }
    }

    /// Looks, without waiting, whether the reader is still there; revokes
    /// its receipts when it is gone.
    pub(super) fn reader_alive(&self, tally: &Tally) -> bool {
        let sent = tally.sent();
        let mut st = self.send_lock.lock().unwrap_or_else(|p| p.into_inner());
        if !self.sock.collect(&mut st).closed {
            return true;
        }
        tally.with_ledger(|l, _| l.leave(self.sock.fd.as_raw_fd() as u64, sent));
        false
    }

    /// Waits up to `timeout` (`None`: forever) until the reader has taken
    /// this connection (see [`Writer::wait_accepted`](super::Writer::wait_accepted)).
    pub(super) fn wait_accepted(&self, slot: &Slot, timeout: Option<Duration>) -> Result<bool> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut st = self.send_lock.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            let n = self.sock.collect(&mut st);
            if st.welcomed {
                return Ok(true);
            }
            if n.closed || st.refused.is_some() {
                return Err(slot.gone(st.refused));
            }
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if left.is_some_and(|l| l.is_zero()) {
                return Ok(false);
            }
            sys::wait_readable(self.sock.fd.as_fd(), left)
                .map_err(io_err("waiting for the reader", &slot.name))?;
        }
    }

    /// A message too large to send inline: in one of the writer's reusable
    /// buffers when the reader gives them back and one is free, else in a
    /// memory file of its own, sealed against every change. Returns the
    /// buffer's token when only this writer can write the buffer.
    ///
    /// With every buffer out, a `patient` writer waits a while for one to
    /// come back (see [`MemfdPool::patience`]); an impatient one sends
    /// nothing and fails at once with a timeout (its caller holds a lock
    /// others wait on, and has another way to send the message).
    fn write_large(
        &self,
        slot: &Slot,
        data: &[u8],
        len: u32,
        patient: bool,
    ) -> Result<Option<u64>> {
        let mut st = self.send_lock.lock().unwrap_or_else(|p| p.into_inner());
        if st.pool.is_some() {
            let mut lease = self.sock.lease(&mut st, data);
            if !patient && matches!(lease, Ok(None)) {
                return Err(slot.timed_out("writing to"));
            }
            if matches!(lease, Ok(None)) && st.pool.as_ref().is_some_and(|p| p.any_out()) {
                // Every buffer is out: the reader gives one back soon if it
                // is reading, which is cheaper than a fresh memory file.
                let mut wait = MemfdPool::patience(data.len());
                if let Some(t) = slot.write_timeout {
                    wait = wait.min(t);
                }
                let until = Instant::now() + wait;
                loop {
                    let left = until.saturating_duration_since(Instant::now());
                    if left.is_zero()
                        || !sys::wait_readable(self.sock.fd.as_fd(), Some(left)).unwrap_or(false)
                        // The reader has gone: the send below says so.
                        || self.sock.collect(&mut st).closed
                    {
                        break;
                    }
                    lease = st.pool.as_mut().map_or(Ok(None), |p| p.fill(data));
                    if !matches!(lease, Ok(None)) {
                        break;
                    }
                }
            }
            // Creating or filling a buffer can fail (no memory, no
            // descriptors); a sealed memory file then reports the error.
            if let Ok(Some(lease)) = lease {
                return self.sock.send_lease(slot, &mut st, lease, len);
            }
        }
        drop(st);
        let memfd =
            sys::sealed_memfd(data).map_err(io_err("preparing a large message", &slot.name))?;
        let mut st = self.send_lock.lock().unwrap_or_else(|p| p.into_inner());
        let head = Header::new(Kind::Memfd, 0, len);
        self.sock
            .send(slot, &mut st, false, head, &[], Some(memfd.as_fd()))?;
        Ok(None)
    }
}

impl Sock {
    /// One message of `len` bytes as a frame, with the send lock held
    /// (see [`Local::write_maybe_deferred`]).
    fn write_maybe_deferred(
        &self,
        slot: &Slot,
        st: &mut SendState,
        data: &[u8],
        len: u32,
        defer: bool,
    ) -> Result<(Option<usize>, bool)> {
        st.may_defer = defer;
        let r = self.write_locked(slot, st, data, len);
        st.may_defer = false;
        r.map(|at| (at, st.deferred > 0))
    }

    /// One message under the send lock: through the ring when it is open,
    /// else a reusable buffer or inline on the socket.
    fn write_locked(
        &self,
        slot: &Slot,
        st: &mut SendState,
        data: &[u8],
        len: u32,
    ) -> Result<Option<usize>> {
        let open = self.ring_open(slot, st);
        // Not through the ring (not open yet, or not taken), mid-sized: a
        // free reusable buffer beats a socket buffer of that size (never
        // wait for one; inline on the socket is fine too).
        if !open && data.len() >= MEMFD_MIN && st.pool.is_some() {
            if let Ok(Some(lease)) = self.lease(st, data) {
                return self.send_lease(slot, st, lease, len).map(|_| None);
            }
        }
        let head = Header::new(Kind::Inline, 0, len);
        self.send(slot, st, open, head, data, None)?;
        Ok(match &st.lane {
            Lane::Open { ring, .. } if open => Some(ring.last_body()),
            _ => None,
        })
    }

    /// Sends the message filled into `lease` (under the send lock).
    /// Returns the buffer's token when only this writer can write it (see
    /// [`MemfdPool::writer_only`]).
    fn send_lease(
        &self,
        slot: &Slot,
        st: &mut SendState,
        lease: memfd_pool::Lease,
        len: u32,
    ) -> Result<Option<u64>> {
        let deadline = slot.deadline();
        self.leave_ring(slot, st, deadline)?;
        let token = lease.token().to_le_bytes();
        let p = st.pool.as_mut().expect("a lease comes from the pool");
        let header = Header::new(Kind::Memfd, FLAG_RECYCLE, len).stamped(sys::monotonic_ns());
        conn::send_frame(
            slot,
            self.fd.as_fd(),
            header,
            &token,
            Some(p.fd(&lease)),
            deadline,
        )?;
        let kept = p.writer_only(&lease).then(|| lease.token());
        p.sent(lease);
        Ok(kept)
    }

    /// Stamps a frame and sends it: through the ring when `open` (the
    /// caller found it open) and the frame fits a record, else on the
    /// socket after a hand-off record if the reader is reading the ring.
    /// Waits for room up to the write timeout. The caller holds the send
    /// lock, so stamps on this connection only grow.
    fn send(
        &self,
        slot: &Slot,
        st: &mut SendState,
        open: bool,
        head: Header,
        payload: &[u8],
        memfd: Option<BorrowedFd<'_>>,
    ) -> Result<()> {
        if open && memfd.is_none() && HEADER_LEN + payload.len() <= ring::FRAME_MAX {
            let single = head.kind == Kind::Inline;
            let stamped = |ring: &mut RingWriter, stamp| {
                ring.push_frame(&head.stamped(stamp).encode(), payload, single)
            };
            // Most writes never wait: the deadline is worked out when one does.
            let small = payload.len() <= ring::SMALL_RECORD;
            return self.ring_push(slot, st, None, small, stamped);
        }
        let deadline = slot.deadline();
        self.leave_ring(slot, st, deadline)?;
        let head = head.stamped(sys::monotonic_ns());
        conn::send_frame(slot, self.fd.as_fd(), head, payload, memfd, deadline)
    }

    /// Moves the lane on (offers a ring, takes the reader's answer); true
    /// when the ring is open.
    fn ring_open(&self, slot: &Slot, st: &mut SendState) -> bool {
        match &mut st.lane {
            Lane::Off => false,
            Lane::Open { .. } => true,
            Lane::Ready => {
                st.lane = match self.offer_ring(slot) {
                    Ok(ring) => Lane::Offered { ring, checks: 0 },
                    // Out of memory or descriptors, or a full socket: the
                    // socket carries everything then.
                    Err(_) => Lane::Off,
                };
                false
            }
            Lane::Offered { checks, .. } => {
                *checks += 1;
                let gave_up = *checks > OFFER_CHECKS;
                let n = self.collect(st);
                let answer = if n.closed {
                    Some(false)
                } else {
                    st.ring_answer.take()
                };
                match (std::mem::replace(&mut st.lane, Lane::Off), answer) {
                    (Lane::Offered { ring, .. }, Some(true)) => {
                        st.lane = Lane::Open {
                            ring,
                            on_ring: false,
                            checked_ns: sys::monotonic_ns(),
                        };
                        true
                    }
                    (offered, None) if !gave_up => {
                        st.lane = offered;
                        false
                    }
                    _ => false,
                }
            }
        }
    }

    /// Sends the reader a ring and its wake eventfd (see `frame.rs`).
    fn offer_ring(&self, slot: &Slot) -> Result<RingWriter> {
        let (ring, memfd) =
            RingWriter::create().map_err(io_err("creating a message ring", &slot.name))?;
        let deadline = Some(Instant::now());
        for (kind, fd) in [
            (Kind::Ring, memfd.as_fd()),
            (Kind::RingWake, ring.wake_fd()),
        ] {
            let head = Header::new(kind, 0, 0);
            conn::send_frame(slot, self.fd.as_fd(), head, &[], Some(fd), deadline)?;
        }
        Ok(ring)
    }

    /// Writes one record into the open ring (`push` writes it with the
    /// stamp it is given; false when there is no room), waiting for room up
    /// to `deadline` (`None`: the write timeout from the first wait on);
    /// a `small` record first watches for room a while (see `ROOM_SPIN_NS`).
    fn ring_push(
        &self,
        slot: &Slot,
        st: &mut SendState,
        mut deadline: Option<Instant>,
        small: bool,
        mut push: impl FnMut(&mut RingWriter, u64) -> bool,
    ) -> Result<()> {
        let Lane::Open { on_ring, .. } = &mut st.lane else {
            unreachable!("ring_push on an open ring");
        };
        if !*on_ring {
            let to_ring = Header::new(Kind::ToRing, 0, 0);
            deadline = deadline.or_else(|| slot.deadline());
            conn::send_frame(slot, self.fd.as_fd(), to_ring, &[], None, deadline)?;
            *on_ring = true;
        }
        let mut waited = false;
        loop {
            // One clock read: the stamp, and whether to look at the socket.
            // A record joining unpublished ones takes their stamp (earlier
            // than its write: it is ordered no later for it). Not while the
            // reader watches for records or has asked to be woken (it has
            // taken what was published or staged): this record is then
            // published at once (and the reader woken if it asked). (Those
            // are the only times the reader writes the line the writer
            // loads here.)
            let reader_waits = st.may_defer
                && match &st.lane {
                    Lane::Open { ring, .. } => ring.reader_idle(),
                    _ => false,
                };
            let joins = st.may_defer && st.deferred > 0 && !waited && !reader_waits;
            let mut now = if joins {
                st.pushed_ns
            } else {
                sys::monotonic_ns()
            };
            let Lane::Open { checked_ns, .. } = &mut st.lane else {
                unreachable!("the ring stays open");
            };
            if waited || now.wrapping_sub(*checked_ns) >= CHECK_NS {
                *checked_ns = now;
                // The reader's notices: releases, room, and whether it is there.
                if self.collect(st).closed {
                    return Err(slot.gone(st.refused));
                }
            }
            let Lane::Open { ring, .. } = &mut st.lane else {
                unreachable!("the ring stays open");
            };
            if ring.reader_closed() {
                return Err(slot.gone(None));
            }
            let before = ring.written();
            let mut pushed = push(ring, now);
            if !pushed {
                // Full: publish what waits, ask for a room notice, then look
                // once more (the reader may have made room just before it
                // saw the ask).
                ring.publish();
                (st.deferred, st.deferred_bytes) = (0, 0);
                let spin_from = now;
                while small
                    && !pushed
                    && !ring.reader_closed()
                    && now.wrapping_sub(spin_from) < ROOM_SPIN_NS
                {
                    std::thread::yield_now();
                    now = sys::monotonic_ns();
                    pushed = push(ring, now);
                }
                if !pushed {
                    ring.want_room();
                    pushed = push(ring, now);
                }
            }
            if pushed {
                let bytes = (ring.written() - before) as usize;
                let streaming = joins || now.wrapping_sub(st.pushed_ns) < STREAM_GAP_NS;
                st.pushed_ns = now;
                if st.may_defer
                    && streaming
                    && !reader_waits
                    && st.deferred + 1 < DEFER_RECORDS
                    && st.deferred_bytes + bytes < DEFER_BYTES
                {
                    st.deferred += 1;
                    st.deferred_bytes += bytes;
                    // Unpublished, but within reach of a reader that has
                    // caught up and is about to sleep.
                    ring.stage();
                } else {
                    ring.publish();
                    (st.deferred, st.deferred_bytes) = (0, 0);
                }
                return Ok(());
            }
            deadline = deadline.or_else(|| slot.deadline());
            let remaining = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            let ready = remaining.is_none_or(|r| !r.is_zero())
                && sys::wait_readable(self.fd.as_fd(), remaining)
                    .map_err(io_err("waiting for room", &slot.name))?;
            if !ready {
                return Err(slot.timed_out("writing to"));
            }
            waited = true;
        }
    }

    /// Before a frame goes on the socket: if the reader is reading the
    /// ring, a hand-off record sends it back to the socket.
    fn leave_ring(&self, slot: &Slot, st: &mut SendState, deadline: Option<Instant>) -> Result<()> {
        if !matches!(st.lane, Lane::Open { on_ring: true, .. }) {
            return Ok(());
        }
        self.ring_push(slot, st, deadline, true, |ring, _| ring.push_handoff())?;
        if let Lane::Open { on_ring, .. } = &mut st.lane {
            *on_ring = false;
        }
        Ok(())
    }

    /// A buffer for `data`: an idle one at hand, else, after taking the
    /// reader's release notices (one receive call for however many have
    /// come), an idle or a new one.
    fn lease(&self, st: &mut SendState, data: &[u8]) -> io::Result<Option<memfd_pool::Lease>> {
        if let Some(p) = &mut st.pool {
            if let Some(lease) = p.reuse(data)? {
                return Ok(Some(lease));
            }
        }
        self.collect(st);
        st.pool.as_mut().map_or(Ok(None), |p| p.fill(data))
    }

    /// Takes the reader's notices off the connection into `st`: released
    /// buffers may be filled again, the answer to a ring offer waits for
    /// the offer's next look, room notices need nothing more.
    fn collect(&self, st: &mut SendState) -> Notices {
        let mut buf = [0u8; HEADER_LEN];
        loop {
            match sys::recv_packet(self.fd.as_fd(), &mut buf) {
                Ok(sys::Recv::Frame { len, .. }) => {
                    match Header::decode(&buf[..len.min(HEADER_LEN)]) {
                        Ok(h) if h.kind == Kind::Release => {
                            if let Some(p) = &mut st.pool {
                                p.release(h.stamp);
                            }
                        }
                        Ok(h) if h.kind == Kind::RingAnswer => {
                            st.ring_answer = Some(h.flags & FLAG_ACCEPTED != 0);
                        }
                        Ok(h) if h.kind == Kind::Welcome => st.welcomed = true,
                        Ok(h) if h.kind == Kind::Refused => st.refused = Some(h.flags),
                        _ => {}
                    }
                }
                Ok(sys::Recv::WouldBlock) => return Notices { closed: false },
                Ok(sys::Recv::Closed) | Err(_) => return Notices { closed: true },
            }
        }
    }
}

/// Publishes every record in the ring, when records wait to be.
fn publish(st: &mut SendState) {
    if st.deferred == 0 {
        return;
    }
    (st.deferred, st.deferred_bytes) = (0, 0);
    if let Lane::Open { ring, .. } = &mut st.lane {
        ring.publish();
    }
}
