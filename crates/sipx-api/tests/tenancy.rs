#![allow(clippy::unwrap_used, clippy::expect_used)] // Test code: a panic is a failed test.

//! Objects are per application: B can neither read, list, change nor delete A's.

mod common;

use common::TestApi;
use serde_json::json;

/// Creates A's SIP account `gw-a`; returns its id.
async fn gateway_of_a(api: &TestApi, a: &common::Creds) -> String {
    let created = api
        .call(
            a,
            "POST",
            "/v1/sip-accounts",
            Some(json!({"username": "gw-a", "password": "password-a-1"})),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    created.body["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn application_b_cannot_touch_application_a_objects() {
    let api = TestApi::new().await;
    let a = api.new_app("a").await;
    let b = api.new_app("b").await;
    let id = gateway_of_a(&api, &a).await;
    let path = format!("/v1/sip-accounts/{id}");

    api.call(&b, "GET", &path, None)
        .await
        .assert_problem(404, "not-found");
    api.call(&b, "PATCH", &path, Some(json!({"max_bindings": 1})))
        .await
        .assert_problem(404, "not-found");
    api.call(&b, "DELETE", &path, None)
        .await
        .assert_problem(404, "not-found");
    let listed = api.call(&b, "GET", "/v1/sip-accounts", None).await;
    assert_eq!(listed.status, 200);
    assert_eq!(listed.body["items"], json!([]));

    // A still sees it, unchanged.
    let got = api.call(&a, "GET", &path, None).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body["max_bindings"], 5);
    assert!(got.body.get("password").is_none(), "password is write-only");
    let listed = api.call(&a, "GET", "/v1/sip-accounts", None).await;
    assert_eq!(listed.body["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn crud_and_cursor_pagination() {
    let api = TestApi::new().await;
    let a = api.new_app("a").await;
    for i in 0..5 {
        let r = api
            .call(
                &a,
                "POST",
                "/v1/sip-accounts",
                Some(json!({
                    "username": format!("gw{i}"), "password": "password-123",
                    "allowed_cidrs": ["10.1.2.3/8", "2001:db8::1"], "description": "x"
                })),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        assert_eq!(
            r.body["allowed_cidrs"],
            json!(["10.0.0.0/8", "2001:db8::1/128"])
        );
    }
    let mut seen = Vec::new();
    let mut uri = "/v1/sip-accounts?limit=2".to_owned();
    for _ in 0..5 {
        let page = api.call(&a, "GET", &uri, None).await;
        assert_eq!(page.status, 200, "{}", page.text);
        for item in page.body["items"].as_array().unwrap() {
            seen.push(item["username"].as_str().unwrap().to_owned());
        }
        match page.body["next_cursor"].as_str() {
            Some(c) => uri = format!("/v1/sip-accounts?limit=2&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen, ["gw0", "gw1", "gw2", "gw3", "gw4"]);

    let id = api
        .call(&a, "GET", "/v1/sip-accounts?limit=1", None)
        .await
        .body["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/v1/sip-accounts/{id}");
    let patched = api
        .call(
            &a,
            "PATCH",
            &path,
            Some(json!({"enabled": false, "description": null})),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.text);
    assert_eq!(patched.body["enabled"], false);
    assert_eq!(patched.body["description"], serde_json::Value::Null);
    assert_eq!(patched.body["max_bindings"], 5);

    let dup = api
        .call(
            &a,
            "POST",
            "/v1/sip-accounts",
            Some(json!({"username": "gw1", "password": "password-123"})),
        )
        .await;
    dup.assert_problem(409, "conflict");

    assert_eq!(api.call(&a, "DELETE", &path, None).await.status, 204);
    api.call(&a, "GET", &path, None)
        .await
        .assert_problem(404, "not-found");
}

#[tokio::test]
async fn operator_manages_applications() {
    let api = TestApi::new().await;
    let admin = TestApi::admin();
    let created = api
        .call(&admin, "POST", "/v1/apps", Some(json!({"name": "Support"})))
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let id = created.body["app"]["id"].as_str().unwrap();
    let listed = api.call(&admin, "GET", "/v1/apps", None).await;
    assert_eq!(listed.body["items"][0]["id"], id);
    let got = api
        .call(&admin, "GET", &format!("/v1/apps/{id}"), None)
        .await;
    assert_eq!(got.body["name"], "Support");
    assert!(got.body.get("api_secret").is_none());
    let upd = api
        .call(
            &admin,
            "PATCH",
            &format!("/v1/apps/{id}"),
            Some(json!({"name": "Sales", "disabled": true})),
        )
        .await;
    assert_eq!(upd.body["name"], "Sales");
    assert_eq!(upd.body["disabled"], true);
    api.call(&admin, "GET", "/v1/apps/app_nope", None)
        .await
        .assert_problem(404, "not-found");
}

#[tokio::test]
async fn trunks_crud_isolation_and_write_only_passwords() {
    let api = TestApi::new().await;
    let a = api.new_app("a").await;
    let b = api.new_app("b").await;
    let created = api
        .call(&a, "POST", "/v1/trunks", Some(json!({
            "name": "Carrier",
            "outbound": {"host": "SIP.Carrier.example", "username": "acct1", "password": "pw-123",
                         "register": true, "register_expires": 120,
                         "number_rules": [{"prefix": "0", "replace_with": "+49"}]},
            "inbound": {"allowed_cidrs": ["198.51.100.7/24"], "numbers": ["+4930123456"]}
        })))
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(created.body["outbound"]["host"], "sip.carrier.example");
    assert_eq!(created.body["outbound"]["has_password"], true);
    assert!(
        !created.text.contains("pw-123"),
        "passwords are never returned"
    );
    assert_eq!(
        created.body["inbound"]["allowed_cidrs"],
        json!(["198.51.100.0/24"])
    );
    let id = created.body["id"].as_str().unwrap();
    let path = format!("/v1/trunks/{id}");
    api.call(&b, "GET", &path, None)
        .await
        .assert_problem(404, "not-found");
    api.call(&b, "DELETE", &path, None)
        .await
        .assert_problem(404, "not-found");
    assert_eq!(
        api.call(&b, "GET", "/v1/trunks", None).await.body["items"],
        json!([])
    );

    // Replacing outbound without a password keeps the stored one.
    let patched = api
        .call(
            &a,
            "PATCH",
            &path,
            Some(json!({"outbound": {"host": "10.0.0.9", "port": 5070,
            "username": "acct1", "register": true}})),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.text);
    assert_eq!(patched.body["outbound"]["has_password"], true);
    assert_eq!(patched.body["outbound"]["port"], 5070);
    let inbound_only = api
        .call(&a, "PATCH", &path, Some(json!({"outbound": null})))
        .await;
    assert_eq!(inbound_only.body["outbound"], serde_json::Value::Null);
    assert_eq!(
        inbound_only.body["inbound"]["numbers"],
        json!(["+4930123456"])
    );

    for (body, field) in [
        (
            json!({"name": "x", "outbound": {"host": "sip://bad"}}),
            "outbound.host",
        ),
        (
            json!({"name": "x", "outbound": {"host": "h", "register": true}}),
            "outbound.username",
        ),
        (
            json!({"name": "x", "outbound": {"host": "h", "register_expires": 5}}),
            "outbound.register_expires",
        ),
        (
            json!({"name": "x", "outbound": {"host": "h", "caller_id": "abc"}}),
            "outbound.caller_id",
        ),
        (
            json!({"name": "x", "inbound": {"allowed_cidrs": ["nope"]}}),
            "inbound.allowed_cidrs[0]",
        ),
    ] {
        let r = api.call(&a, "POST", "/v1/trunks", Some(body)).await;
        r.assert_problem(422, "invalid-body");
        assert!(
            r.body["errors"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["field"] == field),
            "{}",
            r.text
        );
    }
    assert_eq!(api.call(&a, "DELETE", &path, None).await.status, 204);
}

/// What SIP tells applications apart by: one application cannot claim a network another's
/// trunk takes calls from, nor a user name SIP already authenticates (another trunk's inbound
/// user, a SIP account, an application's key).
#[tokio::test]
async fn one_application_cannot_take_another_ones_calls_or_logins() {
    let api = TestApi::new().await;
    let a = api.new_app("a").await;
    let b = api.new_app("b").await;
    let trunk = |cidrs: serde_json::Value, user: Option<&str>| {
        let mut inbound = json!({"allowed_cidrs": cidrs});
        if let Some(u) = user {
            inbound["username"] = json!(u);
            inbound["password"] = json!("a-long-password-1");
        }
        Some(json!({"name": "carrier", "inbound": inbound}))
    };
    let created = api
        .call(
            &a,
            "POST",
            "/v1/trunks",
            trunk(json!(["127.0.0.0/24"]), Some("carrier-a")),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    // B: a narrower network inside A's, a wider one, A's exact network: all refused.
    for cidrs in [
        json!(["127.0.0.77/32"]),
        json!(["127.0.0.0/16"]),
        json!(["127.0.0.0/24"]),
    ] {
        api.call(&b, "POST", "/v1/trunks", trunk(cidrs, None))
            .await
            .assert_problem(409, "conflict");
    }
    // No application may claim more than an IPv4 /16 or an IPv6 /32 in one network: the
    // first to claim the whole internet would have taken every other one's trunk calls.
    for cidrs in [
        json!(["0.0.0.0/0"]),
        json!(["::/0"]),
        json!(["10.0.0.0/15"]),
        json!(["2001:db8::/31"]),
        // The IPv4 internet written as IPv4-mapped IPv6: as wide as 0.0.0.0/0.
        json!(["::ffff:0.0.0.0/96"]),
    ] {
        api.call(&b, "POST", "/v1/trunks", trunk(cidrs, None))
            .await
            .assert_problem(422, "invalid-body");
    }
    // A itself may have several trunks on its networks; B another network.
    let again = api
        .call(&a, "POST", "/v1/trunks", trunk(json!(["127.0.0.5"]), None))
        .await;
    assert_eq!(again.status, 201, "{}", again.text);
    let other = api
        .call(
            &b,
            "POST",
            "/v1/trunks",
            trunk(json!(["10.0.0.0/16", "2001:db8::/32"]), None),
        )
        .await;
    assert_eq!(other.status, 201, "{}", other.text);
    // Nor may B's trunk grow into A's network afterwards.
    let path = format!("/v1/trunks/{}", other.body["id"].as_str().unwrap());
    api.call(
        &b,
        "PATCH",
        &path,
        Some(json!({"inbound": {"allowed_cidrs": ["127.0.0.9"]}})),
    )
    .await
    .assert_problem(409, "conflict");

    // User names: A's trunk user, A's key, a SIP account's user.
    api.call(
        &b,
        "POST",
        "/v1/trunks",
        trunk(json!([]), Some("carrier-a")),
    )
    .await
    .assert_problem(409, "conflict");
    let admin = TestApi::admin();
    for taken in ["carrier-a", a.key.as_str(), admin.key.as_str()] {
        api.call(
            &b,
            "POST",
            "/v1/sip-accounts",
            Some(json!({"username": taken, "password": "password-b-1"})),
        )
        .await
        .assert_problem(409, "conflict");
    }
    gateway_of_a(&api, &a).await;
    api.call(&b, "POST", "/v1/trunks", trunk(json!([]), Some("gw-a")))
        .await
        .assert_problem(409, "conflict");
}

/// Two applications claiming the same user name or network at the same moment: one gets it,
/// the other 409 (the check and the write are one step).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simultaneous_claims_of_two_applications_leave_one_owner() {
    let api = std::sync::Arc::new(TestApi::new().await);
    let a = api.new_app("a").await;
    let b = api.new_app("b").await;
    for round in 0..10 {
        let user_trunk = json!({"name": "p", "inbound": {
            "username": format!("pair-{round}"), "password": "a-long-password-1"}});
        let net_trunk = json!({"name": "p", "inbound": {
            "allowed_cidrs": [format!("10.{round}.0.0/16")]}});
        let account = json!({"username": format!("mix-{round}"), "password": "password-b-1"});
        let mixed_trunk = json!({"name": "p", "inbound": {
            "username": format!("mix-{round}"), "password": "a-long-password-1"}});
        for (path_a, body_a, path_b, body_b) in [
            ("/v1/trunks", &user_trunk, "/v1/trunks", &user_trunk),
            ("/v1/trunks", &net_trunk, "/v1/trunks", &net_trunk),
            ("/v1/trunks", &mixed_trunk, "/v1/sip-accounts", &account),
        ] {
            let (first, second) = tokio::join!(
                api.call(&a, "POST", path_a, Some(body_a.clone())),
                api.call(&b, "POST", path_b, Some(body_b.clone())),
            );
            let mut statuses = [first.status.as_u16(), second.status.as_u16()];
            statuses.sort_unstable();
            assert_eq!(statuses, [201, 409], "{} / {}", first.text, second.text);
        }
    }
}
