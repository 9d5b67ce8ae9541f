//! `/v1/apps`: applications (tenants), managed by the operator.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use sipx_store::{AppRecord, AppUpdate};
use utoipa::ToSchema;

use crate::auth::Admin;
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::pagination::{ListParams, encode_cursor};
use crate::problem::ApiError;
use crate::state::ApiState;
use crate::time::rfc3339;

/// An application: a tenant with its own API credentials and objects.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "app_01jdx3n5k8q2r7t9v4w6y8z0ab",
    "name": "Support line",
    "api_key": "k3m9q2x7v4n8p1r5t6w0",
    "disabled": false,
    "webhook_url": "https://example.com/sipx-events",
    "created_at": "2026-11-28T10:00:00.000Z",
    "updated_at": "2026-11-28T10:00:00.000Z"
}))]
pub struct App {
    pub id: String,
    pub name: String,
    /// Public half of the credential; also the SIP user name for first-SIPx-style gateways.
    pub api_key: String,
    /// A disabled application's requests answer 403.
    pub disabled: bool,
    /// Where the application's events are POSTed (signed; see docs/webhooks.md); null:
    /// nowhere. A call's own webhook URL takes precedence for its events.
    pub webhook_url: Option<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
}

impl From<AppRecord> for App {
    fn from(r: AppRecord) -> Self {
        App {
            id: r.id,
            name: r.name,
            api_key: r.api_key,
            disabled: r.disabled,
            webhook_url: r.webhook_url,
            created_at: rfc3339(r.created_at_ms),
            updated_at: rfc3339(r.updated_at_ms),
        }
    }
}

/// An application with its secret, shown once at creation or rotation.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "app": {
        "id": "app_01jdx3n5k8q2r7t9v4w6y8z0ab",
        "name": "Support line",
        "api_key": "k3m9q2x7v4n8p1r5t6w0",
        "disabled": false,
        "webhook_url": null,
        "created_at": "2026-11-28T10:00:00.000Z",
        "updated_at": "2026-11-28T10:00:00.000Z"
    },
    "api_secret": "Qm4v8ZrT2kLw9XcN5pHs7Jd3Fb6Gy1Ae0Ru2Io4Ka"
}))]
pub struct AppWithSecret {
    pub app: App,
    /// Keep it safe: SIPx never shows it again.
    #[schema(example = "Qm4v8ZrT2kLw9XcN5pHs7Jd3Fb6Gy1Ae0Ru2Io4Ka")]
    pub api_secret: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Support line"}))]
pub struct CreateApp {
    /// 1–100 characters.
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
}

/// Absent fields are left unchanged; `"webhook_url": null` removes the webhook.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"disabled": true}))]
pub struct UpdateApp {
    #[serde(default, deserialize_with = "super::not_null")]
    #[schema(min_length = 1, max_length = 100, nullable = false)]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "super::not_null")]
    #[schema(nullable = false)]
    pub disabled: Option<bool>,
    /// An `http://` or `https://` URL without credentials, at most 2048 characters.
    #[serde(default, deserialize_with = "super::present")]
    #[schema(max_length = 2048)]
    pub webhook_url: Option<Option<String>>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "items": [{
        "id": "app_01jdx3n5k8q2r7t9v4w6y8z0ab",
        "name": "Support line",
        "api_key": "k3m9q2x7v4n8p1r5t6w0",
        "disabled": false,
        "webhook_url": null,
        "created_at": "2026-11-28T10:00:00.000Z",
        "updated_at": "2026-11-28T10:00:00.000Z"
    }],
    "next_cursor": null
}))]
pub struct AppList {
    pub items: Vec<App>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

pub(crate) fn check_name(name: &str) -> Result<(), ApiError> {
    let n = name.chars().count();
    if n == 0 || n > 100 {
        return Err(ApiError::invalid_field(
            "name",
            "must be 1 to 100 characters",
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(ApiError::invalid_field(
            "name",
            "must not contain control characters",
        ));
    }
    Ok(())
}

/// A PATCH's `webhook_url`, checked: absent stays absent, null clears.
pub(crate) fn checked_webhook_url(
    url: Option<Option<String>>,
) -> Result<Option<Option<String>>, ApiError> {
    match url {
        Some(Some(url)) => Ok(Some(Some(super::webhooks::check_webhook_url(
            "webhook_url",
            &url,
        )?))),
        other => Ok(other),
    }
}

/// Create an application
///
/// Creates a tenant with a new `api_key`/`api_secret` pair. The secret is in this answer only.
#[utoipa::path(post, path = "/v1/apps", tag = "apps", operation_id = "create_app",
    request_body = CreateApp,
    responses((status = 201, description = "Created", body = AppWithSecret)))]
pub async fn create(
    _: Admin,
    State(state): State<ApiState>,
    ApiJson(body): ApiJson<CreateApp>,
) -> Result<(StatusCode, Json<AppWithSecret>), ApiError> {
    check_name(&body.name)?;
    let (app, secret) = state.store.create_app(&body.name).await?;
    tracing::info!(app_id = %app.id, "application created");
    Ok((
        StatusCode::CREATED,
        Json(AppWithSecret {
            app: app.into(),
            api_secret: secret.expose().clone(),
        }),
    ))
}

/// List applications
#[utoipa::path(get, path = "/v1/apps", tag = "apps", operation_id = "list_apps",
    params(ListParams),
    responses((status = 200, description = "One page of applications", body = AppList)))]
