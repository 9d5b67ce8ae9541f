//! [`MediaLeg`]: one SIP call's media, sans-IO. Datagrams of the leg's RTP/RTCP sockets in
//! (SRTP unprotected in place), 20 ms PCM frames out at the leg's frame rate; 20 ms frames
//! (or already-encoded payloads) in, datagrams out.
//!
//! The driver's loop, per leg:
//! - every datagram: [`MediaLeg::handle_receive`];
//! - every 20 ms tick: [`MediaLeg::pull_frame`] (to the mixer) and [`MediaLeg::push_frame`]
//!   or [`MediaLeg::push_payload`] (from it);
//! - at [`MediaLeg::poll_timeout`]: [`MediaLeg::handle_timeout`] (RTCP, DTMF packets, DTMF end
//!   and media timeouts; the 20 ms tick is the driver's own);
//! - after any of these: drain [`MediaLeg::poll_transmit`] and [`MediaLeg::poll_event`].
//!
//! Files: `config.rs` (settings and reports), `receive.rs` (demux, SRTP, jitter buffer),
//! `latch.rs` (symmetric RTP, and which sources are the peer's), `clock_step.rs` (senders whose
//! timestamps run double or not at all), `playout.rs` (decode and conceal through
//! `crate::decoding`, resample), `other_codecs.rs` (the decoders of codecs an answer also
//! listed), `send.rs` (encode, packetise, DTMF), `transmit.rs` (the preallocated outgoing
//! queue), `mos.rs` (the E-model estimate).

mod clock_step;
mod config;
mod latch;
mod mos;
mod other_codecs;
mod playout;
mod receive;
mod send;
mod source;
mod transmit;

/// Whether silence from the peer can end the call: only while both directions flow. We hold
/// the peer (we only send): it owes us nothing. The peer holds us (we only receive: its
/// `sendonly`, `inactive` or `c=0.0.0.0`): it may send music, or nothing at all, not even
/// RTCP, as many phones do (RFC 3264 §8.4); the wait starts again when it resumes.
fn timeout_armed(cfg: &LegConfig) -> bool {
    cfg.receive && cfg.send && !cfg.media_timeout.is_zero()
}

#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sipx_codec::{CodecKind, Encoder, new_encoder};

pub use config::{FrameKind, LegConfig, LegEvent, LegStats};

/// A datagram [`MediaLeg::poll_transmit`] wrote: where it goes, its length, and which of the
/// leg's two sockets it leaves from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transmit {
    pub dest: SocketAddr,
    pub len: usize,
    pub socket: LegSocket,
}

/// A leg's sockets: RTP (also RTCP under rtcp-mux), and RTCP on its own port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegSocket {
    Rtp,
    Rtcp,
}

/// An encoding of 20 ms frames that legs can share ([`MediaLeg::shared_format`]): the same
/// codec at the same rate with the same settings gives packets any of them can send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedFormat {
    pub codec: sipx_codec::CodecKind,
    pub rate: u32,
    /// The encoder's settings (Opus's; the others ignore them).
    pub options: sipx_codec::EncoderOptions,
}

use crate::dtmf::{DtmfDetector, DtmfDigit, DtmfReceiver, DtmfSender, DtmfTones};
use crate::error::MediaError;
use crate::ids::Ssrc;
use crate::jitter::{JitterBuffer, JitterConfig};
use crate::pcm_queue::PcmQueue;
use crate::resample::Resampler;
use crate::rng::Rng;
use crate::session::{RtcpConfig, RtcpSession};
use crate::silence::DtxSkip;
use crate::srtp::SrtpSession;
use crate::stats::MediaStats;
use latch::Latch;
use source::SourceChoice;
use transmit::TransmitQueue;

/// Events kept before the oldest are dropped (the driver drains them after every call).
const EVENT_CAPACITY: usize = 32;
/// Key presses queued behind the one being sent.
const DTMF_QUEUE: usize = 16;
/// The tick of telephone-event packets.
const DTMF_TICK: Duration = Duration::from_millis(20);

