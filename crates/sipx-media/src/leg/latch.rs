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
//!
//! One packet must not lock the caller out, though: a scanner's single packet, or the tail of
//! the previous call on a reused port, can arrive before the caller's first. So when the address learned has
//! gone quiet for a second while media is expected, a new source that sends a run of
//! in-sequence packets of one stream takes its place, but only while what was learned has
//! not yet sent media without a pause for [`ESTABLISHED`] (a tail, a stray: a scanner's packets
//! now and then never add up to that). An address that has, or that proved itself, is the
//! peer's: a caller that pauses without comfort noise (a mute, voice activity detection) is
//! never displaced by someone spraying the port meanwhile, who would hear the call and speak
//! into it. Only proof moves it then, as Asterisk's strict RTP does once it has learned, until
//! a re-INVITE (signalling, which is authenticated) lets an unproven address be displaced
//! again: a NAT mapping that expired during a hold moves a caller to a new port, and maybe a
//! new SSRC.
//!
//! A packet with proof from another address while the learned one still sends (one SBC
//! sending the stream from two ports in turn) is taken, but the destination moves only once
//! the learned address has been quiet for [`SETTLE`]: a NAT that moved the peer gets there
//! a few packets later, two live sources no longer swap it (and report it) on every packet.
//!
//! Anything else is dropped and counted. A new SDP address starts the learning again.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::ids::Ssrc;

/// How long the learned address must have been quiet before another source may take over.
const QUIET: Duration = Duration::from_secs(1);
/// In-sequence packets of one stream a new source must send to take over a quiet address.
const RUN: u8 = 3;
/// How long the learned address must have been quiet before a source with proof becomes the
/// destination (its packets are taken meanwhile).
const SETTLE: Duration = Duration::from_millis(80);
/// How long an address learned without proof must have sent media without a pause of
/// [`QUIET`], in at least [`ESTABLISHED_PACKETS`] packets, before no unproven source may take
/// over from it: longer than a scanner's packets or a reused port's tail (ports are reused
/// round-robin, so seldom), shorter than a caller's first words.
const ESTABLISHED: Duration = Duration::from_millis(500);
const ESTABLISHED_PACKETS: u32 = 8;

/// One destination of a leg (its RTP, or its RTCP on a port of its own).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Latch {
    /// The address the peer's SDP gave.
    signalled: SocketAddr,
    /// Where packets go now.
    current: SocketAddr,
    /// The last packet from `current`; `None` until a packet has shown where the peer is
    /// (after that, other addresses need proof).
    heard_at: Option<Instant>,
    /// `current` proved itself (the signalled address, SRTP, the known stream).
    proven: bool,
    /// `current` proved itself or sent a run of [`ESTABLISHED`]: only proof moves the latch.
    settled: bool,
    /// `current`'s packets since its last pause of [`QUIET`]: since when, how many.
    run: Option<(Instant, u32)>,
    /// A source sending in sequence while `current` is quiet: (address, SSRC, last sequence
    /// number, packets in a row).
    candidate: Option<(SocketAddr, Ssrc, u16, u8)>,
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
    /// Drop the packet, without blame: RTCP before anything has shown where the peer is (a
    /// peer may send its first report before its first RTP).
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
    /// An RTP packet's stream and sequence number (for taking over a quiet address).
    pub stream: Option<(Ssrc, u16)>,
}

impl Latch {
    pub(super) fn new(signalled: SocketAddr) -> Self {
        Latch {
            signalled,
            current: signalled,
            heard_at: None,
            proven: false,
            settled: false,
            run: None,
            candidate: None,
        }
    }

    /// Where packets go now.
    pub(super) fn current(&self) -> SocketAddr {
        self.current
    }

    /// Whether a packet has shown where the peer is.
    pub(super) fn is_learned(&self) -> bool {
        self.heard_at.is_some()
    }

    /// A re-INVITE: an address that never proved itself may be displaced again, once quiet.
    pub(super) fn renew(&mut self) {
        if !self.proven {
            self.settled = false;
            self.run = None;
        }
    }

    /// A packet from `current` at `now`: its run goes on, or starts after a pause.
    fn heard(&mut self, now: Instant) {
        let (since, packets) = match (self.run, self.heard_at) {
            (Some((since, n)), Some(last)) if now.saturating_duration_since(last) < QUIET => {
                (since, n + 1)
            }
            _ => (now, 1),
        };
        self.run = Some((since, packets));
        self.settled |=
            packets >= ESTABLISHED_PACKETS && now.saturating_duration_since(since) >= ESTABLISHED;
        self.heard_at = Some(now);
    }

