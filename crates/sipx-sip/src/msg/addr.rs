//! `name-addr` / `addr-spec` header values (From, To, Contact, Route, Record-Route, …).

use std::fmt;

use super::lex::{escape_quoted, is_token, is_ws, parse_params, take_quoted, trim_ws};
use super::uri::Uri;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr {
    pub display: Option<String>,
    pub uri: Uri,
    /// Header parameters (after the URI), e.g. `tag`, `expires`, `q`.
    pub params: Vec<(String, Option<String>)>,
}

impl NameAddr {
    pub fn new(uri: Uri) -> Self {
        NameAddr {
            display: None,
            uri,
            params: Vec::new(),
        }
    }

    pub fn parse(s: &str) -> Option<NameAddr> {
        let s = trim_ws(s);
        let (display, rest) = if s.starts_with('"') {
            let (d, rest) = take_quoted(s)?;
            (Some(d), trim_ws(rest))
        } else if let Some(lt) = s.find('<') {
            let d = trim_ws(&s[..lt]);
            if d.is_empty() {
                (None, &s[lt..])
            } else {
                // Unquoted display names are tokens separated by LWS (RFC 4475 baddn).
                if !d.split(is_ws).filter(|t| !t.is_empty()).all(is_token) {
                    return None;
                }
                (Some(d.to_owned()), &s[lt..])
            }
        } else {
            (None, s)
        };
        if let Some(inner) = rest.strip_prefix('<') {
            let end = inner.find('>')?;
            // LWS just inside the brackets is not allowed by the grammar but common in the
            // wild; RFC 4475 badaspec lets parsers accept it.
            let uri = Uri::parse(trim_ws(&inner[..end]))?;
            let params = parse_params(&inner[end + 1..])?;
            Some(NameAddr {
                display,
                uri,
                params,
            })
        } else {
            if display.is_some() {
                return None;
            }
            // addr-spec: everything after the first `;` is a header parameter.
            let (uri, params) = match rest.find(';') {
                Some(i) => (&rest[..i], &rest[i..]),
                None => (rest, ""),
            };
            let uri = trim_ws(uri);
            if uri.contains('?') || uri.contains(',') {
                return None;
            }
            Some(NameAddr {
                display: None,
                uri: Uri::parse(uri)?,
                params: parse_params(params)?,
            })
        }
    }

    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        super::lex::find_param(&self.params, name)
    }

    pub fn tag(&self) -> Option<&str> {
        self.param("tag").flatten()
    }

    pub fn set_param(&mut self, name: &str, value: Option<String>) {
        super::lex::set_param(&mut self.params, name, value);
    }
}

/// The `tag` parameter of a From/To value, found without parsing the address (every message
/// that gets past the parser has well-formed From and To, and dialog matching reads their
/// tags many times per message). On a value that is not a valid `name-addr`/`addr-spec` the
/// answer is unspecified but never a panic.
pub fn tag_param(value: &str) -> Option<&str> {
    let s = trim_ws(value);
    let bytes = s.as_bytes();
    let mut i = 0;
    // A quoted display name may hold `<`, `>` and `;`.
    if bytes.first() == Some(&b'"') {
        i = 1;
        while i < bytes.len() && bytes[i] != b'"' {
            i += if bytes[i] == b'\\' { 2 } else { 1 };
        }
        i += 1;
    }
    let rest = s.get(i.min(s.len())..)?;
    let params = match rest.find('<') {
        Some(lt) => {
            let gt = rest[lt..].find('>')? + lt;
            &rest[gt + 1..]
        }
        // addr-spec: everything after the first `;` is a header parameter.
        None => &rest[rest.find(';')?..],
    };
    let mut in_quotes = false;
    let mut escaped = false;
    let mut start = 0;
    let pb = params.as_bytes();
    for j in 0..=pb.len() {
        let b = pb.get(j).copied();
        if in_quotes {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, Some(b'\\')) => escaped = true,
                (false, Some(b'"')) => in_quotes = false,
                _ => {}
            }
            if b.is_some() {
                continue;
            }
        }
        match b {
            Some(b'"') => in_quotes = true,
            Some(b';') | None => {
                let part = &params[start..j];
                start = j + 1;
                if let Some((name, v)) = part.split_once('=')
                    && trim_ws(name).eq_ignore_ascii_case("tag")
                {
                    let v = trim_ws(v);
                    return (!v.is_empty()).then_some(v);
                }
            }
            _ => {}
        }
    }
    None
}

impl fmt::Display for NameAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(d) = &self.display {
            write!(f, "\"{}\" ", escape_quoted(d))?;
        }
        write!(f, "<{}>", self.uri)?;
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
    fn parses_the_usual_forms() {
        let a = NameAddr::parse(
            r#""J Rosenberg \\\""       <sip:jdrosen@example.com> ; tag = 98asjd8"#,
        )
        .unwrap();
        assert_eq!(a.display.as_deref(), Some(r#"J Rosenberg \""#));
        assert_eq!(a.tag(), Some("98asjd8"));
        let b =
            NameAddr::parse(" sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n").unwrap();
        assert_eq!(b.tag(), Some("1918181833n"));
        let c = NameAddr::parse("Bob <sip:bob@biloxi.com>;expires=60").unwrap();
        assert_eq!(c.display.as_deref(), Some("Bob"));
        assert_eq!(c.param("expires"), Some(Some("60")));
        let d = NameAddr::parse("caller<sip:caller@example.com>;tag=323").unwrap();
        assert_eq!(d.display.as_deref(), Some("caller"));
    }

    #[test]
    fn the_tag_fast_path_agrees_with_the_full_parse() {
        for v in [
            r#""J Rosenberg \\\""       <sip:jdrosen@example.com> ; tag = 98asjd8"#,
            " sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n",
            "Bob <sip:bob@biloxi.com;transport=tcp>;expires=60",
            "caller<sip:caller@example.com>;tag=323",
            r#""a;tag=no <x>" <sip:a@b;tag=uriparam>;foo="q;tag=no";TAG=yes"#,
            "<sip:a@b>;tag",
            "sip:a@b",
            "<sips:[2001:db8::1]:5061>;x=1;tag=z9",
        ] {
            let full = NameAddr::parse(v).and_then(|a| a.tag().map(str::to_owned));
            assert_eq!(tag_param(v).map(str::to_owned), full, "{v}");
        }
        // Garbage gives some answer, never a panic.
        for v in [
            "\"",
            "\"\\",
            "<",
            ">;tag=1",
            ";",
            "\"abc\" <sip:a@b",
            "\u{e9}<\u{e9}>;tag=\u{e9}",
        ] {
            let _ = tag_param(v);
        }
    }

    #[test]
    fn refuses_broken_ones() {
        for bad in [
            "Bell, Alexander <sip:a@b>",
            "\"unterminated <sip:a@b>",
            "<sip:a@b",
            "sip:a@b?x=y",
            "<sip:a@b>;;",
        ] {
            assert!(NameAddr::parse(bad).is_none(), "{bad}");
        }
    }
}
