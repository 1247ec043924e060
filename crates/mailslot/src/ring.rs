//! The shared-memory lane: a writer's ring of frames in a memory file.
//!
//! A socket send costs a buffer allocation, a copy into the kernel, a lock
//! and a wake-up for every message, and the reader pays a receive call for
//! each. Through a ring in memory both sides share, a message costs one
//! copy in and one copy out, and no system call at all while the reader
//! keeps up. Each writer connection has its own ring (single producer,
//! single consumer); the socket stays for the handshake, for frames that
//! carry a descriptor (large messages) and for end-of-stream.
//!
//! Layout of the memory file (`FILE_LEN` bytes, sealed against shrinking
//! and growing, created by the writer and mapped by both):
//!
//! | off | field | written by |
//! |-----|-------|------------|
//! | 0 | `tail`: bytes ever written (u64) | writer |
//! | 64 | `head`: bytes ever consumed (u64) | reader |
//! | 128 | reader waiting: wake me through the eventfd (u32) | both |
//! | 132 | reader watching: it looks for records now, publish them at once (u32) | reader |
//! | 192 | writer waiting: tell me when the head reaches this (u64; 0: not) | both |
//! | 256 | reader closed the connection (u32) | reader |
//! | 320 | `staged`: bytes written, published or not (u64) | writer |
//! | 8192 | `DATA` (2 MiB) bytes of records | writer |
//!
//! (Records start at 8192, not 4096 as before message records existed: a
//! file of another size is refused, so a reader and a writer of different
//! versions keep to the socket rather than misread each other's records.)
//!
//! A record starts at a multiple of 8: `u32 len`, `u32 tag`, then `len`
//! bytes, padded to 8. A message record (one plain message, the common
//! case) holds the writer's stamp (`u64`) and the message: 8 bytes less
//! than a frame and nothing to decode. A frame record holds a local frame
//! (header and body, exactly as on the socket): a batch, or a message with
//! an origin block. A wrap record fills the rest of the ring:
//! the writer puts one where the next record would not fit before the end
//! (for records up to 16 KiB, before the first 256 KiB: so only large
//! messages touch the rest). A hand-off record says the writer's next
//! frames are on the socket (see `frame.rs`).
//!
//! A writer may write several records before it publishes them with one
//! store of the tail (the queued writer does, for a stream): the reader
//! only ever sees whole records up to the tail, whichever way they came.
//! Such a writer also stores how far it has written in `staged` (a plain
//! release store to a line of its own, which the reader does not touch
//! while records keep coming), and a reader that has found nothing new at
//! the tail for a while looks there and reads up to it: so the last
//! records of a burst reach a reader that has caught up without waiting
//! for the writer's next publication. (Only such a reader looks, every
//! 16th look at the tail, and before it sleeps: one that followed `staged`
//! closely would take its line away at every record, which is what
//! publishing less often saves.) From its 16th look on until it finds
//! records, the reader also sets "reader watching", and a writer that sees
//! it publishes each record at once (see `reader/mod.rs`,
//! `WATCHED_LOOKS`).
//!
//! Waking: before the reader sleeps it sets "reader waiting" and looks at
//! the tail once more; after the writer publishes a record it looks at the
//! flag and, if set, clears it and signals the eventfd. Both use
//! sequentially consistent operations, so one of them always sees the
//! other. A writer deferring a stream's records also looks at this flag
//! and "reader watching" (plain loads of the reader's line) before each
//! one, and publishes at once when either is set; a reader whose last
//! look found records after all clears it again.
//! "Writer waiting" works the same way the other way round, and the
//! reader answers it with a room frame on the socket once its head has
//! reached the position the writer asked for: a little past where the
//! waiting record fits, so that the writer, once woken, has room for many
//! records, not one (waking it for every record freed cost 15% of the
//! 64 B throughput). Before a writer of a small record asks, it watches the
//! head for a moment (see `writer/local.rs`, `ROOM_SPIN_NS`).
//!
//! The reader trusts nothing in the ring: it keeps its own copy of how far
//! it has read, checks every record against the tail and the ring's size,
//! and copies bytes out with raw copies (never a reference), so a writer
//! that scribbles over its ring can only garble its own messages or lose
//! its connection.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::frame::{HEADER_LEN, Header, INLINE_MAX};
use crate::sys::{self, SharedMap};

