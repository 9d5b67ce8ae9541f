//! What calls need of the media configuration, checked once at start, and the mapping from
//! an SDP negotiation (`sipx-sdp`) to a media leg's configuration (`sipx-media`).

use std::time::Duration;

use sipx_codec::{CodecKind, EncoderOptions};
use sipx_media::jitter::JitterConfig;
use sipx_media::leg::LegConfig;
use sipx_media::srtp::{SrtpConfig, SrtpKey, SrtpSuite};
use sipx_sdp::{Codec, LocalCodec, NegotiatedMedia, RtcpTarget, SrtpPolicy};

use super::Echo;
use crate::StartupError;
use crate::config::MediaConfig;

#[derive(Debug, Clone)]
pub struct MediaSettings {
    pub echo_extension: String,
    pub opus_echo_extension: String,
    pub codecs: Vec<LocalCodec>,
    pub srtp: SrtpPolicy,
    pub srtp_suites: Vec<sipx_sdp::SrtpSuite>,
    pub ptime_ms: u32,
    pub jitter_min: Duration,
    pub jitter_max: Duration,
    pub media_timeout: Duration,
    /// `media.inband_dtmf`.
    pub inband_dtmf: bool,
}

/// The codec a configuration or the API names (any case), if this build has it.
pub fn codec_named(name: &str) -> Result<Codec, String> {
    match name.to_ascii_lowercase().as_str() {
        "pcmu" => Ok(Codec::Pcmu),
        "pcma" => Ok(Codec::Pcma),
        "g722" => Ok(Codec::G722),
        "opus" => Ok(Codec::Opus),
        "g729" if cfg!(feature = "g729") => Ok(Codec::G729),
        "g729" => Err("G729 needs a build with the g729 feature".to_owned()),
        _ => Err(format!(
            "unknown codec {name:?} (opus, G722, PCMU, PCMA, G729)"
        )),
    }
}

