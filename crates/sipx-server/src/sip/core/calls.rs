//! Calls the core answers: INVITE dialogs (RFC 3261 §12–15) with SDP offer/answer (RFC 3264)
//! and a media leg each. Where a call goes (`inbound.rs`): an echo test
//! (`media.echo_extension`: what the caller sends, audio and DTMF, comes back;
//! `media.opus_echo_extension`: the same through an Opus encode and decode), a room, or a
//! room behind a PIN (`pin_gate.rs`: prompts until the right digits).
//!
//! A call here is a UAS dialog: INVITE → 200 (answer, or our offer when the INVITE had none)
//! → ACK (with the answer to a late offer) → re-INVITEs (hold, resume, new codec) and INFO
//! (DTMF) → BYE from either side, or a media timeout.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sipx_media::dtmf::DtmfDigit;
use sipx_media::leg::LegEvent;
use sipx_rooms::{JoinRequest, ParticipantId, RoomError, RoomKey};
use sipx_sdp::{MediaSession, NegotiatedMedia, SessionDescription};
use sipx_sip::dialog::{Dialog, DialogError, DialogId};
use sipx_sip::msg::{HasHeaders, Method, Request, Response, SdpBody};
use sipx_sip::{ClientTxnId, Peer, ServerTxnId, Transport};

use super::Core;
use super::call_rows::{CallRow, NO_USABLE_ANSWER, NewRow, end_cause};
use super::inbound::{Destination, NewInvite};
use super::info_dtmf::{InfoBody, answer_info};
use super::origin::{Origin, policy_name, srtp_policy};
use super::pin_gate::PinGate;
use crate::media::{Echo, LegId, LegMode, MediaEngine, MediaEvent, PhoneLink, PortPair};

/// One answered INVITE dialog and its media.
pub(crate) struct Call {
    pub(super) dialog: Dialog,
    pub(super) sdp: MediaSession,
    pub(super) leg: LegId,
    /// Which echo test the leg is, when the call is in no room.
    pub(super) echo: Echo,
    /// The sockets, until the leg starts (a late offer starts it at the ACK).
    pub(super) ports: Option<PortPair>,
    /// The INVITE (or re-INVITE) whose 2xx awaits its ACK: only that INVITE's ACK ends the
    /// exchange (RFC 3261 §13.2.2.4). The ACK of an earlier re-INVITE, reordered behind a
    /// later one, is not the later one's, nor its answer.
    pub(super) invite_txn: Option<ServerTxnId>,
    /// The 200 of a call into a room, held back until the room takes the phone.
    pub(super) held: Option<HeldAnswer>,
    /// We offered in a 2xx: its ACK carries the answer.
    pub(super) answer_in_ack: bool,
    /// Where the caller's requests come from; ours go back there (NAT-safe) unless
    /// `followed_target` says otherwise.
    pub(super) peer: Peer,
    /// The remote target our requests go to when no route set says otherwise (RFC 3261
    /// §12.2.1.1, `next_hop.rs`), for a peer that is neither a registered device (its flow is
    /// the way back) nor, dialled out, a trunk's provider (the trunk's outbound proxy), and
    /// whose INVITE's Via named where it came from (no NAT between). Moved only by a target
    /// refresh SIPx took from a source it trusts, as `peer` is; `None`: requests go to `peer`.
    pub(super) followed_target: Option<sipx_sip::msg::Uri>,
    pub(super) started: Instant,
    /// Set for a call that joins a room.
    pub(super) room: Option<RoomSeat>,
    /// How the caller is shown in a room: its display name, else its number.
    pub(super) caller: String,
    /// Set while the call waits behind its room's PIN.
    pub(super) gate: Option<PinGate>,
    /// The row of an inbound call in an application (`GET /v1/calls`).
    pub(super) row: Option<CallRow>,
    /// The trunk or account an inbound call came through (`None`: dialled out).
    pub(super) origin: Option<Origin>,
    /// The RFC 4028 session timer, when the peer asked for one (`session_timers.rs`).
    pub(super) timer: Option<sipx_sip::session_timer::SessionTimer>,
    /// The peer takes UPDATE, as its last `Allow` said: a refresh request without one does
    /// not take SIPx's refreshing away.
    pub(super) peer_update: bool,
    /// The keys heard lately, by path: one press sent two ways is one digit.
    pub(super) keys: super::digit_paths::DigitPaths,
}

/// The answer to a call into a room, sent once the room has taken the phone
/// (`on_room_joined`): a room that refuses it (full) refuses the INVITE, rather than the call
/// being answered (billed, over a carrier) and hung up at once.
pub(crate) struct HeldAnswer {
    ok: Response,
    /// The INVITE's final answer if the room refuses it or the caller cancels; its status is
    /// set then.
    refusal: Response,
}

impl HeldAnswer {
    fn refusal(self, status: u16) -> Response {
        let mut resp = self.refusal;
        resp.status = status;
        resp.reason = sipx_sip::msg::reason_phrase(status).to_owned();
        resp
    }
}

/// A call's place in a room: the audio link, and its participant once the rooms took it.
pub(crate) struct RoomSeat {
    link: Arc<PhoneLink>,
    pub(super) participant: Option<ParticipantId>,
    /// The room and the identity in it, for an inbound call (a dialled-out call's are its
    /// control's).
    pub(super) place: Option<(RoomKey, String)>,
    /// A dialled-out call: its participant is control's (`control.rs`), which joined the room
    /// before the INVITE, so the leg is in the room from the answer on.
    controlled: bool,
}

impl RoomSeat {
    pub(super) fn controlled(link: Arc<PhoneLink>) -> RoomSeat {
        RoomSeat {
            link,
            participant: None,
            place: None,
            controlled: true,
        }
    }
}

impl Call {
    /// Where the call's next in-dialog request goes (`next_hop.rs`).
    pub(super) fn request_peer(&self) -> Peer {
        let target = self.followed_target.as_ref();
        super::next_hop::next_hop(&self.dialog.route_set, target, self.peer)
    }

    /// What the media thread does with the call's audio now.
    fn leg_mode(&self) -> LegMode {
        if let Some(gate) = &self.gate {
            return LegMode::Prompt(gate.playing);
        }
        match &self.room {
            None => self.echo.leg_mode(),
            Some(RoomSeat {
                participant: None,
                controlled: false,
                ..
            }) => LegMode::Silence,
            Some(RoomSeat { link, .. }) => LegMode::Room(link.clone()),
        }
    }
}

