//! Async reader and writer on tokio (feature `tokio`).
//!
//! [`AsyncReader`] registers the [`Reader`]'s epoll descriptor with tokio's
//! reactor ([`AsyncFd`]) and reads without waiting; it is a
//! [`Stream`](futures_core::Stream) of messages. [`AsyncWriter`] registers
//! the [`Writer`]'s socket and sends without waiting. Neither blocks a
//! runtime thread or needs a blocking pool, so both work on the
//! current-thread runtime.
//!
//! # Cancel safety
//!
//! [`AsyncReader::read_message`] (and `poll_next`) take a message out of the
//! reader only in the same synchronous step that returns it; the only
//! `.await` is on readiness. A read dropped while pending (a lost
//! `tokio::select!` branch, a timeout) therefore loses no message.
//! [`AsyncWriter::write`] likewise either sends the whole message in one
//! synchronous step or has not sent it: a dropped write sent nothing, and
//! a write that returned was sent.
//!
//! # Example
//!
//! ```
//! use mailslot::{AsyncReader, AsyncWriter, Namespace, ReaderOptions, SlotName};
//! # let tmp = tempfile::tempdir()?;
//! # let ns = Namespace::at(tmp.path())?;
//! let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
//! rt.block_on(async {
//!     let name = SlotName::parse(r"\\.\mailslot\demo\async")?;
//!     let mut reader = AsyncReader::create_in(&ns, &name, &ReaderOptions::default())?;
//!     let writer = AsyncWriter::open_in(&ns, &name)?;
//!     writer.write(b"hello").await?;
//!     assert_eq!(reader.read_message().await?.data, b"hello");
//!     Ok::<(), mailslot::Error>(())
//! })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use ::tokio::io::Interest;
use ::tokio::io::unix::AsyncFd;

use crate::error::{Error, Result};
use crate::name::SlotName;
use crate::namespace::Namespace;
use crate::reader::{Message, Reader, ReaderOptions, SlotStatus};
use crate::writer::Writer;

fn reactor_err(name: &str, op: &'static str, source: std::io::Error) -> Error {
    Error::Io {
        op,
        name: name.to_string(),
        source,
    }
}

/// Registers `inner`'s descriptor with the runtime's reactor.
///
/// tokio 1.54 deprecated the safe constructor (its callers must promise the
/// descriptor stays open and the same while registered) in favour of an
/// `unsafe` one, and this crate forbids `unsafe`. The promise holds here:
/// the descriptor is owned by a [`Reader`] or [`Writer`], which never
/// change or close it, and the wrappers below never hand the value out
/// mutably (no `get_mut`, so it cannot be swapped), only by `&` or by
/// [`AsyncFd::into_inner`], which unregisters first.
#[allow(deprecated)]
fn register<T: std::os::fd::AsRawFd>(inner: T, interest: Interest) -> std::io::Result<AsyncFd<T>> {
    AsyncFd::with_interest(inner, interest)
}

/// A [`Reader`] for async code: a [`Stream`](futures_core::Stream) of
/// messages, in the reader's order.
///
/// Must be created inside a tokio runtime with IO enabled. The stream never
/// ends; read errors are items.
#[derive(Debug)]
pub struct AsyncReader {
    fd: AsyncFd<Reader>,
    name: String,
}

impl AsyncReader {
    /// Wraps `reader`, registering its epoll descriptor with the runtime.
    pub fn new(reader: Reader) -> Result<AsyncReader> {
        let name = reader.name().path();
        let fd = register(reader, Interest::READABLE)
            .map_err(|e| reactor_err(&name, "registering with the tokio reactor", e))?;
        Ok(AsyncReader { fd, name })
    }

    /// Creates the slot `name` in the default namespace directory.
    pub fn create(name: &SlotName, options: &ReaderOptions) -> Result<AsyncReader> {
        AsyncReader::new(Reader::create(name, options)?)
    }

    /// Creates the slot `name` in the namespace `ns`.
    pub fn create_in(
        ns: &Namespace,
        name: &SlotName,
        options: &ReaderOptions,
    ) -> Result<AsyncReader> {
        AsyncReader::new(Reader::create_in(ns, name, options)?)
    }

    /// Waits for the next message. Cancel-safe: see the [module
    /// docs](crate::async_io#cancel-safety).
    pub async fn read_message(&mut self) -> Result<Message> {
        std::future::poll_fn(|cx| self.poll_read_message(cx)).await
    }

    /// Polls for the next message: `Pending` (with `cx` woken later) when
    /// none is ready. The reader's read timeout is not used.
    pub fn poll_read_message(&mut self, cx: &mut Context<'_>) -> Poll<Result<Message>> {
        loop {
            // Messages may wait in the reader's memory, where epoll cannot see them.
            match self.fd.get_mut().read_message_timeout(Some(Duration::ZERO)) {
                Err(Error::TimedOut { .. }) => {}
                r => return Poll::Ready(r),
            }
            let mut guard = ready!(self.fd.poll_read_ready_mut(cx))
                .map_err(|e| reactor_err(&self.name, "waiting for messages", e))?;
            match guard
                .get_inner_mut()
                .read_message_timeout(Some(Duration::ZERO))
            {
                // Spurious: forget this readiness and wait for the next event.
                Err(Error::TimedOut { .. }) => guard.clear_ready(),
                r => return Poll::Ready(r),
            }
        }
    }

