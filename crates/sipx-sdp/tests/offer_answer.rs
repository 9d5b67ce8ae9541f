#![allow(clippy::unwrap_used, clippy::expect_used)] // Test code: a panic is a failed test.
//! The offer/answer engine: two `MediaSession`s talking to each other, and hand-written peers.

use std::net::IpAddr;

use sipx_sdp::{
    Codec, Direction, KEY_MATERIAL_LEN, LocalCodec, MediaConfig, MediaSession, Rejection, SdpError,
    SessionDescription, SrtpPolicy, SrtpSuite,
};

fn config(ip: &str, port: u16) -> MediaConfig {
    MediaConfig::new(ip.parse::<IpAddr>().unwrap(), port, 1000 + u64::from(port))
}

fn alice() -> MediaSession {
    MediaSession::new(config("192.0.2.1", 4000), &[1; KEY_MATERIAL_LEN]).unwrap()
}

fn bob() -> MediaSession {
    MediaSession::new(config("192.0.2.2", 6000), &[2; KEY_MATERIAL_LEN]).unwrap()
}

fn parse(text: &str) -> SessionDescription {
    SessionDescription::parse(text.as_bytes()).unwrap()
}

/// The session-level lines of a hand-written peer at 192.0.2.9.
const PEER_HEAD: &str = "v=0\no=- 1 1 IN IP4 192.0.2.9\ns=-\nc=IN IP4 192.0.2.9\nt=0 0\n";

/// A peer's description: [`PEER_HEAD`] followed by `media`.
fn peer(media: &str) -> SessionDescription {
    parse(&format!("{PEER_HEAD}{media}"))
}

/// One full exchange, `offerer` → `answerer`, through serialised text as on the wire.
fn exchange(offerer: &mut MediaSession, answerer: &mut MediaSession) -> SessionDescription {
    let offer = parse(&offerer.create_offer().unwrap().to_string());
    let answer = parse(&answerer.handle_offer(&offer).unwrap().to_string());
    offerer.handle_answer(&answer).unwrap();
    answer
}

fn audio_direction(sdp: &SessionDescription) -> Direction {
    sdp.direction_for(&sdp.media[0])
}

#[test]
fn first_offer_lists_everything_we_support() {
    let offer = alice().create_offer().unwrap().to_string();
    let expected = [
        "v=0",
        "o=sipx 5000 1 IN IP4 192.0.2.1",
        "s=sipx",
        "c=IN IP4 192.0.2.1",
        "t=0 0",
        "m=audio 4000 RTP/AVP 0 8 9 111 18 101 110",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:8 PCMA/8000",
        "a=rtpmap:9 G722/8000",
        "a=rtpmap:111 opus/48000/2",
        "a=fmtp:111 maxplaybackrate=16000;sprop-maxcapturerate=16000;useinbandfec=1",
        "a=rtpmap:18 G729/8000",
        "a=fmtp:18 annexb=no",
        "a=rtpmap:101 telephone-event/8000",
        "a=fmtp:101 0-15",
        "a=rtpmap:110 telephone-event/48000",
        "a=fmtp:110 0-15",
        "a=ptime:20",
        "a=rtcp-mux",
        "a=crypto:1 AEAD_AES_128_GCM inline:AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQ==",
        "a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEB",
        "a=crypto:3 AES_CM_128_HMAC_SHA1_32 inline:AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEB",
        "a=sendrecv",
    ];
    assert_eq!(offer, expected.map(|l| format!("{l}\r\n")).concat());
}

#[test]
fn early_offer_both_sides_agree() {
    let (mut a, mut b) = (alice(), bob());
    exchange(&mut a, &mut b);
    let (na, nb) = (a.negotiated().unwrap(), b.negotiated().unwrap());
    assert_eq!(na.codec.codec, Codec::Pcmu);
    assert_eq!(nb.codec.payload_type, na.codec.payload_type);
    assert_eq!(na.remote_rtp, "192.0.2.2:6000".parse().unwrap());
    assert_eq!(nb.remote_rtp, "192.0.2.1:4000".parse().unwrap());
    assert_eq!(na.remote_rtcp, sipx_sdp::RtcpTarget::Muxed);
    assert_eq!(na.telephone_event.unwrap().payload_type, 101);
    // SRTP allowed on both sides: best-effort crypto in RTP/AVP is taken, strongest suite.
    let (sa, sb) = (na.srtp.as_ref().unwrap(), nb.srtp.as_ref().unwrap());
    assert_eq!(sa.suite, SrtpSuite::AeadAes128Gcm);
    assert_eq!(
        sa.local, sb.remote,
        "what alice encrypts with, bob decrypts with"
    );
    assert_eq!(sa.remote, sb.local);
    assert_eq!(sa.local.key, vec![1; 16]);
    assert_eq!(sa.remote.salt, vec![2; 12]);
    assert_eq!(na.proto, "RTP/AVP");
}

#[test]
fn late_offer_is_answered_in_the_ack() {
    // INVITE without SDP: the UAS (bob) offers in its 200, the answer comes in the ACK.
    let (mut uac, mut uas) = (alice(), bob());
    let offer_in_200 = uas.create_offer().unwrap();
    assert!(uas.offer_pending());
    let answer_in_ack = uac.handle_offer(&offer_in_200).unwrap();
    let negotiated = uas.handle_answer(&answer_in_ack).unwrap();
    assert!(!uas.offer_pending());
    assert_eq!(negotiated.remote_rtp, "192.0.2.1:4000".parse().unwrap());
    assert_eq!(uac.negotiated().unwrap().codec.codec, Codec::Pcmu);
}

