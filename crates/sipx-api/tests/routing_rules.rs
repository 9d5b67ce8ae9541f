#![allow(clippy::unwrap_used, clippy::expect_used)] // Test code: a panic is a failed test.

//! `/v1/routing-rules`: every action written and read back, PINs write-only, the list in match
//! order across pages, refusals (422 with the field) and tenant isolation (404).

mod common;

use common::{Creds, TestApi};
use serde_json::{Value, json};

async fn create(api: &TestApi, app: &Creds, body: Value) -> Value {
    let r = api.call(app, "POST", "/v1/routing-rules", Some(body)).await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.body
}

/// Asserts a 422 that names `field` among its refused fields.
async fn refused(api: &TestApi, app: &Creds, method: &str, path: &str, body: Value, field: &str) {
    let r = api.call(app, method, path, Some(body.clone())).await;
    r.assert_problem(422, "invalid-body");
    let fields: Vec<&str> = r.body["errors"]
        .as_array()
        .map(|e| e.iter().filter_map(|e| e["field"].as_str()).collect())
        .unwrap_or_default();
    assert!(
        fields.contains(&field),
        "{body} should be refused on {field}: {}",
        r.text
    );
}

#[tokio::test]
async fn every_action_round_trips() {
    let api = TestApi::new().await;
    let app = api.new_app("a").await;
    let trunk = api
        .call(
            &app,
            "POST",
            "/v1/trunks",
            Some(json!({"name": "in", "inbound": {"allowed_cidrs": ["192.0.2.0/24"]}})),
        )
        .await;
    let trunk_id = trunk.body["id"].as_str().unwrap();
    let account = api
        .call(
            &app,
            "POST",
            "/v1/sip-accounts",
            Some(json!({"username": "gw-1", "password": "gateway-pass-1"})),
        )
        .await;
    let account_id = account.body["id"].as_str().unwrap();

    let full_match = json!({
        "trunk_id": trunk_id,
        "sip_account_id": account_id,
        "called": {"kind": "pattern", "value": r"\+?4930[0-9]+"},
        "caller": {"kind": "prefix", "value": "+1"}
    });
    let actions = [
        (
            json!({"type": "fixed_room", "room": "support", "pin": "4711"}),
            json!({"type": "fixed_room", "room": "support", "has_pin": true}),
        ),
        (
            json!({"type": "fixed_room", "room": "lobby"}),
            json!({"type": "fixed_room", "room": "lobby", "has_pin": false}),
        ),
        (
            json!({"type": "room_per_caller", "prefix": "call-"}),
            json!({"type": "room_per_caller", "prefix": "call-"}),
        ),
        (
            json!({"type": "room_by_called_number"}),
            json!({"type": "room_by_called_number", "prefix": null}),
        ),
        (
            json!({"type": "room_by_called_number", "prefix": "did-"}),
            json!({"type": "room_by_called_number", "prefix": "did-"}),
        ),
        (
            json!({"type": "webhook", "url": "https://example.com/route"}),
            json!({"type": "webhook", "url": "https://example.com/route", "timeout_ms": 3000, "fallback_room": null}),
        ),
        (
            json!({"type": "webhook", "url": "http://127.0.0.1:9/r?x=1", "timeout_ms": 10000, "fallback_room": "lobby"}),
            json!({"type": "webhook", "url": "http://127.0.0.1:9/r?x=1", "timeout_ms": 10000, "fallback_room": "lobby"}),
        ),
        (
            json!({"type": "reject", "sip_code": 486, "reason": "Busy Here"}),
            json!({"type": "reject", "sip_code": 486, "reason": "Busy Here"}),
        ),
    ];
    for (written, shown) in actions {
        let body = json!({"description": "d", "match": full_match, "action": written});
        let rule = create(&api, &app, body).await;
        assert!(rule["id"].as_str().unwrap().starts_with("rule_"));
        assert_eq!(rule["action"], shown, "{rule}");
        assert_eq!(rule["match"], full_match);
        assert_eq!(rule["priority"], 100, "the default priority");
        assert_eq!(rule["enabled"], true);
        assert!(!rule.to_string().contains("4711"), "a PIN is never shown");
        let path = format!("/v1/routing-rules/{}", rule["id"].as_str().unwrap());
        let got = api.call(&app, "GET", &path, None).await;
        assert_eq!(got.body, rule);
    }

    // No match at all: every call.
    let any = create(
        &api,
        &app,
        json!({"action": {"type": "reject", "sip_code": 403}}),
    )
    .await;
    assert_eq!(
        any["match"],
        json!({"trunk_id": null, "sip_account_id": null, "called": null, "caller": null})
    );
}

