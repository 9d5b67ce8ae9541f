//! SDES: the `a=crypto` attribute (RFC 4568) and the SRTP suites SIPx speaks.
//!
//! `a=crypto:<tag> <suite> inline:<base64 key||salt>[|<lifetime>][|<MKI>:<length>] [params]`.
//! A line with a suite we do not know still parses (its suite is kept as text), so an offer
//! listing some exotic suite first costs only that line.

use std::fmt;

use base64::Engine;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

/// The SRTP protection profiles SIPx negotiates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SrtpSuite {
    /// AES-128 counter mode, 80-bit HMAC-SHA1 tag (RFC 4568 §6.2.1).
    AesCm128HmacSha1_80,
    /// AES-128 counter mode, 32-bit HMAC-SHA1 tag (RFC 4568 §6.2.2).
    AesCm128HmacSha1_32,
    /// AES-256 counter mode, 80-bit HMAC-SHA1 tag (RFC 6188 §3).
    Aes256CmHmacSha1_80,
    /// AES-256 counter mode, 32-bit HMAC-SHA1 tag (RFC 6188 §3).
    Aes256CmHmacSha1_32,
    /// AES-128 GCM (RFC 7714 §14.2).
    AeadAes128Gcm,
    /// AES-256 GCM (RFC 7714 §14.2).
    AeadAes256Gcm,
}

impl SrtpSuite {
    /// All suites, in the default preference: AES-128 first, GCM before encrypt-then-MAC and
    /// the 80-bit tag before the 32-bit one, as every SRTP peer has them; the AES-256 suites
    /// after, so an offer that has only those (some SBCs are set up so) is taken too.
    pub const ALL: [SrtpSuite; 6] = [
        SrtpSuite::AeadAes128Gcm,
        SrtpSuite::AesCm128HmacSha1_80,
        SrtpSuite::AesCm128HmacSha1_32,
        SrtpSuite::AeadAes256Gcm,
        SrtpSuite::Aes256CmHmacSha1_80,
        SrtpSuite::Aes256CmHmacSha1_32,
    ];

    /// How many suites an offer lists: the first of the preference. Each line costs about 80
    /// bytes, and an INVITE over UDP should stay under 1300 (RFC 3261 §18.1.1).
    pub const OFFERED: usize = 3;

    /// The suite's name as written in `a=crypto`.
    pub fn name(self) -> &'static str {
        match self {
            SrtpSuite::AesCm128HmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
            SrtpSuite::AesCm128HmacSha1_32 => "AES_CM_128_HMAC_SHA1_32",
            SrtpSuite::Aes256CmHmacSha1_80 => "AES_256_CM_HMAC_SHA1_80",
            SrtpSuite::Aes256CmHmacSha1_32 => "AES_256_CM_HMAC_SHA1_32",
            SrtpSuite::AeadAes128Gcm => "AEAD_AES_128_GCM",
            SrtpSuite::AeadAes256Gcm => "AEAD_AES_256_GCM",
        }
    }

    /// Parses a suite name (names are case-sensitive in RFC 4568, but some phones lower-case
    /// them, so compare without case).
    pub fn from_name(name: &str) -> Option<SrtpSuite> {
        SrtpSuite::ALL
            .into_iter()
            .find(|s| s.name().eq_ignore_ascii_case(name))
    }

    /// Whether the suite is AES-GCM (RFC 7714), which takes no MKI in the place AES-CM has it.
    pub fn is_aead(self) -> bool {
        matches!(self, SrtpSuite::AeadAes128Gcm | SrtpSuite::AeadAes256Gcm)
    }

    /// Master key length in bytes.
    pub const fn key_len(self) -> usize {
        match self {
            SrtpSuite::Aes256CmHmacSha1_80
            | SrtpSuite::Aes256CmHmacSha1_32
            | SrtpSuite::AeadAes256Gcm => 32,
            _ => 16,
        }
    }

    /// Master salt length in bytes: 112 bits for AES-CM, 96 bits for GCM.
    pub const fn salt_len(self) -> usize {
        match self {
            SrtpSuite::AeadAes128Gcm | SrtpSuite::AeadAes256Gcm => 12,
            _ => 14,
        }
    }

    /// Length of the `inline:` key material (key then salt).
    pub const fn key_salt_len(self) -> usize {
        self.key_len() + self.salt_len()
    }
}

