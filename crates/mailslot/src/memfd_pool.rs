//! A writer's reusable memory files for large messages.
//!
//! A fresh sealed memfd per large message costs a page allocation, and
//! later a page free, for every 4 KiB: for a 1 MiB message that is several
//! times the cost of copying it. So a writer keeps a few memfds of
//! power-of-two sizes, sealed only against shrinking and growing, fills one
//! per message through a mapping it keeps (`pwrite` if mapping failed), and
//! passes it with a token (see `frame.rs`).
//! The reader copies the message out and sends the token back; only then is
//! the buffer filled again. Tokens are never reused, so a late or forged
//! release cannot free a buffer that is in use.
//!
//! The pool is bounded in buffers and bytes. When every buffer is out, the
//! writer waits a little for one to come back (see [`MemfdPool::patience`];
//! never longer than its write timeout). Then, or when a new buffer would
//! not fit, it sends a one-off sealed memfd, so a reader that is not
//! reading never holds a writer up for long. Without the wait, a writer
//! that runs ahead of its reader would fill the socket with one-off files,
//! and allocating those pages would then cost more than copying.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use crate::sys;

/// Smallest buffer: just above the largest inline message.
const MIN_SIZE: u64 = 128 * 1024;

/// Most buffers a writer keeps.
const MAX_BUFFERS: usize = 8;

/// Default bound on the bytes a writer keeps in buffers.
pub(crate) const DEFAULT_BYTES: u64 = 256 * 1024 * 1024;

struct Buffer {
    fd: OwnedFd,
    /// Where the writer fills it; `None` if mapping failed (then `pwrite`).
    /// With a mapping the file is sealed against every other write (see
    /// [`sys::writer_only_memfd`]): what the writer put in stays there
    /// until the writer fills it again.
    map: Option<sys::SharedMap>,
    size: u64,
    /// The token of the send it is out for, if it is.
    out: Option<u64>,
    /// Pool clock when last filled (least recently used goes first).
    used: u64,
}

/// The pool; one per connection (the writer's send lock guards it).
pub(crate) struct MemfdPool {
    bufs: Vec<Buffer>,
    limit: u64,
    next_token: u64,
    clock: u64,
}

impl std::fmt::Debug for MemfdPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemfdPool")
            .field("buffers", &self.bufs.len())
            .field("bytes", &self.bytes())
            .field("limit", &self.limit)
            .finish()
    }
}

/// A buffer lent for one send: fill, send, then [`MemfdPool::sent`].
pub(crate) struct Lease {
    index: usize,
    token: u64,
}

impl Lease {
    pub(crate) fn token(&self) -> u64 {
        self.token
    }
}

impl MemfdPool {
    pub(crate) fn new(limit: u64) -> MemfdPool {
        MemfdPool {
            bufs: Vec::new(),
            limit,
            next_token: 1,
            clock: 0,
        }
    }

    /// Bytes held in buffers.
    pub(crate) fn bytes(&self) -> u64 {
        self.bufs.iter().map(|b| b.size).sum()
    }

    /// True when buffers are out that the reader may give back soon.
    pub(crate) fn any_out(&self) -> bool {
        self.bufs.iter().any(|b| b.out.is_some())
    }

    /// How long to wait for a buffer before sending a one-off memory file
    /// of `len` bytes instead: 2 ns per byte, and at least 10 ms. That is
    /// about what a reader busy with several writers' messages of that size
    /// needs before it gets to ours: it copies at 5-10 GB/s, and four
    /// writers may each have a message queued ahead. (A wait of 0.5 ns per
    /// byte, the cost of a fresh file, left four writers of 64 MiB messages
    /// at 2.6-3.0 GB/s; 2 ns per byte gives 4.9-5.8.) A reader that is
    /// reading gives buffers back within that; one that is not costs a
    /// writer this much per message once its buffers are out.
    pub(crate) fn patience(len: usize) -> std::time::Duration {
        std::time::Duration::from_nanos(len as u64 * 2).max(std::time::Duration::from_millis(10))
    }

    /// Changes the bound; idle buffers over it are dropped at once.
    pub(crate) fn set_limit(&mut self, limit: u64) {
        self.limit = limit;
        while self.bytes() > self.limit && self.evict_idle() {}
    }

