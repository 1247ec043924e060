//! Accepting writers: trust, each uid's share of connections, and pausing when out of descriptors.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use super::conn::Conn;
use super::{LISTENER, NET_LISTENER, Reader, ReaderOptions, Sender, WAKER, notify};
use crate::error::{Result, io_err};
use crate::frame::{Kind, Refusal};
use crate::namespace::Namespace;
use crate::sys;

/// At most this many connections are accepted per listener and wake.
const ACCEPT_PER_WAKE: usize = 16;

/// The most connections one writer uid (other than root and the slot's
/// owner) may hold: a quarter of the descriptors the reader may open,
/// less a reserve, so that users who hold idle connections cannot lock
/// others out. `nofile`: the descriptor limit.
pub(super) fn uid_share(nofile: u64) -> usize {
    (nofile.saturating_sub(64) / 4).max(16) as usize
}

/// How long accepting pauses after running out of descriptors.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// The slot's listening sockets, registered with a new poller beside the
/// waker's eventfd.
pub(super) struct Listeners {
    pub(super) listener: OwnedFd,
    pub(super) net_listener: Option<OwnedFd>,
    pub(super) poller: sys::Poller,
    pub(super) efd: sys::EventFd,
}

impl Listeners {
    /// Binds `BASE.sock` (mode `options.mode`) and, for a slot that
    /// accepts network messages, `BASE.net.sock` (mode 0666).
    pub(super) fn open(
        ns: &Namespace,
        base: &str,
        options: &ReaderOptions,
        display: &str,
    ) -> Result<Listeners> {
        let listener = bind_socket(ns, &format!("{base}.sock"), options.mode)
            .map_err(io_err("creating the slot's socket", display))?;
        let mut poller =
            sys::Poller::new().map_err(io_err("creating an epoll instance", display))?;
        let efd = sys::EventFd::new().map_err(io_err("creating an eventfd", display))?;
        poller
            .add(listener.as_fd(), LISTENER)
            .and_then(|()| poller.add(efd.as_fd(), WAKER))
            .map_err(io_err("registering with epoll", display))?;
        // Network socket (issue 6).
        let net_sock = format!("{base}.net.sock");
        sys::unlink_at(ns.fd(), &net_sock).map_err(io_err("removing a stale socket", display))?;
        let net_listener = if options.accept_remote {
            let fd = bind_socket(ns, &net_sock, 0o666)
                .map_err(io_err("creating the slot's network socket", display))?;
            poller
                .add(fd.as_fd(), NET_LISTENER)
                .map_err(io_err("registering with epoll", display))?;
            Some(fd)
        } else {
            None
        };
        Ok(Listeners {
            listener,
            net_listener,
            poller,
            efd,
        })
    }
}

