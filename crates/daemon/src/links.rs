//! The daemon's connections to slots' network sockets, one per slot, kept
//! while in use: a delivery counts once the slot's reader has taken the
//! connection (its welcome came), is refused or lost when the reader says
//! so or goes. Never waits.

use std::collections::{HashMap, VecDeque};
use std::os::fd::{AsFd, BorrowedFd};
use std::time::Duration;

use mailslot::{Error as SlotError, Namespace, RemoteOrigin, SlotName, Writer};

/// How long a delivery may wait for the reader's welcome before it is
/// given up as not taken.
pub(crate) const CONFIRM_WITHIN: Duration = Duration::from_secs(5);

/// At most this many slots have a connection; the least recently used is
/// closed beyond it.
pub(crate) const MAX_LINKS: usize = 64;

/// A connection unused this long is closed.
pub(crate) const IDLE: Duration = Duration::from_secs(60);

/// What became of a delivery.
#[derive(Clone, Debug)]
pub(crate) enum Outcome {
    /// The reader took it.
    Delivered,
    /// The reader refused the connection (why).
    Refused(String),
    /// The reader went away before taking it.
    NoReader,
    /// No welcome within [`CONFIRM_WITHIN`], or its connection was closed
    /// to make room for others.
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

/// A delivery's outcome with its description (for the log).
pub(crate) type Settled = (Outcome, String);

/// The connection to one slot.
struct Link {
    writer: Writer,
    /// The reader has taken the connection: what is written now is its.
    welcomed: bool,
    /// Deliveries written before the welcome: when, and what.
    pending: VecDeque<(Duration, String)>,
    used: Duration,
}

/// The connections, by slot file stem.
#[derive(Default)]
pub(crate) struct Links {
    links: HashMap<String, Link>,
}

impl Links {
    /// Writes `data` from `origin` to `slot`, on its connection (opened
    /// when there is none, or again when the reader of the old one has
    /// gone). `Ok`: written, with deliveries settled meanwhile (this one
    /// among them once the reader has taken the connection); `Err`: the
    /// drop reason.
    pub(crate) fn deliver(
        &mut self,
        ns: &Namespace,
        slot: &SlotName,
        data: &[u8],
        origin: &RemoteOrigin,
        what: String,
        now: Duration,
    ) -> Result<Vec<Settled>, &'static str> {
        let key = slot.file_stem();
        let mut settled = Vec::new();
        if let Some(link) = self.links.get_mut(&key) {
            match link.writer.write_remote(data, origin) {
                Ok(()) => {
                    link.used = now;
                    if link.welcomed {
                        settled.push((Outcome::Delivered, what));
                    } else {
                        link.pending.push_back((now, what));
                    }
                    return Ok(settled);
                }
                Err(e) => {
                    if let Some(reason) = dropped(&e) {
                        return Err(reason);
                    }
                    // The reader has gone (or cut us off): what waited on
                    // this connection is lost with it; try a new one.
                    let outcome = match e {
                        SlotError::Refused { detail, .. } => Outcome::Refused(detail),
                        _ => Outcome::NoReader,
                    };
                    let old = self.links.remove(&key).expect("the link exists");
                    settled.extend(old.pending.into_iter().map(|(_, w)| (outcome.clone(), w)));
                }
            }
        }
        let writer = open(ns, slot)?;
        match writer.write_remote(data, origin) {
            Ok(()) => {}
            Err(e) => {
                return Err(dropped(&e).unwrap_or(match e {
                    SlotError::Refused { .. } => "refused-by-reader",
                    SlotError::ReaderClosed { .. } => "no-reader",
                    _ => "delivery-error",
                }));
            }
        }
        if self.links.len() >= MAX_LINKS {
            settled.extend(self.close_least_used());
        }
        self.links.insert(
            key,
            Link {
                writer,
                welcomed: false,
                pending: VecDeque::from([(now, what)]),
                used: now,
            },
        );
        Ok(settled)
    }

    /// Looks at every connection still waiting for its welcome, without
    /// waiting, and closes connections idle for [`IDLE`]; returns the
    /// deliveries settled.
    pub(crate) fn settle(&mut self, now: Duration) -> Vec<Settled> {
        let mut done = Vec::new();
        self.links.retain(|_, link| {
            if link.welcomed {
                return now.saturating_sub(link.used) < IDLE;
            }
            let outcome = match link.writer.wait_accepted(Some(Duration::ZERO)) {
                Ok(true) => {
                    link.welcomed = true;
                    done.extend(link.pending.drain(..).map(|(_, w)| (Outcome::Delivered, w)));
                    return true;
                }
                Ok(false) => match link.pending.front() {
                    Some((since, _)) if now.saturating_sub(*since) >= CONFIRM_WITHIN => {
                        Outcome::NotTaken
                    }
                    _ => return true,
                },
                Err(SlotError::Refused { detail, .. }) => Outcome::Refused(detail),
                Err(_) => Outcome::NoReader,
            };
            done.extend(link.pending.drain(..).map(|(_, w)| (outcome.clone(), w)));
            false
        });
        done
    }

    /// Closes the least recently used connection; its deliveries still
    /// waiting for a welcome are not taken.
    fn close_least_used(&mut self) -> Vec<Settled> {
        let Some(key) = self
            .links
            .iter()
            .min_by_key(|(_, l)| l.used)
            .map(|(k, _)| k.clone())
        else {
            return Vec::new();
        };
        let link = self.links.remove(&key).expect("the link exists");
        link.pending
            .into_iter()
            .map(|(_, w)| (Outcome::NotTaken, w))
            .collect()
    }

    /// The connections to watch: those waiting for a welcome (readable
    /// when it, or the end, comes).
    pub(crate) fn fds(&self) -> impl Iterator<Item = BorrowedFd<'_>> {
        self.links
            .values()
            .filter(|l| !l.welcomed)
            .map(|l| l.writer.as_fd())
    }

    /// Whether any connection is open.
    pub(crate) fn is_empty(&self) -> bool {
        self.links.is_empty()
    }
}

/// The drop reason of a write error that leaves the connection usable.
fn dropped(e: &SlotError) -> Option<&'static str> {
    match e {
        // Never wait: a full slot loses the datagram, like a full
        // mailslot on Windows.
        SlotError::TimedOut { .. } => Some("slot-full"),
        SlotError::MessageTooLarge { .. } => Some("too-large-for-slot"),
        _ => None,
    }
}

/// Opens `slot`'s network socket, never waiting; the drop reason when it
/// cannot be.
fn open(ns: &Namespace, slot: &SlotName) -> Result<Writer, &'static str> {
    let w = match Writer::open_network_in(ns, slot) {
        Ok(w) => w,
        Err(SlotError::NotFound { .. }) => {
            // Class 2: no reader means the message is lost, silently. Tell
            // "no reader" from "refuses network messages" by its metadata,
            // read the namespace's way: never blocking on a planted FIFO,
            // never more than a few KiB of a planted huge file.
            let refuses = ns.accepts_remote(slot) == Some(false);
            return Err(if refuses {
                "refuses-network"
            } else {
                "no-reader"
            });
        }
        Err(SlotError::TimedOut { .. }) => return Err("slot-full"),
        Err(_) => return Err("delivery-error"),
    };
    if !w.accepts_remote() {
        return Err("refuses-network");
    }
    Ok(w)
}
