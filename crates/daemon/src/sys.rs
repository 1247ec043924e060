//! The daemon's one seam to the operating system.
//!
//! Provides:
//!
//! - privileges: [`lookup_user`] and [`user_name`] (`/etc/passwd`), [`drop_privileges`]
//!   (`setgroups`, `setresgid`, `setresuid`), [`read_ids`]
//!   (`/proc/self/status`), [`thread_count`];
//! - interfaces: [`interfaces`] and [`local_addr_for`], re-exported from
//!   the library's seam (netlink, `connect` + `getsockname`);
//! - systemd: [`activated_udp_socket`] (`LISTEN_FDS`), [`notify`]
//!   (`NOTIFY_SOCKET`);
//! - sockets: [`enlarge_receive_buffer`] (`SO_RCVBUFFORCE` / `SO_RCVBUF`);
//! - nmbd's unexpected socket: [`connect_unix_stream`], [`send_all_now`],
//!   [`recv_now`] (`socket`/`connect`, `send`, `recv`, all non-blocking);
//! - identity: [`euid`].
//!
//! Each function's first doc line names what it calls.

use std::io;
use std::net::UdpSocket;
use std::os::fd::{FromRawFd, OwnedFd};

/// `geteuid()`.
pub fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// A user from `/etc/passwd`: `(uid, gid)`.
///
/// Reads the file directly (no NSS): system users such as the `mailslot`
/// service user are local accounts.
pub fn lookup_user(name: &str) -> Option<(u32, u32)> {
    let text = std::fs::read_to_string("/etc/passwd").ok()?;
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 4 && f[0] == name).then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))?
    })
}

/// The name of `uid` in `/etc/passwd` (no NSS, like [`lookup_user`]).
pub fn user_name(uid: u32) -> Option<String> {
    let text = std::fs::read_to_string("/etc/passwd").ok()?;
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 4 && f[2].parse() == Ok(uid)).then(|| f[0].to_string())
    })
}

/// Reads the `Threads:` line of `/proc/self/status`.
pub fn thread_count() -> io::Result<u32> {
    let s = std::fs::read_to_string("/proc/self/status")?;
    s.lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| io::Error::other("no Threads: line in /proc/self/status"))
}

/// Reads the `Uid:` and `Gid:` lines of `/proc/self/status`: real,
/// effective, saved and filesystem ids, and the `Groups:` line.
pub fn read_ids() -> io::Result<([u32; 4], [u32; 4], Vec<u32>)> {
    let s = std::fs::read_to_string("/proc/self/status")?;
    let ids = |key: &str| -> io::Result<[u32; 4]> {
        let line = s
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .ok_or_else(|| io::Error::other(format!("no {key} line in /proc/self/status")))?;
        let v: Vec<u32> = line
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        v.try_into()
            .map_err(|_| io::Error::other(format!("bad {key} line in /proc/self/status")))
    };
    let groups = s
        .lines()
        .find_map(|l| l.strip_prefix("Groups:"))
        .unwrap_or("")
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    Ok((ids("Uid:")?, ids("Gid:")?, groups))
}

/// `setgroups([])`, `setresgid(gid, gid, gid)`, `setresuid(uid, uid, uid)`.
///
/// On Linux these system calls change only the calling thread, so the
/// caller must be single-threaded: this checks `/proc/self/status` first and
/// refuses otherwise, then checks afterwards that every uid and gid (real,
/// effective, saved, filesystem) is the target and no supplementary group
/// is left.
pub fn drop_privileges(uid: u32, gid: u32) -> io::Result<()> {
    let threads = thread_count()?;
    if threads != 1 {
        return Err(io::Error::other(format!(
            "refusing to drop privileges with {threads} threads running (set*id is per thread on Linux)"
        )));
    }
    let g = rustix::process::Gid::from_raw(gid);
    let u = rustix::process::Uid::from_raw(uid);
    rustix::thread::set_thread_groups(&[]).map_err(io::Error::from)?;
    rustix::thread::set_thread_res_gid(g, g, g).map_err(io::Error::from)?;
    rustix::thread::set_thread_res_uid(u, u, u).map_err(io::Error::from)?;
    let (uids, gids, groups) = read_ids()?;
    if uids != [uid; 4] || gids != [gid; 4] || !groups.is_empty() {
        return Err(io::Error::other(format!(
            "privileges were not dropped: uids {uids:?}, gids {gids:?}, groups {groups:?}; wanted {uid}/{gid}"
        )));
    }
    Ok(())
}

pub use mailslot::net::{Interface, interfaces, local_addr_for};

