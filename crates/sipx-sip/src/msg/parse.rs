//! Parsing one SIP message from bytes. Never panics; every refusal says why.

use std::borrow::Cow;

use super::headers::{Header, Headers, stored_name};
use super::lex::{is_token, parse_u32, trim_ws};
use super::{CSeq, Method, NameAddr, Request, Response, SipMessage, Uri, Via};

/// Why a message was refused, with what is needed to answer it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// Becomes the reason phrase of the 400 (so it is kept to one printable line).
    pub reason: String,
    /// What a request with this error is answered with: 400, or 505 for another SIP version.
    pub status: u16,
    /// True when the start line was a request line that may be answered (any but ACK).
    pub is_request: bool,
    /// The header lines, when they could be read: the error response copies Via, From, To,
    /// Call-ID and CSeq from them.
    pub headers: Option<Headers>,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for ParseError {}

fn err(reason: impl Into<String>, is_request: bool, headers: Option<&Headers>) -> ParseError {
    ParseError {
        reason: reason.into(),
        status: 400,
        is_request,
        headers: headers.cloned(),
    }
}

/// Parses a message received as one datagram (UDP). Bytes beyond `Content-Length` are ignored
/// (RFC 3261 §18.3); a `Content-Length` larger than what arrived is an error.
pub fn parse_datagram(buf: &[u8]) -> Result<SipMessage, ParseError> {
    parse(buf, false)
}

/// Parses a message framed from a stream: the framer already cut it at `Content-Length`.
pub(crate) fn parse_framed(buf: &[u8]) -> Result<SipMessage, ParseError> {
    parse(buf, true)
}

fn split_head(buf: &[u8]) -> (&[u8], &[u8]) {
    match header_end(buf) {
        Some((end, blank)) => (&buf[..end], &buf[end + blank..]),
        None => (buf, &[]),
    }
}

/// Where the header section ends: (where its last line ends, the bytes of that line break and
/// the empty line after it). Lines end with CRLF (RFC 3261 §7); a bare LF is taken too, from
/// sloppy peers. The first empty line counts, whatever its line ends: a body may hold more
/// (a multipart one does). The framer cuts streams with this, so both read a message alike.
pub(crate) fn header_end(buf: &[u8]) -> Option<(usize, usize)> {
    let mut at = 0;
    while let Some(i) = buf
        .get(at..)
        .and_then(|rest| rest.iter().position(|&b| b == b'\n'))
    {
        let nl = at + i;
        let empty_line = match buf.get(nl + 1..) {
            Some([b'\n', ..]) => Some(1),
            Some([b'\r', b'\n', ..]) => Some(2),
            _ => None,
        };
        if let Some(n) = empty_line {
            let line_end = if nl > 0 && buf[nl - 1] == b'\r' {
                nl - 1
            } else {
                nl
            };
            return Some((line_end, nl + 1 + n - line_end));
        }
        at = nl + 1;
    }
    None
}

/// The header section as text. SIP's is UTF-8 (RFC 3261 §7.3.1), but old PBXs and gateways
/// send display names in Latin-1: refused, their calls would fail with no answer a caller can
/// act on, so a line that is not UTF-8 is read as Latin-1, which every byte is. Display names
/// and free text may hold such bytes; what answers are matched by (Via, Call-ID, tags) must
/// be ASCII (`check_common`).
pub(crate) fn header_text(head: &[u8]) -> std::borrow::Cow<'_, str> {
    match std::str::from_utf8(head) {
        Ok(text) => std::borrow::Cow::Borrowed(text),
        // Line by line: one line's Latin-1 must not garble another line's UTF-8.
        Err(_) => std::borrow::Cow::Owned(
            head.split_inclusive(|&b| b == b'\n')
                .map(|line| match std::str::from_utf8(line) {
                    Ok(text) => text.to_owned(),
                    Err(_) => line.iter().copied().map(char::from).collect(),
                })
                .collect(),
        ),
    }
}

