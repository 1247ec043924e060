//! The reader: Windows' mailslot "server".

mod accept;
mod conn;
mod direct;
mod merge;

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use self::accept::{Listeners, uid_share};
use self::conn::{Conn, Payload, Pending, RingConn};
use self::merge::RingTake;
use crate::error::{Error, Result, io_err};
use crate::frame::{HEADER_LEN, Header, INLINE_MAX, Kind, RemoteOrigin};
use crate::name::SlotName;
use crate::namespace::{Claim, Meta, Namespace};
use crate::sys;
use crate::watch::Watch;

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
/// After this many looks in vain (about 2 µs), a reader watching its rings
/// tells their writers, which then publish every record at once (see
/// `ring.rs`): a record left unpublished because it came soon after the
/// previous one must not wait for the watch to end when no more come. It
/// also looks then, and every this many looks, at how far they have
/// written records without publishing them (a writer may have decided to
/// leave one unpublished just before it saw the flag). Not from the first
/// look: a reader that catches up with a stream finds the writer's next
/// batch sooner, and the flag costs the writer a cache miss and a
/// publication per record (from the fourth look on, queued 1 KiB
/// throughput lost 6%).
const WATCHED_LOOKS: u32 = 16;
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
    /// How it watches its rings before it sleeps (see `watch.rs`).
    watch: Watch,
    /// A read's direct path has just watched the rings in vain and armed
    /// them (see `direct.rs`): the pump that follows waits without
    /// watching them again.
    rings_armed: bool,
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
        let meta = slot_meta(&display, options);
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
        let Listeners {
            listener,
            net_listener,
            poller,
            efd,
        } = Listeners::open(&ns, &base, options, &display)?;
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
            watch: Watch::default(),
            rings_armed: false,
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
        self.read_into(buf, self.opts.read_timeout, false)
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
        self.read_into(buf, timeout, true)
            .map(|(n, s)| (n, s.expect("asked for the sender")))
    }

    /// Reads the next message into `buf`; with its sender when `sender`
    /// (a clone a plain read does without).
    fn read_into(
        &mut self,
        buf: &mut [u8],
        timeout: Option<Duration>,
        sender: bool,
    ) -> Result<(usize, Option<Sender>)> {
        let deadline = timeout.map(|t| Instant::now() + t);
        if let Some((n, idx)) = self.read_direct(buf, timeout) {
            return Ok((n, sender.then(|| self.direct_sender(idx))));
        }
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
            if !sender {
                match self.take_ring_head(idx, &mut buf[..needed]) {
                    RingTake::Taken => return Ok((needed, None)),
                    RingTake::Revoked => continue,
                    RingTake::Other => {}
                }
            }
            let (idx, p) = self.take_head();
            let sender = sender.then(|| self.sender_of(idx, &p));
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
        let mut buffer = None;
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
                buffer = token;
                self.copy_large(idx, &fd, id, &mut buf[..len])
            }
        };
        if r.is_err() {
            self.cut_off(idx);
        }
        let r = r.and_then(|()| self.claim(idx));
        // Only after the claim: a writer that finds its buffer given back
        // takes it that the message was counted (a queued writer then
        // keeps no copy of its own, see `queued.rs`).
        self.give_back(idx, buffer);
        self.after_take(idx, p.ring_end);
        r
    }

    /// Reads without waiting: [`Error::TimedOut`] at once when empty.
    pub fn try_read(&mut self, buf: &mut [u8]) -> Result<usize> {
        self.read_into(buf, Some(Duration::ZERO), false)
            .map(|(n, _)| n)
    }

    /// Reads with an explicit timeout for this call only.
    pub fn read_timeout_once(
        &mut self,
        buf: &mut [u8],
        timeout: Option<Duration>,
    ) -> Result<usize> {
        self.read_into(buf, timeout, false).map(|(n, _)| n)
    }

    /// Reads the next message as an owned [`Message`], waiting up to the
    /// read timeout.
    pub fn read_message(&mut self) -> Result<Message> {
        self.read_message_timeout(self.opts.read_timeout)
    }

    /// Like [`read_message`](Reader::read_message) with an explicit timeout.
    pub fn read_message_timeout(&mut self, timeout: Option<Duration>) -> Result<Message> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut data = Vec::new();
        if let Some((_, idx)) = self.read_direct(&mut data, timeout) {
            let sender = self.direct_sender(idx);
            return Ok(Message { data, sender });
        }
        loop {
            self.wait_head(deadline, timeout)?;
            let (idx, p) = self.take_head();
            let sender = self.sender_of(idx, &p);
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
        let armed = std::mem::take(&mut self.rings_armed);
        let timeout = if timeout != Some(Duration::ZERO) && self.rings > 0 && !armed {
            self.before_sleep(timeout)
        } else {
            timeout
        };
        self.pump_ns = sys::monotonic_ns();
        self.pass += 1;
        // Room for every registered descriptor, so one call sees all that are ready.
        // A pass that would not wait and would find nothing new skips its
        // system call (see `Poller::nothing_new`).
        if timeout == Some(Duration::ZERO) && self.poller.nothing_new() {
            tokens.clear();
        } else {
            self.poller
                .wait(tokens, 2 * self.conns.len() + 3, timeout)
                .map_err(io_err("waiting for messages", &self.display))?;
        }
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
    /// to [`SPIN`] (see `watch.rs`), then asks each writer to wake us and
    /// looks once more. Returns the timeout to wait with: zero when a ring
    /// has records.
    fn before_sleep(&mut self, timeout: Option<Duration>) -> Option<Duration> {
        let spin = timeout.map_or(SPIN, |t| t.min(SPIN));
        let start = Instant::now();
        let mut watch = std::mem::take(&mut self.watch);
        let mut looks = 0u32;
        let found = watch.run(start, spin, || {
            looks += 1;
            let watched = looks % WATCHED_LOOKS == 0;
            if looks == WATCHED_LOOKS {
                self.watching(true);
            }
            self.rings_have_records()
                || self.waker.flag.load(Ordering::Relaxed)
                || (watched && self.look_staged())
        });
        self.watch = watch;
        if looks >= WATCHED_LOOKS {
            self.watching(false);
        }
        if found {
            return Some(Duration::ZERO);
        }
        if self.arm_rings() {
            return Some(Duration::ZERO);
        }
        timeout.map(|t| t.saturating_sub(start.elapsed()))
    }

    /// Tells every writer with a ring whether the reader is watching for
    /// records: they publish each at once while it is (see `ring.rs`).
    fn watching(&self, on: bool) {
        for c in self.conns.iter().flatten() {
            if let Some(r) = &c.ring {
                r.ring.set_watching(on);
            }
        }
    }

    /// Test access to [`watching`](Reader::watching).
    #[cfg(test)]
    pub(crate) fn set_watching(&self, on: bool) {
        self.watching(on);
    }

    /// Whether a writer has records written but not published (they are
    /// read from then on; see `ring.rs`).
    fn look_staged(&mut self) -> bool {
        let mut staged = false;
        for c in self.conns.iter_mut().flatten() {
            if let Some(r) = &mut c.ring {
                staged |= r.look_staged();
            }
        }
        staged
    }

    fn rings_have_records(&self) -> bool {
        self.conns
            .iter()
            .flatten()
            .any(|c| c.ring.as_ref().is_some_and(RingConn::ready))
    }

    /// Asks every writer with a ring to signal its eventfd for its next
    /// record, then looks at the rings once more, staged records included
    /// (see `ring.rs`); true if one has records (no wait then). Every wait
    /// that a ring record should end goes through here first.
    fn arm_rings(&mut self) -> bool {
        for c in self.conns.iter().flatten() {
            if let Some(r) = &c.ring {
                r.ring.want_wake();
            }
        }
        // Records a writer left unpublished for the next ones of its
        // stream, which may not come.
        let found = self.look_staged() || self.rings_have_records();
        if found {
            // No sleep after all: writers need not publish at once.
            for c in self.conns.iter().flatten() {
                if let Some(r) = &c.ring {
                    r.ring.cancel_wake();
                }
            }
        }
        found
    }
}

/// Sends a header-only notice to a writer. Never waits: a writer that does
/// not take its notices (or has gone) only loses what they would tell it.
fn notify(fd: BorrowedFd<'_>, kind: Kind, flags: u16, stamp: u64) {
    let notice = Header::new(kind, flags, 0).stamped(stamp).encode();
    let _ = sys::send_frame(fd, &notice, &[], None, true);
}

/// What the slot's metadata file says about a reader created with `options`.
fn slot_meta(display: &str, options: &ReaderOptions) -> Meta {
    Meta {
        name: display.to_owned(),
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
    }
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
