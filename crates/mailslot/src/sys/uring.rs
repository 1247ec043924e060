//! [`QuietWatch`]: an io_uring multishot poll on the reader's epoll
//! descriptor, read through shared memory, so the reader can tell without a
//! system call that nothing it polls has become ready.
//!
//! The ring is created with `IORING_SETUP_COOP_TASKRUN |
//! IORING_SETUP_TASKRUN_FLAG` and holds one multishot `IORING_OP_POLL_ADD`
//! for `POLLIN` on the epoll descriptor. When anything registered in that
//! epoll set becomes ready (a frame on a socket, a writer in the listener's
//! backlog, a signalled eventfd, a descriptor added while ready), the kernel
//! wakes the poll in the waker's own context — inside the writer's `send`
//! or `connect`, before it returns — and marks the ring: it sets
//! `IORING_SQ_TASKRUN` in the shared submission-queue flags at once, and a
//! completion follows when the reader next enters the kernel. So once the
//! reader's epoll set was last seen with nothing ready, "no completion and
//! no flag" means nothing has become ready since, including anything whose
//! system call returned before the reader looked.
//!
//! Any doubt reads as "not quiet" (the caller then asks epoll, as without
//! this): a completion not consumed yet, the flag, completions the kernel
//! could not post (`IORING_SQ_CQ_OVERFLOW`), a poll that ended and is not
//! armed again.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::ptr::NonNull;
#[cfg(not(target_arch = "x86_64"))]
use std::sync::atomic::fence;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use rustix::io_uring::{
    IORING_OFF_SQ_RING, IORING_OFF_SQES, IoringCqeFlags, IoringEnterFlags, IoringFeatureFlags,
    IoringOp, IoringPollFlags, IoringSetupFlags, IoringSqFlags, io_uring_cqe, io_uring_enter,
    io_uring_params, io_uring_setup, io_uring_sqe,
};
use rustix::mm::{MapFlags, ProtFlags, mmap, munmap};

use super::to_io;

/// `POLLIN`, as the 32-bit event mask of a poll request.
const POLLIN: u32 = 0x1;
/// Completion-queue entries: a multishot poll posts one per wake-up, and
/// the reader consumes them at its next pass.
const CQ_ENTRIES: u32 = 64;
/// Passes in a row from one other thread after which a reader counts as
/// moved there, and its watch is made anew on it.
const MOVED_AFTER: u32 = 64;

/// A number for the calling thread, unique in the process (cheaper to get
/// than `std::thread::current()`).
fn thread_key() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    thread_local! {
        static KEY: u64 = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    KEY.with(|k| *k)
}

/// One shared mapping, unmapped on drop.
struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

impl Mapping {
    fn new(fd: BorrowedFd<'_>, len: usize, offset: u64) -> io::Result<Mapping> {
        // SAFETY: a fresh shared mapping of the ring's memory; nothing else
        // in this process aliases it as a Rust reference.
        let p = unsafe {
            mmap(
                std::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED | MapFlags::POPULATE,
                fd,
                offset,
            )
        }
        .map_err(to_io)?;
        let ptr = NonNull::new(p.cast::<u8>()).ok_or_else(|| io::Error::other("mmap gave null"))?;
        Ok(Mapping { ptr, len })
    }

