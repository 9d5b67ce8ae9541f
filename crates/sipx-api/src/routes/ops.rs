//! Operations endpoints: liveness, readiness, metrics. No authentication: they reveal nothing
//! about tenants, and probes and scrapers rarely sign requests.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::problem::ApiError;
use crate::state::ApiState;

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"status": "ok", "version": "0.1.0"}))]
pub struct Health {
    /// `ok` when the process is serving.
    #[schema(example = "ok")]
    pub status: String,
    #[schema(example = "0.1.0")]
    pub version: String,
}

/// Liveness probe
///
/// Answers 200 while the process is serving HTTP.
#[utoipa::path(get, path = "/healthz", tag = "operations", operation_id = "healthz", security(()),
    responses((status = 200, description = "Alive", body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
    })
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"status": "ready", "checks": {"database": "ok", "http": "ok"}}))]
pub struct Readiness {
    /// `ready` or `not-ready`.
    pub status: String,
    /// Each dependency and listener: `ok`, `down`, or `draining`.
    pub checks: BTreeMap<String, String>,
}

/// Readiness probe
///
/// 200 when the database answers and every enabled listener is bound; 503 otherwise, and
/// while the service drains for shutdown.
#[utoipa::path(get, path = "/readyz", tag = "operations", operation_id = "readyz", security(()),
    responses(
        (status = 200, description = "Ready to take work", body = Readiness),
        (status = 503, description = "Not ready", body = Readiness),
    ))]
pub async fn readyz(State(state): State<ApiState>) -> Response {
    let mut checks = BTreeMap::new();
    let db = state.store.ping().await.is_ok();
    checks.insert(
        "database".to_owned(),
        if db { "ok" } else { "down" }.to_owned(),
    );
    let mut all = db;
    for (name, up) in state.health.listeners() {
        all &= up;
        checks.insert(name, if up { "ok" } else { "down" }.to_owned());
    }
    if state.health.is_draining() {
        all = false;
        checks.insert("drain".to_owned(), "draining".to_owned());
    }
    let status = if all {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = Readiness {
        status: if all { "ready" } else { "not-ready" }.to_owned(),
        checks,
    };
    (status, Json(body)).into_response()
}

/// Prometheus metrics
///
/// Text exposition format: HTTP requests by route and status, request durations, build info.
#[utoipa::path(get, path = "/metrics", tag = "operations", operation_id = "metrics", security(()),
    responses((status = 200, description = "Metrics in Prometheus text format",
        content_type = "text/plain", body = String,
        example = json!("# TYPE sipx_build_info gauge\nsipx_build_info{version=\"0.1.0\"} 1\n"))))]
pub async fn metrics(State(state): State<ApiState>) -> Response {
    state.metrics.run_upkeep();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

/// Fallback for unknown paths.
pub async fn not_found() -> ApiError {
    ApiError::NotFound("no such resource".to_owned())
}

/// Swagger UI answers a file it does not have with an empty 404: the API's problem document
/// instead, as for any other unknown path.
pub async fn bare_not_found_as_problem(response: Response) -> Response {
    if response.status() == StatusCode::NOT_FOUND
        && !response.headers().contains_key(header::CONTENT_TYPE)
    {
        return not_found().await.into_response();
    }
    response
}

/// Fallback for known paths with a method they do not take.
pub async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
