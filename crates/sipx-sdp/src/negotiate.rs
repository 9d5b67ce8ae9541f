//! The choices both sides of offer/answer make about one remote audio section: transport,
//! address, codec, DTMF, SRTP, direction, RTCP and packetisation. Pure functions; the state
//! (who offered, versions) lives in [`crate::session`].

use std::net::{IpAddr, SocketAddr};

use crate::attr::Direction;
use crate::attr::Fmtp;
use crate::codec::{Codec, PayloadFormat, formats_of};
use crate::config::{LocalCodec, MediaConfig, Preference, SrtpPolicy};
use crate::crypto::{CryptoAttr, KeyParam, SrtpSuite};
use crate::model::{Attribute, MediaDescription, SessionDescription};
use crate::negotiated::{
    NegotiatedCodec, NegotiatedMedia, RtcpTarget, SrtpKey, SrtpParams, TelephoneEvent,
};
use crate::reject::Rejection;

/// Bytes of local key material [`crate::MediaSession::new`] needs when SRTP is not disabled:
/// one key and salt per suite, so no two suites ever share a key.
pub const KEY_MATERIAL_LEN: usize = {
    let mut len = 0;
    let mut i = 0;
    while i < SrtpSuite::ALL.len() {
        len += SrtpSuite::ALL[i].key_salt_len();
        i += 1;
    }
    len
};

/// Our master key and salt for `suite`, cut from the caller's random bytes: each suite's
/// place follows those before it in [`SrtpSuite::ALL`].
pub(crate) fn local_key(material: &[u8], suite: SrtpSuite) -> Option<&[u8]> {
    let start: usize = SrtpSuite::ALL
        .iter()
        .take_while(|&&s| s != suite)
        .map(|s| s.key_salt_len())
        .sum();
    material.get(start..start + suite.key_salt_len())
}

/// What the remote section says about the stream, before any codec is chosen.
pub(crate) struct RemoteStream {
    pub rtp: SocketAddr,
    pub rtcp: RtcpTarget,
    /// The remote's direction, with old-style `c=0.0.0.0` hold applied.
    pub direction: Direction,
    pub secure_profile: bool,
    pub formats: Vec<PayloadFormat>,
}

/// Checks transport and address of a remote audio section and reads what every later choice
/// needs. `rtcp_mux` is whether we will multiplex (both sides agreed).
pub(crate) fn remote_stream(
    config: &MediaConfig,
    sdp: &SessionDescription,
    media: &MediaDescription,
    rtcp_mux: bool,
) -> Result<RemoteStream, Rejection> {
    let secure_profile = match media.proto.to_ascii_uppercase().as_str() {
        "RTP/AVP" | "RTP/AVPF" => false,
        "RTP/SAVP" | "RTP/SAVPF" => true,
        _ => return Err(Rejection::UnsupportedTransport(media.proto.clone())),
    };
    let connection = sdp.connection_for(media).ok_or(Rejection::NoConnection)?;
    let ip = connection.ip().ok_or(if connection.is_host_name() {
        Rejection::HostnameAddress
    } else {
        Rejection::IncompatibleAddress
    })?;
    // `IN IP6 ::ffff:192.0.2.1` is an IPv4 address written as IPv6: RTP goes over IPv4.
    let ip = ip.to_canonical();
    // An unspecified address is hold, not an address family statement.
    if !ip.is_unspecified() && ip.is_ipv4() != config.address.is_ipv4() {
        return Err(Rejection::IncompatibleAddress);
    }
    if ip.is_multicast() {
        return Err(Rejection::MulticastNotAvailable);
    }
    let mut direction = sdp.direction_for(media);
    if connection.is_hold_address() {
        direction = direction.without_receive();
    }
    Ok(RemoteStream {
        rtp: SocketAddr::new(ip, media.port),
        rtcp: rtcp_target(media, ip, rtcp_mux),
        direction,
        secure_profile,
        formats: formats_of(media),
    })
}

fn rtcp_target(media: &MediaDescription, rtp_ip: IpAddr, mux: bool) -> RtcpTarget {
    if mux {
        return RtcpTarget::Muxed;
    }
    match media.rtcp() {
        Some(rtcp) => RtcpTarget::Separate(SocketAddr::new(
            rtcp.ip().map_or(rtp_ip, |ip| ip.to_canonical()),
            rtcp.port,
        )),
        None => RtcpTarget::Separate(SocketAddr::new(rtp_ip, media.port.saturating_add(1))),
    }
}

