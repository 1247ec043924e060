//! A writer that queues messages and delivers them from a background thread
//! (the classic `CQueuedMailslotWriter`).
//!
//! [`QueuedWriter::send`] puts a message in a bounded in-memory queue and
//! returns; a delivery thread sends [`Priority::High`] messages before
//! [`Priority::Normal`] ones, first-in-first-out within a priority. The slot
//! need not exist yet: the thread polls for it (1 ms, doubling to 100 ms by
//! default) and follows a reader that goes away and comes back, even as a new
//! process. Several waiting messages travel coalesced in one packet
//! ([`Writer::write_batch`]); the reader still sees each as its own message.
//!
//! # Delivery guarantee
//!
//! A message [`QueuedWriter::send`] accepted is returned by exactly one
//! read of one reader, or handed back by [`QueuedWriter::close`] — never
//! dropped silently because a reader exited, closed with messages unread,
//! or was killed. Within each priority the order holds across readers.
//!
//! How: right after it connects, the delivery thread gives the reader a
//! small receipt file of its own (shared memory), and the reader counts
//! there each message of this connection that a read returns, once nothing
//! can keep the read from returning it. Sent messages stay in the writer's
//! memory, counted in its queue limit and in [`QueuedStats::unread`], until their receipt
//! comes: a message sent directly through the connection's ring stays
//! right there (the reader gives a record back only after a read returned
//! it), others in a buffer of the writer's. When the reader goes away (its connection closes; the thread
//! notices at its next send, or within 10 ms while it watches unread
//! messages), when the writer is retargeted, or at the close deadline, the
//! writer revokes the receipt file with one atomic operation, which also
//! tells it how many were returned: no read returns any of the rest from
//! then on (a reader that still holds them drops them), and they go back
//! to the front of their queues, to the next reader.
//!
//! The one message a SIGKILLed reader may take with it is the one whose
//! read had counted it but not returned yet, or had returned it to a
//! caller that had not used it yet: nothing else, and nothing twice.
//!
//! [`QueuedWriter::flush`] waits until every message is in a reader's
//! hands; [`QueuedWriter::wait_read`] until reads have returned them all.
//!
//! **Shared slots** (several readers, each getting every message): a
//! message is delivered once every reader it was sent to has returned it
//! or gone. A reader that goes away loses its unread copies only when
//! another reader returned that message; a message that every reader it
//! went to left unread is sent again, to the readers there then. Each
//! reader returns each message at most once. (A message sent again can
//! come after later messages at a reader that joined in between.)
//!
//! **Not covered:** the writer's own process dying (what it holds in
//! memory dies with it; readers are not disturbed and keep everything it
//! sent), and network slots (`\\HOST\...`), which this writer does not
//! serve: a datagram has no receipt.
//!
//! # Direct sends
//!
//! Handing every message to the delivery thread costs a wake-up and a
//! context switch per send. So when [`QueuedWriter::send`] finds nothing
//! waiting to be sent and the delivery thread idle with a connection to the
//! current target (not retargeted since, not closing), it sends the message
//! itself, from the caller's thread (holding the queue's lock, which makes
//! it the connection's only user: no lock of the connection's own is taken
//! and the message count is no atomic operation, two fewer instructions
//! per message that each wait for the message's bytes to reach the ring),
//! waiting at most 1 ms for room (a message over 64 KiB, which travels in a
//! memory file, is sent without the lock: the caller takes the connection
//! out of the state, fills one of its reusable buffers or waits for one as
//! long as a plain write would, 2 ns per byte and at least 10 ms, then
//! takes a fresh file; other threads' sends queue meanwhile): the message
//! goes into the connection (it is then unread, like any message
//! sent, and counts in [`QueuedStats::sent`] and [`QueuedStats::packets`];
//! every 64 such sends, and after each of 64 KiB or more, the caller also
//! looks at the receipts) or, when the
//! reader's buffer stays full that long or the reader has gone, nothing is
//! sent and the message is queued as usual (and later sends queue behind
//! it until the thread has sent a packet of messages of 512 bytes or more
//! on average with no wait for room: the reader reads again; smaller
//! messages stay with the thread until nothing waits, its batches being
//! the faster way for them).
//!
//! A direct send of 512 bytes or more that comes right after another (under
//! 0.5 µs) may stay in the ring unpublished, invisible to a reader still
//! busy with earlier ones, until 16 records or 16 KiB wait: then they go
//! visible together, for one publication (a fence, and the ring's tail
//! passed to the reader once) instead of one each, and the records after
//! the first take its stamp instead of reading the clock. A message alone
//! is published at once. A reader that has read everything published
//! looks, before it sleeps, how far the writer has written (staged, see
//! `ring.rs`), and reads the rest of a burst from there: the last of a
//! burst of five 1 KiB messages arrived 40–60 µs after its send (the
//! reader's wake-up and its 20 µs watch), where it waited 200 µs for the
//! delivery thread. A send while the reader sleeps (or is about to) is
//! published at once and wakes it. The delivery thread
//! still publishes the rest of a burst once callers have not sent for one
//! of its looks (1 to 5 ms apart: looking every 20 µs to 1 ms, it woke 1 800
//! times a second beside a stream of 1 KiB messages); [`flush`](QueuedWriter::flush),
//! [`wait_read`](QueuedWriter::wait_read) and a wait for room publish first.
//! They are unread messages like any other: kept in the ring, and taken
//! back and sent again if the reader goes away without them.
//!
//! Messages that wait (queued while the thread was sending) go with the
//! caller's next send, coalesced, one packet's worth at a time until none
//! waits; the thread leaves them to a caller that keeps sending (for 20 µs,
//! doubling up to 1 ms while sends keep coming) and sends them itself when
//! callers stop, after a stall, when closing, or when someone waits for
//! them ([`flush`](QueuedWriter::flush),
//! [`wait_read`](QueuedWriter::wait_read), a send blocked on a full queue).
//! Small messages (under 512 bytes) are sent alone this way only to a
//! reader that has read everything this writer sent before; else they
//! gather, and go coalesced from the caller's thread once a packet's worth
//! has gathered or (looked at every 16 messages) the reader has caught up,
//! or from the delivery thread when the caller stops: for them one packet
//! of many costs both sides far less than one packet each.
//!
//! A reader a little behind thus costs the caller a short wait rather than
//! a hand-off per message to a third busy thread. The order is kept
//! because this happens only when nothing at all is waiting, and the caller and the thread never send at the same
//! time: the connection lives under the state lock, the caller sends only
//! while holding that lock, and the thread takes the connection out of it
//! (so a direct send is impossible) for as long as it holds a batch. A
//! shared slot is never sent to directly (a non-blocking fan-out could
//! reach only some of its readers).
//!
//! Nothing is dropped silently either: a full queue waits, fails or drops the
//! oldest normal message as [`Overflow`] says (dropped ones are counted in
//! [`QueuedStats::dropped`]); [`QueuedWriter::close`] returns every message it
//! could not deliver by its deadline.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use mailslot::{Namespace, Priority, QueuedOptions, QueuedWriter, Reader, ReaderOptions, SlotName};
//! # let tmp = tempfile::tempdir()?;
//! # let ns = Namespace::at(tmp.path())?;
//! let name = SlotName::parse(r"\\.\mailslot\demo\queued")?;
//!
//! // No reader yet: the writer opens anyway and keeps the messages.
//! let writer = QueuedWriter::open_in(&ns, &name, QueuedOptions::default())?;
//! writer.send(b"routine", Priority::Normal)?;
//! writer.send(b"urgent", Priority::High)?;
//!
//! let mut reader = Reader::create_in(&ns, &name, &ReaderOptions::default())?;
//! writer.flush(Duration::from_secs(10))?;
//! assert_eq!(reader.read_message()?.data, b"urgent");
//! assert_eq!(reader.read_message()?.data, b"routine");
//!
//! let undelivered = writer.close(Duration::from_secs(1));
//! assert!(undelivered.is_empty());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::error::{Error, Result, io_err};
use crate::name::SlotName;
use crate::namespace::Namespace;
use crate::receipt::{Fate, Snapshot};
use crate::writer::{Placed, Writer};

/// How long one blocked send waits before the delivery thread looks again
/// at its deadline and target.
const SEND_SLICE: Duration = Duration::from_millis(100);

/// How long a direct send waits for room in the reader's connection
/// before it leaves the message to the delivery thread: long enough that a
/// reader a little behind does not push a steady stream onto the thread
/// (a third busy thread, and a hand-off per message), short enough that
/// `send` stays prompt when the reader stalls (after that, nothing is sent
/// directly until the delivery thread has sent a packet without waiting).
const DIRECT_WAIT: Duration = Duration::from_millis(1);

/// How long a direct send of `len` bytes may wait: [`DIRECT_WAIT`], or for
/// a message that travels in a memory file as long as a plain write waits
/// for one of its reusable buffers to come back (`MemfdPool::patience`),
/// with the connection lent out of the queue's lock (see `send_lent`).
/// Cut to `DIRECT_WAIT`, a writer among four of 1 MiB messages sent 45% of
/// them in fresh memory files (a page allocation per 4 KiB), plain writers
/// none: 1.8 k msgs/s against plain's 8 k.
fn direct_wait(len: usize) -> Duration {
    if len > crate::frame::INLINE_MAX {
        crate::memfd_pool::MemfdPool::patience(len).max(DIRECT_WAIT)
    } else {
        DIRECT_WAIT
    }
}

