//! Per-connection state and reading: frames from a writer's socket or ring into its queue.

use std::cmp::Reverse;
use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use super::{BATCH, BATCH_BYTES, RING_WAKE, Reader, SPARE_MIN, Sender, notify};
use crate::frame::{
    self, BATCH_MESSAGES, FLAG_ACCEPTED, FLAG_ORIGIN, FLAG_RECYCLE, HEADER_LEN, Header, Kind,
    REMOTE_DATA_MAX, RemoteOrigin, split_batch,
};
use crate::receipt::Receipts;
use crate::ring::{Record, RingReader};
use crate::sys;

pub(super) enum Payload {
    /// A small message, kept without an allocation of its own.
    Small {
        len: u8,
        data: [u8; SMALL_MAX],
    },
    Inline(Vec<u8>),
    /// A memfd of at least `len` bytes; with a token, a buffer of the
    /// writer's to give back once read (see `frame.rs`).
    Memfd {
        fd: OwnedFd,
        len: usize,
        token: Option<u64>,
        /// The file's (device, inode) when it is a reusable buffer worth
        /// keeping mapped.
        id: Option<(u64, u64)>,
    },
    /// Still in the connection's ring, at this offset (see `ring.rs`).
    Ring {
        off: usize,
        len: usize,
    },
}

/// Messages up to this size are queued without an allocation each.
const SMALL_MAX: usize = 64;

/// What a queued message costs the reader beside its bytes (its entry in
/// the queue), charged to the queue's byte bound.
const PENDING_COST: usize = std::mem::size_of::<Pending>();

impl Payload {
    /// `data` as a payload: small ones inline, larger ones in a spare
    /// buffer when one is at hand.
    fn new(data: &[u8], spare: &mut Vec<Vec<u8>>) -> Payload {
        if data.len() <= SMALL_MAX {
            let mut small = [0u8; SMALL_MAX];
            small[..data.len()].copy_from_slice(data);
            Payload::Small {
                len: data.len() as u8,
                data: small,
            }
        } else {
            Payload::Inline(reuse(spare, data))
        }
    }
}

/// Mappings of reusable buffers kept per connection (a writer reuses at
/// most eight).
const MAPS_PER_CONN: usize = 8;

impl Payload {
    pub(super) fn len(&self) -> usize {
        match self {
            Payload::Small { len, .. } => usize::from(*len),
            Payload::Inline(v) => v.len(),
            Payload::Memfd { len, .. } | Payload::Ring { len, .. } => *len,
        }
    }

    /// What the message costs the reader's own memory, charged to the
    /// queue's byte bound: its entry, and an inline message's buffer. A
    /// memory file or a ring belongs to the writer (and is bounded apart:
    /// descriptors per connection, the ring's size).
    pub(super) fn cost(&self) -> usize {
        PENDING_COST
            + match self {
                Payload::Inline(v) => v.len(),
                Payload::Small { .. } | Payload::Memfd { .. } | Payload::Ring { .. } => 0,
            }
    }
}

pub(super) struct Pending {
    pub(super) stamp: u64,
    pub(super) payload: Payload,
    pub(super) origin: Option<Box<RemoteOrigin>>,
    /// For the last message of a ring record: the ring position after it,
    /// given back to the writer once the message is taken (0: none).
    pub(super) ring_end: u64,
}

/// A connection's ring (see `ring.rs`).
pub(super) struct RingConn {
    pub(super) ring: RingReader,
    /// The writer's wake eventfd, registered edge-triggered (never read).
    pub(super) wake: OwnedFd,
    /// The writer sent "to ring" and no hand-off since: read the ring.
    reading: bool,
    /// Messages in the queue whose records are not yet given back.
    pub(super) held: usize,
    /// `pump_ns` of the pass that loaded the ring's tail as cached now,
    /// and of the load before: records being parsed were published after
    /// the latter (see `Order`).
    load_ns: u64,
    floor_ns: u64,
    /// Records up to here were seen published before a look at the poller
    /// found nothing new: a read may take them directly (see `direct.rs`).
    pub(super) quiet_to: u64,
}

impl RingConn {
    /// The writer sent "to ring" and no hand-off since: its messages come
    /// through the ring.
    pub(super) fn reading(&self) -> bool {
        self.reading
    }

    /// The reader is reading this ring and the writer has put records in
    /// it that are not parsed yet.
    pub(super) fn ready(&self) -> bool {
        self.reading && self.ring.has_records()
    }

    /// Before sleeping: whether the writer has records written but not
    /// yet published (they are read from then on; see `ring.rs`).
    pub(super) fn look_staged(&mut self) -> bool {
        self.reading && self.ring.look_staged()
    }
}

