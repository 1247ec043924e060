//! The writer: Windows' mailslot "client".
//!
//! A writer picks its route once, when it opens, and every write takes
//! it without asking again:
//!
//! - `local.rs`: one reader over one connection. Messages go through the
//!   connection's ring, its socket, or memory files for large ones.
//! - `fanout.rs`: every instance of a shared slot gets each message.
//! - `remote.rs` (feature `network`): UDP datagrams to another host or a
//!   group.
//!
//! `conn.rs` puts one frame on one reader connection, for the first two.
//! This file is the public face: opening (where the route is chosen), the
//! slot's facts, and each operation dispatched once on the route.

mod conn;
mod fanout;
mod local;
#[cfg(feature = "network")]
mod remote;

use std::os::fd::AsFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::frame::{FLAG_ORIGIN, Header, INLINE_MAX, Kind, RemoteOrigin, push_batch};
use crate::name::SlotName;
use crate::namespace::{Meta, Namespace};
use crate::receipt::{Ledger, Snapshot};
use crate::sys;

/// How long asking a new connection for receipts may wait for room.
const RECEIPTS_TIMEOUT: Duration = Duration::from_secs(1);

/// The writing end of a mailslot (Windows' mailslot client).
///
/// Any number of writers, in any processes, may be open on one slot. Each
/// [`write`](Writer::write) sends exactly one message or fails. A `Writer`
/// may be shared between threads; writes from one writer are never
/// reordered.
#[derive(Debug)]
pub struct Writer {
    slot: Slot,
    reader_pid: u32,
    accept_remote: bool,
    tally: Tally,
    route: Route,
}

/// How a writer's messages travel, chosen once when it opens.
#[derive(Debug)]
enum Route {
    /// One reader over one connection.
    Local(local::Local),
    /// Every instance of a shared slot.
    Shared(fanout::Fanout),
    /// Datagrams to another host or a group (not [`crate::Route`], which
    /// says where they go).
    #[cfg(feature = "network")]
    Remote(remote::Remote),
}

/// The slot as every route sees it: its name and limit for errors, and how
/// its reader wants frames.
#[derive(Debug)]
struct Slot {
    /// `\\.\mailslot\NAME`, or the remote destination.
    name: String,
    max: u32,
    /// The reader wants an announce frame before each frame with a
    /// descriptor (`announce=1` in its metadata).
    announce: bool,
    write_timeout: Option<Duration>,
}

impl Slot {
    fn deadline(&self) -> Option<Instant> {
        self.write_timeout.map(|t| Instant::now() + t)
    }

    fn check_size(&self, size: usize) -> Result<()> {
        if self.max != 0 && size > self.max as usize {
            return Err(Error::MessageTooLarge {
                name: self.name.clone(),
                size,
                max: u64::from(self.max),
            });
        }
        Ok(())
    }

    /// The length a frame header gives `data`, after the slot's limit.
    fn frame_len(&self, data: &[u8]) -> Result<u32> {
        self.check_size(data.len())?;
        u32::try_from(data.len()).map_err(|_| Error::MessageTooLarge {
            name: self.name.clone(),
            size: data.len(),
            max: u64::from(u32::MAX),
        })
    }

    /// A send that found no room before the write timeout.
    fn timed_out(&self, op: &'static str) -> Error {
        Error::TimedOut {
            name: self.name.clone(),
            op,
            timeout: self.write_timeout.unwrap_or_default(),
        }
    }

    /// The error for a connection the reader has closed: refused (with
    /// why), or gone.
    fn gone(&self, refused: Option<u16>) -> Error {
        let detail = match refused.and_then(crate::frame::Refusal::from_flags) {
            None => {
                return Error::ReaderClosed {
                    name: self.name.clone(),
                };
            }
            Some(crate::frame::Refusal::TooManyConnections) => format!(
                "uid {} holds its share of the reader's connections; close some writers (or run as the slot's owner)",
                sys::euid()
            ),
            Some(crate::frame::Refusal::Untrusted) => format!(
                "uid {} may not deliver network messages (only root, the directory's owner and the uids in .trusted-uids may)",
                sys::euid()
            ),
        };
        Error::Refused {
            name: self.name.clone(),
            detail,
        }
    }
}

/// Where [`Writer::write_exclusive`] put a message (its offset in the
/// ring, or the token of a reusable buffer only the writer can write) and
/// whether messages wait unpublished, in one word: so that the caller reads back exactly what was stored. A wider
/// read of narrower stores waits for every store before them to complete,
/// here the message's copy into the ring, which cost the queued writer
/// 7% of its 1 KiB throughput.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Placed(u64);

impl Placed {
    const DEFERRED: u64 = 1 << 63;
    const BUFFER: u64 = 1 << 62;

    fn new((at, buffer, deferred): (Option<usize>, Option<u64>, bool)) -> Placed {
        let at = match (at, buffer) {
            (Some(a), _) => a as u64 + 1,
            // Tokens count large messages from 1: never near 2^62.
            (None, Some(t)) => Placed::BUFFER | (t & (Placed::BUFFER - 1)),
            (None, None) => 0,
        };
        Placed(at | if deferred { Placed::DEFERRED } else { 0 })
    }

