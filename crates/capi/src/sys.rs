//! The crate's only system calls.
//!
//! - [`boottime_ms`]: `clock_gettime(CLOCK_BOOTTIME)`, for Win32's
//!   `GetTickCount` (milliseconds since boot, suspend included, as on
//!   Windows).
//! - [`errno_of`]: the `errno` inside an `io::Error` (no call), for mapping
//!   to Win32 error numbers.

/// `clock_gettime(CLOCK_BOOTTIME)` in milliseconds.
pub(crate) fn boottime_ms() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Boottime);
    (t.tv_sec as u64)
        .wrapping_mul(1000)
        .wrapping_add(t.tv_nsec as u64 / 1_000_000)
}

/// The `errno` an I/O error carries, if any.
pub(crate) fn errno_of(e: &std::io::Error) -> Option<rustix::io::Errno> {
    rustix::io::Errno::from_io_error(e)
}
