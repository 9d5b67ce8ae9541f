//! Which codecs exist and their facts for RTP and SDP: clock rates, payload types, frame sizes.

/// A voice codec SIPx can put on a leg.
///
/// The *RTP clock rate* (what timestamps count) and the *audio rate* (what PCM the encoder
/// takes and the decoder gives) are different things: G.722 is 16 kHz audio on an 8 kHz clock
/// (RFC 3551's historical error), and Opus always uses a 48 kHz clock although it encodes and
/// decodes at 8, 12, 16, 24 or 48 kHz. SIPx runs the phone side at the narrowest rate that fits,
/// so a PCMU ↔ Opus call never resamples.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CodecKind {
    /// G.711 μ-law.
    Pcmu,
    /// G.711 A-law.
    Pcma,
    /// G.722 at 64 kbit/s.
    G722,
    /// Opus, mono.
    Opus,
    /// G.729 Annex A, with Annex B comfort noise frames (needs the `g729` feature).
    G729,
}

impl CodecKind {
    /// Every codec, in a stable order.
    pub const ALL: [CodecKind; 5] = [
        CodecKind::Pcmu,
        CodecKind::Pcma,
        CodecKind::G722,
        CodecKind::Opus,
        CodecKind::G729,
    ];

    /// The encoding name in SDP `a=rtpmap` (RFC 3551, RFC 7587).
    pub const fn encoding_name(self) -> &'static str {
        match self {
            CodecKind::Pcmu => "PCMU",
            CodecKind::Pcma => "PCMA",
            CodecKind::G722 => "G722",
            CodecKind::Opus => "opus",
            CodecKind::G729 => "G729",
        }
    }

    /// The static RTP payload type, if the codec has one (Opus is always dynamic).
    pub const fn static_payload_type(self) -> Option<u8> {
        match self {
            CodecKind::Pcmu => Some(0),
            CodecKind::Pcma => Some(8),
            CodecKind::G722 => Some(9),
            CodecKind::Opus => None,
            CodecKind::G729 => Some(18),
        }
    }

    /// The RTP timestamp clock rate.
    pub const fn rtp_clock_rate(self) -> u32 {
        match self {
            CodecKind::Opus => 48000,
            _ => 8000,
        }
    }

    /// The channel count written in `a=rtpmap`, where the codec requires one (`opus/48000/2`,
    /// although SIPx encodes mono).
    pub const fn rtpmap_channels(self) -> Option<u8> {
        match self {
            CodecKind::Opus => Some(2),
            _ => None,
        }
    }

    /// The audio rate the codec natively carries.
    pub const fn native_audio_rate(self) -> u32 {
        match self {
            CodecKind::G722 => 16000,
            CodecKind::Opus => 48000,
            _ => 8000,
        }
    }

    /// The audio rates this crate's encoder takes and decoder produces for this codec.
    pub const fn audio_rates(self) -> &'static [u32] {
        match self {
            CodecKind::Pcmu | CodecKind::Pcma | CodecKind::G729 => &[8000],
            CodecKind::G722 => &[16000, 8000],
            CodecKind::Opus => &[8000, 12000, 16000, 24000, 48000],
        }
    }

    /// Whether the codec can run at `audio_rate`.
    pub fn supports_audio_rate(self, audio_rate: u32) -> bool {
        self.audio_rates().contains(&audio_rate)
    }

    /// Whether `samples` at `audio_rate` is a frame length the encoder accepts and `conceal`
    /// can fill: any length for G.711, whole sample pairs for wideband G.722, 2.5/5/10/20/40/60 ms
    /// for Opus, whole 10 ms frames for G.729.
    pub fn is_valid_frame(self, samples: usize, audio_rate: u32) -> bool {
        if !self.supports_audio_rate(audio_rate) {
            return false;
        }
        match self {
            CodecKind::Pcmu | CodecKind::Pcma => true,
            CodecKind::G722 => audio_rate == 8000 || samples.is_multiple_of(2),
            CodecKind::Opus => {
                let quantum = audio_rate as usize / 400; // 2.5 ms
                samples.is_multiple_of(quantum)
                    && [1, 2, 4, 8, 16, 24].contains(&(samples / quantum))
            }
            CodecKind::G729 => samples > 0 && samples.is_multiple_of(80),
        }
    }

    /// How far the RTP timestamp advances for `samples` of audio at `audio_rate`.
    pub fn rtp_ticks(self, samples: usize, audio_rate: u32) -> u32 {
        let ticks =
            samples as u64 * u64::from(self.rtp_clock_rate()) / u64::from(audio_rate.max(1));
        // RTP timestamps are modulo 2^32; wrapping is their arithmetic.
        ticks as u32
    }

    /// RTP timestamp ticks per payload byte, for codecs whose payload length is its duration:
    /// one for G.711 and for G.722 (16 kHz audio at 4 bits a sample, on RFC 3551's 8 kHz
    /// clock). `None` for the others (Opus frames vary; G.729's comfort noise frames are
    /// shorter than its speech frames).
    pub const fn ticks_per_payload_byte(self) -> Option<u32> {
        match self {
            CodecKind::Pcmu | CodecKind::Pcma | CodecKind::G722 => Some(1),
            CodecKind::Opus | CodecKind::G729 => None,
        }
    }

    /// A payload buffer size that always holds the encoding of `samples` at `audio_rate`.
    pub fn max_payload_len(self, samples: usize, audio_rate: u32) -> usize {
        match self {
            CodecKind::Pcmu | CodecKind::Pcma => samples,
            CodecKind::G722 if audio_rate == 8000 => samples,
            CodecKind::G722 => samples / 2,
            // RFC 6716: at most 1275 bytes per 20 ms frame, plus framing for multi-frame packets.
            CodecKind::Opus => {
                let frames = (samples * 50).div_ceil(audio_rate.max(1) as usize).max(1);
                1275 * frames + 2 * frames
            }
            CodecKind::G729 => samples / 8,
        }
    }
}
