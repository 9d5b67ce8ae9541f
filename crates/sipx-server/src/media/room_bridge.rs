//! A leg in a room. Each 20 ms tick, for every leg of the group (`room_group`) in turn:
//! 1. `drain`: the room's packets queued on the leg's [`PhoneLink`] go into its group's
//!    `RoomListener` (and departures out of it);
//! 2. `speak`: the caller's frame goes to the phones beside it in the group as it is, and,
//!    encoded by the leg's `RoomSpeaker`, toward the room for whoever hears it elsewhere;
//! 3. `listen`: what the group mixed for the leg is what the phone hears: its own mix while
//!    it talks, otherwise the frame every quiet phone hears, encoded once for all of them
//!    that share the leg's format.
//!
//! The caller's frame is not encoded when it carries nothing (no RTP, digital silence) or when
//! nobody elsewhere hears it (alone, muted, or only phones of its group in the room), and the
//! phones beside it do not hear it while the rooms thread says they do not (muted).

use std::sync::Arc;
use std::time::Instant;

use sipx_media::MediaError;
use sipx_media::bridge::{ListenerId, RoomSpeaker};
use sipx_media::leg::{FrameKind, LegConfig, MediaLeg};
use sipx_media::silence::is_digital_silence;

use super::room_group::{GroupKey, Groups};
use super::{Hearing, PhoneLink};

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
    /// Who hears the caller, as worked out for the link's audience version and the group's
    /// membership it holds for.
    hearing: (u64, u64, Hearing),
    /// The link was closed at this tick's drain: out of the room, the leg hears silence.
    outside: bool,
    /// The caller's frames heard only by the phones beside it, and those encoded for the
    /// room; added to the process' counters when the leg leaves the group.
    frames_beside_only: u64,
    frames_encoded: u64,
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
            // Worked out at the first drain (no link version is `u64::MAX`).
            hearing: (
                u64::MAX,
                u64::MAX,
                Hearing {
                    beside: true,
                    elsewhere: true,
                },
            ),
            outside: false,
            frames_beside_only: 0,
            frames_encoded: 0,
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
    pub(super) fn detach(&mut self, groups: &mut Groups) {
        groups.leave(self.group, self.listener);
        for (heard_by, frames) in [
            (
                "phones_beside",
                std::mem::take(&mut self.frames_beside_only),
            ),
            ("room", std::mem::take(&mut self.frames_encoded)),
        ] {
            metrics::counter!("sipx_media_room_voice_frames_total", "heard_by" => heard_by)
                .increment(frames);
        }
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
        let downlink = self.link.drain_downlink(
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
        self.outside = downlink.closed;
        // The speaker acts only on a change; a failure is retried at the next drain.
        let _ = self.speaker.set_expected_loss(downlink.expected_loss);
        if (downlink.audience, group.membership) != (self.hearing.0, self.hearing.1) {
            let listener = &group.listener;
            let hearing = self.link.hearing(|key| listener.is_listening(key));
            self.hearing = (downlink.audience, group.membership, hearing);
        }
    }

    /// The caller's frame of the tick due at `at`: to the phones beside it as it is, and
    /// encoded toward the room when someone elsewhere hears it. Returns whether it was queued
    /// toward the room (the rooms thread is then to be woken). Every leg of the group speaks
    /// before any listens.
    pub(super) fn speak(&mut self, at: Instant, leg: &mut MediaLeg, groups: &mut Groups) -> bool {
        // A phone that holds the call (its SDP `sendonly`: SIPx sends it nothing) plays its
        // hold music, not its caller's voice: the room does not hear it until it resumes.
        let holding = !leg.config().send;
        let (kind, voice) = leg.pull_frame(at);
        let group = groups.get_mut(&self.group);
        let Some(group) = group.filter(|_| !self.outside) else {
            // Out of the room: the leg's playout clock keeps running; the phone hears silence.
            return false;
        };
        // Nothing from the phone (hold, no RTP, digital silence): the room is sent nothing, as
        // with DTX, and its listeners hear the same silence.
        if holding || kind == FrameKind::Silence || is_digital_silence(voice) {
            self.speaker.skip();
            return false;
        }
        let Hearing { beside, elsewhere } = self.hearing.2;
        if beside {
            let _ = group.listener.speak(self.listener, voice);
        }
        if !elsewhere {
            self.speaker.skip();
            self.frames_beside_only += u64::from(beside);
            return false;
        }
        match self.speaker.encode(voice) {
            Ok(p) => {
                self.link
                    .push_uplink(p.seq, p.rtp_time, Some(p.level), p.payload);
                self.frames_encoded += 1;
                true
            }
            Err(_) => {
                metrics::counter!("sipx_media_room_encode_errors_total").increment(1);
                false
            }
        }
    }

    /// What the phone hears in the tick due at `at` (the group is mixed by the first of its
    /// legs to listen); `pcm` is the media thread's scratch frame.
    pub(super) fn listen(
        &mut self,
        at: Instant,
        leg: &mut MediaLeg,
        groups: &mut Groups,
        pcm: &mut [i16],
    ) {
        let frame = self.frame_rate as usize / 50;
        let Some(out) = pcm.get_mut(..frame) else {
            return;
        };
        let group = groups.get_mut(&self.group);
        let Some(group) = group.filter(|_| !self.outside) else {
            out.fill(0);
            leg.push_frame(at, out);
            return;
        };
        group.mix(at);
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
    }
}