#[test]
fn api_misuse_and_glare() {
    let mut a = alice();
    let some_answer = bob().create_offer().unwrap();
    assert!(matches!(
        a.handle_answer(&some_answer),
        Err(SdpError::ApiMisuse(_))
    ));
    a.create_offer().unwrap();
    assert!(matches!(a.create_offer(), Err(SdpError::ApiMisuse(_))));
    // The peer offers while our offer is out: 491.
    let theirs = bob().create_offer().unwrap();
    let glare = a.handle_offer(&theirs).unwrap_err();
    assert_eq!((glare.clone(), glare.status()), (Rejection::Glare, 491));
    a.rollback_offer();
    assert!(a.handle_offer(&theirs).is_ok());

    let short = MediaSession::new(config("192.0.2.1", 4000), &[0; 10]);
    assert!(matches!(short, Err(SdpError::ApiMisuse(_))));
    let no_codecs = MediaConfig {
        codecs: vec![],
        ..config("192.0.2.1", 4000)
    };
    assert!(matches!(
        MediaSession::new(no_codecs, &[0; KEY_MATERIAL_LEN]),
        Err(SdpError::ApiMisuse(_))
    ));
    // SRTP disabled needs no key material.
    assert!(
        MediaSession::new(
            config("192.0.2.1", 4000).with_srtp(SrtpPolicy::Disabled),
            &[]
        )
        .is_ok()
    );
}

#[test]
fn versions_move_only_when_our_sdp_changes() {
    let (mut a, mut b) = (alice(), bob());
    let versions = |sdp: &SessionDescription| (sdp.origin.session_id, sdp.origin.session_version);

    let first = a.create_offer().unwrap();
    let answer = b.handle_offer(&first).unwrap();
    a.handle_answer(&answer).unwrap();
    assert_eq!(versions(&first), (5000, 1));
    assert_eq!(versions(&answer), (7000, 1));

    // Unchanged re-offer (a session refresh): same version.
    let refresh = a.create_offer().unwrap();
    assert_eq!(versions(&refresh), (5000, 1));
    let same_answer = b.handle_offer(&refresh).unwrap();
    assert_eq!(versions(&same_answer), (7000, 1));
    a.handle_answer(&same_answer).unwrap();

    // Hold changes our SDP: one up; the answer changes too.
    a.set_direction(Direction::SendOnly);
    let hold = a.create_offer().unwrap();
    assert_eq!(versions(&hold), (5000, 2));
    let hold_answer = b.handle_offer(&hold).unwrap();
    assert_eq!(versions(&hold_answer), (7000, 2));
    a.handle_answer(&hold_answer).unwrap();

    // Bob re-offers (roles swap): his offer differs from his last answer, so it moves on.
    let bobs = b.create_offer().unwrap();
    assert_eq!(versions(&bobs), (7000, 3));
    let alices_answer = a.handle_offer(&bobs).unwrap();
    assert_eq!(versions(&alices_answer), (5000, 3));
}

#[test]
fn a_refresh_offer_repeats_what_was_agreed_and_keeps_its_version() {
    let (mut a, mut b) = (alice(), bob());
    // Bob's offer lists every codec; Alice answers with the one she takes.
    let offer = b.create_offer().unwrap();
    let answer = a.handle_offer(&offer).unwrap();
    b.handle_answer(&answer).unwrap();
    let agreed = a.negotiated().unwrap().codec.clone();

    let refresh = a.create_refresh_offer().unwrap();
    assert_eq!(refresh, answer, "the answer again, version and all");
    assert!(a.offer_pending());
    let reply = b.handle_offer(&parse(&refresh.to_string())).unwrap();
    let negotiated = a.handle_answer(&parse(&reply.to_string())).unwrap();
    assert_eq!(negotiated.codec, agreed);
    assert_eq!(negotiated.direction, Direction::SendRecv);

    // Put on hold by the peer (we answered recvonly): the refresh keeps saying so.
    let mut hold = b.create_offer().unwrap();
    hold.media[0].attributes.retain(|x| x.name != "sendrecv");
    b.rollback_offer();
    let held = parse(&hold.to_string().replace("m=audio", "a=sendonly\nm=audio"));
    let held_answer = a.handle_offer(&held).unwrap();
    assert_eq!(audio_direction(&held_answer), Direction::RecvOnly);
    let refresh = a.create_refresh_offer().unwrap();
    assert_eq!(audio_direction(&refresh), Direction::RecvOnly);
    a.rollback_offer();

    // Our own hold since: a full offer saying it, one version up.
    a.set_direction(Direction::SendOnly);
    let ours = a.create_refresh_offer().unwrap();
    assert_eq!(audio_direction(&ours), Direction::SendOnly);
    assert_eq!(
        ours.origin.session_version,
        held_answer.origin.session_version + 1
    );

    // Before anything was sent there is nothing to repeat: a full offer.
    let mut fresh = alice();
    assert_eq!(
        fresh.create_refresh_offer().unwrap(),
        alice().create_offer().unwrap()
    );
    assert!(matches!(
        fresh.create_refresh_offer(),
        Err(SdpError::ApiMisuse(_))
    ));
}

