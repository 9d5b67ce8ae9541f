//! Decoders for the other codecs a peer may change to mid-call (`LegConfig::also_received`:
//! an answer that listed several, RFC 3264 §5.1). They are made with the leg, so a change of
//! codec allocates nothing: the path that plays and a spare trade places when audio in the
//! other codec comes to play (`playout.rs`). Each keeps its own state (PLC history, resampler), so a peer
//! that alternates loses nothing but the audio the outgoing decoder still had queued.

use sipx_codec::CodecKind;

use super::codec_rate;
use crate::MediaError;
use crate::decoding::StreamDecoder;
use crate::resample::Resampler;

/// One decoding path: the codec, its decoder, the rate it produces and the resampler from it
/// to the frame rate (when they differ).
#[derive(Debug)]
pub(super) struct DecodePath {
    pub codec: CodecKind,
    pub stream: StreamDecoder,
    pub rate: u32,
    pub upsampler: Option<Resampler>,
}

impl DecodePath {
    pub fn new(codec: CodecKind, frame_rate: u32) -> Result<Self, MediaError> {
        let rate = codec_rate(codec, frame_rate)?;
        Ok(DecodePath {
            codec,
            stream: StreamDecoder::new(codec, rate)?,
            rate,
            upsampler: resampler(rate, frame_rate),
        })
    }
}

/// A resampler from `from` to `to`, when they differ.
pub(super) fn resampler(from: u32, to: u32) -> Option<Resampler> {
    (from != to).then(|| Resampler::new(from, to)).flatten()
}

/// The spare paths for every codec of `also` other than `main`, once each.
pub(super) fn spare_paths(
    main: CodecKind,
    also: &[(u8, CodecKind)],
    frame_rate: u32,
) -> Result<Vec<DecodePath>, MediaError> {
    let mut spares: Vec<DecodePath> = Vec::new();
    for &(_, codec) in also {
        if codec != main && !spares.iter().any(|p| p.codec == codec) {
            spares.push(DecodePath::new(codec, frame_rate)?);
        }
    }
    Ok(spares)
}