pub(crate) fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn parse(buf: &[u8], framed: bool) -> Result<SipMessage, ParseError> {
    // Empty lines before the start line are ignored (RFC 3261 §7.5).
    let start = buf
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(buf.len());
    // An ACK is never answered (RFC 3261 §17.1.1.3, §17.2.1): a malformed one is dropped
    // like a malformed response.
    let ack = buf[start..].starts_with(b"ACK ");
    parse_message(&buf[start..], framed).map_err(|mut e| {
        e.is_request &= !ack;
        e
    })
}

fn parse_message(buf: &[u8], framed: bool) -> Result<SipMessage, ParseError> {
    let (head, body) = split_head(buf);
    let is_request = !head.starts_with(b"SIP/");
    let head = header_text(head);
    let mut lines = unfold(&head).into_iter();
    let start_line = lines
        .next()
        .ok_or_else(|| err("Empty message", is_request, None))?;
    let (headers, bad_line) = read_headers(lines);
    // Refused only after reading the lines that do parse: the 400 copies the Via, From, To,
    // Call-ID and CSeq they hold (RFC 3261 §8.2.6.2), wherever the bad line was, so the peer
    // can match it to its request instead of retransmitting until it gives up.
    if let Some(reason) = bad_line {
        return Err(err(reason, is_request, Some(&headers)));
    }
    let body = take_body(body, &headers, framed, is_request)?;
    if is_request {
        parse_request(&start_line, headers, body).map(SipMessage::Request)
    } else {
        parse_response(&start_line, headers, body).map(SipMessage::Response)
    }
}

/// Splits the header section into lines and joins continuation lines (a line starting with
/// SP or HTAB continues the previous one; the line break and leading white space become one SP).
/// Lines are borrowed unless folded (folding is rare).
pub(crate) fn unfold(head: &str) -> Vec<Cow<'_, str>> {
    let mut out: Vec<Cow<'_, str>> = Vec::with_capacity(20);
    for raw in head.split('\n') {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if line.starts_with([' ', '\t'])
            && let Some(prev) = out.last_mut()
        {
            let prev = prev.to_mut();
            prev.push(' ');
            prev.push_str(trim_ws(line));
            continue;
        }
        out.push(Cow::Borrowed(line));
    }
    out
}

/// The header lines after the start line (unfolded), and why the first that does not parse
/// does not. The framer reads a stream's heads with this too, so both agree on them.
pub(crate) fn read_headers<'a>(
    lines: impl Iterator<Item = Cow<'a, str>>,
) -> (Headers, Option<&'static str>) {
    let mut headers = Headers(Vec::with_capacity(16));
    let mut bad_line = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            bad_line.get_or_insert("Header line without a colon");
            continue;
        };
        let name = trim_ws(name);
        if !is_token(name) {
            bad_line.get_or_insert("Malformed header name");
            continue;
        }
        headers.0.push(Header {
            name: stored_name(name),
            value: trim_ws(value).to_owned(),
        });
    }
    (headers, bad_line)
}

/// The `Content-Length` the headers give (`l` included), if any; all of them must agree.
pub(crate) fn content_length(headers: &Headers) -> Result<Option<u32>, &'static str> {
    let mut length: Option<u32> = None;
    for v in headers.get_all("Content-Length") {
        let n = parse_u32(v).ok_or("Bad Content-Length")?;
        if length.is_some_and(|l| l != n) {
            return Err("Conflicting Content-Length values");
        }
        length = Some(n);
    }
    Ok(length)
}

fn take_body(
    body: &[u8],
    headers: &Headers,
    framed: bool,
    is_request: bool,
) -> Result<Vec<u8>, ParseError> {
    let length = content_length(headers).map_err(|why| err(why, is_request, Some(headers)))?;
    match length {
        Some(n) => {
            let n = n as usize;
            if n > body.len() {
                return Err(err(
                    "Content-Length exceeds the message body",
                    is_request,
                    Some(headers),
                ));
            }
            if framed && n != body.len() {
                return Err(err("Content-Length mismatch", is_request, Some(headers)));
            }
            Ok(body[..n].to_vec())
        }
        None => Ok(body.to_vec()),
    }
}

