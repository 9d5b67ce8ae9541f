#![allow(clippy::unwrap_used, clippy::expect_used)] // Test code: a panic is a failed test.
//! Parser and serialiser edge cases: what real equipment sends, and what must be refused.

use sipx_sdp::attr::Direction;
use sipx_sdp::limits::{MAX_FORMATS, MAX_LINES, MAX_MEDIA, MAX_SDP_SIZE};
use sipx_sdp::{SdpError, SessionDescription};

const BASIC: &str = "v=0\r\no=- 1 2 IN IP4 192.0.2.1\r\ns=call\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";

fn parse(text: &str) -> SessionDescription {
    SessionDescription::parse(text.as_bytes()).unwrap_or_else(|e| panic!("{e}: {text:?}"))
}

#[test]
fn lf_only_and_trailing_whitespace_parse_like_crlf() {
    let lf = BASIC.replace("\r\n", "\n");
    let blanks = BASIC.replace("\r\n", " \t\r\n");
    let reference = parse(BASIC);
    assert_eq!(parse(&lf), reference);
    assert_eq!(parse(&blanks), reference);
    // Serialising gives CRLF whatever came in, and exactly the original for canonical input.
    assert_eq!(parse(&lf).to_string(), BASIC);
}

#[test]
fn origin_numbers_wider_than_64_bits_are_taken() {
    let wide = BASIC.replace(
        "o=- 1 2 ",
        "o=- 3927362733459873465123 18446744073709551616000 ",
    );
    let sdp = parse(&wide);
    assert_eq!(sdp.origin.session_id, u64::MAX);
    assert_eq!(sdp.origin.session_version, u64::MAX);
    assert!(SessionDescription::parse(BASIC.replace("o=- 1 2 ", "o=- 1 -2 ").as_bytes()).is_err());
}

#[test]
fn missing_s_and_t_are_filled_in() {
    let sdp = parse("v=0\no=- 1 1 IN IP4 192.0.2.1\nc=IN IP4 192.0.2.1\nm=audio 4000 RTP/AVP 8\n");
    assert_eq!(sdp.session_name, "-");
    assert!(sdp.timing.is_empty());
    let text = sdp.to_string();
    assert!(text.contains("\r\ns=-\r\n"), "{text}");
    assert!(text.contains("\r\nt=0 0\r\n"), "{text}");
}

#[test]
fn unknown_lines_and_attributes_round_trip() {
    let text = "v=0\r\no=- 1 2 IN IP4 192.0.2.1\r\ns=call\r\ni=info\r\nu=http://example.com/\r\nc=IN IP4 192.0.2.1\r\nb=CT:128\r\nt=0 0\r\nr=7d 1h 0 25h\r\nk=prompt\r\nx=vendor thing\r\na=tool:softphone 1.0\r\na=X-nat:0\r\nm=audio 4000/2 RTP/AVP 0 8\r\ni=voice\r\nc=IN IP4 192.0.2.2\r\nb=AS:64\r\nb=TIAS:64000\r\nk=clear:secret\r\na=rtpmap:0 PCMU/8000\r\na=X-custom\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:Q58UkAPCatLSRwKyxIjxLsijdiIza/dGI2kZ3qIj\r\na=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:g7r/4PkHXnZ8+0Og/QKRsU1qPIieRvITZAtcoGW8\r\n";
    let sdp = parse(text);
    assert_eq!(sdp.to_string(), text);
    let m = &sdp.media[0];
    assert_eq!((m.port, m.port_count), (4000, Some(2)));
    assert_eq!(m.attribute_values("crypto").count(), 2);
    assert_eq!(m.bandwidths.len(), 2);
    assert_eq!(sdp.bandwidths[0].value, 128);
    assert_eq!(sdp.other.len(), 2);
}

