//! Shared slots: several local readers of one name, each receiving every
//! message (the robust successor of the classic CSharedMailslot).
//!
//! There is no owner to elect and so no failover: every shared reader is an
//! equal *instance* with its own listening socket `STEM.r-PID-N.sock`, and
//! writers fan each message out to every live instance.
//!
//! - Membership: each instance holds a **shared** `flock` on `STEM.lock`
//!   (an exclusive reader holds an exclusive one, so the two kinds cannot
//!   coexist on a name). After its socket is in place, a joining instance
//!   replaces `STEM.gen` (a new inode); writers compare that inode before
//!   every write and rescan the instances when it changed. So a reader that
//!   joins receives everything written after its `create` returned.
//! - Failure: a killed instance only loses its own copies. Writers drop its
//!   connection at the next write (`EPIPE`); its socket file refuses
//!   connections and is removed by the next instance that joins or leaves,
//!   or by `list --clean`. The last instance to leave removes the slot.
//! - Trust: only sockets owned by the slot's owner (the owner of
//!   `STEM.lock`), with that same user listening on them, are instances;
//!   anything else with an instance's name is ignored, and every connect
//!   is bounded by the writer's timeout.
//! - Order: each instance merges its writers by stamp like any reader, so
//!   each writer's messages arrive in order at every instance.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use crate::namespace::Namespace;
use crate::sys;

/// File name prefix of a slot's instance sockets.
pub(crate) fn instance_prefix(stem: &str) -> String {
    format!("{stem}.r-")
}

/// The generation file writers watch.
pub(crate) fn gen_file(stem: &str) -> String {
    format!("{stem}.gen")
}

/// Publishes a membership change: replaces `STEM.gen` with a new inode.
pub(crate) fn bump_generation(ns: &Namespace, stem: &str) -> io::Result<()> {
    let tmp = format!("{stem}.gen.{}.tmp", sys::pid());
    sys::unlink_at(ns.fd(), &tmp)?;
    drop(sys::create_new(ns.fd(), &tmp, 0o644)?);
    sys::rename_at(ns.fd(), &tmp, &gen_file(stem))
}

/// Instance socket names of `stem` currently in the directory: the local
/// ones (`STEM.r-ID.sock`), or with `net` the network ones (`STEM.r-ID.net.sock`).
pub(crate) fn instance_sockets(
    dir: &std::path::Path,
    stem: &str,
    net: bool,
) -> io::Result<Vec<String>> {
    let prefix = instance_prefix(stem);
    let mut out: Vec<String> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| {
            n.starts_with(&prefix)
                && n.ends_with(".sock")
                && !n.ends_with(".tmp.sock")
                && n.ends_with(".net.sock") == net
        })
        .collect();
    out.sort();
    Ok(out)
}

/// Removes instance sockets nobody listens on any more (crashed readers).
/// Never waits: a socket whose backlog is full is alive.
pub(crate) fn remove_dead_instances(ns: &Namespace, stem: &str) {
    let mut names = instance_sockets(ns.dir(), stem, false).unwrap_or_default();
    names.extend(instance_sockets(ns.dir(), stem, true).unwrap_or_default());
    for n in names {
        let r = connect(ns, &n, Some(Duration::ZERO));
        if matches!(r, Err(e) if e.kind() == io::ErrorKind::ConnectionRefused) {
            let _ = sys::unlink_at(ns.fd(), &n);
        }
    }
}

fn connect(ns: &Namespace, file: &str, timeout: Option<Duration>) -> io::Result<OwnedFd> {
    let fd = sys::seqpacket_socket(false)?;
    let addr = sys::unix_addr(ns.dir(), ns.fd(), file)?;
    sys::connect_bounded(fd.as_fd(), &addr, timeout)?;
    Ok(fd)
}

/// The uid that owns the shared slot `stem`: the owner of its lock file,
/// which the first instance created (instances all run as that user).
fn slot_owner(ns: &Namespace, stem: &str) -> io::Result<u32> {
    sys::stat_at(ns.fd(), &format!("{stem}.lock")).map(|st| st.st_uid)
}

