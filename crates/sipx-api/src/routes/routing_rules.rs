//! `/v1/routing-rules`: where calls arriving through a trunk or from a registered device go,
//! per application. Listed in match order: lowest `priority` first, ties by id.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use sipx_call::routing::{Pattern, is_reject_code};
use sipx_call::{PIN_LEN, Pin};
use sipx_secrets::Redacted;
use sipx_store::{
    MissingRef, RoutingRuleData, RoutingRuleRecord, RuleAction as StoredAction, RuleKey,
    SecretChange,
};
use utoipa::ToSchema;

use crate::auth::Tenant;
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::pagination::{ListParams, encode_cursor};
use crate::problem::{ApiError, Checker};
use crate::state::ApiState;
use crate::time::rfc3339;

const MAX_PRIORITY: u32 = 1_000_000;
const DEFAULT_PRIORITY: u32 = 100;
const DEFAULT_TIMEOUT_MS: u32 = 3000;
const MAX_TIMEOUT_MS: u32 = 10_000;
/// Room prefixes leave room for the unique part or the number in a 64-character name.
const MAX_PREFIX_LEN: usize = 32;
const MAX_NUMBER_LEN: usize = 64;

/// How a number condition compares. `exact` and `prefix` ignore a leading `+` and the visual
/// separators `-` `.` `(` `)` and space on both sides; `pattern` is a regular expression
/// (Rust `regex` syntax: no look-around or back-references) over the raw SIP user part, which
/// must match as a whole.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
#[schema(example = "prefix")]
pub enum MatchKind {
    Exact,
    Prefix,
    Pattern,
}

/// A condition on the called or the calling number (the SIP user part).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"kind": "prefix", "value": "+4930"}))]
pub struct NumberMatch {
    pub kind: MatchKind,
    /// Up to 64 characters for `exact` and `prefix`, 256 for `pattern`.
    #[schema(min_length = 1, max_length = 256)]
    pub value: String,
}

/// What a call must match; every condition set must hold, an empty object matches every call.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"trunk_id": "trunk_01jdx3r5t6y7u8i9o0p1a2s3d4", "called": {"kind": "exact", "value": "+4930123456"}}))]
pub struct RuleMatch {
    /// Only calls through this trunk of the application.
    #[serde(default)]
    pub trunk_id: Option<String>,
    /// Only calls from this SIP account's registered devices.
    #[serde(default)]
    pub sip_account_id: Option<String>,
    /// The called number (Request-URI user part).
    #[serde(default, deserialize_with = "super::object_or_null")]
    pub called: Option<NumberMatch>,
    /// The calling number: as a trunk asserts it (`P-Asserted-Identity`) unless the caller
    /// withholds it, else From's user part.
    #[serde(default, deserialize_with = "super::object_or_null")]
    pub caller: Option<NumberMatch>,
}

fn default_timeout() -> u32 {
    DEFAULT_TIMEOUT_MS
}

/// Where a matching call goes, as written.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
#[schema(example = json!({"type": "fixed_room", "room": "support", "pin": "4711"}))]
pub enum ActionInput {
    /// Join this room; with `pin`, the caller is asked for it by voice prompt and DTMF first.
    FixedRoom {
        #[schema(pattern = r"^[A-Za-z0-9._@+-]{1,64}$")]
        room: String,
        /// 4–12 digits. Write-only. On update, absent keeps the stored PIN (while the action
        /// stays `fixed_room`), null removes it.
        #[serde(default, deserialize_with = "super::present")]
        #[schema(pattern = r"^[0-9]{4,12}$", value_type = Option<String>)]
        pin: Option<Option<String>>,
    },
    /// A new room for each call: the prefix plus a unique suffix.
    RoomPerCaller {
        #[schema(pattern = r"^[A-Za-z0-9._@+-]{0,32}$")]
        prefix: String,
    },
    /// The room named by the digits of the called number, after the prefix.
    RoomByCalledNumber {
        #[serde(default)]
        #[schema(pattern = r"^[A-Za-z0-9._@+-]{0,32}$")]
        prefix: Option<String>,
    },
    /// Ask the URL (POST, signed like every webhook) which room; the caller hears ringing
    /// meanwhile. Without an answer in time: `fallback_room`, else 480.
    Webhook {
        #[schema(max_length = 2048, example = "https://example.com/sipx/route")]
        url: String,
        #[serde(default = "default_timeout")]
        #[schema(minimum = 100, maximum = 10000, default = 3000)]
        timeout_ms: u32,
        #[serde(default)]
        #[schema(pattern = r"^[A-Za-z0-9._@+-]{1,64}$")]
        fallback_room: Option<String>,
    },
    /// Refuse the call with this SIP status (400–699 except 401 and 407).
    Reject {
        #[schema(minimum = 400, maximum = 699, example = 486)]
        sip_code: u16,
        /// Reason phrase; absent: the standard one.
        #[serde(default)]
        #[schema(max_length = 128)]
        reason: Option<String>,
    },
}