fn parse_request(line: &str, headers: Headers, body: Vec<u8>) -> Result<Request, ParseError> {
    let bad = |r: &str| err(r, true, Some(&headers));
    // Exactly one SP between the three elements (RFC 4475 lwsstart, trws, lwsruri).
    let mut parts = line.split(' ');
    let (Some(method), Some(uri), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("Malformed Request-Line"));
    };
    if !is_token(method) {
        return Err(bad("Malformed method"));
    }
    if !version.eq_ignore_ascii_case("SIP/2.0") {
        // Another SIP version is 505 (RFC 3261 §21.5.7); another protocol's (HTTP/1.1) is no
        // SIP request line at all. Bytes, not a str slice: the version may hold multi-byte
        // characters.
        if version.len() > 4 && version.as_bytes()[..4].eq_ignore_ascii_case(b"SIP/") {
            let mut e = bad("Version Not Supported");
            e.status = 505;
            return Err(e);
        }
        return Err(bad("Not a SIP request line"));
    }
    if uri.starts_with('<') {
        return Err(bad("Request-URI in angle brackets"));
    }
    let uri = Uri::parse(uri).ok_or_else(|| bad("Malformed Request-URI"))?;
    if let Uri::Sip(u) = &uri
        && !u.headers.is_empty()
    {
        return Err(bad("Request-URI with escaped headers"));
    }
    let method = Method::from_token(method);
    check_common(&headers, true)?;
    let cseq = headers.get("CSeq").and_then(CSeq::parse);
    if cseq.is_some_and(|c| c.method != method) {
        return Err(bad("CSeq method does not match the Request-Line"));
    }
    if let Some(mf) = headers.get("Max-Forwards")
        && parse_u32(mf).is_none()
    {
        return Err(bad("Bad Max-Forwards"));
    }
    Ok(Request {
        method,
        uri,
        headers,
        body,
    })
}

fn parse_response(line: &str, headers: Headers, body: Vec<u8>) -> Result<Response, ParseError> {
    let bad = |r: &str| err(r, false, Some(&headers));
    let rest = line
        .strip_prefix("SIP/2.0 ")
        .ok_or_else(|| bad("Malformed Status-Line"))?;
    let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
    if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("Malformed status code"));
    }
    let status: u16 = code.parse().map_err(|_| bad("Malformed status code"))?;
    if !(100..=699).contains(&status) {
        return Err(bad("Status code out of range"));
    }
    check_common(&headers, false)?;
    Ok(Response {
        status,
        reason: reason.to_owned(),
        headers,
        body,
    })
}

