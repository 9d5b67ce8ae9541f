//! `/v1/trunks`: SIP trunks to and from providers, per application.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use sipx_secrets::Redacted;
use sipx_store::{SecretChange, TrunkData, TrunkRecord};
use utoipa::ToSchema;

use super::codecs::{self, CodecName};
use super::number_rules::{self, NumberRule, is_number};
use super::srtp::SrtpPolicy;
use crate::auth::Tenant;
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::pagination::{ListParams, encode_cursor};
use crate::problem::{ApiError, Checker};
use crate::state::ApiState;
use crate::time::rfc3339;

#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
#[schema(example = "udp")]
pub enum TrunkTransport {
    #[default]
    Udp,
    Tcp,
    Tls,
}

impl TrunkTransport {
    fn as_str(self) -> &'static str {
        match self {
            TrunkTransport::Udp => "udp",
            TrunkTransport::Tcp => "tcp",
            TrunkTransport::Tls => "tls",
        }
    }

    fn parse(s: &str) -> TrunkTransport {
        match s {
            "tcp" => TrunkTransport::Tcp,
            "tls" => TrunkTransport::Tls,
            _ => TrunkTransport::Udp,
        }
    }
}

/// Where and how calls go out.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "host": "sip.carrier-a.example", "port": 5060, "transport": "udp", "username": "4930123456",
    "auth_username": null, "has_password": true, "from_domain": null, "register": true,
    "register_expires": 600, "caller_id": "+4930123456",
    "number_rules": [{"prefix": "0", "replace_with": "+49"}], "max_concurrent_calls": 10
}))]
pub struct TrunkOutbound {
    pub host: String,
    pub port: Option<u16>,
    pub transport: TrunkTransport,
    pub username: Option<String>,
    /// Digest user name when it differs from `username`.
    pub auth_username: Option<String>,
    /// Whether a password is stored (it is never returned).
    pub has_password: bool,
    /// Host used in From for outgoing calls (default: the provider host).
    pub from_domain: Option<String>,
    /// SIPx registers to the provider and keeps the registration fresh.
    pub register: bool,
    pub register_expires: u32,
    /// Number presented to the callee when the call does not set one.
    pub caller_id: Option<String>,
    pub number_rules: Vec<NumberRule>,
    pub max_concurrent_calls: Option<u32>,
}

/// Where SIPx's registration to the provider stands.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"state": "registered", "last_status": 200, "last_reason": "OK", "expires_at": "2026-11-28T11:00:00.000Z"}))]
pub struct TrunkRegistration {
    /// `registering`, `registered`, `failed` or `idle`.
    pub state: String,
    /// The provider's last answer.
    pub last_status: Option<u16>,
    pub last_reason: Option<String>,
    #[schema(format = DateTime)]
    pub expires_at: Option<String>,
}

/// Who may send calls in through this trunk.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"allowed_cidrs": ["198.51.100.0/24"], "username": null, "has_password": false, "numbers": ["+4930123456"],
    "number_rules": [{"prefix": "00", "replace_with": "+"}, {"prefix": "0", "replace_with": "+49"}]}))]