#[test]
fn hold_transitions() {
    use Direction::*;
    // (what alice asks for, what bob's answer says, alice's result, bob's result)
    let cases = [
        (SendOnly, RecvOnly, SendOnly, RecvOnly),
        (Inactive, Inactive, Inactive, Inactive),
        (RecvOnly, SendOnly, RecvOnly, SendOnly),
        (SendRecv, SendRecv, SendRecv, SendRecv),
    ];
    for (asked, answered, alice_gets, bob_gets) in cases {
        let (mut a, mut b) = (alice(), bob());
        exchange(&mut a, &mut b);
        a.set_direction(asked);
        let answer = exchange(&mut a, &mut b);
        assert_eq!(audio_direction(&answer), answered, "{asked}");
        let (na, nb) = (a.negotiated().unwrap(), b.negotiated().unwrap());
        assert_eq!(
            (na.direction, nb.direction),
            (alice_gets, bob_gets),
            "{asked}"
        );
        assert_eq!(nb.may_send(), bob_gets.sends());
        assert_eq!(nb.should_receive(), bob_gets.receives());
    }
    // Resume after hold.
    let (mut a, mut b) = (alice(), bob());
    a.set_direction(SendOnly);
    exchange(&mut a, &mut b);
    assert!(!b.negotiated().unwrap().may_send());
    a.set_direction(SendRecv);
    exchange(&mut a, &mut b);
    assert!(b.negotiated().unwrap().may_send());
    // The answerer on hold answers a sendrecv offer with sendonly.
    let (mut a, mut b) = (alice(), bob());
    b.set_direction(SendOnly);
    let answer = exchange(&mut a, &mut b);
    assert_eq!(audio_direction(&answer), SendOnly);
    assert_eq!(a.negotiated().unwrap().direction, RecvOnly);
}

#[test]
fn old_style_hold_address_in_an_answer() {
    let mut a = alice();
    a.create_offer().unwrap();
    let answer = parse(
        "v=0\no=- 1 1 IN IP4 192.0.2.9\ns=-\nc=IN IP4 0.0.0.0\nt=0 0\nm=audio 6000 RTP/AVP 0\n",
    );
    let n = a.handle_answer(&answer).unwrap();
    assert_eq!(n.direction, Direction::RecvOnly);
    assert!(!n.may_send());
}

#[test]
fn srtp_policy_matrix() {
    use SrtpPolicy::*;
    #[derive(Debug, PartialEq)]
    enum Want {
        Plain,
        Srtp,
        Refused(Rejection),
    }
    let cases = [
        (Disabled, Disabled, "RTP/AVP", Want::Plain),
        (Disabled, Allowed, "RTP/AVP", Want::Plain),
        (
            Disabled,
            Required,
            "RTP/AVP",
            Want::Refused(Rejection::SrtpRequired),
        ),
        (Allowed, Disabled, "RTP/AVP", Want::Plain),
        (Allowed, Allowed, "RTP/AVP", Want::Srtp),
        (Allowed, Required, "RTP/AVP", Want::Srtp),
        (
            Required,
            Disabled,
            "RTP/SAVP",
            Want::Refused(Rejection::SrtpNotSupported),
        ),
        (Required, Allowed, "RTP/SAVP", Want::Srtp),
        (Required, Required, "RTP/SAVP", Want::Srtp),
    ];
    for (offerer, answerer, proto, want) in cases {
        let mut a = MediaSession::new(
            config("192.0.2.1", 4000).with_srtp(offerer),
            &[1; KEY_MATERIAL_LEN],
        )
        .unwrap();
        let mut b = MediaSession::new(
            config("192.0.2.2", 6000).with_srtp(answerer),
            &[2; KEY_MATERIAL_LEN],
        )
        .unwrap();
        let offer = a.create_offer().unwrap();
        assert_eq!(offer.media[0].proto, proto, "{offerer:?}");
        let got = match b.handle_offer(&offer) {
            Err(r) => Want::Refused(r),
            Ok(answer) => {
                let n = a.handle_answer(&answer).unwrap();
                let crypto_lines = answer.media[0].attribute_values("crypto").count();
                assert_eq!(
                    crypto_lines,
                    usize::from(n.srtp.is_some()),
                    "{offerer:?}/{answerer:?}"
                );
                assert_eq!(n.srtp.is_some(), b.negotiated().unwrap().srtp.is_some());
                if n.srtp.is_some() {
                    Want::Srtp
                } else {
                    Want::Plain
                }
            }
        };
        assert_eq!(got, want, "{offerer:?} offers to {answerer:?}");
    }
}

#[test]
fn srtp_suite_follows_our_order_and_skips_unknown() {
    let offer = peer(
        "m=audio 5000 RTP/SAVP 0\na=crypto:7 AES_192_CM_HMAC_SHA1_80 inline:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\na=crypto:8 AES_CM_128_HMAC_SHA1_32 inline:Q58UkAPCatLSRwKyxIjxLsijdiIza/dGI2kZ3qIj\na=crypto:9 AES_CM_128_HMAC_SHA1_80 inline:Q58UkAPCatLSRwKyxIjxLsijdiIza/dGI2kZ3qIj\n",
    );
    let mut b = bob();
    let answer = b.handle_offer(&offer).unwrap();
    let lines: Vec<&str> = answer.media[0].attribute_values("crypto").collect();
    assert_eq!(
        lines,
        ["9 AES_CM_128_HMAC_SHA1_80 inline:AgICAgICAgICAgICAgICAgICAgICAgICAgICAgIC"]
    );

    let mut config = config("192.0.2.2", 6000);
    config.srtp_suites = vec![SrtpSuite::AesCm128HmacSha1_32];
    let mut b = MediaSession::new(config, &[2; KEY_MATERIAL_LEN]).unwrap();
    let answer = b.handle_offer(&offer).unwrap();
    assert!(
        answer.media[0]
            .attribute_values("crypto")
            .next()
            .unwrap()
            .starts_with("8 AES_CM_128_HMAC_SHA1_32 ")
    );

    // Only an unknown suite in RTP/SAVP: nothing we can use.
    let unknown = peer(
        "m=audio 5000 RTP/SAVP 0\na=crypto:1 F8_128_HMAC_SHA1_80 inline:Q58UkAPCatLSRwKyxIjxLsijdiIza/dGI2kZ3qIj\n",
    );
    assert_eq!(
        bob().handle_offer(&unknown).unwrap_err(),
        Rejection::NoCommonCryptoSuite
    );
}

