#![allow(clippy::unwrap_used, clippy::expect_used)] // Test code: a panic is a failed test.
//! Realistic offers from real kinds of equipment (tests/data/*.sdp), each answered under one
//! local configuration, with the outcome the table says: codec, payload types, direction and
//! SRTP suite, or the reason for refusing.

use std::net::IpAddr;
use std::path::Path;

use sipx_sdp::crypto::CryptoAttr;
use sipx_sdp::{
    Codec, Direction, KEY_MATERIAL_LEN, MediaConfig, MediaSession, Preference, Rejection,
    RtcpTarget, SessionDescription, SrtpPolicy, SrtpSuite,
};

#[derive(Debug, Clone, Copy)]
enum Local {
    /// `MediaConfig::new` on IPv4: PCMU, PCMA, G722, opus, G729; SRTP allowed.
    Default,
    /// Default, but the offerer's codec order wins.
    Theirs,
    /// Default, on an IPv6 address.
    Ipv6,
    OpusFirst,
    NoG729,
    SrtpDisabled,
    SrtpRequired,
}

fn config(local: Local) -> MediaConfig {
    let v4: IpAddr = "192.0.2.10".parse().unwrap();
    let base = MediaConfig::new(v4, 40000, 99);
    match local {
        Local::Default => base,
        Local::Theirs => MediaConfig {
            preference: Preference::Theirs,
            ..base
        },
        Local::Ipv6 => MediaConfig {
            address: "2001:db8::10".parse().unwrap(),
            ..base
        },
        Local::OpusFirst => base.with_codecs(&[Codec::Opus, Codec::G722, Codec::Pcmu]),
        Local::NoG729 => base.with_codecs(&[Codec::Pcmu, Codec::Pcma, Codec::G722, Codec::Opus]),
        Local::SrtpDisabled => base.with_srtp(SrtpPolicy::Disabled),
        Local::SrtpRequired => base.with_srtp(SrtpPolicy::Required),
    }
}

#[derive(Debug, PartialEq)]
enum Outcome {
    Accepted {
        codec: Codec,
        pt: u8,
        /// telephone-event payload type and clock.
        events: Option<(u8, u32)>,
        direction: Direction,
        srtp: Option<SrtpSuite>,
    },
    Refused(Rejection),
}

fn accepted(
    codec: Codec,
    pt: u8,
    events: Option<(u8, u32)>,
    direction: Direction,
    srtp: Option<SrtpSuite>,
) -> Outcome {
    Outcome::Accepted {
        codec,
        pt,
        events,
        direction,
        srtp,
    }
}

