//! What the local side wants: codecs in preference order, DTMF, packetisation, address, SRTP.

use std::net::IpAddr;

use crate::codec::Codec;
use crate::crypto::SrtpSuite;

/// Whether media must, may or must not be encrypted with SDES-SRTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SrtpPolicy {
    /// Plain RTP only: `RTP/SAVP` offers are refused, crypto lines in `RTP/AVP` ignored.
    Disabled,
    /// SRTP when the peer offers it (also "best-effort" crypto lines in `RTP/AVP`); our offers
    /// are `RTP/AVP` with crypto lines, so peers without SRTP still connect.
    Allowed,
    /// SRTP or nothing: plain offers are refused; our offers are `RTP/SAVP`.
    Required,
}

/// Whose codec order decides when both sides support several codecs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preference {
    /// Our order (the usual choice for a gateway: it decides transcoding cost).
    Ours,
    /// The offerer's order (RFC 3264 §6.1 recommends honouring it).
    Theirs,
}

/// A codec we support, with the `fmtp` we advertise for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalCodec {
    pub codec: Codec,
    pub fmtp: Option<String>,
}

impl LocalCodec {
    /// The codec with its default `fmtp` ([`Codec::default_fmtp`]).
    pub fn new(codec: Codec) -> Self {
        LocalCodec {
            codec,
            fmtp: codec.default_fmtp().map(str::to_owned),
        }
    }
}

/// The local side of one audio stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaConfig {
    /// Supported codecs, most preferred first. Must not be empty.
    pub codecs: Vec<LocalCodec>,
    /// Offer and accept RFC 4733 `telephone-event` (8000 Hz, plus 48000 Hz when Opus is on).
    pub telephone_event: bool,
    /// Packetisation time we ask for, in milliseconds.
    pub ptime: u32,
    /// Where we receive RTP: the address written in `c=` and the port in `m=`.
    pub address: IpAddr,
    pub rtp_port: u16,
    /// Offer and accept RTP/RTCP multiplexing on one port (RFC 5761).
    pub rtcp_mux: bool,
    pub srtp: SrtpPolicy,
    /// SRTP suites we accept, most preferred first; offers list the first
    /// [`SrtpSuite::OFFERED`] of them.
    pub srtp_suites: Vec<SrtpSuite>,
    /// Whose codec order wins.
    pub preference: Preference,
    /// `o=` username.
    pub username: String,
    /// `o=` session id: stays the same for the whole call. The caller picks it (this crate has
    /// no random numbers or clock).
    pub session_id: u64,
}

impl MediaConfig {
    /// Sensible defaults: PCMU, PCMA, G.722, Opus, G.729 in that order, telephone-event,
    /// 20 ms, rtcp-mux offered, SRTP allowed with every suite.
    pub fn new(address: IpAddr, rtp_port: u16, session_id: u64) -> Self {
        MediaConfig {
            codecs: [
                Codec::Pcmu,
                Codec::Pcma,
                Codec::G722,
                Codec::Opus,
                Codec::G729,
            ]
            .into_iter()
            .map(LocalCodec::new)
            .collect(),
            telephone_event: true,
            ptime: 20,
            address,
            rtp_port,
            rtcp_mux: true,
            srtp: SrtpPolicy::Allowed,
            srtp_suites: SrtpSuite::ALL.to_vec(),
            preference: Preference::Ours,
            username: "sipx".to_owned(),
            session_id,
        }
    }

    /// The same configuration with only these codecs, in this order.
    pub fn with_codecs(mut self, codecs: &[Codec]) -> Self {
        self.codecs = codecs.iter().copied().map(LocalCodec::new).collect();
        self
    }

    /// The same configuration with another SRTP policy.
    pub fn with_srtp(mut self, policy: SrtpPolicy) -> Self {
        self.srtp = policy;
        self
    }
}
