//! When each leg of a media thread ticks. Every leg gives and takes a frame every 20 ms, but
//! not all at the same instant: there are [`PHASES`] phases 1 ms apart. Ticking every leg at
//! once would send the last leg's frame as late as the work of all the others (a whole
//! thread's load, milliseconds), and load the CPU in bursts; spread out, a frame waits only for
//! the few legs of its own phase.
//!
//! The thread wakes only for the phases that have legs, and for every [`READ_EVERY`]th phase,
//! where it reads the sockets even when nothing ticks (a packet waits at most that long,
//! well inside any jitter buffer's delay; its arrival is taken as the wake-up's time, so the
//! jitter buffers see the network 5 ms coarse at worst, against 1 ms when every phase woke). Each wake-up costs more than the syscall: the
//! thread comes back to caches other work has filled, which slows the codec work after it. So
//! a new leg joins a phase that wakes anyway while one holds fewer than [`PHASE_LEGS`] legs
//! (a batch of under a millisecond of transcoding), and only then opens another, the one
//! farthest from those that wake. One call wakes its thread 200 times a second, not 1000;
//! 125 transcoding calls about 550 times. Measured with `bench/media.py` at 250 calls on 2
//! cores: 1 wake-up per 1 ms phase cost about 59 µs per call per 20 ms, this 56-58 µs, with
//! a p99 added latency of 1 ms (16 legs a phase: 1.5 ms).
//! Pure bookkeeping: no clock, no sockets.

use std::time::{Duration, Instant};

/// Phases per 20 ms tick.
pub(crate) const PHASES: usize = 20;
pub(crate) const TICK: Duration = Duration::from_millis(20);
/// Time between two phases.
pub(crate) const STEP: Duration = Duration::from_millis(1);
/// Every this many phases the thread wakes, legs or not, to read the sockets.
pub(crate) const READ_EVERY: usize = 5;
/// Legs a phase takes before a new leg opens another phase: under a millisecond of work for
/// legs that transcode, so the last frame of a phase still leaves well within 2 ms.
pub(crate) const PHASE_LEGS: usize = 12;
/// How far behind the schedule may fall before it skips ahead rather than catch up in a burst.
const MAX_BEHIND: Duration = Duration::from_millis(100);

/// The legs (slot indices) of each phase, and the next phase due.
#[derive(Debug)]
pub(crate) struct Phases {
    groups: [Vec<usize>; PHASES],
    next: usize,
    due: Instant,
}

/// One phase's turn: which phase, and when it was due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Turn {
    pub phase: usize,
    pub due: Instant,
}

impl Phases {
    /// The first phase is due one step after `start`.
    pub fn new(start: Instant) -> Self {
        Phases {
            groups: std::array::from_fn(|_| Vec::new()),
            next: 0,
            due: start + STEP,
        }
    }

    /// Places a leg (see the module's notes): in the least loaded phase that wakes anyway while
    /// one has room, else in the phase farthest from those that wake, else (every phase full)
    /// in the least loaded. Returns that phase.
    pub fn add(&mut self, slot: usize) -> usize {
        let phase = self.choose();
        self.groups[phase].push(slot);
        phase
    }

    fn choose(&self) -> usize {
        let waking = (0..PHASES)
            .filter(|&p| self.wakes(p) && self.groups[p].len() < PHASE_LEGS)
            .min_by_key(|&p| self.groups[p].len());
        if let Some(p) = waking {
            return p;
        }
        // The distance to the nearest waking phase, around the 20 ms circle; every phase
        // with room wakes at this point, so the quiet ones are the candidates.
        let gap = |p: usize| {
            (1..PHASES)
                .find(|&d| self.wakes((p + d) % PHASES) || self.wakes((p + PHASES - d) % PHASES))
                .unwrap_or(PHASES)
        };
        let quiet = (0..PHASES)
            .filter(|&p| !self.wakes(p))
            .max_by_key(|&p| (gap(p), std::cmp::Reverse(p)));
        quiet.unwrap_or_else(|| {
            (0..PHASES)
                .min_by_key(|&p| self.groups[p].len())
                .unwrap_or(0)
        })
    }

    /// Whether the thread wakes for a phase: it has legs, or it is a reading phase.
    fn wakes(&self, phase: usize) -> bool {
        phase.is_multiple_of(READ_EVERY) || self.groups.get(phase).is_some_and(|g| !g.is_empty())
    }

    /// Places a leg in a given phase (a room's phones tick together, `room_group`); an
    /// unknown phase gives the least loaded one. Returns the phase.
    pub fn add_to(&mut self, slot: usize, phase: usize) -> usize {
        match self.groups.get_mut(phase) {
            Some(group) => {
                group.push(slot);
                phase
            }
            None => self.add(slot),
        }
    }

    pub fn remove(&mut self, slot: usize, phase: usize) {
        if let Some(group) = self.groups.get_mut(phase) {
            group.retain(|&s| s != slot);
        }
    }

    /// When the thread must next wake: the next phase that has legs or reads the sockets.
    pub fn due(&self) -> Instant {
        let ahead = (0..PHASES)
            .find(|&k| self.wakes((self.next + k) % PHASES))
            .unwrap_or(0);
        self.due + STEP * ahead as u32
    }

    /// The legs of a phase, in the order they tick.
    pub fn legs(&self, phase: usize) -> &[usize] {
        self.groups.get(phase).map_or(&[], Vec::as_slice)
    }

    /// After a spell without legs (no ticks were run), the schedule goes on from `now` rather
    /// than catch up.
    pub fn resume(&mut self, now: Instant) {
        if self.due < now {
            self.due = now + STEP;
        }
    }

