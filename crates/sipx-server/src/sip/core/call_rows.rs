//! The rows of inbound calls (`GET /v1/calls`, direction `inbound`), written from the plain
//! inbound path: `INCOMING 0` when a call is routed in an application, then `CONNECTING 200`
//! at the answer, `CONFIRMED 200` at its ACK, and `DISCONNECTED` with code, reason and cause
//! (a refusal, a cancel, a BYE either way, a timeout). Dialled-out calls have their own rows,
//! written by `control.rs` from their machine.
//!
//! One writer task applies the rows' writes in the order they were queued, so a row is
//! inserted before it is updated and always holds the call's last known state. The calls'
//! events go through the same queue and are published once the writes queued before them are
//! stored: an application that reads a call (`GET /v1/calls/{id}`) on its `call.state` event,
//! or dials its identity again on `DISCONNECTED`, finds the row saying so.

use sipx_api::call_service::StoredHistoryEntry;
use sipx_store::{CallEnd, CallProgress, CallRecord, Store};
use tokio::sync::mpsc;

use crate::sip::call_service::unix_ms;

use sipx_api::events::{AppEvent, EventBus};
/// A write for the rows' writer, which serves every call, inbound and dialled out.
pub(crate) use sipx_store::CallWrite as RowWrite;

/// What the rows' writer is given, in order.
pub(crate) enum Queued {
    Write(RowWrite),
    /// An event, published once every write queued before it is stored.
    Publish(AppEvent),
}

/// At most this many writes go in one transaction.
const BATCH: usize = 256;
/// How long the first write of a batch waits for others: a commit (an fsync) every few
/// milliseconds instead of one per state change when calls come by the thousand.
const GROUP_WINDOW: std::time::Duration = std::time::Duration::from_millis(5);
/// How long a batch's events wait for its rows to be stored: past it, they go anyway (a
/// webhook late by a second is worse than one a moment ahead of its row).
const EVENTS_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// Applies the rows' writes in order: what queued meanwhile goes in one transaction, with a
/// call's intermediate states folded into its last (each update carries the whole row); then
/// publishes the events queued with them, in order.
pub(crate) async fn persist_rows(
    store: Store,
    events_bus: EventBus,
    mut rx: mpsc::UnboundedReceiver<Queued>,
) {
    let mut events = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut queued = vec![first];
        tokio::time::sleep(GROUP_WINDOW).await;
        while queued.len() < BATCH {
            match rx.try_recv() {
                Ok(q) => queued.push(q),
                Err(_) => break,
            }
        }
        let mut batch = Vec::with_capacity(queued.len());
        for q in queued {
            match q {
                Queued::Write(w) => batch.push(w),
                Queued::Publish(event) => events.push(event),
            }
        }
        // The write runs on its own, so a database that is slow (locked, a disk stalling)
        // holds the events back for EVENTS_WAIT at most; the next batch still waits for it,
        // so rows are written in order.
        let mut writing = tokio::spawn(store_batch(store.clone(), batch));
        let stored = tokio::time::timeout(EVENTS_WAIT, &mut writing)
            .await
            .is_ok();
        // Stored, failed for good, or late: the events go.
        for event in events.drain(..) {
            events_bus.publish(event);
        }
        if !stored {
            tracing::warn!("call rows slow to store: their events went first");
            let _ = writing.await;
        }
    }
}

/// Writes `batch` in one transaction (one by one if that fails).
async fn store_batch(store: Store, mut batch: Vec<RowWrite>) {
    if batch.is_empty() {
        return;
    }
    fold_updates(&mut batch);
    if let Err(e) = store.write_calls(&batch).await {
        // One bad write must not lose the others: apply them one by one.
        tracing::warn!(error = %e, writes = batch.len(), "call rows not stored together; retrying one by one");
        for w in &batch {
            if let Err(e) = store.write_calls(std::slice::from_ref(w)).await {
                tracing::error!(call = %w.call_id(), error = %e, "call state not stored");
            }
        }
    }
}

/// Drops every update of a call that a later update of the same call in `batch` overwrites.
fn fold_updates(batch: &mut Vec<RowWrite>) {
    let mut last: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for (i, w) in batch.iter().enumerate() {
        if let RowWrite::Update(id, _) = w {
            last.insert(id.as_str(), i);
        }
    }
    let keep: Vec<bool> = batch
        .iter()
        .enumerate()
        .map(|(i, w)| match w {
            RowWrite::Update(id, _) => last.get(id.as_str()) == Some(&i),
            _ => true,
        })
        .collect();
    let mut flags = keep.into_iter();
    batch.retain(|_| flags.next().unwrap_or(true));
}

