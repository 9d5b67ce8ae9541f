//! `/v1/sip-accounts`: credentials that gateways and phones REGISTER with, per application.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use sipx_secrets::Redacted;
use sipx_store::{NewSipAccount, SipAccountRecord, SipAccountUpdate};
use utoipa::ToSchema;

use super::codecs::{self, CodecName};
use super::number_rules::{self, NumberRule};
use super::srtp::SrtpPolicy;
use crate::auth::Tenant;
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::pagination::{ListParams, encode_cursor};
use crate::problem::{ApiError, Checker, FieldError};
use crate::state::ApiState;
use crate::time::rfc3339;

const USERNAME_PATTERN: &str = r"^[A-Za-z0-9._~+-]{1,64}$";
const MAX_CIDRS: usize = 32;

/// A SIP account. Its password is write-only: never returned.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "sipacct_01jdx3p0a1b2c3d4e5f6g7h8j9",
    "username": "gw-office-1",
    "allowed_cidrs": ["203.0.113.0/24"],
    "max_bindings": 5,
    "enabled": true,
    "description": "SIM gateway, 4 ports",
    "srtp": null,
    "dial_request_uri": "number",
    "number_rules": [{"prefix": "0", "replace_with": "+49"}],
    "codecs": null,
    "created_at": "2026-11-28T10:00:00.000Z",
    "updated_at": "2026-11-28T10:00:00.000Z"
}))]
pub struct SipAccount {
    pub id: String,
    /// The SIP user name to REGISTER with. Unique across the SIPx instance.
    pub username: String,
    /// Source networks allowed to register; empty means any.
    pub allowed_cidrs: Vec<String>,
    /// How many contacts may be registered at once. A device registering a new contact
    /// beyond it takes the place of the one that lapses first (a rebooted device leaves its
    /// old contact behind); only a REGISTER naming more contacts by itself is refused.
    pub max_bindings: u32,
    pub enabled: bool,
    pub description: Option<String>,
    /// SRTP policy of calls from this account's registered devices; null: the server's
    /// `media.srtp`.
    pub srtp: Option<SrtpPolicy>,
    pub dial_request_uri: DialRequestUri,
    /// Rewrites of the called and calling numbers of its devices' calls, into the
    /// application's form (first matching rule wins), before the routing rules and webhooks
    /// see them.
    pub number_rules: Vec<NumberRule>,
    /// Codecs of its devices' calls, in order of preference; null: the server's
    /// `media.codecs`.
    pub codecs: Option<Vec<CodecName>>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
}

impl From<SipAccountRecord> for SipAccount {
    fn from(r: SipAccountRecord) -> Self {
        SipAccount {
            id: r.id,
            username: r.username,
            allowed_cidrs: r.allowed_cidrs,
            max_bindings: r.max_bindings,
            enabled: r.enabled,
            description: r.description,
            srtp: r.srtp.map(SrtpPolicy::from),
            dial_request_uri: if r.dial_request_uri == "contact" {
                DialRequestUri::Contact
            } else {
                DialRequestUri::Number
            },
            number_rules: number_rules::from_stored(&r.number_rules),
            codecs: r.codecs.as_deref().map(codecs::from_stored),
            created_at: rfc3339(r.created_at_ms),
            updated_at: rfc3339(r.updated_at_ms),
        }
    }
}

/// How calls dialled out through the account's registered device address it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(example = "number")]
pub enum DialRequestUri {
    /// The registered contact with the dialled number as its user part: what SIM gateways
    /// read the number to dial from.
    #[default]
    Number,
    /// The registered contact unchanged, the number in `To` only (RFC 3261 §16.5
    /// retargeting): for phones and softphones that accept only their own contact.
    Contact,
}

impl DialRequestUri {
    fn as_str(self) -> &'static str {
        match self {
            DialRequestUri::Number => "number",
            DialRequestUri::Contact => "contact",
        }
    }
}

fn default_max_bindings() -> u32 {
    5
}

