//! The one seam between the library and the operating system.
//!
//! Every system call the crate makes goes through this module, via `rustix`
//! (no raw `libc`). The only `unsafe` code of the crate is in `shm.rs`, in
//! [`SharedMap`]: mapping a memory file, copying to or from the mapping, and
//! atomics in it (the shared-memory lane, `ring.rs`); and in `uring.rs`, the
//! reader's io_uring watch (its ring mappings, an `lfence`).
//! The rest of the crate names everything as `sys::name`; one file per area
//! provides:
//!
//! - `process.rs`: clocks: [`monotonic_ns`] (the writer's ordering stamp);
//!   identity: [`euid`], [`pid`]; the descriptor limit: [`nofile_limit`];
//! - `files.rs`: files and directories (opens never follow a symlink, and
//!   name files in the namespace directory relative to its fd): [`open_dir`],
//!   [`open_lock_file`], [`open_regular_read`], [`create_new`], [`stat_at`],
//!   [`unlink_at`], [`rename_at`], [`chmod_at`], [`fchmod`], [`mkdir`],
//!   [`chmod_path`], [`lstat_path`], [`fstat`], [`dev_major_minor`];
//!   whole-file I/O: [`write_all`], [`read_to_end`], [`read_kernel_table`];
//!   advisory locks: [`try_flock`], [`unlock`];
//! - `socket.rs`: AF_UNIX `SOCK_SEQPACKET` sockets: [`seqpacket_socket`],
//!   [`unix_addr`], [`bind`], [`listen`], [`connect_bounded`],
//!   [`accept`], [`peer_cred`], [`send_frame`] (with `SCM_RIGHTS`),
//!   [`recv_frame`], [`recv_packet`], [`peek_packet`], [`peek_frame_fd`],
//!   [`queued_bytes`], [`socket_buffer_max`];
//! - `poll.rs`: readiness: [`wait_writable`], [`wait_readable`] (`poll`),
//!   [`Poller`] (epoll) and [`EventFd`] (the reader's waker);
//! - `uring.rs`: the `QuietWatch` a [`Poller`] keeps where io_uring is
//!   available (`io_uring_setup`, `mmap`, `io_uring_enter`): whether its
//!   epoll set became ready, from shared memory;
//! - `memory.rs`: sealed memory files for large messages: [`sealed_memfd`],
//!   [`fixed_size_memfd`], [`check_memfd`], [`pwrite_all`], [`pread_exact`];
//! - `shm.rs`: [`SharedMap`] (`mmap` of a reusable memory file);
//! - `network.rs`, with the `network` feature: [`interfaces`] (netlink
//!   `RTM_GETLINK` + `RTM_GETADDR`), [`local_addr_for`] (`connect` +
//!   `getsockname` on a UDP socket), [`udp_socket`] (`socket` + `bind` +
//!   `SO_BROADCAST`), [`hostname`] (`/proc/sys/kernel/hostname`).
//!
//! Each wrapper's first doc line names the system call it makes.

use std::io;

mod files;
mod memory;
#[cfg(feature = "network")]
pub(crate) mod network;
mod poll;
mod process;
// With `uring`, the crate's only `unsafe` code (see the `deny(unsafe_code)`
// in lib.rs).
#[allow(unsafe_code)]
mod shm;
mod socket;
// The io_uring that tells the reader, through shared memory, that nothing
// it polls became ready (`unsafe` for its mappings; see lib.rs).
#[allow(unsafe_code)]
mod uring;

pub(crate) use files::{
    Stat, chmod_at, chmod_path, create_new, dev_major_minor, fchmod, fstat, lstat_path, mkdir,
    open_dir, open_lock_file, open_regular_read, read_kernel_table, read_to_end, rename_at,
    stat_at, try_flock, unlink_at, unlock, write_all,
};
pub(crate) use memory::{
    check_memfd, fixed_size_memfd, pread_exact, pwrite_all, sealed_memfd, writer_only_memfd,
};
#[cfg(feature = "network")]
pub(crate) use network::*;
pub(crate) use poll::{EventFd, Poller, wait_readable, wait_writable};
pub(crate) use process::{euid, monotonic_ns, nofile_limit, pid, runnable_threads, usable_cpus};
pub(crate) use shm::SharedMap;
pub(crate) use socket::{
    PeekFd, Recv, accept, bind, connect_bounded, listen, peek_frame_fd, peek_packet, peer_cred,
    queued_bytes, recv_frame, recv_packet, send_frame, seqpacket_socket, socket_buffer_max,
    unix_addr,
};

fn to_io(e: rustix::io::Errno) -> io::Error {
    io::Error::from(e)
}
