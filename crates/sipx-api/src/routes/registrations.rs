//! `/v1/registrations`: contacts currently registered by the application's gateways and phones.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::Tenant;
use crate::extract::ApiQuery;
use crate::pagination::{ListParams, encode_cursor};
use crate::problem::ApiError;
use crate::state::{ApiState, BindingView};
use crate::time::rfc3339;

/// One registered contact (RFC 3261 binding).
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "username": "gw-office-1",
    "contact": "sip:gw-office-1@203.0.113.7:5060",
    "expires_at": "2026-11-28T11:00:00.000Z",
    "expires_in": 3540,
    "q": null,
    "source": "203.0.113.7:5060",
    "transport": "UDP",
    "user_agent": "GoIP-4 1.0",
    "path": []
}))]
pub struct Registration {
    /// The SIP account (or application API key) that registered.
    pub username: String,
    /// The Contact URI calls are sent to.
    pub contact: String,
    #[schema(format = DateTime)]
    pub expires_at: String,
    /// Seconds left.
    pub expires_in: i64,
    /// Preference among this user's contacts (0–1).
    pub q: Option<f64>,
    /// The address the REGISTER came from; calls reach NATed devices there.
    pub source: String,
    /// UDP, TCP, TLS, WS or WSS.
    pub transport: String,
    pub user_agent: Option<String>,
    /// The proxies calls to this contact go through (the REGISTER's RFC 3327 `Path`), the one
    /// nearest SIPx first; empty when the device registered directly. `source` is then the
    /// proxy's address.
    pub path: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"items": [], "next_cursor": null}))]
pub struct RegistrationList {
    pub items: Vec<Registration>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

fn to_dto(username: String, b: BindingView, now: u64) -> Registration {
    Registration {
        username,
        contact: b.contact,
        expires_at: rfc3339(
            i64::try_from(b.expires_at)
                .unwrap_or(0)
                .saturating_mul(1000),
        ),
        expires_in: i64::try_from(b.expires_at.saturating_sub(now)).unwrap_or(0),
        q: b.q.map(f64::from),
        source: b.source,
        transport: b.transport,
        user_agent: b.user_agent,
        path: b.path,
    }
}

/// List registrations
///
/// Live bindings of the application's SIP accounts (and of its API key, for gateways that
/// register with it), by username then contact, as the registrar holds them now.
#[utoipa::path(get, path = "/v1/registrations", tag = "sip-accounts",
    operation_id = "list_registrations",
    params(ListParams),
    responses((status = 200, description = "One page of registrations", body = RegistrationList)))]
pub async fn list(
    Tenant(app): Tenant,
    State(state): State<ApiState>,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<RegistrationList>, ApiError> {
    let page = params.to_page_request()?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let key = |user: &str, contact: &str| format!("{user}\u{1f}{contact}");
    let mut items: Vec<(String, BindingView)> = state
        .runtime
        .bindings_of(&app.id, now)
        .into_iter()
        .filter(|(u, b)| {
            page.after
                .as_deref()
                .is_none_or(|a| key(u, &b.contact).as_str() > a)
        })
        .collect();
    let limit = page.limit as usize;
    let next_cursor = (items.len() > limit).then(|| {
        let (u, b) = &items[limit - 1];
        encode_cursor(&key(u, &b.contact))
    });
    items.truncate(limit);
    Ok(Json(RegistrationList {
        items: items.into_iter().map(|(u, b)| to_dto(u, b, now)).collect(),
        next_cursor,
    }))
}
