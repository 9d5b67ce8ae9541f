//! What the outside sees of rooms and participants: the API's reads and the signalling
//! messages share these.

use serde::Serialize;

use crate::signal::TrackKind;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ParticipantKind {
    Browser,
    Phone,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TrackView {
    pub kind: TrackKind,
    pub muted: bool,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ParticipantView {
    pub identity: String,
    pub name: String,
    pub kind: ParticipantKind,
    pub tracks: Vec<TrackView>,
    /// Its audio is not forwarded (muted by itself or through the API).
    pub muted: bool,
    pub speaking: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call_state: Option<String>,
    /// Unix seconds.
    pub joined_at: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RoomView {
    pub name: String,
    /// Unix seconds.
    pub created_at: u64,
    /// Made by a first join rather than by the API.
    pub auto_created: bool,
    pub participants: Vec<ParticipantView>,
}
