#![allow(clippy::unwrap_used)]

use super::kdf::{Label, derive, keystream};
use super::transform::{RTCP_CM_TAG, SHORT_RTCP_CM_TAG, Transform};
use super::*;

fn hex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s
        .bytes()
        .filter(u8::is_ascii_hexdigit)
        .map(|c| (c as char).to_digit(16).unwrap() as u8)
        .collect();
    digits.chunks(2).map(|p| p[0] << 4 | p[1]).collect()
}

/// RFC 3711 B.3 and libsrtp's reference packets share this master key and salt.
fn rfc3711_master() -> SrtpKey {
    SrtpKey {
        key: hex("E1F97A0D3E018BE0D64FA32C06DE4139"),
        salt: hex("0EC675AD498AFEEBB6960B3AABE6"),
        mki: Vec::new(),
    }
}

fn session(suite: SrtpSuite, local: SrtpKey, remote: SrtpKey) -> SrtpSession {
    SrtpSession::new(&SrtpConfig {
        suite,
        local,
        remote,
    })
    .unwrap()
}

fn key_for(suite: SrtpSuite, fill: u8) -> SrtpKey {
    SrtpKey {
        key: vec![fill; suite.key_len()],
        salt: vec![fill ^ 0x5a; suite.salt_len()],
        mki: Vec::new(),
    }
}

const SUITES: [SrtpSuite; 6] = SrtpSuite::ALL;

fn rtp(seq: u16, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x80, 0, 0, 0, 0, 0, 0x12, 0x34, 0xca, 0xfe, 0xba, 0xbe];
    p[2..4].copy_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

#[test]
fn rfc3711_b2_aes_cm_keystream() {
    let mut iv = [0u8; 16];
    iv[..14].copy_from_slice(&hex("F0F1F2F3F4F5F6F7F8F9FAFBFCFD"));
    let mut out = [0u8; 48];
    keystream(&hex("2B7E151628AED2A6ABF7158809CF4F3C"), iv, &mut out).unwrap();
    let expected = hex(
        "E03EAD0935C95E80E166B16DD92B4EB4 D23513162B02D0F72A43A2FE4A5F97AB
         41E95B3BB0A2E8DD477901E4FCA894C0",
    );
    assert_eq!(out[..], expected[..]);

    // The same keystream through the packet path: SSRC 0, index 0, a zero payload.
    let salt: [u8; 14] = hex("F0F1F2F3F4F5F6F7F8F9FAFBFCFD").try_into().unwrap();
    let tx = Transform::cm_session(&hex("2B7E151628AED2A6ABF7158809CF4F3C"), salt).unwrap();
    let rx = Transform::cm_session(&hex("2B7E151628AED2A6ABF7158809CF4F3C"), salt).unwrap();
    let mut s = SrtpSession::from_transforms(SrtpSuite::AesCm128HmacSha1_80, tx, rx);
    let mut buf = [0u8; 12 + 48 + 10];
    buf[0] = 0x80;
    assert_eq!(s.protect_rtp(&mut buf, 60).unwrap(), 70);
    assert_eq!(buf[12..60], expected[..]);
}

#[test]
fn rfc3711_b3_key_derivation() {
    let m = rfc3711_master();
    let cases: [(Label, &str); 3] = [
        (Label::RtpCipher, "C61E7A93744F39EE10734AFE3FF7A087"),
        (Label::RtpSalt, "30CBBC08863D8C85D49DB34A9AE1"),
        (Label::RtpAuth, "CEBE321F6FF7716B6FD4AB49AF256A156D38BAA4"),
    ];
    for (label, expected) in cases {
        let expected = hex(expected);
        let mut out = vec![0u8; expected.len()];
        derive(&m.key, &m.salt, label, &mut out).unwrap();
        assert_eq!(out, expected, "{label:?}");
    }
}

/// `plain` protects to exactly `protected`, which unprotects back to `plain`.
fn assert_rtp_vector(s: &mut SrtpSession, buf: &mut [u8], plain: &[u8], protected: &[u8]) {
    buf[..plain.len()].copy_from_slice(plain);
    let n = s.protect_rtp(buf, plain.len()).unwrap();
    assert_eq!(buf[..n], protected[..]);
    let n = s.unprotect_rtp(&mut buf[..n]).unwrap();
    assert_eq!(buf[..n], plain[..]);
}