    /// The `u32` at byte `off` (checked against the mapping's length).
    fn word(&self, off: u32) -> &AtomicU32 {
        let off = off as usize;
        assert!(
            off % 4 == 0 && off + 4 <= self.len,
            "ring offset {off} out of range"
        );
        // SAFETY: in bounds and aligned (checked above); the kernel and we
        // access these words only atomically.
        unsafe { &*self.ptr.as_ptr().add(off).cast::<AtomicU32>() }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly what `new` mapped; no reference outlives
        // the owner (words borrow `self`).
        let _ = unsafe { munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

// SAFETY: the mapping is plain shared memory accessed through atomics.
unsafe impl Send for Mapping {}
// SAFETY: as above.
unsafe impl Sync for Mapping {}

/// Where the ring's words are in the mapping (from `io_uring_params`).
#[derive(Clone, Copy)]
struct Offsets {
    sq_tail: u32,
    sq_mask: u32,
    sq_flags: u32,
    sq_array: u32,
    cq_head: u32,
    cq_tail: u32,
    cq_mask: u32,
    cqes: u32,
}

/// Watches an epoll descriptor for readiness through an io_uring; see the
/// module documentation.
pub(crate) struct QuietWatch {
    // Field order: the mappings go before the ring's descriptor.
    rings: Mapping,
    sqes: Mapping,
    fd: OwnedFd,
    off: Offsets,
    /// The poll is armed: it has not posted a final completion.
    armed: bool,
    /// The thread the poll's completions are posted to (the task that
    /// submitted it; the flag is set whichever thread reads).
    owner: u64,
    /// Another thread reaping, and how many times since the owner last did.
    stray: (u64, u32),
}

impl QuietWatch {
    /// `io_uring_setup` + `mmap` + one multishot `POLL_ADD` on `epoll`.
    /// Fails where io_uring is unavailable (an old kernel, the
    /// `kernel.io_uring_disabled` sysctl, a seccomp filter): the caller
    /// then polls as before.
    pub(crate) fn new(epoll: BorrowedFd<'_>) -> io::Result<QuietWatch> {
        let mut p = io_uring_params::default();
        p.flags = IoringSetupFlags::COOP_TASKRUN
            | IoringSetupFlags::TASKRUN_FLAG
            | IoringSetupFlags::CQSIZE
            | IoringSetupFlags::CLAMP;
        p.cq_entries = CQ_ENTRIES;
        // SAFETY: `p` is a valid, writable parameter block.
        let fd = unsafe { io_uring_setup(2, &mut p) }.map_err(to_io)?;
        if !p.features.contains(IoringFeatureFlags::SINGLE_MMAP)
            || !p.features.contains(IoringFeatureFlags::NODROP)
        {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "io_uring without single mmap or no-drop",
            ));
        }
        let sq_len = p.sq_off.array as usize + p.sq_entries as usize * 4;
        let cq_len =
            p.cq_off.cqes as usize + p.cq_entries as usize * std::mem::size_of::<io_uring_cqe>();
        let rings = Mapping::new(fd.as_fd(), sq_len.max(cq_len), IORING_OFF_SQ_RING)?;
        let sqes = Mapping::new(
            fd.as_fd(),
            p.sq_entries as usize * std::mem::size_of::<io_uring_sqe>(),
            IORING_OFF_SQES,
        )?;
        let mut w = QuietWatch {
            rings,
            sqes,
            fd,
            off: Offsets {
                sq_tail: p.sq_off.tail,
                sq_mask: p.sq_off.ring_mask,
                sq_flags: p.sq_off.flags,
                sq_array: p.sq_off.array,
                cq_head: p.cq_off.head,
                cq_tail: p.cq_off.tail,
                cq_mask: p.cq_off.ring_mask,
                cqes: p.cq_off.cqes,
            },
            armed: false,
            owner: thread_key(),
            stray: (0, 0),
        };
        w.arm(epoll)?;
        Ok(w)
    }

    /// Whether nothing in the epoll set became ready since the last
    /// [`reap`](QuietWatch::reap). Loads only shared memory. With
    /// `after_clock`, call it after reading the clock the pass is stamped
    /// with: this orders the loads after it. Without, the caller's last
    /// acquire load does.
    pub(crate) fn quiet(&self, after_clock: bool) -> bool {
        // The clock read (`rdtsc`) does not keep later loads from running
        // before it: `lfence` does (a full fence elsewhere).
        #[cfg(target_arch = "x86_64")]
        if after_clock {
            // SAFETY: `lfence` has no preconditions (SSE2 is baseline on
            // x86_64).
            unsafe {
                std::arch::x86_64::_mm_lfence();
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        if after_clock {
            fence(Ordering::SeqCst);
        }
        // Only on the thread the completions are posted to: the kernel
        // clears the flag before it posts the completion, a gap another
        // thread could fall into, but not this one (the kernel posts while
        // this thread is inside a system call).
        if !self.armed || self.owner != thread_key() {
            return false;
        }
        let flags = self.rings.word(self.off.sq_flags).load(Ordering::Acquire);
        if flags & (IoringSqFlags::TASKRUN.bits() | IoringSqFlags::CQ_OVERFLOW.bits()) != 0 {
            return false;
        }
        let head = self.rings.word(self.off.cq_head).load(Ordering::Relaxed);
        let tail = self.rings.word(self.off.cq_tail).load(Ordering::Acquire);
        head == tail
    }

    /// Consumes the completions posted so far and arms the poll again if
    /// it ended (or belongs to another thread). Call before the epoll pass
    /// that follows a [`quiet`](QuietWatch::quiet) that said no.
    pub(crate) fn reap(&mut self, epoll: BorrowedFd<'_>) -> io::Result<()> {
        let flags = self.rings.word(self.off.sq_flags).load(Ordering::Acquire);
        if flags & IoringSqFlags::CQ_OVERFLOW.bits() != 0 {
            // Have the kernel move what it could not post into the queue.
            // SAFETY: no submission; only completions are flushed.
            unsafe { io_uring_enter(&self.fd, 0, 0, IoringEnterFlags::GETEVENTS) }
                .map_err(to_io)?;
        }
        let head_w = self.rings.word(self.off.cq_head);
        let tail = self.rings.word(self.off.cq_tail).load(Ordering::Acquire);
        let mut head = head_w.load(Ordering::Relaxed);
        let mask = self.rings.word(self.off.cq_mask).load(Ordering::Relaxed);
        while head != tail {
            let off = self.off.cqes as usize
                + (head & mask) as usize * std::mem::size_of::<io_uring_cqe>();
            // `flags` is the last u32 of a 16-byte completion entry.
            let cflags = self.rings.word((off + 12) as u32).load(Ordering::Relaxed);
            if cflags & IoringCqeFlags::MORE.bits() == 0 {
                self.armed = false;
            }
            head = head.wrapping_add(1);
        }
        head_w.store(head, Ordering::Release);
        let me = thread_key();
        if !self.armed {
            // Armed again from this thread: its completions come here.
            self.owner = me;
            self.stray = (0, 0);
            return self.arm(epoll);
        }
        if self.owner == me {
            self.stray = (0, 0);
        } else {
            // The poll's completions go to the thread that armed it; while
            // they wait for it, the flag stays set and every pass asks
            // epoll. A reader that keeps reading from another thread gets a
            // ring of its own; one that hops between threads (an async
            // runtime's workers) keeps polling as without this.
            self.stray = match self.stray {
                (t, n) if t == me => (t, n + 1),
                _ => (me, 1),
            };
            if self.stray.1 >= MOVED_AFTER {
                *self = QuietWatch::new(epoll)?;
            }
        }
        Ok(())
    }

    /// Submits the multishot `POLL_ADD`.
    fn arm(&mut self, epoll: BorrowedFd<'_>) -> io::Result<()> {
        let tail_w = self.rings.word(self.off.sq_tail);
        let tail = tail_w.load(Ordering::Relaxed);
        let mask = self.rings.word(self.off.sq_mask).load(Ordering::Relaxed);
        let idx = tail & mask;
        let size = std::mem::size_of::<io_uring_sqe>();
        assert!(
            (idx as usize + 1) * size <= self.sqes.len,
            "sqe index in range"
        );
        // The submission entry, as the kernel lays it out (64 bytes):
        // opcode at 0, fd at 4, length (the poll flags) at 24, the 32-bit
        // poll mask at 28, user data at 32; everything else zero.
        let mut sqe = [0u8; 64];
        sqe[0] = IoringOp::PollAdd as u8;
        sqe[4..8].copy_from_slice(&rustix::fd::AsRawFd::as_raw_fd(&epoll).to_ne_bytes());
        sqe[24..28].copy_from_slice(&IoringPollFlags::ADD_MULTI.bits().to_ne_bytes());
        sqe[28..32].copy_from_slice(&POLLIN.to_ne_bytes());
        sqe[32..40].copy_from_slice(&1u64.to_ne_bytes());
        // SAFETY: in bounds (asserted); the kernel reads this entry only
        // after the tail below is published.
        unsafe {
            std::ptr::copy_nonoverlapping(
                sqe.as_ptr(),
                self.sqes.ptr.as_ptr().add(idx as usize * size),
                size.min(64),
            );
        }
        self.rings
            .word(self.off.sq_array + idx * 4)
            .store(idx, Ordering::Relaxed);
        tail_w.store(tail.wrapping_add(1), Ordering::Release);
        // SAFETY: one entry was prepared above.
        let n =
            unsafe { io_uring_enter(&self.fd, 1, 0, IoringEnterFlags::empty()) }.map_err(to_io)?;
        if n != 1 {
            return Err(io::Error::other("io_uring took no poll request"));
        }
        self.armed = true;
        Ok(())
    }
}
