//! The API's door to call control: checks what a command names against the store, chooses the
//! route of a dial-out, records the new call, and hands the command to the SIP core's task.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use sipx_api::call_service::{
    CallCommandError, CallService, DialRequest, DialRoute, StoredHistoryEntry, TransferTarget,
};
use sipx_api::room_service::BoxFuture;
use sipx_call::{DtmfSequence, NumberRules};
use sipx_secrets::Redacted;
use sipx_sip::Transport;
use sipx_store::{CallProgress, CallRecord, PageRequest, Store, TrunkWithSecrets};
use tokio::sync::{mpsc, oneshot};

use super::core::CoreInput;

/// A dial-out as the core takes it: the route resolved, the call recorded.
#[derive(Debug)]
pub(crate) struct DialSpec {
    pub id: String,
    pub app_id: String,
    pub target: DialTarget,
    /// Routes to try next when `target` fails before anything rang.
    pub fallbacks: Vec<DialTarget>,
    pub params: sipx_call::DialOut,
    pub srtp: Option<sipx_store::SrtpPolicy>,
    /// Its INVITEs' From is anonymous, with `Privacy: id`.
    pub withhold_caller_id: bool,
    pub webhook_url: Option<String>,
    /// The `Replaces` its INVITE carries (a phone's attended transfer, `core/phone_transfer`).
    pub replaces: Option<String>,
    /// The `Referred-By` its INVITE carries (a phone's transfer, RFC 3892).
    pub referred_by: Option<String>,
    /// When its row was written, `CALLING` (the monotonic clock and the wall clock read
    /// together): the core's wall times count from there, so the history it writes starts
    /// with the time the API answered with, and later times are not shifted by the wait
    /// before the core took the dial.
    pub created: (std::time::Instant, i64),
}

/// Where the INVITE goes.
#[derive(Debug, Clone)]
pub(crate) enum DialTarget {
    /// Through a provider: the Request-URI is `sip:<number>@<host>[:port]`.
    Trunk(TrunkRoute),
    /// To a SIP URI given in `to`, straight to its host.
    Direct {
        uri: String,
        transport: Transport,
        host: String,
        /// As the URI gives it (none: SRV records decide, else the transport's default).
        port: Option<u16>,
        addr: Lookup,
    },
    /// Through the first of these accounts with a registered device.
    Accounts(Vec<AccountRoute>),
}

#[derive(Debug, Clone)]
pub(crate) struct AccountRoute {
    pub id: String,
    pub username: String,
    /// Send to the registered contact unchanged (the number in To only).
    pub contact_as_is: bool,
}

impl AccountRoute {
    fn of(a: sipx_store::SipAccountRecord) -> AccountRoute {
        AccountRoute {
            contact_as_is: a.dial_request_uri == "contact",
            id: a.id,
            username: a.username,
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct TrunkRoute {
    pub id: String,
    pub host: String,
    pub port: Option<u16>,
    pub transport: Transport,
    pub addr: Lookup,
    /// (digest user, password) for the provider's challenges.
    pub auth: Option<(String, Redacted<String>)>,
    pub caller_id: Option<String>,
    pub from_domain: Option<String>,
    /// The called number into the provider's form.
    pub number_rules: NumberRules,
    pub max_calls: Option<u32>,
    pub srtp: Option<sipx_store::SrtpPolicy>,
}

/// A host's address: looked up by the core (off its task, bounded in time) when the INVITE is
/// due, so a slow resolver never holds up the API's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lookup {
    Pending,
    Found(SocketAddr),
    Failed,
}

impl Lookup {
    /// An IP literal needs no lookup (at the given port, else the transport's default).
    fn of(host: &str, port: Option<u16>, transport: Transport) -> Lookup {
        host.trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .map_or(Lookup::Pending, |ip| {
                let port = port.unwrap_or_else(|| super::locate::default_port(transport));
                // An IPv4-mapped address is the IPv4 one (sent from an IPv4 listener).
                Lookup::Found(SocketAddr::new(ip.to_canonical(), port))
            })
    }
}

/// The address families SIPx has SIP listeners of.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Families {
    pub v4: bool,
    pub v6: bool,
}

impl Families {
    /// The families SIPx can send requests from: WebSocket listeners only take connections.
    pub fn of(listeners: &[(Transport, SocketAddr)]) -> Families {
        let sending = || {
            listeners
                .iter()
                .filter(|(t, _)| !matches!(t, Transport::Ws | Transport::Wss))
        };
        Families {
            v4: sending().any(|(_, a)| a.is_ipv4()),
            v6: sending().any(|(_, a)| a.is_ipv6()),
        }
    }

