//! The echo test through Opus (`media.opus_echo_extension`): each 20 ms frame the caller sent
//! is encoded to Opus and decoded again before it goes back, at the leg's own frame rate
//! (8 kHz for G.711), with the room's encoder settings (`room_voice_options`). That is the codec
//! work a phone does in a room with one active speaker: its voice encoded once for the room,
//! the speaker's Opus decoded once for it. It lets the
//! transcoding path be exercised and measured (bench/media.py) before rooms exist.

use sipx_codec::{
    AudioDecoder, AudioEncoder, CodecError, CodecKind, Decoder, Encoder, EncoderOptions,
    new_decoder, new_encoder,
};

/// One leg's Opus encoder and decoder, and their buffers (allocated once).
pub(crate) struct OpusLoop {
    encoder: Encoder,
    decoder: Decoder,
    payload: Vec<u8>,
    pcm: Vec<i16>,
}

impl OpusLoop {
    /// For 20 ms frames at `rate` (8, 12, 16, 24 or 48 kHz).
    pub fn new(rate: u32, options: &EncoderOptions) -> Result<Self, CodecError> {
        let frame = rate as usize / 50;
        Ok(OpusLoop {
            encoder: new_encoder(CodecKind::Opus, rate, options)?,
            decoder: new_decoder(CodecKind::Opus, rate)?,
            payload: vec![0; CodecKind::Opus.max_payload_len(frame, rate)],
            pcm: vec![0; frame],
        })
    }

    /// `frame` after an Opus encode and decode. A frame the codec refuses (a length other
    /// than 20 ms, after a codec change) comes back as it was.
    pub fn process<'a>(&'a mut self, frame: &'a [i16]) -> &'a [i16] {
        if frame.len() != self.pcm.len() {
            return frame;
        }
        let decoded = self
            .encoder
            .encode(frame, &mut self.payload)
            .and_then(|n| self.decoder.decode(&self.payload[..n], &mut self.pcm));
        match decoded {
            Ok(n) if n == self.pcm.len() => &self.pcm,
            _ => {
                // The codec failed (it should not): conceal rather than stall the echo.
                let _ = self.decoder.conceal(&mut self.pcm);
                &self.pcm
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use sipx_codec::tone::{Sine, mean_power, tone_snr_db};

    use super::*;

    #[test]
    fn a_tone_survives_the_loop_at_8_khz() {
        let mut opus = OpusLoop::new(8000, &EncoderOptions::default()).unwrap();
        let mut tone = Sine::new(1000.0, 8000, 8000.0);
        let mut frame = vec![0i16; 160];
        let mut out = Vec::new();
        for _ in 0..50 {
            tone.fill(&mut frame);
            out.extend_from_slice(opus.process(&frame));
        }
        // After the codec's start-up: the tone, at about its level, well above the rest.
        let steady = &out[out.len() / 2..];
        let power = mean_power(steady);
        assert!(power > 0.5 * mean_power(&frame), "{power}");
        let snr = tone_snr_db(steady, 1000.0, 8000);
        assert!(snr > 15.0, "{snr} dB");
    }

    #[test]
    fn frames_of_another_length_pass_unchanged() {
        let mut opus = OpusLoop::new(16000, &EncoderOptions::default()).unwrap();
        let odd = vec![7i16; 160];
        assert_eq!(opus.process(&odd), &odd[..]);
        assert_eq!(opus.process(&vec![0i16; 320]).len(), 320);
    }
}