pub(super) struct Conn {
    pub(super) fd: OwnedFd,
    pub(super) sender: Sender,
    pub(super) queue: VecDeque<Pending>,
    pub(super) eof: bool,
    trusted: bool,
    /// Accepted on `STEM.net.sock`: every frame must carry an origin.
    net_only: bool,
    /// The pump pass that last added messages to `queue` (see `Reader::pass`).
    pub(super) filled_pass: u64,
    /// Mappings of the writer's reusable buffers, least recently used first.
    maps: Vec<((u64, u64), sys::SharedMap)>,
    /// The writer announced that its next frame carries a descriptor.
    expect_fd: bool,
    /// A ring the writer offered, waiting for its wake eventfd.
    offered: Option<OwnedFd>,
    pub(super) ring: Option<RingConn>,
    /// The writer's receipt file, when it asked for receipts: every
    /// message a read returns is counted there (see `receipt.rs`).
    pub(super) receipts: Option<Receipts>,
    /// Messages in `queue` that hold a descriptor (memory files).
    pub(super) fds: usize,
    /// What the reader knows about when this writer's frames were sent.
    order: Order,
}

impl Conn {
    /// A writer just accepted (`net_only`: on `STEM.net.sock`).
    pub(super) fn new(fd: OwnedFd, sender: Sender, trusted: bool, net_only: bool) -> Conn {
        Conn {
            fd,
            sender,
            queue: VecDeque::new(),
            eof: false,
            trusted,
            net_only,
            filled_pass: 0,
            maps: Vec::new(),
            expect_fd: false,
            offered: None,
            receipts: None,
            ring: None,
            fds: 0,
            order: Order {
                // Nothing it sends can predate its connection's accept.
                drained_ns: 0,
                ..Order::default()
            },
        }
    }
}

impl Conn {
    /// With nothing of its ring left in the queue, gives back what was
    /// parsed (with a room notice if the writer waits for one).
    pub(super) fn release_parsed(&mut self) {
        if let Some(rc) = self.ring.as_mut() {
            if rc.held == 0 && rc.ring.release(rc.ring.position()) {
                notify(self.fd.as_fd(), Kind::Room, 0, 0);
            }
        }
    }

    /// Gives back the ring up to `pos`, read, once a step's worth was
    /// read since the last time (with a room notice if the writer waits
    /// for one).
    pub(super) fn release_read(&mut self, pos: u64) {
        if let Some(rc) = self.ring.as_mut() {
            if rc.ring.release_some(pos) {
                notify(self.fd.as_fd(), Kind::Room, 0, 0);
            }
        }
    }

    /// The ring has no record to parse: gives back a wrap record passed
    /// at its end, and tells whether to read on.
    fn ring_drained(&mut self, sock_event: bool) -> Step {
        // Give back a wrap record passed at the end.
        self.release_parsed();
        // While the ring is read, the socket carries only
        // its end, or a frame after a hand-off record
        // (published before the frame was sent, so the
        // ring has it now).
        if !sock_event {
            return Step::Done;
        }
        match sys::peek_packet(self.fd.as_fd()) {
            Ok(sys::Recv::WouldBlock) => Step::Done,
            Ok(sys::Recv::Frame { .. })
                if self.ring.as_ref().is_some_and(|rc| rc.ring.has_records()) =>
            {
                Step::Again
            }
            Ok(sys::Recv::Frame { .. }) => Step::Broken,
            Ok(sys::Recv::Closed) | Err(_) => {
                self.eof = true;
                Step::Done
            }
        }
    }

    /// A ring record's `added` messages were queued: the record goes back
    /// to the writer when its last message is taken (at once when none
    /// was: refused, an empty batch).
    fn hold_record(&mut self, added: usize) {
        match self.queue.back_mut() {
            Some(p) if added > 0 => {
                let rc = self.ring.as_mut().expect("reading a ring");
                p.ring_end = rc.ring.position();
                rc.held += 1;
            }
            _ => self.release_parsed(),
        }
    }
}

/// How far one fill of a connection may go, and what it got so far.
struct Fill {
    /// The queue was empty when the fill began.
    was_empty: bool,
    /// For `info()`: not bounded by the batch, but by `budget` and
    /// `ring_budget`, what the socket and ring held when the fill began.
    unbounded: bool,
    /// The socket was reported ready.
    sock_event: bool,
    budget: Option<usize>,
    ring_budget: Option<u64>,
    /// Messages and bytes queued, bytes received from the socket.
    got: usize,
    got_bytes: usize,
    taken: usize,
}

/// What reading one frame or record gave.
enum Step {
    /// A frame was decoded into the queue (`ok`: by the protocol), of
    /// `len` bytes, sent no earlier than `floor`.
    Frame { ok: bool, len: usize, floor: u64 },
    /// A control frame or record was handled: read on.
    Again,
    /// Nothing more to read now (or the connection ended).
    Done,
    /// The writer broke the protocol.
    Broken,
    /// The next frame carries a descriptor the process has no room for.
    Starved,
}

