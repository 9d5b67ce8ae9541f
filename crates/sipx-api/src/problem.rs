//! Every error the API answers is an RFC 9457 problem (`application/problem+json`).
//!
//! `type` values are stable URNs (`urn:sipx:problem:<slug>`) that clients can match on; `title`
//! is the human summary of the type, `detail` explains this occurrence. Internal errors are
//! logged with their cause and reach the client only as a generic 500.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// An RFC 9457 problem document.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "type": "urn:sipx:problem:unauthorized",
    "title": "Unauthorized",
    "status": 401,
    "detail": "the signature has expired"
}))]
pub struct Problem {
    /// Stable identifier of the problem type; match on this, not on `title` or `detail`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Short summary of the problem type.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong in this request.
    pub detail: String,
    /// Field-level validation errors, when the body was understood but refused.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(nullable = false)]
    pub errors: Vec<FieldError>,
}

/// One refused field.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({"field": "allowed_cidrs[0]", "message": "not an IP network (203.0.113.0/24) or address"}))]
pub struct FieldError {
    /// The field, as a JSON path (`name`, `allowed_cidrs[1]`).
    pub field: String,
    pub message: String,
}

/// The problems the API can answer. Each variant has one stable `type`.
#[derive(Debug)]
#[non_exhaustive]
pub enum ApiError {
    /// The body is not JSON, or the query/path is malformed.
    BadRequest(String),
    Unauthorized(String),
    Forbidden(String),
    NotFound(String),
    MethodNotAllowed,
    Conflict(String),
    PayloadTooLarge(String),
    /// The request's URI is longer than the server reads (answered by the HTTP layer).
    UriTooLong(String),
    /// The request's header fields are larger than the server reads (the HTTP layer too).
    HeadersTooLarge(String),
    UnsupportedMediaType(String),
    /// Well-formed JSON that does not fit the schema or the rules.
    Invalid(String, Vec<FieldError>),
    Unavailable(String),
    /// A bug or an infrastructure failure. The cause is logged, never sent.
    Internal(String),
}

impl ApiError {
    pub fn invalid_field(field: impl Into<String>, message: impl Into<String>) -> Self {
        let message = message.into();
        ApiError::Invalid(
            "the request body breaks a rule".to_owned(),
            vec![FieldError {
                field: field.into(),
                message,
            }],
        )
    }

    fn parts(&self) -> (StatusCode, &'static str, &'static str) {
        match self {
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad-request", "Bad request"),
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden", "Forbidden"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not-found", "Not found"),
            ApiError::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method not allowed",
            ),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict", "Conflict"),
            ApiError::PayloadTooLarge(_) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                "Payload too large",
            ),
            ApiError::UriTooLong(_) => (StatusCode::URI_TOO_LONG, "uri-too-long", "URI too long"),
            ApiError::HeadersTooLarge(_) => (
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "headers-too-large",
                "Request header fields too large",
            ),
            ApiError::UnsupportedMediaType(_) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
            ),
            ApiError::Invalid(..) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-body",
                "Invalid request body",
            ),
            ApiError::Unavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "Service unavailable",
            ),
            ApiError::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal server error",
            ),
        }
    }

    pub fn to_problem(&self) -> Problem {
        let (status, slug, title) = self.parts();
        let (detail, errors) = match self {
            ApiError::BadRequest(d)
            | ApiError::Unauthorized(d)
            | ApiError::Forbidden(d)
            | ApiError::NotFound(d)
            | ApiError::Conflict(d)
            | ApiError::PayloadTooLarge(d)
            | ApiError::UriTooLong(d)
            | ApiError::HeadersTooLarge(d)
            | ApiError::UnsupportedMediaType(d)
            | ApiError::Unavailable(d) => (d.clone(), Vec::new()),
            ApiError::MethodNotAllowed => (
                "this method is not allowed on this resource".to_owned(),
                Vec::new(),
            ),
            ApiError::Invalid(d, e) => (d.clone(), e.clone()),
            ApiError::Internal(_) => (
                "an internal error occurred; the request id identifies it in the logs".to_owned(),
                Vec::new(),
            ),
        };
        Problem {
            kind: format!("urn:sipx:problem:{slug}"),
            title: title.to_owned(),
            status: status.as_u16(),
            detail,
            errors,
        }
    }
}

/// Gathers every refused field of a body, so one answer lists them all.
#[derive(Debug, Default)]
pub(crate) struct Checker(Vec<FieldError>);

impl Checker {
    pub(crate) fn check(&mut self, ok: bool, field: impl Into<String>, message: &str) {
        if !ok {
            self.0.push(FieldError {
                field: field.into(),
                message: message.to_owned(),
            });
        }
    }

    /// The refused fields so far, for a handler that gathers them itself.
    pub(crate) fn into_errors(self) -> Vec<FieldError> {
        self.0
    }

    /// `Err(422)` listing the refused fields, if any.
    pub(crate) fn done(self) -> Result<(), ApiError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Invalid(
                "the request body breaks a rule".to_owned(),
                self.0,
            ))
        }
    }
}

impl From<sipx_store::StoreError> for ApiError {
    fn from(e: sipx_store::StoreError) -> Self {
        match e {
            sipx_store::StoreError::Conflict(what) => {
                ApiError::Conflict(format!("this {what} is already taken"))
            }
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(cause) = &self {
            tracing::error!(%cause, "internal error");
        }
        let problem = self.to_problem();
        let status =
            StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut response = (status, body).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Sipx realm=\"sipx\""),
            );
        }
        response
    }
}
