//! The OpenAPI document, generated from the handlers' annotations.
//!
//! utoipa 5 emits OpenAPI 3.1; SIPx promises 3.0 (many client generators still need it), so the
//! document is converted by [`to_openapi_30`], a small rewrite of the few 3.1 constructs utoipa
//! uses. The committed `openapi.json` at the repository root must equal [`openapi_json`]'s
//! output (a test checks it; `cargo run -p sipx -- openapi > openapi.json` refreshes it).

use serde_json::{Map, Value, json};
use utoipa::OpenApi;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::openapi::{self, Content, Ref, RefOr, Response};

use crate::routes;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "SIPx API",
        description = include_str!("openapi_intro.md"),
        license(name = "Apache-2.0"),
    ),
    paths(
        routes::ops::healthz,
        routes::ops::readyz,
        routes::ops::metrics,
        routes::app::current,
        routes::app::update_current,
        routes::apps::create,
        routes::apps::list,
        routes::apps::get,
        routes::apps::update,
        routes::apps::rotate_secret,
        routes::sip_accounts::create,
        routes::sip_accounts::list,
        routes::sip_accounts::get,
        routes::sip_accounts::update,
        routes::sip_accounts::delete,
        routes::registrations::list,
        routes::trunks::create,
        routes::trunks::list,
        routes::trunks::get,
        routes::trunks::update,
        routes::trunks::delete,
        routes::routing_rules::create,
        routes::routing_rules::list,
        routes::routing_rules::get,
        routes::routing_rules::update,
        routes::routing_rules::delete,
        routes::rooms::create,
        routes::rooms::list,
        routes::rooms::get,
        routes::rooms::close,
        routes::rooms::token::create_token,
        routes::rooms::remove_participant,
        routes::rooms::mute,
        routes::calls::create,
        routes::calls::list,
        routes::calls::get,
        routes::calls::hangup,
        routes::calls::send_dtmf,
        routes::calls::mute,
        routes::calls::transfer,
        routes::calls::cdrs::list,
        routes::events::stream,
        routes::webhooks::list,
        routes::webhooks::get,
        routes::webhooks::test,
    ),
    components(schemas(
        crate::problem::Problem,
        crate::problem::FieldError,
        crate::routes::webhooks::EventEnvelope,
    )),
    // Every operation is signed unless it says otherwise (the probes do, with `security(())`).
    security(("sipx_header" = []), ("api_key" = [], "expire_at" = [], "signature" = [])),
    modifiers(&Security, &CommonResponses),
    tags(
        (name = "apps", description = "Applications (tenants) and their credentials"),
        (name = "sip-accounts", description = "Credentials that gateways and phones register with, and their registrations"),
        (name = "trunks", description = "SIP trunks to and from providers"),
        (name = "routing-rules", description = "Where incoming calls go: rooms (optionally behind a PIN), a webhook's choice, or a refusal"),
        (name = "rooms", description = "Built-in WebRTC rooms, their participants (browsers and phone calls) and join tokens"),
        (name = "calls", description = "Phone calls into rooms: dial out, state history, hang up, DTMF, call detail records"),
        (name = "events", description = "Application events: signed webhooks with their delivery log, and a server-sent-events stream"),
        (name = "operations", description = "Health, readiness and metrics"),
    )
)]
pub struct ApiDoc;

struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, doc: &mut openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        let query = |name: &str, what: &str| {
            SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::with_description(name, what)))
        };
        components.add_security_scheme(
            "sipx_header",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "Authorization",
                "`Sipx api_key=<key>, expire_at=<unix seconds>, signature=<base64url HMAC-SHA256 of api_key‖expire_at under api_secret>`",
            ))),
        );
        components.add_security_scheme("api_key", query("api_key", "The application's API key"));
        components.add_security_scheme(
            "expire_at",
            query(
                "expire_at",
                "Unix time (s) after which the signature is refused; at most 24 h ahead",
            ),
        );
        components.add_security_scheme(
            "signature",
            query(
                "signature",
                "base64url (no padding) of HMAC-SHA256(api_secret, api_key ‖ expire_at)",
            ),
        );
    }
}

/// Adds the error answers every operation can give, so each one documents them all.
struct CommonResponses;

fn problem_ref(description: &str) -> RefOr<Response> {
    let mut response = Response::new(description);
    response.content.insert(
        "application/problem+json".to_owned(),
        Content::new(Some(Ref::from_schema_name("Problem"))),
    );
    RefOr::T(response)
}