#[test]
fn answers_to_our_offer_that_do_not_work() {
    let offerer = |policy| {
        MediaSession::new(
            config("192.0.2.1", 4000).with_srtp(policy),
            &[1; KEY_MATERIAL_LEN],
        )
        .unwrap()
    };
    let cases = [
        (
            SrtpPolicy::Allowed,
            "m=audio 0 RTP/AVP 0\n",
            Rejection::NoAudio,
        ),
        (
            SrtpPolicy::Allowed,
            "m=audio 5000 RTP/AVP 3\n",
            Rejection::NoCommonCodec,
        ),
        (
            SrtpPolicy::Required,
            "m=audio 5000 RTP/SAVP 0\n",
            Rejection::SrtpRequired,
        ),
        (
            SrtpPolicy::Allowed,
            "m=audio 5000 RTP/SAVP 0\n",
            Rejection::NoCommonCryptoSuite,
        ),
        // A crypto tag we never offered.
        (
            SrtpPolicy::Required,
            "m=audio 5000 RTP/SAVP 0\na=crypto:9 AES_CM_128_HMAC_SHA1_80 inline:Q58UkAPCatLSRwKyxIjxLsijdiIza/dGI2kZ3qIj\n",
            Rejection::SrtpRequired,
        ),
        (
            SrtpPolicy::Allowed,
            "m=audio 5000 TCP/RTP/AVP 0\n",
            Rejection::UnsupportedTransport("TCP/RTP/AVP".into()),
        ),
    ];
    for (policy, media, want) in cases {
        let mut a = offerer(policy);
        a.create_offer().unwrap();
        let got = a.handle_answer(&peer(media));
        assert_eq!(got, Err(SdpError::Rejected(want)), "{media}");
        assert!(!a.offer_pending(), "the exchange is over either way");
    }
    let mut a = offerer(SrtpPolicy::Allowed);
    a.create_offer().unwrap();
    assert_eq!(
        a.handle_answer(&peer("")),
        Err(SdpError::Rejected(Rejection::NoAudio))
    );
}

#[test]
fn answerer_keeps_offerer_payload_numbers_and_reoffers_with_them() {
    let offer = peer(
        "m=audio 5000 RTP/AVP 107 111 0\na=rtpmap:107 OPUS/48000/2\na=rtpmap:111 telephone-event/48000\n",
    );
    let mut b = MediaSession::new(
        config("192.0.2.2", 6000).with_codecs(&[Codec::Opus, Codec::Pcmu]),
        &[2; KEY_MATERIAL_LEN],
    )
    .unwrap();
    let answer = b.handle_offer(&offer).unwrap();
    assert_eq!(answer.media[0].formats, ["107", "111"]);
    assert_eq!(answer.media[0].rtpmap(107).unwrap().encoding, "opus");
    // Bob's own re-offer uses the session's numbers: opus 107, telephone-event/48000 111, and
    // moves nothing else onto them.
    let reoffer = b.create_offer().unwrap();
    let m = &reoffer.media[0];
    assert_eq!(m.formats, ["107", "0", "101", "111"]);
    assert_eq!(m.rtpmap(111).unwrap().encoding, "telephone-event");
}

#[test]
fn answer_picks_first_codec_of_the_answer_we_offered() {
    let mut a = alice();
    a.create_offer().unwrap();
    let answer = peer(
        "m=audio 5000 RTP/AVP 98 9 8 101\na=rtpmap:98 iLBC/8000\na=rtpmap:101 telephone-event/8000\na=ptime:30\n",
    );
    let n = a.handle_answer(&answer).unwrap();
    assert_eq!((n.codec.codec, n.codec.payload_type), (Codec::G722, 9));
    assert_eq!(n.telephone_event.unwrap().payload_type, 101);
    assert_eq!(n.ptime, 30);
    assert_eq!(
        n.remote_rtcp,
        sipx_sdp::RtcpTarget::Separate("192.0.2.9:5001".parse().unwrap())
    );
    assert!(n.srtp.is_none());
}

/// RFC 3264 §5.1: an answer listing several codecs may be sent with any of them. The first
/// is ours to send; the others we offered come back as codecs the peer may change to, with
/// their numbers each way. What we did not offer (iLBC) or answered twice is not among them.
#[test]
fn the_other_codecs_of_an_answer_are_ones_the_peer_may_change_to() {
    let mut a = alice();
    a.create_offer().unwrap();
    let answer = peer(
        "m=audio 5000 RTP/AVP 8 98 97 9 101\na=rtpmap:98 iLBC/8000\na=rtpmap:97 PCMU/8000\n\
         a=rtpmap:101 telephone-event/8000\n",
    );
    let n = a.handle_answer(&answer).unwrap();
    assert_eq!(n.codec.codec, Codec::Pcma);
    let others: Vec<_> = n
        .also_received
        .iter()
        .map(|c| (c.codec, c.payload_type, c.receive_payload_type))
        .collect();
    assert_eq!(others, [(Codec::Pcmu, 97, 0), (Codec::G722, 9, 9)]);
    // One codec answered: nothing else to expect; and our own answers list one.
    let mut a = alice();
    a.create_offer().unwrap();
    let n = a.handle_answer(&peer("m=audio 5000 RTP/AVP 0\n")).unwrap();
    assert!(n.also_received.is_empty());
    let (mut a, mut b) = (alice(), bob());
    exchange(&mut a, &mut b);
    assert!(b.negotiated().unwrap().also_received.is_empty());
}

/// The keys a peer takes as events are what its telephone-event `fmtp` lists (RFC 4733
/// §2.4.1); without one, 0-15.
#[test]
fn the_keys_a_peer_takes_as_events_are_read_from_its_fmtp() {
    for (fmtp, keys) in [
        ("a=fmtp:101 0-11\n", 0x0fff),
        ("a=fmtp:101 0-9,11, 15\n", 0x8bff),
        ("a=fmtp:101 0-16\n", 0xffff),
        ("", 0xffff),
        ("a=fmtp:101 junk\n", 0xffff),
    ] {
        let mut a = alice();
        a.create_offer().unwrap();
        let answer = peer(&format!(
            "m=audio 5000 RTP/AVP 0 101\na=rtpmap:101 telephone-event/8000\n{fmtp}"
        ));
        let n = a.handle_answer(&answer).unwrap();
        assert_eq!(n.telephone_event.unwrap().keys, keys, "{fmtp:?}");
    }
}

