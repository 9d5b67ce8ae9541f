//! PIN entry for a protected room, sans-IO: DTMF digits and time in; prompts to play, then
//! admit or refuse, out.
//!
//! The flow: [`PinEntry::new`] asks for the PIN ([`Prompt::EnterPin`]). Digits gather; `#`
//! submits them, `*` clears them, and so does a pause: once a digit has been pressed, the
//! inter-digit timeout (5 s) submits what was typed. Nothing typed within the first-digit
//! timeout (10 s) counts as a wrong attempt, so a silent caller is refused in the end too. A
//! wrong PIN plays [`Prompt::WrongPin`] ("…please try again") and starts over; the last wrong
//! attempt (3 by default) plays [`Prompt::Goodbye`] and then [`PinOutput::Refuse`]: the driver
//! hangs up once the goodbye has played. The right PIN gives [`PinOutput::Admit`].
//!
//! Timeouts count from the prompt's start, not its end, so the machine needs no word on when
//! a prompt finishes; prompts are a few seconds long and callers may press keys over them.
//! After every input, drain [`PinEntry::poll_output`], then wait until
//! [`PinEntry::poll_timeout`] (or the next digit) and call [`PinEntry::handle_timeout`].

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

use crate::dtmf::Digit;

/// PIN lengths accepted, in digits.
pub const PIN_LEN: std::ops::RangeInclusive<usize> = 4..=12;

/// A room PIN: 4 to 12 decimal digits. Its `Debug` hides the digits, so it can sit in logged
/// structures.
#[derive(Clone, PartialEq, Eq)]
pub struct Pin(String);

impl Pin {
    /// `None` unless `s` is 4 to 12 ASCII digits.
    pub fn new(s: &str) -> Option<Pin> {
        (PIN_LEN.contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| Pin(s.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Compares in time that depends on the lengths only, never on where the digits differ.
    fn matches(&self, typed: &[u8]) -> bool {
        let pin = self.0.as_bytes();
        let mut diff = u8::from(pin.len() != typed.len());
        for i in 0..pin.len().max(typed.len()) {
            let a = pin.get(i).copied().unwrap_or(0);
            let b = typed.get(i).copied().unwrap_or(0xff);
            diff |= a ^ b;
        }
        // Keep the optimiser from turning the loop into an early exit.
        std::hint::black_box(diff) == 0
    }
}

impl fmt::Debug for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pin(<redacted>)")
    }
}

/// The voice prompts of the flow (`sipx-media`'s `prompts` module holds their audio).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prompt {
    EnterPin,
    WrongPin,
    Goodbye,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinOutput {
    /// Play this prompt to the caller now (cutting off one still playing).
    PlayPrompt(Prompt),
    /// The PIN was right: put the caller into the room.
    Admit,
    /// Out of attempts: hang up once the goodbye prompt queued before this has played.
    Refuse,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PinSettings {
    /// Wrong entries (a timeout with nothing typed included) before the caller is refused.
    pub max_attempts: u32,
    /// From a prompt to the first key.
    pub first_digit_timeout: Duration,
    /// From one key to the next; when it passes, what was typed is submitted.
    pub inter_digit_timeout: Duration,
}

impl Default for PinSettings {
    fn default() -> Self {
        PinSettings {
            max_attempts: 3,
            first_digit_timeout: Duration::from_secs(10),
            inter_digit_timeout: Duration::from_secs(5),
        }
    }
}

/// One caller entering a PIN.
#[derive(Debug)]
pub struct PinEntry {
    pin: Pin,
    settings: PinSettings,
    /// Typed since the last prompt or `*`; never longer than the longest PIN plus one, so
    /// a key held down cannot grow it (the extra digit keeps an over-long entry wrong).
    typed: Vec<u8>,
    failures: u32,
    /// When the current wait ends; `None` once admitted or refused.
    deadline: Option<Instant>,
    out: VecDeque<PinOutput>,
}

impl PinEntry {
    /// The PIN this entry waits for.
    pub fn pin(&self) -> &Pin {
        &self.pin
    }

    pub fn new(pin: Pin, settings: PinSettings, now: Instant) -> Self {
        let mut entry = PinEntry {
            pin,
            settings,
            typed: Vec::with_capacity(*PIN_LEN.end() + 1),
            failures: 0,
            deadline: None,
            out: VecDeque::new(),
        };
        entry.prompt(Prompt::EnterPin, now);
        entry
    }

    fn prompt(&mut self, prompt: Prompt, now: Instant) {
        self.typed.clear();
        self.out.push_back(PinOutput::PlayPrompt(prompt));
        self.deadline = Some(now + self.settings.first_digit_timeout);
    }

    /// Whether the entry has ended (admitted or refused); inputs are ignored then.
    pub fn is_done(&self) -> bool {
        self.deadline.is_none()
    }

    /// A key the caller pressed.
    pub fn handle_digit(&mut self, now: Instant, digit: Digit) {
        if self.is_done() {
            return;
        }
        match digit.as_char() {
            '#' => self.submit(now),
            '*' => {
                self.typed.clear();
                self.deadline = Some(now + self.settings.first_digit_timeout);
            }
            c @ '0'..='9' => {
                if self.typed.len() <= *PIN_LEN.end() {
                    // A single ASCII digit: the cast keeps its byte.
                    self.typed.push(c as u8);
                }
                self.deadline = Some(now + self.settings.inter_digit_timeout);
            }
            // A–D: not part of any PIN.
            _ => {}
        }
    }

    /// Fires the wait that has passed, if any; extra calls do nothing.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.deadline.is_some_and(|d| now >= d) {
            self.submit(now);
        }
    }