/// Bounds on a writer's stamps from what the reader itself observed, so a
/// writer that lies in its stamps (0 on every frame, say) cannot stay
/// ahead of the others for longer than it takes the reader to read a
/// socket's worth of its frames.
///
/// - A frame read after the reader found the connection empty was sent
///   after that moment (`drained`).
/// - A connection's socket holds at most `in_flight` bytes of the kernel's
///   accounting, and each frame costs at least its length plus
///   [`FRAME_COST`], so a frame was sent only after every frame that ends
///   more than `in_flight` before it had been received: receive times are
///   kept every 64 KiB of that cost (`marks`).
/// - A ring record was published after the reader loaded the tail before
///   it (`RingConn::floor_ns`).
/// - Stamps on one connection never go down (an honest writer's don't).
///
/// An honest writer's stamps always meet these bounds, so clamping never
/// changes them.
#[derive(Debug, Default)]
struct Order {
    last: u64,
    drained_ns: u64,
    /// The cost of every socket frame received so far, and where the last
    /// mark was taken.
    cost: u64,
    marked: u64,
    marks: VecDeque<(u64, u64)>,
}

/// The least a frame costs of its sender's socket buffer beyond its bytes
/// (the kernel's buffer head and bookkeeping: 768 bytes for a small frame
/// on Linux 6; 512 leaves a margin).
const FRAME_COST: u64 = 512;

impl Order {
    fn drained(&mut self, now_ns: u64) {
        self.drained_ns = self.drained_ns.max(now_ns);
    }

    /// A socket frame of `len` bytes was received in the pass that
    /// started at `now_ns`; returns the earliest it can have been sent.
    fn frame(&mut self, len: usize, now_ns: u64, in_flight: u64) -> u64 {
        self.cost += len as u64 + FRAME_COST;
        // Every frame that ended `in_flight` before this one's end was
        // received before this one could be sent.
        while let Some(&(end, ns)) = self.marks.front() {
            if end + in_flight > self.cost {
                break;
            }
            self.drained_ns = self.drained_ns.max(ns);
            self.marks.pop_front();
        }
        if self.cost - self.marked >= 64 << 10 {
            self.marked = self.cost;
            self.marks.push_back((self.cost, now_ns));
        }
        self.drained_ns
    }

    /// The stamp to order a message by: the writer's, raised to `floor`
    /// and to the connection's last.
    fn clamp(&mut self, stamp: u64, floor: u64) -> u64 {
        self.last = stamp.max(floor).max(self.last);
        self.last
    }
}

/// Messages holding a descriptor that one connection may have queued
/// while more of its frames carry descriptors (a writer reuses at most
/// eight buffers; the rest are one-off memory files).
const FDS_PER_CONN: usize = 16;

/// How long a connection whose descriptor found no room waits, at most,
/// before it is tried again.
const STARVE_PAUSE: Duration = Duration::from_millis(10);

impl Reader {
    /// Closes connection `idx` because its writer broke the protocol
    /// (counted in [`rejected_frames`](Reader::rejected_frames)); what it
    /// queued before stays readable.
    pub(super) fn cut_off(&mut self, idx: usize) {
        if let Some(conn) = self.conns[idx].as_mut() {
            self.rejected += 1;
            conn.eof = true;
            let _ = rustix::net::shutdown(&conn.fd, rustix::net::Shutdown::Both);
        }
    }

    /// Copies a large message out of its memory file: for a writer's
    /// reusable buffer through a mapping the connection keeps (no page is
    /// looked up again once mapped), else with `pread`.
    pub(super) fn copy_large(
        &mut self,
        idx: usize,
        fd: &OwnedFd,
        id: Option<(u64, u64)>,
        dst: &mut [u8],
    ) -> io::Result<()> {
        if let (Some(id), Some(conn)) = (id, self.conns.get_mut(idx).and_then(Option::as_mut)) {
            // The mapping holds the file, so its inode cannot be reused for
            // another file while the entry exists.
            match conn.maps.iter().position(|(k, _)| *k == id) {
                Some(pos) => {
                    let e = conn.maps.remove(pos);
                    conn.maps.push(e);
                }
                None => {
                    if let Ok(m) = sys::SharedMap::new(fd.as_fd(), false) {
                        if conn.maps.len() >= MAPS_PER_CONN {
                            conn.maps.remove(0);
                        }
                        conn.maps.push((id, m));
                    }
                }
            }
            if let Some((k, m)) = conn.maps.last() {
                if *k == id && m.len() >= dst.len() {
                    m.copy_to(dst);
                    return Ok(());
                }
            }
        }
        sys::pread_exact(fd.as_fd(), dst)
    }