#[test]
fn an_answer_that_renumbers_sends_with_its_numbers_and_receives_with_ours() {
    let mut a = alice();
    a.create_offer().unwrap();
    // Our PCMU is 0, our telephone-event/8000 101, opus 111: the answer calls them 98 and 96.
    let answer = peer(
        "m=audio 5000 RTP/AVP 98 96\na=rtpmap:98 PCMU/8000\na=rtpmap:96 telephone-event/8000\n",
    );
    let n = a.handle_answer(&answer).unwrap();
    assert_eq!(n.codec.codec, Codec::Pcmu);
    assert_eq!(
        (n.codec.payload_type, n.codec.receive_payload_type),
        (98, 0)
    );
    let event = n.telephone_event.unwrap();
    assert_eq!((event.payload_type, event.receive_payload_type), (96, 101));

    // An answer that keeps our numbers: one number each way.
    let mut a = alice();
    a.create_offer().unwrap();
    let answer = peer(
        "m=audio 5000 RTP/AVP 111 110\na=rtpmap:111 opus/48000/2\na=rtpmap:110 telephone-event/48000\n",
    );
    let n = a.handle_answer(&answer).unwrap();
    assert_eq!(
        (n.codec.payload_type, n.codec.receive_payload_type),
        (111, 111)
    );
    let event = n.telephone_event.unwrap();
    assert_eq!((event.payload_type, event.receive_payload_type), (110, 110));
}

#[test]
fn a_second_answer_to_the_same_offer_replaces_the_first_until_the_next_exchange() {
    let mut a = alice();
    a.create_offer().unwrap();
    // The 183's early answer, then the 2xx of another fork with its own.
    let early = peer("m=audio 5000 RTP/AVP 0\na=rtpmap:0 PCMU/8000\n");
    a.handle_answer(&early).unwrap();
    let fork = parse(
        "v=0\no=- 7 1 IN IP4 192.0.2.70\ns=-\nc=IN IP4 192.0.2.70\nt=0 0\nm=audio 7000 RTP/AVP 97\na=rtpmap:97 PCMA/8000\n",
    );
    let n = a.replace_answer(&fork).unwrap();
    assert_eq!(n.codec.codec, Codec::Pcma);
    assert_eq!(
        (n.codec.payload_type, n.codec.receive_payload_type),
        (97, 8)
    );
    assert_eq!(n.remote_rtp, "192.0.2.70:7000".parse().unwrap());
    assert_eq!(a.negotiated().unwrap().codec.codec, Codec::Pcma);
    // The early answer's numbers went with it: a re-offer keeps our INVITE's 101 for events.
    let mut c = alice();
    c.create_offer().unwrap();
    c.handle_answer(&peer(
        "m=audio 5000 RTP/AVP 101\na=rtpmap:101 opus/48000/2\n",
    ))
    .unwrap();
    c.replace_answer(&fork).unwrap();
    let reoffer = c.create_offer().unwrap();
    let m = &reoffer.media[0];
    assert_eq!(
        m.rtpmap(101).unwrap().encoding,
        "telephone-event",
        "{reoffer}"
    );
    assert_eq!(m.rtpmap(111).unwrap().encoding, "opus", "{reoffer}");
    // An unusable second answer leaves the agreed session as it was.
    let mut b = alice();
    b.create_offer().unwrap();
    b.handle_answer(&early).unwrap();
    let useless = peer("m=audio 5000 RTP/AVP 3\na=rtpmap:3 GSM/8000\n");
    assert!(b.replace_answer(&useless).is_err());
    assert_eq!(b.negotiated().unwrap().codec.codec, Codec::Pcmu);
    // Once a new exchange has begun, the old offer takes no more answers.
    a.create_offer().unwrap();
    a.rollback_offer();
    assert!(matches!(
        a.replace_answer(&early),
        Err(SdpError::ApiMisuse(_))
    ));
}

#[test]
fn after_an_answer_that_took_our_numbers_for_other_formats_a_new_offer_gives_each_number_one_format()
 {
    for answer in [
        "m=audio 5000 RTP/AVP 101 111\na=rtpmap:101 PCMU/8000\na=rtpmap:111 telephone-event/8000\n",
        "m=audio 5000 RTP/AVP 101 96\na=rtpmap:101 opus/48000/2\na=rtpmap:96 telephone-event/48000\n",
    ] {
        let mut a = alice();
        a.create_offer().unwrap();
        a.handle_answer(&peer(answer)).unwrap();
        let reoffer = a.create_offer().unwrap();
        let m = &reoffer.media[0];
        let mut formats = m.formats.clone();
        formats.sort();
        formats.dedup();
        assert_eq!(formats.len(), m.formats.len(), "{answer}: {:?}", m.formats);
        let mut mapped: Vec<u8> = m.rtpmaps().map(|r| r.payload_type).collect();
        let count = mapped.len();
        mapped.sort_unstable();
        mapped.dedup();
        assert_eq!(mapped.len(), count, "{answer}: {reoffer}");
    }
}

