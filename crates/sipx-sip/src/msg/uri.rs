//! URIs in SIP messages: `sip:`/`sips:` (RFC 3261 §19.1), `tel:` (RFC 3966), and any other
//! scheme kept opaque (so a request for an unknown scheme can be answered 416, RFC 4475 unkscm).

use std::fmt;

use super::lex::percent_decode;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Uri {
    Sip(SipUri),
    Tel(TelUri),
    Other { scheme: String, opaque: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipUri {
    pub secure: bool,
    /// The user part as received (still %-escaped).
    pub user: Option<String>,
    pub password: Option<String>,
    /// Host name, IPv4 address, or IPv6 reference with its brackets.
    pub host: String,
    pub port: Option<u16>,
    pub params: Vec<(String, Option<String>)>,
    pub headers: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelUri {
    pub number: String,
    pub params: Vec<(String, Option<String>)>,
}

impl Uri {
    pub fn parse(s: &str) -> Option<Uri> {
        let (scheme, rest) = s.split_once(':')?;
        if scheme.is_empty()
            || !scheme.as_bytes()[0].is_ascii_alphabetic()
            || !scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
        {
            return None;
        }
        if s.bytes()
            .any(|b| b <= b' ' || b == b'<' || b == b'>' || b == b'"' || b == 0x7f)
        {
            return None;
        }
        match scheme.to_ascii_lowercase().as_str() {
            "sip" => SipUri::parse_rest(rest, false).map(Uri::Sip),
            "sips" => SipUri::parse_rest(rest, true).map(Uri::Sip),
            "tel" => TelUri::parse_rest(rest).map(Uri::Tel),
            _ if !rest.is_empty() => Some(Uri::Other {
                scheme: scheme.to_owned(),
                opaque: rest.to_owned(),
            }),
            _ => None,
        }
    }

    pub fn as_sip(&self) -> Option<&SipUri> {
        match self {
            Uri::Sip(u) => Some(u),
            _ => None,
        }
    }

    pub fn scheme(&self) -> &str {
        match self {
            Uri::Sip(u) if u.secure => "sips",
            Uri::Sip(_) => "sip",
            Uri::Tel(_) => "tel",
            Uri::Other { scheme, .. } => scheme,
        }
    }

    /// The user part (SIP) or number (tel), %-decoded when possible.
    pub fn user(&self) -> Option<String> {
        match self {
            Uri::Sip(u) => u
                .user
                .as_deref()
                .map(|x| percent_decode(x).unwrap_or_else(|| x.to_owned())),
            Uri::Tel(t) => Some(t.number.clone()),
            Uri::Other { .. } => None,
        }
    }
}

fn parse_uri_params(s: &str) -> Option<Vec<(String, Option<String>)>> {
    let mut out = Vec::new();
    if s.is_empty() {
        return Some(out);
    }
    for p in s.split(';') {
        let (n, v) = match p.split_once('=') {
            Some((n, v)) => (n, Some(v.to_owned())),
            None => (p, None),
        };
        if n.is_empty() {
            // `;;` or a trailing `;`: tolerated in URIs as an empty parameter list entry.
            continue;
        }
        if !n.bytes().all(is_token_byte_uri) {
            return None;
        }
        out.push((n.to_owned(), v));
    }
    Some(out)
}

/// paramchar: unreserved, escaped, and `[]/:&+$`.
fn is_token_byte_uri(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-_.!~*'()%[]/:&+$".contains(&b)
}

impl SipUri {
    fn parse_rest(rest: &str, secure: bool) -> Option<SipUri> {
        // The user part may hold `;` and `?` (RFC 4475 semiuri) but never a raw `@`, so the
        // first `@` ends it.
        let (userinfo, hostpart) = match rest.find('@') {
            Some(i) => (Some(&rest[..i]), &rest[i + 1..]),
            None => (None, rest),
        };
        let (user, password) = match userinfo {
            Some(ui) => {
                let (u, p) = match ui.split_once(':') {
                    Some((u, p)) => (u, Some(p.to_owned())),
                    None => (ui, None),
                };
                if u.is_empty() {
                    return None;
                }
                (Some(u.to_owned()), p)
            }
            None => (None, None),
        };
        let (hostport, headers) = match hostpart.split_once('?') {
            Some((h, q)) => (h, Some(q)),
            None => (hostpart, None),
        };
        let (hostport, params) = match hostport.split_once(';') {
            Some((h, p)) => (h, p),
            None => (hostport, ""),
        };
        let (host, port) = parse_hostport(hostport)?;
        let params = parse_uri_params(params)?;
        let headers = match headers {
            Some(q) if !q.is_empty() => q
                .split('&')
                .map(|h| h.split_once('=').map(|(n, v)| (n.to_owned(), v.to_owned())))
                .collect::<Option<Vec<_>>>()?,
            Some(_) => return None,
            None => Vec::new(),
        };
        Some(SipUri {
            secure,
            user,
            password,
            host,
            port,
            params,
            headers,
        })
    }

    /// A URI parameter by case-insensitive name: `Some(None)` for a flag like `;lr`.
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        super::lex::find_param(&self.params, name)
    }

    pub fn transport(&self) -> Option<&str> {
        self.param("transport").flatten()
    }
}

/// `host` as a URI or a Via writes it (RFC 3261 §25.1): an IPv6 address within brackets and in
/// its canonical form (people write it with or without them), anything else as it is.
pub fn uri_host(host: &str) -> String {
    match host.trim_matches(['[', ']']).parse::<std::net::Ipv6Addr>() {
        Ok(v6) => format!("[{v6}]"),
        Err(_) => host.to_owned(),
    }
}

/// Whether `s` is a host a URI may name (RFC 3261 §25.1 `host`): a domain name, an IPv4 address,
/// or an IPv6 address with or without its brackets. No port, user or parameters: configuration
/// and API input that should be a bare host are checked with it.
pub fn is_host(s: &str) -> bool {
    if let Some(v6) = s.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        return v6.parse::<std::net::Ipv6Addr>().is_ok();
    }
    if s.parse::<std::net::Ipv6Addr>().is_ok() {
        return true;
    }
    !s.is_empty()
        && s.len() <= 253
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// `user` written as a SIP URI's user part (RFC 3261 §25.1): unreserved characters and
/// `user-unreserved` ones stay, anything else (`#`, `%`, `@`, `:`, spaces…) is `%XX`.
pub fn escape_user(user: &str) -> String {
    let mut out = String::with_capacity(user.len());
    for b in user.bytes() {
        let keep = b.is_ascii_alphanumeric() || b"-_.!~*'()&=+$,;?/".contains(&b);
        if keep {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `host [":" port]`, host being a name, an IPv4 address or a bracketed IPv6 reference.
pub fn parse_hostport(s: &str) -> Option<(String, Option<u16>)> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let end = rest.find(']')?;
        let addr = &rest[..end];
        addr.parse::<std::net::Ipv6Addr>().ok()?;
        let after = &rest[end + 1..];
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p),
            None if after.is_empty() => None,
            None => return None,
        };
        (format!("[{addr}]"), port)
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => (h.to_owned(), Some(p)),
            None => (s.to_owned(), None),
        }
    };
    if host.is_empty() {
        return None;
    }
    if !host.starts_with('[')
        && !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    {
        return None;
    }
    let port = match port {
        Some(p) if !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) => {
            Some(p.parse::<u16>().ok()?)
        }
        Some(_) => return None,
        None => None,
    };
    Some((host, port))
}

