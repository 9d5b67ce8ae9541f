//! One RTP session's control side (RFC 3550 §6): counts what is sent and received, builds
//! SR/RR + SDES at randomised RFC 3550 intervals, reads the peer's reports and computes the
//! round-trip time from LSR/DLSR.
//!
//! Sans-IO like the rest of the crate: every call brings `now`; [`RtcpSession::poll_timeout`]
//! says when to call [`RtcpSession::poll_transmit`] next. The session tracks one remote source
//! (a phone leg has one); a new remote SSRC replaces it and its statistics restart.

use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::error::MediaError;
use crate::ids::Ssrc;
use crate::rng::Rng;
use crate::rtcp::{NtpTime, ReportBlock, RtcpCompound, RtcpPacket, RtcpWriter, SenderInfo};
use crate::rtp::RtpHeader;
use crate::stats::{MediaStats, ReceiveStats, SendStats, SeqCheck, duration_to_units};

/// Seconds from the NTP epoch (1900) to the Unix epoch (1970).
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;
/// RTCP gets 5% of the session bandwidth (RFC 3550 §6.2).
const RTCP_FRACTION: f64 = 0.05;
/// Compensates for the timer reconsideration bias (RFC 3550 §6.3.1): e - 3/2.
const COMPENSATION: f64 = std::f64::consts::E - 1.5;
/// UDP and IPv4 headers, counted in the average RTCP size (RFC 3550 §6.2).
const UDP_IP_OVERHEAD: f64 = 28.0;

/// Settings of one session.
#[derive(Debug, Clone)]
pub struct RtcpConfig {
    /// Our sending source.
    pub ssrc: Ssrc,
    /// Our canonical name, sent in every SDES.
    pub cname: String,
    /// RTP clock rate of the media, in Hz.
    pub clock_rate: u32,
    /// Session bandwidth in bits per second (RTP payload plus headers); RTCP takes 5% of it.
    pub session_bandwidth_bps: u32,
    /// Floor of the report interval: 5 s in RFC 3550; shorter values suit rtcp-mux peers.
    pub min_interval: Duration,
    /// Seeds the interval randomisation; drivers pass OS randomness.
    pub seed: u64,
}

impl Default for RtcpConfig {
    fn default() -> Self {
        RtcpConfig {
            ssrc: Ssrc(0),
            cname: String::new(),
            clock_rate: 8000,
            session_bandwidth_bps: 80_000,
            min_interval: Duration::from_secs(5),
            seed: 0,
        }
    }
}

/// Something the peer said over RTCP.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RtcpEvent {
    /// The source left (RFC 3550 §6.6).
    Bye { ssrc: Ssrc },
}

/// The RTCP side of one RTP session.
#[derive(Debug)]
pub struct RtcpSession {
    config: RtcpConfig,
    rng: Rng,
    /// Maps `Instant`s to NTP time: the wall clock the caller gave at `start`.
    start: Instant,
    start_ntp: NtpTime,
    remote: Option<ReceiveStats>,
    /// The remote source said BYE (RFC 3550 §6.3.7) and sent no RTP since: our reports leave
    /// it out, its counts stay the call's.
    remote_left: bool,
    /// When the remote source last sent RTP: it counts as a sender for two intervals.
    remote_last_rtp: Option<Instant>,
    sent: SendStats,
    sent_at_last_report: u64,
    avg_rtcp_size: f64,
    initial: bool,
    next_report: Instant,
    last_interval: Duration,
    rtt: Option<Duration>,
    remote_view: Option<ReportBlock>,
    events: VecDeque<RtcpEvent>,
    /// Our former SSRC, left after a collision: its BYE goes with the next report.
    leaving: Option<Ssrc>,
}

impl RtcpSession {
    /// Starts a session at `now`; `wallclock` is the wall time at that same instant (read
    /// once by the driver), used only to stamp NTP times in SRs.
    pub fn new(config: RtcpConfig, now: Instant, wallclock: SystemTime) -> Self {
        let since_unix = wallclock.duration_since(UNIX_EPOCH).unwrap_or_default();
        let start_ntp = NtpTime(
            ((since_unix.as_secs() + NTP_UNIX_OFFSET) << 32)
                | ((u64::from(since_unix.subsec_nanos()) << 32) / 1_000_000_000),
        );
        let mut session = RtcpSession {
            rng: Rng::new(config.seed),
            start: now,
            start_ntp,
            remote: None,
            remote_left: false,
            remote_last_rtp: None,
            sent: SendStats::default(),
            sent_at_last_report: 0,
            // A guess before the first report: SR + one block + SDES, with UDP/IP headers.
            avg_rtcp_size: 100.0 + UDP_IP_OVERHEAD,
            initial: true,
            next_report: now,
            last_interval: Duration::ZERO,
            rtt: None,
            remote_view: None,
            events: VecDeque::with_capacity(4),
            leaving: None,
            config,
        };
        session.schedule(now);
        session
    }