    /// Where the message lies in the ring, if it went there.
    pub(crate) fn ring_offset(self) -> Option<usize> {
        let a = self.0 & !Placed::DEFERRED;
        (a != 0 && a & Placed::BUFFER == 0).then(|| (a - 1) as usize)
    }

    /// The token of the reusable buffer that holds the message, if one
    /// does that only the writer can write (see `MemfdPool::writer_only`).
    pub(crate) fn buffer(self) -> Option<u64> {
        (self.0 & Placed::BUFFER != 0).then_some(self.0 & (Placed::BUFFER - 1))
    }

    /// Messages (this one or earlier) wait unpublished in the ring.
    pub(crate) fn deferred(self) -> bool {
        self.0 & Placed::DEFERRED != 0
    }
}

/// Messages sent, and once asked for, the readers' receipts of them.
#[derive(Debug, Default)]
struct Tally {
    /// Messages sent so far: the numbers receipts count in.
    sent: AtomicU64,
    /// The readers' receipts, once asked for ([`Writer::ask_receipts`]).
    ledger: Option<Mutex<Ledger>>,
}

impl Tally {
    fn count(&self, n: usize) {
        if self.ledger.is_some() {
            self.sent.fetch_add(n as u64, Ordering::Relaxed);
        }
    }

    /// [`count`](Tally::count) with no other user (no atomic operation).
    fn count_exclusive(&mut self, n: usize) {
        if self.ledger.is_some() {
            *self.sent.get_mut() += n as u64;
        }
    }

    fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    fn ledger(&self) -> Option<MutexGuard<'_, Ledger>> {
        let ledger = self.ledger.as_ref()?;
        Some(ledger.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn with_ledger<T>(&self, f: impl FnOnce(&mut Ledger, u64) -> T) -> Option<T> {
        let mut ledger = self.ledger()?;
        Some(f(&mut ledger, self.sent()))
    }
}

/// Frames the messages of `chunk` into `buf`, as a batch frame's payload.
fn frame_batch<M: AsRef<[u8]>>(buf: &mut Vec<u8>, chunk: &[M]) {
    buf.clear();
    for m in chunk {
        push_batch(buf, m.as_ref());
    }
}

impl Writer {
    /// Opens the slot `name` in the default namespace directory.
    ///
    /// Fails with [`Error::NotFound`] when no live reader has created it
    /// (a socket left behind by a crashed reader included), and with
    /// [`Error::PermissionDenied`] when the slot's mode does not admit us.
    pub fn open(name: &SlotName) -> Result<Writer> {
        Writer::open_in(&Namespace::resolve()?, name)
    }

    /// Opens the slot `name` in the namespace `ns`.
    pub fn open_in(ns: &Namespace, name: &SlotName) -> Result<Writer> {
        Writer::connect_in(ns, name, "sock", None)
    }

    /// Opens the slot `name` in `ns` with a write timeout
    /// ([`set_write_timeout`](Writer::set_write_timeout)) that bounds the
    /// open too: connecting waits at most `timeout` for room in a reader's
    /// connection queue, then fails with [`Error::TimedOut`].
    pub fn open_in_with_timeout(
        ns: &Namespace,
        name: &SlotName,
        timeout: Option<Duration>,
    ) -> Result<Writer> {
        let mut w = Writer::connect_in(ns, name, "sock", timeout)?;
        w.slot.write_timeout = timeout;
        Ok(w)
    }

    /// Opens the network socket of the slot `name` (`STEM.net.sock`): how
    /// the mailslot daemon, running unprivileged, delivers datagrams with
    /// [`write_remote`](Writer::write_remote). The reader keeps the
    /// connection only from trusted uids and only for messages with an
    /// origin. Fails with [`Error::NotFound`] when the slot does not exist
    /// or refuses network messages (it then has no network socket).
    ///
    /// Never waits: a reader whose connection queue is full fails it at
    /// once with [`Error::TimedOut`] (the daemon must not block on one slot).
    pub fn open_network_in(ns: &Namespace, name: &SlotName) -> Result<Writer> {
        let mut w = Writer::connect_in(ns, name, "net.sock", Some(Duration::ZERO))?;
        w.slot.write_timeout = Some(Duration::ZERO);
        Ok(w)
    }

    /// Chooses the route to a local slot: every instance of a shared slot,
    /// else the one reader's socket `STEM.SUFFIX`.
    fn connect_in(
        ns: &Namespace,
        name: &SlotName,
        suffix: &str,
        timeout: Option<Duration>,
    ) -> Result<Writer> {
        let display = name.path();
        let stem = name.file_stem();
        if let Ok(meta) = Meta::read(ns, &stem) {
            if meta.shared {
                let net = suffix == "net.sock";
                let fanout = fanout::Fanout::connect(ns, &stem, &display, net, timeout)?;
                return Ok(Writer::local(
                    display,
                    &meta,
                    meta.pid,
                    Route::Shared(fanout),
                ));
            }
        }
        let (local, meta, pid) = local::Local::connect(ns, &stem, suffix, &display, timeout)?;
        Ok(Writer::local(display, &meta, pid, Route::Local(local)))
    }