/// The calls the core holds, by dialog.
#[derive(Default)]
pub(crate) struct Calls {
    pub(super) by_dialog: HashMap<DialogId, Call>,
    pub(super) by_leg: HashMap<LegId, DialogId>,
    /// Our BYEs in flight: their answers need no handling beyond matching, or one retry
    /// with credentials when challenged (`byes.rs`).
    pub(super) byes: HashMap<ClientTxnId, super::byes::SentBye>,
    /// Calls that ended before the ACK of our 2xx: their BYE waits for it, or for the 2xx's
    /// transaction to time out (RFC 3261 §15).
    pub(super) byes_after_ack: HashMap<DialogId, PendingBye>,
}

/// The BYE of a call that ended before the ACK of its 2xx arrived.
pub(crate) struct PendingBye {
    dialog: Dialog,
    /// Where it goes: the dialog's next hop (`Call::request_peer`).
    peer: Peer,
    reason: String,
    invite_txn: ServerTxnId,
}

impl Calls {
    pub fn len(&self) -> usize {
        self.by_dialog.len()
    }

    pub fn owns_client_txn(&mut self, txn: ClientTxnId) -> bool {
        self.byes.remove(&txn).is_some()
    }

    /// A BYE we sent on `dialog`; `retry` sends it again if challenged.
    pub fn note_bye(
        &mut self,
        txn: ClientTxnId,
        dialog: DialogId,
        retry: Option<super::byes::ByeRetry>,
    ) {
        self.byes
            .insert(txn, super::byes::SentBye { dialog, retry });
    }

    /// A dialled-out call the phone answered.
    pub fn insert_answered(&mut self, call: Call) {
        self.by_leg.insert(call.leg, call.dialog.id.clone());
        self.by_dialog.insert(call.dialog.id.clone(), call);
        metrics::gauge!("sipx_calls").set(self.by_dialog.len() as f64);
    }
}

pub(super) fn log_negotiation(call_id: &str, n: &NegotiatedMedia) {
    tracing::info!(
        call_id,
        codec = n.codec.name,
        payload_type = n.codec.payload_type,
        direction = %n.direction,
        srtp = n.srtp.as_ref().map(|p| p.suite.to_string()),
        remote = %n.remote_rtp,
        "call media negotiated"
    );
}

/// The user of SIPx's Contact in its dialogs. Not `echo`, as it was: an attended transfer's
/// INVITE is sent there, and with its `Replaces` it goes where the replaced call was
/// (`replacing.rs`) whatever this says; without one, it is routed like any other new call.
pub(super) const CONTACT_USER: &str = "sipx";

/// The bodies an INVITE, re-INVITE or UPDATE may carry its SDP in (a 415 lists them).
const SDP_BODIES: &str = "application/sdp, multipart/mixed";

/// The SDP a request offers: `Ok(None)` for none (no body, or only parts that may be
/// ignored), `Err` for a body SIPx cannot read (it gets a 415).
fn offered_sdp(req: &Request) -> Result<Option<&[u8]>, ()> {
    match sipx_sip::msg::sdp_body(&req.headers, &req.body) {
        sipx_sip::msg::SdpBody::Sdp(sdp) => Ok(Some(sdp)),
        sipx_sip::msg::SdpBody::Absent => Ok(None),
        sipx_sip::msg::SdpBody::Unusable => Err(()),
    }
}

/// The SDP of a body: all of it when it is `application/sdp`, or that part of a
/// `multipart/mixed` one whose other parts may be ignored (a SIP-I gateway's ISUP).
pub(super) fn sdp_of<'a>(headers: &sipx_sip::msg::Headers, body: &'a [u8]) -> Option<&'a [u8]> {
    match sipx_sip::msg::sdp_body(headers, body) {
        sipx_sip::msg::SdpBody::Sdp(sdp) => Some(sdp),
        _ => None,
    }
}

impl Core {
    /// A new INVITE (no To tag) that passed the source policy.
    pub(super) fn on_new_invite(
        &mut self,
        now: Instant,
        txn: ServerTxnId,
        req: Request,
        peer: Peer,
        trunk_by_digest: Option<usize>,
    ) {
        let tag = self.endpoint.new_tag();
        let origin = self
            .origins
            .origin(peer.addr, trunk_by_digest, &self.registered);
        let invite = NewInvite {
            txn,
            req,
            peer,
            tag,
            origin,
        };
        if invite.req.headers.get("Replaces").is_some() {
            return self.on_replacing_invite(now, invite);
        }
        let routed = self.route_invite(&invite.req, &invite.origin);
        self.go_on(now, invite, routed);
    }

