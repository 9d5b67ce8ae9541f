//! Where a message's SDP is: the body itself (`application/sdp`), or one part of a
//! `multipart/mixed` body (RFC 2046 §5.1, RFC 5621). SIP-I and SIP-T gateways (RFC 3204) send
//! the SDP beside an ISUP part marked `handling=optional`; a part SIPx cannot read that is not
//! marked optional (required is the default, RFC 3261 §20.11) makes the body unusable: the
//! request then gets a 415 (RFC 5621).

use super::Headers;
use super::lex::{mime_type, trim_ws};
use super::parse::{find, header_text};

/// What a body offers as SDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SdpBody<'a> {
    /// No body, or a multipart one with no SDP whose other parts may all be ignored.
    Absent,
    /// The SDP bytes.
    Sdp(&'a [u8]),
    /// A body SIPx cannot use: another type, a malformed multipart, or one with a part it
    /// must process but cannot.
    Unusable,
}

/// Parts a multipart body may have; a SIP-I INVITE has two.
const MAX_PARTS: usize = 16;

/// The SDP a message with `headers` and `body` carries.
pub fn sdp_body<'a>(headers: &Headers, body: &'a [u8]) -> SdpBody<'a> {
    if body.is_empty() {
        return SdpBody::Absent;
    }
    let Some(content_type) = headers.get("Content-Type") else {
        return SdpBody::Unusable;
    };
    let (mime, params) = media_type(content_type);
    if mime == "application/sdp" {
        // An SDP body is the session description unless its disposition says it is
        // something else (RFC 3261 §20.11: `session` is SDP's default); such a body SIPx must
        // handle is one it cannot (415), one it may ignore is no offer.
        return match headers.get("Content-Disposition").map(disposition) {
            None | Some(Disposition { session: true, .. }) => SdpBody::Sdp(body),
            Some(Disposition { optional: true, .. }) => SdpBody::Absent,
            Some(_) => SdpBody::Unusable,
        };
    }
    if mime != "multipart/mixed" {
        return SdpBody::Unusable;
    }
    let Some(parts) = param(params, "boundary").and_then(|b| parts(body, &b)) else {
        return SdpBody::Unusable;
    };
    let mut sdp = None;
    for part in parts {
        let session = part.media_type == "application/sdp" && part.session;
        if sdp.is_none() && session && !part.body.is_empty() {
            sdp = Some(part.body);
        } else if !part.optional {
            return SdpBody::Unusable;
        }
    }
    sdp.map_or(SdpBody::Absent, SdpBody::Sdp)
}

/// One part of a multipart body.
#[derive(Debug, PartialEq, Eq)]
struct Part<'a> {
    /// Lower case, without parameters; `text/plain` when the part has no Content-Type.
    media_type: String,
    /// `Content-Disposition: …;handling=optional`: the part may be ignored.
    optional: bool,
    /// No `Content-Disposition`, or `session`: an SDP part is the session description.
    session: bool,
    body: &'a [u8],
}

/// The parts between the delimiters `--boundary`; `None` when there is no closing delimiter,
/// a part has no end, or there are too many.
fn parts<'a>(body: &'a [u8], boundary: &str) -> Option<Vec<Part<'a>>> {
    if boundary.is_empty() || boundary.len() > 70 {
        return None;
    }
    let delimiter = format!("--{boundary}");
    let between = format!("\r\n--{boundary}");
    // The first delimiter opens the body or a line after the preamble.
    let mut at = if body.starts_with(delimiter.as_bytes()) {
        delimiter.len()
    } else {
        find(body, between.as_bytes())? + between.len()
    };
    let mut parts = Vec::new();
    loop {
        let rest = body.get(at..)?;
        if rest.starts_with(b"--") {
            return Some(parts);
        }
        // Transport padding (spaces, tabs) up to the line's end.
        let line_end = find(rest, b"\r\n")?;
        if !rest[..line_end].iter().all(|&b| b == b' ' || b == b'\t') {
            return None;
        }
        let start = at + line_end + 2;
        let end = start + find(body.get(start..)?, between.as_bytes())?;
        parts.push(Part::parse(&body[start..end])?);
        if parts.len() > MAX_PARTS {
            return None;
        }
        at = end + between.len();
    }
}

