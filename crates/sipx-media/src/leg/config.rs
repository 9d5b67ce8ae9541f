//! What a leg is set up with, and what it reports.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sipx_codec::{CodecKind, EncoderOptions};

use crate::dtmf::DtmfEvent;
use crate::ids::Ssrc;
use crate::jitter::{JitterConfig, JitterStats};
use crate::srtp::{SrtpConfig, SrtpStats};
use crate::stats::MediaStats;

/// Everything a leg needs from the SIP layer's negotiated media and the driver. The server
/// maps `sipx-sdp`'s negotiated media onto it; this crate does not know SDP.
#[derive(Debug, Clone)]
pub struct LegConfig {
    pub codec: CodecKind,
    /// The payload type we send audio with.
    pub payload_type: u8,
    /// The one the peer sends it with, when our offer numbered it otherwise than the answer
    /// did (RFC 3264 §5.1); packets with `payload_type` are taken as audio too, since some
    /// peers send with their own numbers.
    pub receive_payload_type: u8,
    /// Other codecs the peer may send with, by payload type: an answer that listed several
    /// lets its sender change among them mid-call (RFC 3264 §5.1), as PBXs do after a
    /// transfer or a bridge. Each must have `clock_rate` for its RTP clock. What plays is
    /// decoded by each packet's codec; we send with `codec` only.
    pub also_received: Vec<(u8, CodecKind)>,
    /// RTP clock of the codec (G.722: 8000, Opus: 48000).
    pub clock_rate: u32,
    /// Packetisation we send, 10..=60 ms. What we receive may be anything. Opus always sends
    /// 20 ms packets (the best size for its FEC), whatever this says.
    pub ptime_ms: u32,
    /// RFC 4733 telephone events: (payload type, clock rate). Its clock should be the
    /// codec's RTP clock, as RFC 4733 §2.1 asks.
    pub telephone_event: Option<(u8, u32)>,
    /// The keys' events (0-15) the peer takes as telephone events, bit n for event n (its
    /// `fmtp`); a key it does not take goes as tones in the audio.
    pub telephone_event_keys: u16,
    /// The payload type the peer sends events with, when not the one of `telephone_event`
    /// (as for `receive_payload_type`).
    pub receive_event_payload_type: Option<u8>,
    pub remote_rtp: SocketAddr,
    /// `None` means rtcp-mux: RTCP goes to `remote_rtp`.
    pub remote_rtcp: Option<SocketAddr>,
    pub srtp: Option<SrtpConfig>,
    /// PCM rate of the frames of `pull_frame` and `push_frame`: 8000, 16000 or 48000.
    pub frame_rate: u32,
    /// Jitter buffer settings; its clock rate is taken from `clock_rate`.
    pub jitter: JitterConfig,
    /// No RTP or RTCP for this long while `receive` and `send` are true gives one
    /// [`LegEvent::MediaTimeout`]: a peer that holds us may send nothing at all, one we hold
    /// owes us nothing. `Duration::ZERO` turns the check off.
    pub media_timeout: Duration,
    /// We send media: false when our direction is recvonly or inactive (the peer holds us with
    /// sendonly, or the stream is inactive). RTCP is sent either way.
    pub send: bool,
    /// We expect media: false when our direction is sendonly or inactive (we hold the peer).
    /// While false, received audio is dropped and the media timeout is off. The peer's RTCP
    /// counts as life as well as its RTP.
    pub receive: bool,
    /// Send to wherever the peer's valid packets really come from (NAT).
    pub symmetric_rtp: bool,
    /// Detect DTMF tones in the received audio, for peers without telephone-event. Leave it
    /// off when telephone-event was negotiated, or a key may be reported twice.
    pub detect_inband_dtmf: bool,
    pub opus: EncoderOptions,
    /// Random, from the driver.
    pub local_ssrc: u32,
    pub initial_seq: u16,
    pub initial_ts: u32,
    /// RTCP SDES CNAME.
    pub cname: String,
    /// The wall-clock time at the `now` given to [`super::MediaLeg::new`], read once by the
    /// driver; it only stamps NTP times in sender reports.
    pub wallclock: SystemTime,
    /// Seeds the RTCP interval randomisation and comfort noise.
    pub seed: u64,
}

impl LegConfig {
    /// A leg for `codec` on `payload_type` sending to `remote_rtp` with rtcp-mux, 20 ms
    /// packets, narrowband frames, both directions, symmetric RTP and a 30 s media timeout.
    /// The driver fills in the random SSRC, sequence, timestamp and seed.
    pub fn new(codec: CodecKind, payload_type: u8, remote_rtp: SocketAddr) -> Self {
        LegConfig {
            codec,
            payload_type,
            receive_payload_type: payload_type,
            also_received: Vec::new(),
            clock_rate: codec.rtp_clock_rate(),
            ptime_ms: 20,
            telephone_event: None,
            telephone_event_keys: u16::MAX,
            receive_event_payload_type: None,
            remote_rtp,
            remote_rtcp: None,
            srtp: None,
            frame_rate: 8000,
            jitter: JitterConfig::default(),
            media_timeout: Duration::from_secs(30),
            send: true,
            receive: true,
            symmetric_rtp: true,
            detect_inband_dtmf: false,
            opus: EncoderOptions::default(),
            local_ssrc: 0,
            initial_seq: 0,
            initial_ts: 0,
            cname: String::new(),
            wallclock: UNIX_EPOCH,
            seed: 0,
        }
    }

