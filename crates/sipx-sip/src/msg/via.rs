//! Via header values (RFC 3261 §20.42): `SIP/2.0/UDP host:port;branch=…;rport`.

use std::fmt;

use super::lex::{is_token, parse_params, trim_ws};
use super::uri::parse_hostport;

/// Branches that start with this were made by an RFC 3261 element and identify a transaction.
pub const MAGIC_COOKIE: &str = "z9hG4bK";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    /// Upper-cased: UDP, TCP, TLS, WS, WSS, SCTP, or an extension.
    pub transport: String,
    pub host: String,
    pub port: Option<u16>,
    pub params: Vec<(String, Option<String>)>,
}

impl Via {
    pub fn parse(s: &str) -> Option<Via> {
        // LWS is allowed around each `/` (RFC 4475 wsinv).
        let mut rest = trim_ws(s);
        let mut parts = Vec::with_capacity(3);
        for i in 0..3 {
            let end = if i < 2 {
                rest.find('/')?
            } else {
                rest.find([' ', '\t'])?
            };
            parts.push(trim_ws(&rest[..end]));
            rest = trim_ws(&rest[end + 1..]);
        }
        if !parts[0].eq_ignore_ascii_case("SIP") || parts[1] != "2.0" || !is_token(parts[2]) {
            return None;
        }
        let (sent_by, params) = match rest.find(';') {
            Some(i) => (trim_ws(&rest[..i]), &rest[i..]),
            None => (rest, ""),
        };
        let (host, port) = parse_hostport(&sent_by.replace([' ', '\t'], ""))?;
        Some(Via {
            transport: parts[2].to_ascii_uppercase(),
            host,
            port,
            params: parse_params(params)?,
        })
    }

    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        super::lex::find_param(&self.params, name)
    }

    pub fn branch(&self) -> Option<&str> {
        self.param("branch").flatten()
    }

    pub fn set_param(&mut self, name: &str, value: Option<String>) {
        super::lex::set_param(&mut self.params, name, value);
    }

    /// The `host:port` the request says it was sent from.
    pub fn sent_by(&self) -> String {
        match self.port {
            Some(p) => format!("{}:{p}", self.host),
            None => self.host.clone(),
        }
    }
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SIP/2.0/{} {}", self.transport, self.sent_by())?;
        for (n, v) in &self.params {
            match v {
                Some(v) => write!(f, ";{n}={v}")?,
                None => write!(f, ";{n}")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tortuous_vias() {
        let v = Via::parse("SIP  /   2.0 /UDP    192.0.2.2;rport;branch=390skdjuw").unwrap();
        assert_eq!(v.transport, "UDP");
        assert_eq!(v.host, "192.0.2.2");
        assert_eq!(v.branch(), Some("390skdjuw"));
        assert_eq!(v.param("rport"), Some(None));
        let v = Via::parse("SIP/2.0/TCP [2001:db8::9:1]:5070;branch=z9hG4bKas3").unwrap();
        assert_eq!(v.port, Some(5070));
        assert_eq!(
            v.to_string(),
            "SIP/2.0/TCP [2001:db8::9:1]:5070;branch=z9hG4bKas3"
        );
    }

    #[test]
    fn refuses_broken_vias() {
        for bad in [
            "SIP/2.0/UDP 192.0.2.15;;",
            "SIP/2.0/UDP",
            "SIP/3.0/UDP h",
            "SIP/2.0/UDP h:x",
            "",
        ] {
            assert!(Via::parse(bad).is_none(), "{bad}");
        }
    }
}
