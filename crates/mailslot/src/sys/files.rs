//! Files and directories of the namespace, and advisory locks on them.
//!
//! Opens never follow a symlink (`O_NOFOLLOW`), and files inside the
//! namespace directory are named relative to its descriptor (`*at` calls).

use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{AtFlags, FlockOperation, Mode, OFlags};

pub(crate) use rustix::fs::Stat;

use super::to_io;

/// `open(path, O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)`.
pub(crate) fn open_dir(path: &Path) -> io::Result<OwnedFd> {
    rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(to_io)
}

/// `lstat(path)`.
pub(crate) fn lstat_path(path: &Path) -> io::Result<Stat> {
    rustix::fs::lstat(path).map_err(to_io)
}

/// `mkdir(path, mode)`.
pub(crate) fn mkdir(path: &Path, mode: u32) -> io::Result<()> {
    rustix::fs::mkdir(path, Mode::from_raw_mode(mode)).map_err(to_io)
}

/// `chmod(path, mode)`.
pub(crate) fn chmod_path(path: &Path, mode: u32) -> io::Result<()> {
    rustix::fs::chmod(path, Mode::from_raw_mode(mode)).map_err(to_io)
}

/// `fstat(fd)`.
pub(crate) fn fstat(fd: BorrowedFd<'_>) -> io::Result<Stat> {
    rustix::fs::fstat(fd).map_err(to_io)
}

/// `openat(dir, name, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600)`.
///
/// Mode 0600: another user who could open the lock file could also hold a
/// `flock` on it and so pin a crashed reader's name.
pub(crate) fn open_lock_file(dir: BorrowedFd<'_>, name: &str) -> io::Result<OwnedFd> {
    rustix::fs::openat(
        dir,
        name,
        OFlags::RDWR | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )
    .map_err(to_io)
}

/// `openat(dir, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)`.
///
/// `O_NONBLOCK` keeps a planted FIFO from blocking the caller; the caller
/// checks the file type with [`fstat`].
pub(crate) fn open_regular_read(dir: BorrowedFd<'_>, name: &str) -> io::Result<OwnedFd> {
    rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(to_io)
}

/// `openat(dir, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode)`.
pub(crate) fn create_new(dir: BorrowedFd<'_>, name: &str, mode: u32) -> io::Result<OwnedFd> {
    rustix::fs::openat(
        dir,
        name,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(mode),
    )
    .map_err(to_io)
}

/// `write(fd, data)` until all of `data` is written.
pub(crate) fn write_all(fd: BorrowedFd<'_>, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        match rustix::io::write(fd, data) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => data = &data[n..],
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(to_io(e)),
        }
    }
    Ok(())
}

/// `read(fd, buf)` until end of file; at most `limit` bytes.
pub(crate) fn read_to_end(fd: BorrowedFd<'_>, limit: usize) -> io::Result<Vec<u8>> {
    let mut out = vec![0u8; 4096];
    let mut len = 0;
    loop {
        if len == out.len() {
            if out.len() >= limit {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("file larger than {limit} bytes"),
                ));
            }
            out.resize((out.len() * 2).min(limit), 0);
        }
        match rustix::io::read(fd, &mut out[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(to_io(e)),
        }
    }
    out.truncate(len);
    Ok(out)
}

/// `open(path)` and `read` to the end: a kernel table such as
/// `/proc/locks`, up to `limit` bytes. Such a file comes about a page per
/// `read` (whatever the buffer's size) and each `read` resumes at a line
/// number, so lines can be skipped or repeated while entries come and go
/// between the reads: callers that must not miss one read it more than
/// once (see `LockTable` in `namespace.rs`).
pub(crate) fn read_kernel_table(path: &str, limit: usize) -> io::Result<Vec<u8>> {
    let fd =
        rustix::fs::open(path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()).map_err(to_io)?;
    let mut out = Vec::new();
    let mut chunk = vec![0u8; 64 << 10];
    loop {
        match rustix::io::read(&fd, &mut chunk) {
            Ok(0) => return Ok(out),
            Ok(n) if out.len() + n <= limit => out.extend_from_slice(&chunk[..n]),
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{path} is larger than {limit} bytes"),
                ));
            }
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(to_io(e)),
        }
    }
}

/// `fstatat(dir, name, AT_SYMLINK_NOFOLLOW)`.
pub(crate) fn stat_at(dir: BorrowedFd<'_>, name: &str) -> io::Result<Stat> {
    rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW).map_err(to_io)
}

/// `unlinkat(dir, name, 0)`; a missing file is not an error.
pub(crate) fn unlink_at(dir: BorrowedFd<'_>, name: &str) -> io::Result<()> {
    match rustix::fs::unlinkat(dir, name, AtFlags::empty()) {
        Ok(()) | Err(rustix::io::Errno::NOENT) => Ok(()),
        Err(e) => Err(to_io(e)),
    }
}

/// `renameat(dir, from, dir, to)`.
pub(crate) fn rename_at(dir: BorrowedFd<'_>, from: &str, to: &str) -> io::Result<()> {
    rustix::fs::renameat(dir, from, dir, to).map_err(to_io)
}

/// `fchmodat(dir, name, mode, 0)`.
pub(crate) fn chmod_at(dir: BorrowedFd<'_>, name: &str, mode: u32) -> io::Result<()> {
    rustix::fs::chmodat(dir, name, Mode::from_raw_mode(mode), AtFlags::empty()).map_err(to_io)
}

/// `fchmod(fd, mode)`: the exact mode, whatever the umask.
pub(crate) fn fchmod(fd: BorrowedFd<'_>, mode: u32) -> io::Result<()> {
    rustix::fs::fchmod(fd, Mode::from_raw_mode(mode)).map_err(to_io)
}

/// `flock(fd, LOCK_EX | LOCK_NB)` or `LOCK_SH | LOCK_NB`; `Ok(false)` when held elsewhere.
pub(crate) fn try_flock(fd: BorrowedFd<'_>, exclusive: bool) -> io::Result<bool> {
    let op = if exclusive {
        FlockOperation::NonBlockingLockExclusive
    } else {
        FlockOperation::NonBlockingLockShared
    };
    match rustix::fs::flock(fd, op) {
        Ok(()) => Ok(true),
        Err(rustix::io::Errno::WOULDBLOCK) => Ok(false),
        Err(e) => Err(to_io(e)),
    }
}

/// `flock(fd, LOCK_UN)`.
pub(crate) fn unlock(fd: BorrowedFd<'_>) -> io::Result<()> {
    rustix::fs::flock(fd, FlockOperation::Unlock).map_err(to_io)
}

/// Major and minor device numbers of `dev` (`major(3)`, `minor(3)`).
pub(crate) fn dev_major_minor(dev: u64) -> (u32, u32) {
    (rustix::fs::major(dev), rustix::fs::minor(dev))
}
