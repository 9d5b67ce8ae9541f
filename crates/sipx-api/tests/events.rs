#![allow(clippy::unwrap_used, clippy::expect_used)] // Test code: a panic is a failed test.

//! Webhook URLs, the delivery log, test events and the server-sent-events stream, through the
//! real router and store (no dispatcher runs: its queue is read directly).

mod common;

use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use common::{Creds, TestApi, signed};
use http_body_util::BodyExt;
use serde_json::json;
use sipx_api::AppEvent;
use sipx_api::events::Dispatch;
use tower::ServiceExt;

#[tokio::test]
async fn tenant_and_operator_set_the_webhook_url() {
    let api = TestApi::new().await;
    let a = api.new_app("a").await;
    let got = api.call(&a, "GET", "/v1/app", None).await;
    assert_eq!(got.body["webhook_url"], json!(null));

    let set = api
        .call(
            &a,
            "PATCH",
            "/v1/app",
            Some(json!({"webhook_url": "https://example.com/hook?t=1"})),
        )
        .await;
    assert_eq!(set.status, 200, "{}", set.text);
    assert_eq!(set.body["webhook_url"], "https://example.com/hook?t=1");
    assert_eq!(
        api.call(&a, "GET", "/v1/app", None).await.body["webhook_url"],
        "https://example.com/hook?t=1"
    );
    // An empty PATCH leaves it; null clears it.
    let same = api.call(&a, "PATCH", "/v1/app", Some(json!({}))).await;
    assert_eq!(same.body["webhook_url"], "https://example.com/hook?t=1");
    let cleared = api
        .call(&a, "PATCH", "/v1/app", Some(json!({"webhook_url": null})))
        .await;
    assert_eq!(cleared.body["webhook_url"], json!(null));

    // The tenant changes nothing else through /v1/app.
    api.call(&a, "PATCH", "/v1/app", Some(json!({"name": "x"})))
        .await
        .assert_problem(422, "invalid-body");

    let id = api.call(&a, "GET", "/v1/app", None).await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let by_admin = api
        .call(
            &TestApi::admin(),
            "PATCH",
            &format!("/v1/apps/{id}"),
            Some(json!({"webhook_url": "http://127.0.0.1:9/x"})),
        )
        .await;
    assert_eq!(by_admin.status, 200, "{}", by_admin.text);
    assert_eq!(by_admin.body["webhook_url"], "http://127.0.0.1:9/x");
    assert_eq!(by_admin.body["name"], "a");
}

#[tokio::test]
async fn bad_webhook_urls_are_refused_with_a_problem() {
    let api = TestApi::new().await;
    let a = api.new_app("a").await;
    let long = format!("https://example.com/{}", "a".repeat(2048));
    for bad in [
        json!("ftp://example.com/"),
        json!("https://user:secret@example.com/"),
        json!("not a url"),
        json!(long),
        json!(42),
    ] {
        let r = api
            .call(&a, "PATCH", "/v1/app", Some(json!({"webhook_url": bad})))
            .await;
        r.assert_problem(422, "invalid-body");
        if bad.is_string() {
            assert_eq!(r.body["errors"][0]["field"], "webhook_url", "{}", r.text);
        }
    }
    let r = api
        .call(
            &a,
            "POST",
            "/v1/webhooks/test",
            Some(json!({"url": "gopher://x/"})),
        )
        .await;
    r.assert_problem(422, "invalid-body");
    assert_eq!(r.body["errors"][0]["field"], "url");
    // No URL given and none set.
    let r = api
        .call(&a, "POST", "/v1/webhooks/test", Some(json!({})))
        .await;
    r.assert_problem(422, "invalid-body");
    assert!(
        r.body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("webhook_url")
    );
}