/// libsrtp's reference packets, with `mki` (when not empty) inserted where RFC 3711 puts it:
/// between the encrypted part (SRTCP: the E flag and index) and the tag, which does not cover
/// it (§3.1, §3.4).
fn libsrtp_reference_round_trip(mki: &[u8]) {
    let keyed = || SrtpKey {
        mki: mki.to_vec(),
        ..rfc3711_master()
    };
    let mut s = session(SrtpSuite::AesCm128HmacSha1_80, keyed(), keyed());
    let with_mki = |mut packet: Vec<u8>| {
        let at = packet.len() - 10;
        packet.splice(at..at, mki.iter().copied());
        packet
    };
    let plain = hex("800f1234decafbadcafebabe abababababababababababababababab");
    let protected = with_mki(hex(
        "800f1234decafbadcafebabe 4e55dc4ce79978d88ca4d215949d2402 b78d6acc99ea179b8dbb",
    ));
    let mut buf = [0u8; 128];
    assert_rtp_vector(&mut s, &mut buf, &plain, &protected);

    // libsrtp sends its first SRTCP packet with index 1; we start at 0, so send one first.
    let rtcp = hex("81c8000bcafebabe abababababababababababababababab");
    let srtcp = with_mki(hex(
        "81c8000bcafebabe 7128035be487b9bdbef89041f977a5a8 80000001 993e08cd54d6c1230798",
    ));
    buf[..rtcp.len()].copy_from_slice(&rtcp);
    s.protect_rtcp(&mut buf, rtcp.len()).unwrap();
    buf[..rtcp.len()].copy_from_slice(&rtcp);
    let n = s.protect_rtcp(&mut buf, rtcp.len()).unwrap();
    assert_eq!(buf[..n], srtcp[..]);
    let n = s.unprotect_rtcp(&mut buf[..n]).unwrap();
    assert_eq!(buf[..n], rtcp[..]);
}

#[test]
fn libsrtp_reference_packets_aes_cm_80() {
    libsrtp_reference_round_trip(&[]);
}

#[test]
fn an_mki_sits_before_the_tag_outside_what_it_authenticates() {
    libsrtp_reference_round_trip(&[0, 0, 0, 1]);
}

/// libsrtp's AES-256 reference packet (`AES_256_CM_HMAC_SHA1_80`): the RFC 6188 key
/// derivation on AES-256, then AES-256-CM and the 80-bit tag.
#[test]
fn libsrtp_reference_packet_aes_256_cm_80() {
    let master = SrtpKey {
        key: hex("f0f04914b513f2763a1b1fa130f10e2998f6f6e43e4309d1e622a0e332b9f1b6"),
        salt: hex("3b04803de51ee7c96423ab5b78d2"),
        mki: Vec::new(),
    };
    let mut s = session(SrtpSuite::Aes256CmHmacSha1_80, master.clone(), master);
    let plain = hex("800f1234decafbadcafebabe abababababababababababababababab");
    let protected =
        hex("800f1234decafbadcafebabe f1d9de17ff251ff1aa007774b0b4b40d a08d9d9a5b3a55d8873b");
    let mut buf = [0u8; 128];
    assert_rtp_vector(&mut s, &mut buf, &plain, &protected);
}

/// The RFC 7714 vectors' session key and salt (used directly, both ways), and a session on them.
fn rfc7714_session() -> (Vec<u8>, [u8; 12], SrtpSession) {
    let key = hex("000102030405060708090a0b0c0d0e0f");
    let salt: [u8; 12] = hex("517569642070726f2071756f").try_into().unwrap();
    let s = SrtpSession::from_transforms(
        SrtpSuite::AeadAes128Gcm,
        Transform::gcm_session(&key, salt).unwrap(),
        Transform::gcm_session(&key, salt).unwrap(),
    );
    (key, salt, s)
}

