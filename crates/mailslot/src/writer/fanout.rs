//! The shared route: each message to every instance of a shared slot, an instance failing part-way dropped (and connected again at a later write).

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::local::Local;
use super::{Slot, Tally, conn};
use crate::error::{Error, Result, io_err};
use crate::frame::{Header, INLINE_MAX, Kind};
use crate::namespace::Namespace;
use crate::receipt::Ledger;
use crate::shared::SharedTargets;
use crate::sys;

/// A writer's connections to the instances of a shared slot.
#[derive(Debug)]
pub(super) struct Fanout {
    /// A copy of the first instance's connection, on the socket only:
    /// what `AsFd` gives and [`wait_accepted`](Local::wait_accepted)
    /// asks, even after that instance has gone.
    pub(super) first: Local,
    /// Every instance. Held across stamp-and-send, so every instance gets
    /// this writer's messages in stamp order.
    targets: Mutex<SharedTargets>,
}

impl Fanout {
    /// Connects to every live instance of the shared slot `stem` (their
    /// network sockets with `net`), waiting at most `timeout` for each.
    pub(super) fn connect(
        ns: &Namespace,
        stem: &str,
        name: &str,
        net: bool,
        timeout: Option<Duration>,
    ) -> Result<Fanout> {
        let targets = match SharedTargets::open(ns, stem, net, timeout) {
            Ok(Some(t)) => t,
            Ok(None) => {
                return Err(Error::NotFound {
                    name: name.to_string(),
                });
            }
            Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                return Err(Error::TimedOut {
                    name: name.to_string(),
                    op: "connecting to",
                    timeout: timeout.unwrap_or_default(),
                });
            }
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                return Err(Error::PermissionDenied {
                    name: name.to_string(),
                    detail: format!(
                        "a reader of this shared slot does not let uid {} write to it",
                        sys::euid()
                    ),
                });
            }
            Err(e) => return Err(io_err("connecting to the shared slot's readers", name)(e)),
        };
        let fd = targets
            .first()
            .map(|f| f.try_clone_to_owned())
            .transpose()
            .map_err(io_err("duplicating a socket", name))?
            .ok_or_else(|| Error::NotFound {
                name: name.to_string(),
            })?;
        Ok(Fanout {
            first: Local::new(fd, false, false),
            targets: Mutex::new(targets),
        })
    }

    /// Sends `data` as one message to every instance: inline, or in a
    /// sealed memory file of its own when large.
    pub(super) fn write(&self, slot: &Slot, tally: &Tally, data: &[u8]) -> Result<()> {
        let len = slot.frame_len(data)?;
        if data.len() > INLINE_MAX {
            let memfd =
                sys::sealed_memfd(data).map_err(io_err("preparing a large message", &slot.name))?;
            let head = Header::new(Kind::Memfd, 0, len);
            return self.send(slot, tally, head, &[], Some(memfd.as_fd()));
        }
        self.send(slot, tally, Header::new(Kind::Inline, 0, len), data, None)
    }

    /// Stamps one frame and sends it to every instance, dropping those
    /// that have gone; fails with `ReaderClosed` only when none is left.
    /// Instances that joined since the last send are connected first (and
    /// asked for receipts, when the writer keeps them).
    pub(super) fn send(
        &self,
        slot: &Slot,
        tally: &Tally,
        header: Header,
        payload: &[u8],
        memfd: Option<BorrowedFd<'_>>,
    ) -> Result<()> {
        let deadline = slot.deadline();
        let mut t = self.targets.lock().unwrap_or_else(|p| p.into_inner());
        let header = header.stamped(sys::monotonic_ns());
        t.refresh(deadline).map_err(|e| match e.kind() {
            io::ErrorKind::TimedOut => slot.timed_out("connecting to"),
            _ => io_err("looking for the shared slot's readers", &slot.name)(e),
        })?;
        let mut dead = Vec::new();
        let mut failure = None;
        let mut reached = 0;
        let mut ledger = tally.ledger();
        for (i, fd) in t.conns() {
            if let Some(ledger) = ledger.as_deref_mut() {
                let key = fd.as_raw_fd() as u64;
                if !ledger.live_keys().any(|k| k == key)
                    && conn::send_receipts(slot, fd, tally, ledger, deadline).is_err()
                {
                    dead.push(i);
                    continue;
                }
            }
            match conn::send_frame(slot, fd, header, payload, memfd, deadline) {
                Ok(()) => reached += 1,
                Err(Error::ReaderClosed { .. }) => dead.push(i),
                // Readers that have this frame already must not get it
                // twice: this one is given up instead (and connected
                // again at a later write).
                Err(_) if reached > 0 => dead.push(i),
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        if let Some(ledger) = ledger.as_deref_mut() {
            leave(ledger, &t, &dead, tally.sent());
        }
        t.remove(&dead);
        if let Some(e) = failure {
            return Err(e);
        }
        if t.is_empty() {
            return Err(Error::ReaderClosed {
                name: slot.name.clone(),
            });
        }
        Ok(())
    }

    /// Asks every instance for receipts, into `ledger`.
    pub(super) fn ask_receipts(
        &self,
        slot: &Slot,
        tally: &Tally,
        ledger: &mut Ledger,
        deadline: Option<Instant>,
    ) -> Result<()> {
        let t = self.targets.lock().unwrap_or_else(|p| p.into_inner());
        for (_, fd) in t.conns() {
            conn::send_receipts(slot, fd, tally, ledger, deadline)?;
        }
        Ok(())
    }

    /// Looks, without waiting, which instances are still there; drops and
    /// revokes the receipts of those gone. False when none is left.
    pub(super) fn readers_alive(&self, tally: &Tally) -> bool {
        let sent = tally.sent();
        let mut t = self.targets.lock().unwrap_or_else(|p| p.into_inner());
        let dead: Vec<usize> = t
            .conns()
            .filter(|(_, fd)| conn::peer_closed(*fd))
            .map(|(i, _)| i)
            .collect();
        tally.with_ledger(|l, _| leave(l, &t, &dead, sent));
        t.remove(&dead);
        !t.is_empty()
    }
}

/// Revokes the receipts of the instances at `dead`, gone after `sent`
/// messages.
fn leave(ledger: &mut Ledger, t: &SharedTargets, dead: &[usize], sent: u64) {
    for (i, fd) in t.conns() {
        if dead.contains(&i) {
            ledger.leave(fd.as_raw_fd() as u64, sent);
        }
    }
}
