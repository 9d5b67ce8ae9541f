//! An INVITE with `Replaces` (RFC 3891): a phone takes the place of one of SIPx's calls. This
//! is how an attended transfer into a room ends: someone who called into the room hands their
//! place to the caller they were talking to, whose phone then sends SIPx an INVITE naming the
//! first call's dialog. The new call goes where the replaced one was (its room, its PIN gate
//! or its echo test) and into its application; once the new call is answered, the replaced one
//! ends with a BYE and its row reads `transferred`.

use std::time::Instant;

use sipx_sip::msg::HasHeaders;
use sipx_sip::replaces::Replaces;

use super::Core;
use super::inbound::{Destination, NewInvite, new_row};
use super::transfer::TRANSFERRED;

impl Core {
    /// A new INVITE carrying `Replaces`: answered in the replaced call's place, or refused as
    /// RFC 3891 §3 says.
    pub(super) fn on_replacing_invite(&mut self, now: Instant, invite: NewInvite) {
        let target = match replaced_dialog(&invite) {
            Ok(replaces) => replaces,
            Err((status, reason)) => return self.refuse_replacing(now, invite, status, reason),
        };
        let Some(call) = self.calls.by_dialog.get(&target.dialog) else {
            // No such dialog, or one still being set up: an early dialog SIPx received the
            // INVITE of cannot be replaced (§3).
            return self.refuse_replacing(now, invite, 481, "No call to replace");
        };
        // Every call SIPx keeps here is confirmed (answered).
        if target.early_only {
            return self.refuse_replacing(now, invite, 486, "The call is already answered");
        }
        if call.room.as_ref().is_some_and(|seat| seat.controlled) {
            // A dialled-out call's participant belongs to the API's call, which a phone cannot
            // hand over.
            return self.refuse_replacing(now, invite, 603, "This call cannot be handed over");
        }
        // The call's application, if it has one, must be the new caller's too: knowing a
        // dialog's tags does not make a phone of another application its owner.
        let app = call.row.as_ref().map(|row| row.app_id().to_owned());
        if app.is_some() && app != self.app_of(&invite.origin) {
            return self.refuse_replacing(
                now,
                invite,
                403,
                "The call belongs to another application",
            );
        }
        let destination = match (&call.gate, &call.room) {
            (Some(gate), _) => Destination::PinRoom(gate.room.clone(), gate.pin().clone()),
            (None, Some(seat)) => match &seat.place {
                Some((room, _)) => Destination::Room(room.clone()),
                None => return self.refuse_replacing(now, invite, 480, "The call has no room"),
            },
            (None, None) => Destination::Echo(call.echo),
        };
        let row = app.map(|app| {
            let (trunk, account) = self.came_through(&invite.origin);
            new_row(&invite.req, &app, trunk, account)
        });
        let tag = invite.tag.clone();
        let new_call = invite.req.call_id().unwrap_or("").to_owned();
        tracing::info!(
            call_id = %new_call,
            replaces = %target.dialog.call_id,
            "an INVITE takes the place of a call"
        );
        self.admit_invite(now, invite, destination, row);
        let answered = self
            .calls
            .by_dialog
            .keys()
            .any(|id| id.call_id == new_call && id.local_tag == tag);
        if answered {
            self.end_call(now, &target.dialog, TRANSFERRED, true);
        }
    }

    fn refuse_replacing(&mut self, now: Instant, invite: NewInvite, status: u16, reason: &str) {
        tracing::info!(
            call_id = invite.req.call_id().unwrap_or(""),
            status,
            reason,
            "INVITE with Replaces refused"
        );
        let resp = invite
            .req
            .response(status, Some(&invite.tag))
            .with_reason(reason);
        self.refuse_invite(now, invite.txn, resp, None);
    }
}

/// The dialog an INVITE's `Replaces` names, or the error status and reason: exactly one
/// header, well formed (§3: several are a 400).
fn replaced_dialog(invite: &NewInvite) -> Result<Replaces, (u16, &'static str)> {
    let mut values = invite.req.headers.get_all("Replaces");
    let (Some(value), None) = (values.next(), values.next()) else {
        return Err((400, "More than one Replaces header"));
    };
    Replaces::parse(value).ok_or((400, "Malformed Replaces header"))
}
