//! One media thread: each leg's 20 ms tick (legs in phases 1 ms apart, `phases`), its
//! sockets and its timers. The thread sleeps in a `mio` poll woken by a timerfd (`timer`) at
//! the next phase, or by a `mio::Waker` when commands arrive on their channel; events leave on
//! the core's queue. Received datagrams do not wake it: the legs' sockets sit in a second poll,
//! looked at without waiting once per wake-up, so a thread wakes 200 to 1000 times a second
//! (the phases with legs, and every 5 ms), not once per packet (a packet waits at most 5 ms,
//! well inside any jitter buffer's delay). The thread times its own ticks and frames (`timing`).

use std::collections::HashMap;
use std::io::ErrorKind;
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token, Waker};
use sipx_media::PacketKind;
use sipx_media::leg::{LegSocket, LegStats, MediaLeg, Transmit};
use tokio::sync::mpsc;

use super::mode::Mode;
use super::phases::{Phases, TICK, Turn};
use super::room_group::Groups;
use super::scheduling::{self, ThreadPlacement};
use super::timer::Timer;
use super::timing::TickStats;
use super::{Command, LegId, LegMode, MediaEvent};

const WAKER: Token = Token(usize::MAX);
const TIMER: Token = Token(usize::MAX - 1);
/// Datagrams read per socket per wake-up, so one flooding peer cannot starve the others.
const READ_BUDGET: usize = 64;
/// How often a live leg's statistics go to its call, so that the call's record (`GET
/// /v1/calls/{id}`, `media`) shows a call's quality while it lasts, not only once it ended: about
/// one RTCP report interval (RFC 3550 §6.2), the pace at which loss and round trip change.
pub(crate) const STATS_EVERY: Duration = Duration::from_secs(5);

pub(crate) struct Handle {
    tx: std_mpsc::Sender<Command>,
    waker: std::sync::Arc<Waker>,
}

impl Handle {
    pub fn send(&self, command: Command) {
        if self.tx.send(command).is_ok() {
            let _ = self.waker.wake();
        }
    }
}

struct Slot {
    id: LegId,
    leg: MediaLeg,
    rtp: UdpSocket,
    rtcp: UdpSocket,
    mode: Mode,
    /// The phase the leg ticks in.
    phase: usize,
    /// When the leg's statistics next go to the call (`MediaEvent::Stats`).
    stats_due: Instant,
}

struct Worker {
    /// The waker and the timer: what the thread sleeps on.
    poll: Poll,
    /// The legs' sockets, polled without waiting.
    sockets: Poll,
    commands: std_mpsc::Receiver<Command>,
    events: mpsc::UnboundedSender<MediaEvent>,
    /// Slots by token index; a token is (slot index << 1) | socket (0 = RTP, 1 = RTCP).
    slots: Vec<Option<Slot>>,
    by_id: HashMap<LegId, usize>,
    /// The phones of each room on this thread, mixed together.
    groups: Groups,
    free: Vec<usize>,
    recv_buf: Vec<u8>,
    send_buf: Vec<u8>,
    pcm: Vec<i16>,
    phases: Phases,
    /// Wakes the poll at the next deadline, to the microsecond (`None`: the poll's own
    /// millisecond timeout).
    timer: Option<Timer>,
    /// No leg's timer is due before this (it may be early, never late): legs are scanned for
    /// timers only then, not on every packet.
    timers_due: Option<Instant>,
    stats: TickStats,
}

