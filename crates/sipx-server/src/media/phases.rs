//! When each leg of a media thread ticks. Every leg gives and takes a frame every 20 ms, but
//! not all at the same instant: legs are spread over [`PHASES`] phases 1 ms apart, each new leg
//! joining the phase with the fewest. Ticking every leg at once would send the last leg's
//! frame as late as the work of all the others (a whole thread's load, milliseconds), and load
//! the CPU in bursts; spread out, a frame waits only for the few legs of its own phase.
//! Pure bookkeeping: no clock, no sockets.

use std::time::{Duration, Instant};

/// Phases per 20 ms tick.
pub(crate) const PHASES: usize = 20;
pub(crate) const TICK: Duration = Duration::from_millis(20);
/// Time between two phases.
pub(crate) const STEP: Duration = Duration::from_millis(1);
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

    /// Places a leg in the phase with the fewest legs; returns that phase.
    pub fn add(&mut self, slot: usize) -> usize {
        let phase = (0..PHASES)
            .min_by_key(|&p| self.groups[p].len())
            .unwrap_or(0);
        self.groups[phase].push(slot);
        phase
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

    /// When the next phase is due.
    pub fn due(&self) -> Instant {
        self.due
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

    /// The phase due at or before `now`, if any, and the schedule moves on to the next one.
    /// Far behind (the machine stalled), it skips ahead: the next phase becomes due one step
    /// from `now`, and `skipped` says so.
    pub fn next_turn(&mut self, now: Instant) -> Option<(Turn, bool)> {
        if now < self.due {
            return None;
        }
        let turn = Turn {
            phase: self.next,
            due: self.due,
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

    #[test]
    fn legs_spread_evenly_and_leave_their_phase() {
        let mut p = Phases::new(Instant::now());
        let phases: Vec<usize> = (0..2 * PHASES + 3).map(|slot| p.add(slot)).collect();
        for phase in 0..PHASES {
            let expected = if phase < 3 { 3 } else { 2 };
            assert_eq!(p.legs(phase).len(), expected, "phase {phase}");
        }
        p.remove(5, phases[5]);
        assert!(!p.legs(phases[5]).contains(&5));
        // The emptied place is filled first.
        assert_eq!(p.add(99), phases[5]);
        p.remove(1234, 0);
        p.remove(0, PHASES + 1);
        // A leg put beside others, whatever the load.
        assert_eq!(p.add_to(500, 7), 7);
        assert!(p.legs(7).contains(&500));
        assert!(p.add_to(501, PHASES) < PHASES);
    }

    #[test]
    fn each_phase_comes_once_per_tick_a_step_apart() {
        let start = Instant::now();
        let mut p = Phases::new(start);
        assert_eq!(p.next_turn(start), None);
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
        assert_eq!(seen.len(), 2 * PHASES);
        for (k, turn) in seen.iter().enumerate() {
            assert_eq!(turn.phase, k % PHASES);
            assert_eq!(turn.due, start + STEP * (k as u32 + 1));
        }
    }

    #[test]
    fn a_stalled_schedule_skips_ahead_instead_of_bursting() {
        let start = Instant::now();
        let mut p = Phases::new(start);
        let late = start + Duration::from_secs(1);
        let (turn, skipped) = p.next_turn(late).unwrap();
        assert_eq!((turn.phase, turn.due), (0, start + STEP));
        assert!(skipped);
        assert_eq!(p.due(), late + STEP);
        assert_eq!(p.next_turn(late), None);
        let (turn, _) = p.next_turn(late + STEP).unwrap();
        assert_eq!(turn.phase, 1, "phases keep their order");
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
        assert_eq!(p.due(), later + 2 * STEP);
    }
}
