//! The `webhook` routing action's question: a signed JSON POST to the rule's URL asking which
//! room an arriving call joins, bounded by the rule's timeout as a whole (connect, TLS, answer).
//! Runs in a task of its own; the core gets the parsed answer, or `None` for no answer.
//!
//! One connection per question (hyper's HTTP/1.1 client connection over TCP, or over rustls
//! for `https`): routing questions are rare next to the calls' media, and a pooled client
//! would keep sockets open to every rule's host. Redirects are not followed.
//!
//! The signature is the one of every webhook SIPx sends (docs/webhooks.md):
//! `SIPx-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(api_secret, "<t>.<body>")>`.

use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use serde::Deserialize;
use sipx_call::Pin;
use sipx_call::routing::{WebhookAnswer, is_reject_code};
use tokio::net::TcpStream;

/// The most of an answer read: a room name and a PIN need a few dozen bytes.
const MAX_ANSWER: usize = 16 * 1024;

/// What SIPx tells the webhook about the call.
#[derive(Debug, serde::Serialize)]
pub struct Question<'a> {
    pub call: QuestionCall<'a>,
}

#[derive(Debug, serde::Serialize)]
pub struct QuestionCall<'a> {
    pub from: &'a str,
    pub to: &'a str,
    pub trunk_id: Option<&'a str>,
    pub sip_account_id: Option<&'a str>,
}

/// `t=<unix>,v1=<hex>` over `body` under `secret`.
pub fn signature(secret: &[u8], unix: u64, body: &[u8]) -> String {
    use std::fmt::Write;
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
    let mut ctx = aws_lc_rs::hmac::Context::with_key(&key);
    ctx.update(unix.to_string().as_bytes());
    ctx.update(b".");
    ctx.update(body);
    let tag = ctx.sign();
    let mut out = format!("t={unix},v1=");
    for b in tag.as_ref() {
        let _ = write!(out, "{b:02x}");
    }
    out
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoomAnswer {
    room: String,
    #[serde(default)]
    pin: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RejectAnswer {
    reject: u16,
}

/// The webhook's answer as routing takes it: a `200` with `{"room": …, "pin"?: …}` or
/// `{"reject": code}`, each checked; anything else is no answer.
pub fn parse_answer(status: u16, body: &[u8]) -> Option<WebhookAnswer> {
    if status != 200 {
        return None;
    }
    if let Ok(a) = serde_json::from_slice::<RoomAnswer>(body) {
        if !sipx_rooms::valid_name(&a.room) {
            return None;
        }
        let pin = match a.pin {
            Some(p) => Some(Pin::new(&p)?),
            None => None,
        };
        return Some(WebhookAnswer::Room { name: a.room, pin });
    }
    let a = serde_json::from_slice::<RejectAnswer>(body).ok()?;
    is_reject_code(a.reject).then_some(WebhookAnswer::Reject { code: a.reject })
}

/// Why a question got no answer (logged; the call takes the fallback).
#[derive(Debug, thiserror::Error)]
pub enum AskError {
    #[error("unusable URL: {0}")]
    Url(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    Io(String),
}

/// POSTs `body` to `url`, signed under `secret`; the status and (bounded) body of the answer.
pub async fn ask(
    url: &str,
    timeout: Duration,
    signature: String,
    body: Vec<u8>,
    (tls, deny): (tokio_rustls::TlsConnector, crate::webhooks::DenyList),
) -> Result<(u16, Bytes), AskError> {
    let uri: hyper::Uri = url.parse().map_err(|e| AskError::Url(format!("{e}")))?;
    let https = match uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        _ => return Err(AskError::Url("not http or https".to_owned())),
    };
    let host = uri
        .host()
        .ok_or_else(|| AskError::Url("no host".to_owned()))?
        .to_owned();
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let authority = uri
        .authority()
        .map_or_else(|| host.clone(), |a| a.as_str().to_owned());
    let path = uri
        .path_and_query()
        .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned());
    let request = hyper::Request::post(path)
        .header(hyper::header::HOST, authority)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header(
            hyper::header::USER_AGENT,
            concat!("sipx/", env!("CARGO_PKG_VERSION")),
        )
        .header("SIPx-Signature", signature)
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| AskError::Url(e.to_string()))?;
    let exchange = async move {
        let bare = host.trim_matches(['[', ']']);
        // Only to addresses webhooks may reach (`webhooks.deny_networks`).
        let allowed = deny
            .resolve(bare, port)
            .await
            .map_err(|e| AskError::Io(format!("lookup: {e}")))?;
        let tcp = TcpStream::connect(&allowed[..])
            .await
            .map_err(|e| AskError::Io(format!("connect: {e}")))?;
        let _ = tcp.set_nodelay(true);
        if https {
            let name = ServerName::try_from(bare.to_owned())
                .map_err(|e| AskError::Url(format!("host: {e}")))?;
            let stream = tls
                .connect(name, tcp)
                .await
                .map_err(|e| AskError::Io(format!("TLS: {e}")))?;
            send(TokioIo::new(stream), request).await
        } else {
            send(TokioIo::new(tcp), request).await
        }
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| AskError::Timeout(timeout))?
}

