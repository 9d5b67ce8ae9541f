//! The SIP core task: owns the sans-IO `Endpoint`, feeds it what the socket tasks received and
//! the timers, sends what it asks to send, and plays the transaction user (OPTIONS, REGISTER).
//!
//! One task, one `&mut` owner: no locks around protocol state. Anything slow (database reads)
//! runs in a spawned task whose result comes back as another input.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ipnet::IpNet;
use sipx_api::{BindingView, Runtime};
use sipx_secrets::Redacted;
use sipx_sip::digest::{DigestError, DigestParams, DigestServer};
use sipx_sip::msg::{HasHeaders, Method, ParseError, Request, Response, SipMessage};
use sipx_sip::registrar::{self, Binding, RegisterPolicy};
use sipx_sip::uas::{UasPolicy, precheck};
use sipx_sip::{
    ClientTxnId, Endpoint, Event, FlowId, Output, Peer, ServerTxnId, Transmit, Transport,
};
use sipx_store::{BindingSet, RegistrationRecord, Store, TrunkWithSecrets};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};

use super::abuse::{AbuseGuard, AbusePolicy, is_scanner};
use super::transport::FlowIds;
use crate::config::UnknownSourcePolicy;

mod byes;
mod call_rows;
pub(crate) use call_rows::progress as call_progress;
mod calls;
mod control;
mod dial;
mod digit_paths;
mod early_dialogs;
mod events;
mod inbound;
mod inbound_control;
mod info_dtmf;
mod loaded;
mod next_hop;
mod origin;
mod phone_transfer;
mod pin_gate;
mod provider_hosts;
mod reconnect;
mod refresh_invite;
mod replacing;
mod routing;
mod server_failover;
mod session_timers;
mod shutdown;
mod sources;
mod transfer;
mod trunk_links;
mod trunks;
pub(crate) use call_rows::persist_rows;
use calls::Calls;
use control::Controls;
use origin::Origins;
use pin_gate::GateTimers;
use routing::Routing;
use session_timers::SessionTimers;
pub(crate) use shutdown::ShutdownLink;
use sources::BindingSources;
use trunks::TrunkReg;

/// How long a looked-up account is trusted before it is read again (API changes reach the
/// registrar within this time).
const ACCOUNT_TTL: Duration = Duration::from_secs(5);

pub(crate) enum CoreInput {
    Parsed {
        peer: Peer,
        msg: Result<SipMessage, ParseError>,
    },
    /// A CRLFCRLF keep-alive on a stream: answer with CRLF.
    Pong {
        peer: Peer,
    },
    FlowOpened {
        flow: FlowId,
        tx: super::write_queue::WriteQueue,
    },
    FlowClosed {
        flow: FlowId,
    },
    /// A connection SIPx opened (to a provider) could not be established.
    ConnectFailed {
        flow: FlowId,
        reason: String,
    },
    AccountLoaded {
        username: String,
        account: Option<Account>,
        /// The store's change version the lookup started from.
        version: u64,
    },
    /// Binding changes committed (or not): the REGISTER answers held back until then.
    Persisted {
        replies: Vec<(ServerTxnId, Response)>,
        ok: bool,
    },
    /// Trunks (re)loaded from the store, each with its provider's resolved address, and the
    /// SIP accounts' SRTP policies, number rules and codecs (those that set any; `None` when
    /// they could not be read).
    TrunksLoaded {
        trunks: Vec<(TrunkWithSecrets, Option<SocketAddr>)>,
        accounts: Option<Vec<sipx_store::AccountCallSettings>>,
        /// (name, application) of every account and API key devices register with; `None`
        /// when they could not be read.
        registrants: Option<HashSet<(String, String)>>,
        /// The store's change version the load started from.
        version: u64,
    },
    /// A media leg reported something (DTMF, media timeout).
    Media(crate::media::MediaEvent),
    /// The rooms removed a phone participant: its call must end.
    Room(crate::rooms::PhoneNotice),
    /// A command of the API for call control.
    Call(
        crate::sip::call_service::CallCommand,
        crate::sip::call_service::Reply,
    ),
    /// A dial-out's host was looked up.
    Resolved {
        id: String,
        /// In the order to try them; none when the host does not resolve.
        addrs: Vec<SocketAddr>,
        invite: sipx_call::Invite,
    },
    /// Input for a controlled call's machine, queued while it was being driven.
    CallInput {
        id: String,
        input: sipx_call::Input,
    },
    /// The rooms answered a phone's join.
    RoomJoined {
        leg: crate::media::LegId,
        result: Result<sipx_rooms::ParticipantId, sipx_rooms::RoomError>,
    },
    /// A trunk provider's host resolved to a new address: the trunks load again.
    ProviderHostsResolved,
    /// The routing rules (re)loaded from the store, from its change `version`.
    RoutingLoaded {
        routing: Box<Routing>,
        version: u64,
    },
    /// A routing webhook answered question `id` (`None`: no usable answer in time).
    WebhookAnswered {
        id: u64,
        answer: Option<sipx_call::routing::WebhookAnswer>,
    },
    /// The call a phone's REFER asked for, routed and recorded (or refused).
    Referral {
        referral: Box<phone_transfer::PendingReferral>,
        placed: Result<
            Box<crate::sip::call_service::DialSpec>,
            sipx_api::call_service::CallCommandError,
        >,
    },
}

/// What the core needs to open connections of its own.
pub(crate) struct Connector {
    pub flow_ids: Arc<FlowIds>,
    pub tls: Option<tokio_rustls::TlsConnector>,
    pub stop: watch::Receiver<bool>,
}

/// A change for the registration writer, with the answer to send once it is durable.
pub(crate) struct PersistJob {
    set: BindingSet,
    reply: Option<(ServerTxnId, Response)>,
}

/// What the registrar needs to know of a registering identity.
#[derive(Clone)]
pub(crate) struct Account {
    app_id: String,
    password: Redacted<String>,
    allowed: Vec<IpNet>,
    max_bindings: u32,
    enabled: bool,
}

struct PendingRegister {
    txn: ServerTxnId,
    request: Request,
    peer: Peer,
    creds: DigestParams,
}

