//! The remote route (feature `network`): each message one UDP datagram to a host, or one per broadcast address for a group.

use std::os::fd::OwnedFd;

use crate::error::{Error, Result};
use crate::net::RemoteTarget;

/// Where a remote writer's datagrams go, found once when it opens.
#[derive(Debug)]
pub(super) struct Remote {
    pub(super) target: Box<RemoteTarget>,
    /// A copy of the UDP socket, for `AsFd`.
    pub(super) fd: OwnedFd,
}

impl Remote {
    /// Finds the route to `dest` (resolving a host name); `None` when it
    /// names a local slot (`\\.`, or this host's own name).
    pub(super) fn open(
        dest: &crate::Destination,
        opts: &crate::SendOptions,
    ) -> Result<Option<Remote>> {
        let Some(target) = crate::net::open_target(dest, opts)? else {
            return Ok(None);
        };
        let fd = OwnedFd::from(target.socket().try_clone().map_err(|e| {
            Error::Network(crate::net::io_error("duplicating the socket for", dest, e))
        })?);
        Ok(Some(Remote {
            target: Box::new(target),
            fd,
        }))
    }

    /// Sends each of `messages` as its datagrams, all sizes checked first;
    /// on a failure part-way, how many were sent with the error.
    pub(super) fn write<M: AsRef<[u8]>>(&self, messages: &[M]) -> Result<(), (usize, Error)> {
        self.target
            .send_all(messages)
            .map_err(|(n, e)| (n, Error::Network(e)))
    }
}
