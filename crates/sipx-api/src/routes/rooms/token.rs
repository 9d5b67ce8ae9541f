//! Join tokens: HS256 JWTs signed with the application's own `api_secret`, so an application's
//! backend may also mint them itself (issuer = its `api_key`) without calling SIPx.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{check_name, unix_now};
use crate::auth::Tenant;
use crate::extract::{ApiJson, ApiPath};
use crate::problem::ApiError;
use crate::state::ApiState;
use crate::time::rfc3339;

/// The claims of a join token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct JoinClaims {
    /// The application's `api_key`: whose secret signed it.
    pub iss: String,
    /// The participant identity.
    pub sub: String,
    pub room: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default = "yes")]
    pub can_publish: bool,
    #[serde(default = "yes")]
    pub can_subscribe: bool,
    /// Unix seconds.
    pub exp: u64,
    #[serde(default)]
    pub iat: Option<u64>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"identity": "alice", "name": "Alice", "can_publish": true,
    "can_subscribe": true, "ttl_secs": 3600}))]
pub struct CreateToken {
    /// Who joins: unique in the room. A second join with the same identity replaces the first
    /// browser; one that a phone participant has is refused (close code 4409). Not `phone-…`:
    /// SIPx names phone participants so.
    #[schema(example = "alice", pattern = r"^[A-Za-z0-9._@+-]{1,64}$")]
    pub identity: String,
    /// Shown to the others; defaults to the identity. No control characters.
    #[schema(example = "Alice", max_length = 128)]
    pub name: Option<String>,
    /// May send audio/video (default true).
    pub can_publish: Option<bool>,
    /// May receive the others (default true).
    pub can_subscribe: Option<bool>,
    /// Lifetime in seconds (default 3600; at most the server's `rooms.max_token_ttl_secs`,
    /// 86400 unless configured otherwise).
    #[schema(minimum = 1, example = 3600)]
    pub ttl_secs: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"token": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ…", "url": "/v1/rtc",
    "room": "sales", "identity": "alice", "expires_at": "2026-11-29T11:00:00.000Z"}))]
pub struct JoinToken {
    /// Pass as `token` to the signalling WebSocket.
    pub token: String,
    /// The signalling WebSocket's path on this server (`ws://` or `wss://` like the API).
    pub url: String,
    pub room: String,
    pub identity: String,
    #[schema(format = DateTime)]
    pub expires_at: String,
}

/// Mint a join token
///
/// For a browser to join the room over `/v1/rtc` (see the signalling document). Give it to the
/// browser, never the API secret.
#[utoipa::path(post, path = "/v1/rooms/{room}/tokens", tag = "rooms", operation_id = "create_room_token",
    params(("room" = String, Path, description = "Room name")),
    request_body = CreateToken,
    responses((status = 201, description = "Created", body = JoinToken)))]
pub async fn create_token(
    Tenant(app): Tenant,
    State(state): State<ApiState>,
    ApiPath(room): ApiPath<String>,
    ApiJson(body): ApiJson<CreateToken>,
) -> Result<(StatusCode, Json<JoinToken>), ApiError> {
    // A token for rooms that are off would only be refused at the socket.
    super::rooms(&state)?;
    check_name("room", &room)?;
    check_name("identity", &body.identity)?;
    if !sipx_rooms::may_choose_identity(&body.identity) {
        return Err(ApiError::invalid_field(
            "identity",
            "phone-… names are SIPx's for phone participants",
        ));
    }
    let Ok(name) = display_name(body.name) else {
        return Err(ApiError::invalid_field(
            "name",
            "at most 128 characters, none of them control characters",
        ));
    };
    let max = state.auth.room_token_max_ttl.as_secs();
    let ttl = body.ttl_secs.unwrap_or(3600.min(max));
    if ttl == 0 || ttl > max {
        return Err(ApiError::invalid_field(
            "ttl_secs",
            format!("between 1 and {max} seconds"),
        ));
    }
    let Some((app, secret)) = state.store.app_credentials(&app.api_key).await? else {
        return Err(ApiError::Internal("the application vanished".to_owned()));
    };
    let now = unix_now();
    let claims = JoinClaims {
        iss: app.api_key.clone(),
        sub: body.identity.clone(),
        room: room.clone(),
        name,
        can_publish: body.can_publish.unwrap_or(true),
        can_subscribe: body.can_subscribe.unwrap_or(true),
        exp: now + ttl,
        iat: Some(now),
    };
    let json = serde_json::to_vec(&claims).map_err(|e| ApiError::Internal(e.to_string()))?;
    let token = sipx_secrets::jwt::sign(&json, secret.expose());
    Ok((
        StatusCode::CREATED,
        Json(JoinToken {
            token,
            url: "/v1/rtc".to_owned(),
            room,
            identity: body.identity,
            expires_at: rfc3339(i64::try_from(claims.exp).unwrap_or(0).saturating_mul(1000)),
        }),
    ))
}

/// A participant's shown name as a token may carry it: at most 128 characters, none of them
/// control characters (`Err` otherwise); an empty one is none, so the identity is shown.
/// Checked when SIPx mints a token and when a browser joins with one an application minted
/// itself.
pub(crate) fn display_name(name: Option<String>) -> Result<Option<String>, ()> {
    match name {
        Some(n) if n.chars().count() > 128 || n.chars().any(char::is_control) => Err(()),
        Some(n) if n.trim().is_empty() => Ok(None),
        name => Ok(name),
    }
}
