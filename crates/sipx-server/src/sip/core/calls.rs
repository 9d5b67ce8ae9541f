//! Calls the core answers: INVITE dialogs (RFC 3261 §12–15) with SDP offer/answer (RFC 3264)
//! and a media leg each. Until call control routes calls into rooms, the one destination is
//! the echo test (`media.echo_extension`): what the caller sends, audio and DTMF, comes back;
//! or the same through an Opus encode and decode (`media.opus_echo_extension`).
//!
//! A call here is a UAS dialog: INVITE → 200 (answer, or our offer when the INVITE had none)
//! → ACK (with the answer to a late offer) → re-INVITEs (hold, resume, new codec) and INFO
//! (DTMF) → BYE from either side, or a media timeout.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use sipx_media::dtmf::DtmfDigit;
use sipx_media::leg::LegEvent;
use sipx_sdp::{MediaSession, NegotiatedMedia, SessionDescription};
use sipx_sip::dialog::{Dialog, DialogError, DialogId};
use sipx_sip::msg::{HasHeaders, Method, Request, Response};
use sipx_sip::{ClientTxnId, Peer, ServerTxnId, Transport};

use super::Core;
use crate::media::{LegId, LegMode, MediaEngine, MediaEvent, PortPair};

/// One answered INVITE dialog and its media.
pub(crate) struct Call {
    dialog: Dialog,
    sdp: MediaSession,
    leg: LegId,
    /// What the leg does with the caller's audio.
    mode: LegMode,
    /// The sockets, until the leg starts (a late offer starts it at the ACK).
    ports: Option<PortPair>,
    /// The INVITE (or re-INVITE) whose 2xx awaits its ACK.
    invite_txn: Option<ServerTxnId>,
    /// We offered in a 2xx: its ACK carries the answer.
    answer_in_ack: bool,
    /// Where the caller's requests come from; ours go back there (NAT-safe).
    peer: Peer,
    started: Instant,
}

/// The calls the core holds, by dialog.
#[derive(Default)]
pub(crate) struct Calls {
    by_dialog: HashMap<DialogId, Call>,
    by_leg: HashMap<LegId, DialogId>,
    /// Our BYEs in flight: their answers need no handling beyond matching.
    byes: HashMap<ClientTxnId, DialogId>,
}

impl Calls {
    pub fn len(&self) -> usize {
        self.by_dialog.len()
    }

    pub fn owns_client_txn(&mut self, txn: ClientTxnId) -> bool {
        self.byes.remove(&txn).is_some()
    }
}

/// DTMF carried in SIP INFO: `application/dtmf-relay` (`Signal=5`) or `application/dtmf` (`5`).
fn info_digit(req: &Request) -> Option<(DtmfDigit, u32)> {
    let content_type = req.headers.get("Content-Type")?.to_ascii_lowercase();
    let body = std::str::from_utf8(&req.body).ok()?;
    let (signal, duration) = if content_type.starts_with("application/dtmf-relay") {
        let mut signal = None;
        let mut duration = 250;
        for line in body.lines() {
            let Some((k, v)) = line.split_once('=') else {
                continue;
            };
            match k.trim().to_ascii_lowercase().as_str() {
                "signal" => signal = Some(v.trim().to_owned()),
                "duration" => duration = v.trim().parse().unwrap_or(250),
                _ => {}
            }
        }
        (signal?, duration)
    } else if content_type.starts_with("application/dtmf") {
        (body.trim().to_owned(), 250)
    } else {
        return None;
    };
    let mut chars = signal.chars();
    let digit = match (chars.next(), chars.next()) {
        (Some(c), None) => DtmfDigit::from_char(c.to_ascii_uppercase())?,
        // Some gateways send the RFC 4733 event code instead of the character.
        _ => DtmfDigit::from_event_code(signal.parse().ok()?)?,
    };
    Some((digit, duration))
}