    /// Answers a routed INVITE: SDP answer (or our offer), media leg, dialog; into a room (at
    /// once, or behind its PIN) or an echo test.
    pub(super) fn admit_invite(
        &mut self,
        now: Instant,
        invite: NewInvite,
        destination: Destination,
        row: Option<NewRow>,
    ) -> bool {
        let NewInvite {
            txn,
            req,
            peer,
            tag,
            origin,
        } = invite;
        let Some(engine) = self.media.clone() else {
            let resp = req
                .response(480, Some(&tag))
                .with_reason("No route for this call");
            self.refuse_invite(now, txn, resp, row);
            return false;
        };
        let Ok(offered) = offered_sdp(&req) else {
            let resp = req
                .response(415, Some(&tag))
                .with_header("Accept", SDP_BODIES);
            self.refuse_invite(now, txn, resp, row);
            return false;
        };
        let peer_update = super::session_timers::allows_update(&req.headers).unwrap_or(false);
        let session_timer = match self.session_timer_of(&req, &tag) {
            Ok(timer) => timer,
            Err(resp) => {
                self.refuse_invite(now, txn, resp, row);
                return false;
            }
        };
        let offer = match offered {
            None => None,
            Some(sdp) => match SessionDescription::parse(sdp) {
                Ok(sdp) => Some(sdp),
                Err(e) => {
                    let resp = req.response(488, Some(&tag)).with_header(
                        "Warning",
                        format!("399 {} \"Bad SDP: {e}\"", self.warn_agent()),
                    );
                    self.refuse_invite(now, txn, resp, row);
                    return false;
                }
            },
        };
        // A dual-stack SIPx answers from an address of the family of the offer's media, or of
        // the caller's when it offers nothing (late offer).
        let family = offer
            .as_ref()
            .and_then(SessionDescription::audio_address)
            .unwrap_or(peer.addr.ip());
        let (ports, media_ip) = match engine.allocate_for(Some(family)) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "no RTP port for a call");
                let resp = req
                    .response(503, Some(&tag))
                    .with_reason("No media port available")
                    .with_header("Retry-After", "5");
                self.refuse_invite(now, txn, resp, row);
                return false;
            }
        };
        let srtp = srtp_policy(None, self.origins.srtp(&origin), self.settings.media.srtp);
        let codecs = self.origins.codecs(&origin);
        let Some(mut sdp) = self.new_media_session(media_ip, ports.rtp_port(), srtp, codecs) else {
            self.refuse_invite(now, txn, req.response(500, Some(&tag)), row);
            return false;
        };
        let body = match &offer {
            Some(offer) => match sdp.handle_offer(offer) {
                Ok(answer) => answer.to_bytes(),
                Err(rejection) => {
                    tracing::info!(
                        call_id = req.call_id().unwrap_or(""),
                        %rejection,
                        %origin,
                        srtp = policy_name(srtp),
                        "call refused: media"
                    );
                    let resp = req
                        .response(rejection.status(), Some(&tag))
                        .with_header("Warning", rejection.warning(&self.warn_agent()));
                    self.refuse_invite(now, txn, resp, row);
                    return false;
                }
            },
            None => match sdp.create_offer() {
                Ok(o) => o.to_bytes(),
                Err(_) => {
                    self.refuse_invite(now, txn, req.response(500, Some(&tag)), row);
                    return false;
                }
            },
        };
        let dialog = match Dialog::from_uas(&req, &tag, false) {
            Ok(dialog) => dialog,
            Err(why) => {
                let resp = req.response(400, Some(&tag)).with_reason(why);
                self.refuse_invite(now, txn, resp, row);
                return false;
            }
        };
        let call_id = dialog.id.call_id.clone();
        // A room's phones share a media thread, where their room is mixed once for all.
        let leg = match destination.room() {
            Some(room) => engine.new_leg_id_near(room),
            None => engine.new_leg_id(),
        };
        // Shown in the room: the caller's display name, else its number; as its trunk
        // asserts it, "Anonymous" when withheld (`sipx_sip::identity`).
        let trusted = matches!(origin, Origin::Trunk(_));
        let caller = sipx_sip::identity::shown_name(&req, trusted, |n| {
            self.origins.inbound_number(&origin, n).into_owned()
        });
        let identity = format!("{}{}", sipx_rooms::PHONE_IDENTITY_PREFIX, leg.0);
        let row = row.map(|r| {
            let room = destination
                .room()
                .map(|k| (k.name.as_str(), identity.as_str()));
            CallRow::start(r, room, self.rows.clone())
        });
        let followed_target = (!matches!(origin, Origin::Account(_))
            && super::next_hop::via_names_source(req.top_via().as_ref(), peer.addr))
        .then(|| dialog.remote_target.clone());
        let mut call = Call {
            dialog,
            sdp,
            leg,
            echo: match destination {
                Destination::Echo(echo) => echo,
                _ => Echo::Plain,
            },
            ports: Some(ports),
            invite_txn: Some(txn),
            held: None,
            answer_in_ack: offer.is_none(),
            peer,
            followed_target,
            started: now,
            room: None,
            gate: None,
            row,
            caller: caller.unwrap_or_else(|| "phone".to_owned()),
            origin: Some(origin.clone()),
            timer: None,
            peer_update,
            keys: Default::default(),
        };
        match &destination {
            Destination::Echo(_) => {}
            // Routing gives rooms only when the rooms run.
            Destination::Room(room) => self.seat(&mut call, room.clone()),
            Destination::PinRoom(room, pin) => {
                call.gate = Some(PinGate::new(now, pin.clone(), room.clone()));
            }
        }
        let mut resp = self.answer_ok(&req, &tag, &peer, body);
        for (name, value) in session_timer.answer_headers() {
            resp.headers.push(name, value);
        }
        // RFC 3261 §12.1.1: the answer that creates the dialog carries the request's
        // Record-Route, so the caller's ACK and BYE take the proxies that asked to stay in
        // the path (our own requests already do: the dialog's route set).
        for rr in req.headers.get_all("Record-Route") {
            resp.headers.push("Record-Route", rr);
        }
        // Seated (a room, no PIN to ask first): answered once the room takes the phone.
        if call.room.is_some() {
            call.held = Some(HeldAnswer {
                ok: resp,
                refusal: req.response(480, Some(&tag)),
            });
        } else {
            self.respond(now, txn, resp);
            if let Some(row) = &mut call.row {
                row.push("CONNECTING", 200, "OK", None);
            }
        }
        if let Some(negotiated) = call.sdp.negotiated().cloned()
            && let Some(ports) = call.ports.take()
        {
            log_negotiation(&call_id, &negotiated);
            if let Some(row) = &mut call.row {
                row.set_codec(negotiated.codec.name);
            }
            self.start_leg(&engine, leg, ports, &negotiated, &call_id, call.leg_mode());
        }
        // Both: a routing rule's `caller` is the asserted one, which From may not show.
        let from = req.from().map(|f| f.uri.to_string()).unwrap_or_default();
        let asserted = sipx_sip::identity::caller(&req, trusted)
            .map(|f| f.uri.to_string())
            .filter(|a| *a != from);
        let (what, room) = match &destination {
            Destination::Echo(_) => ("call answered by the echo test", None),
            Destination::Room(room) => ("call answered into a room", Some(room)),
            Destination::PinRoom(room, _) => ("call answered for a room's PIN", Some(room)),
        };
        tracing::info!(
            call_id = %call_id,
            call = call.row.as_ref().map(|r| r.id.as_str()),
            from,
            asserted,
            to = %req.uri,
            late_offer = call.answer_in_ack,
            %origin,
            srtp = policy_name(srtp),
            room = room.map(|r| r.to_string()),
            // Only on the Opus echo test's answers.
            opus = matches!(destination, Destination::Echo(Echo::Opus)).then_some(true),
            "{what}"
        );
        let id = call.dialog.id.clone();
        let gated = call.gate.is_some();
        self.calls.by_leg.insert(leg, id.clone());
        self.calls.by_dialog.insert(id.clone(), call);
        metrics::gauge!("sipx_calls").set(self.calls.len() as f64);
        self.apply_session_timer(now, &id, session_timer);
        if gated {
            self.open_gate(now, &id);
        }
        true
    }

    /// Gives `call` its seat in `room` and asks the rooms to take it; the leg waits in
    /// silence until they answer (`on_room_joined`).
    fn seat(&self, call: &mut Call, room: RoomKey) {
        let Some(rooms) = self.rooms.clone() else {
            return;
        };
        let link = PhoneLink::new(rooms.notifier());
        let leg = call.leg;
        let identity = format!("{}{}", sipx_rooms::PHONE_IDENTITY_PREFIX, leg.0);
        call.room = Some(RoomSeat {
            link: link.clone(),
            participant: None,
            place: Some((room.clone(), identity.clone())),
            controlled: false,
        });
        let join = JoinRequest {
            room,
            identity,
            name: call.caller.clone(),
            can_publish: true,
            can_subscribe: true,
            // The API's id of the call when it has one (its row), as for dialled-out calls.
            call_id: Some(match &call.row {
                Some(row) => row.id.clone(),
                None => call.dialog.id.call_id.clone(),
            }),
            wall: crate::unix_now(),
        };
        let inputs = self.inputs.clone();
        tokio::spawn(async move {
            let result = rooms.join_phone(join, link).await;
            let _ = inputs
                .send(super::CoreInput::RoomJoined { leg, result })
                .await;
        });
    }

    /// An answered call (its PIN typed) joins `room`.
    pub(super) fn join_room_of(&mut self, id: &DialogId, room: RoomKey) {
        let Some(mut call) = self.calls.by_dialog.remove(id) else {
            return;
        };
        if self.rooms.is_some() {
            self.seat(&mut call, room);
        }
        if let Some(engine) = &self.media {
            engine.set_mode(call.leg, call.leg_mode());
        }
        self.calls.by_dialog.insert(id.clone(), call);
    }

    /// The rooms answered a phone's join.
    pub(super) fn on_room_joined(
        &mut self,
        now: Instant,
        leg: LegId,
        result: Result<ParticipantId, RoomError>,
    ) {
        if self.on_controlled_join(now, leg, &result) {
            return;
        }
        let id = self.calls.by_leg.get(&leg).cloned();
        let call = id.as_ref().and_then(|id| self.calls.by_dialog.get_mut(id));
        let mut answer = None;
        match (call, result) {
            (Some(call), Ok(participant)) => {
                if let Some(seat) = &mut call.room {
                    seat.participant = Some(participant);
                }
                let mode = call.leg_mode();
                if let Some(engine) = &self.media {
                    engine.set_mode(leg, mode);
                }
                if let Some(rooms) = &self.rooms {
                    rooms.set_call_state(participant, "CONFIRMED");
                }
                // In the room: the caller gets its 200 now.
                if let (Some(held), Some(txn)) = (call.held.take(), call.invite_txn) {
                    if let Some(row) = &mut call.row {
                        row.push("CONNECTING", 200, "OK", None);
                    }
                    answer = Some((txn, held.ok));
                }
            }
            // The caller hung up while joining.
            (None, Ok(participant)) => {
                if let Some(rooms) = &self.rooms {
                    rooms.phone_hung_up(participant);
                }
            }
            (Some(call), Err(e)) => {
                tracing::info!(error = %e, "the room refused the call");
                let unanswered = call.held.is_some();
                if let Some(id) = id {
                    if unanswered {
                        let status = match e {
                            RoomError::Full => 486,
                            RoomError::NotFound => 404,
                            _ => 480,
                        };
                        self.refuse_held(now, &id, status, "room_failed");
                    } else {
                        self.end_call(now, &id, "Room unavailable", true);
                    }
                }
            }
            (None, Err(_)) => {}
        }
        if let Some((txn, ok)) = answer {
            self.respond(now, txn, ok);
        }
    }

    /// A call whose 200 was held back ends before it: the room refused the phone, or the
    /// caller cancelled. The INVITE gets `status` instead; `cause` goes into the row.
    pub(super) fn refuse_held(&mut self, now: Instant, id: &DialogId, status: u16, cause: &str) {
        let Some(mut call) = self.release_call(now, id) else {
            return;
        };
        let (Some(held), Some(txn)) = (call.held.take(), call.invite_txn) else {
            return;
        };
        let resp = held.refusal(status);
        if let Some(row) = &mut call.row {
            row.end(status, &resp.reason, cause);
        }
        tracing::info!(call_id = %id.call_id, status, cause, "call refused before its answer");
        self.respond(now, txn, resp);
    }

    /// The unanswered call whose INVITE is `txn`, if its 200 is held back.
    pub(super) fn held_call_of(&self, txn: ServerTxnId) -> Option<DialogId> {
        self.calls
            .by_dialog
            .iter()
            .find(|(_, c)| c.held.is_some() && c.invite_txn == Some(txn))
            .map(|(id, _)| id.clone())
    }

    /// The SDP side of a new media leg, whose SDP carries `ip` and `port`; `codecs` are its
    /// trunk's or account's own, else the server's.
    pub(super) fn new_media_session(
        &self,
        ip: std::net::IpAddr,
        port: u16,
        srtp: sipx_sdp::SrtpPolicy,
        codecs: Option<&[sipx_sdp::LocalCodec]>,
    ) -> Option<MediaSession> {
        let mut session_id = [0u8; 8];
        sipx_secrets::generate::fill(&mut session_id);
        let mut config = sipx_sdp::MediaConfig::new(ip, port, u64::from_le_bytes(session_id) >> 1);
        config.codecs = codecs.map_or_else(|| self.settings.media.codecs.clone(), <[_]>::to_vec);
        config.srtp = srtp;
        config.srtp_suites = self.settings.media.srtp_suites.clone();
        config.ptime = self.settings.media.ptime_ms;
        let mut keys = [0u8; sipx_sdp::KEY_MATERIAL_LEN];
        sipx_secrets::generate::fill(&mut keys);
        MediaSession::new(config, &keys).ok()
    }

    /// A 200 for an INVITE with our tag, Contact and SDP.
    fn answer_ok(&self, req: &Request, tag: &str, peer: &Peer, sdp: Vec<u8>) -> Response {
        let mut contact = self.contact_for(peer, CONTACT_USER);
        // A dialog a SIPS URI opened keeps to TLS: our Contact is SIPS too (RFC 3261 §12.1.1),
        // over the TLS transports that can carry it.
        if asks_sips(req) && matches!(peer.transport, Transport::Tls | Transport::Wss) {
            contact = contact.replacen("<sip:", "<sips:", 1);
        }
        req.response(200, Some(tag))
            .with_header("Contact", contact)
            .with_header("Allow", self.uas.allow_header())
            // What SIPx takes part in, `timer` included (`session_timers.rs`).
            .with_header("Supported", self.uas.supported.join(", "))
            .with_body("application/sdp", sdp)
    }

    /// `<sip:user@host:port;transport=…>` where the peer can reach us.
    pub(super) fn contact_for(&self, peer: &Peer, user: &str) -> String {
        let host = self
            .local_host_for(peer.addr, peer.transport)
            .unwrap_or_else(|| "invalid".to_owned());
        let transport = match peer.transport {
            Transport::Udp => String::new(),
            t => format!(";transport={}", t.via_name().to_ascii_lowercase()),
        };
        format!("<sip:{user}@{host}{transport}>")
    }

    /// The host in our Warning headers.
    pub(super) fn warn_agent(&self) -> String {
        self.settings
            .external_host
            .clone()
            .unwrap_or_else(|| "sipx".to_owned())
    }

    pub(super) fn start_leg(
        &self,
        engine: &MediaEngine,
        leg: LegId,
        ports: PortPair,
        negotiated: &NegotiatedMedia,
        call_id: &str,
        mode: LegMode,
    ) {
        match crate::media::leg_config(negotiated, &self.settings.media) {
            Some(cfg) => engine.add_leg(leg, ports, cfg, mode),
            None => {
                tracing::warn!(
                    call_id,
                    codec = negotiated.codec.name,
                    "codec not available in this build"
                )
            }
        }
    }

    /// A request with a To tag: it belongs to a call's dialog, or gets 481.
    pub(super) fn on_in_dialog(
        &mut self,
        now: Instant,
        txn: ServerTxnId,
        req: Request,
        source: Peer,
    ) {
        let call = DialogId::of_request(&req)
            .and_then(|id| Some((self.calls.by_dialog.get_mut(&id)?, id)));
        let Some((call, id)) = call else {
            return self.on_unconfirmed_dialog(now, txn, req, source);
        };
        let tag = id.local_tag.clone();
        if let Err(DialogError::OutOfOrder) = call.dialog.on_request(&req) {
            let resp = req
                .response(500, Some(&tag))
                .with_reason("CSeq out of order");
            self.respond(now, txn, resp);
            return;
        }
        match req.method {
            // A BYE on the early dialog of a call whose 200 waits for its room: it ends as if
            // cancelled (RFC 3261 §15.1.2), its INVITE answered 487.
            Method::Bye if call.held.is_some() => {
                self.respond(now, txn, req.response(200, Some(&tag)));
                self.refuse_held(now, &id, 487, "remote_cancel");
            }
            Method::Bye => {
                self.respond(now, txn, req.response(200, Some(&tag)));
                match self.control_of_dialog(&id) {
                    Some(call) => {
                        self.feed(now, &call, sipx_call::Input::Sip(sipx_call::SipInput::Bye))
                    }
                    None => {
                        // The phone an attended transfer replaced hangs up on us itself.
                        let replaced = self
                            .calls
                            .by_dialog
                            .get(&id)
                            .and_then(|c| c.row.as_ref())
                            .is_some_and(|r| {
                                self.transfers.is_replaced(&r.id)
                                    || self.phone_transfers.is_referring(&r.id)
                            });
                        let reason = match replaced {
                            true => super::transfer::TRANSFERRED,
                            false => "caller hung up",
                        };
                        self.end_call(now, &id, reason, false)
                    }
                }
            }
            Method::Invite | Method::Update => self.on_reoffer(now, txn, req, &id, source),
            Method::Info => {
                let (resp, body) = answer_info(&req, &tag);
                self.respond(now, txn, resp);
                if let InfoBody::Digit(digit, duration) = body {
                    self.on_digit(now, &id, digit, duration, "info");
                }
            }
            Method::Options => {
                let resp = self.options_answer(&req, &tag);
                self.respond(now, txn, resp);
            }
            Method::Notify if self.call_id_of_dialog(&id).is_some() => {
                let call = self.call_id_of_dialog(&id).unwrap_or_default();
                let status = self.on_transfer_notify(now, &call, &req);
                self.respond(now, txn, req.response(status, Some(&tag)));
            }
            // No subscription of ours it could be for (RFC 6665 §4.1.3); no reliable
            // provisional response it could acknowledge (RFC 3262 §3: SIPx sends none).
            Method::Notify | Method::Prack => {
                self.respond(now, txn, req.response(481, Some(&tag)));
            }
            Method::Refer if self.settings.accept_refer != crate::config::ReferPolicy::Off => {
                self.on_phone_refer(now, txn, req, &id)
            }
            _ => {
                let resp = req
                    .response(405, Some(&tag))
                    .with_header("Allow", self.uas.allow_header());
                self.respond(now, txn, resp);
            }
        }
    }

    /// A re-INVITE or UPDATE: a new offer (hold, resume, codec change), or none (we offer).
    fn on_reoffer(
        &mut self,
        now: Instant,
        txn: ServerTxnId,
        req: Request,
        id: &DialogId,
        source: Peer,
    ) {
        let agent = self.warn_agent();
        let tag = id.local_tag.clone();
        self.note_peer_allow(id, &req.headers);
        let session_timer = match self.session_timer_of(&req, &tag) {
            Ok(timer) => timer,
            Err(resp) => return self.respond(now, txn, resp),
        };
        let Some(call) = self.calls.by_dialog.get_mut(id) else {
            return;
        };
        let peer = call.peer;
        let result = match offered_sdp(&req) {
            // A body SIPx cannot read (a part it must process beside the SDP).
            Err(()) => Err((415, String::new())),
            Ok(Some(sdp)) => match SessionDescription::parse(sdp) {
                Ok(offer) => call
                    .sdp
                    .handle_offer(&offer)
                    .map(|a| (a.to_bytes(), false))
                    .map_err(|r| (r.status(), r.warning(&agent))),
                Err(e) => Err((488, format!("399 {agent} \"Bad SDP: {e}\""))),
            },
            // Our own re-INVITE's offer is outstanding (RFC 3261 §14.2).
            Ok(None) if req.method == Method::Invite && call.sdp.offer_pending() => {
                Err((491, String::new()))
            }
            Ok(None) if req.method == Method::Invite => call
                .sdp
                .create_offer()
                .map(|o| (o.to_bytes(), true))
                .map_err(|_| (500, String::new())),
            // An UPDATE without SDP refreshes the session only.
            Ok(None) => Ok((Vec::new(), false)),
        };
        match result {
            Ok((body, offered)) => {
                let mut resp = if body.is_empty() {
                    req.response(200, Some(&tag))
                        .with_header("Contact", self.contact_for(&peer, CONTACT_USER))
                } else {
                    self.answer_ok(&req, &tag, &peer, body)
                };
                if req.method != Method::Invite {
                    resp.headers.0.retain(|h| h.name != "Allow");
                }
                for (name, value) in session_timer.answer_headers() {
                    resp.headers.push(name, value);
                }
                if req.method == Method::Invite
                    && let Some(call) = self.calls.by_dialog.get_mut(id)
                {
                    call.invite_txn = Some(txn);
                    call.answer_in_ack = offered;
                }
                self.respond(now, txn, resp);
                self.follow_target_refresh(id, &req, source);
                self.apply_negotiation(id);
                // Any 2xx to a re-INVITE or UPDATE refreshes the session (RFC 4028 §9).
                self.apply_session_timer(now, id, session_timer);
            }
            Err((status, warning)) => {
                let mut resp = req.response(status, Some(&tag));
                if status == 415 {
                    resp.headers.push("Accept", SDP_BODIES);
                }
                if !warning.is_empty() {
                    resp.headers.push("Warning", warning);
                }
                self.respond(now, txn, resp);
            }
        }
    }

    /// A target refresh that succeeded, sent from elsewhere (a phone that moved network or
    /// reconnected): our requests follow it, as they follow its new Contact (RFC 3261
    /// §12.2.1.1). Only to a source SIPx takes requests from anyway (the same address, a
    /// trunk's network, a registered device, a trusted proxy): one accepted packet must not
    /// send a call's BYE to anyone else.
    fn follow_target_refresh(&mut self, id: &DialogId, req: &Request, source: Peer) {
        if req.headers.get("Contact").is_none() {
            return;
        }
        let Some(old) = self.calls.by_dialog.get(id).map(|c| c.peer) else {
            return;
        };
        let trusted = source.addr.ip() == old.addr.ip() || self.is_known_source(source.addr.ip());
        if let (true, Some(call)) = (trusted, self.calls.by_dialog.get_mut(id)) {
            call.peer = source;
            if call.followed_target.is_some() {
                call.followed_target = Some(call.dialog.remote_target.clone());
            }
        }
    }

    /// Hands the current negotiation to the call's media leg (started or updated).
    pub(super) fn apply_negotiation(&mut self, id: &DialogId) {
        let Some(engine) = self.media.clone() else {
            return;
        };
        let Some(call) = self.calls.by_dialog.get_mut(id) else {
            return;
        };
        let Some(negotiated) = call.sdp.negotiated().cloned() else {
            return;
        };
        let (leg, ports) = (call.leg, call.ports.take());
        log_negotiation(&id.call_id, &negotiated);
        match ports {
            Some(ports) => {
                let mode = call.leg_mode();
                self.start_leg(&engine, leg, ports, &negotiated, &id.call_id, mode)
            }
            None => {
                if let Some(cfg) = crate::media::leg_config(&negotiated, &self.settings.media) {
                    engine.update_leg(leg, cfg);
                }
                // A re-offer may change the codec: the call's record names the one in use.
                let codec = negotiated.codec.name;
                if let Some(row) = &mut call.row {
                    row.update_codec(codec);
                }
                self.set_dial_out_codec(leg, codec);
            }
        }
    }

    /// The ACK of our 2xx: the end of the INVITE exchange, with the answer to a late offer.
    pub(super) fn on_ack(&mut self, now: Instant, req: Request, acked: Option<ServerTxnId>) {
        let Some(id) = DialogId::of_request(&req) else {
            return;
        };
        if self.send_pending_bye(now, &id) {
            return;
        }
        let Some(call) = self.calls.by_dialog.get_mut(&id) else {
            return;
        };
        if call
            .invite_txn
            .is_some_and(|awaited| acked != Some(awaited))
        {
            tracing::debug!(call_id = %id.call_id, "an ACK of an earlier INVITE, reordered: the one awaited is still to come");
            return;
        }
        call.invite_txn = None;
        if let Some(row) = call.row.as_mut().filter(|r| r.state() == "CONNECTING") {
            row.push("CONFIRMED", 200, "OK", None);
        }
        if !call.answer_in_ack {
            return;
        }
        call.answer_in_ack = false;
        let answer = match sipx_sip::msg::sdp_body(&req.headers, &req.body) {
            SdpBody::Sdp(sdp) => SessionDescription::parse(sdp).map_err(|e| e.to_string()),
            // An answer SIPx cannot read is still an answer: the peer goes by it.
            SdpBody::Unusable => Err("a body without a usable SDP answer".to_owned()),
            SdpBody::Absent if call.sdp.negotiated().is_some() => {
                // A peer that re-INVITEd without SDP and acknowledged our offer without an
                // answer agreed to nothing new: the session stays as it was.
                call.sdp.rollback_offer();
                tracing::warn!(call_id = %id.call_id, "the ACK to our offer in a re-INVITE's 200 has no answer; the session stays as it was");
                return;
            }
            SdpBody::Absent => Err("no SDP".to_owned()),
        };
        let refused = match answer {
            Ok(a) => call.sdp.handle_answer(&a).err().map(|e| e.to_string()),
            Err(why) => {
                call.sdp.rollback_offer();
                Some(why)
            }
        };
        match refused {
            None => self.apply_negotiation(&id),
            Some(why) => {
                // RFC 3261 §13.3.1.4: a 2xx offer whose ACK brings no usable answer ends the
                // call. Mid-call as well: the peer now sends what its answer says (another
                // suite, another key), which the session SIPx keeps cannot play (RFC 6337
                // §3.1.3).
                tracing::warn!(call_id = %id.call_id, error = %why, "the answer in the ACK to our offer cannot be used; the call ends");
                self.end_call(now, &id, NO_USABLE_ANSWER, true);
            }
        }
    }

    /// No ACK for our 2xx within 64*T1 (RFC 3261 §13.3.1.4): the call is over.
    pub(super) fn on_ack_timeout(&mut self, now: Instant, txn: ServerTxnId) {
        let waiting = self
            .calls
            .byes_after_ack
            .iter()
            .find(|(_, p)| p.invite_txn == txn)
            .map(|(id, _)| id.clone());
        if let Some(id) = waiting {
            self.send_pending_bye(now, &id);
            return;
        }
        let id = self
            .calls
            .by_dialog
            .iter()
            .find(|(_, c)| c.invite_txn == Some(txn))
            .map(|(id, _)| id.clone());
        if let Some(id) = id {
            // The wait for the ACK is over: the BYE goes at once.
            if let Some(call) = self.calls.by_dialog.get_mut(&id) {
                call.invite_txn = None;
            }
            self.end_call(now, &id, "no ACK for the 200", true);
        }
    }

    pub(super) fn on_media_event(&mut self, now: Instant, event: MediaEvent) {
        match &event {
            MediaEvent::Ended { leg, stats } => return self.on_leg_ended(*leg, stats),
            MediaEvent::Stats { leg, stats } => return self.on_leg_stats(*leg, stats),
            _ => {}
        }
        if let Some(call) = self.controls.by_leg.get(&event.leg()).cloned() {
            return self.on_controlled_media(now, &call, event);
        }
        let Some(id) = self.calls.by_leg.get(&event.leg()).cloned() else {
            return;
        };
        match event {
            MediaEvent::Leg { event, .. } => match event {
                LegEvent::Dtmf(_) | LegEvent::DtmfInBand(_) => {
                    if let Some((d, via)) = event.key() {
                        self.on_digit(now, &id, d.digit, d.duration_ms, via)
                    }
                }
                LegEvent::MediaTimeout { elsewhere } => {
                    crate::media::leg_notices::timeout_elsewhere(&id.call_id, elsewhere);
                    // A caller that never acknowledged our 200 sent no media either: the call
                    // ends for the missing ACK (RFC 3261 §13.3.1.4), as it would 2 s later.
                    let unacknowledged = self
                        .calls
                        .by_dialog
                        .get(&id)
                        .is_some_and(|c| c.invite_txn.is_some() && c.held.is_none());
                    let reason = match unacknowledged {
                        true => "no ACK for the 200",
                        false => "media timeout",
                    };
                    self.end_call(now, &id, reason, true)
                }
                other => {
                    crate::media::leg_notices::log(&id.call_id, &other);
                }
            },
            MediaEvent::Failed { reason, .. } => self.end_call(now, &id, &reason, true),
            MediaEvent::Stats { .. } | MediaEvent::Ended { .. } => {}
        }
    }

    /// Whether a key a call heard `via` one path is a new press, not one already heard
    /// another way (`digit_paths.rs`).
    pub(super) fn is_new_press(
        &mut self,
        now: Instant,
        id: &DialogId,
        digit: DtmfDigit,
        via: &'static str,
    ) -> bool {
        let call = self.calls.by_dialog.get_mut(id);
        call.is_none_or(|call| call.keys.admit(now, digit, via))
    }

    fn on_digit(
        &mut self,
        now: Instant,
        id: &DialogId,
        digit: DtmfDigit,
        duration_ms: u32,
        via: &'static str,
    ) {
        if !self.is_new_press(now, id, digit, via) {
            tracing::debug!(call_id = %id.call_id, via, "DTMF key already heard another way");
            return;
        }
        // A gated call's digits are its PIN: never logged.
        let gated = self
            .calls
            .by_dialog
            .get(id)
            .is_some_and(|c| c.gate.is_some());
        if gated {
            tracing::info!(call_id = %id.call_id, duration_ms, via, "DTMF digit (PIN entry)");
        } else {
            tracing::info!(call_id = %id.call_id, digit = %digit.as_char(), duration_ms, via, "DTMF digit");
        }
        metrics::counter!("sipx_dtmf_digits_total", "via" => via).increment(1);
        if let Some(call) = self.control_of_dialog(id) {
            if let Some(digit) = sipx_call::Digit::heard(digit.as_char()) {
                let input = sipx_call::Input::Media(sipx_call::MediaInput::Dtmf { digit });
                self.feed(now, &call, input);
            }
            return;
        }
        if self.gate_digit(now, id, digit.as_char()) {
            return;
        }
        // An inbound call of an application: a `call.dtmf` event, as for a dialled-out one.
        if let Some(row) = self.calls.by_dialog.get(id).and_then(|c| c.row.as_ref()) {
            row.publish_dtmf(digit.as_char());
        }
        // The echo test sends every digit back as an RFC 4733 event (or tones), however it
        // came; tones it heard come back in the echoed audio already.
        if let (Some(engine), Some(call), false) = (
            &self.media,
            self.calls.by_dialog.get(id).filter(|c| c.room.is_none()),
            via == "inband",
        ) {
            engine.send_dtmf(
                call.leg,
                digit,
                Duration::from_millis(u64::from(duration_ms.clamp(100, 1000))),
            );
        }
    }

    /// Takes an ending call out of the core: its maps, PIN gate, queued keys and media leg,
    /// whose last statistics go into the call's row when they come.
    fn release_call(&mut self, now: Instant, id: &DialogId) -> Option<Call> {
        let call = self.calls.by_dialog.remove(id)?;
        self.calls.by_leg.remove(&call.leg);
        self.close_gate(call.leg, call.gate.as_ref());
        self.forget_session_timer(id, super::session_timers::EndingCall::of(&call));
        self.inbound_gone(now, id, call.row.as_ref().map(|r| r.id.as_str()));
        if let Some(row) = &call.row {
            self.controls.leg_ended(now, call.leg, &row.id);
        }
        if let Some(engine) = &self.media {
            engine.remove_leg(call.leg);
        }
        metrics::gauge!("sipx_calls").set(self.calls.len() as f64);
        Some(call)
    }

    /// The rooms removed a phone participant (API, room closed, replaced): hang its call up.
    pub(super) fn on_room_notice(&mut self, now: Instant, notice: crate::rooms::PhoneNotice) {
        let crate::rooms::PhoneNotice::Removed { call_id, reason } = notice;
        // The ending's reason, and the why a dialled-out call's machine writes after
        // "Removed from room: " (not that phrase again).
        let (reason, why) = match reason {
            "room_closed" => ("Room closed", "Room closed"),
            "replaced" => ("Replaced in the room", "Replaced in the room"),
            "failed" => ("Room failure", "Room failure"),
            _ => ("Removed from the room", "removed by the application"),
        };
        self.referrer_left_room(&call_id);
        if self.controls.by_id.contains_key(&call_id) {
            let input = sipx_call::Input::Room(sipx_call::RoomInput::Removed {
                why: why.to_owned(),
            });
            return self.feed(now, &call_id, input);
        }
        // The participant carries the call's API id (its row) when it has one, else the SIP
        // Call-ID (a call without an application, as the echo test's).
        let id = self.inbound_dialog_any(&call_id).or_else(|| {
            self.calls
                .by_dialog
                .keys()
                .find(|d| d.call_id == call_id)
                .cloned()
        });
        if let Some(id) = id {
            self.end_call(now, &id, reason, true);
        }
    }

    /// Sends a BYE on an answered call's dialog (a controlled call's machine asks for it),
    /// whose `Reason` (RFC 3326) is `cause` and `text`, as the call's end states them.
    pub(super) fn send_bye_saying(&mut self, now: Instant, id: &DialogId, cause: u16, text: &str) {
        if let Some(mut call) = self.calls.by_dialog.remove(id) {
            let hop = call.request_peer();
            self.send_bye_in(now, &mut call.dialog, hop, cause, text);
            self.calls.by_dialog.insert(id.clone(), call);
        }
    }

    fn send_bye_on(&mut self, now: Instant, call: &mut Call, reason: &str) {
        let hop = call.request_peer();
        self.send_bye_ending(now, &mut call.dialog, hop, reason);
    }

    /// A BYE for an ending SIPx names by `reason`: its `Reason` carries the status the ending
    /// stands for (RFC 3326; a bad answer in the ACK: 488).
    /// `peer`: where the BYE goes, the dialog's next hop (`Call::request_peer`).
    fn send_bye_ending(&mut self, now: Instant, dialog: &mut Dialog, peer: Peer, reason: &str) {
        let (cause, _) = end_cause(reason, false);
        self.send_bye_in(now, dialog, peer, cause, reason);
    }

    fn send_bye_in(
        &mut self,
        now: Instant,
        dialog: &mut Dialog,
        peer: Peer,
        cause: u16,
        reason: &str,
    ) {
        // A quoted string holds no `"` or `\` unescaped (RFC 3261 §25.1).
        let text = printable(reason).replace(['"', '\\'], "'");
        let reason = format!("SIP;cause={cause};text=\"{text}\"");
        let auth = self.dial_auth(&dialog.id);
        self.send_bye(now, dialog, peer, Some(reason), auth);
    }

    /// The BYE of a call that ended while the ACK of its 2xx was outstanding: it goes once
    /// the ACK arrives (or its wait times out). Returns whether `id` had one waiting.
    fn send_pending_bye(&mut self, now: Instant, id: &DialogId) -> bool {
        let Some(mut pending) = self.calls.byes_after_ack.remove(id) else {
            return false;
        };
        let reason = std::mem::take(&mut pending.reason);
        self.send_bye_ending(now, &mut pending.dialog, pending.peer, &reason);
        true
    }

    /// A controlled call is over: its dialog entry goes (control stops the media and room).
    pub(super) fn forget_dialog(&mut self, id: &DialogId) {
        if let Some(call) = self.calls.by_dialog.remove(id) {
            self.calls.by_leg.remove(&call.leg);
            self.forget_session_timer(id, super::session_timers::EndingCall::of(&call));
        }
        metrics::gauge!("sipx_calls").set(self.calls.len() as f64);
    }

    /// Ends a call: its leg stops; with `send_bye` the caller gets a BYE.
    pub(super) fn end_call(&mut self, now: Instant, id: &DialogId, reason: &str, send_bye: bool) {
        if let Some(call) = self.control_of_dialog(id) {
            // The machine decides: an ending from here is a failure of the leg.
            if let Some(c) = self.controls.by_id.get_mut(&call) {
                match reason {
                    super::session_timers::SESSION_EXPIRED
                    | super::session_timers::REFRESH_FAILED => c.fsm.handle_input(
                        now,
                        sipx_call::Input::Sip(sipx_call::SipInput::SessionExpired),
                    ),
                    _ => c.fsm.hangup(now),
                }
            }
            tracing::info!(call = %call, reason, "controlled call ending");
            return self.drive(now, &call);
        }
        let Some(mut call) = self.release_call(now, id) else {
            return;
        };
        // A call whose 200 still waits for its room was never answered: its INVITE gets a
        // final refusal, not a BYE.
        let unanswered = call.held.take().filter(|_| send_bye);
        if let Some(row) = &mut call.row {
            let (code, cause) = end_cause(reason, !send_bye);
            let code = if unanswered.is_some() { 480 } else { code };
            row.end(code, reason, cause);
        }
        if let (
            Some(rooms),
            Some(RoomSeat {
                participant: Some(p),
                ..
            }),
        ) = (&self.rooms, &call.room)
        {
            // A no-op when the room removed it first (that is why the call ends).
            rooms.phone_hung_up(*p);
        }
        match (call.invite_txn, unanswered) {
            (Some(invite_txn), Some(held)) => {
                self.respond(now, invite_txn, held.refusal(480));
            }
            // RFC 3261 §15: no BYE before the ACK of our 2xx (the caller may not yet hold the
            // dialog it would name); it waits for the ACK or the 2xx's timeout.
            (Some(invite_txn), None) if send_bye => {
                let pending = PendingBye {
                    peer: call.request_peer(),
                    dialog: call.dialog,
                    reason: reason.to_owned(),
                    invite_txn,
                };
                self.calls.byes_after_ack.insert(id.clone(), pending);
            }
            _ if send_bye => self.send_bye_on(now, &mut call, reason),
            // The peer ended the dialog (its BYE) while our 2xx to its (re-)INVITE waited for
            // the ACK: the 2xx goes no more.
            (Some(invite_txn), None) => self.endpoint.abandon(invite_txn),
            _ => {}
        }
        tracing::info!(
            call_id = %id.call_id,
            reason,
            duration_s = now.duration_since(call.started).as_secs(),
            "call ended"
        );
    }
}

