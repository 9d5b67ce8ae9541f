//! Fuzz target bodies. The `fuzz/` crate wraps each in one line; keeping them here means the
//! normal build compiles them and a unit test runs them over seeded random inputs.

use std::time::{Duration, Instant};

use sipx_codec::CodecKind;

use crate::decoding::StreamDecoder;
use crate::demux::classify;
use crate::dtmf::DtmfReceiver;
use crate::ids::{Pt, Ssrc};
use crate::jitter::{JitterBuffer, JitterConfig, Playout};
use crate::rtcp::{RtcpCompound, RtcpPacket};
use crate::rtp::{RtpHeader, RtpPacket};

/// Any bytes: RTP and RTCP parsing never panic; a parsed RTP packet survives a write/parse
/// round trip; every RTCP packet a compound validated can be walked to the end.
pub fn rtp_rtcp(data: &[u8]) {
    let _ = classify(data);
    if let Ok(p) = RtpPacket::parse(data) {
        let csrcs: Vec<Ssrc> = p.csrcs().collect();
        let mut buf = vec![0; 12 + 4 * csrcs.len() + p.payload.len()];
        let n = match p.header.write(&csrcs, &mut buf) {
            Ok(n) => n,
            Err(e) => panic!("a parsed header does not write: {e}"),
        };
        buf[n..].copy_from_slice(p.payload);
        match RtpPacket::parse(&buf) {
            Ok(again) => {
                assert_eq!(again.header, p.header);
                assert_eq!(again.payload, p.payload);
                assert!(again.csrcs().eq(csrcs.iter().copied()));
            }
            Err(e) => panic!("a written packet does not parse: {e}"),
        }
        let mut dtmf = DtmfReceiver::new(8000);
        let _ = dtmf.push(Instant::now(), &p.header, p.payload);
    }
    if let Ok(compound) = RtcpCompound::parse(data) {
        let mut walked = 0;
        for packet in compound.packets() {
            walked += 1;
            match packet {
                RtcpPacket::SenderReport(sr) => {
                    let _ = sr.reports().count();
                }
                RtcpPacket::ReceiverReport(rr) => {
                    let _ = rr.reports().count();
                }
                RtcpPacket::Sdes(sdes) => {
                    for chunk in sdes.chunks() {
                        let _ = chunk.items().count();
                    }
                }
                RtcpPacket::Bye(bye) => {
                    let _ = bye.sources().count();
                }
                _ => {}
            }
        }
        assert!(walked > 0, "a valid compound yields packets");
    }
}

/// Bytes as a script of pushes (arbitrary sequence numbers, timestamps, markers, payload
/// types, SSRC changes), clock steps and ticks, each tick's playout decoded (PCMU) as a leg
/// does. Invariants: no panic (in the buffer, nor in the decoder concealing what it is told
/// to), never more packets buffered than the ring holds, and what plays comes out in sequence
/// order within a frame.
pub fn jitter_ops(data: &[u8]) {
    let config = JitterConfig {
        capacity: 16,
        max_payload: 64,
        ..JitterConfig::default()
    };
    let mut jb = JitterBuffer::new(&config);
    let mut now = Instant::now();
    let (mut seq, mut ts, mut ssrc) = (0u16, 0u32, 1u32);
    let payload = [0u8; 80];
    let mut decoder = StreamDecoder::new(CodecKind::Pcmu, 8000).ok();
    let mut pcm = [0i16; 160];
    for op in data.chunks(5) {
        let [kind, a, b, c, d] = [0, 1, 2, 3, 4].map(|i| op.get(i).copied().unwrap_or(0));
        match kind % 4 {
            0 | 1 => {
                if kind % 4 == 0 {
                    // Near the last packet: the common case, with small reorders and jumps.
                    seq = seq.wrapping_add_signed(i16::from(a as i8));
                    ts = ts.wrapping_add_signed(i32::from(b as i8) * 80);
                } else {
                    seq = u16::from_be_bytes([a, b]);
                    ts = u32::from_be_bytes([a, b, c, d]);
                }
                if c & 0x80 != 0 && d == 0xff {
                    ssrc = ssrc.wrapping_add(1);
                }
                let header = RtpHeader {
                    marker: c & 1 != 0,
                    pt: Pt(if c & 2 != 0 { 13 } else { 0 }),
                    seq,
                    timestamp: ts,
                    ssrc: Ssrc(ssrc),
                };
                jb.push(now, &header, &payload[..usize::from(d % 80)]);
            }
            2 => {
                now += Duration::from_millis(20);
                let playout = jb.tick(now);
                if let Playout::Frame(frame) = &playout {
                    let seqs: Vec<u16> = frame.packets().map(|p| p.seq).collect();
                    for w in seqs.windows(2) {
                        assert!(
                            (w[1].wrapping_sub(w[0]) as i16) > 0,
                            "frame out of order: {seqs:?}"
                        );
                    }
                }
                // What the jitter buffer asks to conceal, the decoder can make.
                if let Some(decoder) = decoder.as_mut() {
                    decoder.play(playout);
                    decoder.pop_into(&mut pcm);
                }
            }
            _ => now += Duration::from_millis(u64::from(a) * 4),
        }
        assert!(jb.stats().buffered <= 16);
    }
}