fn cases() -> Vec<(&'static str, Local, Outcome)> {
    use Codec::*;
    use Direction::*;
    use Local::*;
    use SrtpSuite::*;
    let plain = |codec, pt, events| accepted(codec, pt, events, SendRecv, None);
    // PCMU with telephone-event 101 over SRTP: what most secure offers here come to.
    let pcmu_over = |suite| accepted(Pcmu, 0, Some((101, 8000)), SendRecv, Some(suite));
    vec![
        (
            "asterisk_pcmu_pcma",
            Default,
            plain(Pcmu, 0, Some((101, 8000))),
        ),
        (
            "asterisk_pcmu_pcma",
            SrtpRequired,
            Outcome::Refused(Rejection::SrtpRequired),
        ),
        (
            "freeswitch_opus_g722",
            Default,
            plain(Pcmu, 0, Some((101, 8000))),
        ),
        // A phone that writes G.722's audio rate as its clock: still G.722.
        (
            "g722_audio_rate_phone",
            Default,
            plain(G722, 9, Some((101, 8000))),
        ),
        (
            "freeswitch_opus_g722",
            Theirs,
            plain(Opus, 102, Some((101, 8000))),
        ),
        (
            "baresip_plain",
            OpusFirst,
            plain(Opus, 96, Some((101, 8000))),
        ),
        ("baresip_srtp", Default, pcmu_over(AeadAes128Gcm)),
        (
            "baresip_srtp",
            SrtpDisabled,
            Outcome::Refused(Rejection::SrtpNotSupported),
        ),
        ("linphone", Default, plain(Pcmu, 0, Some((100, 8000)))),
        ("linphone", OpusFirst, plain(Opus, 96, Some((101, 48000)))),
        (
            "polycom_vvx_best_effort_srtp",
            Default,
            accepted(
                Pcmu,
                0,
                Some((127, 8000)),
                SendRecv,
                Some(AesCm128HmacSha1_80),
            ),
        ),
        (
            "polycom_vvx_best_effort_srtp",
            SrtpDisabled,
            plain(Pcmu, 0, Some((127, 8000))),
        ),
        (
            "polycom_vvx_best_effort_srtp",
            Theirs,
            accepted(
                G722,
                9,
                Some((127, 8000)),
                SendRecv,
                Some(AesCm128HmacSha1_80),
            ),
        ),
        (
            "cisco_cp8845_with_video",
            Default,
            plain(Pcmu, 0, Some((101, 8000))),
        ),
        (
            "cisco_cp8845_with_video",
            Theirs,
            plain(Opus, 114, Some((101, 8000))),
        ),
        (
            "goip_sim_gateway",
            Default,
            plain(Pcmu, 0, Some((101, 8000))),
        ),
        (
            "goip_sim_gateway",
            Theirs,
            plain(Pcma, 8, Some((101, 8000))),
        ),
        (
            "carrier_sbc_ipv6",
            Default,
            Outcome::Refused(Rejection::IncompatibleAddress),
        ),
        ("carrier_sbc_ipv6", Ipv6, plain(Pcmu, 0, Some((101, 8000)))),
        (
            "pbx_hostname_connection",
            Default,
            Outcome::Refused(Rejection::HostnameAddress),
        ),
        (
            "no_connection_line",
            Default,
            Outcome::Refused(Rejection::NoConnection),
        ),
        (
            "webrtc_chrome",
            Default,
            Outcome::Refused(Rejection::UnsupportedTransport("UDP/TLS/RTP/SAVPF".into())),
        ),
        (
            "hold_sendonly_asterisk",
            Default,
            accepted(Pcmu, 0, Some((101, 8000)), RecvOnly, None),
        ),
        (
            "hold_inactive_freeswitch",
            Default,
            accepted(G722, 9, Some((101, 8000)), Inactive, None),
        ),
        (
            "hold_zero_address",
            Default,
            accepted(Pcma, 8, Some((101, 8000)), RecvOnly, None),
        ),
        (
            "opus_only_gateway",
            Default,
            plain(Opus, 107, Some((108, 48000))),
        ),
        (
            "g729_only_carrier",
            Default,
            plain(G729, 18, Some((101, 8000))),
        ),
        (
            "g729_only_carrier",
            NoG729,
            Outcome::Refused(Rejection::NoCommonCodec),
        ),
        (
            "sbc_savp_many_cryptos",
            Default,
            pcmu_over(AesCm128HmacSha1_80),
        ),
        (
            "sbc_savp_many_cryptos",
            SrtpDisabled,
            Outcome::Refused(Rejection::SrtpNotSupported),
        ),
        (
            "sbc_savp_aes256_only",
            Default,
            pcmu_over(Aes256CmHmacSha1_80),
        ),
        ("cube_savp_gcm256_only", Default, pcmu_over(AeadAes256Gcm)),
        // Teams Direct Routing's side: ICE lines, codecs we lack (SILK, SIREN, RED), comfort
        // noise at two rates, and one key with an MKI beside one without.
        (
            "teams_direct_routing_mki",
            Default,
            pcmu_over(AesCm128HmacSha1_80),
        ),
        (
            "teams_direct_routing_mki",
            SrtpDisabled,
            Outcome::Refused(Rejection::SrtpNotSupported),
        ),
        (
            "twilio_pcmu_only",
            Default,
            plain(Pcmu, 0, Some((101, 8000))),
        ),
        (
            "twilio_pcmu_only",
            OpusFirst,
            plain(Pcmu, 0, Some((101, 8000))),
        ),
        (
            "yealink_g729_first",
            Default,
            plain(Pcmu, 0, Some((101, 8000))),
        ),
        (
            "yealink_g729_first",
            Theirs,
            plain(G729, 18, Some((101, 8000))),
        ),
        // Spaces after the fmtp's semicolons, stereo asked for: still Opus.
        (
            "grandstream_opus_spaced_fmtp",
            OpusFirst,
            plain(Opus, 123, Some((101, 8000))),
        ),
        // 30 ms packets, channel counts written out, the connection line per medium only.
        (
            "avaya_ptime30_channels",
            Theirs,
            plain(Pcma, 8, Some((101, 8000))),
        ),
        (
            "avaya_ptime30_channels",
            SrtpRequired,
            Outcome::Refused(Rejection::SrtpRequired),
        ),
        // Best effort by two audio sections: the secure one while SRTP is allowed, the plain
        // one when it is not.
        (
            "two_audio_lines_savp_then_avp",
            Default,
            pcmu_over(AesCm128HmacSha1_80),
        ),
        (
            "two_audio_lines_savp_then_avp",
            SrtpDisabled,
            plain(Pcmu, 0, Some((101, 8000))),
        ),
    ]
}

