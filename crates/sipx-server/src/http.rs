//! The HTTP(S) accept loop: one task per connection, TLS when configured, graceful stop.
//! Connections are bounded (`connection_limits`) and must send their headers in time, so
//! clients that open connections and say nothing cannot take the API's file descriptors.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::config::HttpConfig;
use crate::connection_limits::{ConnectionLimits, within_open_files};

/// A TLS handshake that has not finished by then is dropped (slowloris guard).
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// A failing accept (out of file descriptors) is logged at most this often.
const ACCEPT_ERROR_LOG_EVERY: Duration = Duration::from_secs(10);

/// The API's connection bounds: the configured ones, within a quarter of the open files this
/// process may have (half go to SIP's connections, the rest to media ports and the database).
pub fn connection_limits(c: &HttpConfig) -> Arc<ConnectionLimits> {
    let (max_total, _) = within_open_files(c.max_connections, 4);
    tracing::info!(
        max_connections = max_total,
        per_source = c.max_connections_per_source,
        header_timeout_secs = c.header_timeout_secs,
        "API connection limits"
    );
    ConnectionLimits::new(max_total, c.max_connections_per_source)
}

/// Serves `router` until `stop` turns true, then stops accepting and returns a handle that
/// resolves when every open connection has finished its in-flight requests.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    router: Router,
    (limits, header_timeout): (Arc<ConnectionLimits>, Duration),
    mut stop: watch::Receiver<bool>,
) -> GracefulShutdown {
    let graceful = GracefulShutdown::new();
    let acceptor = tls.map(TlsAcceptor::from);
    let mut builder = Builder::new(TokioExecutor::new());
    // hyper times the wait for a request's headers only with a timer; that wait includes an
    // idle keep-alive connection's wait for its next request.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    builder.http2().timer(TokioTimer::new());
    let mut accept_error_logged: Option<tokio::time::Instant> = None;
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.wait_for(|s| *s) => break,
        };
        let (stream, peer) = match accepted {
            Ok(conn) => conn,
            Err(e) => {
                // Usually EMFILE: back off instead of spinning, and say so once in a while,
                // not twenty times a second.
                let now = tokio::time::Instant::now();
                if accept_error_logged.is_none_or(|at| now - at >= ACCEPT_ERROR_LOG_EVERY) {
                    accept_error_logged = Some(now);
                    tracing::warn!(error = %e, "accept failed");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(permit) = limits.admit(peer.ip()) else {
            metrics::counter!("sipx_http_connections_refused_total").increment(1);
            tracing::debug!(%peer, "API connection refused: too many open");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        let builder = builder.clone();
        let watcher = graceful.watcher();
        match &acceptor {
            None => {
                tokio::spawn(async move {
                    // Held for the connection's life, upgrades included.
                    let _permit = permit;
                    let conn =
                        builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                    if let Err(e) = watcher.watch(conn.into_owned()).await {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                });
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let _permit = permit;
                    let tls =
                        match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream))
                            .await
                        {
                            Ok(Ok(tls)) => tls,
                            Ok(Err(e)) => {
                                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                                return;
                            }
                            Err(_) => return,
                        };
                    let conn = builder.serve_connection_with_upgrades(TokioIo::new(tls), service);
                    if let Err(e) = watcher.watch(conn.into_owned()).await {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                });
            }
        }
    }
    graceful
}
