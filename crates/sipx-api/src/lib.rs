//! The HTTP Web API of SIPx. **The only crate that knows HTTP.**
//!
//! [`router`] builds the whole API from an [`ApiState`]; the server binds it to listeners and
//! tests drive it with `tower::ServiceExt::oneshot`, no socket needed.

pub mod auth;
pub mod call_service;
pub mod events;
mod extract;
mod observe;
pub mod openapi;
mod pagination;
pub mod problem;
pub mod room_service;
mod routes;
pub mod socket_stop;

pub use routes::number_rules::stored_number_rules;
pub use routes::sip_claims::too_wide_to_claim;
pub mod state;
mod time;
mod unique_keys;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{PropagateRequestIdLayer, SetRequestIdLayer};

pub use events::{AppEvent, EventBus};
pub use observe::metrics_handle;
pub use state::{
    AdminCredential, ApiState, AuthSettings, BindingView, Health, Runtime, TrunkRegistrationState,
};

/// Default request body limit: 1 MiB.
pub const DEFAULT_BODY_LIMIT: usize = 1 << 20;

/// Builds the API.
pub fn router(state: ApiState, body_limit: usize) -> Router {
    use routes::{
        app, apps, calls, events, ops, registrations, rooms, routing_rules, sip_accounts, trunks,
        webhooks,
    };

    let spec: serde_json::Value =
        serde_json::from_str(&openapi::openapi_json()).unwrap_or(serde_json::Value::Null);
    let docs = Router::from(
        utoipa_swagger_ui::SwaggerUi::new("/docs").external_url_unchecked("/openapi.json", spec),
    )
    .layer(axum::middleware::map_response(
        ops::bare_not_found_as_problem,
    ));

    let api = Router::new()
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route("/v1/app", get(app::current).patch(app::update_current))
        .route("/v1/apps", post(apps::create).get(apps::list))
        .route("/v1/apps/{app_id}", get(apps::get).patch(apps::update))
        .route("/v1/apps/{app_id}/rotate-secret", post(apps::rotate_secret))
        .route(
            "/v1/sip-accounts",
            post(sip_accounts::create).get(sip_accounts::list),
        )
        .route(
            "/v1/sip-accounts/{sip_account_id}",
            get(sip_accounts::get)
                .patch(sip_accounts::update)
                .delete(sip_accounts::delete),
        )
        .route("/v1/registrations", get(registrations::list))
        .route("/v1/trunks", post(trunks::create).get(trunks::list))
        .route(
            "/v1/trunks/{trunk_id}",
            get(trunks::get)
                .patch(trunks::update)
                .delete(trunks::delete),
        )
        .route(
            "/v1/routing-rules",
            post(routing_rules::create).get(routing_rules::list),
        )
        .route(
            "/v1/routing-rules/{rule_id}",
            get(routing_rules::get)
                .patch(routing_rules::update)
                .delete(routing_rules::delete),
        )
        .route("/v1/rooms", post(rooms::create).get(rooms::list))
        .route("/v1/rooms/{room}", get(rooms::get).delete(rooms::close))
        .route("/v1/rooms/{room}/tokens", post(rooms::create_token))
        .route(
            "/v1/rooms/{room}/participants/{identity}",
            axum::routing::delete(rooms::remove_participant),
        )
        .route(
            "/v1/rooms/{room}/participants/{identity}/mute",
            post(rooms::mute),
        )
        .route("/v1/rtc", get(rooms::signalling::connect))
        .route("/v1/calls", post(calls::create).get(calls::list))
        .route("/v1/calls/{call_id}", get(calls::get).delete(calls::hangup))
        .route("/v1/calls/{call_id}/dtmf", post(calls::send_dtmf))
        .route("/v1/calls/{call_id}/mute", post(calls::mute))
        .route("/v1/calls/{call_id}/transfer", post(calls::transfer))
        .route("/v1/cdrs", get(calls::cdrs::list))
        .route("/v1/events", get(events::stream))
        .route("/v1/webhook-deliveries", get(webhooks::list))
        .route("/v1/webhook-deliveries/{delivery_id}", get(webhooks::get))
        .route("/v1/webhooks/test", post(webhooks::test))
        .method_not_allowed_fallback(ops::method_not_allowed)
        .with_state(state);

    Router::new()
        .merge(docs)
        .merge(api)
        .merge(routes::web::router())
        .fallback(ops::not_found)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn_with_state(
            body_limit,
            extract::refuse_declared_oversize,
        ))
        .layer(axum::middleware::from_fn(observe::observe))
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::x_request_id(observe::MakeUlid))
                .layer(PropagateRequestIdLayer::x_request_id())
                .layer(CatchPanicLayer::custom(|_| {
                    use axum::response::IntoResponse;
                    problem::ApiError::Internal("handler panicked".to_owned()).into_response()
                })),
        )
}
