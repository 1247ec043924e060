//! This process: its clock, its ids and its descriptor limit.

/// `clock_gettime(CLOCK_MONOTONIC)`, in nanoseconds.
pub(crate) fn monotonic_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    (t.tv_sec as u64).wrapping_mul(1_000_000_000) + t.tv_nsec as u64
}

/// `geteuid()`.
pub(crate) fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// `getpid()`.
pub(crate) fn pid() -> u32 {
    rustix::process::getpid().as_raw_nonzero().get() as u32
}

/// `getrlimit(RLIMIT_NOFILE)`: the soft limit on open descriptors
/// (1024 when unknown or unlimited beyond any use).
pub(crate) fn nofile_limit() -> u64 {
    rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(1 << 20)
}
