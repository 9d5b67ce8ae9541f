//! SIP service: binds the listeners at build time (so a busy port fails the start), then runs
//! the core task, the socket tasks and the registration writer.

mod abuse;
mod call_service;
mod core;
mod locate;
pub(crate) use core::ShutdownLink;
mod route_webhook;
mod stream_limits;
mod transport;
mod write_queue;
mod ws;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sipx_api::Health;
use sipx_sip::digest::{Algorithm, DigestServer};
use sipx_sip::registrar::RegisterPolicy;
use sipx_sip::{Endpoint, EndpointConfig, FlowId, Transport};
use sipx_store::Store;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::StartupError;
use crate::config::SipConfig;
use abuse::AbusePolicy;
use core::{Core, CoreSettings};
use transport::FlowIds;

/// Listeners bound, nothing running yet.
pub struct BoundSip {
    config: SipConfig,
    udp: Vec<(FlowId, Arc<UdpSocket>, Arc<AtomicBool>)>,
    tcp: Vec<(TcpListener, Option<TlsAcceptor>, Arc<AtomicBool>)>,
    ws: Vec<(TcpListener, Option<TlsAcceptor>, Arc<AtomicBool>)>,
    ids: Arc<FlowIds>,
    algorithms: Vec<Algorithm>,
    trusted: Vec<ipnet::IpNet>,
    /// `sip.dns_servers`, read.
    dns_servers: Vec<std::net::SocketAddr>,
    /// For SIPx's own TLS connections (registering to providers).
    tls_client: Arc<rustls::ClientConfig>,
    media_config: crate::config::MediaConfig,
    media: crate::media::MediaSettings,
    no_rule_status: u16,
    /// Networks routing webhooks are never sent to (`webhooks.deny_networks`).
    webhook_deny: crate::webhooks::DenyList,
}