/// Bytes of records in a ring. Large so that mid-sized messages (tens of
/// KiB) flow without the writer waiting for room every few messages: 60 KiB
/// messages went at 5.5 GB/s through a 256 KiB ring, 16 GB/s through 2 MiB.
pub(crate) const DATA: usize = 2 << 20;
/// Records stay in the first `SOFT` bytes of the ring (the writer wraps
/// early) unless they hold one message of over `SMALL_RECORD` bytes: so a
/// writer of small messages touches, and costs, only that much memory, and
/// a reader's `info()`, which takes every message in the rings into its
/// queue, takes at most about as many per writer as a socket buffer holds.
const SOFT: usize = 256 << 10;
pub(crate) const SMALL_RECORD: usize = 16 << 10;
/// A waiting writer asks to be woken when this much more than its record
/// needs has been freed (or everything has).
const ROOM_SLACK: u64 = (SOFT / 4) as u64;
/// While records are still held in the reader's queue, it gives back
/// what it read in steps of this much (all of it once none is held): far
/// less than the room a waiting writer asks for.
const RELEASE_STEP: u64 = 16 << 10;
/// Where the records start (see the module's documentation).
const DATA_OFF: usize = 8192;
/// Size of the memory file.
pub(crate) const FILE_LEN: u64 = (DATA_OFF + DATA) as u64;

const TAIL: usize = 0;
const HEAD: usize = 64;
const READER_WAITING: usize = 128;
const READER_WATCHING: usize = 132;
const WRITER_WAITING: usize = 192;
const CLOSED: usize = 256;
const STAGED: usize = 320;

const REC_HDR: usize = 8;
const TAG_FRAME: u32 = 1;
const TAG_HANDOFF: u32 = 2;
const TAG_WRAP: u32 = 3;
const TAG_MESSAGE: u32 = 4;
/// Bytes of a message record before the message: the stamp.
const STAMP_LEN: usize = 8;

/// Largest frame a record holds: the largest inline frame.
pub(crate) const FRAME_MAX: usize = HEADER_LEN + INLINE_MAX;

fn padded(n: usize) -> usize {
    (n + 7) & !7
}

/// The writer's end.
#[derive(Debug)]
pub(crate) struct RingWriter {
    map: SharedMap,
    /// Signalled when the reader asked to be woken.
    wake: sys::EventFd,
    tail: u64,
    /// The reader's head as last read (refreshed only when short of room).
    head: u64,
    /// The head at which the last record that found no room would fit.
    needs_head: u64,
    /// Where the body of the last frame pushed starts in the memory file.
    last_body: usize,
}

impl RingWriter {
    /// A new ring and the memory file to pass to the reader (its wake
    /// eventfd is [`wake_fd`](RingWriter::wake_fd)).
    pub(crate) fn create() -> io::Result<(RingWriter, OwnedFd)> {
        let fd = sys::fixed_size_memfd(FILE_LEN)?;
        let map = SharedMap::new(fd.as_fd(), true)?;
        Ok((
            RingWriter {
                map,
                wake: sys::EventFd::new()?,
                tail: 0,
                head: 0,
                needs_head: 0,
                last_body: 0,
            },
            fd,
        ))
    }

