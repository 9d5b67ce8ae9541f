//! The dispatcher against a real receiver on a loopback socket, with the real store.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::DenyList;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use sipx_api::{AppEvent, EventBus};
use sipx_secrets::MasterKey;
use sipx_store::{AttemptRecord, DeliveryRecord, DeliveryStatus, NewDelivery, Store};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use crate::config::WebhooksConfig;

/// One request as the receiver saw it.
#[derive(Debug)]
struct Received {
    headers: HeaderMap,
    body: String,
}

#[derive(Clone)]
struct Receiver {
    /// Statuses to answer, in order; 200 once empty. `None`: never answer.
    answers: Arc<Mutex<VecDeque<Option<u16>>>>,
    seen: mpsc::UnboundedSender<Received>,
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: String) -> StatusCode {
    let answer = r.answers.lock().unwrap().pop_front().unwrap_or(Some(200));
    let _ = r.seen.send(Received { headers, body });
    match answer {
        Some(code) => StatusCode::from_u16(code).unwrap(),
        None => std::future::pending().await,
    }
}

/// A receiver on 127.0.0.1 answering `answers` in turn; its URL and what it receives.
async fn receiver(answers: &[Option<u16>]) -> (String, mpsc::UnboundedReceiver<Received>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let state = Receiver {
        answers: Arc::new(Mutex::new(answers.iter().copied().collect())),
        seen: tx,
    };
    let app = Router::new()
        .route("/hook", axum::routing::post(receive))
        .with_state(state);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/hook"), rx)
}

struct Setup {
    store: Store,
    bus: EventBus,
    app_id: String,
    secret: String,
    stop: watch::Sender<bool>,
    _dir: tempfile::TempDir,
}

fn fast() -> WebhooksConfig {
    WebhooksConfig {
        initial_backoff_ms: 20,
        max_backoff_ms: 100,
        request_timeout_ms: 300,
        ..WebhooksConfig::default()
    }
}

async fn setup(app_url: Option<&str>, config: &WebhooksConfig) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("sipx.db"), MasterKey::generate().0)
        .await
        .unwrap();
    let (app, secret) = store.create_app("a").await.unwrap();
    let update = sipx_store::AppUpdate {
        webhook_url: Some(app_url.map(str::to_owned)),
        ..Default::default()
    };
    store.update_app(&app.id, &update).await.unwrap();
    let (bus, queue) = EventBus::new();
    let (stop, stop_rx) = watch::channel(false);
    let tls = crate::tls::client_config(None).unwrap();
    super::spawn(
        store.clone(),
        queue,
        config,
        (tls, DenyList::default()),
        stop_rx,
    );
    Setup {
        store,
        bus,
        app_id: app.id,
        secret: secret.expose().clone(),
        stop,
        _dir: dir,
    }
}

impl Setup {
    fn publish(&self, call: Option<&str>, n: u32) {
        self.bus.publish(AppEvent {
            app_id: self.app_id.clone(),
            kind: "call.state".to_owned(),
            call_id: call.map(str::to_owned),
            webhook_url: None,
            data: serde_json::json!({"n": n}),
        });
    }

    /// Waits (bounded) until the delivery of event `n` is no longer pending.
    async fn settled(&self, n: u32) -> (DeliveryRecord, Vec<AttemptRecord>) {
        for _ in 0..200 {
            let page = self
                .store
                .list_webhook_deliveries(
                    &self.app_id,
                    &Default::default(),
                    &sipx_store::PageRequest {
                        after: None,
                        limit: 100,
                    },
                )
                .await
                .unwrap();
            if let Some(d) = page
                .items
                .into_iter()
                .find(|d| d.body.contains(&format!("\"n\":{n}}}")))
                && d.status != DeliveryStatus::Pending
            {
                return self
                    .store
                    .get_webhook_delivery(&self.app_id, &d.id)
                    .await
                    .unwrap()
                    .unwrap();
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("delivery of event {n} did not settle");
    }

    /// Checks the signature as a receiver must, and returns the event's `data.n`.
    fn verified(&self, r: &Received) -> u64 {
        let header = r.headers["sipx-signature"].to_str().unwrap();
        let now = crate::unix_now();
        sipx_secrets::verify_webhook(self.secret.as_bytes(), header, r.body.as_bytes(), now, 300)
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(r.headers["sipx-event-id"], v["id"].as_str().unwrap());
        assert!(
            r.headers["sipx-delivery-id"]
                .to_str()
                .unwrap()
                .starts_with("dlv_")
        );
        assert_eq!(
            r.headers["user-agent"],
            concat!("sipx/", env!("CARGO_PKG_VERSION"))
        );
        assert_eq!(r.headers["content-type"], "application/json");
        v["data"]["n"].as_u64().unwrap()
    }
}

async fn next(rx: &mut mpsc::UnboundedReceiver<Received>) -> Received {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("a request within 5 s")
        .unwrap()
}

#[tokio::test]
async fn a_calls_events_arrive_signed_and_in_order_across_retries() {
    // The first event is refused twice (503, then 429) before it is taken.
    let (url, mut rx) = receiver(&[Some(503), Some(429)]).await;
    let s = setup(Some(&url), &fast()).await;
    for n in 1..=3 {
        s.publish(Some("call_1"), n);
    }
    let mut order = Vec::new();
    for _ in 0..5 {
        order.push(s.verified(&next(&mut rx).await));
    }
    assert_eq!(order, [1, 1, 1, 2, 3], "later events waited for the first");

    let (first, attempts) = s.settled(1).await;
    assert_eq!(first.status, DeliveryStatus::Delivered);
    let statuses: Vec<_> = attempts.iter().map(|a| a.http_status).collect();
    assert_eq!(statuses, [Some(503), Some(429), Some(200)]);
    assert!(
        attempts.windows(2).all(|w| w[1].at_ms >= w[0].at_ms + 20),
        "backoff kept"
    );
    let (third, attempts) = s.settled(3).await;
    assert_eq!(third.status, DeliveryStatus::Delivered);
    assert_eq!(attempts.len(), 1);
    s.stop.send_replace(true);
}

#[tokio::test]
async fn a_final_refusal_ends_the_delivery_and_events_without_a_url_are_not_stored() {
    let (url, mut rx) = receiver(&[Some(410)]).await;
    let s = setup(Some(&url), &fast()).await;
    s.publish(None, 1);
    next(&mut rx).await;
    let (d, attempts) = s.settled(1).await;
    assert_eq!(d.status, DeliveryStatus::Failed);
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].http_status, Some(410));

