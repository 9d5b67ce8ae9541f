//! `/v1/webhook-deliveries` (the delivery log) and `/v1/webhooks/test`; the rules for webhook
//! URLs.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use sipx_store::{AttemptRecord, DeliveryFilter, DeliveryRecord, NewDelivery};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Tenant;
use crate::events::AppEvent;
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::pagination::{ListParams, encode_cursor};
use crate::problem::ApiError;
use crate::state::ApiState;
use crate::time::rfc3339;

/// Longest webhook URL accepted.
pub const MAX_WEBHOOK_URL: usize = 2048;

/// A webhook URL normalised (as it is stored, shown and sent to), or why it is refused:
/// absolute `http`/`https` with a host, at most 2048 characters, no user name or password
/// (they would travel in clear in every request and show in the delivery log; a token belongs
/// in the path or query), no fragment. Calls' own webhook URLs follow the same rules.
pub(crate) fn webhook_url(raw: &str) -> Result<String, &'static str> {
    const TOO_LONG: &str = "must be at most 2048 characters";
    if raw.len() > MAX_WEBHOOK_URL {
        return Err(TOO_LONG);
    }
    // The URL parser silently drops tabs and line breaks; a URL holding them is a mistake.
    if raw.chars().any(char::is_control) {
        return Err("must not contain control characters");
    }
    // Nor spaces: the parser would write them as %20, a URL other than the one given.
    if raw.chars().any(char::is_whitespace) {
        return Err("must not contain spaces (write them as %20)");
    }
    // `https:///x` would be read as host `x`: the authority must be there, not implied.
    if raw
        .split_once("://")
        .is_some_and(|(_, rest)| rest.starts_with(['/', '?', '#']))
    {
        return Err("must name a host");
    }
    let url = url::Url::parse(raw).map_err(|_| "must be an absolute http:// or https:// URL")?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("must be an http:// or https:// URL");
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("must name a host");
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(
            "must not contain credentials (user:password@); put a token in the path or query instead",
        );
    }
    if url.fragment().is_some() {
        return Err("must not have a fragment (#…)");
    }
    let normalised = String::from(url);
    if normalised.len() > MAX_WEBHOOK_URL {
        return Err(TOO_LONG);
    }
    Ok(normalised)
}

/// [`webhook_url`] as a 422 naming `field`.
pub(crate) fn check_webhook_url(field: &str, raw: &str) -> Result<String, ApiError> {
    webhook_url(raw).map_err(|why| ApiError::invalid_field(field, why))
}