    /// Whether a valid packet from `source`, arrived at `now`, is the peer's; with
    /// `symmetric` on, a new address becomes the destination. Without `symmetric`, packets go
    /// to the SDP address and are taken from anywhere, as before symmetric RTP existed.
    pub(super) fn admit(
        &mut self,
        now: Instant,
        source: SocketAddr,
        proof: Proof,
        symmetric: bool,
    ) -> Admit {
        if !symmetric {
            return Admit::Keep;
        }
        if source == self.current {
            if self.heard_at.is_none() {
                // The signalled address, heard first: proof enough.
                (self.proven, self.settled) = (true, true);
            }
            self.heard(now);
            return Admit::Keep;
        }
        let proven =
            proof.authenticated || proof.known_ssrc || proof.peer_host || source == self.signalled;
        let learned = self.is_learned();
        let still_sending = self
            .heard_at
            .is_some_and(|at| now.saturating_duration_since(at) < SETTLE);
        if proven && learned && still_sending && source != self.signalled {
            return Admit::Keep;
        }
        if proven || proof.may_learn && (!learned || self.takes_over(now, source, proof)) {
            self.current = source;
            (self.proven, self.settled, self.run) = (proven, proven, None);
            self.heard(now);
            self.candidate = None;
            return Admit::Moved(source);
        }
        // RTCP before anything was learned is no one's fault (a peer may report before its
        // first RTP); RTP that proves nothing is a stranger's.
        if learned || proof.stream.is_some() {
            Admit::Refuse
        } else {
            Admit::Unknown
        }
    }

    /// Whether an unproven media packet from `source` completes a run that takes over the
    /// learned address, gone quiet and not established.
    fn takes_over(&mut self, now: Instant, source: SocketAddr, proof: Proof) -> bool {
        let open = !self.settled
            && self
                .heard_at
                .is_none_or(|at| now.saturating_duration_since(at) >= QUIET);
        let Some((ssrc, seq)) = proof.stream.filter(|_| open) else {
            self.candidate = None;
            return false;
        };
        let run = match self.candidate {
            Some((addr, s, last, n))
                if addr == source && s == ssrc && seq == last.wrapping_add(1) =>
            {
                n + 1
            }
            _ => 1,
        };
        self.candidate = Some((source, ssrc, seq, run));
        run >= RUN
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
        stream: None,
    };

    /// A test's clock: `at(ms)` is `ms` after its start.
    fn clock() -> impl Fn(u64) -> Instant {
        let start = Instant::now();
        move |ms| start + Duration::from_millis(ms)
    }

    fn t0() -> Instant {
        Instant::now()
    }

    #[test]
    fn the_first_source_is_learned_and_strangers_are_refused_after() {
        let mut latch = Latch::new(addr("192.168.1.10:4000"));
        let nat = addr("198.51.100.7:31000");
        assert_eq!(latch.admit(t0(), nat, NONE, true), Admit::Moved(nat));
        assert_eq!(latch.admit(t0(), nat, NONE, true), Admit::Keep);
        let stranger = addr("203.0.113.66:666");
        assert_eq!(latch.admit(t0(), stranger, NONE, true), Admit::Refuse);
        assert_eq!(latch.current(), nat);
    }

    #[test]
    fn the_signalled_address_proves_itself_and_locks_at_once() {
        let sdp = addr("192.0.2.5:4000");
        let mut latch = Latch::new(sdp);
        assert_eq!(latch.admit(t0(), sdp, NONE, true), Admit::Keep);
        assert_eq!(
            latch.admit(t0(), addr("203.0.113.66:666"), NONE, true),
            Admit::Refuse
        );
        // Someone got in first: the address signalling gave takes the call back.
        let mut raced = Latch::new(sdp);
        let early = addr("203.0.113.66:666");
        assert_eq!(raced.admit(t0(), early, NONE, true), Admit::Moved(early));
        assert_eq!(raced.admit(t0(), sdp, NONE, true), Admit::Moved(sdp));
    }

