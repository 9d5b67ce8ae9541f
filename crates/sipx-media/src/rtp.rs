//! RTP fixed header (RFC 3550 §5.1): a zero-copy view of a received packet, and writing a
//! header into the caller's buffer. No allocation either way.

use crate::error::MediaError;
use crate::ids::{Pt, Ssrc};

/// The only RTP version in use.
pub const RTP_VERSION: u8 = 2;
/// Length of the fixed header, without CSRCs or extension.
pub const RTP_HEADER_LEN: usize = 12;

/// The fields of an RTP header that a sender chooses and a receiver acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader {
    /// Marks the first packet of a talkspurt for audio (RFC 3551 §4.1).
    pub marker: bool,
    pub pt: Pt,
    pub seq: u16,
    pub timestamp: u32,
    pub ssrc: Ssrc,
}

impl RtpHeader {
    /// Writes a version 2 header with the given contributing sources (at most 15), no padding and
    /// no extension, at the start of `buf`. Returns the number of bytes written; the payload
    /// goes right after.
    pub fn write(&self, csrcs: &[Ssrc], buf: &mut [u8]) -> Result<usize, MediaError> {
        if csrcs.len() > 15 {
            return Err(MediaError::ApiMisuse(
                "an RTP header holds at most 15 CSRCs",
            ));
        }
        if self.pt.0 > 127 {
            return Err(MediaError::ApiMisuse("payload type above 127"));
        }
        let need = RTP_HEADER_LEN + 4 * csrcs.len();
        let out = buf
            .get_mut(..need)
            .ok_or(MediaError::BufferTooSmall { need })?;
        // `csrcs.len() <= 15` was checked above, so the cast keeps every bit.
        out[0] = (RTP_VERSION << 6) | csrcs.len() as u8;
        out[1] = (u8::from(self.marker) << 7) | self.pt.0;
        out[2..4].copy_from_slice(&self.seq.to_be_bytes());
        out[4..8].copy_from_slice(&self.timestamp.to_be_bytes());
        out[8..12].copy_from_slice(&self.ssrc.0.to_be_bytes());
        for (chunk, csrc) in out[RTP_HEADER_LEN..].chunks_exact_mut(4).zip(csrcs) {
            chunk.copy_from_slice(&csrc.0.to_be_bytes());
        }
        Ok(need)
    }

    /// Writes header and payload into `buf`; returns the packet length.
    pub fn write_packet(&self, payload: &[u8], buf: &mut [u8]) -> Result<usize, MediaError> {
        let need = RTP_HEADER_LEN + payload.len();
        if buf.len() < need {
            return Err(MediaError::BufferTooSmall { need });
        }
        let at = self.write(&[], buf)?;
        buf[at..need].copy_from_slice(payload);
        Ok(need)
    }
}

/// A header extension block (RFC 3550 §5.3.1): the profile word and its raw data. RFC 8285
/// element parsing is left to whoever needs the elements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpExtension<'a> {
    pub profile: u16,
    pub data: &'a [u8],
}

/// A parsed RTP packet borrowing the datagram it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpPacket<'a> {
    pub header: RtpHeader,
    /// The CSRC list as raw big-endian words; see [`RtpPacket::csrcs`].
    csrc_bytes: &'a [u8],
    pub extension: Option<RtpExtension<'a>>,
    /// The payload, padding removed.
    pub payload: &'a [u8],
    /// Padding octets that followed the payload (the count octet included).
    pub padding: u8,
}