fn load(name: &str) -> SessionDescription {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/data/{name}.sdp"));
    let bytes = std::fs::read(&path).unwrap();
    SessionDescription::parse(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn every_fixture_has_a_row() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let rows: Vec<&str> = cases().iter().map(|(name, _, _)| *name).collect();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let stem = path.file_stem().unwrap().to_str().unwrap().to_owned();
        assert!(
            rows.contains(&stem.as_str()),
            "{stem} has no expected outcome"
        );
    }
}

#[test]
fn fixtures_answer_as_expected() {
    for (name, local, want) in cases() {
        let offer = load(name);
        let config = config(local);
        let port = config.rtp_port;
        let mut session = MediaSession::new(config, &[7; KEY_MATERIAL_LEN]).unwrap();
        let got = match session.handle_offer(&offer) {
            Err(rejection) => Outcome::Refused(rejection),
            Ok(answer) => {
                check_answer_shape(name, &offer, &answer, port);
                let n = session.negotiated().unwrap();
                Outcome::Accepted {
                    codec: n.codec.codec,
                    pt: n.codec.payload_type,
                    events: n.telephone_event.map(|e| (e.payload_type, e.clock_rate)),
                    direction: n.direction,
                    srtp: n.srtp.as_ref().map(|s| s.suite),
                }
            }
        };
        assert_eq!(got, want, "{name} with {local:?}");
    }
}

/// RFC 3264 §6: as many sections as the offer, in order, ours the only one with a port, and
/// at most one crypto line, carrying a tag the offer used.
fn check_answer_shape(
    name: &str,
    offer: &SessionDescription,
    answer: &SessionDescription,
    port: u16,
) {
    let reparsed = SessionDescription::parse(answer.to_string().as_bytes()).unwrap();
    assert_eq!(&reparsed, answer, "{name}: answer does not round-trip");
    assert_eq!(answer.media.len(), offer.media.len(), "{name}");
    let live: Vec<_> = answer.media.iter().filter(|m| m.port != 0).collect();
    assert_eq!(live.len(), 1, "{name}: exactly one accepted stream");
    assert_eq!(live[0].port, port);
    for (o, a) in offer.media.iter().zip(&answer.media) {
        assert_eq!(o.kind, a.kind, "{name}");
        assert_eq!(o.proto, a.proto, "{name}");
    }
    let audio = live[0];
    let cryptos: Vec<CryptoAttr> = audio
        .attribute_values("crypto")
        .map(|v| CryptoAttr::parse(v).unwrap())
        .collect();
    assert!(cryptos.len() <= 1, "{name}: one crypto line at most");
    if let Some(ours) = cryptos.first() {
        let offered_tags: Vec<u32> = offer
            .media
            .iter()
            .flat_map(|m| m.attribute_values("crypto"))
            .filter_map(CryptoAttr::parse)
            .filter(|c| c.suite_name == ours.suite_name)
            .map(|c| c.tag)
            .collect();
        assert!(
            offered_tags.contains(&ours.tag),
            "{name}: tag {} not offered",
            ours.tag
        );
    }
}

#[test]
fn g722_reports_its_audio_rate() {
    let mut session = MediaSession::new(config(Local::Default), &[7; KEY_MATERIAL_LEN]).unwrap();
    session
        .handle_offer(&load("hold_inactive_freeswitch"))
        .unwrap();
    let codec = &session.negotiated().unwrap().codec;
    assert_eq!((codec.clock_rate, codec.audio_rate), (8000, 16000));
}