impl MediaSettings {
    pub fn from_config(c: &MediaConfig) -> Result<Self, StartupError> {
        // Checked here too, before SIP binds anything: a start fails on one clear line.
        super::addresses::check(c)?;
        let codecs = c
            .codecs
            .iter()
            .map(|name| {
                codec_named(name)
                    .map(LocalCodec::new)
                    .map_err(|e| StartupError::Config(format!("media.codecs: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if codecs.is_empty() {
            return Err(StartupError::Config("media.codecs is empty".to_owned()));
        }
        let srtp = match c.srtp.to_ascii_lowercase().as_str() {
            "disabled" => SrtpPolicy::Disabled,
            "allowed" => SrtpPolicy::Allowed,
            "required" => SrtpPolicy::Required,
            other => {
                return Err(StartupError::Config(format!(
                    "media.srtp: {other:?} is not disabled, allowed or required"
                )));
            }
        };
        let srtp_suites = c
            .srtp_suites
            .iter()
            .map(|name| {
                sipx_sdp::SrtpSuite::from_name(name).ok_or_else(|| {
                    let known = sipx_sdp::SrtpSuite::ALL.map(sipx_sdp::SrtpSuite::name);
                    StartupError::Config(format!(
                        "media.srtp_suites: unknown suite {name:?} ({})",
                        known.join(", ")
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if srtp_suites.is_empty() && srtp != SrtpPolicy::Disabled {
            return Err(StartupError::Config(
                "media.srtp_suites is empty while media.srtp is not disabled".to_owned(),
            ));
        }
        if !(10..=60).contains(&c.ptime_ms) || !c.ptime_ms.is_multiple_of(10) {
            return Err(StartupError::Config(
                "media.ptime_ms must be 10, 20, 30, 40, 50 or 60".to_owned(),
            ));
        }
        if c.jitter_min_ms > c.jitter_max_ms {
            return Err(StartupError::Config(
                "media.jitter_min_ms must not exceed media.jitter_max_ms".to_owned(),
            ));
        }
        Ok(MediaSettings {
            echo_extension: c.echo_extension.clone(),
            opus_echo_extension: c.opus_echo_extension.clone(),
            codecs,
            srtp,
            srtp_suites,
            ptime_ms: c.ptime_ms,
            jitter_min: Duration::from_millis(c.jitter_min_ms),
            jitter_max: Duration::from_millis(c.jitter_max_ms),
            media_timeout: Duration::from_secs(c.media_timeout_secs),
            inband_dtmf: c.inband_dtmf,
        })
    }
}

impl MediaSettings {
    /// The echo test a Request-URI's user part reaches, if any (an empty extension reaches
    /// nothing).
    pub fn echo(&self, user: &str) -> Option<Echo> {
        if user.is_empty() {
            None
        } else if user == self.echo_extension {
            Some(Echo::Plain)
        } else if user == self.opus_echo_extension {
            Some(Echo::Opus)
        } else {
            None
        }
    }
}

fn codec_kind(codec: Codec) -> Option<CodecKind> {
    Some(match codec {
        Codec::Pcmu => CodecKind::Pcmu,
        Codec::Pcma => CodecKind::Pcma,
        Codec::G722 => CodecKind::G722,
        Codec::Opus => CodecKind::Opus,
        Codec::G729 if cfg!(feature = "g729") => CodecKind::G729,
        _ => return None,
    })
}

fn srtp_suite(suite: sipx_sdp::SrtpSuite) -> SrtpSuite {
    match suite {
        sipx_sdp::SrtpSuite::AesCm128HmacSha1_80 => SrtpSuite::AesCm128HmacSha1_80,
        sipx_sdp::SrtpSuite::AesCm128HmacSha1_32 => SrtpSuite::AesCm128HmacSha1_32,
        sipx_sdp::SrtpSuite::Aes256CmHmacSha1_80 => SrtpSuite::Aes256CmHmacSha1_80,
        sipx_sdp::SrtpSuite::Aes256CmHmacSha1_32 => SrtpSuite::Aes256CmHmacSha1_32,
        sipx_sdp::SrtpSuite::AeadAes128Gcm => SrtpSuite::AeadAes128Gcm,
        sipx_sdp::SrtpSuite::AeadAes256Gcm => SrtpSuite::AeadAes256Gcm,
    }
}

/// The packets a leg's jitter buffer holds: its longest delay in 10 ms packets (the shortest
/// packetisation), and room for reordering. Each slot costs its `max_payload`, so a ring
/// sized for the worst case of every codec would be most of a call's memory.
fn jitter_capacity(max_delay: Duration) -> usize {
    let packets = usize::try_from(max_delay.as_millis() / 10).unwrap_or(usize::MAX);
    packets.saturating_add(12).next_power_of_two().max(16)
}

/// The largest payload a jitter buffer slot keeps: 120 ms of the codec (the longest packet
/// a leg decodes), at most an Ethernet MTU's worth. 960 bytes for G.711 instead of 1500.
fn jitter_payload(codec: CodecKind, audio_rate: u32) -> usize {
    let samples = audio_rate as usize * 120 / 1000;
    codec.max_payload_len(samples, audio_rate).min(1500)
}

/// The leg configuration for a negotiation; `None` when this build lacks the codec or suite.
/// The PCM rate is the codec's own (no resampling for the echo test).
pub fn leg_config(n: &NegotiatedMedia, s: &MediaSettings) -> Option<LegConfig> {
    let codec = codec_kind(n.codec.codec)?;
    let key = |k: &sipx_sdp::SrtpKey| SrtpKey {
        key: k.key.clone(),
        salt: k.salt.clone(),
        mki: k.mki_bytes(),
    };
    let srtp = n.srtp.as_ref().map(|p| SrtpConfig {
        suite: srtp_suite(p.suite),
        local: key(&p.local),
        remote: key(&p.remote),
    });
    // Opus carries any rate: the peer's fmtp says what it plays back.
    let remote_fmtp = n.codec.remote_fmtp.as_deref();
    let (frame_rate, opus) = match codec {
        CodecKind::Opus => (
            super::opus_fmtp::frame_rate(remote_fmtp),
            super::opus_fmtp::encoder_options(remote_fmtp),
        ),
        _ => (n.codec.audio_rate, EncoderOptions::default()),
    };
    // Codecs the peer may change to: those this build has, on the same RTP clock (the jitter
    // buffer and RTCP count in it), by our number and by the answer's (peers send with either).
    let numbered = n
        .also_received
        .iter()
        .filter(|o| o.clock_rate == n.codec.clock_rate)
        .filter_map(|o| Some((codec_kind(o.codec)?, o)))
        .flat_map(|(kind, o)| [(o.receive_payload_type, kind), (o.payload_type, kind)]);
    let mut also_received: Vec<(u8, CodecKind)> = Vec::new();
    for (pt, kind) in numbered {
        let taken = [n.codec.payload_type, n.codec.receive_payload_type].contains(&pt)
            || also_received.iter().any(|&(p, _)| p == pt);
        if !taken {
            also_received.push((pt, kind));
        }
    }
    let max_payload = also_received
        .iter()
        .map(|&(_, kind)| jitter_payload(kind, kind.native_audio_rate()))
        .fold(jitter_payload(codec, n.codec.audio_rate), usize::max);
    let (mut random, mut cname) = ([0u8; 18], [0u8; 12]);
    sipx_secrets::generate::fill(&mut random);
    sipx_secrets::generate::fill(&mut cname);
    let [a, b, c, d, e, f, g, h, i, j, seed @ ..] = random;
    Some(LegConfig {
        codec,
        payload_type: n.codec.payload_type,
        receive_payload_type: n.codec.receive_payload_type,
        also_received,
        clock_rate: n.codec.clock_rate,
        ptime_ms: n.ptime,
        telephone_event: n
            .telephone_event
            .as_ref()
            .map(|t| (t.payload_type, t.clock_rate)),
        receive_event_payload_type: n.telephone_event.as_ref().map(|t| t.receive_payload_type),
        telephone_event_keys: n.telephone_event.as_ref().map_or(u16::MAX, |t| t.keys),
        remote_rtp: n.remote_rtp,
        remote_rtcp: match n.remote_rtcp {
            RtcpTarget::Muxed => None,
            RtcpTarget::Separate(addr) => Some(addr),
        },
        srtp,
        frame_rate,
        jitter: JitterConfig {
            clock_rate: n.codec.clock_rate,
            min_delay: s.jitter_min,
            max_delay: s.jitter_max,
            initial_delay: s
                .jitter_min
                .max(Duration::from_millis(40))
                .min(s.jitter_max),
            capacity: jitter_capacity(s.jitter_max),
            max_payload,
            ..JitterConfig::default()
        },
        media_timeout: s.media_timeout,
        send: n.may_send(),
        receive: n.should_receive(),
        symmetric_rtp: true,
        // Only without telephone-event: a key sent both ways would be reported twice.
        detect_inband_dtmf: s.inband_dtmf && n.telephone_event.is_none(),
        opus,
        local_ssrc: u32::from_le_bytes([a, b, c, d]),
        initial_seq: u16::from_le_bytes([e, f]) & 0x7fff,
        initial_ts: u32::from_le_bytes([g, h, i, j]),
        // RFC 7022 §4.2: a random 96-bit CNAME, unique without naming the host or counting
        // the calls (one per leg: the RTCP session is the leg's).
        cname: cname.iter().map(|b| format!("{b:02x}")).collect(),
        wallclock: std::time::SystemTime::now(),
        seed: u64::from_le_bytes(seed),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_buffers_are_sized_by_their_delay_and_codec() {
        // 200 ms of 10 ms packets and 12 for reordering, rounded up.
        assert_eq!(jitter_capacity(Duration::from_millis(200)), 32);
        assert_eq!(jitter_capacity(Duration::from_millis(500)), 64);
        assert_eq!(jitter_capacity(Duration::ZERO), 16);
        // 120 ms packets still fit.
        assert_eq!(jitter_payload(CodecKind::Pcmu, 8000), 960);
        assert_eq!(jitter_payload(CodecKind::G722, 16000), 960);
        assert_eq!(jitter_payload(CodecKind::Opus, 48000), 1500);
        assert_eq!(jitter_payload(CodecKind::G729, 8000), 120);
    }

    #[test]
    fn each_echo_extension_reaches_its_mode_and_an_empty_one_nothing() {
        let mut config = MediaConfig::default();
        let s = MediaSettings::from_config(&config).unwrap();
        assert_eq!(s.echo("echo"), Some(Echo::Plain));
        assert_eq!(s.echo("echo-opus"), Some(Echo::Opus));
        assert_eq!(s.echo("alice"), None);
        assert_eq!(s.echo(""), None);
        config.opus_echo_extension = String::new();
        let s = MediaSettings::from_config(&config).unwrap();
        assert_eq!(s.echo(""), None);
        assert_eq!(s.echo("echo-opus"), None);
    }

    #[test]
    fn srtp_suites_are_read_by_name_and_an_unknown_one_is_named() {
        let mut config = MediaConfig {
            srtp_suites: vec!["aead_aes_256_gcm".into(), "AES_256_CM_HMAC_SHA1_80".into()],
            ..MediaConfig::default()
        };
        let s = MediaSettings::from_config(&config).unwrap();
        assert_eq!(
            s.srtp_suites,
            [
                sipx_sdp::SrtpSuite::AeadAes256Gcm,
                sipx_sdp::SrtpSuite::Aes256CmHmacSha1_80
            ]
        );
        config.srtp_suites = vec!["F8_128_HMAC_SHA1_80".into()];
        let Err(StartupError::Config(e)) = MediaSettings::from_config(&config) else {
            panic!("an unknown suite was taken");
        };
        assert!(
            e.contains("\"F8_128_HMAC_SHA1_80\"") && e.contains("AEAD_AES_256_GCM"),
            "{e}"
        );
        config.srtp_suites.clear();
        assert!(MediaSettings::from_config(&config).is_err());
        config.srtp = "disabled".into();
        assert!(MediaSettings::from_config(&config).is_ok());
    }
}