#[test]
fn rfc7714_gcm_vectors() {
    let (_, _, mut s) = rfc7714_session();
    // §16.1.1: RTP, SSRC 0x5501a0b2, sequence 0xf17b, ROC 0.
    let plain = hex(
        "8040f17b 8041f8d3 5501a0b2 47616c6c 69612065 7374206f 6d6e6973 20646976
         69736120 696e2070 61727465 73207472 6573",
    );
    let protected = hex(
        "8040f17b 8041f8d3 5501a0b2 f24de3a3 fb34de6c acba861c 9d7e4bca be633bd5
         0d294e6f 42a5f47a 51c7d19b 36de3adf 8833899d 7f27beb1 6a9152cf 765ee439 0cce",
    );
    let mut buf = [0u8; 128];
    assert_rtp_vector(&mut s, &mut buf, &plain, &protected);

    // §17.1: SRTCP with index 0x5d4 (sent after 0x5d4 earlier packets).
    let rtcp = hex(
        "81c8000d 4d617273 4e545031 4e545032 52545020 0000042a 0000e930 4c756e61
         deadbeef deadbeef deadbeef deadbeef deadbeef",
    );
    let srtcp = hex(
        "81c8000d 4d617273 63e94885 dcdab67c a727d766 2f6b7e99 7ff5c0f7 6c06f32d
         c676a5f1 730d6fda 4ce09b46 86303ded 0bb9275b c84aa458 96cf4d2f c5abf872
         45d9eade 800005d4",
    );
    s.srtcp_index = 0x5d4;
    buf[..rtcp.len()].copy_from_slice(&rtcp);
    let n = s.protect_rtcp(&mut buf, rtcp.len()).unwrap();
    assert_eq!(buf[..n], srtcp[..]);
    let n = s.unprotect_rtcp(&mut buf[..n]).unwrap();
    assert_eq!(buf[..n], rtcp[..]);
}

/// Alice protects with her key, Bob unprotects with it as his remote key, for every suite,
/// across the sequence number wrap, with one packet reordered over the wrap.
#[test]
fn round_trip_across_rollover_for_every_suite() {
    for suite in SUITES {
        let (ka, kb) = (key_for(suite, 1), key_for(suite, 2));
        let mut alice = session(suite, ka.clone(), kb.clone());
        let mut bob = session(suite, kb, ka);
        let seqs: Vec<u16> = (0..40u16).map(|i| 65_520u16.wrapping_add(i)).collect();
        let mut wire: Vec<Vec<u8>> = seqs
            .iter()
            .map(|&seq| {
                let mut buf = rtp(seq, &[seq as u8; 33]);
                let len = buf.len();
                buf.resize(len + suite.rtp_overhead(), 0);
                let n = alice.protect_rtp(&mut buf, len).unwrap();
                assert_eq!(n, buf.len());
                buf
            })
            .collect();
        wire.swap(15, 17); // 65535 arrives after 1
        for mut packet in wire {
            let n = bob
                .unprotect_rtp(&mut packet)
                .unwrap_or_else(|e| panic!("{suite:?}: {e}"));
            let seq = u16::from_be_bytes([packet[2], packet[3]]);
            assert_eq!(packet[..n], rtp(seq, &[seq as u8; 33])[..], "{suite:?}");
        }
        assert_eq!(bob.stats(), SrtpStats::default());
        // Beyond the wrap the ROC is 1: a packet protected with ROC 1 by a fresh sender
        // (ROC 0) must not verify.
        let mut fresh = session(suite, key_for(suite, 1), key_for(suite, 9));
        let mut buf = rtp(30, &[7; 20]);
        let len = buf.len();
        buf.resize(len + suite.rtp_overhead(), 0);
        fresh.protect_rtp(&mut buf, len).unwrap();
        assert_eq!(
            bob.unprotect_rtp(&mut buf),
            Err(MediaError::SrtpAuthentication)
        );
    }
}

#[test]
fn replays_and_tampering_are_refused_and_counted() {
    for suite in SUITES {
        let (ka, kb) = (key_for(suite, 3), key_for(suite, 4));
        let mut alice = session(suite, ka.clone(), kb.clone());
        let mut bob = session(suite, kb, ka);
        let mut protect = |seq: u16| {
            let mut buf = rtp(seq, b"hello, world");
            let len = buf.len();
            buf.resize(len + suite.rtp_overhead(), 0);
            alice.protect_rtp(&mut buf, len).unwrap();
            buf
        };
        let first = protect(1000);
        bob.unprotect_rtp(&mut first.clone()).unwrap();
        assert_eq!(
            bob.unprotect_rtp(&mut first.clone()),
            Err(MediaError::SrtpReplay)
        );
        // Every single-bit flip anywhere (header, payload, tag) fails authentication.
        let second = protect(1001);
        for byte in 0..second.len() {
            let mut bad = second.clone();
            bad[byte] ^= 0x10;
            let result = bob.unprotect_rtp(&mut bad);
            assert!(result.is_err(), "{suite:?} byte {byte}");
        }
        // The untouched packet still passes: failures did not move the window.
        bob.unprotect_rtp(&mut second.clone()).unwrap();
        // Far behind the window.
        for seq in 1002..1200 {
            bob.unprotect_rtp(&mut protect(seq)).unwrap();
        }
        let old = protect(1010);
        assert_eq!(
            bob.unprotect_rtp(&mut old.clone()),
            Err(MediaError::SrtpReplay)
        );
        let stats = bob.stats();
        assert_eq!(stats.replays, 2, "{suite:?}");
        assert!(stats.auth_failures >= 12, "{suite:?} {stats:?}");
        // Short input is malformed, never a panic.
        for len in 0..20 {
            let _ = bob.unprotect_rtp(&mut second.clone()[..len.min(second.len())]);
            let _ = bob.unprotect_rtcp(&mut second.clone()[..len.min(second.len())]);
        }
    }
}