    fn submit(&mut self, now: Instant) {
        if self.pin.matches(&self.typed) {
            self.typed.clear();
            self.deadline = None;
            self.out.push_back(PinOutput::Admit);
            return;
        }
        self.failures += 1;
        if self.failures >= self.settings.max_attempts {
            self.typed.clear();
            self.deadline = None;
            self.out.push_back(PinOutput::PlayPrompt(Prompt::Goodbye));
            self.out.push_back(PinOutput::Refuse);
        } else {
            self.prompt(Prompt::WrongPin, now);
        }
    }

    #[must_use]
    pub fn poll_output(&mut self) -> Option<PinOutput> {
        self.out.pop_front()
    }

    /// When to call [`PinEntry::handle_timeout`]; `None` once done.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadline
    }

    /// Wrong entries so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn entry(pin: &str, t0: Instant) -> PinEntry {
        PinEntry::new(Pin::new(pin).unwrap(), PinSettings::default(), t0)
    }

    fn drain(e: &mut PinEntry) -> Vec<PinOutput> {
        std::iter::from_fn(|| e.poll_output()).collect()
    }

    fn keys(e: &mut PinEntry, now: Instant, s: &str) {
        for c in s.chars() {
            e.handle_digit(now, Digit::from_char(c).unwrap());
        }
    }

    use PinOutput::{Admit, PlayPrompt, Refuse};

    #[test]
    fn pins_are_four_to_twelve_digits_and_never_printed() {
        assert!(Pin::new("1234").is_some());
        assert!(Pin::new("123456789012").is_some());
        for bad in ["123", "1234567890123", "12a4", "", "+1234", "１２３４"] {
            assert!(Pin::new(bad).is_none(), "{bad}");
        }
        let p = Pin::new("4711").unwrap();
        assert!(!format!("{p:?}").contains("4711"));
        assert!(!format!("{:?}", entry("4711", Instant::now())).contains("4711"));
    }

    #[test]
    fn comparison_needs_every_digit_and_the_length() {
        let p = Pin::new("4711").unwrap();
        assert!(p.matches(b"4711"));
        for wrong in [&b"4712"[..], b"471", b"47110", b"", b"5711"] {
            assert!(!p.matches(wrong), "{wrong:?}");
        }
    }

    #[test]
    fn the_right_pin_and_hash_admits() {
        let t0 = Instant::now();
        let mut e = entry("4711", t0);
        assert_eq!(drain(&mut e), [PlayPrompt(Prompt::EnterPin)]);
        assert_eq!(e.poll_timeout(), Some(t0 + Duration::from_secs(10)));
        keys(&mut e, t0 + Duration::from_secs(1), "4711");
        assert_eq!(e.poll_timeout(), Some(t0 + Duration::from_secs(6)));
        assert!(
            drain(&mut e).is_empty(),
            "no submission before # or a pause"
        );
        keys(&mut e, t0 + Duration::from_secs(2), "#");
        assert_eq!(drain(&mut e), [Admit]);
        assert!(e.is_done() && e.poll_timeout().is_none());
        keys(&mut e, t0 + Duration::from_secs(3), "0#");
        assert!(drain(&mut e).is_empty(), "nothing after the end");
    }

    #[test]
    fn a_pause_after_the_digits_submits_them() {
        let t0 = Instant::now();
        let mut e = entry("4711", t0);
        drain(&mut e);
        keys(&mut e, t0 + Duration::from_secs(2), "4711");
        e.handle_timeout(t0 + Duration::from_millis(6_999));
        assert!(
            drain(&mut e).is_empty(),
            "not before the inter-digit timeout"
        );
        e.handle_timeout(t0 + Duration::from_secs(7));
        assert_eq!(drain(&mut e), [Admit]);
    }

    #[test]
    fn star_clears_and_extra_keys_are_ignored() {
        let t0 = Instant::now();
        let mut e = entry("4711", t0);
        drain(&mut e);
        keys(&mut e, t0, "99*4A71B1#");
        assert_eq!(drain(&mut e), [Admit]);
    }

    #[test]
    fn three_wrong_entries_play_goodbye_then_refuse() {
        let t0 = Instant::now();
        let mut e = entry("4711", t0);
        drain(&mut e);
        keys(&mut e, t0, "1234#");
        assert_eq!(drain(&mut e), [PlayPrompt(Prompt::WrongPin)]);
        assert_eq!(e.failures(), 1);
        // The wrong digits are forgotten: the next entry starts afresh.
        keys(&mut e, t0, "47110#");
        assert_eq!(drain(&mut e), [PlayPrompt(Prompt::WrongPin)], "too long");
        keys(&mut e, t0, "#");
        assert_eq!(drain(&mut e), [PlayPrompt(Prompt::Goodbye), Refuse]);
        assert!(e.is_done());
        keys(&mut e, t0, "4711#");
        assert!(drain(&mut e).is_empty(), "no admission after the refusal");
    }

    #[test]
    fn silence_counts_as_a_wrong_entry() {
        let t0 = Instant::now();
        let mut e = entry("4711", t0);
        drain(&mut e);
        let mut now = t0;
        let mut outputs = Vec::new();
        // Bounded: three first-digit timeouts end it.
        for _ in 0..10 {
            let Some(at) = e.poll_timeout() else { break };
            now = at;
            e.handle_timeout(now);
            outputs.extend(drain(&mut e));
        }
        assert_eq!(
            outputs,
            [
                PlayPrompt(Prompt::WrongPin),
                PlayPrompt(Prompt::WrongPin),
                PlayPrompt(Prompt::Goodbye),
                Refuse
            ]
        );
        assert_eq!(now, t0 + Duration::from_secs(30));
    }

    #[test]
    fn a_key_held_down_cannot_grow_the_entry_or_match() {
        let t0 = Instant::now();
        let mut e = entry("111111111111", t0);
        drain(&mut e);
        keys(&mut e, t0, &"1".repeat(1000));
        assert!(e.typed.len() <= 13);
        keys(&mut e, t0, "#");
        assert_eq!(drain(&mut e), [PlayPrompt(Prompt::WrongPin)]);
    }

    #[test]
    fn settings_change_the_attempts() {
        let t0 = Instant::now();
        let settings = PinSettings {
            max_attempts: 1,
            ..PinSettings::default()
        };
        let mut e = PinEntry::new(Pin::new("0000").unwrap(), settings, t0);
        drain(&mut e);
        keys(&mut e, t0, "1#");
        assert_eq!(drain(&mut e), [PlayPrompt(Prompt::Goodbye), Refuse]);
    }
}
