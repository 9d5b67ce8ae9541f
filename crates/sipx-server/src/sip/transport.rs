//! Socket tasks for SIP: UDP receive loops and TCP connections (framed by `sipx_sip::msg::Framer`).
//! They only move bytes: every decision is the core's.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use sipx_sip::msg::{Framed, Framer, ParseError, SipMessage};
use sipx_sip::{FlowId, Peer, Transport};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{mpsc, watch};

use super::core::CoreInput;
use super::stream_limits::{StreamLimits, StreamTimeouts};

/// Flow ids: UDP sockets and TCP connections share one numbering.
#[derive(Debug, Default)]
pub struct FlowIds(AtomicU64);

impl FlowIds {
    pub fn next(&self) -> FlowId {
        FlowId(self.0.fetch_add(1, Ordering::Relaxed) + 1)
    }
}

/// Binds a UDP socket with a large receive buffer (bursts of REGISTERs and INVITEs must not be
/// dropped by the kernel while the core is busy).
pub fn bind_udp(addr: SocketAddr, recv_buffer: usize) -> std::io::Result<UdpSocket> {
    let domain = socket2::Domain::for_address(addr);
    let socket = socket2::Socket::new(domain, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    // Best effort: the kernel caps it at net.core.rmem_max.
    let _ = socket.set_recv_buffer_size(recv_buffer);
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    UdpSocket::from_std(socket.into())
}

/// Binds a stream (TCP, TLS, WebSocket) listener; an IPv6 one IPv6-only, as UDP sockets are, so
/// that a dual-stack SIPx lists one listener per family and every peer's address is of its own
/// family (never an IPv4-mapped one).
pub fn bind_stream(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let domain = socket2::Domain::for_address(addr);
    let socket = socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::TCP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    TcpListener::from_std(socket.into())
}

/// A received datagram as a message, or `None` for a keep-alive CRLF (RFC 5626 §3.5.1 over
/// UDP), which carries none.
pub fn parse_datagram(bytes: &[u8]) -> Option<Result<SipMessage, ParseError>> {
    if bytes.iter().all(|b| *b == b'\r' || *b == b'\n') {
        return None;
    }
    Some(sipx_sip::msg::parse_datagram(bytes))
}

/// Receives on a UDP socket in a task of its own (for the sockets the core does not read
/// itself), parsing on this task's thread.
pub async fn udp_loop(
    socket: Arc<UdpSocket>,
    flow: FlowId,
    core: mpsc::Sender<CoreInput>,
    mut stop: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 65_535];
    loop {
        let received = tokio::select! {
            r = socket.recv_from(&mut buf) => r,
            _ = stop.wait_for(|s| *s) => return,
        };
        match received {
            Ok((n, addr)) => {
                let peer = Peer {
                    transport: Transport::Udp,
                    flow,
                    addr,
                };
                let Some(msg) = parse_datagram(&buf[..n]) else {
                    continue;
                };
                if core.send(CoreInput::Parsed { peer, msg }).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                // ICMP errors surface here on Linux (ECONNREFUSED from an earlier send).
                tracing::debug!(error = %e, "UDP receive error");
            }
        }
    }
}

/// A TLS handshake that has not finished by then is dropped.
const TLS_HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// What a stream listener speaks once a connection is accepted (and TLS-wrapped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// SIP framed by Content-Length (TCP, TLS).
    Stream,
    /// SIP over WebSocket, RFC 7118 (WS, WSS).
    WebSocket,
}

impl Protocol {
    fn transport(self, secure: bool) -> Transport {
        match (self, secure) {
            (Protocol::Stream, false) => Transport::Tcp,
            (Protocol::Stream, true) => Transport::Tls,
            (Protocol::WebSocket, false) => Transport::Ws,
            (Protocol::WebSocket, true) => Transport::Wss,
        }
    }
}

/// Accepts connections on a stream listener, TLS-wrapped when `tls` is set, one task each,
/// within `limits` (a connection past them is closed at once).
pub async fn accept_loop(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    protocol: Protocol,
    ids: Arc<FlowIds>,
    limits: Arc<StreamLimits>,
    core: mpsc::Sender<CoreInput>,
    mut stop: watch::Receiver<bool>,
) {
    // The connections, so that a stop lets them write what the core queued last (the BYEs of
    // calls hung up on the way out) before the process exits.
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => Some(a),
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            _ = stop.wait_for(|s| *s) => None,
        };
        let Some(accepted) = accepted else {
            return let_connections_finish(connections).await;
        };
        let (stream, addr) = match accepted {
            Ok(conn) => conn,
            Err(e) => {
                // Usually EMFILE: back off instead of spinning.
                tracing::warn!(error = %e, "SIP accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(permit) = limits.connections.admit(addr.ip()) else {
            metrics::counter!("sipx_sip_connections_refused_total").increment(1);
            tracing::debug!(%addr, "SIP connection refused: too many open");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let flow = ids.next();
        let (core, stop, tls) = (core.clone(), stop.clone(), tls.clone());
        let timeouts = Some(limits.timeouts);
        connections.spawn(async move {
            // Held for the connection's life: its place comes back when it ends.
            let _permit = permit;
            let Some(acceptor) = tls else {
                let transport = protocol.transport(false);
                let conn = Conn {
                    addr,
                    flow,
                    transport,
                    timeouts,
                };
                return serve(protocol, stream, conn, core, stop).await;
            };
            match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => {
                    let transport = protocol.transport(true);
                    let conn = Conn {
                        addr,
                        flow,
                        transport,
                        timeouts,
                    };
                    serve(protocol, tls, conn, core, stop).await;
                }
                Ok(Err(e)) => tracing::debug!(%addr, error = %e, "SIP TLS handshake failed"),
                Err(_) => tracing::debug!(%addr, "SIP TLS handshake timed out"),
            }
        });
    }
}