    /// The eventfd to pass to the reader.
    pub(crate) fn wake_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.wake.as_fd()
    }

    fn tail_word(&self) -> &AtomicU64 {
        self.map.atomic_u64(TAIL)
    }

    /// Writes a frame record (`header` then `body`) if there is room; does
    /// not publish it (see [`publish`](RingWriter::publish)). `single`: the
    /// frame holds one message (so a large one may use the whole ring).
    /// A plain message (an inline header without flags) goes in a message
    /// record: its stamp and its bytes.
    pub(crate) fn push_frame(&mut self, header: &[u8], body: &[u8], single: bool) -> bool {
        let (head, tag): (&[u8], u32) = match Header::plain_stamp(header) {
            Some(stamp) => (stamp, TAG_MESSAGE),
            None => (header, TAG_FRAME),
        };
        let len = head.len() + body.len();
        debug_assert!(len <= FRAME_MAX);
        let size = REC_HDR + padded(len);
        let end = if single && size > SMALL_RECORD {
            DATA
        } else {
            SOFT
        };
        let Some(at) = self.reserve(size, end) else {
            return false;
        };
        // Record header and stamp (or frame header) in one copy.
        let mut first = [0u8; REC_HDR + HEADER_LEN];
        first[..4].copy_from_slice(&(len as u32).to_le_bytes());
        first[4..REC_HDR].copy_from_slice(&tag.to_le_bytes());
        first[REC_HDR..REC_HDR + head.len()].copy_from_slice(head);
        self.map
            .write_at(DATA_OFF + at, &first[..REC_HDR + head.len()]);
        self.last_body = DATA_OFF + at + REC_HDR + head.len();
        self.map.write_at(self.last_body, body);
        true
    }

    /// Where the body of the last frame pushed starts: it stays there, as
    /// written, until the reader gives its record back (after a read
    /// returned it), so a writer can keep its messages there rather than
    /// in a copy of its own (see `queued.rs`).
    pub(crate) fn last_body(&self) -> usize {
        self.last_body
    }

    /// A copy of `len` bytes at `off` (from [`last_body`](RingWriter::last_body)).
    pub(crate) fn read_back(&self, off: usize, len: usize) -> Vec<u8> {
        let mut v = vec![0u8; len];
        if off
            .checked_add(len)
            .is_some_and(|end| end <= self.map.len())
        {
            self.map.read_at(off, &mut v);
        }
        v
    }

    /// Writes a batch frame record if there is room, straight from the
    /// messages (no batch buffer in between): `header`, then each message
    /// as `u32` length and bytes; `body_len` is their total. Not published.
    pub(crate) fn push_batch<M: AsRef<[u8]>>(
        &mut self,
        header: &[u8],
        messages: &[M],
        body_len: usize,
    ) -> bool {
        let len = header.len() + body_len;
        debug_assert!(len <= FRAME_MAX);
        let Some(at) = self.reserve(REC_HDR + padded(len), SOFT) else {
            return false;
        };
        self.put_record_header(at, len as u32, TAG_FRAME);
        let mut off = DATA_OFF + at + REC_HDR;
        self.map.write_at(off, header);
        off += header.len();
        for m in messages {
            let m = m.as_ref();
            self.map.write_at(off, &(m.len() as u32).to_le_bytes());
            self.map.write_at(off + 4, m);
            off += 4 + m.len();
        }
        true
    }

    /// Writes a hand-off record if there is room (not yet published).
    pub(crate) fn push_handoff(&mut self) -> bool {
        let Some(at) = self.reserve(REC_HDR, SOFT) else {
            return false;
        };
        self.put_record_header(at, 0, TAG_HANDOFF);
        true
    }

    fn put_record_header(&self, at: usize, len: u32, tag: u32) {
        let mut h = [0u8; REC_HDR];
        h[..4].copy_from_slice(&len.to_le_bytes());
        h[4..].copy_from_slice(&tag.to_le_bytes());
        self.map.write_at(DATA_OFF + at, &h);
    }

    /// Makes room for a record of `size` bytes; returns its index in the
    /// data area. A record that would not fit before the end of the ring
    /// goes to its start, after a wrap record that fills the rest; the wrap
    /// is published at once, so the reader can pass it and give its space
    /// back even while there is no room yet for the record.
    fn reserve(&mut self, size: usize, end: usize) -> Option<usize> {
        let at = (self.tail % DATA as u64) as usize;
        let to_end = DATA - at;
        if at + size > end {
            if !self.room_for(to_end) {
                return None;
            }
            self.put_record_header(at, 0, TAG_WRAP);
            self.tail += to_end as u64;
            self.publish();
            return self.reserve(size, end);
        }
        if !self.room_for(size) {
            return None;
        }
        self.tail += size as u64;
        Some(at)
    }

    fn room_for(&mut self, needed: usize) -> bool {
        let free = |head: u64, tail: u64| {
            let used = tail.wrapping_sub(head);
            // A head beyond the tail or more than a ring behind is garbage.
            if used > DATA as u64 {
                0
            } else {
                DATA - used as usize
            }
        };
        if free(self.head, self.tail) >= needed {
            return true;
        }
        self.head = self.map.atomic_u64(HEAD).load(Ordering::SeqCst);
        if free(self.head, self.tail) >= needed {
            return true;
        }
        self.needs_head = (self.tail + needed as u64).saturating_sub(DATA as u64);
        false
    }

    /// Publishes what was pushed, and signals the eventfd if the reader
    /// asked to be woken. True if it did (one system call).
    /// Bytes of records written so far, published or not.
    pub(crate) fn written(&self) -> u64 {
        self.tail
    }

    pub(crate) fn publish(&mut self) -> bool {
        self.tail_word().store(self.tail, Ordering::SeqCst);
        let waiting: &AtomicU32 = self.map.atomic_u32(READER_WAITING);
        let wake = waiting.load(Ordering::SeqCst) != 0 && waiting.swap(0, Ordering::SeqCst) != 0;
        if wake {
            // Cannot fail but for a counter at its maximum, which a reader
            // that never reads it would need centuries to reach.
            let _ = self.wake.signal();
        }
        wake
    }

    /// Tells a reader about to sleep how far records are written, without
    /// publishing them (see the module's documentation).
    pub(crate) fn stage(&self) {
        self.map
            .atomic_u64(STAGED)
            .store(self.tail, Ordering::Release);
    }

    /// After a push found no room: asks the reader for a room frame once
    /// it has freed that much and some more. The caller tries to push again
    /// before it waits for the frame.
    pub(crate) fn want_room(&self) {
        let at = (self.needs_head + ROOM_SLACK).min(self.tail).max(1);
        self.map
            .atomic_u64(WRITER_WAITING)
            .store(at, Ordering::SeqCst);
    }

    /// The reader has closed this connection.
    pub(crate) fn reader_closed(&self) -> bool {
        self.map.atomic_u32(CLOSED).load(Ordering::Relaxed) != 0
    }

    /// Whether the reader has consumed (and given back) everything
    /// written, staged records included.
    #[cfg(test)]
    fn is_drained(&mut self) -> bool {
        self.head = self.map.atomic_u64(HEAD).load(Ordering::Acquire);
        self.head == self.tail
    }

    /// Whether the reader has asked to be woken for the next record (it
    /// is about to sleep or sleeps) or is watching for records (it has
    /// read everything published): plain loads of a line the reader writes
    /// only when it starts and ends a watch and when it asks to be woken.
    pub(crate) fn reader_idle(&self) -> bool {
        self.map.atomic_u32(READER_WAITING).load(Ordering::Relaxed) != 0
            || self.map.atomic_u32(READER_WATCHING).load(Ordering::Relaxed) != 0
    }
}

