//! The transaction layer (RFC 3261 §17, RFC 6026): routes received messages to transactions,
//! runs their timers, and tells the transaction user (TU) what happened.
//!
//! Contract, as in str0m and quinn-proto: feed one input (`handle_datagram`, `handle_message`,
//! `handle_timeout`, or a TU call such as `respond`), then drain `poll_output` until it returns
//! `None`, and sleep until `poll_timeout`. No clock is read here: every call brings `now`.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::msg::{
    HasHeaders, MAGIC_COOKIE, Method, ParseError, Request, Response, SipMessage, Via,
    parse_datagram, response_from_headers,
};
use crate::recent_answers::RecentAnswers;
use crate::rng::Rng;
use crate::transport::{Peer, Transmit};

/// How long a client INVITE transaction waits in Proceeding (after a provisional answer)
/// before it gives up: far longer than any ring the TU lets run (SIPx's API takes ring
/// timeouts up to 10 minutes, then cancels), so it only ends a transaction whose UAS never
/// sends a final answer, not even to a CANCEL. In the spirit of RFC 3261 §16.6's Timer C.
const PROCEEDING_GUARD: Duration = Duration::from_secs(11 * 60);

/// Timer base values (RFC 3261 §17.1.1.1 and Table 4).
#[derive(Debug, Clone)]
pub struct EndpointConfig {
    /// RTT estimate (default 500 ms).
    pub t1: Duration,
    /// Maximum retransmit interval for non-INVITE requests and INVITE responses (default 4 s).
    pub t2: Duration,
    /// Maximum time a message remains in the network (default 5 s).
    pub t4: Duration,
    /// Seeds tags and branches; drivers pass OS randomness.
    pub seed: u64,
}

impl Default for EndpointConfig {
    fn default() -> Self {
        EndpointConfig {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
            seed: 0,
        }
    }
}

/// A server transaction, as the TU names it when responding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServerTxnId(u64);

/// A client transaction, as the TU names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientTxnId(u64);

/// What happened, for the TU.
#[derive(Debug, Clone)]
pub enum Event {
    /// A new request. Answer it with [`Endpoint::respond`].
    Request {
        txn: ServerTxnId,
        request: Request,
        peer: Peer,
    },
    /// A CANCEL matched this INVITE transaction; the CANCEL itself was answered 200. The TU
    /// should answer the INVITE with 487.
    Cancelled { invite: ServerTxnId },
    /// An ACK outside any transaction: the ACK of a 2xx (RFC 3261 §17.1.1.3), for dialogs.
    /// `acked`: the INVITE transaction whose 2xx it acknowledges (matched by Call-ID, CSeq
    /// number and From tag), while that transaction is known.
    Ack {
        request: Request,
        peer: Peer,
        acked: Option<ServerTxnId>,
    },
    /// A response on a client transaction.
    Response {
        txn: ClientTxnId,
        response: Response,
        peer: Peer,
    },
    /// Timer B or F fired: no final response. The TU acts as if it had received 408.
    ClientTimeout { txn: ClientTxnId },
    /// A 2xx to an INVITE was not acknowledged within 64*T1: the TU should send BYE.
    AckTimeout { txn: ServerTxnId },
    /// A response that matches no transaction, e.g. a 2xx retransmitted after the client
    /// transaction ended; the dialog layer may acknowledge it again.
    StrayResponse { response: Response, peer: Peer },
    /// A message that could not be parsed (a request was answered 400/505 when possible).
    Malformed { peer: Peer, error: ParseError },
}