fn default_true() -> bool {
    true
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "username": "gw-office-1",
    "password": "correct-horse-battery",
    "allowed_cidrs": ["203.0.113.0/24"],
    "max_bindings": 5
}))]
pub struct CreateSipAccount {
    /// Letters, digits and `._~+-`, 1–64 characters.
    #[schema(pattern = r"^[A-Za-z0-9._~+-]{1,64}$", min_length = 1, max_length = 64)]
    pub username: String,
    /// 8–128 characters, no control characters. Write-only.
    #[schema(
        min_length = 8,
        max_length = 128,
        pattern = r"^[^\x00-\x1f\x7f]{8,128}$"
    )]
    pub password: String,
    /// IPv4/IPv6 networks (`203.0.113.0/24`) or addresses; empty or absent: any source.
    #[serde(default)]
    #[schema(max_items = 32)]
    pub allowed_cidrs: Vec<String>,
    /// 1–100, default 5.
    #[serde(default = "default_max_bindings")]
    #[schema(minimum = 1, maximum = 100, default = 5)]
    pub max_bindings: u32,
    #[serde(default = "default_true")]
    #[schema(default = true)]
    pub enabled: bool,
    /// Up to 200 characters.
    #[schema(max_length = 200)]
    pub description: Option<String>,
    /// SRTP policy of calls from this account's registered devices; absent or null: the
    /// server's `media.srtp`.
    #[serde(default)]
    pub srtp: Option<SrtpPolicy>,
    /// How dial-outs through this account address its device; `number` by default.
    #[serde(default)]
    pub dial_request_uri: DialRequestUri,
    /// Rewrites of the called and calling numbers of its devices' calls (first matching rule
    /// wins): a SIM gateway that passes on `0151…` with `[{"prefix": "0", "replace_with":
    /// "+49"}]` gives the routing rules `+49151…`.
    #[serde(default)]
    #[schema(max_items = 32)]
    pub number_rules: Vec<NumberRule>,
    /// Codecs of its devices' calls, in order of preference (a GSM gateway: `["PCMA"]`);
    /// absent or null: the server's `media.codecs`.
    #[serde(default)]
    #[schema(min_items = 1, max_items = 5)]
    pub codecs: Option<Vec<CodecName>>,
}

