//! RTCP (RFC 3550 §6): zero-copy views of compound packets (SR, RR, SDES, BYE, and any other
//! type kept as raw bytes), and a writer that builds them in the caller's buffer.
//!
//! Validation follows RFC 3550 A.2 with one relaxation: the first packet need not be SR or RR,
//! because reduced-size RTCP (RFC 5506) is legal with rtcp-mux and costs nothing to accept.

use crate::error::MediaError;
use crate::ids::Ssrc;
use crate::rtp::be_u32;

/// RTCP packet types this module understands (RFC 3550 §12.1).
pub const RTCP_SR: u8 = 200;
pub const RTCP_RR: u8 = 201;
pub const RTCP_SDES: u8 = 202;
pub const RTCP_BYE: u8 = 203;
/// The SDES item type of CNAME.
pub const SDES_CNAME: u8 = 1;

const HEADER_LEN: usize = 4;
const REPORT_BLOCK_LEN: usize = 24;
const SENDER_INFO_LEN: usize = 20;
/// The 5-bit count field caps report blocks, SDES chunks and BYE sources per packet.
const MAX_COUNT: usize = 31;

/// A 64-bit NTP timestamp: seconds since 1900 in the high word, fraction in the low word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct NtpTime(pub u64);

impl NtpTime {
    /// The middle 32 bits, the unit of LSR/DLSR arithmetic (1/65536 s).
    pub fn middle32(self) -> u32 {
        // Bits 16..48 of the 64-bit value: the truncation is the point.
        (self.0 >> 16) as u32
    }
}

/// One reception report block (RFC 3550 §6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReportBlock {
    /// The source this block reports on.
    pub ssrc: Ssrc,
    /// Fraction of packets lost since the previous report, in 1/256.
    pub fraction_lost: u8,
    /// Packets lost since the start, a 24-bit signed number (duplicates can make it negative).
    pub cumulative_lost: i32,
    /// Extended highest sequence number received.
    pub highest_seq: u32,
    /// Interarrival jitter in timestamp units.
    pub jitter: u32,
    /// Middle 32 bits of the NTP time of the last SR received from that source, or 0.
    pub lsr: u32,
    /// Delay since that SR, in 1/65536 s.
    pub dlsr: u32,
}

impl ReportBlock {
    fn read(b: &[u8]) -> ReportBlock {
        // Sign-extend the 24-bit count: shift it into the top of an i32 and back.
        let cumulative_lost = (i32::from_be_bytes([b[5], b[6], b[7], 0])) >> 8;
        ReportBlock {
            ssrc: Ssrc(be_u32(&b[0..4])),
            fraction_lost: b[4],
            cumulative_lost,
            highest_seq: be_u32(&b[8..12]),
            jitter: be_u32(&b[12..16]),
            lsr: be_u32(&b[16..20]),
            dlsr: be_u32(&b[20..24]),
        }
    }

    fn write(&self, out: &mut [u8]) {
        out[0..4].copy_from_slice(&self.ssrc.0.to_be_bytes());
        out[4] = self.fraction_lost;
        let lost = self
            .cumulative_lost
            .clamp(-0x80_0000, 0x7f_ffff)
            .to_be_bytes();
        out[5..8].copy_from_slice(&lost[1..4]);
        out[8..12].copy_from_slice(&self.highest_seq.to_be_bytes());
        out[12..16].copy_from_slice(&self.jitter.to_be_bytes());
        out[16..20].copy_from_slice(&self.lsr.to_be_bytes());
        out[20..24].copy_from_slice(&self.dlsr.to_be_bytes());
    }
}

/// The report blocks of an SR or RR.
#[derive(Debug, Clone)]
pub struct ReportBlocks<'a>(std::slice::ChunksExact<'a, u8>);

impl Iterator for ReportBlocks<'_> {
    type Item = ReportBlock;
    fn next(&mut self) -> Option<ReportBlock> {
        self.0.next().map(ReportBlock::read)
    }
}

