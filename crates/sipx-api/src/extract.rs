//! Extractors that turn every rejection into a problem document instead of axum's plain text.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::problem::ApiError;
use crate::unique_keys::UniqueKeys;

/// JSON body. Syntax errors → 400, schema errors (types, unknown fields, not an object, a key
/// repeated in an object: `unique_keys`) → 422, wrong content type → 415, over the body
/// limit → 413.
///
/// Every request body of this API is a JSON object. serde's derive would also accept an array
/// for a struct (`[null, null]` as an all-absent PATCH), so the top level is checked first.
pub struct ApiJson<T>(pub T);

/// How long a request's whole body may take to arrive: a sender trickling it holds its
/// connection no longer (the headers have their own timeout, `http.header_timeout_secs`).
const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let read = axum::Json::<UniqueKeys>::from_request(req, state);
        let value = match tokio::time::timeout(BODY_TIMEOUT, read).await {
            Ok(Ok(axum::Json(UniqueKeys(v)))) => v,
            Ok(Err(rejection)) => return Err(json_rejection(rejection)),
            Err(_) => {
                return Err(ApiError::BadRequest(format!(
                    "the body did not arrive within {} s",
                    BODY_TIMEOUT.as_secs()
                )));
            }
        };
        if !value.is_object() {
            return Err(ApiError::Invalid(
                "the body must be a JSON object".to_owned(),
                Vec::new(),
            ));
        }
        serde_json::from_value(value).map(ApiJson).map_err(|e| {
            ApiError::Invalid(
                format!("the body does not match the schema: {e}"),
                Vec::new(),
            )
        })
    }
}

/// Refuses at once, with 413, a request whose `Content-Length` already says its body is over
/// the limit: reading it would only end in the same 413, or for a sender that never sends
/// it, a connection held for the whole body timeout.
pub(crate) async fn refuse_declared_oversize(
    axum::extract::State(limit): axum::extract::State<usize>,
    req: Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let declared = req
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return ApiError::PayloadTooLarge("the body exceeds the size limit".to_owned())
            .into_response();
    }
    next.run(req).await
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::JsonDataError(e) => ApiError::Invalid(
            format!(
                "the body does not match the schema: {}",
                std::error::Error::source(&e).map_or_else(|| e.body_text(), |s| s.to_string())
            ),
            Vec::new(),
        ),
        JsonRejection::JsonSyntaxError(e) => ApiError::BadRequest(format!(
            "the body is not valid JSON: {}",
            std::error::Error::source(&e).map_or_else(|| e.body_text(), |s| s.to_string())
        )),
        JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType(
            "send the body as JSON with `Content-Type: application/json`".to_owned(),
        ),
        JsonRejection::BytesRejection(e) => {
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge("the body exceeds the size limit".to_owned())
            } else {
                ApiError::BadRequest(format!("the body could not be read: {}", e.body_text()))
            }
        }
        other => ApiError::BadRequest(other.body_text()),
    }
}

/// Query string. Malformed → 400.
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| ApiQuery(q.0))
            .map_err(|e: QueryRejection| {
                ApiError::BadRequest(format!("invalid query string: {}", e.body_text()))
            })
    }
}

/// Path parameters. Malformed → 400.
pub struct ApiPath<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| ApiPath(p.0))
            .map_err(|e: PathRejection| {
                ApiError::BadRequest(format!("invalid path: {}", e.body_text()))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_body_that_never_finishes_is_refused_after_the_timeout() {
        let never = futures_util::stream::pending::<Result<axum::body::Bytes, std::io::Error>>();
        let req = Request::builder()
            .method("POST")
            .header("content-type", "application/json")
            .body(axum::body::Body::from_stream(never))
            .unwrap();
        let started = tokio::time::Instant::now();
        let r = ApiJson::<serde_json::Value>::from_request(req, &()).await;
        assert!(
            matches!(&r, Err(ApiError::BadRequest(m)) if m.contains("did not arrive")),
            "{:?}",
            r.err()
        );
        assert_eq!(started.elapsed(), BODY_TIMEOUT);
    }
}
