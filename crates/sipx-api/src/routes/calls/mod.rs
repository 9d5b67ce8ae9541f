//! `/v1/calls`: dial a phone into a room, read a call and its state history, hang up, send
//! DTMF, mute; `/v1/cdrs`: the records of ended calls, as JSON or CSV.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use sipx_store::{CallFilter, CallRecord};
use utoipa::{IntoParams, ToSchema};

use super::srtp::SrtpPolicy;
use crate::auth::Tenant;
use crate::call_service::{
    CallCommandError, CallService, DialRequest, DialRoute, StoredHistoryEntry, StoredMediaStats,
    TransferTarget, state_number,
};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::pagination::{ListParams, encode_cursor};
use crate::problem::{ApiError, Checker};
use crate::state::ApiState;
use crate::time::rfc3339;

pub mod cdrs;

/// `max_duration` when the request has none: the first SIPx's `ttl`.
const DEFAULT_MAX_DURATION_S: u32 = 1800;
const DEFAULT_RING_TIMEOUT_S: u32 = 60;

/// Where the phone goes: a room of a connector.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"connector": "builtin", "name": "support", "identity": "customer-1",
    "display_name": "Customer", "metadata": "{\"ticket\": 42}"}))]
pub struct RoomInput {
    /// The room system: `builtin` (SIPx's own WebRTC rooms) for now.
    #[serde(default = "builtin")]
    #[schema(example = "builtin")]
    pub connector: String,
    /// The room's name.
    #[schema(pattern = r"^[A-Za-z0-9._@+-]{1,64}$")]
    pub name: String,
    /// The phone's participant identity; `phone-<call id>` by default (`phone-…` names are
    /// SIPx's). One a participant of the room has already, or a call not ended has (one still
    /// ringing included), is refused (409): a call never replaces anyone.
    #[schema(pattern = r"^[A-Za-z0-9._@+-]{1,64}$")]
    pub identity: Option<String>,
    /// The name shown in the room; the dialled number by default.
    #[schema(min_length = 1, max_length = 128)]
    pub display_name: Option<String>,
    /// Opaque to SIPx, at most 1024 characters.
    #[schema(max_length = 1024)]
    pub metadata: Option<String>,
}

fn builtin() -> String {
    "builtin".to_owned()
}

/// How the call reaches the phone: one of `trunk_id` or `sip_account_id`, or neither (the
/// application's outbound trunks by name, then its registered SIP accounts).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"trunk_id": "trunk_01jd8x4q3w5e6r7t8y9u0i1o2p"}))]
pub struct RouteInput {
    pub trunk_id: Option<String>,
    /// A SIP account whose registered device (a SIM gateway, a phone) places the call.
    pub sip_account_id: Option<String>,
}

/// Dial a number into a room.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"to": "+4930123456", "from": "+4930999999",
    "route": {"trunk_id": "trunk_01jd8x4q3w5e6r7t8y9u0i1o2p"},
    "room": {"connector": "builtin", "name": "support"},
    "ring_timeout": 45, "max_duration": 1800, "dtmf_after_answer": ",,123#",
    "webhook_url": "https://example.com/sipx-events"}))]
pub struct CreateCall {
    /// An E.164 number (`+4930123456`), a number the route understands (digits, `*`, `#`),
    /// or a `sip:`/`sips:` URI.
    #[schema(pattern = r"^(\+?[0-9*#]{1,32}|sips?:[!-~]{1,250})$", max_length = 256)]
    pub to: String,
    /// Caller id; the trunk's caller id by default.
    #[schema(pattern = r"^[A-Za-z0-9+*#._-]{1,64}$")]
    pub from: Option<String>,
    /// Withhold the caller id from the called phone: the INVITE's From is anonymous and asks
    /// for privacy (`Privacy: id`, RFC 3323/3325), while a trunk's provider still gets the
    /// number in `P-Asserted-Identity`, which it needs for billing and emergency calls.
    #[serde(default)]
    pub withhold_caller_id: bool,
    #[serde(default, deserialize_with = "crate::routes::object")]
    pub route: RouteInput,
    #[serde(deserialize_with = "crate::routes::object")]
    pub room: RoomInput,
    /// Seconds to wait for an answer (1–600, default 60).
    #[schema(minimum = 1, maximum = 600)]
    pub ring_timeout: Option<u32>,
    /// Seconds the answered call may last (1–86400, default 1800, like the first SIPx's `ttl`).
    #[schema(minimum = 1, maximum = 86400)]
    pub max_duration: Option<u32>,
    /// Keys pressed once the phone answers: digits, `*`, `#`, `A`–`D`, `,` = 500 ms pause.
    #[schema(pattern = r"^[0-9A-Da-d*#,]{0,128}$")]
    pub dtmf_after_answer: Option<String>,
    /// Let the room hear early media (a 183 with SDP: ringback, announcements).
    #[serde(default)]
    pub early_media: bool,
    /// SRTP for this call; the route's policy by default.
    pub srtp: Option<SrtpPolicy>,
    /// Receives this call's events instead of the application's webhook URL.
    #[schema(pattern = r"^https?://[^@/?#\s]+([/?][^#\s]*)?$", max_length = 2048)]
    pub webhook_url: Option<String>,
}