#[test]
fn g722_offered_at_its_audio_rate_is_answered_as_offered() {
    // The answer keeps the offerer's meaning of its payload type (RFC 3264 §6.1); SIPx's
    // RTP clock for it stays RFC 3551's.
    for (name, rtpmap) in [
        ("g722_audio_rate_phone", "9 G722/16000"),
        ("hold_inactive_freeswitch", "9 G722/8000"),
    ] {
        let mut session =
            MediaSession::new(config(Local::Default), &[7; KEY_MATERIAL_LEN]).unwrap();
        let answer = session.handle_offer(&load(name)).unwrap();
        let media = &answer.media[0];
        let written: Vec<_> = media
            .attributes
            .iter()
            .filter(|a| a.name == "rtpmap")
            .filter_map(|a| a.value.as_deref())
            .collect();
        assert!(written.contains(&rtpmap), "{name}: {written:?}");
        assert_eq!(session.negotiated().unwrap().codec.clock_rate, 8000);
    }
}

#[test]
fn remote_addresses_from_fixtures() {
    use sipx_sdp::RtcpTarget;
    let cases: &[(&str, Local, &str, Option<&str>)] = &[
        // a=rtcp with an address (RFC 3605).
        (
            "freeswitch_opus_g722",
            Local::Default,
            "198.51.100.20:21874",
            Some("198.51.100.20:21875"),
        ),
        // a=rtcp with a port only: the RTP address.
        (
            "linphone",
            Local::Default,
            "192.0.2.71:7078",
            Some("192.0.2.71:7079"),
        ),
        // No a=rtcp: the next port up.
        (
            "asterisk_pcmu_pcma",
            Local::Default,
            "203.0.113.5:14372",
            Some("203.0.113.5:14373"),
        ),
        // rtcp-mux offered and supported.
        ("baresip_plain", Local::Default, "192.0.2.33:10486", None),
        // Media-level c= wins over the (missing) session-level one.
        (
            "cisco_cp8845_with_video",
            Local::Default,
            "172.16.1.20:29584",
            Some("172.16.1.20:29585"),
        ),
        (
            "carrier_sbc_ipv6",
            Local::Ipv6,
            "[2001:db8:100::1]:30000",
            Some("[2001:db8:100::1]:30001"),
        ),
    ];
    for &(name, local, rtp, rtcp) in cases {
        let mut session = MediaSession::new(config(local), &[7; KEY_MATERIAL_LEN]).unwrap();
        session.handle_offer(&load(name)).unwrap();
        let n = session.negotiated().unwrap();
        assert_eq!(n.remote_rtp, rtp.parse().unwrap(), "{name}");
        let want = rtcp.map_or(RtcpTarget::Muxed, |a| {
            RtcpTarget::Separate(a.parse().unwrap())
        });
        assert_eq!(n.remote_rtcp, want, "{name}");
    }
}

#[test]
fn an_aes_256_offer_gets_a_256_bit_key_back() {
    for (name, salt) in [("sbc_savp_aes256_only", 14), ("cube_savp_gcm256_only", 12)] {
        let mut session =
            MediaSession::new(config(Local::Default), &[7; KEY_MATERIAL_LEN]).unwrap();
        let answer = session.handle_offer(&load(name)).unwrap();
        let srtp = session.negotiated().unwrap().srtp.clone().unwrap();
        assert_eq!((srtp.remote.key.len(), srtp.remote.salt.len()), (32, salt));
        assert_eq!((srtp.local.key.len(), srtp.local.salt.len()), (32, salt));
        let crypto: Vec<_> = answer.media[0].attribute_values("crypto").collect();
        let line = CryptoAttr::parse(crypto[0]).unwrap();
        assert_eq!(crypto.len(), 1, "{name}");
        assert_eq!(line.tag, 1, "{name}");
        assert_eq!(line.keys[0].key_salt.len(), 32 + salt, "{name}");
    }
}

