//! The direct path: a read that takes the next message straight
//! from its writer's ring into the caller's buffer (or, for
//! `read_message`, a vector of its size), past the merge.
//!
//! A slot has one writer most of the time. A read then goes through the
//! whole pump for each message: a clock read that stamps the pass, a look
//! at the poller, parsing the record into the writer's queue, the merge's
//! heap, and taking it out again: about 0.2 µs of a 64 B message's 0.4 µs
//! from one process to the other. None of it orders anything while there
//! is no other writer to order against, so the read skips it when:
//!
//! - the reader holds no queued message and has exactly one connection,
//!   which is reading its ring;
//! - the next record in that ring is one plain message that fits the
//!   caller's buffer and the slot's maximum size;
//! - and, looked at after that record was seen published, nothing on the
//!   poller became ready since its last pass found nothing
//!   ([`Poller::nothing_new_after_load`](crate::sys::Poller::nothing_new_after_load)),
//!   and no listener is paused or connection starved (both are off the
//!   poller).
//!
//! That is enough for the order across writers: a write that returned
//! before the message was stamped (so before it was published, so before
//! the reader saw it) came from a writer that had connected by then. That
//! writer's connection is live (then it is this one: its messages come in
//! its ring's order), gone (then every one of its messages was read), or
//! still waiting to be accepted, and the listener would have shown it to
//! the poller. Anything else goes the merge's way: the next read's pump
//! handles it exactly as before, and a read that finds the ring empty
//! watches it, arms it and sleeps as a pump does.

use std::time::Duration;

use super::{Reader, Sender};
use crate::ring::Record;

/// Where a direct read puts the message: the caller's buffer, or the
/// message's own vector.
pub(super) trait Room {
    /// `len` bytes to copy the message into; `None` when there is no room.
    fn room(&mut self, len: usize) -> Option<&mut [u8]>;
}

impl Room for [u8] {
    fn room(&mut self, len: usize) -> Option<&mut [u8]> {
        self.get_mut(..len)
    }
}

impl Room for Vec<u8> {
    fn room(&mut self, len: usize) -> Option<&mut [u8]> {
        self.clear();
        self.resize(len, 0);
        Some(self)
    }
}

/// What [`Reader::take_direct`] did.
enum Direct {
    /// Copied into the caller's buffer and counted: the read returns it.
    Taken(usize),
    /// Taken from the ring, but its writer took it back (see
    /// `receipt.rs`): the read must not return it.
    Revoked,
    /// The ring has no record now.
    Empty,
    /// The next record, or the reader's state, is for the merge's path.
    Other,
}

impl Reader {
    /// A read's direct path (see the module's documentation): the length
    /// of the message read into `dest` and the connection it came from, or
    /// `None` for the merge's path. Only for a read that finds the ring
    /// empty: it watches it, as a pump would before it sleeps, for up to
    /// `timeout`, and takes what comes; if nothing does, the rings are
    /// armed and the pump that follows waits at once.
    pub(super) fn read_direct<R: Room + ?Sized>(
        &mut self,
        dest: &mut R,
        timeout: Option<Duration>,
    ) -> Option<(usize, usize)> {
        if timeout == Some(Duration::ZERO) {
            return None;
        }
        let idx = self.direct_conn()?;
        if !self.caught_up(idx) {
            return None;
        }
        // The watch neither accepts nor drops connections: `idx` stays the
        // only one.
        if self.before_sleep(timeout) != Some(Duration::ZERO) {
            self.rings_armed = true;
            return None;
        }
        loop {
            match self.take_direct(idx, dest) {
                Direct::Taken(n) => {
                    #[cfg(test)]
                    TAKEN.with(|t| t.set(t.get() + 1));
                    return Some((n, idx));
                }
                Direct::Revoked => continue,
                Direct::Empty | Direct::Other => return None,
            }
        }
    }

    /// Who sent a message taken directly from connection `idx`'s ring (a
    /// ring's records carry no origin: the connection's writer).
    pub(super) fn direct_sender(&self, idx: usize) -> Sender {
        let conn = self.conns[idx].as_ref();
        conn.expect("a taken message's connection exists")
            .sender
            .clone()
    }

    /// Whether connection `idx`'s ring has no record to read; then gives
    /// the writer back everything read (a writer short of room waits for
    /// that, and the reader may sleep next).
    ///
    /// Records already waiting are the merge's: it takes them in batches.
    /// Taken one by one as the writer writes the next beside them, they
    /// pass cache lines back and forth between the two (64 B messages, one
    /// writer: 12% fewer a second).
    fn caught_up(&mut self, idx: usize) -> bool {
        let Some(conn) = self.conns[idx].as_mut() else {
            return false;
        };
        if conn.ring.as_ref().is_none_or(|rc| rc.ring.has_records()) {
            return false;
        }
        conn.release_parsed();
        true
    }

    /// The only connection, when the reader's state allows the direct
    /// path: nothing queued, one connection, reading its ring, and nothing
    /// kept off the poller.
    fn direct_conn(&self) -> Option<usize> {
        if !self.heads.is_empty()
            || self.conns.len() - self.free.len() != 1
            || self.accept_paused_until.is_some()
            || !self.starved.is_empty()
        {
            return None;
        }
        let idx = self.conns.iter().position(Option::is_some)?;
        let conn = self.conns[idx].as_ref()?;
        conn.ring
            .as_ref()
            .is_some_and(|rc| rc.reading())
            .then_some(idx)
    }