/// One change of a call's state.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"state": "EARLY", "number": 3, "at": "2026-11-29T10:00:01.250Z",
    "code": 180, "reason": "Ringing"}))]
pub struct HistoryEntry {
    /// `CALLING`, `INCOMING`, `EARLY`, `CONNECTING`, `CONFIRMED` or `DISCONNECTED`.
    pub state: String,
    /// The first SIPx's state number: 1 CALLING, 2 INCOMING, 3 EARLY, 4 CONNECTING,
    /// 5 CONFIRMED, 6 DISCONNECTED.
    pub number: u8,
    #[schema(format = DateTime)]
    pub at: String,
    /// The SIP status code (0 for `CALLING`/`INCOMING`).
    pub code: u16,
    pub reason: String,
    /// On `DISCONNECTED`: `rejected`, `unreachable`, `no_answer`, `local_hangup`,
    /// `remote_hangup`, `remote_cancel`, `room_removed`, `room_failed`, `max_duration`,
    /// `media_timeout`, `ack_timeout`, `transferred`, `session_expired`, `media_refused`,
    /// `restart`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
}

/// The room side of a call.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"connector": "builtin", "name": "support", "identity": "phone-1"}))]
pub struct CallRoom {
    pub connector: String,
    pub name: String,
    pub identity: Option<String>,
}

/// Media statistics of the phone leg, as last reported: every 5 s while the call's media
/// flows, and its final figures once the call's media leg is gone.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"packets_received": 15000, "packets_sent": 15000, "packets_lost": 12,
    "jitter_ms": 3.5, "rtt_ms": 42.0, "mos": 4.3}))]
pub struct MediaStats {
    pub packets_received: u64,
    pub packets_sent: u64,
    pub packets_lost: u64,
    pub jitter_ms: f64,
    pub rtt_ms: Option<f64>,
    /// An E-model (ITU-T G.107) estimate, 1 to 4.5; null when no packet was received.
    pub mos: Option<f64>,
}

/// How the call ended.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"code": 486, "reason": "Busy Here", "cause": "rejected",
    "at": "2026-11-29T10:00:03.000Z"}))]
pub struct CallEnd {
    pub code: u16,
    pub reason: String,
    pub cause: String,
    #[schema(format = DateTime)]
    pub at: String,
}

/// A call, live or ended.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"id": "call_01jd8x4q3w5e6r7t8y9u0i1o2p", "direction": "outbound",
    "state": "CONFIRMED", "done": false, "from": "+4930999999", "to": "+4930123456",
    "route": "trunk:trunk_01jd8x4q3w5e6r7t8y9u0i1o2p",
    "room": {"connector": "builtin", "name": "support", "identity": "phone-1"},
    "codec": "PCMU", "history": [
        {"state": "CALLING", "number": 1, "at": "2026-11-29T10:00:00.000Z", "code": 0, "reason": ""},
        {"state": "EARLY", "number": 3, "at": "2026-11-29T10:00:01.250Z", "code": 180, "reason": "Ringing"},
        {"state": "CONNECTING", "number": 4, "at": "2026-11-29T10:00:04.100Z", "code": 200, "reason": "OK"},
        {"state": "CONFIRMED", "number": 5, "at": "2026-11-29T10:00:04.100Z", "code": 200, "reason": "OK"}],
    "created_at": "2026-11-29T10:00:00.000Z", "answered_at": "2026-11-29T10:00:04.100Z"}))]
