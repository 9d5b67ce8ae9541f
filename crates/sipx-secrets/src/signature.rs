//! The request signature of the first SIPx, kept for compatibility.
//!
//! `signature = base64url_nopad(HMAC-SHA256(key = api_secret, msg = api_key ‖ expire_at))` where
//! `expire_at` is the decimal Unix time in seconds exactly as the client sent it. The signature
//! covers neither method, path nor body: it is a bearer credential with an expiry, so SIPx limits
//! how far ahead `expire_at` may lie and recommends HTTPS.

use aws_lc_rs::hmac;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Why a signature was refused. The variants are for logs and tests; clients all get the same
/// 401 so that nothing tells them which part was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    #[error("signature is not base64url")]
    NotBase64,
    #[error("signature does not match")]
    Mismatch,
}

/// Signs `api_key ‖ expire_at` with `api_secret`.
pub fn sign(api_key: &str, expire_at: &str, api_secret: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, api_secret);
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(api_key.as_bytes());
    ctx.update(expire_at.as_bytes());
    URL_SAFE_NO_PAD.encode(ctx.sign().as_ref())
}

/// Checks `signature` in constant time (the comparison is the HMAC library's own).
///
/// Trailing `=` padding is tolerated: some clients pad base64 out of habit.
pub fn verify(
    api_key: &str,
    expire_at: &str,
    api_secret: &[u8],
    signature: &str,
) -> Result<(), SignatureError> {
    let provided = URL_SAFE_NO_PAD
        .decode(signature.trim_end_matches('='))
        .map_err(|_| SignatureError::NotBase64)?;
    let key = hmac::Key::new(hmac::HMAC_SHA256, api_secret);
    let mut msg = Vec::with_capacity(api_key.len() + expire_at.len());
    msg.extend_from_slice(api_key.as_bytes());
    msg.extend_from_slice(expire_at.as_bytes());
    hmac::verify(&key, &msg, &provided).map_err(|_| SignatureError::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    // The test vector published with the first SIPx's API.
    const KEY: &str = "23456789";
    const SECRET: &[u8] = b"k69x50j0";
    const EXPIRE: &str = "1893456000";
    const SIG: &str = "d7vG2xBURXT-M-BdmFcCLYTHIh1chSo6SG3KT9SNhMk";

    #[test]
    fn reproduces_the_mission_test_vector() {
        assert_eq!(sign(KEY, EXPIRE, SECRET), SIG);
        assert_eq!(verify(KEY, EXPIRE, SECRET, SIG), Ok(()));
    }

    #[test]
    fn accepts_padded_signature() {
        assert_eq!(verify(KEY, EXPIRE, SECRET, &format!("{SIG}=")), Ok(()));
    }

    #[test]
    fn rejects_tampered_parts() {
        assert_eq!(
            verify(KEY, "1893456001", SECRET, SIG),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify("23456780", EXPIRE, SECRET, SIG),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(KEY, EXPIRE, b"k69x50j1", SIG),
            Err(SignatureError::Mismatch)
        );
        let mut flipped = SIG.to_owned();
        flipped.replace_range(0..1, "e");
        assert_eq!(
            verify(KEY, EXPIRE, SECRET, &flipped),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(KEY, EXPIRE, SECRET, "not base64!"),
            Err(SignatureError::NotBase64)
        );
        assert_eq!(
            verify(KEY, EXPIRE, SECRET, ""),
            Err(SignatureError::Mismatch)
        );
    }
}