    /// NTP time at `now`, extrapolated from the wall time given at the start.
    pub fn ntp_at(&self, now: Instant) -> NtpTime {
        let d = now.saturating_duration_since(self.start);
        let frac = (u64::from(d.subsec_nanos()) << 32) / 1_000_000_000;
        NtpTime(self.start_ntp.0.wrapping_add((d.as_secs() << 32) + frac))
    }

    /// Counts a received RTP packet. A new SSRC replaces the tracked source and restarts its
    /// RFC 3550 statistics (a re-INVITE or a media server switching streams); the call's
    /// totals go on (`ReceiveStats::new_source`).
    /// `sampled`: see [`ReceiveStats::on_packet`].
    pub fn on_rtp_received(
        &mut self,
        now: Instant,
        header: &RtpHeader,
        payload_len: usize,
        sampled: bool,
    ) -> SeqCheck {
        let clock_rate = self.config.clock_rate;
        let remote = self
            .remote
            .get_or_insert_with(|| ReceiveStats::new(header.ssrc, clock_rate, now));
        if remote.ssrc() != header.ssrc {
            // A call's counts span the peer's streams.
            remote.new_source(header.ssrc, now);
        }
        self.remote_last_rtp = Some(now);
        self.remote_left = false;
        remote.on_packet(now, header.seq, (header.timestamp, sampled), payload_len)
    }

    /// Counts a sent RTP packet.
    pub fn on_rtp_sent(&mut self, now: Instant, header: &RtpHeader, payload_len: usize) {
        self.sent.on_packet(now, header.timestamp, payload_len);
    }

