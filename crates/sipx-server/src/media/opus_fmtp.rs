//! What a peer's Opus `fmtp` (RFC 7587 §6.1) asks of the stream we send it: the parameters
//! describe its decoder, so they shape our encoder. `stereo`/`sprop-stereo` need nothing: we
//! send mono, which every Opus decoder takes, and decode stereo to mono.

use sipx_codec::EncoderOptions;
use sipx_sdp::attr::Fmtp;

/// Opus's own bitrate bounds (RFC 7587: 6 to 510 kbit/s).
const BITRATE: std::ops::RangeInclusive<u32> = 6_000..=510_000;

/// Encoder options for a peer whose `fmtp` is `remote`: `maxaveragebitrate` caps the bitrate
/// (a value outside Opus's range is ignored, RFC 7587 §6.1), in-band FEC only for a decoder
/// that says `useinbandfec=1` (the default is 0: it would be wasted bits), DTX when it asks
/// with `usedtx=1`, a constant bitrate with `cbr=1`, and no wider a band than its
/// `maxplaybackrate` renders.
pub fn encoder_options(remote: Option<&str>) -> EncoderOptions {
    let param = |name| remote.and_then(|f| Fmtp::param(f, name));
    let mut options = EncoderOptions::default();
    options.bitrate = param("maxaveragebitrate")
        .and_then(|v| v.parse::<u32>().ok())
        .filter(|b| BITRATE.contains(b));
    options.fec = param("useinbandfec") == Some("1");
    options.dtx = param("usedtx") == Some("1");
    options.cbr = param("cbr") == Some("1");
    options.max_playback_rate = param("maxplaybackrate").and_then(|v| v.parse::<u32>().ok());
    options
}

/// The PCM rate to run Opus at: 8 kHz when the peer plays back no more than narrowband
/// (`maxplaybackrate`), which halves the work, else 16 kHz (wideband speech, a third of
/// 48 kHz's cost).
pub fn frame_rate(remote: Option<&str>) -> u32 {
    let playback = remote
        .and_then(|f| Fmtp::param(f, "maxplaybackrate"))
        .and_then(|v| v.parse::<u32>().ok());
    match playback {
        Some(rate) if rate <= 8_000 => 8_000,
        _ => 16_000,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn baresips_fmtp_keeps_the_defaults_without_fec() {
        // baresip 1.0 offers exactly this.
        let o = encoder_options(Some("stereo=1;sprop-stereo=1"));
        assert_eq!(o.bitrate, None);
        assert!(!o.fec && !o.dtx);
        assert_eq!(frame_rate(Some("stereo=1;sprop-stereo=1")), 16_000);
        assert_eq!(frame_rate(None), 16_000);
    }

    #[test]
    fn the_peers_decoder_shapes_our_encoder() {
        let o = encoder_options(Some(
            "maxplaybackrate=8000; MaxAverageBitrate=20000;useinbandfec=1;usedtx=1",
        ));
        assert_eq!(o.bitrate, Some(20_000));
        assert!(o.fec && o.dtx);
        assert_eq!(o.complexity, EncoderOptions::default().complexity);
        assert_eq!(frame_rate(Some("maxplaybackrate=8000")), 8_000);
        assert_eq!(frame_rate(Some("maxplaybackrate=12000")), 16_000);
        // Out of Opus's range, or not a number: ignored, left to libopus.
        assert_eq!(
            encoder_options(Some("maxaveragebitrate=1000")).bitrate,
            None
        );
        assert_eq!(
            encoder_options(Some("maxaveragebitrate=6000")).bitrate,
            Some(6_000)
        );
        let o = encoder_options(Some("cbr=1;maxplaybackrate=12000"));
        assert!(o.cbr);
        assert_eq!(o.max_playback_rate, Some(12_000));
        assert_eq!(encoder_options(Some("maxaveragebitrate=x")).bitrate, None);
        assert!(!encoder_options(Some("useinbandfec=0")).fec);
    }
}
