//! The rooms thread: a `mio` loop over the rooms' UDP socket and a command channel, feeding the
//! sans-IO `Sfu` and carrying out what it asks (datagrams, signalling frames, phone audio).

use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token, Waker};
use sipx_api::room_service::SignalSession;
use sipx_rooms::signal::{LeaveReason, ServerMessage};
use sipx_rooms::view::ParticipantKind;
use sipx_rooms::{Output, ParticipantId, RoomEvent, Sfu, SfuConfig};
use tokio::sync::mpsc;

use super::{Command, PhoneNotice};
use crate::media::{Joined, PhoneLink};

const SOCKET: Token = Token(0);
const WAKER: Token = Token(1);
/// Datagrams read per wake-up before the other work gets a turn.
const READ_BUDGET: usize = 256;

struct Driver {
    poll: Poll,
    socket: UdpSocket,
    /// The address str0m knows the socket by (the ICE candidate).
    candidate: SocketAddr,
    commands: std_mpsc::Receiver<Command>,
    sfu: Sfu,
    sessions: HashMap<ParticipantId, mpsc::UnboundedSender<String>>,
    phones: HashMap<ParticipantId, Arc<PhoneLink>>,
    /// A number per room for the media threads (`Joined::room`): unique for the process, so
    /// a closed room's number is never another room's.
    room_numbers: HashMap<sipx_rooms::RoomKey, u64>,
    next_room_number: u64,
    notices: mpsc::UnboundedSender<PhoneNotice>,
    existing: Arc<std::sync::RwLock<std::collections::HashSet<sipx_rooms::RoomKey>>>,
    buf: Vec<u8>,
    /// `Sfu::loss_reports` as last given to `/metrics`.
    loss_reports_exported: u64,
}

pub(super) fn spawn(
    socket: std::net::UdpSocket,
    cfg: SfuConfig,
    notices: mpsc::UnboundedSender<PhoneNotice>,
    existing: Arc<std::sync::RwLock<std::collections::HashSet<sipx_rooms::RoomKey>>>,
) -> std::io::Result<(std_mpsc::Sender<Command>, Arc<Waker>)> {
    socket.set_nonblocking(true)?;
    let mut socket = UdpSocket::from_std(socket);
    let poll = Poll::new()?;
    poll.registry()
        .register(&mut socket, SOCKET, Interest::READABLE)?;
    let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
    let (tx, rx) = std_mpsc::channel();
    let candidate = cfg.candidate;
    let mut driver = Driver {
        poll,
        socket,
        candidate,
        commands: rx,
        sfu: Sfu::new(cfg, now()),
        sessions: HashMap::new(),
        phones: HashMap::new(),
        room_numbers: HashMap::new(),
        next_room_number: 1,
        notices,
        existing,
        buf: vec![0u8; 2048],
        loss_reports_exported: 0,
    };
    std::thread::Builder::new()
        .name("sipx-rooms".to_owned())
        .spawn(move || driver.run())?;
    Ok((tx, waker))
}

// The rooms' clock is the driver's: the one place that reads the time.
#[allow(clippy::disallowed_methods)]
fn now() -> Instant {
    Instant::now()
}

impl Driver {
    fn run(&mut self) {
        let mut events = Events::with_capacity(64);
        loop {
            let next = self.flush();
            let wait = next
                .saturating_duration_since(now())
                .min(Duration::from_secs(1));
            if let Err(e) = self.poll.poll(&mut events, Some(wait))
                && e.kind() != ErrorKind::Interrupted
            {
                tracing::error!(error = %e, "rooms poll failed; the rooms thread stops");
                return;
            }
            let now = now();
            for event in &events {
                match event.token() {
                    WAKER => {
                        if !self.drain_commands(now) {
                            return;
                        }
                    }
                    _ => self.read(now),
                }
            }
            self.phone_audio(now);
            self.sfu.handle_timeout(now);
        }
    }