    /// The reader is done with the buffer sent with `token`.
    pub(crate) fn release(&mut self, token: u64) {
        if let Some(b) = self.bufs.iter_mut().find(|b| b.out == Some(token)) {
            b.out = None;
        }
    }

    /// An idle buffer of the right size filled with `data`, if one is at
    /// hand; never a new one.
    pub(crate) fn reuse(&mut self, data: &[u8]) -> std::io::Result<Option<Lease>> {
        if self.bytes() > self.limit {
            // Over a lowered bound: `fill` sheds idle buffers first.
            return Ok(None);
        }
        let size = Self::size_for(data.len());
        match self
            .bufs
            .iter()
            .position(|b| b.out.is_none() && b.size == size)
        {
            Some(index) => self.lend(index, data).map(Some),
            None => Ok(None),
        }
    }

    fn size_for(len: usize) -> u64 {
        (len as u64).next_power_of_two().max(MIN_SIZE)
    }

    /// Fills buffer `index` with `data` and lends it under a fresh token.
    fn lend(&mut self, index: usize, data: &[u8]) -> std::io::Result<Lease> {
        let b = &self.bufs[index];
        match &b.map {
            Some(m) => m.copy_from(data),
            None => sys::pwrite_all(b.fd.as_fd(), data)?,
        }
        let token = self.next_token;
        self.next_token += 1;
        Ok(Lease { index, token })
    }

    /// An idle buffer for `len` bytes, filled with `data`, or `None` when the
    /// pool cannot lend one (the caller sends a one-off sealed memfd).
    pub(crate) fn fill(&mut self, data: &[u8]) -> std::io::Result<Option<Lease>> {
        // Buffers that were out when the bound went down may be idle now.
        while self.bytes() > self.limit && self.evict_idle() {}
        let size = Self::size_for(data.len());
        if size > self.limit {
            return Ok(None);
        }
        if let Some(lease) = self.reuse(data)? {
            return Ok(Some(lease));
        }
        while (self.bufs.len() >= MAX_BUFFERS || self.bytes() + size > self.limit)
            && self.evict_idle()
        {}
        if self.bufs.len() >= MAX_BUFFERS || self.bytes() + size > self.limit {
            return Ok(None);
        }
        let (fd, map) = sys::writer_only_memfd(size)?;
        self.bufs.push(Buffer {
            fd,
            map,
            size,
            out: None,
            used: 0,
        });
        let index = self.bufs.len() - 1;
        self.lend(index, data).map(Some)
    }

