//! This process: its clock, its ids and its descriptor limit; and how
//! busy the machine's processors are.

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

/// How many threads are runnable on the whole machine right now, this one
/// included (the fourth field of `/proc/loadavg`, `runnable/total`); `None`
/// when that cannot be read.
pub(crate) fn runnable_threads() -> Option<u32> {
    use rustix::fs::{Mode, OFlags};
    let fd = rustix::fs::open(
        "/proc/loadavg",
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    let mut buf = [0u8; 128];
    let n = rustix::io::read(&fd, &mut buf).ok()?;
    parse_runnable(&buf[..n])
}

/// The runnable count in `/proc/loadavg`'s text.
fn parse_runnable(text: &[u8]) -> Option<u32> {
    let field = std::str::from_utf8(text)
        .ok()?
        .split_ascii_whitespace()
        .nth(3)?;
    field.split_once('/')?.0.parse().ok()
}

/// How many processors this process may run on (1 when unknown).
pub(crate) fn usable_cpus() -> u32 {
    std::thread::available_parallelism().map_or(1, |n| n.get() as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[test]
    fn the_runnable_count_is_parsed() {
        assert_eq!(parse_runnable(b"0.42 1.35 1.52 3/245 12345\n"), Some(3));
        assert_eq!(parse_runnable(b"0.42 1.35 1.52 17/245 1\n"), Some(17));
        assert_eq!(parse_runnable(b"0.42 1.35 1.52\n"), None);
        assert_eq!(parse_runnable(b"0.42 1.35 1.52 x/245 1"), None);
        assert_eq!(parse_runnable(b"\xff"), None);
    }

    /// Threads that keep a processor busy show in the count.
    #[test]
    fn busy_threads_are_counted_as_runnable() {
        let busy = usable_cpus() + 2;
        let stop = AtomicBool::new(false);
        let seen = std::thread::scope(|s| {
            for _ in 0..busy {
                s.spawn(|| {
                    while !stop.load(Ordering::Relaxed) {
                        std::hint::spin_loop();
                    }
                });
            }
            let mut most = 0;
            for _ in 0..200 {
                most = most.max(runnable_threads().expect("/proc/loadavg"));
                if most > busy {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            stop.store(true, Ordering::Relaxed);
            most
        });
        assert!(
            seen > busy,
            "{busy} busy threads and this one, {seen} runnable"
        );
    }
}
