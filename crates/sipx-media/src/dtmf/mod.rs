//! DTMF: RFC 4733 telephone events ([`rfc4733`]), in-band tone detection ([`goertzel`]) and
//! in-band tone sending ([`tones`]). Detection reports the same [`DtmfEvent`] either way, so a
//! leg can use either without the call layer caring.

pub mod goertzel;
pub mod rfc4733;
pub mod tones;

pub use goertzel::DtmfDetector;
pub use rfc4733::{DtmfPacket, DtmfReceiver, DtmfSender};
pub use tones::DtmfTones;

/// The row (low group) and column (high group) frequencies of each key, in Hz (ITU-T Q.23).
const ROWS: [f32; 4] = [697.0, 770.0, 852.0, 941.0];
const COLUMNS: [f32; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
/// The keypad: `KEYPAD[row][column]`.
const KEYPAD: [[DtmfDigit; 4]; 4] = {
    use DtmfDigit::*;
    [
        [D1, D2, D3, A],
        [D4, D5, D6, B],
        [D7, D8, D9, C],
        [Star, D0, Pound, D],
    ]
};

/// A DTMF key, or a hook flash (RFC 4733 §3.2 event codes 0..=16).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum DtmfDigit {
    D0 = 0,
    D1,
    D2,
    D3,
    D4,
    D5,
    D6,
    D7,
    D8,
    D9,
    Star,
    Pound,
    A,
    B,
    C,
    D,
    Flash,
}

impl DtmfDigit {
    /// Every event, in event-code order.
    pub const ALL: [DtmfDigit; 17] = [
        DtmfDigit::D0,
        DtmfDigit::D1,
        DtmfDigit::D2,
        DtmfDigit::D3,
        DtmfDigit::D4,
        DtmfDigit::D5,
        DtmfDigit::D6,
        DtmfDigit::D7,
        DtmfDigit::D8,
        DtmfDigit::D9,
        DtmfDigit::Star,
        DtmfDigit::Pound,
        DtmfDigit::A,
        DtmfDigit::B,
        DtmfDigit::C,
        DtmfDigit::D,
        DtmfDigit::Flash,
    ];

    /// The RFC 4733 event code.
    pub fn event_code(self) -> u8 {
        // The discriminants are the codes (D0 = 0, then in order up to Flash = 16).
        self as u8
    }

    pub fn from_event_code(code: u8) -> Option<DtmfDigit> {
        Self::ALL.get(usize::from(code)).copied()
    }

    /// `0-9 * # A-D`, and `!` for flash (the usual SIP INFO / API spelling).
    pub fn as_char(self) -> char {
        b"0123456789*#ABCD!"[usize::from(self.event_code())] as char
    }

    /// The (row, column) tones of the key, in Hz; `None` for a flash, which has none.
    pub fn frequencies(self) -> Option<(f32, f32)> {
        KEYPAD.iter().enumerate().find_map(|(r, row)| {
            let c = row.iter().position(|key| *key == self)?;
            Some((ROWS[r], COLUMNS[c]))
        })
    }

    pub fn from_char(c: char) -> Option<DtmfDigit> {
        let code = "0123456789*#ABCD!".find(c.to_ascii_uppercase())?;
        Self::from_event_code(code as u8)
    }
}

/// One key press, reported when it ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DtmfEvent {
    pub digit: DtmfDigit,
    pub duration_ms: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_characters_round_trip() {
        for (code, digit) in DtmfDigit::ALL.iter().enumerate() {
            assert_eq!(digit.event_code(), code as u8);
            assert_eq!(DtmfDigit::from_event_code(code as u8), Some(*digit));
            assert_eq!(DtmfDigit::from_char(digit.as_char()), Some(*digit));
        }
        assert_eq!(DtmfDigit::from_event_code(17), None);
        assert_eq!(DtmfDigit::from_char('x'), None);
        assert_eq!(DtmfDigit::from_char('a'), Some(DtmfDigit::A));
    }
}