/// An event's envelope: the JSON body of every webhook and the `data:` of every
/// `GET /v1/events` frame.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "id": "evt_01jdx4b7c2m9q3r5t8v0w2y4za",
    "type": "call.state",
    "created_at": "2026-11-28T10:00:01.250Z",
    "app_id": "app_01jdx3n5k8q2r7t9v4w6y8z0ab",
    "call_id": "call_01jdx4a0f1g2h3j4k5m6n7p8qr",
    "data": {"state": "EARLY", "code": 180, "reason": "Ringing"}
}))]
pub struct EventEnvelope {
    /// `evt_` + ULID. Unique; the same across a delivery's retries, so receivers can drop
    /// repeats.
    pub id: String,
    /// `call.state`, `call.dtmf`, `call.transfer`, `app.test`, …
    #[serde(rename = "type")]
    pub kind: String,
    #[schema(format = DateTime)]
    pub created_at: String,
    pub app_id: String,
    pub call_id: Option<String>,
    /// The event's own fields, by type.
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
#[schema(example = "delivered")]
pub enum DeliveryStatus {
    /// Not yet accepted; another attempt is due at `next_attempt_at`.
    Pending,
    /// The receiver answered 2xx.
    Delivered,
    /// Given up: the receiver refused it (4xx other than 408 and 429), or the retry window
    /// ran out.
    Failed,
}

impl From<sipx_store::DeliveryStatus> for DeliveryStatus {
    fn from(s: sipx_store::DeliveryStatus) -> Self {
        match s {
            sipx_store::DeliveryStatus::Pending => DeliveryStatus::Pending,
            sipx_store::DeliveryStatus::Delivered => DeliveryStatus::Delivered,
            sipx_store::DeliveryStatus::Failed => DeliveryStatus::Failed,
        }
    }
}

impl From<DeliveryStatus> for sipx_store::DeliveryStatus {
    fn from(s: DeliveryStatus) -> Self {
        match s {
            DeliveryStatus::Pending => sipx_store::DeliveryStatus::Pending,
            DeliveryStatus::Delivered => sipx_store::DeliveryStatus::Delivered,
            DeliveryStatus::Failed => sipx_store::DeliveryStatus::Failed,
        }
    }
}

/// One event on its way to one URL.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "dlv_01jdx4b7c3a1b2c3d4e5f6g7h8",
    "event_id": "evt_01jdx4b7c2m9q3r5t8v0w2y4za",
    "type": "call.state",
    "call_id": "call_01jdx4a0f1g2h3j4k5m6n7p8qr",
    "url": "https://example.com/sipx-events",
    "status": "delivered",
    "attempt_count": 2,
    "next_attempt_at": null,
    "created_at": "2026-11-28T10:00:01.251Z",
    "updated_at": "2026-11-28T10:00:02.310Z"
}))]
pub struct WebhookDelivery {
    /// `dlv_` + ULID; sent as `SIPx-Delivery-Id`.
    pub id: String,
    /// The envelope's id; sent as `SIPx-Event-Id`.
    pub event_id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub call_id: Option<String>,
    pub url: String,
    pub status: DeliveryStatus,
    pub attempt_count: u32,
    /// When the next attempt is due (pending deliveries only).
    #[schema(format = DateTime)]
    pub next_attempt_at: Option<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
}

impl From<&DeliveryRecord> for WebhookDelivery {
    fn from(r: &DeliveryRecord) -> Self {
        WebhookDelivery {
            id: r.id.clone(),
            event_id: r.event_id.clone(),
            kind: r.event_type.clone(),
            call_id: r.call_id.clone(),
            url: r.url.clone(),
            status: r.status.into(),
            attempt_count: r.attempt_count,
            next_attempt_at: r.next_attempt_at_ms.map(rfc3339),
            created_at: rfc3339(r.created_at_ms),
            updated_at: rfc3339(r.updated_at_ms),
        }
    }
}

/// One attempt to deliver.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"n": 1, "at": "2026-11-28T10:00:01.260Z", "duration_ms": 5,
    "http_status": null, "error": "connection refused"}))]
pub struct WebhookAttempt {
    /// 1 for the first attempt.
    pub n: u32,
    /// When the request started.
    #[schema(format = DateTime)]
    pub at: String,
    pub duration_ms: u32,
    /// The receiver's status code, when it answered.
    pub http_status: Option<u16>,
    /// Why there was no answer (connection refused, timeout, TLS…), when there was none.
    pub error: Option<String>,
}

impl From<AttemptRecord> for WebhookAttempt {
    fn from(a: AttemptRecord) -> Self {
        WebhookAttempt {
            n: a.n,
            at: rfc3339(a.at_ms),
            duration_ms: a.duration_ms,
            http_status: a.http_status,
            error: a.error,
        }
    }
}