/// Where a matching call goes, as stored. A PIN is never returned; `has_pin` says whether one
/// is set.
#[derive(Debug, Serialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
#[schema(example = json!({"type": "fixed_room", "room": "support", "has_pin": true}))]
pub enum RuleAction {
    FixedRoom {
        room: String,
        has_pin: bool,
    },
    RoomPerCaller {
        prefix: String,
    },
    RoomByCalledNumber {
        prefix: Option<String>,
    },
    Webhook {
        url: String,
        timeout_ms: u32,
        fallback_room: Option<String>,
    },
    Reject {
        sip_code: u16,
        reason: Option<String>,
    },
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "rule_01jdx3s0a1b2c3d4e5f6g7h8j9",
    "priority": 10,
    "enabled": true,
    "description": "Support line into the support room, PIN protected",
    "match": {"trunk_id": "trunk_01jdx3r5t6y7u8i9o0p1a2s3d4", "sip_account_id": null,
              "called": {"kind": "exact", "value": "+4930123456"}, "caller": null},
    "action": {"type": "fixed_room", "room": "support", "has_pin": true},
    "created_at": "2026-11-28T10:00:00.000Z",
    "updated_at": "2026-11-28T10:00:00.000Z"
}))]
pub struct RoutingRule {
    pub id: String,
    /// Lower first; ties go to the older rule.
    pub priority: u32,
    pub enabled: bool,
    pub description: Option<String>,
    #[serde(rename = "match")]
    pub matches: RuleMatch,
    pub action: RuleAction,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
}

fn to_number_match(m: sipx_store::NumberMatch) -> NumberMatch {
    NumberMatch {
        kind: match m.kind {
            sipx_store::MatchKind::Exact => MatchKind::Exact,
            sipx_store::MatchKind::Prefix => MatchKind::Prefix,
            sipx_store::MatchKind::Pattern => MatchKind::Pattern,
        },
        value: m.value,
    }
}

fn from_number_match(m: &NumberMatch) -> sipx_store::NumberMatch {
    sipx_store::NumberMatch {
        kind: match m.kind {
            MatchKind::Exact => sipx_store::MatchKind::Exact,
            MatchKind::Prefix => sipx_store::MatchKind::Prefix,
            MatchKind::Pattern => sipx_store::MatchKind::Pattern,
        },
        value: m.value.clone(),
    }
}

impl From<RoutingRuleRecord> for RoutingRule {
    fn from(r: RoutingRuleRecord) -> Self {
        let d = r.data;
        let action = match d.action {
            StoredAction::FixedRoom { room } => RuleAction::FixedRoom {
                room,
                has_pin: r.has_pin,
            },
            StoredAction::RoomPerCaller { prefix } => RuleAction::RoomPerCaller { prefix },
            StoredAction::RoomByCalledNumber { prefix } => {
                RuleAction::RoomByCalledNumber { prefix }
            }
            StoredAction::Webhook {
                url,
                timeout_ms,
                fallback_room,
            } => RuleAction::Webhook {
                url,
                timeout_ms,
                fallback_room,
            },
            StoredAction::Reject { sip_code, reason } => RuleAction::Reject { sip_code, reason },
        };
        RoutingRule {
            id: r.id,
            priority: d.priority,
            enabled: d.enabled,
            description: d.description,
            matches: RuleMatch {
                trunk_id: d.trunk_id,
                sip_account_id: d.sip_account_id,
                called: d.called.map(to_number_match),
                caller: d.caller.map(to_number_match),
            },
            action,
            created_at: rfc3339(r.created_at_ms),
            updated_at: rfc3339(r.updated_at_ms),
        }
    }
}

