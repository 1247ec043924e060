//! How a reader watches its rings before it sleeps: what it does between
//! two looks. (Public only so that `mailslot bench`'s raw ring baseline
//! watches exactly as the reader does; not part of the API.)
//!
//! A writer on another processor is seen soonest by a reader that looks
//! again at once. `sched_yield` between looks (0.7 µs on a VM, where a
//! system call costs 0.2) left the reader blind most of the time: a 64 B
//! ping-pong took 0.8–1.0 µs one way, 0.4 with pauses. So between looks the
//! reader pauses (a few `pause` instructions, about 0.1 µs), and yields only
//! every `LOOKS_PER_YIELD` looks, to anyone waiting for its processor.
//!
//! That is wrong when the writer shares the reader's processor: it cannot
//! write until the reader yields, and every look before the yield is
//! wasted (one-core ping-pong went from 2.4 to 4.0 µs). The reader tells
//! the two apart by where records turn up. A writer elsewhere is found
//! mostly by the looks after a pause (a yield takes about a fifth of a
//! round of looks, so about a fifth of finds follow one); a writer on the
//! same processor only by the look right after a yield. A score counts
//! finds after a yield up and finds after a pause down, three times as
//! fast; from `YIELDING` on, the reader yields between every two looks,
//! as it always did before, and every `PROBE_EVERY` watches it pauses
//! again to see whether that still holds.
//!
//! Pausing is wrong too when more threads want to run than there are
//! processors (four queued writers and their reader: nine threads on two
//! processors). A reader that pauses keeps its processor from writers
//! that would fill its rings: 1 KiB, four queued writers lost 12–37%. So
//! every `SAMPLE_EVERY` the watch reads how many threads are runnable on
//! the machine (`/proc/loadavg`); while that is more than the processors
//! this process may use, it yields between every two looks.
//!
//! And looking at once is wrong when the reader chases a writer that
//! writes as fast as it reads: every look then finds a record or two, and
//! each look and each publication pass the ring's tail line from one
//! processor to the other (64 B messages, one writer: a look at the tail
//! for every three or four records, the writer's publication 50% of its
//! time). So when `CHASING` watches in a row found records at their first
//! look, the next one lets `GATHER` pass before its first look, pausing:
//! a batch gathers meanwhile, the writer publishes into a line nobody
//! else holds, and the reader takes the batch with one look (a look for
//! every 100 or more records, 1.4x the messages a second). A watch whose
//! first look finds nothing ends the chase, so a reader answering a
//! ping-pong (its first look finds the answer one time in ten) never
//! waits; nor does one of records over `GATHER_MAX`, whose copies cost
//! more than its looks (it would only lose the time).

use std::time::{Duration, Instant};

use crate::sys;

/// Looks between two yields while pausing.
const LOOKS_PER_YIELD: u32 = 16;
/// `pause` instructions between two looks (about 30 ns each on AMD EPYC,
/// 40 on recent Intel; a look at one ring costs about 10).
const PAUSES: u32 = 4;
/// Score from which the reader yields between every two looks.
const YIELDING: u8 = 8;
const SCORE_MAX: u8 = 16;
/// What a find after a pause takes off the score (a find after a yield
/// adds one): with a writer elsewhere about one find in five follows a
/// yield, so the score stays low; with one on this processor every find
/// does, and it rises.
const PAUSE_CREDIT: u8 = 3;
/// How often a watch looks how many threads are runnable (a read of
/// `/proc/loadavg`, about 3 µs).
const SAMPLE_EVERY: Duration = Duration::from_millis(2);
/// While yielding, every this many watches pause instead, to notice a
/// writer that moved to another processor.
const PROBE_EVERY: u32 = 64;
/// Watches in a row whose first look found records, after which the next
/// one gathers (see the module's documentation).
const CHASING: u8 = 4;
/// How long a gathering watch waits before its first look: 0.7 µs gave
/// 1.14x the 64 B messages a second of looking at once, 1.5 µs 1.42x, 3
/// µs 1.2x (one writer, Intel Xeon VM; runs interleaved).
const GATHER: Duration = Duration::from_nanos(1500);
/// Only a reader of records up to this size gathers: copying larger ones
/// out costs it more than its looks, and a reader that waits meanwhile
/// loses what it would have copied (60 KiB, one writer: 7% fewer a
/// second; 1 KiB neither gains nor loses).
const GATHER_MAX: usize = 1024;