impl utoipa::Modify for CommonResponses {
    fn modify(&self, doc: &mut openapi::OpenApi) {
        for (path, item) in doc.paths.paths.iter_mut() {
            let ops = [
                item.get.as_mut(),
                item.post.as_mut(),
                item.put.as_mut(),
                item.patch.as_mut(),
                item.delete.as_mut(),
            ];
            for op in ops.into_iter().flatten() {
                let mut add = |code: &str, description: &str| {
                    op.responses
                        .responses
                        .entry(code.to_owned())
                        .or_insert_with(|| problem_ref(description));
                };
                if path.starts_with("/v1/") {
                    add("400", "Malformed request (query string or path)");
                    add("401", "Missing, expired or invalid signature");
                    add("403", "The application is disabled");
                    if path.contains('{') {
                        add("404", "No such object for this application");
                    }
                }
                if path.starts_with("/v1/rooms") {
                    add(
                        "503",
                        "The built-in rooms are disabled (`rooms.enabled = false`)",
                    );
                }
                if op.request_body.is_some() {
                    add("413", "The body exceeds the size limit");
                    add("415", "The body is not `application/json`");
                    add("422", "The body does not fit the schema or breaks a rule");
                }
                add(
                    "500",
                    "Internal error (details in the server log, by request id)",
                );
            }
        }
    }
}

/// The document as served and committed: OpenAPI 3.0.3, pretty-printed, newline-terminated.
pub fn openapi_json() -> String {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    let mut value = serde_json::to_value(&doc).unwrap_or(Value::Null);
    close_enum_variants(&mut value);
    let mut text = serde_json::to_string_pretty(&to_openapi_30(value)).unwrap_or_default();
    text.push('\n');
    text
}

/// Tagged enums read with `deny_unknown_fields`: each variant refuses fields it does not name
/// (422), which utoipa writes down for structs only.
const CLOSED_ENUMS: &[&str] = &["ActionInput"];

fn close_enum_variants(doc: &mut Value) {
    for name in CLOSED_ENUMS {
        let variants = doc
            .pointer_mut(&format!("/components/schemas/{name}/oneOf"))
            .and_then(Value::as_array_mut);
        for variant in variants
            .into_iter()
            .flatten()
            .filter_map(Value::as_object_mut)
        {
            variant.insert("additionalProperties".to_owned(), Value::Bool(false));
        }
    }
}

/// Rewrites the OpenAPI 3.1 constructs utoipa emits into their 3.0.3 equivalents:
/// `type: [T, "null"]` → `type: T, nullable: true`; `oneOf: [{type: null}, X]` → X made nullable;
/// schema `examples: [..]` → `example`; `license.identifier` dropped.
pub fn to_openapi_30(mut doc: Value) -> Value {
    if let Some(obj) = doc.as_object_mut() {
        obj.insert("openapi".to_owned(), json!("3.0.3"));
        if let Some(license) = obj
            .get_mut("info")
            .and_then(|i| i.get_mut("license"))
            .and_then(Value::as_object_mut)
        {
            license.remove("identifier");
        }
        if let Some(components) = obj.get_mut("components").and_then(|c| c.get_mut("schemas")) {
            for schema in components
                .as_object_mut()
                .into_iter()
                .flat_map(|m| m.values_mut())
            {
                convert_schema(schema);
            }
        }
        // Schemas inline in paths: parameters, bodies, responses.
        if let Some(paths) = obj.get_mut("paths") {
            walk_for_schemas(paths);
        }
    }
    let types: Map<String, Value> = doc
        .pointer("/components/schemas")
        .and_then(Value::as_object)
        .map(|schemas| {
            schemas
                .iter()
                .filter_map(|(name, s)| Some((name.clone(), s.get("type")?.clone())))
                .collect()
        })
        .unwrap_or_default();
    nullable_refs(&mut doc, &types);
    doc
}

/// The `$ref` of `{allOf: [{$ref}]}`, or of `{allOf: [{allOf: [{$ref}], description…}]}` (the
/// inner keywords move out); `None` for any other shape.
fn single_ref(map: &mut Map<String, Value>) -> Option<String> {
    let Some(Value::Array(alts)) = map.get("allOf") else {
        return None;
    };
    let [only] = alts.as_slice() else {
        return None;
    };
    if let Some(r) = only.get("$ref").and_then(Value::as_str) {
        return Some(r.to_owned());
    }
    let mut inner = only.as_object()?.clone();
    let r = single_ref(&mut inner)?;
    inner.remove("allOf");
    for (k, v) in inner {
        map.entry(k).or_insert(v);
    }
    Some(r)
}