/// Messages smaller than this are faster gathered into packets than sent
/// alone, and those larger faster sent alone from the caller's thread (kept
/// in the ring, with no copy of their own). So a small message is sent
/// alone only to a reader that has read everything before it, else it
/// waits for those that follow (see `gathered`); and after a stall,
/// callers send themselves again as soon as the delivery thread has sent
/// a packet of larger messages without waiting, while smaller ones stay
/// with the thread until nothing waits. Measured (`mailslot bench --mode
/// queued`, two cores): at 1 KiB the extra copy costs more than packets
/// save (callers sending themselves: 1.5x); at 64 B packets win (gathering:
/// 1.4x, and ahead of plain writes).
const SMALL_LEN: usize = 512;

/// Gathering small messages, a send looks whether the reader has read
/// everything before them every this many.
const GATHER_LOOK: usize = 16;

/// How long the delivery thread leaves what waits to callers that sent
/// while it was sending (a caller's next send takes it all, coalesced);
/// it sends itself when they stay quiet that long.
const CALLERS_SEND: Duration = Duration::from_micros(20);

/// Buffers of messages read are kept for reuse up to this size, as many
/// as fit in `SPARE_BYTES` of capacity, and at most `SPARE_COUNT` of them.
/// A reader behind a stream leaves thousands of messages in flight, handed
/// back by its receipts in bursts: kept 256 at most, the rest were freed
/// by the delivery thread and allocated again by the callers, glibc's
/// slowest path (memory of another thread's arena) for 57 ns a message of
/// the writers' 200 (4 writers of 64 B each).
const SPARE_LEN: usize = 4096;
const SPARE_BYTES: usize = 1 << 20;
const SPARE_COUNT: usize = 16_384;

/// Buffers of larger messages read are kept too, up to this many bytes in
/// all: a fresh buffer of a large message costs a page fault per 4 KiB
/// (the allocator hands such memory back as soon as it is freed), several
/// times the copy. Measured (`mailslot bench --size 1m --mode queued`):
/// 0.7-0.9 k -> 5.4-7.8 k msgs/s, plain writes 12-17 k, on two cores.
const SPARE_LARGE_BYTES: usize = 8 << 20;
const SPARE_LARGE_COUNT: usize = 8;

/// A direct send of a message this large looks at the receipts at once,
/// not every `SETTLE_EVERY` sends: what a read returned stops counting
/// against the queue's byte limit, and its buffer is free for the next.
const SETTLE_LEN: usize = 64 << 10;

/// A direct send looks at the receipts every this many unread messages.
const SETTLE_EVERY: usize = 64;

/// How often an idle delivery thread looks at the receipts of unread
/// messages and whether their reader is still there: every `WATCH_HURRY`
/// while someone waits for them to be read (a blocked send, `wait_read`,
/// `close`), else from `WATCH_MIN` doubling to `WATCH_MAX` (senders look
/// themselves as they send).
const WATCH_HURRY: Duration = Duration::from_micros(100);
const WATCH_MIN: Duration = Duration::from_millis(1);
const WATCH_MAX: Duration = Duration::from_millis(10);
/// While records a caller sent directly wait unpublished, the idle
/// delivery thread looks at least this often whether callers have stopped,
/// and then publishes them. A reader that has caught up takes them before
/// (they are staged, see `ring.rs`), and the writer's next record after a
/// pause is published at once: this is for readers that do not look at
/// `staged` (older versions). Looking every 20 µs to 1 ms while callers
/// kept sending, the thread woke 1 800 times a second beside a stream of
/// 1 KiB messages, each time taking a core from the caller or the reader.
const DEFERRED_LOOK: Duration = Duration::from_millis(5);

/// Which queue a message goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Priority {
    /// Sent before every waiting normal message.
    High,
    /// Sent after the high-priority messages waiting at the time.
    Normal,
}

/// What [`QueuedWriter::send`] does when the queue is full.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Overflow {
    /// Wait for room (the default): a blocked send goes on once reads
    /// have freed a sixteenth of the queue's bounds, or emptied it, so
    /// that it and the sends after it queue a run of messages for each
    /// wake-up.
    #[default]
    Block,
    /// Fail with [`QueueError::Full`]; nothing is queued.
    Fail,
    /// Drop the oldest waiting [`Priority::Normal`] messages until the new
    /// one fits, counting them in [`QueuedStats::dropped`]. When that is not
    /// enough (only high-priority messages, or messages being sent right
    /// now, fill the queue), fail with [`QueueError::Full`] like
    /// [`Overflow::Fail`].
    DropOldestNormal,
}

/// How a [`QueuedWriter`] behaves. Start from [`QueuedOptions::default`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueuedOptions {
    max_messages: usize,
    max_bytes: usize,
    overflow: Overflow,
    linger: Duration,
    backoff_min: Duration,
    backoff_max: Duration,
    coalesce: bool,
}

impl Default for QueuedOptions {
    /// Up to 65 536 messages or 16 MiB, [`Overflow::Block`], coalescing on,
    /// reconnect polling from 1 ms doubling to 100 ms, and a drop that
    /// lingers up to 1 s to deliver what is left.
    fn default() -> Self {
        QueuedOptions {
            max_messages: 65_536,
            max_bytes: 16 << 20,
            overflow: Overflow::Block,
            linger: Duration::from_secs(1),
            backoff_min: Duration::from_millis(1),
            backoff_max: Duration::from_millis(100),
            coalesce: true,
        }
    }
}

impl QueuedOptions {
    /// Bound on the messages and payload bytes waiting (including those
    /// being sent). A message larger than `bytes` is refused with
    /// [`QueueError::TooLarge`]. Both are at least 1.
    pub fn queue_limit(mut self, messages: usize, bytes: usize) -> Self {
        self.max_messages = messages.max(1);
        self.max_bytes = bytes.max(1);
        self
    }

    /// What a send does when the queue is full (default [`Overflow::Block`]).
    pub fn overflow(mut self, policy: Overflow) -> Self {
        self.overflow = policy;
        self
    }

    /// How long dropping the writer (without [`QueuedWriter::close`]) keeps
    /// delivering before it gives up on what is left (default 1 s).
    pub fn linger(mut self, linger: Duration) -> Self {
        self.linger = linger;
        self
    }

    /// How often the delivery thread looks for a missing slot: first after
    /// `min`, doubling up to `max` (defaults 1 ms and 100 ms).
    pub fn reconnect_backoff(mut self, min: Duration, max: Duration) -> Self {
        self.backoff_min = min.max(Duration::from_micros(1));
        self.backoff_max = max.max(self.backoff_min);
        self
    }

    /// Whether several waiting messages travel in one packet (the default)
    /// or each in its own.
    pub fn coalesce(mut self, coalesce: bool) -> Self {
        self.coalesce = coalesce;
        self
    }
}

/// One queued message, as [`QueuedWriter::close`] hands back the undelivered.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueuedMessage {
    /// The priority it was sent with.
    pub priority: Priority,
    /// Its bytes.
    pub data: Vec<u8>,
}

/// What [`QueuedWriter::close`] could not deliver.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Undelivered {
    /// Messages still queued at the deadline, in the order they would have
    /// been sent (high priority first, then normal, each oldest first).
    pub pending: Vec<QueuedMessage>,
    /// Messages a reader refused because they exceed its maximum message
    /// size (see [`QueuedStats::rejected`]), oldest first.
    pub rejected: Vec<QueuedMessage>,
}

impl Undelivered {
    /// True when everything was delivered.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty() && self.rejected.is_empty()
    }

    /// Number of undelivered messages, pending and rejected.
    pub fn len(&self) -> usize {
        self.pending.len() + self.rejected.len()
    }

    /// Payload bytes of the undelivered messages, pending and rejected.
    pub fn bytes(&self) -> usize {
        self.pending
            .iter()
            .chain(&self.rejected)
            .map(|m| m.data.len())
            .sum()
    }
}

/// Counters of a [`QueuedWriter`], from [`QueuedWriter::stats`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueuedStats {
    /// Messages held now: waiting, being sent, and sent but not yet read
    /// (those are in [`unread`](QueuedStats::unread) too).
    pub queued: usize,
    /// Payload bytes held now, like [`queued`](QueuedStats::queued).
    pub queued_bytes: usize,
    /// Messages sent to the reader connected now that no read has returned
    /// yet: they are sent again if that reader goes away without them.
    pub unread: usize,
    /// Messages the kernel accepted for a reader so far (a message sent
    /// again counts again).
    pub sent: u64,
    /// Messages a read returned so far: delivered, for good.
    pub read: u64,
    /// Messages sent again because the reader they went to exited, died or
    /// was left (retarget, close) without returning them.
    pub resent: u64,
    /// Packets those messages travelled in (fewer than `sent` when coalesced).
    pub packets: u64,
    /// Normal messages dropped by [`Overflow::DropOldestNormal`].
    pub dropped: u64,
    /// Messages larger than a reader's maximum message size; they are kept
    /// and returned by [`QueuedWriter::close`] in [`Undelivered::rejected`].
    pub rejected: u64,
    /// Connections made after the first one (the reader came back, or the
    /// writer was retargeted).
    pub reconnects: u64,
    /// Whether the delivery thread holds a connection to a reader now.
    pub connected: bool,
    /// The last reason a connection or send failed, if any.
    pub last_error: Option<String>,
}

