//! The SDP data model (RFC 8866 §5): what a session description holds, line by line.
//!
//! Known lines get fields; everything else (`i=`, `u=`, `k=`, unknown letters, unknown
//! attributes) is kept verbatim so that an SDP we did not fully understand still round-trips.
//! Typed views of attributes (`rtpmap`, `crypto`…) are parsed on demand, in [`crate::attr`].

use std::net::IpAddr;

use crate::attr::Direction;

/// A whole session description: session-level lines followed by media sections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDescription {
    /// `o=`: who made this description and which version of it this is.
    pub origin: Origin,
    /// `s=`; `-` when the peer left it out (RFC 8866 requires one, many gateways omit it).
    pub session_name: String,
    /// `i=`, `u=`, `e=`, `p=` lines, in order; serialised between `s=` and `c=`.
    pub info: Vec<Line>,
    /// Session-level `c=`: the default for every media section without its own.
    pub connection: Option<Connection>,
    /// Session-level `b=` lines.
    pub bandwidths: Vec<Bandwidth>,
    /// `t=`, `r=` and `z=` lines, in order. Empty means `t=0 0` (SIP ignores timing).
    pub timing: Vec<Line>,
    /// `k=` and lines with letters RFC 8866 does not define; serialised before the attributes.
    pub other: Vec<Line>,
    /// Session-level `a=` lines.
    pub attributes: Vec<Attribute>,
    /// The `m=` sections, in order (their order is what RFC 3264 matches offers and answers by).
    pub media: Vec<MediaDescription>,
}

/// One `x=value` line kept as it came (trailing whitespace removed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// The type letter (`i`, `k`, …).
    pub kind: char,
    pub value: String,
}

/// `o=<username> <sess-id> <sess-version> <nettype> <addrtype> <unicast-address>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub username: String,
    pub session_id: u64,
    /// Goes up by one each time the sender's description changes (RFC 3264 §8).
    pub session_version: u64,
    pub net_type: String,
    pub addr_type: String,
    pub address: String,
}

/// `c=<nettype> <addrtype> <connection-address>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    pub net_type: String,
    /// `IP4` or `IP6` (other values are kept, but never yield an address).
    pub addr_type: String,
    /// The address as written: a literal, a host name, or multicast with `/ttl[/count]`.
    pub address: String,
}

impl Connection {
    /// A `c=IN IP4 …` or `c=IN IP6 …` line for this address.
    pub fn for_ip(ip: IpAddr) -> Self {
        Connection {
            net_type: "IN".to_owned(),
            addr_type: addr_type_of(ip).to_owned(),
            address: ip.to_string(),
        }
    }

    /// The address when it is an IP literal of the family `addr_type` names; host names (which
    /// this crate cannot resolve) and mismatched families give `None`.
    pub fn ip(&self) -> Option<IpAddr> {
        if !self.net_type.eq_ignore_ascii_case("IN") {
            return None;
        }
        let ip: IpAddr = self.literal().parse().ok()?;
        (addr_type_of(ip).eq_ignore_ascii_case(&self.addr_type)).then_some(ip)
    }

    /// An Internet address that is a host name rather than an IP literal (RFC 8866 §5.7 allows
    /// one; this crate cannot resolve it).
    pub fn is_host_name(&self) -> bool {
        self.net_type.eq_ignore_ascii_case("IN") && self.literal().parse::<IpAddr>().is_err()
    }

    /// The address without multicast's `/ttl` and `/count` suffixes (unicast has none).
    fn literal(&self) -> &str {
        self.address.split('/').next().unwrap_or_default()
    }

    /// Old-style hold (RFC 2543): `c=IN IP4 0.0.0.0` meant "do not send to me".
    pub fn is_hold_address(&self) -> bool {
        self.ip().is_some_and(|ip| ip.is_unspecified())
    }
}

/// The SDP name of an address family.
pub fn addr_type_of(ip: IpAddr) -> &'static str {
    match ip {
        IpAddr::V4(_) => "IP4",
        IpAddr::V6(_) => "IP6",
    }
}

/// `b=<bwtype>:<bandwidth>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bandwidth {
    /// `AS`, `CT`, `TIAS`, `RS`, `RR`, or an extension.
    pub kind: String,
    pub value: u64,
}

/// `a=<name>` or `a=<name>:<value>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    pub name: String,
    pub value: Option<String>,
}

impl Attribute {
    /// A property attribute such as `a=rtcp-mux`.
    pub fn flag(name: &str) -> Self {
        Attribute {
            name: name.to_owned(),
            value: None,
        }
    }

    /// A value attribute such as `a=ptime:20`.
    pub fn new(name: &str, value: impl Into<String>) -> Self {
        Attribute {
            name: name.to_owned(),
            value: Some(value.into()),
        }
    }
}