/// The watch policy's state: one per reader.
#[derive(Debug, Default)]
pub struct Watch {
    score: u8,
    watches: u32,
    /// Watches in a row whose first look found something.
    chased: u8,
    /// The last record taken was larger than [`GATHER_MAX`].
    large: bool,
    /// More threads were runnable than this process has processors.
    crowded: bool,
    /// When that was last looked at.
    sampled: Option<Instant>,
    /// The processors this process may use (looked at once: that reads
    /// files of the process's control group).
    cpus: Option<u32>,
}

/// What came right before the look that found something.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Before {
    /// Nothing: the watch's first look found it.
    Nothing,
    Paused,
    Yielded,
}

impl Watch {
    /// Calls `look` until it returns true (then true) or `spin` has passed
    /// since `start` (then false), pausing or yielding between calls. (It
    /// looks at the clock only before a yield: a watch may overrun `spin`
    /// by up to 16 looks and pauses, about 2 µs.)
    pub fn run(&mut self, start: Instant, spin: Duration, mut look: impl FnMut() -> bool) -> bool {
        if spin.is_zero() {
            return look();
        }
        self.sample(start);
        let yield_always = self.start();
        // A writer that shares the processor cannot write while we pause:
        // a yielding watch never gathers.
        if !yield_always && self.gathers() {
            pause_until(start, GATHER.min(spin));
        }
        let mut before = Before::Nothing;
        let mut looks = 0u32;
        loop {
            if look() {
                if !yield_always {
                    self.found(before);
                }
                self.chased = if before == Before::Nothing {
                    self.chased.saturating_add(1)
                } else {
                    0
                };
                return true;
            }
            looks += 1;
            if yield_always || looks % LOOKS_PER_YIELD == 0 {
                if start.elapsed() >= spin {
                    self.chased = 0;
                    return false;
                }
                std::thread::yield_now();
                before = Before::Yielded;
            } else {
                for _ in 0..PAUSES {
                    std::hint::spin_loop();
                }
                before = Before::Paused;
            }
        }
    }

    /// The reader took a record of `len` bytes (see [`GATHER_MAX`]).
    pub fn took(&mut self, len: usize) {
        self.large = len > GATHER_MAX;
    }

    /// Whether the next watch waits [`GATHER`] before its first look
    /// (unless it yields throughout).
    fn gathers(&self) -> bool {
        self.chased >= CHASING && !self.large
    }

    /// Looks how many threads are runnable, if that was not looked at for
    /// [`SAMPLE_EVERY`].
    fn sample(&mut self, now: Instant) {
        if self
            .sampled
            .is_none_or(|t| now.duration_since(t) >= SAMPLE_EVERY)
        {
            self.sampled = Some(now);
            let cpus = *self.cpus.get_or_insert_with(sys::usable_cpus);
            self.crowded = sys::runnable_threads().is_some_and(|n| n > cpus);
        }
    }

    /// Starts a watch: true if it should yield between every two looks.
    fn start(&mut self) -> bool {
        self.watches = self.watches.wrapping_add(1);
        self.crowded || (self.score >= YIELDING && self.watches % PROBE_EVERY != 0)
    }

    /// A watch that paused between looks found something after `before`.
    /// (A watch that yielded throughout learns nothing: every find follows
    /// a yield there.)
    fn found(&mut self, before: Before) {
        match before {
            Before::Nothing => {}
            Before::Yielded => self.score = (self.score + 1).min(SCORE_MAX),
            Before::Paused => self.score = self.score.saturating_sub(PAUSE_CREDIT),
        }
    }
}