#[test]
fn an_unusable_early_answer_leaves_the_offer_to_the_final_one() {
    let mut a = alice();
    a.create_offer().unwrap();
    let gsm = peer("m=audio 5000 RTP/AVP 3\na=rtpmap:3 GSM/8000\n");
    assert!(a.handle_early_answer(&gsm).is_err());
    assert!(a.offer_pending());
    let n = a
        .handle_answer(&peer("m=audio 5002 RTP/AVP 8\na=rtpmap:8 PCMA/8000\n"))
        .unwrap();
    assert_eq!(n.codec.codec, Codec::Pcma);
    // A usable early answer is taken like a final one.
    let mut b = alice();
    b.create_offer().unwrap();
    b.handle_early_answer(&peer("m=audio 5000 RTP/AVP 0\n"))
        .unwrap();
    assert!(!b.offer_pending());
    assert_eq!(b.negotiated().unwrap().codec.codec, Codec::Pcmu);
}

#[test]
fn telephone_event_matches_the_codec_clock() {
    let offer =
        |formats: &str, maps: &str| peer(&format!("m=audio 5000 RTP/AVP {formats}\n{maps}"));
    let both = "a=rtpmap:96 opus/48000/2\na=rtpmap:97 telephone-event/48000\na=rtpmap:101 telephone-event/8000\n";
    let only_48k = "a=rtpmap:96 opus/48000/2\na=rtpmap:97 telephone-event/48000\n";
    let only_16k = "a=rtpmap:96 opus/48000/2\na=rtpmap:99 telephone-event/16000\n";
    // What some phones pair with G.722: 16000 Hz events, alone or beside 8000 Hz ones.
    let g722 = "a=rtpmap:9 G722/8000\na=rtpmap:99 telephone-event/16000\na=rtpmap:101 telephone-event/8000\n";
    // G.722 written at its audio rate: its RTP clock is still 8000 Hz.
    let g722_16k = "a=rtpmap:9 G722/16000\na=rtpmap:99 telephone-event/16000\na=rtpmap:101 telephone-event/8000\n";
    type Row<'a> = (&'a [Codec], bool, &'a str, &'a str, Option<(u8, u32)>);
    let cases: &[Row] = &[
        (&[Codec::Opus], true, "96 97 101", both, Some((97, 48000))),
        (&[Codec::Pcmu], true, "0 97 101", both, Some((101, 8000))),
        // Only the "wrong" clock on offer: still better than no DTMF.
        (&[Codec::Pcmu], true, "0 97", only_48k, Some((97, 48000))),
        (&[Codec::Pcmu], true, "0 99", only_16k, Some((99, 16000))),
        (&[Codec::G722], true, "9 99", g722, Some((99, 16000))),
        (&[Codec::G722], true, "9 99 101", g722, Some((101, 8000))),
        (
            &[Codec::G722],
            true,
            "9 99 101",
            g722_16k,
            Some((101, 8000)),
        ),
        (&[Codec::Opus], false, "96 97 101", both, None),
    ];
    for &(codecs, enabled, formats, maps, want) in cases {
        let mut config = config("192.0.2.2", 6000).with_codecs(codecs);
        config.telephone_event = enabled;
        let mut b = MediaSession::new(config, &[2; KEY_MATERIAL_LEN]).unwrap();
        let answer = b.handle_offer(&offer(formats, maps)).unwrap();
        let got = b
            .negotiated()
            .unwrap()
            .telephone_event
            .map(|e| (e.payload_type, e.clock_rate));
        assert_eq!(got, want, "{formats}");
        let answered_events = answer.media[0]
            .rtpmaps()
            .filter(|r| r.encoding == "telephone-event")
            .count();
        assert_eq!(answered_events, usize::from(want.is_some()), "{formats}");
    }
}

#[test]
fn g729_annex_b_needs_both_sides() {
    let offer = |fmtp: &str| peer(&format!("m=audio 5000 RTP/AVP 18\n{fmtp}"));
    // (our fmtp, the offer's fmtp line, our answer's fmtp, annex B in use)
    let cases: &[(Option<&str>, &str, Option<&str>, bool)] = &[
        (Some("annexb=no"), "", Some("annexb=no"), false),
        (
            Some("annexb=no"),
            "a=fmtp:18 annexb=yes\n",
            Some("annexb=no"),
            false,
        ),
        (None, "a=fmtp:18 annexb=no\n", Some("annexb=no"), false),
        (None, "a=fmtp:18 annexb=yes\n", None, true),
        (None, "", None, true),
    ];
    for &(ours, theirs, answered, annex_b) in cases {
        let mut config = config("192.0.2.2", 6000);
        config.codecs = vec![LocalCodec {
            codec: Codec::G729,
            fmtp: ours.map(str::to_owned),
        }];
        let mut b = MediaSession::new(config, &[2; KEY_MATERIAL_LEN]).unwrap();
        let answer = b.handle_offer(&offer(theirs)).unwrap();
        assert_eq!(
            answer.media[0].fmtp(18).as_deref(),
            answered,
            "{ours:?} / {theirs}"
        );
        assert_eq!(
            b.negotiated().unwrap().codec.g729_annex_b(),
            annex_b,
            "{ours:?} / {theirs}"
        );
    }
}

#[test]
fn ptime_and_maxptime() {
    // At media level, or written once at session level as some gateways do: the same.
    let offer = |session_level: bool, attrs: &str| {
        let (session, media) = if session_level {
            (attrs, "")
        } else {
            ("", attrs)
        };
        let head = PEER_HEAD.replace("t=0 0\n", &format!("t=0 0\n{session}"));
        parse(&format!("{head}m=audio 5000 RTP/AVP 0\n{media}"))
    };
    // (offer attributes, ptime we send with, ptime we answer)
    let cases = [
        ("", 20, "20"),
        ("a=ptime:30\n", 30, "20"),
        ("a=ptime:30\na=maxptime:20\n", 20, "20"),
        ("a=maxptime:10\n", 10, "10"),
        // Beyond what a leg sends (10 to 60 ms): the nearest it can, not a failed call.
        ("a=ptime:80\n", 60, "20"),
        ("a=ptime:1000\n", 60, "20"),
        ("a=ptime:5\n", 10, "20"),
        ("a=maxptime:5\n", 10, "10"),
    ];
    for session_level in [false, true] {
        for (attrs, send, answered) in cases {
            let mut b = bob();
            let answer = b.handle_offer(&offer(session_level, attrs)).unwrap();
            let level = if session_level { "session" } else { "media" };
            assert_eq!(b.negotiated().unwrap().ptime, send, "{level} {attrs}");
            assert_eq!(
                answer.media[0].attribute_values("ptime").next(),
                Some(answered),
                "{level} {attrs}"
            );
        }
    }
}

