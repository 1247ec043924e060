//! Deliveries written to a slot whose reader has not yet taken the
//! connection: counted delivered only once its welcome comes, refused or
//! lost when the reader says so or goes. Never waits.

use std::collections::VecDeque;
use std::os::fd::{AsFd, BorrowedFd};
use std::time::Duration;

use mailslot::{Error as SlotError, Writer};

/// How long a delivery may wait for the reader's welcome before it is
/// given up as not taken.
pub(crate) const CONFIRM_WITHIN: Duration = Duration::from_secs(5);

/// At most this many deliveries wait for their welcome (each holds a
/// connection); the oldest is given up beyond it.
pub(crate) const MAX_WAITING: usize = 256;

/// What became of a delivery.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// The reader took it.
    Delivered,
    /// The reader refused the connection (why).
    Refused(String),
    /// The reader went away before taking it.
    NoReader,
    /// No welcome within [`CONFIRM_WITHIN`], or pushed out by newer ones.
    NotTaken,
}

impl Outcome {
    /// The drop counter of an outcome that is not a delivery.
    pub(crate) fn counter(&self) -> Option<&'static str> {
        match self {
            Outcome::Delivered => None,
            Outcome::Refused(_) => Some("refused-by-reader"),
            Outcome::NoReader => Some("no-reader"),
            Outcome::NotTaken => Some("not-taken"),
        }
    }
}

/// One delivery waiting for its welcome; `what` describes it for the log.
struct Waiting {
    writer: Writer,
    since: Duration,
    what: String,
}

/// The deliveries waiting for their reader's welcome.
#[derive(Default)]
pub(crate) struct Unconfirmed {
    waiting: VecDeque<Waiting>,
}

impl Unconfirmed {
    /// Adds a delivery written at `now`; returns the outcome of the oldest
    /// if it had to make room.
    pub(crate) fn push(
        &mut self,
        writer: Writer,
        now: Duration,
        what: String,
    ) -> Option<(Outcome, String)> {
        let evicted = (self.waiting.len() >= MAX_WAITING)
            .then(|| self.waiting.pop_front())
            .flatten()
            .map(|w| (Outcome::NotTaken, w.what));
        self.waiting.push_back(Waiting {
            writer,
            since: now,
            what,
        });
        evicted
    }

    /// Looks at every waiting delivery without waiting; returns those
    /// settled, with their outcome.
    pub(crate) fn settle(&mut self, now: Duration) -> Vec<(Outcome, String)> {
        let mut done = Vec::new();
        self.waiting.retain(|w| {
            let outcome = match w.writer.wait_accepted(Some(Duration::ZERO)) {
                Ok(true) => Outcome::Delivered,
                Ok(false) if now.saturating_sub(w.since) >= CONFIRM_WITHIN => Outcome::NotTaken,
                Ok(false) => return true,
                Err(SlotError::Refused { detail, .. }) => Outcome::Refused(detail),
                Err(_) => Outcome::NoReader,
            };
            done.push((outcome, w.what.clone()));
            false
        });
        done
    }

    /// The connections to watch: readable when a welcome (or the end) came.
    pub(crate) fn fds(&self) -> impl Iterator<Item = BorrowedFd<'_>> {
        self.waiting.iter().map(|w| w.writer.as_fd())
    }

    /// Whether none is waiting.
    pub(crate) fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }
}