/// Any bytes as an SRTP and an SRTCP packet, for each suite: unprotect never panics and never
/// accepts forged input; a packet we protect ourselves unprotects back to itself, once.
pub fn srtp(data: &[u8]) {
    use crate::srtp::{SrtpConfig, SrtpKey, SrtpSession, SrtpSuite};
    for suite in [
        SrtpSuite::AesCm128HmacSha1_80,
        SrtpSuite::AesCm128HmacSha1_32,
        SrtpSuite::AeadAes128Gcm,
        SrtpSuite::Aes256CmHmacSha1_80,
        SrtpSuite::AeadAes256Gcm,
    ] {
        let key = SrtpKey {
            key: vec![1; suite.key_len()],
            salt: vec![2; suite.salt_len()],
            mki: Vec::new(),
        };
        let config = SrtpConfig {
            suite,
            local: key.clone(),
            remote: key,
        };
        let Ok(mut session) = SrtpSession::new(&config) else {
            panic!("fixed keys fit every suite");
        };
        let mut copy = data.to_vec();
        assert!(
            session.unprotect_rtp(&mut copy).is_err(),
            "forged SRTP accepted"
        );
        let mut copy = data.to_vec();
        assert!(
            session.unprotect_rtcp(&mut copy).is_err(),
            "forged SRTCP accepted"
        );
        if RtpPacket::parse(data).is_ok() {
            let mut buf = data.to_vec();
            buf.resize(data.len() + suite.rtp_overhead(), 0);
            if let Ok(n) = session.protect_rtp(&mut buf, data.len()) {
                match session.unprotect_rtp(&mut buf[..n]) {
                    Ok(len) => assert_eq!(&buf[..len], data),
                    Err(e) => panic!("own packet refused: {e}"),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    /// Random inputs, half of them starting like RTP or RTCP so parsing gets past the header.
    fn inputs(seed: u64, count: usize) -> impl Iterator<Item = Vec<u8>> {
        let mut rng = Rng::new(seed);
        (0..count).map(move |i| {
            let len = rng.below(160) as usize;
            let mut v: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
            if let Some(first) = v.first_mut().filter(|_| i % 2 == 0) {
                *first = 0x80 | (*first & 0x3f);
            }
            if i % 4 == 0 && v.len() > 1 {
                v[1] = 200 + (v[1] % 5);
            }
            v
        })
    }

    #[test]
    fn rtp_rtcp_survives_random_input() {
        for data in inputs(11, 4000) {
            rtp_rtcp(&data);
        }
    }

    #[test]
    fn srtp_survives_random_input() {
        for data in inputs(13, 1500) {
            srtp(&data);
        }
    }

    #[test]
    fn jitter_ops_survives_random_scripts() {
        for data in inputs(12, 3000) {
            jitter_ops(&data);
        }
    }
}
