//! The receive path: tell RTP from RTCP by content, unprotect SRTP, take only the peer's
//! packets (`latch.rs`), route telephone events to the DTMF receiver and audio and comfort
//! noise to the jitter buffer.

use std::net::SocketAddr;
use std::time::Instant;

use super::clock_step::ClockStep;
use super::latch::{Admit, Proof};
use super::source::Choice;
use super::transmit::Channel;
use super::{LegEvent, MediaLeg};
use crate::demux::{PacketKind, classify};
use crate::ids::{Pt, Ssrc};
use crate::rtp::{RtpHeader, RtpPacket};
use crate::session::RtcpEvent;

/// What an RTP packet's payload type makes it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Payload {
    Audio,
    ComfortNoise,
    TelephoneEvent,
}

impl MediaLeg {
    /// One datagram from the leg's RTP socket: RTP, or RTCP (rtcp-mux, or a peer that sends
    /// it there anyway). SRTP is unprotected in place in `bytes`. Anything that fails to
    /// parse, authenticate or match is counted and dropped.
    pub fn handle_receive(&mut self, now: Instant, source: SocketAddr, bytes: &mut [u8]) {
        let kind = self.classify_received(bytes);
        self.handle_classified(kind, now, source, bytes);
    }

    /// [`MediaLeg::handle_receive`] for a datagram the driver classified already
    /// ([`MediaLeg::classify_received`]), as it does to stamp RTP on its ticks' clock.
    pub fn handle_classified(
        &mut self,
        kind: PacketKind,
        now: Instant,
        source: SocketAddr,
        bytes: &mut [u8],
    ) {
        match kind {
            PacketKind::Rtp => self.receive_rtp(now, source, bytes),
            PacketKind::Rtcp => self.receive_rtcp(now, source, bytes),
            _ => self.counters.malformed += 1,
        }
    }

    /// What a datagram on the leg's RTP socket is. By its first bytes (`demux::classify`),
    /// except RTP that reads as RTCP: a marker bit on payload type 72–95 puts 200–223 in the
    /// second byte, RTCP's packet types. RFC 5761 §4 keeps those numbers out of multiplexed
    /// sessions only, so a peer that keeps RTCP on its own port may give them to a codec; on
    /// such a leg, a number the leg receives is RTP, unless the datagram is well-formed RTCP
    /// (a peer that sends its reports to the RTP port anyway).
    pub fn classify_received(&self, bytes: &[u8]) -> PacketKind {
        match classify(bytes) {
            PacketKind::Rtcp if self.is_marked_rtp(bytes) => PacketKind::Rtp,
            kind => kind,
        }
    }

    fn is_marked_rtp(&self, bytes: &[u8]) -> bool {
        let muxed = self.cfg.remote_rtcp.is_none();
        !muxed
            && bytes
                .get(1)
                .is_some_and(|&b| self.payload_kind(Pt(b & 0x7f)).is_some())
            && crate::rtcp::RtcpCompound::parse(bytes).is_err()
    }

    /// What a payload type is on this leg, if the leg receives it: first the numbers the peer
    /// should send with, then the ones it answered with, which some peers send with instead.
    fn payload_kind(&self, pt: Pt) -> Option<Payload> {
        let send_event = self.cfg.telephone_event.map(|(te, _)| te);
        Some(match pt {
            pt if pt.0 == self.cfg.receive_payload_type => Payload::Audio,
            pt if self.cfg.receive_event_payload_type == Some(pt.0) => Payload::TelephoneEvent,
            Pt::CN => Payload::ComfortNoise,
            pt if pt.0 == self.cfg.payload_type => Payload::Audio,
            pt if send_event == Some(pt.0) => Payload::TelephoneEvent,
            // Another codec the answer listed: the peer changed to it.
            pt if self.cfg.other_codec(pt.0).is_some() => Payload::Audio,
            _ => return None,
        })
    }

    /// One datagram from the leg's RTCP socket: RTCP only. RTP has no business there (and
    /// would give the first-packet latch a second door).
    pub fn handle_receive_rtcp_port(&mut self, now: Instant, source: SocketAddr, bytes: &mut [u8]) {
        match classify(bytes) {
            PacketKind::Rtcp => self.receive_rtcp(now, source, bytes),
            _ => self.counters.malformed += 1,
        }
    }

