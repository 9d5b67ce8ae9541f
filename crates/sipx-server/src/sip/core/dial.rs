//! The SIP side of a dial-out until it is answered: the INVITE with our SDP offer (through a
//! trunk's provider, to a device registered with a SIP account, or to a SIP URI), its digest
//! challenges answered with the exact Request-URI, provisional answers (early media; those
//! sent reliably acknowledged by PRACK, RFC 3262), the 2xx acknowledged and turned into a
//! dialog, the CANCEL.
//!
//! The call's state machine hears of every answer except challenges (answered here).

use std::time::Instant;

use sipx_call::{Input, SipInput};
use sipx_sdp::{MediaSession, SessionDescription};
use sipx_secrets::Redacted;
use sipx_sip::dialog::{Dialog, DialogId};
use sipx_sip::msg::{HasHeaders, Headers, Method, NameAddr, Request, Response, Uri};
use sipx_sip::reliable::{self, Provisional, ReliableProvisionals};
use sipx_sip::session_timer::{Refresher, SessionExpires, min_se_of};
use sipx_sip::uac::{Credentials, ack_for_2xx, cancel_for, next_attempt, with_credentials};
use sipx_sip::{ClientTxnId, Peer, Transport};

use super::Core;
use super::calls::{Call, RoomSeat, sdp_of};
use super::next_hop::next_hop;
use super::origin::{Origin, sdp_policy, srtp_policy};
use super::server_failover::ServerFailure;
use crate::media::{Echo, PortPair};
use crate::sip::call_service::{DialTarget, Lookup};

/// An INVITE we sent and what came of it.
pub(crate) struct OutboundInvite {
    /// As last sent (with credentials after a challenge).
    pub invite: Request,
    pub txn: ClientTxnId,
    pub peer: Peer,
    /// Our offer's session, until the answer moves it into the dialog's call.
    pub sdp: Option<MediaSession>,
    pub ports: Option<PortPair>,
    /// The SIP Call-ID.
    pub call_id: String,
    pub(super) auth: Option<(String, Redacted<String>)>,
    auth_attempts: u8,
    /// We sent a CANCEL: the INVITE is not sent again (after a challenge or a 422).
    pub(super) cancelled: bool,
    /// The ACK of the 2xx and where it goes (the dialog's next hop), sent again for every
    /// retransmission of the 2xx.
    ack: Option<(Peer, Vec<u8>)>,
    /// The To tag of the answer we took.
    answered_tag: Option<String>,
    /// The first SDP answer taken (in a 183) and the To tag it came with: a 2xx that repeats
    /// it changes nothing, one with another replaces it.
    early_answer: Option<(Option<String>, Vec<u8>)>,
    /// A provisional response above 100 came: the callee was reached, no other route is tried.
    pub(super) rang: bool,
    /// The provisional answers sent reliably, per early dialog.
    reliable: ReliableProvisionals,
    /// The To tags of the early dialogs provisional answers opened (a forking proxy opens
    /// one per phone that rings): the callee may send requests in them (RFC 3311 §5.1).
    early_tags: Vec<String>,
    /// Forks whose 2xx came after another's, acknowledged and ended by BYE: their To tag and
    /// ACK, sent again if their 2xx is.
    ended_forks: Vec<(String, Peer, Vec<u8>)>,
}

/// Early dialogs kept per dial-out: forks past this many are not answered in their early
/// dialog (their 2xx still is).
const EARLY_DIALOGS_KEPT: usize = 16;

impl Core {
    /// Whether dial-out `id`'s requests in its dialog go to the callee's Contact when no
    /// route set says otherwise (`next_hop.rs`): a SIP URI dialled straight; a trunk's
    /// provider is its outbound proxy, a registered device's flow is the way to it.
    fn follows_target(&self, id: &str) -> bool {
        self.controls
            .by_id
            .get(id)
            .is_some_and(|c| matches!(c.target, DialTarget::Direct { .. }))
    }

    /// Where dial-out `id`'s requests in a dialog with `routes` and remote `target` go
    /// (`next_hop.rs`), its INVITE having gone to `peer`.
    fn dialog_hop(&self, id: &str, routes: &[NameAddr], target: &Uri, peer: Peer) -> Peer {
        next_hop(routes, self.follows_target(id).then_some(target), peer)
    }
}

impl OutboundInvite {
    /// The SDP answer a reliable provisional of the early dialog with To tag `tag` brought.
    pub(super) fn reliable_answer(&self, tag: &str) -> Option<&[u8]> {
        self.reliable.answer(tag)
    }

    /// Whether `req`, from the callee, belongs to an early dialog of this INVITE: our From
    /// tag as its To tag, a provisional answer's To tag as its From tag.
    pub(super) fn in_early_dialog(&self, req: &Request) -> bool {
        self.answered_tag.is_none()
            && req.call_id() == Some(self.call_id.as_str())
            && req.tag_of_to().is_some()
            && req.tag_of_to() == self.invite.tag_of_from()
            && req
                .tag_of_from()
                .is_some_and(|t| self.early_tags.iter().any(|e| e == t))
    }
}

/// What an SDP answer did to a dial-out's media session.
#[derive(Debug, PartialEq, Eq)]
enum AnswerOutcome {
    /// Taken, or a repeat of the one taken.
    Agreed,
    /// A 2xx's answer replaced the early one.
    Changed,
    /// Unusable: why, as the call's end will say.
    Refused(String),
}

/// The last CSeq number the PRACKs of the early dialog with To tag `tag` took (0: none).
fn pracked_cseq(out: &OutboundInvite, tag: Option<&str>) -> u32 {
    tag.and_then(|t| out.reliable.last_cseq(t)).unwrap_or(0)
}

