//! The signature on the webhooks SIPx sends: `SIPx-Signature: t=<unix seconds>,v1=<hex>` where
//! `hex = lowercase hex of HMAC-SHA256(key = the application's api_secret, msg = "<t>.<body>")`.
//!
//! The timestamp is inside the signed message, so a receiver that refuses old `t` values (SIPx
//! documents a 300 s window) cannot be fed a captured request again later. The scheme is the
//! one most webhook senders use, so receivers' existing helpers fit it.

use aws_lc_rs::hmac;

/// The name of the `v1` scheme in the header.
const V1: &str = "v1";

/// Why a webhook signature header was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookSignatureError {
    #[error("the header must read `t=<unix seconds>,v1=<hex>`")]
    Malformed,
    #[error("the timestamp is outside the accepted window")]
    Stale,
    #[error("no v1 signature matches")]
    Mismatch,
}

/// The `SIPx-Signature` header value for `body` sent at Unix time `t`.
pub fn sign_webhook(secret: &[u8], t: u64, body: &[u8]) -> String {
    let tag = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, secret),
        &message(t, body),
    );
    let mut out = format!("t={t},{V1}=");
    for b in tag.as_ref() {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    out
}

/// Checks a `SIPx-Signature` header as a receiver would: `t` within `tolerance_secs` of `now`
/// and one of the `v1` values (several may be present while a secret is rotated) matching, in
/// constant time.
pub fn verify_webhook(
    secret: &[u8],
    header: &str,
    body: &[u8],
    now: u64,
    tolerance_secs: u64,
) -> Result<(), WebhookSignatureError> {
    let mut t = None;
    let mut tags = Vec::new();
    for item in header.split(',') {
        let (k, v) = item
            .trim()
            .split_once('=')
            .ok_or(WebhookSignatureError::Malformed)?;
        match k {
            "t" => {
                t = Some(
                    v.parse::<u64>()
                        .map_err(|_| WebhookSignatureError::Malformed)?,
                )
            }
            V1 => tags.push(from_hex(v).ok_or(WebhookSignatureError::Malformed)?),
            _ => {} // other schemes: for future versions
        }
    }
    let t = t.ok_or(WebhookSignatureError::Malformed)?;
    if tags.is_empty() {
        return Err(WebhookSignatureError::Malformed);
    }
    if t.abs_diff(now) > tolerance_secs {
        return Err(WebhookSignatureError::Stale);
    }
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let msg = message(t, body);
    if tags.iter().any(|tag| hmac::verify(&key, &msg, tag).is_ok()) {
        Ok(())
    } else {
        Err(WebhookSignatureError::Mismatch)
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn message(t: u64, body: &[u8]) -> Vec<u8> {
    let t = t.to_string();
    let mut msg = Vec::with_capacity(t.len() + 1 + body.len());
    msg.extend_from_slice(t.as_bytes());
    msg.push(b'.');
    msg.extend_from_slice(body);
    msg
}

fn from_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    s.as_bytes()
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"k69x50j0";
    const T: u64 = 1_893_456_000;
    const BODY: &[u8] = br#"{"id":"evt_01","type":"app.test"}"#;
    /// Computed independently: Python's `hmac.new(secret, b"1893456000." + body, sha256)`.
    const HEADER: &str =
        "t=1893456000,v1=505a05b609d781f424ac9c593b4de51771656f502d1dcb807d4142943bf004ba";

    #[test]
    fn reproduces_the_test_vector() {
        assert_eq!(sign_webhook(SECRET, T, BODY), HEADER);
        assert_eq!(verify_webhook(SECRET, HEADER, BODY, T + 300, 300), Ok(()));
    }

    #[test]
    fn refuses_stale_tampered_and_malformed_headers() {
        assert_eq!(
            verify_webhook(SECRET, HEADER, BODY, T + 301, 300),
            Err(WebhookSignatureError::Stale)
        );
        assert_eq!(
            verify_webhook(SECRET, HEADER, BODY, T - 301, 300),
            Err(WebhookSignatureError::Stale)
        );
        assert_eq!(
            verify_webhook(SECRET, HEADER, b"{}", T, 300),
            Err(WebhookSignatureError::Mismatch)
        );
        assert_eq!(
            verify_webhook(b"other", HEADER, BODY, T, 300),
            Err(WebhookSignatureError::Mismatch)
        );
        let moved = HEADER.replace("t=1893456000", "t=1893456001");
        assert_eq!(
            verify_webhook(SECRET, &moved, BODY, T, 300),
            Err(WebhookSignatureError::Mismatch),
            "the timestamp is signed"
        );
        for bad in [
            "",
            "t=1",
            "v1=00",
            "t=x,v1=00",
            "t=1,v1=0",
            "t=1,v1=zz",
            "garbage",
        ] {
            assert_eq!(
                verify_webhook(SECRET, bad, BODY, 1, 300),
                Err(WebhookSignatureError::Malformed),
                "{bad}"
            );
        }
    }

    #[test]
    fn accepts_any_of_several_signatures() {
        let other = sign_webhook(b"old-secret", T, BODY);
        let v1_old = other.split_once(',').unwrap().1;
        let both = format!("{HEADER},{v1_old}");
        assert_eq!(verify_webhook(SECRET, &both, BODY, T, 300), Ok(()));
        assert_eq!(verify_webhook(b"old-secret", &both, BODY, T, 300), Ok(()));
    }
}
