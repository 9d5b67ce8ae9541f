//! The demo page and the browser client, compiled into the binary: `/` (index.html),
//! `/sipx-client.js`, `/demo.js`, `/demo.css`, `/favicon.svg`. No authentication (the page signs
//! its own API requests) and not in the OpenAPI document: these are files, not API operations.

use axum::Router;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, HOST, REFERRER_POLICY,
    X_CONTENT_TYPE_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::routes::ops;

/// One file served from memory.
#[derive(Clone, Copy)]
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static str,
}

/// An [`Asset`] from a file of `web/` at the root of the repository.
macro_rules! asset {
    ($path:literal, $file:literal, $content_type:expr) => {
        Asset {
            path: $path,
            content_type: $content_type,
            body: include_str!(concat!("../../../../web/", $file)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

const ASSETS: [Asset; 5] = [
    asset!("/", "index.html", "text/html; charset=utf-8"),
    asset!("/sipx-client.js", "sipx-client.js", JS),
    asset!("/demo.js", "demo.js", JS),
    asset!("/demo.css", "demo.css", "text/css; charset=utf-8"),
    asset!("/favicon.svg", "favicon.svg", "image/svg+xml"),
];

/// The routes of the page and its files.
pub fn router() -> Router {
    let mut router = Router::new();
    for asset in ASSETS {
        router = router.route(
            asset.path,
            get(move |headers: HeaderMap, uri: Uri| async move { serve(asset, &headers, &uri) }),
        );
    }
    router.method_not_allowed_fallback(ops::method_not_allowed)
}

fn serve(asset: Asset, headers: &HeaderMap, uri: &Uri) -> Response {
    let host = headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| uri.authority().map(|a| a.as_str()));
    let csp = HeaderValue::from_str(&content_security_policy(host))
        .unwrap_or_else(|_| HeaderValue::from_static(STRICT_CSP));
    (
        [
            (CONTENT_TYPE, HeaderValue::from_static(asset.content_type)),
            // Always revalidated: a new binary must never run with an old page's script.
            (CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (CONTENT_SECURITY_POLICY, csp),
            (X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
            (REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
        ],
        asset.body,
    )
        .into_response()
}

/// The policy when the request names no usable host: same origin only (CSP 3 lets `'self'`
/// match the WebSocket schemes too, but not every browser does).
const STRICT_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self'; media-src 'self'; connect-src 'self'; base-uri 'none'; \
    form-action 'self'; frame-ancestors 'none'";

/// Self only: scripts, styles and images from this origin, no inline code, no framing;
/// network access to the API and the room signalling socket (`ws:`/`wss:` of the same host,
/// spelled out for browsers where `'self'` does not cover WebSocket schemes).
fn content_security_policy(host: Option<&str>) -> String {
    match host.filter(|h| is_authority(h)) {
        Some(host) => STRICT_CSP.replace(
            "connect-src 'self'",
            &format!("connect-src 'self' ws://{host} wss://{host}"),
        ),
        None => STRICT_CSP.to_owned(),
    }
}

/// A `host[:port]` (names, IPv4, bracketed IPv6) and nothing that could end a CSP directive or
/// source list: the value is copied from the request into the policy.
fn is_authority(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_names_the_websocket_origin_of_a_plain_host() {
        let csp = content_security_policy(Some("127.0.0.1:8080"));
        assert!(
            csp.contains("connect-src 'self' ws://127.0.0.1:8080 wss://127.0.0.1:8080;"),
            "{csp}"
        );
        assert!(csp.starts_with("default-src 'none'; script-src 'self'; style-src 'self';"));
        let v6 = content_security_policy(Some("[::1]:443"));
        assert!(v6.contains("ws://[::1]:443 wss://[::1]:443"), "{v6}");
    }

    #[test]
    fn policy_refuses_a_host_that_would_inject_sources() {
        for bad in [
            "evil.example; script-src *",
            "a b",
            "x,y",
            "h'",
            "",
            "a\"",
            "*",
        ] {
            assert_eq!(content_security_policy(Some(bad)), STRICT_CSP, "{bad}");
        }
        assert_eq!(content_security_policy(None), STRICT_CSP);
    }
}
