//! The rooms thread: the built-in SFU (`sipx_rooms::Sfu`) with its UDP socket and clock, and
//! [`RoomsHandle`], through which the API (browsers' signalling, room commands) and the SIP core
//! (phone participants) reach it.

mod driver;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::mpsc as std_mpsc;

use sipx_api::room_service::{BoxFuture, RoomService, SignalSession};
use sipx_rooms::view::{ParticipantView, RoomView};
use sipx_rooms::{JoinRequest, ParticipantId, RoomError, RoomKey, SfuConfig};
use tokio::sync::{mpsc, oneshot};

use crate::StartupError;
use crate::config::RoomsConfig;
use crate::media::PhoneLink;

/// What the rooms tell the SIP core about phone participants.
#[derive(Debug)]
pub enum PhoneNotice {
    /// The participant was removed (API, room closed, replaced): hang the call up.
    Removed {
        call_id: String,
        reason: &'static str,
    },
}

type Reply<T> = oneshot::Sender<T>;

pub(crate) enum Command {
    Create(RoomKey, u64, Reply<Result<RoomView, RoomError>>),
    Get(RoomKey, Reply<Result<RoomView, RoomError>>),
    List(String, Reply<Vec<RoomView>>),
    Close(RoomKey, Reply<Result<(), RoomError>>),
    Remove(RoomKey, String, Reply<Result<(), RoomError>>),
    Mute(
        RoomKey,
        String,
        bool,
        Reply<Result<ParticipantView, RoomError>>,
    ),
    Connect(JoinRequest, Reply<Result<SignalSession, RoomError>>),
    Signal(ParticipantId, String),
    Disconnect(ParticipantId),
    JoinPhone(
        JoinRequest,
        Arc<PhoneLink>,
        Reply<Result<ParticipantId, RoomError>>,
    ),
    /// The call ended: the phone participant leaves.
    PhoneHungUp(ParticipantId),
    CallState(ParticipantId, &'static str),
}

/// The way into the rooms thread. Cheap to clone.
#[derive(Clone)]
pub struct RoomsHandle {
    tx: std_mpsc::Sender<Command>,
    waker: Arc<mio::Waker>,
    local: SocketAddr,
    dial_in_prefix: Arc<str>,
    auto_create: bool,
    /// The rooms that exist, kept by the rooms thread: the SIP core decides 404 without a
    /// round trip.
    existing: Arc<std::sync::RwLock<std::collections::HashSet<RoomKey>>>,
}

impl RoomsHandle {
    /// Binds the rooms' UDP socket and starts the thread.
    pub fn start(
        config: &RoomsConfig,
        notices: mpsc::UnboundedSender<PhoneNotice>,
    ) -> Result<RoomsHandle, StartupError> {
        let socket = std::net::UdpSocket::bind(config.udp).map_err(|e| {
            StartupError::Config(format!("rooms.udp: cannot bind {}: {e}", config.udp))
        })?;
        let local = socket
            .local_addr()
            .map_err(|e| StartupError::Config(format!("rooms.udp: {e}")))?;
        let ip = match (config.external_ip, local.ip()) {
            (Some(ip), _) => ip,
            (None, ip) if ip.is_unspecified() => {
                return Err(StartupError::Config(
                    "rooms.udp binds every interface: set rooms.external_ip to the address browsers reach".to_owned(),
                ));
            }
            (None, ip) => ip,
        };
        let sfu = SfuConfig {
            candidate: SocketAddr::new(ip, local.port()),
            auto_create: config.auto_create,
            empty_room_timeout: std::time::Duration::from_secs(config.empty_room_timeout_secs),
            max_participants: config.max_participants.max(1),
        };
        let existing = Arc::new(std::sync::RwLock::new(std::collections::HashSet::new()));
        let (tx, waker) = driver::spawn(socket, sfu, notices, existing.clone())
            .map_err(|e| StartupError::Config(format!("cannot start the rooms thread: {e}")))?;
        Ok(RoomsHandle {
            tx,
            waker,
            local,
            dial_in_prefix: Arc::from(config.dial_in_prefix.as_str()),
            auto_create: config.auto_create,
            existing,
        })
    }

