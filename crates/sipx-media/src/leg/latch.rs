//! Symmetric RTP without RTP bleed: where the peer's packets are taken from, and sent to.
//!
//! A phone behind a NAT sends from another address than its SDP gives, so a leg sends to
//! wherever the peer's packets really come from. Taking that from *any* packet lets anyone who
//! can reach the port range take the call over ("RTP bleed"): spray a packet at every port,
//! and each leg turns its audio towards the sprayer and plays what it sent (keys included, so
//! a PIN could be typed from outside). So a leg learns the peer's address once, from the first
//! valid media packet while it expects media, and afterwards takes packets from another
//! address only when they prove they belong to the call:
//! - SRTP authenticated them (only the peer holds the key);
//! - they carry the SSRC of the stream already heard (a NAT that moved the peer to a new
//!   port; someone off the path cannot know the SSRC);
//! - they come from the address the peer's SDP gave (what signalling said outranks a guess);
//! - for RTCP on a port of its own: they come from the host the RTP was learned from.
//!
//! RTCP never teaches an address by coming first (it has no payload type of the call to
//! show, and a peer sends it seconds after its RTP), nor does RTP while the leg expects none
//! (a `recvonly` peer sends none, so the first packet would be a stranger's).
//! Anything else is dropped and counted. A new SDP address starts the learning again.

use std::net::SocketAddr;

/// One destination of a leg (its RTP, or its RTCP on a port of its own).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Latch {
    /// The address the peer's SDP gave.
    signalled: SocketAddr,
    /// Where packets go now.
    current: SocketAddr,
    /// A packet has shown where the peer is: other addresses now need proof.
    learned: bool,
}

/// What [`Latch::admit`] made of a packet's source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Admit {
    /// Take the packet; the destination stays.
    Keep,
    /// Take the packet; the peer is now at this address.
    Moved(SocketAddr),
    /// Drop the packet: it does not come from the peer.
    Refuse,
    /// Drop the packet: nothing has shown where the peer is yet, and this packet may not
    /// (RTCP before the first RTP, which a peer may send that early; RTP while no media is
    /// expected).
    Unknown,
}

/// What a packet from an unexpected address can show of itself.
#[derive(Debug, Clone, Copy)]
pub(super) struct Proof {
    /// SRTP authenticated it.
    pub authenticated: bool,
    /// It carries the SSRC of the stream the leg is receiving.
    pub known_ssrc: bool,
    /// RTCP on its own port, from the host the RTP was learned from.
    pub peer_host: bool,
    /// A media packet while the leg expects media: the first one may teach the address.
    pub may_learn: bool,
}

impl Latch {
    pub(super) fn new(signalled: SocketAddr) -> Self {
        Latch {
            signalled,
            current: signalled,
            learned: false,
        }
    }

    /// Where packets go now.
    pub(super) fn current(&self) -> SocketAddr {
        self.current
    }

    /// Whether a packet has shown where the peer is.
    pub(super) fn is_learned(&self) -> bool {
        self.learned
    }

    /// Whether a valid packet from `source` is the peer's; with `symmetric` on, a new
    /// address becomes the destination. Without `symmetric`, packets go to the SDP address
    /// and are taken from anywhere, as before symmetric RTP existed.
    pub(super) fn admit(&mut self, source: SocketAddr, proof: Proof, symmetric: bool) -> Admit {
        if !symmetric {
            return Admit::Keep;
        }
        if source == self.current {
            self.learned = true;
            return Admit::Keep;
        }
        let proven =
            proof.authenticated || proof.known_ssrc || proof.peer_host || source == self.signalled;
        if proven || proof.may_learn && !self.learned {
            self.current = source;
            self.learned = true;
            return Admit::Moved(source);
        }
        if self.learned {
            Admit::Refuse
        } else {
            Admit::Unknown
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    /// A media packet proving nothing.
    const NONE: Proof = Proof {
        authenticated: false,
        known_ssrc: false,
        peer_host: false,
        may_learn: true,
    };

    #[test]
    fn the_first_source_is_learned_and_strangers_are_refused_after() {
        let mut latch = Latch::new(addr("192.168.1.10:4000"));
        let nat = addr("198.51.100.7:31000");
        assert_eq!(latch.admit(nat, NONE, true), Admit::Moved(nat));
        assert_eq!(latch.admit(nat, NONE, true), Admit::Keep);
        let stranger = addr("203.0.113.66:666");
        assert_eq!(latch.admit(stranger, NONE, true), Admit::Refuse);
        assert_eq!(latch.current(), nat);
    }

    #[test]
    fn the_signalled_address_proves_itself_and_locks_at_once() {
        let sdp = addr("192.0.2.5:4000");
        let mut latch = Latch::new(sdp);
        assert_eq!(latch.admit(sdp, NONE, true), Admit::Keep);
        assert_eq!(
            latch.admit(addr("203.0.113.66:666"), NONE, true),
            Admit::Refuse
        );
        // Someone got in first: the address signalling gave takes the call back.
        let mut raced = Latch::new(sdp);
        let early = addr("203.0.113.66:666");
        assert_eq!(raced.admit(early, NONE, true), Admit::Moved(early));
        assert_eq!(raced.admit(sdp, NONE, true), Admit::Moved(sdp));
    }

    #[test]
    fn the_known_stream_or_an_authenticated_packet_moves_the_latch() {
        let mut latch = Latch::new(addr("192.168.1.10:4000"));
        latch.admit(addr("198.51.100.7:31000"), NONE, true);
        let rebound = addr("198.51.100.7:31007");
        let same_stream = Proof {
            known_ssrc: true,
            ..NONE
        };
        assert_eq!(
            latch.admit(rebound, same_stream, true),
            Admit::Moved(rebound)
        );
        let roamed = addr("198.51.100.99:5000");
        let srtp = Proof {
            authenticated: true,
            ..NONE
        };
        assert_eq!(latch.admit(roamed, srtp, true), Admit::Moved(roamed));
    }

    #[test]
    fn rtcp_or_unexpected_media_teaches_nothing_but_proof_still_counts() {
        let sdp = addr("192.168.1.10:4001");
        let stranger = addr("203.0.113.66:666");
        let unproven = Proof {
            may_learn: false,
            ..NONE
        };
        let mut latch = Latch::new(sdp);
        assert_eq!(latch.admit(stranger, unproven, true), Admit::Unknown);
        assert!(!latch.is_learned());
        // The peer's RTCP from behind its NAT: the SSRC of its RTP, or the host its RTP came
        // from.
        let nat = addr("198.51.100.7:31001");
        let ssrc = Proof {
            known_ssrc: true,
            ..unproven
        };
        assert_eq!(latch.admit(nat, ssrc, true), Admit::Moved(nat));
        let mut other = Latch::new(sdp);
        let host = Proof {
            peer_host: true,
            ..unproven
        };
        assert_eq!(other.admit(nat, host, true), Admit::Moved(nat));
    }

    #[test]
    fn without_symmetric_rtp_nothing_moves_and_nothing_is_refused() {
        let sdp = addr("192.0.2.5:4000");
        let mut latch = Latch::new(sdp);
        latch.admit(sdp, NONE, false);
        assert_eq!(
            latch.admit(addr("203.0.113.66:666"), NONE, false),
            Admit::Keep
        );
        assert_eq!(latch.current(), sdp);
    }
}
