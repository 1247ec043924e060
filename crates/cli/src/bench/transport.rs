//! The paths under test, behind two small traits: a receiving end ([`Rx`])
//! and a sending end ([`Tx`]).
//!
//! Ours: the mailslot [`Reader`] with [`Writer`] (plain: one `write` per
//! message) or [`QueuedWriter`] (queued: `send` returns at once, a delivery
//! thread coalesces what waits into as few packets as fit).
//! Baselines: the plainest loops over the same kernel facilities — a raw
//! `AF_UNIX` `SOCK_SEQPACKET` listener polling its connections with epoll, an
//! `AF_UNIX` `SOCK_DGRAM` socket, a POSIX message queue — and a raw ring in
//! shared memory per writer ([`super::shm_ring`]), the physical reference
//! for ours. Each baseline does only what moving the bytes needs; none
//! orders across writers or bounds memory.

use std::io::{self, IoSliceMut};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use mailslot::{
    Namespace, Priority, QueuedOptions, QueuedWriter, Reader, ReaderOptions, SlotName, Writer,
};
use rustix::event::epoll;
use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvFlags, SendFlags, SocketAddrUnix, SocketFlags,
    SocketType,
};
use serde::{Deserialize, Serialize};

use super::shm_ring::{RingRx, RingTx};

/// A path under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Transport {
    /// `Writer::write` per message.
    Plain,
    /// `QueuedWriter::send`: queued, delivered (coalesced) by a thread.
    Queued,
    /// Raw `SOCK_SEQPACKET`: epoll over the accepted connections.
    Seqpacket,
    /// Raw `SOCK_DGRAM` to one bound socket.
    Dgram,
    /// A POSIX message queue.
    Mq,
    /// A raw single-producer, single-consumer ring in a memory file per
    /// writer, futex and eventfd wake-ups.
    ShmRing,
}

impl Transport {
    /// The baselines, in table order.
    pub const BASELINES: [Transport; 4] = [
        Transport::Seqpacket,
        Transport::Dgram,
        Transport::Mq,
        Transport::ShmRing,
    ];

    /// Short name for tables and JSON keys.
    pub fn key(self) -> &'static str {
        match self {
            Transport::Plain => "plain",
            Transport::Queued => "queued",
            Transport::Seqpacket => "seqpacket",
            Transport::Dgram => "dgram",
            Transport::Mq => "mq",
            Transport::ShmRing => "shm-ring",
        }
    }

    /// Longer name for tables.
    pub fn label(self) -> &'static str {
        match self {
            Transport::Plain => "mailslot Writer::write",
            Transport::Queued => "mailslot QueuedWriter",
            Transport::Seqpacket => "raw SOCK_SEQPACKET",
            Transport::Dgram => "raw SOCK_DGRAM",
            Transport::Mq => "POSIX mq",
            Transport::ShmRing => "raw shm ring (memfd)",
        }
    }
}

/// Where one endpoint lives: a private directory and a short name in it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Endpoint {
    /// The run's private directory (mailslot namespace and socket files).
    pub dir: PathBuf,
    /// Unique within the run, e.g. `c12`.
    pub name: String,
    /// Tag that keeps POSIX queue names of concurrent runs apart.
    pub run: u32,
}

impl Endpoint {
    fn slot(&self) -> Result<SlotName, String> {
        SlotName::parse(&format!(r"\\.\mailslot\bench\{}", self.name))
            .map_err(|e| format!("slot name: {e}"))
    }

    fn socket_path(&self) -> PathBuf {
        self.dir.join(format!("{}.sock", self.name))
    }

    fn mq_name(&self) -> String {
        format!("/mailslot-bench-{}-{}", self.run, self.name)
    }
}

/// The receiving end.
pub trait Rx {
    /// Waits for the next message and copies it into `buf`; returns its
    /// length (a message longer than `buf` is an error or truncated to
    /// `buf.len()`, which the caller's length check catches).
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize>;
}

