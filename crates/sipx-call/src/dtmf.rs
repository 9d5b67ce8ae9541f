//! DTMF as the call sees it: digits, dial strings with pauses (`"1234,,#"`), and the queue that
//! paces them out one key press at a time.

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

use crate::error::CallError;

/// The longest dial string accepted in one request.
pub const MAX_DTMF_LEN: usize = 128;

/// How many steps (digits and pauses) may wait at once; more is refused rather than queued
/// without bound.
pub const MAX_QUEUED: usize = 256;

/// A DTMF key: `0-9`, `*`, `#`, `A-D`, or a heard hook flash (`!`). Stored as its
/// (upper-case) character; the driver maps it to an RFC 4733 event or an INFO body.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Digit(char);

impl Digit {
    pub fn from_char(c: char) -> Option<Digit> {
        let c = c.to_ascii_uppercase();
        matches!(c, '0'..='9' | '*' | '#' | 'A'..='D').then_some(Digit(c))
    }

    /// A key the phone pressed: a digit as `from_char`, or `!`, a hook flash (RFC 4733 event
    /// 16), which a phone can send and an application may want (call waiting, transfer on an
    /// analogue line) but a dial string cannot ask for.
    pub fn heard(c: char) -> Option<Digit> {
        if c == '!' {
            return Some(Digit(c));
        }
        Digit::from_char(c)
    }

    pub fn as_char(self) -> char {
        self.0
    }
}

impl fmt::Debug for Digit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digit({})", self.0)
    }
}

impl fmt::Display for Digit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// One step of a dial string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DtmfStep {
    Digit(Digit),
    /// `,`: wait (500 ms by default) before the next step.
    Pause,
}

/// A validated dial string: digits and `,` pauses, at most [`MAX_DTMF_LEN`] characters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DtmfSequence(Vec<DtmfStep>);