pub(crate) fn spawn(
    index: usize,
    placement: ThreadPlacement,
    events: mpsc::UnboundedSender<MediaEvent>,
) -> std::io::Result<Handle> {
    let poll = Poll::new()?;
    let waker = std::sync::Arc::new(Waker::new(poll.registry(), WAKER)?);
    let (tx, rx) = std_mpsc::channel();
    let timer = Timer::new(poll.registry(), TIMER)
        .inspect_err(|e| tracing::warn!(error = %e, "no precise media timer: ticks may be late"))
        .ok();
    let mut worker = Worker {
        poll,
        sockets: Poll::new()?,
        commands: rx,
        events,
        slots: Vec::new(),
        by_id: HashMap::new(),
        groups: Groups::default(),
        free: Vec::new(),
        recv_buf: vec![0u8; 2048],
        send_buf: vec![0u8; 2048],
        pcm: vec![0i16; 48_000 / 50],
        phases: Phases::new(Instant::now()),
        timer,
        timers_due: None,
        stats: TickStats::exported(),
    };
    std::thread::Builder::new()
        .name(format!("sipx-media-{index}"))
        .spawn(move || {
            scheduling::apply(placement);
            worker.run()
        })?;
    Ok(Handle { tx, waker })
}

impl Worker {
    // The media clock is the driver's: the one place that reads the time.
    #[allow(clippy::disallowed_methods)]
    fn now() -> Instant {
        Instant::now()
    }

    fn run(&mut self) {
        let mut wakes = Events::with_capacity(4);
        let mut ready = Events::with_capacity(1024);
        loop {
            let now = Self::now();
            // Without legs, only commands and leg timers (none) wake the thread.
            let next_tick = (!self.by_id.is_empty()).then(|| self.phases.due());
            let deadline = match (next_tick, self.timers_due) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let wait = deadline.map(|d| d.saturating_duration_since(now));
            // The timer wakes the poll on time; the poll's timeout, a millisecond later, is
            // only a backstop.
            let timeout = match (wait, self.timer.as_ref()) {
                (Some(wait), Some(timer)) if timer.set(wait).is_ok() => {
                    Some(wait + Duration::from_millis(1))
                }
                (wait, _) => wait,
            };
            if let Err(e) = self.poll.poll(&mut wakes, timeout)
                && e.kind() != ErrorKind::Interrupted
            {
                tracing::error!(error = %e, "media poll failed; the media thread stops");
                return;
            }
            let now = Self::now();
            if self.by_id.is_empty() {
                // No tick ran while there were no legs: the schedule goes on from now.
                self.phases.resume(now);
            }
            if wakes.iter().any(|e| e.token() == WAKER) && !self.drain_commands(now) {
                return;
            }
            if self.by_id.is_empty() {
                // The last leg's timer went with it: kept, it would be due forever and the
                // thread would spin at once on every wake-up.
                self.timers_due = None;
                continue;
            }
            if let Err(e) = self.sockets.poll(&mut ready, Some(Duration::ZERO))
                && e.kind() != ErrorKind::Interrupted
            {
                tracing::error!(error = %e, "media socket poll failed; the media thread stops");
                return;
            }
            // RTP arrivals on the ticks' clock: a thread behind its schedule takes what arrived
            // meanwhile as arrived when the next tick was due (see `receive`).
            let on_schedule = now.min(self.phases.due());
            for event in &ready {
                self.receive(now, on_schedule, event.token());
            }
            while let Some((turn, skipped)) = self.phases.next_turn(Self::now()) {
                if skipped {
                    metrics::counter!("sipx_media_clock_skips_total").increment(1);
                }
                self.tick(turn);
            }
            if self.timers_due.is_some_and(|t| t <= now) {
                self.run_timers(now);
            }
        }
    }

    /// Fires the legs' due timers and finds the next one: one pass over the legs.
    fn run_timers(&mut self, now: Instant) {
        self.timers_due = None;
        for index in 0..self.slots.len() {
            let Some(Some(slot)) = self.slots.get_mut(index) else {
                continue;
            };
            if slot.leg.poll_timeout().is_some_and(|t| t <= now) {
                slot.leg.handle_timeout(now);
            }
            // flush() records the leg's next timer.
            self.flush(index);
        }
    }

    /// Applies queued commands; false when the engine is gone.
    fn drain_commands(&mut self, now: Instant) -> bool {
        loop {
            match self.commands.try_recv() {
                Ok(command) => self.apply(now, command),
                Err(std_mpsc::TryRecvError::Empty) => return true,
                Err(std_mpsc::TryRecvError::Disconnected) => return false,
            }
        }
    }

