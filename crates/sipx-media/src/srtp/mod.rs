//! SDES-keyed SRTP and SRTCP (RFC 3711, RFC 7714): protect and unprotect in place, in the
//! caller's buffer, with no allocation per packet.
//!
//! Suites: `AES_CM_128_HMAC_SHA1_80`, `AES_CM_128_HMAC_SHA1_32` (RFC 4568), their AES-256
//! forms `AES_256_CM_HMAC_SHA1_80` and `_32` (RFC 6188), and `AEAD_AES_128_GCM` and
//! `AEAD_AES_256_GCM` (RFC 7714). Session keys come from the master key and salt by the AES-CM
//! PRF (AES-256's for a 256-bit master key, RFC 6188 §3) with a key derivation rate of 0 (the
//! SDES default; `KDR` is not supported); an MKI only with the AES-CM suites.
//! The receive side tracks the rollover counter per remote SSRC (RFC 3711 Appendix A) and
//! keeps a 128-packet replay window for SRTP and for SRTCP; a packet is accepted into the
//! window only after its tag verified, so forged packets cannot move it.
//!
//! Why not a crate: the one measured against libsrtp (`rtc-srtp`) returns a new buffer per
//! packet and brings its own packet and buffer types; what SIPx needs is about 400 lines on
//! the `aws-lc-rs` primitives the workspace already builds (AES-CTR, AES-GCM, HMAC-SHA1), and
//! it works in place on the datagram the driver already holds. The RFC 3711 Appendix B and
//! RFC 7714 vectors and libsrtp's reference packets are the tests.

mod kdf;
mod receive;
mod replay;
mod transform;

#[cfg(test)]
mod tests;

use crate::error::MediaError;
use receive::Receiver;
use transform::Transform;

/// Remote SSRCs whose rollover counter and replay window are kept at once. A leg has one;
/// a few more cover a source switch without losing the old stream's replay state.
const STREAMS: usize = 4;

/// Room kept for a packet while an old key is tried after the new one: any datagram.
const SCRATCH: usize = 2048;

/// An SRTP crypto suite as named in SDP `a=crypto` (RFC 4568 §6.2, RFC 7714 §14.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SrtpSuite {
    /// AES-128 counter mode, 80-bit HMAC-SHA1 tag.
    AesCm128HmacSha1_80,
    /// AES-128 counter mode, 32-bit HMAC-SHA1 tag on SRTP (SRTCP keeps 80 bits).
    AesCm128HmacSha1_32,
    /// AES-256 counter mode (RFC 6188), 80-bit HMAC-SHA1 tag.
    Aes256CmHmacSha1_80,
    /// AES-256 counter mode (RFC 6188), 32-bit HMAC-SHA1 tag on SRTP (SRTCP keeps 80 bits).
    Aes256CmHmacSha1_32,
    /// AES-128 GCM, 128-bit tag.
    AeadAes128Gcm,
    /// AES-256 GCM, 128-bit tag.
    AeadAes256Gcm,
}

impl SrtpSuite {
    pub(crate) const ALL: [SrtpSuite; 6] = [
        SrtpSuite::AesCm128HmacSha1_80,
        SrtpSuite::AesCm128HmacSha1_32,
        SrtpSuite::Aes256CmHmacSha1_80,
        SrtpSuite::Aes256CmHmacSha1_32,
        SrtpSuite::AeadAes128Gcm,
        SrtpSuite::AeadAes256Gcm,
    ];

