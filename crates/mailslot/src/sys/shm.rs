//! The crate's only `unsafe` code: [`SharedMap`], a shared mapping of a memory file.
//!
//! Shared mappings of reusable message buffers: two copies of a large
//! message through mappings that stay in place cost about half of what
//! `pwrite` and `pread` cost, which look up and lock every 4 KiB page.
//! The shared-memory lane's rings (`ring.rs`) live in such mappings too.

use std::io;
use std::os::fd::BorrowedFd;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64};

use rustix::fs::SealFlags;
use rustix::mm::{MapFlags, ProtFlags};

/// A `MAP_SHARED` mapping of a whole memory file that cannot shrink.
///
/// Every access stays within the mapping, and the file is sealed
/// against shrinking, so no access can fault for a missing page
/// (`SIGBUS`). Another process may change the bytes while we copy them
/// (the file's writer, or a reader that kept its descriptor): copies go
/// through raw pointers and never make a reference to the mapped
/// memory, so that yields odd bytes at worst, which only that process
/// could have sent anyway.
pub(crate) struct SharedMap {
    ptr: NonNull<u8>,
    len: usize,
    writable: bool,
}

// SAFETY: the mapping belongs to this value alone; nothing else in this
// process points into it, so moving it to another thread is sound.
unsafe impl Send for SharedMap {}

impl SharedMap {
    /// `mmap(NULL, size, PROT_READ [| PROT_WRITE], MAP_SHARED, fd, 0)`
    /// for a memory file of `size` bytes sealed against shrinking and
    /// growing (checked here with `fcntl(F_GET_SEALS)` and `fstat`).
    pub(crate) fn new(fd: BorrowedFd<'_>, writable: bool) -> io::Result<SharedMap> {
        let seals = rustix::fs::fcntl_get_seals(fd)?;
        if !seals.contains(SealFlags::SHRINK | SealFlags::GROW) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "memory file can change size; not mapping it",
            ));
        }
        let len = usize::try_from(rustix::fs::fstat(fd)?.st_size)
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidData))?;
        if len == 0 {
            return Err(io::Error::from(io::ErrorKind::InvalidData));
        }
        let prot = if writable {
            ProtFlags::READ | ProtFlags::WRITE
        } else {
            ProtFlags::READ
        };
        // SAFETY: a fresh mapping chosen by the kernel (no address
        // given), so it cannot overlap memory Rust already uses.
        let p =
            unsafe { rustix::mm::mmap(std::ptr::null_mut(), len, prot, MapFlags::SHARED, fd, 0)? };
        let ptr = NonNull::new(p.cast::<u8>()).ok_or_else(|| io::Error::other("mmap gave NULL"))?;
        Ok(SharedMap { ptr, len, writable })
    }

    /// Bytes mapped: the file's size.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Copies the first `dst.len()` bytes of the mapping into `dst`.
    pub(crate) fn copy_to(&self, dst: &mut [u8]) {
        assert!(dst.len() <= self.len, "copy beyond the mapping");
        // SAFETY: the source lies within our live mapping (checked
        // above) and `dst` is a distinct, exclusively borrowed buffer.
        unsafe {
            std::ptr::copy_nonoverlapping(self.ptr.as_ptr(), dst.as_mut_ptr(), dst.len());
        }
    }

    /// Copies `src` to the start of a writable mapping.
    pub(crate) fn copy_from(&self, src: &[u8]) {
        self.write_at(0, src);
    }

    /// Copies `dst.len()` bytes from offset `off` of the mapping.
    pub(crate) fn read_at(&self, off: usize, dst: &mut [u8]) {
        assert!(
            off <= self.len && dst.len() <= self.len - off,
            "copy beyond the mapping"
        );
        // SAFETY: the source lies within our live mapping (checked
        // above) and `dst` is a distinct, exclusively borrowed buffer.
        unsafe {
            std::ptr::copy_nonoverlapping(self.ptr.as_ptr().add(off), dst.as_mut_ptr(), dst.len());
        }
    }

    /// Copies `src` to offset `off` of a writable mapping.
    pub(crate) fn write_at(&self, off: usize, src: &[u8]) {
        assert!(
            self.writable && off <= self.len && src.len() <= self.len - off,
            "write beyond the mapping"
        );
        // SAFETY: the destination lies within our live, writable
        // mapping (checked above) and `src` is ordinary memory.
        unsafe {
            std::ptr::copy_nonoverlapping(src.as_ptr(), self.ptr.as_ptr().add(off), src.len());
        }
    }

    /// The 8-byte word at `off` of a writable mapping, as an atomic.
    ///
    /// Another process may change it at any time, which is what atomics
    /// are for: the value read is any value, never undefined behaviour.
    pub(crate) fn atomic_u64(&self, off: usize) -> &AtomicU64 {
        assert!(
            self.writable && off % 8 == 0 && off <= self.len && 8 <= self.len - off,
            "atomic beyond the mapping or misaligned"
        );
        // SAFETY: in bounds and 8-aligned (the mapping starts on a page),
        // writable so stores cannot fault, and valid for the lifetime of
        // `&self` (unmapped only on drop). `AtomicU64` has the layout of
        // `u64` and every bit pattern is a valid value.
        unsafe { &*self.ptr.as_ptr().add(off).cast::<AtomicU64>() }
    }

    /// The 4-byte word at `off` of a writable mapping, as an atomic.
    pub(crate) fn atomic_u32(&self, off: usize) -> &AtomicU32 {
        assert!(
            self.writable && off % 4 == 0 && off <= self.len && 4 <= self.len - off,
            "atomic beyond the mapping or misaligned"
        );
        // SAFETY: as for `atomic_u64`.
        unsafe { &*self.ptr.as_ptr().add(off).cast::<AtomicU32>() }
    }
}

impl Drop for SharedMap {
    /// `munmap`.
    fn drop(&mut self) {
        // SAFETY: we mapped exactly this range and hand out no
        // references into it, so nothing uses it after this.
        let _ = unsafe { rustix::mm::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

impl std::fmt::Debug for SharedMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedMap").field("len", &self.len).finish()
    }
}