impl TelUri {
    fn parse_rest(rest: &str) -> Option<TelUri> {
        let (number, params) = match rest.split_once(';') {
            Some((n, p)) => (n, p),
            None => (rest, ""),
        };
        if number.is_empty()
            || !number
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b"+-.()*#pPwW".contains(&b))
        {
            return None;
        }
        Some(TelUri {
            number: number.to_owned(),
            params: parse_uri_params(params)?,
        })
    }
}

fn write_params(f: &mut fmt::Formatter<'_>, params: &[(String, Option<String>)]) -> fmt::Result {
    for (n, v) in params {
        match v {
            Some(v) => write!(f, ";{n}={v}")?,
            None => write!(f, ";{n}")?,
        }
    }
    Ok(())
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Uri::Sip(u) => u.fmt(f),
            Uri::Tel(t) => {
                write!(f, "tel:{}", t.number)?;
                write_params(f, &t.params)
            }
            Uri::Other { scheme, opaque } => write!(f, "{scheme}:{opaque}"),
        }
    }
}

impl fmt::Display for SipUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.secure { "sips:" } else { "sip:" })?;
        if let Some(u) = &self.user {
            f.write_str(u)?;
            if let Some(p) = &self.password {
                write!(f, ":{p}")?;
            }
            f.write_str("@")?;
        }
        f.write_str(&self.host)?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        write_params(f, &self.params)?;
        for (i, (n, v)) in self.headers.iter().enumerate() {
            write!(f, "{}{n}={v}", if i == 0 { '?' } else { '&' })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ipv6_host_goes_into_uris_within_brackets() {
        assert_eq!(uri_host("2001:db8::5"), "[2001:db8::5]");
        assert_eq!(uri_host("[2001:db8::5]"), "[2001:db8::5]");
        assert_eq!(uri_host("[2001:0DB8:0::5]"), "[2001:db8::5]");
        assert_eq!(uri_host("198.51.100.5"), "198.51.100.5");
        assert_eq!(uri_host("sip.example.com"), "sip.example.com");
    }

    #[test]
    fn user_parts_are_escaped() {
        assert_eq!(escape_user("+4930*12#"), "+4930*12%23");
        assert_eq!(escape_user("a b@c:d%"), "a%20b%40c%3Ad%25");
        assert_eq!(escape_user("alice.o'neil"), "alice.o'neil");
    }

    fn sip(s: &str) -> SipUri {
        match Uri::parse(s) {
            Some(Uri::Sip(u)) => u,
            other => panic!("{s}: {other:?}"),
        }
    }

    #[test]
    fn parses_sip_uris() {
        let u = sip("sip:alice:pw@example.com:5070;transport=tcp;lr?subject=x&priority=y");
        assert_eq!(u.user.as_deref(), Some("alice"));
        assert_eq!(u.password.as_deref(), Some("pw"));
        assert_eq!(u.host, "example.com");
        assert_eq!(u.port, Some(5070));
        assert_eq!(u.transport(), Some("tcp"));
        assert_eq!(u.param("LR"), Some(None));
        assert_eq!(u.headers.len(), 2);
        assert_eq!(
            u.to_string(),
            "sip:alice:pw@example.com:5070;transport=tcp;lr?subject=x&priority=y"
        );
        let v6 = sip("sips:[2001:db8::10]:5061");
        assert!(v6.secure);
        assert_eq!(v6.host, "[2001:db8::10]");
        assert_eq!(v6.port, Some(5061));
        let semi = sip("sip:user;par=u%40example.net@example.com");
        assert_eq!(semi.user.as_deref(), Some("user;par=u%40example.net"));
        assert_eq!(semi.host, "example.com");
    }

    #[test]
    fn other_schemes_and_tel() {
        assert!(matches!(
            Uri::parse("nobodyKnowsThisScheme:totallyopaquecontent"),
            Some(Uri::Other { .. })
        ));
        let Some(Uri::Tel(t)) = Uri::parse("tel:+1-201-555-0123;phone-context=example.com") else {
            panic!()
        };
        assert_eq!(t.number, "+1-201-555-0123");
    }

    #[test]
    fn a_bare_host_is_a_name_or_an_address_without_port_or_scheme() {
        for good in [
            "sip.example.com",
            "198.51.100.5",
            "2001:db8::5",
            "[2001:db8::5]",
            "a-b.c",
        ] {
            assert!(is_host(good), "{good}");
        }
        for bad in [
            "",
            "198.51.100.5:5060",
            "[2001:db8::5]:5060",
            "sip:example.com",
            "example.com;transport=tcp",
            "user@example.com",
            "[example.com]",
            "exa mple.com",
        ] {
            assert!(!is_host(bad), "{bad}");
        }
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "sip:",
            "sip:@host",
            "sip:host:port",
            "sip:host:99999",
            "sip:ho st",
            "<sip:a@b>",
            "sip:[::1",
            "sip:[zz]",
            "nocolon",
            ":x",
            "sip:a@b?",
            "sip:a@b?x",
        ] {
            assert!(Uri::parse(bad).is_none(), "{bad}");
        }
    }
}