    /// The suite's SDP name.
    pub const fn sdes_name(self) -> &'static str {
        match self {
            SrtpSuite::AesCm128HmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
            SrtpSuite::AesCm128HmacSha1_32 => "AES_CM_128_HMAC_SHA1_32",
            SrtpSuite::Aes256CmHmacSha1_80 => "AES_256_CM_HMAC_SHA1_80",
            SrtpSuite::Aes256CmHmacSha1_32 => "AES_256_CM_HMAC_SHA1_32",
            SrtpSuite::AeadAes128Gcm => "AEAD_AES_128_GCM",
            SrtpSuite::AeadAes256Gcm => "AEAD_AES_256_GCM",
        }
    }

    /// The suite an SDP name stands for.
    pub fn from_sdes_name(name: &str) -> Option<SrtpSuite> {
        SrtpSuite::ALL.into_iter().find(|s| s.sdes_name() == name)
    }

    /// Master key length in bytes (also the length of the session cipher key).
    pub const fn key_len(self) -> usize {
        match self {
            SrtpSuite::Aes256CmHmacSha1_80
            | SrtpSuite::Aes256CmHmacSha1_32
            | SrtpSuite::AeadAes256Gcm => 32,
            _ => 16,
        }
    }

    /// Master salt length in bytes: 112 bits for AES-CM, 96 for GCM.
    pub const fn salt_len(self) -> usize {
        if self.is_aead() { 12 } else { 14 }
    }

    /// Bytes an SRTP packet grows by.
    pub const fn rtp_overhead(self) -> usize {
        match self {
            SrtpSuite::AesCm128HmacSha1_80 | SrtpSuite::Aes256CmHmacSha1_80 => 10,
            SrtpSuite::AesCm128HmacSha1_32 | SrtpSuite::Aes256CmHmacSha1_32 => 4,
            SrtpSuite::AeadAes128Gcm | SrtpSuite::AeadAes256Gcm => 16,
        }
    }

    /// Bytes an SRTCP packet grows by at most: the tag plus the E flag and SRTCP index.
    pub const fn rtcp_overhead(self) -> usize {
        self.rtcp_trailer(transform::RTCP_CM_TAG)
    }

    /// The SRTCP trailer (tag, E flag and index, without an MKI) when an AES-CM tag is
    /// `cm_tag` bytes (GCM's is always 16).
    const fn rtcp_trailer(self, cm_tag: usize) -> usize {
        if self.is_aead() { 16 + 4 } else { cm_tag + 4 }
    }

    /// The `_32` suites, with which some peers tag SRTCP with 32 bits too (`Receiver`).
    const fn has_short_tags(self) -> bool {
        matches!(
            self,
            SrtpSuite::AesCm128HmacSha1_32 | SrtpSuite::Aes256CmHmacSha1_32
        )
    }

    const fn is_aead(self) -> bool {
        matches!(self, SrtpSuite::AeadAes128Gcm | SrtpSuite::AeadAes256Gcm)
    }
}

/// One side's master key and salt, as carried in `a=crypto ... inline:`.
#[derive(Clone, PartialEq, Eq)]
pub struct SrtpKey {
    pub key: Vec<u8>,
    pub salt: Vec<u8>,
    /// The master key identifier every packet under this key carries (RFC 3711 §3.1), as it
    /// is on the wire (`|1:4` in SDP is `[0, 0, 0, 1]`); empty when the key has none. AES-CM
    /// suites only, at most [`MAX_MKI_LEN`] bytes.
    pub mki: Vec<u8>,
}

impl SrtpKey {
    /// The same master key and salt, whatever MKI labels them: the crypto context (rollover
    /// counters, SRTCP index) belongs to the key, and an MKI that comes or goes in a new
    /// exchange changes only what each packet carries.
    pub fn same_master(&self, other: &SrtpKey) -> bool {
        self.key == other.key && self.salt == other.salt
    }
}

/// The longest MKI SIPx takes: SDP writes the value as a decimal number, and the phones and
/// SBCs that use one (Microsoft's among them) send one to four bytes.
pub const MAX_MKI_LEN: usize = 4;

impl std::fmt::Debug for SrtpKey {
    // Keys stay out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SrtpKey({} + {} bytes, MKI {} bytes)",
            self.key.len(),
            self.salt.len(),
            self.mki.len()
        )
    }
}

/// What a leg needs for SDES-SRTP: the negotiated suite, our key (we protect with it) and the
/// peer's (we unprotect with it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrtpConfig {
    pub suite: SrtpSuite,
    pub local: SrtpKey,
    pub remote: SrtpKey,
}

/// Counters of what was refused.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SrtpStats {
    /// Packets whose tag did not verify.
    pub auth_failures: u64,
    /// Packets seen before or older than the replay window.
    pub replays: u64,
    /// Packets too short or malformed to process.
    pub malformed: u64,
}

/// Our sending state: one SSRC per leg, but a table costs nothing and keeps `update` honest.
#[derive(Debug, Clone, Copy)]
struct TxStream {
    ssrc: u32,
    roc: u32,
    last_seq: Option<u16>,
}

/// The SRTP state of one leg, both directions.
pub struct SrtpSession {
    suite: SrtpSuite,
    tx: Transform,
    /// The MKI we write into what we send.
    tx_mki: Vec<u8>,
    tx_streams: [Option<TxStream>; STREAMS],
    /// SRTCP index of the next packet we send (31 bits).
    srtcp_index: u32,
    /// What the peer's packets are opened with.
    rx: Receiver,
    /// The peer's key before it re-keyed, until a packet under the new one arrives: what it
    /// sent before it had our answer is still on the way (RFC 4568 §7.1.4).
    previous: Option<Box<Receiver>>,
    /// A packet as it came, while `previous` is kept: a failed attempt may have changed it.
    scratch: Vec<u8>,
    stats: SrtpStats,
}