    fn receive_rtp(&mut self, now: Instant, source: SocketAddr, bytes: &mut [u8]) {
        let len = match self.srtp.as_mut() {
            // Failures are counted by the SRTP session's own stats.
            Some(srtp) => match srtp.unprotect_rtp(bytes) {
                Ok(len) => len,
                Err(_) => return,
            },
            None => bytes.len(),
        };
        let Ok(packet) = RtpPacket::parse(&bytes[..len]) else {
            self.counters.malformed += 1;
            return;
        };
        let mut header = packet.header;
        let other_codec = self.cfg.other_codec(header.pt.0);
        let kind = match self.payload_kind(header.pt) {
            Some(kind) => kind,
            None => {
                let pt = header.pt;
                // Said once, and only of the peer's packets (anyone can send to the port).
                if !self.counters.payload_type_reported && source == self.rtp_latch.current() {
                    self.counters.payload_type_reported = true;
                    self.push_event(LegEvent::UnexpectedPayloadType(pt.0));
                }
                self.counters.unknown_payload_types += 1;
                return;
            }
        };
        // A valid packet of ours; is it the peer's? The first may say where the peer is, while
        // media is expected.
        let proof = Proof {
            may_learn: self.cfg.receive,
            stream: Some((header.ssrc, header.seq)),
            ..self.proof(Some(header.ssrc))
        };
        if !self.admitted(now, source, proof, Channel::Rtp) {
            return;
        }
        self.heard(now);
        if header.ssrc.0 == self.cfg.local_ssrc {
            return self.on_own_ssrc(now);
        }
        if !self.cfg.receive {
            return;
        }
        if kind == Payload::TelephoneEvent
            && self.source.playing().is_some_and(|p| p != header.ssrc)
        {
            // Key presses under an SSRC of their own beside the audio (some gateways send
            // them so): heard, without taking the audio's place nor its statistics.
            return self.receive_event(now, &header, packet.payload);
        }
        if !self.on_ssrc(now, header.ssrc) {
            if self.counters.other_ssrc == 0 {
                self.push_event(LegEvent::SecondStream(header.ssrc));
            }
            self.counters.other_ssrc += 1;
            return;
        }
        let per_byte = other_codec
            .unwrap_or(self.cfg.codec)
            .ticks_per_payload_byte();
        header.timestamp = match (kind, per_byte) {
            (Payload::Audio, Some(per_byte)) => {
                let ticks = u32::try_from(packet.payload.len())
                    .unwrap_or(u32::MAX)
                    .saturating_mul(per_byte);
                self.clock_step
                    .timestamp(header.seq, header.timestamp, ticks)
            }
            // Comfort noise, and audio whose length its payload does not tell, on the same
            // timeline as the audio around it.
            (Payload::Audio | Payload::ComfortNoise, _) => {
                self.clock_step.apply(header.seq, header.timestamp)
            }
            (Payload::TelephoneEvent, _) => header.timestamp,
        };
        self.rtcp.on_rtp_received(
            now,
            &header,
            packet.payload.len(),
            kind != Payload::TelephoneEvent,
        );
        match kind {
            Payload::TelephoneEvent => {
                self.jitter.note_other_packet(&header);
                self.receive_event(now, &header, packet.payload);
            }
            Payload::Audio | Payload::ComfortNoise => {
                self.jitter.push(now, &header, packet.payload);
            }
        }
    }

    /// An RFC 4733 packet, to the key press receiver.
    fn receive_event(&mut self, now: Instant, header: &RtpHeader, payload: &[u8]) {
        if let Some(rx) = self.dtmf_rx.as_mut()
            && rx.push(now, header, payload).is_err()
        {
            self.counters.malformed += 1;
        }
        self.drain_dtmf_events();
    }

