//! Session key derivation (RFC 3711 §4.3) with the AES-CM PRF and a key derivation rate of 0,
//! also used by AES-GCM (RFC 7714 §11), whose 96-bit master salt is padded to 112 bits. A
//! 256-bit master key runs the PRF on AES-256 (RFC 6188 §3).

use aws_lc_rs::cipher::{
    AES_128, AES_256, Algorithm, EncryptingKey, EncryptionContext, UnboundCipherKey,
};
use aws_lc_rs::iv::FixedLength;

use crate::error::MediaError;

/// What a session key is for (§4.3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Label {
    RtpCipher = 0,
    RtpAuth = 1,
    RtpSalt = 2,
    RtcpCipher = 3,
    RtcpAuth = 4,
    RtcpSalt = 5,
}

/// Fills `out` with the session key for `label`: the AES-CM keystream under the master key,
/// starting from IV `(label << 48 XOR master salt) << 16`.
pub(super) fn derive(
    master_key: &[u8],
    master_salt: &[u8],
    label: Label,
    out: &mut [u8],
) -> Result<(), MediaError> {
    let mut iv = [0u8; 16];
    // The salt fills the top 112 bits; a shorter (GCM) salt is padded with zeros on the right.
    let salt = master_salt
        .get(..master_salt.len().min(14))
        .ok_or(MediaError::SrtpSetup("salt"))?;
    iv[..salt.len()].copy_from_slice(salt);
    // key_id = label || r with r = 0 (KDR 0): the label lands in byte 7 of the 14.
    iv[7] ^= label as u8;
    keystream(master_key, iv, out)
}

/// AES-128 or AES-256, by the key's length.
pub(super) fn aes(key: &[u8]) -> Result<&'static Algorithm, MediaError> {
    match key.len() {
        16 => Ok(&AES_128),
        32 => Ok(&AES_256),
        _ => Err(MediaError::SrtpSetup("AES key length")),
    }
}

/// Writes the AES counter-mode keystream from `iv` into `out`.
pub(super) fn keystream(key: &[u8], iv: [u8; 16], out: &mut [u8]) -> Result<(), MediaError> {
    let failed = |_| MediaError::SrtpSetup("AES-CTR");
    let key = EncryptingKey::ctr(UnboundCipherKey::new(aes(key)?, key).map_err(failed)?)
        .map_err(failed)?;
    out.fill(0);
    key.less_safe_encrypt(out, EncryptionContext::Iv128(FixedLength::from(iv)))
        .map_err(failed)?;
    Ok(())
}