#[test]
fn connection_and_direction_levels() {
    let text = "v=0\no=- 1 1 IN IP6 2001:db8::1\ns=-\nc=IN IP6 2001:db8::1\nt=0 0\na=sendonly\nm=audio 4000 RTP/AVP 0\nm=audio 4002 RTP/AVP 0\nc=IN IP4 224.2.1.1/127/3\na=inactive\nm=video 0 RTP/AVP 96\n";
    let sdp = parse(text);
    let [first, second, video] = &sdp.media[..] else {
        panic!("three sections");
    };
    // Session level applies where the media level says nothing; media level wins.
    assert_eq!(
        sdp.connection_for(first).unwrap().ip(),
        Some("2001:db8::1".parse().unwrap())
    );
    assert_eq!(
        sdp.connection_for(second).unwrap().ip(),
        Some("224.2.1.1".parse().unwrap())
    );
    assert_eq!(sdp.direction_for(first), Direction::SendOnly);
    assert_eq!(sdp.direction_for(second), Direction::Inactive);
    assert!(video.is_disabled());
}

#[test]
fn connection_ip_needs_matching_family() {
    let cases = [
        ("IN IP4 192.0.2.1", Some("192.0.2.1")),
        ("IN IP6 ::1", Some("::1")),
        ("IN IP4 ::1", None),
        ("IN IP4 host.example.com", None),
        ("ATM NSAP 47.0091", None),
        ("IN IP4 0.0.0.0", Some("0.0.0.0")),
    ];
    for (line, want) in cases {
        let sdp = parse(&format!("v=0\no=- 1 1 IN IP4 192.0.2.1\nc={line}\n"));
        let got = sdp.connection.as_ref().and_then(|c| c.ip());
        assert_eq!(got, want.map(|w| w.parse().unwrap()), "{line}");
    }
}

#[test]
fn malformed_input_names_line_and_reason() {
    let o = "o=- 1 1 IN IP4 192.0.2.1";
    let cases: &[(String, usize, &str)] = &[
        ("v=0\ns=x\n".into(), 0, "no o= line"),
        ("v=0\no=- 1 IN IP4 192.0.2.1\n".into(), 2, "six fields"),
        ("v=0\no=- x 1 IN IP4 192.0.2.1\n".into(), 2, "session id"),
        (format!("v=0\n{o}\n{o}\n"), 3, "second o="),
        ("v=1\n".into(), 1, "version"),
        (
            format!("v=0\n{o}\nthis is not sdp\n"),
            3,
            "<letter>=<value>",
        ),
        (format!("v=0\n{o}\n=x\n"), 3, "<letter>=<value>"),
        (format!("v=0\n{o}\nc=IN IP4\n"), 3, "three fields"),
        (format!("v=0\n{o}\nb=AS\n"), 3, "<type>:<value>"),
        (format!("v=0\n{o}\nb=AS:lots\n"), 3, "not a number"),
        (format!("v=0\n{o}\nm=audio\n"), 3, "m= needs"),
        (format!("v=0\n{o}\nm=audio 70000 RTP/AVP 0\n"), 3, "port"),
        (
            format!("v=0\n{o}\nm=audio 4000/x RTP/AVP 0\n"),
            3,
            "port count",
        ),
        (
            format!("v=0\n{o}\nm=audio 4000 RTP/AVP 0\ns=late\n"),
            4,
            "inside a media section",
        ),
        (format!("v=0\n{o}\na=x\0y\n"), 3, "control character"),
        (format!("v=0\n{o}\na=x\ry\n"), 3, "control character"),
    ];
    for (text, line, reason) in cases {
        match SessionDescription::parse(text.as_bytes()) {
            Err(SdpError::Malformed { line: l, reason: r }) => {
                assert_eq!(l, *line, "{text:?}: {r}");
                assert!(r.contains(reason), "{text:?}: {r}");
            }
            other => panic!("{text:?}: {other:?}"),
        }
    }
    let mut bytes = format!("v=0\n{o}\n").into_bytes();
    bytes.extend_from_slice(b"a=\xff\xfe\n");
    assert!(matches!(
        SessionDescription::parse(&bytes),
        Err(SdpError::Malformed { line: 3, .. })
    ));
}