    /// The waking phase due at or before `now`, if any, and the schedule moves on past it
    /// (phases that do not wake the thread are passed over). Far behind (the machine stalled),
    /// it skips ahead: the next phase becomes due one step from `now`, and `skipped` says so.
    pub fn next_turn(&mut self, now: Instant) -> Option<(Turn, bool)> {
        let due = self.due();
        if now < due {
            return None;
        }
        while !self.wakes(self.next) {
            self.next = (self.next + 1) % PHASES;
            self.due += STEP;
        }
        let turn = Turn {
            phase: self.next,
            due,
        };
        self.next = (self.next + 1) % PHASES;
        self.due += STEP;
        let skipped = self.due + MAX_BEHIND < now;
        if skipped {
            self.due = now + STEP;
        }
        Some((turn, skipped))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const READING: [usize; 4] = [0, 5, 10, 15];

    #[test]
    fn legs_fill_the_phases_that_wake_before_opening_others() {
        let mut p = Phases::new(Instant::now());
        let mut next = 0;
        let mut add = |p: &mut Phases| {
            next += 1;
            p.add(next)
        };
        for _ in 0..READING.len() * PHASE_LEGS {
            assert!(READING.contains(&add(&mut p)));
        }
        for phase in READING {
            assert_eq!(p.legs(phase).len(), PHASE_LEGS);
        }
        // Then the phases halfway between those that wake, one after the other.
        let opened: Vec<usize> = (0..4)
            .map(|_| {
                let phase = add(&mut p);
                for _ in 1..PHASE_LEGS {
                    assert_eq!(
                        add(&mut p),
                        phase,
                        "a new phase fills before the next opens"
                    );
                }
                phase
            })
            .collect();
        assert_eq!(opened, [2, 7, 12, 17]);
        // Every phase full: the least loaded takes more.
        for _ in 0..(PHASES - 8) * PHASE_LEGS {
            add(&mut p);
        }
        assert!((0..PHASES).all(|phase| p.legs(phase).len() == PHASE_LEGS));
        add(&mut p);
        assert_eq!(
            (0..PHASES).map(|phase| p.legs(phase).len()).max(),
            Some(PHASE_LEGS + 1)
        );
    }

    #[test]
    fn a_leg_leaves_its_phase_and_its_place_is_taken_first() {
        let mut p = Phases::new(Instant::now());
        let phases: Vec<usize> = (0..2 * READING.len() + 3).map(|slot| p.add(slot)).collect();
        p.remove(5, phases[5]);
        assert!(!p.legs(phases[5]).contains(&5));
        assert_eq!(p.add(99), phases[5]);
        p.remove(1234, 0);
        p.remove(0, PHASES + 1);
        // A leg put beside others, whatever the load.
        assert_eq!(p.add_to(500, 7), 7);
        assert!(p.legs(7).contains(&500));
        assert!(p.add_to(501, PHASES) < PHASES);
    }

    /// The turns of two ticks from `start`, checking each comes within a step of its time.
    fn turns(p: &mut Phases, start: Instant) -> Vec<Turn> {
        let mut seen = Vec::new();
        let mut now = start;
        while now < start + 2 * TICK {
            now += Duration::from_micros(250);
            while let Some((turn, skipped)) = p.next_turn(now) {
                assert!(!skipped);
                assert!(turn.due <= now && now - turn.due < STEP);
                seen.push(turn);
            }
        }
        seen
    }

    #[test]
    fn the_thread_wakes_for_phases_with_legs_and_to_read_every_fifth() {
        let start = Instant::now();
        let mut p = Phases::new(start);
        assert_eq!(p.next_turn(start), None);
        let seen = turns(&mut p, start);
        let phases: Vec<usize> = seen.iter().map(|t| t.phase).collect();
        assert_eq!(phases, [0, 5, 10, 15, 0, 5, 10, 15]);
        for (k, turn) in seen.iter().enumerate() {
            let step = (k / 4) * PHASES + turn.phase + 1;
            assert_eq!(turn.due, start + STEP * step as u32);
        }
        // A leg in a quiet phase makes it wake too, in its place.
        let mut p = Phases::new(start);
        p.add_to(1, 7);
        assert_eq!(p.due(), start + STEP);
        let phases: Vec<usize> = turns(&mut p, start).iter().map(|t| t.phase).collect();
        assert_eq!(phases, [0, 5, 7, 10, 15, 0, 5, 7, 10, 15]);
        p.remove(1, 7);
        assert!(!p.wakes(7));
    }

    #[test]
    fn a_stalled_schedule_skips_ahead_instead_of_bursting() {
        let start = Instant::now();
        let mut p = Phases::new(start);
        let late = start + Duration::from_secs(1);
        let (turn, skipped) = p.next_turn(late).unwrap();
        assert_eq!((turn.phase, turn.due), (0, start + STEP));
        assert!(skipped);
        // Phases 1 to 4 have no legs: the next wake-up is phase 5's.
        assert_eq!(p.due(), late + 5 * STEP);
        assert_eq!(p.next_turn(late), None);
        let (turn, _) = p.next_turn(late + 5 * STEP).unwrap();
        assert_eq!(turn.phase, 5, "phases keep their order");
    }

    #[test]
    fn resuming_after_an_idle_spell_does_not_count_as_a_stall() {
        let start = Instant::now();
        let mut p = Phases::new(start);
        let later = start + Duration::from_secs(5);
        p.resume(later);
        assert_eq!(p.due(), later + STEP);
        assert_eq!(p.next_turn(later), None);
        let (turn, skipped) = p.next_turn(later + STEP).unwrap();
        assert_eq!((turn.phase, skipped), (0, false));
        // A schedule on time is left alone.
        p.resume(later);
        assert_eq!(p.due(), later + 6 * STEP);
    }
}