/// The sender information of an SR (RFC 3550 §6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SenderInfo {
    pub ssrc: Ssrc,
    pub ntp: NtpTime,
    pub rtp_timestamp: u32,
    pub packet_count: u32,
    pub octet_count: u32,
}

/// A sender report.
#[derive(Debug, Clone)]
pub struct SenderReport<'a> {
    pub info: SenderInfo,
    blocks: &'a [u8],
}

impl<'a> SenderReport<'a> {
    pub fn reports(&self) -> ReportBlocks<'a> {
        ReportBlocks(self.blocks.chunks_exact(REPORT_BLOCK_LEN))
    }
}

/// A receiver report.
#[derive(Debug, Clone)]
pub struct ReceiverReport<'a> {
    pub ssrc: Ssrc,
    blocks: &'a [u8],
}

impl<'a> ReceiverReport<'a> {
    pub fn reports(&self) -> ReportBlocks<'a> {
        ReportBlocks(self.blocks.chunks_exact(REPORT_BLOCK_LEN))
    }
}

/// One SDES item: a type and its value bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SdesItem<'a> {
    pub kind: u8,
    pub value: &'a [u8],
}

/// One SDES chunk: a source and its items.
#[derive(Debug, Clone)]
pub struct SdesChunk<'a> {
    pub ssrc: Ssrc,
    items: &'a [u8],
}

impl<'a> SdesChunk<'a> {
    /// The items, up to the terminating null item.
    pub fn items(&self) -> impl Iterator<Item = SdesItem<'a>> + 'a {
        let mut rest = self.items;
        std::iter::from_fn(move || match rest {
            [kind, len, tail @ ..] if *kind != 0 && tail.len() >= usize::from(*len) => {
                let (value, after) = tail.split_at(usize::from(*len));
                rest = after;
                Some(SdesItem { kind: *kind, value })
            }
            _ => None,
        })
    }

    /// The CNAME item, if the chunk has one.
    pub fn cname(&self) -> Option<&'a [u8]> {
        self.items()
            .find(|item| item.kind == SDES_CNAME)
            .map(|item| item.value)
    }
}

/// A source description packet.
#[derive(Debug, Clone)]
pub struct Sdes<'a> {
    count: u8,
    body: &'a [u8],
}

impl<'a> Sdes<'a> {
    pub fn chunks(&self) -> impl Iterator<Item = SdesChunk<'a>> + 'a {
        let mut rest = self.body;
        (0..self.count).map_while(move |_| {
            let (chunk, after) = split_sdes_chunk(rest).ok()?;
            rest = after;
            Some(chunk)
        })
    }
}

/// Splits one chunk off an SDES body: SSRC, items, a null item, padding to 32 bits.
fn split_sdes_chunk(body: &[u8]) -> Result<(SdesChunk<'_>, &[u8]), MediaError> {
    let bad = MediaError::MalformedRtcp;
    let ssrc = body.get(..4).ok_or(bad("SDES chunk without SSRC"))?;
    let mut at = 4;
    loop {
        match body.get(at) {
            None => return Err(bad("SDES items run past the end")),
            Some(0) => break,
            Some(_) => {
                let len = usize::from(*body.get(at + 1).ok_or(bad("SDES item without length"))?);
                at += 2 + len;
            }
        }
    }
    let items = body.get(4..at).ok_or(bad("SDES items run past the end"))?;
    // The null item, then padding up to the next 32-bit boundary.
    let end = (at + 1).next_multiple_of(4);
    let after = body
        .get(end..)
        .ok_or(bad("SDES chunk padding runs past the end"))?;
    let chunk = SdesChunk {
        ssrc: Ssrc(be_u32(ssrc)),
        items,
    };
    Ok((chunk, after))
}

/// A goodbye packet.
#[derive(Debug, Clone)]
pub struct Bye<'a> {
    sources: &'a [u8],
    pub reason: Option<&'a [u8]>,
}

impl<'a> Bye<'a> {
    pub fn sources(&self) -> impl Iterator<Item = Ssrc> + 'a {
        self.sources.chunks_exact(4).map(|c| Ssrc(be_u32(c)))
    }
}