pub struct TrunkInbound {
    /// Source networks accepted; empty with no username: inbound disabled.
    pub allowed_cidrs: Vec<String>,
    /// Digest user name the provider must authenticate with, when set.
    pub username: Option<String>,
    pub has_password: bool,
    /// Numbers (DIDs) the trunk may reach, in the form `number_rules` give; empty: any. A
    /// call through it to anything else (a room by name, the echo test) gets 404.
    pub numbers: Vec<String>,
    /// Rewrites of the called and calling numbers of calls in, into the application's form
    /// (first matching rule wins), before the DIDs, routing rules and webhooks see them.
    pub number_rules: Vec<NumberRule>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "trunk_01jdx3r5t6y7u8i9o0p1a2s3d4",
    "name": "Carrier A",
    "enabled": true,
    "registration": {"state": "registered", "last_status": 200, "last_reason": "OK", "expires_at": "2026-11-28T11:00:00.000Z"},
    "outbound": {
        "host": "sip.carrier-a.example", "port": 5060, "transport": "udp", "username": "4930123456",
        "auth_username": null, "has_password": true, "from_domain": null, "register": true,
        "register_expires": 600, "caller_id": "+4930123456",
        "number_rules": [{"prefix": "0", "replace_with": "+49"}], "max_concurrent_calls": 10
    },
    "inbound": {"allowed_cidrs": ["198.51.100.0/24"], "username": null, "has_password": false, "numbers": ["+4930123456"],
        "number_rules": [{"prefix": "00", "replace_with": "+"}, {"prefix": "0", "replace_with": "+49"}]},
    "srtp": "required",
    "codecs": ["PCMA", "G722"],
    "created_at": "2026-11-28T10:00:00.000Z",
    "updated_at": "2026-11-28T10:00:00.000Z"
}))]
pub struct Trunk {
    pub id: String,
    pub name: String,
    pub enabled: bool,
    /// SIPx's registration to the provider, when `outbound.register` is on and the SIP
    /// service has tried.
    pub registration: Option<TrunkRegistration>,
    /// Absent for an inbound-only trunk.
    pub outbound: Option<TrunkOutbound>,
    pub inbound: TrunkInbound,
    /// SRTP policy of calls through this trunk, in and out; null: the server's `media.srtp`.
    pub srtp: Option<SrtpPolicy>,
    /// Codecs of calls through this trunk, in and out, in order of preference; null: the
    /// server's `media.codecs`.
    pub codecs: Option<Vec<CodecName>>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
}

fn to_dto(r: TrunkRecord, state: &ApiState) -> Trunk {
    let registration = state
        .runtime
        .trunk_registration(&r.id)
        .map(|s| TrunkRegistration {
            state: s.state.to_owned(),
            last_status: s.last_status,
            last_reason: s.last_reason,
            expires_at: s
                .expires_at
                .map(|t| rfc3339(i64::try_from(t).unwrap_or(0).saturating_mul(1000))),
        });
    Trunk {
        registration,
        ..Trunk::from(r)
    }
}

impl From<TrunkRecord> for Trunk {
    fn from(r: TrunkRecord) -> Self {
        let d = r.data;
        let rules = number_rules::from_stored(&d.number_rules);
        let inbound_rules = number_rules::from_stored(&d.inbound_number_rules);
        Trunk {
            id: r.id,
            name: d.name,
            enabled: d.enabled,
            registration: None,
            outbound: d.host.map(|host| TrunkOutbound {
                host,
                port: d.port,
                transport: TrunkTransport::parse(&d.transport),
                username: d.username,
                auth_username: d.auth_username,
                has_password: r.has_password,
                from_domain: d.from_domain,
                register: d.register,
                register_expires: d.register_expires,
                caller_id: d.caller_id,
                number_rules: rules,
                max_concurrent_calls: d.max_concurrent_calls,
            }),
            inbound: TrunkInbound {
                allowed_cidrs: d.inbound_cidrs,
                username: d.inbound_username,
                has_password: r.has_inbound_password,
                numbers: d.inbound_numbers,
                number_rules: inbound_rules,
            },
            srtp: d.srtp.map(SrtpPolicy::from),
            codecs: d.codecs.as_deref().map(codecs::from_stored),
            created_at: rfc3339(r.created_at_ms),
            updated_at: rfc3339(r.updated_at_ms),
        }
    }
}

fn default_expires() -> u32 {
    3600
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"host": "sip.carrier-a.example", "username": "4930123456", "password": "s3cret-pass", "register": true, "register_expires": 600}))]
pub struct OutboundInput {
    /// Provider host name or IP address (no scheme, no port; an IPv6 address with or without
    /// brackets, kept with them).
    #[schema(min_length = 1, max_length = 253)]
    pub host: String,
    #[schema(minimum = 1, maximum = 65535)]
    pub port: Option<u16>,
    #[serde(default)]
    pub transport: TrunkTransport,
    #[schema(max_length = 128)]
    pub username: Option<String>,
    #[schema(max_length = 128)]
    pub auth_username: Option<String>,
    /// Write-only. Absent on update: the stored one is kept.
    #[schema(max_length = 128)]
    pub password: Option<String>,
    #[schema(max_length = 253)]
    pub from_domain: Option<String>,
    #[serde(default)]
    pub register: bool,
    /// 30–86400 seconds (default 3600).
    #[serde(default = "default_expires")]
    #[schema(minimum = 30, maximum = 86400, default = 3600)]
    pub register_expires: u32,
    #[schema(pattern = r"^\+?[0-9*#]{1,32}$")]
    pub caller_id: Option<String>,
    #[serde(default)]
    #[schema(max_items = 32)]
    pub number_rules: Vec<NumberRule>,
    #[schema(minimum = 1, maximum = 100000)]
    pub max_concurrent_calls: Option<u32>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"allowed_cidrs": ["198.51.100.0/24"], "numbers": ["+4930123456"],
    "number_rules": [{"prefix": "00", "replace_with": "+"}, {"prefix": "0", "replace_with": "+49"}]}))]
