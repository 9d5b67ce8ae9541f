//! The call's timers: a closed set with one optional deadline each (quinn's `TimerTable`).

use std::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Timer {
    /// Outbound: `ring_timeout` from the start; inbound: `answer_timeout`.
    Ring,
    /// `max_duration` from the answer.
    MaxDuration,
    /// An ending call gives the other side this long (`end_guard`).
    EndGuard,
    /// The next DTMF step.
    Dtmf,
}

impl Timer {
    const ALL: [Timer; 4] = [
        Timer::Ring,
        Timer::MaxDuration,
        Timer::EndGuard,
        Timer::Dtmf,
    ];

    fn index(self) -> usize {
        self as usize
    }
}

#[derive(Debug, Default)]
pub(crate) struct TimerTable {
    at: [Option<Instant>; Timer::ALL.len()],
}

impl TimerTable {
    pub fn set(&mut self, timer: Timer, at: Option<Instant>) {
        self.at[timer.index()] = at;
    }

    pub fn clear_all(&mut self) {
        self.at = Default::default();
    }

    /// Clears the timer if it is due at `now`; true if it was.
    pub fn take_expired(&mut self, timer: Timer, now: Instant) -> bool {
        let slot = &mut self.at[timer.index()];
        if slot.is_some_and(|at| at <= now) {
            *slot = None;
            return true;
        }
        false
    }

    pub fn next(&self) -> Option<Instant> {
        self.at.iter().flatten().min().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_earliest_deadline_wins_and_expired_timers_clear_once() {
        let now = Instant::now();
        let mut t = TimerTable::default();
        assert_eq!(t.next(), None);
        t.set(Timer::MaxDuration, Some(now + Duration::from_secs(5)));
        t.set(Timer::Dtmf, Some(now + Duration::from_secs(1)));
        assert_eq!(t.next(), Some(now + Duration::from_secs(1)));
        assert!(!t.take_expired(Timer::Dtmf, now));
        assert!(t.take_expired(Timer::Dtmf, now + Duration::from_secs(1)));
        assert!(!t.take_expired(Timer::Dtmf, now + Duration::from_secs(1)));
        assert_eq!(t.next(), Some(now + Duration::from_secs(5)));
        t.clear_all();
        assert_eq!(t.next(), None);
    }
}