impl<'a> Part<'a> {
    fn parse(part: &'a [u8]) -> Option<Part<'a>> {
        // A part with no headers starts with its blank line; one with headers and an empty
        // body may have no blank line left (the delimiter took the last CRLF).
        let (head, body) = if let Some(body) = part.strip_prefix(b"\r\n") {
            (&part[..0], body)
        } else if let Some(split) = find(part, b"\r\n\r\n") {
            (&part[..split], &part[split + 4..])
        } else {
            (part.strip_suffix(b"\r\n").unwrap_or(part), &part[..0])
        };
        let head = header_text(head);
        let mut media_type = "text/plain".to_owned();
        let mut optional = false;
        let mut session = true;
        let mut encoded = false;
        // Folded lines (RFC 2822 §2.2.3) joined to the line they continue.
        let mut lines: Vec<String> = Vec::new();
        for line in head.split("\r\n") {
            match (line.starts_with([' ', '\t']), lines.last_mut()) {
                (true, Some(last)) => last.push_str(line),
                _ => lines.push(line.to_owned()),
            }
        }
        for line in &lines {
            let (name, value) = line.split_once(':')?;
            match trim_ws(name).to_ascii_lowercase().as_str() {
                "content-type" | "c" => media_type = mime_type(value),
                "content-disposition" => Disposition { optional, session } = disposition(value),
                // Base64 or quoted-printable SDP: not read (nobody sends it).
                "content-transfer-encoding" => {
                    encoded = !matches!(
                        trim_ws(value).to_ascii_lowercase().as_str(),
                        "7bit" | "8bit" | "binary"
                    );
                }
                _ => {}
            }
        }
        Some(Part {
            media_type: if encoded {
                format!("{media_type}; encoded")
            } else {
                media_type
            },
            optional,
            session,
            body,
        })
    }
}

/// What a `Content-Disposition` says of its body.
struct Disposition {
    /// The disposition type is `session`.
    session: bool,
    /// `handling=optional`: the body may be ignored (required is the default).
    optional: bool,
}

fn disposition(value: &str) -> Disposition {
    let (kind, params) = value.split_once(';').unwrap_or((value, ""));
    Disposition {
        session: trim_ws(kind).eq_ignore_ascii_case("session"),
        optional: param(params, "handling").is_some_and(|h| h.eq_ignore_ascii_case("optional")),
    }
}

/// `type/subtype` in lower case, and the parameters after it.
fn media_type(value: &str) -> (String, &str) {
    let params = value.split_once(';').map_or("", |(_, params)| params);
    (mime_type(value), params)
}

/// A parameter's value in `;`-separated `name=value` pairs, unquoted.
fn param(params: &str, name: &str) -> Option<String> {
    params.split(';').find_map(|p| {
        let (n, v) = p.split_once('=')?;
        trim_ws(n).eq_ignore_ascii_case(name).then(|| {
            let v = trim_ws(v);
            v.strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(v)
                .to_owned()
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msg::Header;

    const SDP: &str = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n\
                       m=audio 4000 RTP/AVP 8\r\n";
    const ISUP: &[u8] = b"\x01\x00\x49\x00\x00\x03\x02\x00\x07\x04\x10\x00\x33\x63\x21\x43\x00";

    fn headers(content_type: &str) -> Headers {
        Headers(vec![Header {
            name: "Content-Type".into(),
            value: content_type.to_owned(),
        }])
    }

    fn sip_i(handling: &str, sdp_first: bool) -> Vec<u8> {
        let sdp_part =
            format!("--unique-boundary-1\r\nContent-Type: application/sdp\r\n\r\n{SDP}\r\n");
        let mut isup = format!(
            "--unique-boundary-1\r\nContent-Type: application/ISUP;version=itu-t92+\r\n\
             Content-Disposition: signal;handling={handling}\r\n\r\n"
        )
        .into_bytes();
        isup.extend_from_slice(ISUP);
        isup.extend_from_slice(b"\r\n");
        let mut body = b"preamble\r\n".to_vec();
        if sdp_first {
            body.extend_from_slice(sdp_part.as_bytes());
            body.extend_from_slice(&isup);
        } else {
            body.extend_from_slice(&isup);
            body.extend_from_slice(sdp_part.as_bytes());
        }
        body.extend_from_slice(b"--unique-boundary-1--\r\n");
        body
    }

    #[test]
    fn the_sdp_of_a_sip_i_body_is_found_either_side_of_the_isup() {
        for (content_type, sdp_first) in [
            ("multipart/mixed;boundary=unique-boundary-1", true),
            ("Multipart/Mixed; boundary=\"unique-boundary-1\"", false),
        ] {
            let body = sip_i("optional", sdp_first);
            assert_eq!(
                sdp_body(&headers(content_type), &body),
                SdpBody::Sdp(SDP.as_bytes()),
                "{content_type}"
            );
        }
    }

    #[test]
    fn a_part_that_must_be_processed_makes_the_body_unusable() {
        let h = headers("multipart/mixed;boundary=unique-boundary-1");
        assert_eq!(sdp_body(&h, &sip_i("required", true)), SdpBody::Unusable);
        // No Content-Disposition: handling is required by default (RFC 3261 §20.11).
        let body = sip_i("optional", true);
        let text = String::from_utf8_lossy(&body)
            .replace("Content-Disposition: signal;handling=optional\r\n", "");
        assert_eq!(sdp_body(&h, &latin1(&text)), SdpBody::Unusable);
    }

    fn latin1(text: &str) -> Vec<u8> {
        text.chars()
            .map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?'))
            .collect()
    }

    #[test]
    fn folded_headers_empty_parts_and_encoded_sdp() {
        let h = headers("multipart/mixed;boundary=b");
        // A folded Content-Disposition; an optional part with headers and no body.
        let body = format!(
            "--b\r\nContent-Type: application/sdp\r\n\r\n{SDP}\r\n--b\r\nContent-Type: text/x\r\n\
             Content-Disposition: signal;\r\n handling=optional\r\n--b--\r\n"
        );
        assert_eq!(sdp_body(&h, body.as_bytes()), SdpBody::Sdp(SDP.as_bytes()));
        // Base64 SDP is not read as SDP: the part is one SIPx must process and cannot.
        let body = "--b\r\nContent-Type: application/sdp\r\nContent-Transfer-Encoding: base64\r\n\r\ndj0w\r\n--b--";
        assert_eq!(sdp_body(&h, body.as_bytes()), SdpBody::Unusable);
    }

    #[test]
    fn plain_sdp_other_types_and_broken_multiparts() {
        assert_eq!(
            sdp_body(&headers("application/sdp; charset=utf-8"), SDP.as_bytes()),
            SdpBody::Sdp(SDP.as_bytes())
        );
        // The disposition: session (SDP's default) or absent is the session description;
        // another that must be handled cannot be, one that may be ignored is no offer.
        for (disposition, want) in [
            ("session", SdpBody::Sdp(SDP.as_bytes())),
            ("Session;handling=required", SdpBody::Sdp(SDP.as_bytes())),
            ("render", SdpBody::Unusable),
            ("icon;handling=required", SdpBody::Unusable),
            ("alert; handling=optional", SdpBody::Absent),
        ] {
            let mut with = headers("application/sdp");
            with.0.push(Header {
                name: "Content-Disposition".into(),
                value: disposition.to_owned(),
            });
            assert_eq!(sdp_body(&with, SDP.as_bytes()), want, "{disposition}");
        }
        // SWS around the slash (RFC 3261 §25.1).
        assert_eq!(
            sdp_body(&headers("Application / SDP"), SDP.as_bytes()),
            SdpBody::Sdp(SDP.as_bytes())
        );
        assert_eq!(
            sdp_body(&headers("text/plain"), b"hello"),
            SdpBody::Unusable
        );
        assert_eq!(sdp_body(&headers("application/sdp"), b""), SdpBody::Absent);
        assert_eq!(
            sdp_body(&Headers(Vec::new()), SDP.as_bytes()),
            SdpBody::Unusable
        );
        let body = sip_i("optional", true);
        for broken in [
            "multipart/mixed",
            "multipart/mixed;boundary=",
            "multipart/mixed;boundary=other",
        ] {
            assert_eq!(
                sdp_body(&headers(broken), &body),
                SdpBody::Unusable,
                "{broken}"
            );
        }
        // No closing delimiter.
        let cut = &body[..body.len() - 25];
        let h = headers("multipart/mixed;boundary=unique-boundary-1");
        assert_eq!(sdp_body(&h, cut), SdpBody::Unusable);
        // Only optional parts, no SDP: nothing offered.
        let isup_only = b"--b\r\nContent-Type: application/isup\r\nContent-Disposition: signal;handling=optional\r\n\r\nx\r\n--b--";
        assert_eq!(
            sdp_body(&headers("multipart/mixed;boundary=b"), isup_only),
            SdpBody::Absent
        );
    }
}
