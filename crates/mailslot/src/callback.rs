//! A reader that runs a callback for each message on its own thread (the
//! classic `CAsyncMailslotReader`).
//!
//! [`CallbackReader::spawn`] moves a [`Reader`] to a new thread that calls
//! the callback with every message, in order. [`CallbackReader::stop`]
//! returns within milliseconds even while the thread waits for messages
//! (it waits on the reader's epoll descriptor and a stop eventfd together),
//! joins the thread and gives the reader back. A callback that panics is
//! caught: the thread stops and `stop` reports the panic's message.
//!
//! # Example
//!
//! ```
//! use std::sync::mpsc;
//! use mailslot::{CallbackReader, Namespace, ReaderOptions, SlotName, Writer};
//! # let tmp = tempfile::tempdir()?;
//! # let ns = Namespace::at(tmp.path())?;
//! let name = SlotName::parse(r"\\.\mailslot\demo\callback")?;
//! let (tx, rx) = mpsc::channel();
//! let handle = CallbackReader::spawn_new_in(&ns, &name, &ReaderOptions::default(), move |msg| {
//!     tx.send(msg.data).unwrap();
//! })?;
//!
//! Writer::open_in(&ns, &name)?.write(b"ping")?;
//! assert_eq!(rx.recv()?, b"ping");
//!
//! let reader = handle.stop()?; // prompt, and the reader is ours again
//! assert_eq!(reader.name(), &name);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::any::Any;
use std::os::fd::AsFd;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::error::{Error, Result, io_err};
use crate::name::SlotName;
use crate::namespace::Namespace;
use crate::reader::{Message, Reader, ReaderOptions};
use crate::sys;

const READER: u64 = 0;
const STOP: u64 = 1;

/// Why the callback thread ended by itself; from [`CallbackReader::stop`].
///
/// Both variants give the reader back ([`CallbackError::into_reader`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CallbackError {
    /// The callback panicked; the message it was handling counts as read,
    /// and no further messages were taken.
    #[error("the callback for mailslot {name} panicked: {message}; its thread stopped")]
    Panicked {
        /// The slot.
        name: String,
        /// The panic's message (`<non-string panic payload>` when it had none).
        message: String,
        /// The reader, with the messages that were still waiting.
        reader: Box<Reader>,
    },
    /// Reading failed; the thread stopped.
    #[error("the callback thread of mailslot {name} stopped: {source}")]
    Read {
        /// The slot.
        name: String,
        /// What failed.
        #[source]
        source: Error,
        /// The reader.
        reader: Box<Reader>,
    },
}

impl CallbackError {
    /// The reader the thread was using.
    pub fn into_reader(self) -> Reader {
        match self {
            CallbackError::Panicked { reader, .. } | CallbackError::Read { reader, .. } => *reader,
        }
    }
}

struct Stop {
    flag: AtomicBool,
    efd: sys::EventFd,
}

enum Ended {
    Stopped,
    Panicked(String),
    Failed(Error),
}

/// A running callback thread that owns a [`Reader`].
///
/// Dropping the handle stops the thread like [`stop`](CallbackReader::stop)
/// and drops the reader; a callback panic is then reported only by the
/// process's panic hook (by default on stderr).
pub struct CallbackReader {
    name: String,
    stop: Arc<Stop>,
    thread: Option<JoinHandle<(Reader, Ended)>>,
}

impl std::fmt::Debug for CallbackReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallbackReader")
            .field("name", &self.name)
            .field("finished", &self.is_finished())
            .finish_non_exhaustive()
    }
}

