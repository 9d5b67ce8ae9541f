#![allow(clippy::unwrap_used, clippy::expect_used)] // Test code: a panic is a failed test.

//! Call detail records as CSV page on through their `Link` header, as the JSON list does
//! through `next_cursor`.

mod common;

use common::{Creds, TestApi};
use sipx_store::{CallEnd, CallProgress, CallRecord, new_call_id};

async fn ended_call(api: &TestApi, app_id: &str, to: &str, at_ms: i64) {
    let call = CallRecord {
        id: new_call_id(),
        app_id: app_id.to_owned(),
        direction: "outbound".to_owned(),
        from_uri: None,
        to_uri: to.to_owned(),
        route: None,
        room: Some("support".to_owned()),
        identity: None,
        webhook_url: None,
        created_at_ms: at_ms,
        progress: CallProgress {
            state: "DISCONNECTED".to_owned(),
            history: "[]".to_owned(),
            end: Some(CallEnd {
                code: 486,
                reason: "Busy Here".to_owned(),
                cause: "rejected".to_owned(),
                at_ms: at_ms + 1000,
            }),
            ..CallProgress::default()
        },
    };
    api.store.insert_call(&call).await.unwrap();
}

/// The `to` column of a CSV page's records.
fn callees(csv: &str) -> Vec<String> {
    csv.lines()
        .skip(1)
        .map(|l| l.split(',').nth(3).unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_csv_export_pages_on_through_its_link_header() {
    let api = TestApi::new().await;
    let (app, secret) = api.store.create_app("a").await.unwrap();
    let creds = Creds {
        key: app.api_key,
        secret: secret.expose().clone(),
    };
    let since = "2026-01-01T00:00:00+01:00";
    let start = 1_800_000_000_000; // 2027
    for (i, to) in ["+1001", "+1002", "+1003"].iter().enumerate() {
        ended_call(&api, &app.id, to, start + i as i64).await;
    }
    let first = api
        .call(
            &creds,
            "GET",
            &format!(
                "/v1/cdrs?format=csv&limit=2&since={}",
                since.replace('+', "%2B")
            ),
            None,
        )
        .await;
    assert_eq!(first.status.as_u16(), 200, "{}", first.text);
    let mut seen = callees(&first.text);
    assert_eq!(seen.len(), 2, "{}", first.text);
    let link = first.headers["link"].to_str().unwrap();
    let next = link
        .strip_prefix('<')
        .and_then(|l| l.strip_suffix(">; rel=\"next\""))
        .unwrap_or_else(|| panic!("{link}"));
    assert!(
        next.contains("limit=2") && next.contains("since=2026-01-01T00:00:00%2B01:00"),
        "{next}"
    );
    let second = api.call(&creds, "GET", next, None).await;
    assert_eq!(second.status.as_u16(), 200, "{}", second.text);
    seen.extend(callees(&second.text));
    seen.sort();
    assert_eq!(seen, ["+1001", "+1002", "+1003"], "each record once");
    assert!(
        second.headers.get("link").is_none(),
        "the last page links nowhere"
    );
}