/// A TCP connection to `addr`, from `from` (any port) when given.
async fn open(addr: SocketAddr, from: Option<std::net::IpAddr>) -> std::io::Result<TcpStream> {
    let Some(ip) = from else {
        return TcpStream::connect(addr).await;
    };
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.bind(SocketAddr::new(ip, 0))?;
    socket.connect(addr).await
}

/// An outgoing connection that is not up by then has failed.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Opens a stream connection of SIPx's own (TCP, or TLS verified against `server_name`) and
/// serves it like an accepted one. The core learns the outcome as `FlowOpened` (then its flow
/// carries requests both ways) or `ConnectFailed`. `from`: the local address to send from, a
/// listener's, so that a provider that admits SIPx by its address (and reads the Via) sees
/// the one SIPx listens on, not whichever the routing table picks on a host with several.
pub async fn connect(
    addr: SocketAddr,
    from: Option<std::net::IpAddr>,
    tls: ProviderTls,
    flow: FlowId,
    core: mpsc::Sender<CoreInput>,
    stop: watch::Receiver<bool>,
) {
    let failed = |reason: String| CoreInput::ConnectFailed { flow, reason };
    let stream = match tokio::time::timeout(CONNECT_TIMEOUT, open(addr, from)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            let _ = core.send(failed(format!("connection failed: {e}"))).await;
            return;
        }
        Err(_) => {
            let _ = core.send(failed("connection timed out".to_owned())).await;
            return;
        }
    };
    let _ = stream.set_nodelay(true);
    // SIPx's own connections (to providers) stay as long as SIPx keeps them.
    let conn = |transport| Conn {
        addr,
        flow,
        transport,
        timeouts: None,
    };
    let Some((connector, name)) = tls else {
        return stream_connection(stream, conn(Transport::Tcp), core, stop).await;
    };
    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, connector.connect(name, stream)).await {
        Ok(Ok(tls)) => stream_connection(tls, conn(Transport::Tls), core, stop).await,
        Ok(Err(e)) => {
            let _ = core
                .send(failed(format!("TLS handshake failed: {e}")))
                .await;
        }
        Err(_) => {
            let _ = core
                .send(failed("TLS handshake timed out".to_owned()))
                .await;
        }
    }
}

/// How a connection of SIPx's own to a provider at `host` is secured: not at all over TCP;
/// over TLS, with a certificate verified against `host`.
pub(super) type ProviderTls = Option<(
    tokio_rustls::TlsConnector,
    rustls::pki_types::ServerName<'static>,
)>;

/// The [`ProviderTls`] for `transport` to `host`, or why there is none.
pub(super) fn provider_tls(
    client: Option<&tokio_rustls::TlsConnector>,
    transport: Transport,
    host: &str,
) -> Result<ProviderTls, &'static str> {
    if transport != Transport::Tls {
        return Ok(None);
    }
    let client = client.ok_or("no TLS client configuration")?;
    let name = rustls::pki_types::ServerName::try_from(host.trim_matches(['[', ']']).to_owned())
        .map_err(|_| "the provider host is not a TLS name")?;
    Ok(Some((client.clone(), name)))
}

/// A connection as its task knows it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Conn {
    pub addr: SocketAddr,
    pub flow: FlowId,
    pub transport: Transport,
    /// `None` for SIPx's own connections, which no peer's silence closes.
    pub timeouts: Option<StreamTimeouts>,
}

impl Conn {
    pub fn peer(&self) -> Peer {
        Peer {
            transport: self.transport,
            flow: self.flow,
            addr: self.addr,
        }
    }
}

async fn serve<S>(
    protocol: Protocol,
    stream: S,
    conn: Conn,
    core: mpsc::Sender<CoreInput>,
    stop: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    match protocol {
        Protocol::Stream => stream_connection(stream, conn, core, stop).await,
        Protocol::WebSocket => super::ws::connection(stream, conn, core, stop).await,
    }
}