/// `text` with its control characters as spaces: a refusal's text may quote the phone's SDP,
/// and it goes into a call's history and a BYE's `Reason` (a quoted string, RFC 3261 §25.1).
pub(super) fn printable(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Whether a dialog-opening request asks for SIPS (RFC 3261 §12.1.1): its Request-URI, else
/// its top Record-Route, else (with no Record-Route) its Contact.
fn asks_sips(req: &Request) -> bool {
    use sipx_sip::msg::{NameAddr, Uri};
    let sips = |uri: &Uri| matches!(uri, Uri::Sip(u) if u.secure);
    let first = |name| req.headers.first_of_list(name).and_then(NameAddr::parse);
    sips(&req.uri)
        || match req.headers.get("Record-Route") {
            Some(_) => first("Record-Route").is_some_and(|a| sips(&a.uri)),
            None => first("Contact").is_some_and(|a| sips(&a.uri)),
        }
}

#[cfg(test)]
mod tests {
    use sipx_sip::msg::{SipMessage, parse_datagram};

    use super::*;

    fn request(uri: &str, extra: &str) -> Request {
        let text = format!(
            "INVITE {uri} SIP/2.0\r\nVia: SIP/2.0/TLS 192.0.2.1:5061;branch=z9hG4bK1\r\n\
             Max-Forwards: 70\r\nFrom: <sip:a@192.0.2.1>;tag=1\r\nTo: <sip:b@192.0.2.2>\r\n\
             Call-ID: c1\r\nCSeq: 1 INVITE\r\n{extra}Content-Length: 0\r\n\r\n"
        );
        match parse_datagram(text.as_bytes()) {
            Ok(SipMessage::Request(r)) => r,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_sips_request_uri_record_route_or_contact_asks_for_a_sips_contact() {
        // RFC 3261 §12.1.1: the Request-URI, else the top Record-Route, else the Contact.
        assert!(asks_sips(&request(
            "sips:b@192.0.2.2",
            "Contact: <sip:a@192.0.2.1>\r\n"
        )));
        assert!(asks_sips(&request(
            "sip:b@192.0.2.2",
            "Record-Route: <sips:p.example.com;lr>\r\nContact: <sip:a@192.0.2.1>\r\n"
        )));
        assert!(asks_sips(&request(
            "sip:b@192.0.2.2",
            "Contact: \"A\" <SIPS:a@192.0.2.1>\r\n"
        )));
        assert!(!asks_sips(&request(
            "sip:b@192.0.2.2",
            "Record-Route: <sip:p.example.com;lr>\r\nContact: <sips:a@192.0.2.1>\r\n"
        )));
        assert!(!asks_sips(&request(
            "sip:b@192.0.2.2",
            "Contact: <sip:a@192.0.2.1>\r\n"
        )));
    }
}