pub struct InboundInput {
    /// Source networks of the carrier's calls (CIDR, or single addresses): each at most an
    /// IPv4 /16 or an IPv6 /32, and none overlapping another application's.
    #[serde(default)]
    #[schema(max_items = 32)]
    pub allowed_cidrs: Vec<String>,
    #[schema(max_length = 128)]
    pub username: Option<String>,
    /// Write-only. Absent on update: the stored one is kept.
    #[schema(max_length = 128)]
    pub password: Option<String>,
    /// Numbers (DIDs) the trunk may reach, matched on the Request-URI's or To's number
    /// (`+`, spaces, dashes, dots and brackets aside); empty: any.
    #[serde(default)]
    #[schema(max_items = 256)]
    pub numbers: Vec<String>,
    /// Rewrites of the called and calling numbers of calls in (first matching rule wins):
    /// `[{"prefix": "00", "replace_with": "+"}, {"prefix": "0", "replace_with": "+49"}]` turns
    /// a German carrier's `030123456` and `004930123456` into `+4930123456`. `numbers`, the
    /// routing rules and the routing webhook see the rewritten numbers.
    #[serde(default)]
    #[schema(max_items = 32)]
    pub number_rules: Vec<NumberRule>,
}

fn default_true() -> bool {
    true
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "name": "Carrier A",
    "outbound": {"host": "sip.carrier-a.example", "username": "4930123456", "password": "s3cret-pass", "register": true},
    "inbound": {"allowed_cidrs": ["198.51.100.0/24"], "numbers": ["+4930123456"]},
    "srtp": "required"
}))]
pub struct CreateTrunk {
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
    #[serde(default = "default_true")]
    pub enabled: bool,
    pub outbound: Option<OutboundInput>,
    pub inbound: Option<InboundInput>,
    /// SRTP policy of calls through this trunk; absent or null: the server's `media.srtp`.
    #[serde(default)]
    pub srtp: Option<SrtpPolicy>,
    /// Codecs of calls through this trunk, in order of preference (offered in that order,
    /// and the first the other side also has is taken); absent or null: the server's
    /// `media.codecs`.
    #[serde(default)]
    #[schema(min_items = 1, max_items = 5)]
    pub codecs: Option<Vec<CodecName>>,
}

/// Fields present replace the stored ones; `outbound`/`inbound` are replaced as a whole
/// (passwords left out are kept); `"outbound": null` makes the trunk inbound-only;
/// `"srtp": null` and `"codecs": null` return it to the server's SRTP policy and codecs.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"enabled": false}))]
pub struct UpdateTrunk {
    #[serde(default, deserialize_with = "super::not_null")]
    #[schema(min_length = 1, max_length = 100, nullable = false)]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "super::not_null")]
    #[schema(nullable = false)]
    pub enabled: Option<bool>,
    #[serde(default, deserialize_with = "super::present")]
    pub outbound: Option<Option<OutboundInput>>,
    #[serde(default, deserialize_with = "super::object_not_null")]
    #[schema(nullable = false)]
    pub inbound: Option<InboundInput>,
    #[serde(default, deserialize_with = "super::present")]
    pub srtp: Option<Option<SrtpPolicy>>,
    /// `null` returns the trunk to the server's `media.codecs`.
    #[serde(default, deserialize_with = "super::present")]
    #[schema(min_items = 1, max_items = 5)]
    pub codecs: Option<Option<Vec<CodecName>>>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"items": [], "next_cursor": null}))]