/// What a row needs to be created, gathered when the call arrives; the row is written once
/// the call's room (or refusal) is known, a webhook's answer later perhaps.
#[derive(Debug, Clone)]
pub(crate) struct NewRow {
    pub id: String,
    pub app_id: String,
    pub from: Option<String>,
    pub to: String,
    /// `trunk:<id>` or `sip_account:<id>`.
    pub route: Option<String>,
    pub sip_call_id: String,
    /// When the INVITE arrived (Unix ms): the time of `INCOMING`.
    pub arrived_ms: i64,
}

/// Where calls' rows and events go.
#[derive(Clone, Default)]
pub(crate) struct RowSink {
    pub tx: Option<mpsc::UnboundedSender<Queued>>,
    pub events: Option<EventBus>,
}

impl RowSink {
    pub fn write(&self, write: RowWrite) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(Queued::Write(write));
        }
    }

    /// Publishes `event` once the writes queued before it are stored (at once when there is
    /// no writer: tests, or the writer gone at the very end).
    pub fn publish(&self, event: AppEvent) {
        let Some(bus) = &self.events else {
            return;
        };
        let unsent = match &self.tx {
            Some(tx) => tx.send(Queued::Publish(event)).err().map(|e| e.0),
            None => Some(Queued::Publish(event)),
        };
        if let Some(Queued::Publish(event)) = unsent {
            bus.publish(event);
        }
    }
}

/// An inbound call's row as the core keeps it.
pub(crate) struct CallRow {
    pub id: String,
    app_id: String,
    history: Vec<StoredHistoryEntry>,
    sip_call_id: String,
    codec: Option<String>,
    answered_at_ms: Option<i64>,
    sink: RowSink,
}

impl std::fmt::Debug for CallRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallRow")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl CallRow {
    /// Inserts the row of an arrived call, in `INCOMING`, with its room and identity when it
    /// goes into one.
    pub fn start(new: NewRow, room: Option<(&str, &str)>, sink: RowSink) -> CallRow {
        let mut row = CallRow {
            id: new.id,
            app_id: new.app_id.clone(),
            history: Vec::new(),
            sip_call_id: new.sip_call_id,
            codec: None,
            answered_at_ms: None,
            sink,
        };
        row.history.push(StoredHistoryEntry {
            state: "INCOMING".to_owned(),
            at_ms: new.arrived_ms,
            code: 0,
            reason: String::new(),
            cause: None,
        });
        let record = CallRecord {
            id: row.id.clone(),
            app_id: new.app_id,
            direction: "inbound".to_owned(),
            from_uri: new.from,
            to_uri: new.to,
            route: new.route,
            room: room.map(|(r, _)| r.to_owned()),
            identity: room.map(|(_, i)| i.to_owned()),
            webhook_url: None,
            created_at_ms: new.arrived_ms,
            progress: row.progress(),
        };
        row.send(RowWrite::Insert(Box::new(record)));
        row.publish_last();
        row
    }

    fn send(&self, write: RowWrite) {
        self.sink.write(write);
    }

    /// The newest history entry as a `call.state` event.
    fn publish_last(&self) {
        if let Some(entry) = self.history.last() {
            self.sink
                .publish(self.tag().state(entry, self.history.len() - 1));
        }
    }

    /// A key the phone pressed, as a `call.dtmf` event (never a PIN's: those stay unlogged).
    pub fn publish_dtmf(&self, digit: char) {
        self.sink.publish(self.tag().dtmf(digit, unix_ms()));
    }

    pub fn app_id(&self) -> &str {
        &self.app_id
    }

    /// Who the call belongs to, for its events.
    pub fn tag(&self) -> super::events::CallTag<'_> {
        super::events::CallTag {
            app_id: &self.app_id,
            call_id: &self.id,
            direction: "inbound",
            webhook_url: None,
        }
    }

    fn is_ended(&self) -> bool {
        self.history.last().is_some_and(|h| h.cause.is_some())
    }

    pub fn state(&self) -> &str {
        self.history.last().map_or("", |h| h.state.as_str())
    }

    pub fn set_codec(&mut self, codec: &str) {
        self.codec = Some(codec.to_owned());
    }

    /// A re-offer's codec: written at once when it changed (no new state will carry it),
    /// nothing for a hold, a resume or a refresh, nor once the call has ended.
    pub fn update_codec(&mut self, codec: &str) {
        if self.codec.as_deref() == Some(codec) || self.is_ended() {
            return;
        }
        self.set_codec(codec);
        self.send(RowWrite::Update(self.id.clone(), Box::new(self.progress())));
    }

    /// A new state; nothing after `DISCONNECTED`.
    pub fn push(&mut self, state: &str, code: u16, reason: &str, cause: Option<&str>) {
        if self.is_ended() {
            return;
        }
        let at_ms = unix_ms();
        if state == "CONNECTING" && self.answered_at_ms.is_none() {
            self.answered_at_ms = Some(at_ms);
        }
        self.history.push(StoredHistoryEntry {
            state: state.to_owned(),
            at_ms,
            code,
            reason: reason.to_owned(),
            cause: cause.map(str::to_owned),
        });
        tracing::info!(call = %self.id, state, code, reason, cause, "call state");
        self.send(RowWrite::Update(self.id.clone(), Box::new(self.progress())));
        self.publish_last();
    }

    /// The call ended: `DISCONNECTED` with why.
    pub fn end(&mut self, code: u16, reason: &str, cause: &str) {
        self.push("DISCONNECTED", code, reason, Some(cause));
    }

    fn progress(&self) -> CallProgress {
        progress(
            &self.history,
            "INCOMING",
            Some(self.sip_call_id.clone()),
            self.codec.clone(),
            self.answered_at_ms,
        )
    }
}