/// Why a [`QueuedWriter`] operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueueError {
    /// The queue is full and the overflow policy does not wait; nothing was queued.
    #[error(
        "queue of mailslot {name} is full ({messages} messages, {bytes} bytes waiting; limit {max_messages} messages, {max_bytes} bytes); the message was not queued: raise the queue limit, use Overflow::Block, or start the reader"
    )]
    Full {
        /// The slot.
        name: String,
        /// Messages waiting.
        messages: usize,
        /// Bytes waiting.
        bytes: usize,
        /// The message limit.
        max_messages: usize,
        /// The byte limit.
        max_bytes: usize,
    },
    /// The message can never be delivered; nothing was queued.
    #[error(
        "message of {size} bytes for mailslot {name} exceeds {limit} of {max} bytes; nothing was queued"
    )]
    TooLarge {
        /// The slot.
        name: String,
        /// The message's size.
        size: usize,
        /// Which limit: the queue's byte limit or the slot's maximum message size.
        limit: &'static str,
        /// The limit in bytes.
        max: u64,
    },
    /// [`QueuedWriter::flush`] ran out of time; the messages stay queued.
    #[error(
        "flush of mailslot {name} timed out after {} ms with {messages} messages ({bytes} bytes) not yet delivered; they stay queued{}",
        timeout.as_millis(),
        last_error.as_deref().map(|e| format!(" (last problem: {e})")).unwrap_or_default()
    )]
    FlushTimedOut {
        /// The slot.
        name: String,
        /// The timeout that expired.
        timeout: Duration,
        /// Messages still waiting.
        messages: usize,
        /// Bytes still waiting.
        bytes: usize,
        /// Why delivery is stuck, when known (e.g. no reader).
        last_error: Option<String>,
    },
    /// The delivery thread is gone (it panicked, a bug); nothing can be sent.
    #[error(
        "the delivery thread of the queued writer for mailslot {name} has stopped; close the writer to get the undelivered messages back"
    )]
    Stopped {
        /// The slot.
        name: String,
    },
}

struct State {
    high: VecDeque<Vec<u8>>,
    normal: VecDeque<Vec<u8>>,
    /// Messages sent on the current connection that no read has returned
    /// yet, in the order they were sent (see `receipt.rs`).
    unread: VecDeque<Sent>,
    /// The receipts as last looked at (kept for its buffer).
    receipts: Snapshot,
    /// Buffers of messages read, for `send_slice` to copy into, and their
    /// capacity in all.
    spare: Vec<Vec<u8>>,
    spare_bytes: usize,
    /// ... and of larger ones (see `SPARE_LARGE_BYTES`).
    spare_large: Vec<Vec<u8>>,
    /// Messages and bytes held: waiting, being sent, and unread.
    count: usize,
    bytes: usize,
    target: SlotName,
    generation: u64,
    /// The close deadline, once closing.
    closing: Option<Instant>,
    worker_idle: bool,
    /// The idle delivery thread looks at the receipts now and then (it
    /// need not be woken for a new unread message).
    worker_watching: bool,
    /// Threads waiting for reads to free room or finish (the delivery
    /// thread then looks at the receipts often, and only then is `space`
    /// or `idle` signalled: see [`Shared::wake`]).
    hurry: usize,
    /// Messages sent directly may wait in the ring unpublished (see
    /// `Writer::write_exclusive`): the delivery thread publishes them once
    /// callers stop sending.
    deferred: bool,
    /// A send from a caller's thread found no room for `DIRECT_WAIT`:
    /// callers leave everything to the delivery thread until it has sent
    /// all that waits.
    stalled: bool,
    /// A caller's thread has taken the connection out of the state to send
    /// a large message without the lock (see `send_lent`): nobody else
    /// sends meanwhile, and the delivery thread waits for it to come back
    /// rather than connect again.
    lent: bool,
    /// The delivery thread waits for the lent connection to come back.
    lent_awaited: bool,
    /// Messages counted in `count` that sends are copying in, without the
    /// lock: in no queue yet.
    copying: usize,
    /// The batch a caller's thread sends (kept for its buffer).
    combine: Vec<QueuedMessage>,
    /// Calls of `send` so far: the delivery thread leaves sending to the
    /// callers while they keep sending (see `CALLERS_SEND`).
    sends: u64,
    worker_gone: bool,
    /// Maximum message size of the reader connected now (0 = any).
    slot_max: Option<u32>,
    /// The delivery thread's connection and the generation it was made
    /// for, while the thread is not sending on it. The thread takes it out
    /// while it holds a batch, so [`QueuedWriter::send`] may send on it
    /// directly (under this lock) only when nobody else is.
    conn: Option<(u64, Writer)>,
    rejected: Vec<QueuedMessage>,
    stats: QueuedStats,
}

/// A message sent and not yet returned by a read: number `n` of its
/// connection's receipts.
struct Sent {
    n: u64,
    priority: Priority,
    held: Held,
}

/// Where an unread message's bytes are kept.
enum Held {
    /// In a buffer of the writer's.
    Owned(Vec<u8>),
    /// In the connection's ring, as written at this offset (the reader
    /// gives its record back only after a read returned it): a message
    /// sent directly costs no copy of its own then.
    Ring { at: usize, len: usize },
    /// In the connection's reusable buffer sent with this token, which
    /// only this writer can write (see `MemfdPool::writer_only`): a large
    /// message sent directly costs no copy of its own either. The reader
    /// gives the buffer back only after a read counted the message, and
    /// the writer fills it again only after that.
    Buffer { token: u64, len: usize },
}

impl Held {
    fn len(&self) -> usize {
        match self {
            Held::Owned(v) => v.len(),
            Held::Ring { len, .. } | Held::Buffer { len, .. } => *len,
        }
    }
}

impl State {
    /// A copy of `data` in a buffer of a message already read, when one is
    /// at hand (see [`QueuedWriter::send_slice`]).
    fn buffer_with(&mut self, data: &[u8]) -> Vec<u8> {
        if data.len() > SPARE_LEN {
            let mut v = self.spare_for(data.len());
            v.extend_from_slice(data);
            return v;
        }
        match self.spare.pop() {
            Some(mut v) => {
                self.spare_bytes -= v.capacity();
                v.clear();
                v.extend_from_slice(data);
                v
            }
            None => data.to_vec(),
        }
    }

    /// An empty buffer for a message of `len` bytes (over `SPARE_LEN`): that
    /// of a large message already read, when one is large enough.
    fn spare_for(&mut self, len: usize) -> Vec<u8> {
        let fits = self.spare_large.iter().position(|v| v.capacity() >= len);
        let mut v = fits.map_or_else(Vec::new, |i| self.spare_large.swap_remove(i));
        v.clear();
        v
    }

    /// Keeps the buffer of a message read for [`buffer_with`](State::buffer_with).
    fn recycle(&mut self, v: Vec<u8>) {
        if v.capacity() <= SPARE_LEN {
            if self.spare.len() < SPARE_COUNT && self.spare_bytes + v.capacity() <= SPARE_BYTES {
                self.spare_bytes += v.capacity();
                self.spare.push(v);
            }
            return;
        }
        let kept: usize = self.spare_large.iter().map(Vec::capacity).sum();
        if self.spare_large.len() < SPARE_LARGE_COUNT && kept + v.capacity() <= SPARE_LARGE_BYTES {
            self.spare_large.push(v);
        }
    }

    /// Messages not yet sent (waiting or being sent by the delivery
    /// thread); not those a caller's thread is still copying in or sending
    /// on a lent connection.
    fn waiting(&self) -> usize {
        self.count - self.unread.len() - self.copying - usize::from(self.lent)
    }

    /// Drops the unread messages a read has returned, by the connection's
    /// receipts, and puts those no read will return (their readers have
    /// gone) back at the front of their queues, in order. True when any
    /// left the unread list.
    fn settle(&mut self, writer: &Writer) -> bool {
        if self.unread.is_empty() {
            return false;
        }
        let mut receipts = std::mem::take(&mut self.receipts);
        writer.receipts(&mut receipts);
        let mut lost = Vec::new();
        let mut changed = false;
        while let Some(front) = self.unread.front() {
            match receipts.fate(front.n) {
                Fate::Unread => break,
                Fate::Read => {
                    let m = self.unread.pop_front().expect("front exists");
                    self.count -= 1;
                    self.bytes -= m.held.len();
                    self.stats.read += 1;
                    if let Held::Owned(v) = m.held {
                        self.recycle(v);
                    }
                }
                Fate::Lost => lost.extend(self.unread.pop_front()),
            }
            changed = true;
        }
        if let Some(front) = self.unread.front() {
            writer.forget_before(front.n);
        } else {
            writer.forget_before(writer.sent_messages());
        }
        self.receipts = receipts;
        for m in lost.into_iter().rev() {
            let data = match m.held {
                Held::Owned(v) => v,
                // Still in the ring: this writer's memory, and no read
                // returned it, so its record was not given back.
                Held::Ring { at, len } => writer.read_back(at, len).unwrap_or_default(),
                Held::Buffer { token, len } => match writer.read_back_buffer(token, len) {
                    Some(v) => v,
                    // Given back: the reader says a read counted it (ours
                    // give a buffer back only then), whatever the receipts
                    // say; its bytes may be another message's by now.
                    None => {
                        self.count -= 1;
                        self.bytes -= len;
                        self.stats.read += 1;
                        continue;
                    }
                },
            };
            self.stats.resent += 1;
            match m.priority {
                Priority::High => self.high.push_front(data),
                Priority::Normal => self.normal.push_front(data),
            }
        }
        changed
    }

    /// Before the connection is dropped: takes back every message sent on
    /// it that no read returned (no reader returns them from now on) and
    /// queues them again.
    fn take_back(&mut self, writer: &Writer) {
        writer.revoke_unread();
        self.settle(writer);
        debug_assert!(self.unread.is_empty(), "every message is read or lost");
    }
}