    /// A writer to a local slot, as its metadata describes it.
    fn local(name: String, meta: &Meta, reader_pid: u32, route: Route) -> Writer {
        Writer {
            slot: Slot {
                name,
                max: meta.max_message_size.min(u64::from(u32::MAX)) as u32,
                announce: meta.announce,
                write_timeout: None,
            },
            reader_pid,
            accept_remote: meta.accept_remote,
            tally: Tally::default(),
            route,
        }
    }

    // --- Remote destinations (issue 6; the `network` feature). ---

    /// Opens any destination: `\\.\mailslot\x` (like [`open`](Writer::open)),
    /// `\\HOST\mailslot\x`, `\\DOMAIN\mailslot\x` or `\\*\mailslot\x`,
    /// as this host ([`SendOptions::default`](crate::SendOptions): host name,
    /// `WORKGROUP`, UDP 138) in the default namespace.
    ///
    /// See [`open_destination_with`](Writer::open_destination_with).
    #[cfg(feature = "network")]
    pub fn open_destination(dest: &crate::Destination) -> Result<Writer> {
        Writer::open_destination_with(dest, &crate::SendOptions::default(), None)
    }

    /// Opens any destination with these network options; `ns` (default:
    /// [`Namespace::resolve`], looked up only when needed) is where local
    /// slots live.
    ///
    /// The route is found once, here: `\\HOST` is resolved by
    /// [`SendOptions::address`](crate::SendOptions::address), the system
    /// resolver or a NetBIOS name query ([`net::resolve`](crate::net::resolve));
    /// a name equal to our workgroup, any name with
    /// [`SendOptions::group`](crate::SendOptions::group), and `*` are groups,
    /// sent to every broadcast address (or
    /// [`SendOptions::broadcast`](crate::SendOptions::broadcast)). A
    /// `\\HOST` equal to our own NetBIOS name, and `\\.`, open the local
    /// slot and return a normal local writer.
    ///
    /// On a remote writer each [`write`](Writer::write) sends one datagram
    /// (DIRECT_UNIQUE to `HOST<00>`, or DIRECT_GROUP to `DOMAIN<00>` on each
    /// broadcast address); a message over 424 bytes (or `\MAILSLOT\NAME` +
    /// NUL + message over 443) fails with [`Error::Network`] before anything
    /// is sent. Delivery is not confirmed: UDP datagrams, as on Windows.
    /// [`write_remote`](Writer::write_remote) fails with
    /// [`Error::LocalOnly`]; [`AsFd`] gives the UDP socket.
    #[cfg(feature = "network")]
    pub fn open_destination_with(
        dest: &crate::Destination,
        opts: &crate::SendOptions,
        ns: Option<&Namespace>,
    ) -> Result<Writer> {
        let Some(remote) = remote::Remote::open(dest, opts)? else {
            return match ns {
                Some(ns) => Writer::open_in(ns, dest.slot()),
                None => Writer::open(dest.slot()),
            };
        };
        Ok(Writer {
            slot: Slot {
                name: dest.to_string(),
                max: mailslot_wire::MAX_PAYLOAD as u32,
                announce: false,
                write_timeout: None,
            },
            reader_pid: 0,
            accept_remote: false,
            tally: Tally::default(),
            route: Route::Remote(remote),
        })
    }

    /// Where this writer's datagrams go: `None` for a local slot (a
    /// `\\HOST` naming this host included).
    #[cfg(feature = "network")]
    pub fn route(&self) -> Option<&crate::Route> {
        match &self.route {
            Route::Remote(r) => Some(r.target.route()),
            _ => None,
        }
    }

    /// How many datagrams each message becomes: 1 for a host, one per
    /// broadcast address for a group, 0 for a local slot.
    #[cfg(feature = "network")]
    pub fn datagrams_per_message(&self) -> usize {
        match &self.route {
            Route::Remote(r) => r.target.datagrams_per_message(),
            _ => 0,
        }
    }

    // --- End of remote destinations. ---

    /// Whether this writer feeds a shared slot (every reader gets each message).
    pub fn is_shared(&self) -> bool {
        matches!(self.route, Route::Shared(_))
    }

    /// The slot's name, `\\.\mailslot\NAME`.
    pub fn name(&self) -> &str {
        &self.slot.name
    }

    /// The slot's maximum message size (0 = any size).
    pub fn max_message_size(&self) -> u32 {
        self.slot.max
    }

    /// The process id of the reader this writer is connected to.
    pub fn reader_pid(&self) -> u32 {
        self.reader_pid
    }

    /// Whether the slot's reader accepts messages forwarded from the network.
    pub fn accepts_remote(&self) -> bool {
        self.accept_remote
    }