/// The best codec both sides support, by `config.preference`.
pub(crate) fn select_codec<'a>(
    config: &'a MediaConfig,
    offered: &[PayloadFormat],
) -> Option<(PayloadFormat, &'a LocalCodec)> {
    let pick = |local: &'a LocalCodec, format: &PayloadFormat| {
        local.codec.matches(format).then(|| (format.clone(), local))
    };
    match config.preference {
        Preference::Ours => config
            .codecs
            .iter()
            .find_map(|local| offered.iter().find_map(|f| pick(local, f))),
        Preference::Theirs => offered
            .iter()
            .find_map(|f| config.codecs.iter().find_map(|local| pick(local, f))),
    }
}

/// The telephone-event format to use among `offered`: the one at the codec's clock rate, else
/// the 8000 Hz one, else whichever there is at a rate events are sent and read at: 8000,
/// 48000 (Opus, RFC 7587 §7) or 16000 (what some phones pair with G.722 and wideband codecs;
/// a peer offering only that one would otherwise have its keys go unheard).
pub(crate) fn select_telephone_event(
    config: &MediaConfig,
    offered: &[PayloadFormat],
    codec_clock: u32,
    media: &MediaDescription,
) -> Option<TelephoneEvent> {
    if !config.telephone_event {
        return None;
    }
    let events: Vec<&PayloadFormat> = offered
        .iter()
        .filter(|f| f.is_telephone_event() && matches!(f.clock_rate, 8000 | 16000 | 48000))
        .collect();
    let at = |clock: u32| events.iter().find(|f| f.clock_rate == clock);
    let chosen = at(codec_clock).or_else(|| at(8000)).or(events.first())?;
    Some(TelephoneEvent {
        payload_type: chosen.payload_type,
        receive_payload_type: chosen.payload_type,
        clock_rate: chosen.clock_rate,
        keys: event_keys(media.fmtp(chosen.payload_type).as_deref()),
    })
}

/// Which of the keys' events (0-15) a peer's telephone-event `fmtp` lists (`0-11`, `0-9,11`,
/// `0-15,16`): bit n for event n. Without an fmtp a peer takes 0-15 (RFC 4733 §2.4.1); one
/// that cannot be read is taken as that too.
pub(crate) fn event_keys(fmtp: Option<&str>) -> u16 {
    let Some(fmtp) = fmtp else {
        return u16::MAX;
    };
    let mut keys = 0u16;
    for part in fmtp.split(',').map(str::trim) {
        let (low, high) = part.split_once('-').unwrap_or((part, part));
        let (Ok(low), Ok(high)) = (low.trim().parse::<u8>(), high.trim().parse::<u8>()) else {
            return u16::MAX;
        };
        for event in low..=high.min(15) {
            keys |= 1 << event;
        }
    }
    keys
}

/// The crypto line to accept from an offer, as the SRTP policy decides.
pub(crate) fn select_crypto(
    config: &MediaConfig,
    material: &[u8],
    media: &MediaDescription,
    secure_profile: bool,
) -> Result<Option<(CryptoAttr, SrtpSuite)>, Rejection> {
    let candidates: Vec<CryptoAttr> = usable_cryptos(media).collect();
    let best = config.srtp_suites.iter().find_map(|&suite| {
        local_key(material, suite)?;
        let line = candidates.iter().find(|c| c.suite() == Some(suite))?;
        Some((line.clone(), suite))
    });
    match (config.srtp, secure_profile) {
        (SrtpPolicy::Disabled, true) => Err(Rejection::SrtpNotSupported),
        (SrtpPolicy::Disabled, false) => Ok(None),
        (_, true) => best.map(Some).ok_or(Rejection::NoCommonCryptoSuite),
        // Best-effort SRTP (crypto lines in RTP/AVP): used when we can, plain RTP otherwise.
        (SrtpPolicy::Allowed, false) => Ok(best),
        (SrtpPolicy::Required, false) => best.map(Some).ok_or(Rejection::SrtpRequired),
    }
}

