//! Building responses from requests (RFC 3261 §8.2.6): the headers a response must copy.

use super::headers::Headers;
use super::{NameAddr, Request, Response, reason_phrase};

/// A response to a request with these headers: Via (all), From, To (tagged with `to_tag` when
/// the request's To has no tag and the status is not 100), Call-ID, CSeq copied.
pub fn response_from_headers(
    request: &Headers,
    status: u16,
    reason: Option<&str>,
    to_tag: Option<&str>,
) -> Response {
    let mut headers = Headers::new();
    for via in request.get_all("Via") {
        headers.push("Via", via);
    }
    for name in ["From", "To", "Call-ID", "CSeq"] {
        if let Some(v) = request.get(name) {
            let value = match (name, to_tag) {
                ("To", Some(tag)) if status > 100 => match NameAddr::parse(v) {
                    Some(mut to) if to.tag().is_none() => {
                        to.set_param("tag", Some(tag.to_owned()));
                        to.to_string()
                    }
                    _ => v.to_owned(),
                },
                _ => v.to_owned(),
            };
            headers.push(name, value);
        }
    }
    Response {
        status,
        reason: reason.unwrap_or(reason_phrase(status)).to_owned(),
        headers,
        body: Vec::new(),
    }
}

impl Request {
    /// A response to this request; see [`response_from_headers`].
    pub fn response(&self, status: u16, to_tag: Option<&str>) -> Response {
        response_from_headers(&self.headers, status, None, to_tag)
    }
}

impl Response {
    pub fn with_reason(mut self, reason: &str) -> Self {
        // A reason phrase is one line of text: no CR/LF can reach the wire from here.
        self.reason = reason.replace(['\r', '\n'], " ");
        self
    }

    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push(name, value);
        self
    }

    pub fn with_body(mut self, content_type: &str, body: Vec<u8>) -> Self {
        self.headers.set("Content-Type", content_type);
        self.body = body;
        self
    }
}