pub(crate) struct CoreSettings {
    pub register: RegisterPolicy,
    pub abuse: AbusePolicy,
    pub unknown_source: UnknownSourcePolicy,
    /// Period of keep-alives to UDP-registered devices; `None`: off.
    pub nat_keepalive: Option<Duration>,
    pub server_header: String,
    /// Host to advertise in Via/Contact (1:1 NAT), else the listening address.
    pub external_host: Option<String>,
    /// The bound UDP, TCP and TLS listeners, for the ports SIPx advertises.
    pub listeners: Vec<(Transport, SocketAddr)>,
    pub media: crate::media::MediaSettings,
    /// The answer to a call no routing rule of its application matches (404 or 480).
    pub no_rule_status: u16,
    /// Networks routing webhooks are never sent to.
    pub webhook_deny: crate::webhooks::DenyList,
    /// The smallest session timer interval (RFC 4028 `Min-SE`) SIPx takes, in seconds.
    pub session_min_se: u32,
    /// The session timer our dial-outs offer (0: none), not below `session_min_se`.
    pub session_expires: u32,
    /// Which blind transfers phones may ask for by REFER (`core/phone_transfer.rs`).
    pub accept_refer: crate::config::ReferPolicy,
    /// Name servers for SRV lookups (`locate`); empty: the system's.
    pub dns_servers: Vec<SocketAddr>,
}

pub(crate) struct Core {
    endpoint: Endpoint,
    settings: CoreSettings,
    uas: UasPolicy,
    digest: DigestServer,
    guard: AbuseGuard,
    udp: HashMap<FlowId, Arc<UdpSocket>>,
    /// The first UDP listener of each family (IPv4, IPv6), which requests to that family
    /// leave from.
    udp_by_family: [Option<FlowId>; 2],
    streams: HashMap<FlowId, super::write_queue::WriteQueue>,
    /// The tasks of the connections SIPx opened itself (to providers, or again toward a peer
    /// whose connection closed), waited for when SIPx stops like accepted ones are.
    own_connections: tokio::task::JoinSet<()>,
    /// The connections of TCP/TLS trunks that do not register, opened for their calls.
    trunk_links: trunk_links::TrunkLinks,
    /// username → its live registration.
    bindings: HashMap<String, Registration>,
    /// username → (its account or none, when read, the store version it was read at).
    accounts: HashMap<String, (Option<Account>, Instant, u64)>,
    /// The store versions of the trunks, accounts and rules in place.
    loaded: loaded::Loaded,
    pending: HashMap<String, Vec<PendingRegister>>,
    store: Store,
    inputs: mpsc::Sender<CoreInput>,
    persist: mpsc::UnboundedSender<PersistJob>,
    runtime: Runtime,
    /// Source addresses of live registrations, for "known source" and a call's account.
    registered: BindingSources,
    /// The trunks' inbound networks and digest users, and the trunks' and accounts' policies.
    origins: Origins,
    /// username → (application, contact → the binding) as last written to the store.
    persisted: HashMap<String, (String, HashMap<String, Binding>)>,
    /// trunk id → its outbound registration.
    trunk_regs: HashMap<String, TrunkReg>,
    /// The providers' addresses, looked up off the core.
    provider_hosts: provider_hosts::ProviderHosts,
    reg_txns: HashMap<ClientTxnId, String>,
    /// For connections SIPx opens itself (to providers).
    flow_ids: Arc<FlowIds>,
    tls_client: Option<tokio_rustls::TlsConnector>,
    stop: watch::Receiver<bool>,
    /// The UDP socket the core reads itself: handing each datagram from a socket task to the
    /// core costs a cross-thread wake-up, which under load cost more than the parsing saved.
    direct_udp: Option<(FlowId, Arc<UdpSocket>)>,
    udp_buf: Vec<u8>,
    media: Option<crate::media::MediaEngine>,
    rooms: Option<crate::rooms::RoomsHandle>,
    calls: Calls,
    controls: Controls,
    /// Transfers in progress (REFERs of ours), of dialled-out and inbound calls.
    transfers: transfer::Transfers,
    /// Transfers phones asked for (REFERs they sent us), of dialled-out and inbound calls.
    phone_transfers: phone_transfer::PhoneTransfers,
    /// Keys queued for inbound calls through the API.
    inbound_keys: inbound_control::InboundDtmf,
    /// The routing rules by application.
    routing: Routing,
    /// INVITEs waiting for their routing webhook.
    waiting: inbound::Waiting,
    /// The deadlines of calls behind a PIN.
    gates: GateTimers,
    /// The calls' RFC 4028 session timers.
    session_timers: SessionTimers,
    /// The writer of calls' rows, and the publisher of their events after it.
    rows: call_rows::RowSink,
    /// The flow of each stream connection by its remote address: requests SIPx starts toward
    /// a device registered over TCP/TLS/WS go down the connection it registered on.
    stream_flows: HashMap<SocketAddr, FlowId>,
    /// Connections opened for answers whose own connection closed.
    reconnects: reconnect::Reconnects,
    /// The process' drain and health, when the core takes part in a graceful stop.
    shutdown: Option<shutdown::ShutdownLink>,
}

/// Metric label of a method, without allocating (extension methods share one label).
fn method_label(m: &Method) -> &'static str {
    m.known_name().unwrap_or("other")
}

/// Metric label of a status code, without allocating.
fn status_label(status: u16) -> &'static str {
    const LABELS: [&str; 7] = ["0xx", "1xx", "2xx", "3xx", "4xx", "5xx", "6xx"];
    match status {
        100 => "100",
        180 => "180",
        183 => "183",
        200 => "200",
        401 => "401",
        403 => "403",
        404 => "404",
        407 => "407",
        481 => "481",
        486 => "486",
        487 => "487",
        500 => "500",
        503 => "503",
        s => LABELS[usize::from(s / 100).min(6)],
    }
}

/// A username's live registration.
pub(crate) struct Registration {
    pub app_id: String,
    pub contacts: Vec<Binding>,
    /// The store version its account was read at for its latest REGISTER (0: restored at
    /// start): a load of the accounts from before it may not know the account yet
    /// (`drop_orphan_bindings`).
    pub read_at: u64,
}

/// Whether `new` is `old` refreshed: the same in all but its expiry and the REGISTER that
/// refreshed it (Call-ID, CSeq), which a restart may forget.
fn same_but_refresh(old: &Binding, new: &Binding) -> bool {
    old.contact == new.contact
        && old.q == new.q
        && old.source == new.source
        && old.transport == new.transport
        && old.user_agent == new.user_agent
        && old.path == new.path
}