pub struct TrunkList {
    pub items: Vec<Trunk>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

fn is_sip_user(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._~+-!*'()&=$,;?/".contains(&b))
}

fn is_secret(s: &str) -> bool {
    !s.is_empty() && s.len() <= 128 && !s.chars().any(|c| c.is_control())
}

fn check_outbound(o: &OutboundInput, has_stored_password: bool, c: &mut Checker) {
    c.check(
        sipx_sip::msg::is_host(&o.host),
        "outbound.host",
        "a host name or IP address, without scheme or port",
    );
    c.check(o.port != Some(0), "outbound.port", "must be 1 to 65535");
    for (v, f) in [
        (&o.username, "outbound.username"),
        (&o.auth_username, "outbound.auth_username"),
    ] {
        if let Some(v) = v {
            c.check(
                is_sip_user(v),
                f,
                "letters, digits and SIP user characters, at most 128",
            );
        }
    }
    if let Some(p) = &o.password {
        c.check(
            is_secret(p),
            "outbound.password",
            "1 to 128 characters without control characters",
        );
    }
    if let Some(d) = &o.from_domain {
        c.check(
            sipx_sip::msg::is_host(d),
            "outbound.from_domain",
            "a host name or IP address",
        );
    }
    c.check(
        (30..=86_400).contains(&o.register_expires),
        "outbound.register_expires",
        "must be 30 to 86400",
    );
    if o.register {
        c.check(
            o.username.is_some(),
            "outbound.username",
            "registration needs a username",
        );
        c.check(
            o.password.is_some() || has_stored_password,
            "outbound.password",
            "registration needs a password",
        );
    }
    if let Some(cid) = &o.caller_id {
        c.check(
            is_number(cid, false),
            "outbound.caller_id",
            "a phone number: optional +, then digits",
        );
    }
    number_rules::check(&o.number_rules, "outbound.number_rules", c);
    if let Some(m) = o.max_concurrent_calls {
        c.check(
            (1..=100_000).contains(&m),
            "outbound.max_concurrent_calls",
            "must be 1 to 100000",
        );
    }
}

fn normalise_cidrs(cidrs: &[String], c: &mut Checker) -> Vec<String> {
    c.check(
        cidrs.len() <= 32,
        "inbound.allowed_cidrs",
        "at most 32 networks",
    );
    cidrs
        .iter()
        .enumerate()
        .filter_map(|(i, s)| {
            // Stored as it claims sources: an IPv4-mapped network is the IPv4 one (and is as
            // wide as that one is).
            let net = super::sip_claims::claimed_net(s);
            c.check(
                net.is_some(),
                format!("inbound.allowed_cidrs[{i}]"),
                "not an IP network or address",
            );
            // A trunk's networks are its alone (`sip_claims`): a network as wide as the
            // Internet would take every source from every other application.
            c.check(
                net.is_none_or(|n| !super::sip_claims::too_wide_to_claim(&n)),
                format!("inbound.allowed_cidrs[{i}]"),
                "too wide: at most an IPv4 /16 or an IPv6 /32 (list several for more)",
            );
            net.map(|n| n.trunc().to_string())
        })
        .collect()
}

fn check_inbound(i: &InboundInput, c: &mut Checker) -> Vec<String> {
    if let Some(u) = &i.username {
        c.check(
            is_sip_user(u),
            "inbound.username",
            "letters, digits and SIP user characters, at most 128",
        );
    }
    if let Some(p) = &i.password {
        c.check(
            is_secret(p),
            "inbound.password",
            "1 to 128 characters without control characters",
        );
    }
    c.check(
        i.numbers.len() <= 256,
        "inbound.numbers",
        "at most 256 numbers",
    );
    for (n, num) in i.numbers.iter().enumerate() {
        c.check(
            is_number(num, false),
            format!("inbound.numbers[{n}]"),
            "a phone number: optional +, then digits",
        );
    }
    number_rules::check(&i.number_rules, "inbound.number_rules", c);
    normalise_cidrs(&i.allowed_cidrs, c)
}

fn check_name(name: &str, c: &mut Checker) {
    let n = name.chars().count();
    c.check(
        (1..=100).contains(&n) && !name.chars().any(char::is_control),
        "name",
        "1 to 100 characters",
    );
}

fn secret_change(p: &Option<String>) -> SecretChange {
    match p {
        Some(p) => SecretChange::Set(Redacted::new(p.clone())),
        None => SecretChange::Keep,
    }
}

/// Folds validated input into the stored shape.
fn apply_outbound(d: &mut TrunkData, o: Option<&OutboundInput>) {
    d.host = o.map(|o| sipx_sip::msg::uri_host(&o.host).to_ascii_lowercase());
    d.port = o.and_then(|o| o.port);
    d.transport = o
        .map_or(TrunkTransport::Udp, |o| o.transport)
        .as_str()
        .to_owned();
    d.username = o.and_then(|o| o.username.clone());
    d.auth_username = o.and_then(|o| o.auth_username.clone());
    d.from_domain = o.and_then(|o| o.from_domain.as_deref().map(sipx_sip::msg::uri_host));
    d.register = o.is_some_and(|o| o.register);
    d.register_expires = o.map_or(3600, |o| o.register_expires);
    d.caller_id = o.and_then(|o| o.caller_id.clone());
    d.number_rules = number_rules::to_stored(o.map_or(&[], |o| &o.number_rules));
    d.max_concurrent_calls = o.and_then(|o| o.max_concurrent_calls);
}

fn not_found() -> ApiError {
    ApiError::NotFound("no such trunk".to_owned())
}

/// 409 when the trunk's inbound networks or user would take another's calls or logins.
async fn refuse_taken_by_others(
    state: &ApiState,
    app_id: &str,
    trunk_id: Option<&str>,
    data: &TrunkData,
) -> Result<super::sip_claims::ClaimGuard, ApiError> {
    let claim = super::sip_claims::Claim {
        app_id,
        owner_id: trunk_id,
        username: data.inbound_username.as_deref(),
        networks: &data.inbound_cidrs,
    };
    super::sip_claims::refuse_taken(state, claim).await
}

/// Create a trunk
///
/// A provider SIPx places calls through (`outbound`, optionally registering to it) and/or
/// accepts calls from (`inbound`, by source address and/or digest).
#[utoipa::path(post, path = "/v1/trunks", tag = "trunks", operation_id = "create_trunk",
    request_body = CreateTrunk,
    responses(
        (status = 201, description = "Created", body = Trunk),
        (status = 409, description = "Its inbound networks overlap another application's, or its \
            inbound user name is taken", body = crate::problem::Problem,
            content_type = "application/problem+json"),
    ))]
