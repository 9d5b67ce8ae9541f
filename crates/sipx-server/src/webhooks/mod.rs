//! Webhook delivery: the task that turns published events into signed POSTs, retried until the
//! receiver takes them or the retry window ends, every attempt written to the delivery log.
//!
//! ```text
//! EventBus::publish ─► DispatchQueue ─► intake: the call's URL, else the application's
//!   ─► deliveries stored (one transaction per batch) ─► Schedule (one queue per call and URL)
//!   ─► due heads, at most max_in_flight at once ─► attempt: sign, POST (WebhookClient)
//!   ─► RetryPolicy ─► attempt + new state stored ─► Schedule: next of the queue, or retry
//! ```
//!
//! Pending deliveries live in the database: at start they are reloaded and resumed. A
//! delivery whose attempt was in flight when the process stopped is sent again, so receivers
//! see each event at least once and drop repeats by `SIPx-Event-Id`.

mod client;
mod deny;
mod policy;
mod schedule;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hyper::body::Bytes;
use hyper::header::HeaderName;
use sipx_api::events::{Dispatch, DispatchQueue, Envelope};
use sipx_store::{AfterAttempt, NewAttempt, NewDelivery, Store};
use tokio::sync::watch;
use tokio::task::{Id, JoinHandle, JoinSet};

use crate::config::WebhooksConfig;
pub use client::WebhookClient;
pub(crate) use deny::{DEFAULT_DENY, DenyList};
pub use policy::{Outcome, RetryPolicy};
use schedule::{Pending, Schedule};

const SIGNATURE: HeaderName = HeaderName::from_static("sipx-signature");
const EVENT_ID: HeaderName = HeaderName::from_static("sipx-event-id");
const DELIVERY_ID: HeaderName = HeaderName::from_static("sipx-delivery-id");

/// Events taken from the queue at once: stored in one transaction.
const INTAKE_BATCH: usize = 256;
/// How often finished deliveries older than the retention are deleted.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Starts the dispatcher; it runs until `stop` turns true.
pub fn spawn(
    store: Store,
    queue: DispatchQueue,
    config: &WebhooksConfig,
    (tls, deny): (Arc<rustls::ClientConfig>, DenyList),
    stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    let changes = store.subscribe_changes();
    let dispatcher = Dispatcher {
        client: WebhookClient::new(
            tls,
            (
                Duration::from_millis(config.connect_timeout_ms),
                Duration::from_millis(config.request_timeout_ms),
            ),
            deny,
        ),
        policy: RetryPolicy::from(config),
        max_in_flight: config.max_in_flight,
        retention: Duration::from_secs(config.retention_hours.saturating_mul(3600)),
        store,
        queue,
        intake_open: true,
        schedule: Schedule::new(config.max_in_flight_per_app),
        in_flight: JoinSet::new(),
        attempting: HashMap::new(),
        app_urls: HashMap::new(),
        app_urls_since: std::time::Instant::now(),
        changes,
        stop,
    };
    tokio::spawn(dispatcher.run())
}

struct Dispatcher {
    store: Store,
    client: WebhookClient,
    policy: RetryPolicy,
    max_in_flight: usize,
    /// Zero: keep the log forever.
    retention: Duration,
    queue: DispatchQueue,
    /// False once every publisher is gone.
    intake_open: bool,
    schedule: Schedule,
    in_flight: JoinSet<AfterAttempt>,
    /// The delivery each attempt task works on.
    attempting: HashMap<Id, Pending>,
    /// Applications' webhook URLs: read once, not once per event (thousands of calls a
    /// second publish several events each). Dropped when the store reports a change, and
    /// after a while (another SIPx may have changed the application).
    app_urls: HashMap<String, Option<String>>,
    app_urls_since: std::time::Instant,
    changes: watch::Receiver<u64>,
    stop: watch::Receiver<bool>,
}

/// How long an application's webhook URL is trusted without a change signal.
const APP_URL_TTL: Duration = Duration::from_secs(10);

/// What woke the loop.
enum Wake {
    Stop,
    Finished(Result<(Id, AfterAttempt), tokio::task::JoinError>),
    Intake(usize),
    Due,
    Prune,
}

