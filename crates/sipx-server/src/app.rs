//! The running service: built from a [`Config`], run until a signal.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use sipx_api::events::DispatchQueue;
use sipx_api::{AdminCredential, ApiState, AuthSettings, EventBus, Health};
use sipx_secrets::Redacted;
use sipx_store::Store;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::{Config, Drain, StartupError};

/// How the service is asked to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shutdown {
    /// SIGTERM: stop taking new work, let live work finish (bounded by the drain timeout).
    Drain,
    /// SIGINT: stop now.
    Immediate,
}

pub struct App {
    config: Config,
    store: Store,
    health: Health,
    drain: Drain,
    http_listener: TcpListener,
    http_ready: Arc<std::sync::atomic::AtomicBool>,
    tls: Option<Arc<rustls::ServerConfig>>,
    sip: Option<crate::sip::BoundSip>,
    rooms: Option<(
        crate::rooms::RoomsHandle,
        tokio::sync::mpsc::UnboundedReceiver<crate::rooms::PhoneNotice>,
    )>,
    /// Application events: the API and the SIP core publish, the webhook dispatcher and the
    /// event streams consume.
    events: EventBus,
    dispatch: DispatchQueue,
    /// TLS client settings for HTTPS webhook receivers.
    webhook_tls: Arc<rustls::ClientConfig>,
    webhook_deny: crate::webhooks::DenyList,
}

impl App {
    /// Opens storage and binds every listener. Nothing is served until [`App::run`].
    pub async fn build(config: Config) -> Result<App, StartupError> {
        // Bind and load TLS before touching the data directory: a start that fails on a busy
        // port or a bad certificate leaves nothing behind.
        let http_listener = TcpListener::bind(config.http.listen)
            .await
            .map_err(|source| StartupError::Bind {
                what: "the HTTP API",
                addr: config.http.listen,
                source,
            })?;
        let (tls, tls_files) = Self::tls(&config)?;
        let sip_tls_files = match (&config.sip.tls_cert, &config.sip.tls_key) {
            (Some(c), Some(k)) => Some((c.clone(), k.clone())),
            _ => tls_files,
        };
        let health = Health::default();
        let webhook_deny = crate::webhooks::DenyList::parse(&config.webhooks.deny_networks)?;
        let sip = crate::sip::BoundSip::bind(&config.sip, &config.media, &health, sip_tls_files)
            .await?
            .map(|s| {
                s.with_routing(&config.routing)
                    .with_webhook_deny(webhook_deny.clone())
            });
        let webhook_tls = crate::tls::client_config(config.webhooks.tls_ca_file.as_deref())?;
        let rooms = if config.rooms.enabled {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            Some((crate::rooms::RoomsHandle::start(&config.rooms, tx)?, rx))
        } else {
            None
        };
        std::fs::create_dir_all(&config.data_dir).map_err(|source| StartupError::DataDir {
            path: config.data_dir.display().to_string(),
            source,
        })?;
        let master = crate::load_master_key(&config)?;
        let store = Store::open(&config.data_dir.join("sipx.db"), master).await?;
        store.check_master_key().await.map_err(|e| {
            StartupError::MasterKey(format!(
                "{e}: the configured master key is not the one the database was written with"
            ))
        })?;
        let http_ready = health.listener("http");
        let (events, dispatch) = EventBus::new();
        Ok(App {
            config,
            store,
            health,
            drain: Drain::default(),
            http_listener,
            http_ready,
            tls,
            sip,
            rooms,
            events,
            dispatch,
            webhook_tls,
            webhook_deny,
        })
    }