impl fmt::Display for SrtpSuite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One `inline:` key parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyParam {
    /// The decoded master key followed by the master salt.
    pub key_salt: Vec<u8>,
    /// The lifetime as written (`2^31` or a decimal number).
    pub lifetime: Option<String>,
    /// Master key identifier: value and its length in bytes on the wire.
    pub mki: Option<(u32, u8)>,
}

/// A parsed `a=crypto` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CryptoAttr {
    /// Identifies the line: the answer repeats the tag of the line it accepts.
    pub tag: u32,
    /// The suite as written.
    pub suite_name: String,
    pub keys: Vec<KeyParam>,
    /// Session parameters (`UNENCRYPTED_SRTP`, `KDR=…`, …), as written.
    pub session_params: Vec<String>,
}

/// The longest MKI SIPx takes (bytes on the wire): SDP writes the value as a decimal number,
/// and those who use one (Microsoft's phones and SBCs among them) send one to four bytes.
pub const MAX_MKI_LEN: u8 = 4;

/// The shortest key lifetime SIPx takes, in packets: 2^20, RFC 4568's own example, lasts
/// 5.8 hours of 20 ms audio.
pub const MIN_KEY_LIFETIME: u64 = 1 << 20;

/// Most key parameters one line may carry; RFC 4568 allows several, nobody sends more than two.
const MAX_KEYS: usize = 8;

/// Standard base64; padding optional on input because some phones leave it off.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

impl CryptoAttr {
    /// Parses an `a=crypto` value; `None` when it is malformed.
    pub fn parse(value: &str) -> Option<CryptoAttr> {
        let mut parts = value.split_ascii_whitespace();
        let tag = parts.next()?;
        if tag.len() > 9 {
            return None;
        }
        let tag = tag.parse().ok()?;
        let suite_name = parts.next()?.to_owned();
        let keys = parts
            .next()?
            .split(';')
            .map(KeyParam::parse)
            .collect::<Option<Vec<_>>>()?;
        if keys.len() > MAX_KEYS {
            return None;
        }
        Some(CryptoAttr {
            tag,
            suite_name,
            keys,
            session_params: parts.map(str::to_owned).collect(),
        })
    }

    /// The suite, when it is one SIPx speaks.
    pub fn suite(&self) -> Option<SrtpSuite> {
        SrtpSuite::from_name(&self.suite_name)
    }

    /// True when SIPx can use this line: a known suite, one key of the right length, and no
    /// session parameter that changes the packets or the keys. SIPx's SRTP has one master key
    /// per direction and derives its session keys once (no `KDR`, RFC 4568 §6.3.1): a line
    /// with several keys or a `KDR=n` (keys derived anew every 2^n packets, n from 1 to 24)
    /// would be accepted and then fail to decrypt, so another line of the offer is taken, or
    /// the offer refused. `KDR=0` is outside the RFC's range; some phones write it to mean
    /// "once", and so it is read. An MKI is taken with the AES-CM suites, up to
    /// [`MAX_MKI_LEN`] bytes and a value that fits them (RFC 7714 places GCM's elsewhere,
    /// and nobody sends one there).
    pub fn is_usable(&self) -> bool {
        let Some(suite) = self.suite() else {
            return false;
        };
        // WSH only sizes the replay window, which is ours to choose; FEC_ORDER=FEC_SRTP is
        // the default order (RFC 4568 §6.3.6), and there is no FEC here to order.
        let harmless = |p: &String| {
            p == "KDR=0" || p.starts_with("WSH=") || p.eq_ignore_ascii_case("FEC_ORDER=FEC_SRTP")
        };
        let [key] = self.keys.as_slice() else {
            return false;
        };
        let mki_fits = |&(value, len): &(u32, u8)| {
            !suite.is_aead()
                && len <= MAX_MKI_LEN
                && u64::from(value) < 1u64 << (8 * u32::from(len))
        };
        key.key_salt.len() == suite.key_salt_len()
            && key.mki.as_ref().is_none_or(mki_fits)
            && key.lifetime_is_long_enough()
            && self.session_params.iter().all(harmless)
    }

