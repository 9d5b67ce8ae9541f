//! Cuts messages out of a byte stream (TCP, TLS): by the blank line ending the headers and
//! then `Content-Length` (mandatory on streams, RFC 3261 §18.3). CRLF keep-alives between
//! messages (RFC 5626 §3.5.1) are recognised and reported so the transport can answer them.

use super::parse::{self, header_end, parse_framed};
use super::{MAX_MESSAGE_SIZE, ParseError, SipMessage};

/// What the framer produced from the buffered bytes.
#[derive(Debug)]
pub enum Framed {
    /// A complete message (or why it could not be parsed).
    Message(Result<SipMessage, ParseError>),
    /// A double-CRLF ping: answer with a single CRLF (pong).
    Ping,
}

/// Per-connection stream reassembly.
#[derive(Debug, Default)]
pub struct Framer {
    buf: Vec<u8>,
    /// How far the search for the blank line has looked: resuming from there keeps a peer
    /// that trickles one byte at a time from costing a rescan of the whole buffer each time.
    scanned: usize,
    /// Total length of the message whose header section is complete, while its body arrives.
    pending_total: Option<usize>,
}

/// The stream broke the rules beyond repair: the connection should be closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    #[error("message larger than {MAX_MESSAGE_SIZE} bytes")]
    TooLarge,
    #[error("missing or bad Content-Length on a stream")]
    BadContentLength,
}

impl Framer {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete unit, if the buffer holds one.
    pub fn next_unit(&mut self) -> Result<Option<Framed>, FramingError> {
        // Keep-alives: CRLFCRLF is a ping; a lone CRLF is a pong (ignored).
        if self.buf.starts_with(b"\r\n\r\n") {
            self.consume(4);
            return Ok(Some(Framed::Ping));
        }
        // A CRLF with nothing after it yet may be the first half of a ping split across
        // segments: it waits for what follows.
        while self.buf.len() > 2 && self.buf.starts_with(b"\r\n") && self.buf[2] != b'\r' {
            self.consume(2);
        }
        if self.pending_total.is_none() {
            // Stray bare line feeds between messages, as the parser skips them.
            let stray = self.buf.iter().take_while(|&&b| b == b'\n').count();
            self.consume(stray);
        }
        if self.buf == b"\r\n" || self.buf.is_empty() {
            return Ok(None);
        }
        if let Some(total) = self.pending_total {
            return Ok(self.take(total));
        }
        let from = self.scanned.saturating_sub(3);
        let Some((head_end, blank)) = header_end(&self.buf[from..]).map(|(i, n)| (i + from, n))
        else {
            self.scanned = self.buf.len();
            if self.buf.len() > MAX_MESSAGE_SIZE {
                return Err(FramingError::TooLarge);
            }
            return Ok(None);
        };
        self.scanned = head_end;
        let head = &self.buf[..head_end];
        let length = content_length(head).ok_or(FramingError::BadContentLength)?;
        let total = head_end + blank + length;
        if total > MAX_MESSAGE_SIZE {
            return Err(FramingError::TooLarge);
        }
        self.pending_total = Some(total);
        Ok(self.take(total))
    }

    /// The message of `total` bytes, once all of it has arrived.
    fn take(&mut self, total: usize) -> Option<Framed> {
        if self.buf.len() < total {
            return None;
        }
        let msg: Vec<u8> = self.buf.drain(..total).collect();
        self.scanned = 0;
        self.pending_total = None;
        Some(Framed::Message(parse_framed(&msg)))
    }

    /// After a [`FramingError`]: the request whose header section arrived, as the error its
    /// answer is built from, before the connection closes (RFC 3261 §18.3). A missing or bad
    /// `Content-Length` gets 400; a message over the size limit gets 513 (§21.5.14), read from
    /// its complete header lines when its header section never ended within the limit.
    /// `None` when there is no request head to answer.
    pub fn refusal(&self, error: &FramingError) -> Option<ParseError> {
        let (status, reason) = match error {
            FramingError::BadContentLength => (400, "Missing or bad Content-Length on a stream"),
            FramingError::TooLarge => (513, "Message Too Large"),
        };
        let head = match header_end(&self.buf) {
            Some((end, blank)) => self.buf.get(..end + blank)?.to_vec(),
            None if *error == FramingError::TooLarge => {
                // The lines that ended, closed by an empty line: the cut-off line is not read.
                let last_line = self.buf.iter().rposition(|&b| b == b'\n')?;
                let mut head = self.buf.get(..=last_line)?.to_vec();
                head.extend_from_slice(b"\r\n");
                head
            }
            None => return None,
        };
        match parse_framed(&head) {
            Ok(SipMessage::Request(r)) => Some(ParseError {
                reason: reason.to_owned(),
                status,
                is_request: true,
                headers: Some(r.headers),
            }),
            Ok(SipMessage::Response(_)) => None,
            // Too large is the first thing wrong with it, whatever else is (its head may
            // announce a body that never came whole).
            Err(e) if *error == FramingError::TooLarge => e.is_request.then(|| ParseError {
                reason: reason.to_owned(),
                status,
                ..e
            }),
            Err(e) => e.is_request.then_some(e),
        }
    }

