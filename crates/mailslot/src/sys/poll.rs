//! Waiting for readiness: `poll`, epoll ([`Poller`]) and the reader's waker ([`EventFd`]).

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use rustix::event::{EventfdFlags, PollFd, PollFlags, epoll};

use super::to_io;
use super::uring::QuietWatch;

fn timespec(d: Duration) -> rustix::time::Timespec {
    rustix::time::Timespec {
        tv_sec: d.as_secs().min(i64::MAX as u64) as i64,
        tv_nsec: i64::from(d.subsec_nanos()),
    }
}

/// `poll(fd, POLLOUT, timeout)`; `Ok(false)` on timeout.
pub(crate) fn wait_writable(fd: BorrowedFd<'_>, timeout: Option<Duration>) -> io::Result<bool> {
    wait_for(fd, PollFlags::OUT, timeout)
}

/// `poll(fd, POLLIN, timeout)`; `Ok(false)` on timeout.
pub(crate) fn wait_readable(fd: BorrowedFd<'_>, timeout: Option<Duration>) -> io::Result<bool> {
    wait_for(fd, PollFlags::IN, timeout)
}

/// `poll(fd, what, timeout)`; `Ok(false)` on timeout.
fn wait_for(fd: BorrowedFd<'_>, what: PollFlags, timeout: Option<Duration>) -> io::Result<bool> {
    let mut fds = [PollFd::new(&fd, what)];
    let ts = timeout.map(timespec);
    loop {
        match rustix::event::poll(&mut fds, ts.as_ref()) {
            Ok(0) => return Ok(false),
            Ok(_) => return Ok(true),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(to_io(e)),
        }
    }
}

/// `MAILSLOT_NO_IO_URING` set (to anything): readers poll without the
/// io_uring watch, as on a system that has none.
fn no_uring() -> bool {
    std::env::var_os("MAILSLOT_NO_IO_URING").is_some()
}

/// An epoll instance with `u64` tokens.
///
/// Holds no event buffer (rustix's `epoll::Event` carries a raw pointer and
/// is not `Send`), so a `Reader` can move to another thread.
///
/// Where io_uring is available it also keeps a [`QuietWatch`] on itself,
/// so that [`nothing_new`](Poller::nothing_new) can answer from shared
/// memory what an `epoll_wait` with no wait would find.
pub(crate) struct Poller {
    fd: OwnedFd,
    watch: Option<QuietWatch>,
    /// The last `epoll_wait` found nothing ready (and no descriptor was
    /// added since).
    settled: bool,
}

impl Poller {
    /// `epoll_create1(EPOLL_CLOEXEC)`, and the io_uring watch when the
    /// system allows one.
    pub(crate) fn new() -> io::Result<Poller> {
        let fd = epoll::create(epoll::CreateFlags::CLOEXEC).map_err(to_io)?;
        let watch = if no_uring() {
            None
        } else {
            QuietWatch::new(fd.as_fd()).ok()
        };
        Ok(Poller {
            fd,
            watch,
            settled: false,
        })
    }

    /// True only when an `epoll_wait` now would find nothing ready: the
    /// last one found nothing, and nothing registered became ready since —
    /// including anything whose system call (a writer's `send`, `connect`)
    /// returned before this call. Makes no system call; false whenever it
    /// cannot tell (no io_uring here). Call it after reading the clock a
    /// pass is stamped with.
    pub(crate) fn nothing_new(&self) -> bool {
        self.settled && self.watch.as_ref().is_some_and(|w| w.quiet(true))
    }

    /// [`nothing_new`](Poller::nothing_new) for a caller that must look
    /// only after an acquire load (which keeps later loads after it), not
    /// after a clock read: no fence.
    pub(crate) fn nothing_new_after_load(&self) -> bool {
        self.settled && self.watch.as_ref().is_some_and(|w| w.quiet(false))
    }

    /// `epoll_ctl(EPOLL_CTL_ADD, fd, EPOLLIN | EPOLLRDHUP)`, level-triggered.
    pub(crate) fn add(&mut self, fd: BorrowedFd<'_>, token: u64) -> io::Result<()> {
        self.add_with(fd, token, epoll::EventFlags::RDHUP)
    }

    /// `epoll_ctl(EPOLL_CTL_ADD, fd, EPOLLIN | EPOLLET)`: one event per
    /// signal of an eventfd, so it never needs to be read (and a peer that
    /// holds the other copy cannot make a read block).
    pub(crate) fn add_edge(&mut self, fd: BorrowedFd<'_>, token: u64) -> io::Result<()> {
        self.add_with(fd, token, epoll::EventFlags::ET)
    }

    fn add_with(
        &mut self,
        fd: BorrowedFd<'_>,
        token: u64,
        extra: epoll::EventFlags,
    ) -> io::Result<()> {
        // A descriptor added while ready shows at the next wait.
        self.settled = false;
        let events = epoll::EventFlags::IN | extra;
        epoll::add(&self.fd, fd, epoll::EventData::new_u64(token), events).map_err(to_io)
    }

    /// `epoll_ctl(EPOLL_CTL_DEL, fd)`.
    pub(crate) fn delete(&self, fd: BorrowedFd<'_>) -> io::Result<()> {
        epoll::delete(&self.fd, fd).map_err(to_io)
    }

    /// `epoll_wait(timeout)`: fills `tokens` with up to `max` ready tokens
    /// (cleared first). `None` waits forever; `EINTR` returns no events.
    pub(crate) fn wait(
        &mut self,
        tokens: &mut Vec<u64>,
        max: usize,
        timeout: Option<Duration>,
    ) -> io::Result<()> {
        tokens.clear();
        self.settled = false;
        // What the watch reported so far is consumed before the epoll set
        // is looked at, never after: anything that becomes ready later
        // leaves a new mark.
        if let Some(w) = &mut self.watch {
            if w.reap(self.fd.as_fd()).is_err() {
                self.watch = None;
            }
        }
        let mut events: Vec<epoll::Event> = Vec::with_capacity(max.max(8));
        let ts = timeout.map(timespec);
        match epoll::wait(
            &self.fd,
            rustix::buffer::spare_capacity(&mut events),
            ts.as_ref(),
        ) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => return Ok(()),
            Err(e) => return Err(to_io(e)),
        }
        tokens.extend(events.iter().map(|e| e.data.u64()));
        self.settled = tokens.is_empty();
        Ok(())
    }
}

impl AsFd for Poller {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// A non-blocking eventfd used to interrupt a waiting reader.
#[derive(Debug)]
pub(crate) struct EventFd {
    fd: OwnedFd,
}

impl EventFd {
    /// `eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)`.
    pub(crate) fn new() -> io::Result<EventFd> {
        Ok(EventFd {
            fd: rustix::event::eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)
                .map_err(to_io)?,
        })
    }

    /// `write(eventfd, 1)`.
    pub(crate) fn signal(&self) -> io::Result<()> {
        match rustix::io::write(&self.fd, &1u64.to_ne_bytes()) {
            Ok(_) | Err(rustix::io::Errno::AGAIN) => Ok(()),
            Err(e) => Err(to_io(e)),
        }
    }

    /// `read(eventfd)`: consumes pending signals; true if there were any.
    pub(crate) fn drain(&self) -> bool {
        let mut b = [0u8; 8];
        matches!(rustix::io::read(&self.fd, &mut b), Ok(8))
    }
}

impl AsFd for EventFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
