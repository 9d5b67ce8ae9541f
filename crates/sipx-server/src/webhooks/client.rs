//! The HTTP(S) client that POSTs webhooks: hyper's pooled HTTP/1.1 client over SIPx's own
//! connector (TCP with a connect timeout, then rustls with the system roots), so no other TLS
//! stack enters the build. Redirects are not followed: a 3xx is an answer like any other.

use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::Uri;
use hyper::body::Bytes;
use hyper::header::{CONTENT_TYPE, HeaderName, HeaderValue, USER_AGENT};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::deny::{Denied, DenyList, GuardedResolver};
use super::policy::Outcome;

/// Most of a receiver's answer body read (and thrown away) so the connection can be reused.
const MAX_ANSWER_BODY: usize = 64 * 1024;

#[derive(Clone)]
pub struct WebhookClient {
    client: Client<Connector, Full<Bytes>>,
    request_timeout: Duration,
    user_agent: HeaderValue,
    deny: DenyList,
}

impl WebhookClient {
    pub fn new(
        tls: Arc<rustls::ClientConfig>,
        (connect_timeout, request_timeout): (Duration, Duration),
        deny: DenyList,
    ) -> Self {
        let mut http = HttpConnector::new_with_resolver(GuardedResolver::new(deny.clone()));
        http.enforce_http(false); // https:// URIs reach the connector, which adds TLS
        http.set_connect_timeout(Some(connect_timeout));
        http.set_nodelay(true);
        let connector = Connector {
            http,
            tls: TlsConnector::from(tls),
        };
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(8)
            .build(connector);
        WebhookClient {
            client,
            request_timeout,
            user_agent: HeaderValue::from_static(concat!("sipx/", env!("CARGO_PKG_VERSION"))),
            deny,
        }
    }

    /// POSTs `body` as JSON with the extra `headers`; the answer's status, or why there was
    /// none. Bounded by the request timeout as a whole.
    pub async fn post(&self, url: &str, headers: &[(HeaderName, String)], body: Bytes) -> Outcome {
        // Through the URL parser first: it puts a host in its ASCII form and escapes what HTTP
        // does not allow, as a URL given by a call may need.
        let parsed = url::Url::parse(url).map_err(|e| e.to_string());
        // An address in the URL is not looked up, so the resolver's check does not see it.
        let literal = match parsed.as_ref().ok().and_then(url::Url::host) {
            Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
            _ => None,
        };
        if literal.is_some_and(|ip| self.deny.denies(ip)) {
            return Outcome::Unsendable(
                "the URL's address is one webhooks may not reach (webhooks.deny_networks)"
                    .to_owned(),
            );
        }
        let uri = parsed.and_then(|u| u.as_str().parse::<Uri>().map_err(|e| e.to_string()));
        let uri = match uri {
            Ok(uri) => uri,
            Err(e) => return Outcome::Unsendable(format!("unusable URL: {e}")),
        };
        let mut request = hyper::Request::post(uri)
            .header(CONTENT_TYPE, "application/json")
            .header(USER_AGENT, self.user_agent.clone());
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let request = match request.body(Full::new(body)) {
            Ok(r) => r,
            Err(e) => return Outcome::Unsendable(format!("cannot build the request: {e}")),
        };
        let exchange = async {
            let answer = self.client.request(request).await.map_err(|e| {
                // A name that resolves only to denied addresses is refused for good.
                (denied(&e), describe(&e))
            })?;
            let status = answer.status().as_u16();
            // Read what the receiver sent, within reason, so the connection can be reused;
            // a body too long or cut short does not change the status.
            let _ = Limited::new(answer.into_body(), MAX_ANSWER_BODY)
                .collect()
                .await;
            Ok::<u16, (bool, String)>(status)
        };
        match tokio::time::timeout(self.request_timeout, exchange).await {
            Ok(Ok(status)) => Outcome::Answered(status),
            Ok(Err((true, e))) => Outcome::Unsendable(e),
            Ok(Err((false, e))) => Outcome::NoAnswer(e),
            Err(_) => Outcome::NoAnswer(format!(
                "no answer within {} ms",
                self.request_timeout.as_millis()
            )),
        }
    }
}

/// Whether the request failed because the receiver's addresses are all denied
/// (`GuardedResolver`'s `Denied`, somewhere in the chain).
fn denied(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(e);
    while let Some(cause) = source {
        let inner = cause
            .downcast_ref::<io::Error>()
            .and_then(io::Error::get_ref)
            .map(|i| i as &(dyn std::error::Error + 'static));
        if cause.is::<Denied>() || inner.is_some_and(|i| i.is::<Denied>()) {
            return true;
        }
        source = cause.source();
    }
    false
}

/// An error with its causes, `outer: inner: root` (hyper's own message alone says little).
fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let part = cause.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = cause.source();
    }
    text
}

/// Opens TCP, then TLS for `https`.
#[derive(Clone)]
struct Connector {
    http: HttpConnector<GuardedResolver>,
    tls: TlsConnector,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl tower::Service<Uri> for Connector {
    type Response = Conn;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Conn, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.http.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let tcp = self.http.call(uri.clone());
        let tls = self.tls.clone();
        Box::pin(async move {
            let tcp = tcp.await?;
            if uri.scheme_str() != Some("https") {
                return Ok(Conn::Plain(tcp));
            }
            let host = uri.host().unwrap_or_default();
            // An IPv6 literal comes bracketed in a URI, bare in a server name.
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let name = ServerName::try_from(host.to_owned())
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
            let stream = tls.connect(name, tcp.into_inner()).await?;
            Ok(Conn::Tls(Box::new(TokioIo::new(stream))))
        })
    }
}

/// A connection to a receiver, with or without TLS.
enum Conn {
    Plain(TokioIo<TcpStream>),
    Tls(Box<TokioIo<TlsStream<TcpStream>>>),
}

impl Connection for Conn {
    fn connected(&self) -> Connected {
        match self {
            Conn::Plain(s) => s.connected(),
            Conn::Tls(s) => s.inner().get_ref().0.connected(),
        }
    }
}

impl hyper::rt::Read for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl hyper::rt::Write for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