/// One call's media. See the module docs for the driver's loop.
#[derive(Debug)]
pub struct MediaLeg {
    cfg: LegConfig,
    /// Where RTP goes now: the SDP address until symmetric RTP latches.
    rtp_latch: Latch,
    /// RTCP's own port; `None` with rtcp-mux.
    rtcp_latch: Option<Latch>,
    rtcp: RtcpSession,
    srtp: Option<SrtpSession>,
    events: VecDeque<LegEvent>,
    counters: Counters,
    /// What the RTCP sessions this leg had before its last rebuild for another clock rate
    /// counted (`update`): a call's packet counts span its codec changes.
    earlier: MediaStats,
    // Receiving.
    jitter: JitterBuffer,
    /// What decodes now: decoder, concealment and PCM queue at the decoder's rate (the frame
    /// rate when it can), and the resampler to the frame rate. For `cfg.codec`, or one of
    /// `cfg.also_received` the peer changed to.
    playing: other_codecs::DecodePath,
    /// The decoders of the other codecs the peer may change to (`other_codecs.rs`).
    spare_paths: Vec<other_codecs::DecodePath>,
    dtmf_rx: Option<DtmfReceiver>,
    /// In-band detection at 8 kHz, with a resampler from the frame rate if it is higher.
    inband: Option<(DtmfDetector, Option<Resampler>)>,
    /// The peer's stream that plays.
    source: SourceChoice,
    /// Halves the timestamps of a sender whose clock runs at twice its codec's rate.
    clock_step: clock_step::ClockStep,
    /// The 20 ms at decoder rate taken from the stream decoder's queue.
    decoded: Box<[i16]>,
    /// The frame handed to the caller.
    frame: Box<[i16]>,
    /// The in-band detector's 8 kHz copy of the frame.
    narrow: Box<[i16]>,
    last_kind: FrameKind,
    /// RFC 3389 noise level in -dBov while in comfort noise.
    cn_level: Option<u8>,
    rng: Rng,
    last_heard: Instant,
    /// The last packet dropped for coming from an address that is not the peer's.
    last_foreign: Option<Instant>,
    /// The latest time the leg was given (a frame, a timeout): queued packets due by then
    /// may leave (`poll_transmit`).
    clock: Instant,
    /// When the last packet paced out of the tick's rhythm was due (`send::pace`).
    last_paced: Option<Instant>,
    timeout_reported: bool,
    // Sending.
    encoder: Encoder,
    encode_rate: u32,
    /// Frame rate → encoder rate, when they differ.
    downsampler: Option<Resampler>,
    pending: PcmQueue,
    /// One packet's PCM at encoder rate, and its encoding.
    packet_pcm: Box<[i16]>,
    payload: Box<[u8]>,
    seq: u16,
    ts: u32,
    marker_next: bool,
    /// Opus DTX: whether the encoder may be skipped on silence (`crate::silence`).
    dtx_skip: DtxSkip,
    dtmf_tx: Option<DtmfSender>,
    dtmf_queue: VecDeque<(DtmfDigit, Duration)>,
    next_dtmf: Option<Instant>,
    /// Where the telephone event being sent ends on our RTP clock.
    dtmf_end: Option<u32>,
    /// The RTP timestamp the key press being sent started at: its segments' timestamps and
    /// durations count the events' clock from there (RFC 4733 §2.5.2.3).
    dtmf_start: u32,
    /// Key presses sent as tones in the audio, for a peer without telephone-event, and the
    /// frame they are written into.
    tones: DtmfTones,
    tone_frame: Box<[i16]>,
    /// Ticks left during which in-band detection takes our own key tones' echo for silence.
    tones_echo_ticks: u8,
    transmit: TransmitQueue,
}