    /// Copies a message still in connection `idx`'s ring.
    pub(super) fn copy_ring(&self, idx: usize, off: usize, dst: &mut [u8]) {
        if let Some(rc) = self.conns[idx].as_ref().and_then(|c| c.ring.as_ref()) {
            rc.ring.copy(off, dst);
        }
    }

    /// Tells the writer on connection `idx` that its buffer with `token`
    /// has been read. Never waits: a writer that does not take the notice
    /// (or has gone) only loses the buffer's reuse.
    pub(super) fn give_back(&self, idx: usize, token: Option<u64>) {
        let (Some(token), Some(conn)) = (token, self.conns.get(idx).and_then(Option::as_ref))
        else {
            return;
        };
        notify(conn.fd.as_fd(), Kind::Release, 0, token);
    }

    /// Receives messages of connection `idx` into its queue: from its
    /// socket, or from its ring while the writer says so. `sock_event`:
    /// the socket was reported ready (while reading the ring, that can
    /// only be its end).
    pub(super) fn fill(&mut self, idx: usize, unbounded: bool, sock_event: bool) {
        // Out of `conns` while it is read, so that the reader's other parts
        // can be borrowed beside it.
        let Some(mut conn) = self.conns[idx].take() else {
            return;
        };
        let was_empty = conn.queue.is_empty();
        let end = self.read_frames(&mut conn, idx, unbounded, sock_event);
        self.conns[idx] = Some(conn);
        self.end_fill(idx, was_empty, end);
    }

    /// Reads frames of `conn` until its batch or the queue is full, or it
    /// has nothing more now; returns why it stopped.
    fn read_frames(
        &mut self,
        conn: &mut Conn,
        idx: usize,
        unbounded: bool,
        sock_event: bool,
    ) -> Step {
        // Unbounded (`info()`) takes what the kernel held when it started and
        // no more: writers that keep refilling their buffers must not make
        // it read, and hold, without end (issue 8). Likewise for the ring.
        let budget = if unbounded {
            sys::queued_bytes(conn.fd.as_fd()).ok()
        } else {
            None
        };
        let ring_budget = conn.ring.as_mut().filter(|_| budget.is_some()).map(|r| {
            // Records written but not yet published count too.
            r.look_staged();
            r.ring.tail()
        });
        let mut fill = Fill {
            was_empty: conn.queue.is_empty(),
            unbounded: budget.is_some(),
            sock_event,
            budget,
            ring_budget,
            got: 0,
            got_bytes: 0,
            taken: 0,
        };
        loop {
            let on_ring = conn.ring.as_ref().is_some_and(|r| r.reading);
            if self.batch_done(conn, &fill, on_ring) {
                return Step::Done;
            }
            let before = conn.queue.len();
            // Decode one frame, from the ring or the socket: was it valid,
            // and how long.
            let step = if on_ring {
                self.ring_frame(conn, &mut fill)
            } else {
                self.socket_frame(conn, idx, &mut fill)
            };
            match step {
                Step::Frame { ok, len, floor } => {
                    if !ok {
                        conn.queue.truncate(before);
                        // A writer that breaks the protocol loses its connection.
                        return Step::Broken;
                    }
                    fill.got_bytes += len;
                    if !self.queue_frame(conn, before, floor, on_ring, &mut fill) {
                        return Step::Broken;
                    }
                }
                Step::Again => {}
                end => return end,
            }
        }
    }

    /// Whether `conn` has read enough for now.
    fn batch_done(&self, conn: &Conn, fill: &Fill, on_ring: bool) -> bool {
        // The queue's bound holds for `info()` too: past it, messages
        // wait in the writer's socket or ring (one frame per connection
        // may go past it, so that every writer has its head here).
        !conn.queue.is_empty()
            && ((!fill.unbounded
                && (fill.got >= BATCH
                    || fill.got_bytes >= BATCH_BYTES
                    // The first message was sent while we waited: the
                    // writer was not ahead of us, so there is most likely
                    // nothing more. Leave the rest to level-triggered
                    // epoll rather than spend a receive call on learning
                    // that (it would sit in every message's latency).
                    || (!on_ring
                        && fill.was_empty
                        && fill.got == 1
                        && conn.queue[0].stamp >= self.pump_ns)))
                || self.queue_full())
    }