#[test]
fn srtp_keys_from_the_offer_and_ours() {
    let mut session = MediaSession::new(config(Local::Default), &[7; KEY_MATERIAL_LEN]).unwrap();
    let answer = session
        .handle_offer(&load("sbc_savp_many_cryptos"))
        .unwrap();
    let srtp = session.negotiated().unwrap().srtp.clone().unwrap();
    // Tag 2, the first line SIPx's SRTP can use (tag 1 is AES-256): its key has an MKI of one
    // byte, value 1, so ours gets one of the same length, and the answer's line says so.
    assert_eq!(srtp.remote.key.len(), 16);
    assert_eq!(srtp.remote.salt.len(), 14);
    assert_eq!(&srtp.remote.key[..3], &[0x43, 0x9f, 0x14]);
    assert_eq!(srtp.remote.mki, Some((1, 1)));
    assert_eq!(srtp.remote.mki_bytes(), [1]);
    assert_eq!(srtp.local.mki, Some((1, 1)));
    let crypto: Vec<_> = answer.media[0].attribute_values("crypto").collect();
    assert!(
        crypto.len() == 1
            && crypto[0].starts_with("2 AES_CM_128_HMAC_SHA1_80 inline:")
            && crypto[0].ends_with("|1:1"),
        "{crypto:?}"
    );
    assert_eq!(srtp.local.key, vec![7; 16]);
    assert_eq!(srtp.local.salt, vec![7; 14]);
}

#[test]
fn the_audio_address_tells_which_family_to_answer_from() {
    let cases: &[(&str, Option<&str>)] = &[
        ("carrier_sbc_ipv6", Some("2001:db8:100::1")),
        // The audio stream's own c= line (a session without one).
        ("cisco_cp8845_with_video", Some("172.16.1.20")),
        ("linphone", Some("192.0.2.71")),
        // The hold address and a host name say nothing about a family.
        ("hold_zero_address", None),
        ("pbx_hostname_connection", None),
        ("no_connection_line", None),
    ];
    for &(name, want) in cases {
        let got = load(name).audio_address();
        assert_eq!(got, want.map(|a| a.parse().unwrap()), "{name}");
    }
}

/// What the outcome table does not show for some fixtures: the packetisation, RTCP's target,
/// the key chosen among several, which of two sections is live.
#[test]
fn the_details_of_some_fixtures() {
    let answer = |name: &str, local: Local| {
        let mut session = MediaSession::new(config(local), &[7; KEY_MATERIAL_LEN]).unwrap();
        let answer = session.handle_offer(&load(name)).unwrap();
        (answer, session.negotiated().unwrap().clone())
    };
    // 30 ms packets asked for are sent; RTCP goes where `a=rtcp` says.
    let (_, n) = answer("avaya_ptime30_channels", Local::Theirs);
    assert_eq!(n.ptime, 30);
    assert_eq!(n.remote_rtp, "203.0.113.40:35000".parse().unwrap());
    assert_eq!(
        n.remote_rtcp,
        RtcpTarget::Separate("203.0.113.40:35001".parse().unwrap())
    );
    // rtcp-mux offered beside `a=rtcp`: muxed, and said so. The key taken is one the offer
    // gave, with its MKI when it had one (tag 2 has MKI 1, length 1; tag 3 none).
    let (a, n) = answer("teams_direct_routing_mki", Local::Default);
    assert_eq!(n.remote_rtcp, RtcpTarget::Muxed);
    let live = a.media.iter().find(|m| m.port != 0).unwrap();
    assert!(live.has_attribute("rtcp-mux"));
    let ours = CryptoAttr::parse(live.attribute_values("crypto").next().unwrap()).unwrap();
    let remote = n.srtp.unwrap().remote;
    match ours.tag {
        2 => assert_eq!(remote.mki, Some((1, 1))),
        3 => assert_eq!(remote.mki, None),
        tag => panic!("tag {tag} was not offered for this suite"),
    }
    // Best effort by two sections: the secure one is live while SRTP is allowed, else the
    // plain one.
    for (local, live_index) in [(Local::Default, 0), (Local::SrtpDisabled, 1)] {
        let (a, _) = answer("two_audio_lines_savp_then_avp", local);
        let ports: Vec<bool> = a.media.iter().map(|m| m.port != 0).collect();
        let mut expected = vec![false, false];
        expected[live_index] = true;
        assert_eq!(ports, expected, "{local:?}");
    }
}