/// Things counted for [`LegStats`].
#[derive(Debug, Clone, Copy, Default)]
struct Counters {
    unknown_payload_types: u64,
    malformed: u64,
    decode_errors: u64,
    transmit_dropped: u64,
    foreign_source: u64,
    own_ssrc: u64,
    other_ssrc: u64,
    /// Whether [`LegEvent::UnexpectedPayloadType`] was reported.
    payload_type_reported: bool,
}

impl MediaLeg {
    /// Builds a leg: codecs, jitter buffer, SRTP keys, RTCP. Fails on a codec or rate this
    /// build cannot do, a ptime outside 10..=60 ms, or SRTP keys that do not fit the suite.
    pub fn new(cfg: LegConfig, now: Instant) -> Result<Self, MediaError> {
        if !(10..=60).contains(&cfg.ptime_ms) {
            return Err(MediaError::ApiMisuse("ptime must be 10..=60 ms"));
        }
        if ![8000, 16000, 48000].contains(&cfg.frame_rate) {
            return Err(MediaError::ApiMisuse(
                "frame rate must be 8000, 16000 or 48000",
            ));
        }
        let playing = other_codecs::DecodePath::new(cfg.codec, cfg.frame_rate)?;
        let encode_rate = playing.rate;
        let spare_paths = other_codecs::spare_paths(cfg.codec, &cfg.also_received, cfg.frame_rate)?;
        // Room for 20 ms at the highest rate any of them decodes at.
        let decode_frame = spare_paths
            .iter()
            .map(|p| p.rate)
            .fold(playing.rate, u32::max) as usize
            / 50;
        let encoder = new_encoder(cfg.codec, encode_rate, &cfg.opus)?;
        let resampler = other_codecs::resampler;
        let jitter = JitterBuffer::new(&JitterConfig {
            clock_rate: cfg.clock_rate,
            ..cfg.jitter.clone()
        });
        let srtp = cfg.srtp.as_ref().map(SrtpSession::new).transpose()?;
        let rtcp = RtcpSession::new(
            RtcpConfig {
                ssrc: Ssrc(cfg.local_ssrc),
                cname: cfg.cname.clone(),
                clock_rate: cfg.clock_rate,
                session_bandwidth_bps: session_bandwidth(&cfg),
                seed: cfg.seed,
                ..RtcpConfig::default()
            },
            now,
            cfg.wallclock,
        );
        let frame_samples = cfg.frame_rate as usize / 50;
        let inband = cfg
            .detect_inband_dtmf
            .then(|| (DtmfDetector::new(), resampler(cfg.frame_rate, 8000)));
        Ok(MediaLeg {
            rtp_latch: Latch::new(cfg.remote_rtp),
            rtcp_latch: cfg.remote_rtcp.map(Latch::new),
            rtcp,
            srtp,
            events: VecDeque::with_capacity(EVENT_CAPACITY),
            counters: Counters::default(),
            earlier: MediaStats::default(),
            jitter,
            playing,
            spare_paths,
            dtmf_rx: cfg
                .telephone_event
                .map(|(_, clock)| DtmfReceiver::new(clock)),
            inband,
            source: SourceChoice::default(),
            clock_step: clock_step::ClockStep::default(),
            decoded: vec![0; decode_frame].into(),
            frame: vec![0; frame_samples].into(),
            narrow: vec![0; 160].into(),
            last_kind: FrameKind::Silence,
            cn_level: None,
            rng: Rng::new(cfg.seed ^ 0x636e),
            last_heard: now,
            last_foreign: None,
            timeout_reported: false,
            clock: now,
            last_paced: None,
            encoder,
            encode_rate,
            downsampler: resampler(cfg.frame_rate, encode_rate),
            pending: PcmQueue::new(encode_rate as usize * 80 / 1000),
            packet_pcm: vec![0; encode_rate as usize * 60 / 1000].into(),
            payload: vec![
                0;
                cfg.codec
                    .max_payload_len(encode_rate as usize * 60 / 1000, encode_rate)
            ]
            .into(),
            seq: cfg.initial_seq,
            ts: cfg.initial_ts,
            marker_next: true,
            dtx_skip: DtxSkip::default(),
            dtmf_tx: cfg
                .telephone_event
                .map(|(_, clock)| DtmfSender::new(clock, DTMF_TICK)),
            dtmf_queue: VecDeque::with_capacity(DTMF_QUEUE),
            next_dtmf: None,
            dtmf_end: None,
            dtmf_start: 0,
            tones: DtmfTones::new(cfg.frame_rate, DTMF_QUEUE),
            tone_frame: vec![0; frame_samples].into(),
            tones_echo_ticks: 0,
            transmit: TransmitQueue::new(),
            cfg,
        })
    }

