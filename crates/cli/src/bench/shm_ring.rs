//! The raw shared-memory ring baseline (`shm-ring`): about the least a
//! message can cost from one process to another, as the physical reference
//! for ours.
//!
//! Each writer creates a ring, a memory file of one header page and a data
//! area, and hands it with an eventfd to the reader in one `SOCK_SEQPACKET`
//! message when it connects. After that the connection carries nothing; it
//! only lets a writer waiting for room see that the reader is gone. With
//! several writers the reader has one ring each and takes records from
//! whichever has some, in no particular order across writers.
//!
//! Layout of the file (byte offsets):
//!
//! - 0: `tail` (u64), the bytes the writer has published, and at 8
//!   `reader_waiting` (u32), set by a reader about to sleep. Both live on
//!   the writer's cache line, since it reads the flag after every publish.
//! - 128: `head` (u64), the bytes the reader has consumed, and at 136
//!   `writer_waiting` (u32), the futex word of a writer waiting for room: the
//!   reader's line, two lines away from the writer's (adjacent-line
//!   prefetchers fetch lines in pairs).
//! - 4096: the data area, a power of two bytes. Positions only grow; a
//!   position modulo the size is the offset.
//!
//! A record is its length (u64, little-endian), the message, and padding to
//! a multiple of 8. A record may wrap around the end (copied in two parts),
//! and one larger than the free space streams: the writer publishes what it
//! has written whenever it must wait for room, the reader copies whatever
//! is published, so any size fits any ring.
//!
//! Wake-ups, with no system call while both sides keep going:
//!
//! - **Reader.** With nothing to read it watches the rings for 20 µs,
//!   pausing or yielding between looks exactly as our reader does
//!   (`mailslot::watch`; a reader chasing a writer of small records lets a batch gather
//!   before it looks), then sets
//!   `reader_waiting` in each ring, and after a sequentially consistent
//!   fence looks at every tail once more before it sleeps in `epoll_wait`
//!   (the eventfds, edge-triggered so they are never read, and the
//!   listener). A writer publishes its tail, fences, and signals the
//!   eventfd if it finds the flag set. Either the reader sees the new tail
//!   or the writer sees the flag: no lost wake-up.
//! - **Writer.** With no room it sets `writer_waiting`, fences, looks at
//!   `head` once more, and sleeps on the flag (`futex`). The reader fences
//!   and looks at the flag whenever it has freed 64 KiB since it last looked,
//!   when a ring runs empty, and before it waits in the middle of a record;
//!   a sleeping writer has published everything it wrote, so one of those
//!   always comes.
//!
//! Each side checks the other's position against its own and the ring size,
//! and the reader checks each length against its buffer, so a bad ring is
//! an error, never a copy out of bounds.

use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::sync::atomic::{Ordering, fence};
use std::time::{Duration, Instant};

use mailslot::watch::Watch;
use rustix::event::{EventfdFlags, PollFd, PollFlags, epoll};
use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags, SocketAddrUnix, SocketFlags, SocketType,
};
use rustix::thread::futex;

use super::shm::SharedMap;
use super::transport::{LISTENER, Rx, Tx, listen_with_epoll};

const TAIL: usize = 0;
const READER_WAITING: usize = 8;
const HEAD: usize = 128;
const WRITER_WAITING: usize = 136;
const DATA: usize = 4096;

/// First bytes of a writer's hello; the ring's size follows (u64, LE).
const MAGIC: &[u8; 8] = b"shmring1";
/// How long the reader watches the rings before it sleeps (as ours does).
const SPIN: Duration = Duration::from_micros(20);
/// Freed bytes after which the reader looks for a writer waiting for room.
const ROOM_STEP: u64 = 64 << 10;
/// A busy reader looks for new writers every this many messages...
const ACCEPT_EVERY_MSGS: u32 = 4096;
/// ...and an idle one at most this often (else only when it sleeps).
const ACCEPT_EVERY: Duration = Duration::from_millis(1);
/// A writer waiting for room looks this often whether the reader is gone.
const WRITER_PATIENCE: Duration = Duration::from_millis(100);