#[derive(Debug)]
pub enum Output {
    Transmit(Transmit),
    Event(Event),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Server non-INVITE before any response; client non-INVITE before any response.
    Trying,
    /// Client INVITE before any response.
    Calling,
    Proceeding,
    Completed,
    /// Server INVITE after the ACK of a non-2xx final response.
    Confirmed,
    /// RFC 6026: INVITE after a 2xx, absorbing retransmissions.
    Accepted,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ServerKey {
    branch: String,
    sent_by: String,
    method: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ClientKey {
    branch: String,
    method: String,
}

/// (Call-ID, CSeq number, From tag): finds the INVITE a 2xx-ACK belongs to, and detects
/// merged requests (RFC 3261 §8.2.2.2).
type DialogishKey = (String, u32, String);

#[derive(Debug)]
struct Txn {
    server: bool,
    invite: bool,
    state: State,
    peer: Peer,
    server_key: Option<ServerKey>,
    client_key: Option<ClientKey>,
    ack_key: Option<DialogishKey>,
    merge_key: Option<(DialogishKey, String)>,
    /// Server: the last response sent. Client: the request.
    last: Vec<u8>,
    /// Server INVITE: the To tag its responses carry, for the 200 to a CANCEL of it.
    to_tag: Option<String>,
    /// Client INVITE: the request, to build the ACK of a non-2xx answer.
    request: Option<Request>,
    /// Client INVITE: the ACK sent for a non-2xx answer, resent on retransmissions.
    ack: Option<Vec<u8>>,
    acked: bool,
    retransmit_at: Option<Instant>,
    interval: Duration,
    end_at: Option<Instant>,
    /// The deadline registered in the timer set.
    armed: Option<Instant>,
}

impl Txn {
    /// A transaction with no keys, responses or timers yet.
    fn new(server: bool, invite: bool, state: State, peer: Peer, t1: Duration) -> Txn {
        Txn {
            server,
            invite,
            state,
            peer,
            server_key: None,
            client_key: None,
            ack_key: None,
            merge_key: None,
            last: Vec::new(),
            to_tag: None,
            request: None,
            ack: None,
            acked: false,
            retransmit_at: None,
            interval: t1,
            end_at: None,
            armed: None,
        }
    }

    fn deadline(&self) -> Option<Instant> {
        match (self.retransmit_at, self.end_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

pub struct Endpoint {
    cfg: EndpointConfig,
    rng: Rng,
    next_id: u64,
    txns: HashMap<u64, Txn, crate::FastHash>,
    server_keys: HashMap<ServerKey, u64, crate::FastHash>,
    client_keys: HashMap<ClientKey, u64, crate::FastHash>,
    ack_keys: HashMap<DialogishKey, u64, crate::FastHash>,
    merge_keys: HashMap<DialogishKey, (u64, String), crate::FastHash>,
    timers: BTreeSet<(Instant, u64)>,
    out: VecDeque<Output>,
    /// Keys the To tags of answers sent without a transaction (`stateless_tag`).
    stateless_key: u64,
    /// The answers `respond_stateless` sent lately, for their requests' retransmissions.
    stateless_answers: RecentAnswers<ServerKey>,
}

impl Endpoint {
    pub fn new(cfg: EndpointConfig) -> Self {
        let mut rng = Rng::new(cfg.seed);
        Endpoint {
            stateless_answers: RecentAnswers::new(64 * cfg.t1),
            stateless_key: rng.next_u64(),
            rng,
            cfg,
            next_id: 1,
            txns: HashMap::default(),
            server_keys: HashMap::default(),
            client_keys: HashMap::default(),
            ack_keys: HashMap::default(),
            merge_keys: HashMap::default(),
            timers: BTreeSet::new(),
            out: VecDeque::new(),
        }
    }

    pub fn config(&self) -> &EndpointConfig {
        &self.cfg
    }

    /// A new branch with the RFC 3261 magic cookie.
    pub fn new_branch(&mut self) -> String {
        format!("{MAGIC_COOKIE}{}", self.rng.token(16))
    }

    /// A new tag for From/To.
    pub fn new_tag(&mut self) -> String {
        self.rng.token(12)
    }

    /// A new Call-ID.
    pub fn new_call_id(&mut self) -> String {
        self.rng.token(24)
    }

    /// How many transactions are live.
    pub fn transaction_count(&self) -> usize {
        self.txns.len()
    }

    #[must_use]
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// When to call [`Endpoint::handle_timeout`] next.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.first().map(|(at, _)| *at)
    }

    fn transmit(&mut self, peer: Peer, bytes: Vec<u8>) {
        self.out
            .push_back(Output::Transmit(Transmit { peer, bytes }));
    }

    fn event(&mut self, e: Event) {
        self.out.push_back(Output::Event(e));
    }

    /// A datagram from `peer` (UDP).
    pub fn handle_datagram(&mut self, now: Instant, peer: Peer, bytes: &[u8]) {
        match parse_datagram(bytes) {
            Ok(msg) => self.handle_message(now, peer, msg),
            Err(error) => self.malformed(peer, error),
        }
    }

    /// A message already framed and parsed by a stream transport, or its parse error.
    pub fn handle_parsed(&mut self, now: Instant, peer: Peer, msg: Result<SipMessage, ParseError>) {
        match msg {
            Ok(msg) => self.handle_message(now, peer, msg),
            Err(error) => self.malformed(peer, error),
        }
    }

    /// The To tag of an answer sent without a transaction: the same for every retransmission
    /// of a request (RFC 3261 §8.2.7), from its Call-ID, From, CSeq and top Via, keyed so that
    /// nobody can predict it (std's SipHash over the key and the fields).
    fn stateless_tag(&self, headers: &crate::msg::Headers) -> String {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::hash::DefaultHasher::new();
        self.stateless_key.hash(&mut hasher);
        ["Call-ID", "From", "CSeq", "Via"]
            .map(|n| headers.get(n).unwrap_or(""))
            .hash(&mut hasher);
        format!("{:016x}", hasher.finish())
    }

    fn malformed(&mut self, peer: Peer, error: ParseError) {
        // Answer malformed requests when the response can be routed (it needs a Via); a
        // malformed response is dropped (RFC 3261 §18.1.2).
        if error.is_request
            && let Some(headers) = &error.headers
            && headers.get("Via").is_some()
        {
            // A tag for the To even of a 400 (RFC 3261 §8.2.6.2), when the To is readable.
            let tag = self.stateless_tag(headers);
            // The Via says where it came from (§18.2.1) and where the answer goes (§18.2.2),
            // as for any request.
            let mut headers = headers.clone();
            let to = match Self::stamp_via(&mut headers, &peer) {
                Some(via) => Self::response_peer(&via, peer),
                None => peer,
            };
            let response =
                response_from_headers(&headers, error.status, Some(&error.reason), Some(&tag));
            self.transmit(to, response.to_bytes());
        }
        self.event(Event::Malformed { peer, error });
    }

    pub fn handle_message(&mut self, now: Instant, peer: Peer, msg: SipMessage) {
        match msg {
            SipMessage::Request(r) => self.on_request(now, peer, r),
            SipMessage::Response(r) => self.on_response(now, peer, r),
        }
    }

    // === Server side ===

    fn server_key(req: &Request, via: &Via, method: &Method) -> ServerKey {
        let method = match method {
            Method::Ack => "INVITE".to_owned(),
            m => m.as_str().to_owned(),
        };
        match via.branch() {
            Some(b) if b.starts_with(MAGIC_COOKIE) => ServerKey {
                branch: b.to_owned(),
                sent_by: via.sent_by().to_ascii_lowercase(),
                method,
            },
            // RFC 2543 peers: match on the dialog-ish identity plus the top Via.
            _ => ServerKey {
                branch: format!(
                    "2543|{}|{}|{}|{}",
                    req.call_id().unwrap_or(""),
                    req.cseq().map_or(0, |c| c.seq),
                    req.from()
                        .and_then(|f| f.tag().map(str::to_owned))
                        .unwrap_or_default(),
                    req.uri
                ),
                sent_by: via.to_string(),
                method,
            },
        }
    }

    fn dialogish(req: &impl HasHeaders) -> Option<DialogishKey> {
        // No From tag (an RFC 2543 peer): a null one (RFC 3261 §12.1.1).
        Some((
            req.call_id()?.to_owned(),
            req.cseq()?.seq,
            req.tag_of_from().unwrap_or_default().to_owned(),
        ))
    }

    /// Records where the request really came from in its top Via (RFC 3261 §18.2.1, RFC 3581).
    /// The header is rewritten only when a parameter must be added or changed.
    fn stamp_via(headers: &mut crate::msg::Headers, peer: &Peer) -> Option<Via> {
        let index = headers.0.iter().position(|h| h.name == "Via")?;
        let line = &headers.0[index].value;
        let values = crate::msg::lex::split_top(line, ',')?;
        let mut via = Via::parse(values.first()?)?;
        let ip = peer.addr.ip().to_string();
        let port = peer.addr.port().to_string();
        let rport = via.param("rport").is_some();
        let needs_received = via.host.trim_matches(['[', ']']) != ip;
        if !rport && !needs_received {
            return Some(via);
        }
        if rport && via.param("rport") == Some(Some(port.as_str())) && !needs_received {
            return Some(via);
        }
        if rport {
            via.set_param("rport", Some(port));
        }
        if rport || needs_received {
            via.set_param("received", Some(ip));
        }
        let mut rebuilt = via.to_string();
        for v in &values[1..] {
            rebuilt.push_str(", ");
            rebuilt.push_str(v.trim());
        }
        headers.0[index].value = rebuilt;
        Some(via)
    }

    /// Where a request's responses go (RFC 3261 §18.2.2, RFC 3581), and so where the
    /// requester is reached: over UDP without `rport`, the sent-by port of a Via that names
    /// the source address (a UA that sends from one socket and listens on another); when the
    /// Via names another address (a UA behind NAT that wrote its private one), the source, as
    /// with `rport`, since the sent-by port is as unreachable as the address. Streams answer
    /// on the connection.
    fn response_peer(via: &Via, peer: Peer) -> Peer {
        let behind_nat = via.host.trim_matches(['[', ']']) != peer.addr.ip().to_string();
        if peer.transport != crate::Transport::Udp
            || via.param("rport").is_some()
            || behind_nat
            || via.port == Some(0)
        {
            return peer;
        }
        let port = via.port.unwrap_or(5060);
        Peer {
            addr: std::net::SocketAddr::new(peer.addr.ip(), port),
            ..peer
        }
    }

    fn on_request(&mut self, now: Instant, source: Peer, mut req: Request) {
        let Some(via) = Self::stamp_via(&mut req.headers, &source) else {
            return;
        };
        // Responses go where the Via says, and the TU reaches the requester there too (its
        // BYE, a call to the device it registered).
        let peer = Self::response_peer(&via, source);
        let method = req.method.clone();
        let key = Self::server_key(&req, &via, &method);
        if method == Method::Ack {
            self.on_ack(now, source, req, &key);
            return;
        }
        if let Some(&id) = self.server_keys.get(&key) {
            self.on_retransmitted_request(id);
            return;
        }
        if source.transport == crate::Transport::Udp
            && let Some(bytes) =
                self.stateless_answers
                    .answer(now, &key, &Self::request_id(&req, peer))
        {
            self.transmit(peer, bytes);
            return;
        }
        if method == Method::Cancel {
            self.on_cancel(now, peer, req, key);
            return;
        }
        // Merged request (RFC 3261 §8.2.2.2): same From tag, Call-ID and CSeq as a live
        // transaction but another branch, and no To tag: it forked and came back. 482.
        // REGISTER is exempt: it goes to its domain's registrar and is never forked, and
        // skipping the bookkeeping matters at registrar rates.
        let merge = if method != Method::Register && req.tag_of_to().is_none() {
            Self::dialogish(&req)
        } else {
            None
        };
        if let Some(m) = &merge
            && let Some((other, other_branch)) = self.merge_keys.get(m)
            && self.txns.contains_key(other)
            && *other_branch != key.branch
        {
            let tag = self.new_tag();
            let resp = req.response(482, Some(&tag));
            self.transmit(peer, resp.to_bytes());
            return;
        }
        let invite = method == Method::Invite;
        let state = if invite {
            State::Proceeding
        } else {
            State::Trying
        };
        let id = self.insert(Txn {
            server_key: Some(key.clone()),
            merge_key: merge.clone().map(|m| (m, key.branch.clone())),
            ..Txn::new(true, invite, state, peer, self.cfg.t1)
        });
        self.server_keys.insert(key.clone(), id);
        if let Some(m) = merge {
            self.merge_keys.insert(m, (id, key.branch));
        }
        if invite {
            // 100 Trying at once: it stops the caller's INVITE retransmissions early. It
            // carries the request's Timestamp (RFC 3261 §8.2.6.1), sent with no delay to add.
            let mut trying = req.response(100, None);
            if let Some(stamp) = req.headers.get("Timestamp") {
                trying.headers.push("Timestamp", stamp);
            }
            let bytes = trying.to_bytes();
            if let Some(t) = self.txns.get_mut(&id) {
                t.last = bytes.clone();
            }
            self.transmit(peer, bytes);
        }
        self.event(Event::Request {
            txn: ServerTxnId(id),
            request: req,
            peer,
        });
    }

    fn on_retransmitted_request(&mut self, id: u64) {
        let Some(t) = self.txns.get(&id) else {
            return;
        };
        let resend = match t.state {
            State::Proceeding | State::Completed if !t.last.is_empty() => {
                Some((t.peer, t.last.clone()))
            }
            // Trying: the TU has not answered yet; Accepted/Confirmed: absorbed (RFC 6026).
            _ => None,
        };
        if let Some((peer, bytes)) = resend {
            self.transmit(peer, bytes);
        }
    }

    fn on_ack(&mut self, now: Instant, peer: Peer, req: Request, key: &ServerKey) {
        // The ACK of a non-2xx final response belongs to the INVITE transaction.
        if let Some(&id) = self.server_keys.get(key) {
            let t4 = self.cfg.t4;
            if let Some(t) = self.txns.get_mut(&id)
                && t.invite
            {
                match t.state {
                    State::Completed => {
                        t.state = State::Confirmed;
                        t.retransmit_at = None;
                        // Timer I: absorb ACK retransmissions for T4 (none on reliable).
                        t.end_at = Some(if t.peer.transport.is_reliable() {
                            now
                        } else {
                            now + t4
                        });
                        self.rearm(id);
                        return;
                    }
                    State::Confirmed => return,
                    _ => {}
                }
            }
        }
        // The ACK of a 2xx is its own transaction: match it to the Accepted INVITE.
        if let Some(k) = Self::dialogish(&req)
            && let Some(&id) = self.ack_keys.get(&k)
            && let Some(t) = self.txns.get_mut(&id)
        {
            let first = !t.acked;
            t.acked = true;
            t.retransmit_at = None;
            self.rearm(id);
            if first {
                self.event(Event::Ack {
                    request: req,
                    peer,
                    acked: Some(ServerTxnId(id)),
                });
            }
            return;
        }
        self.event(Event::Ack {
            request: req,
            peer,
            acked: None,
        });
    }

    fn on_cancel(&mut self, now: Instant, peer: Peer, req: Request, key: ServerKey) {
        let invite_key = ServerKey {
            method: "INVITE".to_owned(),
            ..key.clone()
        };
        let target = self
            .server_keys
            .get(&invite_key)
            .copied()
            .filter(|id| self.txns.get(id).is_some_and(|t| t.invite));
        let id = self.insert(Txn {
            server_key: Some(key.clone()),
            ..Txn::new(true, false, State::Trying, peer, self.cfg.t1)
        });
        self.server_keys.insert(key, id);
        let status = if target.is_some() { 200 } else { 481 };
        // A UAS tags its final responses (RFC 3261 §8.2.6.2); the CANCEL's should carry the
        // tag the INVITE's responses carry (§9.2), else one of its own.
        let tag = target
            .and_then(|t| self.txns.get(&t))
            .and_then(|t| t.to_tag.clone())
            .unwrap_or_else(|| self.new_tag());
        let resp = req.response(status, Some(&tag));
        self.respond(now, ServerTxnId(id), resp);
        if let Some(invite) = target
            && self
                .txns
                .get(&invite)
                .is_some_and(|t| t.state == State::Proceeding)
        {
            self.event(Event::Cancelled {
                invite: ServerTxnId(invite),
            });
        }
    }

    /// Sends `response` on a server transaction. Responses after the final one are ignored,
    /// except that an INVITE's 2xx may follow provisional ones.
    pub fn respond(&mut self, now: Instant, txn: ServerTxnId, response: Response) {
        let t1 = self.cfg.t1;
        let id = txn.0;
        let ack_key = Self::dialogish(&response);
        let Some(t) = self.txns.get_mut(&id) else {
            return;
        };
        if !t.server || !matches!(t.state, State::Trying | State::Proceeding) {
            return;
        }
        let bytes = response.to_bytes();
        let peer = t.peer;
        let unreliable = !peer.transport.is_reliable();
        t.last = bytes.clone();
        if t.invite && t.to_tag.is_none() {
            t.to_tag = response.tag_of_to().map(str::to_owned);
        }
        let status = response.status;
        let mut register_ack = None;
        match (t.invite, status) {
            (_, 100..=199) => t.state = State::Proceeding,
            (true, 200..=299) => {
                t.state = State::Accepted;
                // The UAS core retransmits its 2xx until the ACK (RFC 3261 §13.3.1.4) over
                // any transport: the 2xx is end to end, and a proxy further on may forward
                // it over UDP. The Accepted state also absorbs INVITE retransmissions (Timer L).
                t.interval = t1;
                t.retransmit_at = Some(now + t1);
                t.end_at = Some(now + 64 * t1);
                register_ack = ack_key;
            }
            (true, _) => {
                t.state = State::Completed;
                t.interval = t1;
                t.retransmit_at = unreliable.then(|| now + t1); // Timer G
                t.end_at = Some(now + 64 * t1); // Timer H
            }
            (false, _) => {
                t.state = State::Completed;
                t.end_at = Some(if unreliable { now + 64 * t1 } else { now }); // Timer J
            }
        }
        if let Some(k) = register_ack {
            if let Some(t) = self.txns.get_mut(&id) {
                t.ack_key = Some(k.clone());
            }
            self.ack_keys.insert(k, id);
        }
        self.rearm(id);
        self.transmit(peer, bytes);
    }

    /// Answers and forgets the transaction at once (RFC 3261 §8.2.7 stateless UAS): for 401
    /// challenges, where keeping a whole transaction until Timer J would cost memory for
    /// nothing. Over UDP only the answer's bytes are kept, in a bounded memory
    /// (`recent_answers.rs`), for the request's retransmissions.
    pub fn respond_stateless(&mut self, now: Instant, txn: ServerTxnId, response: Response) {
        let Some(t) = self.txns.get_mut(&txn.0) else {
            return;
        };
        if !t.server || !matches!(t.state, State::Trying | State::Proceeding) {
            return;
        }
        let (peer, key) = (t.peer, t.server_key.clone());
        self.remove(txn.0);
        let bytes = response.to_bytes();
        if let Some(key) = key
            && peer.transport == crate::Transport::Udp
        {
            let key_len = key.branch.len() + key.sent_by.len() + key.method.len();
            let request = Self::request_id(&response, peer);
            self.stateless_answers
                .remember(now, key, key_len, request, bytes.clone());
        }
        self.transmit(peer, bytes);
    }

    /// A request's Call-ID and CSeq number (a response's echo them) and where its answer
    /// goes: told apart from another request under the same transaction key (a client that
    /// reuses its branches, another device behind another NAT with the same private Via).
    fn request_id(message: &impl HasHeaders, peer: Peer) -> crate::recent_answers::RequestId {
        (
            message.call_id().unwrap_or_default().to_owned(),
            message.cseq().map_or(0, |c| c.seq),
            peer.addr,
        )
    }

    /// Drops a server transaction without answering (a scanner, a banned source): nothing is
    /// sent and its retransmissions will start a new, equally unanswered, transaction.
    pub fn abandon(&mut self, txn: ServerTxnId) {
        self.remove(txn.0);
    }

    // === Client side ===

    /// Gives up a client transaction whose outcome no longer matters (the refresh of a call
    /// that ended): no more retransmissions, and a late answer matches nothing.
    pub fn abandon_request(&mut self, txn: ClientTxnId) {
        self.remove(txn.0);
    }

    /// Sends a request in a new client transaction. The request must carry its top Via with a
    /// branch from [`Endpoint::new_branch`]. ACKs do not go through here (see `send_stateless`).
    pub fn send_request(&mut self, now: Instant, peer: Peer, request: Request) -> ClientTxnId {
        let t1 = self.cfg.t1;
        let branch = request
            .top_via()
            .and_then(|v| v.branch().map(str::to_owned))
            .unwrap_or_default();
        let invite = request.method == Method::Invite;
        let key = ClientKey {
            branch,
            method: request.method.as_str().to_owned(),
        };
        let bytes = request.to_bytes();
        let unreliable = !peer.transport.is_reliable();
        let state = if invite {
            State::Calling
        } else {
            State::Trying
        };
        let id = self.insert(Txn {
            client_key: Some(key.clone()),
            last: bytes.clone(),
            request: invite.then_some(request),
            retransmit_at: unreliable.then(|| now + t1), // Timer A / E
            end_at: Some(now + 64 * t1),                 // Timer B / F
            ..Txn::new(false, invite, state, peer, t1)
        });
        self.client_keys.insert(key, id);
        self.rearm(id);
        self.transmit(peer, bytes);
        ClientTxnId(id)
    }

    /// Sends bytes outside any transaction (the ACK of a 2xx, a CRLF keep-alive).
    pub fn send_stateless(&mut self, peer: Peer, bytes: Vec<u8>) {
        self.transmit(peer, bytes);
    }

    fn on_response(&mut self, now: Instant, peer: Peer, response: Response) {
        // Ours carry one Via: a response with more is not ours to act on (RFC 3261 §18.1.2).
        if response.headers.list("Via").len() != 1 {
            return;
        }
        let key = ClientKey {
            branch: response
                .top_via()
                .and_then(|v| v.branch().map(str::to_owned))
                .unwrap_or_default(),
            method: response
                .cseq()
                .map(|c| c.method.as_str().to_owned())
                .unwrap_or_default(),
        };
        let Some(&id) = self.client_keys.get(&key) else {
            self.event(Event::StrayResponse { response, peer });
            return;
        };
        let (t2, t4) = (self.cfg.t2, self.cfg.t4);
        let Some(t) = self.txns.get_mut(&id) else {
            return;
        };
        let status = response.status;
        let reliable = t.peer.transport.is_reliable();
        let mut deliver = true;
        let mut send_ack = None;
        match (t.invite, t.state, status) {
            (true, State::Calling | State::Proceeding, 100..=199) => {
                t.state = State::Proceeding;
                t.retransmit_at = None;
                // Timer B stops here (RFC 3261 §17.1.1.2): a phone may ring for as long as
                // the TU lets it, which then cancels. Only a guard against a UAS that never
                // answers even a CANCEL remains, renewed by each provisional answer.
                t.end_at = Some(now + PROCEEDING_GUARD);
            }
            (true, State::Calling | State::Proceeding, 200..=299) => {
                t.state = State::Accepted;
                t.retransmit_at = None;
                t.end_at = Some(now + 64 * self.cfg.t1); // Timer M
            }
            (true, State::Accepted, 200..=299) => {}
            (true, State::Calling | State::Proceeding, _) => {
                t.state = State::Completed;
                t.retransmit_at = None;
                // Timer D: 32 s covers the server's retransmissions of its final answer.
                t.end_at = Some(if reliable {
                    now
                } else {
                    now + Duration::from_secs(32)
                });
                let ack = t
                    .request
                    .as_ref()
                    .map(|r| ack_for_non_2xx(r, &response).to_bytes());
                t.ack = ack.clone();
                send_ack = ack;
            }
            (true, State::Completed, 300..=699) => {
                deliver = false;
                send_ack = t.ack.clone();
            }
            (false, State::Trying | State::Proceeding, 100..=199) => {
                t.state = State::Proceeding;
                if t.retransmit_at.is_some() {
                    t.interval = t2;
                }
            }
            (false, State::Trying | State::Proceeding, _) => {
                t.state = State::Completed;
                t.retransmit_at = None;
                t.end_at = Some(if reliable { now } else { now + t4 }); // Timer K
            }
            _ => deliver = false,
        }
        let tpeer = t.peer;
        self.rearm(id);
        if let Some(ack) = send_ack {
            self.transmit(tpeer, ack);
        }
        if deliver {
            self.event(Event::Response {
                txn: ClientTxnId(id),
                response,
                peer,
            });
        }
    }

    // === Timers ===

    fn insert(&mut self, txn: Txn) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.txns.insert(id, txn);
        id
    }

    /// Re-registers the transaction's earliest deadline in the timer set.
    fn rearm(&mut self, id: u64) {
        let Some(t) = self.txns.get_mut(&id) else {
            return;
        };
        if let Some(old) = t.armed.take() {
            self.timers.remove(&(old, id));
        }
        if let Some(at) = t.deadline() {
            t.armed = Some(at);
            self.timers.insert((at, id));
        }
    }

    fn remove(&mut self, id: u64) {
        if let Some(t) = self.txns.remove(&id) {
            if let Some(at) = t.armed {
                self.timers.remove(&(at, id));
            }
            if let Some(k) = t.server_key {
                self.server_keys.remove(&k);
            }
            if let Some(k) = t.client_key {
                self.client_keys.remove(&k);
            }
            if let Some(k) = t.ack_key {
                self.ack_keys.remove(&k);
            }
            if let Some((k, _)) = t.merge_key
                && self.merge_keys.get(&k).is_some_and(|(i, _)| *i == id)
            {
                self.merge_keys.remove(&k);
            }
        }
    }

    /// Fires every timer due at `now`. Extra calls do nothing.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(&(at, id)) = self.timers.first() {
            if at > now {
                break;
            }
            self.timers.remove(&(at, id));
            if let Some(t) = self.txns.get_mut(&id) {
                t.armed = None;
            }
            self.fire(now, id);
        }
    }

    fn fire(&mut self, now: Instant, id: u64) {
        let t2 = self.cfg.t2;
        let Some(t) = self.txns.get_mut(&id) else {
            return;
        };
        if t.end_at.is_some_and(|e| e <= now) {
            let timed_out = match (t.server, t.state) {
                (false, State::Calling | State::Trying | State::Proceeding) => {
                    Some(Event::ClientTimeout {
                        txn: ClientTxnId(id),
                    })
                }
                (true, State::Accepted) if !t.acked => Some(Event::AckTimeout {
                    txn: ServerTxnId(id),
                }),
                _ => None,
            };
            self.remove(id);
            if let Some(e) = timed_out {
                self.event(e);
            }
            return;
        }
        if t.retransmit_at.is_some_and(|r| r <= now) {
            let (peer, bytes) = (t.peer, t.last.clone());
            t.interval = match (t.server, t.invite, t.state) {
                // Timer A doubles without a cap.
                (false, true, _) => t.interval * 2,
                // Timer E in Proceeding stays at T2.
                (false, false, State::Proceeding) => t2,
                _ => (t.interval * 2).min(t2),
            };
            t.retransmit_at = Some(now + t.interval);
            self.rearm(id);
            self.transmit(peer, bytes);
        } else {
            self.rearm(id);
        }
    }
}

/// The ACK for a non-2xx final response (RFC 3261 §17.1.1.3): same branch and Request-URI,
/// To from the response, CSeq number of the INVITE.
fn ack_for_non_2xx(invite: &Request, response: &Response) -> Request {
    let mut headers = crate::msg::Headers::new();
    if let Some(v) = invite.headers.list("Via").first() {
        headers.push("Via", *v);
    }
    for route in invite.headers.get_all("Route") {
        headers.push("Route", route);
    }
    headers.push("Max-Forwards", "70");
    for name in ["From", "Call-ID"] {
        if let Some(v) = invite.headers.get(name) {
            headers.push(name, v);
        }
    }
    if let Some(to) = response.headers.get("To") {
        headers.push("To", to);
    }
    headers.push(
        "CSeq",
        format!("{} ACK", invite.cseq().map_or(1, |c| c.seq)),
    );
    Request {
        method: Method::Ack,
        uri: invite.uri.clone(),
        headers,
        body: Vec::new(),
    }
}