#[test]
fn srtcp_round_trip_replay_and_tamper() {
    for suite in SUITES {
        let (ka, kb) = (key_for(suite, 5), key_for(suite, 6));
        let mut alice = session(suite, ka.clone(), kb.clone());
        let mut bob = session(suite, kb, ka);
        let rr = hex("81c90007 cafebabe 12345678 01000002 0000ffff 00000010 00000000 00000000");
        let mut buf = vec![0u8; rr.len() + suite.rtcp_overhead()];
        buf[..rr.len()].copy_from_slice(&rr);
        alice.protect_rtcp(&mut buf, rr.len()).unwrap();
        assert_ne!(buf[8..rr.len()], rr[8..], "{suite:?}: encrypted");
        let mut copy = buf.clone();
        let n = bob.unprotect_rtcp(&mut copy).unwrap();
        assert_eq!(copy[..n], rr[..]);
        assert_eq!(
            bob.unprotect_rtcp(&mut buf.clone()),
            Err(MediaError::SrtpReplay)
        );
        // The next packet, tampered with, fails; untouched, it passes.
        buf[..rr.len()].copy_from_slice(&rr);
        alice.protect_rtcp(&mut buf, rr.len()).unwrap();
        let mut bad = buf.clone();
        bad[10] ^= 1;
        assert_eq!(
            bob.unprotect_rtcp(&mut bad),
            Err(MediaError::SrtpAuthentication)
        );
        assert_eq!(bob.unprotect_rtcp(&mut buf).unwrap(), rr.len());
    }
}

/// A phone that tags SRTCP with 32 bits, SIPx, both under `suite`, and the phone's report `rr`
/// as it sends it.
fn short_tag_phone(suite: SrtpSuite, rr: &[u8]) -> (SrtpSession, SrtpSession, Vec<u8>) {
    let (ka, kb) = (key_for(suite, 5), key_for(suite, 6));
    let mut phone = session(suite, ka.clone(), kb.clone());
    phone.rx.rtcp_tag = SHORT_RTCP_CM_TAG;
    let sipx = session(suite, kb, ka);
    let report = protected_rtcp(&mut phone, rr);
    (phone, sipx, report)
}

fn protected_rtcp(session: &mut SrtpSession, rr: &[u8]) -> Vec<u8> {
    let mut buf = vec![0u8; rr.len() + session.suite().rtcp_overhead()];
    buf[..rr.len()].copy_from_slice(rr);
    let n = session.protect_rtcp(&mut buf, rr.len()).unwrap();
    buf.truncate(n);
    buf
}

