//! The outcome of a successful offer/answer: everything the media layer needs to run the leg.

use std::net::SocketAddr;

use crate::attr::{Direction, Fmtp};
use crate::codec::Codec;
use crate::crypto::SrtpSuite;

/// The agreed audio stream, seen from our side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NegotiatedMedia {
    /// Where to send RTP.
    pub remote_rtp: SocketAddr,
    /// Where to send RTCP.
    pub remote_rtcp: RtcpTarget,
    pub codec: NegotiatedCodec,
    /// The other codecs of ours an answer to our offer listed, in its order: its sender may
    /// change to any of them mid-call (RFC 3264 §5.1). Empty when we answered (our answer
    /// lists one codec).
    pub also_received: Vec<NegotiatedCodec>,
    /// RFC 4733 DTMF, when both sides support it.
    pub telephone_event: Option<TelephoneEvent>,
    /// Packetisation time to send with, in milliseconds.
    pub ptime: u32,
    /// Our direction: whether we may send and should expect to receive.
    pub direction: Direction,
    /// SDES-SRTP keys, or `None` for plain RTP.
    pub srtp: Option<SrtpParams>,
    /// The `m=` proto both sides use (`RTP/AVP`, `RTP/SAVP`, …).
    pub proto: String,
}

impl NegotiatedMedia {
    /// True when we may send media (the peer has not put us on hold, nor we it with inactive).
    pub fn may_send(&self) -> bool {
        self.direction.sends()
    }

    /// True when the peer is expected to send us media.
    pub fn should_receive(&self) -> bool {
        self.direction.receives()
    }
}

/// Where RTCP goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RtcpTarget {
    /// On the RTP port (RFC 5761).
    Muxed,
    /// To a separate address: RFC 3605 `a=rtcp`, or the RTP port plus one.
    Separate(SocketAddr),
}

/// The chosen codec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NegotiatedCodec {
    pub codec: Codec,
    /// Payload type we send with: the offerer's number when we answered, the answer's when we
    /// offered (RFC 3264 §5.1: each side's numbers are what it receives).
    pub payload_type: u8,
    /// Payload type the peer sends with: our offer's number when we offered, which an answer
    /// may have renumbered (RFC 3264 §6.1 only asks it not to); else `payload_type`.
    pub receive_payload_type: u8,
    /// Encoding name, clock rate and channels as written in SDP.
    pub name: &'static str,
    pub clock_rate: u32,
    pub channels: u16,
    /// Sample rate of the audio itself (16000 for G.722, whose RTP clock says 8000).
    pub audio_rate: u32,
    /// The peer's `fmtp` for this codec: what it wants to receive.
    pub remote_fmtp: Option<String>,
    /// The `fmtp` we wrote: what we want to receive.
    pub local_fmtp: Option<String>,
}

impl NegotiatedCodec {
    /// For G.729: true when both sides allow Annex B (VAD/CNG). `annexb` defaults to yes
    /// (RFC 4856 §2.1.9), so only an explicit `annexb=no` on either side turns it off.
    pub fn g729_annex_b(&self) -> bool {
        let allows = |fmtp: &Option<String>| {
            fmtp.as_deref()
                .and_then(|p| Fmtp::param(p, "annexb"))
                .is_none_or(|v| !v.eq_ignore_ascii_case("no"))
        };
        self.codec == Codec::G729 && allows(&self.remote_fmtp) && allows(&self.local_fmtp)
    }
}

/// RFC 4733 telephone events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelephoneEvent {
    /// The number we send events with (as for [`NegotiatedCodec::payload_type`]).
    pub payload_type: u8,
    /// The number the peer sends them with (as for [`NegotiatedCodec::receive_payload_type`]).
    pub receive_payload_type: u8,
    pub clock_rate: u32,
    /// The keys' events (0-15) the peer takes, bit n for event n: what its `fmtp` lists.
    pub keys: u16,
}

/// SDES-SRTP parameters of the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrtpParams {
    pub suite: SrtpSuite,
    /// The peer's key: decrypts what it sends.
    pub remote: SrtpKey,
    /// Our key: encrypts what we send.
    pub local: SrtpKey,
}

/// One SRTP master key and salt.
#[derive(Clone, PartialEq, Eq)]
pub struct SrtpKey {
    pub key: Vec<u8>,
    pub salt: Vec<u8>,
    /// Master key identifier (value, length in bytes) carried in each packet, when used.
    pub mki: Option<(u32, u8)>,
}

impl SrtpKey {
    /// The MKI as every packet carries it: the value big-endian in its length's bytes
    /// (`|1:4` is `[0, 0, 0, 1]`); empty without one. Longer ones are not negotiated.
    pub fn mki_bytes(&self) -> Vec<u8> {
        match self.mki {
            Some((value, len)) => {
                let len = usize::from(len.min(crate::crypto::MAX_MKI_LEN));
                value.to_be_bytes()[4 - len..].to_vec()
            }
            None => Vec::new(),
        }
    }
}

impl std::fmt::Debug for SrtpKey {
    // Keys stay out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SrtpKey")
            .field("key", &"<redacted>")
            .field("salt", &"<redacted>")
            .field("mki", &self.mki)
            .finish()
    }
}