/// Absent fields are left unchanged; `"description": null` clears the description, and
/// `"srtp": null` and `"codecs": null` return the account to the server's SRTP policy and
/// codecs.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"max_bindings": 2, "enabled": false}))]
pub struct UpdateSipAccount {
    #[serde(default, deserialize_with = "super::not_null")]
    #[schema(
        min_length = 8,
        max_length = 128,
        pattern = r"^[^\x00-\x1f\x7f]{8,128}$",
        nullable = false
    )]
    pub password: Option<String>,
    #[serde(default, deserialize_with = "super::not_null")]
    #[schema(max_items = 32, nullable = false)]
    pub allowed_cidrs: Option<Vec<String>>,
    #[serde(default, deserialize_with = "super::not_null")]
    #[schema(minimum = 1, maximum = 100, nullable = false)]
    pub max_bindings: Option<u32>,
    #[serde(default, deserialize_with = "super::not_null")]
    #[schema(nullable = false)]
    pub enabled: Option<bool>,
    #[serde(default, deserialize_with = "super::present")]
    #[schema(max_length = 200)]
    pub description: Option<Option<String>>,
    #[serde(default, deserialize_with = "super::present")]
    pub srtp: Option<Option<SrtpPolicy>>,
    #[serde(default, deserialize_with = "super::not_null")]
    #[schema(nullable = false)]
    pub dial_request_uri: Option<DialRequestUri>,
    /// Replaces the list; `[]` removes every rule.
    #[serde(default, deserialize_with = "super::not_null")]
    #[schema(max_items = 32, nullable = false)]
    pub number_rules: Option<Vec<NumberRule>>,
    /// `null` returns the account to the server's `media.codecs`.
    #[serde(default, deserialize_with = "super::present")]
    #[schema(min_items = 1, max_items = 5)]
    pub codecs: Option<Option<Vec<CodecName>>>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "items": [{
        "id": "sipacct_01jdx3p0a1b2c3d4e5f6g7h8j9",
        "username": "gw-office-1",
        "allowed_cidrs": ["203.0.113.0/24"],
        "max_bindings": 5,
        "enabled": true,
        "description": "SIM gateway, 4 ports",
        "srtp": null,
        "dial_request_uri": "number",
        "number_rules": [],
        "codecs": null,
        "created_at": "2026-11-28T10:00:00.000Z",
        "updated_at": "2026-11-28T10:00:00.000Z"
    }],
    "next_cursor": "c2lwYWNjdF8wMWpkeDNwMGExYjJjM2Q0ZTVmNmc3aDhqOQ"
}))]
pub struct SipAccountList {
    pub items: Vec<SipAccount>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

fn check_username(username: &str, errors: &mut Vec<FieldError>) {
    let ok = (1..=64).contains(&username.len())
        && username
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._~+-".contains(&b));
    if !ok {
        errors.push(FieldError {
            field: "username".to_owned(),
            message: format!("must match {USERNAME_PATTERN}"),
        });
    }
}

fn check_password(password: &str, errors: &mut Vec<FieldError>) {
    let n = password.chars().count();
    if !(8..=128).contains(&n) || password.chars().any(|c| c.is_ascii_control()) {
        errors.push(FieldError {
            field: "password".to_owned(),
            message: "must be 8 to 128 characters without control characters".to_owned(),
        });
    }
}

fn check_max_bindings(n: u32, errors: &mut Vec<FieldError>) {
    if !(1..=100).contains(&n) {
        errors.push(FieldError {
            field: "max_bindings".to_owned(),
            message: "must be between 1 and 100".to_owned(),
        });
    }
}

fn check_description(d: Option<&str>, errors: &mut Vec<FieldError>) {
    if d.is_some_and(|d| d.chars().count() > 200) {
        errors.push(FieldError {
            field: "description".to_owned(),
            message: "must be at most 200 characters".to_owned(),
        });
    }
}

/// Parses and canonicalises networks; a bare address is a host network.
fn normalise_cidrs(cidrs: &[String], errors: &mut Vec<FieldError>) -> Vec<String> {
    if cidrs.len() > MAX_CIDRS {
        errors.push(FieldError {
            field: "allowed_cidrs".to_owned(),
            message: format!("at most {MAX_CIDRS} networks"),
        });
    }
    let mut out = Vec::with_capacity(cidrs.len());
    for (i, c) in cidrs.iter().enumerate() {
        let parsed = super::sip_claims::parse_net(c);
        match parsed {
            Some(net) => out.push(net.trunc().to_string()),
            None => errors.push(FieldError {
                field: format!("allowed_cidrs[{i}]"),
                message: "not an IP network (203.0.113.0/24) or address".to_owned(),
            }),
        }
    }
    out
}

/// What is wrong with the number rules and codecs given (either may be left out).
fn lists_errors(
    rules: Option<&[NumberRule]>,
    list: Option<&[CodecName]>,
    g729: bool,
) -> Vec<FieldError> {
    let mut c = Checker::default();
    if let Some(rules) = rules {
        number_rules::check(rules, "number_rules", &mut c);
    }
    if let Some(list) = list {
        codecs::check(list, g729, "codecs", &mut c);
    }
    c.into_errors()
}

fn refuse_if_any(errors: Vec<FieldError>) -> Result<(), ApiError> {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Invalid(
            "the request body breaks a rule".to_owned(),
            errors,
        ))
    }
}

fn not_found() -> ApiError {
    ApiError::NotFound("no such SIP account".to_owned())
}

/// Create a SIP account
///
/// A gateway or phone registers to SIPx with this user name and password (digest).
#[utoipa::path(post, path = "/v1/sip-accounts", tag = "sip-accounts",
    operation_id = "create_sip_account",
    request_body = CreateSipAccount,
    responses(
        (status = 201, description = "Created", body = SipAccount),
        (status = 409, description = "The user name is taken", body = crate::problem::Problem,
            content_type = "application/problem+json"),
    ))]
pub async fn create(
    Tenant(app): Tenant,
    State(state): State<ApiState>,
    ApiJson(body): ApiJson<CreateSipAccount>,
) -> Result<(StatusCode, Json<SipAccount>), ApiError> {
    let mut errors = Vec::new();
    check_username(&body.username, &mut errors);
    check_password(&body.password, &mut errors);
    check_max_bindings(body.max_bindings, &mut errors);
    check_description(body.description.as_deref(), &mut errors);
    let allowed_cidrs = normalise_cidrs(&body.allowed_cidrs, &mut errors);
    errors.extend(lists_errors(
        Some(&body.number_rules),
        body.codecs.as_deref(),
        state.g729,
    ));
    refuse_if_any(errors)?;
    // Nor another trunk's inbound user or an application's key, in any application.
    let claim = super::sip_claims::Claim {
        app_id: &app.id,
        owner_id: None,
        username: Some(&body.username),
        networks: &[],
    };
    let _claimed = super::sip_claims::refuse_taken(&state, claim).await?;
    let new = NewSipAccount {
        username: body.username,
        password: Redacted::new(body.password),
        allowed_cidrs,
        max_bindings: body.max_bindings,
        enabled: body.enabled,
        description: body.description,
        srtp: body.srtp.map(Into::into),
        dial_request_uri: body.dial_request_uri.as_str().to_owned(),
        number_rules: number_rules::to_stored(&body.number_rules),
        codecs: body.codecs.as_deref().map(codecs::to_stored),
    };
    let account = state.store.create_sip_account(&app.id, &new).await?;
    tracing::info!(app_id = %app.id, sip_account_id = %account.id, "SIP account created");
    Ok((StatusCode::CREATED, Json(account.into())))
}