/// Where and how the INVITE goes.
struct Plan {
    peer: Peer,
    request_uri: String,
    to: String,
    from: String,
    auth: Option<(String, Redacted<String>)>,
    /// The route's own SRTP policy, if it has one.
    srtp: Option<sipx_sdp::SrtpPolicy>,
    /// The route's own codecs, if it has them.
    codecs: Option<Vec<sipx_sdp::LocalCodec>>,
    /// `Route` values the INVITE carries: a registered device's `Path` (RFC 3327 §5.4), so its
    /// proxies (the first of which is `peer`) take it there.
    route: Vec<String>,
    /// The caller's identity as SIPx asserts it to a trunk's provider (RFC 3325): the number
    /// From shows, kept there when From is anonymous. Only providers get it.
    asserted: Option<String>,
    /// From when the caller id is withheld: at the trunk's From domain, which its provider
    /// may check (`sipx_sip::identity::anonymous_from`).
    anonymous_from: String,
}

/// A fresh digest `cnonce` (RFC 7616 §3.4): 16 hex digits.
pub(super) fn new_cnonce() -> String {
    let mut cnonce = [0u8; 8];
    sipx_secrets::generate::fill(&mut cnonce);
    cnonce.iter().map(|b| format!("{b:02x}")).collect()
}

fn transport_param(t: Transport) -> &'static str {
    match t {
        Transport::Tcp => ";transport=tcp",
        Transport::Tls => ";transport=tls",
        _ => "",
    }
}

/// The user part a SIP URI or a number gives.
fn user_of(to: &str) -> String {
    match Uri::parse(to) {
        Some(Uri::Sip(u)) => u.user.unwrap_or_default(),
        _ => to.to_owned(),
    }
}

/// The user part to dial `to` with: a SIP URI's as written (already escaped), a number's
/// escaped (`#` is `%23` on the wire).
fn dial_user(to: &str) -> String {
    match is_uri(to) {
        true => user_of(to),
        false => sipx_sip::msg::escape_user(to),
    }
}

fn is_uri(to: &str) -> bool {
    to.starts_with("sip:") || to.starts_with("sips:")
}