impl Reader {
    pub(super) fn accept_all(&mut self, net: bool, all: bool) -> Result<()> {
        // A bounded number per wake: a user who connects and closes in a
        // loop must not keep the reader from the writers it has (the
        // listener stays readable, so the rest come next pass).
        for _ in 0..ACCEPT_PER_WAKE {
            let listener = match (net, &self.net_listener) {
                (false, _) => &self.listener,
                (true, Some(l)) => l,
                (true, None) => return Ok(()),
            };
            let fd = match sys::accept(listener.as_fd()) {
                Ok(Some(fd)) => fd,
                Ok(None) => return Ok(()),
                // Out of descriptors or memory: leave the rest in the backlog
                // and stop polling the listeners for a while (they stay
                // readable, so every wait would return at once).
                Err(e) if matches!(e.raw_os_error(), Some(23 | 24 | 105 | 12)) => {
                    self.pause_accepting();
                    return Ok(());
                }
                Err(e) => return Err(io_err("accepting a writer", &self.display)(e)),
            };
            let Ok(cred) = sys::peer_cred(fd.as_fd()) else {
                continue;
            };
            let trusted = cred.uid == 0
                || cred.uid == self.dir_owner
                || (net && self.trust.get(&self.ns).contains(&cred.uid));
            let refusal = if net && !trusted {
                // Only the daemon may use the network socket.
                Some(Refusal::Untrusted)
            } else if cred.uid != 0
                && cred.uid != self.owner
                && !(net && trusted)
                && self.per_uid.get(&cred.uid).copied().unwrap_or(0) >= self.uid_share
            {
                Some(Refusal::TooManyConnections)
            } else {
                None
            };
            if let Some(why) = refusal {
                // Said before the close, so the writer can tell why.
                notify(fd.as_fd(), Kind::Refused, why as u16, 0);
                self.refused_conns += 1;
                continue;
            }
            // The writer (the daemon above all) learns that what it writes
            // will be read: see `Writer::wait_accepted`.
            notify(fd.as_fd(), Kind::Welcome, 0, 0);
            let sender = Sender {
                pid: cred.pid,
                uid: cred.uid,
                gid: cred.gid,
                remote: None,
            };
            let conn = Conn::new(fd, sender, trusted, net);
            let idx = match self.free.pop() {
                Some(i) => i,
                None => {
                    self.conns.push(None);
                    self.conns.len() - 1
                }
            };
            if self.poller.add(conn.fd.as_fd(), idx as u64).is_err() {
                self.free.push(idx);
                continue;
            }
            *self.per_uid.entry(cred.uid).or_insert(0) += 1;
            self.conns[idx] = Some(conn);
            // It may have written already.
            self.fill(idx, all, true);
        }
        Ok(())
    }

    pub(super) fn remove_conn(&mut self, idx: usize) {
        if let Some(c) = self.conns[idx].take() {
            if let Some(n) = self.per_uid.get_mut(&c.sender.uid) {
                *n -= 1;
                if *n == 0 {
                    self.per_uid.remove(&c.sender.uid);
                }
            }
            let _ = self.poller.delete(c.fd.as_fd());
            if let Some(r) = &c.ring {
                let _ = self.poller.delete(r.wake.as_fd());
                self.rings -= 1;
            }
            self.free.push(idx);
            drop(c);
            // A descriptor is free again: a writer waiting may get it.
            if self.accept_paused_until.is_some() {
                self.resume_accepting();
            }
        }
    }

    fn pause_accepting(&mut self) {
        if self.accept_paused_until.is_none() {
            let _ = self.poller.delete(self.listener.as_fd());
            if let Some(l) = &self.net_listener {
                let _ = self.poller.delete(l.as_fd());
            }
        }
        self.accept_paused_until = Some(Instant::now() + ACCEPT_PAUSE);
    }

    pub(super) fn resume_accepting(&mut self) {
        if self.accept_paused_until.take().is_some() {
            let _ = self.poller.add(self.listener.as_fd(), LISTENER);
            if let Some(l) = &self.net_listener {
                let _ = self.poller.add(l.as_fd(), NET_LISTENER);
            }
        }
    }
}

/// Binds the socket `file` under a temporary name, sets its mode, starts
/// listening, then renames it into place, so no writer ever sees a socket
/// with the wrong permissions.
fn bind_socket(ns: &Namespace, file: &str, mode: u32) -> io::Result<OwnedFd> {
    let stem = file.strip_suffix(".sock").unwrap_or(file);
    let tmp = format!("{stem}.{}.tmp.sock", sys::pid());
    sys::unlink_at(ns.fd(), &tmp)?;
    let fd = sys::seqpacket_socket(true)?;
    let addr = sys::unix_addr(ns.dir(), ns.fd(), &tmp)?;
    sys::bind(fd.as_fd(), &addr)?;
    let r = sys::chmod_at(ns.fd(), &tmp, mode)
        .and_then(|()| sys::listen(fd.as_fd(), 4096))
        .and_then(|()| sys::rename_at(ns.fd(), &tmp, file));
    if r.is_err() {
        let _ = sys::unlink_at(ns.fd(), &tmp);
    }
    r.map(|()| fd)
}