    fn apply(&mut self, now: Instant, command: Command) {
        match command {
            Command::Add {
                id,
                ports,
                config,
                mode,
            } => {
                let leg = match MediaLeg::new(*config, now) {
                    Ok(leg) => leg,
                    Err(e) => {
                        tracing::warn!(leg = id.0, error = %e, "cannot start a media leg");
                        if let LegMode::Room(link) = &mode {
                            link.close();
                        }
                        let _ = self.events.send(MediaEvent::Failed {
                            leg: id,
                            reason: format!("media could not start: {e}"),
                        });
                        return;
                    }
                };
                let index = self.free.pop().unwrap_or_else(|| {
                    self.slots.push(None);
                    self.slots.len() - 1
                });
                let phase = self.phases.add(index);
                let mut mode = Mode::new(id, &leg, mode, &mut self.groups, phase);
                let mut rtp = UdpSocket::from_std(ports.rtp);
                let mut rtcp = UdpSocket::from_std(ports.rtcp);
                let registry = self.sockets.registry();
                if registry
                    .register(&mut rtp, Token(index << 1), Interest::READABLE)
                    .and_then(|()| {
                        registry.register(&mut rtcp, Token((index << 1) | 1), Interest::READABLE)
                    })
                    .is_err()
                {
                    tracing::warn!(leg = id.0, "cannot watch a media socket");
                    mode.leave(&mut self.groups);
                    self.phases.remove(index, phase);
                    self.free.push(index);
                    return;
                }
                self.slots[index] = Some(Slot {
                    id,
                    leg,
                    rtp,
                    rtcp,
                    mode,
                    phase,
                    stats_due: now + STATS_EVERY,
                });
                self.by_id.insert(id, index);
                self.align(index);
                metrics::gauge!("sipx_media_legs").increment(1.0);
            }
            Command::Update { id, config } => {
                let Some(&index) = self.by_id.get(&id) else {
                    return;
                };
                let groups = &mut self.groups;
                if let Some(Some(s)) = self.slots.get_mut(index) {
                    if let Err(e) = s.leg.update(*config, now) {
                        tracing::warn!(leg = id.0, error = %e, "cannot update a media leg");
                    }
                    // A new frame rate needs decoders and an encoder at that rate.
                    s.mode.refit(id, &s.leg, groups, s.phase);
                }
                self.align(index);
            }
            Command::SetMode { id, mode } => {
                let Some(&index) = self.by_id.get(&id) else {
                    return;
                };
                let groups = &mut self.groups;
                if let Some(Some(s)) = self.slots.get_mut(index) {
                    let same_link = match (s.mode.link(), &mode) {
                        (Some(old), LegMode::Room(link)) => std::sync::Arc::ptr_eq(old, link),
                        _ => false,
                    };
                    if !same_link {
                        s.mode.leave(groups);
                        s.mode = Mode::new(id, &s.leg, mode, groups, s.phase);
                    }
                }
                self.align(index);
            }
            Command::SendDtmf {
                id,
                digit,
                duration,
            } => {
                if let Some(s) = self.slot_mut(id)
                    && !s.leg.send_dtmf(now, digit, duration)
                {
                    tracing::warn!(
                        leg = ?id,
                        digit = %digit.as_char(),
                        "key press not sent: 16 already waiting, or a flash to a phone without telephone-event"
                    );
                }
            }
            Command::Remove { id } => {
                let Some(index) = self.by_id.remove(&id) else {
                    return;
                };
                // Its last report and BYE leave before the sockets close.
                if let Some(Some(slot)) = self.slots.get_mut(index) {
                    slot.leg.end(now);
                }
                self.flush(index);
                if let Some(mut s) = self.slots[index].take() {
                    s.mode.leave(&mut self.groups);
                    let stats = s.leg.stats();
                    count_ended(&stats);
                    let _ = self.events.send(MediaEvent::Ended {
                        leg: id,
                        stats: Box::new(stats),
                    });
                    let registry = self.sockets.registry();
                    let _ = registry.deregister(&mut s.rtp);
                    let _ = registry.deregister(&mut s.rtcp);
                    self.phases.remove(index, s.phase);
                    self.free.push(index);
                    metrics::gauge!("sipx_media_legs").decrement(1.0);
                }
            }
        }
    }