/// A delivery with every attempt and the event it carries.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "dlv_01jdx4b7c3a1b2c3d4e5f6g7h8",
    "event_id": "evt_01jdx4b7c2m9q3r5t8v0w2y4za",
    "type": "call.state",
    "call_id": "call_01jdx4a0f1g2h3j4k5m6n7p8qr",
    "url": "https://example.com/sipx-events",
    "status": "delivered",
    "attempt_count": 2,
    "next_attempt_at": null,
    "created_at": "2026-11-28T10:00:01.251Z",
    "updated_at": "2026-11-28T10:00:02.310Z",
    "attempts": [
        {"n": 1, "at": "2026-11-28T10:00:01.260Z", "duration_ms": 5, "http_status": null,
            "error": "connection refused"},
        {"n": 2, "at": "2026-11-28T10:00:02.265Z", "duration_ms": 45, "http_status": 200,
            "error": null}
    ],
    "event": {
        "id": "evt_01jdx4b7c2m9q3r5t8v0w2y4za",
        "type": "call.state",
        "created_at": "2026-11-28T10:00:01.250Z",
        "app_id": "app_01jdx3n5k8q2r7t9v4w6y8z0ab",
        "call_id": "call_01jdx4a0f1g2h3j4k5m6n7p8qr",
        "data": {"state": "EARLY", "code": 180, "reason": "Ringing"}
    }
}))]
pub struct WebhookDeliveryDetail {
    #[serde(flatten)]
    pub delivery: WebhookDelivery,
    /// In order, oldest first.
    pub attempts: Vec<WebhookAttempt>,
    /// The event, as POSTed (the same body at every attempt).
    pub event: EventEnvelope,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"items": [], "next_cursor": null}))]
pub struct WebhookDeliveryList {
    pub items: Vec<WebhookDelivery>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveryFilterParams {
    /// Only the deliveries of this call's events.
    pub call_id: Option<String>,
    /// Only deliveries in this state.
    #[param(inline)]
    pub status: Option<DeliveryStatus>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"url": "https://example.com/sipx-events"}))]
pub struct TestWebhook {
    /// Where to send the test event; absent: the application's `webhook_url`.
    #[schema(max_length = 2048)]
    pub url: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "delivery_id": "dlv_01jdx4b7c3a1b2c3d4e5f6g7h8",
    "event_id": "evt_01jdx4b7c2m9q3r5t8v0w2y4za",
    "url": "https://example.com/sipx-events"
}))]
pub struct TestWebhookAccepted {
    /// Follow it at `GET /v1/webhook-deliveries/{delivery_id}`.
    pub delivery_id: String,
    pub event_id: String,
    pub url: String,
}

fn not_found() -> ApiError {
    ApiError::NotFound("no such webhook delivery".to_owned())
}

/// List webhook deliveries
///
/// The delivery log, oldest first: one entry per event sent (or being sent) to a webhook.
#[utoipa::path(get, path = "/v1/webhook-deliveries", tag = "events",
    operation_id = "list_webhook_deliveries",
    params(ListParams, DeliveryFilterParams),
    responses((status = 200, description = "One page of deliveries", body = WebhookDeliveryList)))]
pub async fn list(
    Tenant(app): Tenant,
    State(state): State<ApiState>,
    ApiQuery(params): ApiQuery<ListParams>,
    ApiQuery(filter): ApiQuery<DeliveryFilterParams>,
) -> Result<Json<WebhookDeliveryList>, ApiError> {
    let filter = DeliveryFilter {
        call_id: filter.call_id,
        status: filter.status.map(Into::into),
    };
    let page = state
        .store
        .list_webhook_deliveries(&app.id, &filter, &params.to_page_request()?)
        .await?;
    Ok(Json(WebhookDeliveryList {
        items: page.items.iter().map(WebhookDelivery::from).collect(),
        next_cursor: page.next_after.as_deref().map(encode_cursor),
    }))
}

/// Get a webhook delivery
///
/// With every attempt (time, status or error, duration) and the event it carries.
#[utoipa::path(get, path = "/v1/webhook-deliveries/{delivery_id}", tag = "events",
    operation_id = "get_webhook_delivery",
    params(("delivery_id" = String, Path, description = "Delivery id")),
    responses((status = 200, description = "The delivery", body = WebhookDeliveryDetail)))]