pub struct Call {
    pub id: String,
    /// `outbound` (dialled through the API) or `inbound` (routed in).
    pub direction: String,
    /// The current state: the last entry of `history`.
    pub state: String,
    /// The call has ended: `state` is `DISCONNECTED` and nothing changes any more.
    pub done: bool,
    pub from: Option<String>,
    pub to: String,
    /// `trunk:<id>` or `sip_account:<id>`, once chosen.
    pub route: Option<String>,
    pub room: Option<CallRoom>,
    pub codec: Option<String>,
    pub history: Vec<HistoryEntry>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media: Option<MediaStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end: Option<CallEnd>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub answered_at: Option<String>,
    /// The SIP Call-ID of the phone leg, for matching with the peer's logs.
    pub sip_call_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"items": [], "next_cursor": null}))]
pub struct CallList {
    pub items: Vec<Call>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CallQuery {
    /// Only calls in this state (`CALLING`, `INCOMING`, `EARLY`, `CONNECTING`, `CONFIRMED`,
    /// `DISCONNECTED`, in any case); another value is a 400.
    pub state: Option<String>,
    /// `outbound` or `inbound`; another value is a 400.
    pub direction: Option<String>,
    /// Only calls of this room.
    pub room: Option<String>,
    /// `true`: only live calls; `false`: only ended ones.
    pub active: Option<bool>,
    /// Items per page (1–200, default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"digits": "1234#"}))]
pub struct SendDtmf {
    /// Digits, `*`, `#`, `A`–`D`; `,` pauses 500 ms. At most 128.
    #[schema(pattern = r"^[0-9A-Da-d*#,]{1,128}$")]
    pub digits: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"to": "+4930555000"}))]
pub struct TransferCall {
    /// Blind transfer: where the phone should go, a number (in the phone's own domain) or a
    /// `sip:` URI. Give this or `replaces`.
    #[schema(pattern = r"^(\+?[0-9*#]{1,32}|sips?:[!-~]{1,250})$", max_length = 256)]
    pub to: Option<String>,
    /// Attended transfer: the id of another answered call of this application. The phone of
    /// this call is asked to call that call's phone and take its place (REFER with
    /// `Replaces`, RFC 3891): the two phones end up talking to each other and both calls end
    /// `DISCONNECTED 200 Transferred`. Give this or `to`.
    #[schema(max_length = 64)]
    pub replaces: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"muted": true}))]
pub struct MuteCall {
    /// Stop (true) or resume (false) sending the phone's audio into the room.
    pub muted: bool,
}

pub(crate) fn call_dto(c: CallRecord) -> Call {
    let history: Vec<StoredHistoryEntry> =
        serde_json::from_str(&c.progress.history).unwrap_or_default();
    let media = c
        .progress
        .stats
        .as_deref()
        .and_then(|s| serde_json::from_str::<StoredMediaStats>(s).ok())
        .map(|s| MediaStats {
            packets_received: s.packets_received,
            packets_sent: s.packets_sent,
            packets_lost: s.packets_lost,
            jitter_ms: s.jitter_ms,
            rtt_ms: s.rtt_ms,
            mos: s.mos,
        });
    Call {
        done: c.progress.end.is_some(),
        state: c.progress.state,
        id: c.id,
        direction: c.direction,
        from: c.from_uri,
        to: c.to_uri,
        route: c.route,
        room: c.room.map(|name| CallRoom {
            connector: "builtin".to_owned(),
            name,
            identity: c.identity,
        }),
        codec: c.progress.codec,
        history: history
            .into_iter()
            .map(|h| HistoryEntry {
                number: state_number(&h.state),
                state: h.state,
                at: rfc3339(h.at_ms),
                code: h.code,
                reason: h.reason,
                cause: h.cause,
            })
            .collect(),
        media,
        end: c.progress.end.map(|e| CallEnd {
            code: e.code,
            reason: e.reason,
            cause: e.cause,
            at: rfc3339(e.at_ms),
        }),
        created_at: rfc3339(c.created_at_ms),
        answered_at: c.progress.answered_at_ms.map(rfc3339),
        sip_call_id: c.progress.sip_call_id,
    }
}

