#![allow(clippy::unwrap_used, clippy::expect_used)] // Test code: a panic is a failed test.

//! Bad input of every kind gets a 4xx problem document, never a 500 or a bare body.

mod common;

use axum::body::Body;
use axum::http::Request;
use common::{TestApi, now};
use serde_json::json;

fn signed_uri(c: &common::Creds, path: &str) -> String {
    let exp = (now() + 600).to_string();
    let sig = sipx_secrets::sign(&c.key, &exp, c.secret.as_bytes());
    format!("{path}?api_key={}&expire_at={exp}&signature={sig}", c.key)
}

/// (what, method, content type, body, expected status, expected problem slug)
type Case<'a> = (&'a str, &'a str, Option<&'a str>, String, u16, &'a str);

#[tokio::test]
async fn malformed_bodies_answer_4xx_problems() {
    let api = TestApi::with_body_limit(4096).await;
    let c = api.new_app("a").await;
    let json_ct = Some("application/json");
    let long = "x".repeat(300);
    let cases: Vec<Case> = vec![
        (
            "syntax error",
            "POST",
            json_ct,
            "{\"username\": ".into(),
            400,
            "bad-request",
        ),
        (
            "not an object",
            "POST",
            json_ct,
            "[1,2]".into(),
            422,
            "invalid-body",
        ),
        (
            "empty body",
            "POST",
            json_ct,
            String::new(),
            400,
            "bad-request",
        ),
        (
            "wrong type",
            "POST",
            json_ct,
            json!({"username": 5, "password": "password-1"}).to_string(),
            422,
            "invalid-body",
        ),
        (
            "wrong nested type",
            "POST",
            json_ct,
            json!({"username": "u1", "password": "password-1", "allowed_cidrs": "10.0.0.0/8"})
                .to_string(),
            422,
            "invalid-body",
        ),
        (
            "missing field",
            "POST",
            json_ct,
            json!({"username": "u1"}).to_string(),
            422,
            "invalid-body",
        ),
        (
            "unknown field",
            "POST",
            json_ct,
            json!({"username": "u1", "password": "password-1", "pasword": "x"}).to_string(),
            422,
            "invalid-body",
        ),
        (
            "negative number",
            "POST",
            json_ct,
            json!({"username": "u1", "password": "password-1", "max_bindings": -1}).to_string(),
            422,
            "invalid-body",
        ),
        (
            "out of range",
            "POST",
            json_ct,
            json!({"username": "u1", "password": "password-1", "max_bindings": 1000}).to_string(),
            422,
            "invalid-body",
        ),
        (
            "bad username",
            "POST",
            json_ct,
            json!({"username": "a b@c", "password": "password-1"}).to_string(),
            422,
            "invalid-body",
        ),
        (
            "short password",
            "POST",
            json_ct,
            json!({"username": "u1", "password": "short"}).to_string(),
            422,
            "invalid-body",
        ),
        (
            "bad cidr",
            "POST",
            json_ct,
            json!({"username": "u1", "password": "password-1", "allowed_cidrs": ["10.0.0.0/33"]})
                .to_string(),
            422,
            "invalid-body",
        ),
        (
            "long description",
            "POST",
            json_ct,
            json!({"username": "u1", "password": "password-1", "description": long}).to_string(),
            422,
            "invalid-body",
        ),
        (
            "no content type",
            "POST",
            None,
            json!({"username": "u1", "password": "password-1"}).to_string(),
            415,
            "unsupported-media-type",
        ),
        (
            "text content type",
            "POST",
            Some("text/plain"),
            json!({"username": "u1", "password": "password-1"}).to_string(),
            415,
            "unsupported-media-type",
        ),
        (
            "oversize",
            "POST",
            json_ct,
            format!(
                "{{\"username\": \"u1\", \"password\": \"{}\"}}",
                "p".repeat(8000)
            ),
            413,
            "payload-too-large",
        ),
        (
            "repeated key",
            "POST",
            json_ct,
            "{\"username\": \"u1\", \"password\": \"password-1\", \"username\": \"u2\"}".into(),
            422,
            "invalid-body",
        ),
        (
            "repeated nested key",
            "POST",
            json_ct,
            "{\"username\": \"u1\", \"password\": \"password-1\", \"allowed_cidrs\": [], \"description\": \"d\", \"description\": \"e\"}".into(),
            422,
            "invalid-body",
        ),
        (
            "invalid utf-8 escape",
            "POST",
            json_ct,
            "{\"username\": \"\\ud800\", \"password\": \"password-1\"}".into(),
            400,
            "bad-request",
        ),
    ];
    for (what, method, ct, body, status, slug) in cases {
        let mut req = Request::builder()
            .method(method)
            .uri(signed_uri(&c, "/v1/sip-accounts"));
        if let Some(ct) = ct {
            req = req.header("content-type", ct);
        }
        let r = api.send(req.body(Body::from(body)).unwrap()).await;
        assert_eq!(r.status.as_u16(), status, "{what}: {}", r.text);
        r.assert_problem(status, slug);
    }
    // Nothing was created by any of them.
    let listed = api.call(&c, "GET", "/v1/sip-accounts", None).await;
    assert_eq!(listed.body["items"], json!([]));
}

