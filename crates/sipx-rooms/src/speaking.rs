//! Who is speaking, from RFC 6464 audio levels (-dBov, 0 loudest, 127 silence): browsers put
//! them in a header extension, phones' are computed by the media engine.
//!
//! A participant starts speaking when its smoothed level rises above `ON` and stops when it has
//! stayed below `OFF` for `HANG`: hysteresis and hang time keep the indicator from flickering
//! between words.

use std::time::{Duration, Instant};

/// Louder than -45 dBov (smoothed): speaking.
const ON: f32 = 45.0;
/// Quieter than -55 dBov: a pause.
const OFF: f32 = 55.0;
/// A pause this long ends speaking.
const HANG: Duration = Duration::from_millis(600);
/// Weight of a new level in the smoothed value (packets every 20 ms: ~100 ms time constant).
const ALPHA: f32 = 0.2;

#[derive(Debug, Clone)]
pub struct SpeakingDetector {
    smoothed: f32,
    speaking: bool,
    quiet_since: Option<Instant>,
    last_level: Option<Instant>,
}

impl Default for SpeakingDetector {
    fn default() -> Self {
        SpeakingDetector {
            smoothed: 127.0,
            speaking: false,
            quiet_since: None,
            last_level: None,
        }
    }
}

impl SpeakingDetector {
    /// Feeds one packet's level; true when the speaking state changed.
    pub fn level(&mut self, now: Instant, dbov: u8) -> bool {
        let dbov = f32::from(dbov.min(127));
        self.smoothed += ALPHA * (dbov - self.smoothed);
        self.last_level = Some(now);
        let was = self.speaking;
        if self.smoothed < ON {
            self.speaking = true;
            self.quiet_since = None;
        } else if self.smoothed > OFF {
            let since = *self.quiet_since.get_or_insert(now);
            if now.duration_since(since) >= HANG {
                self.speaking = false;
            }
        }
        was != self.speaking
    }

    /// No packets for a while (muted, on hold, left): not speaking. True when that changed.
    pub fn check_silence(&mut self, now: Instant) -> bool {
        let stale = self
            .last_level
            .is_none_or(|t| now.duration_since(t) >= HANG);
        if self.speaking && stale {
            self.speaking = false;
            self.smoothed = 127.0;
            return true;
        }
        false
    }

    pub fn speaking(&self) -> bool {
        self.speaking
    }

    /// 0 (silence) to 1 (0 dBov).
    pub fn loudness(&self) -> f32 {
        (1.0 - self.smoothed / 127.0).clamp(0.0, 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(d: &mut SpeakingDetector, start: Instant, from_ms: u64, to_ms: u64, level: u8) -> u32 {
        let mut changes = 0;
        let mut t = from_ms;
        while t < to_ms {
            if d.level(start + Duration::from_millis(t), level) {
                changes += 1;
            }
            t += 20;
        }
        changes
    }

    #[test]
    fn speech_turns_on_quickly_and_short_pauses_do_not_flicker() {
        let start = Instant::now();
        let mut d = SpeakingDetector::default();
        assert_eq!(feed(&mut d, start, 0, 200, 20), 1);
        assert!(d.speaking());
        // A 300 ms pause between words: still speaking.
        assert_eq!(feed(&mut d, start, 200, 500, 127), 0);
        assert!(d.speaking());
        assert_eq!(feed(&mut d, start, 500, 700, 20), 0);
        // A long pause: stops once.
        assert_eq!(feed(&mut d, start, 700, 2000, 127), 1);
        assert!(!d.speaking());
    }

    #[test]
    fn background_noise_is_not_speech() {
        let start = Instant::now();
        let mut d = SpeakingDetector::default();
        assert_eq!(feed(&mut d, start, 0, 2000, 70), 0);
        assert!(d.loudness() < 0.5);
    }

    #[test]
    fn a_participant_that_goes_quiet_on_the_wire_stops_speaking() {
        let start = Instant::now();
        let mut d = SpeakingDetector::default();
        feed(&mut d, start, 0, 200, 10);
        assert!(d.speaking());
        assert!(!d.check_silence(start + Duration::from_millis(300)));
        assert!(d.check_silence(start + Duration::from_millis(900)));
        assert!(!d.speaking());
    }
}