#[test]
fn streams_we_do_not_take_are_refused_in_place() {
    let offer = peer(
        "m=video 5002 RTP/AVP 96\na=rtpmap:96 VP8/90000\nm=audio 5004 RTP/AVP 3\nm=audio 5000 RTP/AVP 8\nm=application 5006 UDP/BFCP *\n",
    );
    let mut b = bob();
    let answer = b.handle_offer(&offer).unwrap();
    let ports: Vec<u16> = answer.media.iter().map(|m| m.port).collect();
    assert_eq!(ports, [0, 0, 6000, 0]);
    assert_eq!(answer.media[3].formats, ["*"]);
    assert_eq!(b.negotiated().unwrap().codec.codec, Codec::Pcma);
    // Bob's re-offer keeps the four sections, in order, only audio live.
    let reoffer = b.create_offer().unwrap();
    let shape: Vec<(&str, u16)> = reoffer
        .media
        .iter()
        .map(|m| (m.kind.as_str(), m.port))
        .collect();
    assert_eq!(
        shape,
        [
            ("video", 0),
            ("audio", 0),
            ("audio", 6000),
            ("application", 0)
        ]
    );

    let video_only = peer("m=video 5002 RTP/AVP 96\n");
    let refusal = bob().handle_offer(&video_only).unwrap_err();
    assert_eq!(refusal, Rejection::NoAudio);
    assert_eq!(
        refusal.warning("sipx.example"),
        "304 sipx.example \"Media type not available\""
    );
    // The first audio stream's reason is the one reported.
    let unusable = peer("m=audio 5000 RTP/AVP 3\nm=audio 5002 RTP/SAVP 0\n");
    assert_eq!(
        bob().handle_offer(&unusable).unwrap_err(),
        Rejection::NoCommonCodec
    );
}

#[test]
fn a_refused_reoffer_keeps_the_call_as_it_was() {
    let (mut a, mut b) = (alice(), bob());
    exchange(&mut a, &mut b);
    let before = b.negotiated().unwrap().clone();
    let bad = parse(
        "v=0\no=- 1 2 IN IP4 192.0.2.9\ns=-\nc=IN IP4 192.0.2.9\nt=0 0\nm=audio 5000 RTP/AVP 3\n",
    );
    assert_eq!(b.handle_offer(&bad).unwrap_err(), Rejection::NoCommonCodec);
    assert_eq!(b.negotiated(), Some(&before));
}

#[test]
fn debug_output_keeps_keys_out() {
    let (mut a, mut b) = (alice(), bob());
    exchange(&mut a, &mut b);
    let text = format!("{a:?}");
    assert!(text.contains("AeadAes128Gcm"), "{text}");
    // Alice's key bytes are all 1 (base64 AQEB…), Bob's all 2.
    assert!(
        !text.contains("AQEB") && !text.contains("[1, 1") && !text.contains("[2, 2"),
        "{text}"
    );
}

#[test]
fn a_multicast_stream_is_refused_with_330() {
    let offer = parse(
        "v=0\no=- 1 1 IN IP4 192.0.2.9\ns=-\nc=IN IP4 224.2.1.1/127\nt=0 0\n\
         m=audio 5000 RTP/AVP 0\n",
    );
    let refused = bob().handle_offer(&offer).unwrap_err();
    assert_eq!(refused.warning_parts().0, 330, "{refused}");
    // A unicast address beside it at the media level is taken.
    let offer = parse(
        "v=0\no=- 1 1 IN IP4 192.0.2.9\ns=-\nc=IN IP4 224.2.1.1/127\nt=0 0\n\
         m=audio 5000 RTP/AVP 0\nc=IN IP4 192.0.2.9\n",
    );
    assert!(bob().handle_offer(&offer).is_ok());
}

#[test]
fn an_answer_whose_key_has_an_mki_leaves_ours_without_one() {
    // We offered tag 2 (AES_CM_128_HMAC_SHA1_80) without an MKI; the answer's key has one.
    let mut a = MediaSession::new(
        config("192.0.2.1", 4000).with_srtp(SrtpPolicy::Required),
        &[1; KEY_MATERIAL_LEN],
    )
    .unwrap();
    a.create_offer().unwrap();
    a.handle_answer(&peer(
        "m=audio 5000 RTP/SAVP 0\na=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:Q58UkAPCatLSRwKyxIjxLsijdiIza/dGI2kZ3qIj|2^31|3:2\n",
    ))
    .unwrap();
    let srtp = a.negotiated().unwrap().srtp.clone().unwrap();
    assert_eq!(srtp.remote.mki, Some((3, 2)));
    assert_eq!(srtp.remote.mki_bytes(), [0, 3]);
    assert_eq!(srtp.local.mki, None);
    assert!(srtp.local.mki_bytes().is_empty());
}

