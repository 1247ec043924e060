//! The reader: Windows' mailslot "server".

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use crate::error::{Error, Result, io_err};
use crate::frame::{
    self, BATCH_MESSAGES, FLAG_ACCEPTED, FLAG_ORIGIN, FLAG_RECYCLE, HEADER_LEN, Header, INLINE_MAX,
    Kind, REMOTE_DATA_MAX, Refusal, RemoteOrigin, split_batch,
};
use crate::name::SlotName;
use crate::namespace::{Claim, Meta, Namespace};
use crate::receipt::Receipts;
use crate::ring::{Record, RingReader};
use crate::sys;

const LISTENER: u64 = u64::MAX;
const WAKER: u64 = u64::MAX - 1;
/// Token of the network listener `STEM.net.sock` (see [`Reader::create_in`]).
const NET_LISTENER: u64 = u64::MAX - 2;
/// Tokens of rings' wake eventfds: this bit and the connection's index.
const RING_WAKE: u64 = 1 << 62;
/// Before it sleeps, a reader with rings watches them this long: a writer
/// that is about to write again then needs no wake-up call (which would
/// cost both sides a system call per message).
const SPIN: Duration = Duration::from_micros(20);
/// At most this many messages are taken from one connection per pump.
const BATCH: usize = 256;
/// ... and at most about this many bytes (one frame more at most), so large
/// messages are copied while still in cache and the allocator is not made
/// to grow and trim the heap by the queue bound on every round.
const BATCH_BYTES: usize = 256 << 10;
/// Buffers of read inline messages of at least this size are kept (up to
/// `SPARE_MAX` of them, so at most about 512 KiB) and reused for the next
/// ones: allocating fresh pages for every large message cost more than
/// copying it.
const SPARE_MIN: usize = 4096;
const SPARE_MAX: usize = 8;

/// How to create a slot. Start from [`ReaderOptions::default`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReaderOptions {
    max_message_size: u32,
    read_timeout: Option<Duration>,
    mode: u32,
    queue_messages: usize,
    queue_bytes: usize,
    accept_remote: bool,
    shared: bool,
}

impl Default for ReaderOptions {
    /// Any message size, reads wait forever, mode 0600, a user-space queue of
    /// up to 65 536 messages or 16 MiB.
    fn default() -> Self {
        ReaderOptions {
            max_message_size: 0,
            read_timeout: None,
            mode: 0o600,
            queue_messages: 65_536,
            queue_bytes: 16 << 20,
            accept_remote: true,
            shared: false,
        }
    }
}

impl ReaderOptions {
    /// Largest message writers may send, in bytes; 0 (the default) means any
    /// size. Like Windows, the value is reported back as given (B32).
    pub fn max_message_size(mut self, bytes: u32) -> Self {
        self.max_message_size = bytes;
        self
    }

    /// How long [`Reader::read`] waits: `None` (the default) waits forever,
    /// `Some(Duration::ZERO)` returns at once, `Some(d)` waits at least `d`.
    pub fn read_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.read_timeout = timeout;
        self
    }

    /// Permission bits of the slot (who may write): `0o600` (the default,
    /// owner and root, like Windows' default security descriptor), `0o660`
    /// for the group, `0o666` for everyone. Only the `0o777` bits are allowed.
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }

    /// Bound on the messages and bytes the reader holds in its own memory.
    ///
    /// Beyond it, messages wait in each writer's ring (shared memory the
    /// writer made: 256 KiB of small messages, up to 2 MiB of large ones)
    /// or socket buffer (about 200 KiB), charged to the writer, and writers
    /// block when theirs is full: backpressure, never loss. The bytes are
    /// what the reader itself holds: each queued message's entry (about 100
    /// bytes) and the copies of messages over 64 bytes that came on the
    /// socket; messages in a writer's ring or memory file stay there until
    /// read (at most 16 memory files per writer are held). To keep delivery
    /// in order the reader may hold one extra frame per connected writer
    /// past the bound: one message, or one coalesced batch of at most 256
    /// messages and 64 KiB.
    pub fn queue_limit(mut self, messages: usize, bytes: usize) -> Self {
        self.queue_messages = messages.max(1);
        self.queue_bytes = bytes.max(1);
        self
    }

    /// Creates (or joins) a **shared** slot: several readers, in any local
    /// processes of the same user, hold the name at once and each receives
    /// every message written after it joined, each writer's messages in
    /// order. Writers need nothing special. Shared and non-shared readers
    /// cannot hold one name together ([`Error::SharingConflict`]). The
    /// first shared reader's max message size and mode govern writers.
    pub fn shared(mut self, shared: bool) -> Self {
        self.shared = shared;
        self
    }

    /// Whether messages forwarded from the network by the mailslot daemon
    /// are accepted (the default) or discarded. The choice is recorded in
    /// the slot's metadata, so the daemon drops them before sending.
    pub fn accept_remote(mut self, accept: bool) -> Self {
        self.accept_remote = accept;
        self
    }
}

/// Who sent a message.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Sender {
    /// Process id of the writer (when it opened the slot).
    pub pid: u32,
    /// User id of the writer.
    pub uid: u32,
    /// Group id of the writer.
    pub gid: u32,
    /// For a message that came over the network, where it came from; the
    /// local fields then describe the daemon that forwarded it.
    pub remote: Option<RemoteOrigin>,
}

/// One message, with its sender.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Message {
    /// The message's bytes (possibly empty: zero-length messages are real).
    pub data: Vec<u8>,
    /// Who wrote it.
    pub sender: Sender,
}

/// The answer of [`Reader::info`] (Windows' `GetMailslotInfo`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SlotStatus {
    /// The maximum message size given at create (0 = any size).
    pub max_message_size: u32,
    /// Size of the next message: `None` when the slot is empty, `Some(0)` for
    /// a zero-length message.
    pub next_size: Option<usize>,
    /// Number of messages waiting, including those still in kernel buffers
    /// or writers' rings, up to the reader's queue bound
    /// ([`ReaderOptions::queue_limit`]): past it, messages that wait in
    /// writers' buffers are not fetched to be counted (that would take the
    /// memory the bound protects), so the count is then a lower bound.
    pub count: usize,
    /// The current read timeout (`None` = forever).
    pub read_timeout: Option<Duration>,
}

/// Interrupts a reader's waiting read from another thread.
///
/// A read that is waiting (or the next one that would wait) returns
/// [`Error::Interrupted`]. Messages already available are still returned.
#[derive(Clone, Debug)]
pub struct Waker {
    flag: Arc<AtomicBool>,
    efd: Arc<sys::EventFd>,
}