    /// Parses the next record of `conn`'s ring.
    fn ring_frame(&mut self, conn: &mut Conn, fill: &mut Fill) -> Step {
        let rc = conn.ring.as_mut().expect("reading a ring");
        if fill.ring_budget.is_some_and(|b| rc.ring.position() >= b) {
            return Step::Done;
        }
        let loaded = rc.ring.cached_tail();
        // Once this fill has queued something, it ends at the tail it last
        // loaded rather than load it again: the connection's earliest
        // message is in the merge, and a reader that keeps up with a fast
        // writer would otherwise chase its tail record by record (see
        // `watch.rs`). `info()` takes everything there is.
        if fill.got > 0 && !fill.unbounded && rc.ring.position() == loaded {
            return Step::Done;
        }
        let record = match rc.ring.next() {
            Err(_) => return Step::Broken,
            Ok(None) => return conn.ring_drained(fill.sock_event),
            Ok(Some(Record::Handoff)) => {
                rc.reading = false;
                conn.release_parsed();
                return Step::Again;
            }
            Ok(Some(record)) => record,
        };
        if rc.ring.cached_tail() != loaded {
            // Records up to the tail just loaded were published after the
            // previous load.
            rc.floor_ns = rc.load_ns;
            rc.load_ns = self.pump_ns;
        }
        let floor = rc.floor_ns;
        let max = self.opts.max_message_size;
        if let Record::Message { len, .. } | Record::Frame { len, .. } = record {
            self.watch.took(len);
        }
        match record {
            // A plain message: queued as it lies in the ring, and counted
            // here, as `queue_frame` would for a frame of one message with
            // no origin (a ring is never on the network socket).
            Record::Message { stamp, off, len } => {
                if max != 0 && len > max as usize {
                    return Step::Broken;
                }
                rc.held += 1;
                // A small message at the tail shares its last cache line
                // with the writer's next record: copied now, while the line
                // is here, rather than fetched again once the writer has
                // written there.
                let payload = if len <= SMALL_MAX && rc.ring.position() == rc.ring.cached_tail() {
                    let mut data = [0u8; SMALL_MAX];
                    rc.ring.copy(off, &mut data[..len]);
                    Payload::Small {
                        len: len as u8,
                        data,
                    }
                } else {
                    Payload::Ring { off, len }
                };
                conn.queue.push_back(Pending {
                    stamp: conn.order.clamp(stamp, floor),
                    payload,
                    origin: None,
                    ring_end: rc.ring.position(),
                });
                self.buffered_msgs += 1;
                self.buffered_bytes += PENDING_COST;
                fill.got += 1;
                fill.got_bytes += HEADER_LEN + len;
                conn.filled_pass = self.pass;
                Step::Again
            }
            Record::Frame { off, len } => Step::Frame {
                ok: decode_ring_frame(
                    &rc.ring,
                    off,
                    len,
                    max,
                    conn.trusted,
                    &mut self.scratch,
                    &mut conn.queue,
                    &mut self.spare,
                ),
                len,
                floor,
            },
            Record::Handoff => Step::Again,
        }
    }

    /// Receives the next frame of `conn`'s socket: a control frame is
    /// handled here, any other decoded into the queue.
    fn socket_frame(&mut self, conn: &mut Conn, idx: usize, fill: &mut Fill) -> Step {
        if fill.budget.is_some_and(|b| fill.taken >= b) {
            return Step::Done;
        }
        if conn.expect_fd {
            if let Some(end) = self.no_fd_room(conn) {
                return end;
            }
        }
        // Plain `recv` unless a descriptor was announced: it costs
        // less, and drops any descriptor a writer sends unannounced.
        let r = if conn.expect_fd {
            sys::recv_frame(conn.fd.as_fd(), &mut self.scratch)
        } else {
            sys::recv_packet(conn.fd.as_fd(), &mut self.scratch)
        };
        // The announced frame may not have arrived yet (would block):
        // keep expecting it until a frame comes.
        if matches!(r, Ok(sys::Recv::Frame { .. })) {
            conn.expect_fd = false;
        }
        let (len, truncated, mut fd) = match r {
            Ok(sys::Recv::Frame { len, truncated, fd }) => (len, truncated, fd),
            Ok(sys::Recv::WouldBlock) => {
                // Drained: whatever comes next was sent after now.
                conn.order.drained(self.pump_ns);
                return Step::Done;
            }
            Ok(sys::Recv::Closed) | Err(_) => {
                conn.eof = true;
                return Step::Done;
            }
        };
        fill.taken += len;
        if len == HEADER_LEN && !truncated {
            let control = control_frame(&self.scratch[..len])
                .and_then(|kind| self.control(conn, idx, kind, &mut fd));
            if let Some(step) = control {
                return step;
            }
        }
        let ok = !truncated
            && decode_frame(
                &self.scratch[..len],
                fd,
                self.opts.max_message_size,
                conn.trusted,
                &conn.maps,
                &mut conn.queue,
                &mut self.spare,
            );
        Step::Frame {
            ok,
            len,
            floor: conn.order.frame(len, self.pump_ns, self.in_flight),
        }
    }