#[test]
fn our_mki_stays_the_same_through_refreshes_and_re_offers() {
    // A peer whose key has an MKI (Microsoft's SBCs, IMS): our answer's key gets one too.
    let offer = "m=audio 5000 RTP/SAVP 0\na=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:Q58UkAPCatLSRwKyxIjxLsijdiIza/dGI2kZ3qIj|2^31|1:1\n";
    let mut a = MediaSession::new(
        config("192.0.2.1", 4000).with_srtp(SrtpPolicy::Required),
        &[1; KEY_MATERIAL_LEN],
    )
    .unwrap();
    let answer = a.handle_offer(&peer(offer)).unwrap().to_string();
    assert!(answer.contains("|1:1"), "{answer}");
    let local = || a.negotiated().unwrap().srtp.clone().unwrap().local;
    let first = local();
    assert_eq!(first.mki, Some((1, 1)));
    // A session refresh repeats our answer as an offer; the peer's answer repeats its key.
    let refresh = a.create_refresh_offer().unwrap().to_string();
    assert!(refresh.contains("|1:1"), "{refresh}");
    a.handle_answer(&peer(offer)).unwrap();
    let after_refresh = a.negotiated().unwrap().srtp.clone().unwrap().local;
    assert_eq!(
        after_refresh, first,
        "the refresh changed what our packets carry"
    );
    // A full re-offer (the peer sent a re-INVITE without SDP) keeps the MKI as well.
    let reoffer = a.create_offer().unwrap().to_string();
    // (On its AES-CM lines: GCM carries no MKI.)
    let cryptos: Vec<&str> = reoffer
        .lines()
        .filter(|l| l.starts_with("a=crypto"))
        .collect();
    assert!(
        cryptos
            .iter()
            .all(|l| l.ends_with("|1:1") != l.contains("AEAD")),
        "{reoffer}"
    );
    assert!(cryptos.iter().any(|l| l.contains("AEAD")), "{reoffer}");
    a.handle_answer(&peer(offer)).unwrap();
    assert_eq!(a.negotiated().unwrap().srtp.clone().unwrap().local, first);
}

#[test]
fn an_ipv4_mapped_address_is_the_ipv4_one() {
    // A peer that writes its IPv4 media address as IPv6: answered in IP4, RTP sent over IPv4.
    let offer = parse(
        "v=0\r\no=- 1 1 IN IP6 ::ffff:198.51.100.7\r\ns=-\r\nc=IN IP6 ::ffff:198.51.100.7\r\n\
         t=0 0\r\nm=audio 30000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n",
    );
    assert_eq!(offer.audio_address(), Some("198.51.100.7".parse().unwrap()));
    let mut bob = bob();
    let answer = bob.handle_offer(&offer).unwrap();
    let n = bob.negotiated().unwrap();
    assert_eq!(n.remote_rtp, "198.51.100.7:30000".parse().unwrap());
    assert!(answer.to_string().contains("c=IN IP4 "), "{answer}");
    // Under an IPv6 SIPx it is another family's address: refused.
    let mut v6 = MediaSession::new(config("2001:db8::1", 4000), &[1; KEY_MATERIAL_LEN]).unwrap();
    assert!(v6.handle_offer(&offer).is_err());
}

#[test]
fn the_answer_repeats_the_offers_time_and_later_offers_keep_it() {
    // RFC 3264 §6: the time of a session is not negotiated.
    let timed = "v=0\no=- 1 1 IN IP4 192.0.2.9\ns=-\nc=IN IP4 192.0.2.9\n\
                 t=3034423619 3042462419\nr=604800 3600 0\nm=audio 5000 RTP/AVP 0\n";
    let mut bob = bob();
    let answer = bob.handle_offer(&parse(timed)).unwrap().to_string();
    assert!(
        answer.contains("\r\nt=3034423619 3042462419\r\nr=604800 3600 0\r\n"),
        "{answer}"
    );
    let offer = bob.create_offer().unwrap().to_string();
    assert!(offer.contains("\r\nt=3034423619 3042462419\r\n"), "{offer}");
    // Without a t= line (tolerated), the answer says t=0 0.
    let untimed =
        "v=0\no=- 1 1 IN IP4 192.0.2.9\ns=-\nc=IN IP4 192.0.2.9\nm=audio 5000 RTP/AVP 0\n";
    let answer = self::bob()
        .handle_offer(&parse(untimed))
        .unwrap()
        .to_string();
    assert!(answer.contains("\r\nt=0 0\r\n"), "{answer}");
}

#[test]
fn a_re_offer_removing_the_audio_is_answered_with_port_0_and_can_bring_it_back() {
    let mut b = bob();
    b.handle_offer(&peer("m=audio 5000 RTP/AVP 0\nm=video 5002 RTP/AVP 96\n"))
        .unwrap();
    // RFC 3264 §8.2: every stream at port 0. Answered with port 0, not refused; no media
    // flows (inactive: silence must not end the call), nothing goes to the closed ports.
    let removal = peer("m=audio 0 RTP/AVP 0\nm=video 0 RTP/AVP 96\n");
    let answer = b.handle_offer(&removal).unwrap();
    let ports: Vec<u16> = answer.media.iter().map(|m| m.port).collect();
    assert_eq!(ports, [0, 0]);
    assert_eq!(answer.origin.session_version, 2, "our SDP changed");
    let off = b.negotiated().unwrap();
    assert_eq!(off.direction, Direction::Inactive);
    assert_eq!(off.remote_rtp.port(), 0);
    // The same removal again: the same answer, version and all.
    assert_eq!(b.handle_offer(&removal).unwrap(), answer);
    // A later offer brings the stream back.
    let back = b
        .handle_offer(&peer("m=audio 5004 RTP/AVP 0\nm=video 0 RTP/AVP 96\n"))
        .unwrap();
    assert_eq!(back.media[0].port, 6000);
    let on = b.negotiated().unwrap();
    assert_eq!(on.direction, Direction::SendRecv);
    assert_eq!(on.remote_rtp.port(), 5004);
    // An initial offer with no live audio is still refused: there is no call to keep.
    assert!(matches!(
        bob().handle_offer(&peer("m=audio 0 RTP/AVP 0\n")),
        Err(Rejection::NoAudio)
    ));
}
