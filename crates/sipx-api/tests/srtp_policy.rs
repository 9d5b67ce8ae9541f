#![allow(clippy::unwrap_used, clippy::expect_used)] // Test code: a panic is a failed test.

//! The SRTP policy of trunks and SIP accounts: written, read back, kept by unrelated updates,
//! changed, cleared (back to the server's), refused when misspelt, and an enum in OpenAPI.

mod common;

use common::{Creds, TestApi};
use serde_json::{Value, json};

/// Creates an object with `srtp: required` and walks its policy through every update.
async fn round_trip(api: &TestApi, app: &Creds, collection: &str, create: Value, other: Value) {
    let created = api.call(app, "POST", collection, Some(create)).await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(created.body["srtp"], "required", "{}", created.text);
    let path = format!("{collection}/{}", created.body["id"].as_str().unwrap());
    assert_eq!(
        api.call(app, "GET", &path, None).await.body["srtp"],
        "required"
    );

    // An update that does not name the policy keeps it.
    let kept = api.call(app, "PATCH", &path, Some(other)).await;
    assert_eq!(kept.status, 200, "{}", kept.text);
    assert_eq!(kept.body["srtp"], "required");

    let changed = api
        .call(app, "PATCH", &path, Some(json!({"srtp": "disabled"})))
        .await;
    assert_eq!(changed.body["srtp"], "disabled", "{}", changed.text);
    let listed = api.call(app, "GET", collection, None).await;
    assert_eq!(listed.body["items"][0]["srtp"], "disabled");

    // null: back to the server's policy, shown as null.
    let cleared = api
        .call(app, "PATCH", &path, Some(json!({"srtp": null})))
        .await;
    assert_eq!(cleared.status, 200, "{}", cleared.text);
    assert_eq!(cleared.body["srtp"], Value::Null);
    assert_eq!(
        api.call(app, "GET", &path, None).await.body["srtp"],
        Value::Null
    );

    for bad in [json!("Required"), json!("optional"), json!(1)] {
        api.call(app, "PATCH", &path, Some(json!({"srtp": bad})))
            .await
            .assert_problem(422, "invalid-body");
    }
}

#[tokio::test]
async fn sip_account_srtp_policy_round_trips() {
    let api = TestApi::new().await;
    let app = api.new_app("a").await;
    let create = json!({"username": "gw1", "password": "gateway-pass-1", "srtp": "required"});
    round_trip(
        &api,
        &app,
        "/v1/sip-accounts",
        create,
        json!({"max_bindings": 2}),
    )
    .await;
    // Left out at creation: the server's policy.
    let plain = api
        .call(
            &app,
            "POST",
            "/v1/sip-accounts",
            Some(json!({"username": "gw2", "password": "gateway-pass-2"})),
        )
        .await;
    assert_eq!(plain.status, 201, "{}", plain.text);
    assert_eq!(plain.body["srtp"], Value::Null);
}

#[tokio::test]
async fn trunk_srtp_policy_round_trips() {
    let api = TestApi::new().await;
    let app = api.new_app("a").await;
    let create = json!({"name": "Carrier", "inbound": {"allowed_cidrs": ["198.51.100.0/24"]},
                        "srtp": "required"});
    round_trip(
        &api,
        &app,
        "/v1/trunks",
        create,
        json!({"name": "Carrier B"}),
    )
    .await;
}

#[test]
fn openapi_describes_the_policy_as_an_enum() {
    let doc: Value = serde_json::from_str(&sipx_api::openapi::openapi_json()).unwrap();
    let schemas = &doc["components"]["schemas"];
    assert_eq!(
        schemas["SrtpPolicy"]["enum"],
        json!(["disabled", "allowed", "required"])
    );
    let refers = |v: &Value| v.to_string().contains("#/components/schemas/SrtpPolicy");
    for object in [
        "SipAccount",
        "CreateSipAccount",
        "UpdateSipAccount",
        "Trunk",
        "CreateTrunk",
        "UpdateTrunk",
    ] {
        let field = &schemas[object]["properties"]["srtp"];
        assert!(refers(field), "{object}.srtp: {field}");
        // `null` is one of its values (OpenAPI 3.0.3: a typed branch that is only `null`).
        let none = json!({"type": "string", "nullable": true, "enum": [null]});
        assert_eq!(field["oneOf"][1], none, "{object}.srtp: {field}");
    }
}
