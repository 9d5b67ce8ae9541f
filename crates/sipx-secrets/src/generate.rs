//! Credentials from the system CSPRNG.
//!
//! Keys and secrets use only `[0-9a-z]` (keys) or `[0-9A-Za-z]` (secrets): SIM-card gateways and
//! desk phones take them as SIP user names and passwords, and many of their configuration pages
//! refuse punctuation.

use aws_lc_rs::rand::{SecureRandom, SystemRandom};

const LOWER_ALNUM: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
const ALNUM: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// An application's public key: 20 characters of `[0-9a-z]` (~103 bits).
pub fn api_key() -> String {
    random_string(20, LOWER_ALNUM)
}

/// An application's secret: 40 characters of `[0-9A-Za-z]` (~238 bits).
pub fn api_secret() -> String {
    random_string(40, ALNUM)
}

/// Fills `buf` from the system CSPRNG.
///
/// # Panics
/// When the operating system cannot provide randomness, which no caller can recover from.
pub fn fill(buf: &mut [u8]) {
    #[allow(clippy::expect_used)] // The OS RNG failing is fatal everywhere; nothing to return.
    SystemRandom::new()
        .fill(buf)
        .expect("system random number generator failed");
}

/// A string of `len` symbols drawn uniformly from `alphabet` (rejection sampling, no modulo bias).
pub fn random_string(len: usize, alphabet: &[u8]) -> String {
    debug_assert!(!alphabet.is_empty() && alphabet.len() <= 256);
    let limit = 256 - 256 % alphabet.len();
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        fill(&mut buf);
        for &b in &buf {
            if (b as usize) < limit && out.len() < len {
                out.push(alphabet[b as usize % alphabet.len()] as char);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_secrets_have_their_shape() {
        let k = api_key();
        assert_eq!(k.len(), 20);
        assert!(k.bytes().all(|b| LOWER_ALNUM.contains(&b)));
        let s = api_secret();
        assert_eq!(s.len(), 40);
        assert!(s.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(api_secret(), s);
    }
}