    fn receive_rtcp(&mut self, now: Instant, source: SocketAddr, bytes: &mut [u8]) {
        let len = match self.srtp.as_mut() {
            Some(srtp) => match srtp.unprotect_rtcp(bytes) {
                Ok(len) => len,
                Err(_) => return,
            },
            None => bytes.len(),
        };
        // The sender's SSRC opens every compound packet (RFC 3550 §6.4); a shorter one is
        // refused by the parser below anyway.
        let sender = bytes
            .get(4..8)
            .map(|b| Ssrc(u32::from_be_bytes([b[0], b[1], b[2], b[3]])));
        let proof = Proof {
            // On RTCP's own port, the host the RTP came from (a `recvonly` peer's reports name
            // an SSRC that sends no RTP).
            peer_host: self.rtcp_latch.is_some()
                && self.rtp_latch.is_learned()
                && source.ip() == self.rtp_latch.current().ip(),
            ..self.proof(sender)
        };
        if !self.admitted(now, source, proof, Channel::Rtcp) {
            return;
        }
        if self.rtcp.handle_rtcp(now, &bytes[..len]).is_err() {
            self.counters.malformed += 1;
            return;
        }
        self.heard(now);
        while let Some(event) = self.rtcp.poll_event() {
            if matches!(event, RtcpEvent::Bye { .. }) {
                self.push_event(LegEvent::Bye);
            }
        }
    }

    /// What a packet naming `ssrc` can show of belonging to the call, beyond its address.
    fn proof(&self, ssrc: Option<Ssrc>) -> Proof {
        Proof {
            // It got here through SRTP's authentication.
            authenticated: self.srtp.is_some(),
            known_ssrc: ssrc.is_some() && self.source.playing() == ssrc,
            peer_host: false,
            may_learn: false,
            stream: None,
        }
    }

    /// Whether a valid packet from `source` is the peer's, by the latch of its channel (RTCP
    /// on a port of its own has one; with rtcp-mux it shares RTP's). Reports a new RTP
    /// address, and counts a refusal.
    fn admitted(
        &mut self,
        now: Instant,
        source: SocketAddr,
        proof: Proof,
        channel: Channel,
    ) -> bool {
        let symmetric = self.cfg.symmetric_rtp;
        let (latch, is_rtp) = match (channel, self.rtcp_latch.as_mut()) {
            (Channel::Rtcp, Some(own)) => (own, false),
            _ => (&mut self.rtp_latch, true),
        };
        match latch.admit(now, source, proof, symmetric) {
            Admit::Keep => true,
            Admit::Moved(to) => {
                if is_rtp {
                    // The stream from the peer's new address plays, whatever played before
                    // (the old address may still send a little: a re-INVITE moved the call).
                    self.source.let_go();
                    self.push_event(LegEvent::RemoteLatched(to));
                }
                true
            }
            Admit::Unknown => false,
            Admit::Refuse => {
                if self.counters.foreign_source == 0 {
                    self.push_event(LegEvent::ForeignSource(source));
                }
                self.counters.foreign_source += 1;
                self.last_foreign = Some(now);
                false
            }
        }
    }

    fn heard(&mut self, now: Instant) {
        self.last_heard = now;
        self.timeout_reported = false;
    }

    /// RTP naming our own SSRC (RFC 3550 §8.2). The first time, the peer chose the same one
    /// or sends our packets back: we take a new SSRC (the old one says BYE at once). Later
    /// ones carry the new SSRC, which nobody chose by chance: our packets, looped back. Such
    /// packets are never played, nor taken as the peer's stream.
    fn on_own_ssrc(&mut self, now: Instant) {
        self.counters.own_ssrc += 1;
        if self.counters.own_ssrc > 1 {
            return;
        }
        let old = Ssrc(self.cfg.local_ssrc);
        // The low 32 bits of the generator: any value but the two in use.
        let mut new = self.rng.next_u64() as u32;
        while new == old.0 || Some(Ssrc(new)) == self.source.playing() {
            new = new.wrapping_add(1);
        }
        self.cfg.local_ssrc = new;
        self.rtcp.change_ssrc(now, Ssrc(new));
        self.push_event(LegEvent::SsrcCollision {
            old,
            new: Ssrc(new),
        });
    }

    /// Whether a packet of `ssrc` plays (`source`). A stream taking over restarts decoding
    /// cleanly: the jitter buffer restarts itself on the new SSRC; the decoder's history and
    /// the queued PCM belong to the old stream.
    fn on_ssrc(&mut self, now: Instant, ssrc: Ssrc) -> bool {
        match self.source.choose(now, ssrc, self.jitter.packet_time()) {
            Choice::Playing => true,
            Choice::TookOver { old } => {
                self.reset_decoding();
                self.clock_step = ClockStep::default();
                self.push_event(LegEvent::SsrcChanged { old, new: ssrc });
                true
            }
            Choice::Ignored => false,
        }
    }
}
