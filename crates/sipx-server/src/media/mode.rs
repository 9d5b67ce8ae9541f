//! What a leg does with its audio each tick: the state behind the `LegMode` the SIP core asked
//! for (an echo's codec loop, a prompt's player, a room's bridge and group).

use std::sync::Arc;
use std::time::Instant;

use sipx_media::leg::MediaLeg;
use sipx_media::prompt::PromptPlayer;

use super::opus_loop::OpusLoop;
use super::room_bridge::RoomBridge;
use super::room_group::Groups;
use super::{LegId, LegMode, PhoneLink};

/// A leg's mode with the state it needs.
pub(super) enum Mode {
    Echo,
    /// The echo through an Opus encode and decode built for this frame rate (a new frame rate
    /// rebuilds it).
    OpusEcho(u32, Box<OpusLoop>),
    Silence,
    Room(Box<RoomBridge>),
    /// The prompt and the rate it was decoded at (a new frame rate restarts it).
    Prompt(sipx_call::Prompt, u32, Box<PromptPlayer>),
}

impl Mode {
    /// The state for `mode` on `leg`, which ticks in `phase` now; a room the leg cannot join
    /// (no Opus at its rate) leaves it in silence, and says why.
    pub(super) fn new(
        id: LegId,
        leg: &MediaLeg,
        mode: LegMode,
        groups: &mut Groups,
        phase: usize,
    ) -> Mode {
        match mode {
            LegMode::Echo => Mode::Echo,
            LegMode::OpusEcho => {
                let config = leg.config();
                // The room's settings, not the leg's: the echo stands for a phone in a room.
                let options = sipx_media::bridge::room_voice_options(config.frame_rate);
                match OpusLoop::new(config.frame_rate, &options) {
                    Ok(opus) => Mode::OpusEcho(config.frame_rate, Box::new(opus)),
                    Err(e) => {
                        // A rate Opus cannot take: the leg echoes plainly.
                        tracing::warn!(leg = id.0, error = %e, "no Opus for the echo");
                        Mode::Echo
                    }
                }
            }
            LegMode::Silence => Mode::Silence,
            LegMode::Prompt(prompt) => {
                let rate = leg.config().frame_rate;
                match super::prompts::player(prompt, rate) {
                    Some(p) => Mode::Prompt(prompt, rate, Box::new(p)),
                    None => Mode::Silence,
                }
            }
            LegMode::Room(link) => {
                match RoomBridge::new(link.clone(), leg.config(), groups, phase) {
                    Ok(bridge) => Mode::Room(Box::new(bridge)),
                    Err(e) => {
                        tracing::warn!(leg = id.0, error = %e, "a media leg cannot join its room");
                        link.close();
                        Mode::Silence
                    }
                }
            }
        }
    }

    /// The state rebuilt where it depends on the leg's frame rate and that changed (a
    /// re-INVITE with another codec); a room's link stays open.
    pub(super) fn refit(&mut self, id: LegId, leg: &MediaLeg, groups: &mut Groups, phase: usize) {
        let rate = leg.config().frame_rate;
        let again = match self {
            Mode::Room(bridge) if !bridge.fits(leg.config()) => {
                bridge.detach(groups);
                LegMode::Room(bridge.link().clone())
            }
            Mode::Prompt(prompt, r, _) if *r != rate => LegMode::Prompt(*prompt),
            Mode::OpusEcho(r, _) if *r != rate => LegMode::OpusEcho,
            _ => return,
        };
        *self = Mode::new(id, leg, again, groups, phase);
    }

    /// The phase the leg must tick in, if its mode says (a room's legs tick together).
    pub(super) fn phase(&self) -> Option<usize> {
        match self {
            Mode::Room(bridge) => Some(bridge.phase()),
            _ => None,
        }
    }

    /// A room leg's link, to tell whether a new mode is the same room.
    pub(super) fn link(&self) -> Option<&Arc<PhoneLink>> {
        match self {
            Mode::Room(bridge) => Some(bridge.link()),
            _ => None,
        }
    }

    /// Before the phase's legs tick (the tick due at `at`): a room leg's queued packets into
    /// its group.
    pub(super) fn drain(&mut self, at: Instant, groups: &mut Groups) {
        if let Mode::Room(bridge) = self {
            bridge.drain(at, groups);
        }
    }

    /// After every leg of the phase drained, before any ticks: a room leg's caller frame to
    /// its group (and toward the room). True when it queued the caller's voice toward the
    /// room (the rooms thread is to be woken).
    pub(super) fn speak(&mut self, at: Instant, leg: &mut MediaLeg, groups: &mut Groups) -> bool {
        match self {
            Mode::Room(bridge) => bridge.speak(at, leg, groups),
            _ => false,
        }
    }

    /// One 20 ms tick of `leg` in this mode, due at `at`, after every leg of the phase spoke;
    /// `pcm` is scratch.
    pub(super) fn tick(
        &mut self,
        at: Instant,
        leg: &mut MediaLeg,
        groups: &mut Groups,
        pcm: &mut [i16],
    ) {
        match self {
            Mode::Echo => {
                let (_, frame) = leg.pull_frame(at);
                let n = frame.len().min(pcm.len());
                pcm[..n].copy_from_slice(&frame[..n]);
                leg.push_frame(at, &pcm[..n]);
            }
            Mode::OpusEcho(_, opus) => {
                let (_, frame) = leg.pull_frame(at);
                let frame = opus.process(frame);
                let n = frame.len().min(pcm.len());
                pcm[..n].copy_from_slice(&frame[..n]);
                leg.push_frame(at, &pcm[..n]);
            }
            Mode::Silence => {
                let (_, frame) = leg.pull_frame(at);
                let n = frame.len().min(pcm.len());
                pcm[..n].fill(0);
                leg.push_frame(at, &pcm[..n]);
            }
            Mode::Prompt(_, _, player) => {
                // What the caller says meanwhile is not needed; its DTMF still arrives.
                let _ = leg.pull_frame(at);
                leg.push_frame(at, player.next_frame());
            }
            Mode::Room(bridge) => bridge.listen(at, leg, groups, pcm),
        }
    }

    /// The leg leaves this mode: out of its room's group, and the link closed, so the rooms
    /// side knows.
    pub(super) fn leave(&mut self, groups: &mut Groups) {
        if let Mode::Room(bridge) = self {
            bridge.detach(groups);
            bridge.link().close();
        }
    }
}
