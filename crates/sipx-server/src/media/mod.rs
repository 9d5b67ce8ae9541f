//! The media driver: a fixed set of threads that own the RTP sockets and the 20 ms clock and
//! run each call's sans-IO `MediaLeg`. The SIP core talks to it through [`MediaEngine`]
//! (commands in) and [`MediaEvent`]s (out, into the core's input queue).
//!
//! Legs are sharded over the threads by id; a leg never moves, so each leg's state is touched
//! by one thread only and nothing is locked on the packet path.
//!
//! A leg's [`LegMode`] says what its audio is for: the echo test, silence while the call
//! waits, or a room, where `room_bridge.rs` decodes and mixes the room's Opus packets for the
//! phone and encodes the caller's voice for the room, across the leg's [`PhoneLink`] (the one
//! lock, taken a few times per 20 ms tick).

mod addresses;
pub(crate) mod leg_notices;
mod mode;
mod opus_fmtp;
mod opus_loop;
mod phases;
mod phone_link;
mod placement;
mod ports;
pub(crate) mod prompts;
mod room_bridge;
mod room_group;
mod scheduling;
mod settings;
#[cfg(test)]
mod tests;
mod timer;
mod timing;
mod worker;

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sipx_media::dtmf::DtmfDigit;
use sipx_media::leg::{LegConfig, LegEvent};
use tokio::sync::mpsc;

use crate::StartupError;
pub use phone_link::{Hearing, Joined, Notify, PhoneLink};
use ports::PortAllocator;
pub use ports::PortPair;
pub use settings::{MediaSettings, codec_named, leg_config};

/// A leg's name, unique for the engine's lifetime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LegId(pub u64);

/// What a leg's received audio is for, and what it sends. DTMF and the other leg events
/// reach the SIP core in every mode.
#[derive(Debug, Clone)]
pub enum LegMode {
    /// The echo test: what arrives is sent back (audio and DTMF).
    Echo,
    /// The echo test through an Opus encode and decode: a phone's transcoding work in a room
    /// with one speaker, without the room (see `opus_loop`).
    OpusEcho,
    /// Received audio is dropped and silence is sent (a call waiting for its room).
    Silence,
    /// A participant of a room: the caller's voice goes to the link as Opus, the room's
    /// packets from it are decoded and mixed for the phone; silence once the link is closed.
    /// The media thread closes the link when the leg leaves this mode or is removed.
    Room(Arc<PhoneLink>),
    /// A voice prompt is played from its start (received audio is dropped), then silence:
    /// the PIN flow asks the caller by voice.
    Prompt(sipx_call::Prompt),
}

/// Which echo test a call reached (`media.echo_extension`, `media.opus_echo_extension`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Echo {
    Plain,
    Opus,
}

impl Echo {
    pub fn leg_mode(self) -> LegMode {
        match self {
            Echo::Plain => LegMode::Echo,
            Echo::Opus => LegMode::OpusEcho,
        }
    }
}

/// Something a leg reported, or its failure to start.
#[derive(Debug)]
pub enum MediaEvent {
    Leg {
        leg: LegId,
        event: LegEvent,
    },
    Failed {
        leg: LegId,
        reason: String,
    },
    /// The statistics of a leg still running, every [`worker::STATS_EVERY`] (the call's
    /// record shows them while the call lasts).
    Stats {
        leg: LegId,
        stats: Box<sipx_media::leg::LegStats>,
    },
    /// The leg was removed; its last statistics, for the call's record.
    Ended {
        leg: LegId,
        stats: Box<sipx_media::leg::LegStats>,
    },
}

impl MediaEvent {
    pub fn leg(&self) -> LegId {
        match self {
            MediaEvent::Leg { leg, .. }
            | MediaEvent::Failed { leg, .. }
            | MediaEvent::Stats { leg, .. }
            | MediaEvent::Ended { leg, .. } => *leg,
        }
    }
}

pub(crate) enum Command {
    Add {
        id: LegId,
        ports: PortPair,
        config: Box<LegConfig>,
        mode: LegMode,
    },
    Update {
        id: LegId,
        config: Box<LegConfig>,
    },
    SetMode {
        id: LegId,
        mode: LegMode,
    },
    SendDtmf {
        id: LegId,
        digit: DtmfDigit,
        duration: Duration,
    },
    Remove {
        id: LegId,
    },
}

/// The handle the SIP core holds. Cheap to clone.
#[derive(Clone)]
pub struct MediaEngine {
    workers: Arc<Vec<worker::Handle>>,
    /// Which thread each new leg goes to (taken once per leg added or removed).
    placement: Arc<std::sync::Mutex<placement::Placement>>,
    ports: Arc<PortAllocator>,
    next_id: Arc<AtomicU64>,
    advertised: IpAddr,
    /// `media.second_ip`'s ports and the address its calls' SDP carries (dual stack).
    second: Option<(Arc<PortAllocator>, IpAddr)>,
}

