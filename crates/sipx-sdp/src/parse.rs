//! Parsing an SDP from bytes. Tolerant of what real equipment sends (bare LF, trailing
//! whitespace, no `s=`/`t=`, unknown lines), strict where guessing would be dangerous (sizes,
//! `o=`, `m=`, `c=` syntax). Never panics; every refusal names the line and the reason.

use std::str::FromStr;

use crate::error::SdpError;
use crate::limits::{MAX_FORMATS, MAX_LINES, MAX_MEDIA, MAX_SDP_SIZE};
use crate::model::{
    Attribute, Bandwidth, Connection, Line, MediaDescription, Origin, SessionDescription,
};

impl SessionDescription {
    /// Parses a session description (the body of a SIP message).
    pub fn parse(bytes: &[u8]) -> Result<SessionDescription, SdpError> {
        if bytes.len() > MAX_SDP_SIZE {
            return Err(SdpError::TooLarge("more bytes than MAX_SDP_SIZE"));
        }
        let mut builder = Builder::default();
        let mut count = 0;
        for (index, raw) in bytes.split(|&b| b == b'\n').enumerate() {
            let number = index + 1;
            let malformed = |reason: &str| SdpError::Malformed {
                line: number,
                reason: reason.to_owned(),
            };
            let lossy;
            let text = match std::str::from_utf8(raw) {
                Ok(text) => text,
                // Free text (`s=`, `i=`, `u=`, `e=`, `p=`, the `o=` user name) may be in
                // another charset (RFC 8866 §6.10 `a=charset`, Latin-1 in practice). SIPx reads
                // none of it (of `o=`, only its numbers, which are ASCII or refused as usual),
                // so the line is taken as it decodes rather than the call refused.
                Err(_) if matches!(raw.first(), Some(b's' | b'i' | b'u' | b'e' | b'p' | b'o')) => {
                    lossy = String::from_utf8_lossy(raw);
                    &lossy
                }
                Err(_) => return Err(malformed("not UTF-8")),
            };
            // Bare LF endings and trailing blanks are common; both are harmless.
            let text = text.trim_matches([' ', '\t', '\r']);
            if text.is_empty() {
                continue;
            }
            count += 1;
            if count > MAX_LINES {
                return Err(SdpError::TooLarge("more lines than MAX_LINES"));
            }
            if text.bytes().any(|b| b == 0 || b == b'\r') {
                return Err(malformed("control character inside the line"));
            }
            let (kind, value) =
                split_type(text).ok_or_else(|| malformed("expected <letter>=<value>"))?;
            builder.line(kind, value).map_err(|e| match e {
                LineError::Malformed(reason) => malformed(reason),
                LineError::TooLarge(what) => SdpError::TooLarge(what),
            })?;
        }
        builder.finish()
    }
}

impl FromStr for SessionDescription {
    type Err = SdpError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SessionDescription::parse(s.as_bytes())
    }
}

fn split_type(line: &str) -> Option<(char, &str)> {
    let mut chars = line.chars();
    let kind = chars.next().filter(char::is_ascii_alphabetic)?;
    let value = chars.as_str().strip_prefix('=')?;
    Some((kind, value))
}

enum LineError {
    Malformed(&'static str),
    TooLarge(&'static str),
}

impl From<&'static str> for LineError {
    fn from(reason: &'static str) -> Self {
        LineError::Malformed(reason)
    }
}

#[derive(Default)]
struct Builder {
    origin: Option<Origin>,
    session: Option<SessionDescription>,
    media: Vec<MediaDescription>,
}

impl Builder {
    fn line(&mut self, kind: char, value: &str) -> Result<(), LineError> {
        if kind == 'm' {
            if self.media.len() >= MAX_MEDIA {
                return Err(LineError::TooLarge("more m= sections than MAX_MEDIA"));
            }
            self.media.push(parse_media(value)?);
            return Ok(());
        }
        if let Some(media) = self.media.last_mut() {
            return media_line(media, kind, value);
        }
        self.session_line(kind, value)
    }

    fn session_line(&mut self, kind: char, value: &str) -> Result<(), LineError> {
        if kind == 'o' {
            if self.origin.is_some() {
                return Err("second o= line".into());
            }
            self.origin = Some(parse_origin(value)?);
            return Ok(());
        }
        let session = self.session.get_or_insert_with(empty_session);
        match kind {
            'v' if value.trim() != "0" => {
                return Err("unsupported SDP version (only v=0 exists)".into());
            }
            'v' => {}
            's' => session.session_name = value.to_owned(),
            'i' | 'u' | 'e' | 'p' => session.info.push(raw(kind, value)),
            // A second session-level c= is meaningless; the first one is kept.
            'c' if session.connection.is_some() => {}
            'c' => session.connection = Some(parse_connection(value)?),
            'b' => session.bandwidths.push(parse_bandwidth(value)?),
            't' | 'r' | 'z' => session.timing.push(raw(kind, value)),
            'a' => session.attributes.extend(parse_attribute(value)),
            _ => session.other.push(raw(kind, value)),
        }
        Ok(())
    }