fn log_negotiation(call_id: &str, n: &NegotiatedMedia) {
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

fn has_sdp(req: &Request) -> bool {
    !req.body.is_empty()
        && req
            .headers
            .get("Content-Type")
            .is_some_and(|t| t.to_ascii_lowercase().starts_with("application/sdp"))
}

impl Core {
    /// A new INVITE (no To tag) that passed the source policy.
    pub(super) fn on_new_invite(
        &mut self,
        now: Instant,
        txn: ServerTxnId,
        req: Request,
        peer: Peer,
    ) {
        let tag = self.endpoint.new_tag();
        let mode = req
            .uri
            .as_sip()
            .and_then(|u| u.user.as_deref())
            .and_then(|u| self.settings.media.echo_mode(u));
        let Some((engine, mode)) = self.media.clone().zip(mode) else {
            let resp = req
                .response(480, Some(&tag))
                .with_reason("No route for this call");
            self.respond(now, txn, resp);
            return;
        };
        if !req.body.is_empty() && !has_sdp(&req) {
            let resp = req
                .response(415, Some(&tag))
                .with_header("Accept", "application/sdp");
            self.respond(now, txn, resp);
            return;
        }
        let offer = if req.body.is_empty() {
            None
        } else {
            match SessionDescription::parse(&req.body) {
                Ok(sdp) => Some(sdp),
                Err(e) => {
                    let resp = req.response(488, Some(&tag)).with_header(
                        "Warning",
                        format!("399 {} \"Bad SDP: {e}\"", self.warn_agent()),
                    );
                    self.respond(now, txn, resp);
                    return;
                }
            }
        };
        let ports = match engine.allocate() {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "no RTP port for a call");
                let resp = req
                    .response(503, Some(&tag))
                    .with_reason("No media port available")
                    .with_header("Retry-After", "5");
                self.respond(now, txn, resp);
                return;
            }
        };
        let mut sdp = match self.new_media_session(&engine, ports.rtp_port()) {
            Some(s) => s,
            None => {
                self.respond(now, txn, req.response(500, Some(&tag)));
                return;
            }
        };
        let body = match &offer {
            Some(offer) => match sdp.handle_offer(offer) {
                Ok(answer) => answer.to_bytes(),
                Err(rejection) => {
                    tracing::info!(call_id = req.call_id().unwrap_or(""), %rejection, "call refused: media");
                    let resp = req
                        .response(rejection.status(), Some(&tag))
                        .with_header("Warning", rejection.warning(&self.warn_agent()));
                    self.respond(now, txn, resp);
                    return;
                }
            },
            None => match sdp.create_offer() {
                Ok(o) => o.to_bytes(),
                Err(_) => {
                    self.respond(now, txn, req.response(500, Some(&tag)));
                    return;
                }
            },
        };
        let Some(dialog) = Dialog::from_uas(&req, &tag, false) else {
            let resp = req
                .response(400, Some(&tag))
                .with_reason("Missing Contact or From tag");
            self.respond(now, txn, resp);
            return;
        };
        let call_id = dialog.id.call_id.clone();
        let leg = engine.new_leg_id();
        let mut call = Call {
            dialog,
            sdp,
            leg,
            mode,
            ports: Some(ports),
            invite_txn: Some(txn),
            answer_in_ack: offer.is_none(),
            peer,
            started: now,
        };
        let resp = self.answer_ok(&req, &tag, &peer, body);
        self.respond(now, txn, resp);
        if let Some(negotiated) = call.sdp.negotiated().cloned()
            && let Some(ports) = call.ports.take()
        {
            log_negotiation(&call_id, &negotiated);
            self.start_leg(&engine, leg, mode, ports, &negotiated, &call_id);
        }
        tracing::info!(
            call_id = %call_id,
            from = req.from().map(|f| f.uri.to_string()).unwrap_or_default(),
            to = %req.uri,
            late_offer = call.answer_in_ack,
            opus = mode == LegMode::OpusEcho,
            "call answered by the echo test"
        );
        self.calls.by_leg.insert(leg, call.dialog.id.clone());
        self.calls.by_dialog.insert(call.dialog.id.clone(), call);
        metrics::gauge!("sipx_calls").set(self.calls.len() as f64);
    }

    fn new_media_session(&self, engine: &MediaEngine, port: u16) -> Option<MediaSession> {
        let mut session_id = [0u8; 8];
        sipx_secrets::generate::fill(&mut session_id);
        let mut config = sipx_sdp::MediaConfig::new(
            engine.advertised_ip(),
            port,
            u64::from_le_bytes(session_id) >> 1,
        );
        config.codecs = self.settings.media.codecs.clone();
        config.srtp = self.settings.media.srtp;
        config.ptime = self.settings.media.ptime_ms;
        let mut keys = [0u8; sipx_sdp::KEY_MATERIAL_LEN];
        sipx_secrets::generate::fill(&mut keys);
        MediaSession::new(config, &keys).ok()
    }

    /// A 200 for an INVITE with our tag, Contact and SDP.
    fn answer_ok(&self, req: &Request, tag: &str, peer: &Peer, sdp: Vec<u8>) -> Response {
        let contact = self.contact_for(peer, "echo");
        req.response(200, Some(tag))
            .with_header("Contact", contact)
            .with_header("Allow", self.uas.allow_header())
            .with_header("Supported", "replaces, timer")
            .with_body("application/sdp", sdp)
    }

    /// `<sip:user@host:port;transport=…>` where the peer can reach us.
    fn contact_for(&self, peer: &Peer, user: &str) -> String {
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
    fn warn_agent(&self) -> String {
        self.settings
            .external_host
            .clone()
            .unwrap_or_else(|| "sipx".to_owned())
    }

    fn start_leg(
        &self,
        engine: &MediaEngine,
        leg: LegId,
        mode: LegMode,
        ports: PortPair,
        negotiated: &NegotiatedMedia,
        call_id: &str,
    ) {
        match crate::media::leg_config(negotiated, &self.settings.media, leg) {
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
    pub(super) fn on_in_dialog(&mut self, now: Instant, txn: ServerTxnId, req: Request) {
        let call = DialogId::of_request(&req)
            .and_then(|id| Some((self.calls.by_dialog.get_mut(&id)?, id)));
        let Some((call, id)) = call else {
            self.respond(now, txn, req.response(481, None));
            return;
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
            Method::Bye => {
                self.respond(now, txn, req.response(200, Some(&tag)));
                self.end_call(now, &id, "caller hung up", false);
            }
            Method::Invite | Method::Update => self.on_reoffer(now, txn, req, &id),
            Method::Info => {
                let digit = info_digit(&req);
                let resp = match digit {
                    Some(_) => req.response(200, Some(&tag)),
                    None => req
                        .response(415, Some(&tag))
                        .with_header("Accept", "application/dtmf-relay, application/dtmf"),
                };
                self.respond(now, txn, resp);
                if let Some((digit, duration)) = digit {
                    self.on_digit(&id, digit, duration, "info");
                }
            }
            Method::Options => {
                let resp = req
                    .response(200, Some(&tag))
                    .with_header("Allow", self.uas.allow_header());
                self.respond(now, txn, resp);
            }
            _ => {
                let resp = req
                    .response(405, Some(&tag))
                    .with_header("Allow", "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, UPDATE");
                self.respond(now, txn, resp);
            }
        }
    }

    /// A re-INVITE or UPDATE: a new offer (hold, resume, codec change), or none (we offer).
    fn on_reoffer(&mut self, now: Instant, txn: ServerTxnId, req: Request, id: &DialogId) {
        let agent = self.warn_agent();
        let tag = id.local_tag.clone();
        let Some(call) = self.calls.by_dialog.get_mut(id) else {
            return;
        };
        let peer = call.peer;
        let result = if has_sdp(&req) {
            match SessionDescription::parse(&req.body) {
                Ok(offer) => call
                    .sdp
                    .handle_offer(&offer)
                    .map(|a| (a.to_bytes(), false))
                    .map_err(|r| (r.status(), r.warning(&agent))),
                Err(e) => Err((488, format!("399 {agent} \"Bad SDP: {e}\""))),
            }
        } else if req.method == Method::Invite {
            call.sdp
                .create_offer()
                .map(|o| (o.to_bytes(), true))
                .map_err(|_| (500, String::new()))
        } else {
            // An UPDATE without SDP refreshes the session only.
            Ok((Vec::new(), false))
        };
        match result {
            Ok((body, offered)) => {
                let mut resp = if body.is_empty() {
                    req.response(200, Some(&tag))
                        .with_header("Contact", self.contact_for(&peer, "echo"))
                } else {
                    self.answer_ok(&req, &tag, &peer, body)
                };
                if req.method != Method::Invite {
                    resp.headers.0.retain(|h| h.name != "Allow");
                }
                if req.method == Method::Invite
                    && let Some(call) = self.calls.by_dialog.get_mut(id)
                {
                    call.invite_txn = Some(txn);
                    call.answer_in_ack = offered;
                }
                self.respond(now, txn, resp);
                self.apply_negotiation(id);
            }
            Err((status, warning)) => {
                let mut resp = req.response(status, Some(&tag));
                if !warning.is_empty() {
                    resp.headers.push("Warning", warning);
                }
                self.respond(now, txn, resp);
            }
        }
    }

    /// Hands the current negotiation to the call's media leg (started or updated).
    fn apply_negotiation(&mut self, id: &DialogId) {
        let Some(engine) = self.media.clone() else {
            return;
        };
        let Some(call) = self.calls.by_dialog.get_mut(id) else {
            return;
        };
        let Some(negotiated) = call.sdp.negotiated().cloned() else {
            return;
        };
        let (leg, mode, ports) = (call.leg, call.mode, call.ports.take());
        log_negotiation(&id.call_id, &negotiated);
        match ports {
            Some(ports) => self.start_leg(&engine, leg, mode, ports, &negotiated, &id.call_id),
            None => {
                if let Some(cfg) = crate::media::leg_config(&negotiated, &self.settings.media, leg)
                {
                    engine.update_leg(leg, cfg);
                }
            }
        }
    }

    /// The ACK of our 2xx: the end of the INVITE exchange, with the answer to a late offer.
    pub(super) fn on_ack(&mut self, now: Instant, req: Request) {
        let Some(id) = DialogId::of_request(&req) else {
            return;
        };
        let Some(call) = self.calls.by_dialog.get_mut(&id) else {
            return;
        };
        call.invite_txn = None;
        if !call.answer_in_ack {
            return;
        }
        call.answer_in_ack = false;
        let answer = has_sdp(&req)
            .then(|| SessionDescription::parse(&req.body).ok())
            .flatten();
        let accepted = match answer {
            Some(a) => call.sdp.handle_answer(&a).is_ok(),
            None => {
                call.sdp.rollback_offer();
                false
            }
        };
        if accepted {
            self.apply_negotiation(&id);
        } else if call.sdp.negotiated().is_none() {
            // RFC 3261 §13.3.1.4: a 2xx offer whose ACK brings no usable answer ends the call.
            self.end_call(now, &id, "no usable SDP answer in the ACK", true);
        }
    }

    /// No ACK for our 2xx within 64*T1 (RFC 3261 §13.3.1.4): the call is over.
    pub(super) fn on_ack_timeout(&mut self, now: Instant, txn: ServerTxnId) {
        let id = self
            .calls
            .by_dialog
            .iter()
            .find(|(_, c)| c.invite_txn == Some(txn))
            .map(|(id, _)| id.clone());
        if let Some(id) = id {
            self.end_call(now, &id, "no ACK for the 200", true);
        }
    }

    pub(super) fn on_media_event(&mut self, now: Instant, event: MediaEvent) {
        let Some(id) = self.calls.by_leg.get(&event.leg()).cloned() else {
            return;
        };
        match event {
            MediaEvent::Leg { event, .. } => match event {
                LegEvent::Dtmf(d) => self.on_digit(&id, d.digit, d.duration_ms, "rfc4733"),
                LegEvent::MediaTimeout => self.end_call(now, &id, "media timeout", true),
                LegEvent::RemoteLatched(addr) => {
                    tracing::info!(call_id = %id.call_id, %addr, "media latched to the address the caller sends from");
                }
                _ => {}
            },
            MediaEvent::Failed { reason, .. } => self.end_call(now, &id, &reason, true),
        }
    }

    fn on_digit(&mut self, id: &DialogId, digit: DtmfDigit, duration_ms: u32, via: &'static str) {
        tracing::info!(call_id = %id.call_id, digit = %digit.as_char(), duration_ms, via, "DTMF digit");
        metrics::counter!("sipx_dtmf_digits_total", "via" => via).increment(1);
        // The echo test sends every digit back as an RFC 4733 event, however it came.
        if let (Some(engine), Some(call)) = (&self.media, self.calls.by_dialog.get(id)) {
            engine.send_dtmf(
                call.leg,
                digit,
                Duration::from_millis(u64::from(duration_ms.clamp(100, 1000))),
            );
        }
    }

    /// Ends a call: its leg stops; with `send_bye` the caller gets a BYE.
    pub(super) fn end_call(&mut self, now: Instant, id: &DialogId, reason: &str, send_bye: bool) {
        let Some(mut call) = self.calls.by_dialog.remove(id) else {
            return;
        };
        self.calls.by_leg.remove(&call.leg);
        if let Some(engine) = &self.media {
            engine.remove_leg(call.leg);
        }
        if send_bye {
            let branch = self.endpoint.new_branch();
            let host = self
                .local_host_for(call.peer.addr, call.peer.transport)
                .unwrap_or_else(|| "invalid".to_owned());
            let via = format!(
                "SIP/2.0/{} {host};branch={branch};rport",
                call.peer.transport.via_name()
            );
            let mut bye = call.dialog.request(Method::Bye, &via, None);
            bye.headers
                .push("Reason", format!("SIP;cause=200;text=\"{reason}\""));
            bye.headers.push("Content-Length", "0");
            let txn = self.endpoint.send_request(now, call.peer, bye);
            self.calls.byes.insert(txn, id.clone());
        }
        tracing::info!(
            call_id = %id.call_id,
            reason,
            duration_s = now.duration_since(call.started).as_secs(),
            "call ended"
        );
        metrics::gauge!("sipx_calls").set(self.calls.len() as f64);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn info(content_type: &str, body: &str) -> Request {
        let raw = format!(
            "INFO sip:echo@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\n\
             From: <sip:a@x>;tag=1\r\nTo: <sip:echo@y>;tag=2\r\nCall-ID: c\r\nCSeq: 2 INFO\r\n\
             Max-Forwards: 70\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        match sipx_sip::msg::parse_datagram(raw.as_bytes()).unwrap() {
            sipx_sip::msg::SipMessage::Request(r) => r,
            _ => unreachable!(),
        }
    }

    #[test]
    fn info_dtmf_bodies_of_both_kinds_give_the_digit() {
        let cases = [
            (
                "application/dtmf-relay",
                "Signal=5\r\nDuration=160\r\n",
                Some(('5', 160)),
            ),
            (
                "application/dtmf-relay",
                "signal= #\nduration=100",
                Some(('#', 100)),
            ),
            ("application/dtmf-relay", "Signal=11\r\n", Some(('#', 250))),
            ("application/dtmf", "*", Some(('*', 250))),
            ("Application/DTMF-Relay", "Signal=a\r\n", Some(('A', 250))),
            ("application/dtmf-relay", "Duration=160\r\n", None),
            ("application/dtmf-relay", "Signal=Z\r\n", None),
            ("text/plain", "5", None),
        ];
        for (ct, body, want) in cases {
            let got = info_digit(&info(ct, body)).map(|(d, ms)| (d.as_char(), ms));
            assert_eq!(got, want, "{ct} {body:?}");
        }
    }
}