/// The API's view of registered contacts.
fn binding_views(bindings: &[Binding]) -> Vec<BindingView> {
    bindings
        .iter()
        .map(|b| BindingView {
            contact: b.contact.clone(),
            expires_at: b.expires_at,
            q: b.q,
            source: b.source.to_string(),
            transport: b.transport.via_name().to_owned(),
            user_agent: b.user_agent.clone(),
            path: b.path.clone(),
        })
        .collect()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Core {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        endpoint: Endpoint,
        settings: CoreSettings,
        digest: DigestServer,
        udp: HashMap<FlowId, Arc<UdpSocket>>,
        store: Store,
        inputs: mpsc::Sender<CoreInput>,
        persist: mpsc::UnboundedSender<PersistJob>,
        loaded: Vec<RegistrationRecord>,
        runtime: Runtime,
        connector: Connector,
    ) -> Self {
        let families = super::call_service::Families::of(&settings.listeners);
        let locator = super::locate::Locator::new(&settings.dns_servers, families);
        let first_udp = |v4: bool| {
            udp.iter()
                .filter(|(_, s)| s.local_addr().is_ok_and(|a| a.is_ipv4() == v4))
                .map(|(f, _)| *f)
                .min()
        };
        let udp_by_family = [first_udp(true), first_udp(false)];
        let mut bindings: HashMap<String, Registration> = HashMap::new();
        let mut persisted: HashMap<String, (String, HashMap<String, Binding>)> = HashMap::new();
        for r in loaded {
            let (Ok(source), Some(transport)) =
                (r.source.parse(), Transport::from_via(&r.transport))
            else {
                continue;
            };
            let entry = bindings
                .entry(r.username.clone())
                .or_insert_with(|| Registration {
                    app_id: r.app_id.clone(),
                    contacts: Vec::new(),
                    read_at: 0,
                });
            let binding = Binding {
                contact: r.contact,
                expires_at: u64::try_from(r.expires_at).unwrap_or(0),
                q: r.q.map(|q| q as f32),
                call_id: r.call_id,
                cseq: r.cseq,
                source,
                transport,
                user_agent: r.user_agent,
                path: r.path,
            };
            persisted
                .entry(r.username.clone())
                .or_insert_with(|| (r.app_id.clone(), HashMap::new()))
                .1
                .insert(binding.contact.clone(), binding.clone());
            entry.contacts.push(binding);
        }
        Core {
            endpoint,
            // Before `settings` moves in.
            uas: {
                let mut uas = UasPolicy::default();
                // An INVITE may take the place of one of our calls (`core/replacing.rs`).
                uas.supported.push("replaces".to_owned());
                // RFC 4028 session timers (`core/session_timers.rs`).
                uas.supported.push("timer".to_owned());
                // RFC 3327: a device registered through proxies is reached through them.
                uas.supported.push("path".to_owned());
                // RFC 3262: a caller that requires reliable provisionals gets none but 100
                // Trying, which keeps its promise (`core/inbound.rs`, `ask_webhook`).
                uas.supported
                    .push(sipx_sip::reliable::OPTION_TAG.to_owned());
                if settings.accept_refer != crate::config::ReferPolicy::Off {
                    // Blind transfers a phone asks for (`core/phone_transfer.rs`); RFC 4488's
                    // `Refer-Sub: false` is honoured.
                    uas.allow.push(Method::Refer);
                    uas.supported.push("norefersub".to_owned());
                }
                uas
            },
            settings,
            digest,
            guard: AbuseGuard::default(),
            udp,
            udp_by_family,
            streams: HashMap::new(),
            own_connections: tokio::task::JoinSet::new(),
            trunk_links: trunk_links::TrunkLinks::default(),
            bindings,
            accounts: HashMap::new(),
            loaded: loaded::Loaded::default(),
            pending: HashMap::new(),
            store,
            inputs,
            persist,
            runtime,
            registered: BindingSources::default(),
            origins: Origins::default(),
            persisted,
            trunk_regs: HashMap::new(),
            provider_hosts: provider_hosts::ProviderHosts::new(locator),
            reg_txns: HashMap::new(),
            flow_ids: connector.flow_ids,
            tls_client: connector.tls,
            stop: connector.stop,
            direct_udp: None,
            udp_buf: vec![0u8; 65_535],
            media: None,
            rooms: None,
            calls: Calls::default(),
            controls: Controls::default(),
            transfers: transfer::Transfers::default(),
            phone_transfers: phone_transfer::PhoneTransfers::default(),
            inbound_keys: inbound_control::InboundDtmf::default(),
            routing: Routing::default(),
            waiting: inbound::Waiting::default(),
            gates: GateTimers::default(),
            session_timers: SessionTimers::default(),
            rows: call_rows::RowSink::default(),
            stream_flows: HashMap::new(),
            reconnects: reconnect::Reconnects::default(),
            shutdown: None,
        }
    }

    pub(crate) fn set_row_writer(&mut self, tx: mpsc::UnboundedSender<call_rows::Queued>) {
        self.rows.tx = Some(tx);
    }

    /// Where calls publish their events (through the rows' writer: after the rows say so).
    pub(crate) fn set_events(&mut self, bus: sipx_api::events::EventBus) {
        self.rows.events = Some(bus);
    }

    fn publish_event(&self, event: sipx_api::events::AppEvent) {
        self.rows.publish(event);
    }

    pub(crate) fn set_media(&mut self, engine: crate::media::MediaEngine) {
        self.media = Some(engine);
    }

    /// The connection a device at `addr` reached us on, if it is still open.
    fn stream_flow(&self, addr: SocketAddr) -> Option<FlowId> {
        self.stream_flows
            .get(&addr)
            .copied()
            .filter(|f| self.streams.contains_key(f))
    }

    pub(crate) fn set_rooms(&mut self, rooms: crate::rooms::RoomsHandle) {
        self.rooms = Some(rooms);
    }

    /// Lets the core read `socket` itself instead of a socket task.
    pub(crate) fn read_udp_directly(&mut self, flow: FlowId, socket: Arc<UdpSocket>) {
        self.direct_udp = Some((flow, socket));
    }

    /// Handles the datagrams waiting on the directly read socket, a bounded number per turn so
    /// timers and other inputs still get their turn under a flood.
    fn drain_udp(&mut self, now: Instant) {
        let Some((flow, socket)) = self.direct_udp.clone() else {
            return;
        };
        let mut buf = std::mem::take(&mut self.udp_buf);
        for _ in 0..256 {
            match socket.try_recv_from(&mut buf) {
                Ok((n, addr)) => {
                    let Some(msg) = super::transport::parse_datagram(&buf[..n]) else {
                        continue;
                    };
                    let peer = Peer {
                        transport: Transport::Udp,
                        flow,
                        addr,
                    };
                    self.handle_input(now, CoreInput::Parsed { peer, msg });
                    self.pump(now);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                // ICMP errors surface here on Linux (ECONNREFUSED from an earlier send).
                Err(e) => tracing::debug!(error = %e, "UDP receive error"),
            }
        }
        self.udp_buf = buf;
    }

    /// Shows every restored binding to the API.
    pub(crate) fn publish_all(&mut self) {
        for (
            user,
            Registration {
                app_id: app,
                contacts: b,
                ..
            },
        ) in &self.bindings
        {
            self.publish_bindings(user, app, b);
            self.registered.replace(user, &[], b);
        }
    }

    /// A trunk's inbound network, a registered device, or a trusted proxy.
    fn is_known_source(&self, ip: IpAddr) -> bool {
        self.settings.abuse.is_trusted(ip)
            || self.registered.contains_ip(ip)
            || self.origins.trunk_by_network(ip).is_some()
    }

    /// The trunk whose inbound digest user the request authenticates as, when it carries
    /// valid credentials of one. Checked at most once per request: a nonce count verified
    /// twice would look like a replay.
    fn inbound_user_verified(&mut self, req: &Request) -> Option<usize> {
        let creds = req
            .headers
            .get_all("Authorization")
            .chain(req.headers.get_all("Proxy-Authorization"))
            .filter_map(DigestParams::parse)
            .find(|c| self.digest.username(c).is_some())?;
        let user = self.digest.username(&creds)?;
        let (password, trunk) = self.origins.trunk_user(user)?;
        self.digest
            .verify(&creds, req.method.as_str(), password.expose(), unix_now())
            .is_ok()
            .then_some(trunk)
    }

    /// The UDP socket to send to `dest` from: the first one of `dest`'s address family (a
    /// dual-stack SIPx listens on both; IPv6 sockets are bound IPv6-only); `None` when no
    /// listener can reach it (the call fails at once instead of timing out).
    pub(super) fn udp_flow_for(&self, dest: SocketAddr) -> Option<FlowId> {
        self.udp_by_family[usize::from(dest.is_ipv6())]
    }

    fn send_keepalives(&self) {
        for Registration {
            contacts: bindings, ..
        } in self.bindings.values()
        {
            // A device behind proxies (a `Path`) is kept reachable by them, not by SIPx.
            let direct_udp = |b: &&Binding| b.transport == Transport::Udp && b.path.is_empty();
            for b in bindings.iter().filter(direct_udp) {
                // A double CRLF: ignored by SIP stacks, enough to keep a NAT binding open.
                if let Some(socket) = self.udp_flow_for(b.source).and_then(|f| self.udp.get(&f)) {
                    let _ = socket.try_send_to(b"\r\n\r\n", b.source);
                }
            }
        }
    }

    pub(crate) async fn run(
        mut self,
        mut rx: mpsc::Receiver<CoreInput>,
        mut close: watch::Receiver<bool>,
    ) {
        let mut housekeeping = tokio::time::interval(Duration::from_secs(30));
        let mut lapses = tokio::time::interval(Duration::from_secs(1));
        let mut changes = self.store.subscribe_changes();
        let mut keepalive = tokio::time::interval(
            self.settings
                .nat_keepalive
                .unwrap_or(Duration::from_secs(3600)),
        );
        let keepalive_on = self.settings.nat_keepalive.is_some();
        let direct = self.direct_udp.clone();
        self.publish_all();
        self.load_trunks();
        self.load_routing();
        loop {
            let regs_due = self.trunk_regs.values().filter_map(TrunkReg::due).min();
            let deadline = [
                self.endpoint.poll_timeout(),
                regs_due,
                self.controls.next_timeout(),
                self.gates.next_timeout(),
                self.inbound_keys.next_timeout(),
                self.session_timers.next_timeout(),
                self.closing_deadline(),
            ]
            .into_iter()
            .flatten()
            .min();
            let sleep = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                input = rx.recv() => match input {
                    Some(input) => {
                        let now = Instant::now();
                        self.handle_input(now, input);
                        // Whatever else queued meanwhile is handled in the same turn: one
                        // wake-up serves a burst instead of a select! round per message.
                        for _ in 0..256 {
                            let Ok(more) = rx.try_recv() else { break };
                            self.pump(now);
                            self.handle_input(now, more);
                        }
                    }
                    None => break,
                },
                () = sleep => {
                    let now = Instant::now();
                    self.endpoint.handle_timeout(now);
                    self.poll_registrations(now);
                    self.poll_controls(now);
                    self.poll_gates(now);
                    self.poll_inbound_dtmf(now);
                    self.poll_session_timers(now);
                }
                Ok(()) = changes.changed() => {
                    // Trunks, accounts or rules changed through the API: reload at once.
                    let version = *changes.borrow_and_update();
                    self.accounts.clear();
                    self.loaded.accounts_emptied(version);
                    self.load_trunks();
                    self.load_routing();
                }
                Ok(()) = async {
                    match &direct {
                        Some((_, socket)) => socket.readable().await,
                        None => std::future::pending().await,
                    }
                } => self.drain_udp(Instant::now()),
                _ = housekeeping.tick() => self.housekeeping(),
                _ = lapses.tick() => self.drop_lapsed_bindings(),
                _ = keepalive.tick(), if keepalive_on => self.send_keepalives(),
                _ = close.wait_for(|s| *s), if self.closing_deadline().is_none() => {
                    if self.shutdown.is_none() {
                        break;
                    }
                    self.close(Instant::now());
                }
            }
            let now = Instant::now();
            self.pump(now);
            self.track_live_calls();
            if self.stop_io_once_closed(now) {
                break;
            }
        }
        // API writes no longer wait for a core that will not load them.
        self.store.follower_gone();
        // SIPx's own connections write what was queued for them last (an ACK, a BYE) before
        // the process exits: their writers end once the core's senders are gone.
        // (Their tasks tell the core they closed: with its queue gone, at once.)
        let own = std::mem::take(&mut self.own_connections);
        drop((self, rx));
        super::transport::let_connections_finish(own).await;
    }

    /// Opens a connection of SIPx's own to `addr` (to a provider, or again towards a peer
    /// whose connection closed), TLS-wrapped when `tls` says so; `FlowOpened` or
    /// `ConnectFailed` follows with the flow returned.
    fn connect_own(&mut self, addr: SocketAddr, tls: super::transport::ProviderTls) -> FlowId {
        let flow = self.flow_ids.next();
        let transport = if tls.is_some() {
            Transport::Tls
        } else {
            Transport::Tcp
        };
        // From the listener of the transport and family (as its Via names it), unless that
        // listens on all addresses.
        let from = self
            .listener_for(addr, transport)
            .map(|a| a.ip())
            .filter(|ip| !ip.is_unspecified());
        self.own_connections.spawn(super::transport::connect(
            addr,
            from,
            tls,
            flow,
            self.inputs.clone(),
            self.stop.clone(),
        ));
        flow
    }

    /// Drops the writer's queue of `flow`, which ends the connection.
    fn close_stream(&mut self, flow: FlowId) {
        self.streams.remove(&flow);
        metrics::gauge!("sipx_sip_stream_connections").set(self.streams.len() as f64);
    }

    /// Tells the store which change version trunks and rules are both at, so the API writes
    /// up to it can answer.
    fn report_settled(&self) {
        if let Some(version) = self.loaded.settled() {
            self.store.mark_applied(version);
        }
    }

    fn housekeeping(&mut self) {
        let now = Instant::now();
        while self.own_connections.try_join_next().is_some() {}
        self.guard.prune(now, &self.settings.abuse);
        self.digest.prune(unix_now());
        self.accounts
            .retain(|_, (_, at, _)| now.duration_since(*at) < ACCOUNT_TTL);
        metrics::gauge!("sipx_sip_banned_sources").set(self.guard.banned_count() as f64);
    }

    /// Drops the bindings whose time is up, every second: a device that stopped refreshing is
    /// neither dialled nor let in as a known source a moment after its Expires.
    fn drop_lapsed_bindings(&mut self) {
        let t = unix_now();
        let runtime = self.runtime.clone();
        let registered = &mut self.registered;
        self.bindings.retain(
            |user,
             Registration {
                 app_id: app,
                 contacts: b,
                 ..
             }| {
                let lapsed: Vec<Binding> =
                    b.iter().filter(|x| x.expires_at <= t).cloned().collect();
                if !lapsed.is_empty() {
                    b.retain(|x| x.expires_at > t);
                    registered.replace(user, &lapsed, &[]);
                    runtime.set_bindings(user, app, binding_views(b));
                }
                !b.is_empty()
            },
        );
        metrics::gauge!("sipx_sip_registered_contacts").set(
            self.bindings
                .values()
                .map(|r| r.contacts.len())
                .sum::<usize>() as f64,
        );
    }

    /// Drops the bindings of accounts deleted (or moved to another application) as of store
    /// `version`: a deleted account's registrations end with it, and its device must not be
    /// dialled as a new account of the same name. A binding whose account was read after
    /// `version` is newer than this list and stays.
    fn drop_orphan_bindings(&mut self, registrants: &HashSet<(String, String)>, version: u64) {
        let orphans: Vec<String> = self
            .bindings
            .iter()
            .filter(|(user, r)| {
                r.read_at <= version && !registrants.contains(&((*user).clone(), r.app_id.clone()))
            })
            .map(|(user, _)| user.clone())
            .collect();
        for user in orphans {
            let Some(Registration {
                app_id: app,
                contacts: old,
                ..
            }) = self.bindings.remove(&user)
            else {
                continue;
            };
            tracing::info!(username = %user, contacts = old.len(), "registration ended: its account is gone");
            self.persisted.remove(&user);
            self.registered.replace(&user, &old, &[]);
            self.publish_bindings(&user, &app, &[]);
            self.persist_bindings(&user, &app, &[], None);
        }
    }

    fn handle_input(&mut self, now: Instant, input: CoreInput) {
        match input {
            CoreInput::Parsed { peer, msg } => {
                if peer.transport.is_reliable() {
                    self.stream_flows.insert(peer.addr, peer.flow);
                }
                if self.admit(peer.addr.ip(), now) {
                    self.endpoint.handle_parsed(now, peer, msg);
                }
            }
            CoreInput::Pong { peer } => self.send(Transmit {
                peer,
                bytes: b"\r\n".to_vec(),
            }),
            CoreInput::FlowOpened { flow, tx } => {
                self.streams.insert(flow, tx);
                metrics::gauge!("sipx_sip_stream_connections").set(self.streams.len() as f64);
                self.on_reconnected(flow);
                self.on_trunk_flow_opened(now, flow);
                self.on_trunk_link_opened(now, flow);
            }
            CoreInput::FlowClosed { flow } => {
                self.close_stream(flow);
                while self.own_connections.try_join_next().is_some() {}
                self.stream_flows.retain(|_, f| *f != flow);
                self.reconnect_gone(flow);
                self.on_trunk_flow_failed(now, flow, "connection closed");
                self.on_trunk_link_gone(now, flow, "connection closed");
            }
            CoreInput::ConnectFailed { flow, reason } => {
                self.reconnect_gone(flow);
                self.on_trunk_flow_failed(now, flow, &reason);
                self.on_trunk_link_gone(now, flow, &reason);
            }
            CoreInput::Persisted { replies, ok } => {
                for (txn, resp) in replies {
                    let resp = if ok {
                        resp
                    } else {
                        Response {
                            status: 500,
                            reason: "Registration could not be stored".to_owned(),
                            body: Vec::new(),
                            ..resp
                        }
                    };
                    self.respond(now, txn, resp);
                }
            }
            CoreInput::Media(event) => self.on_media_event(now, event),
            CoreInput::Call(cmd, reply) => self.on_call_command(now, cmd, reply),
            CoreInput::CallInput { id, input } => self.feed(now, &id, input),
            CoreInput::Resolved { id, addrs, invite } => self.on_resolved(now, &id, addrs, invite),
            CoreInput::Room(notice) => self.on_room_notice(now, notice),
            CoreInput::RoomJoined { leg, result } => self.on_room_joined(now, leg, result),
            CoreInput::RoutingLoaded { routing, version } => {
                if self.loaded.take_routing(version) {
                    self.apply_routing(*routing);
                    self.report_settled();
                } else {
                    tracing::debug!(version, "an older routing load finished late: dropped");
                }
            }
            CoreInput::WebhookAnswered { id, answer } => self.on_webhook_answer(now, id, answer),
            CoreInput::Referral { referral, placed } => {
                self.on_referral_placed(now, *referral, placed)
            }
            CoreInput::ProviderHostsResolved => self.load_trunks(),
            CoreInput::TrunksLoaded {
                trunks,
                accounts,
                registrants,
                version,
            } => {
                if self.loaded.take_trunks(version) {
                    self.apply_trunks(now, trunks, accounts);
                    if let Some(registrants) = registrants {
                        self.drop_orphan_bindings(&registrants, version);
                    }
                    self.poll_registrations(now);
                    self.report_settled();
                } else {
                    tracing::debug!(version, "an older trunk load finished late: dropped");
                }
            }
            CoreInput::AccountLoaded {
                username,
                account,
                version,
            } => {
                if !self.loaded.account_cacheable(version) {
                    // The accounts changed while this one was read (it may be deleted, or
                    // have another password): the waiting REGISTERs wait for a fresh read.
                    self.look_up_account(username);
                    return;
                }
                self.accounts
                    .insert(username.clone(), (account.clone(), now, version));
                for p in self.pending.remove(&username).unwrap_or_default() {
                    self.finish_register(now, p, account.clone(), version);
                }
            }
        }
    }

    /// Banned sources and sources over their rate are dropped before parsing.
    fn admit(&mut self, ip: IpAddr, now: Instant) -> bool {
        if self.guard.is_banned(ip, now) {
            metrics::counter!("sipx_sip_dropped_total", "reason" => "banned").increment(1);
            return false;
        }
        // A trunk's inbound network is a provider the operator let in by name: its call rate
        // is the provider's, not a scanner's, so the per-source limit does not apply to it
        // (one carrier edge easily sends more than 200 messages a second).
        // The trunk lookup is made only for a source over its rate, off the common path.
        if !self.guard.allow(ip, now, &self.settings.abuse)
            && self.origins.trunk_by_network(ip).is_none()
        {
            metrics::counter!("sipx_sip_dropped_total", "reason" => "rate").increment(1);
            return false;
        }
        true
    }

    fn pump(&mut self, now: Instant) {
        while let Some(out) = self.endpoint.poll_output() {
            match out {
                Output::Transmit(t) => self.send(t),
                Output::Event(e) => self.on_event(now, e),
            }
        }
    }

    fn send(&mut self, t: Transmit) {
        match t.peer.transport {
            Transport::Udp => {
                if let Some(s) = self.udp.get(&t.peer.flow) {
                    // Non-blocking: on a full socket buffer the message is lost, as UDP may
                    // lose it anyway; transaction retransmissions cover it. Other errors (a
                    // message too big for a datagram, an unreachable network) would repeat.
                    match s.try_send_to(&t.bytes, t.peer.addr) {
                        Ok(_) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            metrics::counter!("sipx_sip_udp_send_dropped_total").increment(1);
                        }
                        Err(e) => {
                            metrics::counter!("sipx_sip_udp_send_errors_total").increment(1);
                            tracing::warn!(peer = %t.peer.addr, bytes = t.bytes.len(), error = %e, "SIP message not sent");
                        }
                    }
                }
            }
            _ => match self.streams.get_mut(&t.peer.flow) {
                Some(tx) => tx.send(t.bytes),
                None => self.send_on_new_connection(t),
            },
        }
    }

    fn respond(&mut self, now: Instant, txn: ServerTxnId, mut response: Response) {
        response
            .headers
            .push("Server", self.settings.server_header.clone());
        metrics::counter!("sipx_sip_responses_total", "status" => status_label(response.status))
            .increment(1);
        self.endpoint.respond(now, txn, response);
    }

    fn on_event(&mut self, now: Instant, event: Event) {
        match event {
            Event::Request { txn, request, peer } => self.on_request(now, txn, request, peer),
            Event::Response { txn, response, .. } => {
                if self.on_invite_response(now, txn, &response) {
                    return;
                }
                if response.status >= 200
                    && (self.on_bye_answer(now, txn, &response)
                        || self.on_refresh_answer(now, txn, Some(&response))
                        || self.on_referral_notify_answer(now, txn, Some(response.status)))
                {
                    return;
                }
                self.on_registration_response(now, txn, &response)
            }
            // Timer B/F: a dial-out's INVITE or CANCEL, a BYE, else a registration's REGISTER
            // (the guard hands the timeout to the first that owns the transaction).
            Event::ClientTimeout { txn }
                if !self.on_invite_timeout(now, txn)
                    && !self.calls.owns_client_txn(txn)
                    && !self.on_refresh_answer(now, txn, None)
                    && !self.on_referral_notify_answer(now, txn, None) =>
            {
                self.on_registration_timeout(now, txn);
            }
            Event::StrayResponse { response, .. } => self.on_stray_2xx(&response),
            Event::Ack { request, acked, .. } => self.on_ack(now, request, acked),
            Event::AckTimeout { txn } => self.on_ack_timeout(now, txn),
            Event::Cancelled { invite } => self.on_cancelled(now, invite),
            Event::Malformed { peer, error } => {
                metrics::counter!("sipx_sip_malformed_total").increment(1);
                tracing::debug!(peer = %peer.addr, reason = %error.reason, "malformed SIP message");
            }
            // CANCELs of INVITEs we answer at once are absorbed by the transaction layer.
            _ => {}
        }
    }

    fn on_request(&mut self, now: Instant, txn: ServerTxnId, req: Request, peer: Peer) {
        metrics::counter!("sipx_sip_requests_total", "method" => method_label(&req.method))
            .increment(1);
        if self.settings.abuse.drop_scanners
            && req.headers.get("User-Agent").is_some_and(is_scanner)
        {
            metrics::counter!("sipx_sip_dropped_total", "reason" => "scanner").increment(1);
            self.endpoint.abandon(txn);
            return;
        }
        let ip = peer.addr.ip();
        // REGISTER authenticates itself; OPTIONS is answered to anyone unless in silent mode.
        let open_method = req.method == Method::Register
            || (req.method == Method::Options
                && self.settings.unknown_source != UnknownSourcePolicy::Silent);
        // Requests within a dialog SIPx holds (the BYE of a phone reached through a provider
        // whose address is not an inbound source) belong to a call that is already allowed.
        let in_our_dialog = sipx_sip::dialog::DialogId::of_request(&req)
            .is_some_and(|id| self.calls.by_dialog.contains_key(&id))
            || self.dial_out_in_early_dialog(&req).is_some();
        let gated = !open_method && !in_our_dialog;
        // A new call's credentials also tell which trunk it came through, wherever it came from.
        let trunk_by_digest =
            if gated && (req.method == Method::Invite || !self.is_known_source(ip)) {
                self.inbound_user_verified(&req)
            } else {
                None
            };
        if gated && trunk_by_digest.is_none() && !self.is_known_source(ip) {
            metrics::counter!("sipx_sip_unknown_source_total").increment(1);
            match self.settings.unknown_source {
                UnknownSourcePolicy::Silent => self.endpoint.abandon(txn),
                UnknownSourcePolicy::Reject => {
                    let tag = self.endpoint.new_tag();
                    let resp = req
                        .response(403, Some(&tag))
                        .with_reason("Source not allowed");
                    self.respond(now, txn, resp);
                }
                UnknownSourcePolicy::Challenge => self.challenge(now, txn, &req, false),
            }
            return;
        }
        let tag = self.endpoint.new_tag();
        if let Some(resp) = precheck(&req, &self.uas, &tag) {
            self.respond(now, txn, resp);
            return;
        }
        // Only an INVITE may replace a dialog (RFC 3891 §3).
        if !matches!(req.method, Method::Invite | Method::Ack | Method::Cancel)
            && req.headers.get("Replaces").is_some()
        {
            let resp = req
                .response(400, Some(&tag))
                .with_reason("Replaces in a request other than INVITE");
            self.respond(now, txn, resp);
            return;
        }
        // While SIPx stops, new calls and a proxy's probes are sent elsewhere
        // (`core/shutdown.rs`); calls already up go on.
        if req.tag_of_to().is_none()
            && matches!(req.method, Method::Invite | Method::Options)
            && self.is_stopping()
        {
            let resp = self.shutting_down_response(&req, &tag);
            self.respond(now, txn, resp);
            return;
        }
        match req.method {
            // Within a dialog, OPTIONS asks whether it is still alive: Kamailio's dialog
            // keepalives and SBCs end theirs on a 481 (RFC 3261 §12.2.2).
            Method::Options if req.tag_of_to().is_some() => self.on_in_dialog(now, txn, req, peer),
            Method::Options => {
                let resp = self.options_answer(&req, &tag);
                self.respond(now, txn, resp);
            }
            Method::Register => self.on_register(now, txn, req, peer),
            _ if req.tag_of_to().is_some() => self.on_in_dialog(now, txn, req, peer),
            Method::Invite => self.on_new_invite(now, txn, req, peer, trunk_by_digest),
            // A REFER outside a dialog would ask SIPx to call on behalf of nobody's call.
            Method::Refer => {
                let resp = req
                    .response(403, Some(&tag))
                    .with_reason("REFER is taken only within a call");
                self.respond(now, txn, resp);
            }
            _ => {
                let resp = req.response(481, Some(&tag));
                self.respond(now, txn, resp);
            }
        }
    }

    /// The 200 to an OPTIONS, in or out of a dialog: what SIPx takes (RFC 3261 §11.2), bodies
    /// as they are and in English.
    pub(super) fn options_answer(&self, req: &Request, tag: &str) -> Response {
        req.response(200, Some(tag))
            .with_header("Allow", self.uas.allow_header())
            .with_header("Accept", self.uas.accept.join(", "))
            .with_header("Accept-Encoding", "identity")
            .with_header("Accept-Language", "en")
            .with_header("Supported", self.uas.supported.join(", "))
    }

    /// A 401 with fresh challenges, sent statelessly: the nonce carries all the state.
    fn challenge(&mut self, now: Instant, txn: ServerTxnId, req: &Request, stale: bool) {
        let tag = self.endpoint.new_tag();
        let mut resp = req.response(401, Some(&tag));
        for c in self.digest.challenges(unix_now(), stale) {
            resp.headers.push("WWW-Authenticate", c);
        }
        resp.headers
            .push("Server", self.settings.server_header.clone());
        metrics::counter!("sipx_sip_responses_total", "status" => "401").increment(1);
        self.endpoint.respond_stateless(now, txn, resp);
    }

    fn on_register(&mut self, now: Instant, txn: ServerTxnId, req: Request, peer: Peer) {
        if let Some(reason) = registrar::check_syntax(&req) {
            let tag = self.endpoint.new_tag();
            self.respond(now, txn, req.response(400, Some(&tag)).with_reason(reason));
            return;
        }
        let creds = req
            .headers
            .get_all("Authorization")
            .filter_map(DigestParams::parse)
            .find(|c| self.digest.username(c).is_some());
        let Some(creds) = creds else {
            self.challenge(now, txn, &req, false);
            return;
        };
        let username = self.digest.username(&creds).unwrap_or_default().to_owned();
        let pending = PendingRegister {
            txn,
            request: req,
            peer,
            creds,
        };
        if let Some((account, at, version)) = self.accounts.get(&username)
            && now.duration_since(*at) < ACCOUNT_TTL
        {
            let (account, version) = (account.clone(), *version);
            self.finish_register(now, pending, account, version);
            return;
        }
        let waiting = self.pending.entry(username.clone()).or_default();
        waiting.push(pending);
        if waiting.len() == 1 {
            self.look_up_account(username);
        }
    }

    /// Reads `username`'s account off the core; `AccountLoaded` brings it back.
    fn look_up_account(&self, username: String) {
        let store = self.store.clone();
        let inputs = self.inputs.clone();
        let version = store.change_version();
        tokio::spawn(async move {
            let account = lookup(&store, &username).await;
            let _ = inputs
                .send(CoreInput::AccountLoaded {
                    username,
                    account,
                    version,
                })
                .await;
        });
    }

    fn auth_failed(&mut self, now: Instant, p: &PendingRegister) {
        metrics::counter!("sipx_sip_auth_failures_total").increment(1);
        let ip = p.peer.addr.ip();
        if self.guard.record_failure(ip, now, &self.settings.abuse) {
            metrics::counter!("sipx_sip_bans_total").increment(1);
            tracing::warn!(source = %ip, "too many failed authentications: source banned");
        }
        self.challenge(now, p.txn, &p.request, false);
    }

    /// Answers a REGISTER whose account (read at store `version`) is known.
    fn finish_register(
        &mut self,
        now: Instant,
        p: PendingRegister,
        account: Option<Account>,
        version: u64,
    ) {
        let now_secs = unix_now();
        // An unknown user is answered exactly like a wrong password: no account enumeration.
        let Some(account) = account else {
            self.auth_failed(now, &p);
            return;
        };
        match self
            .digest
            .verify(&p.creds, "REGISTER", account.password.expose(), now_secs)
        {
            Ok(_) => {}
            // A nonce-count used again (the right password, though: it is checked first) is
            // a client that answered one challenge twice, or a replay: a fresh nonce, not a
            // failure counted towards a ban.
            Err(DigestError::Stale | DigestError::Replay) => {
                self.challenge(now, p.txn, &p.request, true);
                return;
            }
            Err(_) => {
                self.auth_failed(now, &p);
                return;
            }
        }
        let tag = self.endpoint.new_tag();
        let ip = p.peer.addr.ip();
        self.guard.record_success(ip);
        let username = self
            .digest
            .username(&p.creds)
            .unwrap_or_default()
            .to_owned();
        let forbidden = if !account.enabled {
            Some("Account disabled")
        } else if !account.allowed.is_empty() && !account.allowed.iter().any(|n| n.contains(&ip)) {
            Some("Source address not allowed for this account")
        } else if p.request.to().and_then(|t| t.uri.user()).as_deref() != Some(username.as_str()) {
            Some("To does not match the authenticated user")
        } else {
            None
        };
        if let Some(reason) = forbidden {
            self.respond(
                now,
                p.txn,
                p.request.response(403, Some(&tag)).with_reason(reason),
            );
            return;
        }
        let policy = RegisterPolicy {
            max_bindings: account.max_bindings,
            ..self.settings.register.clone()
        };
        // Bindings an earlier account of this name left in another application are not its.
        let current = self
            .bindings
            .get(&username)
            .filter(|r| r.app_id == account.app_id)
            .map(|r| r.contacts.as_slice())
            .unwrap_or(&[]);
        match registrar::apply(
            &p.request,
            current,
            &policy,
            now_secs,
            p.peer.addr,
            p.peer.transport,
            &tag,
        ) {
            Ok(new) => {
                let resp = registrar::ok_response(&p.request, &new, now_secs, &tag);
                tracing::info!(
                    %username,
                    source = %p.peer.addr,
                    transport = %p.peer.transport,
                    contacts = new.len(),
                    "registration"
                );
                if self.needs_write(&username, &account.app_id, &new, now_secs) {
                    // The 200 leaves once the change is durable (group commit by the writer).
                    self.persist_bindings(&username, &account.app_id, &new, Some((p.txn, resp)));
                } else {
                    self.respond(now, p.txn, resp);
                }
                self.publish_bindings(&username, &account.app_id, &new);
                let old = self
                    .bindings
                    .get(&username)
                    .map(|r| r.contacts.clone())
                    .unwrap_or_default();
                self.registered.replace(&username, &old, &new);
                if new.is_empty() {
                    self.bindings.remove(&username);
                } else {
                    let registration = Registration {
                        app_id: account.app_id,
                        contacts: new,
                        read_at: version,
                    };
                    self.bindings.insert(username, registration);
                }
            }
            Err(resp) => self.respond(now, p.txn, resp),
        }
    }

    /// Whether a REGISTER's outcome must reach the store before it is answered. Adding or
    /// removing a contact, or changing how it is reached (source, transport, `Path`), must. A
    /// plain refresh need not while the stored expiry still lies at least half an interval
    /// beyond what the refresh asks: the stored binding then outlives the next refresh, so a
    /// restart in between loses nothing. It keeps the write rate of frequently refreshing
    /// devices far below their REGISTER rate.
    fn needs_write(
        &mut self,
        username: &str,
        app_id: &str,
        new: &[Binding],
        now_secs: u64,
    ) -> bool {
        // A name that moved to another application is written through: its rows must say so.
        let stored = self
            .persisted
            .get(username)
            .filter(|(app, _)| app == app_id)
            .map(|(_, s)| s);
        let same_bindings = match stored {
            Some(s) => {
                s.len() == new.len()
                    && new.iter().all(|b| {
                        s.get(&b.contact)
                            .is_some_and(|old| same_but_refresh(old, b))
                    })
            }
            None => new.is_empty(),
        };
        let fresh_enough = stored.is_some_and(|s| {
            new.iter().all(|b| {
                let interval = b.expires_at.saturating_sub(now_secs);
                s.get(&b.contact)
                    .is_some_and(|old| old.expires_at + interval / 2 >= b.expires_at)
            })
        });
        if same_bindings && (new.is_empty() || fresh_enough) {
            return false;
        }
        if new.is_empty() {
            self.persisted.remove(username);
        } else {
            let stored = new.iter().map(|b| (b.contact.clone(), b.clone())).collect();
            self.persisted
                .insert(username.to_owned(), (app_id.to_owned(), stored));
        }
        true
    }

    /// Shows `username`'s contacts to the API.
    fn publish_bindings(&self, username: &str, app_id: &str, bindings: &[Binding]) {
        self.runtime
            .set_bindings(username, app_id, binding_views(bindings));
    }

    fn persist_bindings(
        &self,
        username: &str,
        app_id: &str,
        bindings: &[Binding],
        reply: Option<(ServerTxnId, Response)>,
    ) {
        let set = BindingSet {
            username: username.to_owned(),
            app_id: app_id.to_owned(),
            bindings: bindings
                .iter()
                .map(|b| RegistrationRecord {
                    username: username.to_owned(),
                    app_id: app_id.to_owned(),
                    contact: b.contact.clone(),
                    expires_at: i64::try_from(b.expires_at).unwrap_or(i64::MAX),
                    q: b.q.map(f64::from),
                    call_id: b.call_id.clone(),
                    cseq: b.cseq,
                    source: b.source.to_string(),
                    transport: b.transport.via_name().to_owned(),
                    user_agent: b.user_agent.clone(),
                    path: b.path.clone(),
                })
                .collect(),
        };
        let _ = self.persist.send(PersistJob { set, reply });
    }
}

