//! SIP messages (RFC 3261 §7, §20, §25): parse, inspect, build, serialise.
//!
//! A message keeps every header line in order, with unknown headers and methods preserved.
//! Known headers are stored under their canonical name (compact forms expanded), so lookups are
//! plain string compares; typed views (`Via`, `NameAddr`, `CSeq`) are parsed on demand.

mod addr;
mod body;
mod build;
mod framer;
mod headers;
pub mod lex;
mod parse;
mod serialize;
mod uri;
mod uri_eq;
mod via;

pub use addr::NameAddr;
pub use body::{SdpBody, sdp_body};
pub use build::response_from_headers;
pub use framer::{Framed, Framer, FramingError};
pub use headers::{Header, Headers, canonical_name, is_list_header};
pub use parse::{ParseError, parse_datagram};
pub use uri::{SipUri, TelUri, Uri, escape_user, is_host, parse_hostport, uri_host};
pub use via::{MAGIC_COOKIE, Via};

use std::fmt;

/// Largest message SIPx accepts on any transport (UDP datagrams are smaller anyway).
pub const MAX_MESSAGE_SIZE: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Method {
    Invite,
    Ack,
    Bye,
    Cancel,
    Options,
    Register,
    Info,
    Prack,
    Update,
    Subscribe,
    Notify,
    Refer,
    Message,
    Publish,
    /// Any other token: preserved, answered 405/501 with `Allow` by the UAS core.
    Extension(String),
}

impl Method {
    /// Methods are case-sensitive (RFC 3261 §7.1): `invite` is an extension method.
    pub fn from_token(s: &str) -> Method {
        match s {
            "INVITE" => Method::Invite,
            "ACK" => Method::Ack,
            "BYE" => Method::Bye,
            "CANCEL" => Method::Cancel,
            "OPTIONS" => Method::Options,
            "REGISTER" => Method::Register,
            "INFO" => Method::Info,
            "PRACK" => Method::Prack,
            "UPDATE" => Method::Update,
            "SUBSCRIBE" => Method::Subscribe,
            "NOTIFY" => Method::Notify,
            "REFER" => Method::Refer,
            "MESSAGE" => Method::Message,
            "PUBLISH" => Method::Publish,
            other => Method::Extension(other.to_owned()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Method::Extension(s) => s,
            known => known.known_name().unwrap_or(""),
        }
    }

    /// The name of a method RFCs define; `None` for an extension method.
    pub fn known_name(&self) -> Option<&'static str> {
        Some(match self {
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Bye => "BYE",
            Method::Cancel => "CANCEL",
            Method::Options => "OPTIONS",
            Method::Register => "REGISTER",
            Method::Info => "INFO",
            Method::Prack => "PRACK",
            Method::Update => "UPDATE",
            Method::Subscribe => "SUBSCRIBE",
            Method::Notify => "NOTIFY",
            Method::Refer => "REFER",
            Method::Message => "MESSAGE",
            Method::Publish => "PUBLISH",
            Method::Extension(_) => return None,
        })
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: Method,
    pub uri: Uri,
    pub headers: Headers,
    pub body: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub reason: String,
    pub headers: Headers,
    pub body: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SipMessage {
    Request(Request),
    Response(Response),
}

/// The CSeq header: sequence number and method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CSeq {
    pub seq: u32,
    pub method: Method,
}

impl CSeq {
    pub fn parse(s: &str) -> Option<CSeq> {
        let s = lex::trim_ws(s);
        let i = s.find([' ', '\t'])?;
        // Less than 2**31 (RFC 3261 §8.1.1.5): a larger number is no CSeq.
        let seq = lex::parse_u32(&s[..i]).filter(|&n| n < 1 << 31)?;
        let method = lex::trim_ws(&s[i..]);
        if !lex::is_token(method) {
            return None;
        }
        Some(CSeq {
            seq,
            method: Method::from_token(method),
        })
    }
}

impl fmt::Display for CSeq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.seq, self.method)
    }
}

/// Accessors shared by requests and responses.
pub trait HasHeaders {
    fn headers(&self) -> &Headers;

    fn call_id(&self) -> Option<&str> {
        self.headers().get("Call-ID")
    }
    fn cseq(&self) -> Option<CSeq> {
        self.headers().get("CSeq").and_then(CSeq::parse)
    }
    fn from(&self) -> Option<NameAddr> {
        self.headers().get("From").and_then(NameAddr::parse)
    }
    fn to(&self) -> Option<NameAddr> {
        self.headers().get("To").and_then(NameAddr::parse)
    }
    /// Every Via value, top first.
    fn vias(&self) -> Vec<Via> {
        self.headers()
            .list("Via")
            .into_iter()
            .filter_map(Via::parse)
            .collect()
    }
    fn top_via(&self) -> Option<Via> {
        self.headers().first_of_list("Via").and_then(Via::parse)
    }
    /// The `tag` of From, without parsing the whole address.
    fn tag_of_from(&self) -> Option<&str> {
        self.headers().get("From").and_then(addr::tag_param)
    }
    /// The `tag` of To, without parsing the whole address.
    fn tag_of_to(&self) -> Option<&str> {
        self.headers().get("To").and_then(addr::tag_param)
    }
}

impl HasHeaders for Request {
    fn headers(&self) -> &Headers {
        &self.headers
    }
}

impl HasHeaders for Response {
    fn headers(&self) -> &Headers {
        &self.headers
    }
}

impl Request {
    /// The Max-Forwards value, when present and sane.
    pub fn max_forwards(&self) -> Option<u32> {
        self.headers.get("Max-Forwards").and_then(lex::parse_u32)
    }
}

/// Default reason phrases (RFC 3261 §21 and later RFCs).
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Trying",
        180 => "Ringing",
        181 => "Call Is Being Forwarded",
        182 => "Queued",
        183 => "Session Progress",
        200 => "OK",
        202 => "Accepted",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        413 => "Request Entity Too Large",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        420 => "Bad Extension",
        // RFC 4028 §6.
        422 => "Session Interval Too Small",
        423 => "Interval Too Brief",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        484 => "Address Incomplete",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        491 => "Request Pending",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        504 => "Server Time-out",
        505 => "Version Not Supported",
        513 => "Message Too Large",
        600 => "Busy Everywhere",
        603 => "Decline",
        604 => "Does Not Exist Anywhere",
        606 => "Not Acceptable",
        _ => "Unknown",
    }
}