#[tokio::test]
async fn oversize_body_without_content_length_is_refused() {
    let api = TestApi::with_body_limit(1024).await;
    let c = api.new_app("a").await;
    let req = Request::builder()
        .method("POST")
        .uri(signed_uri(&c, "/v1/sip-accounts"))
        .header("content-type", "application/json")
        .body(Body::new(Unsized(Some("x".repeat(4096)))))
        .unwrap();
    api.send(req).await.assert_problem(413, "payload-too-large");
}

/// A one-frame body with no size hint, as a chunked upload has: only the streaming limit can
/// catch it.
struct Unsized(Option<String>);

impl http_body::Body for Unsized {
    type Data = axum::body::Bytes;
    type Error = std::convert::Infallible;
    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        std::task::Poll::Ready(self.0.take().map(|s| Ok(http_body::Frame::data(s.into()))))
    }
}

#[tokio::test]
async fn bad_queries_paths_and_methods_answer_problems() {
    let api = TestApi::new().await;
    let c = api.new_app("a").await;
    api.call(&c, "GET", "/v1/sip-accounts?limit=0", None)
        .await
        .assert_problem(400, "bad-request");
    api.call(&c, "GET", "/v1/sip-accounts?limit=abc", None)
        .await
        .assert_problem(400, "bad-request");
    api.call(&c, "GET", "/v1/sip-accounts?cursor=%%%", None)
        .await
        .assert_problem(400, "bad-request");
    api.call(&c, "GET", "/v1/sip-accounts?cursor=!!", None)
        .await
        .assert_problem(400, "bad-request");
    api.call(&c, "GET", "/v1/nothing-here", None)
        .await
        .assert_problem(404, "not-found");
    // Swagger UI's own unknown files, and the signalling WebSocket asked without an upgrade.
    api.call(&c, "GET", "/docs/nope", None)
        .await
        .assert_problem(404, "not-found");
    let plain = api.call(&c, "GET", "/v1/rtc?token=x", None).await;
    plain.assert_problem(400, "bad-request");
    assert!(
        plain.body["detail"].as_str().unwrap().contains("WebSocket"),
        "{}",
        plain.text
    );
    let r = api.call(&c, "PUT", "/v1/sip-accounts", None).await;
    r.assert_problem(405, "method-not-allowed");
}

#[tokio::test]
async fn array_shaped_patch_is_not_taken_for_an_empty_update() {
    let api = TestApi::new().await;
    let admin = TestApi::admin();
    let created = api
        .call(&admin, "POST", "/v1/apps", Some(json!({"name": "x"})))
        .await;
    let id = created.body["app"]["id"].as_str().unwrap();
    let r = api
        .call(
            &admin,
            "PATCH",
            &format!("/v1/apps/{id}"),
            Some(json!([null, null])),
        )
        .await;
    r.assert_problem(422, "invalid-body");
}