/// When a connection that stays silent from `now` on is closed: a first message, or the end
/// of one begun, is due within the setup timeout; after that, silence may last the idle one.
pub(super) fn silence_deadline(
    timeouts: Option<StreamTimeouts>,
    since: tokio::time::Instant,
    carried_sip: bool,
    partial: bool,
) -> Option<tokio::time::Instant> {
    let t = timeouts?;
    Some(
        since
            + if carried_sip && !partial {
                t.idle
            } else {
                t.setup
            },
    )
}

/// Sleeps until `deadline`, or forever without one.
pub(super) async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// One stream connection (TCP or TLS): frames what arrives, writes what the core sends.
async fn stream_connection<S>(
    stream: S,
    conn: Conn,
    core: mpsc::Sender<CoreInput>,
    mut stop: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (addr, flow, peer) = (conn.addr, conn.flow, conn.peer());
    let (mut reader, mut writer) = tokio::io::split(stream);
    let (tx, mut rx) = super::write_queue::write_queue(addr);
    if core.send(CoreInput::FlowOpened { flow, tx }).await.is_err() {
        return;
    }
    let write_task = tokio::spawn(async move {
        while let Some(bytes) = rx.next().await {
            if writer.write_all(&bytes).await.is_err() {
                break;
            }
        }
        let _ = writer.shutdown().await;
    });
    let mut framer = Framer::new();
    let mut buf = vec![0u8; 16 * 1024];
    // Since when the connection has been silent, or its current message unfinished.
    let mut since = tokio::time::Instant::now();
    let mut carried_sip = false;
    'conn: loop {
        let deadline = silence_deadline(conn.timeouts, since, carried_sip, framer.has_partial());
        let n = tokio::select! {
            r = reader.read(&mut buf) => match r {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            },
            _ = stop.wait_for(|s| *s) => break,
            _ = sleep_until(deadline) => {
                metrics::counter!("sipx_sip_connections_timed_out_total").increment(1);
                tracing::debug!(%addr, carried_sip, "closing a silent or stalled SIP connection");
                break;
            }
        };
        let was_partial = framer.has_partial();
        framer.push(&buf[..n]);
        loop {
            match framer.next_unit() {
                Ok(Some(Framed::Message(msg))) => {
                    (carried_sip, since) = (true, tokio::time::Instant::now());
                    if core.send(CoreInput::Parsed { peer, msg }).await.is_err() {
                        break 'conn;
                    }
                }
                Ok(Some(Framed::Ping)) => {
                    // A keep-alive keeps a connection that carried SIP; it does not make one.
                    if carried_sip {
                        since = tokio::time::Instant::now();
                    }
                    let _ = core.send(CoreInput::Pong { peer }).await;
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(%addr, error = %e, "closing SIP stream connection");
                    // A request whose head arrived gets its 400 or 513 before the close.
                    if let Some(refusal) = framer.refusal(&e) {
                        let msg = Err(refusal);
                        let _ = core.send(CoreInput::Parsed { peer, msg }).await;
                    }
                    break 'conn;
                }
            }
        }
        // A message begun now must be finished within the setup timeout from here.
        if framer.has_partial() && !was_partial {
            since = tokio::time::Instant::now();
        }
    }
    let _ = core.send(CoreInput::FlowClosed { flow }).await;
    finish_writer(write_task, &mut stop).await;
}

/// Waits, for at most [`STOP_LINGER`], for the connection tasks in `connections` to write what
/// the core queued last and end (they were told to stop).
pub(super) async fn let_connections_finish(mut connections: tokio::task::JoinSet<()>) {
    let all_done = async { while connections.join_next().await.is_some() {} };
    let _ = tokio::time::timeout(STOP_LINGER, all_done).await;
}

/// How long a closing connection may take to write what the core had queued for it.
const LINGER: std::time::Duration = std::time::Duration::from_secs(2);
/// The same when SIPx stops: the core has closed, and its last messages are queued.
const STOP_LINGER: std::time::Duration = std::time::Duration::from_millis(500);

/// Ends a connection's writer. The answers the core queued before it heard the connection
/// close (the response to the last good message before a framing error, or to one the peer
/// sent just before closing its side) still go out: the writer stops by itself once the core
/// drops its sender, and is cut off after [`LINGER`] (a peer that reads nothing), or
/// [`STOP_LINGER`] when SIPx stops (the core, closed first, has queued its last messages: the
/// BYEs of the calls it hung up).
pub(super) async fn finish_writer(
    mut writer: tokio::task::JoinHandle<()>,
    stop: &mut watch::Receiver<bool>,
) {
    let abort = writer.abort_handle();
    if !*stop.borrow() {
        tokio::select! {
            _ = tokio::time::timeout(LINGER, &mut writer) => {
                // Done, or cut off (a no-op when done).
                abort.abort();
                return;
            }
            _ = stop.wait_for(|s| *s) => {}
        }
    }
    let _ = tokio::time::timeout(STOP_LINGER, &mut writer).await;
    abort.abort();
}