    /// How long a write waits for room when the reader's queue is full:
    /// `None` (the default) waits as long as it takes. A remote writer
    /// (UDP datagrams) never waits for a reader and ignores it.
    pub fn set_write_timeout(&mut self, timeout: Option<Duration>) {
        self.slot.write_timeout = timeout;
    }

    /// Sends `data` as one message.
    ///
    /// Zero-length messages are real messages. A message over the slot's
    /// maximum fails with [`Error::MessageTooLarge`] and nothing is queued.
    /// When the reader's queue is full this waits for room (up to the write
    /// timeout, then [`Error::TimedOut`] with nothing sent); when the reader
    /// has gone it fails with [`Error::ReaderClosed`]. (A reader killed
    /// outright is noticed within 20 µs of the writer's last look at its
    /// connection: a write in that window may succeed, unread, like one
    /// just before the reader died. See ARCHITECTURE.md, "The ring".)
    ///
    /// Messages up to 64 KiB normally go through shared memory (a ring
    /// per connection), larger ones through memory files; do not use one
    /// `Writer` on both sides of a `fork()`.
    pub fn write(&self, data: &[u8]) -> Result<()> {
        self.write_in_place(data).map(drop)
    }

    /// Like [`write`](Writer::write); when the message went into the ring
    /// of a local slot, returns where it lies there (it stays until a read
    /// returns it; see [`read_back`](Writer::read_back)).
    pub(crate) fn write_in_place(&self, data: &[u8]) -> Result<Option<usize>> {
        self.write_routed(data, false).map(|(at, _)| at)
    }

    #[inline]
    fn write_routed(&self, data: &[u8], defer: bool) -> Result<(Option<usize>, bool)> {
        let written = match &self.route {
            Route::Local(l) => l.write_maybe_deferred(&self.slot, data, defer)?,
            Route::Shared(f) => f
                .write(&self.slot, &self.tally, data)
                .map(|()| (None, false))?,
            #[cfg(feature = "network")]
            Route::Remote(r) => {
                return r.write(&[data]).map(|()| (None, false)).map_err(|(_, e)| e);
            }
        };
        self.tally.count(1);
        Ok(written)
    }

    /// [`write_in_place`](Writer::write_in_place) by this writer's only
    /// user: to one reader, with no lock taken and no atomic count. When
    /// `defer`, the message may stay unpublished in the ring for a moment
    /// while a stream of them goes in (see `Local::write_maybe_deferred`):
    /// until [`publish_deferred`](Writer::publish_deferred) or the next
    /// write that is not deferred. A message too large to go inline waits
    /// for one of the connection's reusable buffers only when `patient`:
    /// else, with every buffer out, nothing is sent and the write times
    /// out at once (for a caller that holds a lock others wait on). Other
    /// routes write as usual. Returns where the message went and whether
    /// messages wait to be published.
    pub(crate) fn write_exclusive(
        &mut self,
        data: &[u8],
        defer: bool,
        patient: bool,
    ) -> Result<Placed> {
        let Route::Local(l) = &mut self.route else {
            return self
                .write_routed(data, defer)
                .map(|(at, deferred)| Placed::new((at, None, deferred)));
        };
        let written = l.write_exclusive(&self.slot, data, defer, patient)?;
        self.tally.count_exclusive(1);
        Ok(Placed::new(written))
    }

    /// Publishes what [`write_exclusive`](Writer::write_exclusive) left
    /// unpublished; true if anything was.
    pub(crate) fn publish_deferred(&mut self) -> bool {
        match &mut self.route {
            Route::Local(l) => l.publish_deferred(),
            _ => false,
        }
    }

    /// A copy of the message of `len` bytes that
    /// [`write_exclusive`](Writer::write_exclusive) left in reusable buffer
    /// `token`, while the reader has not given the buffer back.
    pub(crate) fn read_back_buffer(&self, token: u64, len: usize) -> Option<Vec<u8>> {
        match &self.route {
            Route::Local(l) => l.read_back_buffer(token, len),
            _ => None,
        }
    }

    /// A copy of the message of `len` bytes that
    /// [`write_in_place`](Writer::write_in_place) left at `at` in the ring.
    pub(crate) fn read_back(&self, at: usize, len: usize) -> Option<Vec<u8>> {
        match &self.route {
            Route::Local(l) => l.read_back(at, len),
            _ => None,
        }
    }

    /// Keeps this writer's messages on the socket (no ring): for users of
    /// its descriptor's readiness ([`AsyncWriter`](crate::AsyncWriter)).
    /// A writer whose reader is reading its ring first sends it back to
    /// the socket, waiting for room in the ring if it is full.
    #[cfg(feature = "tokio")]
    pub(crate) fn socket_only(&mut self) -> Result<()> {
        match &mut self.route {
            Route::Local(l) => l.socket_only(&self.slot),
            _ => Ok(()),
        }
    }