fn calls(state: &ApiState) -> Result<&dyn CallService, ApiError> {
    state
        .calls
        .as_deref()
        .ok_or_else(|| ApiError::Unavailable("call control is not running".to_owned()))
}

fn command_error(e: CallCommandError) -> ApiError {
    match e {
        CallCommandError::NotFound => not_found(),
        CallCommandError::Conflict(m) => ApiError::Conflict(m),
        CallCommandError::Invalid { field, message } => ApiError::invalid_field(field, message),
        CallCommandError::Unavailable(m) => ApiError::Unavailable(m),
    }
}

fn not_found() -> ApiError {
    ApiError::NotFound("no such call".to_owned())
}

/// `+`, digits, `*` and `#` (what a trunk can dial), at most 32.
fn is_dialable_number(s: &str) -> bool {
    let digits = s.strip_prefix('+').unwrap_or(s);
    !digits.is_empty()
        && digits.len() <= 32
        && digits
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'*' || b == b'#')
}

/// A SIP URI SIPx can put in a Request-URI: no headers part (RFC 3261 §19.1.1 forbids it
/// there) and no port 0.
fn is_sip_uri(s: &str) -> bool {
    s.len() <= 256
        && (s.starts_with("sip:") || s.starts_with("sips:"))
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
        && matches!(
            sipx_sip::msg::Uri::parse(s),
            Some(sipx_sip::msg::Uri::Sip(u)) if u.headers.is_empty() && u.port != Some(0)
        )
}

/// A caller id: a number or a SIP user part.
fn is_caller_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+*#._-".contains(&b))
}

/// The rules every webhook URL follows (`routes::webhooks::webhook_url`).
pub(crate) fn check_webhook_url(url: &str, field: &str, c: &mut Checker) {
    if let Err(why) = super::webhooks::webhook_url(url) {
        c.check(false, field, why);
    }
}

/// Where a call (or a transfer) goes: a number a trunk can dial, or a SIP URI.
fn check_to(to: &str, c: &mut Checker) {
    c.check(
        is_dialable_number(to) || is_sip_uri(to),
        "to",
        "an E.164 number, digits with * and #, or a sip:/sips: URI (without headers or port 0)",
    );
}

fn check_create(body: &CreateCall, c: &mut Checker) {
    check_to(&body.to, c);
    if let Some(from) = &body.from {
        c.check(
            is_caller_id(from),
            "from",
            "a number or SIP user, at most 64 characters",
        );
    }
    c.check(
        body.route.trunk_id.is_none() || body.route.sip_account_id.is_none(),
        "route",
        "name a trunk or a SIP account, not both",
    );
    c.check(
        body.room.connector == "builtin",
        "room.connector",
        "only `builtin` is available",
    );
    c.check(
        sipx_rooms::valid_name(&body.room.name),
        "room.name",
        "1-64 letters, digits, '-', '_', '.', '@' or '+'",
    );
    if let Some(identity) = &body.room.identity {
        c.check(
            sipx_rooms::valid_name(identity),
            "room.identity",
            "1-64 letters, digits, '-', '_', '.', '@' or '+'",
        );
        c.check(
            sipx_rooms::may_choose_identity(identity),
            "room.identity",
            "phone-… names are SIPx's for phones without an identity of their own",
        );
    }
    if let Some(name) = &body.room.display_name {
        let n = name.chars().count();
        c.check(
            (1..=128).contains(&n) && !name.chars().any(char::is_control),
            "room.display_name",
            "1 to 128 characters",
        );
    }
    if let Some(m) = &body.room.metadata {
        // Characters, as the schema's maxLength counts them.
        c.check(
            m.chars().count() <= 1024,
            "room.metadata",
            "at most 1024 characters",
        );
    }
    c.check(
        body.ring_timeout.is_none_or(|t| (1..=600).contains(&t)),
        "ring_timeout",
        "1 to 600 seconds",
    );
    c.check(
        body.max_duration.is_none_or(|t| (1..=86_400).contains(&t)),
        "max_duration",
        "1 to 86400 seconds",
    );
    if let Some(d) = &body.dtmf_after_answer {
        c.check(
            sipx_call::DtmfSequence::parse(d).is_ok(),
            "dtmf_after_answer",
            "digits, '*', '#', 'A'-'D' and ',' pauses, at most 128",
        );
    }
    if let Some(url) = &body.webhook_url {
        check_webhook_url(url, "webhook_url", c);
    }
}

