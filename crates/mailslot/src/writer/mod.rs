//! The writer: Windows' mailslot "client".

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::error::{Error, Result, io_err};
use crate::frame::{
    FLAG_ACCEPTED, FLAG_ORIGIN, FLAG_RECYCLE, HEADER_LEN, Header, INLINE_MAX, Kind, Refusal,
    RemoteOrigin, push_batch,
};
use crate::memfd_pool::{self, MemfdPool};
use crate::name::SlotName;
use crate::namespace::{Meta, Namespace};
use crate::receipt::{Ledger, Receipts, Snapshot};
use crate::ring::{self, RingWriter};
use crate::sys;

/// While its messages go through the ring, a writer looks at its socket
/// (release and room notices, the reader gone) when at least this long has
/// passed since it last did, not on every write: so a write right after a
/// reader crashed may still succeed, unread, as one just before it would.
/// A reader that closes normally marks the ring, which every write checks.
const CHECK_NS: u64 = 20_000;

/// How long asking a new connection for receipts may wait for room.
const RECEIPTS_TIMEOUT: Duration = Duration::from_secs(1);

/// A writer gives up on an offered ring that the reader has not answered
/// after this many writes (an old reader that ignores the offer).
const OFFER_CHECKS: u32 = 1000;

/// Messages from this size up go in a reusable buffer when one is free,
/// though they would fit inline: a socket buffer that large costs more to
/// allocate and fill than the memfd round trip. Measured with `mailslot
/// bench` (1 / 4 writers, GB/s, inline -> reusable buffer): 16 KiB 4.2 ->
/// 4.5 / 4.3 -> 4.0 (so not below 32 KiB), 32 KiB 3.7 -> 6.1 / 4.8 -> 5.1,
/// 60 KiB 3.9 -> 7.8 / 5.4 -> 6.5 (POSIX mq: 7.1-8.2 / 5.9).
const MEMFD_MIN: usize = 32 * 1024;

/// The writing end of a mailslot (Windows' mailslot client).
///
/// Any number of writers, in any processes, may be open on one slot. Each
/// [`write`](Writer::write) sends exactly one message or fails. A `Writer`
/// may be shared between threads; writes from one writer are never
/// reordered.
#[derive(Debug)]
pub struct Writer {
    display: String,
    fd: OwnedFd,
    max: u32,
    reader_pid: u32,
    accept_remote: bool,
    /// The reader wants an announce frame before each frame with a
    /// descriptor (`announce=1` in its metadata).
    announce: bool,
    write_timeout: Option<Duration>,
    // Held across stamp-and-send so one connection's stamps stay ordered.
    // Guards the reusable buffers for large messages, when the reader
    // takes them back (not for shared slots), and the ring.
    send_lock: Mutex<SendState>,
    // For a shared slot: every reader instance (`fd` is a copy of the first).
    shared: Option<Mutex<crate::shared::SharedTargets>>,
    /// Messages sent so far: the numbers receipts count in.
    sent_msgs: AtomicU64,
    /// The readers' receipts, once asked for ([`Writer::ask_receipts`]).
    ledger: Option<Mutex<Ledger>>,
    // For `\\HOST`, `\\DOMAIN`, `\\*`: where datagrams go (`fd` is a copy
    // of its UDP socket). Checked once per write; `None` on the local path.
    #[cfg(feature = "network")]
    remote: Option<Box<crate::net::RemoteTarget>>,
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
}

impl SendState {
    fn new(pool: Option<MemfdPool>, lane: Lane) -> SendState {
        SendState {
            pool,
            lane,
            welcomed: false,
            refused: None,
        }
    }

    fn socket_only() -> SendState {
        SendState::new(None, Lane::Off)
    }
}

