//! Application events: what the SIP core (and the API itself) publishes, and where it goes.
//!
//! [`EventBus::publish`] builds the event's envelope once (id, time, JSON text) and hands it to
//! two consumers: the application's live server-sent-events streams (`GET /v1/events`, one
//! broadcast channel per application with subscribers) and the webhook dispatcher in
//! sipx-server (one unbounded queue, see [`DispatchQueue`]). Publishing never blocks and never
//! fails: the core's task calls it between packets.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde::Serialize;
use sipx_store::DeliveryRecord;
use tokio::sync::{broadcast, mpsc, watch};

/// Something that happened in an application.
#[derive(Debug, Clone)]
pub struct AppEvent {
    pub app_id: String,
    /// "call.state", "call.dtmf", "call.transfer", "app.test", ...
    pub kind: String,
    pub call_id: Option<String>,
    /// The call's own webhook URL (given in POST /v1/calls); when None the application's
    /// webhook URL is used (if any).
    pub webhook_url: Option<String>,
    /// The event's own fields.
    pub data: serde_json::Value,
}

/// An event as it is sent: webhooks POST `json`, streams put it in a frame's `data:`.
#[derive(Debug)]
pub struct Envelope {
    /// `evt_` + ULID; ids of one process sort in publishing order.
    pub id: String,
    pub kind: String,
    pub app_id: String,
    pub call_id: Option<String>,
    /// The call's own webhook URL, when it has one.
    pub webhook_url: Option<String>,
    /// `{"id","type","created_at","app_id","call_id","data"}`, serialised once.
    pub json: String,
}

/// The envelope's wire shape (documented as `EventEnvelope` in the OpenAPI document).
#[derive(Serialize)]
struct Wire<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    created_at: &'a str,
    app_id: &'a str,
    call_id: Option<&'a str>,
    data: &'a serde_json::Value,
}

/// What the webhook dispatcher receives.
#[derive(Debug)]
pub enum Dispatch {
    /// A published event: the dispatcher finds its URL (the call's, else the application's)
    /// and, when there is one, stores a delivery and sends it.
    Event(Arc<Envelope>),
    /// A delivery the API stored itself (`POST /v1/webhooks/test`, which answers with its
    /// id), to send now.
    Stored(DeliveryRecord),
}

/// The dispatcher's end of the bus.
pub type DispatchQueue = mpsc::UnboundedReceiver<Dispatch>;

/// How many events a stream may fall behind before it skips (and is told how many).
const STREAM_BACKLOG: usize = 256;

/// Cheap to clone; publish never blocks and never fails.
#[derive(Clone)]
pub struct EventBus {
    inner: Arc<Inner>,
}

struct Inner {
    dispatch: mpsc::UnboundedSender<Dispatch>,
    /// Applications with live streams → their channel. An entry goes when a publish finds no
    /// receiver left.
    streams: Mutex<HashMap<String, broadcast::Sender<Arc<Envelope>>>>,
    /// Turns true when the service drains: streams end so connections can close.
    closed: watch::Sender<bool>,
}

impl std::fmt::Debug for EventBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventBus").finish_non_exhaustive()
    }
}

/// A live stream of one application's events.
pub struct Subscription {
    pub events: broadcast::Receiver<Arc<Envelope>>,
    /// Turns true when the service drains.
    pub closed: watch::Receiver<bool>,
}

impl EventBus {
    /// A bus and the queue the webhook dispatcher reads. Dropping the queue is allowed (no
    /// webhooks are sent then; tests of the API alone do so).
    pub fn new() -> (EventBus, DispatchQueue) {
        let (tx, rx) = mpsc::unbounded_channel();
        let bus = EventBus {
            inner: Arc::new(Inner {
                dispatch: tx,
                streams: Mutex::new(HashMap::new()),
                closed: watch::channel(false).0,
            }),
        };
        (bus, rx)
    }

    /// Publishes an event to the application's streams and its webhook.
    pub fn publish(&self, event: AppEvent) {
        let envelope = self.envelope(event);
        self.to_streams(&envelope);
        metrics::counter!("sipx_events_published_total").increment(1);
        // A closed queue means no dispatcher runs (tests, or the service stopping).
        let _ = self.inner.dispatch.send(Dispatch::Event(envelope));
    }

    /// Builds an event's envelope (new id, the time now) without publishing it.
    pub fn envelope(&self, event: AppEvent) -> Arc<Envelope> {
        let id = sipx_store::sorted_id("evt");
        let created_at = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
        let json = serde_json::to_string(&Wire {
            id: &id,
            kind: &event.kind,
            created_at: &created_at,
            app_id: &event.app_id,
            call_id: event.call_id.as_deref(),
            data: &event.data,
        })
        // Serialising a Value with string keys cannot fail.
        .unwrap_or_default();
        Arc::new(Envelope {
            id,
            kind: event.kind,
            app_id: event.app_id,
            call_id: event.call_id,
            webhook_url: event.webhook_url,
            json,
        })
    }

