//! SIP over WebSocket (RFC 7118), for browser SIP phones: each WebSocket message carries one
//! SIP message; the handshake must agree on the `sip` subprotocol.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};

use super::core::CoreInput;
use super::transport::{Conn, silence_deadline, sleep_until};

/// The WebSocket upgrade must finish within this.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Completes the WebSocket handshake (insisting on the `sip` subprotocol, within a time
/// limit), then runs the session.
pub(super) async fn connection<S>(
    stream: S,
    conn: Conn,
    core: mpsc::Sender<CoreInput>,
    stop: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // The callback's signature is tungstenite's: its error type is an HTTP response.
    #[allow(clippy::result_large_err)]
    let check = |req: &Request, mut resp: Response| -> Result<Response, ErrorResponse> {
        let offers_sip = req
            .headers()
            .get_all("sec-websocket-protocol")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|p| p.trim().eq_ignore_ascii_case("sip"));
        if !offers_sip {
            let mut refusal = ErrorResponse::new(Some(
                "the WebSocket subprotocol must be \"sip\" (RFC 7118)".to_owned(),
            ));
            *refusal.status_mut() = StatusCode::BAD_REQUEST;
            return Err(refusal);
        }
        resp.headers_mut()
            .insert("sec-websocket-protocol", HeaderValue::from_static("sip"));
        Ok(resp)
    };
    // A connection must speak within the setup timeout: the handshake is its first words.
    let limit = conn
        .timeouts
        .map_or(HANDSHAKE_TIMEOUT, |t| t.setup.min(HANDSHAKE_TIMEOUT));
    let ws = match tokio::time::timeout(limit, tokio_tungstenite::accept_hdr_async(stream, check))
        .await
    {
        Ok(Ok(ws)) => ws,
        Ok(Err(e)) => {
            tracing::debug!(addr = %conn.addr, error = %e, "SIP WebSocket handshake failed");
            return;
        }
        Err(_) => return,
    };
    session(ws, conn, core, stop).await;
}

async fn session<S>(
    ws: tokio_tungstenite::WebSocketStream<S>,
    conn: Conn,
    core: mpsc::Sender<CoreInput>,
    mut stop: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (addr, flow, peer) = (conn.addr, conn.flow, conn.peer());
    let (mut sink, mut stream) = ws.split();
    let (tx, mut rx) = super::write_queue::write_queue(addr);
    if core.send(CoreInput::FlowOpened { flow, tx }).await.is_err() {
        return;
    }
    let writer = tokio::spawn(async move {
        while let Some(bytes) = rx.next().await {
            // SIP is text; a message that is not UTF-8 (a binary body) goes as a binary frame.
            let msg = match String::from_utf8(bytes) {
                Ok(text) => Message::text(text),
                Err(e) => Message::binary(e.into_bytes()),
            };
            if sink.send(msg).await.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    });
    // Since when the connection has been silent (frames arrive whole: nothing is partial).
    let mut since = tokio::time::Instant::now();
    let mut carried_sip = false;
    loop {
        let deadline = silence_deadline(conn.timeouts, since, carried_sip, false);
        let next = tokio::select! {
            m = stream.next() => m,
            _ = stop.wait_for(|s| *s) => break,
            _ = sleep_until(deadline) => {
                metrics::counter!("sipx_sip_connections_timed_out_total").increment(1);
                tracing::debug!(%addr, carried_sip, "closing a silent SIP WebSocket");
                break;
            }
        };
        let bytes = match next {
            Some(Ok(Message::Text(t))) => t.as_bytes().to_vec(),
            Some(Ok(Message::Binary(b))) => b.to_vec(),
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => Vec::new(),
            Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
        };
        // A keep-alive (a ping frame, a CRLF) keeps a connection that carried SIP; it does not
        // make one.
        if bytes.iter().all(|b| *b == b'\r' || *b == b'\n') {
            if carried_sip {
                since = tokio::time::Instant::now();
            }
            continue;
        }
        (carried_sip, since) = (true, tokio::time::Instant::now());
        let msg = sipx_sip::msg::parse_datagram(&bytes);
        if core.send(CoreInput::Parsed { peer, msg }).await.is_err() {
            break;
        }
    }
    let _ = core.send(CoreInput::FlowClosed { flow }).await;
    super::transport::finish_writer(writer, &mut stop).await;
}
