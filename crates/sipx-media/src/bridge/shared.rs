//! [`SharedEncoders`]: what the phones of a room that do not talk hear is the same frame, so it
//! is encoded once per [`SharedFormat`] per tick and each of those legs sends the packet
//! ([`MediaLeg::push_payload`](crate::MediaLeg::push_payload)). An encoder is made the first
//! time its format is asked for and kept while the room lasts (a room's phones have few
//! formats between them).

use std::time::Instant;

use sipx_codec::{AudioEncoder, CodecKind, Encoder, new_encoder};

use crate::error::MediaError;
use crate::leg::SharedFormat;
use crate::silence::DtxSkip;

/// One format's encoder and this tick's packet.
#[derive(Debug)]
struct Shared {
    format: SharedFormat,
    encoder: Encoder,
    payload: Box<[u8]>,
    len: usize,
    /// The tick `payload` was encoded for.
    at: Option<Instant>,
    dtx_skip: DtxSkip,
}

/// A room's shared encoders, one per format. See the module docs.
#[derive(Debug, Default)]
pub struct SharedEncoders {
    encoders: Vec<Shared>,
}

impl SharedEncoders {
    /// `pcm` (this tick's shared frame, the tick due at `at`) in `format`: encoded by the first
    /// leg that asks, then the same bytes for the others. An empty payload: the format's peers
    /// take discontinuous transmission (Opus with DTX) and the frame is digital silence.
    pub fn encode(
        &mut self,
        at: Instant,
        format: &SharedFormat,
        pcm: &[i16],
    ) -> Result<&[u8], MediaError> {
        let index = match self.encoders.iter().position(|s| s.format == *format) {
            Some(index) => index,
            None => {
                let samples = format.rate as usize / 50;
                self.encoders.push(Shared {
                    encoder: new_encoder(format.codec, format.rate, &format.options)?,
                    payload: vec![0; format.codec.max_payload_len(samples, format.rate)].into(),
                    len: 0,
                    at: None,
                    dtx_skip: DtxSkip::default(),
                    format: format.clone(),
                });
                self.encoders.len() - 1
            }
        };
        let Some(s) = self.encoders.get_mut(index) else {
            return Err(MediaError::ApiMisuse("no shared encoder"));
        };
        if s.at != Some(at) {
            let dtx = s.format.codec == CodecKind::Opus && s.format.options.dtx;
            let (encoder, payload) = (&mut s.encoder, &mut s.payload);
            s.len = s
                .dtx_skip
                .encode(dtx, pcm, |pcm| encoder.encode(pcm, payload))?;
            s.at = Some(at);
        }
        Ok(&s.payload[..s.len])
    }

    /// Encoders kept.
    pub fn len(&self) -> usize {
        self.encoders.len()
    }

    pub fn is_empty(&self) -> bool {
        self.encoders.is_empty()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use sipx_codec::EncoderOptions;
    use sipx_codec::tone::Sine;

    use super::*;

    fn format(codec: CodecKind, rate: u32, options: EncoderOptions) -> SharedFormat {
        SharedFormat {
            codec,
            rate,
            options,
        }
    }

    #[test]
    fn one_encode_per_format_per_tick_and_the_same_bytes_for_every_leg() {
        let t0 = Instant::now();
        let mut shared = SharedEncoders::default();
        let pcmu = format(CodecKind::Pcmu, 8000, EncoderOptions::default());
        let opus = format(CodecKind::Opus, 8000, EncoderOptions::default());
        let mut tone = Sine::new(440.0, 8000, 8000.0);
        let mut frame = vec![0i16; 160];
        for k in 0..5u32 {
            let at = t0 + Duration::from_millis(20) * k;
            tone.fill(&mut frame);
            let first = shared.encode(at, &opus, &frame).unwrap().to_vec();
            // A second leg of the same tick gets the packet as it was: no second encode, which
            // an Opus encoder would answer with different bytes (its state moved on).
            assert_eq!(shared.encode(at, &opus, &[0; 160]).unwrap(), &first[..]);
            let ulaw = shared.encode(at, &pcmu, &frame).unwrap();
            assert_eq!(ulaw.len(), 160);
        }
        assert_eq!(shared.len(), 2);
        // A DTX format sends nothing for digital silence once its encoder has coded the way
        // into it (within half a second), and the frame after it is encoded.
        let dtx = format(CodecKind::Opus, 16000, EncoderOptions::default().dtx(true));
        let tick = |k: u32| t0 + Duration::from_secs(1) + Duration::from_millis(20) * k;
        let quiet = (0..25)
            .find(|&k| shared.encode(tick(k), &dtx, &[0; 320]).unwrap().is_empty())
            .unwrap();
        for k in quiet + 1..quiet + 50 {
            assert!(shared.encode(tick(k), &dtx, &[0; 320]).unwrap().is_empty());
        }
        let loud = Sine::new(440.0, 16000, 8000.0).take(320);
        let later = tick(quiet + 50);
        assert!(!shared.encode(later, &dtx, &loud).unwrap().is_empty());
        assert_eq!(shared.len(), 3);
    }
}