struct Shared {
    opts: QueuedOptions,
    state: Mutex<State>,
    /// The delivery thread waits here for messages, retargets and close.
    work: Condvar,
    /// Blocked senders wait here for room.
    space: Condvar,
    /// Flushes wait here for an empty queue.
    idle: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits on `cv` (up to `timeout`) for something only reads of unread
    /// messages can bring (room, or everything read): the delivery thread
    /// looks at the receipts often meanwhile.
    fn waiting_on<'a>(
        &self,
        mut st: MutexGuard<'a, State>,
        cv: &Condvar,
        timeout: Option<Duration>,
    ) -> MutexGuard<'a, State> {
        st.hurry += 1;
        if st.worker_idle {
            self.work.notify_one();
        }
        let mut st = match timeout {
            None => cv.wait(st).unwrap_or_else(|p| p.into_inner()),
            Some(t) => cv.wait_timeout(st, t).unwrap_or_else(|p| p.into_inner()).0,
        };
        st.hurry -= 1;
        st
    }

    /// Wakes the callers waiting on `cv` (in [`waiting_on`](Shared::waiting_on)),
    /// if any: a condition variable's wake is a system call whether or not
    /// anyone waits, and the receipts are looked at every few sends.
    fn wake(&self, st: &State, cv: &Condvar) {
        if st.hurry > 0 {
            cv.notify_all();
        }
    }

    /// Wakes the callers blocked for room in a full queue (see
    /// [`Overflow::Block`]) once a sixteenth of its bounds is free, or it
    /// is empty: they then queue a run of messages for each wake-up. Woken
    /// whenever a read freed anything, four writers of 64 B messages, each
    /// ahead of its reader, blocked and woke 1 700 times a second each.
    fn wake_room(&self, st: &State) {
        let o = &self.opts;
        let roomy = st.count + o.max_messages / 16 <= o.max_messages
            && st.bytes + o.max_bytes / 16 <= o.max_bytes;
        if roomy || st.count == 0 {
            self.wake(st, &self.space);
        }
    }

    /// After messages left the queue (read, rejected or given up): wakes
    /// the callers waiting for room (see [`wake_room`](Shared::wake_room))
    /// and, when it is empty, those waiting for that.
    fn wake_freed(&self, st: &State) {
        self.wake_room(st);
        if st.count == 0 {
            self.wake(st, &self.idle);
        }
    }

    /// Waits `d`, or less when the writer is retargeted or closing.
    fn pause(&self, d: Duration, generation: u64) {
        let until = Instant::now() + d;
        let mut st = self.lock();
        loop {
            let limit = st.closing.map_or(until, |c| c.min(until));
            let now = Instant::now();
            if st.generation != generation || now >= limit {
                return;
            }
            st = self
                .work
                .wait_timeout(st, limit - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

/// A mailslot writer with a bounded queue and a delivery thread
/// (Windows' classic `CQueuedMailslotWriter`). See the [module
/// docs](crate::queued) for the delivery guarantee.
///
/// `QueuedWriter` is `Send` and `Sync`: share it between threads by
/// reference or in an `Arc`.
pub struct QueuedWriter {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for QueuedWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueuedWriter")
            .field("target", &self.shared.lock().target.path())
            .finish_non_exhaustive()
    }
}

impl QueuedWriter {
    /// Starts a queued writer for `name` in the default namespace directory.
    ///
    /// Returns at once, whether or not the slot exists yet; fails only when
    /// the namespace directory is unusable or the thread cannot start.
    pub fn open(name: &SlotName, options: QueuedOptions) -> Result<QueuedWriter> {
        QueuedWriter::open_in(&Namespace::resolve()?, name, options)
    }

    /// Starts a queued writer for `name` in the namespace `ns`.
    pub fn open_in(
        ns: &Namespace,
        name: &SlotName,
        options: QueuedOptions,
    ) -> Result<QueuedWriter> {
        let display = name.path();
        let ns = ns
            .try_clone()
            .map_err(io_err("duplicating the directory handle", &display))?;
        let shared = Arc::new(Shared {
            opts: options,
            state: Mutex::new(State {
                high: VecDeque::new(),
                normal: VecDeque::new(),
                unread: VecDeque::new(),
                receipts: Snapshot::default(),
                spare: Vec::new(),
                spare_bytes: 0,
                spare_large: Vec::new(),
                count: 0,
                bytes: 0,
                target: name.clone(),
                generation: 0,
                closing: None,
                worker_idle: false,
                worker_watching: false,
                hurry: 0,
                deferred: false,
                stalled: false,
                lent: false,
                lent_awaited: false,
                copying: 0,
                sends: 0,
                combine: Vec::new(),
                worker_gone: false,
                slot_max: None,
                conn: None,
                rejected: Vec::new(),
                stats: QueuedStats::default(),
            }),
            work: Condvar::new(),
            space: Condvar::new(),
            idle: Condvar::new(),
        });
        let worker = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("mailslot-queued".into())
            .spawn(move || deliver(&worker, &ns))
            .map_err(io_err("starting the delivery thread", &display))?;
        Ok(QueuedWriter {
            shared,
            thread: Some(thread),
        })
    }

    /// The slot messages go to now.
    pub fn target(&self) -> SlotName {
        self.shared.lock().target.clone()
    }

    /// Queues `data` and returns; the delivery thread sends it.
    ///
    /// When nothing is waiting and the delivery thread is idle and
    /// connected, the message is sent right here without blocking instead
    /// (see [direct sends](crate::queued#direct-sends)); if the reader
    /// cannot take it at once, it is queued.
    ///
    /// When the queue is full, waits, fails or drops as the [`Overflow`]
    /// policy says. Zero-length messages are real messages. Fails with
    /// [`QueueError::TooLarge`] for a message over the queue's byte limit,
    /// or over the maximum message size of the reader connected now.
    pub fn send(&self, data: impl Into<Vec<u8>>, priority: Priority) -> Result<(), QueueError> {
        self.enqueue(Cow::Owned(data.into()), priority)
    }

    /// Like [`send`](QueuedWriter::send), copying `data` into a buffer of
    /// the writer's own: messages up to 4 KiB reuse the buffers of
    /// messages already read (up to 1 MiB of them are kept), so a steady
    /// stream allocates nothing.
    pub fn send_slice(&self, data: &[u8], priority: Priority) -> Result<(), QueueError> {
        self.enqueue(Cow::Borrowed(data), priority)
    }

    fn enqueue(&self, data: Cow<'_, [u8]>, priority: Priority) -> Result<(), QueueError> {
        let opts = &self.shared.opts;
        let mut st = self.shared.lock();
        let too_large = |st: &State, limit, max: u64| QueueError::TooLarge {
            name: st.target.path(),
            size: data.len(),
            limit,
            max,
        };
        if data.len() > opts.max_bytes {
            return Err(too_large(
                &st,
                "the queue's byte limit",
                opts.max_bytes as u64,
            ));
        }
        if data.len() > u32::MAX as usize {
            return Err(too_large(&st, "the largest message", u64::from(u32::MAX)));
        }
        if let Some(max) = st.slot_max.filter(|&m| m != 0 && data.len() > m as usize) {
            return Err(too_large(
                &st,
                "the slot's maximum message size",
                u64::from(max),
            ));
        }
        loop {
            if st.worker_gone {
                return Err(QueueError::Stopped {
                    name: st.target.path(),
                });
            }
            if st.count < opts.max_messages && st.bytes + data.len() <= opts.max_bytes {
                break;
            }
            // Messages a read has returned count until the receipts are
            // looked at: look before waiting, dropping or failing.
            let held = st.count;
            if !st.unread.is_empty() {
                self.settle_now(&mut st);
                if st.count < held {
                    continue;
                }
            }
            match opts.overflow {
                Overflow::Block => {
                    st = self.shared.waiting_on(st, &self.shared.space, None);
                }
                Overflow::DropOldestNormal if !st.normal.is_empty() => {
                    if let Some(old) = st.normal.pop_front() {
                        st.count -= 1;
                        st.bytes -= old.len();
                        st.stats.dropped += 1;
                    }
                }
                Overflow::Fail | Overflow::DropOldestNormal => {
                    return Err(QueueError::Full {
                        name: st.target.path(),
                        messages: st.count,
                        bytes: st.bytes,
                        max_messages: opts.max_messages,
                        max_bytes: opts.max_bytes,
                    });
                }
            }
        }
        st.count += 1;
        st.bytes += data.len();
        st.sends += 1;
        // A small message goes alone only to a reader that has read all
        // this writer sent; else it gathers with those that follow.
        let gather = data.len() < SMALL_LEN;
        let direct =
            st.waiting() == 1 && st.closing.is_none() && (!gather || self.caught_up(&mut st));
        let data = if !direct {
            data
        } else if data.len() > crate::frame::INLINE_MAX {
            let (guard, rest) = self.send_lent(st, data, priority);
            st = guard;
            match rest {
                None => return Ok(()),
                Some(data) => data,
            }
        } else {
            match self.try_direct(&mut st, data, priority) {
                None => return Ok(()),
                Some(data) => data,
            }
        };
        let data = match data {
            Cow::Owned(v) => v,
            // A large copy is made without the lock, which every other
            // sender needs meanwhile.
            Cow::Borrowed(s) if s.len() > crate::frame::INLINE_MAX => {
                let mut v = st.spare_for(s.len());
                st.copying += 1;
                drop(st);
                v.extend_from_slice(s);
                st = self.shared.lock();
                st.copying -= 1;
                v
            }
            Cow::Borrowed(s) => st.buffer_with(s),
        };
        match priority {
            Priority::High => st.high.push_back(data),
            Priority::Normal => st.normal.push_back(data),
        }
        if !gather || self.gathered(&mut st) {
            self.try_combine(&mut st);
        }
        if st.waiting() > 0 && st.worker_idle {
            st.worker_idle = false;
            self.shared.work.notify_one();
        }
        Ok(())
    }

    /// Sends `data` (counted in the queue already) on the delivery
    /// thread's idle connection without blocking, when there is one for
    /// the current target; it is unread then. Hands the message back when
    /// nothing was sent (queue it then). Call only with nothing else
    /// waiting to be sent: the order depends on it.
    fn try_direct<'a>(
        &self,
        st: &mut State,
        data: Cow<'a, [u8]>,
        priority: Priority,
    ) -> Option<Cow<'a, [u8]>> {
        let generation = st.generation;
        let Some((g, w)) = st.conn.as_mut() else {
            return Some(data);
        };
        // A shared slot's non-blocking write could reach only some readers.
        if *g != generation || w.is_shared() {
            return Some(data);
        }
        w.set_write_timeout(Some(direct_wait(data.len())));
        // A message of a stream may wait in the ring, unpublished, for
        // those that follow (small ones come here only when the reader has
        // caught up: they go at once). Any error (no room, the reader gone,
        // too large) sent nothing; the delivery thread finds out and deals
        // with it when it sends the message from the queue.
        let written = w.write_exclusive(&data, data.len() >= SMALL_LEN, true);
        let Ok(placed) = written else {
            st.stalled = true;
            return Some(data);
        };
        let n = w.sent_messages() - 1;
        self.sent_directly(st, placed, n, data, priority);
        None
    }

    /// [`try_direct`](QueuedWriter::try_direct) for a message that travels
    /// in a memory file (over 64 KiB): the connection is taken out of the
    /// state while the caller fills one of its reusable buffers, or waits
    /// for one to come back as long as a plain write would, so other
    /// threads' sends (which queue meanwhile) and `stats` do not wait for
    /// that (a panic meanwhile: see [`Lent`]). Returns the lock again.
    fn send_lent<'s, 'a>(
        &'s self,
        mut st: MutexGuard<'s, State>,
        data: Cow<'a, [u8]>,
        priority: Priority,
    ) -> (MutexGuard<'s, State>, Option<Cow<'a, [u8]>>) {
        let generation = st.generation;
        // Records of earlier sends left unpublished go visible now, not
        // after this send's wait for a buffer.
        publish_deferred(&mut st);
        let Some((g, w)) = st.conn.take() else {
            return (st, Some(data));
        };
        // A shared slot's non-blocking write could reach only some readers.
        if g != generation || w.is_shared() {
            st.conn = Some((g, w));
            return (st, Some(data));
        }
        st.lent = true;
        drop(st);
        let mut lent = Lent {
            shared: &self.shared,
            conn: Some((g, w)),
            len: data.len(),
        };
        let (_, w) = lent.conn.as_mut().expect("lent until the send is over");
        w.set_write_timeout(Some(direct_wait(data.len())));
        let written = w.write_exclusive(&data, false, true);
        #[cfg(test)]
        tests::maybe_panic_after_a_lent_write();
        let n = w.sent_messages().wrapping_sub(1);
        // In a memory file of its own (every reusable buffer out), it is
        // kept in a copy of the writer's, made before taking the lock.
        let data = match &written {
            Ok(p) if p.buffer().is_none() => Cow::Owned(data.into_owned()),
            _ => data,
        };
        let mut st = self.shared.lock();
        st.conn = lent.conn.take();
        st.lent = false;
        if std::mem::take(&mut st.lent_awaited) {
            self.shared.work.notify_all();
        }
        match written {
            Ok(placed) => {
                self.sent_directly(&mut st, placed, n, data, priority);
                (st, None)
            }
            Err(_) => {
                st.stalled = true;
                (st, Some(data))
            }
        }
    }

    /// Bookkeeping for message `n` of the connection, `data`, which a
    /// caller's thread sent and `placed`: it waits for its read, kept
    /// where it went when that is memory only this writer can write.
    fn sent_directly(
        &self,
        st: &mut State,
        placed: Placed,
        n: u64,
        data: Cow<'_, [u8]>,
        priority: Priority,
    ) {
        st.deferred = placed.deferred();
        let len = data.len();
        let held = match (placed.ring_offset(), placed.buffer()) {
            (Some(at), _) => {
                if let Cow::Owned(v) = data {
                    st.recycle(v);
                }
                Held::Ring { at, len }
            }
            (None, Some(token)) => {
                if let Cow::Owned(v) = data {
                    st.recycle(v);
                }
                Held::Buffer { token, len }
            }
            (None, None) => Held::Owned(match data {
                Cow::Owned(v) => v,
                Cow::Borrowed(s) => st.buffer_with(s),
            }),
        };
        st.stats.sent += 1;
        st.stats.packets += 1;
        st.stalled = false;
        st.unread.push_back(Sent { n, priority, held });
        // Look at the receipts now and then (the delivery thread does when
        // idle; it is woken once to start looking).
        if st.unread.len() % SETTLE_EVERY == 0 || len >= SETTLE_LEN {
            self.settle_now(st);
        }
        // The thread looks at the receipts when idle (it is woken once to
        // start looking), and publishes what waits in the ring once
        // callers stop (a reader that has caught up reads it before).
        if st.worker_idle && !st.worker_watching {
            st.worker_idle = false;
            self.shared.work.notify_one();
        }
    }

    /// Whether every message sent was read, by the receipts.
    fn caught_up(&self, st: &mut State) -> bool {
        if !st.unread.is_empty() {
            self.settle_now(st);
        }
        st.unread.is_empty()
    }

    /// Looks at the receipts from the caller's thread (see
    /// [`State::settle`]), waking those waiting for room or for everything
    /// to be read when that changed something.
    fn settle_now(&self, st: &mut State) {
        if let Some((g, w)) = st.conn.take() {
            if st.settle(&w) {
                self.shared.wake_freed(st);
            }
            st.conn = Some((g, w));
        }
    }

    /// Whether small messages waiting should go now: a packet's worth has
    /// gathered, or (looked at every `GATHER_LOOK` of them) the reader has
    /// read everything before them.
    fn gathered(&self, st: &mut State) -> bool {
        let waiting = st.waiting();
        waiting >= Writer::BATCH_MESSAGES
            || waiting * SMALL_LEN >= Writer::BATCH_BYTES
            || (waiting % GATHER_LOOK == 0 && self.caught_up(st))
    }

    /// Sends what waits, coalesced, from the caller's thread, when the
    /// delivery thread's connection is free (the thread is not sending)
    /// and sends have not stalled: a stream that outpaces the reader a
    /// little is then sent in batches by its own thread, with no hand-off
    /// to a third busy one. What does not go within `DIRECT_WAIT` stays
    /// queued for the thread, in order.
    fn try_combine(&self, st: &mut State) {
        if st.stalled || st.closing.is_some() || st.waiting() == 0 {
            return;
        }
        let generation = st.generation;
        let Some((mut g, mut w)) = st.conn.take() else {
            return;
        };
        // A shared slot's write cut short could reach only some readers.
        if g != generation || w.is_shared() {
            st.conn = Some((g, w));
            return;
        }
        w.set_write_timeout(Some(DIRECT_WAIT));
        let mut batch = std::mem::take(&mut st.combine);
        // One packet's worth at a time, until nothing waits.
        loop {
            take_batch(&self.shared, st, &w, &mut batch);
            if batch.is_empty() {
                st.conn = Some((g, w));
                break;
            }
            let (first, sent, err) = send_batch_now(&mut w, &batch);
            st.conn = Some((g, w));
            account(&self.shared, st, &mut batch, first, sent, err.as_ref());
            if err.is_some() || st.waiting() == 0 {
                break;
            }
            match st.conn.take() {
                Some(conn) => (g, w) = conn,
                None => break,
            }
        }
        st.combine = batch;
    }

    /// Waits until every queued message has been handed to a reader (or
    /// rejected, see [`QueuedStats::rejected`]), up to `timeout`. They may
    /// not be read yet: [`wait_read`](QueuedWriter::wait_read) waits for
    /// that.
    ///
    /// On timeout the messages stay queued and the error says how many.
    pub fn flush(&self, timeout: Duration) -> Result<(), QueueError> {
        self.wait_until(timeout, State::waiting)
    }

    /// Waits until a read has returned every queued message (or it was
    /// rejected), up to `timeout`: nothing this writer accepted is left
    /// to deliver.
    ///
    /// On timeout the messages stay queued (those a reader has stay
    /// there, to be read or sent again) and the error says how many.
    pub fn wait_read(&self, timeout: Duration) -> Result<(), QueueError> {
        self.wait_until(timeout, |st| st.count)
    }

    fn wait_until(&self, timeout: Duration, left: fn(&State) -> usize) -> Result<(), QueueError> {
        let deadline = Instant::now() + timeout;
        let mut st = self.shared.lock();
        publish_deferred(&mut st);
        while left(&st) > 0 {
            if st.worker_gone {
                return Err(QueueError::Stopped {
                    name: st.target.path(),
                });
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(QueueError::FlushTimedOut {
                    name: st.target.path(),
                    timeout,
                    messages: st.count,
                    bytes: st.bytes,
                    last_error: st.stats.last_error.clone(),
                });
            }
            st = self
                .shared
                .waiting_on(st, &self.shared.idle, Some(deadline - now));
        }
        Ok(())
    }

    /// Follows the reader to a new name: every message not yet delivered,
    /// and every later one, goes to `name`.
    ///
    /// The current connection is dropped before the next send; a packet
    /// being sent at this moment still completes to the old slot.
    pub fn retarget(&self, name: &SlotName) {
        let mut st = self.shared.lock();
        st.target = name.clone();
        st.generation += 1;
        st.slot_max = None;
        self.shared.work.notify_all();
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> QueuedStats {
        let mut st = self.shared.lock();
        // What reads returned by now is no longer held, whether or not the
        // delivery thread has looked at the receipts since.
        self.settle_now(&mut st);
        QueuedStats {
            queued: st.count,
            queued_bytes: st.bytes,
            unread: st.unread.len(),
            ..st.stats.clone()
        }
    }

    /// Keeps delivering until a read has returned every message or
    /// `timeout` has passed, stops the delivery thread, and returns what
    /// was not delivered: what was still waiting, and what a reader had
    /// but had not returned (taken back: no read returns it afterwards).
    pub fn close(mut self, timeout: Duration) -> Undelivered {
        self.shutdown(timeout)
    }

    fn shutdown(&mut self, timeout: Duration) -> Undelivered {
        {
            let mut st = self.shared.lock();
            st.closing = Some(Instant::now() + timeout);
            self.shared.work.notify_all();
        }
        if let Some(t) = self.thread.take() {
            // A panic of the delivery thread is a bug; what it left queued
            // is still returned below.
            let _ = t.join();
        }
        let mut st = self.shared.lock();
        let st = &mut *st;
        let mut pending = Vec::with_capacity(st.count);
        for (priority, q) in [
            (Priority::High, &mut st.high),
            (Priority::Normal, &mut st.normal),
        ] {
            pending.extend(q.drain(..).map(|data| QueuedMessage { priority, data }));
        }
        st.count = 0;
        st.bytes = 0;
        Undelivered {
            pending,
            rejected: std::mem::take(&mut st.rejected),
        }
    }
}

impl Drop for QueuedWriter {
    /// Like [`close`](QueuedWriter::close) with the linger time of the
    /// options; what is left after it is discarded. Call `close` to learn it.
    fn drop(&mut self) {
        if self.thread.is_some() {
            let linger = self.shared.opts.linger;
            drop(self.shutdown(linger));
        }
    }
}

/// Marks the delivery thread gone however it ends, so nobody waits for it,
/// and takes back what its connection's reader has not read.
struct Gone<'a>(&'a Shared);

