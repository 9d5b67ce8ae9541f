//! Audio codecs SIPx negotiates, the static payload types of RFC 3551, and how a payload type
//! on an `m=` line is resolved to a format.

use std::fmt;

use crate::model::MediaDescription;

/// An audio codec SIPx can use on a phone leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// G.711 µ-law, static payload type 0.
    Pcmu,
    /// G.711 A-law, static payload type 8.
    Pcma,
    /// G.722, static payload type 9: 16 kHz audio, but an RTP clock of 8000 (RFC 3551 §4.5.2).
    G722,
    /// Opus (RFC 7587): always `opus/48000/2` in SDP, whatever it actually carries.
    Opus,
    /// G.729, static payload type 18; Annex B (VAD/CNG) is negotiated with `annexb`.
    G729,
}

impl Codec {
    /// The encoding name used in `rtpmap`.
    pub fn encoding_name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
            Codec::G722 => "G722",
            Codec::Opus => "opus",
            Codec::G729 => "G729",
        }
    }

    /// The RTP clock rate written in `rtpmap`.
    pub fn clock_rate(self) -> u32 {
        match self {
            Codec::Opus => 48000,
            _ => 8000,
        }
    }

    /// The channel count written in `rtpmap` (`None`: not written, meaning 1).
    pub fn channels(self) -> Option<u16> {
        match self {
            Codec::Opus => Some(2),
            _ => None,
        }
    }

    /// The sample rate of the audio itself, which differs from the RTP clock for G.722.
    pub fn audio_rate(self) -> u32 {
        match self {
            Codec::G722 => 16000,
            Codec::Opus => 48000,
            _ => 8000,
        }
    }

    /// The static payload type, for codecs that have one.
    pub fn static_payload_type(self) -> Option<u8> {
        match self {
            Codec::Pcmu => Some(0),
            Codec::Pcma => Some(8),
            Codec::G722 => Some(9),
            Codec::G729 => Some(18),
            Codec::Opus => None,
        }
    }

    /// The `fmtp` SIPx writes by default: for Opus, in-band FEC (it hides loss on mobile
    /// networks) and the 16 kHz SIPx plays back and captures at most on a SIP leg (RFC 7587
    /// §6.1: a peer spends no bits on bands above it); no Annex B for G.729 (comfort noise
    /// frames would need a CNG of our own).
    pub fn default_fmtp(self) -> Option<&'static str> {
        match self {
            Codec::Opus => Some("maxplaybackrate=16000;sprop-maxcapturerate=16000;useinbandfec=1"),
            Codec::G729 => Some("annexb=no"),
            _ => None,
        }
    }

    /// True when `format` (as resolved from an SDP) is this codec.
    pub fn matches(self, format: &PayloadFormat) -> bool {
        // G.722's RTP clock is 8000 (RFC 3551 §4.5.2), but many devices write its audio rate,
        // 16000: the same codec, answered with the right clock.
        let g722_audio_rate = self == Codec::G722 && format.clock_rate == 16000;
        if !format.encoding.eq_ignore_ascii_case(self.encoding_name())
            || format.clock_rate != self.clock_rate() && !g722_audio_rate
        {
            return false;
        }
        // Opus must say `/2`, but some endpoints write nothing or `/1`: accept either, since the
        // stream is the same.
        self == Codec::Opus || format.channels.unwrap_or(1) == self.channels().unwrap_or(1)
    }

    const ALL: [Codec; 5] = [
        Codec::Pcmu,
        Codec::Pcma,
        Codec::G722,
        Codec::Opus,
        Codec::G729,
    ];

    /// The codec a format stands for, if SIPx knows it.
    pub fn of(format: &PayloadFormat) -> Option<Codec> {
        Codec::ALL.into_iter().find(|c| c.matches(format))
    }
}

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.encoding_name())
    }
}

/// What one payload type of an `m=` line stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayloadFormat {
    pub payload_type: u8,
    pub encoding: String,
    pub clock_rate: u32,
    pub channels: Option<u16>,
}

impl PayloadFormat {
    /// True for `telephone-event` (RFC 4733 DTMF).
    pub fn is_telephone_event(&self) -> bool {
        self.encoding.eq_ignore_ascii_case("telephone-event")
    }
}

/// Static audio payload types (RFC 3551 table 4) that may appear without an `rtpmap`.
const STATIC_PAYLOAD_TYPES: [(u8, &str, u32); 7] = [
    (0, "PCMU", 8000),
    (3, "GSM", 8000),
    (4, "G723", 8000),
    (8, "PCMA", 8000),
    (9, "G722", 8000),
    (13, "CN", 8000),
    (18, "G729", 8000),
];

