//! What a room operation can refuse.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RoomError {
    #[error("no such room")]
    NotFound,
    #[error("the room already exists")]
    AlreadyExists,
    #[error("no such participant in the room")]
    ParticipantNotFound,
    #[error("the room is full")]
    Full,
    #[error("names are 1-64 letters, digits, '-', '_', '.', '@' or '+'")]
    InvalidName,
    #[error("internal error: {0}")]
    Internal(String),
}
