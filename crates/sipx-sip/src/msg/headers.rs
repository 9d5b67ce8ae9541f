//! Header storage: ordered lines, canonical names for known headers, unknown ones kept as sent.

use std::borrow::Cow;

use super::lex::{split_top, trim_ws};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Canonical for known headers (a static string: no allocation per header parsed).
    pub name: Cow<'static, str>,
    pub value: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(pub Vec<Header>);

/// Known headers: (canonical name, compact form).
const KNOWN: &[(&str, Option<char>)] = &[
    ("Accept", None),
    ("Accept-Contact", Some('a')),
    ("Accept-Encoding", None),
    ("Accept-Language", None),
    ("Alert-Info", None),
    ("Allow", None),
    ("Allow-Events", Some('u')),
    ("Authentication-Info", None),
    ("Authorization", None),
    ("Call-ID", Some('i')),
    ("Call-Info", None),
    ("Contact", Some('m')),
    ("Content-Disposition", None),
    ("Content-Encoding", Some('e')),
    ("Content-Language", None),
    ("Content-Length", Some('l')),
    ("Content-Type", Some('c')),
    ("CSeq", None),
    ("Date", None),
    ("Error-Info", None),
    ("Event", Some('o')),
    ("Expires", None),
    ("From", Some('f')),
    ("Identity", Some('y')),
    ("In-Reply-To", None),
    ("Max-Forwards", None),
    ("Min-Expires", None),
    ("Min-SE", None),
    ("MIME-Version", None),
    ("Organization", None),
    ("P-Asserted-Identity", None),
    ("Path", None),
    ("Priority", None),
    ("Proxy-Authenticate", None),
    ("Proxy-Authorization", None),
    ("Proxy-Require", None),
    ("RAck", None),
    ("Reason", None),
    ("Record-Route", None),
    ("Refer-To", Some('r')),
    ("Referred-By", Some('b')),
    ("Reject-Contact", Some('j')),
    ("Reply-To", None),
    ("Request-Disposition", Some('d')),
    ("Require", None),
    ("Retry-After", None),
    ("Route", None),
    ("RSeq", None),
    ("Server", None),
    ("Session-Expires", Some('x')),
    ("Subject", Some('s')),
    ("Supported", Some('k')),
    ("Timestamp", None),
    ("To", Some('t')),
    ("Unsupported", None),
    ("User-Agent", None),
    ("Via", Some('v')),
    ("Warning", None),
    ("WWW-Authenticate", None),
];

/// Headers whose values are comma-separated lists (RFC 3261 §7.3.1). Authorization-style
/// headers are not: their commas separate parameters of one value.
const LIST_HEADERS: &[&str] = &[
    "Accept",
    "Accept-Encoding",
    "Accept-Language",
    "Allow",
    "Allow-Events",
    "Contact",
    "Content-Encoding",
    "Content-Language",
    "In-Reply-To",
    "Path",
    "Proxy-Require",
    "Record-Route",
    "Require",
    "Route",
    "Supported",
    "Unsupported",
    "Via",
    "Warning",
];

/// The canonical spelling of a header name; unknown names are returned as given.
pub fn canonical_name(name: &str) -> String {
    canonical(name).to_owned()
}

/// The stored name of a header: the static canonical spelling of a known header, else the name
/// as given.
pub(crate) fn stored_name(name: &str) -> Cow<'static, str> {
    match known(name) {
        Some(full) => Cow::Borrowed(full),
        None => Cow::Owned(name.to_owned()),
    }
}

/// The canonical spelling, borrowed: lookups run on every header access, so they must not
/// allocate.
fn canonical(name: &str) -> &str {
    known(name).unwrap_or(name)
}