    /// The attribute value, e.g. `1 AES_CM_128_HMAC_SHA1_80 inline:…`.
    pub fn to_value(&self) -> String {
        let keys: Vec<String> = self.keys.iter().map(KeyParam::to_value).collect();
        let mut value = format!("{} {} {}", self.tag, self.suite_name, keys.join(";"));
        for p in &self.session_params {
            value.push(' ');
            value.push_str(p);
        }
        value
    }
}

impl KeyParam {
    fn parse(param: &str) -> Option<KeyParam> {
        let (method, info) = param.split_once(':')?;
        if !method.eq_ignore_ascii_case("inline") {
            return None;
        }
        let mut fields = info.split('|');
        let key_salt = BASE64.decode(fields.next()?).ok()?;
        let mut lifetime = None;
        let mut mki = None;
        for field in fields {
            // The MKI is the only field with a colon; the lifetime comes first when both appear.
            if let Some((value, len)) = field.split_once(':') {
                let len: u8 = len.parse().ok().filter(|l| (1..=128).contains(l))?;
                mki = Some((value.parse().ok()?, len));
            } else if lifetime.is_none() && mki.is_none() && is_lifetime(field) {
                lifetime = Some(field.to_owned());
            } else {
                return None;
            }
        }
        Some(KeyParam {
            key_salt,
            lifetime,
            mki,
        })
    }

    /// The key's lifetime in packets, as written (`2^20`, `1048576`); `None` when it is not
    /// written (the suite's maximum then applies) or too large to mean anything.
    pub fn lifetime_packets(&self) -> Option<u64> {
        let written = self.lifetime.as_deref()?;
        match written.strip_prefix("2^") {
            Some(power) => 1u64.checked_shl(power.parse().ok()?),
            None => written.parse().ok(),
        }
    }

    /// Whether the key may be used for a call: SIPx keeps one master key per direction for
    /// as long as the peer keeps it, re-keying only when the peer offers a new one, so a key
    /// must last: at least [`MIN_KEY_LIFETIME`] packets (hours of audio at 50 packets a
    /// second), and no more than SRTP's own limit of 2^48 (RFC 3711 §9.2), past which the
    /// number is not a lifetime at all. A line with an unusable lifetime is refused (RFC
    /// 4568 §6.1), so another line of the offer is taken, or the offer refused.
    fn lifetime_is_long_enough(&self) -> bool {
        self.lifetime.is_none()
            || self
                .lifetime_packets()
                .is_some_and(|packets| (MIN_KEY_LIFETIME..=1 << 48).contains(&packets))
    }

    fn to_value(&self) -> String {
        let mut value = format!("inline:{}", BASE64.encode(&self.key_salt));
        if let Some(lifetime) = &self.lifetime {
            value.push('|');
            value.push_str(lifetime);
        }
        if let Some((mki, len)) = self.mki {
            value.push_str(&format!("|{mki}:{len}"));
        }
        value
    }
}