/// The UDP socket systemd passed (`LISTEN_PID` = us, `LISTEN_FDS` >= 1: fd 3).
///
/// Clears the variables so children do not inherit them.
pub fn activated_udp_socket() -> Option<UdpSocket> {
    let pid: u32 = std::env::var("LISTEN_PID").ok()?.parse().ok()?;
    let fds: u32 = std::env::var("LISTEN_FDS").ok()?.parse().ok()?;
    if pid != std::process::id() || fds < 1 {
        return None;
    }
    // SAFETY: the variables are cleared before any other thread exists
    // (the daemon is single-threaded until it has dropped privileges).
    unsafe {
        std::env::remove_var("LISTEN_PID");
        std::env::remove_var("LISTEN_FDS");
        std::env::remove_var("LISTEN_FDNAMES");
    }
    // SAFETY: sd_listen_fds(3): with LISTEN_PID equal to our pid, fd 3 is an
    // open socket handed to this process and owned by nobody else in it.
    let fd = unsafe { OwnedFd::from_raw_fd(3) };
    let t = rustix::net::sockopt::socket_type(&fd).ok()?;
    if t != rustix::net::SocketType::DGRAM {
        return None;
    }
    Some(UdpSocket::from(fd))
}

/// `setsockopt(SO_RCVBUFFORCE, bytes)` (root only), else
/// `setsockopt(SO_RCVBUF, bytes)` (capped by `net.core.rmem_max`); then
/// `getsockopt(SO_RCVBUF)`: the size the kernel granted (it doubles the
/// request for its bookkeeping). Never shrinks a larger buffer.
pub fn enlarge_receive_buffer(sock: &UdpSocket, bytes: usize) -> io::Result<usize> {
    let now = rustix::net::sockopt::socket_recv_buffer_size(sock)?;
    if now >= bytes {
        return Ok(now);
    }
    if rustix::net::sockopt::set_socket_recv_buffer_size_force(sock, bytes).is_err() {
        rustix::net::sockopt::set_socket_recv_buffer_size(sock, bytes)?;
    }
    Ok(rustix::net::sockopt::socket_recv_buffer_size(sock)?)
}

/// `socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC)` and
/// `connect(path)`: a non-blocking stream connection.
///
/// Never waits: a listener whose backlog is full gives `EAGAIN` (an error
/// here; the caller tries again later) instead of blocking.
pub fn connect_unix_stream(path: &std::path::Path) -> io::Result<OwnedFd> {
    use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};
    let fd = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
        None,
    )?;
    let addr = SocketAddrUnix::new(path)?;
    match rustix::net::connect(&fd, &addr) {
        Ok(()) => Ok(fd),
        Err(rustix::io::Errno::AGAIN) => Err(io::Error::new(
            io::ErrorKind::WouldBlock,
            format!("{}: the listener's backlog is full", path.display()),
        )),
        Err(e) => Err(io::Error::new(
            io::Error::from(e).kind(),
            format!("{}: {e}", path.display()),
        )),
    }
}

/// `send(fd, bytes, MSG_DONTWAIT | MSG_NOSIGNAL)`: all of `bytes` at once,
/// or an error (a fresh stream socket's buffer holds a small message).
pub fn send_all_now(fd: &OwnedFd, bytes: &[u8]) -> io::Result<()> {
    let flags = rustix::net::SendFlags::DONTWAIT | rustix::net::SendFlags::NOSIGNAL;
    match rustix::net::send(fd, bytes, flags)? {
        n if n == bytes.len() => Ok(()),
        n => Err(io::Error::other(format!(
            "sent {n} of {} bytes without waiting",
            bytes.len()
        ))),
    }
}

/// `recv(fd, buf, MSG_DONTWAIT)`: `Some(n)` (0 = the peer closed), `None`
/// when nothing is there now. Retries on `EINTR`.
pub fn recv_now(fd: &OwnedFd, buf: &mut [u8]) -> io::Result<Option<usize>> {
    loop {
        match rustix::net::recv(fd, &mut *buf, rustix::net::RecvFlags::DONTWAIT) {
            Ok((n, _)) => return Ok(Some(n)),
            Err(rustix::io::Errno::AGAIN) => return Ok(None),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// `sendto(NOTIFY_SOCKET, state)`: tells systemd our state, e.g. `READY=1`.
/// Does nothing outside systemd.
pub fn notify(state: &str) -> io::Result<()> {
    use std::os::unix::net::UnixDatagram;
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return Ok(());
    };
    let sock = UnixDatagram::unbound()?;
    let bytes = path.as_encoded_bytes();
    if let Some(abstract_name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(abstract_name)?;
        sock.send_to_addr(state.as_bytes(), &addr)?;
    } else {
        sock.send_to(state.as_bytes(), &path)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interfaces_and_ids_can_be_read() {
        // Every machine has /proc and netlink; the list may be empty.
        interfaces().unwrap();
        let (uids, _, _) = read_ids().unwrap();
        assert_eq!(uids[1], euid());
        assert!(thread_count().unwrap() >= 1);
    }
}
