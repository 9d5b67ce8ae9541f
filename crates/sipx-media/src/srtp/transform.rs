//! The per-packet cryptography of one direction: AES-CM + HMAC-SHA1 (RFC 3711 §4) or AES-GCM
//! (RFC 7714), for SRTP and SRTCP. Everything works in place on the caller's buffer.

use aws_lc_rs::aead::{AES_128_GCM, AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::cipher::{EncryptingKey, EncryptionContext, UnboundCipherKey};
use aws_lc_rs::constant_time::verify_slices_are_equal;
use aws_lc_rs::hmac;
use aws_lc_rs::iv::FixedLength;

use super::kdf::{Label, aes, derive};
use super::{SrtpKey, SrtpSuite};
use crate::error::MediaError;

/// SRTCP's tag with AES-CM: 80 bits for every suite, the `_32` ones too (RFC 4568 §6.2).
pub(super) const RTCP_CM_TAG: usize = 10;
/// The 32-bit SRTCP tag some peers use with the `_32` suites (one policy for RTP and RTCP
/// in libsrtp, as linphone and others set it): taken and mirrored, see `Receiver`.
pub(super) const SHORT_RTCP_CM_TAG: usize = 4;
const GCM_TAG: usize = 16;
/// The E flag and 31-bit SRTCP index.
const INDEX_LEN: usize = 4;

/// AES-CM keys of one of SRTP or SRTCP.
pub(super) struct CmKeys {
    cipher: EncryptingKey,
    salt: [u8; 14],
    auth: hmac::Key,
}

impl CmKeys {
    fn new(key: &[u8], salt: [u8; 14], auth: &[u8]) -> Result<Self, MediaError> {
        let failed = |_| MediaError::SrtpSetup("AES-CTR");
        Ok(CmKeys {
            cipher: EncryptingKey::ctr(UnboundCipherKey::new(aes(key)?, key).map_err(failed)?)
                .map_err(failed)?,
            salt,
            auth: hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, auth),
        })
    }

    /// XORs the keystream for (SSRC, 48-bit index) into `data` (§4.1.1).
    fn apply(&self, ssrc: u32, index: u64, data: &mut [u8]) -> Result<(), MediaError> {
        let mut iv = [0u8; 16];
        iv[..14].copy_from_slice(&self.salt);
        for (b, s) in iv[4..8].iter_mut().zip(ssrc.to_be_bytes()) {
            *b ^= s;
        }
        for (b, s) in iv[8..14].iter_mut().zip(&index.to_be_bytes()[2..]) {
            *b ^= s;
        }
        self.cipher
            .less_safe_encrypt(data, EncryptionContext::Iv128(FixedLength::from(iv)))
            .map_err(|_| MediaError::SrtpSetup("AES-CTR"))?;
        Ok(())
    }

    /// HMAC-SHA1 over `parts` in order.
    fn tag(&self, parts: [&[u8]; 2]) -> hmac::Tag {
        let mut ctx = hmac::Context::with_key(&self.auth);
        for part in parts {
            ctx.update(part);
        }
        ctx.sign()
    }
}

/// AES-GCM key and salt of one of SRTP or SRTCP.
pub(super) struct GcmKeys {
    aead: LessSafeKey,
    salt: [u8; 12],
}

impl GcmKeys {
    fn new(key: &[u8], salt: [u8; 12]) -> Result<Self, MediaError> {
        let algorithm = if key.len() == 32 {
            &AES_256_GCM
        } else {
            &AES_128_GCM
        };
        let unbound =
            UnboundKey::new(algorithm, key).map_err(|_| MediaError::SrtpSetup("AES-GCM"))?;
        Ok(GcmKeys {
            aead: LessSafeKey::new(unbound),
            salt,
        })
    }

    /// The 96-bit IV: `00 00 || SSRC || counter (6 bytes)` XOR salt (RFC 7714 §8.1, §9.1).
    fn nonce(&self, ssrc: u32, counter: [u8; 6]) -> Nonce {
        let mut iv = [0u8; 12];
        iv[2..6].copy_from_slice(&ssrc.to_be_bytes());
        iv[6..].copy_from_slice(&counter);
        for (b, s) in iv.iter_mut().zip(self.salt) {
            *b ^= s;
        }
        Nonce::assume_unique_for_key(iv)
    }
}