#[tokio::test]
async fn patch_replaces_parts_and_keeps_or_clears_the_pin() {
    let api = TestApi::new().await;
    let app = api.new_app("a").await;
    let rule = create(
        &api,
        &app,
        json!({"priority": 7, "description": "x", "match": {"called": {"kind": "exact", "value": "100"}},
               "action": {"type": "fixed_room", "room": "vip", "pin": "123456"}}),
    )
    .await;
    let path = format!("/v1/routing-rules/{}", rule["id"].as_str().unwrap());
    let patch = |body: Value| {
        let (api, app, path) = (&api, &app, path.clone());
        async move {
            let r = api.call(app, "PATCH", &path, Some(body)).await;
            assert_eq!(r.status, 200, "{}", r.text);
            r.body
        }
    };

    let r = patch(json!({"enabled": false, "priority": 3})).await;
    assert_eq!(
        (r["enabled"].clone(), r["priority"].clone()),
        (json!(false), json!(3))
    );
    assert_eq!(
        r["action"]["has_pin"], true,
        "unrelated changes keep the PIN"
    );
    assert_eq!(r["description"], "x");

    // A new room without `pin` keeps it; `null` clears it.
    let r = patch(json!({"action": {"type": "fixed_room", "room": "vip2"}})).await;
    assert_eq!(
        r["action"],
        json!({"type": "fixed_room", "room": "vip2", "has_pin": true})
    );
    let r = patch(json!({"action": {"type": "fixed_room", "room": "vip2", "pin": null}})).await;
    assert_eq!(r["action"]["has_pin"], false);
    let r = patch(json!({"action": {"type": "fixed_room", "room": "vip2", "pin": "0000"}})).await;
    assert_eq!(r["action"]["has_pin"], true);
    // Another action drops it for good.
    patch(json!({"action": {"type": "reject", "sip_code": 480}})).await;
    let r = patch(json!({"action": {"type": "fixed_room", "room": "vip2"}})).await;
    assert_eq!(r["action"]["has_pin"], false);

    // `match` is replaced whole; `description: null` clears.
    let r = patch(
        json!({"match": {"caller": {"kind": "prefix", "value": "+49"}}, "description": null}),
    )
    .await;
    assert_eq!(r["match"]["called"], Value::Null);
    assert_eq!(
        r["match"]["caller"],
        json!({"kind": "prefix", "value": "+49"})
    );
    assert_eq!(r["description"], Value::Null);
    assert_eq!(r["priority"], 3);
}

#[tokio::test]
async fn the_list_is_in_match_order_across_pages() {
    let api = TestApi::new().await;
    let app = api.new_app("a").await;
    let mut made = Vec::new();
    for p in [50, 10, 30, 10, 0, 1_000_000] {
        let r = create(
            &api,
            &app,
            json!({"priority": p, "action": {"type": "fixed_room", "room": format!("r{p}")}}),
        )
        .await;
        made.push((p, r["id"].as_str().unwrap().to_owned()));
    }
    made.sort();
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10 {
        let path = match &cursor {
            Some(c) => format!("/v1/routing-rules?limit=4&cursor={c}"),
            None => "/v1/routing-rules?limit=4".to_owned(),
        };
        let page = api.call(&app, "GET", &path, None).await;
        assert_eq!(page.status, 200, "{}", page.text);
        for item in page.body["items"].as_array().unwrap() {
            seen.push((
                u32::try_from(item["priority"].as_u64().unwrap()).unwrap(),
                item["id"].as_str().unwrap().to_owned(),
            ));
        }
        match page.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, made);
    // A cursor the API did not issue is a bad request, not a 500.
    api.call(&app, "GET", "/v1/routing-rules?cursor=bm9wZQ", None)
        .await
        .assert_problem(400, "bad-request");
}