/// A peer that authenticates SRTCP with 32 bits under a `_32` suite (libsrtp with one policy
/// for RTP and RTCP, as linphone sets it) instead of RFC 4568's 80: its reports are taken,
/// forged or replayed ones are not, and ours go back at its length; a peer back on 80 bits is
/// followed. Under an 80-bit suite a short tag is refused.
#[test]
fn a_peer_using_32_bit_srtcp_tags_is_understood_and_mirrored_under_a_32_suite_only() {
    let rr = hex("81c90007 cafebabe 12345678 01000002 0000ffff 00000010 00000000 00000000");
    for suite in [
        SrtpSuite::AesCm128HmacSha1_32,
        SrtpSuite::Aes256CmHmacSha1_32,
    ] {
        let (mut phone, mut sipx, report) = short_tag_phone(suite, &rr);
        assert_eq!(report.len(), rr.len() + 4 + SHORT_RTCP_CM_TAG);
        let mut forged = report.clone();
        forged[report.len() - 1] ^= 1;
        assert_eq!(
            sipx.unprotect_rtcp(&mut forged),
            Err(MediaError::SrtpAuthentication)
        );
        assert_eq!(
            sipx.rx.rtcp_tag, RTCP_CM_TAG,
            "{suite:?}: a forgery teaches nothing"
        );
        let mut packet = report.clone();
        let len = sipx.unprotect_rtcp(&mut packet).unwrap();
        assert_eq!(packet[..len], rr[..], "{suite:?}");
        assert_eq!(
            sipx.unprotect_rtcp(&mut report.clone()),
            Err(MediaError::SrtpReplay)
        );
        // SIPx's own reports now carry a 32-bit tag, which the phone checks.
        let mut ours = protected_rtcp(&mut sipx, &rr);
        assert_eq!(ours.len(), rr.len() + 4 + SHORT_RTCP_CM_TAG);
        assert_eq!(phone.unprotect_rtcp(&mut ours), Ok(rr.len()));
        // Back on 80 bits, and SIPx with it.
        phone.rx.rtcp_tag = RTCP_CM_TAG;
        let mut long = protected_rtcp(&mut phone, &rr);
        assert_eq!(long.len(), rr.len() + 4 + RTCP_CM_TAG);
        assert_eq!(sipx.unprotect_rtcp(&mut long), Ok(rr.len()));
        assert_eq!(sipx.rx.rtcp_tag, RTCP_CM_TAG);
    }
    let (_, mut sipx, mut report) = short_tag_phone(SrtpSuite::AesCm128HmacSha1_80, &rr);
    assert!(sipx.unprotect_rtcp(&mut report).is_err());
    assert_eq!(sipx.rx.rtcp_tag, RTCP_CM_TAG);
}

/// A re-negotiation in which only the peer's key changes: our sending context (rollover
/// counter past a wrap, SRTCP index) goes on under our unchanged key, while the peer's new key
/// is a new receiving context starting at rollover counter 0.
#[test]
fn a_renegotiation_keeps_the_context_of_each_unchanged_key() {
    let suite = SrtpSuite::AesCm128HmacSha1_80;
    let (ours, theirs, their_new) = (key_for(suite, 1), key_for(suite, 2), key_for(suite, 3));
    let config = |local: &SrtpKey, remote: &SrtpKey| SrtpConfig {
        suite,
        local: local.clone(),
        remote: remote.clone(),
    };
    let (old_sipx, old_peer) = (config(&ours, &theirs), config(&theirs, &ours));
    let mut sipx = SrtpSession::new(&old_sipx).unwrap();
    let mut peer = SrtpSession::new(&old_peer).unwrap();
    let send = |from: &mut SrtpSession, to: &mut SrtpSession, seq: u16| {
        let mut buf = rtp(seq, &[seq as u8; 20]);
        let len = buf.len();
        buf.resize(len + suite.rtp_overhead() + MAX_MKI_LEN, 0);
        let n = from.protect_rtp(&mut buf, len).unwrap();
        to.unprotect_rtp(&mut buf[..n])
    };
    let rr = hex("81c90007 cafebabe 12345678 01000002 0000ffff 00000010 00000000 00000000");
    let report = |from: &mut SrtpSession, to: &mut SrtpSession| {
        let mut buf = vec![0u8; rr.len() + suite.rtcp_overhead() + MAX_MKI_LEN];
        buf[..rr.len()].copy_from_slice(&rr);
        let n = from.protect_rtcp(&mut buf, rr.len()).unwrap();
        to.unprotect_rtcp(&mut buf[..n])
    };
    for seq in (65_530..=u16::MAX).chain(0..5) {
        send(&mut sipx, &mut peer, seq).unwrap();
        send(&mut peer, &mut sipx, seq).unwrap();
    }
    report(&mut sipx, &mut peer).unwrap();
    // The peer re-keys its own direction; SIPx keeps its key.
    let (new_sipx, new_peer) = (config(&ours, &their_new), config(&their_new, &ours));
    let mut sipx = sipx.renegotiated(&old_sipx, &new_sipx).unwrap();
    let mut peer = peer.renegotiated(&old_peer, &new_peer).unwrap();
    assert_eq!(send(&mut sipx, &mut peer, 5), Ok(32), "ours still at ROC 1");
    assert_eq!(
        report(&mut sipx, &mut peer),
        Ok(rr.len()),
        "no SRTCP index again"
    );
    assert_eq!(send(&mut peer, &mut sipx, 100), Ok(32), "theirs new");
    assert_eq!(sipx.stats(), SrtpStats::default());
    // Our key gaining an MKI (an exchange with a peer whose key has one) is still our key:
    // its context goes on, and the packets carry the MKI.
    let ours_with_mki = SrtpKey {
        mki: vec![1],
        ..ours.clone()
    };
    let (mki_sipx, mki_peer) = (
        config(&ours_with_mki, &their_new),
        config(&their_new, &ours_with_mki),
    );
    let mut sipx = sipx.renegotiated(&new_sipx, &mki_sipx).unwrap();
    let mut peer = peer.renegotiated(&new_peer, &mki_peer).unwrap();
    assert_eq!(
        send(&mut sipx, &mut peer, 6),
        Ok(32),
        "ours still at ROC 1, with an MKI"
    );
    assert_eq!(
        report(&mut sipx, &mut peer),
        Ok(rr.len()),
        "no SRTCP index again"
    );
    let new_sipx = mki_sipx;
    // A new suite is a new context both ways, even with the same keys.
    let other = SrtpConfig {
        suite: SrtpSuite::AesCm128HmacSha1_32,
        ..new_sipx.clone()
    };
    assert!(sipx.renegotiated(&new_sipx, &other).unwrap().tx_streams[0].is_none());
}

