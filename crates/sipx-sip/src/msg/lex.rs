//! Lexical helpers of RFC 3261 §25: tokens, LWS, quoted strings, and splitting that respects
//! quotes and angle brackets. Everything works on `&str` slices and never panics on any input.

/// The `type/subtype` of a media type (`Content-Type`, an `Accept` entry), in lower case and
/// without its parameters or the white space RFC 3261 §25.1 allows around the slash
/// (`SLASH = SWS "/" SWS`): `Application / SDP; x=1` is `application/sdp`.
pub fn mime_type(value: &str) -> String {
    let bare = value.split(';').next().unwrap_or_default();
    match bare.split_once('/') {
        Some((ty, sub)) => format!("{}/{}", trim_ws(ty), trim_ws(sub)).to_ascii_lowercase(),
        None => trim_ws(bare).to_ascii_lowercase(),
    }
}

/// `token` characters: alphanumerics and `-.!%*_+`'~`.
pub fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

pub fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_token_byte)
}

/// Linear white space inside one (already unfolded) header value.
pub fn is_ws(c: char) -> bool {
    c == ' ' || c == '\t'
}

pub fn trim_ws(s: &str) -> &str {
    s.trim_matches(is_ws)
}

/// Splits on `sep` where it is not inside a quoted string or `<…>`. Unbalanced quotes or
/// brackets are reported as `None`, as is a separator that is not ASCII.
pub fn split_top(s: &str, sep: char) -> Option<Vec<&str>> {
    // Every delimiter here is ASCII, so scanning bytes finds the same places as scanning
    // chars (UTF-8 continuation bytes never equal an ASCII byte) without decoding: this runs
    // on most headers of every message.
    let sep = u8::try_from(sep).ok().filter(u8::is_ascii)?;
    let mut out = Vec::new();
    let mut depth = 0u32;
    let mut in_quotes = false;
    let mut escaped = false;
    let mut start = 0;
    for (i, &b) in s.as_bytes().iter().enumerate() {
        if in_quotes {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_quotes = false;
            }
            continue;
        }
        match b {
            b'"' => in_quotes = true,
            b'<' => depth += 1,
            b'>' => depth = depth.checked_sub(1)?,
            b if b == sep && depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if in_quotes || depth != 0 {
        return None;
    }
    out.push(&s[start..]);
    Some(out)
}

/// Reads a quoted string at the start of `s` (after optional LWS). Returns the unescaped
/// content and the rest after the closing quote.
pub fn take_quoted(s: &str) -> Option<(String, &str)> {
    let s = s.trim_start_matches(is_ws);
    let body = s.strip_prefix('"')?;
    let mut out = String::new();
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => {
                // quoted-pair: any char except CR/LF may be escaped.
                let (_, e) = chars.next()?;
                if e == '\r' || e == '\n' {
                    return None;
                }
                out.push(e);
            }
            '"' => return Some((out, &body[i + 1..])),
            '\r' | '\n' => return None,
            c => out.push(c),
        }
    }
    None
}

/// Generic parameters `;name[=value]…`: names are tokens (lower-cased for comparison by
/// callers), values are tokens, hosts or quoted strings. LWS around `;` and `=` is allowed.
pub fn parse_params(s: &str) -> Option<Vec<(String, Option<String>)>> {
    let mut out = Vec::new();
    let s = trim_ws(s);
    if s.is_empty() {
        return Some(out);
    }
    let s = s.strip_prefix(';')?;
    for part in split_top(s, ';')? {
        let part = trim_ws(part);
        let (name, value) = match part.split_once('=') {
            Some((n, v)) => (trim_ws(n), Some(trim_ws(v))),
            None => (part, None),
        };
        if !is_token(name) {
            return None;
        }
        let value = match value {
            Some(v) if v.starts_with('"') => {
                let (q, rest) = take_quoted(v)?;
                if !trim_ws(rest).is_empty() {
                    return None;
                }
                Some(format!("\"{}\"", escape_quoted(&q)))
            }
            Some(v) => {
                // gen-value = token / host / quoted-string; hosts include IPv6 references.
                if v.is_empty()
                    || !v
                        .bytes()
                        .all(|b| is_token_byte(b) || b"[]:".contains(&b) || b >= 0x80)
                {
                    return None;
                }
                Some(v.to_owned())
            }
            None => None,
        };
        out.push((name.to_owned(), value));
    }
    Some(out)
}

/// A parameter by case-insensitive name: `Some(None)` for a flag like `;lr`.
pub fn find_param<'a>(
    params: &'a [(String, Option<String>)],
    name: &str,
) -> Option<Option<&'a str>> {
    params
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_deref())
}

/// Sets a parameter, replacing one of the same name or appending it.
pub fn set_param(params: &mut Vec<(String, Option<String>)>, name: &str, value: Option<String>) {
    match params
        .iter_mut()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
    {
        Some(p) => p.1 = value,
        None => params.push((name.to_owned(), value)),
    }
}

/// Escapes `"` and `\` for a quoted string.
pub fn escape_quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Decodes `%XX` escapes; `None` when an escape is broken or the result is not UTF-8.
pub fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Parses a decimal that must fit `u32`; leading zeros allowed (RFC 4475 wsinv).
pub fn parse_u32(s: &str) -> Option<u32> {
    let s = trim_ws(s);
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types_lose_case_parameters_and_white_space() {
        assert_eq!(mime_type("application/sdp"), "application/sdp");
        assert_eq!(
            mime_type(" Application \t/  SDP ;level=1"),
            "application/sdp"
        );
        assert_eq!(
            mime_type("multipart/mixed;boundary=\"a/b\""),
            "multipart/mixed"
        );
        assert_eq!(mime_type("text"), "text");
        assert_eq!(mime_type(""), "");
    }

    #[test]
    fn splits_outside_quotes_and_brackets() {
        assert_eq!(
            split_top(r#""a,b" <sip:x;y=1,2>, <sip:z>"#, ',').unwrap(),
            vec![r#""a,b" <sip:x;y=1,2>"#, " <sip:z>"]
        );
        assert!(split_top("\"open", ',').is_none());
        assert!(split_top("<open", ',').is_none());
        assert!(split_top("close>", ',').is_none());
    }

    #[test]
    fn quoted_strings_unescape() {
        let (q, rest) = take_quoted(r#" "J \"R\" \\" <sip:a>"#).unwrap();
        assert_eq!(q, r#"J "R" \"#);
        assert_eq!(rest, " <sip:a>");
        assert!(take_quoted("\"unterminated").is_none());
    }

    #[test]
    fn params_allow_lws_and_quotes() {
        let p = parse_params(" ;   tag    = 1918181833n ; lr ;x=\"a b\"").unwrap();
        assert_eq!(p[0], ("tag".into(), Some("1918181833n".into())));
        assert_eq!(p[1], ("lr".into(), None));
        assert_eq!(p[2], ("x".into(), Some("\"a b\"".into())));
        assert!(parse_params(";;").is_none());
        assert!(parse_params("x").is_none());
    }

    #[test]
    fn numbers_and_escapes() {
        assert_eq!(parse_u32("0068"), Some(68));
        assert_eq!(parse_u32("4294967296"), None);
        assert_eq!(parse_u32("-1"), None);
        assert_eq!(percent_decode("%75se%72").as_deref(), Some("user"));
        assert_eq!(percent_decode("%zz"), None);
    }
}