    /// Bounds the memory this writer keeps to reuse for large messages
    /// (over 64 KiB), which pass through shared memory: 256 MiB by default,
    /// in at most eight buffers. Reusing a buffer saves allocating and
    /// freeing its pages for every message, several times the cost of
    /// copying it. When every buffer is still with the reader, a write waits
    /// up to 10 ms (2 ns per byte for messages over 5 MiB; never past the write
    /// timeout) for one to come back before it uses a memory file of its
    /// own. `0` keeps none; every large message then gets a memory file of
    /// its own. Buffers the reader still holds are not dropped.
    pub fn set_large_message_cache(&mut self, bytes: u64) {
        if let Route::Local(l) = &mut self.route {
            l.set_large_message_cache(bytes);
        }
    }

    /// Waits up to `timeout` (`None`: forever) until the reader has taken
    /// this writer's connection: `Ok(true)` once it has (everything
    /// written on it will be read unless the reader goes away first),
    /// `Ok(false)` when the time ran out (the reader has not looked yet:
    /// it is busy, or out of descriptors; what was written waits for it),
    /// [`Error::Refused`] or [`Error::ReaderClosed`] when it will never be.
    /// A write returns as soon as the message is in the connection; this
    /// says whether the connection itself is in the reader's hands. For a
    /// shared slot, the first instance's answer.
    pub fn wait_accepted(&self, timeout: Option<Duration>) -> Result<bool> {
        match &self.route {
            Route::Local(l) => l.wait_accepted(&self.slot, timeout),
            Route::Shared(f) => f.first.wait_accepted(&self.slot, timeout),
            #[cfg(feature = "network")]
            Route::Remote(_) => Ok(true),
        }
    }

    /// Largest number of payload bytes [`write_batch`](Writer::write_batch)
    /// puts in one packet.
    pub const BATCH_BYTES: usize = INLINE_MAX;

    /// Largest number of messages [`write_batch`](Writer::write_batch)
    /// puts in one packet (readers refuse more: each costs them a queue
    /// entry).
    pub const BATCH_MESSAGES: usize = crate::frame::BATCH_MESSAGES;

    /// Sends several messages at once, coalesced into as few packets as
    /// possible. The reader sees each as its own message, in order, with
    /// this writer as sender; exactly like calling [`write`](Writer::write)
    /// for each, only cheaper.
    ///
    /// All sizes are checked first; on an error part-way (the reader gone,
    /// a timeout), returns how many messages were sent with the error.
    pub fn write_batch<M: AsRef<[u8]>>(&self, messages: &[M]) -> Result<(), (usize, Error)> {
        let (slot, tally) = (&self.slot, &self.tally);
        match &self.route {
            Route::Local(l) => self.coalesce(
                messages,
                l.pooled(),
                |m| l.write(slot, m).map(drop),
                |head, chunk, len, buf| l.write_chunk(slot, head, chunk, len, buf),
            ),
            Route::Shared(f) => self.coalesce(
                messages,
                false,
                |m| f.write(slot, tally, m),
                |head, chunk, _, buf| {
                    frame_batch(buf, chunk);
                    f.send(slot, tally, head, buf, None)
                },
            ),
            #[cfg(feature = "network")]
            Route::Remote(r) => r.write(messages),
        }
    }

    /// [`write_batch`](Writer::write_batch) on a local or shared slot:
    /// `alone` sends a message too large for a batch (or, when `pooled`,
    /// one that travels faster in a reusable buffer) by itself; `batch`
    /// sends the next messages as one batch frame (header, messages,
    /// their payload bytes framed, a buffer to frame them in).
    fn coalesce<M: AsRef<[u8]>>(
        &self,
        messages: &[M],
        pooled: bool,
        alone: impl Fn(&[u8]) -> Result<()>,
        mut batch: impl FnMut(Header, &[M], usize, &mut Vec<u8>) -> Result<()>,
    ) -> Result<(), (usize, Error)> {
        for m in messages {
            self.slot.check_size(m.as_ref().len()).map_err(|e| (0, e))?;
        }
        let mut sent = 0;
        let mut buf = Vec::new();
        // Mid-sized messages travel faster alone in a reusable buffer than
        // copied into a batch (see `MEMFD_MIN`), when the reader takes
        // buffers back.
        let single =
            |m: &[u8]| m.len() + 4 > Self::BATCH_BYTES || (pooled && m.len() >= local::MEMFD_MIN);
        let mut i = 0;
        while i < messages.len() {
            let first = messages[i].as_ref();
            if single(first) {
                alone(first).map_err(|e| (sent, e))?;
                self.tally.count(1);
                sent += 1;
                i += 1;
                continue;
            }
            let start = i;
            let mut len = 0;
            while i < messages.len()
                && i - start < Self::BATCH_MESSAGES
                && !single(messages[i].as_ref())
                && len + 4 + messages[i].as_ref().len() <= Self::BATCH_BYTES
            {
                len += 4 + messages[i].as_ref().len();
                i += 1;
            }
            let head = Header::new(Kind::Batch, 0, len as u32);
            batch(head, &messages[start..i], len, &mut buf).map_err(|e| (sent, e))?;
            self.tally.count(i - start);
            sent += i - start;
        }
        Ok(())
    }

