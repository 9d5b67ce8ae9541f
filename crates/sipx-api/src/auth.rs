//! Request authentication: the first SIPx's signature scheme.
//!
//! A request carries `api_key`, `expire_at` and `signature` either in the query string or in
//! one header: `Authorization: Sipx api_key=…, expire_at=…, signature=…` (values may be quoted).
//! The header wins when both are present. See `sipx_secrets::signature` for the algorithm.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use sipx_store::AppRecord;

use crate::problem::ApiError;
use crate::state::ApiState;

/// The scheme name in the `Authorization` header.
pub const SCHEME: &str = "Sipx";

#[derive(Debug, PartialEq, Eq)]
pub struct Credentials {
    pub api_key: String,
    pub expire_at: String,
    pub signature: String,
}

/// The authenticated application (tenant) of a request.
#[derive(Debug, Clone)]
pub struct Tenant(pub AppRecord);

/// The authenticated operator.
#[derive(Debug, Clone)]
pub struct Admin;

fn unauthorized(detail: &str) -> ApiError {
    ApiError::Unauthorized(detail.to_owned())
}

/// Reads the credentials from the `Authorization` header, else from the query string.
pub fn credentials(parts: &Parts) -> Result<Credentials, ApiError> {
    if let Some(value) = parts.headers.get(AUTHORIZATION) {
        let value = value
            .to_str()
            .map_err(|_| unauthorized("the Authorization header is not ASCII"))?;
        return parse_header(value).ok_or_else(|| {
            unauthorized(
                "the Authorization header must read `Sipx api_key=…, expire_at=…, signature=…`",
            )
        });
    }
    let query = parts.uri.query().unwrap_or("");
    let mut found = Found::default();
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if !CREDENTIALS.contains(&k) {
            continue;
        }
        let v = percent_decode(v)
            .ok_or_else(|| unauthorized(&format!("{k} is not percent-encoded UTF-8")))?;
        if found.take(k, v).is_err() {
            return Err(unauthorized(&format!("{k} is given more than once")));
        }
    }
    found.complete().ok_or_else(|| {
        unauthorized(
            "missing credentials: pass api_key, expire_at and signature in the query string or the Authorization header",
        )
    })
}

/// The credentials a request carries, by name.
const CREDENTIALS: [&str; 3] = ["api_key", "expire_at", "signature"];

/// The credentials read so far, each taken once: named twice, one could be read one way here
/// and another way by a proxy in front.
#[derive(Default)]
struct Found([Option<String>; 3]);

impl Found {
    /// Takes `value` as credential `name`; `Err` for one of them named again. A name that is
    /// none of [`CREDENTIALS`] is `Ok(false)`.
    fn take(&mut self, name: &str, value: String) -> Result<bool, ()> {
        let Some(i) = CREDENTIALS.iter().position(|n| *n == name) else {
            return Ok(false);
        };
        match self.0[i].replace(value) {
            Some(_) => Err(()),
            None => Ok(true),
        }
    }

    fn complete(self) -> Option<Credentials> {
        let [api_key, expire_at, signature] = self.0;
        Some(Credentials {
            api_key: api_key?,
            expire_at: expire_at?,
            signature: signature?,
        })
    }
}

fn parse_header(value: &str) -> Option<Credentials> {
    let (scheme, rest) = value.trim().split_once(char::is_whitespace)?;
    if !scheme.eq_ignore_ascii_case(SCHEME) {
        return None;
    }
    let mut found = Found::default();
    for item in rest.split(',') {
        let (k, v) = item.trim().split_once('=')?;
        let v = v.trim();
        let v = v
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(v)
            .to_owned();
        // Anything else in the header, or a credential twice, and it does not read.
        if found.take(k.trim(), v) != Ok(true) {
            return None;
        }
    }
    found.complete()
}

/// Decodes `%XX` and `+`; `None` when the result is not UTF-8 or an escape is broken.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// Checks `expire_at` against the clock: not past, not beyond `max_ahead`.
pub fn check_expiry(expire_at: &str, now: SystemTime, max_ahead: Duration) -> Result<(), ApiError> {
    if expire_at.is_empty()
        || expire_at.len() > 12
        || !expire_at.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(unauthorized("expire_at must be a Unix time in seconds"));
    }
    let expire: u64 = expire_at
        .parse()
        .map_err(|_| unauthorized("expire_at must be a Unix time in seconds"))?;
    let now = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    if expire < now {
        return Err(unauthorized("the signature has expired"));
    }
    if expire - now > max_ahead.as_secs() {
        return Err(ApiError::Unauthorized(format!(
            "expire_at is too far in the future: at most {} s ahead is accepted",
            max_ahead.as_secs()
        )));
    }
    Ok(())
}

