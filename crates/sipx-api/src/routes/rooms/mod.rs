//! `/v1/rooms`: the built-in rooms — create, list, read with participants, close, mint join
//! tokens, remove or mute a participant — and `/v1/rtc`, the browsers' signalling WebSocket.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use sipx_rooms::RoomError;
use sipx_rooms::view::{ParticipantKind, ParticipantView, RoomView};
use utoipa::ToSchema;

use crate::auth::Tenant;
use crate::extract::{ApiJson, ApiPath};
use crate::problem::ApiError;
use crate::room_service::RoomService;
use crate::state::ApiState;
use crate::time::rfc3339;

pub mod signalling;
pub mod token;

/// A room and who is in it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "name": "sales",
    "created_at": "2026-11-29T10:00:00.000Z",
    "auto_created": false,
    "participants": [{"identity": "alice", "name": "Alice", "kind": "browser",
        "tracks": [{"kind": "audio", "muted": false}, {"kind": "video", "muted": false}],
        "muted": false, "speaking": true, "call_id": null, "call_state": null,
        "joined_at": "2026-11-29T10:00:05.000Z"}]
}))]
pub struct Room {
    pub name: String,
    #[schema(format = DateTime)]
    pub created_at: String,
    /// Created by a first join rather than through the API.
    pub auto_created: bool,
    pub participants: Vec<Participant>,
}

/// Someone in a room: a browser (WebRTC) or a phone call.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"identity": "phone-12", "name": "+4930123456", "kind": "phone",
    "tracks": [{"kind": "audio", "muted": false}], "muted": false, "speaking": false,
    "call_id": "call_01jd8x4q3w5e6r7t8y9u0i1o2p", "call_state": "CONFIRMED",
    "joined_at": "2026-11-29T10:01:00.000Z"}))]
pub struct Participant {
    pub identity: String,
    pub name: String,
    /// `browser` or `phone`.
    #[schema(example = "browser")]
    pub kind: String,
    pub tracks: Vec<Track>,
    /// Its audio is not heard by the room.
    pub muted: bool,
    pub speaking: bool,
    /// For phones: the call it stands for, its `id` in `/v1/calls` (a call that has no
    /// record, an echo test's, gives its SIP Call-ID).
    pub call_id: Option<String>,
    /// For phones: where the call stands.
    pub call_state: Option<String>,
    #[schema(format = DateTime)]
    pub joined_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"kind": "audio", "muted": false}))]
pub struct Track {
    /// `audio` or `video`.
    #[schema(example = "audio")]
    pub kind: String,
    pub muted: bool,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"items": [{"name": "sales", "created_at": "2026-11-29T10:00:00.000Z",
    "auto_created": false, "participants": []}]}))]
pub struct RoomList {
    pub items: Vec<Room>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "sales"}))]
pub struct CreateRoom {
    /// 1–64 letters, digits, `-`, `_`, `.`, `@`, `+`; unique within the application.
    #[schema(example = "sales", pattern = r"^[A-Za-z0-9._@+-]{1,64}$")]
    pub name: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"muted": true}))]
pub struct MuteParticipant {
    pub muted: bool,
}

fn secs_to_rfc3339(secs: u64) -> String {
    rfc3339(
        i64::try_from(secs)
            .unwrap_or(i64::MAX / 1000)
            .saturating_mul(1000),
    )
}

pub(crate) fn participant_dto(p: ParticipantView) -> Participant {
    Participant {
        identity: p.identity,
        name: p.name,
        kind: match p.kind {
            ParticipantKind::Browser => "browser",
            ParticipantKind::Phone => "phone",
        }
        .to_owned(),
        tracks: p
            .tracks
            .into_iter()
            .map(|t| Track {
                kind: match t.kind {
                    sipx_rooms::signal::TrackKind::Audio => "audio",
                    sipx_rooms::signal::TrackKind::Video => "video",
                }
                .to_owned(),
                muted: t.muted,
            })
            .collect(),
        muted: p.muted,
        speaking: p.speaking,
        call_id: p.call_id,
        call_state: p.call_state,
        joined_at: secs_to_rfc3339(p.joined_at),
    }
}

fn room_dto(r: RoomView) -> Room {
    Room {
        name: r.name,
        created_at: secs_to_rfc3339(r.created_at),
        auto_created: r.auto_created,
        participants: r.participants.into_iter().map(participant_dto).collect(),
    }
}

pub(crate) fn room_error(e: RoomError) -> ApiError {
    match e {
        RoomError::NotFound => ApiError::NotFound("no such room".to_owned()),
        RoomError::AlreadyExists => ApiError::Conflict("a room with this name exists".to_owned()),
        RoomError::ParticipantNotFound => {
            ApiError::NotFound("no such participant in the room".to_owned())
        }
        RoomError::Full => ApiError::Conflict("the room is full".to_owned()),
        RoomError::IdentityTaken => {
            ApiError::Conflict("the identity is taken in the room".to_owned())
        }
        RoomError::InvalidName => ApiError::invalid_field("name", e.to_string()),
        e => ApiError::Internal(e.to_string()),
    }
}