    /// Reads a received compound RTCP packet: SRs (for our LSR), report blocks about us (RTT,
    /// the far end's view of loss and jitter) and BYEs (events).
    pub fn handle_rtcp(&mut self, now: Instant, data: &[u8]) -> Result<(), MediaError> {
        let compound = RtcpCompound::parse(data)?;
        self.avg_rtcp_size += (data.len() as f64 + UDP_IP_OVERHEAD - self.avg_rtcp_size) / 16.0;
        for packet in compound.packets() {
            match packet {
                RtcpPacket::SenderReport(sr) => {
                    if let Some(remote) = self.remote.as_mut().filter(|r| r.ssrc() == sr.info.ssrc)
                    {
                        remote.on_sender_report(now, sr.info.ntp.middle32());
                    }
                    for block in sr.reports() {
                        self.on_report_block(now, &block);
                    }
                }
                RtcpPacket::ReceiverReport(rr) => {
                    for block in rr.reports() {
                        self.on_report_block(now, &block);
                    }
                }
                RtcpPacket::Bye(bye) => {
                    for ssrc in bye.sources() {
                        if self.remote.as_ref().is_some_and(|r| r.ssrc() == ssrc) {
                            self.remote_left = true;
                        }
                        self.events.push_back(RtcpEvent::Bye { ssrc });
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn on_report_block(&mut self, now: Instant, block: &ReportBlock) {
        if block.ssrc != self.config.ssrc {
            return;
        }
        self.remote_view = Some(*block);
        if block.lsr == 0 {
            return;
        }
        // RFC 3550 §6.4.1: RTT = A - LSR - DLSR in 1/65536 s; a negative result means clocks
        // or reports are inconsistent, and is ignored.
        let a = self.ntp_at(now).middle32();
        let rtt = a.wrapping_sub(block.lsr).wrapping_sub(block.dlsr) as i32;
        if rtt >= 0 {
            self.rtt = Some(Duration::from_nanos((rtt as u64 * 1_000_000_000) >> 16));
        }
    }

    /// The next event from the peer, if any.
    pub fn poll_event(&mut self) -> Option<RtcpEvent> {
        self.events.pop_front()
    }

    /// When the next report is due.
    pub fn poll_timeout(&self) -> Instant {
        self.next_report
    }

    /// If a report is due at `now`, writes SR or RR + SDES into `buf` and returns its length.
    pub fn poll_transmit(
        &mut self,
        now: Instant,
        buf: &mut [u8],
    ) -> Result<Option<usize>, MediaError> {
        if now < self.next_report {
            return Ok(None);
        }
        let len = self.write_report(now, buf)?;
        self.avg_rtcp_size += (len as f64 + UDP_IP_OVERHEAD - self.avg_rtcp_size) / 16.0;
        self.initial = false;
        self.schedule(now);
        Ok(Some(len))
    }

    /// Our source becomes `ssrc` (RFC 3550 §8.2: after a collision). The old one says BYE in
    /// the next report, which is due at once; the new source's counts start from zero.
    pub fn change_ssrc(&mut self, now: Instant, ssrc: Ssrc) {
        let old = std::mem::replace(&mut self.config.ssrc, ssrc);
        self.leaving = Some(old);
        self.sent = SendStats::default();
        self.sent_at_last_report = 0;
        self.next_report = now;
    }

    /// Writes a final report and a BYE (RFC 3550 §6.6), for when the leg ends.
    pub fn write_bye(
        &mut self,
        now: Instant,
        buf: &mut [u8],
        reason: Option<&[u8]>,
    ) -> Result<usize, MediaError> {
        let len = self.write_report(now, buf)?;
        // `write_report` wrote `len <= buf.len()` bytes; the BYE goes right after them.
        let mut tail = RtcpWriter::new(&mut buf[len..]);
        tail.bye(&[self.config.ssrc], reason)?;
        Ok(len + tail.len())
    }

    fn write_report(&mut self, now: Instant, buf: &mut [u8]) -> Result<usize, MediaError> {
        let block = match self.remote_left {
            true => None,
            false => self.remote.as_mut().map(|r| r.report_block(now)),
        };
        let blocks = block.as_slice();
        let mut w = RtcpWriter::new(buf);
        if self.sent.packets > self.sent_at_last_report {
            let info = SenderInfo {
                ssrc: self.config.ssrc,
                ntp: self.ntp_at(now),
                rtp_timestamp: self.rtp_timestamp_at(now),
                packet_count: self.sent.packets as u32,
                octet_count: self.sent.octets as u32,
            };
            w.sender_report(&info, blocks)?;
        } else {
            w.receiver_report(self.config.ssrc, blocks)?;
        }
        w.sdes_cname(self.config.ssrc, self.config.cname.as_bytes())?;
        if let Some(old) = self.leaving.take() {
            w.bye(&[old], Some(b"SSRC collision"))?;
        }
        self.sent_at_last_report = self.sent.packets;
        Ok(w.len())
    }

    /// Our RTP clock at `now`: the last sent timestamp advanced by the time since.
    fn rtp_timestamp_at(&self, now: Instant) -> u32 {
        match self.sent.last {
            Some((ts, at)) => {
                let ticks =
                    duration_to_units(now.saturating_duration_since(at), self.config.clock_rate);
                // RTP timestamps wrap: keeping the low 32 bits is the intended arithmetic.
                ts.wrapping_add(ticks as u32)
            }
            None => 0,
        }
    }

    /// RFC 3550 A.7 `rtcp_interval` for two members, then schedules the next report.
    fn schedule(&mut self, now: Instant) {
        // A member counts as a sender if it sent RTP within the last two report intervals.
        let window = 2 * self.last_interval.max(self.config.min_interval);
        let recent =
            |t: Option<Instant>| t.is_some_and(|t| now.saturating_duration_since(t) < window);
        let we_sent = recent(self.sent.last.map(|(_, at)| at));
        let remote_sends = recent(self.remote_last_rtp);
        let members = if self.remote.is_some() { 2.0 } else { 1.0 };
        let senders = f64::from(u8::from(we_sent) + u8::from(remote_sends));
        let mut bandwidth = f64::from(self.config.session_bandwidth_bps) / 8.0 * RTCP_FRACTION;
        let mut n = members;
        if senders <= members * 0.25 {
            if we_sent {
                bandwidth *= 0.25;
                n = senders;
            } else {
                bandwidth *= 0.75;
                n -= senders;
            }
        }
        let mut min = self.config.min_interval.as_secs_f64();
        if self.initial {
            min /= 2.0;
        }
        let t = (self.avg_rtcp_size * n / bandwidth.max(1.0)).max(min);
        let t = t * (0.5 + self.rng.unit()) / COMPENSATION;
        self.last_interval = Duration::from_secs_f64(t);
        self.next_report = now + self.last_interval;
    }

    /// A snapshot of what has been sent, received and reported.
    pub fn stats(&self) -> MediaStats {
        let remote = self.remote.as_ref();
        MediaStats {
            packets_received: remote.map_or(0, ReceiveStats::arrived),
            octets_received: remote.map_or(0, ReceiveStats::octets),
            packets_lost: remote.map_or(0, ReceiveStats::lost_total),
            fraction_lost: remote.map_or(0.0, ReceiveStats::fraction_lost),
            jitter_ms: remote.map_or(0.0, ReceiveStats::jitter_ms),
            packets_sent: self.sent.packets,
            octets_sent: self.sent.octets,
            rtt_ms: self.rtt.map(|d| d.as_secs_f64() * 1000.0),
            remote_fraction_lost: self.remote_view.map(|b| f32::from(b.fraction_lost) / 256.0),
            remote_jitter_ms: self
                .remote_view
                .map(|b| f64::from(b.jitter) * 1000.0 / f64::from(self.config.clock_rate.max(1))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::Pt;
    use crate::rtcp::RTCP_SR;

    fn config(ssrc: u32) -> RtcpConfig {
        RtcpConfig {
            ssrc: Ssrc(ssrc),
            cname: format!("leg{ssrc}@sipx"),
            seed: u64::from(ssrc),
            ..RtcpConfig::default()
        }
    }

    /// A sends 20 ms packets to B for 30 s with 40 ms one-way delay and every 10th packet lost;
    /// both exchange reports as their sessions ask. Returns (A, B).
    fn call() -> (RtcpSession, RtcpSession) {
        let t0 = Instant::now();
        let wall = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let one_way = Duration::from_millis(40);
        let mut a = RtcpSession::new(config(0xa), t0, wall);
        // B's wall clock is 3 s off: RTT must not depend on the peers' clocks agreeing.
        let mut b = RtcpSession::new(config(0xb), t0, wall + Duration::from_secs(3));
        let mut buf = [0u8; 1500];
        let mut in_flight: Vec<(Instant, bool, Vec<u8>)> = Vec::new();
        for k in 0..1500u32 {
            let now = t0 + Duration::from_millis(20 * u64::from(k));
            let header = RtpHeader {
                marker: k == 0,
                pt: Pt(0),
                seq: 60_000u16.wrapping_add(k as u16),
                timestamp: 160 * k,
                ssrc: Ssrc(0xa),
            };
            a.on_rtp_sent(now, &header, 160);
            if k % 10 != 5 {
                b.on_rtp_received(now + one_way, &header, 160, true);
            }
            for (from_a, session) in [(true, &mut a), (false, &mut b)] {
                if let Some(n) = session.poll_transmit(now, &mut buf).unwrap() {
                    in_flight.push((now + one_way, from_a, buf[..n].to_vec()));
                }
            }
            in_flight.retain(|(at, from_a, bytes)| {
                if *at > now {
                    return true;
                }
                let to = if *from_a { &mut b } else { &mut a };
                to.handle_rtcp(*at, bytes).unwrap();
                false
            });
        }
        (a, b)
    }

    #[test]
    fn round_trip_time_and_loss_from_reports() {
        let (a, b) = call();
        let sa = a.stats();
        let sb = b.stats();
        assert_eq!(sa.packets_sent, 1500);
        // B saw 9 of every 10, the first one (A.1's probation) included.
        assert_eq!(sb.packets_received, 1350);
        assert_eq!(sb.packets_lost, 150);
        assert!((sb.fraction_lost - 0.1).abs() < 0.02, "{sb:?}");
        assert!(sb.jitter_ms < 0.5, "{sb:?}");
        // A learns the RTT from B's report blocks about it; B's own SR-less side has none.
        let rtt = sa.rtt_ms.unwrap();
        assert!((rtt - 80.0).abs() < 1.0, "rtt {rtt}");
        assert!(
            (sa.remote_fraction_lost.unwrap() - 0.1).abs() < 0.02,
            "{sa:?}"
        );
        assert_eq!(sb.rtt_ms, None);
    }

    #[test]
    fn reports_follow_rfc3550_intervals() {
        let t0 = Instant::now();
        let mut s = RtcpSession::new(config(1), t0, UNIX_EPOCH);
        let mut buf = [0u8; 1500];
        // The first report comes after half the minimum, randomised [0.5, 1.5] / (e - 3/2).
        let first = s.poll_timeout() - t0;
        assert!(
            first >= Duration::from_secs_f64(1.25 / COMPENSATION),
            "{first:?}"
        );
        assert!(
            first <= Duration::from_secs_f64(3.75 / COMPENSATION),
            "{first:?}"
        );
        assert_eq!(s.poll_transmit(t0, &mut buf).unwrap(), None);
        let mut now = s.poll_timeout();
        let mut gaps = Vec::new();
        for _ in 0..50 {
            let n = s.poll_transmit(now, &mut buf).unwrap().unwrap();
            // Nothing sent: an RR (no blocks, nothing received) and the SDES.
            let packets: Vec<_> = RtcpCompound::parse(&buf[..n]).unwrap().packets().collect();
            assert!(matches!(packets[0], RtcpPacket::ReceiverReport(_)));
            assert!(
                matches!(&packets[1], RtcpPacket::Sdes(sdes) if sdes.chunks().next().unwrap().cname() == Some(&b"leg1@sipx"[..]))
            );
            let next = s.poll_timeout();
            gaps.push((next - now).as_secs_f64());
            now = next;
        }
        let min = gaps.iter().copied().fold(f64::MAX, f64::min);
        let max = gaps.iter().copied().fold(0.0, f64::max);
        assert!(min >= 2.5 / COMPENSATION - 1e-6 && max <= 7.5 / COMPENSATION + 1e-6);
        assert!(max - min > 1.0, "the interval is randomised");
    }

    #[test]
    fn sends_an_sr_after_sending_and_reports_bye() {
        let t0 = Instant::now();
        let mut s = RtcpSession::new(config(1), t0, UNIX_EPOCH);
        let header = RtpHeader {
            marker: false,
            pt: Pt(0),
            seq: 1,
            timestamp: 8000,
            ssrc: Ssrc(1),
        };
        s.on_rtp_sent(t0, &header, 160);
        let mut buf = [0u8; 1500];
        let n = s
            .write_bye(t0 + Duration::from_millis(500), &mut buf, Some(b"bye"))
            .unwrap();
        let packets: Vec<_> = RtcpCompound::parse(&buf[..n]).unwrap().packets().collect();
        let RtcpPacket::SenderReport(sr) = &packets[0] else {
            panic!("{packets:?}")
        };
        // The SR's RTP time is the last timestamp advanced by the 500 ms since.
        assert_eq!((sr.info.rtp_timestamp, sr.info.packet_count), (12_000, 1));
        assert_eq!(buf[1], RTCP_SR);
        assert!(matches!(packets[2], RtcpPacket::Bye(_)));
        // The peer sees the BYE as an event.
        let mut peer = RtcpSession::new(config(2), t0, UNIX_EPOCH);
        peer.handle_rtcp(t0, &buf[..n]).unwrap();
        assert_eq!(peer.poll_event(), Some(RtcpEvent::Bye { ssrc: Ssrc(1) }));
        assert!(peer.handle_rtcp(t0, &buf[..n - 1]).is_err());
    }

    #[test]
    fn a_source_that_said_bye_leaves_our_reports_until_it_sends_again() {
        // RFC 3550 §6.3.7: a participant that left is not reported on.
        let t0 = Instant::now();
        let mut s = RtcpSession::new(config(1), t0, UNIX_EPOCH);
        let mut peer = RtcpSession::new(config(2), t0, UNIX_EPOCH);
        let header = |seq| RtpHeader {
            marker: false,
            pt: Pt(0),
            seq,
            timestamp: 8000 + u32::from(seq) * 160,
            ssrc: Ssrc(2),
        };
        let mut buf = [0u8; 1500];
        let blocks = |s: &mut RtcpSession, at: Instant, buf: &mut [u8]| {
            let n = s.write_report(at, buf).unwrap();
            let compound = RtcpCompound::parse(&buf[..n]).unwrap();
            let first = compound.packets().next();
            match first {
                Some(RtcpPacket::ReceiverReport(rr)) => rr.reports().count(),
                Some(RtcpPacket::SenderReport(sr)) => sr.reports().count(),
                other => panic!("{other:?}"),
            }
        };
        s.on_rtp_received(t0, &header(1), 160, true);
        assert_eq!(blocks(&mut s, t0, &mut buf), 1);
        let n = peer.write_bye(t0, &mut buf, None).unwrap();
        let bye = buf[..n].to_vec();
        s.handle_rtcp(t0, &bye).unwrap();
        assert_eq!(blocks(&mut s, t0, &mut buf), 0);
        s.on_rtp_received(t0, &header(2), 160, true);
        assert_eq!(blocks(&mut s, t0, &mut buf), 1);
    }
}