    pub fn has(self, addr: &SocketAddr) -> bool {
        if addr.is_ipv4() { self.v4 } else { self.v6 }
    }
}

pub(crate) enum CallCommand {
    Dial(Box<DialSpec>),
    Hangup {
        app_id: String,
        id: String,
    },
    Dtmf {
        app_id: String,
        id: String,
        digits: DtmfSequence,
    },
    Mute {
        app_id: String,
        id: String,
        muted: bool,
    },
    Transfer {
        app_id: String,
        id: String,
        target: TransferTarget,
    },
}

pub(crate) type Reply = oneshot::Sender<Result<(), CallCommandError>>;

#[derive(Clone)]
pub(crate) struct CallControl {
    core: mpsc::Sender<CoreInput>,
    store: Store,
    /// The (app, room, identity) of the dial-outs being recorded: held from the check that a
    /// chosen identity is free until the call's row holds it, so two dial-outs racing for one
    /// identity cannot both pass the check.
    identity_claims: Arc<Mutex<HashSet<ClaimKey>>>,
}

type ClaimKey = (String, String, String);

/// A dial-out's claim on its identity while it is recorded; given back when dropped.
struct IdentityClaim {
    claims: Arc<Mutex<HashSet<ClaimKey>>>,
    key: ClaimKey,
}

impl IdentityClaim {
    /// The claim, unless another dial-out being recorded holds it.
    fn take(claims: &Arc<Mutex<HashSet<ClaimKey>>>, key: ClaimKey) -> Option<IdentityClaim> {
        let mut held = claims
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        held.insert(key.clone()).then(|| IdentityClaim {
            claims: claims.clone(),
            key,
        })
    }
}

impl Drop for IdentityClaim {
    fn drop(&mut self) {
        let mut held = self
            .claims
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        held.remove(&self.key);
    }
}

/// A trunk's `transport` setting.
pub(crate) fn transport_of(name: &str) -> Transport {
    match name {
        "tcp" => Transport::Tcp,
        "tls" => Transport::Tls,
        _ => Transport::Udp,
    }
}

fn trunk_route(t: TrunkWithSecrets) -> Option<TrunkRoute> {
    let d = &t.trunk.data;
    let host = d.host.clone()?;
    let transport = transport_of(&d.transport);
    let addr = Lookup::of(&host, d.port, transport);
    let auth = match (&d.username, &t.password) {
        (Some(user), Some(password)) => Some((
            d.auth_username.clone().unwrap_or_else(|| user.clone()),
            password.clone(),
        )),
        _ => None,
    };
    Some(TrunkRoute {
        id: t.trunk.id.clone(),
        host,
        port: d.port,
        transport,
        addr,
        auth,
        caller_id: d.caller_id.clone(),
        from_domain: d.from_domain.clone(),
        number_rules: sipx_api::stored_number_rules(&d.number_rules),
        max_calls: d.max_concurrent_calls,
        srtp: d.srtp,
    })
}

fn invalid(field: &'static str, message: &str) -> CallCommandError {
    CallCommandError::Invalid {
        field,
        message: message.to_owned(),
    }
}

fn store_error(e: sipx_store::StoreError) -> CallCommandError {
    tracing::error!(error = %e, "call control cannot read the store");
    CallCommandError::Unavailable("the database is not available".to_owned())
}

/// The history of a dial-out ended before it was placed: `CALLING` as the API recorded it (at
/// `created_ms`), then `DISCONNECTED` now with `code`, `reason` and `cause`.
pub(crate) fn unplaced_history(
    created_ms: i64,
    code: u16,
    reason: &str,
    cause: &str,
) -> [StoredHistoryEntry; 2] {
    let entry = |state: &str, at_ms, code, reason: &str, cause: Option<&str>| StoredHistoryEntry {
        state: state.to_owned(),
        at_ms,
        code,
        reason: reason.to_owned(),
        cause: cause.map(str::to_owned),
    };
    [
        entry("CALLING", created_ms, 0, "", None),
        entry("DISCONNECTED", unix_ms(), code, reason, Some(cause)),
    ]
}

pub(crate) fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl CallControl {
    pub(crate) fn new(core: mpsc::Sender<CoreInput>, store: Store) -> Self {
        CallControl {
            core,
            store,
            identity_claims: Arc::default(),
        }
    }

    async fn send(&self, make: impl FnOnce(Reply) -> CoreInput) -> Result<(), CallCommandError> {
        let (tx, rx) = oneshot::channel();
        self.core
            .send(make(tx))
            .await
            .map_err(|_| CallCommandError::Unavailable("the SIP service stopped".to_owned()))?;
        rx.await
            .map_err(|_| CallCommandError::Unavailable("the SIP service stopped".to_owned()))?
    }

    /// The routes to try, in order: one for an explicit route; for an automatic one, every
    /// outbound trunk by name, then the registered accounts (a failure of one that says
    /// nothing about the callee — 5xx, 408, no answer at all — moves to the next).
    async fn targets(&self, r: &DialRequest) -> Result<Vec<DialTarget>, CallCommandError> {
        let trunks = || async {
            self.store
                .app_trunks_with_secrets(&r.app_id)
                .await
                .map_err(store_error)
        };
        match &r.route {
            DialRoute::Trunk(id) => {
                let trunk = trunks()
                    .await?
                    .into_iter()
                    .find(|t| &t.trunk.id == id)
                    .ok_or_else(|| invalid("route.trunk_id", "no such enabled trunk"))?;
                let route = trunk_route(trunk).ok_or_else(|| {
                    invalid("route.trunk_id", "the trunk has no outbound provider")
                })?;
                // A sips: URI is reached over TLS on every hop (RFC 3261 §26.2.2).
                if r.to.starts_with("sips:") && route.transport != Transport::Tls {
                    return Err(invalid(
                        "to",
                        "a sips: URI goes over TLS only, and this trunk is not TLS",
                    ));
                }
                Ok(vec![DialTarget::Trunk(route)])
            }
            DialRoute::SipAccount(id) => {
                let account = self
                    .store
                    .get_sip_account(&r.app_id, id)
                    .await
                    .map_err(store_error)?
                    .ok_or_else(|| invalid("route.sip_account_id", "no such SIP account"))?;
                if !account.enabled {
                    return Err(invalid("route.sip_account_id", "the account is disabled"));
                }
                Ok(vec![DialTarget::Accounts(vec![AccountRoute::of(account)])])
            }
            DialRoute::Automatic if r.to.starts_with("sip:") || r.to.starts_with("sips:") => {
                let uri = sipx_sip::msg::Uri::parse(&r.to);
                let Some(sipx_sip::msg::Uri::Sip(u)) = uri else {
                    return Err(invalid("to", "not a SIP URI"));
                };
                // sips: is TLS whatever its transport parameter (`;transport=tcp` is TLS over
                // TCP, RFC 3261 §26.2.2).
                let transport = match u.param("transport") {
                    _ if u.secure => Transport::Tls,
                    Some(Some(t)) if t.eq_ignore_ascii_case("tcp") => Transport::Tcp,
                    Some(Some(t)) if t.eq_ignore_ascii_case("tls") => Transport::Tls,
                    _ => Transport::Udp,
                };
                Ok(vec![DialTarget::Direct {
                    uri: r.to.clone(),
                    transport,
                    addr: Lookup::of(&u.host, u.port, transport),
                    host: u.host.clone(),
                    port: u.port,
                }])
            }
            DialRoute::Automatic => {
                let mut targets: Vec<DialTarget> = trunks()
                    .await?
                    .into_iter()
                    .filter_map(trunk_route)
                    .map(DialTarget::Trunk)
                    .collect();
                let page = PageRequest {
                    after: None,
                    limit: 200,
                };
                let accounts = self
                    .store
                    .list_sip_accounts(&r.app_id, &page)
                    .await
                    .map_err(store_error)?;
                let accounts: Vec<AccountRoute> = accounts
                    .items
                    .into_iter()
                    .filter(|a| a.enabled)
                    .map(AccountRoute::of)
                    .collect();
                if !accounts.is_empty() {
                    targets.push(DialTarget::Accounts(accounts));
                }
                if targets.is_empty() {
                    return Err(CallCommandError::Unavailable(
                        "the application has no outbound trunk or SIP account to call through"
                            .to_owned(),
                    ));
                }
                Ok(targets)
            }
        }
    }
}

/// What a call's row says of its route: `trunk:<id>`, `sip_account:<id>`, or nothing (a SIP
/// URI, or whichever of several accounts answers).
pub(crate) fn route_label(t: &DialTarget) -> Option<String> {
    match t {
        DialTarget::Trunk(r) => Some(format!("trunk:{}", r.id)),
        DialTarget::Accounts(a) if a.len() == 1 => {
            a.first().map(|r| format!("sip_account:{}", r.id))
        }
        DialTarget::Accounts(_) | DialTarget::Direct { .. } => None,
    }
}

impl CallControl {
    /// Records a dial-out and hands it to the core.
    async fn dial_recorded(&self, r: DialRequest) -> Result<CallRecord, CallCommandError> {
        // The API checked the room's participants, but a dial-out recorded meanwhile (its
        // phone joins the room only once the core has it) passed the same check: without the
        // claim and the check of live rows, both would be placed, and the later one would
        // ring, then fail to join. A chosen identity is a live call's until it ends.
        let _claim = match r.identity.is_empty() {
            true => None,
            false => {
                let key = (r.app_id.clone(), r.room.clone(), r.identity.clone());
                let taken = || {
                    CallCommandError::Conflict(format!(
                        "{} is taken in the room by a call not ended: a call takes an identity of its own",
                        r.identity
                    ))
                };
                let claim = IdentityClaim::take(&self.identity_claims, key).ok_or_else(taken)?;
                let live = self
                    .store
                    .live_call_with_identity(&r.app_id, &r.room, &r.identity);
                if live.await.map_err(store_error)?.is_some() {
                    return Err(taken());
                }
                Some(claim)
            }
        };
        let (record, spec) = self.prepare(r).await?;
        let (id, created_ms) = (spec.id.clone(), spec.created.1);
        let sent = self
            .send(|reply| CoreInput::Call(CallCommand::Dial(Box::new(spec)), reply))
            .await;
        if let Err(e) = sent {
            // The core never had the call: its row is ended here, or it would stay live.
            self.end_unsent(&id, created_ms).await;
            return Err(e);
        }
        Ok(record)
    }

