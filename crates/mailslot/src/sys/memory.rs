//! Memory files for large messages: `memfd_create`, seals, `pwrite`, `pread`.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::fs::SealFlags;

use super::{Stat, fstat, to_io};

const ALL_SEALS: SealFlags = SealFlags::SEAL
    .union(SealFlags::SHRINK)
    .union(SealFlags::GROW)
    .union(SealFlags::WRITE);

/// `memfd_create("mailslot-message", MFD_CLOEXEC | MFD_ALLOW_SEALING)` and
/// `ftruncate(size)`.
fn memfd(size: u64) -> io::Result<OwnedFd> {
    let fd = rustix::fs::memfd_create(
        "mailslot-message",
        rustix::fs::MemfdFlags::CLOEXEC | rustix::fs::MemfdFlags::ALLOW_SEALING,
    )
    .map_err(to_io)?;
    rustix::fs::ftruncate(&fd, size).map_err(to_io)?;
    Ok(fd)
}

/// `pwrite(fd, data, 0)` until all of `data` is written.
pub(crate) fn pwrite_all(fd: BorrowedFd<'_>, data: &[u8]) -> io::Result<()> {
    let mut off = 0usize;
    while off < data.len() {
        match rustix::io::pwrite(fd, &data[off..], off as u64) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => off += n,
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(to_io(e)),
        }
    }
    Ok(())
}

/// `memfd_create("mailslot-message", MFD_CLOEXEC | MFD_ALLOW_SEALING)`, then
/// `write` the data and `fcntl(F_ADD_SEALS)` so nobody can change it.
pub(crate) fn sealed_memfd(data: &[u8]) -> io::Result<OwnedFd> {
    let fd = memfd(data.len() as u64)?;
    pwrite_all(fd.as_fd(), data)?;
    rustix::fs::fcntl_add_seals(&fd, ALL_SEALS).map_err(to_io)?;
    Ok(fd)
}

/// A reusable buffer that only its writer can change: a memfd of `size`
/// bytes sealed against shrinking and growing, mapped writable, then sealed
/// against every later write (`F_SEAL_FUTURE_WRITE`: no `write`, no new
/// writable mapping, through any descriptor of the file; the mapping made
/// before keeps working). `None` for the mapping when either failed; the
/// file is then sealed like [`fixed_size_memfd`] and stays writable.
pub(crate) fn writer_only_memfd(size: u64) -> io::Result<(OwnedFd, Option<super::SharedMap>)> {
    let fd = memfd(size)?;
    rustix::fs::fcntl_add_seals(&fd, SealFlags::SHRINK | SealFlags::GROW).map_err(to_io)?;
    // Without the mapping, or on a kernel without the seal (before 5.1),
    // the buffer stays writable and is filled with `pwrite`.
    let map = super::SharedMap::new(fd.as_fd(), true)
        .ok()
        .filter(|_| rustix::fs::fcntl_add_seals(&fd, SealFlags::FUTURE_WRITE).is_ok());
    rustix::fs::fcntl_add_seals(&fd, SealFlags::SEAL).map_err(to_io)?;
    Ok((fd, map))
}

/// A reusable buffer: a memfd of `size` bytes sealed against shrinking and
/// growing (so a reader's `pread` of it never comes up short) but still
/// writable, to be filled with [`pwrite_all`] again and again.
pub(crate) fn fixed_size_memfd(size: u64) -> io::Result<OwnedFd> {
    let fd = memfd(size)?;
    rustix::fs::fcntl_add_seals(&fd, SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL)
        .map_err(to_io)?;
    Ok(fd)
}

/// `fstat`, then `fcntl(F_GET_SEALS)` unless `sealed_before`: the
/// descriptor must be a fully sealed memfd of exactly `len` bytes, or with
/// `writable`, a memfd sealed against shrinking and growing of at least
/// `len` bytes (see [`fixed_size_memfd`]). `sealed_before(dev, ino)` says
/// the file was checked before (seals are never removed, so a file that had
/// them still has them).
pub(crate) fn check_memfd(
    fd: BorrowedFd<'_>,
    len: u64,
    writable: bool,
    sealed_before: impl FnOnce(u64, u64) -> bool,
) -> io::Result<Stat> {
    // A descriptor opened write-only (e.g. through `/proc/PID/fd`) passes
    // every seal check and then fails every read: refuse it here, where it
    // costs only its own connection.
    let mode = rustix::fs::fcntl_getfl(fd).map_err(to_io)? & rustix::fs::OFlags::RWMODE;
    if mode != rustix::fs::OFlags::RDONLY && mode != rustix::fs::OFlags::RDWR {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "passed memory file is not open for reading",
        ));
    }
    let st = fstat(fd)?;
    let size = st.st_size as u64;
    if size != len && !(writable && size > len) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("passed memory file holds {size} bytes, header says {len}"),
        ));
    }
    if writable && sealed_before(st.st_dev, st.st_ino) {
        return Ok(st);
    }
    let seals = rustix::fs::fcntl_get_seals(fd).map_err(to_io)?;
    let needed = if writable {
        SealFlags::SHRINK | SealFlags::GROW
    } else {
        SealFlags::SHRINK | SealFlags::GROW | SealFlags::WRITE
    };
    if !seals.contains(needed) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "passed memory file is not sealed",
        ));
    }
    Ok(st)
}

/// `pread(fd, buf, 0)` until `buf` is full.
pub(crate) fn pread_exact(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<()> {
    let mut off = 0usize;
    while off < buf.len() {
        match rustix::io::pread(fd, &mut buf[off..], off as u64) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => off += n,
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(to_io(e)),
        }
    }
    Ok(())
}
