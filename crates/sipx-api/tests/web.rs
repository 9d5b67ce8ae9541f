#![allow(clippy::unwrap_used, clippy::expect_used)] // Test code: a panic is a failed test.

//! The demo page and the browser client are served from the binary with their content types,
//! no caching without revalidation, and a Content-Security-Policy; the API around them is
//! unchanged.

mod common;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use common::TestApi;
use http_body_util::BodyExt;
use tower::ServiceExt;

struct Served {
    status: StatusCode,
    headers: HeaderMap,
    text: String,
}

async fn fetch(api: &TestApi, method: &str, path: &str) -> Served {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "127.0.0.1:8080")
        .body(Body::empty())
        .unwrap();
    let resp = api.router.clone().oneshot(req).await.unwrap();
    let (status, headers) = (resp.status(), resp.headers().clone());
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    Served {
        status,
        headers,
        text: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

/// The answer as a problem document, to check with `Reply::assert_problem`.
async fn problem(api: &TestApi, method: &str, path: &str) -> common::Reply {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .body(Body::empty())
        .unwrap();
    api.send(req).await
}

#[tokio::test]
async fn page_and_client_are_served_with_their_types_and_policy() {
    let api = TestApi::new().await;
    for (path, ty, marker) in [
        (
            "/",
            "text/html; charset=utf-8",
            "<script type=\"module\" src=\"/demo.js\">",
        ),
        (
            "/sipx-client.js",
            "text/javascript; charset=utf-8",
            "export class SipxRoom",
        ),
        (
            "/demo.js",
            "text/javascript; charset=utf-8",
            "from '/sipx-client.js'",
        ),
        ("/demo.css", "text/css; charset=utf-8", ".tile"),
        ("/favicon.svg", "image/svg+xml", "<svg"),
    ] {
        let served = fetch(&api, "GET", path).await;
        let headers = &served.headers;
        assert_eq!(served.status, 200, "{path}");
        assert_eq!(headers["content-type"], ty, "{path}");
        assert!(served.text.contains(marker), "{path}");
        assert_eq!(headers["cache-control"], "no-cache", "{path}");
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("default-src 'none'"), "{csp}");
        assert!(csp.contains("script-src 'self';"), "{csp}");
        assert!(
            csp.contains("connect-src 'self' ws://127.0.0.1:8080 wss://127.0.0.1:8080;"),
            "{csp}"
        );
        assert!(!csp.contains("unsafe"), "{csp}");
    }
}

#[tokio::test]
async fn head_works_and_other_methods_and_paths_answer_problems() {
    let api = TestApi::new().await;
    let head = fetch(&api, "HEAD", "/").await;
    assert_eq!(head.status, 200);
    assert!(head.headers.contains_key("content-security-policy"));
    assert!(head.text.is_empty());
    problem(&api, "POST", "/")
        .await
        .assert_problem(405, "method-not-allowed");
    problem(&api, "GET", "/index.htm")
        .await
        .assert_problem(404, "not-found");
    // The API next to it still demands a signature.
    problem(&api, "GET", "/v1/app")
        .await
        .assert_problem(401, "unauthorized");
    assert_eq!(fetch(&api, "GET", "/healthz").await.status, 200);
}