/// The sending end.
pub trait Tx {
    /// Sends (or queues) one message.
    fn send(&mut self, msg: &[u8]) -> io::Result<()>;
    /// Waits until everything queued has been sent.
    fn finish(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn other<E: std::fmt::Display>(e: E) -> io::Error {
    io::Error::other(e.to_string())
}

/// Creates the receiving end of `t` at `ep` for messages of `size` bytes.
pub fn bind(t: Transport, ep: &Endpoint, size: usize) -> Result<Box<dyn Rx>, String> {
    match t {
        Transport::Plain | Transport::Queued => {
            let ns = Namespace::at(&ep.dir).map_err(|e| e.to_string())?;
            let reader = Reader::create_in(&ns, &ep.slot()?, &ReaderOptions::default())
                .map_err(|e| e.to_string())?;
            Ok(Box::new(MailslotRx(reader)))
        }
        Transport::Seqpacket => SeqpacketRx::bind(&ep.socket_path())
            .map(|r| Box::new(r) as Box<dyn Rx>)
            .map_err(|e| format!("SOCK_SEQPACKET listener: {e}")),
        Transport::Dgram => {
            let fd = rustix::net::socket_with(
                AddressFamily::UNIX,
                SocketType::DGRAM,
                SocketFlags::CLOEXEC,
                None,
            )
            .and_then(|fd| {
                rustix::net::bind(&fd, &SocketAddrUnix::new(ep.socket_path())?)?;
                Ok(fd)
            })
            .map_err(|e| format!("SOCK_DGRAM socket: {e}"))?;
            Ok(Box::new(SocketRx(fd)))
        }
        Transport::Mq => Mq::create(&ep.mq_name(), size).map(|q| Box::new(q) as Box<dyn Rx>),
        Transport::ShmRing => RingRx::bind(&ep.socket_path())
            .map(|r| Box::new(r) as Box<dyn Rx>)
            .map_err(|e| format!("shared-memory ring listener: {e}")),
    }
}

/// Opens the sending end of `t` to `ep`, for messages of `size` bytes.
pub fn connect(t: Transport, ep: &Endpoint, size: usize) -> Result<Box<dyn Tx>, String> {
    match t {
        Transport::Plain | Transport::Queued => {
            let ns = Namespace::at(&ep.dir).map_err(|e| e.to_string())?;
            if t == Transport::Plain {
                let writer = Writer::open_in(&ns, &ep.slot()?).map_err(|e| e.to_string())?;
                Ok(Box::new(PlainTx(writer)))
            } else {
                let writer = QueuedWriter::open_in(&ns, &ep.slot()?, QueuedOptions::default())
                    .map_err(|e| e.to_string())?;
                Ok(Box::new(QueuedTx(writer)))
            }
        }
        Transport::Seqpacket | Transport::Dgram => {
            let ty = if t == Transport::Seqpacket {
                SocketType::SEQPACKET
            } else {
                SocketType::DGRAM
            };
            let fd = rustix::net::socket_with(AddressFamily::UNIX, ty, SocketFlags::CLOEXEC, None)
                .and_then(|fd| {
                    rustix::net::connect(&fd, &SocketAddrUnix::new(ep.socket_path())?)?;
                    Ok(fd)
                })
                .map_err(|e| format!("connecting to {}: {e}", ep.socket_path().display()))?;
            Ok(Box::new(SocketTx(fd)))
        }
        Transport::Mq => Mq::open(&ep.mq_name()).map(|q| Box::new(q) as Box<dyn Tx>),
        Transport::ShmRing => RingTx::connect(&ep.socket_path(), size)
            .map(|r| Box::new(r) as Box<dyn Tx>)
            .map_err(|e| {
                format!(
                    "handing a shared-memory ring to {}: {e}",
                    ep.socket_path().display()
                )
            }),
    }
}

/// Removes what `bind` left in the system outside the run's directory.
pub fn cleanup(t: Transport, ep: &Endpoint) {
    if t == Transport::Mq {
        let _ = nix::mqueue::mq_unlink(ep.mq_name().as_str());
    }
}

struct MailslotRx(Reader);

impl Rx for MailslotRx {
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf).map_err(other)
    }
}

struct PlainTx(Writer);

impl Tx for PlainTx {
    fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        self.0.write(msg).map_err(other)
    }
}

/// The library's queued writer: `send` queues and returns, a delivery
/// thread sends, coalescing whatever waits into as few packets as fit.
struct QueuedTx(QueuedWriter);

impl Tx for QueuedTx {
    fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        self.0.send_slice(msg, Priority::Normal).map_err(other)
    }

    fn finish(&mut self) -> io::Result<()> {
        self.0.flush(Duration::from_secs(60)).map_err(other)
    }
}

/// A raw `SOCK_SEQPACKET` reader: accepts every writer, then drains ready
/// connections with non-blocking `recv` and waits in `epoll_wait`.
struct SeqpacketRx {
    listener: OwnedFd,
    epoll: OwnedFd,
    conns: Vec<Option<OwnedFd>>,
    ready: Vec<usize>,
    events: Vec<epoll::Event>,
}

/// The epoll token of the listening socket.
pub(super) const LISTENER: u64 = u64::MAX;

/// A non-blocking `SOCK_SEQPACKET` listener at `path`, and an epoll set
/// watching it (token [`LISTENER`]): where the raw baselines' readers start.
pub(super) fn listen_with_epoll(path: &Path) -> io::Result<(OwnedFd, OwnedFd)> {
    let listener = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
        None,
    )?;
    rustix::net::bind(&listener, &SocketAddrUnix::new(path)?)?;
    rustix::net::listen(&listener, 128)?;
    let epoll = epoll::create(epoll::CreateFlags::CLOEXEC)?;
    epoll::add(
        &epoll,
        &listener,
        epoll::EventData::new_u64(LISTENER),
        epoll::EventFlags::IN,
    )?;
    Ok((listener, epoll))
}

