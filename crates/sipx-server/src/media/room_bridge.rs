//! A leg in a room. Each 20 ms tick, first the room's packets queued on the leg's
//! [`PhoneLink`] go into its group's `RoomListener` (and departures out of it), for every leg of
//! the group (`room_group`); then each leg's caller frame is encoded by its `RoomSpeaker` and
//! queued toward the room, and what the group mixed for the leg is what the phone hears: its
//! own mix while it talks, otherwise the frame every quiet phone hears, encoded once for all
//! of them that share the leg's format.
//! The caller's frame is not encoded when it carries nothing (no RTP, digital silence) or when
//! nobody in the room would hear it (alone, or muted).

use std::sync::Arc;
use std::time::Instant;

use sipx_media::MediaError;
use sipx_media::bridge::{ListenerId, RoomSpeaker};
use sipx_media::leg::{FrameKind, LegConfig, MediaLeg};
use sipx_media::silence::is_digital_silence;

use super::PhoneLink;
use super::room_group::{GroupKey, Groups};

/// Departures taken per tick: the link keeps no more than this many between two ticks.
const DEPARTURES: usize = 8;

/// The audio state of one leg in a room; built when the leg enters the room (allocates),
/// then nothing per tick.
pub(super) struct RoomBridge {
    link: Arc<PhoneLink>,
    group: GroupKey,
    listener: ListenerId,
    /// The phase its group ticks in.
    phase: usize,
    speaker: RoomSpeaker,
    frame_rate: u32,
    /// Participants that left, taken from the link while the listener is busy with packets.
    departed: Vec<u64>,
    /// Someone in the room hears the caller (as the link said at the last drain).
    audience: bool,
}

impl RoomBridge {
    /// Joins the leg's group (decoders and jitter buffers within its bounds are the group's)
    /// and makes the caller's encoder, at the leg's frame rate. `phase` is where the leg ticks
    /// now; the group may tick in another ([`RoomBridge::phase`]).
    pub(super) fn new(
        link: Arc<PhoneLink>,
        config: &LegConfig,
        groups: &mut Groups,
        phase: usize,
    ) -> Result<RoomBridge, MediaError> {
        let speaker = RoomSpeaker::new(config.frame_rate)?;
        let group = GroupKey::of(&link, config.frame_rate);
        let own = link.joined().map(|j| j.participant);
        let (listener, phase) = groups.join(group, config, own, phase)?;
        Ok(RoomBridge {
            link,
            group,
            listener,
            phase,
            speaker,
            frame_rate: config.frame_rate,
            departed: Vec::with_capacity(DEPARTURES),
            audience: true,
        })
    }

    pub(super) fn link(&self) -> &Arc<PhoneLink> {
        &self.link
    }

    /// The phase the leg must tick in: its group's.
    pub(super) fn phase(&self) -> usize {
        self.phase
    }

    /// Whether the bridge still suits the leg (a re-INVITE may change its frame rate).
    pub(super) fn fits(&self, config: &LegConfig) -> bool {
        self.frame_rate == config.frame_rate
    }

    /// Out of the group (the link stays as it is).
    pub(super) fn detach(&self, groups: &mut Groups) {
        groups.leave(self.group, self.listener);
    }

    /// The room's packets and departures queued on the link, into the group: before any leg
    /// of the group ticks, the tick due at `at`. A packet is stamped when the rooms thread
    /// queued it, or at `at` if that is earlier (the media thread is behind): on the ticks'
    /// clock, as the legs' own RTP (`worker`).
    pub(super) fn drain(&mut self, at: Instant, groups: &mut Groups) {
        let Some(group) = groups.get_mut(&self.group) else {
            return;
        };
        let (listener, departed) = (&mut group.listener, &mut self.departed);
        self.audience = self.link.drain_downlink(
            |p| {
                let arrived = p.arrived.min(at);
                listener.handle_packet(arrived, p.source, p.seq, p.rtp_time, p.payload());
            },
            |source| {
                if departed.len() < departed.capacity() {
                    departed.push(source);
                }
            },
        );
        for source in self.departed.drain(..) {
            group.listener.forget(source);
        }
    }

    /// One 20 ms tick of the leg, due at `at`; `pcm` is the media thread's scratch frame.
    /// Returns whether the caller's voice was queued toward the room (the rooms thread is then
    /// to be woken).
    pub(super) fn tick(
        &mut self,
        at: Instant,
        leg: &mut MediaLeg,
        groups: &mut Groups,
        pcm: &mut [i16],
    ) -> bool {
        let frame = self.frame_rate as usize / 50;
        let Some(out) = pcm.get_mut(..frame) else {
            return false;
        };
        let group = groups.get_mut(&self.group);
        let Some(group) = group.filter(|_| !self.link.is_closed()) else {
            // Out of the room: keep the leg's playout clock running; the phone hears silence.
            let _ = leg.pull_frame(at);
            out.fill(0);
            leg.push_frame(at, out);
            return false;
        };
        group.mix(at);
        let (kind, voice) = leg.pull_frame(at);
        // Nothing from the phone (hold, no RTP, digital silence) or nobody to hear it: the room
        // is sent nothing, as with DTX, and its listeners hear the same silence.
        let mut queued = false;
        if kind == FrameKind::Silence || !self.audience || is_digital_silence(voice) {
            self.speaker.skip();
        } else {
            match self.speaker.encode(voice) {
                Ok(p) => {
                    self.link
                        .push_uplink(p.seq, p.rtp_time, Some(p.level), p.payload);
                    queued = true;
                }
                Err(_) => metrics::counter!("sipx_media_room_encode_errors_total").increment(1),
            }
        }
        let talked = match group.listener.heard(self.listener) {
            Ok(heard) if heard.pcm.len() == out.len() => {
                out.copy_from_slice(heard.pcm);
                heard.talked
            }
            _ => {
                out.fill(0);
                true
            }
        };
        let shared = match leg.shared_format().filter(|_| !talked) {
            Some(format) => group.shared.encode(at, &format, out).ok(),
            None => None,
        };
        match shared {
            Some(payload) => leg.push_payload(at, payload),
            None => leg.push_frame(at, out),
        }
        queued
    }
}