/// `{allOf: [{$ref: R}], nullable: true}` allows no `null` in OpenAPI 3.0.3: `nullable` acts
/// only beside a `type`, and `R` refuses `null`. Strict validators and clients reject such a
/// field's `null`; `oneOf: [R, {type: <R's type>, nullable: true, enum: [null]}]` takes it.
fn nullable_refs(v: &mut Value, types: &Map<String, Value>) {
    match v {
        Value::Object(map) => {
            let nullable = map.get("nullable") == Some(&json!(true)) && !map.contains_key("type");
            if let (Some(r), true) = (single_ref(map), nullable) {
                let name = r.rsplit('/').next().unwrap_or_default();
                let mut none = json!({"nullable": true, "enum": [null]});
                if let Some(t) = types.get(name) {
                    none["type"] = t.clone();
                }
                map.remove("allOf");
                map.remove("nullable");
                map.insert("oneOf".to_owned(), json!([{ "$ref": r }, none]));
            }
            map.values_mut().for_each(|c| nullable_refs(c, types));
        }
        Value::Array(items) => items.iter_mut().for_each(|c| nullable_refs(c, types)),
        _ => {}
    }
}

fn walk_for_schemas(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (k, child) in map.iter_mut() {
                if k == "schema" {
                    convert_schema(child);
                } else {
                    walk_for_schemas(child);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(walk_for_schemas),
        _ => {}
    }
}

fn convert_schema(schema: &mut Value) {
    let Some(map) = schema.as_object_mut() else {
        return;
    };
    // type: ["string", "null"]
    if let Some(Value::Array(types)) = map.get("type").cloned() {
        let non_null: Vec<Value> = types.iter().filter(|t| *t != "null").cloned().collect();
        let nullable = non_null.len() < types.len();
        match non_null.as_slice() {
            [one] => {
                map.insert("type".to_owned(), one.clone());
            }
            _ => {
                map.remove("type");
            }
        }
        if nullable {
            map.insert("nullable".to_owned(), json!(true));
        }
    }
    // oneOf: [{type: "null"}, X]
    for key in ["oneOf", "anyOf"] {
        if let Some(Value::Array(alts)) = map.get(key).cloned() {
            let is_null = |a: &Value| a.get("type") == Some(&json!("null"));
            if alts.iter().any(is_null) {
                let rest: Vec<Value> = alts.into_iter().filter(|a| !is_null(a)).collect();
                map.remove(key);
                if let [single] = rest.as_slice() {
                    if single.get("$ref").is_some() {
                        map.insert("allOf".to_owned(), json!([single]));
                    } else if let Some(inner) = single.as_object() {
                        for (k, v) in inner {
                            map.entry(k.clone()).or_insert_with(|| v.clone());
                        }
                    }
                } else {
                    map.insert(key.to_owned(), Value::Array(rest));
                }
                map.insert("nullable".to_owned(), json!(true));
            }
        }
    }
    // Keywords 3.0 lacks: map keys are always strings there; `const` is a one-value enum;
    // numeric exclusive bounds become the boolean form.
    map.remove("propertyNames");
    if let Some(c) = map.remove("const") {
        map.insert("enum".to_owned(), json!([c]));
    }
    for (bound, flag) in [
        ("exclusiveMinimum", "minimum"),
        ("exclusiveMaximum", "maximum"),
    ] {
        if let Some(n) = map.get(bound).filter(|v| v.is_number()).cloned() {
            map.insert(flag.to_owned(), n);
            map.insert(bound.to_owned(), json!(true));
        }
    }
    if let Some(Value::Array(examples)) = map.remove("examples")
        && let Some(first) = examples.into_iter().next()
    {
        map.entry("example".to_owned()).or_insert(first);
    }
    // `$ref` with siblings is legal in 3.1 only: wrap it.
    if map.len() > 1
        && let Some(r) = map.remove("$ref")
    {
        map.insert("allOf".to_owned(), json!([{ "$ref": r }]));
    }
    recurse_children(map);
}

fn recurse_children(map: &mut Map<String, Value>) {
    for key in ["items", "additionalProperties", "not"] {
        if let Some(child) = map.get_mut(key) {
            convert_schema(child);
        }
    }
    for key in ["properties", "patternProperties"] {
        if let Some(Value::Object(props)) = map.get_mut(key) {
            props.values_mut().for_each(convert_schema);
        }
    }
    for key in ["allOf", "oneOf", "anyOf"] {
        if let Some(Value::Array(alts)) = map.get_mut(key) {
            alts.iter_mut().for_each(convert_schema);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contains_31_constructs(v: &Value) -> bool {
        match v {
            Value::Object(m) => {
                matches!(m.get("type"), Some(Value::Array(_)))
                    || m.get("type") == Some(&json!("null"))
                    || matches!(m.get("examples"), Some(Value::Array(_)))
                    || m.contains_key("propertyNames")
                    || m.contains_key("const")
                    || m.get("exclusiveMinimum").is_some_and(Value::is_number)
                    || m.values().any(contains_31_constructs)
            }
            Value::Array(a) => a.iter().any(contains_31_constructs),
            _ => false,
        }
    }

    #[test]
    fn converts_nullable_forms() {
        let v = to_openapi_30(json!({
            "openapi": "3.1.0",
            "components": {"schemas": {"Y": {"type": "object"}, "X": {"type": "object", "properties": {
                "a": {"type": ["string", "null"]},
                "b": {"oneOf": [{"type": "null"}, {"$ref": "#/components/schemas/Y"}]},
                "c": {"type": "array", "items": {"type": ["integer", "null"]}, "examples": [[1]]},
                "d": {"type": "object", "propertyNames": {"type": "string"}},
                "e": {"const": "x"},
                "f": {"type": "integer", "exclusiveMinimum": 0}
            }}}}
        }));
        let props = &v["components"]["schemas"]["X"]["properties"];
        assert_eq!(v["openapi"], "3.0.3");
        assert_eq!(props["a"], json!({"type": "string", "nullable": true}));
        assert_eq!(
            props["b"],
            json!({"oneOf": [{"$ref": "#/components/schemas/Y"},
                             {"type": "object", "nullable": true, "enum": [null]}]})
        );
        assert_eq!(
            props["c"]["items"],
            json!({"type": "integer", "nullable": true})
        );
        assert_eq!(props["c"]["example"], json!([1]));
        assert_eq!(props["d"], json!({"type": "object"}));
        assert_eq!(props["e"], json!({"enum": ["x"]}));
        assert_eq!(
            props["f"],
            json!({"type": "integer", "minimum": 0, "exclusiveMinimum": true})
        );
    }

    #[test]
    fn generated_document_is_openapi_30() {
        let v: Value = serde_json::from_str(&openapi_json()).unwrap();
        assert_eq!(v["openapi"], "3.0.3");
        assert!(
            !contains_31_constructs(&v),
            "3.1 construct left in the document"
        );
    }

    #[test]
    fn every_operation_has_a_summary_and_error_answers() {
        let v: Value = serde_json::from_str(&openapi_json()).unwrap();
        for (path, item) in v["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                assert!(op["summary"].is_string(), "{method} {path} has no summary");
                assert!(op["responses"]["500"].is_object(), "{method} {path}");
                if path.starts_with("/v1/") {
                    assert!(op["responses"]["401"].is_object(), "{method} {path}");
                }
            }
        }
    }

    #[test]
    fn every_schema_and_text_answer_has_an_example() {
        let v: Value = serde_json::from_str(&openapi_json()).unwrap();
        for (name, schema) in v["components"]["schemas"].as_object().unwrap() {
            assert!(
                schema.get("example").is_some(),
                "schema {name} has no example"
            );
        }
        for (path, item) in v["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                for (status, resp) in op["responses"].as_object().unwrap() {
                    for (media, content) in resp["content"].as_object().into_iter().flatten() {
                        let has = content.get("example").is_some()
                            || content["schema"].get("$ref").is_some()
                            || content["schema"].get("example").is_some();
                        assert!(has, "{method} {path} {status} {media} has no example");
                    }
                }
            }
        }
    }

    /// The committed document must be the generated one: regenerate with
    /// `cargo run -p sipx -- openapi > openapi.json`.
    #[test]
    fn committed_document_is_current() {
        let committed = include_str!("../../../openapi.json");
        assert!(
            committed == openapi_json(),
            "openapi.json is stale: run `cargo run -p sipx -- openapi > openapi.json`"
        );
    }
}