/// The data area for messages of `size` bytes: the sizes of our ring
/// (ARCHITECTURE.md, "The ring"), where small messages use 256 KiB and
/// larger ones 2 MiB.
fn capacity(size: usize) -> u64 {
    if size <= 16 << 10 { 256 << 10 } else { 2 << 20 }
}

fn corrupt(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("corruption: {what}"))
}

/// The reader's side of one writer's ring.
struct RxRing {
    map: SharedMap,
    cap: u64,
    /// Consumed so far (published to `HEAD` at record ends and before a wait).
    head: u64,
    /// The tail last read: records up to it are parsed before reading it again.
    tail: u64,
    /// Bytes freed since the last look at `writer_waiting`.
    unchecked: u64,
    _conn: OwnedFd,
    _wake: OwnedFd,
}

impl RxRing {
    /// Bytes published and not yet consumed.
    fn avail(&mut self) -> io::Result<u64> {
        if self.tail == self.head {
            let t = self.map.u64_at(TAIL).load(Ordering::Acquire);
            if t < self.head || t - self.head > self.cap {
                return Err(corrupt(format!(
                    "ring tail {t} with head {} and {} bytes",
                    self.head, self.cap
                )));
            }
            self.tail = t;
        }
        Ok(self.tail - self.head)
    }

    /// Whether the writer has published past what we consumed.
    fn has_new(&self) -> bool {
        self.map.u64_at(TAIL).load(Ordering::Acquire) != self.head
    }

    /// Copies the next `dst.len()` published bytes out.
    fn take(&mut self, dst: &mut [u8]) {
        let off = (self.head & (self.cap - 1)) as usize;
        let first = dst.len().min(self.cap as usize - off);
        let (a, b) = dst.split_at_mut(first);
        self.map.read(DATA + off, a);
        self.map.read(DATA, b);
        self.head += dst.len() as u64;
    }

    /// Publishes the head; looks for a waiting writer every [`ROOM_STEP`].
    fn give_back(&mut self, freed: u64) {
        self.map.u64_at(HEAD).store(self.head, Ordering::Release);
        self.unchecked += freed;
        if self.unchecked >= ROOM_STEP {
            self.wake_writer();
        }
    }

    /// Wakes the writer if it waits for room.
    fn wake_writer(&mut self) {
        self.unchecked = 0;
        fence(Ordering::SeqCst);
        let w = self.map.u32_at(WRITER_WAITING);
        if w.load(Ordering::Relaxed) != 0 {
            w.store(0, Ordering::Relaxed);
            let _ = futex::wake(w, futex::Flags::empty(), 1);
        }
    }
}

/// The reading end: a listener for writers, their rings, an epoll set.
pub struct RingRx {
    listener: OwnedFd,
    epoll: OwnedFd,
    rings: Vec<RxRing>,
    /// The ring the last record came from: looked at first.
    cur: usize,
    msgs_since_accept: u32,
    last_accept: Option<Instant>,
    /// How it watches the rings before it sleeps: as our reader does.
    watch: Watch,
    events: Vec<epoll::Event>,
}

impl RingRx {
    /// Listens at `path` for writers.
    pub fn bind(path: &Path) -> io::Result<RingRx> {
        let (listener, epoll) = listen_with_epoll(path)?;
        Ok(RingRx {
            listener,
            epoll,
            rings: Vec::new(),
            cur: 0,
            msgs_since_accept: 0,
            last_accept: None,
            watch: Watch::default(),
            events: Vec::with_capacity(16),
        })
    }