fn default_priority() -> u32 {
    DEFAULT_PRIORITY
}

fn default_true() -> bool {
    true
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "priority": 10,
    "description": "Support line into the support room, PIN protected",
    "match": {"called": {"kind": "exact", "value": "+4930123456"}},
    "action": {"type": "fixed_room", "room": "support", "pin": "4711"}
}))]
pub struct CreateRoutingRule {
    /// 0–1000000, lower first (default 100).
    #[serde(default = "default_priority")]
    #[schema(minimum = 0, maximum = 1000000, default = 100)]
    pub priority: u32,
    #[serde(default = "default_true")]
    pub enabled: bool,
    #[schema(max_length = 200)]
    pub description: Option<String>,
    /// Absent: every call.
    #[serde(rename = "match", default, deserialize_with = "super::object")]
    pub matches: RuleMatch,
    #[serde(deserialize_with = "super::object")]
    pub action: ActionInput,
}

/// Fields present replace the stored ones; `match` and `action` are replaced as a whole (a
/// `fixed_room` action without `pin` keeps the stored PIN); `"description": null` clears it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"priority": 5, "enabled": false}))]
pub struct UpdateRoutingRule {
    #[serde(default, deserialize_with = "super::not_null")]
    #[schema(minimum = 0, maximum = 1000000, nullable = false)]
    pub priority: Option<u32>,
    #[serde(default, deserialize_with = "super::not_null")]
    #[schema(nullable = false)]
    pub enabled: Option<bool>,
    #[serde(default, deserialize_with = "super::present")]
    #[schema(max_length = 200, value_type = Option<String>)]
    pub description: Option<Option<String>>,
    #[serde(rename = "match", default, deserialize_with = "super::object_not_null")]
    #[schema(nullable = false)]
    pub matches: Option<RuleMatch>,
    #[serde(default, deserialize_with = "super::object_not_null")]
    #[schema(nullable = false)]
    pub action: Option<ActionInput>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"items": [], "next_cursor": null}))]
