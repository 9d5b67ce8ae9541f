//! The receive side of one master key: its session keys, the MKI its packets carry, and per
//! remote SSRC the rollover counter and replay windows (RFC 3711 §3.3.1, Appendix A). A
//! session holds one, and for a while after the peer re-keys, the one before it too.

use super::replay::{ReplayWindow, RocTracker};
use super::transform::{RTCP_CM_TAG, SHORT_RTCP_CM_TAG, Transform};
use super::{STREAMS, SrtpKey, SrtpSuite, rtp_header_len, rtp_seq_ssrc};
use crate::error::MediaError;

/// One remote source's receive state.
#[derive(Debug, Clone, Copy)]
pub(super) struct RxStream {
    ssrc: u32,
    roc: RocTracker,
    rtp_window: ReplayWindow,
    rtcp_window: ReplayWindow,
    /// Order of last use, to replace the stalest when a new source appears.
    last_used: u64,
}

/// What the packets of one remote master key are opened with.
pub(super) struct Receiver {
    suite: SrtpSuite,
    transform: Transform,
    /// The MKI the peer's packets must carry (empty: none).
    mki: Vec<u8>,
    pub streams: [Option<RxStream>; STREAMS],
    /// Packets authenticated so far: the order of use for `streams`.
    pub uses: u64,
    /// The length of the AES-CM SRTCP tag the peer's last authenticated SRTCP packet had:
    /// RFC 4568's 80 bits, or 32 with a `_32` suite from a peer that uses one libsrtp policy
    /// for RTP and RTCP (linphone does). Either is taken with a `_32` suite, whose RTP is
    /// authenticated with 32 bits anyway; with any other suite, only the RFC's.
    pub rtcp_tag: usize,
}

impl Receiver {
    pub fn new(suite: SrtpSuite, key: &SrtpKey) -> Result<Self, MediaError> {
        Ok(Receiver::from_transform(
            suite,
            Transform::from_master(suite, key)?,
            key.mki.clone(),
        ))
    }

    pub fn from_transform(suite: SrtpSuite, transform: Transform, mki: Vec<u8>) -> Self {
        Receiver {
            suite,
            transform,
            mki,
            streams: [None; STREAMS],
            uses: 0,
            rtcp_tag: RTCP_CM_TAG,
        }
    }

    /// Verifies and decrypts the SRTP packet filling `packet`; returns the RTP length.
    pub fn unprotect_rtp(&mut self, packet: &mut [u8]) -> Result<usize, MediaError> {
        let trailer = self.mki.len() + self.suite.rtp_overhead();
        let header_len = rtp_header_len(packet)?;
        if packet.len() < header_len + trailer {
            return Err(MediaError::MalformedSrtp("shorter than header and tag"));
        }
        let (seq, ssrc) = rtp_seq_ssrc(packet);
        let (slot, mut stream) = self.stream(ssrc);
        let (roc, index) = stream.roc.estimate(seq);
        stream.rtp_window.check(index)?;
        let len = self
            .transform
            .unprotect_rtp(packet, header_len, &self.mki, (ssrc, roc, seq))?;
        // Authenticated: only now may the packet move the ROC and the window, or take a slot.
        stream.rtp_window.accept(index);
        stream.roc.accept(roc, seq);
        self.store(slot, stream);
        Ok(len)
    }

    /// Verifies (and decrypts) the SRTCP packet filling `packet`; returns the RTCP length.
    /// With a `_32` suite, a packet that fails with the tag length last seen is tried with
    /// the other one (the first error stands if both fail), and a success sets it.
    pub fn unprotect_rtcp(&mut self, packet: &mut [u8]) -> Result<usize, MediaError> {
        let first = self.unprotect_rtcp_tagged(packet, self.rtcp_tag);
        let Err(refused) = first else {
            return first;
        };
        if !self.suite.has_short_tags() {
            return Err(refused);
        }
        let other = match self.rtcp_tag {
            RTCP_CM_TAG => SHORT_RTCP_CM_TAG,
            _ => RTCP_CM_TAG,
        };
        let len = self
            .unprotect_rtcp_tagged(packet, other)
            .map_err(|_| refused)?;
        self.rtcp_tag = other;
        Ok(len)
    }

    /// [`Receiver::unprotect_rtcp`] with an AES-CM tag of `cm_tag` bytes.
    fn unprotect_rtcp_tagged(
        &mut self,
        packet: &mut [u8],
        cm_tag: usize,
    ) -> Result<usize, MediaError> {
        let overhead = self.mki.len() + self.suite.rtcp_trailer(cm_tag);
        if packet.len() < 8 + overhead {
            return Err(MediaError::MalformedSrtp(
                "shorter than header, index and tag",
            ));
        }
        let ssrc = crate::rtp::be_u32(&packet[4..8]);
        let index_at = if self.suite.is_aead() {
            packet.len() - 4
        } else {
            packet.len() - overhead
        };
        let word = crate::rtp::be_u32(&packet[index_at..index_at + 4]);
        let (encrypted, index) = (word & 0x8000_0000 != 0, word & 0x7fff_ffff);
        let (slot, mut stream) = self.stream(ssrc);
        stream.rtcp_window.check(u64::from(index))?;
        let len = self
            .transform
            .unprotect_rtcp(packet, index, encrypted, (&self.mki, cm_tag))?;
        stream.rtcp_window.accept(u64::from(index));
        self.store(slot, stream);
        Ok(len)
    }

    /// `ssrc`'s receive state and its slot, or fresh state if the source is new. The state is
    /// a copy, written back by [`Receiver::store`] once a packet authenticated, so forged
    /// packets can neither move a window nor evict a real source.
    fn stream(&self, ssrc: u32) -> (Option<usize>, RxStream) {
        let slot = self
            .streams
            .iter()
            .position(|s| s.is_some_and(|s| s.ssrc == ssrc));
        let stream = slot.and_then(|i| self.streams[i]).unwrap_or(RxStream {
            ssrc,
            roc: RocTracker::default(),
            rtp_window: ReplayWindow::default(),
            rtcp_window: ReplayWindow::default(),
            last_used: 0,
        });
        (slot, stream)
    }

    /// Keeps an authenticated source's state; a new source replaces the least recently used.
    fn store(&mut self, slot: Option<usize>, mut stream: RxStream) {
        self.uses += 1;
        stream.last_used = self.uses;
        let slot = slot.unwrap_or_else(|| {
            self.streams
                .iter()
                .enumerate()
                .min_by_key(|(_, s)| s.map_or(0, |s| s.last_used))
                .map_or(0, |(i, _)| i)
        });
        self.streams[slot] = Some(stream);
    }
}