    /// Takes every writer waiting in the listen queue; true if any.
    fn accept_pending(&mut self) -> io::Result<bool> {
        self.last_accept = Some(Instant::now());
        self.msgs_since_accept = 0;
        let mut any = false;
        loop {
            match rustix::net::accept_with(&self.listener, SocketFlags::CLOEXEC) {
                Ok(conn) => any |= self.adopt(conn)?,
                Err(rustix::io::Errno::AGAIN) => return Ok(any),
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Receives a writer's hello (ring size, memory file, eventfd) and maps
    /// its ring; false if the writer left before saying it.
    fn adopt(&mut self, conn: OwnedFd) -> io::Result<bool> {
        let mut hello = [0u8; 16];
        let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(2))];
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let r = loop {
            let mut iov = [IoSliceMut::new(&mut hello)];
            match rustix::net::recvmsg(&conn, &mut iov, &mut control, RecvFlags::CMSG_CLOEXEC) {
                Ok(r) => break r,
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
        };
        let mut fds = Vec::new();
        for msg in control.drain() {
            if let RecvAncillaryMessage::ScmRights(passed) = msg {
                fds.extend(passed);
            }
        }
        if r.bytes == 0 && fds.is_empty() {
            return Ok(false);
        }
        let cap = u64::from_le_bytes(hello[8..].try_into().expect("8 bytes"));
        let [memfd, wake] = <[OwnedFd; 2]>::try_from(fds).map_err(|fds| {
            corrupt(format!(
                "a ring hello with {} descriptors, not 2",
                fds.len()
            ))
        })?;
        if r.bytes != hello.len() || &hello[..8] != MAGIC {
            return Err(corrupt(format!("a ring hello of {} bytes", r.bytes)));
        }
        if !cap.is_power_of_two() || !(4096..=1 << 30).contains(&cap) {
            return Err(corrupt(format!("a ring of {cap} bytes")));
        }
        let map = SharedMap::open(memfd.as_fd(), DATA + cap as usize)?;
        let idx = self.rings.len() as u64;
        epoll::add(
            &self.epoll,
            &wake,
            epoll::EventData::new_u64(idx),
            epoll::EventFlags::IN | epoll::EventFlags::ET,
        )?;
        self.rings.push(RxRing {
            map,
            cap,
            head: 0,
            tail: 0,
            unchecked: 0,
            _conn: conn,
            _wake: wake,
        });
        Ok(true)
    }

    /// Whether ring `only` (or any ring) has bytes we have not consumed.
    fn ready(&self, only: Option<usize>) -> bool {
        match only {
            Some(i) => self.rings[i].has_new(),
            None => self.rings.iter().any(RxRing::has_new),
        }
    }

    fn set_waiting(&self, only: Option<usize>, v: u32) {
        let rings = match only {
            Some(i) => &self.rings[i..=i],
            None => &self.rings[..],
        };
        for r in rings {
            r.map.u32_at(READER_WAITING).store(v, Ordering::Relaxed);
        }
    }

    /// Waits until ring `only` (or any ring) has new bytes, or a writer
    /// arrived: watches for [`SPIN`], then asks to be woken and sleeps.
    fn wait(&mut self, only: Option<usize>) -> io::Result<()> {
        let start = Instant::now();
        if self
            .last_accept
            .is_none_or(|t| start.duration_since(t) >= ACCEPT_EVERY)
            && self.accept_pending()?
        {
            return Ok(());
        }
        let mut watch = std::mem::take(&mut self.watch);
        let found = watch.run(start, SPIN, || self.ready(only));
        self.watch = watch;
        if found {
            return Ok(());
        }
        self.set_waiting(only, 1);
        fence(Ordering::SeqCst);
        if !self.ready(only) {
            self.events.clear();
            match epoll::wait(
                &self.epoll,
                rustix::buffer::spare_capacity(&mut self.events),
                None,
            ) {
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
            if self.events.iter().any(|e| e.data.u64() == LISTENER) {
                self.accept_pending()?;
            }
        }
        self.set_waiting(only, 0);
        Ok(())
    }

    /// Copies the next `dst.len()` bytes of ring `i`, waiting for the
    /// writer when it is in the middle of a record.
    fn fill(&mut self, i: usize, mut dst: &mut [u8]) -> io::Result<()> {
        while !dst.is_empty() {
            let r = &mut self.rings[i];
            let avail = r.avail()?;
            if avail == 0 {
                // Give back what we read: the writer may wait for room.
                r.give_back(0);
                r.wake_writer();
                self.wait(Some(i))?;
                continue;
            }
            let n = dst.len().min(avail as usize);
            let (now, rest) = std::mem::take(&mut dst).split_at_mut(n);
            r.take(now);
            dst = rest;
        }
        Ok(())
    }

    /// Reads the record at the head of ring `i` into `buf`.
    fn pop(&mut self, i: usize, buf: &mut [u8]) -> io::Result<usize> {
        let start = self.rings[i].head;
        let mut len = [0u8; 8];
        self.rings[i].take(&mut len);
        let len = u64::from_le_bytes(len);
        if len > buf.len() as u64 {
            return Err(corrupt(format!(
                "a record of {len} bytes in ring {i}, more than the {}-byte buffer",
                buf.len()
            )));
        }
        let len = len as usize;
        self.watch.took(len);
        self.fill(i, &mut buf[..len])?;
        let pad = len.next_multiple_of(8) - len;
        self.fill(i, &mut [0u8; 8][..pad])?;
        let r = &mut self.rings[i];
        let freed = r.head - start;
        r.give_back(freed);
        Ok(len)
    }
}

impl Rx for RingRx {
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.msgs_since_accept += 1;
        if self.msgs_since_accept >= ACCEPT_EVERY_MSGS {
            self.accept_pending()?;
        }
        loop {
            let n = self.rings.len();
            for k in 0..n {
                let i = if self.cur + k < n {
                    self.cur + k
                } else {
                    self.cur + k - n
                };
                let r = &mut self.rings[i];
                match r.avail()? {
                    0 => {
                        // Empty: a writer that waited for room must hear.
                        if r.unchecked > 0 {
                            r.wake_writer();
                        }
                    }
                    // A writer publishes whole lengths only.
                    1..8 => return Err(corrupt(format!("half a record length in ring {i}"))),
                    _ => {
                        self.cur = i;
                        return self.pop(i, buf);
                    }
                }
            }
            self.wait(None)?;
        }
    }
}

/// The writing end: our ring, and the connection that handed it over.
pub struct RingTx {
    map: SharedMap,
    cap: u64,
    /// Published so far.
    tail: u64,
    /// The head last read: room is computed from it until it runs short.
    head: u64,
    conn: OwnedFd,
    wake: OwnedFd,
    /// How long a wait for room lasts before looking at the connection.
    patience: Duration,
}

impl RingTx {
    /// Connects to the reader at `path` and hands it a new ring sized for
    /// messages of `size` bytes.
    pub fn connect(path: &Path, size: usize) -> io::Result<RingTx> {
        RingTx::connect_with(path, size, WRITER_PATIENCE)
    }

    /// [`RingTx::connect`], looking whether the reader is gone every
    /// `patience` while waiting for room.
    fn connect_with(path: &Path, size: usize, patience: Duration) -> io::Result<RingTx> {
        let conn = rustix::net::socket_with(
            AddressFamily::UNIX,
            SocketType::SEQPACKET,
            SocketFlags::CLOEXEC,
            None,
        )?;
        rustix::net::connect(&conn, &SocketAddrUnix::new(path)?)?;
        let cap = capacity(size);
        let (memfd, map) = SharedMap::create("mailslot-bench-ring", DATA + cap as usize)?;
        let wake = rustix::event::eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?;
        let mut hello = [0u8; 16];
        hello[..8].copy_from_slice(MAGIC);
        hello[8..].copy_from_slice(&cap.to_le_bytes());
        let fds = [memfd.as_fd(), wake.as_fd()];
        let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(2))];
        let mut control = SendAncillaryBuffer::new(&mut space);
        control.push(SendAncillaryMessage::ScmRights(&fds));
        loop {
            match rustix::net::sendmsg(
                &conn,
                &[IoSlice::new(&hello)],
                &mut control,
                SendFlags::NOSIGNAL,
            ) {
                Ok(_) => break,
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(RingTx {
            map,
            cap,
            tail: 0,
            head: 0,
            conn,
            wake,
            patience,
        })
    }

    /// Copies `src` in at position `t`, which has room for it.
    fn put(&self, t: u64, src: &[u8]) {
        let off = (t & (self.cap - 1)) as usize;
        let first = src.len().min(self.cap as usize - off);
        self.map.write(DATA + off, &src[..first]);
        self.map.write(DATA, &src[first..]);
    }

    /// Makes bytes up to `t` visible to the reader, and wakes it if it
    /// asked to be.
    fn publish(&mut self, t: u64) {
        if t == self.tail {
            return;
        }
        self.tail = t;
        self.map.u64_at(TAIL).store(t, Ordering::Release);
        fence(Ordering::SeqCst);
        let w = self.map.u32_at(READER_WAITING);
        if w.load(Ordering::Relaxed) != 0 && w.swap(0, Ordering::Relaxed) != 0 {
            // Non-blocking: only a counter at its maximum would refuse, and
            // the reader then has a wake-up pending anyway.
            let _ = rustix::io::write(&self.wake, &1u64.to_ne_bytes());
        }
    }

    /// The reader's head, checked against position `t`.
    fn read_head(&self, t: u64) -> io::Result<u64> {
        let h = self.map.u64_at(HEAD).load(Ordering::Acquire);
        if h > t || t - h > self.cap {
            return Err(corrupt(format!(
                "ring head {h} with tail {t} and {} bytes",
                self.cap
            )));
        }
        Ok(h)
    }

    /// Free bytes at position `t`, at least `want`: waits for the reader
    /// (after publishing up to `t`) while there are fewer.
    fn room(&mut self, t: u64, want: u64) -> io::Result<u64> {
        let free = self.cap - (t - self.head);
        if free >= want {
            return Ok(free);
        }
        self.head = self.read_head(t)?;
        let free = self.cap - (t - self.head);
        if free >= want {
            return Ok(free);
        }
        self.publish(t);
        let patience = futex::Timespec {
            tv_sec: self.patience.as_secs() as _,
            tv_nsec: self.patience.subsec_nanos() as _,
        };
        loop {
            let w = self.map.u32_at(WRITER_WAITING);
            w.store(1, Ordering::Relaxed);
            fence(Ordering::SeqCst);
            let h = self.read_head(t)?;
            let free = self.cap - (t - h);
            if free >= want {
                w.store(0, Ordering::Relaxed);
                self.head = h;
                return Ok(free);
            }
            match futex::wait(w, futex::Flags::empty(), 1, Some(&patience)) {
                Ok(()) | Err(rustix::io::Errno::AGAIN | rustix::io::Errno::INTR) => {}
                Err(rustix::io::Errno::TIMEDOUT) => self.check_reader()?,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Fails if the reader closed the connection (it sends nothing on it,
    /// so anything readable is its end).
    fn check_reader(&self) -> io::Result<()> {
        let mut fds = [PollFd::new(&self.conn, PollFlags::IN)];
        rustix::event::poll(&mut fds, Some(&rustix::time::Timespec::default()))?;
        if fds[0].revents().is_empty() {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the ring's reader is gone (its connection closed)",
            ))
        }
    }
}

impl Tx for RingTx {
    fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        let mut t = self.tail;
        // A length never wraps: positions and the ring size are multiples of 8.
        self.room(t, 8)?;
        self.put(t, &(msg.len() as u64).to_le_bytes());
        t += 8;
        let mut rest = msg;
        while !rest.is_empty() {
            let free = self.room(t, 1)?;
            let n = rest.len().min(free as usize);
            self.put(t, &rest[..n]);
            t += n as u64;
            rest = &rest[n..];
        }
        let pad = t.next_multiple_of(8) - t;
        if pad > 0 {
            self.room(t, pad)?;
            t += pad;
        }
        self.publish(t);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    //! The ring between two threads, each side forced to sleep often: a
    //! lost wake-up hangs a side, which the test reports as a stall.
    use super::*;
    use std::sync::mpsc;

    /// Byte `j` of message `seq`: a pattern that moves with both, so a
    /// torn, shifted or stale copy shows.
    fn byte(seq: u64, j: usize) -> u8 {
        (seq as usize)
            .wrapping_mul(131)
            .wrapping_add(j.wrapping_mul(7)) as u8
    }

    /// Sends `count` messages of `size` bytes from one thread to another;
    /// `writer_pause(seq)` and `reader_pause(seq)` run before each.
    fn carry(
        size: usize,
        count: u64,
        writer_pause: fn(u64),
        reader_pause: fn(u64),
    ) -> Result<(), String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ring.sock");
        let (ready_tx, ready) = mpsc::channel();
        let (done_tx, done) = mpsc::channel();
        let p = path.clone();
        let done_r = done_tx.clone();
        std::thread::spawn(move || {
            let r = (|| -> Result<(), String> {
                let mut rx = RingRx::bind(&p).map_err(|e| e.to_string())?;
                ready_tx.send(()).unwrap();
                let mut buf = vec![0u8; size + 1];
                for seq in 0..count {
                    reader_pause(seq);
                    let n = rx.recv(&mut buf).map_err(|e| e.to_string())?;
                    if n != size {
                        return Err(format!("message {seq}: {n} bytes, sent {size}"));
                    }
                    if let Some(j) = (0..n).find(|&j| buf[j] != byte(seq, j)) {
                        return Err(format!("message {seq}: byte {j} differs"));
                    }
                }
                Ok(())
            })();
            let _ = done_r.send(("reader", r));
        });
        ready.recv_timeout(Duration::from_secs(10)).unwrap();
        let done_w = done_tx;
        std::thread::spawn(move || {
            let r = (|| -> Result<(), String> {
                // Patient enough never to look at the connection in a
                // test: a lost wake-up of the writer then hangs it.
                let mut tx = RingTx::connect_with(&path, size, Duration::from_secs(3600))
                    .map_err(|e| e.to_string())?;
                let mut msg = vec![0u8; size];
                for seq in 0..count {
                    writer_pause(seq);
                    for (j, b) in msg.iter_mut().enumerate() {
                        *b = byte(seq, j);
                    }
                    tx.send(&msg).map_err(|e| e.to_string())?;
                }
                Ok(())
            })();
            let _ = done_w.send(("writer", r));
        });
        for _ in 0..2 {
            let (who, r) = done
                .recv_timeout(Duration::from_secs(60))
                .map_err(|_| "stalled: a side slept through a wake-up".to_string())?;
            r.map_err(|e| format!("{who}: {e}"))?;
        }
        Ok(())
    }

    fn no_pause(_: u64) {}

    #[test]
    fn reader_sleeping_between_bursts_is_woken_for_each() {
        // Pauses well over the reader's 20 µs watch: it sleeps each time.
        let pause = |seq: u64| {
            if seq % 50 == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
        };
        carry(64, 5_000, pause, no_pause).unwrap();
    }

    #[test]
    fn writer_waiting_for_room_is_woken_when_the_reader_catches_up() {
        // 1 KiB records fill the 256 KiB ring while the reader pauses.
        let pause = |seq: u64| {
            if seq % 1_000 == 0 {
                std::thread::sleep(Duration::from_millis(5));
            }
        };
        carry(1_000, 20_000, no_pause, pause).unwrap();
    }

    #[test]
    fn records_larger_than_the_ring_stream_through_it_intact() {
        // 3 MiB + 5 through a 2 MiB ring: every record wraps and streams,
        // and its length is not a multiple of 8.
        let pause = |seq: u64| {
            if seq % 4 == 0 {
                std::thread::sleep(Duration::from_millis(2));
            }
        };
        carry((3 << 20) + 5, 8, no_pause, pause).unwrap();
        carry((3 << 20) + 5, 8, pause, no_pause).unwrap();
    }
}