/// One packet of a compound packet.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum RtcpPacket<'a> {
    SenderReport(SenderReport<'a>),
    ReceiverReport(ReceiverReport<'a>),
    Sdes(Sdes<'a>),
    Bye(Bye<'a>),
    /// A type this module does not read (APP, RTPFB, PSFB, XR, ...), kept so callers can.
    Other {
        packet_type: u8,
        count: u8,
        body: &'a [u8],
    },
}

impl<'a> RtcpPacket<'a> {
    /// Reads one packet's body; `count` is the header's 5-bit field.
    fn read(packet_type: u8, count: u8, body: &'a [u8]) -> Result<RtcpPacket<'a>, MediaError> {
        let bad = MediaError::MalformedRtcp;
        let blocks_len = usize::from(count) * REPORT_BLOCK_LEN;
        Ok(match packet_type {
            RTCP_SR => {
                let head_len = 4 + SENDER_INFO_LEN;
                let b = body
                    .get(..head_len)
                    .ok_or(bad("SR shorter than its sender info"))?;
                let blocks = body
                    .get(head_len..head_len + blocks_len)
                    .ok_or(bad("SR report blocks run past the end"))?;
                let ntp = (u64::from(be_u32(&b[4..8])) << 32) | u64::from(be_u32(&b[8..12]));
                RtcpPacket::SenderReport(SenderReport {
                    info: SenderInfo {
                        ssrc: Ssrc(be_u32(&b[0..4])),
                        ntp: NtpTime(ntp),
                        rtp_timestamp: be_u32(&b[12..16]),
                        packet_count: be_u32(&b[16..20]),
                        octet_count: be_u32(&b[20..24]),
                    },
                    blocks,
                })
            }
            RTCP_RR => {
                let ssrc = body.get(..4).ok_or(bad("RR without SSRC"))?;
                let blocks = body
                    .get(4..4 + blocks_len)
                    .ok_or(bad("RR report blocks run past the end"))?;
                RtcpPacket::ReceiverReport(ReceiverReport {
                    ssrc: Ssrc(be_u32(ssrc)),
                    blocks,
                })
            }
            RTCP_SDES => {
                let mut rest = body;
                for _ in 0..count {
                    rest = split_sdes_chunk(rest)?.1;
                }
                RtcpPacket::Sdes(Sdes { count, body })
            }
            RTCP_BYE => {
                let n = 4 * usize::from(count);
                let sources = body.get(..n).ok_or(bad("BYE sources run past the end"))?;
                let reason = match &body[n..] {
                    [] => None,
                    [len, text @ ..] => Some(
                        text.get(..usize::from(*len))
                            .ok_or(bad("BYE reason runs past the end"))?,
                    ),
                };
                RtcpPacket::Bye(Bye { sources, reason })
            }
            _ => RtcpPacket::Other {
                packet_type,
                count,
                body,
            },
        })
    }
}

/// A validated compound RTCP packet; iterate it with [`RtcpCompound::packets`].
#[derive(Debug, Clone, Copy)]
pub struct RtcpCompound<'a> {
    data: &'a [u8],
}

impl<'a> RtcpCompound<'a> {
    /// Validates every packet of a compound: version 2, lengths that add up to the datagram,
    /// padding only on the last packet, and bodies that hold what their counts announce.
    pub fn parse(data: &'a [u8]) -> Result<RtcpCompound<'a>, MediaError> {
        if data.is_empty() {
            return Err(MediaError::MalformedRtcp("empty"));
        }
        let mut rest = data;
        while !rest.is_empty() {
            let (kind, count, body, after) = split_packet(rest)?;
            RtcpPacket::read(kind, count, body)?;
            rest = after;
        }
        Ok(RtcpCompound { data })
    }

    /// The packets in order.
    pub fn packets(&self) -> impl Iterator<Item = RtcpPacket<'a>> + 'a {
        let mut rest = self.data;
        std::iter::from_fn(move || {
            // `parse` validated every packet, so these reads succeed; stopping at an error
            // would only be a safe way of saying so.
            let (kind, count, body, after) = split_packet(rest).ok()?;
            rest = after;
            RtcpPacket::read(kind, count, body).ok()
        })
    }
}

/// One packet cut from a compound: type, count field, body without padding, and what follows.
type Split<'a> = (u8, u8, &'a [u8], &'a [u8]);

/// Splits the first packet off a compound.
fn split_packet(data: &[u8]) -> Result<Split<'_>, MediaError> {
    let bad = MediaError::MalformedRtcp;
    let h = data
        .get(..HEADER_LEN)
        .ok_or(bad("shorter than an RTCP header"))?;
    if h[0] >> 6 != 2 {
        return Err(bad("version is not 2"));
    }
    let len = 4 * (usize::from(u16::from_be_bytes([h[2], h[3]])) + 1);
    let packet = data.get(..len).ok_or(bad("length runs past the end"))?;
    let after = &data[len..];
    let mut body = &packet[HEADER_LEN..];
    if h[0] & 0x20 != 0 {
        if !after.is_empty() {
            return Err(bad("padding on a packet that is not the last"));
        }
        let pad = usize::from(*packet.last().ok_or(bad("empty"))?);
        if pad == 0 || pad > body.len() {
            return Err(bad("bad padding count"));
        }
        body = &body[..body.len() - pad];
    }
    Ok((h[1], h[0] & 0x1f, body, after))
}

/// Builds a compound packet in the caller's buffer, one packet per call.
#[derive(Debug)]
pub struct RtcpWriter<'b> {
    buf: &'b mut [u8],
    len: usize,
}

impl<'b> RtcpWriter<'b> {
    pub fn new(buf: &'b mut [u8]) -> Self {
        RtcpWriter { buf, len: 0 }
    }

    /// Bytes written so far: the compound packet is `buf[..len()]`.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends an SR with up to 31 report blocks.
    pub fn sender_report(
        &mut self,
        info: &SenderInfo,
        reports: &[ReportBlock],
    ) -> Result<(), MediaError> {
        let body_len = 4 + SENDER_INFO_LEN + reports.len() * REPORT_BLOCK_LEN;
        let body = self.start(RTCP_SR, reports.len(), body_len)?;
        body[0..4].copy_from_slice(&info.ssrc.0.to_be_bytes());
        body[4..12].copy_from_slice(&info.ntp.0.to_be_bytes());
        body[12..16].copy_from_slice(&info.rtp_timestamp.to_be_bytes());
        body[16..20].copy_from_slice(&info.packet_count.to_be_bytes());
        body[20..24].copy_from_slice(&info.octet_count.to_be_bytes());
        write_blocks(&mut body[24..], reports);
        Ok(())
    }

    /// Appends an RR with up to 31 report blocks.
    pub fn receiver_report(
        &mut self,
        ssrc: Ssrc,
        reports: &[ReportBlock],
    ) -> Result<(), MediaError> {
        let body = self.start(RTCP_RR, reports.len(), 4 + reports.len() * REPORT_BLOCK_LEN)?;
        body[0..4].copy_from_slice(&ssrc.0.to_be_bytes());
        write_blocks(&mut body[4..], reports);
        Ok(())
    }

    /// Appends an SDES with one chunk holding a CNAME (at most 255 bytes).
    pub fn sdes_cname(&mut self, ssrc: Ssrc, cname: &[u8]) -> Result<(), MediaError> {
        let len = u8::try_from(cname.len())
            .map_err(|_| MediaError::ApiMisuse("CNAME longer than 255 bytes"))?;
        // SSRC, type, length, value, then at least one null octet up to a 32-bit boundary.
        let body_len = (4 + 2 + cname.len() + 1).next_multiple_of(4);
        let body = self.start(RTCP_SDES, 1, body_len)?;
        body[0..4].copy_from_slice(&ssrc.0.to_be_bytes());
        body[4] = SDES_CNAME;
        body[5] = len;
        body[6..6 + cname.len()].copy_from_slice(cname);
        body[6 + cname.len()..].fill(0);
        Ok(())
    }

    /// Appends a BYE for up to 31 sources, with an optional reason (at most 255 bytes).
    pub fn bye(&mut self, sources: &[Ssrc], reason: Option<&[u8]>) -> Result<(), MediaError> {
        let reason_len = match reason {
            Some(r) => Some(
                u8::try_from(r.len())
                    .map_err(|_| MediaError::ApiMisuse("BYE reason longer than 255 bytes"))?,
            ),
            None => None,
        };
        let text_len = reason.map_or(0, |r| (1 + r.len()).next_multiple_of(4));
        let body = self.start(RTCP_BYE, sources.len(), 4 * sources.len() + text_len)?;
        for (chunk, s) in body.chunks_exact_mut(4).zip(sources) {
            chunk.copy_from_slice(&s.0.to_be_bytes());
        }
        if let (Some(r), Some(len)) = (reason, reason_len) {
            let text = &mut body[4 * sources.len()..];
            text[0] = len;
            text[1..1 + r.len()].copy_from_slice(r);
            text[1 + r.len()..].fill(0);
        }
        Ok(())
    }

    /// Writes a packet header and returns the body to fill; `body_len` is a multiple of 4.
    fn start(&mut self, kind: u8, count: usize, body_len: usize) -> Result<&mut [u8], MediaError> {
        if count > MAX_COUNT {
            return Err(MediaError::ApiMisuse(
                "more than 31 items in one RTCP packet",
            ));
        }
        let need = self.len + HEADER_LEN + body_len;
        let packet = self
            .buf
            .get_mut(self.len..need)
            .ok_or(MediaError::BufferTooSmall { need })?;
        let words = u16::try_from(body_len / 4)
            .map_err(|_| MediaError::ApiMisuse("RTCP packet too long"))?;
        // `count <= 31` was checked above.
        packet[0] = 0x80 | count as u8;
        packet[1] = kind;
        packet[2..4].copy_from_slice(&words.to_be_bytes());
        self.len = need;
        Ok(&mut packet[HEADER_LEN..])
    }
}

fn write_blocks(out: &mut [u8], reports: &[ReportBlock]) {
    for (chunk, r) in out.chunks_exact_mut(REPORT_BLOCK_LEN).zip(reports) {
        r.write(chunk);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(ssrc: u32, lost: i32) -> ReportBlock {
        ReportBlock {
            ssrc: Ssrc(ssrc),
            fraction_lost: 25,
            cumulative_lost: lost,
            highest_seq: 0x0001_0005,
            jitter: 80,
            lsr: 0x1234_5678,
            dlsr: 0x0001_8000,
        }
    }

    #[test]
    fn round_trips_a_compound_packet() {
        let mut buf = [0u8; 512];
        let info = SenderInfo {
            ssrc: Ssrc(1),
            ntp: NtpTime(0xe000_0000_8000_0000),
            rtp_timestamp: 160,
            packet_count: 10,
            octet_count: 1600,
        };
        let mut w = RtcpWriter::new(&mut buf);
        w.sender_report(&info, &[block(2, -3)]).unwrap();
        w.receiver_report(Ssrc(1), &[block(3, 7), block(4, 0x7f_ffff)])
            .unwrap();
        w.sdes_cname(Ssrc(1), b"leg@sipx").unwrap();
        w.bye(&[Ssrc(1)], Some(b"hangup")).unwrap();
        let n = w.len();
        assert_eq!(n % 4, 0);

        let packets: Vec<_> = RtcpCompound::parse(&buf[..n]).unwrap().packets().collect();
        assert_eq!(packets.len(), 4);
        let RtcpPacket::SenderReport(sr) = &packets[0] else {
            panic!("{packets:?}")
        };
        assert_eq!(sr.info, info);
        assert_eq!(sr.reports().collect::<Vec<_>>(), vec![block(2, -3)]);
        let RtcpPacket::ReceiverReport(rr) = &packets[1] else {
            panic!()
        };
        assert_eq!(rr.ssrc, Ssrc(1));
        assert_eq!(
            rr.reports().collect::<Vec<_>>(),
            vec![block(3, 7), block(4, 0x7f_ffff)]
        );
        let RtcpPacket::Sdes(sdes) = &packets[2] else {
            panic!()
        };
        let chunks: Vec<_> = sdes.chunks().collect();
        assert_eq!(chunks.len(), 1);
        assert_eq!(
            (chunks[0].ssrc, chunks[0].cname()),
            (Ssrc(1), Some(&b"leg@sipx"[..]))
        );
        let RtcpPacket::Bye(bye) = &packets[3] else {
            panic!()
        };
        assert_eq!(bye.sources().collect::<Vec<_>>(), vec![Ssrc(1)]);
        assert_eq!(bye.reason, Some(&b"hangup"[..]));
    }

    #[test]
    fn keeps_unknown_types_and_honours_padding_on_the_last() {
        // RR with no blocks, then an APP-like type 204 with padding (4 body bytes, 4 padding).
        let data = [
            0x80, 201, 0, 1, 0, 0, 0, 9, //
            0xa0, 204, 0, 2, 1, 2, 3, 4, 0, 0, 0, 4,
        ];
        let packets: Vec<_> = RtcpCompound::parse(&data).unwrap().packets().collect();
        assert!(matches!(packets[0], RtcpPacket::ReceiverReport(_)));
        let RtcpPacket::Other {
            packet_type, body, ..
        } = packets[1]
        else {
            panic!()
        };
        assert_eq!((packet_type, body), (204, &[1, 2, 3, 4][..]));
    }

    #[test]
    fn rejects_malformed_with_a_reason() {
        let cases: &[(&[u8], &str)] = &[
            (&[], "empty"),
            (&[0x80, 201, 0], "shorter than an RTCP header"),
            (&[0x40, 201, 0, 0], "version is not 2"),
            (&[0x80, 201, 0, 1, 0, 0], "length runs past the end"),
            (
                &[0x81, 201, 0, 1, 0, 0, 0, 1],
                "RR report blocks run past the end",
            ),
            (
                &[0x80, 200, 0, 1, 0, 0, 0, 1],
                "SR shorter than its sender info",
            ),
            (&[0x80, 201, 0, 0], "RR without SSRC"),
            (
                &[0xa0, 201, 0, 1, 0, 0, 0, 0, 0x80, 201, 0, 0],
                "padding on a packet that is not the last",
            ),
            (&[0xa0, 204, 0, 1, 0, 0, 0, 9], "bad padding count"),
            (
                &[0x81, 202, 0, 1, 0, 0, 0, 1],
                "SDES items run past the end",
            ),
            (
                &[0x81, 202, 0, 2, 0, 0, 0, 1, 1, 9, 0, 0],
                "SDES items run past the end",
            ),
            (
                &[0x82, 203, 0, 1, 0, 0, 0, 1],
                "BYE sources run past the end",
            ),
            (
                &[0x81, 203, 0, 2, 0, 0, 0, 1, 9, 0, 0, 0],
                "BYE reason runs past the end",
            ),
        ];
        for (bytes, reason) in cases {
            assert_eq!(
                RtcpCompound::parse(bytes).map(|_| ()),
                Err(MediaError::MalformedRtcp(reason)),
                "{bytes:?}"
            );
        }
    }

    #[test]
    fn writer_refuses_what_does_not_fit() {
        let mut small = [0u8; 8];
        let mut w = RtcpWriter::new(&mut small);
        assert_eq!(
            w.receiver_report(Ssrc(1), &[block(1, 0)]),
            Err(MediaError::BufferTooSmall { need: 32 })
        );
        let mut buf = [0u8; 2048];
        let mut w = RtcpWriter::new(&mut buf);
        assert!(w.receiver_report(Ssrc(1), &[block(1, 0); 32]).is_err());
        assert!(w.sdes_cname(Ssrc(1), &[b'x'; 256]).is_err());
        assert!(w.is_empty());
    }

    #[test]
    fn ntp_middle_bits() {
        assert_eq!(NtpTime(0x1122_3344_5566_7788).middle32(), 0x3344_5566);
    }
}