/// One `m=` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaDescription {
    /// `audio`, `video`, `application`, …
    pub kind: String,
    /// 0 means the stream is disabled (RFC 3264 §5.1).
    pub port: u16,
    /// The `/<number of ports>` suffix, when present.
    pub port_count: Option<u16>,
    /// `RTP/AVP`, `RTP/SAVP`, `RTP/SAVPF`, `UDP/TLS/RTP/SAVPF`, …
    pub proto: String,
    /// Payload type numbers for RTP profiles, as written.
    pub formats: Vec<String>,
    /// `i=` lines.
    pub info: Vec<Line>,
    /// Media-level `c=` lines (several only for multicast); the first one is used.
    pub connections: Vec<Connection>,
    pub bandwidths: Vec<Bandwidth>,
    /// `k=` and unknown letters.
    pub other: Vec<Line>,
    pub attributes: Vec<Attribute>,
}

impl MediaDescription {
    /// A section with no lines beyond `m=`.
    pub fn new(kind: &str, port: u16, proto: &str, formats: Vec<String>) -> Self {
        MediaDescription {
            kind: kind.to_owned(),
            port,
            port_count: None,
            proto: proto.to_owned(),
            formats,
            info: Vec::new(),
            connections: Vec::new(),
            bandwidths: Vec::new(),
            other: Vec::new(),
            attributes: Vec::new(),
        }
    }

    /// True for `m=audio`.
    pub fn is_audio(&self) -> bool {
        self.kind.eq_ignore_ascii_case("audio")
    }

    /// Port 0 disables a stream.
    pub fn is_disabled(&self) -> bool {
        self.port == 0
    }

    /// Values of every attribute called `name` (names compare case-insensitively).
    pub fn attribute_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        attribute_values(&self.attributes, name)
    }

    /// True when a property attribute (`a=rtcp-mux`) is present.
    pub fn has_attribute(&self, name: &str) -> bool {
        self.attributes
            .iter()
            .any(|a| a.name.eq_ignore_ascii_case(name))
    }

    /// The direction attribute of this section, if it has one.
    pub fn direction_attribute(&self) -> Option<Direction> {
        direction_of(&self.attributes)
    }
}

impl SessionDescription {
    /// The connection that applies to `media`: its own `c=` wins over the session-level one.
    pub fn connection_for<'a>(&'a self, media: &'a MediaDescription) -> Option<&'a Connection> {
        media.connections.first().or(self.connection.as_ref())
    }

    /// The address of the first enabled audio stream, when it is an IP literal other than the
    /// unspecified (hold) one: where the peer's media is, so that a dual-stack SIPx answers
    /// from an address of its family (an IPv4-mapped IPv6 address is the IPv4 one).
    pub fn audio_address(&self) -> Option<IpAddr> {
        let audio = self
            .media
            .iter()
            .find(|m| m.kind.eq_ignore_ascii_case("audio") && m.port != 0)?;
        self.connection_for(audio)?
            .ip()
            .map(|ip| ip.to_canonical())
            .filter(|ip| !ip.is_unspecified())
    }

    /// `a=ptime` and `a=maxptime` for `media`: its own, else the session-level ones. RFC 8866
    /// defines both for media only, but gateways that write them once at the top mean every
    /// stream.
    pub fn ptimes_for(&self, media: &MediaDescription) -> (Option<u32>, Option<u32>) {
        let session =
            |name| attribute_values(&self.attributes, name).find_map(crate::attr::parse_millis);
        (
            media.ptime().or_else(|| session("ptime")),
            media.maxptime().or_else(|| session("maxptime")),
        )
    }

    /// The direction that applies to `media`: media-level wins, then session-level, then the
    /// default `sendrecv` (RFC 8866 §6.7).
    pub fn direction_for(&self, media: &MediaDescription) -> Direction {
        media
            .direction_attribute()
            .or_else(|| direction_of(&self.attributes))
            .unwrap_or(Direction::SendRecv)
    }
}

pub(crate) fn attribute_values<'a>(
    attributes: &'a [Attribute],
    name: &'a str,
) -> impl Iterator<Item = &'a str> + 'a {
    attributes
        .iter()
        .filter(move |a| a.name.eq_ignore_ascii_case(name))
        .filter_map(|a| a.value.as_deref())
}

fn direction_of(attributes: &[Attribute]) -> Option<Direction> {
    // When a section carries several (a broken peer), the last one wins, as most stacks do.
    attributes
        .iter()
        .filter(|a| a.value.is_none())
        .filter_map(|a| Direction::from_name(&a.name))
        .next_back()
}
