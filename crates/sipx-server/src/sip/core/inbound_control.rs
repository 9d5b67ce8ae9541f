//! API commands on answered inbound calls: hang up, press keys, mute (transfer is shared with
//! dial-outs, `transfer.rs`). Inbound calls are answered at once and live as dialogs in `Calls`
//! with their row; the API names them by the row's id.

use std::collections::HashMap;
use std::time::Instant;

use sipx_api::call_service::CallCommandError;
use sipx_call::{DtmfQueue, DtmfSequence, DtmfStep, DtmfTiming};
use sipx_media::dtmf::DtmfDigit;
use sipx_sip::dialog::DialogId;

use super::Core;
use super::call_rows::CallRow;

/// Key presses waiting for inbound calls, paced like a dial-out's.
#[derive(Default)]
pub(crate) struct InboundDtmf {
    queues: HashMap<DialogId, DtmfQueue>,
}

impl InboundDtmf {
    /// When the earliest waiting key is due.
    pub fn next_timeout(&self) -> Option<Instant> {
        self.queues.values().filter_map(DtmfQueue::next_due).min()
    }
}

fn ended() -> CallCommandError {
    CallCommandError::Conflict("the call has ended".to_owned())
}

impl Core {
    /// The answered inbound call whose row is `id`, with its dialog.
    fn inbound_call(&self, id: &str) -> Option<(&DialogId, &CallRow)> {
        self.calls
            .by_dialog
            .iter()
            .find_map(|(d, c)| c.row.as_ref().filter(|r| r.id == id).map(|r| (d, r)))
    }

    /// The dialog of the answered inbound call `id` of `app_id`.
    pub(super) fn inbound_dialog(&self, app_id: &str, id: &str) -> Option<DialogId> {
        let (d, row) = self.inbound_call(id)?;
        (row.app_id() == app_id).then(|| d.clone())
    }

    /// The dialog of the inbound call `id`, whatever its application.
    pub(super) fn inbound_dialog_any(&self, id: &str) -> Option<DialogId> {
        self.inbound_call(id).map(|(d, _)| d.clone())
    }

    pub(super) fn inbound_row(&self, id: &str) -> Option<&CallRow> {
        self.inbound_call(id).map(|(_, r)| r)
    }

    pub(super) fn inbound_hangup(
        &mut self,
        now: Instant,
        app_id: &str,
        id: &str,
    ) -> Result<(), CallCommandError> {
        let dialog = self.inbound_dialog(app_id, id).ok_or_else(ended)?;
        self.end_call(now, &dialog, "Call ended", true);
        Ok(())
    }

    pub(super) fn inbound_mute(
        &mut self,
        app_id: &str,
        id: &str,
        muted: bool,
    ) -> Result<(), CallCommandError> {
        let dialog = self.inbound_dialog(app_id, id).ok_or_else(ended)?;
        let place = self
            .calls
            .by_dialog
            .get(&dialog)
            .and_then(|c| c.room.as_ref())
            .and_then(|seat| seat.place.clone());
        let (Some(rooms), Some((room, identity))) = (self.rooms.clone(), place) else {
            return Err(CallCommandError::Conflict(
                "the call is not in a room".to_owned(),
            ));
        };
        tokio::spawn(async move {
            use sipx_api::room_service::RoomService;
            if let Err(e) = rooms.mute(room.app, room.name, identity, muted).await {
                tracing::info!(error = %e, "mute not applied in the room");
            }
        });
        Ok(())
    }

    pub(super) fn inbound_dtmf(
        &mut self,
        now: Instant,
        app_id: &str,
        id: &str,
        digits: &DtmfSequence,
    ) -> Result<(), CallCommandError> {
        let dialog = self.inbound_dialog(app_id, id).ok_or_else(ended)?;
        if self.keys_held(Some(&dialog)) {
            return Err(CallCommandError::Conflict(
                super::control::KEYS_HELD.to_owned(),
            ));
        }
        self.inbound_keys
            .queues
            .entry(dialog)
            .or_default()
            .push(digits)
            .map_err(|e| CallCommandError::Conflict(e.to_string()))?;
        self.poll_inbound_dtmf(now);
        Ok(())
    }

    /// Presses the keys that are due on inbound calls.
    pub(super) fn poll_inbound_dtmf(&mut self, now: Instant) {
        let timing = DtmfTiming::default();
        let mut presses = Vec::new();
        self.inbound_keys.queues.retain(|dialog, queue| {
            // Bounded: a queue holds at most MAX_QUEUED steps.
            while let Some(step) = queue.pop_due(now, &timing) {
                if let DtmfStep::Digit(d) = step {
                    presses.push((dialog.clone(), d));
                }
            }
            queue.next_due().is_some()
        });
        let Some(engine) = &self.media else {
            return;
        };
        for (dialog, digit) in presses {
            let leg = self.calls.by_dialog.get(&dialog).map(|c| c.leg);
            if let (Some(leg), Some(d)) = (leg, DtmfDigit::from_char(digit.as_char())) {
                engine.send_dtmf(leg, d, timing.tone);
            }
        }
    }

    /// An inbound call ended: its keys and transfers go.
    pub(super) fn inbound_gone(&mut self, now: Instant, dialog: &DialogId, row_id: Option<&str>) {
        self.inbound_keys.queues.remove(dialog);
        if let Some(id) = row_id {
            self.transfer_party_gone(now, id);
        }
    }
}
