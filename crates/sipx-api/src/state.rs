//! What every handler can reach.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;
use sipx_secrets::Redacted;
use sipx_store::Store;

/// Shared state of the API. Cheap to clone.
#[derive(Clone)]
pub struct ApiState {
    pub store: Store,
    pub auth: Arc<AuthSettings>,
    pub metrics: PrometheusHandle,
    pub health: Health,
    pub runtime: Runtime,
    /// The built-in rooms, when enabled.
    pub rooms: Option<std::sync::Arc<dyn crate::room_service::RoomService>>,
    /// Call control (the SIP core), when SIP is running.
    pub calls: Option<std::sync::Arc<dyn crate::call_service::CallService>>,
    /// Where application events are published (webhooks and `GET /v1/events`).
    pub events: crate::events::EventBus,
    /// The room signalling sockets' end at the stop.
    pub sockets: crate::socket_stop::SocketStop,
    /// Whether this build has G.729 (the `g729` feature): trunks and accounts may list it.
    pub g729: bool,
}

/// Live state the SIP service publishes for the API to show (it is not in the database).
#[derive(Clone, Default)]
pub struct Runtime {
    trunk_registrations:
        Arc<std::sync::RwLock<std::collections::HashMap<String, TrunkRegistrationState>>>,
    /// username → (application, live contacts): the registrar's own view, always current.
    bindings: Arc<std::sync::RwLock<BindingsByUser>>,
}

/// username → (application, live contacts).
type BindingsByUser = std::collections::HashMap<String, (String, Vec<BindingView>)>;

/// One registered contact, as the registrar holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct BindingView {
    pub contact: String,
    /// Unix seconds.
    pub expires_at: u64,
    pub q: Option<f32>,
    pub source: String,
    pub transport: String,
    pub user_agent: Option<String>,
    pub path: Vec<String>,
}

/// Where SIPx's registration to a trunk's provider stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrunkRegistrationState {
    /// `registering`, `registered`, `failed` or `idle`.
    pub state: &'static str,
    pub last_status: Option<u16>,
    pub last_reason: Option<String>,
    /// Unix seconds until which the provider holds the registration.
    pub expires_at: Option<u64>,
}

impl Runtime {
    pub fn set_trunk_registration(&self, trunk_id: &str, state: Option<TrunkRegistrationState>) {
        if let Ok(mut m) = self.trunk_registrations.write() {
            match state {
                Some(s) => {
                    m.insert(trunk_id.to_owned(), s);
                }
                None => {
                    m.remove(trunk_id);
                }
            }
        }
    }

    /// Replaces the contacts of `username` (empty: none left).
    pub fn set_bindings(&self, username: &str, app_id: &str, contacts: Vec<BindingView>) {
        if let Ok(mut m) = self.bindings.write() {
            if contacts.is_empty() {
                m.remove(username);
            } else {
                m.insert(username.to_owned(), (app_id.to_owned(), contacts));
            }
        }
    }

    /// An application's contacts live at `now_secs`, by username then contact.
    pub fn bindings_of(&self, app_id: &str, now_secs: u64) -> Vec<(String, BindingView)> {
        let mut out: Vec<(String, BindingView)> = self
            .bindings
            .read()
            .map(|m| {
                m.iter()
                    .filter(|(_, (app, _))| app == app_id)
                    .flat_map(|(user, (_, b))| {
                        b.iter()
                            .filter(|b| b.expires_at > now_secs)
                            .map(|b| (user.clone(), b.clone()))
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.sort_by(|a, b| (&a.0, &a.1.contact).cmp(&(&b.0, &b.1.contact)));
        out
    }

    pub fn trunk_registration(&self, trunk_id: &str) -> Option<TrunkRegistrationState> {
        self.trunk_registrations
            .read()
            .ok()
            .and_then(|m| m.get(trunk_id).cloned())
    }
}

/// How requests are authenticated.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// How far in the future `expire_at` may lie; a signature valid for longer is refused, so a
    /// leaked URL cannot be replayed for months.
    pub max_expiry_ahead: Duration,
    /// The longest lifetime of a room join token the API mints.
    pub room_token_max_ttl: Duration,
    /// The operator's credential for `/v1/apps`, when configured.
    pub admin: Option<AdminCredential>,
}

#[derive(Debug, Clone)]
pub struct AdminCredential {
    pub api_key: String,
    pub api_secret: Redacted<String>,
}

/// Readiness inputs owned by the server: each listener flips its flag once bound, and the
/// drain sets `draining` so load balancers stop sending new work.
#[derive(Clone, Default)]
pub struct Health {
    inner: Arc<HealthInner>,
}

#[derive(Default)]
struct HealthInner {
    draining: AtomicBool,
    listeners: std::sync::RwLock<Vec<(String, Arc<AtomicBool>)>>,
}

impl Health {
    /// Registers a listener, initially down; set the returned flag once it is bound.
    pub fn listener(&self, name: &str) -> Arc<AtomicBool> {
        let flag = Arc::new(AtomicBool::new(false));
        if let Ok(mut l) = self.inner.listeners.write() {
            l.push((name.to_owned(), flag.clone()));
        }
        flag
    }

    pub fn set_draining(&self) {
        self.inner.draining.store(true, Ordering::SeqCst);
    }

    pub fn is_draining(&self) -> bool {
        self.inner.draining.load(Ordering::SeqCst)
    }

    /// Each listener with whether it is up.
    pub fn listeners(&self) -> Vec<(String, bool)> {
        self.inner
            .listeners
            .read()
            .map(|l| {
                l.iter()
                    .map(|(n, f)| (n.clone(), f.load(Ordering::SeqCst)))
                    .collect()
            })
            .unwrap_or_default()
    }
}
