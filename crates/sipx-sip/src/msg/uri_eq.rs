//! When two URIs name the same thing (RFC 3261 §19.1.4): what a registrar matches a REGISTER's
//! contacts against its bindings by. A device may write the same contact another way when it
//! refreshes or removes it (host case, `%`-escapes, parameter order and case), and a text
//! compare would leave the old binding behind, still dialled, until it lapses.

use super::lex::find_param;
use super::uri::{SipUri, Uri, uri_host};

/// Parameters that make two URIs differ when only one of them has it (§19.1.4); any other
/// parameter counts only when both have it.
const ALWAYS_COMPARED: [&str; 5] = ["user", "ttl", "method", "maddr", "transport"];

impl Uri {
    /// Whether `self` and `other` are equivalent: SIP URIs by §19.1.4, others as written.
    pub fn equivalent(&self, other: &Uri) -> bool {
        match (self, other) {
            (Uri::Sip(a), Uri::Sip(b)) => a.equivalent(b),
            _ => self == other,
        }
    }
}

impl SipUri {
    /// §19.1.4: `sips` never equals `sip`; the user and password compare exactly but with
    /// escapes decoded; the host without regard to case (an IPv6 address in its canonical
    /// form); a port only equals the same port written out (no port is not 5060); parameters
    /// and headers as `params_equivalent` and `headers_equivalent` say.
    pub fn equivalent(&self, other: &SipUri) -> bool {
        self.secure == other.secure
            && decoded(self.user.as_deref()) == decoded(other.user.as_deref())
            && decoded(self.password.as_deref()) == decoded(other.password.as_deref())
            && uri_host(&self.host).eq_ignore_ascii_case(&uri_host(&other.host))
            && self.port == other.port
            && params_equivalent(&self.params, &other.params)
            && headers_equivalent(&self.headers, &other.headers)
    }
}

/// `part` with the escapes of unreserved characters decoded (§19.1.4: `%61` is `a`, but
/// `%3B` is not `;`) and the others' hex digits in one case.
fn decoded(part: Option<&str>) -> Option<String> {
    let part = part?;
    let bytes = part.as_bytes();
    let mut out = String::with_capacity(part.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| part.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(b) if b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b) => {
                out.push(char::from(b));
                i += 3;
            }
            Some(b) => {
                out.push_str(&format!("%{b:02X}"));
                i += 3;
            }
            None => {
                let c = part[i..].chars().next().unwrap_or('%');
                out.push(c);
                i += c.len_utf8();
            }
        }
    }
    Some(out)
}

/// Parameter values compare without regard to case, escapes decoded.
fn same_value(a: Option<&str>, b: Option<&str>) -> bool {
    match (decoded(a), decoded(b)) {
        (Some(a), Some(b)) => a.eq_ignore_ascii_case(&b),
        (a, b) => a == b,
    }
}

fn params_equivalent(a: &[(String, Option<String>)], b: &[(String, Option<String>)]) -> bool {
    a.iter().chain(b).all(
        |(name, _)| match (find_param(a, name), find_param(b, name)) {
            (Some(x), Some(y)) => same_value(x, y),
            _ => !ALWAYS_COMPARED.iter().any(|p| p.eq_ignore_ascii_case(name)),
        },
    )
}

/// Every header of either must be in both, with the same value.
fn headers_equivalent(a: &[(String, String)], b: &[(String, String)]) -> bool {
    let within = |x: &[(String, String)], y: &[(String, String)]| {
        x.iter().all(|(name, value)| {
            y.iter().any(|(n, v)| {
                n.eq_ignore_ascii_case(name) && decoded(Some(v)) == decoded(Some(value))
            })
        })
    };
    within(a, b) && within(b, a)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn same(a: &str, b: &str) -> bool {
        match (Uri::parse(a), Uri::parse(b)) {
            (Some(x), Some(y)) => {
                assert_eq!(
                    x.equivalent(&y),
                    y.equivalent(&x),
                    "{a} / {b}: not symmetric"
                );
                x.equivalent(&y)
            }
            _ => panic!("{a} or {b} does not parse"),
        }
    }

    /// The pairs §19.1.4 gives as equivalent and as not, and what devices vary when they
    /// write their contact again.
    #[test]
    fn uris_compare_as_rfc_3261_says() {
        for (a, b) in [
            (
                "sip:%61lice@atlanta.com;transport=TCP",
                "sip:alice@AtLanTa.CoM;Transport=tcp",
            ),
            ("sip:carol@chicago.com", "sip:carol@chicago.com;newparam=5"),
            (
                "sip:carol@chicago.com;security=on",
                "sip:carol@chicago.com;newparam=5",
            ),
            (
                "sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
                "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com",
            ),
            (
                "sip:alice@atlanta.com?subject=project%20x&priority=urgent",
                "sip:alice@atlanta.com?priority=urgent&subject=project%20x",
            ),
            ("sip:gw1@LOCALHOST:5009", "sip:gw1@localhost:5009"),
            ("sip:a%3bb@atlanta.com", "sip:a%3Bb@atlanta.com"),
            ("sip:gw1@[2001:DB8::0:1]:5060", "sip:gw1@[2001:db8::1]:5060"),
        ] {
            assert!(same(a, b), "{a} / {b}");
        }
        for (a, b) in [
            (
                "SIP:ALICE@AtLanTa.CoM;Transport=udp",
                "sip:alice@AtLanTa.CoM;Transport=UDP",
            ),
            ("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"),
            ("sip:bob@biloxi.com", "sip:bob@biloxi.com;transport=udp"),
            (
                "sip:bob@biloxi.com",
                "sip:bob@biloxi.com:6000;transport=tcp",
            ),
            (
                "sip:carol@chicago.com",
                "sip:carol@chicago.com?Subject=next%20meeting",
            ),
            ("sip:bob@phone21.boxesbybob.com", "sip:bob@192.0.2.4"),
            (
                "sip:carol@chicago.com;security=on",
                "sip:carol@chicago.com;security=off",
            ),
            ("sips:alice@atlanta.com", "sip:alice@atlanta.com"),
            // An escaped reserved character is not the character itself.
            ("sip:a%3Bb@atlanta.com", "sip:a;b@atlanta.com"),
        ] {
            assert!(!same(a, b), "{a} / {b}");
        }
    }
}