/// Media-level crypto lines that parse and that we could use.
pub(crate) fn usable_cryptos(media: &MediaDescription) -> impl Iterator<Item = CryptoAttr> + '_ {
    media
        .attribute_values("crypto")
        .filter_map(CryptoAttr::parse)
        .filter(CryptoAttr::is_usable)
}

/// The MKI we send with when the peer's key has one: the value 1 in as many bytes as the
/// peer's. RFC 4568 lets each side choose, but peers that use an MKI expect one back (and
/// one on the line of the answer).
pub(crate) fn local_mki(remote: &CryptoAttr) -> Option<(u32, u8)> {
    remote.keys.first()?.mki.map(|(_, len)| (1, len))
}

/// The SRTP parameters from the remote's chosen line and our key for the same suite, sent
/// with `mki` (what our own line says: [`local_mki`] in an answer, our offered line's MKI
/// after our offer).
pub(crate) fn srtp_params(
    remote: &CryptoAttr,
    suite: SrtpSuite,
    local: &[u8],
    mki: Option<(u32, u8)>,
) -> Option<SrtpParams> {
    let split = |key_salt: &[u8], mki: Option<(u32, u8)>| {
        let (key, salt) = key_salt.split_at_checked(suite.key_len())?;
        (salt.len() == suite.salt_len()).then(|| SrtpKey {
            key: key.to_vec(),
            salt: salt.to_vec(),
            mki,
        })
    };
    let first = remote.keys.first()?;
    Some(SrtpParams {
        suite,
        remote: split(&first.key_salt, first.mki)?,
        local: split(local, mki)?,
    })
}

/// Our crypto line for `suite` with `tag` (and `mki`: in an answer to a key that has one, and
/// in a re-offer while one is in force).
pub(crate) fn crypto_line(
    tag: u32,
    suite: SrtpSuite,
    key_salt: &[u8],
    mki: Option<(u32, u8)>,
) -> Attribute {
    let line = CryptoAttr {
        tag,
        suite_name: suite.name().to_owned(),
        keys: vec![KeyParam {
            key_salt: key_salt.to_vec(),
            lifetime: None,
            mki,
        }],
        session_params: Vec::new(),
    };
    Attribute::new("crypto", line.to_value())
}

/// The packetisations a media leg sends (sipx-media's `LegConfig::ptime_ms`).
pub(crate) const SEND_PTIMES: std::ops::RangeInclusive<u32> = 10..=60;

/// The packetisation we send with: the remote's `ptime`, else ours, never above its `maxptime`,
/// and within what a leg can send. `ptime` is only a wish (RFC 8866 §6.4): a peer asking for
/// 80 ms gets 60, one asking for 5 gets 10, rather than a call that cannot start.
pub(crate) fn send_ptime(
    config: &MediaConfig,
    session: &SessionDescription,
    remote: &MediaDescription,
) -> u32 {
    let (ptime, maxptime) = session.ptimes_for(remote);
    let ptime = ptime.unwrap_or(config.ptime);
    let ptime = maxptime.map_or(ptime, |max| ptime.min(max));
    ptime.clamp(*SEND_PTIMES.start(), *SEND_PTIMES.end())
}

/// The `fmtp` we answer for a codec: ours, except that G.729 Annex B is off unless both allow it.
pub(crate) fn answer_fmtp(local: &LocalCodec, remote_fmtp: Option<&str>) -> Option<String> {
    let says_no = |fmtp: Option<&str>| {
        fmtp.and_then(|p| Fmtp::param(p, "annexb"))
            .is_some_and(|v| v.eq_ignore_ascii_case("no"))
    };
    if local.codec == Codec::G729 && (says_no(remote_fmtp) || says_no(local.fmtp.as_deref())) {
        return Some("annexb=no".to_owned());
    }
    local.fmtp.clone()
}

/// The description of the chosen codec.
pub(crate) fn negotiated_codec(
    codec: Codec,
    payload_type: u8,
    remote_fmtp: Option<String>,
    local_fmtp: Option<String>,
) -> NegotiatedCodec {
    NegotiatedCodec {
        codec,
        payload_type,
        receive_payload_type: payload_type,
        name: codec.encoding_name(),
        clock_rate: codec.clock_rate(),
        channels: codec.channels().unwrap_or(1),
        audio_rate: codec.audio_rate(),
        remote_fmtp,
        local_fmtp,
    }
}