    /// Ends the row of a dial-out the core never took (it had stopped).
    async fn end_unsent(&self, id: &str, created_ms: i64) {
        let history = unplaced_history(created_ms, 503, sipx_call::SHUTTING_DOWN, "local_hangup");
        let progress = super::core::call_progress(&history, "CALLING", None, None, None);
        if let Err(e) = self.store.update_call(id, &progress).await {
            tracing::error!(call = %id, error = %e, "a dial-out's row could not be ended");
        }
    }

    /// Chooses the dial-out's route and records the call (`CALLING`): what the core needs to
    /// start it. The API's dial-outs and the transfers phones ask for share it.
    pub(crate) async fn prepare(
        &self,
        r: DialRequest,
    ) -> Result<(CallRecord, DialSpec), CallCommandError> {
        let mut targets = self.targets(&r).await?.into_iter();
        let Some(target) = targets.next() else {
            return Err(CallCommandError::Unavailable("no route".to_owned()));
        };
        let fallbacks: Vec<DialTarget> = targets.collect();
        let id = sipx_store::new_call_id();
        let dtmf = match &r.dtmf_after_answer {
            Some(d) => {
                DtmfSequence::parse(d).map_err(|e| invalid("dtmf_after_answer", &e.to_string()))?
            }
            None => DtmfSequence::default(),
        };
        let identity = if r.identity.is_empty() {
            format!(
                "{}{}",
                sipx_rooms::PHONE_IDENTITY_PREFIX,
                &id["call_".len()..]
            )
        } else {
            r.identity.clone()
        };
        let created = (std::time::Instant::now(), unix_ms());
        let now_ms = created.1;
        let calling = StoredHistoryEntry {
            state: "CALLING".to_owned(),
            at_ms: now_ms,
            code: 0,
            reason: String::new(),
            cause: None,
        };
        let record = CallRecord {
            id: id.clone(),
            app_id: r.app_id.clone(),
            direction: "outbound".to_owned(),
            from_uri: r.from.clone(),
            to_uri: r.to.clone(),
            route: route_label(&target),
            room: Some(r.room.clone()),
            identity: Some(identity.clone()),
            webhook_url: r.webhook_url.clone(),
            created_at_ms: now_ms,
            progress: CallProgress {
                state: "CALLING".to_owned(),
                history: serde_json::to_string(&[calling]).unwrap_or_else(|_| "[]".into()),
                ..CallProgress::default()
            },
        };
        self.store.insert_call(&record).await.map_err(store_error)?;
        let params = sipx_call::DialOut {
            to: r.to,
            from: r.from,
            route: record.route.clone(),
            room: sipx_call::RoomTarget {
                room: r.room,
                identity,
                name: r.display_name,
                metadata: r.metadata,
            },
            ring_timeout: Some(r.ring_timeout),
            max_duration: Some(r.max_duration),
            dtmf_after_answer: dtmf,
            early_media: r.early_media,
        };
        let spec = DialSpec {
            id: id.clone(),
            app_id: r.app_id,
            target,
            fallbacks,
            params,
            srtp: r.srtp,
            withhold_caller_id: r.withhold_caller_id,
            webhook_url: r.webhook_url,
            replaces: None,
            referred_by: None,
            created,
        };
        Ok((record, spec))
    }
}

impl CallService for CallControl {
    fn dial(&self, r: DialRequest) -> BoxFuture<Result<CallRecord, CallCommandError>> {
        // Its own task: a client that goes away mid-request makes hyper drop this future, and
        // that must not stop the dial-out between its row's insert and the core taking it (a
        // row left live would hold its identity until a restart).
        let task = tokio::spawn({
            let this = self.clone();
            async move { this.dial_recorded(r).await }
        });
        Box::pin(async move {
            task.await.unwrap_or_else(|_| {
                Err(CallCommandError::Unavailable(
                    "the dial-out was interrupted".to_owned(),
                ))
            })
        })
    }