    /// Asks the reader (every reader of a shared slot, and those that join
    /// later) to count, in a receipt file of this writer's, each message
    /// of this connection that a read returns (see `receipt.rs`); the
    /// queued writer's delivery guarantee rests on it. Call before the
    /// first write.
    pub(crate) fn ask_receipts(&mut self) -> Result<()> {
        let mut ledger = Ledger::default();
        let deadline = Some(Instant::now() + RECEIPTS_TIMEOUT);
        let (slot, tally) = (&self.slot, &self.tally);
        match &self.route {
            Route::Local(l) => conn::send_receipts(slot, l.fd(), tally, &mut ledger, deadline)?,
            Route::Shared(f) => f.ask_receipts(slot, tally, &mut ledger, deadline)?,
            #[cfg(feature = "network")]
            Route::Remote(_) => return Err(self.local_only("ask_receipts")),
        }
        self.tally.ledger = Some(Mutex::new(ledger));
        Ok(())
    }

    /// Messages sent so far, when receipts were asked for: the next one
    /// gets this number.
    pub(crate) fn sent_messages(&self) -> u64 {
        self.tally.sent()
    }

    /// The readers' receipts as they are now: what became of each message
    /// (see [`ask_receipts`](Writer::ask_receipts)).
    pub(crate) fn receipts(&self, into: &mut Snapshot) {
        if self
            .tally
            .with_ledger(|l, sent| l.snapshot_into(sent, into))
            .is_none()
        {
            *into = Snapshot::default();
        }
    }

    /// Drops what the receipts keep about readers gone before message `n`.
    pub(crate) fn forget_before(&self, n: u64) {
        self.tally.with_ledger(|l, _| l.forget_before(n));
    }

    /// Looks, without waiting, whether the readers are still there;
    /// revokes the receipts of those gone. False when none is left.
    pub(crate) fn readers_alive(&self) -> bool {
        match &self.route {
            Route::Local(l) => l.reader_alive(&self.tally),
            Route::Shared(f) => f.readers_alive(&self.tally),
            #[cfg(feature = "network")]
            Route::Remote(_) => true,
        }
    }

    /// Takes back every message no read has returned yet: from now on no
    /// reader returns one (see `receipt.rs`). Before the writer drops the
    /// connection, to send them elsewhere or hand them back.
    pub(crate) fn revoke_unread(&self) {
        self.tally.with_ledger(|l, sent| l.leave_all(sent));
    }

    /// Sends one message on behalf of a network sender: the mailslot
    /// daemon's way to tell the reader where a datagram came from.
    ///
    /// Readers believe the origin only from root or the namespace
    /// directory's owner; from anyone else the reader refuses the frame and
    /// closes the connection. Slots that refuse network messages discard it.
    pub fn write_remote(&self, data: &[u8], origin: &RemoteOrigin) -> Result<()> {
        match &self.route {
            Route::Local(l) => {
                let (head, buf) = self.origin_frame(data, origin)?;
                l.write_frame(&self.slot, head, &buf)
            }
            Route::Shared(f) => {
                let (head, buf) = self.origin_frame(data, origin)?;
                f.send(&self.slot, &self.tally, head, &buf, None)
            }
            #[cfg(feature = "network")]
            Route::Remote(_) => Err(self.local_only("write_remote")),
        }
    }

    /// The frame [`write_remote`](Writer::write_remote) sends: `data` after
    /// its origin, inline.
    fn origin_frame(&self, data: &[u8], origin: &RemoteOrigin) -> Result<(Header, Vec<u8>)> {
        self.slot.check_size(data.len())?;
        let mut buf = Vec::with_capacity(data.len() + 64);
        origin.encode(&mut buf);
        buf.extend_from_slice(data);
        if buf.len() > INLINE_MAX {
            return Err(Error::MessageTooLarge {
                name: self.slot.name.clone(),
                size: data.len(),
                max: (INLINE_MAX - 600) as u64,
            });
        }
        let head = Header::new(Kind::Inline, FLAG_ORIGIN, buf.len() as u32);
        Ok((head, buf))
    }

    #[cfg(feature = "network")]
    fn local_only(&self, op: &'static str) -> Error {
        Error::LocalOnly {
            op,
            name: self.slot.name.clone(),
        }
    }
}

// --- Readiness for the async writer (issue 4, `async_io.rs`). ---

impl AsFd for Writer {
    /// The connection's socket: writable when a write may make progress,
    /// for a writer that stays on the socket
    /// ([`AsyncWriter`](crate::AsyncWriter) makes sure of that). A writer
    /// whose messages go through its ring waits for room on the socket's
    /// readability instead.
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        match &self.route {
            Route::Local(l) => l.fd(),
            Route::Shared(f) => f.first.fd(),
            #[cfg(feature = "network")]
            Route::Remote(r) => r.fd.as_fd(),
        }
    }
}