    /// Part of a message (or of a ping) has arrived and the rest has not.
    pub fn has_partial(&self) -> bool {
        !(self.buf.is_empty() || self.buf == b"\r\n")
    }

    fn consume(&mut self, n: usize) {
        self.buf.drain(..n);
        self.scanned = self.scanned.saturating_sub(n);
    }
}

/// The `Content-Length` of a raw header section, read by the parser's own reading of header
/// lines (`parse::read_headers`, `parse::content_length`), so the stream is cut where the
/// parser will say the message ends. None when there is none, or the values disagree or do not
/// parse: cutting at either would leave the stream out of step.
fn content_length(head: &[u8]) -> Option<usize> {
    let text = parse::header_text(head);
    let (headers, _) = parse::read_headers(parse::unfold(&text).into_iter().skip(1));
    let length = parse::content_length(&headers).ok()??;
    usize::try_from(length).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: &[u8] = b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nTo: <sip:a@b>\r\nFrom: <sip:c@d>;tag=1\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\nContent-Length: 4\r\n\r\nbody";

    #[test]
    fn frames_split_and_joined_messages() {
        let mut f = Framer::new();
        f.push(&MSG[..20]);
        assert!(f.next_unit().unwrap().is_none());
        f.push(&MSG[20..]);
        f.push(b"\r\n\r\n");
        f.push(MSG);
        assert!(matches!(
            f.next_unit().unwrap(),
            Some(Framed::Message(Ok(_)))
        ));
        assert!(matches!(f.next_unit().unwrap(), Some(Framed::Ping)));
        assert!(matches!(
            f.next_unit().unwrap(),
            Some(Framed::Message(Ok(_)))
        ));
        assert!(f.next_unit().unwrap().is_none());
    }

    #[test]
    fn frames_a_message_whose_lines_end_in_bare_lf_as_the_parser_reads_it() {
        let lf = String::from_utf8(MSG.to_vec())
            .unwrap()
            .replace("\r\n", "\n");
        let mut f = Framer::new();
        f.push(b"\n\n");
        f.push(lf.as_bytes());
        f.push(MSG);
        for _ in 0..2 {
            let Some(Framed::Message(Ok(SipMessage::Request(r)))) = f.next_unit().unwrap() else {
                panic!("not framed");
            };
            assert_eq!(r.body, b"body");
        }
        assert!(f.next_unit().unwrap().is_none());
    }

    #[test]
    fn frames_a_message_fed_byte_by_byte() {
        let mut f = Framer::new();
        let mut got = 0;
        for b in MSG.iter().chain(MSG) {
            f.push(std::slice::from_ref(b));
            while let Some(Framed::Message(Ok(_))) = f.next_unit().unwrap() {
                got += 1;
            }
        }
        assert_eq!(got, 2);
    }

    #[test]
    fn a_ping_split_across_segments_is_still_a_ping_and_a_lone_pong_is_dropped() {
        let mut f = Framer::new();
        f.push(b"\r\n");
        assert!(f.next_unit().unwrap().is_none());
        assert!(!f.has_partial());
        f.push(b"\r");
        assert!(f.next_unit().unwrap().is_none());
        assert!(f.has_partial());
        f.push(b"\n");
        assert!(matches!(f.next_unit().unwrap(), Some(Framed::Ping)));
        // A pong (one CRLF) before a message is skipped.
        f.push(b"\r\n");
        f.push(MSG);
        assert!(matches!(
            f.next_unit().unwrap(),
            Some(Framed::Message(Ok(_)))
        ));
        assert!(!f.has_partial());
        f.push(&MSG[..10]);
        assert!(f.next_unit().unwrap().is_none());
        assert!(f.has_partial());
    }

    /// The framer reads the header lines as the parser does: a folded Content-Length is one,
    /// an `l:` continuing another header is not, and two that disagree end the stream.
    #[test]
    fn content_length_is_read_as_the_parser_reads_it() {
        let text = String::from_utf8(MSG.to_vec()).unwrap();
        let folded = text.replace("Content-Length: 4", "Content-Length:\r\n 4");
        let mut f = Framer::new();
        f.push(folded.as_bytes());
        f.push(MSG);
        for _ in 0..2 {
            let Some(Framed::Message(Ok(SipMessage::Request(r)))) = f.next_unit().unwrap() else {
                panic!("not framed");
            };
            assert_eq!(r.body, b"body");
        }
        let continued = text.replace("Call-ID: x\r\n", "Call-ID: x\r\nSubject: hi\r\n l: 30\r\n");
        let mut f = Framer::new();
        f.push(continued.as_bytes());
        f.push(MSG);
        for _ in 0..2 {
            assert!(matches!(
                f.next_unit().unwrap(),
                Some(Framed::Message(Ok(_)))
            ));
        }
        let conflicting = text.replace("Content-Length: 4", "Content-Length: 0\r\nl: 4");
        let mut f = Framer::new();
        f.push(conflicting.as_bytes());
        assert_eq!(f.next_unit().unwrap_err(), FramingError::BadContentLength);
        assert_eq!(
            f.refusal(&FramingError::BadContentLength).unwrap().reason,
            "Conflicting Content-Length values"
        );
    }

    #[test]
    fn refuses_streams_without_length_or_too_large() {
        let mut f = Framer::new();
        f.push(b"OPTIONS sip:a@b SIP/2.0\r\nVia: x\r\n\r\n");
        assert_eq!(f.next_unit().unwrap_err(), FramingError::BadContentLength);
        // The head is whole: a 400 can be built from it before the connection closes.
        let refusal = f.refusal(&FramingError::BadContentLength).unwrap();
        assert_eq!(refusal.status, 400);
        assert!(refusal.headers.unwrap().get("Via").is_some());
        let mut f = Framer::new();
        let negative = String::from_utf8(MSG.to_vec())
            .unwrap()
            .replace("Content-Length: 4", "Content-Length: -999");
        f.push(negative.as_bytes());
        assert_eq!(f.next_unit().unwrap_err(), FramingError::BadContentLength);
        assert_eq!(
            f.refusal(&FramingError::BadContentLength).unwrap().status,
            400
        );
        let mut f = Framer::new();
        f.push(&vec![b'a'; MAX_MESSAGE_SIZE + 1]);
        assert_eq!(f.next_unit().unwrap_err(), FramingError::TooLarge);
        assert!(
            f.refusal(&FramingError::TooLarge).is_none(),
            "no request to answer"
        );
    }

    #[test]
    fn a_request_over_the_size_limit_is_answered_513_from_its_head() {
        let head = "OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\n\
                    From: <sip:c@d>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\n";
        let big_header = format!("Subject: {}\r\n", "a".repeat(MAX_MESSAGE_SIZE));
        // The header section ends, past the limit.
        let mut f = Framer::new();
        f.push(format!("{head}{big_header}Content-Length: 0\r\n\r\n").as_bytes());
        assert_eq!(f.next_unit().unwrap_err(), FramingError::TooLarge);
        let refusal = f.refusal(&FramingError::TooLarge).unwrap();
        assert_eq!(
            (refusal.status, refusal.reason.as_str()),
            (513, "Message Too Large")
        );
        assert!(refusal.headers.unwrap().get("Call-ID").is_some());
        // It never ends within the limit: the lines that did end are answered.
        let mut f = Framer::new();
        f.push(format!("{head}{}", &big_header[..MAX_MESSAGE_SIZE]).as_bytes());
        assert_eq!(f.next_unit().unwrap_err(), FramingError::TooLarge);
        let refusal = f.refusal(&FramingError::TooLarge).unwrap();
        assert_eq!(refusal.status, 513);
        assert!(refusal.headers.unwrap().get("CSeq").is_some());
        // A body announced past the limit: 513 too.
        let mut f = Framer::new();
        f.push(format!("{head}Content-Length: 70000\r\n\r\n").as_bytes());
        assert_eq!(f.next_unit().unwrap_err(), FramingError::TooLarge);
        assert_eq!(f.refusal(&FramingError::TooLarge).unwrap().status, 513);
    }
}
