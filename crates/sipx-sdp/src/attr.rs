//! Typed views of the media attributes offer/answer needs: `rtpmap`, `fmtp`, `ptime`,
//! `maxptime`, the direction attributes, `rtcp-mux` and `rtcp` (RFC 3605). Each parser returns
//! `None` on a malformed value, so one bad attribute costs only itself.

use std::fmt;
use std::net::IpAddr;

use crate::model::{Connection, MediaDescription};

/// Which way media flows, from the point of view of whoever wrote the description.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    /// Parses `sendrecv`, `sendonly`, `recvonly`, `inactive` (case-insensitively).
    pub fn from_name(name: &str) -> Option<Direction> {
        const NAMES: [(&str, Direction); 4] = [
            ("sendrecv", Direction::SendRecv),
            ("sendonly", Direction::SendOnly),
            ("recvonly", Direction::RecvOnly),
            ("inactive", Direction::Inactive),
        ];
        NAMES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|&(_, d)| d)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    fn from_flags(sends: bool, receives: bool) -> Direction {
        match (sends, receives) {
            (true, true) => Direction::SendRecv,
            (true, false) => Direction::SendOnly,
            (false, true) => Direction::RecvOnly,
            (false, false) => Direction::Inactive,
        }
    }

    /// True when the writer may send media.
    pub fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }

    /// True when the writer expects to receive media.
    pub fn receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }

    /// The same flow seen from the other end: `sendonly` becomes `recvonly`.
    pub fn reversed(self) -> Direction {
        Direction::from_flags(self.receives(), self.sends())
    }

    /// Both restrictions at once: sends only if both allow sending, and so on.
    pub fn intersect(self, other: Direction) -> Direction {
        Direction::from_flags(
            self.sends() && other.sends(),
            self.receives() && other.receives(),
        )
    }

    /// This direction with receiving switched off (the writer said "do not send to me").
    pub fn without_receive(self) -> Direction {
        Direction::from_flags(self.sends(), false)
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `a=rtpmap:<pt> <encoding name>/<clock rate>[/<channels>]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rtpmap {
    pub payload_type: u8,
    /// As written; compare with `eq_ignore_ascii_case` (RFC 4855 §3: names are case-insensitive).
    pub encoding: String,
    pub clock_rate: u32,
    /// Audio channels; `None` means 1.
    pub channels: Option<u16>,
}

impl Rtpmap {
    pub fn parse(value: &str) -> Option<Rtpmap> {
        let (pt, rest) = value.trim().split_once([' ', '\t'])?;
        let mut parts = rest.trim().split('/');
        let encoding = parts.next().filter(|e| !e.is_empty())?.to_owned();
        let clock_rate = parts.next()?.trim().parse().ok()?;
        let channels = match parts.next() {
            Some(c) => Some(c.trim().parse().ok()?),
            None => None,
        };
        if parts.next().is_some() {
            return None;
        }
        Some(Rtpmap {
            payload_type: parse_pt(pt)?,
            encoding,
            clock_rate,
            channels,
        })
    }

    /// The attribute value, e.g. `111 opus/48000/2`.
    pub fn to_value(&self) -> String {
        match self.channels {
            Some(c) => format!(
                "{} {}/{}/{c}",
                self.payload_type, self.encoding, self.clock_rate
            ),
            None => format!(
                "{} {}/{}",
                self.payload_type, self.encoding, self.clock_rate
            ),
        }
    }
}

/// A payload type number (0–127).
pub fn parse_pt(s: &str) -> Option<u8> {
    s.trim().parse::<u8>().ok().filter(|&pt| pt < 128)
}

/// `a=fmtp:<pt> <format-specific parameters>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fmtp {
    pub payload_type: u8,
    pub params: String,
}

impl Fmtp {
    pub fn parse(value: &str) -> Option<Fmtp> {
        let value = value.trim();
        let (pt, params) = value.split_once([' ', '\t']).unwrap_or((value, ""));
        Some(Fmtp {
            payload_type: parse_pt(pt)?,
            params: params.trim().to_owned(),
        })
    }

    /// The value of `name` in `key=value;key=value` parameters (keys case-insensitive).
    pub fn param<'a>(params: &'a str, name: &str) -> Option<&'a str> {
        params.split(';').find_map(|p| {
            let (k, v) = p.split_once('=')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// `a=rtcp:<port> [<nettype> <addrtype> <address>]` (RFC 3605).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtcpAttr {
    pub port: u16,
    pub connection: Option<Connection>,
}

impl RtcpAttr {
    pub fn parse(value: &str) -> Option<RtcpAttr> {
        let mut parts = value.split_ascii_whitespace();
        let port = parts.next()?.parse().ok()?;
        let connection = match (parts.next(), parts.next(), parts.next()) {
            (Some(net), Some(addr_type), Some(address)) => Some(Connection {
                net_type: net.to_owned(),
                addr_type: addr_type.to_owned(),
                address: address.to_owned(),
            }),
            (None, _, _) => None,
            _ => return None,
        };
        Some(RtcpAttr { port, connection })
    }

    /// The RTCP address, if given as an IP literal.
    pub fn ip(&self) -> Option<IpAddr> {
        self.connection.as_ref().and_then(Connection::ip)
    }
}

impl MediaDescription {
    /// Every well-formed `rtpmap` of this section.
    pub fn rtpmaps(&self) -> impl Iterator<Item = Rtpmap> + '_ {
        self.attribute_values("rtpmap").filter_map(Rtpmap::parse)
    }

    /// The `rtpmap` of one payload type.
    pub fn rtpmap(&self, pt: u8) -> Option<Rtpmap> {
        self.rtpmaps().find(|r| r.payload_type == pt)
    }

    /// The `fmtp` parameters of one payload type.
    pub fn fmtp(&self, pt: u8) -> Option<String> {
        self.attribute_values("fmtp")
            .filter_map(Fmtp::parse)
            .find(|f| f.payload_type == pt)
            .map(|f| f.params)
    }

    /// `a=ptime`, in milliseconds (fractions such as `20.0` are accepted and truncated).
    pub fn ptime(&self) -> Option<u32> {
        self.attribute_values("ptime").find_map(parse_millis)
    }

    /// `a=maxptime`, in milliseconds.
    pub fn maxptime(&self) -> Option<u32> {
        self.attribute_values("maxptime").find_map(parse_millis)
    }

    /// True when the section offers or accepts RTP/RTCP multiplexing (RFC 5761).
    pub fn rtcp_mux(&self) -> bool {
        self.has_attribute("rtcp-mux")
    }

    /// The RFC 3605 `a=rtcp` attribute, if present and well-formed.
    pub fn rtcp(&self) -> Option<RtcpAttr> {
        self.attribute_values("rtcp").find_map(RtcpAttr::parse)
    }

    /// The payload types of the `m=` line that are numbers (RTP profiles).
    pub fn payload_types(&self) -> impl Iterator<Item = u8> + '_ {
        self.formats.iter().filter_map(|f| parse_pt(f))
    }
}