impl Drop for Gone<'_> {
    fn drop(&mut self) {
        let mut st = self.0.lock();
        if let Some((_, w)) = st.conn.take() {
            st.take_back(&w);
        }
        st.worker_gone = true;
        st.stats.connected = false;
        self.0.space.notify_all();
        self.0.idle.notify_all();
    }
}

/// What the delivery thread does next.
enum Next {
    /// Send: there are messages waiting.
    Send,
    /// Stop: closing, and nothing left (or out of time).
    Stop,
}

/// The delivery thread.
fn deliver(shared: &Shared, ns: &Namespace) {
    let _gone = Gone(shared);
    let opts = &shared.opts;
    let mut backoff = opts.backoff_min;
    let mut connected_once = false;
    let mut batch: Vec<QueuedMessage> = Vec::new();
    // `State::sends` when this thread last looked, and how long it leaves
    // what waits to the callers now.
    let mut sends_seen = 0;
    let mut defer = CALLERS_SEND;
    loop {
        // Wait for messages, or for the end, watching the unread ones. The
        // connection stays in the state (where a direct send may use it)
        // except while sending.
        if let Next::Stop = wait_for_work(shared) {
            return;
        }
        let (target, generation, deadline, connected) = {
            let mut st = shared.lock();
            // Leave a slot no longer targeted: its unread messages go to
            // the new one.
            if st.conn.as_ref().is_some_and(|(g, _)| *g != st.generation) {
                drop_connection(&mut st, None);
            }
            (
                st.target.clone(),
                st.generation,
                st.closing,
                st.conn.is_some() || st.lent,
            )
        };

        // Connect (again) when needed, and ask the reader for receipts.
        if !connected {
            match Writer::open_in(ns, &target).and_then(|mut w| w.ask_receipts().map(|()| w)) {
                Ok(w) => {
                    backoff = opts.backoff_min;
                    let mut st = shared.lock();
                    if st.generation == generation {
                        st.slot_max = Some(w.max_message_size());
                    }
                    st.stats.connected = true;
                    st.stats.reconnects += u64::from(connected_once);
                    connected_once = true;
                    st.conn = Some((generation, w));
                }
                Err(e) => {
                    {
                        let mut st = shared.lock();
                        st.stats.connected = false;
                        st.stats.last_error = Some(e.to_string());
                    }
                    shared.pause(backoff, generation);
                    backoff = (backoff * 2).min(opts.backoff_max);
                    continue;
                }
            }
        }

        // Take the connection and one packet's worth: high priority first,
        // then normal.
        let (conn_generation, mut writer) = {
            let mut st = shared.lock();
            if st.generation != generation {
                continue;
            }
            // Callers that keep sending take what waits along with their
            // next message; this thread sends it when they stop, stall, or
            // someone waits for it.
            let callers_send = !st.stalled && st.closing.is_none() && st.hurry == 0;
            if callers_send && st.sends != sends_seen && st.conn.is_some() {
                sends_seen = st.sends;
                drop(shared.work.wait_timeout(st, defer));
                defer = (defer * 2).min(DIRECT_WAIT);
                continue;
            }
            let Some((conn_generation, writer)) = st.conn.take() else {
                // A caller sends a large message on it: it comes back
                // when that is done.
                if st.lent {
                    st.lent_awaited = true;
                    drop(shared.work.wait_timeout(st, SEND_SLICE));
                }
                continue;
            };
            take_batch(shared, &mut st, &writer, &mut batch);
            if batch.is_empty() {
                st.conn = Some((conn_generation, writer));
                let published = publish_deferred(&mut st);
                // Callers still sending may leave more unpublished: look
                // again after a while rather than be woken for each burst.
                if published && callers_send && st.sends != sends_seen {
                    sends_seen = st.sends;
                    drop(shared.work.wait_timeout(st, defer));
                    defer = (defer * 2).min(DIRECT_WAIT);
                } else {
                    defer = CALLERS_SEND;
                }
                continue;
            }
            defer = CALLERS_SEND;
            (conn_generation, writer)
        };

        // Send it; only what the kernel accepted leaves the queue, to wait
        // for its read.
        let slice = deadline.map_or(SEND_SLICE, |d| {
            d.saturating_duration_since(Instant::now()).min(SEND_SLICE)
        });
        // A shared slot's write that times out may have reached some of its
        // readers already; sending it again would duplicate it there. So
        // those wait for room as long as it takes.
        writer.set_write_timeout((!writer.is_shared()).then_some(slice));
        let started = Instant::now();
        let large = batch.iter().map(|m| m.data.len()).sum::<usize>() >= batch.len() * SMALL_LEN;
        let (first, sent, err) = send_batch(&writer, &batch);
        let prompt = large && err.is_none() && started.elapsed() < DIRECT_WAIT;
        {
            let mut st = shared.lock();
            st.conn = Some((conn_generation, writer));
            account(shared, &mut st, &mut batch, first, sent, err.as_ref());
            // The reader reads again: callers send themselves once more,
            // even while a steady stream keeps the queue from draining
            // (small messages stay with this thread: see `SMALL_LEN`).
            if prompt {
                st.stalled = false;
            }
        }
        match err {
            // No room yet: look at the deadline and target, then try again.
            None | Some(Error::TimedOut { .. }) => {}
            // Reconnect at once; the reader may already be back.
            Some(Error::ReaderClosed { .. }) => {}
            Some(_) => {
                shared.pause(backoff, generation);
                backoff = (backoff * 2).min(opts.backoff_max);
            }
        }
    }
}