pub async fn create(
    Tenant(app): Tenant,
    State(state): State<ApiState>,
    ApiJson(body): ApiJson<CreateTrunk>,
) -> Result<(StatusCode, Json<Trunk>), ApiError> {
    let mut c = Checker::default();
    check_name(&body.name, &mut c);
    if let Some(o) = &body.outbound {
        check_outbound(o, false, &mut c);
    }
    let inbound = body.inbound.unwrap_or_default();
    let cidrs = check_inbound(&inbound, &mut c);
    if let Some(list) = &body.codecs {
        codecs::check(list, state.g729, "codecs", &mut c);
    }
    c.done()?;
    let mut data = TrunkData {
        enabled: body.enabled,
        inbound_cidrs: cidrs,
        inbound_username: inbound.username.clone(),
        inbound_numbers: inbound.numbers.clone(),
        inbound_number_rules: number_rules::to_stored(&inbound.number_rules),
        srtp: body.srtp.map(Into::into),
        codecs: body.codecs.as_deref().map(codecs::to_stored),
        ..TrunkData::new(body.name)
    };
    apply_outbound(&mut data, body.outbound.as_ref());
    let _claimed = refuse_taken_by_others(&state, &app.id, None, &data).await?;
    let password = secret_change(&body.outbound.as_ref().and_then(|o| o.password.clone()));
    let trunk = state
        .store
        .create_trunk(&app.id, &data, &password, &secret_change(&inbound.password))
        .await?;
    tracing::info!(app_id = %app.id, trunk_id = %trunk.id, "trunk created");
    Ok((StatusCode::CREATED, Json(to_dto(trunk, &state))))
}

