//! The writer: Windows' mailslot "client".

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::error::{Error, Result, io_err};
use crate::frame::{HEADER_LEN, Header, INLINE_MAX, Kind};
use crate::name::SlotName;
use crate::namespace::{Meta, Namespace};
use crate::sys;

/// The writing end of a mailslot (Windows' mailslot client).
///
/// Any number of writers, in any processes, may be open on one slot. Each
/// [`write`](Writer::write) sends exactly one message or fails. A `Writer`
/// may be shared between threads; writes from one writer are never
/// reordered.
#[derive(Debug)]
pub struct Writer {
    display: String,
    fd: OwnedFd,
    max: u32,
    reader_pid: u32,
    write_timeout: Option<Duration>,
    // Held across stamp-and-send so one connection's stamps stay ordered.
    send_lock: Mutex<()>,
}

impl Writer {
    /// Opens the slot `name` in the default namespace directory.
    ///
    /// Fails with [`Error::NotFound`] when no live reader has created it
    /// (a socket left behind by a crashed reader included), and with
    /// [`Error::PermissionDenied`] when the slot's mode does not admit us.
    pub fn open(name: &SlotName) -> Result<Writer> {
        Writer::open_in(&Namespace::resolve()?, name)
    }

    /// Opens the slot `name` in the namespace `ns`.
    pub fn open_in(ns: &Namespace, name: &SlotName) -> Result<Writer> {
        let display = name.path();
        let stem = name.file_stem();
        let sock = format!("{stem}.sock");
        // The metadata must belong to the reader we connected to; a reader
        // being replaced at this very moment can make them disagree once.
        for _ in 0..8 {
            let fd = sys::seqpacket_socket(false).map_err(io_err("creating a socket", &display))?;
            let addr = sys::unix_addr(ns.dir(), ns.fd(), &sock)
                .map_err(io_err("building the socket address", &display))?;
            if let Err(e) = sys::connect(fd.as_fd(), &addr) {
                return Err(match e.kind() {
                    io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => {
                        Error::NotFound { name: display }
                    }
                    io::ErrorKind::PermissionDenied => Error::PermissionDenied {
                        name: display,
                        detail: format!(
                            "the slot's mode does not let uid {} write to it; its reader can create it with a wider mode (e.g. 0666)",
                            sys::euid()
                        ),
                    },
                    _ => io_err("connecting", &display)(e),
                });
            }
            let cred = sys::peer_cred(fd.as_fd()).map_err(io_err("reading the reader's credentials", &display))?;
            match Meta::read(ns, &stem) {
                Ok(meta) if meta.pid == cred.pid && meta.uid == cred.uid => {
                    return Ok(Writer {
                        display,
                        fd,
                        max: meta.max_message_size.min(u64::from(u32::MAX)) as u32,
                        reader_pid: cred.pid,
                        write_timeout: None,
                        send_lock: Mutex::new(()),
                    });
                }
                _ => continue,
            }
        }
        Err(Error::NotFound { name: display })
    }

    /// The slot's name, `\\.\mailslot\NAME`.
    pub fn name(&self) -> &str {
        &self.display
    }

    /// The slot's maximum message size (0 = any size).
    pub fn max_message_size(&self) -> u32 {
        self.max
    }

    /// The process id of the reader this writer is connected to.
    pub fn reader_pid(&self) -> u32 {
        self.reader_pid
    }

    /// How long a write waits for room when the reader's queue is full:
    /// `None` (the default) waits as long as it takes.
    pub fn set_write_timeout(&mut self, timeout: Option<Duration>) {
        self.write_timeout = timeout;
    }

    /// Sends `data` as one message.
    ///
    /// Zero-length messages are real messages. A message over the slot's
    /// maximum fails with [`Error::MessageTooLarge`] and nothing is queued.
    /// When the reader's queue is full this waits for room (up to the write
    /// timeout, then [`Error::TimedOut`] with nothing sent); when the reader
    /// has gone it fails with [`Error::ReaderClosed`].
    pub fn write(&self, data: &[u8]) -> Result<()> {
        if self.max != 0 && data.len() > self.max as usize {
            return Err(Error::MessageTooLarge {
                name: self.display.clone(),
                size: data.len(),
                max: u64::from(self.max),
            });
        }
        let len = u32::try_from(data.len()).map_err(|_| Error::MessageTooLarge {
            name: self.display.clone(),
            size: data.len(),
            max: u64::from(u32::MAX),
        })?;
        let memfd = if data.len() > INLINE_MAX {
            Some(sys::sealed_memfd(data).map_err(io_err("preparing a large message", &self.display))?)
        } else {
            None
        };
        let _guard = self.send_lock.lock().unwrap_or_else(|p| p.into_inner());
        let deadline = self.write_timeout.map(|t| Instant::now() + t);
        let stamp = sys::monotonic_ns();
        match &memfd {
            None => self.send(Header { kind: Kind::Inline, len, stamp }, data, None, deadline),
            Some(m) => self.send(Header { kind: Kind::Memfd, len, stamp }, &[], Some(m), deadline),
        }
    }

    fn send(
        &self,
        header: Header,
        payload: &[u8],
        memfd: Option<&OwnedFd>,
        deadline: Option<Instant>,
    ) -> Result<()> {
        let hdr: [u8; HEADER_LEN] = header.encode();
        loop {
            match sys::send_frame(self.fd.as_fd(), &hdr, payload, memfd.map(|m| m.as_fd()), true) {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let remaining = deadline.map(|d| d.saturating_duration_since(Instant::now()));
                    let ready = remaining.is_none_or(|r| !r.is_zero())
                        && sys::wait_writable(self.fd.as_fd(), remaining)
                            .map_err(io_err("waiting for room", &self.display))?;
                    if !ready {
                        return Err(Error::TimedOut {
                            name: self.display.clone(),
                            op: "writing to",
                            timeout: self.write_timeout.unwrap_or_default(),
                        });
                    }
                }
                // The socket buffer cannot hold this inline frame at all:
                // send it as a sealed memfd instead.
                Err(e) if e.raw_os_error() == Some(rustix::io::Errno::MSGSIZE.raw_os_error()) && memfd.is_none() => {
                    let m = sys::sealed_memfd(payload)
                        .map_err(io_err("preparing a large message", &self.display))?;
                    let h = Header { kind: Kind::Memfd, ..header };
                    return self.send(h, &[], Some(&m), deadline);
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::BrokenPipe
                            | io::ErrorKind::ConnectionReset
                            | io::ErrorKind::NotConnected
                    ) =>
                {
                    return Err(Error::ReaderClosed {
                        name: self.display.clone(),
                    });
                }
                Err(e) => return Err(io_err("sending a message", &self.display)(e)),
            }
        }
    }
}