/// Why the INVITE cannot be sent: the machine hears it as an answer that never came.
enum NoRoute {
    Transport(&'static str),
    Status(u16, &'static str),
    /// The host must be looked up first.
    Lookup(super::provider_hosts::Key),
    /// The trunk's provider must be connected to first (TCP or TLS, a trunk that does not
    /// register): (trunk id, host, address, transport).
    Connect(String, String, std::net::SocketAddr, Transport),
}

fn looked_up(
    addr: Lookup,
    host: &str,
    port: Option<u16>,
    transport: Transport,
) -> Result<std::net::SocketAddr, NoRoute> {
    match addr {
        Lookup::Found(a) => Ok(a),
        Lookup::Pending => Err(NoRoute::Lookup((host.to_owned(), port, transport))),
        Lookup::Failed => Err(NoRoute::Status(503, "Host does not resolve")),
    }
}

impl Core {
    fn plan(&self, id: &str, invite: &sipx_call::Invite) -> Result<Plan, NoRoute> {
        let c = self
            .controls
            .by_id
            .get(id)
            .ok_or(NoRoute::Transport("gone"))?;
        let no_udp = NoRoute::Transport("no UDP listener of the destination's address family");
        match &c.target {
            DialTarget::Trunk(t) => {
                if let Some(max) = t.max_calls
                    && self.controls.active_on_trunk(&t.id) >= max as usize
                {
                    return Err(NoRoute::Status(503, "Trunk call limit reached"));
                }
                // A registering trunk's calls go where its registration is (its connection,
                // over TCP/TLS); a TCP/TLS trunk's, over the connection it has open, wherever a
                // lookup would put them first now.
                let addr = match self
                    .registered_addr(&t.id)
                    .or_else(|| self.trunk_link_addr(&t.id, t.transport))
                {
                    Some(addr) => addr,
                    None => looked_up(t.addr, &t.host, t.port, t.transport)?,
                };
                let flow = match t.transport {
                    Transport::Udp => self.udp_flow_for(addr).ok_or(no_udp)?,
                    _ => match self.trunk_flow(&t.id).or(self.trunk_link(&t.id, addr)) {
                        Some(flow) => flow,
                        // A registering trunk's connection comes back with its registration.
                        None if self.trunk_regs.contains_key(&t.id) => {
                            return Err(NoRoute::Transport("no connection to the provider"));
                        }
                        None => {
                            let (id, host) = (t.id.clone(), t.host.clone());
                            return Err(NoRoute::Connect(id, host, addr, t.transport));
                        }
                    },
                };
                let hostport = match t.port {
                    Some(p) => format!("{}:{p}", t.host),
                    None => t.host.clone(),
                };
                let request_uri = if is_uri(&invite.to) {
                    invite.to.clone()
                } else {
                    let number = t.number_rules.apply(&invite.to);
                    let number = sipx_sip::msg::escape_user(&number);
                    format!("sip:{number}@{hostport}{}", transport_param(t.transport))
                };
                let number = invite
                    .from
                    .clone()
                    .or_else(|| t.caller_id.clone())
                    .map(|u| sipx_sip::msg::escape_user(&u));
                let from_host = t.from_domain.clone().unwrap_or_else(|| t.host.clone());
                let asserted = number.as_ref().map(|n| format!("<sip:{n}@{from_host}>"));
                let from_user = number.unwrap_or_else(|| "sipx".to_owned());
                Ok(Plan {
                    peer: Peer {
                        transport: t.transport,
                        flow,
                        addr,
                    },
                    to: format!("<{request_uri}>"),
                    request_uri,
                    from: format!("<sip:{from_user}@{from_host}>"),
                    auth: t.auth.clone(),
                    srtp: t.srtp.map(sdp_policy),
                    codecs: self
                        .origins
                        .codecs(&Origin::Trunk(t.id.clone()))
                        .map(<[_]>::to_vec),
                    route: Vec::new(),
                    asserted,
                    anonymous_from: sipx_sip::identity::anonymous_from(Some(&from_host)),
                })
            }
            DialTarget::Direct {
                uri,
                transport,
                host,
                port,
                addr,
            } => {
                let addr = looked_up(*addr, host, *port, *transport)?;
                let flow = match transport {
                    Transport::Udp => self.udp_flow_for(addr).ok_or(no_udp)?,
                    _ => self
                        .stream_flow(addr)
                        .ok_or(NoRoute::Transport("no connection to the host"))?,
                };
                let local = self.local_host_for(addr, *transport).unwrap_or_default();
                let from_user = invite
                    .from
                    .as_deref()
                    .map_or_else(|| "sipx".to_owned(), sipx_sip::msg::escape_user);
                Ok(Plan {
                    peer: Peer {
                        transport: *transport,
                        flow,
                        addr,
                    },
                    request_uri: uri.clone(),
                    to: format!("<{uri}>"),
                    from: format!("<sip:{from_user}@{local}>"),
                    auth: None,
                    srtp: None,
                    codecs: None,
                    route: Vec::new(),
                    asserted: None,
                    anonymous_from: sipx_sip::identity::anonymous_from(None),
                })
            }
            DialTarget::Accounts(accounts) => {
                // The first account with a live device; its best contact (highest q, then the
                // newest registration).
                let now_secs = crate::unix_now();
                let found = accounts.iter().find_map(|route| {
                    // Only the call's own application's devices: a name freed by a deleted
                    // account may be another application's now.
                    let registration = self.bindings.get(&route.username)?;
                    if registration.app_id != c.app_id {
                        return None;
                    }
                    let live = registration
                        .contacts
                        .iter()
                        .filter(|b| b.expires_at > now_secs);
                    let b = live.max_by(|a, b| {
                        a.q.unwrap_or(1.0)
                            .total_cmp(&b.q.unwrap_or(1.0))
                            .then(a.expires_at.cmp(&b.expires_at))
                    })?;
                    Some((route, b))
                });
                let (route, b) = found.ok_or(NoRoute::Status(480, "Not registered"))?;
                let user = &route.username;
                let flow = match b.transport {
                    Transport::Udp => self.udp_flow_for(b.source).ok_or(no_udp)?,
                    _ => self
                        .stream_flow(b.source)
                        .ok_or(NoRoute::Transport("the device's connection is closed"))?,
                };
                let contact = sipx_sip::msg::NameAddr::parse(&b.contact)
                    .map(|n| n.uri)
                    .or_else(|| Uri::parse(&b.contact));
                let Some(Uri::Sip(mut target)) = contact else {
                    return Err(NoRoute::Status(480, "Unusable registered contact"));
                };
                // Gateways read the number to dial from the Request-URI's user part; phones
                // take only their own contact (and read To).
                if !route.contact_as_is {
                    target.user = Some(dial_user(&invite.to));
                }
                let request_uri = Uri::Sip(target).to_string();
                let local = self
                    .local_host_for(b.source, b.transport)
                    .unwrap_or_default();
                let to_host = local.clone();
                let from_user = sipx_sip::msg::escape_user(invite.from.as_deref().unwrap_or(user));
                // To where the REGISTER came from: the device, or the first of the proxies
                // its Path names (RFC 3327 §5.4), which the Route carries on. Not to the
                // address the Path's first entry names: a Path is the device's word, and it
                // must not aim SIPx's calls at a host of its choosing.
                Ok(Plan {
                    peer: Peer {
                        transport: b.transport,
                        flow,
                        addr: b.source,
                    },
                    request_uri,
                    to: format!("<sip:{}@{to_host}>", dial_user(&invite.to)),
                    from: format!("<sip:{from_user}@{local}>"),
                    auth: None,
                    srtp: self.origins.srtp(&Origin::Account(user.clone())),
                    codecs: self
                        .origins
                        .codecs(&Origin::Account(user.clone()))
                        .map(<[_]>::to_vec),
                    route: b.path.clone(),
                    asserted: None,
                    anonymous_from: sipx_sip::identity::anonymous_from(None),
                })
            }
        }
    }

    /// The machine asks for the INVITE (the room is joined).
    pub(super) fn send_invite(&mut self, now: Instant, id: &str, invite: sipx_call::Invite) {
        if let Some(c) = self.controls.by_id.get_mut(id) {
            c.invite = Some(invite.clone());
        }
        let plan = match self.plan(id, &invite) {
            Ok(p) => p,
            Err(NoRoute::Transport(why)) => {
                tracing::info!(call = %id, why, "dial-out cannot be sent");
                if self.fall_back(now, id, 503) {
                    return;
                }
                return self.feed_later(id, Input::Sip(SipInput::TransportError));
            }
            Err(NoRoute::Connect(trunk, host, addr, transport)) => {
                let to = super::trunk_links::Provider {
                    trunk: &trunk,
                    host: &host,
                    addr,
                    transport,
                };
                return self.await_trunk_link(now, id, invite, to);
            }
            Err(NoRoute::Lookup(key)) => {
                let (inputs, id) = (self.inputs.clone(), id.to_owned());
                let hosts = self.provider_hosts.clone();
                tokio::spawn(async move {
                    let addrs = hosts.lookup(&key).await;
                    let _ = inputs
                        .send(super::CoreInput::Resolved { id, addrs, invite })
                        .await;
                });
                return;
            }
            Err(NoRoute::Status(code, reason)) => {
                if self.fall_back(now, id, code) {
                    return;
                }
                let reason = reason.to_owned();
                return self.feed_later(id, Input::Sip(SipInput::NotSent { code, reason }));
            }
        };
        let Some(engine) = self.media.clone() else {
            return self.feed_later(id, Input::Sip(SipInput::TransportError));
        };
        // A dual-stack SIPx offers an address of the family of the hop the INVITE goes to.
        let (ports, media_ip) = match engine.allocate_for(Some(plan.peer.addr.ip())) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "no RTP port for a dial-out");
                return self.feed_later(
                    id,
                    Input::Sip(SipInput::Response {
                        code: 503,
                        reason: "No media port available".to_owned(),
                        sdp: false,
                    }),
                );
            }
        };
        let call_srtp = self.controls.by_id.get(id).and_then(|c| c.srtp);
        let srtp = srtp_policy(
            call_srtp.map(sdp_policy),
            plan.srtp,
            self.settings.media.srtp,
        );
        let codecs = plan.codecs.as_deref();
        let Some(mut sdp) = self.new_media_session(media_ip, ports.rtp_port(), srtp, codecs) else {
            return self.feed_later(id, Input::Sip(SipInput::TransportError));
        };
        let Ok(offer) = sdp.create_offer() else {
            return self.feed_later(id, Input::Sip(SipInput::TransportError));
        };
        let Some(request_uri) = Uri::parse(&plan.request_uri) else {
            return self.feed_later(
                id,
                Input::Sip(SipInput::Response {
                    code: 416,
                    reason: "Unsupported URI Scheme".to_owned(),
                    sdp: false,
                }),
            );
        };
        let local = self
            .local_host_for(plan.peer.addr, plan.peer.transport)
            .unwrap_or_else(|| "invalid".to_owned());
        let call_id = self.endpoint.new_call_id();
        let tag = self.endpoint.new_tag();
        let branch = self.endpoint.new_branch();
        let mut h = Headers::new();
        h.push(
            "Via",
            format!(
                "SIP/2.0/{} {local};branch={branch};rport",
                plan.peer.transport.via_name()
            ),
        );
        h.push("Max-Forwards", "70");
        for route in &plan.route {
            h.push("Route", route.clone());
        }
        let control = self.controls.by_id.get(id);
        let withhold = control.is_some_and(|c| c.withhold_caller_id);
        let from = match withhold {
            true => plan.anonymous_from.as_str(),
            false => plan.from.as_str(),
        };
        h.push("From", format!("{from};tag={tag}"));
        h.push("To", plan.to.clone());
        h.push("Call-ID", call_id.clone());
        h.push("CSeq", "1 INVITE");
        h.push(
            "Contact",
            format!("<sip:sipx@{local}{}>", transport_param(plan.peer.transport)),
        );
        h.push("Allow", self.uas.allow_header());
        // Reliable provisionals are acknowledged (RFC 3262): networks that require them
        // (IMS cores, carriers' SBCs) answer 421 to an INVITE that does not offer them.
        let mut supported = vec![reliable::OPTION_TAG];
        if self.settings.session_expires > 0 {
            supported.push("timer");
        }
        h.push("Supported", supported.join(", "));
        if self.settings.session_expires > 0 {
            // The called side refreshes (RFC 4028 §7.1): it may do so by re-INVITE or UPDATE,
            // both of which SIPx answers, where SIPx itself refreshes by UPDATE only.
            let expires = SessionExpires {
                delta: self.settings.session_expires,
                refresher: Some(Refresher::Uas),
            };
            h.push("Session-Expires", expires.to_value());
            h.push("Min-SE", self.settings.session_min_se.to_string());
        }
        // No `Supported: replaces`: SIPx does not let an INVITE with Replaces take over a
        // dialled-out call (`core/replacing.rs`), so it must not invite phones to try.
        if withhold {
            h.push("Privacy", "id");
        }
        if let Some(asserted) = &plan.asserted {
            h.push("P-Asserted-Identity", asserted.clone());
        }
        if let Some(by) = control.and_then(|c| c.referred_by.clone()) {
            // A phone's transfer: the called party may show who put the call through.
            h.push("Referred-By", by);
        }
        if let Some(replaces) = control.and_then(|c| c.replaces.clone()) {
            // An attended transfer: the call takes the place of the consultation call at the
            // called phone, or fails there (RFC 3891 §4): a phone that cannot replace must not
            // ring as a second call beside the one it is in.
            h.push("Replaces", replaces);
            h.push("Require", "replaces");
        }
        h.push("User-Agent", self.settings.server_header.clone());
        h.push("Content-Type", "application/sdp");
        let request = Request {
            method: Method::Invite,
            uri: request_uri,
            headers: h,
            body: offer.to_bytes(),
        };
        tracing::info!(call = %id, sip_call_id = %call_id, to = %plan.request_uri, peer = %plan.peer.addr, "INVITE sent");
        let txn = self.endpoint.send_request(now, plan.peer, request.clone());
        self.controls.invites.insert(txn, id.to_owned());
        if let Some(c) = self.controls.by_id.get_mut(id) {
            c.sip_call_id = Some(call_id.clone());
            c.out = Some(OutboundInvite {
                invite: request,
                txn,
                peer: plan.peer,
                sdp: Some(sdp),
                ports: Some(ports),
                call_id,
                auth: plan.auth,
                auth_attempts: 0,
                cancelled: false,
                ack: None,
                answered_tag: None,
                early_answer: None,
                early_tags: Vec::new(),
                ended_forks: Vec::new(),
                rang: false,
                reliable: ReliableProvisionals::default(),
            });
        }
    }

    /// Tries the next route after a failure that says nothing about the callee (5xx, 408, no
    /// answer, not registered), when one is left and nothing rang yet; `true` when the INVITE
    /// went out again.
    pub(super) fn fall_back(&mut self, now: Instant, id: &str, status: u16) -> bool {
        if !(status >= 500 || status == 408 || status == 480) {
            return false;
        }
        let Some(c) = self.controls.by_id.get_mut(id) else {
            return false;
        };
        if !c.may_try_again() || c.fallbacks.is_empty() {
            return false;
        }
        let (Some(next), Some(invite)) = (c.fallbacks.pop_front(), c.invite.clone()) else {
            return false;
        };
        let route = crate::sip::call_service::route_label(&next);
        tracing::info!(call = %id, status, next = ?route, "route failed: trying the next one");
        c.target = next;
        c.tried.clear();
        // The row names the route that carries the call (billing goes by it).
        self.rows
            .write(super::call_rows::RowWrite::Route(id.to_owned(), route));
        // The failed INVITE's sockets and session go; the next INVITE gets its own.
        c.out = None;
        self.send_invite(now, id, invite);
        true
    }

    /// A dial-out's host was looked up: the INVITE can go (or the call fails with 503).
    pub(super) fn on_resolved(
        &mut self,
        now: Instant,
        id: &str,
        addrs: Vec<std::net::SocketAddr>,
        invite: sipx_call::Invite,
    ) {
        let Some(c) = self.controls.by_id.get_mut(id) else {
            return;
        };
        let found = addrs.first().copied().map_or(Lookup::Failed, Lookup::Found);
        match &mut c.target {
            DialTarget::Trunk(t) => t.addr = found,
            DialTarget::Direct { addr, .. } => *addr = found,
            DialTarget::Accounts(_) => {}
        }
        self.send_invite_if_waited(now, id, invite);
    }

    /// Sends a dial-out's INVITE that waited (for its host's lookup, its trunk's connection),
    /// unless the call was hung up meanwhile and its machine no longer waits for it.
    pub(super) fn send_invite_if_waited(
        &mut self,
        now: Instant,
        id: &str,
        invite: sipx_call::Invite,
    ) {
        let waits = self
            .controls
            .by_id
            .get(id)
            .is_some_and(|c| !c.fsm.is_ended() && c.out.is_none());
        if waits {
            self.send_invite(now, id, invite);
        }
    }

    /// Input for a call's machine, delivered on the core's next turn (the machine is being
    /// driven when the need arises).
    pub(super) fn feed_later(&self, id: &str, input: Input) {
        let (inputs, id) = (self.inputs.clone(), id.to_owned());
        tokio::spawn(async move {
            let _ = inputs.send(super::CoreInput::CallInput { id, input }).await;
        });
    }

    /// A response on one of our INVITE transactions; `false` when `txn` is not one.
    pub(super) fn on_invite_response(
        &mut self,
        now: Instant,
        txn: ClientTxnId,
        response: &Response,
    ) -> bool {
        if self.on_refer_response(now, txn, response) {
            return true;
        }
        if self.controls.pracks.contains(&txn) {
            if response.status >= 200 {
                self.controls.pracks.remove(&txn);
            }
            if response.status >= 300 {
                // The callee gives up on the call itself if it needed the PRACK.
                tracing::info!(status = response.status, "PRACK refused");
            }
            return true;
        }
        if self.controls.cancels.contains(&txn) {
            if response.status >= 200 {
                self.controls.cancels.remove(&txn);
            }
            return true;
        }
        let Some(id) = self.controls.invites.get(&txn).cloned() else {
            return false;
        };
        let status = response.status;
        if matches!(status, 401 | 407) && self.answer_challenge(now, &id, txn, response) {
            return true;
        }
        if status == 422 && self.retry_with_min_se(now, &id, txn, response) {
            return true;
        }
        if (200..300).contains(&status) {
            self.on_invite_2xx(now, &id, response);
            return true;
        }
        if status >= 300 {
            self.controls.invites.remove(&txn);
            if status < 400 {
                // Not followed (docs/calls.md): the callee would pick whom SIPx calls.
                let contact = response.headers.get("Contact").map(super::calls::printable);
                tracing::info!(call = %id, status, contact, "redirect not followed");
            }
            if status == 503 && self.try_next_address(now, &id, ServerFailure::Unavailable, None) {
                return true;
            }
            if self.fall_back(now, &id, status) {
                return true;
            }
        }
        if (101..200).contains(&status) && !self.acknowledge_if_reliable(now, &id, response) {
            return true;
        }
        if (101..200).contains(&status)
            && let Some(out) = self.controls.out_mut(&id)
        {
            out.rang = true;
            if let Some(tag) = response.tag_of_to()
                && !out.early_tags.iter().any(|t| t == tag)
                && out.early_tags.len() < EARLY_DIALOGS_KEPT
            {
                out.early_tags.push(tag.to_owned());
            }
        }
        let mut sdp = false;
        // The answer of a reliable 1xx is the call's (RFC 3262 §5): one SIPx cannot use ends
        // the call now, by CANCEL, rather than at the 200 by BYE after the callee answered.
        let mut refused_for_good = None;
        if (101..200).contains(&status)
            && let Some(body) = sdp_of(&response.headers, &response.body)
        {
            match self.take_answer(&id, response.tag_of_to(), body, false) {
                AnswerOutcome::Refused(why) if reliable::rseq_of(response).is_some() => {
                    refused_for_good = Some(why);
                }
                outcome => sdp = !matches!(outcome, AnswerOutcome::Refused(_)),
            }
        }
        let reason = if response.reason.is_empty() {
            sipx_sip::msg::reason_phrase(status).to_owned()
        } else {
            response.reason.clone()
        };
        self.feed(
            now,
            &id,
            Input::Sip(SipInput::Response {
                code: status,
                reason,
                sdp,
            }),
        );
        if let Some(why) = refused_for_good {
            tracing::info!(call = %id, why, "a reliable early answer SIPx cannot use: cancelling");
            if let Some(c) = self.controls.by_id.get_mut(&id) {
                c.fsm.answer_refused(now, &why);
            }
            self.drive(now, &id);
        }
        true
    }

    /// Sends the PRACK a provisional answer sent reliably asks for (RFC 3262 §4); `false` when
    /// the answer is to be dropped: a retransmission of one acknowledged, or one out of order.
    fn acknowledge_if_reliable(&mut self, now: Instant, id: &str, response: &Response) -> bool {
        if reliable::rseq_of(response).is_none() {
            return true;
        }
        let Some(out) = self.controls.out(id) else {
            return true;
        };
        let (peer, invite) = (out.peer, out.invite.clone());
        // The PRACK goes as the early dialog's requests go: to the first hop of its route set
        // (the one this answer opens, for the first in its dialog), else to its target.
        let hop = Dialog::from_uac(&invite, response).map_or(peer, |early| {
            let known = response.tag_of_to().and_then(|t| out.reliable.route_set(t));
            let routes = known.unwrap_or(&early.route_set);
            self.dialog_hop(id, routes, &early.remote_target, peer)
        });
        let via = self.new_via(&hop);
        let Some(out) = self.controls.out_mut(id) else {
            return true;
        };
        match out.reliable.on_provisional(&invite, response, &via) {
            Provisional::Unreliable => true,
            Provisional::Drop => false,
            Provisional::Acknowledge(prack) => {
                if let (Some(tag), Some(sdp)) = (
                    response.tag_of_to(),
                    sdp_of(&response.headers, &response.body),
                ) {
                    out.reliable.keep_answer(tag, sdp);
                }
                let txn = self.endpoint.send_request(now, hop, *prack);
                self.controls.pracks.insert(txn);
                true
            }
        }
    }

    /// Sends the INVITE again with credentials; `false` when it cannot (no credentials, a
    /// second refusal that is not `stale`).
    fn answer_challenge(
        &mut self,
        now: Instant,
        id: &str,
        txn: ClientTxnId,
        response: &Response,
    ) -> bool {
        let branch = self.endpoint.new_branch();
        let cnonce = new_cnonce();
        let Some(out) = self.controls.out_mut(id) else {
            return false;
        };
        let stale = response
            .headers
            .get_all(if response.status == 401 {
                "WWW-Authenticate"
            } else {
                "Proxy-Authenticate"
            })
            .any(|v| v.to_ascii_lowercase().contains("stale=true"));
        let Some((user, password)) = &out.auth else {
            return false;
        };
        if out.auth_attempts >= 1 && !(stale && out.auth_attempts < 3) {
            return false;
        }
        let creds = Credentials {
            username: user,
            password: password.expose(),
        };
        out.auth_attempts += 1;
        let nc = 1;
        let Some(next) = with_credentials(&out.invite, response, creds, &branch, &cnonce, nc)
        else {
            return false;
        };
        let sent = self.resend_invite(now, id, txn, next);
        if sent {
            tracing::info!(call = %id, status = response.status, "INVITE challenged: sent again with credentials");
        }
        sent
    }

    /// Sends `next`, the INVITE `txn` again (answering a challenge or a 422), in a new
    /// transaction; `false` when the call was hung up meanwhile (the answer crossed our
    /// CANCEL): it is not dialled again.
    fn resend_invite(&mut self, now: Instant, id: &str, txn: ClientTxnId, next: Request) -> bool {
        let Some(out) = self.controls.out_mut(id) else {
            return false;
        };
        if out.cancelled {
            return false;
        }
        out.invite = next.clone();
        // Early dialogs of the INVITE before do not go on in this one.
        out.reliable = ReliableProvisionals::default();
        let new_txn = self.endpoint.send_request(now, out.peer, next);
        out.txn = new_txn;
        self.controls.invites.remove(&txn);
        self.controls.invites.insert(new_txn, id.to_owned());
        true
    }

    /// Sends the INVITE again asking for the interval a 422 named (RFC 4028 §7.4); `false`
    /// when it cannot: no `Min-SE`, or a second 422 asking no more than we did.
    fn retry_with_min_se(
        &mut self,
        now: Instant,
        id: &str,
        txn: ClientTxnId,
        response: &Response,
    ) -> bool {
        let branch = self.endpoint.new_branch();
        let Some(out) = self.controls.out_mut(id) else {
            return false;
        };
        let asked = out
            .invite
            .headers
            .get("Session-Expires")
            .and_then(SessionExpires::parse);
        let (Some(min_se), Some(asked)) = (min_se_of(&response.headers), asked) else {
            return false;
        };
        // Each 422 must ask for more, and a few tries are enough for any chain of proxies.
        if min_se <= asked.delta || out.invite.cseq().is_none_or(|c| c.seq >= 4) {
            return false;
        }
        let Some(mut next) = next_attempt(&out.invite, &branch) else {
            return false;
        };
        let expires = SessionExpires {
            delta: min_se,
            ..asked
        };
        next.headers.set("Session-Expires", expires.to_value());
        next.headers.set("Min-SE", min_se.to_string());
        let sent = self.resend_invite(now, id, txn, next);
        if sent {
            tracing::info!(call = %id, min_se, "INVITE's session timer too short for the peer: sent again");
        }
        sent
    }

    /// Applies the SDP answer in `response` (a 183, or the 2xx when `final_answer`). Without
    /// reliable provisionals the 2xx repeats the early answer (RFC 3261 §13.2.1), so the first
    /// stands for what repeats it; a 2xx with another answer (another fork's, RFC 3261
    /// §13.2.2.4, or the phone's second thought) replaces it.
    fn take_answer(
        &mut self,
        id: &str,
        tag: Option<&str>,
        body: &[u8],
        final_answer: bool,
    ) -> AnswerOutcome {
        let tag = tag.map(str::to_owned);
        let Some(out) = self.controls.out_mut(id) else {
            return AnswerOutcome::Refused("the call is gone".to_owned());
        };
        let Some(sdp) = out.sdp.as_mut() else {
            return AnswerOutcome::Agreed;
        };
        let replacing = sdp.negotiated().is_some();
        if replacing {
            let repeated = out
                .early_answer
                .as_ref()
                .is_none_or(|(t, b)| *t == tag && b.as_slice() == body);
            if !final_answer || repeated {
                return AnswerOutcome::Agreed;
            }
        }
        let answer = match SessionDescription::parse(body) {
            Ok(answer) => answer,
            Err(e) => {
                tracing::info!(call = %id, error = %e, "SDP answer does not parse");
                return AnswerOutcome::Refused(super::calls::printable(&e.to_string()));
            }
        };
        let taken = if replacing {
            sdp.replace_answer(&answer)
        } else if final_answer {
            sdp.handle_answer(&answer)
        } else {
            // An early answer SIPx cannot take leaves the offer to the 2xx's.
            sdp.handle_early_answer(&answer)
        };
        match taken {
            Ok(_) if replacing => {
                tracing::info!(call = %id, "the 2xx brought another SDP answer than the early one: it replaces it");
                AnswerOutcome::Changed
            }
            Ok(_) => {
                out.early_answer = Some((tag, body.to_vec()));
                AnswerOutcome::Agreed
            }
            Err(e) => {
                tracing::info!(call = %id, error = %e, "SDP answer refused");
                AnswerOutcome::Refused(super::calls::printable(&e.to_string()))
            }
        }
    }

    fn on_invite_2xx(&mut self, now: Instant, id: &str, response: &Response) {
        let to_tag = response.tag_of_to().map(str::to_owned);
        let via = |core: &mut Core, peer: &Peer| core.new_via(peer);
        let Some(out) = self.controls.out(id) else {
            return;
        };
        let peer = out.peer;
        if let Some(taken) = &out.answered_tag {
            if Some(taken) == to_tag.as_ref() {
                // A retransmission: our ACK was lost.
                if let Some((hop, ack)) = out.ack.clone() {
                    self.endpoint.send_stateless(hop, ack);
                }
            } else if let Some((_, hop, ack)) = out
                .ended_forks
                .iter()
                .find(|(t, _, _)| Some(t) == to_tag.as_ref())
            {
                // A fork ended already sends its 2xx again: our ACK was lost, the BYE is
                // its own transaction and goes on by itself.
                self.endpoint.send_stateless(*hop, ack.clone());
            } else {
                // Another fork answered too: acknowledge it and end it (RFC 3261 §13.2.2.4).
                let invite = out.invite.clone();
                let auth = out.auth.clone();
                if let Some(mut d) = Dialog::from_uac(&invite, response) {
                    d.local_cseq = d.local_cseq.max(pracked_cseq(out, to_tag.as_deref()));
                    let hop = self.dialog_hop(id, &d.route_set, &d.remote_target, peer);
                    let v = via(self, &hop);
                    let ack = ack_for_2xx(&mut d, &invite, &v).to_bytes();
                    self.endpoint.send_stateless(hop, ack.clone());
                    if let (Some(out), Some(tag)) = (self.controls.out_mut(id), to_tag.clone())
                        && out.ended_forks.len() < EARLY_DIALOGS_KEPT
                    {
                        out.ended_forks.push((tag, hop, ack));
                    }
                    self.send_bye(now, &mut d, hop, None, auth);
                }
            }
            return;
        }
        let invite = out.invite.clone();
        let pracked = pracked_cseq(out, to_tag.as_deref());
        let Some(mut dialog) = Dialog::from_uac(&invite, response) else {
            tracing::info!(call = %id, "2xx without To tag or Contact: cannot acknowledge it");
            self.feed(
                now,
                id,
                Input::Sip(SipInput::Response {
                    code: 502,
                    reason: "Bad answer from the phone".to_owned(),
                    sdp: false,
                }),
            );
            return;
        };
        // Requests in the dialog count on from its PRACKs' CSeq numbers.
        dialog.local_cseq = dialog.local_cseq.max(pracked);
        let hop = self.dialog_hop(id, &dialog.route_set, &dialog.remote_target, peer);
        let follow_target = self.follows_target(id);
        let v = via(self, &hop);
        let ack = ack_for_2xx(&mut dialog, &invite, &v).to_bytes();
        self.endpoint.send_stateless(hop, ack.clone());
        let reliable = to_tag
            .as_deref()
            .and_then(|t| self.controls.out(id)?.reliable.answer(t))
            .map(<[u8]>::to_vec);
        let answer = if let Some(body) = reliable {
            // A reliable answer is its dialog's: the 2xx need not repeat it, and SDP in it
            // that differs is ignored (RFC 3262 §5, RFC 3261 §13.2.1). Another fork's early
            // answer is replaced by it.
            self.take_answer(id, to_tag.as_deref(), &body, true)
        } else if let Some(body) = sdp_of(&response.headers, &response.body) {
            self.take_answer(id, to_tag.as_deref(), body, true)
        } else if self.controls.out(id).is_some_and(|o| {
            // Offer and answer are per dialog (RFC 3261 §13.2.1): an early answer counts for
            // the 2xx of its own fork only, another fork's 2xx without SDP answered nothing.
            let own = o.early_answer.as_ref().is_some_and(|(t, _)| *t == to_tag);
            own && o.sdp.as_ref().is_some_and(|s| s.negotiated().is_some())
        }) {
            AnswerOutcome::Agreed
        } else {
            AnswerOutcome::Refused("No SDP answer".to_owned())
        };
        let Some(c) = self.controls.by_id.get_mut(id) else {
            return;
        };
        let Some(out) = c.out.as_mut() else {
            return;
        };
        out.ack = Some((hop, ack));
        out.answered_tag = to_tag;
        // Early media started the leg on the early answer: a new answer must reach it.
        let restart_leg = answer == AnswerOutcome::Changed && out.ports.is_none();
        let dialog_id = dialog.id.clone();
        // The answered call joins the ordinary calls: in-dialog requests find it there.
        if let Some(session) = out.sdp.take() {
            let followed_target = follow_target.then(|| dialog.remote_target.clone());
            let call = Call {
                dialog,
                sdp: session,
                leg: c.leg,
                echo: Echo::Plain,
                ports: out.ports.take(),
                invite_txn: None,
                held: None,
                answer_in_ack: false,
                peer,
                followed_target,
                started: now,
                room: Some(RoomSeat::controlled(c.link.clone())),
                caller: String::new(),
                gate: None,
                row: None,
                origin: None,
                timer: None,
                peer_update: false,
                keys: Default::default(),
            };
            c.dialog = Some(dialog_id.clone());
            self.controls
                .by_dialog
                .insert(dialog_id.clone(), id.to_owned());
            self.calls.insert_answered(call);
            self.start_uac_session_timer(now, &dialog_id, &invite, response);
        }
        if answer == AnswerOutcome::Changed {
            if restart_leg {
                self.apply_negotiation(&dialog_id);
            }
            let codec = self
                .calls
                .by_dialog
                .get(&dialog_id)
                .and_then(|call| call.sdp.negotiated())
                .map(|n| n.codec.name.to_owned());
            if let (Some(c), Some(codec)) = (self.controls.by_id.get_mut(id), codec) {
                c.codec = Some(codec);
            }
        }
        if let AnswerOutcome::Refused(why) = answer {
            tracing::info!(call = %id, why, "answered without a usable SDP answer: hanging up");
            self.feed(
                now,
                id,
                Input::Sip(SipInput::Response {
                    code: 200,
                    reason: "OK".to_owned(),
                    sdp: false,
                }),
            );
            if let Some(c) = self.controls.by_id.get_mut(id) {
                c.fsm.answer_refused(now, &why);
            }
            self.drive(now, id);
            return;
        }
        let reason = if response.reason.is_empty() {
            "OK".to_owned()
        } else {
            response.reason.clone()
        };
        self.feed(
            now,
            id,
            Input::Sip(SipInput::Response {
                code: response.status,
                reason,
                sdp: true,
            }),
        );
    }

    /// A 2xx that matched no transaction (Timer M has passed): acknowledged again when it is
    /// one of our answered dial-outs.
    pub(super) fn on_stray_2xx(&mut self, response: &Response) {
        if !(200..300).contains(&response.status)
            || response.cseq().is_none_or(|c| c.method != Method::Invite)
            || self.reack_stray_refresh_2xx(response)
        {
            return;
        }
        let Some(dialog) = DialogId::of_response(response) else {
            return;
        };
        let Some(id) = self.controls.by_dialog.get(&dialog) else {
            return;
        };
        if let Some(out) = self.controls.out(id)
            && let Some((hop, ack)) = out.ack.clone()
        {
            self.endpoint.send_stateless(hop, ack);
        }
    }

    /// Timer B on one of our INVITEs; `false` when `txn` is not one.
    pub(super) fn on_invite_timeout(&mut self, now: Instant, txn: ClientTxnId) -> bool {
        if self.on_refer_timeout(now, txn)
            || self.controls.cancels.remove(&txn)
            || self.controls.pracks.remove(&txn)
        {
            return true;
        }
        let Some(id) = self.controls.invites.remove(&txn) else {
            return false;
        };
        let moved = self.try_next_address(now, &id, ServerFailure::NoAnswer, None);
        if !moved && !self.fall_back(now, &id, 408) {
            self.feed(now, &id, Input::Sip(SipInput::RequestTimeout));
        }
        true
    }

    pub(super) fn send_cancel(&mut self, now: Instant, id: &str) {
        let Some(out) = self.controls.out_mut(id) else {
            return;
        };
        out.cancelled = true;
        let cancel = cancel_for(&out.invite);
        let peer = out.peer;
        let txn = self.endpoint.send_request(now, peer, cancel);
        self.controls.cancels.insert(txn);
    }

    /// Where trunk `trunk` registers, when it does.
    fn registered_addr(&self, trunk: &str) -> Option<std::net::SocketAddr> {
        self.trunk_regs.get(trunk).and_then(|r| r.addr())
    }

    /// The connection SIPx keeps to a trunk's provider (registered over TCP/TLS).
    fn trunk_flow(&self, trunk: &str) -> Option<sipx_sip::FlowId> {
        self.trunk_regs.get(trunk).and_then(|r| r.stream_flow())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_user_of_a_uri_or_a_number() {
        assert_eq!(user_of("sip:+4930@example.com"), "+4930");
        assert_eq!(user_of("+4930"), "+4930");
        assert_eq!(dial_user("*12#"), "*12%23");
        assert_eq!(dial_user("sip:%2312@example.com"), "%2312");
    }
}