    /// Applies a re-INVITE: new direction, remote addresses, keys or codec. The leg stays one
    /// RTP source while its clock rate does: its SSRC (whatever `cfg` says), sequence,
    /// timestamps and RTCP counts carry on, and with the same codec settings its codec state
    /// too. A new clock rate is a new timeline, so the leg restarts its media with the new
    /// configuration's SSRC, sequence and timestamp. (A session refresh must not make the far
    /// end see a new source, nor RTCP report one SSRC while RTP carries another.)
    pub fn update(&mut self, mut cfg: LegConfig, now: Instant) -> Result<(), MediaError> {
        let signalled = (self.cfg.remote_rtp, self.cfg.remote_rtcp);
        let latches = (self.rtp_latch, self.rtcp_latch);
        if cfg.clock_rate == self.cfg.clock_rate {
            cfg.local_ssrc = self.cfg.local_ssrc;
        }
        // One CNAME for the leg's whole life: it binds a new SSRC to the old (RFC 3550 §6.5.1).
        cfg.cname.clone_from(&self.cfg.cname);
        // Everything that can fail comes first, so a refused update leaves the leg as it was.
        let srtp = match (&self.srtp, &self.cfg.srtp, &cfg.srtp) {
            (_, old, new) if old == new => None,
            (Some(session), Some(old), Some(new)) => Some(Some(session.renegotiated(old, new)?)),
            (_, _, new) => Some(new.as_ref().map(SrtpSession::new).transpose()?),
        };
        if !cfg.same_media(&self.cfg) {
            let mut next = MediaLeg::new(cfg.clone(), now)?;
            // A key press being sent ends here, under the settings it began with; the presses
            // waiting go on under the new ones (as events or as tones, as the peer now takes
            // them), after the old one's end packets.
            let waiting = self.end_dtmf_now(now);
            std::mem::swap(&mut next.transmit, &mut self.transmit);
            // SRTP contexts outlive a new codec or packetisation: see `renegotiated`.
            next.srtp = self.srtp.take();
            if next.cfg.local_ssrc == self.cfg.local_ssrc
                && next.cfg.clock_rate == self.cfg.clock_rate
            {
                // Same source and clock: keep its RTCP counts and the sequence running.
                std::mem::swap(&mut next.rtcp, &mut self.rtcp);
                (next.seq, next.ts) = (self.seq, self.ts);
                next.earlier = self.earlier;
            } else {
                // A new source: its RTCP starts afresh, the call's counts go on.
                next.earlier = self.stats().media;
            }
            next.events = std::mem::take(&mut self.events);
            next.counters = self.counters;
            *self = next;
            for (digit, duration) in waiting {
                self.send_dtmf(now, digit, duration);
            }
        }
        if let Some(srtp) = srtp {
            self.srtp = srtp;
        }
        // Keep what was learned of the peer's address while its SDP address stays what it
        // was (even when the leg was rebuilt for a new codec); a new one is learned afresh.
        self.rtp_latch = if cfg.remote_rtp == signalled.0 {
            let mut kept = latches.0;
            kept.renew();
            kept
        } else {
            Latch::new(cfg.remote_rtp)
        };
        self.rtcp_latch = if cfg.remote_rtcp == signalled.1 {
            latches.1
        } else {
            cfg.remote_rtcp.map(Latch::new)
        };
        if timeout_armed(&cfg) && !timeout_armed(&self.cfg)
            || cfg.media_timeout != self.cfg.media_timeout
        {
            self.last_heard = now;
            self.timeout_reported = false;
        }
        if cfg.send && !self.cfg.send {
            self.marker_next = true;
        }
        self.cfg = cfg;
        Ok(())
    }