/// A call's row from its history: its state is the last entry's (`first` before any), and a
/// last entry with a cause is its end.
pub(crate) fn progress(
    history: &[StoredHistoryEntry],
    first: &str,
    sip_call_id: Option<String>,
    codec: Option<String>,
    answered_at_ms: Option<i64>,
) -> CallProgress {
    let last = history.last();
    CallProgress {
        state: last.map_or(first, |h| h.state.as_str()).to_owned(),
        history: serde_json::to_string(history).unwrap_or_else(|_| "[]".to_owned()),
        sip_call_id,
        codec,
        stats: None,
        answered_at_ms,
        end: last.and_then(|h| {
            Some(CallEnd {
                code: h.code,
                reason: h.reason.clone(),
                cause: h.cause.clone()?,
                at_ms: h.at_ms,
            })
        }),
    }
}

impl Drop for CallRow {
    /// A call forgotten without an ending (a path that drops it early) still ends its row.
    fn drop(&mut self) {
        if !self.is_ended() {
            self.end(500, "Call dropped", "local_hangup");
        }
    }
}

/// The cause of an ended answered call, from the core's reason for ending it.
/// Why a call whose 2xx carried our offer ends at the ACK (RFC 3261 §13.3.1.4).
pub(crate) const NO_USABLE_ANSWER: &str = "no usable SDP answer in the ACK";