impl std::os::fd::AsRawFd for Writer {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.as_fd().as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::{Placed, Writer};
    use crate::{Namespace, Reader, ReaderOptions, SlotName};

    /// The reader's acceptance of the ring offer counts whoever looks at
    /// the notices first: a look whether the reader is still there (a
    /// queued writer's delivery thread makes them) took it, and the
    /// connection sent everything through the socket from then on.
    #[test]
    fn a_ring_accepted_while_someone_else_looked_is_used() {
        let tmp = tempfile::tempdir().unwrap();
        let ns = Namespace::at(tmp.path()).unwrap();
        let name = SlotName::parse(r"\\.\mailslot\ring\answer").unwrap();
        let mut reader = Reader::create_in(&ns, &name, &ReaderOptions::default()).unwrap();
        let writer = Writer::open_in(&ns, &name).unwrap();
        // The first write offers the ring and goes on the socket; the read
        // takes the offer and answers it.
        assert_eq!(writer.write_in_place(b"first").unwrap(), None);
        let mut buf = [0u8; 16];
        assert_eq!(reader.read(&mut buf).unwrap(), 5);
        assert!(writer.readers_alive());
        let at = writer.write_in_place(b"second").unwrap();
        assert!(at.is_some(), "the second message goes through the ring");
        assert_eq!(reader.read(&mut buf).unwrap(), 6);
        assert_eq!(&buf[..6], b"second");
    }

    /// [`crate::testing::ring_pair`] with the default reader options.
    fn ring_pair(bare: &str) -> (tempfile::TempDir, Reader, Writer) {
        crate::testing::ring_pair(bare, &ReaderOptions::default())
    }

    /// Writes four 600-byte records back to back, as the queued writer's
    /// direct sends do, each through the ring; whether the last waits
    /// unpublished.
    fn write_stream(writer: &mut Writer, msg: &[u8]) -> bool {
        let mut deferred = false;
        for _ in 0..4 {
            let p = writer.write_exclusive(msg, true, true).unwrap();
            assert!(p.ring_offset().is_some(), "through the ring");
            deferred = p.deferred();
        }
        deferred
    }

    /// Reads `n` messages, each `msg`.
    fn read_each(reader: &mut Reader, n: usize, msg: &[u8]) {
        let mut buf = [0u8; 1024];
        for i in 0..n {
            let n = reader
                .read_with_sender_timeout(&mut buf, Some(std::time::Duration::from_secs(2)))
                .unwrap_or_else(|e| panic!("message {i}: {e}"))
                .0;
            assert_eq!(&buf[..n], msg);
        }
    }

    /// Records a stream left unpublished (the queued writer's direct
    /// sends) reach a reader that has caught up before it sleeps, with
    /// nobody publishing them: the last messages of a burst waited for the
    /// queued writer's delivery thread, 200 µs typically, up to 2.7 ms.
    #[test]
    fn unpublished_records_reach_a_reader_about_to_sleep() {
        let (_tmp, mut reader, mut writer) = ring_pair(r"ring\staged");
        let mut buf = [0u8; 1024];
        let msg = [7u8; 600];
        assert!(
            write_stream(&mut writer, &msg),
            "the stream's last records wait unpublished"
        );
        read_each(&mut reader, 4, &msg);
        // Published later (the queued writer's thread does): nothing more,
        // nothing twice, and the ring goes on.
        writer.publish_deferred();
        assert!(matches!(
            reader.read_with_sender_timeout(&mut buf, Some(std::time::Duration::ZERO)),
            Err(crate::Error::TimedOut { .. })
        ));
        writer.write(b"after").unwrap();
        assert_eq!(reader.read(&mut buf).unwrap(), 5);
        assert_eq!(&buf[..5], b"after");
    }

    /// A record that follows the previous one closely enough to wait for
    /// the next ones is published at once while the reader watches for
    /// records: a reply to a message the reader just read must not wait
    /// unpublished until the reader, watching in vain, looks where records
    /// are staged (a 1 KiB ping-pong through the queued writer took 10 µs
    /// one way instead of 0.5 with the reader looking closely).
    #[test]
    fn a_record_is_published_at_once_while_the_reader_watches() {
        let (_tmp, mut reader, mut writer) = ring_pair(r"ring\watched");
        let msg = [7u8; 600];
        assert!(
            write_stream(&mut writer, &msg),
            "unwatched, the stream's last records wait"
        );
        writer.publish_deferred();
        reader.set_watching(true);
        for i in 0..4 {
            let p = writer.write_exclusive(&msg, true, true).unwrap();
            assert!(p.ring_offset().is_some(), "through the ring");
            assert!(
                !p.deferred(),
                "record {i} waits unpublished beside a watching reader"
            );
        }
        reader.set_watching(false);
        read_each(&mut reader, 8, &msg);
    }