    /// Before a frame that carries a descriptor: why not to receive it now,
    /// if there is a reason.
    fn no_fd_room(&self, conn: &Conn) -> Option<Step> {
        // Descriptors are budgeted: a connection with messages
        // queued takes no more than its share now (the rest
        // wait in the kernel), and a descriptor the process has
        // no room for is left queued, never lost.
        if !conn.queue.is_empty() && (conn.fds >= FDS_PER_CONN || self.held_fds >= self.fd_budget) {
            return Some(Step::Done);
        }
        if matches!(sys::peek_frame_fd(conn.fd.as_fd()), sys::PeekFd::NoRoom) {
            return Some(Step::Starved);
        }
        None
    }

    /// Handles the control frame `kind` of `conn` (with the descriptor
    /// `fd` it carried); `None` if it is to be decoded as a message frame
    /// (and so refused).
    fn control(
        &mut self,
        conn: &mut Conn,
        idx: usize,
        kind: Kind,
        fd: &mut Option<OwnedFd>,
    ) -> Option<Step> {
        let step = match kind {
            Kind::Announce if fd.is_none() => {
                conn.expect_fd = true;
                Step::Again
            }
            Kind::Ring => {
                // An offer without its memory file, or a second
                // one, is refused when its eventfd comes.
                conn.offered = fd.take().filter(|_| conn.ring.is_none() && !conn.net_only);
                Step::Again
            }
            Kind::RingWake => {
                self.answer_ring(conn, idx, fd.take());
                Step::Again
            }
            Kind::Receipts => match fd.as_ref().map(Receipts::open) {
                // One receipt file per connection, before any
                // message (a writer that breaks this loses
                // its connection, and with it its receipts).
                Some(Ok(r))
                    if conn.receipts.is_none() && conn.queue.is_empty() && !conn.net_only =>
                {
                    conn.receipts = Some(r);
                    Step::Again
                }
                _ => Step::Broken,
            },
            Kind::ToRing if fd.is_none() => match conn.ring.as_mut() {
                Some(rc) => {
                    rc.reading = true;
                    Step::Again
                }
                None => Step::Broken,
            },
            _ => return None,
        };
        Some(step)
    }

    /// The writer on `conn` sent its ring's wake eventfd `wake`: takes the
    /// ring it offered, if it may, and answers.
    fn answer_ring(&mut self, conn: &mut Conn, idx: usize, wake: Option<OwnedFd>) {
        let accepted = match (conn.offered.take(), wake, conn.ring.is_none()) {
            (Some(memfd), Some(wake), true) => match RingReader::open(&memfd) {
                Ok(ring) => self
                    .poller
                    .add_edge(wake.as_fd(), RING_WAKE | idx as u64)
                    .map(|()| RingConn {
                        ring,
                        wake,
                        reading: false,
                        held: 0,
                        // Nothing is written before the
                        // answer, sent after now.
                        load_ns: self.pump_ns,
                        floor_ns: self.pump_ns,
                        quiet_to: 0,
                    })
                    .ok(),
                Err(_) => None,
            },
            _ => None,
        };
        let flags = if accepted.is_some() { FLAG_ACCEPTED } else { 0 };
        if accepted.is_some() {
            conn.ring = accepted;
            self.rings += 1;
        }
        notify(conn.fd.as_fd(), Kind::RingAnswer, flags, 0);
    }

    /// Checks and counts the messages a frame of `conn` added to its queue
    /// (from `before` on, sent no earlier than `floor`); false if the
    /// writer broke the protocol (nothing of the frame is kept then).
    fn queue_frame(
        &mut self,
        conn: &mut Conn,
        before: usize,
        floor: u64,
        on_ring: bool,
        fill: &mut Fill,
    ) -> bool {
        // Stamps are the writer's word: each is raised to what the
        // reader can prove about when it was written, and to the
        // connection's last (see `Order`).
        for p in conn.queue.range_mut(before..) {
            p.stamp = conn.order.clamp(p.stamp, floor);
        }
        // The network socket carries only messages with an origin.
        if conn.net_only && conn.queue.range(before..).any(|p| p.origin.is_none()) {
            conn.queue.truncate(before);
            return false;
        }
        if !self.opts.accept_remote && conn.queue.back().is_some_and(|p| p.origin.is_some()) {
            conn.queue.truncate(before);
            self.refused_remote += 1;
        }
        let added = conn.queue.len() - before;
        if on_ring {
            conn.hold_record(added);
        }
        self.count_queued(conn, before);
        fill.got += added;
        if added > 0 {
            conn.filled_pass = self.pass;
        }
        true
    }