impl Waker {
    /// Wakes the reader.
    pub fn wake(&self) {
        self.flag.store(true, Ordering::SeqCst);
        let _ = self.efd.signal();
    }
}

enum Payload {
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
    fn len(&self) -> usize {
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
    fn cost(&self) -> usize {
        PENDING_COST
            + match self {
                Payload::Inline(v) => v.len(),
                Payload::Small { .. } | Payload::Memfd { .. } | Payload::Ring { .. } => 0,
            }
    }
}

struct Pending {
    stamp: u64,
    payload: Payload,
    origin: Option<Box<RemoteOrigin>>,
    /// For the last message of a ring record: the ring position after it,
    /// given back to the writer once the message is taken (0: none).
    ring_end: u64,
}

/// A connection's ring (see `ring.rs`).
struct RingConn {
    ring: RingReader,
    /// The writer's wake eventfd, registered edge-triggered (never read).
    wake: OwnedFd,
    /// The writer sent "to ring" and no hand-off since: read the ring.
    reading: bool,
    /// Messages in the queue whose records are not yet given back.
    held: usize,
    /// `pump_ns` of the pass that loaded the ring's tail as cached now,
    /// and of the load before: records being parsed were published after
    /// the latter (see `Order`).
    load_ns: u64,
    floor_ns: u64,
}

impl RingConn {
    /// The reader is reading this ring and the writer has put records in
    /// it that are not parsed yet.
    fn ready(&self) -> bool {
        self.reading && self.ring.has_records()
    }
}

struct Conn {
    fd: OwnedFd,
    sender: Sender,
    queue: VecDeque<Pending>,
    eof: bool,
    trusted: bool,
    /// Accepted on `STEM.net.sock`: every frame must carry an origin.
    net_only: bool,
    /// The pump pass that last added messages to `queue` (see `Reader::pass`).
    filled_pass: u64,
    /// Mappings of the writer's reusable buffers, least recently used first.
    maps: Vec<((u64, u64), sys::SharedMap)>,
    /// The writer announced that its next frame carries a descriptor.
    expect_fd: bool,
    /// A ring the writer offered, waiting for its wake eventfd.
    offered: Option<OwnedFd>,
    ring: Option<RingConn>,
    /// The writer's receipt file, when it asked for receipts: every
    /// message a read returns is counted there (see `receipt.rs`).
    receipts: Option<Receipts>,
    /// Messages in `queue` that hold a descriptor (memory files).
    fds: usize,
    /// What the reader knows about when this writer's frames were sent.
    order: Order,
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

/// The reading end of a mailslot (Windows' mailslot server).
///
/// Created with [`Reader::create`]; the name lives exactly as long as this
/// value. Dropping it removes the name, discards unread messages, and makes
/// every writer's next write fail with [`Error::ReaderClosed`].
pub struct Reader {
    name: SlotName,
    display: String,
    stem: String,
    ns: Namespace,
    claim: Option<Claim>,
    instance: Option<String>,
    listener: OwnedFd,
    poller: sys::Poller,
    waker: Waker,
    conns: Vec<Option<Conn>>,
    free: Vec<usize>,
    heads: BinaryHeap<Reverse<(u64, u64, usize)>>,
    seq: u64,
    buffered_msgs: usize,
    buffered_bytes: usize,
    needs_pump: bool,
    /// Connections with a ring.
    rings: usize,
    /// Counts pump passes (each starts with an `epoll_wait`). A message
    /// received during pass `p` is delivered only after pass `p + 1` looked
    /// at every writer again: a writer whose write returned before that
    /// message was stamped may have become readable only after pass `p`'s
    /// `epoll_wait`, and its earlier message must come first.
    pass: u64,
    /// `CLOCK_MONOTONIC` when the last pump started waiting.
    pump_ns: u64,
    /// Emptied buffers of large inline messages, for reuse.
    spare: Vec<Vec<u8>>,
    scratch: Vec<u8>,
    tokens: Vec<u64>,
    opts: ReaderOptions,
    rejected: u64,
    refused_remote: u64,
    dir_owner: u32,
    // Network socket (issue 6): `STEM.net.sock` and who may use it.
    net_listener: Option<OwnedFd>,
    /// Who may deliver network messages besides root and the directory's
    /// owner: the trusted-uids file as it is when a connection arrives (so
    /// a daemon started after the reader is trusted), looked at with one
    /// `fstatat` and read again only when it changed.
    trust: crate::namespace::TrustedUids,
    /// The slot owner's uid (exempt from the per-uid share, like root).
    owner: u32,
    /// Connections held per writer uid, and the most one uid may hold.
    per_uid: std::collections::HashMap<u32, usize>,
    uid_share: usize,
    /// Connections refused (untrusted on the network socket, or beyond
    /// their uid's share).
    refused_conns: u64,
    /// Queued messages that hold a descriptor, and the most the reader
    /// lets connections with other messages queued hold together.
    held_fds: usize,
    fd_budget: usize,
    /// Connections whose next frame carries a descriptor the process had
    /// no room for: off the poller until one frees or a moment passes.
    starved: Vec<usize>,
    starved_until: Option<Instant>,
    fd_freed: bool,
    /// The most a writer's socket can hold, in the kernel's accounting
    /// (see `Order`).
    in_flight: u64,
    /// Out of descriptors (or memory) to accept with: the listeners are off
    /// the poller until then, or until a connection closes, so that their
    /// waiting backlog does not make every wait return at once.
    accept_paused_until: Option<Instant>,
}

/// Messages holding a descriptor that one connection may have queued
/// while more of its frames carry descriptors (a writer reuses at most
/// eight buffers; the rest are one-off memory files).
const FDS_PER_CONN: usize = 16;

/// How long a connection whose descriptor found no room waits, at most,
/// before it is tried again.
const STARVE_PAUSE: Duration = Duration::from_millis(10);

/// At most this many connections are accepted per listener and wake.
const ACCEPT_PER_WAKE: usize = 16;

/// The most connections one writer uid (other than root and the slot's
/// owner) may hold: a quarter of the descriptors the reader may open,
/// less a reserve, so that users who hold idle connections cannot lock
/// others out. `nofile`: the descriptor limit.
fn uid_share(nofile: u64) -> usize {
    (nofile.saturating_sub(64) / 4).max(16) as usize
}

/// How long accepting pauses after running out of descriptors.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader")
            .field("name", &self.display)
            .field("dir", &self.ns.dir())
            .finish_non_exhaustive()
    }
}