/// The format of payload type `pt` in `media`: its `rtpmap` when present, otherwise the static
/// table. A dynamic payload type without `rtpmap` means nothing and gives `None`.
///
/// Static payload type 18 under the name of its annexes (`18 G729a/8000`, `G729ab`: Linksys
/// and Cisco ATAs write their configured names) is G.729: RFC 3551 fixes the number, such
/// devices read it without the name, and annexes A and B are G.729's own bitstream.
pub fn resolve_format(media: &MediaDescription, pt: u8) -> Option<PayloadFormat> {
    let Some(map) = media.rtpmap(pt) else {
        return static_format(pt);
    };
    if pt == 18 && is_g729_annex(&map.encoding) && map.clock_rate == 8000 {
        return static_format(pt);
    }
    Some(PayloadFormat {
        payload_type: pt,
        encoding: map.encoding,
        clock_rate: map.clock_rate,
        channels: map.channels,
    })
}

/// `G729a`, `G729b`, `G729ab` in any case: G.729's annexes A and B, its own bitstream (D and
/// E are other codecs).
fn is_g729_annex(name: &str) -> bool {
    let (base, annex) = name.split_at_checked(4).unwrap_or((name, ""));
    base.eq_ignore_ascii_case("G729")
        && ["a", "b", "ab"]
            .iter()
            .any(|a| annex.eq_ignore_ascii_case(a))
}

/// RFC 3551's meaning of a static payload type.
fn static_format(pt: u8) -> Option<PayloadFormat> {
    STATIC_PAYLOAD_TYPES
        .iter()
        .find(|(n, _, _)| *n == pt)
        .map(|&(_, encoding, clock_rate)| PayloadFormat {
            payload_type: pt,
            encoding: encoding.to_owned(),
            clock_rate,
            channels: None,
        })
}

/// Every resolvable format of `media`, in `m=` line order.
pub fn formats_of(media: &MediaDescription) -> Vec<PayloadFormat> {
    media
        .payload_types()
        .filter_map(|pt| resolve_format(media, pt))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Attribute;

    fn media(formats: &[&str], rtpmaps: &[&str]) -> MediaDescription {
        let mut m = MediaDescription::new(
            "audio",
            4000,
            "RTP/AVP",
            formats.iter().map(|f| (*f).to_owned()).collect(),
        );
        m.attributes = rtpmaps
            .iter()
            .map(|r| Attribute::new("rtpmap", *r))
            .collect();
        m
    }

    #[test]
    fn payload_type_mapping() {
        let m = media(
            &["0", "8", "9", "18", "13", "96", "97", "98", "101", "99"],
            &[
                "96 OPUS/48000/2",
                "97 opus/48000",
                "98 G722/16000",
                "101 telephone-event/8000",
            ],
        );
        let cases: &[(u8, Option<Codec>)] = &[
            (0, Some(Codec::Pcmu)),
            (8, Some(Codec::Pcma)),
            (9, Some(Codec::G722)),
            (18, Some(Codec::G729)),
            (13, None),
            (96, Some(Codec::Opus)),
            (97, Some(Codec::Opus)),
            // G.722's clock is 8000 in SDP; 16000, its audio rate, is a common slip.
            (98, Some(Codec::G722)),
            (101, None),
            (99, None), // dynamic without rtpmap
        ];
        for &(pt, want) in cases {
            let got = resolve_format(&m, pt).and_then(|f| Codec::of(&f));
            assert_eq!(got, want, "pt {pt}");
        }
        assert!(resolve_format(&m, 101).unwrap().is_telephone_event());
        assert!(resolve_format(&m, 99).is_none());
        assert_eq!(formats_of(&m).len(), 9);
    }

    #[test]
    fn rtpmap_overrides_static_number() {
        // A (broken but seen) peer maps a static number to another codec: the rtpmap wins.
        let m = media(&["0"], &["0 PCMA/8000"]);
        assert_eq!(
            Codec::of(&resolve_format(&m, 0).unwrap()),
            Some(Codec::Pcma)
        );
    }

    #[test]
    fn a_static_number_under_a_name_of_its_own_keeps_its_meaning() {
        let codec = |map: &str| {
            let pt = map.split(' ').next().unwrap();
            resolve_format(&media(&[pt], &[map]), pt.parse().unwrap()).map(|f| f.encoding)
        };
        assert_eq!(codec("18 G729a/8000").as_deref(), Some("G729"));
        assert_eq!(codec("18 g729AB/8000").as_deref(), Some("G729"));
        // Other codecs, another clock, another number: what the rtpmap says.
        assert_eq!(codec("18 G729D/8000").as_deref(), Some("G729D"));
        assert_eq!(codec("18 G729a/16000").as_deref(), Some("G729a"));
        assert_eq!(codec("0 pcmu-x/8000").as_deref(), Some("pcmu-x"));
        assert_eq!(codec("4 G729ab/8000").as_deref(), Some("G729ab"));
    }

    #[test]
    fn g722_audio_rate_differs_from_clock() {
        assert_eq!(Codec::G722.clock_rate(), 8000);
        assert_eq!(Codec::G722.audio_rate(), 16000);
    }
}