/// In a PATCH, `null` clears what can be cleared (`outbound`, `srtp`, a description); on any
/// other field it is refused rather than silently ignored.
#[tokio::test]
async fn null_on_a_field_that_cannot_be_cleared_is_refused() {
    let api = TestApi::new().await;
    let app = api.new_app("nulls").await;
    let trunk = api
        .call(
            &app,
            "POST",
            "/v1/trunks",
            Some(
                json!({"name": "t", "inbound": {"allowed_cidrs": ["192.0.2.1/32"]},
                        "outbound": {"host": "192.0.2.2"}}),
            ),
        )
        .await;
    let trunk = format!("/v1/trunks/{}", trunk.body["id"].as_str().unwrap());
    let rule = api
        .call(
            &app,
            "POST",
            "/v1/routing-rules",
            Some(json!({"match": {"called": {"kind": "exact", "value": "1"}},
                        "action": {"type": "fixed_room", "room": "r"}})),
        )
        .await;
    let rule = format!("/v1/routing-rules/{}", rule.body["id"].as_str().unwrap());
    for (path, field) in [
        (&trunk, "name"),
        (&trunk, "enabled"),
        (&trunk, "inbound"),
        (&rule, "match"),
        (&rule, "action"),
        (&rule, "priority"),
    ] {
        let r = api
            .call(&app, "PATCH", path, Some(json!({ field: null })))
            .await;
        r.assert_problem(422, "invalid-body");
        assert!(
            r.text.contains("null clears nothing"),
            "{field}: {}",
            r.text
        );
    }
    // What can be cleared still is.
    let r = api
        .call(&app, "PATCH", &trunk, Some(json!({"outbound": null})))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.body["outbound"].is_null(), "{}", r.text);
    assert_eq!(r.body["name"], "t");
}

/// A list filter that can match nothing is refused, not answered with an empty page.
#[tokio::test]
async fn impossible_list_filters_are_refused() {
    let api = TestApi::new().await;
    let c = api.new_app("a").await;
    for path in [
        "/v1/calls?state=BOGUS",
        "/v1/calls?direction=sideways",
        "/v1/cdrs?format=xml",
    ] {
        api.call(&c, "GET", path, None)
            .await
            .assert_problem(400, "bad-request");
    }
    for path in [
        "/v1/calls?state=confirmed",
        "/v1/calls?state=DISCONNECTED&direction=inbound",
        "/v1/cdrs?format=json",
    ] {
        let r = api.call(&c, "GET", path, None).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text);
    }
}

/// A provider's IPv6 address is taken with or without brackets and kept with them, as URIs
/// write it; anything else in `host` is refused.
#[tokio::test]
async fn a_trunk_host_may_be_an_ipv6_address_with_or_without_brackets() {
    let api = TestApi::new().await;
    let app = api.new_app("v6").await;
    for (i, host) in ["2001:DB8::5", "[2001:db8::5]", "[2001:0DB8:0::5]"]
        .into_iter()
        .enumerate()
    {
        let r = api
            .call(
                &app,
                "POST",
                "/v1/trunks",
                Some(json!({"name": format!("v6-{i}"), "outbound": {"host": host, "from_domain": host}})),
            )
            .await;
        assert_eq!(r.status, 201, "{host}: {}", r.text);
        assert_eq!(r.body["outbound"]["host"], "[2001:db8::5]", "{}", r.text);
        assert_eq!(
            r.body["outbound"]["from_domain"], "[2001:db8::5]",
            "{}",
            r.text
        );
    }
    for host in [
        "2001:db8::5::1",
        "[2001:db8::5]:5060",
        "[192.0.2.1]",
        "[fe80::1%eth0]",
    ] {
        let r = api
            .call(
                &app,
                "POST",
                "/v1/trunks",
                Some(json!({"name": "bad", "outbound": {"host": host}})),
            )
            .await;
        r.assert_problem(422, "invalid-body");
    }
}

#[tokio::test]
async fn rooms_calls_answer_503_while_the_rooms_are_off() {
    // This router has no rooms (`rooms.enabled = false`): a join token would only be refused
    // at the socket, so it is not minted.
    let api = TestApi::new().await;
    let c = api.new_app("a").await;
    api.call(
        &c,
        "POST",
        "/v1/rooms/standup/tokens",
        Some(json!({"identity": "ada"})),
    )
    .await
    .assert_problem(503, "unavailable");
    api.call(&c, "GET", "/v1/rooms", None)
        .await
        .assert_problem(503, "unavailable");
}
