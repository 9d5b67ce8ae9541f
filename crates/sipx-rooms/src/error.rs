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
    /// Another participant has the identity, and one of the two is a phone: a browser only
    /// ever replaces a browser (its own reconnection), never a live call.
    #[error("the identity is taken in the room")]
    IdentityTaken,
    #[error("names are 1-64 letters, digits, '-', '_', '.', '@' or '+'")]
    InvalidName,
    #[error("internal error: {0}")]
    Internal(String),
}
