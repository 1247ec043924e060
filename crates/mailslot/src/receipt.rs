//! Read receipts: how a queued writer learns which of its messages a
//! reader's reads have returned, so that it can send the rest again when
//! that reader goes away (see `queued.rs`, "Delivery guarantee").
//!
//! A writer that wants receipts sends the reader a small memory file right
//! after it connects (frame kind 12, announced like every frame with a
//! descriptor; see `frame.rs`). The file is the writer's: it outlives the
//! reader, killed or not. It holds one word:
//!
//! | bits | meaning | written by |
//! |------|---------|------------|
//! | 0-62 | messages of this connection that reads have returned | reader |
//! | 63 | revoked: return no more of this connection's messages | writer |
//!
//! The reader counts a message with one atomic add once nothing can keep
//! the read from returning it: after the copy, or, for a message in a ring,
//! just before the copy (which cannot fail; the atomic add would otherwise
//! wait for the copy's stores). If the word was revoked it discards the
//! message and reads on. The writer revokes with one atomic OR, which hands it the
//! final count (adds after it change nothing the writer looks at). So every message is either counted (returned by exactly
//! that read) or not counted and never returned afterwards: the writer may
//! send it again elsewhere without a duplicate. The one message a killed
//! reader can take with it is the one whose read counted it and did not
//! return yet.
//!
//! The writer counts what it sends on the connection, in order; a reader
//! returns one connection's messages in that order, so the count is always
//! a prefix. The reader trusts nothing in the word: a writer that scribbles
//! on it can only make its own messages vanish (a set bit 63 discards
//! them), and no value of it makes the reader wait or loop.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::sys::{self, SharedMap};

/// Size of the memory file.
pub(crate) const FILE_LEN: u64 = 4096;
/// Bit 63 of the word: revoked.
const REVOKED: u64 = 1 << 63;
/// One connection's receipt word, mapped.
#[derive(Debug)]
pub(crate) struct Receipts {
    map: SharedMap,
}

impl Receipts {
    /// The writer's end: a new receipt file, and the descriptor to send.
    pub(crate) fn create() -> io::Result<(Receipts, OwnedFd)> {
        let fd = sys::fixed_size_memfd(FILE_LEN)?;
        let map = SharedMap::new(fd.as_fd(), true)?;
        Ok((Receipts { map }, fd))
    }

    /// The reader's end, from the descriptor a writer sent: the file must
    /// have the right size, be sealed against resizing (checked by
    /// [`SharedMap::new`]) and start at zero.
    pub(crate) fn open(fd: &OwnedFd) -> io::Result<Receipts> {
        if sys::fstat(fd.as_fd())?.st_size as u64 != FILE_LEN {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "receipt memory file has the wrong size",
            ));
        }
        let r = Receipts {
            map: SharedMap::new(fd.as_fd(), true)?,
        };
        if r.word().load(Ordering::Acquire) != 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "receipt memory file was used before it was sent",
            ));
        }
        Ok(r)
    }

    fn word(&self) -> &AtomicU64 {
        self.map.atomic_u64(0)
    }

    /// Reader: counts one more message as returned. False when the writer
    /// has revoked the connection (or keeps changing the word): the
    /// message must not be returned then.
    pub(crate) fn claim(&self) -> bool {
        // One atomic add: past a revoke it changes nothing the writer
        // looks at (the revoke handed it the final count).
        self.word().fetch_add(1, Ordering::AcqRel) & REVOKED == 0
    }

    /// Writer: how many messages reads have returned so far (until the
    /// revoke: the failed claims after it still add, so the writer keeps
    /// the count [`revoke`](Receipts::revoke) returned).
    pub(crate) fn returned(&self) -> u64 {
        self.word().load(Ordering::Acquire) & !REVOKED
    }

    /// Writer: no read returns any more of this connection's messages from
    /// now on; returns how many reads did.
    pub(crate) fn revoke(&self) -> u64 {
        self.word().fetch_or(REVOKED, Ordering::AcqRel) & !REVOKED
    }
}

/// What became of one message a writer with receipts sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fate {
    /// A read returned it (for a shared slot: every live reader it went to
    /// has returned it).
    Read,
    /// A live reader has it and has not returned it yet.
    Unread,
    /// Every reader it went to has gone without returning it (or revoked):
    /// no read will ever return it.
    Lost,
}

/// One reader connection's receipts, and which of the writer's messages
/// went to it: those numbered `base..end` (`end` is open while it lives).
#[derive(Debug)]
struct Entry {
    key: u64,
    base: u64,
    receipts: Receipts,
    /// Once gone: the end of what it was sent, and what reads returned.
    gone: Option<(u64, u64)>,
}

/// The receipts of every connection a writer has (one, or one per reader
/// of a shared slot), and of those gone while messages sent to them may
/// still be undecided. Messages are numbered by the writer, from 0, in
/// the order it sends them on all of its connections.
#[derive(Debug, Default)]
pub(crate) struct Ledger {
    entries: Vec<Entry>,
}