pub struct RoutingRuleList {
    /// In match order: priority, then id.
    pub items: Vec<RoutingRule>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

fn is_room(s: &str) -> bool {
    sipx_rooms::valid_name(s)
}

fn is_prefix(s: &str) -> bool {
    s.is_empty() || (s.len() <= MAX_PREFIX_LEN && is_room(s))
}

fn is_text(s: &str, max: usize) -> bool {
    s.chars().count() <= max && !s.chars().any(char::is_control)
}

fn check_number(m: &NumberMatch, field: &str, c: &mut Checker) {
    match m.kind {
        MatchKind::Pattern => {
            if let Err(e) = Pattern::new(&m.value) {
                c.check(false, format!("{field}.value"), &e.to_string());
            }
        }
        MatchKind::Exact | MatchKind::Prefix => c.check(
            !m.value.is_empty()
                && m.value.len() <= MAX_NUMBER_LEN
                && m.value.bytes().all(|b| b.is_ascii_graphic() || b == b' '),
            format!("{field}.value"),
            "1 to 64 printable ASCII characters",
        ),
    }
}

fn check_match(m: &RuleMatch, c: &mut Checker) {
    for (id, field) in [
        (&m.trunk_id, "match.trunk_id"),
        (&m.sip_account_id, "match.sip_account_id"),
    ] {
        if let Some(id) = id {
            c.check(
                !id.is_empty() && id.len() <= 64,
                field,
                "an id of this application",
            );
        }
    }
    if let Some(n) = &m.called {
        check_number(n, "match.called", c);
    }
    if let Some(n) = &m.caller {
        check_number(n, "match.caller", c);
    }
}

const ROOM_RULE: &str = "1 to 64 letters, digits and - _ . @ +";
const PREFIX_RULE: &str = "up to 32 letters, digits and - _ . @ +";

/// Checks an action and converts it; the PIN change comes back beside it.
fn check_action(a: &ActionInput, c: &mut Checker) -> (StoredAction, SecretChange) {
    match a {
        ActionInput::FixedRoom { room, pin } => {
            c.check(is_room(room), "action.room", ROOM_RULE);
            let change = match pin {
                None => SecretChange::Keep,
                Some(None) => SecretChange::Clear,
                Some(Some(p)) => {
                    c.check(
                        Pin::new(p).is_some(),
                        "action.pin",
                        &format!("{} to {} digits", PIN_LEN.start(), PIN_LEN.end()),
                    );
                    SecretChange::Set(Redacted::new(p.clone()))
                }
            };
            (StoredAction::FixedRoom { room: room.clone() }, change)
        }
        ActionInput::RoomPerCaller { prefix } => {
            c.check(is_prefix(prefix), "action.prefix", PREFIX_RULE);
            (
                StoredAction::RoomPerCaller {
                    prefix: prefix.clone(),
                },
                SecretChange::Clear,
            )
        }
        ActionInput::RoomByCalledNumber { prefix } => {
            c.check(
                prefix.as_deref().is_none_or(is_prefix),
                "action.prefix",
                PREFIX_RULE,
            );
            (
                StoredAction::RoomByCalledNumber {
                    prefix: prefix.clone().filter(|p| !p.is_empty()),
                },
                SecretChange::Clear,
            )
        }
        ActionInput::Webhook {
            url,
            timeout_ms,
            fallback_room,
        } => {
            // The rules of every other webhook URL (no credentials, no fragment), and stored
            // as they are stored.
            let url = match super::webhooks::webhook_url(url) {
                Ok(normalised) => normalised,
                Err(why) => {
                    c.check(false, "action.url", why);
                    url.clone()
                }
            };
            c.check(
                (100..=MAX_TIMEOUT_MS).contains(timeout_ms),
                "action.timeout_ms",
                "must be 100 to 10000",
            );
            if let Some(room) = fallback_room {
                c.check(is_room(room), "action.fallback_room", ROOM_RULE);
            }
            (
                StoredAction::Webhook {
                    url,
                    timeout_ms: *timeout_ms,
                    fallback_room: fallback_room.clone(),
                },
                SecretChange::Clear,
            )
        }
        ActionInput::Reject { sip_code, reason } => {
            c.check(
                is_reject_code(*sip_code),
                "action.sip_code",
                "a SIP status 400 to 699, except 401 and 407",
            );
            if let Some(r) = reason {
                c.check(
                    !r.is_empty() && is_text(r, 128),
                    "action.reason",
                    "1 to 128 characters without control characters",
                );
            }
            (
                StoredAction::Reject {
                    sip_code: *sip_code,
                    reason: reason.clone(),
                },
                SecretChange::Clear,
            )
        }
    }
}

fn check_priority(p: u32, c: &mut Checker) {
    c.check(p <= MAX_PRIORITY, "priority", "must be 0 to 1000000");
}

fn check_description(d: Option<&str>, c: &mut Checker) {
    if let Some(d) = d {
        c.check(
            is_text(d, 200),
            "description",
            "at most 200 characters without control characters",
        );
    }
}

fn not_found() -> ApiError {
    ApiError::NotFound("no such routing rule".to_owned())
}

fn missing(which: MissingRef) -> ApiError {
    match which {
        MissingRef::Trunk => ApiError::invalid_field(
            "match.trunk_id",
            "no trunk with this id in this application",
        ),
        MissingRef::SipAccount => ApiError::invalid_field(
            "match.sip_account_id",
            "no SIP account with this id in this application",
        ),
    }
}

/// Create a routing rule
///
/// Calls arriving through a trunk or from a registered device are matched against the
/// application's enabled rules, lowest `priority` first; the first match decides. No match:
/// the server's `routing.no_rule_status` (404 or 480).
#[utoipa::path(post, path = "/v1/routing-rules", tag = "routing-rules",
    operation_id = "create_routing_rule",
    request_body = CreateRoutingRule,
    responses((status = 201, description = "Created", body = RoutingRule)))]