    /// After filling connection `idx`: closes it if its writer broke the
    /// protocol, takes it off the poller if it starved for a descriptor,
    /// and gives the merge its head (or forgets it, ended and empty).
    fn end_fill(&mut self, idx: usize, was_empty: bool, end: Step) {
        match end {
            Step::Broken => self.cut_off(idx),
            Step::Starved => {
                if let Some(conn) = self.conns[idx].as_ref() {
                    let _ = self.poller.delete(conn.fd.as_fd());
                }
                self.starved.push(idx);
                self.starved_until = Some(Instant::now() + STARVE_PAUSE);
            }
            _ => {}
        }
        let Some(conn) = self.conns[idx].as_ref() else {
            return;
        };
        if was_empty {
            if let Some(front) = conn.queue.front() {
                let key = (front.stamp, self.seq, idx);
                self.seq += 1;
                self.heads.push(Reverse(key));
            } else if conn.eof {
                self.remove_conn(idx);
            }
        }
    }

    /// Puts connections that waited for room for a descriptor back on the
    /// poller once one was freed or [`STARVE_PAUSE`] has passed; returns
    /// the wait's timeout, bounded by that moment.
    pub(super) fn resume_starved(&mut self, timeout: Option<Duration>) -> Option<Duration> {
        let Some(until) = self.starved_until else {
            return timeout;
        };
        let left = until.saturating_duration_since(Instant::now());
        if !self.fd_freed && !left.is_zero() {
            return Some(timeout.map_or(left, |t| t.min(left)));
        }
        for idx in std::mem::take(&mut self.starved) {
            if let Some(c) = self.conns.get(idx).and_then(Option::as_ref) {
                let _ = self.poller.add(c.fd.as_fd(), idx as u64);
            }
        }
        self.starved_until = None;
        self.fd_freed = false;
        timeout
    }
}

/// Decodes one received frame into `queue`; false if the writer broke the
/// protocol (nothing is queued then).
fn decode_frame(
    packet: &[u8],
    fd: Option<OwnedFd>,
    max: u32,
    trusted: bool,
    mapped: &[((u64, u64), sys::SharedMap)],
    queue: &mut VecDeque<Pending>,
    spare: &mut Vec<Vec<u8>>,
) -> bool {
    let Ok(h) = Header::decode(packet) else {
        return false;
    };
    let too_big = |n: usize| max != 0 && n > max as usize;
    let body = &packet[HEADER_LEN..];
    match (h.kind, fd) {
        (Kind::Inline, None) => {
            let (origin, data) = if h.flags & FLAG_ORIGIN != 0 {
                // Only the daemon (root, or the directory's owner) may say a
                // message came from the network.
                // ... and only what fits one datagram can have come from it.
                match RemoteOrigin::decode(body) {
                    Some((o, rest)) if trusted && rest.len() <= REMOTE_DATA_MAX => {
                        (Some(Box::new(o)), rest)
                    }
                    _ => return false,
                }
            } else {
                (None, body)
            };
            if too_big(data.len()) {
                return false;
            }
            queue.push_back(Pending {
                stamp: h.stamp,
                payload: Payload::new(data, spare),
                origin,
                ring_end: 0,
            });
        }
        (Kind::Memfd, Some(fd)) if h.flags & !FLAG_RECYCLE == 0 => {
            let Some(p) = decode_memfd(&h, body, fd, max, mapped) else {
                return false;
            };
            queue.push_back(p);
        }
        (Kind::Batch, None) if h.flags == 0 => {
            let Some(msgs) = split_batch(body) else {
                return false;
            };
            if msgs.len() > BATCH_MESSAGES || msgs.iter().any(|m| too_big(m.len())) {
                return false;
            }
            queue.extend(msgs.into_iter().map(|m| Pending {
                stamp: h.stamp,
                payload: Payload::new(m, spare),
                origin: None,
                ring_end: 0,
            }));
        }
        _ => return false,
    }
    true
}

/// Decodes a memory-file frame (header `h`, body `body`) with its file
/// `fd`; `None` if the writer broke the protocol.
fn decode_memfd(
    h: &Header,
    body: &[u8],
    fd: OwnedFd,
    max: u32,
    mapped: &[((u64, u64), sys::SharedMap)],
) -> Option<Pending> {
    let too_big = |n: usize| max != 0 && n > max as usize;
    let recycle = h.flags & FLAG_RECYCLE != 0;
    let token = if recycle { frame::token(body) } else { None };
    if too_big(h.len as usize) || (recycle && token.is_none()) {
        return None;
    }
    // A buffer we keep mapped passed the seal check when we mapped it.
    let known = |dev, ino| mapped.iter().any(|(k, _)| *k == (dev, ino));
    let Ok(st) = sys::check_memfd(fd.as_fd(), u64::from(h.len), recycle, known) else {
        return None;
    };
    // Map only buffers sized like our writers' (a power of two at
    // most twice the message), never a huge sparse file.
    let size = st.st_size as u64;
    let id = (recycle && size <= (2 * u64::from(h.len)).max(256 << 10))
        .then_some((st.st_dev, st.st_ino));
    Some(Pending {
        stamp: h.stamp,
        payload: Payload::Memfd {
            fd,
            len: h.len as usize,
            token,
            id,
        },
        origin: None,
        ring_end: 0,
    })
}