/// One record, as the reader finds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Record {
    /// A frame of `len` bytes at `off` (an offset for [`RingReader::copy`]).
    Frame { off: usize, len: usize },
    /// One message of `len` bytes at `off`, stamped `stamp` by the writer.
    Message { stamp: u64, off: usize, len: usize },
    /// The writer's next frames are on the socket.
    Handoff,
}

/// The writer broke the ring's rules.
#[derive(Debug)]
pub(crate) struct Corrupt;

/// The reader's end.
#[derive(Debug)]
pub(crate) struct RingReader {
    map: SharedMap,
    /// How far records have been parsed (the reader's own count).
    read: u64,
    /// The head as last published.
    head: u64,
    /// The writer's tail as last read and checked: records up to it are
    /// parsed without touching the tail's cache line again.
    tail: u64,
    /// How far the writer said it has written (`staged`), when a look
    /// before sleeping found it past what was read: parsed as if published.
    staged: u64,
}

impl RingReader {
    /// Maps a ring passed by a writer: a memory file of exactly
    /// `FILE_LEN` bytes that cannot shrink or grow.
    pub(crate) fn open(fd: &OwnedFd) -> io::Result<RingReader> {
        let st = sys::fstat(fd.as_fd())?;
        if st.st_size as u64 != FILE_LEN {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "ring memory file has the wrong size",
            ));
        }
        let map = SharedMap::new(fd.as_fd(), true)?;
        let start = map.atomic_u64(TAIL).load(Ordering::SeqCst);
        if start != 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "ring was used before it was offered",
            ));
        }
        Ok(RingReader {
            map,
            read: 0,
            head: 0,
            tail: 0,
            staged: 0,
        })
    }

    /// Whether the writer has published records not yet parsed (or staged
    /// ones a look before sleeping found). A tail behind what was read
    /// (records read as staged, not published yet) shows none.
    pub(crate) fn has_records(&self) -> bool {
        self.staged > self.read || self.map.atomic_u64(TAIL).load(Ordering::SeqCst) > self.read
    }

    /// Before sleeping: whether the writer has staged records past what
    /// was read (see the module's documentation); they are parsed from
    /// then on. A value no honest writer stages is ignored: it only hides
    /// that writer's own records until it publishes them.
    pub(crate) fn look_staged(&mut self) -> bool {
        let staged = self.map.atomic_u64(STAGED).load(Ordering::SeqCst);
        if staged > self.read && staged % 8 == 0 && staged.wrapping_sub(self.head) <= DATA as u64 {
            self.staged = staged;
            true
        } else {
            false
        }
    }

    /// Parses again from `pos`, a [`position`](RingReader::position)
    /// not given back yet: the records after it are left to the next
    /// [`next`](RingReader::next).
    pub(crate) fn rewind(&mut self, pos: u64) {
        debug_assert!(pos >= self.head && pos <= self.read);
        self.read = pos;
    }

    /// How far records have been parsed.
    pub(crate) fn position(&self) -> u64 {
        self.read
    }

    /// The tail as last loaded: records up to it were published by then.
    pub(crate) fn cached_tail(&self) -> u64 {
        self.tail
    }

    /// The tail the writer has published, or how far it has staged
    /// records when a look found that further.
    pub(crate) fn tail(&self) -> u64 {
        self.map
            .atomic_u64(TAIL)
            .load(Ordering::SeqCst)
            .max(self.staged)
    }

    /// Parses the next record, if the writer has published one (or staged
    /// it, see [`look_staged`](RingReader::look_staged)); a record fully
    /// checked against the ring's size and that tail.
    pub(crate) fn next(&mut self) -> Result<Option<Record>, Corrupt> {
        loop {
            if self.tail == self.read {
                // Records read as staged may be ahead of the published
                // tail: nothing new until it passes them.
                let published = self.map.atomic_u64(TAIL).load(Ordering::Acquire);
                #[cfg(test)]
                TAIL_LOADS.with(|n| n.set(n.get() + 1));
                let tail = published.max(self.staged);
                if tail == self.read {
                    return Ok(None);
                }
                let ahead = tail.wrapping_sub(self.read);
                if tail % 8 != 0
                    || ahead > DATA as u64
                    || tail.wrapping_sub(self.head) > DATA as u64
                {
                    // Not a record boundary, or more than a ring ahead.
                    return Err(Corrupt);
                }
                self.tail = tail;
            }
            let ahead = self.tail - self.read;
            let at = (self.read % DATA as u64) as usize;
            let mut h = [0u8; REC_HDR];
            self.map.read_at(DATA_OFF + at, &mut h);
            let len = u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize;
            let tag = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
            let size = match tag {
                TAG_WRAP if len == 0 => DATA - at,
                TAG_HANDOFF if len == 0 => REC_HDR,
                TAG_FRAME if (HEADER_LEN..=FRAME_MAX).contains(&len) => REC_HDR + padded(len),
                TAG_MESSAGE if (STAMP_LEN..=STAMP_LEN + INLINE_MAX).contains(&len) => {
                    REC_HDR + padded(len)
                }
                // An unknown tag, or a length that tag cannot have.
                _ => return Err(Corrupt),
            };
            if size > DATA - at || size as u64 > ahead {
                // Past the end of the ring, or beyond what was published.
                return Err(Corrupt);
            }
            self.read += size as u64;
            match tag {
                TAG_WRAP => continue,
                TAG_HANDOFF => return Ok(Some(Record::Handoff)),
                TAG_MESSAGE => {
                    let mut stamp = [0u8; STAMP_LEN];
                    self.map.read_at(DATA_OFF + at + REC_HDR, &mut stamp);
                    return Ok(Some(Record::Message {
                        stamp: u64::from_le_bytes(stamp),
                        off: DATA_OFF + at + REC_HDR + STAMP_LEN,
                        len: len - STAMP_LEN,
                    }));
                }
                _ => {
                    return Ok(Some(Record::Frame {
                        off: DATA_OFF + at + REC_HDR,
                        len,
                    }));
                }
            }
        }
    }

    /// Copies `dst.len()` bytes from `off` (within a parsed frame).
    pub(crate) fn copy(&self, off: usize, dst: &mut [u8]) {
        self.map.read_at(off, dst);
    }

    /// Gives the writer back everything up to `pos` (a position returned
    /// by [`position`](RingReader::position)); true when the writer waits
    /// for room (the caller then sends it a room frame).
    pub(crate) fn release(&mut self, pos: u64) -> bool {
        if pos == self.head {
            return false;
        }
        self.head = pos;
        self.map.atomic_u64(HEAD).store(pos, Ordering::SeqCst);
        let waiting = self.map.atomic_u64(WRITER_WAITING);
        let at = waiting.load(Ordering::SeqCst);
        at != 0 && pos >= at && waiting.swap(0, Ordering::SeqCst) != 0
    }

    /// Like [`release`](RingReader::release), but only once `RELEASE_STEP`
    /// bytes have been read since the last: a store the writer's next
    /// look at the head must fetch, saved for most small records.
    pub(crate) fn release_some(&mut self, pos: u64) -> bool {
        pos.wrapping_sub(self.head) >= RELEASE_STEP && self.release(pos)
    }

    /// Asks to be woken by the next record. The caller looks for records
    /// once more afterwards, then sleeps.
    pub(crate) fn want_wake(&self) {
        self.map
            .atomic_u32(READER_WAITING)
            .store(1, Ordering::SeqCst);
    }

    /// Tells the writer whether the reader is watching for records (it
    /// has read everything published and looks again and again before it
    /// sleeps): a writer that would leave its next record unpublished for
    /// the ones after it publishes it at once then.
    pub(crate) fn set_watching(&self, on: bool) {
        self.map
            .atomic_u32(READER_WATCHING)
            .store(u32::from(on), Ordering::Relaxed);
    }

    /// Withdraws [`want_wake`](RingReader::want_wake) when that last look
    /// found records and the reader reads on instead of sleeping: a writer
    /// that sees the ask publishes its next record at once and signals.
    pub(crate) fn cancel_wake(&self) {
        self.map
            .atomic_u32(READER_WAITING)
            .store(0, Ordering::Relaxed);
    }
}