pub async fn list(
    _: Admin,
    State(state): State<ApiState>,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<AppList>, ApiError> {
    let page = state.store.list_apps(&params.to_page_request()?).await?;
    Ok(Json(AppList {
        items: page.items.into_iter().map(App::from).collect(),
        next_cursor: page.next_after.as_deref().map(encode_cursor),
    }))
}

/// Get an application
#[utoipa::path(get, path = "/v1/apps/{app_id}", tag = "apps", operation_id = "get_app",
    params(("app_id" = String, Path, description = "Application id")),
    responses((status = 200, description = "The application", body = App)))]
pub async fn get(
    _: Admin,
    State(state): State<ApiState>,
    ApiPath(app_id): ApiPath<String>,
) -> Result<Json<App>, ApiError> {
    state
        .store
        .get_app(&app_id)
        .await?
        .map(|a| Json(a.into()))
        .ok_or_else(|| ApiError::NotFound("no such application".to_owned()))
}

/// Update an application
///
/// Renames it, disables/enables it, or sets its webhook URL. A disabled application's
/// requests answer 403.
#[utoipa::path(patch, path = "/v1/apps/{app_id}", tag = "apps", operation_id = "update_app",
    params(("app_id" = String, Path, description = "Application id")),
    request_body = UpdateApp,
    responses((status = 200, description = "The updated application", body = App)))]
pub async fn update(
    _: Admin,
    State(state): State<ApiState>,
    ApiPath(app_id): ApiPath<String>,
    ApiJson(body): ApiJson<UpdateApp>,
) -> Result<Json<App>, ApiError> {
    if let Some(name) = &body.name {
        check_name(name)?;
    }
    let update = AppUpdate {
        name: body.name,
        disabled: body.disabled,
        webhook_url: checked_webhook_url(body.webhook_url)?,
    };
    state
        .store
        .update_app(&app_id, &update)
        .await?
        .map(|a| Json(a.into()))
        .ok_or_else(|| ApiError::NotFound("no such application".to_owned()))
}

/// Rotate an application's secret
///
/// Issues a new `api_secret`; the old one stops working at once.
#[utoipa::path(post, path = "/v1/apps/{app_id}/rotate-secret", tag = "apps",
    operation_id = "rotate_app_secret",
    params(("app_id" = String, Path, description = "Application id")),
    responses((status = 200, description = "The new secret", body = AppWithSecret)))]
pub async fn rotate_secret(
    _: Admin,
    State(state): State<ApiState>,
    ApiPath(app_id): ApiPath<String>,
) -> Result<Json<AppWithSecret>, ApiError> {
    let (app, secret) = state
        .store
        .rotate_app_secret(&app_id)
        .await?
        .ok_or_else(|| ApiError::NotFound("no such application".to_owned()))?;
    tracing::info!(app_id = %app.id, "application secret rotated");
    Ok(Json(AppWithSecret {
        app: app.into(),
        api_secret: secret.expose().clone(),
    }))
}