impl<'a> RtpPacket<'a> {
    /// Parses and validates one RTP packet. Checks the version, that the CSRC list, extension
    /// and padding fit in the datagram, and that padding is not longer than what follows the
    /// header.
    pub fn parse(data: &'a [u8]) -> Result<RtpPacket<'a>, MediaError> {
        let bad = MediaError::MalformedRtp;
        let fixed = data
            .get(..RTP_HEADER_LEN)
            .ok_or(bad("shorter than the 12-byte fixed header"))?;
        if fixed[0] >> 6 != RTP_VERSION {
            return Err(bad("version is not 2"));
        }
        let has_padding = fixed[0] & 0x20 != 0;
        let has_extension = fixed[0] & 0x10 != 0;
        let csrc_count = usize::from(fixed[0] & 0x0f);
        let header = RtpHeader {
            marker: fixed[1] & 0x80 != 0,
            pt: Pt(fixed[1] & 0x7f),
            seq: u16::from_be_bytes([fixed[2], fixed[3]]),
            timestamp: be_u32(&fixed[4..8]),
            ssrc: Ssrc(be_u32(&fixed[8..12])),
        };
        let mut at = RTP_HEADER_LEN;
        let csrc_bytes = data
            .get(at..at + 4 * csrc_count)
            .ok_or(bad("CSRC list runs past the end"))?;
        at += csrc_bytes.len();
        let extension = if has_extension {
            let head = data
                .get(at..at + 4)
                .ok_or(bad("extension header runs past the end"))?;
            let profile = u16::from_be_bytes([head[0], head[1]]);
            let words = usize::from(u16::from_be_bytes([head[2], head[3]]));
            at += 4;
            let ext = data
                .get(at..at + 4 * words)
                .ok_or(bad("extension runs past the end"))?;
            at += ext.len();
            Some(RtpExtension { profile, data: ext })
        } else {
            None
        };
        let mut end = data.len();
        let mut padding = 0;
        if has_padding {
            padding = *data.last().ok_or(bad("empty"))?;
            if padding == 0 {
                return Err(bad("padding count is zero"));
            }
            if usize::from(padding) > end - at {
                return Err(bad("padding longer than the payload"));
            }
            end -= usize::from(padding);
        }
        Ok(RtpPacket {
            header,
            csrc_bytes,
            extension,
            payload: &data[at..end],
            padding,
        })
    }

    /// The contributing sources, in order.
    pub fn csrcs(&self) -> impl Iterator<Item = Ssrc> + 'a {
        self.csrc_bytes.chunks_exact(4).map(|c| Ssrc(be_u32(c)))
    }
}

/// Reads a big-endian u32 from a slice the caller has already cut to at least 4 bytes.
pub(crate) fn be_u32(b: &[u8]) -> u32 {
    let mut word = [0; 4];
    for (w, &byte) in word.iter_mut().zip(b) {
        *w = byte;
    }
    u32::from_be_bytes(word)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> RtpHeader {
        RtpHeader {
            marker: true,
            pt: Pt(111),
            seq: 0xfffe,
            timestamp: 0xdead_beef,
            ssrc: Ssrc(0x0102_0304),
        }
    }

    #[test]
    fn accepts_what_it_writes() {
        let mut buf = [0; 64];
        let n = header().write(&[Ssrc(7), Ssrc(8)], &mut buf).unwrap();
        buf[n..n + 3].copy_from_slice(b"abc");
        let p = RtpPacket::parse(&buf[..n + 3]).unwrap();
        assert_eq!(p.header, header());
        assert_eq!(p.csrcs().collect::<Vec<_>>(), vec![Ssrc(7), Ssrc(8)]);
        assert_eq!(p.payload, b"abc");
        assert_eq!(p.extension, None);
    }

    #[test]
    fn reads_extension_and_padding() {
        // V=2 P=1 X=1 CC=0, M=0 PT=0, seq 1, ts 2, ssrc 3, ext profile 0xbede len 1, payload,
        // three padding octets.
        let pkt = [
            0xb0, 0x00, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0xbe, 0xde, 0, 1, 0x10, 0xaa, 0, 0, 9, 9, 0,
            0, 3,
        ];
        let p = RtpPacket::parse(&pkt).unwrap();
        assert_eq!(p.header.seq, 1);
        let ext = p.extension.unwrap();
        assert_eq!((ext.profile, ext.data), (0xbede, &[0x10, 0xaa, 0, 0][..]));
        assert_eq!(p.payload, &[9, 9]);
        assert_eq!(p.padding, 3);
    }

    #[test]
    fn rejects_malformed_with_a_reason() {
        let cases: &[(&[u8], &str)] = &[
            (&[0x80, 0, 0], "shorter than the 12-byte fixed header"),
            (&[0x40, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], "version is not 2"),
            (
                &[0x81, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                "CSRC list runs past the end",
            ),
            (
                &[0x90, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                "extension header runs past the end",
            ),
            (
                &[0x90, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
                "extension runs past the end",
            ),
            (
                &[0xa0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                "padding count is zero",
            ),
            (
                &[0xa0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5],
                "padding longer than the payload",
            ),
        ];
        for (bytes, reason) in cases {
            assert_eq!(
                RtpPacket::parse(bytes),
                Err(MediaError::MalformedRtp(reason)),
                "{bytes:?}"
            );
        }
    }

    #[test]
    fn refuses_small_buffers_and_bad_arguments() {
        let mut small = [0; 11];
        assert_eq!(
            header().write(&[], &mut small),
            Err(MediaError::BufferTooSmall { need: 12 })
        );
        assert!(header().write(&[Ssrc(0); 16], &mut [0; 128]).is_err());
        let mut bad = header();
        bad.pt = Pt(128);
        assert!(bad.write(&[], &mut [0; 12]).is_err());
        assert_eq!(
            header().write_packet(b"xyz", &mut [0; 14]),
            Err(MediaError::BufferTooSmall { need: 15 })
        );
    }
}
