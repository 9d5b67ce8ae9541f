#![allow(clippy::unwrap_used, clippy::expect_used)] // Test code: a panic is a failed test.

//! Signature checks over the whole HTTP stack: every way a credential can be wrong answers 401
//! with a problem document; a right one passes.

mod common;

use axum::body::Body;
use axum::http::Request;
use common::{TestApi, now};

fn get(uri: &str, auth: Option<&str>) -> Request<Body> {
    let mut b = Request::builder().uri(uri);
    if let Some(a) = auth {
        b = b.header("authorization", a);
    }
    b.body(Body::empty()).unwrap()
}

#[tokio::test]
async fn signed_requests_pass_in_query_and_header() {
    let api = TestApi::new().await;
    let c = api.new_app("a").await;
    let exp = (now() + 300).to_string();
    let sig = sipx_secrets::sign(&c.key, &exp, c.secret.as_bytes());

    let r = api
        .send(get(
            &format!("/v1/app?api_key={}&expire_at={exp}&signature={sig}", c.key),
            None,
        ))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["api_key"], c.key);

    let header = format!("Sipx api_key={}, expire_at={exp}, signature={sig}", c.key);
    let r = api.send(get("/v1/app", Some(&header))).await;
    assert_eq!(r.status, 200, "{}", r.text);
}

#[tokio::test]
async fn every_bad_credential_answers_401_problem() {
    let api = TestApi::new().await;
    let c = api.new_app("a").await;
    let other = api.new_app("b").await;
    let exp = (now() + 300).to_string();
    let sign = |key: &str, exp: &str, secret: &str| sipx_secrets::sign(key, exp, secret.as_bytes());
    let good = sign(&c.key, &exp, &c.secret);
    let past = (now() - 1).to_string();
    let far = (now() + 86_400 + 120).to_string();
    let mut tampered = good.clone();
    tampered.replace_range(0..1, if good.starts_with('A') { "B" } else { "A" });

    let cases: Vec<(&str, String)> = vec![
        ("missing", "/v1/app".to_owned()),
        (
            "missing signature",
            format!("/v1/app?api_key={}&expire_at={exp}", c.key),
        ),
        (
            "wrong signature",
            format!(
                "/v1/app?api_key={}&expire_at={exp}&signature={}",
                c.key,
                sign(&c.key, &exp, "nope")
            ),
        ),
        (
            "expired",
            format!(
                "/v1/app?api_key={}&expire_at={past}&signature={}",
                c.key,
                sign(&c.key, &past, &c.secret)
            ),
        ),
        (
            "far future",
            format!(
                "/v1/app?api_key={}&expire_at={far}&signature={}",
                c.key,
                sign(&c.key, &far, &c.secret)
            ),
        ),
        (
            "unknown key",
            format!(
                "/v1/app?api_key=nosuchkey&expire_at={exp}&signature={}",
                sign("nosuchkey", &exp, &c.secret)
            ),
        ),
        (
            "other app's key with own secret",
            format!(
                "/v1/app?api_key={}&expire_at={exp}&signature={}",
                other.key,
                sign(&other.key, &exp, &c.secret)
            ),
        ),
        (
            "tampered signature",
            format!(
                "/v1/app?api_key={}&expire_at={exp}&signature={tampered}",
                c.key
            ),
        ),
        (
            "tampered expire_at",
            format!(
                "/v1/app?api_key={}&expire_at={}&signature={good}",
                c.key,
                now() + 301
            ),
        ),
        (
            "non-numeric expire_at",
            format!("/v1/app?api_key={}&expire_at=soon&signature={good}", c.key),
        ),
        (
            "app key on admin route",
            format!(
                "/v1/apps?api_key={}&expire_at={exp}&signature={good}",
                c.key
            ),
        ),
    ];
    for (what, uri) in cases {
        let r = api.send(get(&uri, None)).await;
        assert_eq!(r.status, 401, "{what}: {}", r.text);
        r.assert_problem(401, "unauthorized");
    }
    for header in ["Bearer abc", "Sipx api_key=x", "Sipx garbage"] {
        api.send(get("/v1/app", Some(header)))
            .await
            .assert_problem(401, "unauthorized");
    }
}

#[tokio::test]
async fn disabled_application_is_forbidden() {
    let api = TestApi::new().await;
    let c = api.new_app("a").await;
    let app = api.store.find_app(&c.key).await.unwrap().remove(0);
    let upd = sipx_store::AppUpdate {
        disabled: Some(true),
        ..sipx_store::AppUpdate::default()
    };
    api.store.update_app(&app.id, &upd).await.unwrap();
    api.call(&c, "GET", "/v1/app", None)
        .await
        .assert_problem(403, "forbidden");
}

#[tokio::test]
async fn rotated_secret_replaces_the_old_one() {
    let api = TestApi::new().await;
    let admin = TestApi::admin();
    let created = api
        .call(
            &admin,
            "POST",
            "/v1/apps",
            Some(serde_json::json!({"name": "x"})),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let old = common::Creds {
        key: created.body["app"]["api_key"].as_str().unwrap().to_owned(),
        secret: created.body["api_secret"].as_str().unwrap().to_owned(),
    };
    assert_eq!(api.call(&old, "GET", "/v1/app", None).await.status, 200);
    let id = created.body["app"]["id"].as_str().unwrap();
    let rotated = api
        .call(
            &admin,
            "POST",
            &format!("/v1/apps/{id}/rotate-secret"),
            None,
        )
        .await;
    assert_eq!(rotated.status, 200, "{}", rotated.text);
    api.call(&old, "GET", "/v1/app", None)
        .await
        .assert_problem(401, "unauthorized");
    let new = common::Creds {
        key: old.key.clone(),
        secret: rotated.body["api_secret"].as_str().unwrap().to_owned(),
    };
    assert_eq!(api.call(&new, "GET", "/v1/app", None).await.status, 200);
}

#[tokio::test]
async fn responses_carry_a_request_id() {
    let api = TestApi::new().await;
    let r = api.send(get("/healthz", None)).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.request_id.as_deref().map(str::len), Some(26));
    let mut req = get("/healthz", None);
    req.headers_mut()
        .insert("x-request-id", "client-chosen-id".parse().unwrap());
    assert_eq!(
        api.send(req).await.request_id.as_deref(),
        Some("client-chosen-id")
    );
}
