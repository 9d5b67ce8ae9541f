//! The JSON messages of the signalling WebSocket (docs/rooms-signalling.md).

use serde::{Deserialize, Serialize};

use crate::view::ParticipantView;

/// What a client sends.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    Offer { sdp: String },
    Answer { sdp: String },
    Mute { kind: TrackKind, muted: bool },
    Leave,
    Ping,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrackKind {
    Audio,
    Video,
}

/// One received m-line and whose media it carries.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TrackMapping {
    pub mid: String,
    pub participant: String,
    pub kind: TrackKind,
}

#[derive(Debug, Clone, Serialize)]
pub struct Speaker {
    pub identity: String,
    /// 0 (silence) to 1 (loudest).
    pub level: f32,
}

/// What the server sends.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    Welcome {
        room: String,
        participant: ParticipantView,
        participants: Vec<ParticipantView>,
    },
    Answer {
        sdp: String,
    },
    Offer {
        sdp: String,
    },
    Tracks {
        tracks: Vec<TrackMapping>,
    },
    ParticipantJoined {
        participant: ParticipantView,
    },
    ParticipantUpdated {
        participant: ParticipantView,
    },
    ParticipantLeft {
        identity: String,
        reason: LeaveReason,
    },
    Speaking {
        speakers: Vec<Speaker>,
    },
    Error {
        code: &'static str,
        message: String,
    },
    Pong,
    Closed {
        reason: LeaveReason,
    },
}

/// Why a participant is no longer in a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaveReason {
    /// It said so, or its connection closed.
    Left,
    /// Removed through the API.
    Removed,
    /// The phone call ended.
    Hangup,
    /// The same identity joined again.
    Replaced,
    RoomClosed,
    /// Its WebRTC session failed (ICE or DTLS gave up, or an internal error).
    Failed,
}

impl LeaveReason {
    pub fn as_str(self) -> &'static str {
        match self {
            LeaveReason::Left => "left",
            LeaveReason::Removed => "removed",
            LeaveReason::Hangup => "hangup",
            LeaveReason::Replaced => "replaced",
            LeaveReason::RoomClosed => "room_closed",
            LeaveReason::Failed => "failed",
        }
    }
}

impl ServerMessage {
    /// The message as a text frame. Serialising these types cannot fail (no maps with
    /// non-string keys, no custom serialisers), but a failure would give an `error` frame.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| {
            r#"{"type":"error","code":"internal","message":"unserialisable message"}"#.to_owned()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_messages_follow_the_document() {
        let m: ClientMessage = serde_json::from_str(r#"{"type":"offer","sdp":"v=0"}"#).unwrap();
        assert!(matches!(m, ClientMessage::Offer { sdp } if sdp == "v=0"));
        let m: ClientMessage =
            serde_json::from_str(r#"{"type":"mute","kind":"audio","muted":true,"extra":1}"#)
                .unwrap();
        assert!(matches!(
            m,
            ClientMessage::Mute {
                kind: TrackKind::Audio,
                muted: true
            }
        ));
        assert!(serde_json::from_str::<ClientMessage>(r#"{"type":"dance"}"#).is_err());
    }

    #[test]
    fn server_messages_are_tagged_snake_case() {
        let m = ServerMessage::ParticipantLeft {
            identity: "bob".into(),
            reason: LeaveReason::RoomClosed,
        };
        assert_eq!(
            m.to_json(),
            r#"{"type":"participant_left","identity":"bob","reason":"room_closed"}"#
        );
    }
}
