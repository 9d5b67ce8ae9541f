//! Secrets sealed at rest with AES-256-GCM.
//!
//! The server needs an application's `api_secret` in clear to check HMAC signatures, and a SIP
//! account's password to answer digest challenges with SHA-256 and MD5 alike, so a one-way hash
//! will not do. Each secret is sealed under the master key with a fresh 96-bit nonce, and the
//! *context* (e.g. `app-secret:app_01…`) is authenticated as associated data: a sealed value
//! copied into another row does not open there.
//!
//! Wire form: `v1.` + base64url(nonce ‖ ciphertext ‖ tag).

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

const PREFIX: &str = "v1.";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    #[error("the master key must be 32 bytes, given as base64 or 64 hex digits")]
    BadMasterKey,
    #[error("sealed value is malformed")]
    Malformed,
    #[error("sealed value does not open under this master key (wrong key, or tampered)")]
    WrongKeyOrTampered,
}

/// The key that seals every stored secret.
pub struct MasterKey {
    key: LessSafeKey,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

impl MasterKey {
    /// A new random key.
    pub fn generate() -> (Self, [u8; 32]) {
        let mut raw = [0u8; 32];
        crate::generate::fill(&mut raw);
        (Self::from_bytes(&raw), raw)
    }

    /// Text form for a key file or an environment variable.
    pub fn encode(raw: &[u8; 32]) -> String {
        STANDARD.encode(raw)
    }

    /// Parses 32 bytes given as standard/url-safe base64 or as 64 hex digits.
    pub fn parse(text: &str) -> Result<Self, SealError> {
        let text = text.trim();
        let raw = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            (0..32)
                .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16))
                .collect::<Result<Vec<u8>, _>>()
                .map_err(|_| SealError::BadMasterKey)?
        } else {
            STANDARD
                .decode(text)
                .or_else(|_| URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')))
                .map_err(|_| SealError::BadMasterKey)?
        };
        let raw: [u8; 32] = raw.try_into().map_err(|_| SealError::BadMasterKey)?;
        Ok(Self::from_bytes(&raw))
    }

    fn from_bytes(raw: &[u8; 32]) -> Self {
        #[allow(clippy::expect_used)] // AES-256 takes exactly 32 bytes, which the type guarantees.
        let unbound = UnboundKey::new(&AES_256_GCM, raw).expect("32-byte AES-256 key");
        Self {
            key: LessSafeKey::new(unbound),
        }
    }

    /// Seals `plaintext`, bound to `context`.
    pub fn seal(&self, context: &str, plaintext: &[u8]) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        crate::generate::fill(&mut nonce);
        let mut buf = plaintext.to_vec();
        #[allow(clippy::expect_used)] // Only fails for inputs beyond GCM's 64 GiB limit.
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context.as_bytes()),
                &mut buf,
            )
            .expect("AES-GCM seal of a small secret");
        let mut out = Vec::with_capacity(NONCE_LEN + buf.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&buf);
        format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(out))
    }

    /// Opens a value sealed by [`MasterKey::seal`] with the same `context`.
    pub fn open(&self, context: &str, sealed: &str) -> Result<Vec<u8>, SealError> {
        let body = sealed.strip_prefix(PREFIX).ok_or(SealError::Malformed)?;
        let raw = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| SealError::Malformed)?;
        if raw.len() < NONCE_LEN + AES_256_GCM.tag_len() {
            return Err(SealError::Malformed);
        }
        let (nonce, ct) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::Malformed)?;
        let mut buf = ct.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(context.as_bytes()), &mut buf)
            .map_err(|_| SealError::WrongKeyOrTampered)?;
        Ok(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_hides_the_plaintext() {
        let (key, _) = MasterKey::generate();
        let sealed = key.seal("app-secret:app_1", b"s3cret-value");
        assert!(sealed.starts_with("v1."));
        assert!(!sealed.contains("s3cret"));
        assert_eq!(
            key.open("app-secret:app_1", &sealed).unwrap(),
            b"s3cret-value"
        );
        // Fresh nonce each time.
        assert_ne!(sealed, key.seal("app-secret:app_1", b"s3cret-value"));
    }

    #[test]
    fn refuses_other_context_other_key_and_tampering() {
        let (key, _) = MasterKey::generate();
        let (other, _) = MasterKey::generate();
        let sealed = key.seal("ctx-a", b"x");
        assert_eq!(
            key.open("ctx-b", &sealed),
            Err(SealError::WrongKeyOrTampered)
        );
        assert_eq!(
            other.open("ctx-a", &sealed),
            Err(SealError::WrongKeyOrTampered)
        );
        let mut bytes = sealed.clone().into_bytes();
        let last = bytes.len() - 2;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(bytes).unwrap();
        assert!(key.open("ctx-a", &tampered).is_err());
        assert_eq!(key.open("ctx-a", "v2.abc"), Err(SealError::Malformed));
        assert_eq!(key.open("ctx-a", "v1.AAAA"), Err(SealError::Malformed));
    }

    #[test]
    fn parses_base64_and_hex_keys() {
        let (_, raw) = MasterKey::generate();
        let b64 = MasterKey::encode(&raw);
        let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        let a = MasterKey::parse(&b64).unwrap();
        let b = MasterKey::parse(&hex).unwrap();
        let sealed = a.seal("c", b"v");
        assert_eq!(b.open("c", &sealed).unwrap(), b"v");
        assert_eq!(
            MasterKey::parse("short").unwrap_err(),
            SealError::BadMasterKey
        );
    }
}
