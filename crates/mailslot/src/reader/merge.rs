//! The stamp-ordered merge: every connection's earliest message in one heap, within the queue's bounds.

use std::cmp::Reverse;
use std::collections::binary_heap::PeekMut;
use std::io;

use super::conn::{Conn, Payload, Pending};
use super::{Reader, Sender};

/// What [`Reader::take_ring_head`] did.
pub(super) enum RingTake {
    /// Copied, and counted: the read returns it.
    Taken,
    /// Copied, but its writer took it back: the read must not return it.
    Revoked,
    /// Nothing: the head is not a ring message.
    Other,
}

impl Reader {
    /// Counts a message of connection `idx` as returned in its writer's
    /// receipts, when it asked for them, once nothing can keep the read
    /// from returning it. Fails when the writer has taken its messages back
    /// (it sends them again elsewhere).
    pub(super) fn claim(&self, idx: usize) -> io::Result<()> {
        match self.conns[idx].as_ref().and_then(|c| c.receipts.as_ref()) {
            Some(r) if !r.claim() => Err(io::Error::new(
                io::ErrorKind::Interrupted,
                "the writer took the message back",
            )),
            _ => Ok(()),
        }
    }

    /// The connection of the earliest head, if it may be delivered now: its
    /// messages arrived before the latest pass began, or it was stamped
    /// before that pass began. Either way that pass looked at every writer
    /// after the message was written: any write that returned before it
    /// was stamped is in the merge by now. (The second case delivers a
    /// message found while the reader watched the rings in the same pass,
    /// without a second `epoll_wait`.)
    pub(super) fn deliverable_head(&self) -> Option<usize> {
        let Reverse((stamp, _, idx)) = *self.heads.peek()?;
        let conn = self.conns[idx].as_ref()?;
        (conn.filled_pass < self.pass || stamp < self.pump_ns).then_some(idx)
    }

    pub(super) fn head_len(&self, idx: usize) -> usize {
        self.conns[idx]
            .as_ref()
            .and_then(|c| c.queue.front())
            .map_or(0, |p| p.payload.len())
    }

    /// After a message of connection `idx` was taken and copied: gives its
    /// ring record back to the writer (with a room notice if it waits for
    /// one), and forgets the connection once it has ended and is empty.
    pub(super) fn after_take(&mut self, idx: usize, ring_end: u64) {
        let Some(conn) = self.conns[idx].as_mut() else {
            return;
        };
        if ring_end != 0 {
            if let Some(rc) = conn.ring.as_mut() {
                rc.held -= 1;
                // With nothing of the ring left in the queue, give back what
                // was parsed too (wrap and hand-off records after it); else
                // what was read, in steps.
                if rc.held == 0 {
                    conn.release_parsed();
                } else {
                    conn.release_read(ring_end);
                }
            }
        }
        if conn.queue.is_empty() && conn.eof {
            self.remove_conn(idx);
        }
    }

    /// Removes the globally earliest message; returns its connection too.
    pub(super) fn take_head(&mut self) -> (usize, Pending) {
        let Reverse((_, _, idx)) = *self.heads.peek().expect("a head exists");
        let conn = self.conns[idx].as_mut().expect("head's connection exists");
        let p = conn.queue.pop_front().expect("head's queue is not empty");
        if matches!(p.payload, Payload::Memfd { .. }) {
            conn.fds -= 1;
            self.held_fds -= 1;
            self.fd_freed = true;
        }
        self.next_head(idx);
        self.buffered_msgs -= 1;
        self.buffered_bytes -= p.payload.cost();
        (idx, p)
    }

    /// Takes the earliest message, of connection `idx`, when it is still
    /// in that connection's ring: counts it in its writer's receipts if it
    /// asked for them, then copies it into `buf` (its exact length)
    /// straight from its queue entry, which is dropped, not moved. `Other`,
    /// with nothing done, for any other message; `Revoked`, with nothing
    /// copied, when its writer took it back (it must not be returned; see
    /// `receipt.rs`).
    pub(super) fn take_ring_head(&mut self, idx: usize, buf: &mut [u8]) -> RingTake {
        let Some(conn) = self.conns[idx].as_ref() else {
            return RingTake::Other;
        };
        let (Some(rc), Some(p)) = (&conn.ring, conn.queue.front()) else {
            return RingTake::Other;
        };
        let Payload::Ring { off, len } = p.payload else {
            return RingTake::Other;
        };
        debug_assert_eq!(len, buf.len());
        // Counted before the copy, which cannot fail: the read returns it
        // from here on. (The count's atomic instruction would otherwise
        // wait for the copy's stores.)
        let claimed = self.claim(idx).is_ok();
        if claimed {
            rc.ring.copy(off, buf);
        }
        let (ring_end, cost) = (p.ring_end, p.payload.cost());
        if let Some(conn) = self.conns[idx].as_mut() {
            conn.queue.pop_front();
        }
        self.next_head(idx);
        self.buffered_msgs -= 1;
        self.buffered_bytes -= cost;
        self.after_take(idx, ring_end);
        if claimed {
            RingTake::Taken
        } else {
            RingTake::Revoked
        }
    }

    /// After the earliest head, of connection `idx`, left its queue: the
    /// connection's next message takes its place in the heap (one sift, not
    /// a pop and a push).
    #[inline(always)]
    fn next_head(&mut self, idx: usize) {
        let mut top = self.heads.peek_mut().expect("a head exists");
        debug_assert_eq!(top.0.2, idx);
        let conn = self.conns[idx].as_ref().expect("head's connection exists");
        if let Some(next) = conn.queue.front() {
            *top = Reverse((next.stamp, self.seq, idx));
            self.seq += 1;
        } else {
            PeekMut::pop(top);
            // Once ended, forgotten by `after_take` when the message is
            // copied; else this writer may have more, possibly earlier
            // than other heads.
            self.needs_pump |= !conn.eof;
        }
    }

    /// Who sent `p`, a message just taken from connection `idx`.
    pub(super) fn sender_of(&self, idx: usize, p: &Pending) -> Sender {
        let mut sender = self.conns[idx]
            .as_ref()
            .expect("a taken message's connection exists")
            .sender
            .clone();
        sender.remote = p.origin.as_deref().cloned();
        sender
    }

    /// The queue holds as many messages or bytes as it may.
    pub(super) fn queue_full(&self) -> bool {
        self.buffered_msgs >= self.opts.queue_messages
            || self.buffered_bytes >= self.opts.queue_bytes
    }

    /// Counts the messages `conn` queued from `before` on against the
    /// queue's bounds, and those holding a descriptor against theirs.
    pub(super) fn count_queued(&mut self, conn: &mut Conn, before: usize) {
        for p in conn.queue.range(before..) {
            self.buffered_msgs += 1;
            self.buffered_bytes += p.payload.cost();
            if matches!(p.payload, Payload::Memfd { .. }) {
                conn.fds += 1;
                self.held_fds += 1;
            }
        }
    }
}