/// Writes `batch` (one message alone, several coalesced): returns the
/// number the first one got, how many were sent, and why not all.
fn send_batch(writer: &Writer, batch: &[QueuedMessage]) -> (u64, usize, Option<Error>) {
    let first = writer.sent_messages();
    let result = if let [one] = batch {
        writer.write(&one.data).map_err(|e| (0, e))
    } else {
        let slices: Vec<&[u8]> = batch.iter().map(|m| m.data.as_slice()).collect();
        writer.write_batch(&slices)
    };
    match result {
        Ok(()) => (first, batch.len(), None),
        Err((n, e)) => (first, n, Some(e)),
    }
}

/// [`send_batch`] from a caller's thread, which holds the queue's lock: a
/// message over 64 KiB goes only in a reusable buffer free at once (see
/// [`Writer::write_exclusive`]); with every one out, nothing is sent and
/// the write times out, leaving the message to the delivery thread.
fn send_batch_now(writer: &mut Writer, batch: &[QueuedMessage]) -> (u64, usize, Option<Error>) {
    match batch {
        [one] if one.data.len() > crate::frame::INLINE_MAX => {
            let first = writer.sent_messages();
            match writer.write_exclusive(&one.data, false, false) {
                Ok(_) => (first, 1, None),
                Err(e) => (first, 0, Some(e)),
            }
        }
        _ => send_batch(writer, batch),
    }
}

/// After [`send_batch`], with the connection back in the state: the sent
/// messages wait for their reads, the rest go back to the front of their
/// queues, in order; a connection that failed (other than for room) is
/// dropped. Empties `batch`.
fn account(
    shared: &Shared,
    st: &mut State,
    batch: &mut Vec<QueuedMessage>,
    first: u64,
    sent: usize,
    err: Option<&Error>,
) {
    st.stats.sent += sent as u64;
    if sent > 0 {
        st.stats.packets += 1;
    }
    for m in batch.drain(sent..).rev() {
        match m.priority {
            Priority::High => st.high.push_front(m.data),
            Priority::Normal => st.normal.push_front(m.data),
        }
    }
    for (n, m) in (first..).zip(batch.drain(..)) {
        st.unread.push_back(Sent {
            n,
            priority: m.priority,
            held: Held::Owned(m.data),
        });
    }
    if let Some((g, w)) = st.conn.take() {
        st.settle(&w);
        st.conn = Some((g, w));
    }
    match err {
        None => {}
        // No room for a while: leave the rest to the delivery thread.
        Some(Error::TimedOut { .. }) => st.stalled = true,
        Some(e) => drop_connection(st, Some(e.to_string())),
    }
    if st.waiting() == 0 {
        st.stalled = false;
    }
    shared.wake_room(st);
    if st.count == 0 || st.waiting() == 0 {
        shared.wake(st, &shared.idle);
    }
}