impl BoundSip {
    /// Binds every listener. `tls_files` is the certificate for SIP over TLS when `sip.tls`
    /// has addresses (the caller resolves the fallbacks).
    pub async fn bind(
        config: &SipConfig,
        media_config: &crate::config::MediaConfig,
        health: &Health,
        tls_files: Option<(PathBuf, PathBuf)>,
    ) -> Result<Option<BoundSip>, StartupError> {
        if !config.enabled {
            return Ok(None);
        }
        let algorithms = config
            .digest_algorithms
            .iter()
            .map(|a| {
                Algorithm::parse(a).ok_or_else(|| {
                    StartupError::Config(format!("sip.digest_algorithms: unknown algorithm {a:?}"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let trusted = config
            .trusted_proxies
            .iter()
            .map(|t| {
                t.parse::<ipnet::IpNet>()
                    .or_else(|_| t.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| {
                        StartupError::Config(format!(
                            "sip.trusted_proxies: {t:?} is not an address or network"
                        ))
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let dns_servers = config
            .dns_servers
            .iter()
            .map(|s| {
                s.parse::<std::net::SocketAddr>()
                    .or_else(|_| {
                        let ip = s.trim_matches(['[', ']']).parse::<std::net::IpAddr>()?;
                        Ok::<_, std::net::AddrParseError>(std::net::SocketAddr::new(ip, 53))
                    })
                    .map_err(|_| {
                        StartupError::Config(format!(
                            "sip.dns_servers: {s:?} is not an address, or an address and port"
                        ))
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(host) = config.external_host.as_deref()
            && !sipx_sip::msg::is_host(host)
        {
            // A port here would be written after SIPx's own ("host:5060:5061"): the listeners'
            // ports are advertised as they are, so a NAT must forward them unchanged.
            return Err(StartupError::Config(format!(
                "sip.external_host: {host:?} is not a host name or address (no port, no scheme)"
            )));
        }
        let tls_client = crate::tls::client_config(config.tls_ca_file.as_deref())?;
        let media = crate::media::MediaSettings::from_config(media_config)?;
        let ids = Arc::new(FlowIds::default());
        let mut udp = Vec::new();
        for addr in &config.udp {
            let socket = transport::bind_udp(*addr, config.udp_recv_buffer).map_err(|source| {
                StartupError::Bind {
                    what: "SIP over UDP",
                    addr: *addr,
                    source,
                }
            })?;
            let ready = health.listener(&format!("sip-udp {addr}"));
            udp.push((ids.next(), Arc::new(socket), ready));
        }
        let mut tcp = Vec::new();
        for addr in &config.tcp {
            let listener = transport::bind_stream(*addr).map_err(|source| StartupError::Bind {
                what: "SIP over TCP",
                addr: *addr,
                source,
            })?;
            let ready = health.listener(&format!("sip-tcp {addr}"));
            tcp.push((listener, None, ready));
        }
        // One certificate serves SIP over TLS and secure WebSocket.
        let acceptor = if config.tls.is_empty() && config.wss.is_empty() {
            None
        } else {
            let Some((cert, key)) = tls_files else {
                return Err(StartupError::Tls(
                    "sip.tls and sip.wss need a certificate: set sip.tls_cert/sip.tls_key or http.tls"
                        .to_owned(),
                ));
            };
            Some(TlsAcceptor::from(crate::tls::plain_server_config(
                &cert, &key,
            )?))
        };
        for addr in &config.tls {
            let listener = transport::bind_stream(*addr).map_err(|source| StartupError::Bind {
                what: "SIP over TLS",
                addr: *addr,
                source,
            })?;
            let ready = health.listener(&format!("sip-tls {addr}"));
            tcp.push((listener, acceptor.clone(), ready));
        }
        let mut ws = Vec::new();
        let kinds = [
            (&config.ws, None, "SIP over WebSocket", "sip-ws"),
            (
                &config.wss,
                acceptor.clone(),
                "SIP over secure WebSocket",
                "sip-wss",
            ),
        ];
        for (addrs, tls, what, name) in kinds {
            for addr in addrs {
                let listener =
                    transport::bind_stream(*addr).map_err(|source| StartupError::Bind {
                        what,
                        addr: *addr,
                        source,
                    })?;
                let ready = health.listener(&format!("{name} {addr}"));
                ws.push((listener, tls.clone(), ready));
            }
        }
        Ok(Some(BoundSip {
            config: config.clone(),
            udp,
            tcp,
            ws,
            ids,
            algorithms,
            trusted,
            dns_servers,
            tls_client,
            media_config: media_config.clone(),
            media,
            no_rule_status: crate::config::NoRuleStatus::default().code(),
            webhook_deny: crate::webhooks::DenyList::default(),
        }))
    }

    /// How calls no routing rule matches are answered (`routing.no_rule_status`).
    pub fn with_routing(mut self, routing: &crate::config::RoutingConfig) -> Self {
        self.no_rule_status = routing.no_rule_status.code();
        self
    }

    /// Where routing webhooks may not go: the networks webhooks may not reach.
    pub fn with_webhook_deny(mut self, deny: crate::webhooks::DenyList) -> Self {
        self.webhook_deny = deny;
        self
    }

    /// The UDP, TCP, TLS and WebSocket listeners' transports and addresses (a Contact names
    /// the one of the transport a peer reached us by).
    fn listeners(&self) -> Vec<(Transport, SocketAddr)> {
        let udp = self
            .udp
            .iter()
            .filter_map(|(_, s, _)| Some((Transport::Udp, s.local_addr().ok()?)));
        // Stream listeners, TLS-wrapped or not: (plain, secure) names for each kind.
        let tcp = self
            .tcp
            .iter()
            .map(|(l, tls, _)| (l, tls.is_some(), Transport::Tcp, Transport::Tls));
        let ws = self
            .ws
            .iter()
            .map(|(l, tls, _)| (l, tls.is_some(), Transport::Ws, Transport::Wss));
        let streams = tcp.chain(ws).filter_map(|(l, secure, plain, tls)| {
            Some((if secure { tls } else { plain }, l.local_addr().ok()?))
        });
        udp.chain(streams).collect()
    }

    /// The core's input queue, made before the tasks start so the API's call control can hold
    /// its sending end; pass both ends to [`BoundSip::spawn`].
    pub(crate) fn core_queue() -> CoreQueue {
        let (tx, rx) = mpsc::channel(4096);
        CoreQueue { tx, rx }
    }

    /// Call control for the API, sending into `queue`.
    pub(crate) fn call_control(
        queue: &CoreQueue,
        store: Store,
    ) -> std::sync::Arc<dyn sipx_api::call_service::CallService> {
        std::sync::Arc::new(call_service::CallControl::new(queue.tx.clone(), store))
    }

    /// Starts every task; the core closes when `shutdown`'s signal turns true, and the others
    /// stop after it.
    pub async fn spawn(
        self,
        store: Store,
        queue: CoreQueue,
        runtime: sipx_api::Runtime,
        events: sipx_api::events::EventBus,
        rooms: Option<(
            crate::rooms::RoomsHandle,
            mpsc::UnboundedReceiver<crate::rooms::PhoneNotice>,
        )>,
        shutdown: core::ShutdownLink,
    ) -> Result<Vec<JoinHandle<()>>, StartupError> {
        // Sockets and connections stop after the core has closed (`core/shutdown.rs`).
        let stop = shutdown.io_stop();
        let close = shutdown.close_signal();
        let c = &self.config;
        let mut seed = [0u8; 8];
        sipx_secrets::generate::fill(&mut seed);
        let mut nonce_key = [0u8; 32];
        sipx_secrets::generate::fill(&mut nonce_key);
        let endpoint = Endpoint::new(EndpointConfig {
            t1: Duration::from_millis(c.t1_ms),
            t2: Duration::from_millis(c.t2_ms),
            t4: Duration::from_millis(c.t4_ms),
            seed: u64::from_le_bytes(seed),
        });
        let settings = CoreSettings {
            register: RegisterPolicy {
                min_expires: c.min_expires,
                max_expires: c.max_expires,
                default_expires: c.default_expires,
                max_bindings: 5,
            },
            abuse: AbusePolicy {
                max_auth_failures: c.max_auth_failures.max(1),
                failure_window: Duration::from_secs(c.failure_window_secs),
                ban: Duration::from_secs(c.ban_secs),
                drop_scanners: c.drop_scanners,
                rate_per_sec: c.rate_limit_per_sec,
                rate_burst: c.rate_limit_burst,
                trusted: self.trusted.clone(),
            },
            unknown_source: c.unknown_source,
            nat_keepalive: (c.nat_keepalive_secs > 0)
                .then(|| Duration::from_secs(c.nat_keepalive_secs)),
            server_header: format!("SIPx/{}", env!("CARGO_PKG_VERSION")),
            external_host: c.external_host.as_deref().map(sipx_sip::msg::uri_host),
            listeners: self.listeners(),
            media: self.media.clone(),
            no_rule_status: self.no_rule_status,
            webhook_deny: self.webhook_deny.clone(),
            session_min_se: c.session_min_se_secs.max(1),
            session_expires: match c.session_expires_secs {
                0 => 0,
                n => n.max(c.session_min_se_secs.max(1)),
            },
            accept_refer: c.accept_refer,
            dns_servers: self.dns_servers.clone(),
        };
        let connector = core::Connector {
            flow_ids: self.ids.clone(),
            tls: Some(tokio_rustls::TlsConnector::from(self.tls_client.clone())),
            stop: stop.clone(),
        };
        let now_secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let loaded = store
            .live_registrations(i64::try_from(now_secs).unwrap_or(i64::MAX))
            .await?;
        tracing::info!(contacts = loaded.len(), "registrations restored");
        let CoreQueue { tx, rx } = queue;
        let (persist_tx, persist_rx) = mpsc::unbounded_channel();
        match store.end_orphaned_calls("SIPx restarted").await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(calls = n, "calls left live by an unclean stop were ended"),
            Err(e) => tracing::error!(error = %e, "cannot end the calls of an unclean stop"),
        }
        let (rows_tx, rows_rx) = mpsc::unbounded_channel();
        // The calls' rows: one writer, in queue order. It ends once the core (which holds its
        // queue) is gone, after writing what was queued; the caller awaits it after the core,
        // before it closes the database, so the states of calls that ended on the way out land.
        let rows_writer = tokio::spawn(core::persist_rows(store.clone(), events.clone(), rows_rx));
        let mut tasks = Vec::new();
        tasks.push(tokio::spawn(core::persist_loop(
            store.clone(),
            persist_rx,
            tx.clone(),
        )));
        let limits = stream_limits(c);
        let mut udp_map = HashMap::new();
        let mut direct_udp = None;
        for (flow, socket, ready) in self.udp {
            if let Ok(a) = socket.local_addr() {
                tracing::info!(addr = %a, "SIP listening on UDP");
            }
            udp_map.insert(flow, socket.clone());
            ready.store(true, Ordering::SeqCst);
            // The core reads the first UDP socket itself; further ones get a task each.
            if direct_udp.is_none() {
                direct_udp = Some((flow, socket));
                continue;
            }
            tasks.push(tokio::spawn(transport::udp_loop(
                socket,
                flow,
                tx.clone(),
                stop.clone(),
            )));
        }
        for (listener, tls, ready) in self.tcp {
            if let Ok(a) = listener.local_addr() {
                if tls.is_some() {
                    tracing::info!(addr = %a, "SIP listening on TLS");
                } else {
                    tracing::info!(addr = %a, "SIP listening on TCP");
                }
            }
            ready.store(true, Ordering::SeqCst);
            tasks.push(tokio::spawn(transport::accept_loop(
                listener,
                tls,
                transport::Protocol::Stream,
                self.ids.clone(),
                limits.clone(),
                tx.clone(),
                stop.clone(),
            )));
        }
        for (listener, tls, ready) in self.ws {
            if let Ok(a) = listener.local_addr() {
                if tls.is_some() {
                    tracing::info!(addr = %a, "SIP listening on WSS");
                } else {
                    tracing::info!(addr = %a, "SIP listening on WS");
                }
            }
            ready.store(true, Ordering::SeqCst);
            tasks.push(tokio::spawn(transport::accept_loop(
                listener,
                tls,
                transport::Protocol::WebSocket,
                self.ids.clone(),
                limits.clone(),
                tx.clone(),
                stop.clone(),
            )));
        }
        let mut digest = DigestServer::new(c.realm.clone(), nonce_key, c.nonce_ttl_secs);
        digest.set_algorithms(self.algorithms);
        let core_tx = tx.clone();
        let rooms_tx = tx.clone();
        let mut core = Core::new(
            endpoint, settings, digest, udp_map, store, tx, persist_tx, loaded, runtime, connector,
        );
        if let Some((flow, socket)) = direct_udp {
            core.read_udp_directly(flow, socket);
        }
        core.set_row_writer(rows_tx);
        core.set_events(events);
        core.set_shutdown(shutdown);
        // The media threads report into the core's queue.
        let (media_tx, mut media_rx) = mpsc::unbounded_channel();
        let engine = crate::media::MediaEngine::start(&self.media_config, media_tx)?;
        core.set_media(engine);
        let mut forward_stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let event = tokio::select! {
                    e = media_rx.recv() => e,
                    _ = forward_stop.wait_for(|s| *s) => None,
                };
                let Some(event) = event else { return };
                if core_tx.send(core::CoreInput::Media(event)).await.is_err() {
                    return;
                }
            }
        }));
        if let Some((handle, mut notices)) = rooms {
            core.set_rooms(handle);
            let core_tx = rooms_tx;
            let mut forward_stop = stop.clone();
            tasks.push(tokio::spawn(async move {
                loop {
                    let notice = tokio::select! {
                        n = notices.recv() => n,
                        _ = forward_stop.wait_for(|s| *s) => None,
                    };
                    let Some(notice) = notice else { return };
                    if core_tx.send(core::CoreInput::Room(notice)).await.is_err() {
                        return;
                    }
                }
            }));
        }
        tasks.push(tokio::spawn(core.run(rx, close)));
        tasks.push(rows_writer);
        Ok(tasks)
    }
}

/// The SIP core's input queue (see [`BoundSip::core_queue`]).
pub(crate) struct CoreQueue {
    tx: mpsc::Sender<core::CoreInput>,
    rx: mpsc::Receiver<core::CoreInput>,
}

/// The bounds on others' stream connections, within the open files this process may have:
/// half of them stay for media ports, the API and the database.
fn stream_limits(c: &SipConfig) -> Arc<stream_limits::StreamLimits> {
    let (max_total, files) = crate::connection_limits::within_open_files(c.max_connections, 2);
    tracing::info!(
        open_files = files,
        max_connections = max_total,
        per_source = c.max_connections_per_source,
        "SIP stream connection limits"
    );
    let timeouts = stream_limits::StreamTimeouts {
        setup: Duration::from_secs(c.stream_setup_timeout_secs.max(1)),
        idle: Duration::from_secs(u64::from(c.max_expires) + 60),
    };
    Arc::new(stream_limits::StreamLimits {
        connections: crate::connection_limits::ConnectionLimits::new(
            max_total,
            c.max_connections_per_source,
        ),
        timeouts,
    })
}