impl SeqpacketRx {
    fn bind(path: &Path) -> io::Result<SeqpacketRx> {
        let (listener, epoll) = listen_with_epoll(path)?;
        Ok(SeqpacketRx {
            listener,
            epoll,
            conns: Vec::new(),
            ready: Vec::new(),
            events: Vec::with_capacity(64),
        })
    }

    fn wait(&mut self) -> io::Result<()> {
        self.events.clear();
        match epoll::wait(
            &self.epoll,
            rustix::buffer::spare_capacity(&mut self.events),
            None,
        ) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
        for ev in &self.events {
            let t = ev.data.u64();
            if t != LISTENER {
                self.ready.push(t as usize);
                continue;
            }
            loop {
                match rustix::net::accept_with(
                    &self.listener,
                    SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
                ) {
                    Ok(c) => {
                        let idx = self.conns.len();
                        epoll::add(
                            &self.epoll,
                            &c,
                            epoll::EventData::new_u64(idx as u64),
                            epoll::EventFlags::IN,
                        )?;
                        self.conns.push(Some(c));
                        self.ready.push(idx);
                    }
                    Err(rustix::io::Errno::AGAIN) => break,
                    Err(rustix::io::Errno::INTR) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(())
    }
}

impl Rx for SeqpacketRx {
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let Some(&idx) = self.ready.last() else {
                self.wait()?;
                continue;
            };
            let Some(fd) = self.conns[idx].as_ref() else {
                self.ready.pop();
                continue;
            };
            match rustix::net::recv(fd, &mut *buf, RecvFlags::DONTWAIT) {
                Ok((n, _)) if n > 0 => return Ok(n),
                // End of stream: the writer is done.
                Ok(_) => {
                    let fd = self.conns[idx].take().expect("checked above");
                    let _ = epoll::delete(&self.epoll, &fd);
                    self.ready.pop();
                }
                Err(rustix::io::Errno::AGAIN) => {
                    self.ready.pop();
                }
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// A bound `SOCK_DGRAM` socket: blocking `recv`.
struct SocketRx(OwnedFd);

impl Rx for SocketRx {
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut iov = [IoSliceMut::new(buf)];
        let mut control = RecvAncillaryBuffer::default();
        loop {
            match rustix::net::recvmsg(&self.0, &mut iov, &mut control, RecvFlags::empty()) {
                Ok(r) => return Ok(r.bytes),
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// A connected `SOCK_SEQPACKET` or `SOCK_DGRAM` socket: blocking `send`.
struct SocketTx(OwnedFd);

impl Tx for SocketTx {
    fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        loop {
            match rustix::net::send(self.0.as_fd(), msg, SendFlags::NOSIGNAL) {
                Ok(_) => return Ok(()),
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// A POSIX message queue; the reader creates it with room for 10 messages
/// (the default `fs.mqueue.msg_max`) of exactly the message size.
struct Mq(nix::mqueue::MqdT);

impl Mq {
    fn create(name: &str, size: usize) -> Result<Mq, String> {
        use nix::mqueue::{MQ_OFlag, MqAttr, mq_open, mq_unlink};
        use nix::sys::stat::Mode;
        let _ = mq_unlink(name);
        let attr = MqAttr::new(0, 10, size as _, 0);
        mq_open(
            name,
            MQ_OFlag::O_CREAT | MQ_OFlag::O_EXCL | MQ_OFlag::O_RDONLY,
            Mode::from_bits_truncate(0o600),
            Some(&attr),
        )
        .map(Mq)
        .map_err(|e| {
            let limit = |f: &str| {
                std::fs::read_to_string(format!("/proc/sys/fs/mqueue/{f}"))
                    .map_or_else(|_| "?".into(), |s| s.trim().to_string())
            };
            format!(
                "mq_open with msgsize {size}: {e} (fs.mqueue.msgsize_max = {}, msg_max = {})",
                limit("msgsize_max"),
                limit("msg_max")
            )
        })
    }

    fn open(name: &str) -> Result<Mq, String> {
        use nix::mqueue::{MQ_OFlag, mq_open};
        use nix::sys::stat::Mode;
        mq_open(name, MQ_OFlag::O_WRONLY, Mode::empty(), None)
            .map(Mq)
            .map_err(|e| format!("mq_open({name}) for writing: {e}"))
    }
}

impl Rx for Mq {
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut prio = 0;
        loop {
            match nix::mqueue::mq_receive(&self.0, buf, &mut prio) {
                Ok(n) => return Ok(n),
                Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
}

impl Tx for Mq {
    fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        loop {
            match nix::mqueue::mq_send(&self.0, msg, 0) {
                Ok(()) => return Ok(()),
                Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
}