    /// Runs what is due at `now`: DTMF packets and end timeouts, RTCP reports, the media
    /// timeout. Calling it early or twice does nothing extra.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.clock = self.clock.max(now);
        self.send_due_dtmf(now);
        if let Some(rx) = self.dtmf_rx.as_mut() {
            rx.handle_timeout(now);
        }
        self.drain_dtmf_events();
        if now >= self.rtcp.poll_timeout() {
            let rtcp = &mut self.rtcp;
            let queued = self.transmit.push(transmit::Channel::Rtcp, |buf| {
                Ok(rtcp.poll_transmit(now, buf)?.unwrap_or(0))
            });
            if !queued {
                self.counters.transmit_dropped += 1;
            }
        }
        if let Some(deadline) = self.media_deadline()
            && now >= deadline
        {
            self.timeout_reported = true;
            let elsewhere = self.last_foreign.is_some_and(|at| at > self.last_heard);
            self.push_event(LegEvent::MediaTimeout { elsewhere });
        }
    }

    /// Ends our stream (RFC 3550 §6.3.7): a last report and a BYE, queued to be sent before
    /// the leg goes, so the peer and monitors in the path learn the source left at once.
    pub fn end(&mut self, now: Instant) {
        let rtcp = &mut self.rtcp;
        let queued = self.transmit.push(transmit::Channel::Rtcp, |buf| {
            rtcp.write_bye(now, buf, None)
        });
        if !queued {
            self.counters.transmit_dropped += 1;
        }
        self.transmit.release_all();
    }

    /// When [`MediaLeg::handle_timeout`] next has work (the 20 ms tick is not included).
    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            Some(self.rtcp.poll_timeout()),
            self.next_dtmf,
            self.dtmf_rx.as_ref().and_then(DtmfReceiver::poll_timeout),
            self.media_deadline(),
            self.transmit.waiting_until(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn media_deadline(&self) -> Option<Instant> {
        let armed = timeout_armed(&self.cfg) && !self.timeout_reported;
        armed.then(|| self.last_heard + self.cfg.media_timeout)
    }

    /// The next datagram to send, written into `buf` (1500 bytes always suffice): its
    /// destination, length and socket. SRTP is applied here, in `buf`.
    pub fn poll_transmit(&mut self, buf: &mut [u8]) -> Option<Transmit> {
        loop {
            let (channel, packet) = self.transmit.pop(self.clock)?;
            let dest = match channel {
                transmit::Channel::Rtp => self.rtp_latch.current(),
                transmit::Channel::Rtcp => self.rtcp_latch.unwrap_or(self.rtp_latch).current(),
            };
            // A peer on hold the RFC 2543 way (`c=IN IP4 0.0.0.0`) that sends nothing has no
            // address to send to: datagrams to 0.0.0.0 would come back to this host, to
            // whichever of its ports the peer's port number is.
            if dest.ip().is_unspecified() || dest.port() == 0 {
                continue;
            }
            let written = copy_and_protect(self.srtp.as_mut(), channel, packet, buf);
            let Some(len) = written else {
                self.counters.transmit_dropped += 1;
                continue;
            };
            // RTCP leaves from the RTCP port unless the peer multiplexes (RFC 5761): the
            // leg knows which it queued, where the bytes alone may not tell (`is_marked_rtp`).
            let socket = match channel {
                transmit::Channel::Rtcp if self.cfg.remote_rtcp.is_some() => LegSocket::Rtcp,
                _ => LegSocket::Rtp,
            };
            return Some(Transmit { dest, len, socket });
        }
    }

    /// The next thing the leg noticed.
    pub fn poll_event(&mut self) -> Option<LegEvent> {
        self.events.pop_front()
    }

    /// The configuration in force (the last one given to `new` or `update`).
    pub fn config(&self) -> &LegConfig {
        &self.cfg
    }

    /// Counters, codec, jitter buffer state and a MOS estimate.
    pub fn stats(&self) -> LegStats {
        let media = self.rtcp.stats().after(&self.earlier);
        let jitter = self.jitter.stats();
        let mos = mos::estimate(self.cfg.codec, &media, &jitter, self.cfg.ptime_ms);
        LegStats {
            media,
            codec: self.cfg.codec.encoding_name(),
            jitter,
            mos,
            srtp: self.srtp.as_ref().map(SrtpSession::stats),
            unknown_payload_types: self.counters.unknown_payload_types,
            malformed: self.counters.malformed,
            decode_errors: self.counters.decode_errors,
            transmit_dropped: self.counters.transmit_dropped,
            foreign_source: self.counters.foreign_source,
            own_ssrc: self.counters.own_ssrc,
            other_ssrc: self.counters.other_ssrc,
            remote_rtp: self.rtp_latch.current(),
        }
    }

    fn push_event(&mut self, event: LegEvent) {
        if self.events.len() < EVENT_CAPACITY {
            self.events.push_back(event);
        }
    }

    fn drain_dtmf_events(&mut self) {
        while let Some(e) = self.dtmf_rx.as_mut().and_then(DtmfReceiver::poll_event) {
            self.push_event(LegEvent::Dtmf(e));
        }
        while let Some(e) = self.inband.as_mut().and_then(|(d, _)| d.poll_event()) {
            self.push_event(LegEvent::DtmfInBand(e));
        }
    }
}

