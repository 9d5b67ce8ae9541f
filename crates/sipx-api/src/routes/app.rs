//! `/v1/app`: the calling application's view of itself, and the settings it manages itself.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use sipx_store::AppUpdate;
use utoipa::ToSchema;

use crate::auth::Tenant;
use crate::extract::ApiJson;
use crate::problem::ApiError;
use crate::routes::apps::{App, checked_webhook_url};
use crate::state::ApiState;

/// The calling application
///
/// Who the signature belongs to: a quick way to check credentials.
#[utoipa::path(get, path = "/v1/app", tag = "apps", operation_id = "get_current_app",
    responses((status = 200, description = "The application that signed the request", body = App)))]
pub async fn current(Tenant(app): Tenant) -> Json<App> {
    Json(app.into())
}

/// Absent fields are left unchanged; `"webhook_url": null` removes the webhook.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"webhook_url": "https://example.com/sipx-events"}))]
pub struct UpdateCurrentApp {
    /// Where the application's events are POSTed: an `http://` or `https://` URL without
    /// credentials, at most 2048 characters.
    #[serde(default, deserialize_with = "super::present")]
    #[schema(max_length = 2048)]
    pub webhook_url: Option<Option<String>>,
}

/// Update the calling application
///
/// Sets or removes its webhook URL. Try a receiver with `POST /v1/webhooks/test`.
#[utoipa::path(patch, path = "/v1/app", tag = "apps", operation_id = "update_current_app",
    request_body = UpdateCurrentApp,
    responses((status = 200, description = "The updated application", body = App)))]
pub async fn update_current(
    Tenant(app): Tenant,
    State(state): State<ApiState>,
    ApiJson(body): ApiJson<UpdateCurrentApp>,
) -> Result<Json<App>, ApiError> {
    let update = AppUpdate {
        webhook_url: checked_webhook_url(body.webhook_url)?,
        ..AppUpdate::default()
    };
    state
        .store
        .update_app(&app.id, &update)
        .await?
        .map(|a| Json(a.into()))
        .ok_or_else(|| ApiError::NotFound("no such application".to_owned()))
}
