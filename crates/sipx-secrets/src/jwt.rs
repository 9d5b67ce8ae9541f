//! Compact JWTs (RFC 7519) signed with HMAC-SHA256 (`alg` `HS256`, RFC 7518 §3.2): the room
//! join tokens. Only HS256 is accepted — the header's `alg` is checked, never trusted to pick
//! the algorithm, so `none` and algorithm-confusion tokens fail. The claims are the caller's
//! JSON; this module only frames, signs and checks.

use aws_lc_rs::hmac;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// `{"alg":"HS256","typ":"JWT"}`, the only header SIPx writes.
const HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwtError {
    #[error("not a compact JWT (three base64url parts)")]
    Malformed,
    #[error("only HS256 tokens are accepted")]
    Algorithm,
    #[error("the signature does not match")]
    Signature,
}

/// Signs `claims` (a JSON object's bytes) with `key`.
pub fn sign(claims: &[u8], key: &[u8]) -> String {
    let mut token = URL_SAFE_NO_PAD.encode(HEADER);
    token.push('.');
    token.push_str(&URL_SAFE_NO_PAD.encode(claims));
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), token.as_bytes());
    token.push('.');
    token.push_str(&URL_SAFE_NO_PAD.encode(tag.as_ref()));
    token
}

/// The claims of a well-formed HS256 token, *not yet verified*: for finding which key to check
/// it with (the issuer). Never act on them before [`verify`].
pub fn peek_claims(token: &str) -> Result<Vec<u8>, JwtError> {
    let (header, claims, _) = split(token)?;
    check_header(header)?;
    URL_SAFE_NO_PAD
        .decode(claims)
        .map_err(|_| JwtError::Malformed)
}

/// Checks the signature (constant time) and returns the claims' bytes.
pub fn verify(token: &str, key: &[u8]) -> Result<Vec<u8>, JwtError> {
    let (header, claims, signature) = split(token)?;
    check_header(header)?;
    let tag = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| JwtError::Malformed)?;
    let signed = &token[..header.len() + 1 + claims.len()];
    hmac::verify(
        &hmac::Key::new(hmac::HMAC_SHA256, key),
        signed.as_bytes(),
        &tag,
    )
    .map_err(|_| JwtError::Signature)?;
    URL_SAFE_NO_PAD
        .decode(claims)
        .map_err(|_| JwtError::Malformed)
}

fn split(token: &str) -> Result<(&str, &str, &str), JwtError> {
    let mut parts = token.split('.');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(h), Some(c), Some(s), None) if !h.is_empty() && !c.is_empty() && !s.is_empty() => {
            Ok((h, c, s))
        }
        _ => Err(JwtError::Malformed),
    }
}

/// The header must say HS256. Parsed without a JSON library: it is a flat object of strings,
/// and anything fancier is refused rather than interpreted.
fn check_header(header: &str) -> Result<(), JwtError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| JwtError::Malformed)?;
    let text = std::str::from_utf8(&bytes).map_err(|_| JwtError::Malformed)?;
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    if compact.contains(r#""alg":"HS256""#) && !compact.contains("\"crit\"") {
        Ok(())
    } else {
        Err(JwtError::Algorithm)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"an application secret";

    #[test]
    fn a_signed_token_verifies_and_gives_back_its_claims() {
        let t = sign(br#"{"room":"sales"}"#, KEY);
        assert_eq!(t.matches('.').count(), 2);
        assert_eq!(verify(&t, KEY).unwrap(), br#"{"room":"sales"}"#);
        assert_eq!(peek_claims(&t).unwrap(), br#"{"room":"sales"}"#);
    }

    #[test]
    fn known_vector_from_rfc_7515_appendix_a1_verifies() {
        // RFC 7515 A.1: HS256 over a header with a line break, key given as JWK "k".
        let key = URL_SAFE_NO_PAD
            .decode("AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow")
            .unwrap();
        let token = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let claims = verify(token, &key).unwrap();
        assert!(claims.starts_with(b"{\"iss\":\"joe\""));
    }

    #[test]
    fn tampering_wrong_keys_and_other_algorithms_are_refused() {
        let t = sign(br#"{"room":"sales"}"#, KEY);
        assert_eq!(verify(&t, b"other"), Err(JwtError::Signature));
        let (h, _, s) = split(&t).unwrap();
        let forged = format!("{h}.{}.{s}", URL_SAFE_NO_PAD.encode(br#"{"room":"board"}"#));
        assert_eq!(verify(&forged, KEY), Err(JwtError::Signature));
        let none = format!(
            "{}.{}.x",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#),
            URL_SAFE_NO_PAD.encode(b"{}")
        );
        assert_eq!(verify(&none, KEY), Err(JwtError::Algorithm));
        for bad in ["", "a.b", "a.b.c.d", "..", "!!.e30.x"] {
            assert!(verify(bad, KEY).is_err(), "{bad}");
        }
    }
}
