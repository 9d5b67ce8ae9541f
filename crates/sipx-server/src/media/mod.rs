//! The media driver: a fixed set of threads that own the RTP sockets and the 20 ms clock and
//! run each call's sans-IO `MediaLeg`. The SIP core talks to it through [`MediaEngine`]
//! (commands in) and [`MediaEvent`]s (out, into the core's input queue).
//!
//! Legs are sharded over the threads by id; a leg never moves, so each leg's state is touched
//! by one thread only and nothing is locked on the packet path.

mod opus_loop;
mod phases;
mod phone_link;
mod ports;
mod settings;
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
pub use phone_link::{LinkPacket, PhoneLink};
use ports::PortAllocator;
pub use ports::PortPair;
pub use settings::{MediaSettings, leg_config};

/// A leg's name, unique for the engine's lifetime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LegId(pub u64);

/// What a leg's received audio is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegMode {
    /// The echo test: what arrives is sent back (audio and DTMF).
    Echo,
    /// The echo test through an Opus encode and decode: the transcoding work of a phone in a
    /// room (see `opus_loop`).
    OpusEcho,
}

/// Something a leg reported, or its failure to start.
#[derive(Debug)]
pub enum MediaEvent {
    Leg { leg: LegId, event: LegEvent },
    Failed { leg: LegId, reason: String },
}

impl MediaEvent {
    pub fn leg(&self) -> LegId {
        match self {
            MediaEvent::Leg { leg, .. } | MediaEvent::Failed { leg, .. } => *leg,
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
    ports: Arc<PortAllocator>,
    next_id: Arc<AtomicU64>,
    advertised: IpAddr,
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
        let threads = match config.threads {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        };
        let mut workers = Vec::with_capacity(threads);
        for index in 0..threads {
            workers.push(
                worker::spawn(index, events.clone()).map_err(|e| {
                    StartupError::Config(format!("cannot start a media thread: {e}"))
                })?,
            );
        }
        Ok(MediaEngine {
            workers: Arc::new(workers),
            ports: Arc::new(PortAllocator::new(
                config.ip,
                config.rtp_port_min,
                config.rtp_port_max,
            )),
            next_id: Arc::new(AtomicU64::new(1)),
            advertised: config.external_ip.unwrap_or(config.ip),
        })
    }

    /// The address to put into SDP.
    pub fn advertised_ip(&self) -> IpAddr {
        self.advertised
    }

    /// Binds an RTP/RTCP socket pair for a new leg.
    pub fn allocate(&self) -> std::io::Result<PortPair> {
        self.ports.allocate()
    }

    pub fn new_leg_id(&self) -> LegId {
        LegId(self.next_id.fetch_add(1, Ordering::Relaxed))
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

    pub fn send_dtmf(&self, id: LegId, digit: DtmfDigit, duration: Duration) {
        self.worker(id).send(Command::SendDtmf {
            id,
            digit,
            duration,
        });
    }

    pub fn remove_leg(&self, id: LegId) {
        self.worker(id).send(Command::Remove { id });
    }
}