pub(crate) fn rooms(state: &ApiState) -> Result<&dyn RoomService, ApiError> {
    state
        .rooms
        .as_deref()
        .ok_or_else(|| ApiError::Unavailable("the built-in rooms are disabled".to_owned()))
}

fn check_name(field: &str, name: &str) -> Result<(), ApiError> {
    if sipx_rooms::valid_name(name) {
        Ok(())
    } else {
        Err(ApiError::invalid_field(
            field,
            "1-64 letters, digits, '-', '_', '.', '@' or '+'",
        ))
    }
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Create a room
///
/// Rooms are also created by a first join when the server allows it (`rooms.auto_create`).
#[utoipa::path(post, path = "/v1/rooms", tag = "rooms", operation_id = "create_room",
    request_body = CreateRoom,
    responses(
        (status = 201, description = "Created", body = Room),
        (status = 409, description = "A room with this name exists", body = crate::problem::Problem,
            content_type = "application/problem+json"),
    ))]
pub async fn create(
    Tenant(app): Tenant,
    State(state): State<ApiState>,
    ApiJson(body): ApiJson<CreateRoom>,
) -> Result<(StatusCode, Json<Room>), ApiError> {
    check_name("name", &body.name)?;
    let room = rooms(&state)?
        .create(app.id, body.name)
        .await
        .map_err(room_error)?;
    Ok((StatusCode::CREATED, Json(room_dto(room))))
}

/// List rooms
#[utoipa::path(get, path = "/v1/rooms", tag = "rooms", operation_id = "list_rooms",
    responses((status = 200, description = "The application's rooms, by name", body = RoomList)))]
pub async fn list(
    Tenant(app): Tenant,
    State(state): State<ApiState>,
) -> Result<Json<RoomList>, ApiError> {
    let items = rooms(&state)?.list(app.id).await;
    Ok(Json(RoomList {
        items: items.into_iter().map(room_dto).collect(),
    }))
}

/// Get a room with its participants
#[utoipa::path(get, path = "/v1/rooms/{room}", tag = "rooms", operation_id = "get_room",
    params(("room" = String, Path, description = "Room name")),
    responses((status = 200, description = "The room", body = Room)))]
pub async fn get(
    Tenant(app): Tenant,
    State(state): State<ApiState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<Room>, ApiError> {
    let room = rooms(&state)?.get(app.id, name).await.map_err(room_error)?;
    Ok(Json(room_dto(room)))
}

/// Close a room
///
/// Everyone leaves: browsers are disconnected and phone participants' calls are hung up.
#[utoipa::path(delete, path = "/v1/rooms/{room}", tag = "rooms", operation_id = "close_room",
    params(("room" = String, Path, description = "Room name")),
    responses((status = 204, description = "Closed")))]
pub async fn close(
    Tenant(app): Tenant,
    State(state): State<ApiState>,
    ApiPath(name): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    rooms(&state)?
        .close(app.id, name)
        .await
        .map_err(room_error)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Remove a participant
///
/// A browser is disconnected; a phone participant's call is hung up (BYE, or CANCEL before
/// answer).
#[utoipa::path(delete, path = "/v1/rooms/{room}/participants/{identity}", tag = "rooms",
    operation_id = "remove_participant",
    params(("room" = String, Path, description = "Room name"),
        ("identity" = String, Path, description = "Participant identity")),
    responses((status = 204, description = "Removed")))]
pub async fn remove_participant(
    Tenant(app): Tenant,
    State(state): State<ApiState>,
    ApiPath((name, identity)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    rooms(&state)?
        .remove_participant(app.id, name, identity)
        .await
        .map_err(room_error)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Mute or unmute a participant's audio
///
/// A muted participant's audio is not forwarded to anyone (a phone keeps hearing the room).
#[utoipa::path(post, path = "/v1/rooms/{room}/participants/{identity}/mute", tag = "rooms",
    operation_id = "mute_participant",
    params(("room" = String, Path, description = "Room name"),
        ("identity" = String, Path, description = "Participant identity")),
    request_body = MuteParticipant,
    responses((status = 200, description = "The participant", body = Participant)))]
pub async fn mute(
    Tenant(app): Tenant,
    State(state): State<ApiState>,
    ApiPath((name, identity)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<MuteParticipant>,
) -> Result<Json<Participant>, ApiError> {
    let p = rooms(&state)?
        .mute(app.id, name, identity, body.muted)
        .await
        .map_err(room_error)?;
    Ok(Json(participant_dto(p)))
}

pub use token::create_token;