#[cfg(test)]
thread_local! {
    /// Loads of a ring's tail by this thread's parsing (`RingReader::next`).
    pub(crate) static TAIL_LOADS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

impl Drop for RingReader {
    /// Tells the writer that nobody reads this ring any more.
    fn drop(&mut self) {
        self.map.atomic_u32(CLOSED).store(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::Kind;

    fn pair() -> (RingWriter, RingReader) {
        let (w, fd) = RingWriter::create().unwrap();
        let r = RingReader::open(&fd).unwrap();
        (w, r)
    }

    fn frame(r: &RingReader, rec: Record) -> Vec<u8> {
        let Record::Frame { off, len } = rec else {
            panic!("not a frame: {rec:?}");
        };
        let mut v = vec![0u8; len];
        r.copy(off, &mut v);
        v
    }

    #[test]
    fn records_arrive_in_order_across_the_wrap() {
        let (mut w, mut r) = pair();
        let mut expected = 0u64;
        for round in 0..10_000u64 {
            let body = vec![(round % 251) as u8; (round % 700) as usize];
            // Plain messages (message records) and other frames, mixed.
            let plain = round % 3 != 0;
            let flags = if plain { 0 } else { 1 };
            let header = Header::new(Kind::Inline, flags, body.len() as u32)
                .stamped(round)
                .encode();
            assert!(w.push_frame(&header, &body, true));
            assert!(!w.publish(), "the reader never asked to be woken");
            let rec = r.next().unwrap().expect("a record");
            // Small records never touch the ring beyond its first part.
            match rec {
                Record::Message { stamp, off, len } if plain => {
                    assert!(off + len <= DATA_OFF + SOFT, "record at {off}");
                    assert_eq!(stamp, round);
                    let mut got = vec![0u8; len];
                    r.copy(off, &mut got);
                    assert_eq!(got, body);
                }
                Record::Frame { off, len } if !plain => {
                    assert!(off + len <= DATA_OFF + SOFT, "record at {off}");
                    let got = frame(&r, rec);
                    assert_eq!(&got[..HEADER_LEN], &header);
                    assert_eq!(&got[HEADER_LEN..], &body[..]);
                }
                _ => panic!("round {round}: {rec:?}"),
            }
            r.release(r.position());
            expected += 1;
        }
        assert_eq!(expected, 10_000);
        assert!(w.is_drained());
    }

    #[test]
    fn a_full_ring_refuses_until_released_and_then_wakes() {
        let (mut w, mut r) = pair();
        let body = vec![7u8; 1000];
        let mut n = 0;
        while w.push_frame(&[0u8; HEADER_LEN], &body, true) {
            n += 1;
        }
        w.publish();
        // Small records stay in the first part of the ring.
        assert_eq!(n, SOFT / (REC_HDR + padded(HEADER_LEN + 1000)));
        w.want_room();
        assert!(!w.push_frame(&[0u8; HEADER_LEN], &body, true));
        // One record freed: room for it, but not yet the slack asked for.
        assert!(r.next().unwrap().is_some());
        assert!(!r.release(r.position()), "woken for one record");
        let woken_at = loop {
            assert!(r.next().unwrap().is_some(), "never woken");
            if r.release(r.position()) {
                break r.position();
            }
        };
        assert!(
            (ROOM_SLACK..ROOM_SLACK + 2048).contains(&woken_at),
            "woken after {woken_at} bytes"
        );
        assert!(!r.release(r.position()));
        assert!(w.push_frame(&[0u8; HEADER_LEN], &body, true));
    }

    #[test]
    fn a_largest_frame_fits_wherever_the_tail_is() {
        let (mut w, mut r) = pair();
        let big = vec![1u8; FRAME_MAX - HEADER_LEN];
        for small in [0usize, 100, 5000, 70_000, 150_000, 200_000] {
            // Move the tail, give everything back, then write the largest.
            let mut left = small;
            while left > 0 {
                let n = left.min(60_000);
                assert!(w.push_frame(&[0u8; HEADER_LEN], &vec![0u8; n], true));
                left -= n;
            }
            w.publish();
            while r.next().unwrap().is_some() {}
            r.release(r.position());
            let mut pushed = w.push_frame(&[0u8; HEADER_LEN], &big, true);
            if !pushed {
                // Only the wrap went in: once the reader passes it, the
                // frame fits.
                assert!(r.next().unwrap().is_none());
                r.release(r.position());
                pushed = w.push_frame(&[0u8; HEADER_LEN], &big, true);
            }
            assert!(pushed, "after {small}");
            w.publish();
            let rec = r.next().unwrap().expect("the large frame");
            assert_eq!(frame(&r, rec).len(), FRAME_MAX);
            r.release(r.position());
        }
    }

    #[test]
    fn reader_wake_flag_is_taken_once() {
        let (mut w, r) = pair();
        r.want_wake();
        assert!(w.push_handoff());
        assert!(w.publish());
        assert!(w.push_handoff());
        assert!(!w.publish());
    }

    /// Records staged but not published are read by a reader that looks
    /// (before it sleeps), once each; the publication that follows adds
    /// nothing, and the ring goes on.
    #[test]
    fn staged_records_are_read_once_by_a_reader_that_looks() {
        let (mut w, mut r) = pair();
        let message = |w: &mut RingWriter, stamp: u64| {
            let header = Header::new(Kind::Inline, 0, 3).stamped(stamp).encode();
            assert!(w.push_frame(&header, b"abc", true));
        };
        message(&mut w, 1);
        w.publish();
        message(&mut w, 2);
        message(&mut w, 3);
        w.stage();
        let stamps = |r: &mut RingReader| {
            let mut v = Vec::new();
            while let Some(rec) = r.next().unwrap() {
                let Record::Message { stamp, .. } = rec else {
                    panic!("not a message: {rec:?}");
                };
                v.push(stamp);
            }
            v
        };
        assert_eq!(stamps(&mut r), [1], "only the published one without a look");
        assert!(!r.has_records());
        assert!(r.look_staged());
        assert!(r.has_records());
        assert_eq!(stamps(&mut r), [2, 3]);
        assert!(
            !r.has_records(),
            "a tail behind what was read is nothing new"
        );
        assert!(!r.look_staged(), "nothing staged past what was read");
        w.publish();
        assert!(!r.has_records());
        assert_eq!(stamps(&mut r), Vec::<u64>::new());
        message(&mut w, 4);
        w.publish();
        assert_eq!(stamps(&mut r), [4]);
    }

    /// A staged position no honest writer stores hides that writer's
    /// records; it never makes the reader read outside them.
    #[test]
    fn garbage_staged_is_ignored() {
        for bad in [12, DATA as u64 + 8, u64::MAX - 7] {
            let (w, mut r) = pair();
            w.put_record_header(0, 0, TAG_HANDOFF);
            w.map.atomic_u64(STAGED).store(bad, Ordering::SeqCst);
            assert!(!r.look_staged(), "{bad}");
            assert!(!r.has_records(), "{bad}");
            assert!(matches!(r.next(), Ok(None)), "{bad}");
        }
        // Behind what was read.
        let (mut w, mut r) = pair();
        assert!(w.push_handoff());
        assert!(w.push_handoff());
        w.publish();
        assert_eq!(r.next().unwrap(), Some(Record::Handoff));
        assert_eq!(r.next().unwrap(), Some(Record::Handoff));
        w.map.atomic_u64(STAGED).store(8, Ordering::SeqCst);
        assert!(!r.look_staged());
        assert!(matches!(r.next(), Ok(None)));
    }

    #[test]
    fn garbage_is_refused_not_followed() {
        let (w, mut r) = pair();
        // Tail not a multiple of 8.
        w.map.atomic_u64(TAIL).store(12, Ordering::SeqCst);
        assert!(r.next().is_err());
        // A record longer than what was published.
        let (w, mut r) = pair();
        w.put_record_header(0, 4000, TAG_FRAME);
        w.map.atomic_u64(TAIL).store(64, Ordering::SeqCst);
        assert!(r.next().is_err());
        // An unknown tag.
        let (w, mut r) = pair();
        w.put_record_header(0, 0, 99);
        w.map.atomic_u64(TAIL).store(8, Ordering::SeqCst);
        assert!(r.next().is_err());
        // A tail more than a ring ahead.
        let (w, mut r) = pair();
        w.map
            .atomic_u64(TAIL)
            .store(DATA as u64 + 8, Ordering::SeqCst);
        assert!(r.next().is_err());
        // Closing is seen by the writer.
        let (w, r) = pair();
        drop(r);
        assert!(w.reader_closed());
    }
}