impl MediaEngine {
    /// Starts the media threads. Events of every leg go to `events`.
    pub fn start(
        config: &crate::config::MediaConfig,
        events: mpsc::UnboundedSender<MediaEvent>,
    ) -> Result<MediaEngine, StartupError> {
        if config.rtp_port_min >= config.rtp_port_max {
            return Err(StartupError::Config(
                "media.rtp_port_min must be below media.rtp_port_max".to_owned(),
            ));
        }
        let second = addresses::check(config)?;
        let threads = match config.threads {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        };
        if !(-20..=19).contains(&config.thread_nice) {
            return Err(StartupError::Config(
                "media.thread_nice must be between -20 and 19".to_owned(),
            ));
        }
        let placements = scheduling::plan(threads, config.pin_threads, config.thread_nice);
        let mut workers = Vec::with_capacity(threads);
        for (index, placement) in placements.into_iter().enumerate() {
            workers.push(
                worker::spawn(index, placement, events.clone()).map_err(|e| {
                    StartupError::Config(format!("cannot start a media thread: {e}"))
                })?,
            );
        }
        let ports = PortAllocator::new(config.ip, config.rtp_port_min, config.rtp_port_max);
        if ports.is_empty() {
            return Err(StartupError::Config(format!(
                "media.rtp_port_min..media.rtp_port_max ({}..{}) holds no RTP/RTCP pair (an even port and the next)",
                config.rtp_port_min, config.rtp_port_max
            )));
        }
        Ok(MediaEngine {
            placement: Arc::new(std::sync::Mutex::new(placement::Placement::new(
                workers.len(),
            ))),
            workers: Arc::new(workers),
            ports: Arc::new(ports),
            next_id: Arc::new(AtomicU64::new(1)),
            advertised: config.external_ip.unwrap_or(config.ip),
            second: second.map(|(bind, advertised)| {
                let ports = PortAllocator::new(bind, config.rtp_port_min, config.rtp_port_max);
                (Arc::new(ports), advertised)
            }),
        })
    }

    /// Binds an RTP/RTCP socket pair for a new leg whose peer is at `peer` (its SDP's address,
    /// else its SIP address), and returns the address to put into SDP with it: on
    /// `media.second_ip` when that is of the peer's family, else on `media.ip`.
    pub fn allocate_for(&self, peer: Option<IpAddr>) -> std::io::Result<(PortPair, IpAddr)> {
        if let (Some(peer), Some((ports, advertised))) = (peer, &self.second)
            && peer.is_ipv4() == advertised.is_ipv4()
        {
            return Ok((ports.allocate()?, *advertised));
        }
        Ok((self.ports.allocate()?, self.advertised))
    }

    /// A new leg's id, on the media thread with the fewest legs.
    pub fn new_leg_id(&self) -> LegId {
        self.place(None)
    }

    /// A new leg's id on the media thread of `room`'s other phones (the least loaded one for
    /// its first): a room's phones mix together, decoding each participant once for all of
    /// them, only on one thread.
    pub fn new_leg_id_near(&self, room: &impl std::hash::Hash) -> LegId {
        use std::hash::{BuildHasher, BuildHasherDefault};
        let hash = BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default()
            .hash_one(room);
        self.place(Some(hash))
    }

    /// The next id, whose thread (the id modulo the threads) the placement chose.
    fn place(&self, room: Option<u64>) -> LegId {
        let n = self.workers.len().max(1) as u64;
        let k = self.next_id.fetch_add(1, Ordering::Relaxed);
        // Unique, since `k` is: the thread is the remainder.
        self.placement()
            .place(room, |thread| LegId(k * n + thread as u64 % n))
    }

    fn placement(&self) -> std::sync::MutexGuard<'_, placement::Placement> {
        // A panic while holding it leaves plain counts: still usable.
        self.placement
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn worker(&self, id: LegId) -> &worker::Handle {
        let n = self.workers.len().max(1) as u64;
        &self.workers[(id.0 % n) as usize]
    }

    pub fn add_leg(&self, id: LegId, ports: PortPair, config: LegConfig, mode: LegMode) {
        self.worker(id).send(Command::Add {
            id,
            ports,
            config: Box::new(config),
            mode,
        });
    }

    pub fn update_leg(&self, id: LegId, config: LegConfig) {
        self.worker(id).send(Command::Update {
            id,
            config: Box::new(config),
        });
    }

    /// Moves a running leg to another mode (from the echo test or waiting into a room, and
    /// back).
    pub fn set_mode(&self, id: LegId, mode: LegMode) {
        self.worker(id).send(Command::SetMode { id, mode });
    }

    pub fn send_dtmf(&self, id: LegId, digit: DtmfDigit, duration: Duration) {
        self.worker(id).send(Command::SendDtmf {
            id,
            digit,
            duration,
        });
    }

    pub fn remove_leg(&self, id: LegId) {
        self.placement().release(id);
        self.worker(id).send(Command::Remove { id });
    }
}