impl Reader {
    /// Creates the slot `name` in the default namespace directory.
    ///
    /// Fails with [`Error::AlreadyExists`] when a live reader owns the name.
    pub fn create(name: &SlotName, options: &ReaderOptions) -> Result<Reader> {
        Reader::create_in(&Namespace::resolve()?, name, options)
    }

    /// Creates the slot `name` in the namespace `ns`.
    ///
    /// A slot that accepts network messages ([`ReaderOptions::accept_remote`],
    /// the default) also listens on a second socket, `STEM.net.sock` (mode
    /// 0666), for the mailslot daemon, which runs as an unprivileged user and
    /// so cannot connect to a 0600 slot. Only trusted users may stay
    /// connected there (root, the directory's owner, or a uid listed in the
    /// root-owned file `.trusted-uids` of the namespace directory, read at
    /// create time), and every frame they send must carry a network origin.
    pub fn create_in(ns: &Namespace, name: &SlotName, options: &ReaderOptions) -> Result<Reader> {
        let display = name.path();
        if options.mode & !0o777 != 0 {
            return Err(Error::InvalidArgument {
                name: display,
                detail: format!(
                    "mode {:o} has bits other than permissions; use e.g. 600, 660 or 666",
                    options.mode
                ),
            });
        }
        let ns = ns
            .try_clone()
            .map_err(io_err("duplicating the directory handle", &display))?;
        let stem = name.file_stem();
        let meta = Meta {
            name: display.clone(),
            pid: sys::pid(),
            uid: sys::euid(),
            gid: rustix::process::getegid().as_raw(),
            mode: options.mode,
            max_message_size: u64::from(options.max_message_size),
            accept_remote: options.accept_remote,
            created_ms: SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            shared: options.shared,
            recycle: !options.shared,
            announce: true,
            ring: !options.shared,
        };
        let claim = Claim::acquire(&ns, name, options.shared, &meta)?;
        // A shared reader is one instance among several, with sockets of its own.
        let instance = options.shared.then(|| {
            static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            format!(
                "{}{}-{n}",
                crate::shared::instance_prefix(&stem),
                sys::pid()
            )
        });
        let base = instance.clone().unwrap_or_else(|| stem.clone());
        let listener = bind_socket(&ns, &format!("{base}.sock"), options.mode)
            .map_err(io_err("creating the slot's socket", &display))?;
        let poller = sys::Poller::new().map_err(io_err("creating an epoll instance", &display))?;
        let efd = sys::EventFd::new().map_err(io_err("creating an eventfd", &display))?;
        poller
            .add(listener.as_fd(), LISTENER)
            .and_then(|()| poller.add(efd.as_fd(), WAKER))
            .map_err(io_err("registering with epoll", &display))?;
        // Network socket (issue 6).
        let net_sock = format!("{base}.net.sock");
        sys::unlink_at(ns.fd(), &net_sock).map_err(io_err("removing a stale socket", &display))?;
        let net_listener = if options.accept_remote {
            let fd = bind_socket(&ns, &net_sock, 0o666)
                .map_err(io_err("creating the slot's network socket", &display))?;
            poller
                .add(fd.as_fd(), NET_LISTENER)
                .map_err(io_err("registering with epoll", &display))?;
            Some(fd)
        } else {
            None
        };
        let dir_owner = sys::fstat(ns.fd())
            .map_err(io_err("inspecting the directory", &display))?
            .st_uid;
        if options.shared {
            // Tell writers to look for the new instance.
            crate::shared::bump_generation(&ns, &stem)
                .map_err(io_err("publishing the new shared reader", &display))?;
        }
        Ok(Reader {
            instance,
            net_listener,
            accept_paused_until: None,
            owner: sys::euid(),
            trust: crate::namespace::TrustedUids::new(),
            per_uid: std::collections::HashMap::new(),
            uid_share: uid_share(sys::nofile_limit()),
            refused_conns: 0,
            held_fds: 0,
            fd_budget: (sys::nofile_limit().saturating_sub(64) / 2).max(16) as usize,
            starved: Vec::new(),
            starved_until: None,
            fd_freed: false,
            in_flight: sys::socket_buffer_max(),
            dir_owner,
            refused_remote: 0,
            name: name.clone(),
            display,
            stem,
            ns,
            claim: Some(claim),
            listener,
            poller,
            waker: Waker {
                flag: Arc::new(AtomicBool::new(false)),
                efd: Arc::new(efd),
            },
            conns: Vec::new(),
            free: Vec::new(),
            heads: BinaryHeap::new(),
            seq: 0,
            buffered_msgs: 0,
            buffered_bytes: 0,
            needs_pump: false,
            rings: 0,
            pass: 0,
            pump_ns: 0,
            spare: Vec::new(),
            scratch: vec![0u8; HEADER_LEN + INLINE_MAX],
            tokens: Vec::new(),
            opts: options.clone(),
            rejected: 0,
        })
    }

    /// The slot's name.
    pub fn name(&self) -> &SlotName {
        &self.name
    }

    /// The namespace directory the slot lives in.
    pub fn dir(&self) -> &std::path::Path {
        self.ns.dir()
    }

    /// A handle that interrupts this reader's waiting reads from elsewhere.
    pub fn waker(&self) -> Waker {
        self.waker.clone()
    }

    /// Sets the timeout of later reads (Windows' `SetMailslotInfo`):
    /// `None` = forever, `Some(Duration::ZERO)` = return at once.
    pub fn set_read_timeout(&mut self, timeout: Option<Duration>) {
        self.opts.read_timeout = timeout;
    }

    /// The current read timeout.
    pub fn read_timeout(&self) -> Option<Duration> {
        self.opts.read_timeout
    }

    /// Frames refused so far because a writer broke the local protocol
    /// (the offending connections were closed).
    pub fn rejected_frames(&self) -> u64 {
        self.rejected
    }

    /// Connections refused so far: network deliveries from users the slot
    /// does not trust, and writers beyond their user's share of the
    /// reader's connections (a quarter of its descriptor limit; root and
    /// the slot's owner have no share limit). A refused writer's writes
    /// fail with [`Error::Refused`].
    pub fn refused_connections(&self) -> u64 {
        self.refused_conns
    }

    /// Network messages discarded because this slot refuses them
    /// ([`ReaderOptions::accept_remote`]).
    pub fn refused_remote(&self) -> u64 {
        self.refused_remote
    }

