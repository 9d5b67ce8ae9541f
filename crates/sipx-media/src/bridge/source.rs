//! One participant heard by a phone: its packets through a jitter buffer of its own (adaptive
//! within the leg's bounds) and an Opus decoder at the phone's frame rate, with Opus's own
//! concealment and in-band FEC on loss.

use std::time::{Duration, Instant};

use sipx_codec::CodecKind;

use super::level::audio_level;
use crate::decoding::{Played, StreamDecoder};
use crate::error::MediaError;
use crate::ids::{Pt, Ssrc};
use crate::jitter::{JitterBuffer, JitterConfig, Pushed};
use crate::rtp::RtpHeader;

/// A frame at or under this level (-dBov) counts as someone talking.
const LOUD_LEVEL: u8 = 50;

/// One participant's stream. Everything is allocated in [`Source::new`].
#[derive(Debug)]
pub(super) struct Source {
    /// The rooms thread's key of the participant.
    pub(super) key: u64,
    /// Its place in the listener's mixer.
    pub(super) slot: crate::mixer::ParticipantId,
    jitter: JitterBuffer,
    stream: StreamDecoder,
    /// When its last packet arrived.
    pub(super) last_packet: Instant,
    /// When it last produced a frame loud enough to be someone talking (or joined).
    pub(super) loud_at: Instant,
    /// It has audio for the frame being mixed.
    pub(super) ready: bool,
    /// Packets whose time had already played.
    pub(super) late: u64,
    /// Frames made up for lost packets.
    pub(super) concealed: u64,
}

impl Source {
    /// `jitter` gives the delay bounds; the rest of its settings are Opus's.
    pub(super) fn new(
        key: u64,
        slot: crate::mixer::ParticipantId,
        now: Instant,
        frame_rate: u32,
        jitter: &JitterConfig,
    ) -> Result<Source, MediaError> {
        let config = JitterConfig {
            clock_rate: super::OPUS_CLOCK,
            frame: Duration::from_millis(20),
            // The ring reaches a little past the largest delay in 20 ms packets.
            capacity: ((jitter.max_delay.as_millis() as usize + 120) / 20).next_power_of_two(),
            max_payload: crate::bridge::MAX_PAYLOAD,
            // Opus carries its own silence: no RFC 3389 payload type on the room side.
            cn_pt: None,
            ..jitter.clone()
        };
        Ok(Source {
            key,
            slot,
            jitter: JitterBuffer::new(&config),
            stream: StreamDecoder::new(CodecKind::Opus, frame_rate)?,
            last_packet: now,
            loud_at: now,
            ready: false,
            late: 0,
            concealed: 0,
        })
    }

    /// One packet: extended sequence number and RTP time (48 kHz) from the rooms thread,
    /// truncated to RTP's widths, which the jitter buffer extends again.
    pub(super) fn push(&mut self, now: Instant, seq: u64, rtp_time: u64, payload: &[u8]) {
        // One stream of one payload type: the jitter buffer only compares SSRC and payload
        // type, and without a marker it finds talkspurts from the packets' timing.
        let header = RtpHeader {
            marker: false,
            pt: Pt(0),
            seq: seq as u16,
            timestamp: rtp_time as u32,
            ssrc: Ssrc(0),
        };
        if self.jitter.push(now, &header, payload) == Pushed::Late {
            self.late += 1;
        }
        self.last_packet = self.last_packet.max(now);
    }

    /// Runs this tick of the jitter buffer into the decoder; `ready` says whether there is
    /// audio for the frame.
    pub(super) fn play(&mut self, now: Instant) {
        if self.stream.play(self.jitter.tick(now)) == Played::Lost {
            self.concealed += 1;
        }
        self.ready = self.stream.queued() > 0;
    }

    /// Takes this tick's frame into `out` and notes whether it was loud.
    pub(super) fn take(&mut self, now: Instant, out: &mut [i16]) {
        self.stream.pop_into(out);
        self.ready = false;
        if audio_level(out) <= LOUD_LEVEL {
            self.loud_at = now;
        }
    }
}
