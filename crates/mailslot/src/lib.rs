//! Windows-style mailslots for Linux.
//!
//! A mailslot is a named, one-way, message-oriented channel: one process
//! creates it and reads whole messages ([`Reader`], Windows' "server"); any
//! number of processes open it by name and write ([`Writer`], the "client").
//! This crate keeps Windows' local semantics: case-insensitive names with backslash levels,
//! first-in-first-out delivery across writers, zero-length messages, a read
//! timeout of zero, N ms or forever, a too-small buffer that fails and keeps
//! the message, and a slot that dies with its reader. Every message carries
//! who sent it. `docs/windows-semantics.md` in the repository lists each
//! Windows behaviour (the B-numbers these docs cite), what this crate does
//! about it and the test that shows it.
//!
//! # Quick start
//!
//! ```
//! use mailslot::{Namespace, Reader, ReaderOptions, SlotName, Writer};
//! # let tmp = tempfile::tempdir()?;
//! # let ns = Namespace::at(tmp.path())?;
//! // Real programs call `Reader::create` / `Writer::open`, which find the
//! // machine-wide directory (`$MAILSLOT_DIR`, `/run/mailslot` or `/tmp/.mailslot`).
//!
//! let name = SlotName::parse(r"\\.\mailslot\demo\jobs")?;
//! let mut reader = Reader::create_in(&ns, &name, &ReaderOptions::default().max_message_size(1024))?;
//!
//! // Names are case-insensitive.
//! let writer = Writer::open_in(&ns, &SlotName::parse(r"\\.\MAILSLOT\Demo\Jobs")?)?;
//! writer.write(b"hello")?;
//! writer.write(b"")?; // zero-length messages are real
//!
//! let status = reader.info()?;
//! assert_eq!((status.count, status.next_size), (2, Some(5)));
//!
//! let msg = reader.read_message()?;
//! assert_eq!(msg.data, b"hello");
//! assert_eq!(msg.sender.pid, std::process::id());
//!
//! let mut buf = [0u8; 16];
//! assert_eq!(reader.read(&mut buf)?, 0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # How it works
//!
//! The reader owns an `AF_UNIX` `SOCK_SEQPACKET` socket in the namespace
//! directory; each writer holds one connection, which tells the reader who
//! the writer is and when it has gone. Messages up to 64 KiB then travel
//! through a ring in memory the two share, one per connection, with no
//! system call per message while the reader keeps up. Each message carries
//! its writer's `CLOCK_MONOTONIC` stamp, and the reader merges the
//! per-writer queues in stamp order, so writes that happen one after
//! another, from any processes, are read in that order. Messages over 64
//! KiB travel in memory files passed on the socket: buffers the writer
//! reuses once the reader has copied a message out (see
//! [`Writer::set_large_message_cache`]), or sealed one-off files. See
//! `ARCHITECTURE.md` for the full design.
//!
//! # Remote destinations
//!
//! With the `network` feature (on by default), [`Writer::open_destination`]
//! also opens `\\HOST\mailslot\x`, `\\DOMAIN\mailslot\x` and
//! `\\*\mailslot\x`: each write is one NetBIOS datagram on UDP 138
//! (DIRECT_UNIQUE to `HOST<00>`, or DIRECT_GROUP to `DOMAIN<00>` on every
//! broadcast address), at most 424 bytes, checked before anything is sent.
//! [`SendOptions`] says who we are and how to reach the LAN; [`net`] has the
//! parts (name resolution, group sends) for other frames. Receiving is the
//! `mailslot daemon`'s job (crate `mailslot-daemon`).
//!
//! ```no_run
//! # #[cfg(feature = "network")] {
//! use mailslot::{Destination, SendOptions, Writer};
//!
//! let opts = SendOptions {
//!     address: Some("192.0.2.7".parse()?), // skip resolving PEERA
//!     ..SendOptions::default()             // our host name, WORKGROUP, UDP 138
//! };
//! let peer = Writer::open_destination_with(&Destination::parse(r"\\PEERA\mailslot\chat")?, &opts, None)?;
//! peer.write(b"hello, PEERA")?;
//!
//! let everyone = Writer::open_destination(&Destination::parse(r"\\*\mailslot\chat")?)?;
//! everyone.write(b"hello, workgroup")?;
//! # }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Queued, callback and async use
//!
//! [`QueuedWriter`] queues messages with a priority and delivers them from a
//! background thread, waiting for a slot that does not exist yet and
//! following a reader that restarts ([`queued`] explains the delivery
//! guarantee). [`CallbackReader`] runs a callback for each message on its
//! own thread. With the `tokio` feature, `AsyncReader` is a `Stream` of
//! messages and `AsyncWriter` writes without blocking the runtime
//! (`async_io`).
#![deny(missing_docs)]
// The crate docs link the `network` items; without the feature they are plain text.
#![cfg_attr(not(feature = "network"), allow(rustdoc::broken_intra_doc_links))]
// Only `sys/shm.rs` (shared mappings of memory files) and `sys/uring.rs`
// (the reader's io_uring watch) may use `unsafe`.
#![deny(unsafe_code)]

#[cfg(feature = "tokio")]
pub mod async_io;
pub mod callback;
mod error;
mod frame;
mod memfd_pool;
pub mod name;
mod namespace;
#[cfg(feature = "network")]
pub mod net;
pub mod queued;
mod reader;
mod receipt;
mod ring;
mod shared;
mod sys;
#[cfg(test)]
mod testing;
#[doc(hidden)]
pub mod watch;
mod writer;

#[cfg(feature = "tokio")]
pub use async_io::{AsyncReader, AsyncWriter};
pub use callback::{CallbackError, CallbackReader};
pub use error::{Error, Result};
pub use frame::RemoteOrigin;
pub use name::{Destination, NameError, SlotName};
pub use namespace::{ENV_DIR, Namespace, RUN_DIR, SlotInfo, TMP_DIR};
#[cfg(feature = "network")]
pub use net::{Route, SendError, SendOptions};
pub use queued::{
    Overflow, Priority, QueueError, QueuedMessage, QueuedOptions, QueuedStats, QueuedWriter,
    Undelivered,
};
pub use reader::{Message, Reader, ReaderOptions, Sender, SlotStatus, Waker};
pub use writer::Writer;