/// Waits until there is something to send, watching the messages a reader
/// has not read yet (their receipts, and whether the reader is still
/// there) while there are any. Stops when closing and everything has been
/// read, or at the close deadline.
fn wait_for_work(shared: &Shared) -> Next {
    let mut watch = WATCH_MIN;
    // The sends made when this thread last began to wait, while messages
    // sent directly waited unpublished.
    let mut sends_before_wait = None;
    let mut st = shared.lock();
    loop {
        if st.closing.is_some_and(|d| Instant::now() >= d) {
            return Next::Stop;
        }
        if st.waiting() > 0 {
            return Next::Send;
        }
        // Records a caller left unpublished: a reader that has caught up
        // reads them anyway (see `ring.rs`, `staged`); they are published
        // here once callers have not sent for a whole wait.
        if st.deferred && sends_before_wait == Some(st.sends) {
            publish_deferred(&mut st);
        }
        if st.closing.is_some() && st.count == 0 {
            return Next::Stop;
        }
        // Watch the unread messages. Those of a slot no longer targeted go
        // to the new one.
        let mut changed = false;
        if st.conn.as_ref().is_some_and(|(g, _)| *g != st.generation) {
            drop_connection(&mut st, None);
            changed = true;
        }
        if let Some((g, w)) = st.conn.take() {
            changed |= st.settle(&w);
            st.conn = Some((g, w));
            // A reader that reads is there; look only at one that does not.
            let gone = !changed
                && !st.unread.is_empty()
                && st.conn.as_ref().is_some_and(|(_, w)| !w.readers_alive());
            if gone {
                let why = format!("the reader of {} went away", st.target.path());
                drop_connection(&mut st, Some(why));
                changed = true;
            }
        }
        if changed {
            shared.wake_freed(&st);
            continue;
        }
        st.worker_idle = true;
        st.worker_watching = !st.unread.is_empty() || st.deferred;
        sends_before_wait = st.deferred.then_some(st.sends);
        st = if st.worker_watching {
            let every = if st.hurry > 0 || st.closing.is_some() {
                WATCH_HURRY
            } else {
                let every = watch;
                watch = (watch * 2).min(WATCH_MAX);
                if st.deferred {
                    every.min(DEFERRED_LOOK)
                } else {
                    every
                }
            };
            let limit = st.closing.map_or(every, |c| {
                c.saturating_duration_since(Instant::now()).min(every)
            });
            shared
                .work
                .wait_timeout(st, limit)
                .unwrap_or_else(|p| p.into_inner())
                .0
        } else {
            shared.work.wait(st).unwrap_or_else(|p| p.into_inner())
        };
        st.worker_idle = false;
        st.worker_watching = false;
    }
}

/// Drops the connection (its reader gone, or no longer targeted): the
/// messages it has not returned are taken back and queued again.
fn drop_connection(st: &mut State, why: Option<String>) {
    if let Some((_, w)) = st.conn.take() {
        st.take_back(&w);
    }
    st.deferred = false;
    st.stats.connected = false;
    if let Some(why) = why {
        st.stats.last_error = Some(why);
    }
    // The next reader may allow larger messages.
    st.slot_max = None;
}

/// The connection lent out of the state for one send (see
/// `QueuedWriter::send_lent`), and the length of the message being sent.
/// Dropped with the connection still in it, which only a panic in that
/// send does, it puts the connection back and drops it as broken (it may
/// be half-way through a write): what was sent on it and not read goes
/// back in the queue for the next connection, the message of the
/// panicking send is no longer counted (its caller got no `Ok`; a reader
/// returns it only if a read already had), and the delivery thread, which
/// waits for the connection, goes on.
struct Lent<'s> {
    shared: &'s Shared,
    conn: Option<(u64, Writer)>,
    len: usize,
}

impl Drop for Lent<'_> {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else {
            return;
        };
        let mut st = self.shared.lock();
        st.conn = Some(conn);
        let why = format!(
            "a send to {} panicked; its connection was dropped and what it had not read goes to the next",
            st.target.path()
        );
        drop_connection(&mut st, Some(why));
        st.lent = false;
        st.lent_awaited = false;
        st.count -= 1;
        st.bytes -= self.len;
        self.shared.work.notify_all();
        self.shared.wake_freed(&st);
    }
}

/// Publishes the messages sent directly that wait unpublished in the
/// connection's ring, if any (with the connection in the state; else its
/// holder's next send publishes them); true if there were.
fn publish_deferred(st: &mut State) -> bool {
    if !st.deferred {
        return false;
    }
    st.deferred = false;
    let Some((_, w)) = &mut st.conn else {
        return false;
    };
    w.publish_deferred()
}