/// Decodes a frame record of a ring into `queue`; false if the writer
/// broke the protocol (the caller then drops what was queued). Messages,
/// alone or in a batch, stay in the ring until they are read.
#[allow(clippy::too_many_arguments)]
fn decode_ring_frame(
    ring: &RingReader,
    off: usize,
    len: usize,
    max: u32,
    trusted: bool,
    scratch: &mut [u8],
    queue: &mut VecDeque<Pending>,
    spare: &mut Vec<Vec<u8>>,
) -> bool {
    let mut head = [0u8; HEADER_LEN];
    ring.copy(off, &mut head);
    let body = len - HEADER_LEN;
    let Ok(h) = Header::decode_head(&head, body) else {
        return false;
    };
    let too_big = |n: usize| max != 0 && n > max as usize;
    // A message at `at` of `n` bytes: left in the ring until read, and
    // copied once, straight into the reader's buffer.
    let message = |at: usize, n: usize| Pending {
        stamp: h.stamp,
        payload: Payload::Ring { off: at, len: n },
        origin: None,
        ring_end: 0,
    };
    match h.kind {
        Kind::Inline if h.flags == 0 => {
            if too_big(body) {
                return false;
            }
            queue.push_back(message(off + HEADER_LEN, body));
            return true;
        }
        // Split in place: `u32` length + bytes, repeated (see `frame.rs`).
        Kind::Batch if h.flags == 0 => {
            let end = off + len;
            let mut at = off + HEADER_LEN;
            let mut count = 0;
            while at < end {
                count += 1;
                if count > BATCH_MESSAGES {
                    return false;
                }
                let mut n = [0u8; 4];
                if end - at < n.len() {
                    return false;
                }
                ring.copy(at, &mut n);
                let n = u32::from_le_bytes(n) as usize;
                at += 4;
                if n > end - at || too_big(n) {
                    return false;
                }
                queue.push_back(message(at, n));
                at += n;
            }
            return true;
        }
        _ => {}
    }
    // Anything else (an origin block, or a kind the ring must not carry)
    // is copied out and decoded like a socket frame.
    let Some(frame) = scratch.get_mut(..len) else {
        return false;
    };
    ring.copy(off, frame);
    decode_frame(frame, None, max, trusted, &[], queue, spare)
}

/// The kind of a header-only control frame from a writer, if it is one.
fn control_frame(packet: &[u8]) -> Option<Kind> {
    let h = Header::decode(packet).ok()?;
    let control = matches!(
        h.kind,
        Kind::Announce | Kind::Ring | Kind::RingWake | Kind::ToRing | Kind::Receipts
    );
    (control && h.flags == 0).then_some(h.kind)
}

/// `data` in a spare buffer when it is large and one is at hand.
fn reuse(spare: &mut Vec<Vec<u8>>, data: &[u8]) -> Vec<u8> {
    match spare.pop() {
        Some(mut v) if data.len() >= SPARE_MIN => {
            v.clear();
            v.extend_from_slice(data);
            v
        }
        Some(v) => {
            spare.push(v);
            data.to_vec()
        }
        None => data.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use crate::ReaderOptions;
    use crate::ring::TAIL_LOADS;
    use crate::testing::ring_pair;

    /// Records already published are parsed up to the tail the fill
    /// loaded, and the fill ends there: it does not load the tail again
    /// to find that nothing more came (a reader keeping up with a writer
    /// chased it that way, record by record; see `watch.rs`).
    #[test]
    fn a_fill_looks_at_the_tail_once() {
        let (_tmp, mut reader, writer) = ring_pair("fill", &ReaderOptions::default());
        let mut buf = [0u8; 64];
        for i in 0..5u8 {
            writer.write(&[i; 8]).unwrap();
        }
        let before = TAIL_LOADS.with(std::cell::Cell::get);
        for i in 0..5u8 {
            assert_eq!(reader.read(&mut buf).unwrap(), 8);
            assert_eq!(buf[..8], [i; 8]);
        }
        let loads = TAIL_LOADS.with(std::cell::Cell::get) - before;
        assert_eq!(
            loads, 1,
            "five records published before, {loads} loads of the tail"
        );
    }
}
