//! The HTTP(S) accept loop: one task per connection, TLS when configured, graceful stop.
//! Connections are bounded (`connection_limits`) and must send their headers in time, so
//! clients that open connections and say nothing cannot take the API's file descriptors.
//!
//! HTTP/1.1 only (with upgrades, for WebSockets): hyper times the wait for a request's headers
//! from the moment a connection opens and between requests, where its HTTP/2 server has no
//! such timer and the protocol sniffing of `hyper_util`'s auto server waits for a first byte
//! without one. Browsers reach the API over HTTP/1.1 as well (ALPN offers only it).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;

use crate::config::HttpConfig;
use crate::connection_limits::{ConnectionLimits, ConnectionPermit, within_open_files};

mod automatic_replies;
use automatic_replies::ProblemReplies;

/// A TLS handshake that has not finished by then is dropped (slowloris guard).
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// At a stop, how long a connection may take to finish the request it has in flight.
const STOP_GRACE: Duration = Duration::from_secs(5);
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

/// The open connections at a stop: each finishes the requests it has in flight, then closes.
pub struct Connections {
    graceful: watch::Sender<bool>,
    open: mpsc::Receiver<()>,
}

impl Connections {
    /// Asks every connection to finish, and returns once all have.
    pub async fn shutdown(mut self) {
        let _ = self.graceful.send(true);
        // Each connection's task holds a sender; `None` once the last is gone.
        let _ = self.open.recv().await;
    }
}

/// Serves `router` until `stop` turns true, then stops accepting and returns the connections
/// still open, to wait for.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    router: Router,
    (limits, header_timeout): (Arc<ConnectionLimits>, Duration),
    mut stop: watch::Receiver<bool>,
) -> Connections {
    let (graceful, graceful_rx) = watch::channel(false);
    let (open_tx, open) = mpsc::channel::<()>(1);
    let acceptor = tls.map(TlsAcceptor::from);
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
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
        let (builder, acceptor) = (builder.clone(), acceptor.clone());
        let (mut graceful_rx, open_tx) = (graceful_rx.clone(), open_tx.clone());
        tokio::spawn(async move {
            let _open = open_tx;
            let result = match acceptor {
                None => {
                    let (io, heard) = Counted::new(ProblemReplies::new(stream), permit);
                    let conn = builder
                        .serve_connection(TokioIo::new(io), service)
                        .with_upgrades();
                    finish_on_stop(conn, &mut graceful_rx, &heard).await
                }
                Some(acceptor) => {
                    let handshake =
                        tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream));
                    let tls = tokio::select! {
                        done = handshake => done,
                        // A stop does not wait for a handshake.
                        stopping = graceful_rx.wait_for(|g| *g) => { drop(stopping); return; }
                    };
                    let tls = match tls {
                        Ok(Ok(tls)) => tls,
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => return,
                    };
                    let (io, heard) = Counted::new(ProblemReplies::new(tls), permit);
                    let conn = builder
                        .serve_connection(TokioIo::new(io), service)
                        .with_upgrades();
                    finish_on_stop(conn, &mut graceful_rx, &heard).await
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    Connections { graceful, open }
}

/// Serves a connection; once a stop begins, lets it finish the request in flight and close.
/// A connection that has not sent a byte has nothing in flight and is closed at once.
async fn finish_on_stop<I>(
    conn: http1::UpgradeableConnection<I, TowerToHyperService<Router>>,
    graceful: &mut watch::Receiver<bool>,
    heard: &AtomicBool,
) -> Result<(), hyper::Error>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => return result,
        stopping = graceful.wait_for(|g| *g) => drop(stopping),
    }
    if !heard.load(Ordering::Relaxed) {
        return Ok(());
    }
    conn.as_mut().graceful_shutdown();
    // A request in flight gets a little while; one whose client has sent half its headers
    // (or trickles a body) does not hold the stop for its whole timeout.
    tokio::time::timeout(STOP_GRACE, conn)
        .await
        .unwrap_or(Ok(()))
}

/// A connection's stream with its place in the bounds: the place is given back when the stream
/// is dropped, which for a WebSocket is when the socket closes, not when hyper hands it over.
struct Counted<S> {
    io: S,
    _permit: ConnectionPermit,
    /// Whether the client has sent anything at all.
    heard: Arc<AtomicBool>,
}

impl<S> Counted<S> {
    fn new(io: S, permit: ConnectionPermit) -> (Self, Arc<AtomicBool>) {
        let heard = Arc::new(AtomicBool::new(false));
        let counted = Counted {
            io,
            _permit: permit,
            heard: heard.clone(),
        };
        (counted, heard)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let read = Pin::new(&mut this.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.heard.store(true, Ordering::Relaxed);
        }
        read
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Serves a one-route API on a loopback port; sends `request` over a fresh connection and
    /// returns all the server wrote before closing.
    async fn exchange(request: &[u8]) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = Router::new().route("/ok", axum::routing::get(|| async { "fine" }));
        let limits = ConnectionLimits::new(8, 8);
        let (stop_tx, stop) = watch::channel(false);
        let server = tokio::spawn(serve(
            listener,
            None,
            router,
            (limits, Duration::from_secs(5)),
            stop,
        ));
        let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
        client.write_all(request).await.unwrap();
        let mut reply = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), client.read_to_end(&mut reply));
        let _ = read.await;
        let _ = stop_tx.send(true);
        let _ = server.await;
        String::from_utf8_lossy(&reply).into_owned()
    }

    fn problem_of(reply: &str) -> (&str, serde_json::Value) {
        let (head, body) = reply.split_once("\r\n\r\n").unwrap_or((reply, ""));
        let problem = serde_json::from_str(body).unwrap_or(serde_json::Value::Null);
        (head, problem)
    }

    #[tokio::test]
    async fn requests_hyper_cannot_parse_get_problem_documents() {
        let long_uri = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(70_000));
        let many_headers = format!(
            "GET /ok HTTP/1.1\r\nHost: x\r\n{}\r\n",
            "X-Padding: y\r\n".repeat(200)
        );
        let cases: [(&[u8], u16, &str); 5] = [
            (
                b"GET /ok HTTP/1.1\r\nbad header\r\n\r\n",
                400,
                "bad-request",
            ),
            (b"\x00\x01\x02garbage\r\n\r\n", 400, "bad-request"),
            (b"GET /ok HTTP/9.9\r\n\r\n", 400, "bad-request"),
            (long_uri.as_bytes(), 414, "uri-too-long"),
            (many_headers.as_bytes(), 431, "headers-too-large"),
        ];
        for (request, status, slug) in cases {
            let reply = exchange(request).await;
            let (head, problem) = problem_of(&reply);
            assert!(head.starts_with(&format!("HTTP/1.1 {status} ")), "{reply}");
            assert!(
                head.contains("\r\ncontent-type: application/problem+json"),
                "{reply}"
            );
            assert_eq!(problem["status"], status, "{reply}");
            let closes = head
                .to_ascii_lowercase()
                .matches("\r\nconnection: close")
                .count();
            assert_eq!(closes, 1, "{reply}");
            assert_eq!(problem["type"], format!("urn:sipx:problem:{slug}"));
        }
    }

    #[tokio::test]
    async fn well_formed_requests_are_answered_as_before() {
        let reply = exchange(b"GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
        assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"), "{reply}");
        assert!(reply.ends_with("\r\n\r\nfine"), "{reply}");
        let reply =
            exchange(b"GET /nowhere HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
        assert!(reply.starts_with("HTTP/1.1 404 Not Found\r\n"), "{reply}");
        assert!(!reply.contains("problem+json"), "{reply}");
    }
}