    /// The descriptor to pass for `lease`.
    pub(crate) fn fd(&self, lease: &Lease) -> BorrowedFd<'_> {
        self.bufs[lease.index].fd.as_fd()
    }

    /// Whether what `lease` holds stays as written until the reader gives
    /// the buffer back (and the writer fills it again): nobody else can
    /// write into the buffer.
    pub(crate) fn writer_only(&self, lease: &Lease) -> bool {
        self.bufs[lease.index].map.is_some()
    }

    /// A copy of the first `len` bytes of the buffer sent with `token`,
    /// while the reader has not given it back (a buffer given back may be
    /// filled again). Only for buffers only the writer can write
    /// ([`writer_only`](MemfdPool::writer_only)).
    pub(crate) fn read_out(&self, token: u64, len: usize) -> Option<Vec<u8>> {
        let b = self.bufs.iter().find(|b| b.out == Some(token))?;
        let map = b.map.as_ref().filter(|m| m.len() >= len)?;
        let mut v = vec![0; len];
        map.copy_to(&mut v);
        Some(v)
    }

    /// The frame with `lease` was sent: the buffer is out until released.
    pub(crate) fn sent(&mut self, lease: Lease) {
        self.clock += 1;
        let b = &mut self.bufs[lease.index];
        b.out = Some(lease.token);
        b.used = self.clock;
    }

    /// Drops the least recently used idle buffer; false if none is idle.
    fn evict_idle(&mut self) -> bool {
        let victim = self
            .bufs
            .iter()
            .enumerate()
            .filter(|(_, b)| b.out.is_none())
            .min_by_key(|(_, b)| b.used)
            .map(|(i, _)| i);
        match victim {
            Some(i) => {
                self.bufs.swap_remove(i);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_back(pool: &MemfdPool, lease: &Lease, len: usize) -> Vec<u8> {
        let mut v = vec![0; len];
        sys::pread_exact(pool.fd(lease), &mut v).unwrap();
        v
    }

    /// A reader holding a buffer's descriptor cannot change what the
    /// writer put in it: not with `write`, not through a writable mapping,
    /// not through a descriptor opened anew by its `/proc` path.
    #[test]
    fn only_the_writer_can_write_its_buffers() {
        use std::io::Write;
        let mut pool = MemfdPool::new(DEFAULT_BYTES);
        let data = vec![9u8; 200_000];
        let lease = pool.fill(&data).unwrap().unwrap();
        assert!(pool.writer_only(&lease));
        let fd = pool.fd(&lease);
        let e = sys::pwrite_all(fd, b"forged").unwrap_err();
        assert_eq!(
            e.raw_os_error(),
            Some(rustix::io::Errno::PERM.raw_os_error()),
            "{e}"
        );
        assert!(
            sys::SharedMap::new(fd, true).is_err(),
            "no writable mapping"
        );
        let path = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&fd));
        if let Ok(mut f) = std::fs::OpenOptions::new().write(true).open(&path) {
            let e = f.write_all(b"forged").unwrap_err();
            assert_eq!(
                e.raw_os_error(),
                Some(rustix::io::Errno::PERM.raw_os_error()),
                "{e}"
            );
        }
        let token = lease.token();
        pool.sent(lease);
        // The writer reads back what it wrote; once given back, nothing.
        assert_eq!(pool.read_out(token, data.len()).unwrap(), data);
        pool.release(token);
        assert_eq!(pool.read_out(token, data.len()), None);
    }

    #[test]
    fn reuses_a_released_buffer_and_never_a_busy_one() {
        let mut pool = MemfdPool::new(DEFAULT_BYTES);
        let a = vec![1u8; 200_000];
        let l1 = pool.fill(&a).unwrap().unwrap();
        assert_eq!(read_back(&pool, &l1, a.len()), a);
        let (i1, t1) = (l1.index, l1.token());
        pool.sent(l1);
        // Busy: a second message gets another buffer.
        let l2 = pool.fill(&[2u8; 150_000]).unwrap().unwrap();
        assert_ne!(l2.index, i1);
        pool.sent(l2);
        // A stale or unknown token frees nothing.
        pool.release(t1 + 100);
        let l3 = pool.fill(&[3u8; 140_000]).unwrap().unwrap();
        assert!(l3.index != i1 && l3.token() > t1);
        pool.sent(l3);
        pool.release(t1);
        let l4 = pool.fill(&[4u8; 131_073]).unwrap().unwrap();
        assert_eq!(l4.index, i1);
        assert_eq!(pool.bufs.len(), 3);
        assert_eq!(pool.bytes(), 3 * 256 * 1024);
    }

    #[test]
    fn bounded_in_buffers_and_bytes() {
        let mut pool = MemfdPool::new(1 << 20);
        let data = vec![7u8; 300_000]; // 512 KiB buffers
        let l1 = pool.fill(&data).unwrap().unwrap();
        pool.sent(l1);
        let l2 = pool.fill(&data).unwrap().unwrap();
        pool.sent(l2);
        // Both out and the bound reached: the caller must go without.
        assert!(pool.fill(&data).unwrap().is_none());
        // Larger than the bound: never pooled.
        assert!(pool.fill(&vec![0u8; (1 << 20) + 1]).unwrap().is_none());
        assert!(pool.bytes() <= 1 << 20);

        let mut pool = MemfdPool::new(DEFAULT_BYTES);
        for _ in 0..MAX_BUFFERS {
            let l = pool.fill(&data).unwrap().unwrap();
            pool.sent(l);
        }
        assert!(pool.fill(&data).unwrap().is_none());
    }

    #[test]
    fn idle_buffers_of_another_size_make_room() {
        let mut pool = MemfdPool::new(1 << 20);
        let l = pool.fill(&[1u8; 200_000]).unwrap().unwrap(); // 256 KiB
        let t = l.token();
        pool.sent(l);
        pool.release(t);
        let l = pool.fill(&vec![2u8; 900_000]).unwrap().unwrap(); // 1 MiB
        pool.sent(l);
        assert_eq!(pool.bufs.len(), 1);
        assert_eq!(pool.bytes(), 1 << 20);
        pool.set_limit(0);
        assert_eq!(pool.bytes(), 1 << 20, "a buffer that is out stays");
    }
}