/// List trunks
#[utoipa::path(get, path = "/v1/trunks", tag = "trunks", operation_id = "list_trunks",
    params(ListParams),
    responses((status = 200, description = "One page of trunks", body = TrunkList)))]
pub async fn list(
    Tenant(app): Tenant,
    State(state): State<ApiState>,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<TrunkList>, ApiError> {
    let page = state
        .store
        .list_trunks(&app.id, &params.to_page_request()?)
        .await?;
    Ok(Json(TrunkList {
        items: page.items.into_iter().map(|t| to_dto(t, &state)).collect(),
        next_cursor: page.next_after.as_deref().map(encode_cursor),
    }))
}

/// Get a trunk
#[utoipa::path(get, path = "/v1/trunks/{trunk_id}", tag = "trunks", operation_id = "get_trunk",
    params(("trunk_id" = String, Path, description = "Trunk id")),
    responses((status = 200, description = "The trunk", body = Trunk)))]
pub async fn get(
    Tenant(app): Tenant,
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Trunk>, ApiError> {
    state
        .store
        .get_trunk(&app.id, &id)
        .await?
        .map(|t| Json(to_dto(t, &state)))
        .ok_or_else(not_found)
}

/// Update a trunk
#[utoipa::path(patch, path = "/v1/trunks/{trunk_id}", tag = "trunks", operation_id = "update_trunk",
    params(("trunk_id" = String, Path, description = "Trunk id")),
    request_body = UpdateTrunk,
    responses(
        (status = 200, description = "The updated trunk", body = Trunk),
        (status = 409, description = "Its inbound networks overlap another application's, or its \
            inbound user name is taken", body = crate::problem::Problem,
            content_type = "application/problem+json"),
    ))]
pub async fn update(
    Tenant(app): Tenant,
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<UpdateTrunk>,
) -> Result<Json<Trunk>, ApiError> {
    let current = state
        .store
        .get_trunk(&app.id, &id)
        .await?
        .ok_or_else(not_found)?;
    let mut data = current.data.clone();
    let mut c = Checker::default();
    if let Some(name) = &body.name {
        check_name(name, &mut c);
        data.name = name.clone();
    }
    if let Some(enabled) = body.enabled {
        data.enabled = enabled;
    }
    if let Some(srtp) = body.srtp {
        data.srtp = srtp.map(Into::into);
    }
    if let Some(list) = &body.codecs {
        if let Some(list) = list {
            codecs::check(list, state.g729, "codecs", &mut c);
        }
        data.codecs = list.as_deref().map(codecs::to_stored);
    }
    let mut password = SecretChange::Keep;
    match &body.outbound {
        Some(Some(o)) => {
            check_outbound(o, current.has_password, &mut c);
            apply_outbound(&mut data, Some(o));
            password = secret_change(&o.password);
        }
        Some(None) => {
            apply_outbound(&mut data, None);
            password = SecretChange::Clear;
        }
        None => {}
    }
    let mut inbound_password = SecretChange::Keep;
    if let Some(i) = &body.inbound {
        data.inbound_cidrs = check_inbound(i, &mut c);
        data.inbound_username = i.username.clone();
        data.inbound_numbers = i.numbers.clone();
        data.inbound_number_rules = number_rules::to_stored(&i.number_rules);
        inbound_password = secret_change(&i.password);
    }
    c.done()?;
    let _claimed = refuse_taken_by_others(&state, &app.id, Some(&id), &data).await?;
    state
        .store
        .update_trunk(&app.id, &id, &data, &password, &inbound_password)
        .await?
        .map(|t| Json(to_dto(t, &state)))
        .ok_or_else(not_found)
}

/// Delete a trunk
#[utoipa::path(delete, path = "/v1/trunks/{trunk_id}", tag = "trunks", operation_id = "delete_trunk",
    params(("trunk_id" = String, Path, description = "Trunk id")),
    responses((status = 204, description = "Deleted")))]
pub async fn delete(
    Tenant(app): Tenant,
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    if state.store.delete_trunk(&app.id, &id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found())
    }
}