/// One direction's keys.
// The HMAC contexts make the AES-CM variant large; a session holds two transforms for its
// whole life, so boxing would only add a pointer chase per packet.
#[allow(clippy::large_enum_variant)]
pub(super) enum Transform {
    Cm {
        rtp: CmKeys,
        rtcp: CmKeys,
        rtp_tag: usize,
    },
    Gcm {
        rtp: GcmKeys,
        rtcp: GcmKeys,
    },
}

impl Transform {
    /// Derives the session keys of one direction from its master key and salt.
    pub(super) fn from_master(suite: SrtpSuite, master: &SrtpKey) -> Result<Self, MediaError> {
        if master.key.len() != suite.key_len() || master.salt.len() != suite.salt_len() {
            return Err(MediaError::SrtpSetup(
                "key or salt length does not fit the suite",
            ));
        }
        let (k, s) = (&master.key[..], &master.salt[..]);
        // The session cipher key is as long as the master key (RFC 6188 §3, RFC 7714 §11).
        let mut buf = [0u8; 32];
        let key = &mut buf[..suite.key_len()];
        if suite.is_aead() {
            let mut gcm = |cipher, salt_label| -> Result<GcmKeys, MediaError> {
                let mut salt = [0u8; 12];
                derive(k, s, cipher, key)?;
                derive(k, s, salt_label, &mut salt)?;
                GcmKeys::new(key, salt)
            };
            return Ok(Transform::Gcm {
                rtp: gcm(Label::RtpCipher, Label::RtpSalt)?,
                rtcp: gcm(Label::RtcpCipher, Label::RtcpSalt)?,
            });
        }
        let mut cm = |cipher, auth_label, salt_label| -> Result<CmKeys, MediaError> {
            let (mut salt, mut auth) = ([0u8; 14], [0u8; 20]);
            derive(k, s, cipher, key)?;
            derive(k, s, auth_label, &mut auth)?;
            derive(k, s, salt_label, &mut salt)?;
            CmKeys::new(key, salt, &auth)
        };
        Ok(Transform::Cm {
            rtp: cm(Label::RtpCipher, Label::RtpAuth, Label::RtpSalt)?,
            rtcp: cm(Label::RtcpCipher, Label::RtcpAuth, Label::RtcpSalt)?,
            rtp_tag: suite.rtp_overhead(),
        })
    }

    /// AES-GCM keyed with session key and salt directly, both for SRTP and SRTCP (the RFC 7714
    /// vectors give those).
    #[cfg(test)]
    pub(super) fn gcm_session(key: &[u8], salt: [u8; 12]) -> Result<Self, MediaError> {
        Ok(Transform::Gcm {
            rtp: GcmKeys::new(key, salt)?,
            rtcp: GcmKeys::new(key, salt)?,
        })
    }

    /// AES-CM with session keys directly (RFC 3711 B.2 gives those).
    #[cfg(test)]
    pub(super) fn cm_session(key: &[u8], salt: [u8; 14]) -> Result<Self, MediaError> {
        Ok(Transform::Cm {
            rtp: CmKeys::new(key, salt, &[0; 20])?,
            rtcp: CmKeys::new(key, salt, &[0; 20])?,
            rtp_tag: 10,
        })
    }