/// Pauses until `wait` has passed since `start`.
fn pause_until(start: Instant, wait: Duration) {
    while start.elapsed() < wait {
        for _ in 0..PAUSES {
            std::hint::spin_loop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A watch that takes the machine as not crowded and does not look
    /// (a sample time in the future never grows old).
    fn uncrowded() -> Watch {
        Watch {
            sampled: Some(Instant::now() + Duration::from_secs(3600)),
            ..Watch::default()
        }
    }

    /// Runs `watches` watches whose finds follow a yield where
    /// `after_yield` says so; returns how many of the last 64 yielded
    /// throughout.
    fn run(w: &mut Watch, watches: u32, after_yield: impl Fn(u32) -> bool) -> u32 {
        let mut yielding = 0;
        for i in 0..watches {
            let y = w.start();
            if !y {
                w.found(if after_yield(i) {
                    Before::Yielded
                } else {
                    Before::Paused
                });
            }
            if i + 64 >= watches && y {
                yielding += 1;
            }
        }
        yielding
    }

    #[test]
    fn a_writer_on_another_processor_keeps_the_reader_pausing() {
        let mut w = uncrowded();
        // One find in four after a yield (more than the expected fifth).
        assert_eq!(run(&mut w, 1000, |i| i % 4 == 0), 0);
    }

    #[test]
    fn a_writer_on_the_same_processor_makes_it_yield() {
        let mut w = uncrowded();
        // Every watch but the probes.
        assert_eq!(run(&mut w, 1000, |_| true), 63);
    }

    #[test]
    fn a_writer_that_moves_away_is_noticed_by_the_probes() {
        let mut w = uncrowded();
        run(&mut w, 1000, |_| true);
        // Every find now comes after a pause: three probes bring it back.
        assert_eq!(run(&mut w, 4 * PROBE_EVERY, |_| false), 0);
    }

    #[test]
    fn a_crowded_machine_makes_it_yield() {
        let mut w = Watch {
            crowded: true,
            ..uncrowded()
        };
        assert_eq!(run(&mut w, 1000, |_| false), 64);
        w.crowded = false;
        assert_eq!(run(&mut w, 1000, |_| false), 0);
    }

    #[test]
    fn a_first_look_find_teaches_nothing() {
        let mut w = Watch {
            score: YIELDING - 1,
            ..uncrowded()
        };
        for _ in 0..100 {
            assert!(w.run(Instant::now(), Duration::from_secs(1), || true));
        }
        assert_eq!(w.score, YIELDING - 1);
    }

    #[test]
    fn a_watch_pauses_between_looks_and_yields_every_sixteenth() {
        let mut w = Watch {
            score: 5,
            ..uncrowded()
        };
        let mut looks = 0;
        // A find on the fifth look: after a pause.
        assert!(w.run(Instant::now(), Duration::from_secs(10), || {
            looks += 1;
            looks == 5
        }));
        assert_eq!(w.score, 5 - PAUSE_CREDIT);
        // On the 17th: right after the first yield.
        looks = 0;
        assert!(w.run(Instant::now(), Duration::from_secs(10), || {
            looks += 1;
            looks == LOOKS_PER_YIELD + 1
        }));
        assert_eq!(w.score, 5 - PAUSE_CREDIT + 1);
    }

    #[test]
    fn a_reader_chasing_a_writer_gathers_before_its_first_look() {
        let mut w = uncrowded();
        // Found at once, CHASING times: no wait before any of them.
        for _ in 0..CHASING {
            assert!(w.chased < CHASING);
            assert!(w.run(Instant::now(), Duration::from_secs(1), || true));
        }
        // The next watch's first look comes GATHER after its start.
        let start = Instant::now();
        let mut first = None;
        assert!(w.run(start, Duration::from_secs(1), || {
            first.get_or_insert_with(|| start.elapsed());
            true
        }));
        assert!(first.expect("looked") >= GATHER, "{first:?}");
        // Still chasing; a first look that finds nothing ends it.
        assert!(w.chased >= CHASING);
        let mut looks = 0;
        assert!(w.run(Instant::now(), Duration::from_secs(1), || {
            looks += 1;
            looks == 2
        }));
        assert_eq!(w.chased, 0);
    }

    #[test]
    fn a_reader_of_large_records_never_gathers() {
        let mut w = uncrowded();
        w.took(GATHER_MAX);
        for _ in 0..CHASING {
            assert!(w.run(Instant::now(), Duration::from_secs(1), || true));
        }
        assert!(w.gathers());
        w.took(GATHER_MAX + 1);
        assert!(!w.gathers());
        w.took(64);
        assert!(w.gathers());
    }

    #[test]
    fn a_watch_ends_when_its_time_is_up() {
        let mut w = uncrowded();
        let start = Instant::now();
        let mut looks = 0u32;
        assert!(!w.run(start, Duration::from_millis(5), || {
            looks += 1;
            false
        }));
        assert!(start.elapsed() >= Duration::from_millis(5));
        assert!(looks >= LOOKS_PER_YIELD);
    }
}