    /// The HTTPS configuration, and the certificate files it uses (SIP over TLS may share them).
    #[allow(clippy::type_complexity)]
    fn tls(
        config: &Config,
    ) -> Result<
        (
            Option<Arc<rustls::ServerConfig>>,
            Option<(PathBuf, PathBuf)>,
        ),
        StartupError,
    > {
        match (
            &config.http.tls.cert,
            &config.http.tls.key,
            config.http.tls.dev,
        ) {
            (Some(cert), Some(key), _) => Ok((
                Some(crate::tls::server_config(cert, key)?),
                Some((cert.clone(), key.clone())),
            )),
            (Some(_), None, _) | (None, Some(_), _) => Err(StartupError::Tls(
                "set both http.tls.cert and http.tls.key".to_owned(),
            )),
            (None, None, true) => {
                std::fs::create_dir_all(&config.data_dir).map_err(|source| {
                    StartupError::DataDir {
                        path: config.data_dir.display().to_string(),
                        source,
                    }
                })?;
                let (cert, key, fingerprint) = crate::tls::dev_certificate(&config.data_dir)?;
                tracing::info!(cert = %cert.display(), %fingerprint, "development TLS certificate (self-signed)");
                Ok((
                    Some(crate::tls::server_config(&cert, &key)?),
                    Some((cert, key)),
                ))
            }
            (None, None, false) => Ok((None, None)),
        }
    }

    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_listener.local_addr().ok()
    }

    /// The bus application events are published on (the SIP core's calls publish there).
    pub fn events(&self) -> EventBus {
        self.events.clone()
    }

    /// The drain tracker that live calls register with.
    pub fn drain(&self) -> Drain {
        self.drain.clone()
    }

    /// Serves until the first of `signals`, then stops as it asks (another cuts a drain short).
    pub async fn run(self, mut signals: Signals) {
        let App {
            config,
            store,
            health,
            drain,
            http_listener,
            http_ready,
            tls,
            sip,
            rooms,
            events,
            dispatch,
            webhook_tls,
            webhook_deny,
        } = self;
        let admin = match (&config.admin.api_key, &config.admin.api_secret) {
            (Some(key), Some(secret)) => Some(AdminCredential {
                api_key: key.clone(),
                api_secret: Redacted::new(secret.expose().to_owned()),
            }),
            _ => None,
        };
        let runtime = sipx_api::Runtime::default();
        let core_queue = sip.as_ref().map(|_| crate::sip::BoundSip::core_queue());
        let calls = core_queue
            .as_ref()
            .map(|q| crate::sip::BoundSip::call_control(q, store.clone()));
        let sockets = sipx_api::socket_stop::SocketStop::default();
        let state = ApiState {
            store: store.clone(),
            auth: Arc::new(AuthSettings {
                max_expiry_ahead: Duration::from_secs(config.auth.max_expiry_ahead_secs),
                admin,
                room_token_max_ttl: Duration::from_secs(config.rooms.max_token_ttl_secs),
            }),
            metrics: sipx_api::metrics_handle(),
            health: health.clone(),
            runtime: runtime.clone(),
            rooms: rooms
                .as_ref()
                .map(|(h, _)| Arc::new(h.clone()) as Arc<dyn sipx_api::room_service::RoomService>),
            calls,
            events: events.clone(),
            sockets: sockets.clone(),
            g729: cfg!(feature = "g729"),
        };
        let router = sipx_api::router(state, config.http.body_limit);

        if let Some((h, _)) = &rooms {
            // Logged once running, not at bind: a start that fails says one line only.
            tracing::info!(addr = %h.local_addr(), "rooms listening (WebRTC, UDP)");
        }
        let scheme = if tls.is_some() { "https" } else { "http" };
        if let Ok(addr) = http_listener.local_addr() {
            tracing::info!(%addr, %scheme, url = %format!("{scheme}://{addr}/"), "HTTP API listening");
        }
        let (stop_tx, stop_rx) = watch::channel(false);
        // SIP stops later than HTTP: calls go on through a drain, and end with a BYE when it
        // is over (`sip/core/shutdown.rs`). The webhook dispatcher stops last, once the calls'
        // last events are queued.
        let (sip_stop_tx, sip_stop_rx) = watch::channel(false);
        let (webhooks_stop_tx, webhooks_stop_rx) = watch::channel(false);
        let webhooks = crate::webhooks::spawn(
            store.clone(),
            dispatch,
            &config.webhooks,
            (webhook_tls, webhook_deny),
            webhooks_stop_rx,
        );
        let mut sip_tasks = Vec::new();
        if let (Some(sip), Some(queue)) = (sip, core_queue) {
            match sip
                .spawn(
                    store.clone(),
                    queue,
                    runtime,
                    events.clone(),
                    rooms,
                    crate::sip::ShutdownLink::new(
                        drain.clone(),
                        health.clone(),
                        Duration::from_secs(config.shutdown.drain_timeout_secs),
                        sip_stop_rx,
                    ),
                )
                .await
            {
                Ok(tasks) => sip_tasks = tasks,
                Err(e) => tracing::error!(error = %e, "SIP service did not start"),
            }
        }
        http_ready.store(true, Ordering::SeqCst);
        let http_limits = (
            crate::http::connection_limits(&config.http),
            Duration::from_secs(config.http.header_timeout_secs.max(1)),
        );
        let server = tokio::spawn(crate::http::serve(
            http_listener,
            tls,
            router,
            http_limits,
            stop_rx,
        ));

        let how = signals.next().await;
        health.set_draining();
        // Event streams never finish on their own: end them, or the drain waits for them.
        events.close();
        let _ = stop_tx.send(true);
        let graceful = server.await.ok();
        match how {
            Shutdown::Immediate => {
                tracing::info!("SIGINT: stopping now");
            }
            Shutdown::Drain => {
                let timeout = Duration::from_secs(config.shutdown.drain_timeout_secs);
                tracing::info!(
                    live = drain.active(),
                    timeout_s = timeout.as_secs(),
                    "SIGTERM: draining (new work refused)"
                );
                let start = tokio::time::Instant::now();
                let drained = async {
                    let requests_done = match graceful {
                        Some(g) => tokio::time::timeout(timeout, g.shutdown()).await.is_ok(),
                        None => true,
                    };
                    let left = timeout.saturating_sub(start.elapsed());
                    requests_done && drain.wait_idle(left).await
                };
                // A second SIGTERM, or a SIGINT, during the drain: stop now (README).
                tokio::select! {
                    done = drained => if done {
                        tracing::info!("drained");
                    } else {
                        tracing::warn!(
                            live = drain.active(),
                            "drain timeout: stopping with work still live"
                        );
                    },
                    _ = signals.next() => tracing::warn!(
                        live = drain.active(),
                        "another signal during the drain: stopping now"
                    ),
                }
            }
        }
        // Calls still up are hung up now (at once for SIGINT, after the drain for SIGTERM).
        let _ = sip_stop_tx.send(true);
        // The SIP tasks end on the stop signal; the registration and call-row writers end once
        // the core is gone, after flushing what was queued (the rows of calls that ended on
        // the way out among them), and only then does the database close.
        for t in sip_tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
        // The calls are over: the browsers still in rooms are told the server goes away
        // (WebSocket 1001) rather than see their connection drop.
        if !sockets.close_all(Duration::from_secs(2)).await {
            tracing::warn!(
                open = sockets.open_count(),
                "room sockets still open at the stop"
            );
        }
        // The dispatcher stores the events still queued (those of the calls just ended among
        // them) and stops; what it had not sent stays pending in the database for the next
        // start.
        let _ = webhooks_stop_tx.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(5), webhooks).await;
        store.close().await;
    }
}

/// Installs the SIGTERM (drain) and SIGINT (immediate) handlers now.
///
/// Installing them before anything is bound matters: until a handler exists, SIGTERM kills the
/// process outright, skipping the drain.
pub fn signals() -> Result<Signals, StartupError> {
    use tokio::signal::unix::{SignalKind, signal};
    let install = |kind| {
        signal(kind)
            .map_err(|e| StartupError::Config(format!("cannot install signal handlers: {e}")))
    };
    Ok(Signals {
        term: install(SignalKind::terminate())?,
        int: install(SignalKind::interrupt())?,
    })
}

/// SIGTERM and SIGINT, listened for from start to exit: the first asks for a stop, another
/// during a drain cuts it short.
pub struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    /// The next signal, as the stop it asks for.
    pub async fn next(&mut self) -> Shutdown {
        tokio::select! {
            _ = self.term.recv() => Shutdown::Drain,
            _ = self.int.recv() => Shutdown::Immediate,
        }
    }
}