#[tokio::test]
async fn test_event_is_stored_dispatched_and_isolated() {
    let api = TestApi::new().await;
    let a = api.new_app("a").await;
    let b = api.new_app("b").await;
    api.call(
        &a,
        "PATCH",
        "/v1/app",
        Some(json!({"webhook_url": "http://127.0.0.1:9/hook"})),
    )
    .await;
    let accepted = api
        .call(&a, "POST", "/v1/webhooks/test", Some(json!({})))
        .await;
    assert_eq!(accepted.status, 202, "{}", accepted.text);
    let id = accepted.body["delivery_id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("dlv_"));
    assert_eq!(accepted.body["url"], "http://127.0.0.1:9/hook");

    // The dispatcher is handed exactly that delivery.
    let Some(Dispatch::Stored(d)) = api.dispatch.lock().await.recv().await else {
        panic!("the stored delivery goes to the dispatcher");
    };
    assert_eq!(d.id, id);

    let path = format!("/v1/webhook-deliveries/{id}");
    let got = api.call(&a, "GET", &path, None).await;
    assert_eq!(got.status, 200, "{}", got.text);
    assert_eq!(got.body["status"], "pending");
    assert_eq!(got.body["type"], "app.test");
    assert_eq!(got.body["attempt_count"], 0);
    assert_eq!(got.body["attempts"], json!([]));
    assert_eq!(got.body["event"]["id"], accepted.body["event_id"]);
    assert_eq!(got.body["event"]["type"], "app.test");
    assert_eq!(got.body["event"]["call_id"], json!(null));
    assert!(got.body["next_attempt_at"].is_string());

    api.call(&b, "GET", &path, None)
        .await
        .assert_problem(404, "not-found");
    let listed = api.call(&b, "GET", "/v1/webhook-deliveries", None).await;
    assert_eq!(listed.body["items"], json!([]));

    let listed = api
        .call(&a, "GET", "/v1/webhook-deliveries?status=pending", None)
        .await;
    assert_eq!(listed.body["items"][0]["id"], id.as_str());
    let listed = api
        .call(&a, "GET", "/v1/webhook-deliveries?status=delivered", None)
        .await;
    assert_eq!(listed.body["items"], json!([]));
    let listed = api
        .call(&a, "GET", "/v1/webhook-deliveries?call_id=call_x", None)
        .await;
    assert_eq!(listed.body["items"], json!([]));
    api.call(&a, "GET", "/v1/webhook-deliveries?status=lost", None)
        .await
        .assert_problem(400, "bad-request");
}

/// An open `GET /v1/events` response's body, read frame by frame.
struct EventStream {
    body: Body,
    buf: String,
}

impl EventStream {
    async fn open(api: &TestApi, creds: &Creds, query: &str) -> EventStream {
        let req = Request::builder()
            .uri(signed(creds, &format!("/v1/events{query}")))
            .body(Body::empty())
            .unwrap();
        let resp = api.router.clone().oneshot(req).await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(
            resp.headers()["content-type"].to_str().unwrap(),
            "text/event-stream"
        );
        let mut s = EventStream {
            body: resp.into_body(),
            buf: String::new(),
        };
        assert_eq!(s.next_frame().await, ": stream open");
        s
    }

    /// The next frame (blank-line separated), waiting at most 5 s.
    async fn next_frame(&mut self) -> String {
        tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                if let Some(end) = self.buf.find("\n\n") {
                    let frame = self.buf[..end].to_owned();
                    self.buf.drain(..end + 2);
                    return frame;
                }
                let chunk = self.body.frame().await.unwrap().unwrap();
                if let Ok(data) = chunk.into_data() {
                    self.buf.push_str(std::str::from_utf8(&data).unwrap());
                }
            }
        })
        .await
        .expect("a frame within 5 s")
    }
}

fn call_event(app_id: &str, kind: &str, n: u32) -> AppEvent {
    AppEvent {
        app_id: app_id.to_owned(),
        kind: kind.to_owned(),
        call_id: Some("call_1".to_owned()),
        webhook_url: None,
        data: json!({"n": n}),
    }
}

async fn app_id(api: &TestApi, creds: &Creds) -> String {
    api.call(creds, "GET", "/v1/app", None).await.body["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn event_stream_carries_the_callers_events_only() {
    let api = TestApi::new().await;
    let a = api.new_app("a").await;
    let b = api.new_app("b").await;
    let (a_id, b_id) = (app_id(&api, &a).await, app_id(&api, &b).await);
    let mut a_all = EventStream::open(&api, &a, "").await;
    let mut a_dtmf = EventStream::open(&api, &a, "?types=call.dtmf").await;
    let mut b_all = EventStream::open(&api, &b, "").await;

    api.events.publish(call_event(&a_id, "call.state", 1));
    api.events.publish(call_event(&a_id, "call.dtmf", 2));
    api.events.publish(call_event(&b_id, "call.state", 3));

    let frame = a_all.next_frame().await;
    let lines: Vec<&str> = frame.lines().collect();
    assert!(lines[0].starts_with("id: evt_"), "{frame}");
    assert_eq!(lines[1], "event: call.state");
    let env: serde_json::Value =
        serde_json::from_str(lines[2].strip_prefix("data: ").unwrap()).unwrap();
    assert_eq!(env["type"], "call.state");
    assert_eq!(env["app_id"], a_id.as_str());
    assert_eq!(env["call_id"], "call_1");
    assert_eq!(env["data"]["n"], 1);
    assert_eq!(lines[0], format!("id: {}", env["id"].as_str().unwrap()));
    assert!(a_all.next_frame().await.contains("event: call.dtmf"));

    assert!(
        a_dtmf.next_frame().await.contains("\"n\":2"),
        "the filtered stream skips call.state"
    );
    let first_of_b = b_all.next_frame().await;
    assert!(
        first_of_b.contains("\"n\":3"),
        "B's stream sees its own event first, none of A's: {first_of_b}"
    );

    // A test event reaches the stream too.
    let r = api
        .call(
            &a,
            "POST",
            "/v1/webhooks/test",
            Some(json!({"url": "https://example.com/h"})),
        )
        .await;
    assert_eq!(r.status, 202);
    let frame = a_all.next_frame().await;
    assert!(frame.contains("event: app.test"), "{frame}");
    assert!(frame.contains(r.body["event_id"].as_str().unwrap()));
}

#[tokio::test]
async fn event_stream_requires_a_signature_and_valid_filter() {
    let api = TestApi::new().await;
    let a = api.new_app("a").await;
    let unsigned = api
        .send(
            Request::builder()
                .uri("/v1/events")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    unsigned.assert_problem(401, "unauthorized");
    api.call(&a, "GET", "/v1/events?types=a%20b", None)
        .await
        .assert_problem(400, "bad-request");
}

#[tokio::test]
async fn streams_end_when_the_service_drains() {
    let api = TestApi::new().await;
    let a = api.new_app("a").await;
    let mut s = EventStream::open(&api, &a, "").await;
    api.events.close();
    let end = tokio::time::timeout(Duration::from_secs(5), s.body.frame())
        .await
        .expect("the stream ends");
    assert!(end.is_none());
    api.call(&a, "GET", "/v1/events", None)
        .await
        .assert_problem(503, "unavailable");
}