impl Dispatcher {
    async fn run(mut self) {
        self.resume().await;
        let mut batch = Vec::with_capacity(INTAKE_BATCH);
        let mut prune = tokio::time::interval(PRUNE_EVERY);
        loop {
            self.start_due();
            // With every slot busy, a due head waits for a finished attempt, not a timer.
            let sleep = (self.in_flight.len() < self.max_in_flight)
                .then(|| self.schedule.next_due())
                .flatten()
                .map(|at| Duration::from_millis(u64::try_from(at - now_ms()).unwrap_or(0)));
            let wake = tokio::select! {
                _ = self.stop.wait_for(|stop| *stop) => Wake::Stop,
                Some(done) = self.in_flight.join_next_with_id(), if !self.in_flight.is_empty() => {
                    Wake::Finished(done)
                }
                n = self.queue.recv_many(&mut batch, INTAKE_BATCH), if self.intake_open => {
                    Wake::Intake(n)
                }
                _ = tokio::time::sleep(sleep.unwrap_or_default()), if sleep.is_some() => Wake::Due,
                _ = prune.tick() => Wake::Prune,
            };
            match wake {
                Wake::Stop => {
                    // Events published up to now are stored, to be sent after a restart.
                    let mut last = Vec::new();
                    while let Ok(item) = self.queue.try_recv() {
                        last.push(item);
                    }
                    if !last.is_empty() {
                        self.intake(last).await;
                    }
                    break;
                }
                Wake::Finished(Ok((id, after))) => {
                    if let Some(p) = self.attempting.remove(&id) {
                        self.schedule.finish(&p, after);
                    }
                }
                Wake::Finished(Err(e)) => {
                    // A panicked attempt (a bug): nothing was recorded, so it is tried again
                    // after the backoff, as if the receiver had not answered.
                    tracing::error!(error = %e, "a webhook attempt failed to complete");
                    if let Some(p) = self.attempting.remove(&e.id()) {
                        let wait = self.policy.backoff(p.attempts + 1);
                        let at = now_ms()
                            .saturating_add(i64::try_from(wait.as_millis()).unwrap_or(i64::MAX));
                        self.schedule.finish(&p, AfterAttempt::RetryAt(at));
                    }
                }
                Wake::Intake(0) => self.intake_open = false,
                Wake::Intake(_) => self.intake(std::mem::take(&mut batch)).await,
                Wake::Due => {}
                Wake::Prune => self.prune().await,
            }
            metrics::gauge!("sipx_webhook_deliveries_pending").set(self.schedule.len() as f64);
        }
        // Attempts cut short now are still pending in the database.
        self.in_flight.abort_all();
    }