/// Writes `rtpmap` (and `fmtp`) lines for one payload type.
pub(crate) fn push_format(
    attributes: &mut Vec<Attribute>,
    pt: u8,
    name: &str,
    clock: u32,
    channels: Option<u16>,
    fmtp: Option<&str>,
) {
    let rtpmap = match channels {
        Some(c) => format!("{pt} {name}/{clock}/{c}"),
        None => format!("{pt} {name}/{clock}"),
    };
    attributes.push(Attribute::new("rtpmap", rtpmap));
    if let Some(fmtp) = fmtp {
        attributes.push(Attribute::new("fmtp", format!("{pt} {fmtp}")));
    }
}

/// The events we take (RFC 4733 §2.4.1): 0-15, the keys (digits, `*`, `#`, A-D), which SIPx
/// reports and sends. Not 16 (flash): nothing it could be passed on as, so offering it would
/// tell a phone its hook flashes are heard.
pub(crate) const TELEPHONE_EVENT_FMTP: &str = "0-15";

/// Accepts one remote audio section of an offer: the answer section and the outcome.
pub(crate) fn answer_audio(
    config: &MediaConfig,
    material: &[u8],
    local_direction: Direction,
    offer: &SessionDescription,
    media: &MediaDescription,
) -> Result<(MediaDescription, NegotiatedMedia), Rejection> {
    let mux = config.rtcp_mux && media.rtcp_mux();
    let remote = remote_stream(config, offer, media, mux)?;
    let (format, local) = select_codec(config, &remote.formats).ok_or(Rejection::NoCommonCodec)?;
    let crypto = select_crypto(config, material, media, remote.secure_profile)?;
    // Events on the clock the audio is stamped at: G.722's is 8000 even when offered at its
    // audio rate (`G722/16000`).
    let event = select_telephone_event(config, &remote.formats, local.codec.clock_rate(), media);
    let direction = remote.direction.reversed().intersect(local_direction);

    let remote_fmtp = media.fmtp(format.payload_type);
    let local_fmtp = answer_fmtp(local, remote_fmtp.as_deref());
    let codec = negotiated_codec(local.codec, format.payload_type, remote_fmtp, local_fmtp);

    let mut answer = MediaDescription::new(
        &media.kind,
        config.rtp_port,
        &media.proto,
        vec![codec.payload_type.to_string()],
    );
    let attrs = &mut answer.attributes;
    push_format(
        attrs,
        codec.payload_type,
        codec.name,
        // As the offer wrote it: the answer may not give the offerer's payload type another
        // meaning (RFC 3264 §6.1). It is the codec's own clock, except for a G.722 offered
        // at its audio rate (`G722/16000`), which SIPx still stamps at 8000.
        format.clock_rate,
        local.codec.channels(),
        codec.local_fmtp.as_deref(),
    );
    if let Some(event) = event {
        answer.formats.push(event.payload_type.to_string());
        push_format(
            attrs,
            event.payload_type,
            "telephone-event",
            event.clock_rate,
            None,
            Some(TELEPHONE_EVENT_FMTP),
        );
    }
    // What we ask to receive, within the offerer's maxptime.
    let ptime = offer
        .ptimes_for(media)
        .1
        .map_or(config.ptime, |max| config.ptime.min(max))
        .max(*SEND_PTIMES.start());
    attrs.push(Attribute::new("ptime", ptime.to_string()));
    if mux {
        attrs.push(Attribute::flag("rtcp-mux"));
    }
    let mut srtp = None;
    if let Some((line, suite)) = crypto {
        // select_crypto only picks suites we hold a key for.
        let key = local_key(material, suite).unwrap_or_default();
        let mki = local_mki(&line);
        attrs.push(crypto_line(line.tag, suite, key, mki));
        srtp = srtp_params(&line, suite, key, mki);
    }
    attrs.push(Attribute::flag(direction.as_str()));

    let negotiated = NegotiatedMedia {
        remote_rtp: remote.rtp,
        remote_rtcp: remote.rtcp,
        codec,
        also_received: Vec::new(),
        telephone_event: event,
        ptime: send_ptime(config, offer, media),
        direction,
        srtp,
        proto: media.proto.clone(),
    };
    Ok((answer, negotiated))
}