/// The canonical spelling of a known header (full or compact name, any case).
fn known(name: &str) -> Option<&'static str> {
    // Most senders spell the common headers canonically: those need no table scan.
    let exact = match name {
        "Via" => "Via",
        "From" => "From",
        "To" => "To",
        "Call-ID" => "Call-ID",
        "CSeq" => "CSeq",
        "Contact" => "Contact",
        "Max-Forwards" => "Max-Forwards",
        "Content-Length" => "Content-Length",
        "Content-Type" => "Content-Type",
        "Expires" => "Expires",
        "User-Agent" => "User-Agent",
        "Authorization" => "Authorization",
        "Allow" => "Allow",
        "Supported" => "Supported",
        "Route" => "Route",
        "Record-Route" => "Record-Route",
        _ => "",
    };
    if !exact.is_empty() {
        return Some(exact);
    }
    if name.len() == 1 {
        let c = name.as_bytes()[0].to_ascii_lowercase() as char;
        if let Some((full, _)) = KNOWN.iter().find(|(_, compact)| *compact == Some(c)) {
            return Some(full);
        }
    }
    KNOWN
        .iter()
        .find(|(full, _)| full.eq_ignore_ascii_case(name))
        .map(|(full, _)| *full)
}

pub fn is_list_header(canonical: &str) -> bool {
    LIST_HEADERS.contains(&canonical)
}

impl Headers {
    pub fn new() -> Self {
        Headers(Vec::new())
    }

    fn matches(h: &Header, name: &str) -> bool {
        h.name.eq_ignore_ascii_case(name)
    }

    /// The name to compare stored (canonical) names with: stored names are canonical, so a
    /// full name matches case-insensitively as it is; only compact forms need mapping.
    fn lookup_name(name: &str) -> &str {
        if name.len() == 1 {
            canonical(name)
        } else {
            name
        }
    }

    /// The first value of `name` (canonical or compact name, any case).
    pub fn get(&self, name: &str) -> Option<&str> {
        let name = Self::lookup_name(name);
        self.0
            .iter()
            .find(|h| Self::matches(h, name))
            .map(|h| h.value.as_str())
    }

    /// Every line of `name`, in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        let name = Self::lookup_name(name);
        self.0
            .iter()
            .filter(move |h| Self::matches(h, name))
            .map(|h| h.value.as_str())
    }

    pub fn count(&self, name: &str) -> usize {
        self.get_all(name).count()
    }

    /// Every value of a list header, across lines and commas, trimmed. Unbalanced quoting
    /// yields the line whole (the typed parser will then refuse it).
    pub fn list<'a>(&'a self, name: &'a str) -> Vec<&'a str> {
        let mut out = Vec::new();
        for line in self.get_all(name) {
            match split_top(line, ',') {
                Some(parts) => out.extend(parts.into_iter().map(trim_ws)),
                None => out.push(line),
            }
        }
        out
    }

    pub fn push(&mut self, name: &str, value: impl Into<String>) {
        self.0.push(Header {
            name: stored_name(name),
            value: value.into(),
        });
    }

    /// The first value of a list header (the top Via, say), without collecting the others.
    pub fn first_of_list(&self, name: &str) -> Option<&str> {
        let line = self.get(name)?;
        if !line.contains(',') {
            return Some(trim_ws(line));
        }
        match split_top(line, ',') {
            Some(parts) => parts.into_iter().next().map(trim_ws),
            None => Some(line),
        }
    }

    /// Replaces every line of `name` with one line (added at the end if absent).
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        let name = stored_name(name);
        let value = value.into();
        match self.0.iter().position(|h| Self::matches(h, &name)) {
            Some(i) => {
                self.0[i].value = value;
                let mut seen = false;
                self.0.retain(|h| {
                    if Self::matches(h, &name) {
                        let keep = !seen;
                        seen = true;
                        keep
                    } else {
                        true
                    }
                });
            }
            None => self.0.push(Header { name, value }),
        }
    }

    pub fn remove(&mut self, name: &str) {
        let name = canonical_name(name);
        self.0.retain(|h| !Self::matches(h, &name));
    }

    pub fn iter(&self) -> impl Iterator<Item = &Header> {
        self.0.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_and_case_insensitive_names() {
        let mut h = Headers::new();
        h.push("v", "SIP/2.0/UDP a;branch=z9hG4bK1, SIP/2.0/UDP b");
        h.push("VIA", "SIP/2.0/TCP c");
        h.push("X-Custom", "kept");
        assert_eq!(h.list("Via").len(), 3);
        assert_eq!(h.get("x-custom"), Some("kept"));
        assert_eq!(h.0[0].name, "Via");
        h.set("Via", "SIP/2.0/UDP only");
        assert_eq!(h.count("v"), 1);
        assert_eq!(canonical_name("i"), "Call-ID");
        assert_eq!(canonical_name("CALL-ID"), "Call-ID");
    }
}
