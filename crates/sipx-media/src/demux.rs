//! Sorting a datagram received on a shared port by its first bytes, once, before any state
//! machine sees it: RFC 7983 (STUN, DTLS, RTP/RTCP) and RFC 5761 §4 (RTP vs RTCP with rtcp-mux).

/// What a datagram on a multiplexed port is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketKind {
    Rtp,
    Rtcp,
    Stun,
    Dtls,
    /// Anything else (including ZRTP and TURN channel data, which SIPx does not use).
    Unknown,
}

/// Classifies a datagram. RTCP packet types 192..=223 occupy the byte where RTP has the marker
/// bit and payload type, so RTP must not use payload types 64..=95 on a muxed port (RFC 5761 §4).
pub fn classify(data: &[u8]) -> PacketKind {
    match data {
        [0..=3, ..] => PacketKind::Stun,
        [20..=63, ..] => PacketKind::Dtls,
        [128..=191, 192..=223, ..] => PacketKind::Rtcp,
        [128..=191, _, ..] => PacketKind::Rtp,
        _ => PacketKind::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_by_first_bytes() {
        let cases: &[(&[u8], PacketKind)] = &[
            (&[0x80, 0x00], PacketKind::Rtp),  // PCMU
            (&[0x80, 0xef], PacketKind::Rtp),  // marker + PT 111 (0xef = 128 + 111)
            (&[0x80, 0x7f], PacketKind::Rtp),  // PT 127
            (&[0x80, 200], PacketKind::Rtcp),  // SR
            (&[0x81, 201], PacketKind::Rtcp),  // RR with one block
            (&[0x80, 223], PacketKind::Rtcp),  // top of the RTCP range
            (&[0x80, 224], PacketKind::Rtp),   // marker + PT 96
            (&[0x00, 0x01], PacketKind::Stun), // binding request
            (&[22, 254], PacketKind::Dtls),    // handshake
            (&[0x80], PacketKind::Unknown),    // too short to tell
            (&[], PacketKind::Unknown),
            (&[64, 0], PacketKind::Unknown),
        ];
        for (bytes, kind) in cases {
            assert_eq!(classify(bytes), *kind, "{bytes:?}");
        }
    }
}
