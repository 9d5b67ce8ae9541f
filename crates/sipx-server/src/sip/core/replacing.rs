//! An INVITE with `Replaces` (RFC 3891): a phone takes the place of one of SIPx's calls. This
//! is how an attended transfer into a room ends: someone who called into the room hands their
//! place to the caller they were talking to, whose phone then sends SIPx an INVITE naming the
//! first call's dialog. The new call goes where the replaced one was (its room, its PIN gate
//! or its echo test), and only from the same owner: the same application, or for a call in
//! none (the echo test) the same trunk, account or address. Once the new call is answered,
//! the replaced one ends with a BYE and its row reads `transferred`.

use std::time::Instant;

use sipx_sip::msg::HasHeaders;
use sipx_sip::replaces::Replaces;

use super::Core;
use super::calls::Call;
use super::inbound::{Destination, NewInvite, new_row};
use super::origin::Origin;
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
        // Knowing a dialog's tags does not make a phone its owner (§6).
        let Some(app) = self.owned_by_the_same(call, &invite) else {
            return self.refuse_replacing(now, invite, 403, "Not the owner of the call");
        };
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
        tracing::info!(
            call_id = invite.req.call_id().unwrap_or(""),
            replaces = %target.dialog.call_id,
            "an INVITE takes the place of a call"
        );
        if self.admit_invite(now, invite, destination, row) {
            self.end_call(now, &target.dialog, TRANSFERRED, true);
        }
    }

    /// When `call` and the phone of `invite` have one owner: `Some` of their application (or
    /// `None` for a call in none, which the same trunk, account or address may replace).
    /// A dialled-out call is nobody's to hand over: its participant is the API's call.
    fn owned_by_the_same(&self, call: &Call, invite: &NewInvite) -> Option<Option<String>> {
        let origin = call.origin.as_ref()?;
        let app = match &call.row {
            Some(row) => Some(row.app_id().to_owned()),
            None => self.app_of(origin),
        };
        let same = match &app {
            Some(app) => self.app_of(&invite.origin).as_ref() == Some(app),
            None => {
                *origin == invite.origin
                    && (*origin != Origin::Unknown || call.peer.addr.ip() == invite.peer.addr.ip())
            }
        };
        same.then_some(app)
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

/// The dialog an INVITE's `Replaces` names, or the error status and reason (§3): exactly one
/// header, well formed, and no `Join` beside it.
fn replaced_dialog(invite: &NewInvite) -> Result<Replaces, (u16, &'static str)> {
    if invite.req.headers.get("Join").is_some() {
        return Err((400, "Replaces and Join together"));
    }
    let mut values = invite.req.headers.get_all("Replaces");
    let (Some(value), None) = (values.next(), values.next()) else {
        return Err((400, "More than one Replaces header"));
    };
    Replaces::parse(value).ok_or((400, "Malformed Replaces header"))
}
