//! `/v1/app`: the calling application's view of itself.

use axum::Json;

use crate::auth::Tenant;
use crate::routes::apps::App;

/// The calling application
///
/// Who the signature belongs to: a quick way to check credentials.
#[utoipa::path(get, path = "/v1/app", tag = "apps", operation_id = "get_current_app",
    responses((status = 200, description = "The application that signed the request", body = App)))]
pub async fn current(Tenant(app): Tenant) -> Json<App> {
    Json(app.into())
}