    /// Encrypts `buf[header_len..len]` and writes the MKI (AES-CM only) and the tag after it;
    /// `buf` ends at the tag. The tag covers the header and the encrypted portion, not the
    /// MKI (RFC 3711 §3.1).
    pub(super) fn protect_rtp(
        &self,
        buf: &mut [u8],
        header_len: usize,
        len: usize,
        mki: &[u8],
        (ssrc, roc, seq): (u32, u32, u16),
    ) -> Result<(), MediaError> {
        match self {
            Transform::Cm { rtp, rtp_tag, .. } => {
                rtp.apply(ssrc, rtp_index(roc, seq), &mut buf[header_len..len])?;
                let tag = rtp.tag([&buf[..len], &roc.to_be_bytes()]);
                let at = len + mki.len();
                buf[len..at].copy_from_slice(mki);
                buf[at..at + rtp_tag].copy_from_slice(&tag.as_ref()[..*rtp_tag]);
            }
            Transform::Gcm { rtp, .. } => {
                let nonce = rtp.nonce(ssrc, gcm_rtp_counter(roc, seq));
                let (header, rest) = buf.split_at_mut(header_len);
                let (payload, tag_out) = rest.split_at_mut(len - header_len);
                let tag = rtp
                    .aead
                    .seal_in_place_separate_tag(nonce, Aad::from(&*header), payload)
                    .map_err(|_| MediaError::SrtpSetup("AES-GCM seal"))?;
                tag_out[..GCM_TAG].copy_from_slice(tag.as_ref());
            }
        }
        Ok(())
    }

    /// Verifies and decrypts an SRTP packet filling `packet`, whose MKI (AES-CM only) must be
    /// `mki`; returns the RTP length.
    pub(super) fn unprotect_rtp(
        &self,
        packet: &mut [u8],
        header_len: usize,
        mki: &[u8],
        (ssrc, roc, seq): (u32, u32, u16),
    ) -> Result<usize, MediaError> {
        match self {
            Transform::Cm { rtp, rtp_tag, .. } => {
                let tag_at = packet.len() - rtp_tag;
                let end = tag_at - mki.len();
                // One master key per direction: a packet naming another is not ours to open.
                if packet[end..tag_at] != *mki {
                    return Err(MediaError::MalformedSrtp("unknown MKI"));
                }
                let tag = rtp.tag([&packet[..end], &roc.to_be_bytes()]);
                verify_slices_are_equal(&tag.as_ref()[..*rtp_tag], &packet[tag_at..])
                    .map_err(|_| MediaError::SrtpAuthentication)?;
                rtp.apply(ssrc, rtp_index(roc, seq), &mut packet[header_len..end])?;
                Ok(end)
            }
            Transform::Gcm { rtp, .. } => {
                let nonce = rtp.nonce(ssrc, gcm_rtp_counter(roc, seq));
                let (header, rest) = packet.split_at_mut(header_len);
                let plain = rtp
                    .aead
                    .open_in_place(nonce, Aad::from(&*header), rest)
                    .map_err(|_| MediaError::SrtpAuthentication)?;
                Ok(header_len + plain.len())
            }
        }
    }

    /// Encrypts the RTCP packet in `buf[..len]` with SRTCP `index` and appends the trailer
    /// (E flag and index, the MKI for AES-CM, the tag: `cm_tag` bytes with AES-CM); `buf`
    /// ends where the trailer does.
    pub(super) fn protect_rtcp(
        &self,
        buf: &mut [u8],
        len: usize,
        index: u32,
        (mki, cm_tag): (&[u8], usize),
    ) -> Result<(), MediaError> {
        let ssrc = crate::rtp::be_u32(&buf[4..8]);
        let e_index = (0x8000_0000 | index).to_be_bytes();
        match self {
            Transform::Cm { rtcp, .. } => {
                rtcp.apply(ssrc, u64::from(index), &mut buf[8..len])?;
                buf[len..len + INDEX_LEN].copy_from_slice(&e_index);
                let end = len + INDEX_LEN;
                // The tag covers the E flag and index, not the MKI after them (RFC 3711 §3.4).
                let tag = rtcp.tag([&buf[..end], &[]]);
                let at = end + mki.len();
                buf[end..at].copy_from_slice(mki);
                buf[at..at + cm_tag].copy_from_slice(&tag.as_ref()[..cm_tag]);
            }
            Transform::Gcm { rtcp, .. } => {
                let nonce = rtcp.nonce(ssrc, gcm_rtcp_counter(index));
                let aad = gcm_rtcp_aad(&buf[..8], e_index);
                let (payload, tail) = buf[8..].split_at_mut(len - 8);
                let tag = rtcp
                    .aead
                    .seal_in_place_separate_tag(nonce, Aad::from(aad), payload)
                    .map_err(|_| MediaError::SrtpSetup("AES-GCM seal"))?;
                tail[..GCM_TAG].copy_from_slice(tag.as_ref());
                tail[GCM_TAG..GCM_TAG + INDEX_LEN].copy_from_slice(&e_index);
            }
        }
        Ok(())
    }