/// Moves one packet's worth of waiting messages into `batch`: high
/// priority first, then normal. Messages too large for the reader are set
/// aside as rejected.
fn take_batch(shared: &Shared, st: &mut State, writer: &Writer, batch: &mut Vec<QueuedMessage>) {
    let opts = &shared.opts;
    let max = writer.max_message_size() as usize;
    let mut room = Writer::BATCH_BYTES;
    let mut rejected = false;
    'take: for (priority, q) in [
        (Priority::High, &mut st.high),
        (Priority::Normal, &mut st.normal),
    ] {
        while let Some(front) = q.front() {
            let len = front.len();
            if max != 0 && len > max {
                let data = q.pop_front().unwrap_or_default();
                st.count -= 1;
                st.bytes -= len;
                st.stats.rejected += 1;
                st.rejected.push(QueuedMessage { priority, data });
                rejected = true;
                continue;
            }
            if !batch.is_empty()
                && (!opts.coalesce || len + 4 > room || batch.len() >= Writer::BATCH_MESSAGES)
            {
                break 'take;
            }
            room = room.saturating_sub(len + 4);
            let data = q.pop_front().unwrap_or_default();
            batch.push(QueuedMessage { priority, data });
        }
    }
    if rejected {
        shared.wake_freed(st);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Reader, ReaderOptions};
    use std::cell::Cell;

    thread_local! {
        /// Set by a test: the next lent send of this thread panics right
        /// after its write.
        static PANIC_AFTER_LENT_WRITE: Cell<bool> = const { Cell::new(false) };
    }

    pub(super) fn maybe_panic_after_a_lent_write() {
        if PANIC_AFTER_LENT_WRITE.with(|p| p.replace(false)) {
            panic!("a lent write panics (injected by a test)");
        }
    }

    /// A send that panics while its connection is lent out of the queue's
    /// lock (nothing in it should; this is what a bug there would cost):
    /// the connection is dropped, the message sent before it and not read
    /// yet goes to the next one, the panicking send's message is no longer
    /// counted, and the writer goes on. Before, the delivery thread waited
    /// for the connection forever and nothing was delivered again.
    #[test]
    fn a_panic_in_a_lent_send_leaves_the_writer_working() {
        let (_tmp, _ns, mut reader, writer) = reader_and_writer(r"\\.\mailslot\lent\panic");
        let mut buf = vec![0u8; 1 << 20];
        writer.send_slice(b"hello", Priority::Normal).unwrap();
        assert_eq!(reader.read(&mut buf).unwrap(), 5);
        writer.wait_read(Duration::from_secs(30)).unwrap();
        let big = |b: u8| vec![b; 100 << 10];
        writer.send_slice(&big(1), Priority::Normal).unwrap();
        PANIC_AFTER_LENT_WRITE.with(|p| p.set(true));
        let sent = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            writer.send_slice(&big(2), Priority::Normal)
        }));
        assert!(sent.is_err(), "the injected panic reached the caller");
        writer.send_slice(b"after", Priority::Normal).unwrap();
        let mut got = Vec::new();
        for _ in 0..2 {
            let n = reader
                .read_with_sender_timeout(&mut buf, Some(Duration::from_secs(10)))
                .unwrap()
                .0;
            got.push(buf[..n].to_vec());
        }
        assert_eq!(got, [big(1), b"after".to_vec()]);
        writer.wait_read(Duration::from_secs(30)).unwrap();
        let stats = writer.stats();
        assert_eq!((stats.queued, stats.unread), (0, 0), "{stats:?}");
        assert!(writer.close(Duration::from_secs(30)).is_empty());
    }

    /// A namespace in a fresh directory, a reader of `path` in it (read
    /// timeout 30 s) and a queued writer to it.
    fn reader_and_writer(path: &str) -> (tempfile::TempDir, Namespace, Reader, QueuedWriter) {
        reader_and_writer_with(path, QueuedOptions::default())
    }

    /// [`reader_and_writer`] with the writer's options.
    fn reader_and_writer_with(
        path: &str,
        opts: QueuedOptions,
    ) -> (tempfile::TempDir, Namespace, Reader, QueuedWriter) {
        let tmp = tempfile::tempdir().unwrap();
        let ns = Namespace::at(tmp.path()).unwrap();
        let name = SlotName::parse(path).unwrap();
        let reader = Reader::create_in(&ns, &name, &reader_options()).unwrap();
        let writer = QueuedWriter::open_in(&ns, &name, opts).unwrap();
        (tmp, ns, reader, writer)
    }

    fn reader_options() -> ReaderOptions {
        ReaderOptions::default().read_timeout(Some(Duration::from_secs(30)))
    }

    /// A large message's buffer, once read, holds the next large message
    /// (a fresh one cost a page fault per 4 KiB: 1 MiB messages went at a
    /// tenth of plain writes' rate).
    #[test]
    fn a_large_messages_buffer_is_used_again_once_read() {
        let (_tmp, _ns, mut reader, writer) = reader_and_writer(r"\\.\mailslot\large\again");
        let mut buf = vec![0u8; 1 << 20];
        let mut kept = Vec::new();
        for i in 0..4u8 {
            let msg = vec![i; 1 << 20];
            writer.send_slice(&msg, Priority::Normal).unwrap();
            assert_eq!(reader.read(&mut buf).unwrap(), msg.len());
            assert!(buf == msg, "message {i} intact");
            writer.wait_read(Duration::from_secs(30)).unwrap();
            let st = writer.shared.lock();
            assert_eq!(st.spare_large.len(), 1, "message {i}'s buffer is kept");
            kept.push(st.spare_large[0].as_ptr());
        }
        assert!(
            kept.windows(2).all(|w| w[0] == w[1]),
            "one buffer: {kept:?}"
        );
        assert!(writer.close(Duration::from_secs(30)).is_empty());
    }

    /// The buffers of a backlog of small messages, once read, are all kept
    /// for the messages that follow, up to `SPARE_BYTES` of capacity: 256
    /// were kept before, and a stream behind its reader allocated (and the
    /// delivery thread freed) most of its messages' buffers.
    #[test]
    fn a_backlogs_small_buffers_are_kept_within_the_bound() {
        let (_tmp, _ns, mut reader, writer) = reader_and_writer(r"\\.\mailslot\spare\small");
        let mut buf = vec![0u8; 1024];
        writer.send_slice(b"hello", Priority::Normal).unwrap();
        assert_eq!(reader.read(&mut buf).unwrap(), 5);
        writer.wait_read(Duration::from_secs(30)).unwrap();
        for (size, kept) in [(64, 3000), (500, SPARE_BYTES / 500)] {
            let backlog = 3000;
            for i in 0..backlog {
                let msg = vec![(i % 251) as u8; size];
                writer.send_slice(&msg, Priority::Normal).unwrap();
            }
            for i in 0..backlog {
                assert_eq!(reader.read(&mut buf).unwrap(), size);
                assert!(
                    buf[..size].iter().all(|&b| b == (i % 251) as u8),
                    "message {i}"
                );
            }
            writer.wait_read(Duration::from_secs(30)).unwrap();
            let mut st = writer.shared.lock();
            // The first of them may have gone straight into the ring,
            // with no buffer of its own.
            assert!(
                (kept - 1..=kept).contains(&st.spare.len()),
                "{size} B: {} buffers kept, {kept} expected",
                st.spare.len()
            );
            let capacity: usize = st.spare.iter().map(Vec::capacity).sum();
            assert_eq!(st.spare_bytes, capacity);
            assert!(capacity <= SPARE_BYTES, "{size} B: {capacity} bytes kept");
            // The next size starts from an empty pool.
            st.spare.clear();
            st.spare_bytes = 0;
        }
        assert!(writer.close(Duration::from_secs(30)).is_empty());
    }

    /// A send blocked on a full queue goes on once reads have freed a
    /// sixteenth of it, not at the first read.
    #[test]
    fn a_blocked_send_waits_for_a_sixteenth_of_the_queue() {
        let opts = QueuedOptions::default().queue_limit(32, 1 << 20);
        let (_tmp, _ns, mut reader, writer) =
            reader_and_writer_with(r"\\.\mailslot\block\room", opts);
        let mut buf = [0u8; 16];
        for i in 0..32u8 {
            writer.send_slice(&[i], Priority::Normal).unwrap();
        }
        let (tx, rx) = std::sync::mpsc::channel();
        // Every message is read whatever happens, so the blocked send
        // always ends; what was seen is judged afterwards.
        let (held, early, sent, order) = std::thread::scope(|s| {
            s.spawn(|| {
                tx.send(writer.send_slice(&[32], Priority::Normal)).unwrap();
            });
            let mut order = Vec::new();
            let mut read = |reader: &mut Reader| {
                assert_eq!(reader.read(&mut buf).unwrap(), 1);
                order.push(buf[0]);
            };
            read(&mut reader);
            // The read counted (the writer looks at the receipts): one
            // free place of 32, less than a sixteenth.
            let held = writer.stats().queued;
            let early = rx.recv_timeout(Duration::from_millis(200)).ok();
            read(&mut reader);
            let went_early = early.is_some();
            let sent = early.or_else(|| rx.recv_timeout(Duration::from_secs(10)).ok());
            for _ in 2..=32 {
                read(&mut reader);
            }
            (held, went_early, sent, order)
        });
        assert_eq!(held, 31);
        assert!(!early, "the blocked send went on after one read");
        assert!(
            matches!(sent, Some(Ok(()))),
            "two free places of 32 let it on: {sent:?}"
        );
        assert_eq!(order, (0..=32).collect::<Vec<u8>>());
        assert!(writer.close(Duration::from_secs(30)).is_empty());
    }

    /// A large message sent from the caller's thread stays in the
    /// connection's reusable buffer, which only the writer can write, with
    /// no copy of its own; a reader that leaves it unread leaves it to the
    /// next reader, intact and in order.
    #[test]
    fn large_messages_kept_in_reusable_buffers_go_to_the_next_reader() {
        let (_tmp, ns, mut first, writer) = reader_and_writer(r"\\.\mailslot\large\kept");
        let big = |i: usize| -> Vec<u8> { (0..(1 << 20) + i).map(|j| (i * 7 + j) as u8).collect() };
        let mut buf = vec![0u8; 2 << 20];
        // Connected (the first message may wait for the delivery thread).
        writer.send_slice(b"hello", Priority::Normal).unwrap();
        assert_eq!(first.read(&mut buf).unwrap(), 5);
        writer.wait_read(Duration::from_secs(30)).unwrap();
        for i in 0..6 {
            writer.send_slice(&big(i), Priority::Normal).unwrap();
        }
        let kept = {
            let st = writer.shared.lock();
            st.unread
                .iter()
                .filter(|m| matches!(m.held, Held::Buffer { .. }))
                .count()
        };
        assert_eq!(kept, 6, "all six kept in reusable buffers");
        for i in 0..2 {
            let n = first.read(&mut buf).unwrap();
            assert!(buf[..n] == big(i), "message {i} intact");
        }
        drop(first);
        let mut second = Reader::create_in(&ns, &writer.target(), &reader_options()).unwrap();
        for i in 2..6 {
            let n = second.read(&mut buf).unwrap();
            assert!(buf[..n] == big(i), "message {i} intact at the next reader");
        }
        writer.wait_read(Duration::from_secs(30)).unwrap();
        let stats = writer.stats();
        assert_eq!((stats.read, stats.resent), (7, 4), "{stats:?}");
        assert!(writer.close(Duration::from_secs(30)).is_empty());
    }

    /// A direct send of a message that travels in a memory file waits for
    /// a reusable buffer as long as a plain write does, small ones 1 ms.
    #[test]
    fn direct_sends_of_large_messages_wait_for_a_buffer_like_plain_writes() {
        for len in [0, 512, crate::frame::INLINE_MAX] {
            assert_eq!(direct_wait(len), DIRECT_WAIT, "{len}");
        }
        for len in [crate::frame::INLINE_MAX + 1, 1 << 20, 64 << 20] {
            let plain = crate::memfd_pool::MemfdPool::patience(len);
            assert_eq!(direct_wait(len), plain.max(DIRECT_WAIT), "{len}");
            assert!(direct_wait(len) > DIRECT_WAIT, "{len}");
        }
    }

    /// After a reader's pause stalled direct sends, a caller that keeps
    /// sending goes back to sending itself once the reader reads again,
    /// even though its steady stream never lets the queue drain.
    #[test]
    fn a_stall_ends_when_the_reader_reads_again_under_a_steady_stream() {
        let (_tmp, _ns, mut reader, writer) = reader_and_writer(r"\\.\mailslot\stall\ends");
        let msg = [7u8; 1024];
        // Connected, and the first message read.
        writer.send_slice(&msg, Priority::Normal).unwrap();
        let mut buf = vec![0u8; 2048];
        reader.read(&mut buf).unwrap();
        let stalled = || writer.shared.lock().stalled;
        std::thread::scope(|s| {
            let sender = s.spawn(|| {
                // Until a send stalls (the reader does not read)...
                let mut sent = 0u64;
                while !stalled() {
                    writer.send_slice(&msg, Priority::Normal).unwrap();
                    sent += 1;
                }
                // ... then on, with the reader reading, until the stall
                // is over: at once (the old rule waited for an empty
                // queue, which a steady stream may not let happen).
                let start = Instant::now();
                while stalled() && start.elapsed() < Duration::from_millis(500) {
                    writer.send_slice(&msg, Priority::Normal).unwrap();
                    sent += 1;
                }
                (sent, stalled())
            });
            // Read nothing until the sender stalled, then everything.
            while !stalled() && !sender.is_finished() {
                std::thread::yield_now();
            }
            let mut read = 0u64;
            while !sender.is_finished() {
                if reader
                    .read_timeout_once(&mut buf, Some(Duration::from_millis(1)))
                    .is_ok()
                {
                    read += 1;
                }
            }
            let (sent, still_stalled) = sender.join().unwrap();
            assert!(
                !still_stalled,
                "still stalled after {sent} sends, {read} read"
            );
            while read < sent {
                reader.read(&mut buf).unwrap();
                read += 1;
            }
        });
        writer.wait_read(Duration::from_secs(10)).unwrap();
    }
}