fn is_lifetime(field: &str) -> bool {
    let digits = field.strip_prefix("2^").unwrap_or(field);
    !digits.is_empty() && digits.len() <= 20 && digits.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_30: &str = "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR";
    const KEY_28: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==";

    #[test]
    fn parses_key_params() {
        type Want = Option<(
            u32,
            &'static str,
            usize,
            Option<&'static str>,
            Option<(u32, u8)>,
        )>;
        let cases: &[(&str, Want)] = &[
            (
                "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:4",
                Some((1, "AES_CM_128_HMAC_SHA1_80", 30, Some("2^20"), Some((1, 4)))),
            ),
            (
                "2 AES_CM_128_HMAC_SHA1_32 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|1:4",
                Some((2, "AES_CM_128_HMAC_SHA1_32", 30, None, Some((1, 4)))),
            ),
            (
                "3 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|1048576",
                Some((3, "AES_CM_128_HMAC_SHA1_80", 30, Some("1048576"), None)),
            ),
            (
                "4 FANCY_NEW_SUITE inline:AAAA",
                Some((4, "FANCY_NEW_SUITE", 3, None, None)),
            ),
            ("1 AES_CM_128_HMAC_SHA1_80 inline:!!!", None),
            ("1 AES_CM_128_HMAC_SHA1_80 uri:https://x", None),
            ("1 AES_CM_128_HMAC_SHA1_80", None),
            ("x AES_CM_128_HMAC_SHA1_80 inline:AAAA", None),
            ("1234567890 AES_CM_128_HMAC_SHA1_80 inline:AAAA", None),
            ("1 AES_CM_128_HMAC_SHA1_80 inline:AAAA|1:0", None),
            ("1 AES_CM_128_HMAC_SHA1_80 inline:AAAA|1:4|2^20", None),
            ("1 AES_CM_128_HMAC_SHA1_80 inline:AAAA|junk", None),
        ];
        for (value, want) in cases {
            let got = CryptoAttr::parse(value).map(|c| {
                let k = &c.keys[0];
                (
                    c.tag,
                    c.suite_name.clone(),
                    k.key_salt.len(),
                    k.lifetime.clone(),
                    k.mki,
                )
            });
            let want = want.map(|(t, s, n, l, m)| (t, s.to_owned(), n, l.map(str::to_owned), m));
            assert_eq!(got, want, "{value}");
        }
    }

    #[test]
    fn a_key_must_outlast_a_long_call() {
        let with = |lifetime: &str| {
            CryptoAttr::parse(&format!(
                "1 AES_CM_128_HMAC_SHA1_80 inline:{KEY_30}|{lifetime}"
            ))
            .unwrap()
        };
        for (lifetime, packets, usable) in [
            ("2^20", Some(1 << 20), true),
            ("2^31", Some(1 << 31), true),
            ("2^48", Some(1 << 48), true),
            ("1048576", Some(1 << 20), true),
            ("2^0", Some(1), false),
            ("1", Some(1), false),
            ("0", Some(0), false),
            ("2^19", Some(1 << 19), false),
            ("2^49", Some(1 << 49), false),
            ("2^99", None, false),
            ("99999999999999999999", None, false),
        ] {
            let c = with(lifetime);
            assert_eq!(c.keys[0].lifetime_packets(), packets, "{lifetime}");
            assert_eq!(c.is_usable(), usable, "{lifetime}");
        }
        // No lifetime: the suite's own maximum.
        let bare =
            CryptoAttr::parse(&format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY_30}")).unwrap();
        assert!(bare.is_usable());
    }

    #[test]
    fn usability_and_round_trip() {
        let line = format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY_30}|2^20 KDR=0 WSH=128");
        let c = CryptoAttr::parse(&line).unwrap();
        assert!(c.is_usable());
        assert_eq!(c.to_value(), line);
        // An MKI of up to 4 bytes whose value fits them, with AES-CM.
        for usable in [
            format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY_30}|2^20|1:4"),
            format!("1 AES_CM_128_HMAC_SHA1_32 inline:{KEY_30}|2^31|255:1"),
        ] {
            assert!(CryptoAttr::parse(&usable).unwrap().is_usable(), "{usable}");
        }
        // What SIPx's SRTP does not do: two keys, keys derived anew (KDR above 0), an MKI
        // longer than 4 bytes, or one whose value does not fit its length, or with GCM.
        for unusable in [
            format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY_30}|2^31|1:1;inline:{KEY_30}|2^31|2:1"),
            format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY_30} KDR=4"),
            format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY_30}|2^31|1:5"),
            format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY_30}|2^31|256:1"),
            format!("1 AEAD_AES_128_GCM inline:{KEY_28}|1:1"),
        ] {
            let c = CryptoAttr::parse(&unusable).unwrap();
            assert!(!c.is_usable(), "{unusable}");
        }

        // Right suite, wrong key length for GCM (28 bytes needed).
        let gcm = CryptoAttr::parse(&format!("1 AEAD_AES_128_GCM inline:{KEY_30}")).unwrap();
        assert!(!gcm.is_usable());
        let unencrypted = format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY_30} UNENCRYPTED_SRTP");
        assert!(!CryptoAttr::parse(&unencrypted).unwrap().is_usable());
        let fec_default = format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY_30} FEC_ORDER=FEC_SRTP");
        assert!(CryptoAttr::parse(&fec_default).unwrap().is_usable());
        let fec_first = format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY_30} FEC_ORDER=SRTP_FEC");
        assert!(!CryptoAttr::parse(&fec_first).unwrap().is_usable());
        // Unpadded base64 is accepted.
        let unpadded =
            CryptoAttr::parse("1 AEAD_AES_128_GCM inline:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
                .unwrap();
        assert_eq!(unpadded.keys[0].key_salt.len(), 28);
        assert!(unpadded.is_usable());
    }
}