#[tokio::test]
async fn bad_rules_are_refused_with_the_field() {
    let api = TestApi::new().await;
    let app = api.new_app("a").await;
    let other = api.new_app("b").await;
    let foreign = api
        .call(
            &other,
            "POST",
            "/v1/trunks",
            Some(json!({"name": "theirs"})),
        )
        .await;
    let foreign_trunk = foreign.body["id"].as_str().unwrap();
    let foreign_account = api
        .call(
            &other,
            "POST",
            "/v1/sip-accounts",
            Some(json!({"username": "gw-b", "password": "gateway-pass-1"})),
        )
        .await;
    let foreign_account = foreign_account.body["id"].as_str().unwrap();
    let room = json!({"type": "fixed_room", "room": "ok"});
    let with_match = |m: Value| json!({"match": m, "action": room});
    let with_action = |a: Value| json!({"action": a});
    let cases = [
        (
            with_match(json!({"called": {"kind": "pattern", "value": "(12"}})),
            "match.called.value",
        ),
        (
            with_match(json!({"caller": {"kind": "pattern", "value": "1".repeat(257)}})),
            "match.caller.value",
        ),
        (
            with_match(json!({"called": {"kind": "pattern", "value": r"(1)\1"}})),
            "match.called.value",
        ),
        (
            with_match(json!({"called": {"kind": "exact", "value": ""}})),
            "match.called.value",
        ),
        (
            with_match(json!({"called": {"kind": "prefix", "value": "1\n2"}})),
            "match.called.value",
        ),
        (
            with_match(json!({"trunk_id": foreign_trunk})),
            "match.trunk_id",
        ),
        (
            with_match(json!({"trunk_id": "trunk_made_up"})),
            "match.trunk_id",
        ),
        (
            with_match(json!({"sip_account_id": foreign_account})),
            "match.sip_account_id",
        ),
        (
            with_action(json!({"type": "fixed_room", "room": "bad room"})),
            "action.room",
        ),
        (
            with_action(json!({"type": "fixed_room", "room": "x/y"})),
            "action.room",
        ),
        (
            with_action(json!({"type": "fixed_room", "room": "a".repeat(65)})),
            "action.room",
        ),
        (
            with_action(json!({"type": "fixed_room", "room": "ok", "pin": "123"})),
            "action.pin",
        ),
        (
            with_action(json!({"type": "fixed_room", "room": "ok", "pin": "12ab"})),
            "action.pin",
        ),
        (
            with_action(json!({"type": "fixed_room", "room": "ok", "pin": "1234567890123"})),
            "action.pin",
        ),
        (
            with_action(json!({"type": "room_per_caller", "prefix": "a b"})),
            "action.prefix",
        ),
        (
            with_action(json!({"type": "room_per_caller", "prefix": "p".repeat(33)})),
            "action.prefix",
        ),
        (
            with_action(json!({"type": "room_by_called_number", "prefix": "ä"})),
            "action.prefix",
        ),
        (
            with_action(json!({"type": "webhook", "url": "ftp://example.com/"})),
            "action.url",
        ),
        (
            with_action(json!({"type": "webhook", "url": "https:///path"})),
            "action.url",
        ),
        // The rules of every webhook URL: no credentials, no fragment.
        (
            with_action(json!({"type": "webhook", "url": "https://user:pw@a.example/"})),
            "action.url",
        ),
        (
            with_action(json!({"type": "webhook", "url": "https://a.example/#frag"})),
            "action.url",
        ),
        (
            with_action(
                json!({"type": "webhook", "url": "https://a.example/", "timeout_ms": 10001}),
            ),
            "action.timeout_ms",
        ),
        (
            with_action(json!({"type": "webhook", "url": "https://a.example/", "timeout_ms": 0})),
            "action.timeout_ms",
        ),
        (
            with_action(
                json!({"type": "webhook", "url": "https://a.example/", "fallback_room": "no way"}),
            ),
            "action.fallback_room",
        ),
        (
            with_action(json!({"type": "reject", "sip_code": 401})),
            "action.sip_code",
        ),
        (
            with_action(json!({"type": "reject", "sip_code": 407})),
            "action.sip_code",
        ),
        (
            with_action(json!({"type": "reject", "sip_code": 302})),
            "action.sip_code",
        ),
        (
            with_action(json!({"type": "reject", "sip_code": 700})),
            "action.sip_code",
        ),
        (
            with_action(json!({"type": "reject", "sip_code": 486, "reason": "a\rb"})),
            "action.reason",
        ),
        (json!({"priority": 1_000_001, "action": room}), "priority"),
        (
            json!({"description": "x".repeat(201), "action": room}),
            "description",
        ),
    ];
    for (body, field) in cases {
        refused(&api, &app, "POST", "/v1/routing-rules", body, field).await;
    }

    // Shapes serde refuses: an unknown action, a misspelt field, a missing action.
    for body in [
        json!({"action": {"type": "voicemail"}}),
        json!({"action": {"type": "fixed_room", "room": "ok", "pn": "1234"}}),
        json!({"action": {"type": "reject"}}),
        json!({"priority": 1}),
        json!({"action": room, "match": {"called": {"kind": "regex", "value": "1"}}}),
        json!({"action": room, "matches": {}}),
        // Arrays where objects belong (serde's derive would read them as field lists).
        json!({"action": room, "match": [null, null]}),
        json!({"action": room, "match": {"called": ["exact", "1"]}}),
        json!({"action": ["reject", 486]}),
        json!({"action": room, "match": "any"}),
    ] {
        api.call(&app, "POST", "/v1/routing-rules", Some(body.clone()))
            .await
            .assert_problem(422, "invalid-body");
    }

    // The same checks on update, and nothing is written when one fails.
    let rule = create(&api, &app, json!({"priority": 5, "action": room})).await;
    let path = format!("/v1/routing-rules/{}", rule["id"].as_str().unwrap());
    refused(
        &api,
        &app,
        "PATCH",
        &path,
        json!({"priority": 6, "match": {"trunk_id": foreign_trunk}}),
        "match.trunk_id",
    )
    .await;
    refused(
        &api,
        &app,
        "PATCH",
        &path,
        json!({"priority": 6, "action": {"type": "fixed_room", "room": "a b"}}),
        "action.room",
    )
    .await;
    for body in [
        json!({"match": [null, null]}),
        json!({"action": ["reject", 486]}),
        json!({"match": {"caller": ["prefix", "1"]}}),
    ] {
        api.call(&app, "PATCH", &path, Some(body))
            .await
            .assert_problem(422, "invalid-body");
    }
    let unchanged = api.call(&app, "GET", &path, None).await;
    assert_eq!(unchanged.body, rule);
}

#[tokio::test]
async fn another_applications_rules_are_not_found() {
    let api = TestApi::new().await;
    let a = api.new_app("a").await;
    let b = api.new_app("b").await;
    let rule = create(
        &api,
        &a,
        json!({"action": {"type": "reject", "sip_code": 486}}),
    )
    .await;
    let path = format!("/v1/routing-rules/{}", rule["id"].as_str().unwrap());
    api.call(&b, "GET", &path, None)
        .await
        .assert_problem(404, "not-found");
    api.call(&b, "PATCH", &path, Some(json!({"priority": 1})))
        .await
        .assert_problem(404, "not-found");
    api.call(&b, "DELETE", &path, None)
        .await
        .assert_problem(404, "not-found");
    let listed = api.call(&b, "GET", "/v1/routing-rules", None).await;
    assert_eq!(listed.body["items"], json!([]));

    let deleted = api.call(&a, "DELETE", &path, None).await;
    assert_eq!(deleted.status, 204);
    api.call(&a, "GET", &path, None)
        .await
        .assert_problem(404, "not-found");
    api.call(&a, "DELETE", &path, None)
        .await
        .assert_problem(404, "not-found");
}
