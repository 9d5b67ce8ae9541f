//! Receive-side index bookkeeping: the rollover counter estimate (RFC 3711 Appendix A) and the
//! replay window (§3.3.2). Both are checked before authentication and updated only after it.

use crate::error::MediaError;

/// Indices the replay window remembers behind the highest one (RFC 3711 asks for at least 64).
pub(super) const WINDOW: u64 = 128;

/// Which of the last [`WINDOW`] indices have been received.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct ReplayWindow {
    /// The highest index accepted so far.
    highest: Option<u64>,
    /// Bit `n` set: index `highest - n` was received.
    seen: u128,
}

impl ReplayWindow {
    /// Refuses an index already received or too old to tell.
    pub(super) fn check(&self, index: u64) -> Result<(), MediaError> {
        let Some(highest) = self.highest else {
            return Ok(());
        };
        if index > highest {
            return Ok(());
        }
        let behind = highest - index;
        if behind >= WINDOW || self.seen & (1 << behind) != 0 {
            return Err(MediaError::SrtpReplay);
        }
        Ok(())
    }

    /// Records an authenticated index (which passed [`ReplayWindow::check`]).
    pub(super) fn accept(&mut self, index: u64) {
        match self.highest {
            Some(highest) if index <= highest => {
                let behind = highest - index;
                if behind < WINDOW {
                    self.seen |= 1 << behind;
                }
            }
            Some(highest) => {
                let ahead = index - highest;
                self.seen = if ahead >= WINDOW {
                    1
                } else {
                    (self.seen << ahead) | 1
                };
                self.highest = Some(index);
            }
            None => {
                self.seen = 1;
                self.highest = Some(index);
            }
        }
    }
}

/// The receiver's rollover counter and highest sequence number of one source.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct RocTracker {
    /// `(roc, s_l)` after the first authenticated packet.
    state: Option<(u32, u16)>,
}

impl RocTracker {
    /// Guesses the ROC of a packet with sequence number `seq` (Appendix A) and its 48-bit index.
    pub(super) fn estimate(&self, seq: u16) -> (u32, u64) {
        let roc = match self.state {
            None => 0,
            Some((roc, s_l)) => {
                if s_l < 0x8000 {
                    if seq > s_l && seq - s_l > 0x8000 {
                        roc.wrapping_sub(1)
                    } else {
                        roc
                    }
                } else if s_l - 0x8000 > seq {
                    roc.wrapping_add(1)
                } else {
                    roc
                }
            }
        };
        (roc, index(roc, seq))
    }

    /// Records an authenticated packet: the highest index moves forward only.
    pub(super) fn accept(&mut self, roc: u32, seq: u16) {
        let newer = match self.state {
            None => true,
            Some((r, s)) => index(roc, seq) > index(r, s),
        };
        if newer {
            self.state = Some((roc, seq));
        }
    }
}

fn index(roc: u32, seq: u16) -> u64 {
    (u64::from(roc) << 16) | u64::from(seq)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_accepts_new_and_reordered_rejects_repeats_and_old() {
        let mut w = ReplayWindow::default();
        for i in [100u64, 102, 101, 230] {
            assert_eq!(w.check(i), Ok(()), "{i}");
            w.accept(i);
        }
        // (index, accepted?)
        let cases = [
            (100, false), // behind by 130: out of the window
            (102, false), // below 230 by 128: just out
            (103, true),  // within, never seen
            (230, false), // the highest, again
            (229, true),
            (231, true),
        ];
        for (index, ok) in cases {
            assert_eq!(w.check(index).is_ok(), ok, "{index}");
        }
        w.accept(103);
        assert_eq!(w.check(103), Err(MediaError::SrtpReplay));
    }

    #[test]
    fn roc_follows_the_wrap_both_ways() {
        let mut t = RocTracker::default();
        assert_eq!(t.estimate(65_000), (0, 65_000));
        t.accept(0, 65_000);
        // Past the wrap: next ROC.
        assert_eq!(t.estimate(10), (1, 65_536 + 10));
        t.accept(1, 10);
        // A late packet from before the wrap: previous ROC.
        assert_eq!(t.estimate(65_500), (0, 65_500));
        t.accept(0, 65_500);
        // ...which does not move the highest index back.
        assert_eq!(t.estimate(11), (1, 65_536 + 11));
    }
}