    /// Reports max size, next size, count and timeout, like
    /// [`Reader::info`]; never waits.
    pub async fn info(&mut self) -> Result<SlotStatus> {
        self.fd.get_mut().info()
    }

    /// The reader.
    pub fn get_ref(&self) -> &Reader {
        self.fd.get_ref()
    }

    /// Sets the read timeout the reader will have after
    /// [`into_inner`](AsyncReader::into_inner); async reads ignore it.
    pub fn set_read_timeout(&mut self, timeout: Option<Duration>) {
        self.fd.get_mut().set_read_timeout(timeout);
    }

    /// Unregisters from the runtime and gives the reader back.
    pub fn into_inner(self) -> Reader {
        self.fd.into_inner()
    }
}

impl futures_core::Stream for AsyncReader {
    type Item = Result<Message>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_read_message(cx).map(Some)
    }
}

/// A [`Writer`] for async code: a write that finds the reader's queue full
/// waits for room without blocking the runtime thread.
///
/// Must be created inside a tokio runtime with IO enabled. Bound a write's
/// wait with `tokio::time::timeout`; that is cancel-safe.
#[derive(Debug)]
pub struct AsyncWriter {
    fd: AsyncFd<Writer>,
}

impl AsyncWriter {
    /// Wraps `writer`, registering its socket with the runtime.
    ///
    /// Fails with [`Error::InvalidArgument`] for a writer of a shared slot
    /// ([`Writer::is_shared`]): its fan-out to several readers cannot wait
    /// for readiness on one socket without risking duplicates; use it from
    /// `tokio::task::spawn_blocking` instead.
    pub fn new(mut writer: Writer) -> Result<AsyncWriter> {
        if writer.is_shared() {
            return Err(Error::InvalidArgument {
                name: writer.name().to_string(),
                detail: "AsyncWriter does not support shared slots; write with a Writer from tokio::task::spawn_blocking".into(),
            });
        }
        // Sends never wait inside the writer; this type waits for readiness.
        writer.set_write_timeout(Some(Duration::ZERO));
        // Its waits are on the socket's readiness, so the socket it is.
        writer.socket_only()?;
        let name = writer.name().to_string();
        let fd = register(writer, Interest::WRITABLE)
            .map_err(|e| reactor_err(&name, "registering with the tokio reactor", e))?;
        Ok(AsyncWriter { fd })
    }

    /// Opens the slot `name` in the default namespace directory.
    pub fn open(name: &SlotName) -> Result<AsyncWriter> {
        AsyncWriter::new(Writer::open(name)?)
    }

    /// Opens the slot `name` in the namespace `ns`.
    pub fn open_in(ns: &Namespace, name: &SlotName) -> Result<AsyncWriter> {
        AsyncWriter::new(Writer::open_in(ns, name)?)
    }

    /// Sends `data` as one message, waiting for room when the reader's
    /// queue is full. Errors as [`Writer::write`]; cancel-safe.
    pub async fn write(&self, data: &[u8]) -> Result<()> {
        loop {
            match self.fd.get_ref().write(data) {
                Err(Error::TimedOut { .. }) => {}
                r => return r,
            }
            let mut guard = self
                .fd
                .writable()
                .await
                .map_err(|e| reactor_err(self.fd.get_ref().name(), "waiting for room", e))?;
            match guard.get_inner().write(data) {
                Err(Error::TimedOut { .. }) => guard.clear_ready(),
                r => return r,
            }
        }
    }

    /// Sends several messages coalesced, like [`Writer::write_batch`],
    /// waiting for room as needed. On an error returns how many were sent.
    ///
    /// Dropping the future part-way leaves a prefix sent and the rest not.
    pub async fn write_batch<M: AsRef<[u8]>>(&self, messages: &[M]) -> Result<(), (usize, Error)> {
        let mut done = 0;
        match self.fd.get_ref().write_batch(messages) {
            Ok(()) => return Ok(()),
            Err((n, Error::TimedOut { .. })) => done += n,
            Err(e) => return Err(e),
        }
        loop {
            let mut guard = self.fd.writable().await.map_err(|e| {
                (
                    done,
                    reactor_err(self.fd.get_ref().name(), "waiting for room", e),
                )
            })?;
            match guard.get_inner().write_batch(&messages[done..]) {
                Ok(()) => return Ok(()),
                Err((n, Error::TimedOut { .. })) => {
                    done += n;
                    guard.clear_ready();
                }
                Err((n, e)) => return Err((done + n, e)),
            }
        }
    }

    /// The writer.
    pub fn get_ref(&self) -> &Writer {
        self.fd.get_ref()
    }

    /// Unregisters from the runtime and gives the writer back (with no
    /// write timeout: its writes wait as long as it takes).
    pub fn into_inner(self) -> Writer {
        let mut w = self.fd.into_inner();
        w.set_write_timeout(None);
        w
    }
}