    /// Publishes an event whose delivery the caller has already stored.
    pub fn publish_stored(&self, envelope: &Arc<Envelope>, delivery: DeliveryRecord) {
        self.to_streams(envelope);
        metrics::counter!("sipx_events_published_total").increment(1);
        let _ = self.inner.dispatch.send(Dispatch::Stored(delivery));
    }

    /// Subscribes to one application's events from now on.
    pub fn subscribe(&self, app_id: &str) -> Subscription {
        let events = match self.inner.streams.lock() {
            Ok(mut streams) => streams
                .entry(app_id.to_owned())
                .or_insert_with(|| broadcast::channel(STREAM_BACKLOG).0)
                .subscribe(),
            // A poisoned map (a panic while holding it, which nothing here can do): a stream
            // that receives nothing rather than a failed request.
            Err(_) => broadcast::channel(1).1,
        };
        Subscription {
            events,
            closed: self.inner.closed.subscribe(),
        }
    }

    /// Ends every stream (the service is draining) and refuses new ones.
    pub fn close(&self) {
        self.inner.closed.send_replace(true);
    }

    pub fn is_closed(&self) -> bool {
        *self.inner.closed.borrow()
    }

    fn to_streams(&self, envelope: &Arc<Envelope>) {
        let Ok(mut streams) = self.inner.streams.lock() else {
            return;
        };
        if let Some(tx) = streams.get(&envelope.app_id)
            && tx.send(envelope.clone()).is_err()
        {
            // Nobody listens any more.
            streams.remove(&envelope.app_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(app: &str, kind: &str) -> AppEvent {
        AppEvent {
            app_id: app.to_owned(),
            kind: kind.to_owned(),
            call_id: Some("call_1".to_owned()),
            webhook_url: None,
            data: serde_json::json!({"state": "CALLING"}),
        }
    }

    #[tokio::test]
    async fn envelope_is_serialised_once_with_every_field() {
        let (bus, mut queue) = EventBus::new();
        bus.publish(event("app_a", "call.state"));
        let Some(Dispatch::Event(env)) = queue.recv().await else {
            panic!("the dispatcher gets the event");
        };
        let v: serde_json::Value = serde_json::from_str(&env.json).unwrap();
        assert_eq!(v["id"], env.id.as_str());
        assert!(env.id.starts_with("evt_") && env.id.len() == 30);
        assert_eq!(v["type"], "call.state");
        assert_eq!(v["app_id"], "app_a");
        assert_eq!(v["call_id"], "call_1");
        assert_eq!(v["data"]["state"], "CALLING");
        let at = v["created_at"].as_str().unwrap();
        assert!(
            at.ends_with('Z') && at.len() == 24,
            "RFC 3339 with ms: {at}"
        );
        assert_eq!(v.as_object().unwrap().len(), 6);
    }

    #[tokio::test]
    async fn streams_get_their_own_application_only_and_ids_keep_order() {
        let (bus, _queue) = EventBus::new();
        let mut a = bus.subscribe("app_a");
        let mut b = bus.subscribe("app_b");
        for _ in 0..50 {
            bus.publish(event("app_a", "call.state"));
        }
        bus.publish(event("app_b", "call.dtmf"));
        let mut last = String::new();
        for _ in 0..50 {
            let e = a.events.recv().await.unwrap();
            assert_eq!(e.app_id, "app_a");
            assert!(e.id > last, "ids sort in publishing order");
            last = e.id.clone();
        }
        assert_eq!(b.events.recv().await.unwrap().kind, "call.dtmf");
        assert!(a.events.try_recv().is_err());
    }

    #[tokio::test]
    async fn a_lagging_stream_learns_how_much_it_missed() {
        let (bus, _queue) = EventBus::new();
        let mut a = bus.subscribe("app_a");
        for _ in 0..STREAM_BACKLOG + 5 {
            bus.publish(event("app_a", "call.state"));
        }
        assert!(matches!(
            a.events.recv().await,
            Err(broadcast::error::RecvError::Lagged(5))
        ));
        assert!(a.events.recv().await.is_ok(), "and continues");
    }

    #[test]
    fn publishing_without_listeners_or_dispatcher_is_fine() {
        let (bus, queue) = EventBus::new();
        drop(queue);
        drop(bus.subscribe("app_a"));
        bus.publish(event("app_a", "call.state"));
        assert!(
            bus.inner.streams.lock().unwrap().is_empty(),
            "the idle channel went"
        );
    }
}