pub(crate) fn end_cause(reason: &str, by_caller: bool) -> (u16, &'static str) {
    // The phone went elsewhere, whoever sent the BYE (the replaced phone of an attended
    // transfer hangs up itself).
    if reason == super::transfer::TRANSFERRED {
        return (200, "transferred");
    }
    if by_caller {
        return (200, "remote_hangup");
    }
    match reason {
        "media timeout" => (200, "media_timeout"),
        "no ACK for the 200" => (408, "ack_timeout"),
        super::session_timers::SESSION_EXPIRED | super::session_timers::REFRESH_FAILED => {
            (408, "session_expired")
        }
        NO_USABLE_ANSWER => (488, "media_refused"),
        "Room closed" | "Replaced in the room" | "Removed from the room" => (200, "room_removed"),
        "Room failure" | "Room unavailable" => (200, "room_failed"),
        _ => (200, "local_hangup"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn row(tx: mpsc::UnboundedSender<Queued>) -> CallRow {
        CallRow::start(
            NewRow {
                id: "call_1".into(),
                app_id: "app_1".into(),
                from: Some("sip:100@x".into()),
                to: "sip:200@y".into(),
                route: Some("trunk:trunk_1".into()),
                sip_call_id: "abc".into(),
                arrived_ms: 1,
            },
            Some(("lobby", "phone-1")),
            RowSink {
                tx: Some(tx),
                events: None,
            },
        )
    }

    fn states(p: &CallProgress) -> Vec<String> {
        let h: Vec<StoredHistoryEntry> = serde_json::from_str(&p.history).unwrap();
        h.into_iter().map(|e| e.state).collect()
    }

    #[test]
    fn a_batch_keeps_each_calls_last_update_after_its_insert() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut r = row(tx);
        r.push("CONNECTING", 200, "OK", None);
        r.push("CONFIRMED", 200, "OK", None);
        let mut batch = Vec::new();
        while let Ok(Queued::Write(w)) = rx.try_recv() {
            batch.push(w);
        }
        batch.insert(2, RowWrite::Stats("call_1".into(), "{}".into()));
        batch.insert(3, RowWrite::Route("call_1".into(), None));
        batch.push(RowWrite::Update("call_2".into(), Box::default()));
        fold_updates(&mut batch);
        let kinds: Vec<String> = batch
            .iter()
            .map(|w| match w {
                RowWrite::Insert(_) => "insert".to_owned(),
                RowWrite::Stats(..) => "stats".to_owned(),
                RowWrite::Route(..) => "route".to_owned(),
                RowWrite::Update(id, p) => format!("{id}:{}", p.state),
            })
            .collect();
        assert_eq!(
            kinds,
            ["insert", "stats", "route", "call_1:CONFIRMED", "call_2:"]
        );
    }

    #[test]
    fn a_call_goes_incoming_connecting_confirmed_disconnected_in_order() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut r = row(tx);
        r.push("CONNECTING", 200, "OK", None);
        r.push("CONFIRMED", 200, "OK", None);
        r.end(200, "caller hung up", "remote_hangup");
        r.push("CONFIRMED", 200, "OK", None);
        drop(r);
        let Ok(Queued::Write(RowWrite::Insert(rec))) = rx.try_recv() else {
            panic!("the insert comes first")
        };
        assert_eq!(
            (
                rec.direction.as_str(),
                rec.progress.state.as_str(),
                rec.room.as_deref()
            ),
            ("inbound", "INCOMING", Some("lobby"))
        );
        let mut last = None;
        while let Ok(w) = rx.try_recv() {
            let Queued::Write(RowWrite::Update(id, p)) = w else {
                panic!("one insert only")
            };
            assert_eq!(id, "call_1");
            last = Some(p);
        }
        let last = last.unwrap();
        assert_eq!(
            states(&last),
            ["INCOMING", "CONNECTING", "CONFIRMED", "DISCONNECTED"],
            "nothing after the end, and no second end on drop"
        );
        let end = last.end.unwrap();
        assert_eq!((end.code, end.cause.as_str()), (200, "remote_hangup"));
        assert!(last.answered_at_ms.is_some());
    }

    #[test]
    fn a_row_dropped_unended_is_ended() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        drop(row(tx));
        let _insert = rx.try_recv().unwrap();
        let Ok(Queued::Write(RowWrite::Update(_, p))) = rx.try_recv() else {
            panic!("ended on drop")
        };
        assert_eq!(p.state, "DISCONNECTED");
    }

    #[test]
    fn causes() {
        assert_eq!(end_cause("anything", true), (200, "remote_hangup"));
        assert_eq!(end_cause("no ACK for the 200", false), (408, "ack_timeout"));
        assert_eq!(end_cause("Room closed", false), (200, "room_removed"));
        assert_eq!(end_cause("Wrong PIN", false), (200, "local_hangup"));
        assert_eq!(end_cause(NO_USABLE_ANSWER, false), (488, "media_refused"));
    }

    /// An application reading a call on its `call.state` event finds the row in that state:
    /// the event is published only once the write queued before it is stored.
    #[tokio::test]
    async fn a_calls_event_is_published_after_its_row_is_stored() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(
            &dir.path().join("sipx.db"),
            sipx_secrets::MasterKey::generate().0,
        )
        .await
        .unwrap();
        let app = store.create_app("a").await.unwrap().0.id;
        let (bus, _dispatch) = EventBus::new();
        let mut stream = bus.subscribe(&app).events;
        let (tx, rx) = mpsc::unbounded_channel();
        let mut r = CallRow::start(
            NewRow {
                id: "call_1".into(),
                app_id: app.clone(),
                from: None,
                to: "sip:200@y".into(),
                route: None,
                sip_call_id: "abc".into(),
                arrived_ms: 1,
            },
            None,
            RowSink {
                tx: Some(tx),
                events: Some(bus.clone()),
            },
        );
        r.push("CONNECTING", 200, "OK", None);
        r.end(200, "caller hung up", "remote_hangup");
        // Nothing is published before the writer has stored the rows.
        assert!(matches!(
            stream.try_recv(),
            Err(tokio::sync::broadcast::error::TryRecvError::Empty)
        ));
        let writer = tokio::spawn(persist_rows(store.clone(), bus.clone(), rx));
        for expected in ["INCOMING", "CONNECTING", "DISCONNECTED"] {
            let event = stream.recv().await.unwrap();
            assert!(event.json.contains(expected), "{}", event.json);
            let row = store.get_call(&app, "call_1").await.unwrap().unwrap();
            // The row holds at least this event's state (a later one, when they were written
            // in one batch), never an earlier one.
            let states = ["INCOMING", "CONNECTING", "DISCONNECTED"];
            let at = |s: &str| states.iter().position(|x| *x == s);
            assert!(
                at(&row.progress.state) >= at(expected),
                "{} for {expected}",
                row.progress.state
            );
        }
        drop(r);
        writer.await.unwrap();
    }
}