/// The request's credentials, once their expiry is known to be within the accepted window.
fn unexpired_credentials(parts: &Parts, state: &ApiState) -> Result<Credentials, ApiError> {
    let creds = credentials(parts)?;
    check_expiry(
        &creds.expire_at,
        SystemTime::now(),
        state.auth.max_expiry_ahead,
    )?;
    Ok(creds)
}

const BAD_SIGNATURE: &str = "invalid api_key or signature";

impl FromRequestParts<ApiState> for Tenant {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        let creds = unexpired_credentials(parts, state)?;
        let Some((app, secret)) = state.store.app_credentials(&creds.api_key).await? else {
            // Same answer as a wrong signature: the API does not reveal which keys exist.
            return Err(unauthorized(BAD_SIGNATURE));
        };
        sipx_secrets::verify(
            &creds.api_key,
            &creds.expire_at,
            secret.expose(),
            &creds.signature,
        )
        .map_err(|_| unauthorized(BAD_SIGNATURE))?;
        if app.disabled {
            return Err(ApiError::Forbidden(
                "this application is disabled".to_owned(),
            ));
        }
        Ok(Tenant(app))
    }
}

impl FromRequestParts<ApiState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        let creds = unexpired_credentials(parts, state)?;
        let Some(admin) = &state.auth.admin else {
            return Err(unauthorized(
                "the operator API is disabled: configure admin.api_key and admin.api_secret",
            ));
        };
        let secret = admin.api_secret.expose().as_bytes();
        let key_ok = constant_time_eq(creds.api_key.as_bytes(), admin.api_key.as_bytes());
        let sig_ok =
            sipx_secrets::verify(&creds.api_key, &creds.expire_at, secret, &creds.signature)
                .is_ok();
        if key_ok && sig_ok {
            Ok(Admin)
        } else {
            Err(unauthorized(BAD_SIGNATURE))
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    // Length is not secret (keys have a fixed shape); the contents are compared without
    // an early exit.
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(uri: &str, auth: Option<&str>) -> Parts {
        let mut b = axum::http::Request::builder().uri(uri);
        if let Some(a) = auth {
            b = b.header(AUTHORIZATION, a);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn reads_query_and_header_forms() {
        let want = Credentials {
            api_key: "k".into(),
            expire_at: "10".into(),
            signature: "s-_".into(),
        };
        assert_eq!(
            credentials(&parts("/x?api_key=k&expire_at=10&signature=s-_", None)).unwrap(),
            want
        );
        assert_eq!(
            credentials(&parts(
                "/x",
                Some("Sipx api_key=k, expire_at=10, signature=s-_")
            ))
            .unwrap(),
            want
        );
        assert_eq!(
            credentials(&parts(
                "/x",
                Some("sipx api_key=\"k\",expire_at=\"10\",signature=\"s-_\"")
            ))
            .unwrap(),
            want
        );
        assert_eq!(
            credentials(&parts("/x?api_key=k&expire_at=1%30&signature=s-_", None)).unwrap(),
            want
        );
        assert!(credentials(&parts("/x?api_key=k&expire_at=10", None)).is_err());
        assert!(credentials(&parts("/x", Some("Bearer abc"))).is_err());
        assert!(credentials(&parts("/x", Some("Sipx api_key=k"))).is_err());
        assert!(credentials(&parts("/x?api_key=%zz&expire_at=1&signature=s", None)).is_err());
        // A credential named twice is refused, not read as its first or last value.
        let twice = credentials(&parts(
            "/x?api_key=k&expire_at=10&signature=s-_&api_key=other",
            None,
        ));
        assert!(twice.is_err());
        let twice = credentials(&parts(
            "/x",
            Some("Sipx api_key=k, expire_at=10, signature=s-_, signature=t"),
        ));
        assert!(twice.is_err());
    }

    #[test]
    fn expiry_window() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let day = Duration::from_secs(86_400);
        assert!(check_expiry("1000000", now, day).is_ok());
        assert!(check_expiry("1086400", now, day).is_ok());
        assert!(check_expiry("999999", now, day).is_err());
        assert!(check_expiry("1086401", now, day).is_err());
        assert!(check_expiry("-5", now, day).is_err());
        assert!(check_expiry("", now, day).is_err());
        assert!(check_expiry("99999999999999999999", now, day).is_err());
    }
}
