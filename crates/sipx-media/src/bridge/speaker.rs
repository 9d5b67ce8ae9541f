//! [`RoomSpeaker`]: the caller's voice toward the room, as the Opus packets the SFU forwards.

use sipx_codec::AudioEncoder;
use sipx_codec::opus::OpusEncoder;

use super::level::audio_level;
use super::{FRAME_TICKS, MAX_PAYLOAD};
use crate::error::MediaError;

/// One packet of the caller's voice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpokenPacket<'a> {
    /// Extended sequence number, from 0.
    pub seq: u64,
    /// RTP time in 48 kHz ticks, from 0; advances 960 per 20 ms, sent or not.
    pub rtp_time: u64,
    /// RFC 6464 level of the frame in -dBov (0 loudest, 127 silence).
    pub level: u8,
    pub payload: &'a [u8],
}

/// Encodes the phone leg's 20 ms frames to Opus: fed at the frame rate (no resampling), VoIP
/// application, with `room_voice_options` (in-band FEC sized by the listeners' reported loss),
/// no DTX (the caller feeds frames only while there is audio to send).
#[derive(Debug)]
pub struct RoomSpeaker {
    encoder: OpusEncoder,
    /// The loss, in percent, the encoder's FEC is sized for now.
    expected_loss: u8,
    frame: usize,
    seq: u64,
    rtp_time: u64,
    payload: Box<[u8]>,
}

impl RoomSpeaker {
    /// A speaker taking 20 ms frames at `frame_rate` (8, 12, 16, 24 or 48 kHz).
    pub fn new(frame_rate: u32) -> Result<RoomSpeaker, MediaError> {
        let options = super::room_voice_options(frame_rate);
        Ok(RoomSpeaker {
            encoder: OpusEncoder::new(frame_rate, &options)?,
            expected_loss: options.expected_loss_percent,
            frame: frame_rate as usize / 50,
            seq: 0,
            rtp_time: 0,
            payload: vec![0; MAX_PAYLOAD].into(),
        })
    }

    /// Encodes one 20 ms frame into the next packet.
    pub fn encode(&mut self, pcm: &[i16]) -> Result<SpokenPacket<'_>, MediaError> {
        if pcm.len() != self.frame {
            return Err(MediaError::ApiMisuse(
                "frame length differs from the speaker's",
            ));
        }
        let rtp_time = self.rtp_time;
        // The frame's time passes whether or not it encodes.
        self.rtp_time += FRAME_TICKS;
        let len = self.encoder.encode(pcm, &mut self.payload)?;
        let seq = self.seq;
        self.seq += 1;
        Ok(SpokenPacket {
            seq,
            rtp_time,
            level: audio_level(pcm),
            payload: &self.payload[..len],
        })
    }

    /// Sizes the in-band FEC for `percent` loss (0: none), as the listeners report it; nothing
    /// to do when it already is (a media thread says it every tick). On an error the encoder
    /// keeps its FEC as it was, and the next call tries again.
    pub fn set_expected_loss(&mut self, percent: u8) -> Result<(), MediaError> {
        if percent != self.expected_loss {
            self.encoder.set_expected_loss_percent(percent)?;
            self.expected_loss = percent;
        }
        Ok(())
    }

    /// A frame not sent (the phone sends nothing, or holds): the RTP time runs on, so the room
    /// sees the gap for what it is.
    pub fn skip(&mut self) {
        self.rtp_time += FRAME_TICKS;
    }
}