    /// Verifies and (if the E flag says so) decrypts an SRTCP packet, whose MKI (AES-CM only)
    /// must be `mki` and whose AES-CM tag is `cm_tag` bytes; returns the RTCP length. The
    /// packet is left as it was when the tag fails.
    pub(super) fn unprotect_rtcp(
        &self,
        packet: &mut [u8],
        index: u32,
        encrypted: bool,
        (mki, cm_tag): (&[u8], usize),
    ) -> Result<usize, MediaError> {
        let ssrc = crate::rtp::be_u32(&packet[4..8]);
        match self {
            Transform::Cm { rtcp, .. } => {
                let tag_at = packet.len() - cm_tag;
                let end = tag_at - mki.len();
                if packet[end..tag_at] != *mki {
                    return Err(MediaError::MalformedSrtp("unknown MKI"));
                }
                let tag = rtcp.tag([&packet[..end], &[]]);
                verify_slices_are_equal(&tag.as_ref()[..cm_tag], &packet[tag_at..])
                    .map_err(|_| MediaError::SrtpAuthentication)?;
                let len = end - INDEX_LEN;
                if encrypted {
                    rtcp.apply(ssrc, u64::from(index), &mut packet[8..len])?;
                }
                Ok(len)
            }
            Transform::Gcm { rtcp, .. } => {
                let end = packet.len() - INDEX_LEN;
                if !encrypted {
                    // Authentication only (RFC 7714 §9.2): the whole RTCP packet and the E flag
                    // and index are the additional data and nothing is encrypted, so the
                    // packet is RTCP || tag || E+index. Moving E+index next to the RTCP makes
                    // the additional data one slice; the tag is opened on its own.
                    let tag_at = end - GCM_TAG;
                    let mut tag = [0u8; GCM_TAG];
                    tag.copy_from_slice(&packet[tag_at..end]);
                    packet.copy_within(end.., tag_at);
                    let nonce = rtcp.nonce(ssrc, gcm_rtcp_counter(index));
                    let aad = Aad::from(&packet[..tag_at + INDEX_LEN]);
                    rtcp.aead
                        .open_in_place(nonce, aad, &mut tag)
                        .map_err(|_| MediaError::SrtpAuthentication)?;
                    return Ok(tag_at);
                }
                let mut e_index = [0u8; 4];
                e_index.copy_from_slice(&packet[end..]);
                let nonce = rtcp.nonce(ssrc, gcm_rtcp_counter(index));
                let aad = gcm_rtcp_aad(&packet[..8], e_index);
                let plain = rtcp
                    .aead
                    .open_in_place(nonce, Aad::from(aad), &mut packet[8..end])
                    .map_err(|_| MediaError::SrtpAuthentication)?;
                Ok(8 + plain.len())
            }
        }
    }
}

fn rtp_index(roc: u32, seq: u16) -> u64 {
    (u64::from(roc) << 16) | u64::from(seq)
}

/// `ROC || SEQ`, the last six bytes of the SRTP GCM IV.
fn gcm_rtp_counter(roc: u32, seq: u16) -> [u8; 6] {
    let mut c = [0u8; 6];
    c[..4].copy_from_slice(&roc.to_be_bytes());
    c[4..].copy_from_slice(&seq.to_be_bytes());
    c
}

/// `00 00 || 0 || SRTCP index`: the E flag is not part of the SRTCP GCM IV.
fn gcm_rtcp_counter(index: u32) -> [u8; 6] {
    let mut c = [0u8; 6];
    c[2..].copy_from_slice(&(index & 0x7fff_ffff).to_be_bytes());
    c
}

/// The SRTCP GCM additional data: the first 8 header bytes, then the E flag and index.
fn gcm_rtcp_aad(header: &[u8], e_index: [u8; 4]) -> [u8; 12] {
    let mut aad = [0u8; 12];
    aad[..8].copy_from_slice(&header[..8]);
    aad[8..].copy_from_slice(&e_index);
    aad
}