/// What the room shows for a dialled phone without a display name: the user part of a SIP
/// address (usually the number), a tel URI's number, or the number as dialled.
fn shown_name_of(to: &str) -> String {
    match sipx_sip::msg::Uri::parse(to) {
        Some(sipx_sip::msg::Uri::Tel(t)) => t.number,
        Some(uri) => uri
            .as_sip()
            .and_then(|u| u.user.clone())
            .unwrap_or_else(|| to.to_owned()),
        None => to.to_owned(),
    }
}

/// Dial a phone into a room
///
/// Answers at once with the started call (state `CALLING`), like the first SIPx: SIPx joins the
/// room, places the call, and bridges the audio when the phone answers. Follow the call with
/// `GET /v1/calls/{call_id}`, webhooks or `GET /v1/events`.
#[utoipa::path(post, path = "/v1/calls", tag = "calls", operation_id = "create_call",
    request_body = CreateCall,
    responses(
        (status = 201, description = "The call is started", body = Call),
        (status = 404, description = "No such room, and joins do not create rooms",
            body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The room has a participant of that identity, or a call not ended has it",
            body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field breaks a rule", body = crate::problem::Problem,
            content_type = "application/problem+json"),
        (status = 503, description = "No route or media port for the call now",
            body = crate::problem::Problem, content_type = "application/problem+json"),
    ))]
pub async fn create(
    Tenant(app): Tenant,
    State(state): State<ApiState>,
    ApiJson(body): ApiJson<CreateCall>,
) -> Result<(StatusCode, Json<Call>), ApiError> {
    let mut c = Checker::default();
    check_create(&body, &mut c);
    c.done()?;
    // Said now rather than by a call that rings the phone and then fails for want of a room,
    // or of the identity it was to have there.
    if let Some(rooms) = &state.rooms {
        if !rooms.may_join(&app.id, &body.room.name) {
            return Err(ApiError::NotFound(
                "no such room, and rooms are not created by joining (rooms.auto_create): create it with POST /v1/rooms".to_owned(),
            ));
        }
        if let Some(identity) = &body.room.identity
            && let Ok(room) = rooms.get(app.id.clone(), body.room.name.clone()).await
            && room.participants.iter().any(|p| &p.identity == identity)
        {
            return Err(ApiError::Conflict(format!(
                "{identity} is in the room already: a call takes an identity of its own"
            )));
        }
    }
    let route = match (body.route.trunk_id, body.route.sip_account_id) {
        (Some(t), _) => DialRoute::Trunk(t),
        (None, Some(a)) => DialRoute::SipAccount(a),
        (None, None) => DialRoute::Automatic,
    };
    let identity = body.room.identity;
    let request = DialRequest {
        app_id: app.id.clone(),
        display_name: body
            .room
            .display_name
            .unwrap_or_else(|| shown_name_of(&body.to)),
        to: body.to,
        from: body.from,
        withhold_caller_id: body.withhold_caller_id,
        route,
        room: body.room.name,
        identity: identity.unwrap_or_default(),
        metadata: body.room.metadata,
        ring_timeout: Duration::from_secs(u64::from(
            body.ring_timeout.unwrap_or(DEFAULT_RING_TIMEOUT_S),
        )),
        max_duration: Duration::from_secs(u64::from(
            body.max_duration.unwrap_or(DEFAULT_MAX_DURATION_S),
        )),
        dtmf_after_answer: body.dtmf_after_answer.filter(|d| !d.is_empty()),
        early_media: body.early_media,
        srtp: body.srtp.map(Into::into),
        webhook_url: body.webhook_url,
    };
    // The record as stored at the start: a re-read could already find the call answered.
    let call = calls(&state)?.dial(request).await.map_err(command_error)?;
    tracing::info!(app_id = %app.id, call_id = %call.id, "call dialled through the API");
    Ok((StatusCode::CREATED, Json(call_dto(call))))
}