/// What [`Writer::collect`] found on the connection.
struct Notices {
    /// The reader has closed it.
    closed: bool,
    /// The reader's answer to a ring offer, if it came.
    answer: Option<bool>,
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
        w.write_timeout = timeout;
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
        w.write_timeout = Some(Duration::ZERO);
        Ok(w)
    }

    fn connect_in(
        ns: &Namespace,
        name: &SlotName,
        suffix: &str,
        timeout: Option<Duration>,
    ) -> Result<Writer> {
        let display = name.path();
        let stem = name.file_stem();
        let sock = format!("{stem}.{suffix}");
        if let Ok(meta) = Meta::read(ns, &stem) {
            if meta.shared {
                let net = suffix == "net.sock";
                return Writer::connect_shared(ns, &stem, display, meta, net, timeout);
            }
        }
        // The metadata must belong to the reader we connected to; a reader
        // being replaced at this very moment can make them disagree once.
        for _ in 0..8 {
            let fd = sys::seqpacket_socket(false).map_err(io_err("creating a socket", &display))?;
            let addr = sys::unix_addr(ns.dir(), ns.fd(), &sock)
                .map_err(io_err("building the socket address", &display))?;
            if let Err(e) = sys::connect_bounded(fd.as_fd(), &addr, timeout) {
                return Err(match e.kind() {
                    io::ErrorKind::WouldBlock => Error::TimedOut {
                        name: display,
                        op: "connecting to",
                        timeout: timeout.unwrap_or_default(),
                    },
                    io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => {
                        Error::NotFound { name: display }
                    }
                    io::ErrorKind::PermissionDenied => Error::PermissionDenied {
                        name: display,
                        detail: format!(
                            "the slot's mode does not let uid {} write to it; its reader can create it with a wider mode (e.g. 0666)",
                            sys::euid()
                        ),
                    },
                    _ => io_err("connecting", &display)(e),
                });
            }
            let cred = sys::peer_cred(fd.as_fd())
                .map_err(io_err("reading the reader's credentials", &display))?;
            match Meta::read(ns, &stem) {
                Ok(meta) if meta.pid == cred.pid && meta.uid == cred.uid => {
                    return Ok(Writer {
                        display,
                        fd,
                        max: meta.max_message_size.min(u64::from(u32::MAX)) as u32,
                        reader_pid: cred.pid,
                        accept_remote: meta.accept_remote,
                        announce: meta.announce,
                        write_timeout: None,
                        send_lock: Mutex::new(SendState::new(
                            meta.recycle
                                .then(|| MemfdPool::new(memfd_pool::DEFAULT_BYTES)),
                            if meta.ring && meta.announce && suffix == "sock" {
                                Lane::Ready
                            } else {
                                Lane::Off
                            },
                        )),
                        shared: None,
                        sent_msgs: AtomicU64::new(0),
                        ledger: None,
                        #[cfg(feature = "network")]
                        remote: None,
                    });
                }
                _ => continue,
            }
        }
        Err(Error::NotFound { name: display })
    }

    fn connect_shared(
        ns: &Namespace,
        stem: &str,
        display: String,
        meta: Meta,
        net: bool,
        timeout: Option<Duration>,
    ) -> Result<Writer> {
        let targets = match crate::shared::SharedTargets::open(ns, stem, net, timeout) {
            Ok(Some(t)) => t,
            Ok(None) => return Err(Error::NotFound { name: display }),
            Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                return Err(Error::TimedOut {
                    name: display,
                    op: "connecting to",
                    timeout: timeout.unwrap_or_default(),
                });
            }
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                return Err(Error::PermissionDenied {
                    name: display,
                    detail: format!(
                        "a reader of this shared slot does not let uid {} write to it",
                        sys::euid()
                    ),
                });
            }
            Err(e) => {
                return Err(io_err("connecting to the shared slot's readers", &display)(
                    e,
                ));
            }
        };
        let fd = targets
            .first()
            .map(|f| f.try_clone_to_owned())
            .transpose()
            .map_err(io_err("duplicating a socket", &display))?
            .ok_or_else(|| Error::NotFound {
                name: display.clone(),
            })?;
        Ok(Writer {
            display,
            fd,
            max: meta.max_message_size.min(u64::from(u32::MAX)) as u32,
            reader_pid: meta.pid,
            accept_remote: meta.accept_remote,
            announce: meta.announce,
            write_timeout: None,
            send_lock: Mutex::new(SendState::socket_only()),
            shared: Some(Mutex::new(targets)),
            sent_msgs: AtomicU64::new(0),
            ledger: None,
            #[cfg(feature = "network")]
            remote: None,
        })
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
        let open_local = |slot: &SlotName| match ns {
            Some(ns) => Writer::open_in(ns, slot),
            None => Writer::open(slot),
        };
        let Some(target) = crate::net::open_target(dest, opts)? else {
            return open_local(dest.slot());
        };
        let fd = OwnedFd::from(target.socket().try_clone().map_err(|e| {
            Error::Network(crate::net::io_error("duplicating the socket for", dest, e))
        })?);
        Ok(Writer {
            display: dest.to_string(),
            fd,
            max: mailslot_wire::MAX_PAYLOAD as u32,
            reader_pid: 0,
            accept_remote: false,
            announce: false,
            write_timeout: None,
            send_lock: Mutex::new(SendState::socket_only()),
            shared: None,
            sent_msgs: AtomicU64::new(0),
            ledger: None,
            remote: Some(Box::new(target)),
        })
    }

    /// Where this writer's datagrams go: `None` for a local slot (a
    /// `\\HOST` naming this host included).
    #[cfg(feature = "network")]
    pub fn route(&self) -> Option<&crate::Route> {
        self.remote.as_deref().map(|r| r.route())
    }

    /// How many datagrams each message becomes: 1 for a host, one per
    /// broadcast address for a group, 0 for a local slot.
    #[cfg(feature = "network")]
    pub fn datagrams_per_message(&self) -> usize {
        self.remote
            .as_deref()
            .map_or(0, |r| r.datagrams_per_message())
    }

    // --- End of remote destinations. ---

    /// Whether this writer feeds a shared slot (every reader gets each message).
    pub fn is_shared(&self) -> bool {
        self.shared.is_some()
    }

    /// The slot's name, `\\.\mailslot\NAME`.
    pub fn name(&self) -> &str {
        &self.display
    }

    /// The slot's maximum message size (0 = any size).
    pub fn max_message_size(&self) -> u32 {
        self.max
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
        self.write_timeout = timeout;
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
        #[cfg(feature = "network")]
        if let Some(r) = &self.remote {
            return r.send_all(&[data]).map_err(|(_, e)| Error::Network(e));
        }
        self.write_local(data)?;
        self.count_sent(1);
        Ok(())
    }

    /// Like [`write`](Writer::write) on a local slot; when the message
    /// went into the ring, returns where it lies there (it stays until a
    /// read returns it; see [`read_back`](Writer::read_back)).
    pub(crate) fn write_in_place(&self, data: &[u8]) -> Result<Option<usize>> {
        let at = self.write_local(data)?;
        self.count_sent(1);
        Ok(at)
    }

    /// A copy of the message of `len` bytes that
    /// [`write_in_place`](Writer::write_in_place) left at `at` in the ring.
    pub(crate) fn read_back(&self, at: usize, len: usize) -> Option<Vec<u8>> {
        let st = self.send_lock.lock().unwrap_or_else(|p| p.into_inner());
        match &st.lane {
            Lane::Open { ring, .. } => Some(ring.read_back(at, len)),
            _ => None,
        }
    }

    fn write_local(&self, data: &[u8]) -> Result<Option<usize>> {
        self.check_size(data.len())?;
        let len = u32::try_from(data.len()).map_err(|_| Error::MessageTooLarge {
            name: self.display.clone(),
            size: data.len(),
            max: u64::from(u32::MAX),
        })?;
        if data.len() > INLINE_MAX {
            return self.write_large(data, len).map(|()| None);
        }
        let mut st = self.send_lock.lock().unwrap_or_else(|p| p.into_inner());
        if self.ring_open(&mut st) {
            self.send_stamped(&mut st, Header::new(Kind::Inline, 0, len), data, None)?;
            return Ok(match &st.lane {
                Lane::Open { ring, .. } => Some(ring.last_body()),
                _ => None,
            });
        }
        // Not through the ring (not open yet, or not taken), mid-sized: a
        // free reusable buffer beats a socket buffer of that size (never
        // wait for one; inline on the socket is fine too).
        if data.len() >= MEMFD_MIN && st.pool.is_some() {
            if let Ok(Some(lease)) = self.lease(&mut st, data) {
                return self.send_lease(&mut st, lease, len).map(|()| None);
            }
        }
        let deadline = self.deadline();
        self.send_socket(
            &mut st,
            Header::new(Kind::Inline, 0, len),
            data,
            None,
            deadline,
        )
        .map(|()| None)
    }

    /// Keeps this writer's messages on the socket (no ring): for users of
    /// its descriptor's readiness ([`AsyncWriter`](crate::AsyncWriter)).
    /// A writer whose reader is reading its ring first sends it back to
    /// the socket, waiting for room in the ring if it is full.
    #[cfg(feature = "tokio")]
    pub(crate) fn socket_only(&mut self) -> Result<()> {
        let mut st = self.send_lock.lock().unwrap_or_else(|p| p.into_inner());
        self.leave_ring(&mut st, None)?;
        st.lane = Lane::Off;
        Ok(())
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
        let st = self.send_lock.get_mut().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = &mut st.pool {
            p.set_limit(bytes);
        }
    }

    /// A message too large to send inline: in one of the writer's reusable
    /// buffers when the reader gives them back and one is free, else in a
    /// memory file of its own, sealed against every change.
    fn write_large(&self, data: &[u8], len: u32) -> Result<()> {
        let mut st = self.send_lock.lock().unwrap_or_else(|p| p.into_inner());
        if st.pool.is_some() {
            let mut lease = self.lease(&mut st, data);
            if matches!(lease, Ok(None)) && st.pool.as_ref().is_some_and(|p| p.any_out()) {
                // Every buffer is out: the reader gives one back soon if it
                // is reading, which is cheaper than a fresh memory file.
                let mut wait = MemfdPool::patience(data.len());
                if let Some(t) = self.write_timeout {
                    wait = wait.min(t);
                }
                let until = Instant::now() + wait;
                loop {
                    let left = until.saturating_duration_since(Instant::now());
                    if left.is_zero()
                        || !sys::wait_readable(self.fd.as_fd(), Some(left)).unwrap_or(false)
                        // The reader has gone: the send below says so.
                        || self.collect(&mut st).closed
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
                return self.send_lease(&mut st, lease, len);
            }
        }
        drop(st);
        let memfd =
            sys::sealed_memfd(data).map_err(io_err("preparing a large message", &self.display))?;
        let mut st = self.send_lock.lock().unwrap_or_else(|p| p.into_inner());
        let head = Header::new(Kind::Memfd, 0, len);
        self.send_stamped(&mut st, head, &[], Some(memfd.as_fd()))
    }

    /// Sends the message filled into `lease` (under the send lock).
    fn send_lease(&self, st: &mut SendState, lease: memfd_pool::Lease, len: u32) -> Result<()> {
        let deadline = self.deadline();
        self.leave_ring(st, deadline)?;
        let token = lease.token().to_le_bytes();
        let p = st.pool.as_mut().expect("a lease comes from the pool");
        let header = Header::new(Kind::Memfd, FLAG_RECYCLE, len).stamped(sys::monotonic_ns());
        self.send(header, &token, Some(p.fd(&lease)), deadline)?;
        p.sent(lease);
        Ok(())
    }

    fn deadline(&self) -> Option<Instant> {
        self.write_timeout.map(|t| Instant::now() + t)
    }

    /// Stamps a frame and sends it, through the ring when it can, waiting
    /// for room up to the write timeout. The caller holds the send lock,
    /// so stamps on this connection only grow.
    fn send_stamped(
        &self,
        st: &mut SendState,
        head: Header,
        payload: &[u8],
        memfd: Option<BorrowedFd<'_>>,
    ) -> Result<()> {
        if memfd.is_none() && HEADER_LEN + payload.len() <= ring::FRAME_MAX && self.ring_open(st) {
            let single = head.kind == Kind::Inline;
            let stamped = |ring: &mut RingWriter, stamp| {
                ring.push_frame(&head.stamped(stamp).encode(), payload, single)
            };
            // Most writes never wait: the deadline is worked out when one does.
            return self.ring_push(st, None, stamped);
        }
        let deadline = self.deadline();
        self.send_socket(st, head, payload, memfd, deadline)
    }

    /// Stamps a frame and sends it on the socket (after a hand-off record
    /// if the reader is reading the ring).
    fn send_socket(
        &self,
        st: &mut SendState,
        head: Header,
        payload: &[u8],
        memfd: Option<BorrowedFd<'_>>,
        deadline: Option<Instant>,
    ) -> Result<()> {
        self.leave_ring(st, deadline)?;
        self.send(head.stamped(sys::monotonic_ns()), payload, memfd, deadline)
    }

    /// Moves the lane on (offers a ring, takes the reader's answer); true
    /// when the ring is open.
    fn ring_open(&self, st: &mut SendState) -> bool {
        match &mut st.lane {
            Lane::Off => false,
            Lane::Open { .. } => true,
            Lane::Ready => {
                st.lane = match self.offer_ring() {
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
                let answer = if n.closed { Some(false) } else { n.answer };
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
    fn offer_ring(&self) -> Result<RingWriter> {
        let (ring, memfd) =
            RingWriter::create().map_err(io_err("creating a message ring", &self.display))?;
        let deadline = Some(Instant::now());
        for (kind, fd) in [
            (Kind::Ring, memfd.as_fd()),
            (Kind::RingWake, ring.wake_fd()),
        ] {
            self.send_on(
                self.fd.as_fd(),
                Header::new(kind, 0, 0),
                &[],
                Some(fd),
                deadline,
            )?;
        }
        Ok(ring)
    }

    /// Writes one record into the open ring (`push` writes it with the
    /// stamp it is given; false when there is no room), waiting for room up
    /// to `deadline` (`None`: the write timeout from the first wait on).
    fn ring_push(
        &self,
        st: &mut SendState,
        mut deadline: Option<Instant>,
        mut push: impl FnMut(&mut RingWriter, u64) -> bool,
    ) -> Result<()> {
        let Lane::Open { on_ring, .. } = &mut st.lane else {
            unreachable!("ring_push on an open ring");
        };
        if !*on_ring {
            let to_ring = Header::new(Kind::ToRing, 0, 0);
            deadline = deadline.or_else(|| self.deadline());
            self.send_one(self.fd.as_fd(), to_ring, &[], None, deadline)?;
            *on_ring = true;
        }
        let mut waited = false;
        loop {
            // One clock read: the stamp, and whether to look at the socket.
            let now = sys::monotonic_ns();
            let Lane::Open { checked_ns, .. } = &mut st.lane else {
                unreachable!("the ring stays open");
            };
            if waited || now.wrapping_sub(*checked_ns) >= CHECK_NS {
                *checked_ns = now;
                // The reader's notices: releases, room, and whether it is there.
                if self.collect(st).closed {
                    return Err(self.gone(st.refused));
                }
            }
            let Lane::Open { ring, .. } = &mut st.lane else {
                unreachable!("the ring stays open");
            };
            if ring.reader_closed() {
                return Err(self.gone(None));
            }
            let mut pushed = push(ring, now);
            if !pushed {
                // Full: ask for a room notice, then look once more (the
                // reader may have made room just before it saw the ask).
                ring.want_room();
                pushed = push(ring, now);
            }
            if pushed {
                ring.publish();
                return Ok(());
            }
            deadline = deadline.or_else(|| self.deadline());
            let remaining = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            let ready = remaining.is_none_or(|r| !r.is_zero())
                && sys::wait_readable(self.fd.as_fd(), remaining)
                    .map_err(io_err("waiting for room", &self.display))?;
            if !ready {
                return Err(Error::TimedOut {
                    name: self.display.clone(),
                    op: "writing to",
                    timeout: self.write_timeout.unwrap_or_default(),
                });
            }
            waited = true;
        }
    }

    /// Before a frame goes on the socket: if the reader is reading the
    /// ring, a hand-off record sends it back to the socket.
    fn leave_ring(&self, st: &mut SendState, deadline: Option<Instant>) -> Result<()> {
        if !matches!(st.lane, Lane::Open { on_ring: true, .. }) {
            return Ok(());
        }
        self.ring_push(st, deadline, |ring, _| ring.push_handoff())?;
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

    /// Takes the reader's notices off the connection: released buffers may
    /// be filled again, room notices need nothing more.
    fn collect(&self, st: &mut SendState) -> Notices {
        let mut buf = [0u8; HEADER_LEN];
        let mut answer = None;
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
                            answer = Some(h.flags & FLAG_ACCEPTED != 0);
                        }
                        Ok(h) if h.kind == Kind::Welcome => st.welcomed = true,
                        Ok(h) if h.kind == Kind::Refused => st.refused = Some(h.flags),
                        _ => {}
                    }
                }
                Ok(sys::Recv::WouldBlock) => {
                    return Notices {
                        closed: false,
                        answer,
                    };
                }
                Ok(sys::Recv::Closed) | Err(_) => {
                    return Notices {
                        closed: true,
                        answer,
                    };
                }
            }
        }
    }

    /// The error for a connection the reader has closed: refused (with
    /// why), or gone.
    fn gone(&self, refused: Option<u16>) -> Error {
        let detail = match refused.and_then(Refusal::from_flags) {
            None => {
                return Error::ReaderClosed {
                    name: self.display.clone(),
                };
            }
            Some(Refusal::TooManyConnections) => format!(
                "uid {} holds its share of the reader's connections; close some writers (or run as the slot's owner)",
                sys::euid()
            ),
            Some(Refusal::Untrusted) => format!(
                "uid {} may not deliver network messages (only root, the directory's owner and the uids in .trusted-uids may)",
                sys::euid()
            ),
        };
        Error::Refused {
            name: self.display.clone(),
            detail,
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
        #[cfg(feature = "network")]
        if self.remote.is_some() {
            return Ok(true);
        }
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut st = self.send_lock.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            let n = self.collect(&mut st);
            if st.welcomed {
                return Ok(true);
            }
            if n.closed || st.refused.is_some() {
                return Err(self.gone(st.refused));
            }
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if left.is_some_and(|l| l.is_zero()) {
                return Ok(false);
            }
            sys::wait_readable(self.fd.as_fd(), left)
                .map_err(io_err("waiting for the reader", &self.display))?;
        }
    }

    fn check_size(&self, size: usize) -> Result<()> {
        if self.max != 0 && size > self.max as usize {
            return Err(Error::MessageTooLarge {
                name: self.display.clone(),
                size,
                max: u64::from(self.max),
            });
        }
        Ok(())
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
        #[cfg(feature = "network")]
        if let Some(r) = &self.remote {
            return r
                .send_all(messages)
                .map_err(|(n, e)| (n, Error::Network(e)));
        }
        for m in messages {
            self.check_size(m.as_ref().len()).map_err(|e| (0, e))?;
        }
        let mut sent = 0;
        let mut buf = Vec::new();
        // Mid-sized messages travel faster alone in a reusable buffer than
        // copied into a batch (see `MEMFD_MIN`), when the reader takes
        // buffers back.
        let pooled = {
            let st = self.send_lock.lock().unwrap_or_else(|p| p.into_inner());
            st.pool.is_some() && !matches!(st.lane, Lane::Open { .. })
        };
        let alone = |m: &[u8]| m.len() + 4 > Self::BATCH_BYTES || (pooled && m.len() >= MEMFD_MIN);
        let mut i = 0;
        while i < messages.len() {
            let first = messages[i].as_ref();
            if alone(first) {
                self.write(first).map_err(|e| (sent, e))?;
                sent += 1;
                i += 1;
                continue;
            }
            let start = i;
            let mut len = 0;
            while i < messages.len()
                && i - start < Self::BATCH_MESSAGES
                && !alone(messages[i].as_ref())
                && len + 4 + messages[i].as_ref().len() <= Self::BATCH_BYTES
            {
                len += 4 + messages[i].as_ref().len();
                i += 1;
            }
            let chunk = &messages[start..i];
            let mut st = self.send_lock.lock().unwrap_or_else(|p| p.into_inner());
            let head = Header::new(Kind::Batch, 0, len as u32);
            // Through the ring, each message is copied once, straight into
            // its record; the socket takes the batch from one buffer.
            let r = if HEADER_LEN + len <= ring::FRAME_MAX && self.ring_open(&mut st) {
                self.ring_push(&mut st, None, |ring, stamp| {
                    ring.push_batch(&head.stamped(stamp).encode(), chunk, len)
                })
            } else {
                buf.clear();
                for m in chunk {
                    push_batch(&mut buf, m.as_ref());
                }
                let deadline = self.deadline();
                self.send_socket(&mut st, head, &buf, None, deadline)
            };
            r.map_err(|e| (sent, e))?;
            self.count_sent(i - start);
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
        match &self.shared {
            None => self.send_receipts(self.fd.as_fd(), &mut ledger, deadline)?,
            Some(t) => {
                let t = t.lock().unwrap_or_else(|p| p.into_inner());
                for (_, fd) in t.conns() {
                    self.send_receipts(fd, &mut ledger, deadline)?;
                }
            }
        }
        self.ledger = Some(Mutex::new(ledger));
        Ok(())
    }

    fn send_receipts(
        &self,
        fd: BorrowedFd<'_>,
        ledger: &mut Ledger,
        deadline: Option<Instant>,
    ) -> Result<()> {
        let (receipts, memfd) =
            Receipts::create().map_err(io_err("creating a receipt file", &self.display))?;
        let head = Header::new(Kind::Receipts, 0, 0);
        self.send_on(fd, head, &[], Some(memfd.as_fd()), deadline)?;
        let sent = self.sent_msgs.load(Ordering::Relaxed);
        ledger.join(fd.as_raw_fd() as u64, sent, receipts);
        Ok(())
    }

    fn count_sent(&self, n: usize) {
        if self.ledger.is_some() {
            self.sent_msgs.fetch_add(n as u64, Ordering::Relaxed);
        }
    }

    fn with_ledger<T>(&self, f: impl FnOnce(&mut Ledger, u64) -> T) -> Option<T> {
        let ledger = self.ledger.as_ref()?;
        let mut ledger = ledger.lock().unwrap_or_else(|p| p.into_inner());
        Some(f(&mut ledger, self.sent_msgs.load(Ordering::Relaxed)))
    }

    /// Messages sent so far, when receipts were asked for: the next one
    /// gets this number.
    pub(crate) fn sent_messages(&self) -> u64 {
        self.sent_msgs.load(Ordering::Relaxed)
    }

    /// The readers' receipts as they are now: what became of each message
    /// (see [`ask_receipts`](Writer::ask_receipts)).
    pub(crate) fn receipts(&self, into: &mut Snapshot) {
        if self
            .with_ledger(|l, sent| l.snapshot_into(sent, into))
            .is_none()
        {
            *into = Snapshot::default();
        }
    }

    /// Drops what the receipts keep about readers gone before message `n`.
    pub(crate) fn forget_before(&self, n: u64) {
        self.with_ledger(|l, _| l.forget_before(n));
    }

    /// Looks, without waiting, whether the readers are still there;
    /// revokes the receipts of those gone. False when none is left.
    pub(crate) fn readers_alive(&self) -> bool {
        let sent = self.sent_msgs.load(Ordering::Relaxed);
        match &self.shared {
            None => {
                let mut st = self.send_lock.lock().unwrap_or_else(|p| p.into_inner());
                if !self.collect(&mut st).closed {
                    return true;
                }
                self.with_ledger(|l, _| l.leave(self.fd.as_raw_fd() as u64, sent));
                false
            }
            Some(t) => {
                let mut t = t.lock().unwrap_or_else(|p| p.into_inner());
                let dead: Vec<usize> = t
                    .conns()
                    .filter(|(_, fd)| peer_closed(*fd))
                    .map(|(i, _)| i)
                    .collect();
                self.with_ledger(|l, _| {
                    for (i, fd) in t.conns() {
                        if dead.contains(&i) {
                            l.leave(fd.as_raw_fd() as u64, sent);
                        }
                    }
                });
                t.remove(&dead);
                !t.is_empty()
            }
        }
    }

    /// Takes back every message no read has returned yet: from now on no
    /// reader returns one (see `receipt.rs`). Before the writer drops the
    /// connection, to send them elsewhere or hand them back.
    pub(crate) fn revoke_unread(&self) {
        self.with_ledger(|l, sent| l.leave_all(sent));
    }

    /// Sends one message on behalf of a network sender: the mailslot
    /// daemon's way to tell the reader where a datagram came from.
    ///
    /// Readers believe the origin only from root or the namespace
    /// directory's owner; from anyone else the reader refuses the frame and
    /// closes the connection. Slots that refuse network messages discard it.
    pub fn write_remote(&self, data: &[u8], origin: &RemoteOrigin) -> Result<()> {
        #[cfg(feature = "network")]
        if self.remote.is_some() {
            return Err(Error::LocalOnly {
                op: "write_remote",
                name: self.display.clone(),
            });
        }
        self.check_size(data.len())?;
        let mut buf = Vec::with_capacity(data.len() + 64);
        origin.encode(&mut buf);
        buf.extend_from_slice(data);
        if buf.len() > INLINE_MAX {
            return Err(Error::MessageTooLarge {
                name: self.display.clone(),
                size: data.len(),
                max: (INLINE_MAX - 600) as u64,
            });
        }
        let mut st = self.send_lock.lock().unwrap_or_else(|p| p.into_inner());
        let head = Header::new(Kind::Inline, FLAG_ORIGIN, buf.len() as u32);
        self.send_stamped(&mut st, head, &buf, None)
    }

    fn send(
        &self,
        header: Header,
        payload: &[u8],
        memfd: Option<BorrowedFd<'_>>,
        deadline: Option<Instant>,
    ) -> Result<()> {
        match &self.shared {
            None => self.send_on(self.fd.as_fd(), header, payload, memfd, deadline),
            Some(targets) => self.send_shared(targets, header, payload, memfd, deadline),
        }
    }

    /// Sends one frame to every reader of a shared slot, dropping readers
    /// that have gone; fails with `ReaderClosed` only when none is left.
    fn send_shared(
        &self,
        targets: &Mutex<crate::shared::SharedTargets>,
        header: Header,
        payload: &[u8],
        memfd: Option<BorrowedFd<'_>>,
        deadline: Option<Instant>,
    ) -> Result<()> {
        let mut t = targets.lock().unwrap_or_else(|p| p.into_inner());
        match t.refresh(deadline) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                return Err(Error::TimedOut {
                    name: self.display.clone(),
                    op: "connecting to",
                    timeout: self.write_timeout.unwrap_or_default(),
                });
            }
            Err(e) => {
                return Err(io_err(
                    "looking for the shared slot's readers",
                    &self.display,
                )(e));
            }
        }
        let mut dead = Vec::new();
        let mut failure = None;
        let mut reached = 0;
        let mut ledger = self
            .ledger
            .as_ref()
            .map(|l| l.lock().unwrap_or_else(|p| p.into_inner()));
        for (i, fd) in t.conns() {
            if let Some(ledger) = ledger.as_deref_mut() {
                let key = fd.as_raw_fd() as u64;
                if !ledger.live_keys().any(|k| k == key)
                    && self.send_receipts(fd, ledger, deadline).is_err()
                {
                    dead.push(i);
                    continue;
                }
            }
            match self.send_on(fd, header, payload, memfd, deadline) {
                Ok(()) => reached += 1,
                Err(Error::ReaderClosed { .. }) => dead.push(i),
                // Readers that have this frame already must not get it
                // twice: this one is given up instead (and connected
                // again at a later write).
                Err(_) if reached > 0 => dead.push(i),
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        if let Some(ledger) = ledger.as_deref_mut() {
            let sent = self.sent_msgs.load(Ordering::Relaxed);
            for (i, fd) in t.conns() {
                if dead.contains(&i) {
                    ledger.leave(fd.as_raw_fd() as u64, sent);
                }
            }
        }
        t.remove(&dead);
        if let Some(e) = failure {
            return Err(e);
        }
        if t.is_empty() {
            return Err(Error::ReaderClosed {
                name: self.display.clone(),
            });
        }
        Ok(())
    }

    /// Sends one frame, announced first when it carries a descriptor and
    /// the reader wants that (see `frame.rs`). An announce whose frame then
    /// times out is harmless: the reader receives the next frame, whatever
    /// it is, with `recvmsg`.
    fn send_on(
        &self,
        fd: BorrowedFd<'_>,
        header: Header,
        payload: &[u8],
        memfd: Option<BorrowedFd<'_>>,
        deadline: Option<Instant>,
    ) -> Result<()> {
        if memfd.is_some() && self.announce {
            let announce = Header::new(Kind::Announce, 0, 0);
            self.send_one(fd, announce, &[], None, deadline)?;
        }
        self.send_one(fd, header, payload, memfd, deadline)
    }

    fn send_one(
        &self,
        fd: BorrowedFd<'_>,
        header: Header,
        payload: &[u8],
        memfd: Option<BorrowedFd<'_>>,
        deadline: Option<Instant>,
    ) -> Result<()> {
        let hdr: [u8; HEADER_LEN] = header.encode();
        loop {
            match sys::send_frame(fd, &hdr, payload, memfd, true) {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let remaining = deadline.map(|d| d.saturating_duration_since(Instant::now()));
                    let ready = remaining.is_none_or(|r| !r.is_zero())
                        && sys::wait_writable(fd, remaining)
                            .map_err(io_err("waiting for room", &self.display))?;
                    if !ready {
                        return Err(Error::TimedOut {
                            name: self.display.clone(),
                            op: "writing to",
                            timeout: self.write_timeout.unwrap_or_default(),
                        });
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
                        .map_err(io_err("preparing a large message", &self.display))?;
                    let h = Header {
                        kind: Kind::Memfd,
                        ..header
                    };
                    return self.send_on(fd, h, &[], Some(m.as_fd()), deadline);
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
                    return Err(self.gone(refusal_on(fd)));
                }
                Err(e) => return Err(io_err("sending a message", &self.display)(e)),
            }
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
        self.fd.as_fd()
    }
}

impl std::os::fd::AsRawFd for Writer {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        std::os::fd::AsRawFd::as_raw_fd(&self.fd)
    }
}

/// Takes what the reader left on a connection it closed; the reason if it
/// refused the connection.
/// Whether the reader at the other end of `fd` has closed it (notices it
/// sent are read and dropped).
fn peer_closed(fd: BorrowedFd<'_>) -> bool {
    let mut buf = [0u8; HEADER_LEN];
    loop {
        match sys::recv_packet(fd, &mut buf) {
            Ok(sys::Recv::Frame { .. }) => {}
            Ok(sys::Recv::WouldBlock) => return false,
            Ok(sys::Recv::Closed) | Err(_) => return true,
        }
    }
}

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