    /// The address the rooms' socket is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The Request-URI user prefix of calls into rooms (empty: none).
    pub fn dial_in_prefix(&self) -> &str {
        &self.dial_in_prefix
    }

    /// Whether a join to `room` can succeed: it exists, or joins create rooms.
    pub fn may_join(&self, room: &RoomKey) -> bool {
        self.auto_create || self.existing.read().is_ok_and(|s| s.contains(room))
    }

    fn send(&self, c: Command) {
        if self.tx.send(c).is_ok() {
            let _ = self.waker.wake();
        }
    }

    async fn ask<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Option<T> {
        let (tx, rx) = oneshot::channel();
        self.send(make(tx));
        rx.await.ok()
    }

    /// A phone call joins a room; its audio flows through `link`.
    pub async fn join_phone(
        &self,
        join: JoinRequest,
        link: Arc<PhoneLink>,
    ) -> Result<ParticipantId, RoomError> {
        self.ask(|r| Command::JoinPhone(join, link, r))
            .await
            .unwrap_or_else(stopped)
    }

    pub fn phone_hung_up(&self, id: ParticipantId) {
        self.send(Command::PhoneHungUp(id));
    }

    pub fn set_call_state(&self, id: ParticipantId, state: &'static str) {
        self.send(Command::CallState(id, state));
    }

    /// What wakes the rooms thread (a phone's voice is queued).
    pub fn notifier(&self) -> crate::media::Notify {
        let waker = self.waker.clone();
        Arc::new(move || {
            let _ = waker.wake();
        })
    }
}

fn stopped<T>() -> Result<T, RoomError> {
    Err(RoomError::Internal("the rooms thread stopped".to_owned()))
}

impl RoomService for RoomsHandle {
    fn create(&self, app: String, name: String) -> BoxFuture<Result<RoomView, RoomError>> {
        let h = self.clone();
        let wall = crate::unix_now();
        Box::pin(async move {
            h.ask(|r| Command::Create(RoomKey::new(app, name), wall, r))
                .await
                .unwrap_or_else(stopped)
        })
    }

    fn get(&self, app: String, name: String) -> BoxFuture<Result<RoomView, RoomError>> {
        let h = self.clone();
        Box::pin(async move {
            h.ask(|r| Command::Get(RoomKey::new(app, name), r))
                .await
                .unwrap_or_else(stopped)
        })
    }

    fn may_join(&self, app: &str, name: &str) -> bool {
        RoomsHandle::may_join(self, &RoomKey::new(app.to_owned(), name.to_owned()))
    }

    fn list(&self, app: String) -> BoxFuture<Vec<RoomView>> {
        let h = self.clone();
        Box::pin(async move { h.ask(|r| Command::List(app, r)).await.unwrap_or_default() })
    }

    fn close(&self, app: String, name: String) -> BoxFuture<Result<(), RoomError>> {
        let h = self.clone();
        Box::pin(async move {
            h.ask(|r| Command::Close(RoomKey::new(app, name), r))
                .await
                .unwrap_or_else(stopped)
        })
    }

    fn remove_participant(
        &self,
        app: String,
        name: String,
        identity: String,
    ) -> BoxFuture<Result<(), RoomError>> {
        let h = self.clone();
        Box::pin(async move {
            h.ask(|r| Command::Remove(RoomKey::new(app, name), identity, r))
                .await
                .unwrap_or_else(stopped)
        })
    }

    fn mute(
        &self,
        app: String,
        name: String,
        identity: String,
        muted: bool,
    ) -> BoxFuture<Result<ParticipantView, RoomError>> {
        let h = self.clone();
        Box::pin(async move {
            h.ask(|r| Command::Mute(RoomKey::new(app, name), identity, muted, r))
                .await
                .unwrap_or_else(stopped)
        })
    }

    fn connect(&self, join: JoinRequest) -> BoxFuture<Result<SignalSession, RoomError>> {
        let h = self.clone();
        Box::pin(async move {
            h.ask(|r| Command::Connect(join, r))
                .await
                .unwrap_or_else(stopped)
        })
    }

    fn signal(&self, id: ParticipantId, text: String) {
        self.send(Command::Signal(id, text));
    }

    fn disconnect(&self, id: ParticipantId) {
        self.send(Command::Disconnect(id));
    }
}