/// List calls
///
/// Newest last; live and ended calls alike unless `active` says otherwise.
#[utoipa::path(get, path = "/v1/calls", tag = "calls", operation_id = "list_calls",
    params(CallQuery),
    responses((status = 200, description = "One page of calls", body = CallList)))]
pub async fn list(
    Tenant(app): Tenant,
    State(state): State<ApiState>,
    ApiQuery(q): ApiQuery<CallQuery>,
) -> Result<Json<CallList>, ApiError> {
    let page = ListParams {
        limit: q.limit,
        cursor: q.cursor,
    }
    .to_page_request()?;
    // A filter that can match nothing is a mistake to say, not an empty page to give.
    let state_filter = match q.state.as_deref() {
        None => None,
        Some(name) => Some(
            sipx_call::CallStateKind::from_name(name)
                .ok_or_else(|| {
                    ApiError::BadRequest(
                        "state must be CALLING, INCOMING, EARLY, CONNECTING, CONFIRMED or DISCONNECTED"
                            .to_owned(),
                    )
                })?
                .as_str()
                .to_owned(),
        ),
    };
    if q.direction
        .as_deref()
        .is_some_and(|d| !matches!(d, "inbound" | "outbound"))
    {
        return Err(ApiError::BadRequest(
            "direction must be inbound or outbound".to_owned(),
        ));
    }
    let filter = CallFilter {
        state: state_filter,
        direction: q.direction,
        room: q.room,
        ended: q.active.map(|a| !a),
        since_ms: None,
    };
    let page = state.store.list_calls(&app.id, &filter, &page).await?;
    Ok(Json(CallList {
        items: page.items.into_iter().map(call_dto).collect(),
        next_cursor: page.next_after.as_deref().map(encode_cursor),
    }))
}

/// Get a call with its state history
#[utoipa::path(get, path = "/v1/calls/{call_id}", tag = "calls", operation_id = "get_call",
    params(("call_id" = String, Path, description = "Call id")),
    responses(
        (status = 200, description = "The call", body = Call),
        (status = 404, description = "No such call", body = crate::problem::Problem,
            content_type = "application/problem+json"),
    ))]
pub async fn get(
    Tenant(app): Tenant,
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Call>, ApiError> {
    state
        .store
        .get_call(&app.id, &id)
        .await?
        .map(|c| Json(call_dto(c)))
        .ok_or_else(not_found)
}

async fn current(state: &ApiState, app_id: &str, id: &str) -> Result<Call, ApiError> {
    state
        .store
        .get_call(app_id, id)
        .await?
        .map(call_dto)
        .ok_or_else(not_found)
}

/// Hang up
///
/// In any state: a CANCEL before the answer, a BYE after; the phone leaves the room. The call
/// is reported `DISCONNECTED` once the phone's side has settled (at most 32 s).
#[utoipa::path(delete, path = "/v1/calls/{call_id}", tag = "calls", operation_id = "hangup_call",
    params(("call_id" = String, Path, description = "Call id")),
    responses(
        (status = 202, description = "Hanging up; the call as it stands", body = Call),
        (status = 404, description = "No such call", body = crate::problem::Problem,
            content_type = "application/problem+json"),
    ))]
pub async fn hangup(
    Tenant(app): Tenant,
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<String>,
) -> Result<(StatusCode, Json<Call>), ApiError> {
    let call = current(&state, &app.id, &id).await?;
    if !call.done {
        match calls(&state)?.hangup(app.id.clone(), id.clone()).await {
            // Ended meanwhile: hanging up an ended call is done.
            Ok(()) | Err(CallCommandError::NotFound | CallCommandError::Conflict(_)) => {}
            Err(e) => return Err(command_error(e)),
        }
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(current(&state, &app.id, &id).await?),
    ))
}

/// Send DTMF to the phone
///
/// RFC 4733 events on the phone's line, or the keys' tones in its audio when the phone did not
/// negotiate `telephone-event`; paced (100 ms tones, 100 ms gaps; `,` waits 500 ms), after any
/// digits still queued.
#[utoipa::path(post, path = "/v1/calls/{call_id}/dtmf", tag = "calls", operation_id = "send_call_dtmf",
    params(("call_id" = String, Path, description = "Call id")),
    request_body = SendDtmf,
    responses(
        (status = 202, description = "Queued"),
        (status = 409, description = "The call is not answered, has ended, or the phone holds it (its SDP takes no media)",
            body = crate::problem::Problem, content_type = "application/problem+json"),
    ))]