    /// Moves a leg to the phase its mode needs (a room's legs tick together).
    fn align(&mut self, index: usize) {
        let Some(Some(s)) = self.slots.get_mut(index) else {
            return;
        };
        if let Some(phase) = s.mode.phase()
            && phase != s.phase
        {
            self.phases.remove(index, s.phase);
            s.phase = self.phases.add_to(index, phase);
        }
    }

    fn slot_mut(&mut self, id: LegId) -> Option<&mut Slot> {
        let index = *self.by_id.get(&id)?;
        self.slots.get_mut(index)?.as_mut()
    }

    /// Reads a socket's datagrams. RTP is stamped `on_schedule`: the time now, or when the
    /// thread is behind, the due time of the next tick, the clock the legs' ticks run on. A
    /// thread that fell behind (not scheduled, or busy) reads late what arrived on time; stamped
    /// with the time it read it, that would look to the jitter buffer like network delay, the
    /// delay would grow and then be cut by dropping frames. RTCP keeps the time now (RTT).
    fn receive(&mut self, now: Instant, on_schedule: Instant, token: Token) {
        let index = token.0 >> 1;
        let rtcp_socket = token.0 & 1 == 1;
        let Some(Some(slot)) = self.slots.get_mut(index) else {
            return;
        };
        for _ in 0..READ_BUDGET {
            let socket = if rtcp_socket { &slot.rtcp } else { &slot.rtp };
            match socket.recv_from(&mut self.recv_buf) {
                // A datagram that filled the buffer may have been cut short (UDP drops what
                // does not fit, silently): no RTP or RTCP of a call comes near that size.
                Ok((n, _)) if n >= self.recv_buf.len() => {
                    metrics::counter!("sipx_media_dropped_total", "reason" => "oversized")
                        .increment(1);
                }
                Ok((n, source)) => {
                    let bytes = &mut self.recv_buf[..n];
                    if rtcp_socket {
                        slot.leg.handle_receive_rtcp_port(now, source, bytes);
                    } else {
                        // Classified once: it says how to stamp the datagram, and the leg
                        // takes the answer rather than work it out again.
                        let kind = slot.leg.classify_received(bytes);
                        let at = if kind == PacketKind::Rtp {
                            on_schedule
                        } else {
                            now
                        };
                        slot.leg.handle_classified(kind, at, source, bytes);
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                // ICMP port unreachable from an earlier send, and the like.
                Err(_) => continue,
            }
        }
        self.flush(index);
    }

    /// One phase's tick: each of its legs gives its received frame and takes the one it must
    /// send. The legs see the tick at the time it was due, not when it ran: a thread running
    /// late (or catching up a few phases at once) must not look to their jitter buffers like
    /// a network delivering late, or they would drop and conceal frames that were there. Each
    /// frame sent is timed from when the tick was due (definitions in `timing`).
    fn tick(&mut self, turn: Turn) {
        let Turn { phase, due } = turn;
        let now = Self::now();
        // Every room leg's queued packets into its group first: a group mixes once, for all.
        for &index in self.phases.legs(phase) {
            if let Some(Some(slot)) = self.slots.get_mut(index) {
                slot.mode.drain(due, &mut self.groups);
            }
        }
        // Every room leg's caller frame into its group (and toward the room) before any leg
        // hears the group's mix of this tick. A room leg that queued the caller's voice: the
        // rooms thread is woken once, after.
        let mut voice_queued = None;
        for &index in self.phases.legs(phase) {
            if let Some(Some(slot)) = self.slots.get_mut(index)
                && slot.mode.speak(due, &mut slot.leg, &mut self.groups)
            {
                voice_queued = Some(index);
            }
        }
        for k in 0..self.phases.legs(phase).len() {
            let Some(&index) = self.phases.legs(phase).get(k) else {
                break;
            };
            let Some(Some(slot)) = self.slots.get_mut(index) else {
                continue;
            };
            slot.mode
                .tick(due, &mut slot.leg, &mut self.groups, &mut self.pcm);
            if self.flush(index) > 0 {
                let sent = Self::now();
                self.stats
                    .frame_sent(sent.saturating_duration_since(due), TICK);
            }
            if let Some(Some(slot)) = self.slots.get_mut(index)
                && due >= slot.stats_due
            {
                slot.stats_due = due + STATS_EVERY;
                let _ = self.events.send(MediaEvent::Stats {
                    leg: slot.id,
                    stats: Box::new(slot.leg.stats()),
                });
            }
        }
        if let Some(Some(Slot {
            mode: Mode::Room(bridge),
            ..
        })) = voice_queued.and_then(|index| self.slots.get(index))
        {
            bridge.link().notify_rooms();
        }
        let end = Self::now();
        self.stats
            .tick_done(end.saturating_duration_since(now), end > due + TICK);
    }

    /// Sends what the leg queued and forwards its events; returns the datagrams sent.
    fn flush(&mut self, index: usize) -> usize {
        let Some(Some(slot)) = self.slots.get_mut(index) else {
            return 0;
        };
        let mut sent = 0;
        while let Some(Transmit { dest, len, socket }) = slot.leg.poll_transmit(&mut self.send_buf)
        {
            let socket = match socket {
                LegSocket::Rtp => &slot.rtp,
                LegSocket::Rtcp => &slot.rtcp,
            };
            match socket.send_to(&self.send_buf[..len], dest) {
                Ok(_) => sent += 1,
                Err(_) => metrics::counter!("sipx_media_send_errors_total").increment(1),
            }
        }
        while let Some(event) = slot.leg.poll_event() {
            let _ = self.events.send(MediaEvent::Leg {
                leg: slot.id,
                event,
            });
        }
        // What the leg did may have brought its next timer forward.
        if let Some(at) = slot.leg.poll_timeout() {
            self.timers_due = Some(self.timers_due.map_or(at, |t| t.min(at)));
        }
        sent
    }
}

/// Adds an ended leg's counts to the process' totals: RTP received and sent, packets from
/// strangers dropped (`leg/latch.rs`: someone spraying the port range shows here), and what
/// its jitter buffer made of what arrived (a benchmark compares them with what was played).
fn count_ended(stats: &LegStats) {
    metrics::counter!("sipx_media_rtp_received_total").increment(stats.media.packets_received);
    metrics::counter!("sipx_media_rtp_sent_total").increment(stats.media.packets_sent);
    metrics::counter!("sipx_media_foreign_packets_total").increment(stats.foreign_source);
    let j = &stats.jitter;
    for (outcome, n) in [
        ("played", j.played),
        ("lost", j.lost),
        ("late", j.late),
        ("skipped", j.skipped),
        ("underruns", j.underruns),
    ] {
        metrics::counter!("sipx_media_jitter_total", "outcome" => outcome).increment(n);
    }
    metrics::counter!("sipx_media_jitter_resyncs_total").increment(j.resyncs);
    // Packets that reached the leg and were not played, by why; SRTP that did not verify
    // shows a peer with another key, or a crypto context lost.
    let srtp = stats.srtp.unwrap_or_default();
    for (reason, n) in [
        ("malformed", stats.malformed),
        ("unknown_payload_type", stats.unknown_payload_types),
        ("second_stream", stats.other_ssrc),
        ("own_ssrc", stats.own_ssrc),
        ("too_large", j.too_large),
        ("duplicate", j.duplicates),
        ("decode_error", stats.decode_errors),
        ("srtp_authentication", srtp.auth_failures),
        ("srtp_replay", srtp.replays),
        ("srtp_malformed", srtp.malformed),
    ] {
        metrics::counter!("sipx_media_dropped_total", "reason" => reason).increment(n);
    }
}
