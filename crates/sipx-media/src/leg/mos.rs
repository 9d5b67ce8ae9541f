//! A mean opinion score estimate from the simplified E-model (ITU-T G.107): the transmission
//! rating R from delay and codec impairment under random loss, mapped to MOS. Good enough to
//! spot a bad call on a dashboard; not a listening test.

use sipx_codec::CodecKind;

use crate::jitter::JitterStats;
use crate::stats::MediaStats;

/// R with no impairment at all (G.107 default values).
const R_DEFAULT: f64 = 93.2;

/// Equipment impairment `Ie` and packet-loss robustness `Bpl` (G.113 Appendix I values for
/// G.711 with PLC and G.729A; G.722 and Opus mapped onto the narrowband scale, where both do
/// at least as well as G.711; Opus's FEC earns it a higher `Bpl`).
fn impairment(codec: CodecKind) -> (f64, f64) {
    match codec {
        CodecKind::Pcmu | CodecKind::Pcma => (0.0, 25.1),
        CodecKind::G729 => (11.0, 19.0),
        CodecKind::G722 => (0.0, 25.1),
        _ => (0.0, 30.0),
    }
}

/// MOS for what this leg receives: loss as seen here, mouth-to-ear delay as half the RTT
/// (if known) plus the jitter buffer target plus one packet time.
pub(super) fn estimate(
    codec: CodecKind,
    media: &MediaStats,
    jitter: &JitterStats,
    ptime_ms: u32,
) -> f64 {
    let expected = media.packets_received as f64 + media.packets_lost.max(0) as f64;
    let loss_percent = if expected > 0.0 {
        100.0 * media.packets_lost.max(0) as f64 / expected
    } else {
        0.0
    };
    let delay = media.rtt_ms.unwrap_or(0.0) / 2.0 + jitter.target_ms + f64::from(ptime_ms);
    let (ie, bpl) = impairment(codec);
    let ie_eff = ie + (95.0 - ie) * loss_percent / (loss_percent + bpl);
    let id = 0.024 * delay
        + if delay > 177.3 {
            0.11 * (delay - 177.3)
        } else {
            0.0
        };
    mos_from_r(R_DEFAULT - id - ie_eff)
}

/// G.107 Annex B: R to MOS.
fn mos_from_r(r: f64) -> f64 {
    if r <= 0.0 {
        1.0
    } else if r >= 100.0 {
        4.5
    } else {
        1.0 + 0.035 * r + r * (r - 60.0) * (100.0 - r) * 7e-6
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mos(codec: CodecKind, received: u64, lost: i64, rtt_ms: Option<f64>) -> f64 {
        let media = MediaStats {
            packets_received: received,
            packets_lost: lost,
            rtt_ms,
            ..MediaStats::default()
        };
        let jitter = JitterStats {
            target_ms: 40.0,
            ..JitterStats::default()
        };
        estimate(codec, &media, &jitter, 20)
    }

    #[test]
    fn known_points_of_the_curve() {
        // A clean G.711 call scores about 4.4; loss and delay pull it down, in that order.
        let clean = mos(CodecKind::Pcmu, 1000, 0, Some(40.0));
        assert!((4.3..=4.45).contains(&clean), "{clean}");
        let lossy = mos(CodecKind::Pcmu, 950, 50, Some(40.0));
        assert!((3.3..3.9).contains(&lossy), "5% loss: {lossy}");
        let far = mos(CodecKind::Pcmu, 1000, 0, Some(600.0));
        assert!(far < clean - 0.3, "300 ms one way: {far}");
        assert!(mos(CodecKind::G729, 1000, 0, None) < clean);
        assert_eq!(mos_from_r(-5.0), 1.0);
        assert_eq!(mos_from_r(120.0), 4.5);
    }
}