/// Connects to the instance socket `file` only if it is the slot owner's:
/// the socket file is owned by `owner` and so is the process listening on
/// it. Another user may plant a socket with an instance's name in the
/// sticky directory; it must never receive a copy. `Ok(None)`: not an
/// instance of this slot (planted, or gone).
fn connect_instance(
    ns: &Namespace,
    file: &str,
    owner: u32,
    timeout: Option<Duration>,
) -> io::Result<Option<OwnedFd>> {
    match sys::stat_at(ns.fd(), file) {
        Ok(st) if st.st_uid == owner && st.st_mode & 0o170000 == 0o140000 => {}
        Ok(_) => return Ok(None),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    }
    let fd = match connect(ns, file, timeout) {
        Ok(fd) => fd,
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::ConnectionRefused | io::ErrorKind::NotFound
            ) =>
        {
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    // The file may have been swapped between the look and the connect.
    Ok((sys::peer_cred(fd.as_fd())?.uid == owner).then_some(fd))
}

/// A writer's connections to every instance of a shared slot.
#[derive(Debug)]
pub(crate) struct SharedTargets {
    ns: Namespace,
    stem: String,
    net: bool,
    generation_seen: Option<(u64, u64)>,
    conns: Vec<(String, OwnedFd)>,
}

impl SharedTargets {
    /// Connects to every live instance (their network sockets with `net`),
    /// waiting at most `timeout` for each; `Ok(None)` when there is none.
    pub(crate) fn open(
        ns: &Namespace,
        stem: &str,
        net: bool,
        timeout: Option<Duration>,
    ) -> io::Result<Option<SharedTargets>> {
        let mut t = SharedTargets {
            ns: ns.try_clone()?,
            stem: stem.to_string(),
            net,
            generation_seen: None,
            conns: Vec::new(),
        };
        t.refresh(timeout.map(|t| Instant::now() + t))?;
        Ok((!t.conns.is_empty()).then_some(t))
    }

    fn generation(&self) -> Option<(u64, u64)> {
        sys::stat_at(self.ns.fd(), &gen_file(&self.stem))
            .ok()
            .map(|s| (s.st_dev, s.st_ino))
    }

    /// Connects to instances that joined since the last look, each connect
    /// bounded by `deadline`. An instance whose backlog stays full past it
    /// is tried again at the next write (it gets no copy of this one);
    /// [`TimedOut`](io::ErrorKind::TimedOut) when that leaves no instance.
    pub(crate) fn refresh(&mut self, deadline: Option<Instant>) -> io::Result<()> {
        let g = self.generation();
        if g.is_some() && g == self.generation_seen {
            return Ok(());
        }
        self.generation_seen = g;
        let owner = match slot_owner(&self.ns, &self.stem) {
            Ok(uid) => uid,
            // The slot is gone: no new instance to look for.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        let mut waiting = false;
        for name in instance_sockets(self.ns.dir(), &self.stem, self.net)? {
            if self.conns.iter().any(|(n, _)| *n == name) {
                continue;
            }
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            match connect_instance(&self.ns, &name, owner, left) {
                Ok(Some(fd)) => self.conns.push((name, fd)),
                Ok(None) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => waiting = true,
                Err(e) => return Err(e),
            }
        }
        if waiting {
            // Look again next time.
            self.generation_seen = None;
            if self.conns.is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "every reader's connection queue stayed full",
                ));
            }
        }
        Ok(())
    }

    /// The live connections.
    pub(crate) fn conns(&self) -> impl Iterator<Item = (usize, BorrowedFd<'_>)> {
        self.conns
            .iter()
            .enumerate()
            .map(|(i, (_, fd))| (i, fd.as_fd()))
    }

    /// Forgets the connections at `dead` (instances that went away).
    pub(crate) fn remove(&mut self, dead: &[usize]) {
        let mut i = 0;
        self.conns.retain(|_| {
            let keep = !dead.contains(&i);
            i += 1;
            keep
        });
    }

    /// The first connection, if any.
    pub(crate) fn first(&self) -> Option<BorrowedFd<'_>> {
        self.conns.first().map(|(_, fd)| fd.as_fd())
    }

    /// Whether any instance is still connected.
    pub(crate) fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }
}