pub async fn send_dtmf(
    Tenant(app): Tenant,
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<SendDtmf>,
) -> Result<StatusCode, ApiError> {
    let mut c = Checker::default();
    c.check(
        !body.digits.is_empty() && sipx_call::DtmfSequence::parse(&body.digits).is_ok(),
        "digits",
        "digits, '*', '#', 'A'-'D' and ',' pauses, 1 to 128",
    );
    c.done()?;
    current(&state, &app.id, &id).await?;
    calls(&state)?
        .send_dtmf(app.id, id, body.digits)
        .await
        .map_err(command_error)?;
    Ok(StatusCode::ACCEPTED)
}

/// Transfer the phone elsewhere (blind or attended)
///
/// Blind (`to`): SIPx sends the phone a REFER to `to`; the phone calls it and reports progress
/// (NOTIFY), which SIPx logs and reports as `call.transfer` events. When the new call is
/// answered, SIPx hangs up its side: `DISCONNECTED 200 Transferred`.
///
/// Attended (`replaces`: another answered call): the REFER asks this call's phone to call the
/// other call's phone with `Replaces` (RFC 3891), so the two phones talk to each other; both
/// calls then end `DISCONNECTED 200 Transferred`.
///
/// A refused or failed transfer leaves the calls as they were.
#[utoipa::path(post, path = "/v1/calls/{call_id}/transfer", tag = "calls", operation_id = "transfer_call",
    params(("call_id" = String, Path, description = "Call id")),
    request_body = TransferCall,
    responses(
        (status = 202, description = "The REFER is on its way"),
        (status = 409, description = "The call is not answered or has ended",
            body = crate::problem::Problem, content_type = "application/problem+json"),
    ))]
pub async fn transfer(
    Tenant(app): Tenant,
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<TransferCall>,
) -> Result<StatusCode, ApiError> {
    let mut c = Checker::default();
    let target = match (body.to, body.replaces) {
        (Some(to), None) => {
            check_to(&to, &mut c);
            TransferTarget::Blind { to }
        }
        (None, Some(other)) => {
            c.check(
                other != id,
                "replaces",
                "another call than the one transferred",
            );
            TransferTarget::Attended { replaces: other }
        }
        _ => {
            c.check(
                false,
                "to",
                "exactly one of `to` (blind) and `replaces` (attended)",
            );
            TransferTarget::Blind { to: String::new() }
        }
    };
    c.done()?;
    current(&state, &app.id, &id).await?;
    if let TransferTarget::Attended { replaces } = &target {
        // Only a call of the same application can be replaced: another tenant's id reads as
        // no call at all.
        if current(&state, &app.id, replaces).await.is_err() {
            let mut c = Checker::default();
            c.check(false, "replaces", "no call of this application has this id");
            c.done()?;
        }
    }
    calls(&state)?
        .transfer(app.id, id, target)
        .await
        .map_err(command_error)?;
    Ok(StatusCode::ACCEPTED)
}

/// Mute or unmute the phone in the room
#[utoipa::path(post, path = "/v1/calls/{call_id}/mute", tag = "calls", operation_id = "mute_call",
    params(("call_id" = String, Path, description = "Call id")),
    request_body = MuteCall,
    responses(
        (status = 200, description = "Done; the call", body = Call),
        (status = 409, description = "The call has ended", body = crate::problem::Problem,
            content_type = "application/problem+json"),
    ))]
pub async fn mute(
    Tenant(app): Tenant,
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<MuteCall>,
) -> Result<Json<Call>, ApiError> {
    current(&state, &app.id, &id).await?;
    calls(&state)?
        .mute(app.id.clone(), id.clone(), body.muted)
        .await
        .map_err(command_error)?;
    Ok(Json(current(&state, &app.id, &id).await?))
}

/// Makes `Accept: text/csv` (or `?format=csv`) choose CSV.
pub(crate) fn wants_csv(headers: &HeaderMap, format: Option<&str>) -> bool {
    format == Some("csv")
        || headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("text/csv"))
}

pub(crate) fn csv_response(body: String, filename: &str) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{filename}\""),
            ),
        ],
        body,
    )
        .into_response()
}