    #[test]
    fn the_known_stream_or_an_authenticated_packet_moves_the_latch_once_the_old_address_is_quiet() {
        let at = clock();
        let mut latch = Latch::new(addr("192.168.1.10:4000"));
        let first = addr("198.51.100.7:31000");
        latch.admit(at(0), first, NONE, true);
        let rebound = addr("198.51.100.7:31007");
        let same_stream = Proof {
            known_ssrc: true,
            ..NONE
        };
        // Taken at once, but the old address sent 20 ms ago: the destination stays.
        assert_eq!(latch.admit(at(20), rebound, same_stream, true), Admit::Keep);
        assert_eq!(latch.current(), first);
        assert_eq!(
            latch.admit(at(80), rebound, same_stream, true),
            Admit::Moved(rebound)
        );
        let roamed = addr("198.51.100.99:5000");
        let srtp = Proof {
            authenticated: true,
            ..NONE
        };
        assert_eq!(
            latch.admit(at(200), roamed, srtp, true),
            Admit::Moved(roamed)
        );
    }

    #[test]
    fn two_addresses_sending_in_turn_do_not_swap_the_destination() {
        let at = clock();
        let mut latch = Latch::new(addr("192.168.1.10:4000"));
        let (a, b) = (addr("198.51.100.7:31000"), addr("198.51.100.7:31002"));
        let same_stream = Proof {
            known_ssrc: true,
            ..NONE
        };
        assert_eq!(latch.admit(at(0), a, NONE, true), Admit::Moved(a));
        for k in 1..50 {
            let (from, when) = if k % 2 == 1 {
                (b, at(10 * k))
            } else {
                (a, at(10 * k))
            };
            assert_eq!(
                latch.admit(when, from, same_stream, true),
                Admit::Keep,
                "packet {k}"
            );
        }
        assert_eq!(latch.current(), a);
        // The signalled address is believed at once, whatever else sends.
        let sdp = addr("192.168.1.10:4000");
        assert_eq!(latch.admit(at(500), sdp, NONE, true), Admit::Moved(sdp));
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
        assert_eq!(latch.admit(t0(), stranger, unproven, true), Admit::Unknown);
        assert!(!latch.is_learned());
        // The peer's RTCP from behind its NAT: the SSRC of its RTP, or the host its RTP came
        // from.
        let nat = addr("198.51.100.7:31001");
        let ssrc = Proof {
            known_ssrc: true,
            ..unproven
        };
        assert_eq!(latch.admit(t0(), nat, ssrc, true), Admit::Moved(nat));
        let mut other = Latch::new(sdp);
        let host = Proof {
            peer_host: true,
            ..unproven
        };
        assert_eq!(other.admit(t0(), nat, host, true), Admit::Moved(nat));
    }

    fn packet(ssrc: u32, seq: u16) -> Proof {
        Proof {
            stream: Some((Ssrc(ssrc), seq)),
            ..NONE
        }
    }

    #[test]
    fn a_stray_first_packet_gives_way_to_a_stream_once_it_is_quiet() {
        let at = clock();
        let mut latch = Latch::new(addr("192.168.1.10:4000"));
        // A scanner's single packet comes first and is learned.
        let scanner = addr("203.0.113.66:666");
        assert_eq!(
            latch.admit(at(0), scanner, packet(1, 9), true),
            Admit::Moved(scanner)
        );
        // The caller, behind a NAT, streams: refused while the scanner's packet is recent...
        let nat = addr("198.51.100.7:31000");
        for (i, ms) in (0..5).zip((20..).step_by(20)) {
            assert_eq!(
                latch.admit(at(ms), nat, packet(7, 100 + i), true),
                Admit::Refuse
            );
        }
        // ...and after a second of quiet, its third packet in sequence takes over.
        assert_eq!(
            latch.admit(at(1000), nat, packet(7, 150), true),
            Admit::Refuse
        );
        assert_eq!(
            latch.admit(at(1020), nat, packet(7, 151), true),
            Admit::Refuse
        );
        assert_eq!(
            latch.admit(at(1040), nat, packet(7, 152), true),
            Admit::Moved(nat)
        );
        assert_eq!(latch.current(), nat);
    }