impl std::fmt::Debug for SrtpSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SrtpSession")
            .field("suite", &self.suite)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl SrtpSession {
    /// Derives the session keys of both directions.
    pub fn new(config: &SrtpConfig) -> Result<Self, MediaError> {
        for key in [&config.local, &config.remote] {
            if key.mki.len() > MAX_MKI_LEN || !key.mki.is_empty() && config.suite.is_aead() {
                return Err(MediaError::SrtpSetup(
                    "an MKI is taken with AES-CM suites only, up to 4 bytes",
                ));
            }
        }
        Ok(SrtpSession {
            suite: config.suite,
            tx: Transform::from_master(config.suite, &config.local)?,
            tx_mki: config.local.mki.clone(),
            tx_streams: [None; STREAMS],
            srtcp_index: 0,
            rx: Receiver::new(config.suite, &config.remote)?,
            previous: None,
            scratch: Vec::new(),
            stats: SrtpStats::default(),
        })
    }

    /// This session under `new`, the configuration a re-negotiation agreed on, where `old` is
    /// the one it runs on. A direction whose key did not change keeps its crypto context
    /// (RFC 3711 §3.2.1; RFC 4568 §7.1.4): its rollover counters and replay windows, and on
    /// our side the SRTCP index. Starting them again under the same key would send packet
    /// indexes already used (keystream reuse, §9.1) and make the peer, whose counters went on,
    /// refuse everything after a sequence wrap. A new key or suite is a new context; a new
    /// key of the peer's leaves the old one open until the new one is heard.
    pub fn renegotiated(&self, old: &SrtpConfig, new: &SrtpConfig) -> Result<Self, MediaError> {
        let mut next = SrtpSession::new(new)?;
        next.stats = self.stats;
        let same_suite = old.suite == new.suite;
        if same_suite {
            // The peer's SRTCP tag length goes with its software, not its key.
            next.rx.rtcp_tag = self.rx.rtcp_tag;
        }
        if same_suite && old.remote.same_master(&new.remote) {
            next.rx.streams = self.rx.streams;
            next.rx.uses = self.rx.uses;
        } else {
            let mut previous = Receiver::new(old.suite, &old.remote)?;
            previous.streams = self.rx.streams;
            previous.uses = self.rx.uses;
            previous.rtcp_tag = self.rx.rtcp_tag;
            next.previous = Some(Box::new(previous));
            next.scratch = Vec::with_capacity(SCRATCH);
        }
        if same_suite && old.local.same_master(&new.local) {
            next.tx_streams = self.tx_streams;
            next.srtcp_index = self.srtcp_index;
        }
        Ok(next)
    }

    /// A session keyed with session keys directly (the RFC 7714 vectors skip derivation).
    #[cfg(test)]
    fn from_transforms(suite: SrtpSuite, tx: Transform, rx: Transform) -> Self {
        SrtpSession {
            suite,
            tx,
            tx_mki: Vec::new(),
            tx_streams: [None; STREAMS],
            srtcp_index: 0,
            rx: Receiver::from_transform(suite, rx, Vec::new()),
            previous: None,
            scratch: Vec::new(),
            stats: SrtpStats::default(),
        }
    }

    pub fn suite(&self) -> SrtpSuite {
        self.suite
    }

    pub fn stats(&self) -> SrtpStats {
        self.stats
    }

    /// Protects the RTP packet in `buf[..len]` in place, appending the MKI (if any) and the
    /// tag; returns the new length. `buf` needs [`SrtpSuite::rtp_overhead`] spare bytes after
    /// the packet, plus the MKI's.
    pub fn protect_rtp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, MediaError> {
        let need = len + self.tx_mki.len() + self.suite.rtp_overhead();
        if buf.len() < need {
            return Err(MediaError::BufferTooSmall { need });
        }
        let header_len = rtp_header_len(&buf[..len])?;
        let (seq, ssrc) = rtp_seq_ssrc(buf);
        let roc = self.tx_roc(ssrc, seq);
        self.tx.protect_rtp(
            &mut buf[..need],
            header_len,
            len,
            &self.tx_mki,
            (ssrc, roc, seq),
        )?;
        Ok(need)
    }

    /// Unprotects the SRTP packet filling `packet` in place; returns the length of the RTP
    /// packet now at its start. Replays and failed tags are errors and counted.
    pub fn unprotect_rtp(&mut self, packet: &mut [u8]) -> Result<usize, MediaError> {
        let result = self.open(packet, Receiver::unprotect_rtp);
        self.count(&result);
        result
    }

    /// Protects the RTCP compound packet in `buf[..len]` in place (encrypted, E flag set);
    /// returns the new length. `buf` needs [`SrtpSuite::rtcp_overhead`] spare bytes, plus the
    /// MKI's. The AES-CM tag is as long as the peer's (`Receiver::rtcp_tag`): a peer that
    /// sends 32-bit SRTCP tags checks ours at that length too.
    pub fn protect_rtcp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, MediaError> {
        let tag = self.rx.rtcp_tag;
        let need = len + self.tx_mki.len() + self.suite.rtcp_trailer(tag);
        if buf.len() < need {
            return Err(MediaError::BufferTooSmall { need });
        }
        if len < 8 {
            return Err(MediaError::ApiMisuse("an RTCP packet has at least 8 bytes"));
        }
        let index = self.srtcp_index;
        self.srtcp_index = (self.srtcp_index + 1) & 0x7fff_ffff;
        self.tx
            .protect_rtcp(&mut buf[..need], len, index, (&self.tx_mki, tag))?;
        Ok(need)
    }

    /// Unprotects the SRTCP packet filling `packet` in place; returns the RTCP length.
    pub fn unprotect_rtcp(&mut self, packet: &mut [u8]) -> Result<usize, MediaError> {
        let result = self.open(packet, Receiver::unprotect_rtcp);
        self.count(&result);
        result
    }

    /// Opens a packet under the peer's key, or under the one before it while that is kept.
    /// The first packet the new key opens closes the old one: the peer has moved on, and
    /// what still comes under the old key is late.
    fn open(
        &mut self,
        packet: &mut [u8],
        unprotect: fn(&mut Receiver, &mut [u8]) -> Result<usize, MediaError>,
    ) -> Result<usize, MediaError> {
        if self.previous.is_none() {
            return unprotect(&mut self.rx, packet);
        }
        self.scratch.clear();
        self.scratch.extend_from_slice(packet);
        match unprotect(&mut self.rx, packet) {
            Ok(len) => {
                self.previous = None;
                Ok(len)
            }
            Err(refused) => {
                packet.copy_from_slice(&self.scratch);
                // A replay under the old key says more than the new key's failed tag.
                match self.previous.as_deref_mut() {
                    Some(previous) => unprotect(previous, packet).map_err(|e| match e {
                        MediaError::SrtpReplay => e,
                        _ => refused,
                    }),
                    None => Err(refused),
                }
            }
        }
    }

    fn count(&mut self, result: &Result<usize, MediaError>) {
        match result {
            Err(MediaError::SrtpAuthentication) => self.stats.auth_failures += 1,
            Err(MediaError::SrtpReplay) => self.stats.replays += 1,
            Err(_) => self.stats.malformed += 1,
            Ok(_) => {}
        }
    }

    /// The ROC for sending `seq` on `ssrc`: it steps when the sequence number wraps.
    fn tx_roc(&mut self, ssrc: u32, seq: u16) -> u32 {
        let slot = self
            .tx_streams
            .iter()
            .position(|s| s.is_some_and(|s| s.ssrc == ssrc))
            .or_else(|| self.tx_streams.iter().position(Option::is_none))
            .unwrap_or(0);
        let stream = self.tx_streams[slot].get_or_insert(TxStream {
            ssrc,
            roc: 0,
            last_seq: None,
        });
        if stream.ssrc != ssrc {
            *stream = TxStream {
                ssrc,
                roc: 0,
                last_seq: None,
            };
        }
        if let Some(last) = stream.last_seq {
            // A step backwards by more than half the space is the wrap, not a retransmission.
            if seq < last && last - seq > 0x8000 {
                stream.roc = stream.roc.wrapping_add(1);
            }
        }
        stream.last_seq = Some(seq);
        stream.roc
    }
}

/// The length of an RTP header with its CSRCs and extension: what SRTP leaves in clear.
fn rtp_header_len(packet: &[u8]) -> Result<usize, MediaError> {
    let bad = MediaError::MalformedSrtp;
    let first = *packet.first().ok_or(bad("empty"))?;
    if first >> 6 != 2 || packet.len() < 12 {
        return Err(bad("not an RTP packet"));
    }
    let mut len = 12 + 4 * usize::from(first & 0x0f);
    if first & 0x10 != 0 {
        let ext = packet
            .get(len..len + 4)
            .ok_or(bad("extension header runs past the end"))?;
        len += 4 + 4 * usize::from(u16::from_be_bytes([ext[2], ext[3]]));
    }
    if len > packet.len() {
        return Err(bad("header runs past the end"));
    }
    Ok(len)
}

/// Sequence number and SSRC of a packet at least 12 bytes long.
fn rtp_seq_ssrc(packet: &[u8]) -> (u16, u32) {
    (
        u16::from_be_bytes([packet[2], packet[3]]),
        crate::rtp::be_u32(&packet[8..12]),
    )
}