impl CallbackReader {
    /// Starts a thread that calls `callback` with each message of `reader`,
    /// in order, until [`stop`](CallbackReader::stop).
    ///
    /// The reader's read timeout does not matter: the thread waits as long
    /// as it takes. A wake from the reader's own [`Waker`](crate::Waker) is
    /// ignored.
    pub fn spawn<F>(reader: Reader, callback: F) -> Result<CallbackReader>
    where
        F: FnMut(Message) + Send + 'static,
    {
        let name = reader.name().path();
        let efd = sys::EventFd::new().map_err(io_err("creating an eventfd", &name))?;
        let mut poller = sys::Poller::new().map_err(io_err("creating an epoll instance", &name))?;
        poller
            .add(reader.as_fd(), READER)
            .and_then(|()| poller.add(efd.as_fd(), STOP))
            .map_err(io_err("registering with epoll", &name))?;
        let stop = Arc::new(Stop {
            flag: AtomicBool::new(false),
            efd,
        });
        let thread_stop = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("mailslot-callback".into())
            .spawn(move || run(reader, callback, &mut poller, &thread_stop))
            .map_err(io_err("starting the callback thread", &name))?;
        Ok(CallbackReader {
            name,
            stop,
            thread: Some(thread),
        })
    }

    /// Creates the slot `name` in the default namespace directory and
    /// starts a callback thread on it.
    pub fn spawn_new<F>(
        name: &SlotName,
        options: &ReaderOptions,
        callback: F,
    ) -> Result<CallbackReader>
    where
        F: FnMut(Message) + Send + 'static,
    {
        CallbackReader::spawn(Reader::create(name, options)?, callback)
    }

    /// Creates the slot `name` in the namespace `ns` and starts a callback
    /// thread on it.
    pub fn spawn_new_in<F>(
        ns: &Namespace,
        name: &SlotName,
        options: &ReaderOptions,
        callback: F,
    ) -> Result<CallbackReader>
    where
        F: FnMut(Message) + Send + 'static,
    {
        CallbackReader::spawn(Reader::create_in(ns, name, options)?, callback)
    }

    /// The slot's name, `\\.\mailslot\NAME`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// True once the thread has ended by itself (a panic or a read error);
    /// [`stop`](CallbackReader::stop) then says why.
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }

    /// Stops the thread and gives the reader back.
    ///
    /// Returns as soon as the callback running now (if any) returns: a
    /// thread waiting for messages is woken at once. Messages not yet
    /// handed to the callback stay in the reader. Fails with the reason
    /// when the thread had already ended by itself.
    pub fn stop(mut self) -> Result<Reader, CallbackError> {
        self.stop_and_join()
            .expect("the thread is joined only here or in drop")
    }

    fn stop_and_join(&mut self) -> Option<Result<Reader, CallbackError>> {
        let thread = self.thread.take()?;
        self.stop.flag.store(true, Ordering::SeqCst);
        let _ = self.stop.efd.signal();
        let name = self.name.clone();
        Some(match thread.join() {
            Ok((reader, Ended::Stopped)) => Ok(reader),
            Ok((reader, Ended::Panicked(message))) => Err(CallbackError::Panicked {
                name,
                message,
                reader: Box::new(reader),
            }),
            Ok((reader, Ended::Failed(source))) => Err(CallbackError::Read {
                name,
                source,
                reader: Box::new(reader),
            }),
            // `run` catches the callback's panics and panics nowhere else.
            Err(p) => std::panic::resume_unwind(p),
        })
    }
}

impl Drop for CallbackReader {
    fn drop(&mut self) {
        drop(self.stop_and_join());
    }
}

fn run<F: FnMut(Message)>(
    mut reader: Reader,
    mut callback: F,
    poller: &mut sys::Poller,
    stop: &Stop,
) -> (Reader, Ended) {
    let mut tokens = Vec::with_capacity(2);
    loop {
        if stop.flag.load(Ordering::SeqCst) {
            return (reader, Ended::Stopped);
        }
        match reader.read_message_timeout(Some(Duration::ZERO)) {
            Ok(msg) => {
                if let Err(payload) = catch_unwind(AssertUnwindSafe(|| callback(msg))) {
                    return (reader, Ended::Panicked(panic_message(payload.as_ref())));
                }
            }
            // Nothing ready: wait for the reader's epoll descriptor or a stop.
            Err(Error::TimedOut { .. } | Error::Interrupted { .. }) => {
                if let Err(e) = poller.wait(&mut tokens, 2, None) {
                    let name = reader.name().path();
                    return (
                        reader,
                        Ended::Failed(io_err("waiting for messages", &name)(e)),
                    );
                }
            }
            Err(e) => return (reader, Ended::Failed(e)),
        }
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "<non-string panic payload>".to_string()
    }
}