async fn send<T>(io: T, request: hyper::Request<Full<Bytes>>) -> Result<(u16, Bytes), AskError>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| AskError::Io(format!("HTTP: {e}")))?;
    // The connection runs beside the exchange; it ends when the sender is dropped.
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let answer = sender
        .send_request(request)
        .await
        .map_err(|e| AskError::Io(format!("HTTP: {e}")))?;
    let status = answer.status().as_u16();
    let body = Limited::new(answer.into_body(), MAX_ANSWER)
        .collect()
        .await
        .map_err(|e| AskError::Io(format!("answer body: {e}")))?
        .to_bytes();
    Ok((status, body))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_signature_is_hmac_sha256_over_time_dot_body() {
        // Python: hmac.new(b"secret", b"1700000000.{}", hashlib.sha256).hexdigest()
        assert_eq!(
            signature(b"secret", 1_700_000_000, b"{}"),
            "t=1700000000,v1=b8569b78799ff9e3cbff0fc2d63a33a2b57f3282abd07c37ae5e8e7d79a5f163"
        );
    }

    #[test]
    fn answers_are_checked() {
        assert_eq!(
            parse_answer(200, br#"{"room":"support-7"}"#),
            Some(WebhookAnswer::Room {
                name: "support-7".into(),
                pin: None
            })
        );
        assert_eq!(
            parse_answer(200, br#"{"room":"vip","pin":"4711"}"#),
            Some(WebhookAnswer::Room {
                name: "vip".into(),
                pin: Pin::new("4711")
            })
        );
        assert_eq!(
            parse_answer(200, br#"{"reject":486}"#),
            Some(WebhookAnswer::Reject { code: 486 })
        );
        for (status, body) in [
            (500, &br#"{"room":"a"}"#[..]),
            (204, b""),
            (200, b"not json"),
            (200, br#"{"room":"bad name"}"#),
            (200, br#"{"room":"a","pin":"12"}"#),
            (200, br#"{"reject":401}"#),
            (200, br#"{"reject":200}"#),
            (200, br#"{"room":"a","extra":1}"#),
            (200, br#"{}"#),
        ] {
            assert_eq!(parse_answer(status, body), None, "{status} {body:?}");
        }
    }

    #[test]
    fn urls_that_cannot_be_asked_are_errors() {
        let tls = tokio_rustls::TlsConnector::from(crate::tls::client_config(None).unwrap());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        for url in ["ftp://x/", "not a url", "http:///path"] {
            let r = rt.block_on(ask(
                url,
                Duration::from_secs(1),
                String::new(),
                Vec::new(),
                (tls.clone(), crate::webhooks::DenyList::default()),
            ));
            assert!(matches!(r, Err(AskError::Url(_))), "{url}: {r:?}");
        }
    }
}