/// A SIP account by username, else an application by API key (the first SIPx's scheme).
async fn lookup(store: &Store, username: &str) -> Option<Account> {
    match store.sip_account_credentials(username).await {
        Ok(Some((rec, password))) => {
            return Some(Account {
                app_id: rec.app_id,
                password,
                allowed: rec
                    .allowed_cidrs
                    .iter()
                    .filter_map(|c| c.parse().ok())
                    .collect(),
                max_bindings: rec.max_bindings,
                enabled: rec.enabled,
            });
        }
        Ok(None) => {}
        Err(e) => {
            tracing::error!(error = %e, "SIP account lookup failed");
            return None;
        }
    }
    match store.app_credentials(username).await {
        Ok(Some((app, secret))) => Some(Account {
            app_id: app.id,
            password: Redacted::new(String::from_utf8_lossy(secret.expose()).into_owned()),
            allowed: Vec::new(),
            max_bindings: 10,
            enabled: !app.disabled,
        }),
        Ok(None) => None,
        Err(e) => {
            tracing::error!(error = %e, "application lookup failed");
            None
        }
    }
}

/// Writes binding changes, batching whatever queued up meanwhile into one transaction (the
/// last set per username wins), then releases the answers that waited for it: one fsync serves
/// a whole burst of REGISTERs.
pub(crate) async fn persist_loop(
    store: Store,
    mut rx: mpsc::UnboundedReceiver<PersistJob>,
    core: mpsc::Sender<CoreInput>,
) {
    while let Some(first) = rx.recv().await {
        let mut jobs = vec![first];
        while let Ok(next) = rx.try_recv() {
            jobs.push(next);
        }
        let mut latest: HashMap<String, BindingSet> = HashMap::new();
        let mut replies = Vec::new();
        for job in jobs {
            replies.extend(job.reply);
            latest.insert(job.set.username.clone(), job.set);
        }
        let sets: Vec<BindingSet> = latest.into_values().collect();
        let ok = match store.replace_registrations(&sets).await {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(error = %e, "cannot persist registrations");
                false
            }
        };
        if !replies.is_empty()
            && core
                .send(CoreInput::Persisted { replies, ok })
                .await
                .is_err()
        {
            return;
        }
    }
}