impl Ledger {
    /// A connection (named `key`) joined when `base` messages had been sent.
    pub(crate) fn join(&mut self, key: u64, base: u64, receipts: Receipts) {
        self.entries.push(Entry {
            key,
            base,
            receipts,
            gone: None,
        });
    }

    /// The connection `key` has gone (or is given up) after `sent`
    /// messages: revokes it, so that what it has not returned stays
    /// unreturned.
    pub(crate) fn leave(&mut self, key: u64, sent: u64) {
        for e in &mut self.entries {
            if e.key == key && e.gone.is_none() {
                let returned = e.receipts.revoke();
                e.gone = Some((sent.max(e.base), returned));
            }
        }
    }

    /// Every connection given up (see [`leave`](Ledger::leave)).
    pub(crate) fn leave_all(&mut self, sent: u64) {
        let keys: Vec<u64> = self.live_keys().collect();
        for k in keys {
            self.leave(k, sent);
        }
    }

    /// The connections still live.
    pub(crate) fn live_keys(&self) -> impl Iterator<Item = u64> + '_ {
        self.entries
            .iter()
            .filter(|e| e.gone.is_none())
            .map(|e| e.key)
    }

    /// The counts as they are now, with `sent` messages sent so far (one
    /// load of each receipt word, however many fates are asked of it).
    #[cfg(test)]
    pub(crate) fn snapshot(&self, sent: u64) -> Snapshot {
        let mut s = Snapshot::default();
        self.snapshot_into(sent, &mut s);
        s
    }

    /// Like [`snapshot`](Ledger::snapshot), into `s` (no allocation once
    /// it has room).
    pub(crate) fn snapshot_into(&self, sent: u64, s: &mut Snapshot) {
        s.0.clear();
        s.0.extend(self.entries.iter().map(|e| match e.gone {
            Some((end, returned)) => (e.base, end, returned, false),
            None => (e.base, sent, e.receipts.returned(), true),
        }));
    }

    /// Forgets connections gone that no message from `first` on went to.
    pub(crate) fn forget_before(&mut self, first: u64) {
        self.entries
            .retain(|e| e.gone.is_none_or(|(end, _)| end > first));
    }
}

/// The receipt counts at one moment: per connection, the first and the
/// end of the numbers it was sent, how many reads returned, and whether it
/// lives.
#[derive(Debug, Default)]
pub(crate) struct Snapshot(Vec<(u64, u64, u64, bool)>);

impl Snapshot {
    /// What became of message `n`.
    pub(crate) fn fate(&self, n: u64) -> Fate {
        let mut returned_somewhere = false;
        for &(base, end, returned, live) in &self.0 {
            if n < base || n >= end {
                continue;
            }
            // A lying reader's count cannot reach beyond what it was sent.
            if n < base.saturating_add(returned) {
                returned_somewhere = true;
            } else if live {
                return Fate::Unread;
            }
        }
        if returned_somewhere {
            Fate::Read
        } else {
            Fate::Lost
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_count_until_revoked() {
        let (w, fd) = Receipts::create().unwrap();
        let r = Receipts::open(&fd).unwrap();
        assert!(r.claim());
        assert!(r.claim());
        assert_eq!(w.returned(), 2);
        assert_eq!(w.revoke(), 2);
        assert!(!r.claim(), "a revoked connection returns nothing more");
        assert!(!r.claim());
        // A used file is refused by a reader.
        assert!(Receipts::open(&fd).is_err());
    }

    #[test]
    fn fates_across_readers() {
        let mut l = Ledger::default();
        let (a, afd) = Receipts::create().unwrap();
        let ra = Receipts::open(&afd).unwrap();
        l.join(1, 0, a);
        // Messages 0..4 went to reader 1; it returned 2.
        ra.claim();
        ra.claim();
        assert_eq!(l.snapshot(4).fate(1), Fate::Read);
        assert_eq!(l.snapshot(4).fate(2), Fate::Unread);
        // Reader 2 joins at 4; 4..6 go to both.
        let (b, bfd) = Receipts::create().unwrap();
        let rb = Receipts::open(&bfd).unwrap();
        l.join(2, 4, b);
        rb.claim();
        assert_eq!(l.snapshot(6).fate(4), Fate::Unread, "reader 1 still has it");
        l.leave(1, 6);
        assert!(!ra.claim());
        assert_eq!(l.snapshot(6).fate(2), Fate::Lost, "only reader 1 had it");
        assert_eq!(l.snapshot(6).fate(4), Fate::Read, "reader 2 returned it");
        assert_eq!(l.snapshot(6).fate(5), Fate::Unread, "reader 2 has it");
        l.forget_before(6);
        assert_eq!(l.live_keys().collect::<Vec<_>>(), vec![2]);
        l.leave_all(6);
        assert_eq!(l.snapshot(6).fate(5), Fate::Lost);
    }
}
