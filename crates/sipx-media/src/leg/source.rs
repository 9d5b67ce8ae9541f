//! Which of the peer's RTP streams (SSRCs) the leg plays. A phone sends one, but equipment in
//! between may send two at once from the same address: forked early media relayed to one port,
//! an announcement beside the far end's stream. Following every packet's SSRC would restart
//! the decoder and the jitter buffer each time and play neither (RFC 3550 §8.2 leaves the
//! choice to the receiver). So the stream playing keeps the leg while it sends; another takes
//! over once the playing one has been quiet for two packet times, which is what an SSRC change
//! looks like (a PBX re-bridging the call, a transfer) and costs it about one packet.

use std::time::{Duration, Instant};

use crate::ids::Ssrc;

/// Never less than this between the playing stream's last packet and a takeover.
const MIN_QUIET: Duration = Duration::from_millis(40);

#[derive(Debug, Default)]
pub(super) struct SourceChoice {
    /// The stream playing, and when it last sent (`None`: let go, any stream may take over).
    playing: Option<(Ssrc, Option<Instant>)>,
}

/// What a packet of a stream means for the leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Choice {
    /// The stream playing (or the first one heard).
    Playing,
    /// Another stream, the playing one gone quiet: it plays from now on.
    TookOver { old: Ssrc },
    /// Another stream while the playing one still sends: not played.
    Ignored,
}

impl SourceChoice {
    /// The stream playing, if any has been heard.
    pub fn playing(&self) -> Option<Ssrc> {
        self.playing.map(|(ssrc, _)| ssrc)
    }

    /// Decides for a packet of `ssrc` arriving at `now`; `packet_time` is how much audio the
    /// peer's packets carry (how often it sends).
    pub fn choose(&mut self, now: Instant, ssrc: Ssrc, packet_time: Duration) -> Choice {
        let choice = match self.playing {
            None => Choice::Playing,
            Some((playing, _)) if playing == ssrc => Choice::Playing,
            Some((playing, last)) => {
                let quiet = (2 * packet_time).max(MIN_QUIET);
                if last.is_none_or(|last| now.saturating_duration_since(last) >= quiet) {
                    Choice::TookOver { old: playing }
                } else {
                    return Choice::Ignored;
                }
            }
        };
        self.playing = Some((ssrc, Some(now)));
        choice
    }

    /// The peer moved (its packets come from a new address): the next stream heard plays,
    /// even if the one playing has just sent.
    pub fn let_go(&mut self) {
        if let Some((_, last)) = self.playing.as_mut() {
            *last = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PTIME: Duration = Duration::from_millis(20);

    #[test]
    fn two_streams_at_once_leave_the_first_playing() {
        let start = Instant::now();
        let mut choice = SourceChoice::default();
        let (a, b) = (Ssrc(1), Ssrc(2));
        assert_eq!(choice.choose(start, a, PTIME), Choice::Playing);
        for k in 1..50u32 {
            let at = start + PTIME * k;
            assert_eq!(choice.choose(at, a, PTIME), Choice::Playing);
            let between = at + Duration::from_millis(10);
            assert_eq!(choice.choose(between, b, PTIME), Choice::Ignored);
        }
        assert_eq!(choice.playing(), Some(a));
    }

    #[test]
    fn a_new_stream_takes_over_once_the_playing_one_stops() {
        let start = Instant::now();
        let mut choice = SourceChoice::default();
        let (a, b) = (Ssrc(1), Ssrc(2));
        choice.choose(start, a, PTIME);
        // The next packet time, already the new stream: one packet is not played.
        assert_eq!(choice.choose(start + PTIME, b, PTIME), Choice::Ignored);
        assert_eq!(
            choice.choose(start + 2 * PTIME, b, PTIME),
            Choice::TookOver { old: a }
        );
        assert_eq!(choice.choose(start + 3 * PTIME, b, PTIME), Choice::Playing);
        // The old one, back for a packet, does not take the leg back while the new one sends.
        assert_eq!(
            choice.choose(start + 3 * PTIME + PTIME / 2, a, PTIME),
            Choice::Ignored
        );
        // With 60 ms packets, the quiet needed grows with them.
        let slow = Duration::from_millis(60);
        let at = start + 3 * PTIME;
        assert_eq!(choice.choose(at + slow, a, slow), Choice::Ignored);
        assert_eq!(
            choice.choose(at + 2 * slow, a, slow),
            Choice::TookOver { old: b }
        );
    }
}
