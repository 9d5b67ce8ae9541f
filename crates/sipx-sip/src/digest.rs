//! HTTP Digest for SIP (RFC 3261 §22, RFC 7616, RFC 8760): MD5 and SHA-256, `qop=auth`.
//!
//! Server side: [`DigestServer`] issues challenges and verifies answers. Nonces are stateless
//! (a timestamp and a counter, authenticated by a keyed SHA-256), so any number of clients can be
//! challenged without memory; what *is* remembered is the highest nonce-count seen per nonce, to
//! refuse replays; an answer without `qop` (RFC 2069) uses its nonce up. An expired nonce with
//! a right digest is answered with `stale=true`, so clients retry silently.
//!
//! Client side: [`answer_challenge`] builds the `Authorization` value for a challenge.

use std::collections::HashMap;

use md5::Md5;
use sha2::{Digest as DigestTrait, Sha256};

use crate::msg::lex::{split_top, take_quoted, trim_ws};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Md5,
    Sha256,
}

impl Algorithm {
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
        }
    }

    pub fn parse(s: &str) -> Option<Algorithm> {
        match s.to_ascii_uppercase().as_str() {
            "MD5" => Some(Algorithm::Md5),
            "SHA-256" => Some(Algorithm::Sha256),
            _ => None,
        }
    }

    /// `H(p1:p2:…)` in lower-case hex, hashed part by part: the server side checks several of
    /// these per REGISTER, so no string is built for them.
    fn hash_joined(self, parts: &[&str]) -> HexDigest {
        fn feed<D: DigestTrait>(mut h: D, parts: &[&str]) -> D {
            for (i, p) in parts.iter().enumerate() {
                if i > 0 {
                    h.update(b":");
                }
                h.update(p.as_bytes());
            }
            h
        }
        match self {
            Algorithm::Md5 => HexDigest::of(&feed(Md5::new(), parts).finalize()),
            Algorithm::Sha256 => HexDigest::of(&feed(Sha256::new(), parts).finalize()),
        }
    }
}

/// A digest in lower-case hex, on the stack (at most SHA-256's 64 digits).
struct HexDigest {
    buf: [u8; 64],
    len: usize,
}

impl HexDigest {
    fn of(bytes: &[u8]) -> HexDigest {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut out = HexDigest {
            buf: [0; 64],
            len: 0,
        };
        for (i, b) in bytes.iter().take(32).enumerate() {
            out.buf[2 * i] = DIGITS[usize::from(b >> 4)];
            out.buf[2 * i + 1] = DIGITS[usize::from(b & 0x0f)];
            out.len = 2 * i + 2;
        }
        out
    }

