//! Refusing an offer: a typed reason, the SIP status, and a `Warning` header value
//! (RFC 3261 §20.43) that tells the peer's administrator why.

use std::fmt;

/// Why an offer (or an answer to our offer) cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rejection {
    /// No enabled audio stream at all.
    NoAudio,
    /// An audio stream, but no codec we support.
    NoCommonCodec,
    /// A transport we do not speak, e.g. DTLS-SRTP (`UDP/TLS/RTP/SAVPF`) or TCP.
    UnsupportedTransport(String),
    /// The media address is an IP literal of the other address family.
    IncompatibleAddress,
    /// The media address is a host name (RFC 8866 §5.7 allows one): SIPx does not resolve
    /// names in SDP, so it would not know where to send.
    HostnameAddress,
    /// No `c=` line for the audio stream, at media or session level (RFC 8866 §5.7).
    NoConnection,
    /// A multicast stream: SIPx answers unicast only, and an answer to a multicast offer must
    /// carry the same group (RFC 3264 §6.2).
    MulticastNotAvailable,
    /// Our policy requires SRTP and the peer offered plain RTP.
    SrtpRequired,
    /// The peer requires SRTP (`RTP/SAVP`) and our policy disables it.
    SrtpNotSupported,
    /// SRTP is needed, but no crypto line has a suite and key we can use.
    NoCommonCryptoSuite,
    /// An offer arrived while ours is outstanding: answer 491 and retry later (RFC 3261 §14.1).
    Glare,
}

impl Rejection {
    /// The SIP status to answer with: 488 Not Acceptable Here (491 Request Pending for glare).
    pub fn status(&self) -> u16 {
        match self {
            Rejection::Glare => 491,
            _ => 488,
        }
    }

    /// The warn-code and warn-text for the `Warning` header (RFC 3261 §20.43).
    pub fn warning_parts(&self) -> (u16, &'static str) {
        match self {
            Rejection::NoAudio => (304, "Media type not available"),
            Rejection::NoCommonCodec => (305, "Incompatible media format"),
            Rejection::UnsupportedTransport(_) => (302, "Incompatible transport protocol"),
            Rejection::IncompatibleAddress => (301, "Incompatible network address formats"),
            Rejection::HostnameAddress => (
                301,
                "Incompatible network address formats: an IP address is needed in c=",
            ),
            Rejection::NoConnection => (399, "Bad SDP: no c= line for the audio stream"),
            Rejection::MulticastNotAvailable => (330, "Multicast not available"),
            Rejection::SrtpRequired => (399, "SRTP required"),
            Rejection::SrtpNotSupported => (399, "SRTP not supported"),
            Rejection::NoCommonCryptoSuite => (399, "No supported SRTP crypto suite"),
            Rejection::Glare => (399, "Offer pending"),
        }
    }

    /// The `Warning` header value, e.g. `305 sipx.example.com "Incompatible media format"`.
    /// `agent` is our host name (the warn-agent).
    pub fn warning(&self, agent: &str) -> String {
        let (code, text) = self.warning_parts();
        format!("{code} {agent} \"{text}\"")
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (_, text) = self.warning_parts();
        match self {
            Rejection::UnsupportedTransport(proto) => write!(f, "{text}: {proto}"),
            _ => f.write_str(text),
        }
    }
}

impl std::error::Error for Rejection {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warning_header_values() {
        let cases = [
            (
                Rejection::NoAudio,
                488,
                r#"304 gw.example "Media type not available""#,
            ),
            (
                Rejection::NoCommonCodec,
                488,
                r#"305 gw.example "Incompatible media format""#,
            ),
            (
                Rejection::SrtpRequired,
                488,
                r#"399 gw.example "SRTP required""#,
            ),
            (
                Rejection::UnsupportedTransport("UDP/TLS/RTP/SAVPF".into()),
                488,
                r#"302 gw.example "Incompatible transport protocol""#,
            ),
            (Rejection::Glare, 491, r#"399 gw.example "Offer pending""#),
        ];
        for (rejection, status, warning) in cases {
            assert_eq!(rejection.status(), status);
            assert_eq!(rejection.warning("gw.example"), warning);
        }
    }
}
