//! A leg in a room: each 20 ms tick the room's packets queued on the [`PhoneLink`] go into the
//! leg's `RoomListener` (and departures out of it), the caller's frame is encoded by its
//! `RoomSpeaker` and queued toward the room, and the listener's mix is what the phone hears.

use std::sync::Arc;
use std::time::Instant;

use sipx_media::MediaError;
use sipx_media::bridge::{RoomListener, RoomSpeaker};
use sipx_media::leg::{FrameKind, LegConfig, MediaLeg};

use super::PhoneLink;

/// Departures taken per tick: the link keeps no more than this many between two ticks.
const DEPARTURES: usize = 8;

/// The audio state of one leg in a room; built when the leg enters the room (allocates),
/// then nothing per tick.
pub(super) struct RoomBridge {
    link: Arc<PhoneLink>,
    listener: RoomListener,
    speaker: RoomSpeaker,
    frame_rate: u32,
    /// Participants that left, taken from the link while the listener is busy with packets.
    departed: Vec<u64>,
}

impl RoomBridge {
    /// Decoders and encoder at the leg's frame rate, jitter buffers within its bounds.
    pub(super) fn new(link: Arc<PhoneLink>, config: &LegConfig) -> Result<RoomBridge, MediaError> {
        Ok(RoomBridge {
            listener: RoomListener::new(config.frame_rate, &config.jitter)?,
            speaker: RoomSpeaker::new(config.frame_rate)?,
            frame_rate: config.frame_rate,
            departed: Vec::with_capacity(DEPARTURES),
            link,
        })
    }

    pub(super) fn link(&self) -> &Arc<PhoneLink> {
        &self.link
    }

    /// Whether the bridge still suits the leg (a re-INVITE may change its frame rate).
    pub(super) fn fits(&self, config: &LegConfig) -> bool {
        self.frame_rate == config.frame_rate
    }

    /// One 20 ms tick of the leg; `pcm` is the media thread's scratch frame.
    pub(super) fn tick(&mut self, now: Instant, leg: &mut MediaLeg, pcm: &mut [i16]) {
        let frame = self.listener.frame_samples();
        let Some(out) = pcm.get_mut(..frame) else {
            return;
        };
        if self.link.is_closed() {
            // Keep the leg's playout clock running; the phone hears silence.
            let _ = leg.pull_frame(now);
            out.fill(0);
            leg.push_frame(now, out);
            return;
        }
        let (listener, departed) = (&mut self.listener, &mut self.departed);
        self.link.drain_downlink(
            |p| listener.handle_packet(p.arrived, p.source, p.seq, p.rtp_time, p.payload()),
            |source| {
                if departed.len() < departed.capacity() {
                    departed.push(source);
                }
            },
        );
        for source in self.departed.drain(..) {
            self.listener.forget(source);
        }
        let (kind, heard) = leg.pull_frame(now);
        // Nothing heard from the phone (hold, no RTP): the room is not sent encoded silence.
        if kind == FrameKind::Silence {
            self.speaker.skip();
        } else {
            match self.speaker.encode(heard) {
                Ok(p) => self
                    .link
                    .push_uplink(p.seq, p.rtp_time, Some(p.level), p.payload),
                Err(_) => metrics::counter!("sipx_media_room_encode_errors_total").increment(1),
            }
        }
        if self.listener.mix(now, out).is_err() {
            out.fill(0);
        }
        leg.push_frame(now, out);
    }
}