    fn as_str(&self) -> &str {
        // Only ASCII hex digits were written.
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

/// The parameters of a `Digest` challenge or credentials, names lower-cased, quotes removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DigestParams(pub Vec<(String, String)>);

impl DigestParams {
    /// Parses `Digest k=v, k="v", …`; `None` for another scheme or broken syntax.
    pub fn parse(value: &str) -> Option<DigestParams> {
        let value = trim_ws(value);
        let (scheme, rest) = value.split_once([' ', '\t'])?;
        if !scheme.eq_ignore_ascii_case("Digest") {
            return None;
        }
        let mut out = Vec::new();
        for item in split_top(rest, ',')? {
            let item = trim_ws(item);
            if item.is_empty() {
                continue;
            }
            let (k, v) = item.split_once('=')?;
            let v = trim_ws(v);
            let v = if v.starts_with('"') {
                let (q, rest) = take_quoted(v)?;
                if !trim_ws(rest).is_empty() {
                    return None;
                }
                q
            } else {
                v.to_owned()
            };
            out.push((trim_ws(k).to_ascii_lowercase(), v));
        }
        Some(DigestParams(out))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Why credentials were refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DigestError {
    /// Missing or unparsable credentials, or another realm: challenge again.
    Malformed,
    /// The nonce is ours but too old: challenge with `stale=true`.
    Stale,
    /// The nonce was not issued by us.
    UnknownNonce,
    /// A nonce-count not above the last one seen: a replay.
    Replay,
    /// Wrong password (or username).
    Mismatch,
}

/// Verified credentials' identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub username: String,
    pub algorithm: Algorithm,
}

/// Issues and checks digest challenges for one realm.
pub struct DigestServer {
    realm: String,
    /// Offered in this order: many UAs answer only the first challenge they see.
    algorithms: Vec<Algorithm>,
    key: [u8; 32],
    nonce_ttl_secs: u64,
    counter: u64,
    /// Highest nonce-count per nonce still valid.
    seen: HashMap<String, (u64, u32), crate::FastHash>,
}

impl DigestServer {
    /// `key` signs nonces (from the OS CSPRNG, per process: a restart makes old nonces stale).
    pub fn new(realm: impl Into<String>, key: [u8; 32], nonce_ttl_secs: u64) -> Self {
        DigestServer {
            realm: realm.into(),
            algorithms: vec![Algorithm::Md5, Algorithm::Sha256],
            key,
            nonce_ttl_secs,
            counter: 0,
            seen: HashMap::default(),
        }
    }

    /// Sets which challenges are offered, first preferred. RFC 8760 puts SHA-256 first, but
    /// sipp and many gateways read only the first challenge and know only MD5.
    pub fn set_algorithms(&mut self, algorithms: Vec<Algorithm>) {
        if !algorithms.is_empty() {
            self.algorithms = algorithms;
        }
    }

    pub fn realm(&self) -> &str {
        &self.realm
    }

    fn mac(&self, data: &str) -> HexDigest {
        let mut h = Sha256::new();
        h.update(self.key);
        h.update(data.as_bytes());
        h.update(self.key);
        HexDigest::of(&h.finalize()[..12])
    }

    /// A fresh nonce: `<issued secs hex>.<counter hex>.<mac>`.
    fn nonce(&mut self, now_secs: u64) -> String {
        self.counter += 1;
        let body = format!("{now_secs:x}.{:x}", self.counter);
        let mac = self.mac(&body);
        format!("{body}.{}", mac.as_str())
    }

    /// `WWW-Authenticate` values, one per offered algorithm, in order of preference.
    pub fn challenges(&mut self, now_secs: u64, stale: bool) -> Vec<String> {
        let nonce = self.nonce(now_secs);
        let stale = if stale { ", stale=true" } else { "" };
        self.algorithms
            .iter()
            .map(|a| {
                format!(
                    "Digest realm=\"{}\", nonce=\"{nonce}\", algorithm={}, qop=\"auth\"{stale}",
                    self.realm,
                    a.name()
                )
            })
            .collect()
    }

    /// The username in credentials for our realm, before any check (to look up the password).
    pub fn username<'a>(&self, creds: &'a DigestParams) -> Option<&'a str> {
        (creds.get("realm") == Some(self.realm.as_str()))
            .then(|| creds.get("username"))
            .flatten()
    }

    /// Checks credentials for `method` against `password`.
    pub fn verify(
        &mut self,
        creds: &DigestParams,
        method: &str,
        password: &str,
        now_secs: u64,
    ) -> Result<Verified, DigestError> {
        let get = |k| creds.get(k).ok_or(DigestError::Malformed);
        if get("realm")? != self.realm {
            return Err(DigestError::Malformed);
        }
        let username = get("username")?;
        let nonce = get("nonce")?;
        let uri = get("uri")?;
        let response = get("response")?;
        let algorithm = match creds.get("algorithm") {
            Some(a) => Algorithm::parse(a).ok_or(DigestError::Malformed)?,
            None => Algorithm::Md5,
        };
        // The nonce must be ours and fresh.
        let mut parts = nonce.rsplitn(2, '.');
        let (Some(mac), Some(body)) = (parts.next(), parts.next()) else {
            return Err(DigestError::UnknownNonce);
        };
        if !constant_time_eq(self.mac(body).as_str().as_bytes(), mac.as_bytes()) {
            return Err(DigestError::UnknownNonce);
        }
        let issued = body
            .split('.')
            .next()
            .and_then(|t| u64::from_str_radix(t, 16).ok())
            .ok_or(DigestError::UnknownNonce)?;
        let expired =
            now_secs.saturating_sub(issued) > self.nonce_ttl_secs || issued > now_secs + 5;
        let ha1 = algorithm.hash_joined(&[username, &self.realm, password]);
        let ha2 = algorithm.hash_joined(&[method, uri]);
        let (ha1, ha2) = (ha1.as_str(), ha2.as_str());
        let (expected, nc) = match creds.get("qop") {
            Some(q) if q.eq_ignore_ascii_case("auth") => {
                let nc_text = get("nc")?;
                let cnonce = get("cnonce")?;
                let nc = u32::from_str_radix(nc_text, 16).map_err(|_| DigestError::Malformed)?;
                (
                    algorithm.hash_joined(&[ha1, nonce, nc_text, cnonce, "auth", ha2]),
                    nc,
                )
            }
            Some(_) => return Err(DigestError::Malformed),
            // RFC 2069 compatibility: no qop, no nonce-count. Nothing tells a second use of
            // such an answer from a replay of it (its digest covers neither a count nor the
            // Contact), so its nonce is good for one use: as if it had counted to the top.
            None => (algorithm.hash_joined(&[ha1, nonce, ha2]), u32::MAX),
        };
        // Hex digits compare case-insensitively; the comparison stays constant-time.
        if !constant_time_eq_ignore_case(expected.as_str().as_bytes(), response.as_bytes()) {
            return Err(DigestError::Mismatch);
        }
        // Stale only once the digest is right (RFC 2617 §3.2.1): a wrong password on an old
        // nonce must not make the client retry it silently.
        if expired {
            return Err(DigestError::Stale);
        }
        let entry = self.seen.entry(nonce.to_owned()).or_insert((issued, 0));
        if entry.1 == u32::MAX || nc <= entry.1 {
            return Err(DigestError::Replay);
        }
        entry.1 = nc;
        Ok(Verified {
            username: username.to_owned(),
            algorithm,
        })
    }

    /// Forgets nonce-counts of expired nonces. Call now and then.
    pub fn prune(&mut self, now_secs: u64) {
        let ttl = self.nonce_ttl_secs;
        self.seen
            .retain(|_, (issued, _)| now_secs.saturating_sub(*issued) <= ttl);
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `a` (lower case) against `b` in any case, in time independent of where they differ.
fn constant_time_eq_ignore_case(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .fold(0u8, |acc, (x, y)| acc | (x ^ y.to_ascii_lowercase()))
            == 0
}

/// The `Authorization`/`Proxy-Authorization` value answering `challenge` (a `WWW-Authenticate`
/// or `Proxy-Authenticate` value). `uri` must be the Request-URI exactly as sent: strict SBCs
/// refuse credentials whose `uri` differs.
pub fn answer_challenge(
    challenge: &DigestParams,
    method: &str,
    uri: &str,
    username: &str,
    password: &str,
    cnonce: &str,
    nc: u32,
) -> Option<String> {
    let realm = challenge.get("realm")?;
    let nonce = challenge.get("nonce")?;
    let algorithm = match challenge.get("algorithm") {
        Some(a) => Algorithm::parse(a)?,
        None => Algorithm::Md5,
    };
    let qop_auth = challenge.get("qop").is_some_and(|q| {
        q.split(',')
            .any(|x| trim_ws(x).eq_ignore_ascii_case("auth"))
    });
    let ha1 = algorithm.hash_joined(&[username, realm, password]);
    let ha2 = algorithm.hash_joined(&[method, uri]);
    let (ha1, ha2) = (ha1.as_str(), ha2.as_str());
    let mut out = format!(
        "Digest username=\"{username}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", algorithm={}",
        algorithm.name()
    );
    let response = if qop_auth {
        let nc = format!("{nc:08x}");
        out.push_str(&format!(", qop=auth, nc={nc}, cnonce=\"{cnonce}\""));
        algorithm.hash_joined(&[ha1, nonce, &nc, cnonce, "auth", ha2])
    } else {
        algorithm.hash_joined(&[ha1, nonce, ha2])
    };
    out.push_str(&format!(", response=\"{}\"", response.as_str()));
    if let Some(opaque) = challenge.get("opaque") {
        out.push_str(&format!(", opaque=\"{opaque}\""));
    }
    Some(out)
}

/// Picks the best challenge we can answer among several: SHA-256 over MD5.
pub fn best_challenge<'a>(values: impl Iterator<Item = &'a str>) -> Option<DigestParams> {
    let mut best: Option<(Algorithm, DigestParams)> = None;
    for v in values {
        let Some(p) = DigestParams::parse(v) else {
            continue;
        };
        let Some(alg) = Algorithm::parse(p.get("algorithm").unwrap_or("MD5")) else {
            continue;
        };
        if best
            .as_ref()
            .is_none_or(|(a, _)| *a == Algorithm::Md5 && alg == Algorithm::Sha256)
        {
            best = Some((alg, p));
        }
    }
    best.map(|(_, p)| p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server() -> DigestServer {
        DigestServer::new("sipx.test", [7; 32], 300)
    }

    fn creds_for(challenge: &str, password: &str, nc: u32) -> DigestParams {
        let c = DigestParams::parse(challenge).unwrap();
        let v = answer_challenge(
            &c,
            "REGISTER",
            "sip:sipx.test",
            "alice",
            password,
            "c0ffee",
            nc,
        )
        .unwrap();
        DigestParams::parse(&v).unwrap()
    }

    #[test]
    fn rfc_2617_md5_example_matches() {
        // The worked example of RFC 2617 §3.5 (an HTTP GET), as a known-answer test.
        let c = DigestParams::parse(
            r#"Digest realm="testrealm@host.com", qop="auth,auth-int", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41""#,
        )
        .unwrap();
        let v = answer_challenge(
            &c,
            "GET",
            "/dir/index.html",
            "Mufasa",
            "Circle Of Life",
            "0a4f113b",
            1,
        )
        .unwrap();
        assert!(
            v.contains("response=\"6629fae49393a05397450978507c4ef1\""),
            "{v}"
        );
    }

    #[test]
    fn accepts_both_algorithms_and_refuses_wrong_passwords() {
        let mut s = server();
        // Both challenges carry one nonce, so the nonce-count runs on across them.
        for (i, challenge) in s.challenges(1000, false).into_iter().enumerate() {
            let nc = 2 * i as u32;
            let ok = creds_for(&challenge, "alicepw", nc + 1);
            let v = s.verify(&ok, "REGISTER", "alicepw", 1001).unwrap();
            assert_eq!(v.username, "alice");
            let bad = creds_for(&challenge, "wrong", nc + 2);
            assert_eq!(
                s.verify(&bad, "REGISTER", "alicepw", 1001),
                Err(DigestError::Mismatch)
            );
        }
    }

    #[test]
    fn refuses_replays_stale_and_forged_nonces() {
        let mut s = server();
        let challenge = s.challenges(1000, false).remove(0);
        let c1 = creds_for(&challenge, "alicepw", 1);
        assert!(s.verify(&c1, "REGISTER", "alicepw", 1000).is_ok());
        assert_eq!(
            s.verify(&c1, "REGISTER", "alicepw", 1000),
            Err(DigestError::Replay)
        );
        let c2 = creds_for(&challenge, "alicepw", 2);
        assert!(s.verify(&c2, "REGISTER", "alicepw", 1000).is_ok());
        let c3 = creds_for(&challenge, "alicepw", 3);
        assert_eq!(
            s.verify(&c3, "REGISTER", "alicepw", 1400),
            Err(DigestError::Stale)
        );
        let forged = challenge.replace("nonce=\"", "nonce=\"1");
        let c4 = creds_for(&forged, "alicepw", 1);
        assert_eq!(
            s.verify(&c4, "REGISTER", "alicepw", 1000),
            Err(DigestError::UnknownNonce)
        );
        let other_realm = challenge.replace("sipx.test", "other");
        let c5 = creds_for(&other_realm, "alicepw", 1);
        assert_eq!(
            s.verify(&c5, "REGISTER", "alicepw", 1000),
            Err(DigestError::Malformed)
        );
    }

    #[test]
    fn a_wrong_password_on_an_old_nonce_is_a_mismatch_not_stale() {
        let mut s = server();
        let challenge = s.challenges(1000, false).remove(0);
        let bad = creds_for(&challenge, "wrong", 1);
        assert_eq!(
            s.verify(&bad, "REGISTER", "alicepw", 1400),
            Err(DigestError::Mismatch)
        );
        let good = creds_for(&challenge, "alicepw", 1);
        assert_eq!(
            s.verify(&good, "REGISTER", "alicepw", 1400),
            Err(DigestError::Stale)
        );
    }

    /// An RFC 2069 answer (no qop) to `challenge`.
    fn qopless(challenge: &str, password: &str) -> DigestParams {
        let nonce = DigestParams::parse(challenge)
            .unwrap()
            .get("nonce")
            .unwrap()
            .to_owned();
        let md5 = Algorithm::Md5;
        let ha1 = md5.hash_joined(&["alice", "sipx.test", password]);
        let ha2 = md5.hash_joined(&["REGISTER", "sip:sipx.test"]);
        let response = md5.hash_joined(&[ha1.as_str(), &nonce, ha2.as_str()]);
        DigestParams::parse(&format!(
            "Digest username=\"alice\", realm=\"sipx.test\", nonce=\"{nonce}\", \
             uri=\"sip:sipx.test\", response=\"{}\"",
            response.as_str()
        ))
        .unwrap()
    }

    #[test]
    fn an_answer_without_qop_is_good_for_one_use_of_its_nonce() {
        let mut s = server();
        let challenge = s.challenges(1000, false).remove(0);
        let once = qopless(&challenge, "alicepw");
        assert!(s.verify(&once, "REGISTER", "alicepw", 1000).is_ok());
        // The same answer again (a replay, or a client reusing the nonce): a fresh challenge.
        assert_eq!(
            s.verify(&once, "REGISTER", "alicepw", 1001),
            Err(DigestError::Replay)
        );
        // Nor does the nonce count on with qop after it.
        let counted = creds_for(&challenge, "alicepw", 7);
        assert_eq!(
            s.verify(&counted, "REGISTER", "alicepw", 1001),
            Err(DigestError::Replay)
        );
        assert_eq!(
            s.verify(&qopless(&challenge, "wrong"), "REGISTER", "alicepw", 1001),
            Err(DigestError::Mismatch)
        );
        // A new nonce works once more.
        let next = s.challenges(1002, false).remove(0);
        assert!(
            s.verify(&qopless(&next, "alicepw"), "REGISTER", "alicepw", 1002)
                .is_ok()
        );
    }

    #[test]
    fn prefers_sha256() {
        let mut s = server();
        let ch = s.challenges(1, false);
        let best = best_challenge(ch.iter().rev().map(String::as_str)).unwrap();
        assert_eq!(best.get("algorithm"), Some("SHA-256"));
    }
}