    // No URL anywhere: no delivery. A call's own URL is used over the application's.
    let none = setup(None, &fast()).await;
    none.publish(Some("c"), 1);
    let (own, mut own_rx) = receiver(&[]).await;
    none.bus.publish(AppEvent {
        app_id: none.app_id.clone(),
        kind: "call.state".to_owned(),
        call_id: Some("c".to_owned()),
        webhook_url: Some(own.clone()),
        data: serde_json::json!({"n": 2}),
    });
    assert_eq!(none.verified(&next(&mut own_rx).await), 2);
    let (d, _) = none.settled(2).await;
    assert_eq!(d.url, own);
    let all = none
        .store
        .list_webhook_deliveries(
            &none.app_id,
            &Default::default(),
            &sipx_store::PageRequest {
                after: None,
                limit: 10,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        all.items.len(),
        1,
        "the event without a URL left no delivery"
    );
}

#[tokio::test]
async fn an_unreachable_or_silent_receiver_is_retried_then_given_up() {
    // A port nothing listens on: connections are refused.
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead = format!("http://{}/hook", closed.local_addr().unwrap());
    drop(closed);
    let config = WebhooksConfig {
        retry_for_secs: 1,
        initial_backoff_ms: 100,
        max_backoff_ms: 200,
        ..fast()
    };
    let s = setup(Some(&dead), &config).await;
    s.publish(None, 1);
    let (d, attempts) = s.settled(1).await;
    assert_eq!(d.status, DeliveryStatus::Failed);
    assert!(attempts.len() >= 3, "{attempts:?}");
    assert!(attempts.iter().all(|a| {
        a.http_status.is_none()
            && a.error
                .as_deref()
                .is_some_and(|e| e.to_lowercase().contains("refused"))
    }));

    // A receiver that takes the request and never answers: the request timeout ends it.
    let (silent, mut rx) = receiver(&[None]).await;
    let s = setup(Some(&silent), &fast()).await;
    s.publish(None, 7);
    next(&mut rx).await;
    let (d, attempts) = s.settled(7).await;
    assert_eq!(d.status, DeliveryStatus::Delivered, "the retry is answered");
    assert_eq!(
        attempts[0].error.as_deref(),
        Some("no answer within 300 ms")
    );
    assert!(attempts[0].duration_ms >= 300);
}

#[tokio::test]
async fn pending_deliveries_resume_at_start() {
    let (url, mut rx) = receiver(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let (_, raw) = MasterKey::generate();
    let key = || MasterKey::parse(&MasterKey::encode(&raw)).unwrap();
    let path = dir.path().join("sipx.db");
    let store = Store::open(&path, key()).await.unwrap();
    let (app, secret) = store.create_app("a").await.unwrap();
    // Left pending by a previous run.
    let body = r#"{"id":"evt_x","data":{"n":5}}"#;
    store
        .create_webhook_deliveries(&[NewDelivery {
            app_id: app.id.clone(),
            event_id: "evt_x".to_owned(),
            event_type: "call.state".to_owned(),
            call_id: Some("c".to_owned()),
            url: url.clone(),
            to_app_url: false,
            body: body.to_owned(),
        }])
        .await
        .unwrap();
    store.close().await;

    let store = Store::open(&path, key()).await.unwrap();
    let (_bus, queue) = EventBus::new();
    let (_stop, stop_rx) = watch::channel(false);
    super::spawn(
        store.clone(),
        queue,
        &fast(),
        (
            crate::tls::client_config(None).unwrap(),
            DenyList::default(),
        ),
        stop_rx,
    );
    let got = next(&mut rx).await;
    assert_eq!(got.body, body);
    let header = got.headers["sipx-signature"].to_str().unwrap();
    sipx_secrets::verify_webhook(
        secret.expose().as_bytes(),
        header,
        body.as_bytes(),
        crate::unix_now(),
        300,
    )
    .unwrap();
}