impl DtmfSequence {
    pub fn parse(s: &str) -> Result<DtmfSequence, CallError> {
        if s.chars().count() > MAX_DTMF_LEN {
            return Err(CallError::DtmfTooLong);
        }
        s.chars()
            .enumerate()
            .map(|(position, c)| match c {
                ',' => Ok(DtmfStep::Pause),
                _ => Digit::from_char(c)
                    .map(DtmfStep::Digit)
                    .ok_or(CallError::InvalidDtmf { position, found: c }),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(DtmfSequence)
    }

    pub fn steps(&self) -> &[DtmfStep] {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// How key presses are paced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DtmfTiming {
    /// How long each key is pressed (the event's duration).
    pub tone: Duration,
    /// Silence after each key before the next step.
    pub gap: Duration,
    /// The wait a `,` adds.
    pub pause: Duration,
}

impl Default for DtmfTiming {
    fn default() -> Self {
        DtmfTiming {
            tone: Duration::from_millis(100),
            gap: Duration::from_millis(100),
            pause: Duration::from_millis(500),
        }
    }
}

/// Steps waiting to be played, in order (the dial string after answer, then API requests), and
/// when the next may go.
#[derive(Debug, Default)]
pub struct DtmfQueue {
    steps: VecDeque<DtmfStep>,
    /// The previous step's tone, gap or pause lasts until then.
    ready_at: Option<Instant>,
}

impl DtmfQueue {
    /// A queue holding `seq` (at most [`MAX_DTMF_LEN`] steps, so within the bound).
    pub fn with(seq: &DtmfSequence) -> DtmfQueue {
        DtmfQueue {
            steps: seq.0.iter().copied().collect(),
            ready_at: None,
        }
    }

    /// Appends a sequence, all or nothing.
    pub fn push(&mut self, seq: &DtmfSequence) -> Result<(), CallError> {
        if self.steps.len() + seq.0.len() > MAX_QUEUED {
            return Err(CallError::DtmfQueueFull);
        }
        self.steps.extend(seq.0.iter().copied());
        Ok(())
    }

    pub fn clear(&mut self) {
        self.steps.clear();
    }

    /// The next step, if one waits and the previous one is over at `now`.
    pub fn pop_due(&mut self, now: Instant, timing: &DtmfTiming) -> Option<DtmfStep> {
        if self.ready_at.is_some_and(|at| at > now) {
            return None;
        }
        let step = self.steps.pop_front()?;
        let lasts = match step {
            DtmfStep::Digit(_) => timing.tone + timing.gap,
            DtmfStep::Pause => timing.pause,
        };
        self.ready_at = Some(now + lasts);
        Some(step)
    }

    /// When the next step is due; `None` when nothing waits. A step that is due at once has
    /// been taken by [`DtmfQueue::pop_due`] already, so this is in the future.
    pub fn next_due(&self) -> Option<Instant> {
        if self.steps.is_empty() {
            return None;
        }
        self.ready_at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chars(seq: &DtmfSequence) -> String {
        seq.steps()
            .iter()
            .map(|s| match s {
                DtmfStep::Digit(d) => d.as_char(),
                DtmfStep::Pause => ',',
            })
            .collect()
    }

    #[test]
    fn accepts_digits_letters_and_pauses() {
        let seq = DtmfSequence::parse("1234,,#*abcD0").unwrap();
        assert_eq!(chars(&seq), "1234,,#*ABCD0");
        assert!(DtmfSequence::parse("").unwrap().is_empty());
    }

    #[test]
    fn rejects_other_characters_with_their_position() {
        assert_eq!(
            DtmfSequence::parse("12 3"),
            Err(CallError::InvalidDtmf {
                position: 2,
                found: ' '
            })
        );
        assert!(DtmfSequence::parse("1w2").is_err());
        assert!(DtmfSequence::parse("E").is_err());
        assert!(DtmfSequence::parse("!").is_err());
    }

    #[test]
    fn a_heard_flash_is_a_key_but_not_one_to_dial() {
        assert_eq!(Digit::heard('!').map(Digit::as_char), Some('!'));
        assert_eq!(Digit::heard('b').map(Digit::as_char), Some('B'));
        assert_eq!(Digit::from_char('!'), None);
        assert_eq!(Digit::heard('x'), None);
    }

    #[test]
    fn rejects_long_strings() {
        assert!(DtmfSequence::parse(&"1".repeat(MAX_DTMF_LEN)).is_ok());
        assert_eq!(
            DtmfSequence::parse(&"1".repeat(MAX_DTMF_LEN + 1)),
            Err(CallError::DtmfTooLong)
        );
    }

    #[test]
    fn refuses_to_queue_past_the_bound() {
        let mut q = DtmfQueue::default();
        let seq = DtmfSequence::parse(&"1".repeat(MAX_DTMF_LEN)).unwrap();
        q.push(&seq).unwrap();
        q.push(&seq).unwrap();
        assert_eq!(
            q.push(&DtmfSequence::parse("1").unwrap()),
            Err(CallError::DtmfQueueFull)
        );
    }

    #[test]
    fn steps_wait_tone_plus_gap_after_a_digit_and_the_pause_after_a_comma() {
        let t = DtmfTiming::default();
        let now = Instant::now();
        let ms = |n| now + Duration::from_millis(n);
        let mut q = DtmfQueue::with(&DtmfSequence::parse("1,2").unwrap());
        let one = Digit::from_char('1').unwrap();
        assert_eq!(q.pop_due(now, &t), Some(DtmfStep::Digit(one)));
        assert_eq!(q.next_due(), Some(ms(200)));
        assert_eq!(q.pop_due(ms(199), &t), None);
        assert_eq!(q.pop_due(ms(200), &t), Some(DtmfStep::Pause));
        assert_eq!(q.next_due(), Some(ms(700)));
        let two = Digit::from_char('2').unwrap();
        assert_eq!(q.pop_due(ms(700), &t), Some(DtmfStep::Digit(two)));
        assert_eq!(q.next_due(), None);
        // A digit queued right after still waits for the last one's tone and gap.
        q.push(&DtmfSequence::parse("3").unwrap()).unwrap();
        assert_eq!(q.next_due(), Some(ms(900)));
        assert_eq!(q.pop_due(ms(800), &t), None);
        assert!(q.pop_due(ms(900), &t).is_some());
    }
}