/// The headers every request and response must carry, each well formed (RFC 3261 §8.1.1).
fn check_common(headers: &Headers, is_request: bool) -> Result<(), ParseError> {
    let bad = |r: &str| err(r, is_request, Some(headers));
    let vias = headers.list("Via");
    if vias.is_empty() {
        return Err(bad("Missing Via"));
    }
    // What a peer matches its answers by must come back byte for byte, so it is ASCII, as the
    // grammar says, even in a message read as Latin-1 (`header_text`).
    if vias
        .iter()
        .any(|v| !v.is_ascii() || Via::parse(v).is_none())
    {
        return Err(bad("Malformed Via"));
    }
    for name in ["From", "To", "Call-ID", "CSeq"] {
        match headers.count(name) {
            0 => return Err(bad(&format!("Missing {name}"))),
            1 => {}
            _ => return Err(bad(&format!("More than one {name}"))),
        }
    }
    let ascii_tag = |addr: NameAddr| addr.tag().is_none_or(str::is_ascii);
    if !headers
        .get("From")
        .and_then(NameAddr::parse)
        .is_some_and(ascii_tag)
    {
        return Err(bad("Malformed From"));
    }
    if !headers
        .get("To")
        .and_then(NameAddr::parse)
        .is_some_and(ascii_tag)
    {
        return Err(bad("Malformed To"));
    }
    let call_id = headers.get("Call-ID").unwrap_or("");
    if call_id.is_empty() || call_id.contains([' ', '\t']) || !call_id.is_ascii() {
        return Err(bad("Malformed Call-ID"));
    }
    if headers.get("CSeq").and_then(CSeq::parse).is_none() {
        return Err(bad("Malformed CSeq"));
    }
    if headers.count("Max-Forwards") > 1 {
        return Err(bad("More than one Max-Forwards"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msg::HasHeaders;

    const OPTIONS: &str = "OPTIONS sip:sipx.test SIP/2.0\r\n\
        Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1;rport\r\n\
        Max-Forwards: 70\r\n\
        To: <sip:sipx.test>\r\n\
        From: <sip:probe@127.0.0.1>;tag=abc\r\n\
        Call-ID: opt-1@127.0.0.1\r\n\
        CSeq: 7 OPTIONS\r\n\
        Content-Length: 0\r\n\r\n";

    fn request(s: &str) -> Request {
        match parse_datagram(s.as_bytes()) {
            Ok(SipMessage::Request(r)) => r,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn parses_a_plain_request() {
        let r = request(OPTIONS);
        assert_eq!(r.method, Method::Options);
        assert_eq!(r.cseq().unwrap().seq, 7);
        assert_eq!(r.from().unwrap().tag(), Some("abc"));
        assert_eq!(r.top_via().unwrap().branch(), Some("z9hG4bK-1"));
        assert_eq!(r.max_forwards(), Some(70));
        assert!(r.body.is_empty());
    }

    #[test]
    fn a_bad_header_line_is_refused_with_every_readable_header_kept_for_the_400() {
        for (bad, reason) in [
            ("This line has no colon\r\n", "Header line without a colon"),
            ("X Bad: 1\r\n", "Malformed header name"),
        ] {
            let msg = OPTIONS.replace(
                "Max-Forwards: 70\r\n",
                &format!("Max-Forwards: 70\r\n{bad}"),
            );
            let Err(e) = parse_datagram(msg.as_bytes()) else {
                panic!("{bad:?} taken");
            };
            assert_eq!(e.reason, reason);
            let headers = e.headers.unwrap();
            for name in ["Via", "To", "From", "Call-ID", "CSeq"] {
                assert!(headers.get(name).is_some(), "{bad:?}: {name} lost");
            }
        }
    }

    #[test]
    fn the_first_empty_line_ends_the_headers_whatever_its_line_ends() {
        // Bare-LF headers, then a body with CRLF blank lines in it (a multipart's).
        let body = "--b\r\nContent-Type: application/sdp\r\n\r\nv=0\r\n--b--";
        let msg = OPTIONS.replace("\r\n", "\n").replace(
            "Content-Length: 0\n\n",
            &format!("Content-Length: {}\n\n{body}", body.len()),
        );
        let r = request(&msg);
        assert_eq!(r.body, body.as_bytes());
        assert_eq!(header_end(b"A: 1\r\n\nrest"), Some((4, 3)));
        assert_eq!(header_end(b"A: 1\n\r\nrest"), Some((4, 3)));
        assert_eq!(header_end(b"A: 1\r\nB: 2"), None);
    }

    #[test]
    fn a_latin1_display_name_is_read_as_latin1() {
        let latin1: Vec<u8> = OPTIONS
            .replace(
                "From: <sip:probe",
                "From: \"Jos\u{e9} M\u{fc}ller\" <sip:probe",
            )
            .chars()
            .map(|c| u8::try_from(u32::from(c)).unwrap())
            .collect();
        assert!(std::str::from_utf8(&latin1).is_err());
        let Ok(SipMessage::Request(r)) = parse_datagram(&latin1) else {
            panic!("a Latin-1 display name is refused");
        };
        let from = r.from().unwrap();
        assert_eq!(from.display.as_deref(), Some("Jos\u{e9} M\u{fc}ller"));
        assert_eq!(from.tag(), Some("abc"));
        // Another line's UTF-8 is still UTF-8.
        let mut mixed = latin1.clone();
        let at = find(&mixed, b"Max-Forwards").unwrap();
        mixed.splice(at..at, "Subject: caf\u{e9}\r\n".bytes());
        let Ok(SipMessage::Request(r)) = parse_datagram(&mixed) else {
            panic!("refused");
        };
        assert_eq!(r.headers.get("Subject"), Some("caf\u{e9}"));
        // What answers are matched by must stay ASCII.
        for (from, to) in [
            ("Call-ID: opt-1@", "Call-ID: opt-\u{e9}@"),
            ("branch=z9hG4bK-1", "branch=z9hG4bK-\u{e9}"),
            ("tag=abc", "tag=ab\u{e9}"),
        ] {
            let bytes: Vec<u8> = OPTIONS
                .replace(from, to)
                .chars()
                .map(|c| u8::try_from(u32::from(c)).unwrap())
                .collect();
            let Err(e) = parse_datagram(&bytes) else {
                panic!("{to} taken");
            };
            assert!(e.reason.starts_with("Malformed"), "{to}: {}", e.reason);
        }
    }

    #[test]
    fn ignores_bytes_past_content_length_and_leading_crlf() {
        let r = request(&format!("\r\n\r\n{OPTIONS}garbage"));
        assert!(r.body.is_empty());
    }

    #[test]
    fn refuses_with_reasons() {
        let cases = [
            (
                OPTIONS.replace("OPTIONS sip", "OPTIONS  sip"),
                "Malformed Request-Line",
            ),
            (
                OPTIONS.replace("CSeq: 7 OPTIONS", "CSeq: 7 INVITE"),
                "CSeq method does not match the Request-Line",
            ),
            // RFC 3261 §8.1.1.5: less than 2**31.
            (
                OPTIONS.replace("CSeq: 7 OPTIONS", "CSeq: 2147483648 OPTIONS"),
                "Malformed CSeq",
            ),
            (
                OPTIONS.replace("Content-Length: 0", "Content-Length: 10"),
                "Content-Length exceeds the message body",
            ),
            (
                OPTIONS.replace("Content-Length: 0", "Content-Length: -1"),
                "Bad Content-Length",
            ),
            (
                OPTIONS.replace("Call-ID: opt-1@127.0.0.1\r\n", ""),
                "Missing Call-ID",
            ),
            (
                OPTIONS.replace("sip:sipx.test SIP", "<sip:sipx.test> SIP"),
                "Request-URI in angle brackets",
            ),
        ];
        for (msg, reason) in cases {
            let e = parse_datagram(msg.as_bytes()).unwrap_err();
            assert_eq!(e.reason, reason);
            assert_eq!(e.status, 400);
            assert!(e.is_request);
        }
        let e = parse_datagram(
            OPTIONS
                .replace("SIP/2.0\r\nVia", "SIP/7.0\r\nVia")
                .as_bytes(),
        )
        .unwrap_err();
        assert_eq!(e.status, 505);
        // Another protocol's version is no SIP version to refuse by 505.
        let http = OPTIONS.replace("SIP/2.0\r\nVia", "HTTP/1.1\r\nVia");
        let e = parse_datagram(http.as_bytes()).unwrap_err();
        assert_eq!(
            (e.status, e.reason.as_str()),
            (400, "Not a SIP request line")
        );
    }

    #[test]
    fn never_panics_on_prefixes() {
        for i in 0..OPTIONS.len() {
            let _ = parse_datagram(&OPTIONS.as_bytes()[..i]);
        }
    }
}