    fn finish(self) -> Result<SessionDescription, SdpError> {
        let origin = self.origin.ok_or_else(|| SdpError::Malformed {
            line: 0,
            reason: "no o= line".to_owned(),
        })?;
        let mut session = self.session.unwrap_or_else(empty_session);
        session.origin = origin;
        session.media = self.media;
        Ok(session)
    }
}

fn empty_session() -> SessionDescription {
    SessionDescription {
        origin: Origin {
            username: "-".to_owned(),
            session_id: 0,
            session_version: 0,
            net_type: "IN".to_owned(),
            addr_type: "IP4".to_owned(),
            address: "0.0.0.0".to_owned(),
        },
        session_name: "-".to_owned(),
        info: Vec::new(),
        connection: None,
        bandwidths: Vec::new(),
        timing: Vec::new(),
        other: Vec::new(),
        attributes: Vec::new(),
        media: Vec::new(),
    }
}

fn media_line(media: &mut MediaDescription, kind: char, value: &str) -> Result<(), LineError> {
    match kind {
        'i' => media.info.push(raw(kind, value)),
        'c' => media.connections.push(parse_connection(value)?),
        'b' => media.bandwidths.push(parse_bandwidth(value)?),
        'a' => media.attributes.extend(parse_attribute(value)),
        'v' | 'o' | 's' | 't' => return Err("session-level line inside a media section".into()),
        _ => media.other.push(raw(kind, value)),
    }
    Ok(())
}

fn raw(kind: char, value: &str) -> Line {
    Line {
        kind,
        value: value.to_owned(),
    }
}

fn parse_origin(value: &str) -> Result<Origin, LineError> {
    let fields: Vec<&str> = value.split_ascii_whitespace().collect();
    let [username, id, version, net_type, addr_type, address] = fields[..] else {
        return Err("o= needs six fields".into());
    };
    Ok(Origin {
        username: username.to_owned(),
        session_id: origin_number(id).ok_or("o= session id is not a number")?,
        session_version: origin_number(version).ok_or("o= session version is not a number")?,
        net_type: net_type.to_owned(),
        addr_type: addr_type.to_owned(),
        address: address.to_owned(),
    })
}

/// A `sess-id` or `sess-version`: digits (RFC 8866 §5.2). Some senders use numbers wider than 64
/// bits (a whole NTP timestamp and more); nothing is compared on a peer's values, so those are
/// kept as the largest `u64` rather than refused.
fn origin_number(field: &str) -> Option<u64> {
    if field.is_empty() || !field.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(field.parse().unwrap_or(u64::MAX))
}

fn parse_connection(value: &str) -> Result<Connection, LineError> {
    let fields: Vec<&str> = value.split_ascii_whitespace().collect();
    let [net_type, addr_type, address] = fields[..] else {
        return Err("c= needs three fields".into());
    };
    Ok(Connection {
        net_type: net_type.to_owned(),
        addr_type: addr_type.to_owned(),
        address: address.to_owned(),
    })
}

fn parse_bandwidth(value: &str) -> Result<Bandwidth, LineError> {
    let (kind, amount) = value.split_once(':').ok_or("b= needs <type>:<value>")?;
    let kind = kind.trim();
    if kind.is_empty() || kind.contains(char::is_whitespace) {
        return Err("b= type is empty or has blanks".into());
    }
    Ok(Bandwidth {
        kind: kind.to_owned(),
        value: amount
            .trim()
            .parse()
            .map_err(|_| "b= value is not a number")?,
    })
}

/// An `a=` line's name and value. A line without a name (`a=` alone, `a=:x`) says nothing
/// and is dropped, as unknown attributes are (RFC 8866 §5.13): peers that send an empty
/// attribute mean no harm, and refusing the whole offer for it would cost the call.
fn parse_attribute(value: &str) -> Option<Attribute> {
    let (name, value) = match value.split_once(':') {
        Some((name, value)) => (name, Some(value.to_owned())),
        None => (value, None),
    };
    let name = name.trim();
    (!name.is_empty()).then(|| Attribute {
        name: name.to_owned(),
        value,
    })
}

fn parse_media(value: &str) -> Result<MediaDescription, LineError> {
    let mut fields = value.split_ascii_whitespace();
    let (Some(kind), Some(port), Some(proto)) = (fields.next(), fields.next(), fields.next())
    else {
        return Err("m= needs <media> <port> <proto> <formats>".into());
    };
    let (port, port_count) = match port.split_once('/') {
        Some((port, count)) => (
            port,
            Some(count.parse().map_err(|_| "m= port count is not a number")?),
        ),
        None => (port, None),
    };
    let formats: Vec<String> = fields.map(str::to_owned).collect();
    if formats.len() > MAX_FORMATS {
        return Err(LineError::TooLarge(
            "more formats on one m= line than MAX_FORMATS",
        ));
    }
    let mut media = MediaDescription::new(
        kind,
        port.parse()
            .map_err(|_| "m= port is not a number 0-65535")?,
        proto,
        formats,
    );
    media.port_count = port_count;
    Ok(media)
}
