//! The PIN flow of a call routed to a protected room: the call is answered with its leg
//! playing a prompt, the caller's digits (RFC 4733 or SIP INFO) feed `sipx_call::PinEntry`,
//! whose outputs become prompts, the room's join, or — after the goodbye has played — a BYE.
//! The machine's timers and the goodbye's end are kept here, merged into the core's deadline.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use sipx_call::{Digit, Pin, PinEntry, PinOutput, PinSettings, Prompt};
use sipx_rooms::RoomKey;
use sipx_sip::dialog::DialogId;

use super::Core;
use crate::media::{LegId, LegMode};

/// Between the goodbye's last frame and the BYE: the jitter buffer of the phone plays out.
const AFTER_GOODBYE: Duration = Duration::from_millis(400);

/// A call waiting behind its room's PIN.
pub(crate) struct PinGate {
    entry: PinEntry,
    pub room: RoomKey,
    /// The prompt the leg plays (from its start when the leg starts later).
    pub playing: Prompt,
    /// Refused: the BYE goes once the goodbye has played.
    hang_up_at: Option<Instant>,
    armed: Option<Instant>,
}

impl PinGate {
    pub fn new(now: Instant, pin: Pin, room: RoomKey) -> PinGate {
        PinGate {
            entry: PinEntry::new(pin, PinSettings::default(), now),
            room,
            playing: Prompt::EnterPin,
            hang_up_at: None,
            armed: None,
        }
    }

    /// The PIN the gate waits for.
    pub fn pin(&self) -> &Pin {
        self.entry.pin()
    }

    fn deadline(&self) -> Option<Instant> {
        self.hang_up_at.or_else(|| self.entry.poll_timeout())
    }
}

/// The gates' deadlines, by leg.
#[derive(Default)]
pub(crate) struct GateTimers {
    timers: BTreeSet<(Instant, u64)>,
    by_leg: HashMap<LegId, DialogId>,
}

impl GateTimers {
    pub fn next_timeout(&self) -> Option<Instant> {
        self.timers.first().map(|(at, _)| *at)
    }
}

impl Core {
    /// A gated call was just stored under `id`: its first prompt's wait starts.
    pub(super) fn open_gate(&mut self, now: Instant, id: &DialogId) {
        let Some(call) = self.calls.by_dialog.get(id) else {
            return;
        };
        self.gates.by_leg.insert(call.leg, id.clone());
        self.drive_gate(now, id);
    }

    /// A key the caller pressed; `false` when the call has no gate.
    pub(super) fn gate_digit(&mut self, now: Instant, id: &DialogId, digit: char) -> bool {
        let Some(gate) = self
            .calls
            .by_dialog
            .get_mut(id)
            .and_then(|c| c.gate.as_mut())
        else {
            return false;
        };
        if let Some(d) = Digit::from_char(digit) {
            gate.entry.handle_digit(now, d);
        }
        self.drive_gate(now, id);
        true
    }

    /// Fires the gates' due deadlines.
    pub(super) fn poll_gates(&mut self, now: Instant) {
        while let Some(&(at, leg)) = self.gates.timers.first() {
            if at > now {
                break;
            }
            self.gates.timers.remove(&(at, leg));
            let Some(id) = self.gates.by_leg.get(&LegId(leg)).cloned() else {
                continue;
            };
            let Some(gate) = self
                .calls
                .by_dialog
                .get_mut(&id)
                .and_then(|c| c.gate.as_mut())
            else {
                continue;
            };
            gate.armed = None;
            if gate.hang_up_at.is_some_and(|t| t <= now) {
                self.end_call(now, &id, "Wrong PIN", true);
                continue;
            }
            gate.entry.handle_timeout(now);
            self.drive_gate(now, &id);
        }
    }

    /// Carries out what the PIN machine asks, then re-arms its deadline.
    fn drive_gate(&mut self, now: Instant, id: &DialogId) {
        let Some(call) = self.calls.by_dialog.get_mut(id) else {
            return;
        };
        let leg = call.leg;
        let Some(gate) = call.gate.as_mut() else {
            return;
        };
        let mut admit = false;
        // Bounded: the machine queues at most two outputs per input.
        for _ in 0..16 {
            match gate.entry.poll_output() {
                Some(PinOutput::PlayPrompt(p)) => {
                    gate.playing = p;
                    tracing::info!(call_id = %id.call_id, prompt = ?p, failures = gate.entry.failures(), "PIN prompt");
                    if let Some(engine) = &self.media {
                        engine.set_mode(leg, LegMode::Prompt(p));
                    }
                }
                Some(PinOutput::Admit) => admit = true,
                Some(PinOutput::Refuse) => {
                    tracing::info!(call_id = %id.call_id, "PIN refused: hanging up after the goodbye");
                    gate.hang_up_at = Some(
                        now + crate::media::prompts::duration(Prompt::Goodbye) + AFTER_GOODBYE,
                    );
                }
                None => break,
            }
        }
        let next = gate.deadline();
        let old = std::mem::replace(&mut gate.armed, next);
        if old != next {
            if let Some(at) = old {
                self.gates.timers.remove(&(at, leg.0));
            }
            if let Some(at) = next {
                self.gates.timers.insert((at, leg.0));
            }
        }
        if admit {
            self.admit_through_gate(id);
        }
    }

    /// The right PIN: the call leaves its gate and joins the room.
    fn admit_through_gate(&mut self, id: &DialogId) {
        let Some(call) = self.calls.by_dialog.get_mut(id) else {
            return;
        };
        let Some(gate) = call.gate.take() else {
            return;
        };
        if let Some(at) = gate.armed {
            self.gates.timers.remove(&(at, call.leg.0));
        }
        self.gates.by_leg.remove(&call.leg);
        tracing::info!(call_id = %id.call_id, room = %gate.room, "PIN accepted: joining the room");
        self.join_room_of(id, gate.room);
    }

    /// A gated call ended: its deadlines go.
    pub(super) fn close_gate(&mut self, leg: LegId, gate: Option<&PinGate>) {
        self.gates.by_leg.remove(&leg);
        if let Some(at) = gate.and_then(|g| g.armed) {
            self.gates.timers.remove(&(at, leg.0));
        }
    }
}