/// List SIP accounts
#[utoipa::path(get, path = "/v1/sip-accounts", tag = "sip-accounts",
    operation_id = "list_sip_accounts",
    params(ListParams),
    responses((status = 200, description = "One page of SIP accounts", body = SipAccountList)))]
pub async fn list(
    Tenant(app): Tenant,
    State(state): State<ApiState>,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<SipAccountList>, ApiError> {
    let page = state
        .store
        .list_sip_accounts(&app.id, &params.to_page_request()?)
        .await?;
    Ok(Json(SipAccountList {
        items: page.items.into_iter().map(SipAccount::from).collect(),
        next_cursor: page.next_after.as_deref().map(encode_cursor),
    }))
}

/// Get a SIP account
#[utoipa::path(get, path = "/v1/sip-accounts/{sip_account_id}", tag = "sip-accounts",
    operation_id = "get_sip_account",
    params(("sip_account_id" = String, Path, description = "SIP account id")),
    responses((status = 200, description = "The SIP account", body = SipAccount)))]
pub async fn get(
    Tenant(app): Tenant,
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<SipAccount>, ApiError> {
    state
        .store
        .get_sip_account(&app.id, &id)
        .await?
        .map(|a| Json(a.into()))
        .ok_or_else(not_found)
}

/// Update a SIP account
#[utoipa::path(patch, path = "/v1/sip-accounts/{sip_account_id}", tag = "sip-accounts",
    operation_id = "update_sip_account",
    params(("sip_account_id" = String, Path, description = "SIP account id")),
    request_body = UpdateSipAccount,
    responses((status = 200, description = "The updated SIP account", body = SipAccount)))]
pub async fn update(
    Tenant(app): Tenant,
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<UpdateSipAccount>,
) -> Result<Json<SipAccount>, ApiError> {
    let mut errors = Vec::new();
    if let Some(p) = &body.password {
        check_password(p, &mut errors);
    }
    if let Some(n) = body.max_bindings {
        check_max_bindings(n, &mut errors);
    }
    if let Some(d) = &body.description {
        check_description(d.as_deref(), &mut errors);
    }
    let allowed_cidrs = body
        .allowed_cidrs
        .as_deref()
        .map(|c| normalise_cidrs(c, &mut errors));
    errors.extend(lists_errors(
        body.number_rules.as_deref(),
        body.codecs.as_ref().and_then(Option::as_deref),
        state.g729,
    ));
    refuse_if_any(errors)?;
    let update = SipAccountUpdate {
        password: body.password.map(Redacted::new),
        allowed_cidrs,
        max_bindings: body.max_bindings,
        enabled: body.enabled,
        description: body.description,
        srtp: body.srtp.map(|p| p.map(Into::into)),
        dial_request_uri: body.dial_request_uri.map(|d| d.as_str().to_owned()),
        number_rules: body.number_rules.as_deref().map(number_rules::to_stored),
        codecs: body
            .codecs
            .as_ref()
            .map(|c| c.as_deref().map(codecs::to_stored)),
    };
    state
        .store
        .update_sip_account(&app.id, &id, &update)
        .await?
        .map(|a| Json(a.into()))
        .ok_or_else(not_found)
}

/// Delete a SIP account
///
/// Its registrations end with it.
#[utoipa::path(delete, path = "/v1/sip-accounts/{sip_account_id}", tag = "sip-accounts",
    operation_id = "delete_sip_account",
    params(("sip_account_id" = String, Path, description = "SIP account id")),
    responses((status = 204, description = "Deleted")))]
pub async fn delete(
    Tenant(app): Tenant,
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    if state.store.delete_sip_account(&app.id, &id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found())
    }
}