pub async fn create(
    Tenant(app): Tenant,
    State(state): State<ApiState>,
    ApiJson(body): ApiJson<CreateRoutingRule>,
) -> Result<(StatusCode, Json<RoutingRule>), ApiError> {
    let mut c = Checker::default();
    check_priority(body.priority, &mut c);
    check_description(body.description.as_deref(), &mut c);
    check_match(&body.matches, &mut c);
    let (action, pin) = check_action(&body.action, &mut c);
    c.done()?;
    let data = RoutingRuleData {
        priority: body.priority,
        enabled: body.enabled,
        description: body.description,
        trunk_id: body.matches.trunk_id.clone(),
        sip_account_id: body.matches.sip_account_id.clone(),
        called: body.matches.called.as_ref().map(from_number_match),
        caller: body.matches.caller.as_ref().map(from_number_match),
        action,
    };
    let rule = state
        .store
        .create_routing_rule(&app.id, &data, &pin)
        .await?
        .map_err(missing)?;
    tracing::info!(app_id = %app.id, rule_id = %rule.id, "routing rule created");
    Ok((StatusCode::CREATED, Json(rule.into())))
}

/// List routing rules
///
/// In match order: `priority`, then id.
#[utoipa::path(get, path = "/v1/routing-rules", tag = "routing-rules",
    operation_id = "list_routing_rules",
    params(ListParams),
    responses((status = 200, description = "One page of routing rules", body = RoutingRuleList)))]
pub async fn list(
    Tenant(app): Tenant,
    State(state): State<ApiState>,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<RoutingRuleList>, ApiError> {
    let page = params.to_page_request()?;
    let after = page
        .after
        .as_deref()
        .map(str::parse::<RuleKey>)
        .transpose()
        .map_err(|()| ApiError::BadRequest("cursor is not one this API issued".to_owned()))?;
    let page = state
        .store
        .list_routing_rules(&app.id, after.as_ref(), page.limit)
        .await?;
    Ok(Json(RoutingRuleList {
        items: page.items.into_iter().map(RoutingRule::from).collect(),
        next_cursor: page.next_after.as_deref().map(encode_cursor),
    }))
}

/// Get a routing rule
#[utoipa::path(get, path = "/v1/routing-rules/{rule_id}", tag = "routing-rules",
    operation_id = "get_routing_rule",
    params(("rule_id" = String, Path, description = "Routing rule id")),
    responses((status = 200, description = "The routing rule", body = RoutingRule)))]
pub async fn get(
    Tenant(app): Tenant,
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<RoutingRule>, ApiError> {
    state
        .store
        .get_routing_rule(&app.id, &id)
        .await?
        .map(|r| Json(r.into()))
        .ok_or_else(not_found)
}

/// Update a routing rule
#[utoipa::path(patch, path = "/v1/routing-rules/{rule_id}", tag = "routing-rules",
    operation_id = "update_routing_rule",
    params(("rule_id" = String, Path, description = "Routing rule id")),
    request_body = UpdateRoutingRule,
    responses((status = 200, description = "The updated routing rule", body = RoutingRule)))]
pub async fn update(
    Tenant(app): Tenant,
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<UpdateRoutingRule>,
) -> Result<Json<RoutingRule>, ApiError> {
    let current = state
        .store
        .get_routing_rule(&app.id, &id)
        .await?
        .ok_or_else(not_found)?;
    let mut data = current.data;
    let mut c = Checker::default();
    if let Some(p) = body.priority {
        check_priority(p, &mut c);
        data.priority = p;
    }
    if let Some(enabled) = body.enabled {
        data.enabled = enabled;
    }
    if let Some(d) = body.description {
        check_description(d.as_deref(), &mut c);
        data.description = d;
    }
    if let Some(m) = &body.matches {
        check_match(m, &mut c);
        data.trunk_id = m.trunk_id.clone();
        data.sip_account_id = m.sip_account_id.clone();
        data.called = m.called.as_ref().map(from_number_match);
        data.caller = m.caller.as_ref().map(from_number_match);
    }
    let mut pin = SecretChange::Keep;
    if let Some(a) = &body.action {
        (data.action, pin) = check_action(a, &mut c);
    }
    c.done()?;
    state
        .store
        .update_routing_rule(&app.id, &id, &data, &pin)
        .await?
        .ok_or_else(not_found)?
        .map(|r| Json(r.into()))
        .map_err(missing)
}

/// Delete a routing rule
#[utoipa::path(delete, path = "/v1/routing-rules/{rule_id}", tag = "routing-rules",
    operation_id = "delete_routing_rule",
    params(("rule_id" = String, Path, description = "Routing rule id")),
    responses((status = 204, description = "Deleted")))]
pub async fn delete(
    Tenant(app): Tenant,
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    if state.store.delete_routing_rule(&app.id, &id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found())
    }
}