    fn hangup(&self, app_id: String, id: String) -> BoxFuture<Result<(), CallCommandError>> {
        let this = self.clone();
        Box::pin(async move {
            this.send(|reply| CoreInput::Call(CallCommand::Hangup { app_id, id }, reply))
                .await
        })
    }

    fn send_dtmf(
        &self,
        app_id: String,
        id: String,
        digits: String,
    ) -> BoxFuture<Result<(), CallCommandError>> {
        let this = self.clone();
        Box::pin(async move {
            let digits =
                DtmfSequence::parse(&digits).map_err(|e| invalid("digits", &e.to_string()))?;
            this.send(|reply| CoreInput::Call(CallCommand::Dtmf { app_id, id, digits }, reply))
                .await
        })
    }

    fn transfer(
        &self,
        app_id: String,
        id: String,
        target: TransferTarget,
    ) -> BoxFuture<Result<(), CallCommandError>> {
        let this = self.clone();
        Box::pin(async move {
            this.send(|reply| CoreInput::Call(CallCommand::Transfer { app_id, id, target }, reply))
                .await
        })
    }

    fn mute(
        &self,
        app_id: String,
        id: String,
        muted: bool,
    ) -> BoxFuture<Result<(), CallCommandError>> {
        let this = self.clone();
        Box::pin(async move {
            this.send(|reply| CoreInput::Call(CallCommand::Mute { app_id, id, muted }, reply))
                .await
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    fn dial_request(app_id: &str) -> sipx_api::call_service::DialRequest {
        sipx_api::call_service::DialRequest {
            app_id: app_id.to_owned(),
            to: "sip:+4930123@127.0.0.1:5060".to_owned(),
            from: None,
            withhold_caller_id: false,
            route: sipx_api::call_service::DialRoute::Automatic,
            room: "desk".to_owned(),
            identity: "cust".to_owned(),
            display_name: "Customer".to_owned(),
            metadata: None,
            ring_timeout: std::time::Duration::from_secs(30),
            max_duration: std::time::Duration::from_secs(60),
            dtmf_after_answer: None,
            early_media: false,
            srtp: None,
            webhook_url: None,
        }
    }

    /// A dial-out the core never took (it had stopped) gets its row ended, which frees its
    /// identity; a dial-out being recorded holds its identity against a second one.
    #[tokio::test]
    async fn a_dial_out_the_core_never_took_ends_its_row_and_frees_its_identity() {
        use sipx_api::call_service::{CallCommandError, CallService};
        let dir = tempfile::tempdir().unwrap();
        let key = sipx_secrets::MasterKey::generate().0;
        let store = sipx_store::Store::open(&dir.path().join("sipx.db"), key)
            .await
            .unwrap();
        let app = store.create_app("a").await.unwrap().0.id;
        // A core that has stopped: its inputs' receiver is gone.
        let (core, _) = tokio::sync::mpsc::channel(1);
        let control = super::CallControl::new(core, store.clone());

        let key = (app.clone(), "desk".to_owned(), "cust".to_owned());
        let held = super::IdentityClaim::take(&control.identity_claims, key.clone()).unwrap();
        let refused = control.dial(dial_request(&app)).await;
        assert!(
            matches!(refused, Err(CallCommandError::Conflict(_))),
            "{refused:?}"
        );
        assert!(super::IdentityClaim::take(&control.identity_claims, key.clone()).is_none());
        drop(held);

        let failed = control.dial(dial_request(&app)).await;
        assert!(
            matches!(failed, Err(CallCommandError::Unavailable(_))),
            "{failed:?}"
        );
        let live = store.live_call_with_identity(&app, "desk", "cust").await;
        assert_eq!(live.unwrap(), None, "the row was ended");
        let page = sipx_store::PageRequest {
            after: None,
            limit: 10,
        };
        let rows = store
            .list_calls(&app, &sipx_store::CallFilter::default(), &page)
            .await
            .unwrap();
        let row = &rows.items[0];
        assert_eq!(row.progress.state, "DISCONNECTED");
        assert_eq!(row.progress.end.as_ref().map(|e| e.code), Some(503));
        // And the claim was given back.
        assert!(super::IdentityClaim::take(&control.identity_claims, key).is_some());
    }
}
