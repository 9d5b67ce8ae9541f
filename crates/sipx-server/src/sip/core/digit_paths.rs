//! One key press heard along two paths is one digit. Some gateways and phones send each key
//! both as RFC 4733 events and as a SIP INFO (or as events and as tones): the API must see
//! it once. A digit is dropped when it pairs with an earlier one of the same key that came
//! the other way and has not been paired yet; each report pairs at most once, so a key
//! pressed twice is two digits, along one path or both.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use sipx_media::dtmf::DtmfDigit;

/// How far apart the two reports of one press can be: an INFO is often sent at the key's
/// press and the events' report comes at its release, so a long press plus the network.
const PAIRING_WINDOW: Duration = Duration::from_secs(2);
/// Unpaired reports kept: a fast typist's keys within the window.
const KEPT: usize = 16;

/// The recent digits of one call, by path (`rfc4733`, `info`, `inband`).
#[derive(Debug, Default)]
pub(crate) struct DigitPaths {
    unpaired: VecDeque<(Instant, DtmfDigit, &'static str)>,
}

impl DigitPaths {
    /// Whether a digit heard `via` a path is a new press (true) or the same press already
    /// reported along another path (false).
    pub(crate) fn admit(&mut self, now: Instant, digit: DtmfDigit, via: &'static str) -> bool {
        self.unpaired
            .retain(|&(at, ..)| now.saturating_duration_since(at) <= PAIRING_WINDOW);
        let twin = self
            .unpaired
            .iter()
            .position(|&(_, d, path)| d == digit && path != via);
        if let Some(twin) = twin {
            self.unpaired.remove(twin);
            return false;
        }
        if self.unpaired.len() == KEPT {
            self.unpaired.pop_front();
        }
        self.unpaired.push_back((now, digit, via));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use DtmfDigit::*;

    /// The digits admitted from `(ms, digit, via)` reports.
    fn admitted(reports: &[(u64, DtmfDigit, &'static str)]) -> String {
        let t0 = Instant::now();
        let mut paths = DigitPaths::default();
        reports
            .iter()
            .filter(|&&(ms, d, via)| paths.admit(t0 + Duration::from_millis(ms), d, via))
            .map(|&(_, d, _)| d.as_char())
            .collect()
    }

    #[test]
    fn a_key_sent_both_ways_is_one_digit() {
        assert_eq!(admitted(&[(0, D5, "info"), (180, D5, "rfc4733")]), "5");
        assert_eq!(admitted(&[(0, D5, "rfc4733"), (30, D5, "info")]), "5");
        assert_eq!(admitted(&[(0, D5, "rfc4733"), (30, D5, "inband")]), "5");
    }

    #[test]
    fn keys_typed_fast_along_both_paths_each_count_once() {
        // INFOs at the presses, events at the releases, interleaved.
        let reports = [
            (0, D1, "info"),
            (150, D2, "info"),
            (160, D1, "rfc4733"),
            (300, D1, "info"),
            (310, D2, "rfc4733"),
            (460, D1, "rfc4733"),
        ];
        assert_eq!(admitted(&reports), "121");
    }

    #[test]
    fn a_key_pressed_twice_along_one_path_is_two_digits() {
        assert_eq!(admitted(&[(0, D0, "rfc4733"), (200, D0, "rfc4733")]), "00");
        assert_eq!(admitted(&[(0, D0, "info"), (200, D0, "info")]), "00");
        // A lost path for one press does not swallow the next one.
        let reports = [
            (0, D7, "info"),
            (150, D7, "rfc4733"),
            (400, D7, "info"),
            (800, D7, "info"),
            (950, D7, "rfc4733"),
        ];
        assert_eq!(admitted(&reports), "777");
    }

    #[test]
    fn reports_far_apart_are_separate_presses() {
        assert_eq!(admitted(&[(0, D9, "info"), (2_500, D9, "rfc4733")]), "99");
    }
}
