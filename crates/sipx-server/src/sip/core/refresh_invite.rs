//! Session refreshes by re-INVITE (RFC 4028 §7.4), for a peer that does not take UPDATE: the
//! re-INVITE offers the session as it stands (the description we last sent, its `o=` version
//! unchanged: `MediaSession::create_refresh_offer`), its 2xx is acknowledged by us (and again for each retransmission), and its
//! answer becomes the session's, as any answer does. `session_timers.rs` decides when.

use sipx_sdp::SessionDescription;
use std::time::Instant;

use sipx_sip::dialog::{Dialog, DialogId};
use sipx_sip::msg::{HasHeaders, Method, Request, Response};
use sipx_sip::uac::ack_for_2xx;
use sipx_sip::{ClientTxnId, Peer};

use super::Core;
use super::calls::{CONTACT_USER, sdp_of};
use super::session_timers::Refresh;

impl Core {
    /// Whether a re-INVITE may go on the call now: its media agreed, and no offer or INVITE
    /// of either side under way (ours would meet a 491, theirs would be answered 491).
    pub(super) fn can_reinvite(&self, id: &DialogId) -> bool {
        self.calls.by_dialog.get(id).is_some_and(|call| {
            call.invite_txn.is_none()
                && call.held.is_none()
                && !call.sdp.offer_pending()
                && call.sdp.negotiated().is_some()
        })
    }

    /// The re-INVITE refreshing the call's session, its offer outstanding from now on (`None`
    /// when no offer can be made). `via` is the whole Via value.
    pub(super) fn refresh_invite(&mut self, id: &DialogId, via: &str) -> Option<Request> {
        let peer = self.calls.by_dialog.get(id)?.request_peer();
        let contact = self.contact_for(&peer, CONTACT_USER);
        let allow = self.uas.allow_header();
        let call = self.calls.by_dialog.get_mut(id)?;
        let offer = call.sdp.create_refresh_offer().ok()?.to_bytes();
        let mut invite = call.dialog.request(Method::Invite, via, None);
        invite.headers.push("Contact", contact);
        invite.headers.push("Allow", allow);
        invite.headers.push("Content-Type", "application/sdp");
        invite
            .headers
            .push("Content-Length", offer.len().to_string());
        invite.body = offer;
        Some(invite)
    }

    /// A 2xx to our refreshing re-INVITE: acknowledged, and its answer taken. Returns `false`
    /// for a retransmission of a 2xx already taken (acknowledged again, nothing else to do).
    pub(super) fn on_refresh_invite_2xx(
        &mut self,
        txn: ClientTxnId,
        mut refresh: Refresh,
        ok: &Response,
    ) -> bool {
        if let Some((hop, ack)) = refresh.ack.clone() {
            self.endpoint.send_stateless(hop, ack);
            self.session_timers.keep(txn, refresh);
            return false;
        }
        let id = refresh.dialog.clone();
        let Some(call) = self.calls.by_dialog.get_mut(&id) else {
            return true;
        };
        // The 2xx may move the peer's target (§12.2.1.2); the ACK goes there.
        call.dialog.on_refresh_response(ok);
        let hop = call.request_peer();
        let via = self.new_via(&hop);
        let Some(call) = self.calls.by_dialog.get_mut(&id) else {
            return true;
        };
        let ack = ack_for_2xx(&mut call.dialog, &refresh.request, &via).to_bytes();
        self.endpoint.send_stateless(hop, ack.clone());
        let answer = sdp_of(&ok.headers, &ok.body).map(SessionDescription::parse);
        let taken = match answer {
            Some(Ok(answer)) => call.sdp.handle_answer(&answer).map_err(|e| e.to_string()),
            Some(Err(e)) => Err(e.to_string()),
            None => Err("no SDP answer".to_owned()),
        };
        match taken {
            Ok(_) => self.apply_negotiation(&id),
            Err(why) => {
                // The session stays as it was agreed before; the refresh itself succeeded.
                call.sdp.rollback_offer();
                tracing::info!(call_id = %id.call_id, error = %why, "the answer to our refreshing re-INVITE was not taken");
            }
        }
        refresh.ack = Some((hop, ack));
        self.session_timers.keep(txn, refresh);
        true
    }

    /// A 2xx to one of our refreshing re-INVITEs after its transaction is gone (the peer
    /// missed every ACK so far): acknowledged again. Returns whether it was one.
    pub(super) fn reack_stray_refresh_2xx(&mut self, response: &Response) -> bool {
        let (Some(dialog), Some(seq)) = (
            DialogId::of_response(response),
            response.cseq().map(|c| c.seq),
        ) else {
            return false;
        };
        let Some((hop, ack)) = self.session_timers.ack_of(&dialog, seq) else {
            return false;
        };
        self.endpoint.send_stateless(hop, ack);
        true
    }

    /// A 2xx to our re-INVITE of a call that has ended meanwhile: acknowledged, then ended
    /// with a BYE (RFC 3261 §13.2.2.4), in the dialog the call had.
    pub(super) fn end_orphan_2xx(
        &mut self,
        now: Instant,
        mut dialog: Dialog,
        peer: Peer,
        invite: &Request,
        ok: &Response,
    ) {
        dialog.on_refresh_response(ok);
        let via = self.new_via(&peer);
        let ack = ack_for_2xx(&mut dialog, invite, &via);
        self.endpoint.send_stateless(peer, ack.to_bytes());
        let auth = self.dial_auth(&dialog.id);
        self.send_bye(now, &mut dialog, peer, None, auth);
    }
}