pub(crate) fn parse_millis(value: &str) -> Option<u32> {
    let value = value.trim();
    let whole = value.split_once('.').map_or(value, |(w, _)| w);
    whole.parse().ok().filter(|&ms| ms > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtpmap_values() {
        type Want = Option<(u8, &'static str, u32, Option<u16>)>;
        let cases: &[(&str, Want)] = &[
            ("0 PCMU/8000", Some((0, "PCMU", 8000, None))),
            ("111 opus/48000/2", Some((111, "opus", 48000, Some(2)))),
            (
                "101  telephone-event/8000",
                Some((101, "telephone-event", 8000, None)),
            ),
            ("9 G722/8000/1", Some((9, "G722", 8000, Some(1)))),
            ("128 PCMU/8000", None),
            ("x PCMU/8000", None),
            ("96 opus", None),
            ("96 /8000", None),
            ("96 opus/48000/2/9", None),
            ("96", None),
        ];
        for (value, want) in cases {
            let got = Rtpmap::parse(value)
                .map(|r| (r.payload_type, r.encoding.clone(), r.clock_rate, r.channels));
            let want = want.map(|(p, e, c, ch)| (p, e.to_owned(), c, ch));
            assert_eq!(got, want, "{value}");
        }
    }

    #[test]
    fn fmtp_params() {
        let f = Fmtp::parse("111 minptime=10; useinbandfec=1").unwrap();
        assert_eq!(f.payload_type, 111);
        assert_eq!(Fmtp::param(&f.params, "UseInbandFEC"), Some("1"));
        assert_eq!(Fmtp::param(&f.params, "stereo"), None);
        assert_eq!(Fmtp::parse("101 0-16").unwrap().params, "0-16");
        assert_eq!(Fmtp::parse("18").unwrap().params, "");
        assert!(Fmtp::parse("abc annexb=no").is_none());
    }

    #[test]
    fn rtcp_attribute() {
        let r = RtcpAttr::parse("53020 IN IP4 126.16.64.4").unwrap();
        assert_eq!(r.port, 53020);
        assert_eq!(r.ip(), Some("126.16.64.4".parse().unwrap()));
        assert_eq!(RtcpAttr::parse("53020").unwrap().connection, None);
        assert!(RtcpAttr::parse("53020 IN IP4").is_none());
        assert!(RtcpAttr::parse("70000").is_none());
    }

    #[test]
    fn direction_algebra() {
        use Direction::*;
        let cases = [
            (SendRecv, SendRecv, SendOnly),
            (SendOnly, RecvOnly, SendOnly),
            (RecvOnly, SendOnly, Inactive),
            (Inactive, Inactive, Inactive),
        ];
        for (d, reversed, without_receive) in cases {
            assert_eq!(d.reversed(), reversed, "{d}");
            assert_eq!(d.without_receive(), without_receive, "{d}");
            assert_eq!(Direction::from_name(&d.as_str().to_uppercase()), Some(d));
        }
        assert_eq!(SendOnly.intersect(RecvOnly), Inactive);
        assert_eq!(SendRecv.intersect(RecvOnly), RecvOnly);
    }
}