#[test]
fn packets_under_the_peers_old_key_are_taken_until_its_new_key_is_heard() {
    for (old_suite, new_suite) in [
        (
            SrtpSuite::AesCm128HmacSha1_80,
            SrtpSuite::AesCm128HmacSha1_80,
        ),
        (SrtpSuite::AesCm128HmacSha1_80, SrtpSuite::AeadAes128Gcm),
        (SrtpSuite::AeadAes128Gcm, SrtpSuite::AesCm128HmacSha1_32),
    ] {
        let ours = key_for(old_suite, 1);
        let old = SrtpConfig {
            suite: old_suite,
            local: ours.clone(),
            remote: key_for(old_suite, 2),
        };
        let new = SrtpConfig {
            suite: new_suite,
            local: key_for(new_suite, 1),
            remote: key_for(new_suite, 3),
        };
        let flip = |c: &SrtpConfig| SrtpConfig {
            suite: c.suite,
            local: c.remote.clone(),
            remote: c.local.clone(),
        };
        let (mut peer_old, mut peer_new) = (
            SrtpSession::new(&flip(&old)).unwrap(),
            SrtpSession::new(&flip(&new)).unwrap(),
        );
        let sealed = |peer: &mut SrtpSession, seq: u16| {
            let mut buf = rtp(seq, &[seq as u8; 40]);
            let len = buf.len();
            buf.resize(len + 32, 0);
            let n = peer.protect_rtp(&mut buf, len).unwrap();
            buf.truncate(n);
            buf
        };
        let mut sipx = SrtpSession::new(&old).unwrap();
        assert!(sipx.unprotect_rtp(&mut sealed(&mut peer_old, 10)).is_ok());
        let mut sipx = sipx.renegotiated(&old, &new).unwrap();
        // Sent before the peer had the answer, arriving after it: taken, and opened right.
        let mut late = sealed(&mut peer_old, 11);
        assert_eq!(sipx.unprotect_rtp(&mut late), Ok(52), "{old_suite:?}");
        assert_eq!(late[12..52], [11u8; 40]);
        // Its replay window came along: the same packet again is a replay.
        let mut again = sealed(&mut peer_old, 10);
        assert_eq!(sipx.unprotect_rtp(&mut again), Err(MediaError::SrtpReplay));
        // The new key heard: the old one is closed.
        assert!(sipx.unprotect_rtp(&mut sealed(&mut peer_new, 12)).is_ok());
        let mut straggler = sealed(&mut peer_old, 13);
        assert_eq!(
            sipx.unprotect_rtp(&mut straggler),
            Err(MediaError::SrtpAuthentication),
            "{old_suite:?} -> {new_suite:?}"
        );
        assert_eq!(sipx.stats().auth_failures, 1);
    }
}

