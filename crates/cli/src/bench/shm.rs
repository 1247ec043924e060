//! The one module of `mailslot bench` with `unsafe` code: a memory file
//! that two processes map and change at once, for the raw ring baseline
//! ([`super::shm_ring`]).
//!
//! Nothing here hands out a reference to the mapped bytes, since the other
//! process writes them while we look: control words are atomics, and bytes
//! move with raw copies at offsets checked against the mapping. A peer that
//! scribbles over the file can garble what we copy, never make us touch
//! memory outside the mapping. The file is sealed against shrinking, so the
//! mapping never loses its pages (which would be `SIGBUS`).

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64};

use rustix::fs::{MemfdFlags, SealFlags};
use rustix::mm::{MapFlags, ProtFlags};

/// A shared, writable mapping of a whole memory file.
pub struct SharedMap {
    ptr: NonNull<u8>,
    len: usize,
}

impl SharedMap {
    /// `memfd_create`, `ftruncate` to `len` bytes (zeroed), seals against
    /// shrinking, growing and further sealing, then [`SharedMap::map`].
    pub fn create(name: &str, len: usize) -> io::Result<(OwnedFd, SharedMap)> {
        let fd = rustix::fs::memfd_create(name, MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)?;
        rustix::fs::ftruncate(&fd, len as u64)?;
        rustix::fs::fcntl_add_seals(&fd, SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL)?;
        let map = SharedMap::map(fd.as_fd(), len)?;
        Ok((fd, map))
    }

    /// `mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)` of a
    /// memory file someone else made: refused unless it is sealed against
    /// shrinking (`fcntl(F_GET_SEALS)`) and exactly `len` bytes (`fstat`).
    pub fn open(fd: BorrowedFd<'_>, len: usize) -> io::Result<SharedMap> {
        if !rustix::fs::fcntl_get_seals(fd)?.contains(SealFlags::SHRINK) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the ring's memory file can shrink; not mapping it",
            ));
        }
        let size = rustix::fs::fstat(fd)?.st_size;
        if u64::try_from(size).ok() != Some(len as u64) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("the ring's memory file has {size} bytes, expected {len}"),
            ));
        }
        SharedMap::map(fd, len)
    }

    fn map(fd: BorrowedFd<'_>, len: usize) -> io::Result<SharedMap> {
        // SAFETY: a fresh mapping at an address the kernel chooses, so it
        // overlaps no memory Rust already uses; the file cannot shrink
        // (sealed), so every mapped page stays backed.
        let p = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
                fd,
                0,
            )?
        };
        let ptr = NonNull::new(p.cast::<u8>()).ok_or_else(|| io::Error::other("mmap gave NULL"))?;
        Ok(SharedMap { ptr, len })
    }

    /// The 8-byte control word at `off` (a multiple of 8).
    pub fn u64_at(&self, off: usize) -> &AtomicU64 {
        assert!(
            off % 8 == 0 && off + 8 <= self.len,
            "control word {off} outside the ring"
        );
        // SAFETY: within the mapping and aligned (mmap gives page-aligned
        // memory; checked above), the mapping lives as long as `self`, and
        // both processes only ever touch this word atomically.
        unsafe { AtomicU64::from_ptr(self.ptr.as_ptr().add(off).cast()) }
    }

    /// The 4-byte control word (a futex word, too) at `off` (a multiple of 4).
    pub fn u32_at(&self, off: usize) -> &AtomicU32 {
        assert!(
            off % 4 == 0 && off + 4 <= self.len,
            "control word {off} outside the ring"
        );
        // SAFETY: as in `u64_at`.
        unsafe { AtomicU32::from_ptr(self.ptr.as_ptr().add(off).cast()) }
    }

    /// Copies `src` to offset `off`.
    pub fn write(&self, off: usize, src: &[u8]) {
        assert!(
            off <= self.len && src.len() <= self.len - off,
            "copy beyond the ring"
        );
        // SAFETY: the destination lies within our live mapping (checked
        // above) and cannot overlap `src`, a Rust borrow of other memory.
        unsafe {
            std::ptr::copy_nonoverlapping(src.as_ptr(), self.ptr.as_ptr().add(off), src.len());
        }
    }

    /// Copies `dst.len()` bytes from offset `off`.
    pub fn read(&self, off: usize, dst: &mut [u8]) {
        assert!(
            off <= self.len && dst.len() <= self.len - off,
            "copy beyond the ring"
        );
        // SAFETY: the source lies within our live mapping (checked above)
        // and `dst` is a distinct, exclusively borrowed buffer.
        unsafe {
            std::ptr::copy_nonoverlapping(self.ptr.as_ptr().add(off), dst.as_mut_ptr(), dst.len());
        }
    }
}

impl Drop for SharedMap {
    fn drop(&mut self) {
        // SAFETY: our own mapping, unmapped once; the references `u64_at`
        // and `u32_at` hand out borrow `self`, so none outlives it.
        let _ = unsafe { rustix::mm::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}