    #[test]
    fn a_talking_caller_is_never_displaced_and_a_broken_run_starts_again() {
        let at = clock();
        let mut latch = Latch::new(addr("192.168.1.10:4000"));
        let nat = addr("198.51.100.7:31000");
        let sprayer = addr("203.0.113.66:666");
        latch.admit(at(0), nat, packet(7, 1), true);
        // The caller talks every 20 ms for 3 s; a perfect stream from elsewhere gets nowhere.
        for i in 1..150u16 {
            let ms = u64::from(i) * 20;
            assert_eq!(
                latch.admit(at(ms), nat, packet(7, 1 + i), true),
                Admit::Keep
            );
            assert_eq!(
                latch.admit(at(ms), sprayer, packet(5, i), true),
                Admit::Refuse
            );
        }
        // The caller pauses; a run with a gap, or one that changes stream, does not count.
        let quiet = 3000 + 1000;
        assert_eq!(
            latch.admit(at(quiet), sprayer, packet(5, 10), true),
            Admit::Refuse
        );
        assert_eq!(
            latch.admit(at(quiet + 20), sprayer, packet(5, 12), true),
            Admit::Refuse
        );
        assert_eq!(
            latch.admit(at(quiet + 40), sprayer, packet(6, 13), true),
            Admit::Refuse
        );
        assert_eq!(
            latch.admit(at(quiet + 60), sprayer, packet(6, 14), true),
            Admit::Refuse
        );
        // RTCP or media while none is expected never takes over.
        let unexpected = Proof {
            may_learn: false,
            ..packet(6, 15)
        };
        assert_eq!(
            latch.admit(at(quiet + 80), sprayer, unexpected, true),
            Admit::Refuse
        );
        assert_eq!(latch.current(), nat);
    }

    #[test]
    fn a_caller_that_has_talked_is_not_displaced_by_a_run_while_it_pauses() {
        // The "RTP bleed" takeover: a caller behind a NAT (not at its SDP address) talks for
        // a second, then pauses without comfort noise; someone sprays a perfect stream at the
        // port.
        let at = clock();
        let mut latch = Latch::new(addr("192.168.1.10:4000"));
        let nat = addr("198.51.100.7:31000");
        let sprayer = addr("203.0.113.66:666");
        assert_eq!(
            latch.admit(at(0), nat, packet(7, 1), true),
            Admit::Moved(nat)
        );
        for i in 1..50u16 {
            latch.admit(at(u64::from(i) * 20), nat, packet(7, 1 + i), true);
        }
        for i in 0..100u16 {
            let ms = 1000 + 1200 + u64::from(i) * 20;
            assert_eq!(
                latch.admit(at(ms), sprayer, packet(5, i), true),
                Admit::Refuse,
                "packet {i}"
            );
        }
        assert_eq!(latch.current(), nat);
        // The caller speaks again: its packets are taken, its audio still goes to it.
        assert_eq!(
            latch.admit(at(6300), nat, packet(7, 300), true),
            Admit::Keep
        );
    }

    #[test]
    fn a_scanners_packets_now_and_then_never_settle_the_latch() {
        // Two packets half a second apart are not a caller's media: the caller, refused
        // meanwhile, takes over once they stop.
        let at = clock();
        let mut latch = Latch::new(addr("192.168.1.10:4000"));
        let scanner = addr("203.0.113.66:666");
        let nat = addr("198.51.100.7:31000");
        latch.admit(at(0), scanner, packet(1, 9), true);
        latch.admit(at(600), scanner, packet(1, 10), true);
        let moved = (0..100u16)
            .map(|i| latch.admit(at(100 + u64::from(i) * 20), nat, packet(7, i), true))
            .position(|a| a == Admit::Moved(nat));
        // Quiet from 600 ms: the third packet of the caller's run after 1600 ms moves it.
        assert_eq!(moved, Some(77), "{latch:?}");
    }

    #[test]
    fn a_reinvite_lets_a_caller_that_never_proved_itself_move_again() {
        // A NAT mapping expires during a hold: after the re-INVITE the caller sends from a new
        // port, and a new SSRC; what it sent before proves nothing about it now.
        let at = clock();
        let mut latch = Latch::new(addr("192.168.1.10:4000"));
        let (old, new) = (addr("198.51.100.7:31000"), addr("198.51.100.7:40000"));
        for i in 0..50u16 {
            latch.admit(at(u64::from(i) * 20), old, packet(7, i), true);
        }
        let resume = |latch: &mut Latch| {
            (0..3u16)
                .map(|i| latch.admit(at(5000 + u64::from(i) * 20), new, packet(8, i), true))
                .last()
        };
        let mut held = latch;
        assert_eq!(resume(&mut held), Some(Admit::Refuse), "settled");
        latch.renew();
        assert_eq!(resume(&mut latch), Some(Admit::Moved(new)));
    }

    #[test]
    fn without_symmetric_rtp_nothing_moves_and_nothing_is_refused() {
        let sdp = addr("192.0.2.5:4000");
        let mut latch = Latch::new(sdp);
        latch.admit(t0(), sdp, NONE, false);
        assert_eq!(
            latch.admit(t0(), addr("203.0.113.66:666"), NONE, false),
            Admit::Keep
        );
        assert_eq!(latch.current(), sdp);
    }
}
