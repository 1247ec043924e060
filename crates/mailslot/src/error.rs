//! The error type of slot operations.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use crate::name::NameError;

/// Why a mailslot operation failed.
///
/// Every message names the slot (as `\\.\mailslot\NAME`) or the directory
/// involved and, where there is one, what to do about it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The name was not a valid mailslot name.
    #[error(transparent)]
    InvalidName(#[from] NameError),
    /// `create`: a live reader already owns this name (Windows: ERROR_ALREADY_EXISTS).
    #[error(
        "mailslot {name} already exists: a live reader (pid {pid}) owns it; choose another name or stop that reader"
    )]
    AlreadyExists {
        /// The slot.
        name: String,
        /// The owning reader's process id, when known (0 otherwise).
        pid: u32,
    },
    /// `create`: shared and non-shared readers cannot hold one name together.
    #[error("mailslot {name} cannot be created: {detail}")]
    SharingConflict {
        /// The slot.
        name: String,
        /// Which kind holds the name, and what to do.
        detail: String,
    },
    /// `open`: no live reader has created this name (Windows: ERROR_FILE_NOT_FOUND).
    #[error("mailslot {name} not found: no reader has created it; start a reader first")]
    NotFound {
        /// The slot.
        name: String,
    },
    /// The slot's mode or the directory's permissions do not let this user in.
    #[error("permission denied for mailslot {name}: {detail}")]
    PermissionDenied {
        /// The slot.
        name: String,
        /// What was refused, and what would allow it.
        detail: String,
    },
    /// The message is larger than the slot's maximum message size; nothing was queued.
    #[error(
        "message of {size} bytes is larger than the maximum message size of {max} bytes of mailslot {name}; nothing was sent"
    )]
    MessageTooLarge {
        /// The slot.
        name: String,
        /// The message's size.
        size: usize,
        /// The slot's limit.
        max: u64,
    },
    /// The caller's buffer cannot hold the next message; the message stays queued.
    #[error(
        "buffer of {got} bytes is too small for the next message of {needed} bytes on mailslot {name}; the message stays queued, read again with at least {needed} bytes"
    )]
    BufferTooSmall {
        /// The slot.
        name: String,
        /// The size of the next message.
        needed: usize,
        /// The size of the buffer given.
        got: usize,
    },
    /// A read found no message, or a write found no room, within the timeout (Windows: ERROR_SEM_TIMEOUT).
    #[error("timed out after {} ms {op} mailslot {name}", timeout.as_millis())]
    TimedOut {
        /// The slot.
        name: String,
        /// `"reading from"` or `"writing to"`.
        op: &'static str,
        /// The timeout that expired.
        timeout: Duration,
    },
    /// The reader closed the slot (or died); this writer can no longer reach it.
    #[error(
        "the reader of mailslot {name} has gone; messages not yet read were discarded; open the slot again once a new reader exists"
    )]
    ReaderClosed {
        /// The slot.
        name: String,
    },
    /// The reader refused this writer's connection; nothing written on it
    /// is read. `detail` says why and what to do.
    #[error("mailslot {name} refused the connection: {detail}")]
    Refused {
        /// The slot.
        name: String,
        /// Why, and what to do.
        detail: String,
    },
    /// A waiting read was woken by [`Waker::wake`](crate::Waker::wake).
    #[error("read on mailslot {name} was interrupted by its waker")]
    Interrupted {
        /// The slot.
        name: String,
    },
    /// An option or argument was out of range.
    #[error("invalid argument for mailslot {name}: {detail}")]
    InvalidArgument {
        /// The slot.
        name: String,
        /// What was wrong and what is allowed.
        detail: String,
    },
    /// The namespace directory is missing, unusable or unsafe.
    #[error("mailslot directory {}: {problem}", dir.display())]
    Namespace {
        /// The directory.
        dir: PathBuf,
        /// What is wrong and what to do.
        problem: String,
    },
    /// A file in the namespace directory is not one this library made for us.
    #[error("refusing unsafe file {} for mailslot {name}: {problem}", path.display())]
    UnsafeFile {
        /// The slot.
        name: String,
        /// The file.
        path: PathBuf,
        /// What is wrong with it and what to do.
        problem: String,
    },
    /// A remote destination (`\\HOST`, `\\DOMAIN`, `\\*`) could not be
    /// reached or a message for it does not fit a datagram (the message
    /// states the 424/443-byte limit, the host or the address).
    #[cfg(feature = "network")]
    #[error(transparent)]
    Network(#[from] crate::net::SendError),
    /// The operation works on local slots only, not on this remote writer.
    #[error("{op} works on local slots only, not on the remote destination {name}")]
    LocalOnly {
        /// The operation.
        op: &'static str,
        /// The destination.
        name: String,
    },
    /// A system call failed.
    #[error("{op} for mailslot {name} failed: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The slot.
        name: String,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn io_err<'a>(op: &'static str, name: &'a str) -> impl FnOnce(io::Error) -> Error + 'a {
    move |source| Error::Io {
        op,
        name: name.to_string(),
        source,
    }
}