    /// Reloads the deliveries a previous run left pending.
    async fn resume(&mut self) {
        match self.store.pending_webhook_deliveries().await {
            Ok(pending) => {
                if !pending.is_empty() {
                    tracing::info!(count = pending.len(), "resuming pending webhook deliveries");
                }
                for d in pending {
                    self.schedule.add(Pending::from(d));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot load pending webhook deliveries");
            }
        }
    }

    /// Stores a delivery for each event that has a URL, and queues it.
    async fn intake(&mut self, batch: Vec<Dispatch>) {
        if self.changes.has_changed().unwrap_or(false)
            || self.app_urls_since.elapsed() > APP_URL_TTL
        {
            self.changes.mark_unchanged();
            self.app_urls.clear();
            self.app_urls_since = std::time::Instant::now();
        }
        let mut app_urls = std::mem::take(&mut self.app_urls);
        let mut new = Vec::new();
        for item in batch {
            match item {
                Dispatch::Stored(delivery) => self.schedule.add(Pending::from(delivery)),
                Dispatch::Event(envelope) => {
                    if let Some(url) = self.url_for(&envelope, &mut app_urls).await {
                        let to_app_url = envelope.webhook_url.is_none();
                        new.push(delivery_of(&envelope, url, to_app_url));
                    }
                }
            }
        }
        self.app_urls = app_urls;
        if new.is_empty() {
            return;
        }
        match self.store.create_webhook_deliveries(&new).await {
            Ok(stored) => {
                for d in stored {
                    self.schedule.add(Pending::from(d));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, count = new.len(),
                    "cannot store webhook deliveries: these events are not sent");
            }
        }
    }

    /// The call's own URL, else the application's (from the cache, else the store).
    async fn url_for(
        &self,
        envelope: &Envelope,
        app_urls: &mut HashMap<String, Option<String>>,
    ) -> Option<String> {
        if let Some(url) = &envelope.webhook_url {
            return Some(url.clone());
        }
        if let Some(url) = app_urls.get(&envelope.app_id) {
            return url.clone();
        }
        let url = match self.store.get_app(&envelope.app_id).await {
            Ok(app) => app.and_then(|a| a.webhook_url),
            Err(e) => {
                tracing::error!(error = %e, app_id = %envelope.app_id,
                    "cannot read the application's webhook URL");
                None
            }
        };
        app_urls.insert(envelope.app_id.clone(), url.clone());
        url
    }

    /// Starts the attempts that are due, as slots allow.
    fn start_due(&mut self) {
        let free = self.max_in_flight.saturating_sub(self.in_flight.len());
        if free == 0 {
            return;
        }
        for p in self.schedule.take_due(now_ms(), free) {
            let (store, client, policy) = (self.store.clone(), self.client.clone(), self.policy);
            let task = p.clone();
            let handle = self
                .in_flight
                .spawn(async move { attempt(&store, &client, &policy, &task).await });
            self.attempting.insert(handle.id(), p);
        }
    }

    async fn prune(&self) {
        if self.retention.is_zero() {
            return;
        }
        let horizon = i64::try_from(self.retention.as_millis()).unwrap_or(i64::MAX);
        match self
            .store
            .prune_webhook_deliveries(now_ms().saturating_sub(horizon))
            .await
        {
            Ok(0) => {}
            Ok(n) => tracing::info!(count = n, "old webhook deliveries removed from the log"),
            Err(e) => tracing::warn!(error = %e, "cannot prune the webhook delivery log"),
        }
    }
}

fn delivery_of(envelope: &Envelope, url: String, to_app_url: bool) -> NewDelivery {
    NewDelivery {
        app_id: envelope.app_id.clone(),
        event_id: envelope.id.clone(),
        event_type: envelope.kind.clone(),
        call_id: envelope.call_id.clone(),
        url,
        to_app_url,
        body: envelope.json.clone(),
    }
}

/// Where an attempt of `p` goes: its URL, or for a delivery to the application's URL, that
/// URL as it is now (`None`: it was removed, and the delivery ends).
async fn target(store: &Store, p: &Pending) -> Result<Option<String>, Outcome> {
    if !p.to_app_url {
        return Ok(Some(p.url.to_string()));
    }
    match store.get_app(&p.app_id).await {
        Ok(app) => Ok(app.and_then(|a| a.webhook_url)),
        Err(e) => {
            tracing::error!(error = %e, app_id = %p.app_id, "cannot read the application's webhook URL");
            Err(Outcome::NoAnswer(
                "the application's webhook URL could not be read".to_owned(),
            ))
        }
    }
}

/// One attempt: sign with the application's current secret, POST, record what happened.
async fn attempt(
    store: &Store,
    client: &WebhookClient,
    policy: &RetryPolicy,
    p: &Pending,
) -> AfterAttempt {
    let at_ms = now_ms();
    let started = tokio::time::Instant::now();
    let url = target(store, p).await;
    let outcome = match (&url, store.app_secret(&p.app_id).await) {
        // The application is gone, and its delivery log with it.
        (_, Ok(None)) => return AfterAttempt::Failed,
        (Err(outcome), _) => outcome.clone(),
        (Ok(None), _) => Outcome::Unsendable(
            "the application's webhook URL was removed while this delivery was pending".to_owned(),
        ),
        (Ok(Some(url)), Ok(Some(secret))) => {
            let t = u64::try_from(at_ms / 1000).unwrap_or(0);
            let signature = sipx_secrets::sign_webhook(secret.expose(), t, p.body.as_bytes());
            let headers = [
                (SIGNATURE, signature),
                (EVENT_ID, p.event_id.clone()),
                (DELIVERY_ID, p.id.clone()),
            ];
            let body = Bytes::copy_from_slice(p.body.as_bytes());
            client.post(url, &headers, body).await
        }
        (_, Err(e)) => {
            tracing::error!(error = %e, app_id = %p.app_id, "cannot open the application secret");
            Outcome::NoAnswer("the application's secret could not be opened".to_owned())
        }
    };
    let duration_ms = u32::try_from(started.elapsed().as_millis()).unwrap_or(u32::MAX);
    let attempts = p.attempts + 1;
    let after = policy.after(&outcome, attempts, p.created_at_ms, now_ms());
    let result = match after {
        AfterAttempt::Delivered => "delivered",
        AfterAttempt::Failed => "failed",
        AfterAttempt::RetryAt(_) => "retry",
    };
    metrics::counter!("sipx_webhook_attempts_total", "result" => result).increment(1);
    // The host only: a URL's path or query may hold the receiver's token.
    let host = url_host(
        url.as_ref()
            .ok()
            .and_then(Option::as_deref)
            .unwrap_or(&p.url),
    );
    // Absent values are left out of the log line (no `Some(410)` text for tools to parse).
    let (status, error) = (outcome.http_status(), outcome.error());
    match (&after, &outcome) {
        (AfterAttempt::Failed, _) => tracing::warn!(delivery_id = %p.id, app_id = %p.app_id,
            %host, attempts, status, error = error.as_deref(), "webhook delivery failed"),
        _ => tracing::debug!(delivery_id = %p.id, %host, attempts, status,
            error = error.as_deref(), duration_ms, result, "webhook attempt"),
    }
    let record = NewAttempt {
        at_ms,
        duration_ms,
        http_status: outcome.http_status(),
        error: outcome.error(),
        url: url.ok().flatten().filter(|u| **u != *p.url),
    };
    if let Err(e) = store.record_webhook_attempt(&p.id, &record, after).await {
        tracing::error!(error = %e, delivery_id = %p.id, "cannot record a webhook attempt");
    }
    after
}

fn url_host(url: &str) -> String {
    url.parse::<hyper::Uri>()
        .ok()
        .and_then(|u| u.host().map(str::to_owned))
        .unwrap_or_default()
}

/// Unix milliseconds now: deliveries are due at wall-clock times, which survive a restart.
#[allow(clippy::disallowed_methods)]
fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