/// Copies a queued packet into the caller's buffer and protects it there.
fn copy_and_protect(
    srtp: Option<&mut SrtpSession>,
    channel: transmit::Channel,
    packet: &[u8],
    buf: &mut [u8],
) -> Option<usize> {
    let len = packet.len();
    buf.get_mut(..len)?.copy_from_slice(packet);
    let Some(srtp) = srtp else {
        return Some(len);
    };
    let protected = match channel {
        transmit::Channel::Rtp => srtp.protect_rtp(buf, len),
        transmit::Channel::Rtcp => srtp.protect_rtcp(buf, len),
    };
    protected.ok()
}

/// The PCM rate the codec runs at: the frame rate when the codec can take and give it (no
/// resampling: Opus and G.722 at 8 kHz, Opus at 16 and 48 kHz, G.722 at 16 kHz), otherwise
/// the codec's native rate (G.711 and G.729 at 8 kHz, G.722 at 16 kHz for 48 kHz frames).
fn codec_rate(kind: CodecKind, frame_rate: u32) -> Result<u32, MediaError> {
    if kind.supports_audio_rate(frame_rate) {
        return Ok(frame_rate);
    }
    let native = kind.native_audio_rate();
    if Resampler::new(native, frame_rate).is_some() {
        Ok(native)
    } else {
        Err(MediaError::ApiMisuse("no codec rate fits the frame rate"))
    }
}

/// RTP bandwidth for the RTCP interval: the codec bitrate plus 40 bytes of IP/UDP/RTP per packet.
fn session_bandwidth(cfg: &LegConfig) -> u32 {
    let packets_per_second = 1000 / cfg.ptime_ms.max(10);
    let codec = match cfg.codec {
        sipx_codec::CodecKind::Opus => cfg.opus.bitrate.unwrap_or(32_000),
        sipx_codec::CodecKind::G729 => 8_000,
        _ => 64_000,
    };
    codec + packets_per_second * 40 * 8
}
