//! What the API needs of the rooms (the rooms thread lives in `sipx-server`): a trait, so this
//! crate stays free of threads and sockets and tests can run the API without rooms.

use std::future::Future;
use std::pin::Pin;

use sipx_rooms::view::{ParticipantView, RoomView};
use sipx_rooms::{JoinRequest, ParticipantId, RoomError};
use tokio::sync::mpsc;

pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// A browser's signalling session: its id and the text frames the rooms send it. The channel
/// closes when the rooms are done with it (it left, was removed or replaced).
pub struct SignalSession {
    pub id: ParticipantId,
    pub outgoing: mpsc::UnboundedReceiver<String>,
}

pub trait RoomService: Send + Sync {
    fn create(&self, app: String, name: String) -> BoxFuture<Result<RoomView, RoomError>>;
    fn get(&self, app: String, name: String) -> BoxFuture<Result<RoomView, RoomError>>;
    /// Whether a phone or browser joining `name` now would find a room: it exists, or joins
    /// create rooms (`rooms.auto_create`).
    fn may_join(&self, app: &str, name: &str) -> bool;
    fn list(&self, app: String) -> BoxFuture<Vec<RoomView>>;
    fn close(&self, app: String, name: String) -> BoxFuture<Result<(), RoomError>>;
    fn remove_participant(
        &self,
        app: String,
        name: String,
        identity: String,
    ) -> BoxFuture<Result<(), RoomError>>;
    fn mute(
        &self,
        app: String,
        name: String,
        identity: String,
        muted: bool,
    ) -> BoxFuture<Result<ParticipantView, RoomError>>;
    /// A browser joins (its join token checked by the caller).
    fn connect(&self, join: JoinRequest) -> BoxFuture<Result<SignalSession, RoomError>>;
    /// A text frame from the browser.
    fn signal(&self, id: ParticipantId, text: String);
    /// The browser's socket closed.
    fn disconnect(&self, id: ParticipantId);
}