    /// Takes the next record of connection `idx`'s ring into `dest` if it
    /// is one plain message that fits, and the poller, looked at after it
    /// was seen, has nothing new. Anything else leaves the ring as it was.
    fn take_direct<R: Room + ?Sized>(&mut self, idx: usize, dest: &mut R) -> Direct {
        let max = self.opts.max_message_size as usize;
        let Some(conn) = self.conns[idx].as_mut() else {
            return Direct::Other;
        };
        let Some(rc) = conn.ring.as_mut() else {
            return Direct::Other;
        };
        let from = rc.ring.position();
        let (off, len) = match rc.ring.next() {
            Ok(None) => return Direct::Empty,
            Ok(Some(Record::Message { off, len, .. }))
                if (max == 0 || len <= max) && rc.ring.position() == rc.ring.cached_tail() =>
            {
                (off, len)
            }
            // A frame or a hand-off, a message the buffer or the slot has
            // no room for, a broken ring: the merge's path deals with it.
            // So do several records found at once (a queued writer's
            // burst): the merge takes them in one pass, where the first
            // one taken here would cost a pass of its own (queued 1 KiB
            // lost 5%).
            _ => {
                rc.ring.rewind(from);
                return Direct::Other;
            }
        };
        self.watch.took(len);
        let Some(buf) = dest.room(len) else {
            rc.ring.rewind(from);
            return Direct::Other;
        };
        // Once per load of the tail, after it (an acquire; the look orders
        // its own loads after it): every record up to that tail was
        // published before the look.
        let seen = rc.ring.cached_tail();
        if rc.quiet_to < seen {
            if !self.poller.nothing_new_after_load() {
                rc.ring.rewind(from);
                return Direct::Other;
            }
            rc.quiet_to = seen;
        }
        // Counted before the copy, which cannot fail (see `take_ring_head`).
        let claimed = conn.receipts.as_ref().is_none_or(|r| r.claim());
        if claimed {
            rc.ring.copy(off, buf);
        }
        // Given back in steps, as the merge's path does for a batch, and
        // all of it once the ring is empty (see `caught_up`).
        let pos = rc.ring.position();
        conn.release_read(pos);
        if claimed {
            Direct::Taken(len)
        } else {
            Direct::Revoked
        }
    }
}

#[cfg(test)]
thread_local! {
    /// Messages this thread's reads took directly.
    static TAKEN: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, Instant};

    use super::TAKEN;
    use crate::testing::ring_pair;
    use crate::{Error, ReaderOptions};

    /// Message `i` of the test: every eleventh is empty.
    fn message(i: usize) -> Vec<u8> {
        if i % 11 == 0 {
            Vec::new()
        } else {
            format!("message {i}").into_bytes()
        }
    }

    /// A reader that waits for each message, its writer writing it only
    /// once asked: the reads find the ring empty, watch it, and take the
    /// message directly. Every seventh read first offers a buffer too
    /// short, which fails, names the size needed, and keeps the message
    /// for the next read; every fifth is a `read_message`, with its
    /// sender; empty messages come through as such.
    #[test]
    fn waiting_reads_take_messages_directly_and_a_short_buffer_keeps_them() {
        const ROUNDS: usize = 2000;
        let opts = ReaderOptions::default().read_timeout(Some(Duration::from_secs(10)));
        let (_tmp, mut reader, writer) = ring_pair("direct", &opts);
        let mut buf = [0u8; 64];
        let asked = Arc::new(AtomicUsize::new(0));
        let asks = Arc::clone(&asked);
        let t = std::thread::spawn(move || {
            let mut got = Vec::new();
            // `read_message` calls that took their message directly.
            let mut owned = 0;
            for i in 0..ROUNDS {
                asks.store(i + 1, Ordering::Release);
                let want = message(i).len();
                if i % 7 == 3 && want > 0 {
                    match reader.read(&mut buf[..want - 1]) {
                        Err(Error::BufferTooSmall { needed, .. }) => assert_eq!(needed, want),
                        other => panic!("round {i}: a short buffer read {other:?}"),
                    }
                }
                if i % 5 == 1 {
                    let before = TAKEN.with(std::cell::Cell::get);
                    let m = reader.read_message().unwrap();
                    assert_eq!(m.sender.pid, std::process::id(), "round {i}");
                    owned += usize::from(TAKEN.with(std::cell::Cell::get) > before);
                    got.push(m.data);
                } else {
                    let n = reader.read(&mut buf).unwrap();
                    got.push(buf[..n].to_vec());
                }
            }
            (got, TAKEN.with(std::cell::Cell::get), owned)
        });
        for i in 0..ROUNDS {
            let deadline = Instant::now() + Duration::from_secs(10);
            while asked.load(Ordering::Acquire) <= i {
                assert!(Instant::now() < deadline, "the reader stalled at {i}");
                std::hint::spin_loop();
            }
            writer.write(&message(i)).unwrap();
        }
        let (got, taken, owned) = t.join().unwrap();
        for (i, m) in got.iter().enumerate() {
            assert_eq!(m, &message(i), "round {i}");
        }
        assert!(taken > 0, "no read took its message directly");
        assert!(owned > 0, "no read_message took its message directly");
        eprintln!(
            "{taken} of {ROUNDS} messages taken directly, {owned} of {} by read_message",
            ROUNDS / 5
        );
    }
}
