//! A real router over a real SQLite database in a temporary directory; requests go through
//! `tower::ServiceExt::oneshot`, the same stack a socket would reach.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use sipx_api::{AdminCredential, ApiState, AuthSettings, Health};
use sipx_secrets::{MasterKey, Redacted};
use sipx_store::Store;
use tower::ServiceExt;

pub const ADMIN_KEY: &str = "operator";
pub const ADMIN_SECRET: &str = "operator-secret-0123456789";

pub struct TestApi {
    pub router: Router,
    pub store: Store,
    /// The bus the API publishes to, for publishing as the SIP core would.
    pub events: sipx_api::EventBus,
    /// What the webhook dispatcher would receive (no dispatcher runs in these tests).
    pub dispatch: tokio::sync::Mutex<sipx_api::events::DispatchQueue>,
    _dir: tempfile::TempDir,
}

pub struct Creds {
    pub key: String,
    pub secret: String,
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub content_type: String,
    pub request_id: Option<String>,
    pub body: Value,
    pub text: String,
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

impl TestApi {
    pub async fn new() -> Self {
        Self::with_body_limit(sipx_api::DEFAULT_BODY_LIMIT).await
    }

    pub async fn with_body_limit(limit: usize) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("sipx.db"), MasterKey::generate().0)
            .await
            .unwrap();
        let (events, dispatch) = sipx_api::EventBus::new();
        let state = ApiState {
            store: store.clone(),
            auth: Arc::new(AuthSettings {
                max_expiry_ahead: Duration::from_secs(86_400),
                room_token_max_ttl: Duration::from_secs(86_400),
                admin: Some(AdminCredential {
                    api_key: ADMIN_KEY.to_owned(),
                    api_secret: Redacted::new(ADMIN_SECRET.to_owned()),
                }),
            }),
            metrics: sipx_api::metrics_handle(),
            health: Health::default(),
            runtime: sipx_api::Runtime::default(),
            g729: false,
            rooms: None,
            calls: None,
            events: events.clone(),
            sockets: Default::default(),
        };
        TestApi {
            router: sipx_api::router(state, limit),
            store,
            events,
            dispatch: tokio::sync::Mutex::new(dispatch),
            _dir: dir,
        }
    }

    pub async fn new_app(&self, name: &str) -> Creds {
        let (app, secret) = self.store.create_app(name).await.unwrap();
        Creds {
            key: app.api_key,
            secret: secret.expose().clone(),
        }
    }

    pub fn admin() -> Creds {
        Creds {
            key: ADMIN_KEY.to_owned(),
            secret: ADMIN_SECRET.to_owned(),
        }
    }

    pub async fn send(&self, req: Request<Body>) -> Reply {
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let content_type = resp
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let request_id = resp
            .headers()
            .get("x-request-id")
            .map(|v| v.to_str().unwrap().to_owned());
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            content_type,
            request_id,
            body,
            text,
        }
    }

    /// A request signed in its query string.
    pub async fn call(
        &self,
        creds: &Creds,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Reply {
        let mut req = Request::builder().method(method).uri(signed(creds, path));
        let body = match body {
            Some(v) => {
                req = req.header("content-type", "application/json");
                Body::from(v.to_string())
            }
            None => Body::empty(),
        };
        self.send(req.body(body).unwrap()).await
    }
}

/// `path` with a signature in its query string.
pub fn signed(creds: &Creds, path: &str) -> String {
    let expire = (now() + 600).to_string();
    let sig = sipx_secrets::sign(&creds.key, &expire, creds.secret.as_bytes());
    let sep = if path.contains('?') { '&' } else { '?' };
    format!(
        "{path}{sep}api_key={}&expire_at={expire}&signature={sig}",
        creds.key
    )
}

impl Reply {
    /// Asserts an RFC 9457 problem with this status and type slug.
    pub fn assert_problem(&self, status: u16, slug: &str) {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.text);
        assert_eq!(
            self.content_type, "application/problem+json",
            "body: {}",
            self.text
        );
        assert_eq!(
            self.body["type"],
            format!("urn:sipx:problem:{slug}"),
            "body: {}",
            self.text
        );
        assert_eq!(self.body["status"], status);
        assert!(self.body["title"].is_string() && self.body["detail"].is_string());
    }
}