#[test]
fn wrong_key_lengths_and_names() {
    let bad = SrtpConfig {
        suite: SrtpSuite::AeadAes128Gcm,
        local: rfc3711_master(), // a 14-byte salt: AES-CM's, not GCM's
        remote: rfc3711_master(),
    };
    assert!(SrtpSession::new(&bad).is_err());
    for suite in SUITES {
        assert_eq!(SrtpSuite::from_sdes_name(suite.sdes_name()), Some(suite));
    }
    assert_eq!(SrtpSuite::from_sdes_name("F8_128_HMAC_SHA1_80"), None);
}

#[test]
fn a_packet_naming_another_mki_is_refused_and_gcm_takes_none() {
    for suite in [
        SrtpSuite::AesCm128HmacSha1_80,
        SrtpSuite::AesCm128HmacSha1_32,
    ] {
        let key = |fill: u8, mki: &[u8]| SrtpKey {
            mki: mki.to_vec(),
            ..key_for(suite, fill)
        };
        let mut alice = session(suite, key(1, &[7]), key(2, &[9]));
        let mut bob = session(suite, key(2, &[9]), key(1, &[7]));
        let mut buf = vec![0u8; 200];
        let len = rtp(5, &[0x55; 160]).len();
        buf[..len].copy_from_slice(&rtp(5, &[0x55; 160]));
        let n = alice.protect_rtp(&mut buf, len).unwrap();
        assert_eq!(n, len + 1 + suite.rtp_overhead(), "{suite:?}");
        let mut other = buf[..n].to_vec();
        other[len] = 8;
        assert_eq!(
            bob.unprotect_rtp(&mut other),
            Err(MediaError::MalformedSrtp("unknown MKI")),
            "{suite:?}"
        );
        assert_eq!(bob.unprotect_rtp(&mut buf[..n]).unwrap(), len, "{suite:?}");
        // Bob's answer comes back with his own MKI.
        let mut back = vec![0u8; 200];
        back[..len].copy_from_slice(&rtp(6, &[0x33; 160]));
        let n = bob.protect_rtp(&mut back, len).unwrap();
        assert_eq!(back[len], 9);
        assert_eq!(alice.unprotect_rtp(&mut back[..n]).unwrap(), len);
    }
    let gcm = SrtpSuite::AeadAes128Gcm;
    let with_mki = SrtpKey {
        mki: vec![1],
        ..key_for(gcm, 3)
    };
    assert!(
        SrtpSession::new(&SrtpConfig {
            suite: gcm,
            local: with_mki.clone(),
            remote: with_mki,
        })
        .is_err()
    );
}

/// Authentication-only SRTCP with AES-GCM (E=0, RFC 7714 §9.2): the RTCP packet stays in the
/// clear, the tag (GMAC over the packet, E flag and index) sits between it and E+index. The
/// expected tag is computed here straight on AES-GCM with the RFC 7714 session key and salt.
#[test]
fn gcm_srtcp_without_encryption_is_authenticated_and_taken() {
    use aws_lc_rs::aead::{AES_128_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
    let (key, salt, mut s) = rfc7714_session();
    let rtcp = hex("81c8000d 4d617273 4e545031 4e545032 52545020 0000042a 0000e930 4c756e61");
    let index: u32 = 0x5d4;
    let e_index = index.to_be_bytes(); // E = 0
    // IV = salt XOR (00 00 || SSRC || 00 00 || index).
    let mut iv = [0u8; 12];
    iv[2..6].copy_from_slice(&rtcp[4..8]);
    iv[8..].copy_from_slice(&index.to_be_bytes());
    for (b, k) in iv.iter_mut().zip(salt) {
        *b ^= k;
    }
    let aead = LessSafeKey::new(UnboundKey::new(&AES_128_GCM, &key).unwrap());
    let aad = [&rtcp[..], &e_index].concat();
    let tag = aead
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(iv),
            Aad::from(&aad[..]),
            &mut [],
        )
        .unwrap();
    let packet = [&rtcp[..], tag.as_ref(), &e_index].concat();
    // A changed byte of the clear packet fails.
    let mut bad = packet.clone();
    bad[20] ^= 1;
    assert_eq!(
        s.unprotect_rtcp(&mut bad),
        Err(MediaError::SrtpAuthentication)
    );
    let mut buf = packet.clone();
    assert_eq!(s.unprotect_rtcp(&mut buf).unwrap(), rtcp.len());
    assert_eq!(buf[..rtcp.len()], rtcp[..]);
    // Once taken, the same packet again is a replay.
    let mut again = packet;
    assert_eq!(s.unprotect_rtcp(&mut again), Err(MediaError::SrtpReplay));
}
