//! Request ids, request logs and HTTP metrics.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tower_http::request_id::{MakeRequestId, RequestId};

/// Request ids are ULIDs: unique, and sortable by time in logs.
#[derive(Clone, Copy, Default)]
pub struct MakeUlid;

impl MakeRequestId for MakeUlid {
    fn make_request_id<B>(&mut self, _: &axum::http::Request<B>) -> Option<RequestId> {
        HeaderValue::from_str(&ulid::Ulid::new().to_string())
            .ok()
            .map(RequestId::new)
    }
}

/// The process-wide Prometheus recorder, installed on first use.
///
/// `metrics` has one global recorder per process; every router built in the process (tests
/// build many) shares it.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    metrics_exporter_prometheus::Matcher::Suffix("duration_seconds".to_owned()),
                    &[
                        0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
                    ],
                )
                .unwrap_or_else(|_| PrometheusBuilder::new());
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            // Fails only if another recorder was installed first, in which case our handle
            // renders nothing but nothing breaks.
            let _ = metrics::set_global_recorder(recorder);
            metrics::describe_counter!(
                "sipx_http_requests_total",
                "HTTP requests by route, method and status"
            );
            metrics::describe_histogram!(
                "sipx_http_request_duration_seconds",
                metrics::Unit::Seconds,
                "HTTP request latency by route"
            );
            metrics::describe_gauge!(
                "sipx_build_info",
                "Build information; the value is always 1"
            );
            metrics::gauge!("sipx_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
            handle
        })
        .clone()
}

/// Logs each request in a span that carries its id, and counts it by route and status.
pub async fn observe(req: Request, next: Next) -> Response {
    let start = Instant::now();
    // The route template, not the raw path: ids in paths would make label sets unbounded.
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let method = req.method().clone();
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_owned();
    let span = tracing::info_span!("http", %method, %route, %request_id);
    let response = tracing::Instrument::instrument(next.run(req), span.clone()).await;
    let status = response.status().as_u16();
    let elapsed = start.elapsed();
    span.in_scope(|| {
        tracing::info!(status, elapsed_ms = elapsed.as_secs_f64() * 1e3, "request");
    });
    metrics::counter!("sipx_http_requests_total",
        "route" => route.clone(), "method" => method_label(&method), "status" => status.to_string())
    .increment(1);
    metrics::histogram!("sipx_http_request_duration_seconds", "route" => route)
        .record(elapsed.as_secs_f64());
    response
}

/// A method as a metric label: the standard ones by name, any other as `other` (a client may
/// send any token as a method, and each would be a new series on `/metrics`).
fn method_label(method: &axum::http::Method) -> &'static str {
    match method.as_str() {
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        "TRACE" => "TRACE",
        "CONNECT" => "CONNECT",
        _ => "other",
    }
}