    /// Once a reader has taken a stream's unpublished records (as staged)
    /// and sleeps, the writer's next message is published and wakes it,
    /// rather than joining those records unpublished: it waited for the
    /// queued writer's delivery thread (5 ms and more) when it joined.
    #[test]
    fn after_a_stream_read_as_staged_the_next_message_wakes_the_reader() {
        let (_tmp, mut reader, mut writer) = ring_pair(r"ring\rewake");
        let mut buf = [0u8; 1024];
        let msg = [7u8; 600];
        for _ in 0..4 {
            writer.write_exclusive(&msg, true, true).unwrap();
        }
        let wait = Some(std::time::Duration::from_secs(2));
        for _ in 0..4 {
            assert_eq!(
                reader.read_with_sender_timeout(&mut buf, wait).unwrap().0,
                600
            );
        }
        std::thread::scope(|s| {
            let r = s.spawn(|| {
                let mut buf = [0u8; 16];
                // Long: a read that times out looks at the rings once more
                // and would find the message then.
                let n = reader
                    .read_with_sender_timeout(&mut buf, Some(std::time::Duration::from_secs(10)))
                    .unwrap()
                    .0;
                (buf[..n].to_vec(), std::time::Instant::now())
            });
            // The reader has looked at the ring and sleeps.
            std::thread::sleep(std::time::Duration::from_millis(50));
            let sent = std::time::Instant::now();
            writer.write_exclusive(b"next", true, true).unwrap();
            let (got, at) = r.join().unwrap();
            assert_eq!(got, b"next");
            let took = at.saturating_duration_since(sent);
            assert!(
                took < std::time::Duration::from_secs(2),
                "woken by the next message, not found at the read's timeout ({took:?})"
            );
        });
    }

    /// Whether thread `tid` of this process sleeps (state `S`: the reader
    /// waits in the kernel for a wake-up).
    fn thread_sleeps(tid: i32) -> bool {
        std::fs::read_to_string(format!("/proc/self/task/{tid}/stat"))
            .ok()
            .and_then(|s| {
                s.rsplit_once(')')
                    .map(|(_, rest)| rest.trim_start().starts_with('S'))
            })
            .unwrap_or(false)
    }

    /// A stream's record written while its reader sleeps is published at
    /// once and wakes it, though it follows the previous record closely
    /// enough to wait for the next ones: the writer sees the reader's ask
    /// to be woken. It waited unpublished for the queued writer's delivery
    /// thread (or here for the read's timeout) when only a reader that had
    /// given back every record stopped it.
    #[test]
    fn a_stream_record_written_while_the_reader_sleeps_wakes_it() {
        let (_tmp, mut reader, mut writer) = ring_pair(r"ring\asleep");
        let (tid_tx, tid_rx) = std::sync::mpsc::channel();
        std::thread::scope(|s| {
            let r = s.spawn(move || {
                let mut buf = [0u8; 16];
                let mut got = Vec::new();
                tid_tx
                    .send(rustix::thread::gettid().as_raw_nonzero().get())
                    .unwrap();
                for _ in 0..2 {
                    // Long: a read that times out looks at the rings once
                    // more and would find the record then.
                    let n = reader
                        .read_with_sender_timeout(
                            &mut buf,
                            Some(std::time::Duration::from_secs(10)),
                        )
                        .unwrap()
                        .0;
                    got.push((buf[..n].to_vec(), std::time::Instant::now()));
                }
                got
            });
            let tid = tid_rx.recv().unwrap();
            let asleep = || {
                let until = std::time::Instant::now() + std::time::Duration::from_secs(5);
                while !thread_sleeps(tid) {
                    assert!(std::time::Instant::now() < until, "the reader never slept");
                    std::thread::yield_now();
                }
            };
            asleep();
            // Published: the reader wakes, reads it, watches the ring a
            // while, asks to be woken and sleeps again.
            writer.write(b"first").unwrap();
            std::thread::yield_now();
            asleep();
            let sent = std::time::Instant::now();
            writer.write_exclusive(b"second", true, true).unwrap();
            let got = r.join().unwrap();
            assert_eq!(got[0].0, b"first");
            assert_eq!(got[1].0, b"second");
            let took = got[1].1.saturating_duration_since(sent);
            assert!(
                took < std::time::Duration::from_secs(2),
                "woken by the record, not found at the read's timeout ({took:?})"
            );
        });
    }

    #[test]
    fn placed_keeps_offset_and_deferral() {
        for at in [
            None,
            Some(0),
            Some(8),
            Some(crate::ring::FILE_LEN as usize - 8),
        ] {
            for deferred in [false, true] {
                let p = Placed::new((at, None, deferred));
                assert_eq!(
                    (p.ring_offset(), p.buffer(), p.deferred()),
                    (at, None, deferred)
                );
            }
        }
        for token in [1, 2, 1 << 40] {
            for deferred in [false, true] {
                let p = Placed::new((None, Some(token), deferred));
                assert_eq!(
                    (p.ring_offset(), p.buffer(), p.deferred()),
                    (None, Some(token), deferred)
                );
            }
        }
    }
}