    /// The codec of `also_received` that payload type `pt` names, if any.
    pub(super) fn other_codec(&self, pt: u8) -> Option<CodecKind> {
        self.also_received
            .iter()
            .find(|(p, _)| *p == pt)
            .map(|&(_, codec)| codec)
    }

    /// The codec of audio received with payload type `pt`: one of `also_received`, else
    /// `codec`.
    pub(super) fn codec_of(&self, pt: u8) -> CodecKind {
        self.other_codec(pt).unwrap_or(self.codec)
    }

    /// Whether two configurations encode and decode the same way (so `update` keeps the
    /// codec state, SSRC and sequence).
    pub(super) fn same_media(&self, other: &LegConfig) -> bool {
        self.codec == other.codec
            && self.payload_type == other.payload_type
            && self.receive_payload_type == other.receive_payload_type
            && self.also_received == other.also_received
            && self.receive_event_payload_type == other.receive_event_payload_type
            && self.clock_rate == other.clock_rate
            && self.ptime_ms == other.ptime_ms
            && self.telephone_event == other.telephone_event
            && self.frame_rate == other.frame_rate
            && self.detect_inband_dtmf == other.detect_inband_dtmf
            && self.opus == other.opus
    }
}

/// What a 20 ms frame from `pull_frame` holds, so a mixer can skip silent inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// Decoded from received packets.
    Audio,
    /// Made up for lost packets (PLC or Opus FEC).
    Concealed,
    /// Nothing was received: zeros, or comfort noise during an RFC 3389 silence.
    Silence,
}

/// Something the leg noticed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LegEvent {
    /// A key press ended, sent as RFC 4733 events.
    Dtmf(DtmfEvent),
    /// A key press ended, heard as its tones in the audio (`detect_inband_dtmf`): the audio
    /// itself carries it on wherever it goes.
    DtmfInBand(DtmfEvent),
    /// Nothing arrived for `media_timeout` while we expected media. Reported once per outage.
    /// `elsewhere`: packets did arrive meanwhile, from an address that is not the peer's and
    /// proved nothing (`ForeignSource`), so they were dropped: the peer may have moved
    /// without a re-INVITE, which is worth saying when the call ends for it.
    MediaTimeout { elsewhere: bool },
    /// Symmetric RTP: the peer's packets come from this address, and we now send there.
    RemoteLatched(SocketAddr),
    /// Valid packets came from an address that is not the peer's and proved nothing (see
    /// `latch.rs`): dropped. Reported for the first such packet of the leg; the rest are
    /// counted in [`LegStats::foreign_source`].
    ForeignSource(SocketAddr),
    /// The peer started a new stream (new SSRC): decoder and jitter buffer restarted.
    SsrcChanged { old: Ssrc, new: Ssrc },
    /// The peer sent an RTCP BYE.
    Bye,
    /// RTP came in naming our own SSRC (RFC 3550 §8.2): the peer chose the same one, or
    /// sends our packets back. We now send as `new`; our old source said BYE. Reported once:
    /// more such packets are a loop, counted in [`LegStats::own_ssrc`].
    SsrcCollision { old: Ssrc, new: Ssrc },
    /// RTP of a payload type the SDP did not agree on (the peer changed codec without a new
    /// offer, say): dropped. Reported for the first such packet of the leg; the rest are
    /// counted in [`LegStats::unknown_payload_types`].
    UnexpectedPayloadType(u8),
    /// A second stream arrived while the one playing still sends (see `source.rs`): not
    /// played. Reported for its first packet; the rest are counted in
    /// [`LegStats::other_ssrc`].
    SecondStream(Ssrc),
}

impl LegEvent {
    /// A key press, and how it came (`rfc4733` or `inband`, as metrics and logs name it).
    pub fn key(&self) -> Option<(DtmfEvent, &'static str)> {
        match *self {
            LegEvent::Dtmf(e) => Some((e, "rfc4733")),
            LegEvent::DtmfInBand(e) => Some((e, "inband")),
            _ => None,
        }
    }
}

/// A snapshot of the leg for monitoring and CDRs.
#[derive(Debug, Clone, PartialEq)]
pub struct LegStats {
    pub media: MediaStats,
    /// SDP encoding name of the codec.
    pub codec: &'static str,
    pub jitter: JitterStats,
    /// Mean opinion score, 1.0..=4.5, from a simplified E-model (ITU-T G.107): an estimate
    /// for dashboards, not a measurement.
    pub mos: f64,
    pub srtp: Option<SrtpStats>,
    /// RTP packets with a payload type that is neither the codec, telephone-event nor CN.
    pub unknown_payload_types: u64,
    /// Datagrams that failed to parse as RTP or RTCP, or were neither.
    pub malformed: u64,
    /// Payloads the decoder refused (concealed instead).
    pub decode_errors: u64,
    /// Packets dropped because the transmit queue was full or the caller's buffer too small.
    pub transmit_dropped: u64,
    /// Packets from an address that is not the peer's, dropped (RTP bleed).
    pub foreign_source: u64,
    /// RTP packets naming our own SSRC (a collision, then our packets looped back): never
    /// played.
    pub own_ssrc: u64,
    /// RTP packets of a second stream (SSRC) sent while the one playing still sends: not
    /// played (`source`).
    pub other_ssrc: u64,
    /// Where we send RTP now (after any latching).
    pub remote_rtp: SocketAddr,
}