pub async fn get(
    Tenant(app): Tenant,
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<WebhookDeliveryDetail>, ApiError> {
    let (delivery, attempts) = state
        .store
        .get_webhook_delivery(&app.id, &id)
        .await?
        .ok_or_else(not_found)?;
    let event = serde_json::from_str(&delivery.body).map_err(|e| {
        ApiError::Internal(format!(
            "stored envelope of {} does not parse: {e}",
            delivery.id
        ))
    })?;
    Ok(Json(WebhookDeliveryDetail {
        delivery: WebhookDelivery::from(&delivery),
        attempts: attempts.into_iter().map(WebhookAttempt::from).collect(),
        event,
    }))
}

/// Send a test event
///
/// Publishes an `app.test` event to the application's `webhook_url` (or to `url`) and to its
/// `GET /v1/events` streams, to check a receiver. The answer comes once the delivery is
/// stored, before it is sent; follow it in the delivery log.
#[utoipa::path(post, path = "/v1/webhooks/test", tag = "events",
    operation_id = "test_webhook",
    request_body = TestWebhook,
    responses((status = 202, description = "Stored; being sent", body = TestWebhookAccepted)))]
pub async fn test(
    Tenant(app): Tenant,
    State(state): State<ApiState>,
    ApiJson(body): ApiJson<TestWebhook>,
) -> Result<(StatusCode, Json<TestWebhookAccepted>), ApiError> {
    let url = match &body.url {
        Some(url) => check_webhook_url("url", url)?,
        None => app.webhook_url.clone().ok_or_else(|| {
            ApiError::invalid_field(
                "url",
                "the application has no webhook_url: set one with PATCH /v1/app, or pass url",
            )
        })?,
    };
    let envelope = state.events.envelope(AppEvent {
        app_id: app.id.clone(),
        kind: "app.test".to_owned(),
        call_id: None,
        webhook_url: Some(url.clone()),
        data: serde_json::json!({"message": "a test event from SIPx"}),
    });
    let delivery = state
        .store
        .create_webhook_deliveries(&[NewDelivery {
            app_id: app.id.clone(),
            event_id: envelope.id.clone(),
            event_type: envelope.kind.clone(),
            call_id: None,
            url: url.clone(),
            to_app_url: body.url.is_none(),
            body: envelope.json.clone(),
        }])
        .await?
        .pop()
        .ok_or_else(|| ApiError::Internal("no delivery stored".to_owned()))?;
    let accepted = TestWebhookAccepted {
        delivery_id: delivery.id.clone(),
        event_id: envelope.id.clone(),
        url,
    };
    state.events.publish_stored(&envelope, delivery);
    Ok((StatusCode::ACCEPTED, Json(accepted)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_http_and_https_urls() {
        assert_eq!(
            check_webhook_url("u", "https://example.com").unwrap(),
            "https://example.com/"
        );
        assert_eq!(
            check_webhook_url("u", "http://127.0.0.1:8000/hook?token=abc").unwrap(),
            "http://127.0.0.1:8000/hook?token=abc"
        );
        assert!(check_webhook_url("u", "https://[::1]:9/x").is_ok());
        // A query straight after the host, as the schema's pattern allows.
        assert_eq!(
            check_webhook_url("u", "http://hooks.example:8001?x=1").unwrap(),
            "http://hooks.example:8001/?x=1"
        );
    }

    #[test]
    fn rejects_other_urls() {
        let long = format!("https://example.com/{}", "a".repeat(MAX_WEBHOOK_URL));
        for bad in [
            "",
            "example.com/hook",
            "/relative",
            "ftp://example.com/",
            "javascript:alert(1)",
            "file:///etc/passwd",
            "https://user:pass@example.com/",
            "https://user@example.com/",
            "https://example.com/#frag",
            "https://exa\nmple.com/",
            "http://example.com/a b",
            "http://",
            long.as_str(),
        ] {
            let e = check_webhook_url("webhook_url", bad).unwrap_err();
            assert!(
                matches!(&e, ApiError::Invalid(_, errors) if errors[0].field == "webhook_url"),
                "{bad}: {e:?}"
            );
        }
    }
}