    /// Reads the next message into `buf`, waiting up to the read timeout.
    ///
    /// Returns the message's length. If `buf` is smaller than the next
    /// message, fails with [`Error::BufferTooSmall`] and the message stays
    /// queued (B30). With nothing to read, fails with [`Error::TimedOut`]
    /// once the timeout has passed (at once for a zero timeout).
    pub fn read(&mut self, buf: &mut [u8]) -> Result<usize> {
        self.read_with_sender_timeout(buf, self.opts.read_timeout)
            .map(|(n, _)| n)
    }

    /// Like [`read`](Reader::read), also returning the sender.
    pub fn read_with_sender(&mut self, buf: &mut [u8]) -> Result<(usize, Sender)> {
        self.read_with_sender_timeout(buf, self.opts.read_timeout)
    }

    /// Like [`read_with_sender`](Reader::read_with_sender) with an explicit
    /// timeout for this call only.
    pub fn read_with_sender_timeout(
        &mut self,
        buf: &mut [u8],
        timeout: Option<Duration>,
    ) -> Result<(usize, Sender)> {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            let idx = self.wait_head(deadline, timeout)?;
            let needed = self.head_len(idx);
            if buf.len() < needed {
                return Err(Error::BufferTooSmall {
                    name: self.display.clone(),
                    needed,
                    got: buf.len(),
                });
            }
            let (idx, p, sender) = self.take_head();
            // A message its writer made unreadable costs that writer its
            // connection, never the reader: read on. So does one its
            // writer has taken back (see `receipt.rs`).
            if self.take_into(idx, p, &mut buf[..needed]).is_ok() {
                return Ok((needed, sender));
            }
        }
    }

    /// Copies the taken message `p` of connection `idx` into `buf` (its
    /// exact length), counts it as returned, and gives its resources back.
    /// A message that cannot be read (a memory file its writer made
    /// unreadable) cuts that connection off; one whose writer revoked it
    /// is dropped. Either way the caller must not return it.
    fn take_into(&mut self, idx: usize, p: Pending, buf: &mut [u8]) -> io::Result<()> {
        let r = match p.payload {
            Payload::Small { len, data } => {
                buf[..usize::from(len)].copy_from_slice(&data[..usize::from(len)]);
                Ok(())
            }
            Payload::Inline(v) => {
                buf[..v.len()].copy_from_slice(&v);
                if v.capacity() >= SPARE_MIN && self.spare.len() < SPARE_MAX {
                    self.spare.push(v);
                }
                Ok(())
            }
            Payload::Ring { off, len } => {
                self.copy_ring(idx, off, &mut buf[..len]);
                Ok(())
            }
            Payload::Memfd { fd, len, token, id } => {
                let r = self.copy_large(idx, &fd, id, &mut buf[..len]);
                self.give_back(idx, token);
                r
            }
        };
        if r.is_err() {
            self.cut_off(idx);
        }
        let r = r.and_then(|()| self.claim(idx));
        self.after_take(idx, p.ring_end);
        r
    }

    /// Counts a message of connection `idx` as returned in its writer's
    /// receipts, when it asked for them: the last step before a read
    /// returns it. Fails when the writer has taken its messages back (it
    /// sends them again elsewhere).
    fn claim(&self, idx: usize) -> io::Result<()> {
        match self.conns[idx].as_ref().and_then(|c| c.receipts.as_ref()) {
            Some(r) if !r.claim() => Err(io::Error::new(
                io::ErrorKind::Interrupted,
                "the writer took the message back",
            )),
            _ => Ok(()),
        }
    }

    /// Closes connection `idx` because its writer broke the protocol
    /// (counted in [`rejected_frames`](Reader::rejected_frames)); what it
    /// queued before stays readable.
    fn cut_off(&mut self, idx: usize) {
        if let Some(conn) = self.conns[idx].as_mut() {
            self.rejected += 1;
            conn.eof = true;
            let _ = rustix::net::shutdown(&conn.fd, rustix::net::Shutdown::Both);
        }
    }

    /// Reads without waiting: [`Error::TimedOut`] at once when empty.
    pub fn try_read(&mut self, buf: &mut [u8]) -> Result<usize> {
        self.read_with_sender_timeout(buf, Some(Duration::ZERO))
            .map(|(n, _)| n)
    }

    /// Reads with an explicit timeout for this call only.
    pub fn read_timeout_once(
        &mut self,
        buf: &mut [u8],
        timeout: Option<Duration>,
    ) -> Result<usize> {
        self.read_with_sender_timeout(buf, timeout).map(|(n, _)| n)
    }

    /// Reads the next message as an owned [`Message`], waiting up to the
    /// read timeout.
    pub fn read_message(&mut self) -> Result<Message> {
        self.read_message_timeout(self.opts.read_timeout)
    }

    /// Like [`read_message`](Reader::read_message) with an explicit timeout.
    pub fn read_message_timeout(&mut self, timeout: Option<Duration>) -> Result<Message> {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            self.wait_head(deadline, timeout)?;
            let (idx, p, sender) = self.take_head();
            let data = match p.payload {
                Payload::Small { len, data } => {
                    let claimed = self.claim(idx);
                    self.after_take(idx, p.ring_end);
                    if claimed.is_err() {
                        continue;
                    }
                    data[..usize::from(len)].to_vec()
                }
                Payload::Inline(v) => {
                    let claimed = self.claim(idx);
                    self.after_take(idx, p.ring_end);
                    if claimed.is_err() {
                        continue;
                    }
                    v
                }
                _ => {
                    let mut v = vec![0u8; p.payload.len()];
                    if self.take_into(idx, p, &mut v).is_err() {
                        continue;
                    }
                    v
                }
            };
            return Ok(Message { data, sender });
        }
    }

    /// Reports max size, next size, count and timeout (Windows'
    /// `GetMailslotInfo`). Messages still in kernel buffers or in writers'
    /// rings are fetched and counted first, up to the queue bound (see
    /// [`SlotStatus::count`]).
    pub fn info(&mut self) -> Result<SlotStatus> {
        self.pump(Some(Duration::ZERO), true)?;
        // Make sure the head is really the next message (see `pass`).
        while !self.heads.is_empty() && (self.needs_pump || self.deliverable_head().is_none()) {
            self.pump(Some(Duration::ZERO), false)?;
        }
        Ok(SlotStatus {
            max_message_size: self.opts.max_message_size,
            next_size: self
                .heads
                .peek()
                .map(|Reverse((_, _, i))| self.head_len(*i)),
            count: self.buffered_msgs,
            read_timeout: self.opts.read_timeout,
        })
    }

    /// Waits until a head message is deliverable, until `deadline` (which
    /// is `timeout` from the read's start); returns its connection.
    fn wait_head(&mut self, deadline: Option<Instant>, timeout: Option<Duration>) -> Result<usize> {
        loop {
            if !self.needs_pump {
                if let Some(idx) = self.deliverable_head() {
                    return Ok(idx);
                }
            }
            // A pending wake does not wait, but messages already written
            // are still returned first.
            let wait = if !self.heads.is_empty() || self.waker.flag.load(Ordering::SeqCst) {
                Some(Duration::ZERO)
            } else {
                deadline.map(|d| d.saturating_duration_since(Instant::now()))
            };
            self.pump(wait, false)?;
            if self.heads.is_empty() && !self.needs_pump {
                let timed_out = match (deadline, timeout) {
                    (Some(d), Some(t)) if Instant::now() >= d => Some(t),
                    _ => None,
                };
                if timed_out.is_none() && !self.waker.flag.load(Ordering::SeqCst) {
                    continue;
                }
                // The caller may wait on our descriptor next: have the
                // rings' writers signal it (and read what they have first).
                if self.rings > 0 && self.arm_rings() {
                    continue;
                }
                if self.waker.flag.swap(false, Ordering::SeqCst) {
                    self.waker.efd.drain();
                    return Err(Error::Interrupted {
                        name: self.display.clone(),
                    });
                }
                if let Some(t) = timed_out {
                    return Err(Error::TimedOut {
                        name: self.display.clone(),
                        op: "reading from",
                        timeout: t,
                    });
                }
            }
        }
    }

    /// The connection of the earliest head, if it may be delivered now: its
    /// messages arrived before the latest pass began.
    fn deliverable_head(&self) -> Option<usize> {
        let Reverse((_, _, idx)) = *self.heads.peek()?;
        let conn = self.conns[idx].as_ref()?;
        (conn.filled_pass < self.pass).then_some(idx)
    }

    fn head_len(&self, idx: usize) -> usize {
        self.conns[idx]
            .as_ref()
            .and_then(|c| c.queue.front())
            .map_or(0, |p| p.payload.len())
    }

    /// Copies a large message out of its memory file: for a writer's
    /// reusable buffer through a mapping the connection keeps (no page is
    /// looked up again once mapped), else with `pread`.
    fn copy_large(
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
    fn copy_ring(&self, idx: usize, off: usize, dst: &mut [u8]) {
        if let Some(rc) = self.conns[idx].as_ref().and_then(|c| c.ring.as_ref()) {
            rc.ring.copy(off, dst);
        }
    }

    /// After a message of connection `idx` was taken and copied: gives its
    /// ring record back to the writer (with a room notice if it waits for
    /// one), and forgets the connection once it has ended and is empty.
    fn after_take(&mut self, idx: usize, ring_end: u64) {
        let Some(conn) = self.conns[idx].as_mut() else {
            return;
        };
        if ring_end != 0 {
            if let Some(rc) = conn.ring.as_mut() {
                rc.held -= 1;
                // With nothing of the ring left in the queue, give back what
                // was parsed too (wrap and hand-off records after it).
                let pos = if rc.held == 0 {
                    rc.ring.position()
                } else {
                    ring_end
                };
                if rc.ring.release(pos) {
                    notify(conn.fd.as_fd(), Kind::Room, 0, 0);
                }
            }
        }
        if conn.queue.is_empty() && conn.eof {
            self.remove_conn(idx);
        }
    }

    /// Tells the writer on connection `idx` that its buffer with `token`
    /// has been read. Never waits: a writer that does not take the notice
    /// (or has gone) only loses the buffer's reuse.
    fn give_back(&self, idx: usize, token: Option<u64>) {
        let (Some(token), Some(conn)) = (token, self.conns.get(idx).and_then(Option::as_ref))
        else {
            return;
        };
        notify(conn.fd.as_fd(), Kind::Release, 0, token);
    }

    /// Removes the globally earliest message; returns its connection too.
    fn take_head(&mut self) -> (usize, Pending, Sender) {
        let Reverse((_, _, idx)) = self.heads.pop().expect("a head exists");
        let conn = self.conns[idx].as_mut().expect("head's connection exists");
        let p = conn.queue.pop_front().expect("head's queue is not empty");
        if matches!(p.payload, Payload::Memfd { .. }) {
            conn.fds -= 1;
            self.held_fds -= 1;
            self.fd_freed = true;
        }
        let mut sender = conn.sender.clone();
        sender.remote = p.origin.as_deref().cloned();
        self.buffered_msgs -= 1;
        self.buffered_bytes -= p.payload.cost();
        if let Some(next) = conn.queue.front() {
            let key = (next.stamp, self.seq, idx);
            self.seq += 1;
            self.heads.push(Reverse(key));
        } else if conn.eof {
            // Forgotten by `after_take`, once the message is copied.
        } else {
            // This writer may have more, possibly earlier than other heads.
            self.needs_pump = true;
        }
        (idx, p, sender)
    }

    /// Waits up to `timeout` for readiness, then accepts new writers and
    /// tops up every ready connection whose queue is empty (all ready ones
    /// when `all`), so that afterwards no writer's earliest message is left
    /// behind in the kernel.
    fn pump(&mut self, timeout: Option<Duration>, all: bool) -> Result<()> {
        let mut tokens = std::mem::take(&mut self.tokens);
        let r = self.pump_with(&mut tokens, timeout, all);
        self.tokens = tokens;
        r
    }

    fn pump_with(
        &mut self,
        tokens: &mut Vec<u64>,
        timeout: Option<Duration>,
        all: bool,
    ) -> Result<()> {
        let timeout = match self.accept_paused_until {
            Some(until) => {
                let left = until.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    self.resume_accepting();
                    timeout
                } else {
                    Some(timeout.map_or(left, |t| t.min(left)))
                }
            }
            None => timeout,
        };
        let timeout = self.resume_starved(timeout);
        let timeout = if timeout != Some(Duration::ZERO) && self.rings > 0 {
            self.before_sleep(timeout)
        } else {
            timeout
        };
        self.pump_ns = sys::monotonic_ns();
        self.pass += 1;
        // Room for every registered descriptor, so one call sees all that are ready.
        self.poller
            .wait(tokens, 2 * self.conns.len() + 3, timeout)
            .map_err(io_err("waiting for messages", &self.display))?;
        self.needs_pump = false;
        for &t in tokens.iter() {
            match t {
                LISTENER => self.accept_all(false, all)?,
                NET_LISTENER => self.accept_all(true, all)?,
                WAKER => {
                    self.waker.efd.drain();
                }
                // Rings are all looked at below.
                t if t & RING_WAKE != 0 => {}
                idx => {
                    let idx = idx as usize;
                    if self.wants_fill(idx, all) {
                        self.fill(idx, all, true);
                    }
                }
            }
        }
        // Every ring, signalled or not: this pass must see every writer.
        if self.rings > 0 {
            for idx in 0..self.conns.len() {
                let ready = self.conns[idx]
                    .as_ref()
                    .and_then(|c| c.ring.as_ref())
                    .is_some_and(RingConn::ready);
                if ready && self.wants_fill(idx, all) {
                    self.fill(idx, all, false);
                }
            }
        }
        Ok(())
    }

    fn wants_fill(&self, idx: usize, all: bool) -> bool {
        self.conns
            .get(idx)
            .and_then(|c| c.as_ref())
            .is_some_and(|c| !c.eof && (all || c.queue.is_empty()))
    }

    /// About to wait up to `timeout` with rings open: watches them for up
    /// to [`SPIN`] (yielding the processor to anyone who wants it), then
    /// asks each writer to wake us and looks once more. Returns the
    /// timeout to wait with: zero when a ring has records.
    fn before_sleep(&self, timeout: Option<Duration>) -> Option<Duration> {
        let spin = timeout.map_or(SPIN, |t| t.min(SPIN));
        let start = Instant::now();
        loop {
            if self.rings_have_records() || self.waker.flag.load(Ordering::Relaxed) {
                return Some(Duration::ZERO);
            }
            if start.elapsed() >= spin {
                break;
            }
            std::thread::yield_now();
        }
        if self.arm_rings() {
            return Some(Duration::ZERO);
        }
        timeout.map(|t| t.saturating_sub(start.elapsed()))
    }

    fn rings_have_records(&self) -> bool {
        self.conns
            .iter()
            .flatten()
            .any(|c| c.ring.as_ref().is_some_and(RingConn::ready))
    }

    /// Asks every writer with a ring to signal its eventfd for its next
    /// record, then looks at the rings once more; true if one has records
    /// (no wait then). Every wait that a ring record should end goes
    /// through here first.
    fn arm_rings(&self) -> bool {
        for c in self.conns.iter().flatten() {
            if let Some(r) = &c.ring {
                r.ring.want_wake();
            }
        }
        self.rings_have_records()
    }

    fn accept_all(&mut self, net: bool, all: bool) -> Result<()> {
        // A bounded number per wake: a user who connects and closes in a
        // loop must not keep the reader from the writers it has (the
        // listener stays readable, so the rest come next pass).
        for _ in 0..ACCEPT_PER_WAKE {
            let listener = match (net, &self.net_listener) {
                (false, _) => &self.listener,
                (true, Some(l)) => l,
                (true, None) => return Ok(()),
            };
            let fd = match sys::accept(listener.as_fd()) {
                Ok(Some(fd)) => fd,
                Ok(None) => return Ok(()),
                // Out of descriptors or memory: leave the rest in the backlog
                // and stop polling the listeners for a while (they stay
                // readable, so every wait would return at once).
                Err(e) if matches!(e.raw_os_error(), Some(23 | 24 | 105 | 12)) => {
                    self.pause_accepting();
                    return Ok(());
                }
                Err(e) => return Err(io_err("accepting a writer", &self.display)(e)),
            };
            let Ok(cred) = sys::peer_cred(fd.as_fd()) else {
                continue;
            };
            let trusted = cred.uid == 0
                || cred.uid == self.dir_owner
                || (net && self.trust.get(&self.ns).contains(&cred.uid));
            let refusal = if net && !trusted {
                // Only the daemon may use the network socket.
                Some(Refusal::Untrusted)
            } else if cred.uid != 0
                && cred.uid != self.owner
                && !(net && trusted)
                && self.per_uid.get(&cred.uid).copied().unwrap_or(0) >= self.uid_share
            {
                Some(Refusal::TooManyConnections)
            } else {
                None
            };
            if let Some(why) = refusal {
                // Said before the close, so the writer can tell why.
                notify(fd.as_fd(), Kind::Refused, why as u16, 0);
                self.refused_conns += 1;
                continue;
            }
            // The writer (the daemon above all) learns that what it writes
            // will be read: see `Writer::wait_accepted`.
            notify(fd.as_fd(), Kind::Welcome, 0, 0);
            let conn = Conn {
                fd,
                sender: Sender {
                    pid: cred.pid,
                    uid: cred.uid,
                    gid: cred.gid,
                    remote: None,
                },
                queue: VecDeque::new(),
                eof: false,
                trusted,
                net_only: net,
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
            };
            let idx = match self.free.pop() {
                Some(i) => i,
                None => {
                    self.conns.push(None);
                    self.conns.len() - 1
                }
            };
            if self.poller.add(conn.fd.as_fd(), idx as u64).is_err() {
                self.free.push(idx);
                continue;
            }
            *self.per_uid.entry(cred.uid).or_insert(0) += 1;
            self.conns[idx] = Some(conn);
            // It may have written already.
            self.fill(idx, all, true);
        }
        Ok(())
    }

    /// Receives messages of connection `idx` into its queue: from its
    /// socket, or from its ring while the writer says so. `sock_event`:
    /// the socket was reported ready (while reading the ring, that can
    /// only be its end).
    fn fill(&mut self, idx: usize, unbounded: bool, sock_event: bool) {
        let Some(conn) = self.conns[idx].as_mut() else {
            return;
        };
        let was_empty = conn.queue.is_empty();
        let mut got = 0usize;
        let mut got_bytes = 0usize;
        let mut broken = false;
        let mut starved = false;
        let pump_ns = self.pump_ns;
        // Unbounded (`info()`) takes what the kernel held when it started and
        // no more: writers that keep refilling their buffers must not make
        // it read, and hold, without end (issue 8). Likewise for the ring.
        let budget = if unbounded {
            sys::queued_bytes(conn.fd.as_fd()).ok()
        } else {
            None
        };
        let ring_budget = conn
            .ring
            .as_ref()
            .filter(|_| budget.is_some())
            .map(|r| r.ring.tail());
        let unbounded = budget.is_some();
        let mut taken = 0usize;
        loop {
            let on_ring = conn.ring.as_ref().is_some_and(|r| r.reading);
            // The queue's bound holds for `info()` too: past it, messages
            // wait in the writer's socket or ring (one frame per connection
            // may go past it, so that every writer has its head here).
            if !conn.queue.is_empty()
                && ((!unbounded
                    && (got >= BATCH
                        || got_bytes >= BATCH_BYTES
                        // The first message was sent while we waited: the
                        // writer was not ahead of us, so there is most likely
                        // nothing more. Leave the rest to level-triggered
                        // epoll rather than spend a receive call on learning
                        // that (it would sit in every message's latency).
                        || (!on_ring
                            && was_empty
                            && got == 1
                            && conn.queue[0].stamp >= self.pump_ns)))
                    || self.buffered_msgs >= self.opts.queue_messages
                    || self.buffered_bytes >= self.opts.queue_bytes)
            {
                break;
            }
            let before = conn.queue.len();
            // Decode one frame, from the ring or the socket: was it valid,
            // and how long.
            let (ok, len, floor) = if let (true, Some(rc)) = (on_ring, conn.ring.as_mut()) {
                if ring_budget.is_some_and(|b| rc.ring.position() >= b) {
                    break;
                }
                let loaded = rc.ring.cached_tail();
                match rc.ring.next() {
                    Err(_) => {
                        broken = true;
                        break;
                    }
                    Ok(None) => {
                        // Give back a wrap record passed at the end.
                        if rc.held == 0 && rc.ring.release(rc.ring.position()) {
                            notify(conn.fd.as_fd(), Kind::Room, 0, 0);
                        }
                        // While the ring is read, the socket carries only
                        // its end, or a frame after a hand-off record
                        // (published before the frame was sent, so the
                        // ring has it now).
                        if !sock_event {
                            break;
                        }
                        match sys::peek_packet(conn.fd.as_fd()) {
                            Ok(sys::Recv::WouldBlock) => break,
                            Ok(sys::Recv::Frame { .. }) if rc.ring.has_records() => continue,
                            Ok(sys::Recv::Frame { .. }) => {
                                broken = true;
                                break;
                            }
                            Ok(sys::Recv::Closed) | Err(_) => {
                                conn.eof = true;
                                break;
                            }
                        }
                    }
                    Ok(Some(Record::Handoff)) => {
                        rc.reading = false;
                        if rc.held == 0 && rc.ring.release(rc.ring.position()) {
                            notify(conn.fd.as_fd(), Kind::Room, 0, 0);
                        }
                        continue;
                    }
                    Ok(Some(Record::Frame { off, len })) => {
                        if rc.ring.cached_tail() != loaded {
                            // Records up to the tail just loaded were
                            // published after the previous load.
                            rc.floor_ns = rc.load_ns;
                            rc.load_ns = self.pump_ns;
                        }
                        let ok = decode_ring_frame(
                            &rc.ring,
                            off,
                            len,
                            self.opts.max_message_size,
                            conn.trusted,
                            &mut self.scratch,
                            &mut conn.queue,
                            &mut self.spare,
                        );
                        (ok, len, rc.floor_ns)
                    }
                }
            } else {
                if budget.is_some_and(|b| taken >= b) {
                    break;
                }
                if conn.expect_fd {
                    // Descriptors are budgeted: a connection with messages
                    // queued takes no more than its share now (the rest
                    // wait in the kernel), and a descriptor the process has
                    // no room for is left queued, never lost.
                    if !conn.queue.is_empty()
                        && (conn.fds >= FDS_PER_CONN || self.held_fds >= self.fd_budget)
                    {
                        break;
                    }
                    if matches!(sys::peek_frame_fd(conn.fd.as_fd()), sys::PeekFd::NoRoom) {
                        starved = true;
                        break;
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
                let (len, truncated, fd) = match r {
                    Ok(sys::Recv::Frame { len, truncated, fd }) => (len, truncated, fd),
                    Ok(sys::Recv::WouldBlock) => {
                        // Drained: whatever comes next was sent after now.
                        conn.order.drained(self.pump_ns);
                        break;
                    }
                    Ok(sys::Recv::Closed) | Err(_) => {
                        conn.eof = true;
                        break;
                    }
                };
                taken += len;
                if len == HEADER_LEN && !truncated {
                    match control_frame(&self.scratch[..len]) {
                        Some(Kind::Announce) if fd.is_none() => {
                            conn.expect_fd = true;
                            continue;
                        }
                        Some(Kind::Ring) => {
                            // An offer without its memory file, or a second
                            // one, is refused when its eventfd comes.
                            conn.offered = fd.filter(|_| conn.ring.is_none() && !conn.net_only);
                            continue;
                        }
                        Some(Kind::RingWake) => {
                            let accepted = match (conn.offered.take(), fd, conn.ring.is_none()) {
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
                                            load_ns: pump_ns,
                                            floor_ns: pump_ns,
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
                            continue;
                        }
                        Some(Kind::Receipts) => match fd.as_ref().map(Receipts::open) {
                            // One receipt file per connection, before any
                            // message (a writer that breaks this loses
                            // its connection, and with it its receipts).
                            Some(Ok(r))
                                if conn.receipts.is_none()
                                    && conn.queue.is_empty()
                                    && !conn.net_only =>
                            {
                                conn.receipts = Some(r);
                                continue;
                            }
                            _ => {
                                broken = true;
                                break;
                            }
                        },
                        Some(Kind::ToRing) if fd.is_none() => match conn.ring.as_mut() {
                            Some(rc) => {
                                rc.reading = true;
                                continue;
                            }
                            None => {
                                broken = true;
                                break;
                            }
                        },
                        _ => {}
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
                (ok, len, conn.order.frame(len, self.pump_ns, self.in_flight))
            };
            if !ok {
                conn.queue.truncate(before);
                // A writer that breaks the protocol loses its connection.
                broken = true;
                break;
            }
            got_bytes += len;
            // Stamps are the writer's word: each is raised to what the
            // reader can prove about when it was written, and to the
            // connection's last (see `Order`).
            for p in conn.queue.range_mut(before..) {
                p.stamp = conn.order.clamp(p.stamp, floor);
            }
            // The network socket carries only messages with an origin.
            if conn.net_only && conn.queue.range(before..).any(|p| p.origin.is_none()) {
                conn.queue.truncate(before);
                broken = true;
                break;
            }
            if !self.opts.accept_remote && conn.queue.back().is_some_and(|p| p.origin.is_some()) {
                conn.queue.truncate(before);
                self.refused_remote += 1;
            }
            let added = conn.queue.len() - before;
            if on_ring {
                let rc = conn.ring.as_mut().expect("reading a ring");
                match conn.queue.back_mut() {
                    // The record goes back to the writer when its last
                    // message is taken.
                    Some(p) if added > 0 => {
                        p.ring_end = rc.ring.position();
                        rc.held += 1;
                    }
                    // Nothing of it queued (refused, an empty batch).
                    _ => {
                        if rc.held == 0 && rc.ring.release(rc.ring.position()) {
                            notify(conn.fd.as_fd(), Kind::Room, 0, 0);
                        }
                    }
                }
            }
            for p in conn.queue.range(before..) {
                self.buffered_msgs += 1;
                self.buffered_bytes += p.payload.cost();
                if matches!(p.payload, Payload::Memfd { .. }) {
                    conn.fds += 1;
                    self.held_fds += 1;
                }
            }
            got += added;
            if added > 0 {
                conn.filled_pass = self.pass;
            }
        }
        if broken {
            self.rejected += 1;
            conn.eof = true;
            let _ = rustix::net::shutdown(&conn.fd, rustix::net::Shutdown::Both);
        } else if starved {
            let _ = self.poller.delete(conn.fd.as_fd());
            self.starved.push(idx);
            self.starved_until = Some(Instant::now() + STARVE_PAUSE);
        }
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

    fn remove_conn(&mut self, idx: usize) {
        if let Some(c) = self.conns[idx].take() {
            if let Some(n) = self.per_uid.get_mut(&c.sender.uid) {
                *n -= 1;
                if *n == 0 {
                    self.per_uid.remove(&c.sender.uid);
                }
            }
            let _ = self.poller.delete(c.fd.as_fd());
            if let Some(r) = &c.ring {
                let _ = self.poller.delete(r.wake.as_fd());
                self.rings -= 1;
            }
            self.free.push(idx);
            drop(c);
            // A descriptor is free again: a writer waiting may get it.
            if self.accept_paused_until.is_some() {
                self.resume_accepting();
            }
        }
    }

    /// Puts connections that waited for room for a descriptor back on the
    /// poller once one was freed or [`STARVE_PAUSE`] has passed; returns
    /// the wait's timeout, bounded by that moment.
    fn resume_starved(&mut self, timeout: Option<Duration>) -> Option<Duration> {
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

    fn pause_accepting(&mut self) {
        if self.accept_paused_until.is_none() {
            let _ = self.poller.delete(self.listener.as_fd());
            if let Some(l) = &self.net_listener {
                let _ = self.poller.delete(l.as_fd());
            }
        }
        self.accept_paused_until = Some(Instant::now() + ACCEPT_PAUSE);
    }

    fn resume_accepting(&mut self) {
        if self.accept_paused_until.take().is_some() {
            let _ = self.poller.add(self.listener.as_fd(), LISTENER);
            if let Some(l) = &self.net_listener {
                let _ = self.poller.add(l.as_fd(), NET_LISTENER);
            }
        }
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
            let recycle = h.flags & FLAG_RECYCLE != 0;
            let token = if recycle { frame::token(body) } else { None };
            if too_big(h.len as usize) || (recycle && token.is_none()) {
                return false;
            }
            // A buffer we keep mapped passed the seal check when we mapped it.
            let known = |dev, ino| mapped.iter().any(|(k, _)| *k == (dev, ino));
            let Ok(st) = sys::check_memfd(fd.as_fd(), u64::from(h.len), recycle, known) else {
                return false;
            };
            // Map only buffers sized like our writers' (a power of two at
            // most twice the message), never a huge sparse file.
            let size = st.st_size as u64;
            let id = (recycle && size <= (2 * u64::from(h.len)).max(256 << 10))
                .then_some((st.st_dev, st.st_ino));
            queue.push_back(Pending {
                stamp: h.stamp,
                payload: Payload::Memfd {
                    fd,
                    len: h.len as usize,
                    token,
                    id,
                },
                origin: None,
                ring_end: 0,
            });
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

/// Decodes a frame record of a ring into `queue`; false if the writer
/// broke the protocol (the caller then drops what was queued). Messages
/// over 64 B, alone or in a batch, stay in the ring until they are read.
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
    // A message at `at` of `n` bytes: small ones copied now, the rest left
    // in the ring until read.
    let message = |at: usize, n: usize| Pending {
        stamp: h.stamp,
        payload: if n <= SMALL_MAX {
            let mut data = [0u8; SMALL_MAX];
            ring.copy(at, &mut data[..n]);
            Payload::Small { len: n as u8, data }
        } else {
            Payload::Ring { off: at, len: n }
        },
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

/// Sends a header-only notice to a writer. Never waits: a writer that does
/// not take its notices (or has gone) only loses what they would tell it.
fn notify(fd: BorrowedFd<'_>, kind: Kind, flags: u16, stamp: u64) {
    let notice = Header::new(kind, flags, 0).stamped(stamp).encode();
    let _ = sys::send_frame(fd, &notice, &[], None, true);
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

/// Binds the socket `file` under a temporary name, sets its mode, starts
/// listening, then renames it into place, so no writer ever sees a socket
/// with the wrong permissions.
fn bind_socket(ns: &Namespace, file: &str, mode: u32) -> io::Result<OwnedFd> {
    let stem = file.strip_suffix(".sock").unwrap_or(file);
    let tmp = format!("{stem}.{}.tmp.sock", sys::pid());
    sys::unlink_at(ns.fd(), &tmp)?;
    let fd = sys::seqpacket_socket(true)?;
    let addr = sys::unix_addr(ns.dir(), ns.fd(), &tmp)?;
    sys::bind(fd.as_fd(), &addr)?;
    let r = sys::chmod_at(ns.fd(), &tmp, mode)
        .and_then(|()| sys::listen(fd.as_fd(), 4096))
        .and_then(|()| sys::rename_at(ns.fd(), &tmp, file));
    if r.is_err() {
        let _ = sys::unlink_at(ns.fd(), &tmp);
    }
    r.map(|()| fd)
}

impl Drop for Reader {
    fn drop(&mut self) {
        if let Some(c) = self.claim.take() {
            match &self.instance {
                Some(i) => c.release_shared(&self.ns, &self.stem, i),
                None => c.release(&self.ns, &self.stem),
            }
        }
    }
}

impl AsFd for Reader {
    /// The reader's epoll descriptor: readable when a read may make
    /// progress. Wait on it only after a read has returned
    /// [`Error::TimedOut`] (or [`Error::Interrupted`]): messages may already
    /// wait in the reader's memory or in a writer's ring, where it sees
    /// nothing, and only such a read asks the writers to signal it.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.poller.as_fd()
    }
}

impl AsRawFd for Reader {
    fn as_raw_fd(&self) -> RawFd {
        self.poller.as_fd().as_raw_fd()
    }
}