#[test]
fn free_text_in_another_charset_is_taken_and_other_lines_are_not() {
    // `s=` in Latin-1 ("Caf\xe9"), as some PBXs write a session name.
    let mut bytes = b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=Caf".to_vec();
    bytes.extend_from_slice(b"\xe9\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n");
    let sdp = SessionDescription::parse(&bytes).unwrap();
    assert!(sdp.session_name.starts_with("Caf"), "{}", sdp.session_name);
    assert_eq!(sdp.media.len(), 1);
    // Anywhere SIPx reads, bytes that are not UTF-8 are still malformed.
    let mut bad = b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCM".to_vec();
    bad.extend_from_slice(b"\xe9/8000\r\n");
    assert!(SessionDescription::parse(&bad).is_err());
}

#[test]
fn an_attribute_without_a_name_is_dropped_not_fatal() {
    let text = "v=0\no=- 1 1 IN IP4 192.0.2.1\ns=-\na=\nc=IN IP4 192.0.2.1\nt=0 0\n\
                m=audio 4000 RTP/AVP 0\na=\na=:orphan\na=sendonly\n";
    let sdp = SessionDescription::parse(text.as_bytes()).unwrap();
    assert!(sdp.attributes.is_empty(), "{:?}", sdp.attributes);
    let names: Vec<_> = sdp.media[0]
        .attributes
        .iter()
        .map(|a| a.name.as_str())
        .collect();
    assert_eq!(names, ["sendonly"]);
}

#[test]
fn limits_refuse_hostile_sizes() {
    let head = "v=0\no=- 1 1 IN IP4 192.0.2.1\n";
    let huge = format!("{head}a={}\n", "x".repeat(MAX_SDP_SIZE));
    let many_lines = format!("{head}{}", "a=x\n".repeat(MAX_LINES));
    let many_media = format!("{head}{}", "m=audio 0 RTP/AVP 0\n".repeat(MAX_MEDIA + 1));
    let formats = (0..=MAX_FORMATS)
        .map(|i| (i % 128).to_string())
        .collect::<Vec<_>>();
    let many_formats = format!("{head}m=audio 1 RTP/AVP {}\n", formats.join(" "));
    for text in [huge, many_lines, many_media, many_formats] {
        let got = SessionDescription::parse(text.as_bytes());
        assert!(matches!(got, Err(SdpError::TooLarge(_))), "{got:?}");
    }
    // Just under the limits is fine.
    let ok = format!("{head}{}", "m=audio 0 RTP/AVP 0\n".repeat(MAX_MEDIA));
    assert_eq!(parse(&ok).media.len(), MAX_MEDIA);
}

#[test]
fn blank_lines_are_skipped() {
    let text = format!(
        "\r\n{}\r\n\r\n",
        BASIC.replace("s=call\r\n", "s=call\r\n\r\n")
    );
    assert_eq!(parse(&text), parse(BASIC));
}

#[test]
fn typed_media_helpers() {
    let sdp = parse(
        "v=0\no=- 1 1 IN IP4 192.0.2.1\nm=audio 4000 RTP/AVP 96 0 abc\na=rtpmap:96 opus/48000/2\na=fmtp:96 useinbandfec=1\na=ptime:20.0\na=maxptime:60\na=rtcp-mux\na=rtcp:4001\n",
    );
    let m = &sdp.media[0];
    assert_eq!(m.payload_types().collect::<Vec<_>>(), vec![96, 0]);
    assert_eq!(m.rtpmap(96).unwrap().channels, Some(2));
    assert_eq!(m.fmtp(96).as_deref(), Some("useinbandfec=1"));
    assert_eq!((m.ptime(), m.maxptime()), (Some(20), Some(60)));
    assert!(m.rtcp_mux());
    assert_eq!(m.rtcp().unwrap().port, 4001);
}