    fn read(&mut self, now: Instant) {
        for _ in 0..READ_BUDGET {
            match self.socket.recv_from(&mut self.buf) {
                Ok((n, source)) => {
                    self.sfu
                        .handle_datagram(now, source, self.candidate, &self.buf[..n]);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                // ICMP errors from earlier sends and the like.
                Err(_) => continue,
            }
        }
    }

    /// The callers' voice queued by the media threads.
    fn phone_audio(&mut self, now: Instant) {
        let sfu = &mut self.sfu;
        for (id, link) in &self.phones {
            link.drain_uplink(|p| {
                metrics::counter!("sipx_rooms_phone_packets_total", "direction" => "from_phone")
                    .increment(1);
                sfu.handle_phone_audio(now, *id, p.seq, p.rtp_time, p.level, p.payload());
            });
        }
    }

    /// Applies queued commands; false when every handle is gone.
    fn drain_commands(&mut self, now: Instant) -> bool {
        loop {
            match self.commands.try_recv() {
                Ok(c) => self.apply(now, c),
                Err(std_mpsc::TryRecvError::Empty) => return true,
                Err(std_mpsc::TryRecvError::Disconnected) => return false,
            }
        }
    }

    fn apply(&mut self, now: Instant, command: Command) {
        match command {
            Command::Create(key, wall, reply) => {
                let created = self.sfu.create_room(now, key.clone(), wall);
                if created.is_ok()
                    && let Ok(mut set) = self.existing.write()
                {
                    set.insert(key);
                }
                let _ = reply.send(created);
            }
            Command::Get(key, reply) => {
                let _ = reply.send(self.sfu.room(&key).ok_or(sipx_rooms::RoomError::NotFound));
            }
            Command::List(app, reply) => {
                let _ = reply.send(self.sfu.rooms_of(&app));
            }
            Command::Close(key, reply) => {
                let _ = reply.send(self.sfu.close_room(now, &key));
            }
            Command::Remove(key, identity, reply) => {
                let _ = reply.send(self.sfu.remove_participant(now, &key, &identity));
            }
            Command::Mute(key, identity, muted, reply) => {
                let _ = reply.send(self.sfu.set_muted(&key, &identity, muted));
            }
            Command::Connect(join, reply) => {
                // The channel exists before the join so the welcome has somewhere to go.
                let (tx, rx) = mpsc::unbounded_channel();
                match self.sfu.join(now, join) {
                    Ok(id) => {
                        self.sessions.insert(id, tx);
                        let _ = reply.send(Ok(SignalSession { id, outgoing: rx }));
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                }
            }
            Command::Signal(id, text) => self.sfu.handle_signal(now, id, &text),
            Command::Disconnect(id) => {
                self.sessions.remove(&id);
                self.sfu.leave(now, id, LeaveReason::Left);
            }
            Command::JoinPhone(join, link, reply) => {
                let room = join.room.clone();
                let result = self.sfu.join(now, join);
                if let Ok(id) = result {
                    let next = &mut self.next_room_number;
                    let number = *self.room_numbers.entry(room).or_insert_with(|| {
                        *next += 1;
                        *next - 1
                    });
                    link.set_joined(Joined {
                        room: number,
                        participant: id.0,
                    });
                    self.phones.insert(id, link);
                }
                let _ = reply.send(result);
            }
            Command::PhoneHungUp(id) => self.sfu.leave(now, id, LeaveReason::Hangup),
            Command::CallState(id, state) => self.sfu.set_call_state(id, state),
        }
    }

    /// Carries out everything the SFU produced; returns when it next needs a timeout.
    fn flush(&mut self) -> Instant {
        loop {
            match self.sfu.poll_output() {
                Output::Timeout(t) => {
                    // Reports come every few seconds; flushes, after every input.
                    let reports = self.sfu.loss_reports();
                    if reports != self.loss_reports_exported {
                        self.loss_reports_exported = reports;
                        metrics::counter!("sipx_rooms_loss_reports_total").absolute(reports);
                    }
                    return t;
                }
                Output::Transmit {
                    destination,
                    contents,
                } => {
                    if self.socket.send_to(&contents, destination).is_err() {
                        metrics::counter!("sipx_rooms_send_errors_total").increment(1);
                    }
                }
                Output::Signal { to, message } => {
                    let last = matches!(message, ServerMessage::Closed { .. });
                    if let Some(tx) = self.sessions.get(&to) {
                        let _ = tx.send(message.to_json());
                    }
                    if last {
                        // Dropping the sender ends the socket after this frame.
                        self.sessions.remove(&to);
                    }
                }
                Output::ToPhone {
                    to,
                    source,
                    seq,
                    rtp_time,
                    payload,
                } => {
                    if let Some(link) = self.phones.get(&to) {
                        link.push_downlink(source.0, seq, rtp_time, &payload);
                        metrics::counter!("sipx_rooms_phone_packets_total", "direction" => "to_phone")
                            .increment(1);
                    }
                }
                Output::SourceGone { to, source } => {
                    if let Some(link) = self.phones.get(&to) {
                        link.source_gone(source.0);
                    }
                }
                Output::PhoneHeard { phone, heard_by } => {
                    if let Some(link) = self.phones.get(&phone) {
                        link.set_audience(heard_by.iter().map(|p| p.0));
                    }
                }
                Output::PhoneLoss { phone, percent } => {
                    if let Some(link) = self.phones.get(&phone) {
                        link.set_expected_loss(percent);
                    }
                    metrics::counter!("sipx_rooms_phone_fec_changes_total").increment(1);
                }
                Output::Event(event) => self.on_event(event),
            }
        }
    }

    fn on_event(&mut self, event: RoomEvent) {
        match event {
            RoomEvent::Joined {
                room, participant, ..
            } => {
                metrics::gauge!("sipx_rooms_participants").increment(1.0);
                tracing::info!(%room, identity = participant.identity, kind = ?participant.kind, "participant joined");
            }
            RoomEvent::Left {
                id,
                kind,
                call_id,
                reason,
                ..
            } => {
                metrics::gauge!("sipx_rooms_participants").decrement(1.0);
                self.sessions.remove(&id);
                if kind == ParticipantKind::Phone {
                    if let Some(link) = self.phones.remove(&id) {
                        link.close();
                        let (down, up) = link.dropped();
                        metrics::counter!("sipx_rooms_phone_link_dropped_total", "direction" => "to_phone")
                            .increment(down);
                        metrics::counter!("sipx_rooms_phone_link_dropped_total", "direction" => "from_phone")
                            .increment(up);
                        if down + up > 0 {
                            tracing::info!(
                                participant = id.0,
                                to_phone = down,
                                from_phone = up,
                                "audio packets dropped on a full phone link"
                            );
                        }
                    }
                    if reason != LeaveReason::Hangup
                        && let Some(call_id) = call_id
                    {
                        let _ = self.notices.send(PhoneNotice::Removed {
                            call_id,
                            reason: reason.as_str(),
                        });
                    }
                }
            }
            RoomEvent::Closed { room } => {
                self.room_numbers.remove(&room);
                if let Ok(mut set) = self.existing.write() {
                    set.remove(&room);
                }
                tracing::info!(%room, "room closed");
            }
        }
    }
}
