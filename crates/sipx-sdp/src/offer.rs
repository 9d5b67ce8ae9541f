//! Our side as offerer: the audio section we offer, and reading the answer to it.

use crate::attr::Direction;
use crate::codec::{Codec, formats_of};
use crate::config::{MediaConfig, SrtpPolicy};
use crate::crypto::{CryptoAttr, SrtpSuite};
use crate::model::{Attribute, MediaDescription, SessionDescription};
use crate::negotiate::{
    TELEPHONE_EVENT_FMTP, crypto_line, local_key, negotiated_codec, push_format, remote_stream,
    select_telephone_event, send_ptime, srtp_params, usable_cryptos,
};
use crate::negotiated::{NegotiatedCodec, NegotiatedMedia};
use crate::reject::Rejection;

/// Payload type numbers for the formats without a static number. They start at common values
/// and follow what the peer used, so a re-offer keeps the numbers already in use for the
/// session (RFC 3264 §8.3.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PayloadNumbers {
    opus: u8,
    events_8000: u8,
    events_48000: u8,
}

impl Default for PayloadNumbers {
    fn default() -> Self {
        PayloadNumbers {
            opus: 111,
            events_8000: 101,
            events_48000: 110,
        }
    }
}

impl PayloadNumbers {
    pub(crate) fn for_codec(&self, codec: Codec) -> u8 {
        codec.static_payload_type().unwrap_or(self.opus)
    }

    /// Adopts the numbers of a negotiation, moving any of ours they collide with: an answer
    /// may have given one of our numbers to another format (`101 PCMU/8000` where we offered
    /// 101 as telephone-event), and one number must not stand for two formats in a session
    /// (RFC 3264 §8.3.2).
    pub(crate) fn learn(&mut self, negotiated: &NegotiatedMedia) {
        let learned_opus =
            (negotiated.codec.codec == Codec::Opus).then_some(negotiated.codec.payload_type);
        let event_at = |clock: u32| {
            negotiated
                .telephone_event
                .filter(|e| e.clock_rate == clock)
                .map(|e| e.payload_type)
        };
        let fixed = [negotiated.codec.payload_type]
            .into_iter()
            .chain(negotiated.telephone_event.map(|e| e.payload_type));
        let mut taken: Vec<u8> = [0, 8, 9, 13, 18].into_iter().chain(fixed).collect();
        for (slot, learned) in [
            (&mut self.opus, learned_opus),
            (&mut self.events_8000, event_at(8000)),
            (&mut self.events_48000, event_at(48000)),
        ] {
            match learned {
                Some(pt) => *slot = pt,
                None if taken.contains(slot) => {
                    *slot = (96..=127).find(|pt| !taken.contains(pt)).unwrap_or(*slot);
                }
                None => {}
            }
            taken.push(*slot);
        }
    }
}

/// The `m=` proto of our first offer: `RTP/SAVP` only when SRTP is required; with SRTP merely
/// allowed, `RTP/AVP` plus crypto lines lets peers without SRTP answer too.
pub(crate) fn default_proto(policy: SrtpPolicy) -> &'static str {
    match policy {
        SrtpPolicy::Required => "RTP/SAVP",
        SrtpPolicy::Allowed | SrtpPolicy::Disabled => "RTP/AVP",
    }
}

/// The audio section we offer: every codec in our order, DTMF, crypto lines for every suite.
pub(crate) fn offer_audio(
    config: &MediaConfig,
    numbers: &PayloadNumbers,
    material: &[u8],
    direction: Direction,
    proto: &str,
    mki: Option<(u32, u8)>,
) -> MediaDescription {
    let mut media = MediaDescription::new("audio", config.rtp_port, proto, Vec::new());
    for local in &config.codecs {
        let c = local.codec;
        let pt = numbers.for_codec(c);
        media.formats.push(pt.to_string());
        push_format(
            &mut media.attributes,
            pt,
            c.encoding_name(),
            c.clock_rate(),
            c.channels(),
            local.fmtp.as_deref(),
        );
    }
    if config.telephone_event {
        let has_opus = config.codecs.iter().any(|l| l.codec == Codec::Opus);
        let mut events = vec![(numbers.events_8000, 8000)];
        if has_opus {
            events.push((numbers.events_48000, 48000));
        }
        for (pt, clock) in events {
            media.formats.push(pt.to_string());
            push_format(
                &mut media.attributes,
                pt,
                "telephone-event",
                clock,
                None,
                Some(TELEPHONE_EVENT_FMTP),
            );
        }
    }
    let attrs = &mut media.attributes;
    attrs.push(Attribute::new("ptime", config.ptime.to_string()));
    if config.rtcp_mux {
        attrs.push(Attribute::flag("rtcp-mux"));
    }
    if config.srtp != SrtpPolicy::Disabled {
        let suites = config
            .srtp_suites
            .iter()
            .filter_map(|&s| Some((s, local_key(material, s)?)))
            .take(SrtpSuite::OFFERED);
        for (tag, (suite, key)) in (1..).zip(suites) {
            // SIPx's AEAD (GCM) suites take no MKI: their lines go without one.
            let mki = mki.filter(|_| !suite.is_aead());
            attrs.push(crypto_line(tag, suite, key, mki));
        }
    }
    attrs.push(Attribute::flag(direction.as_str()));
    media
}

/// Reads the answer's audio section against the section we offered.
pub(crate) fn accept_answer(
    config: &MediaConfig,
    material: &[u8],
    offered: &MediaDescription,
    offered_direction: Direction,
    answer: &SessionDescription,
    media: &MediaDescription,
) -> Result<NegotiatedMedia, Rejection> {
    if media.is_disabled() {
        return Err(Rejection::NoAudio);
    }
    let mux = offered.rtcp_mux() && media.rtcp_mux();
    let remote = remote_stream(config, answer, media, mux)?;

    // The answered formats we offered, each codec once, in the answer's order: the first is
    // the one to send (RFC 3264 §7); the peer may send any of them (§5.1). The answer's
    // numbers are what the peer receives; ours, what it sends us.
    let ours = formats_of(offered);
    let mut answered: Vec<NegotiatedCodec> = Vec::new();
    for f in &remote.formats {
        let Some(local) = config.codecs.iter().find(|l| l.codec.matches(f)) else {
            continue;
        };
        let Some(offered_pt) = ours
            .iter()
            .find(|o| local.codec.matches(o))
            .map(|o| o.payload_type)
        else {
            continue;
        };
        if answered.iter().any(|c| c.codec == local.codec) {
            continue;
        }
        let mut codec = negotiated_codec(
            local.codec,
            f.payload_type,
            media.fmtp(f.payload_type),
            offered.fmtp(offered_pt),
        );
        codec.receive_payload_type = offered_pt;
        answered.push(codec);
    }
    if answered.is_empty() {
        return Err(Rejection::NoCommonCodec);
    }
    let codec = answered.remove(0);
    let also_received = answered;
    let telephone_event = select_telephone_event(config, &remote.formats, codec.clock_rate, media)
        .map(|mut event| {
            if let Some(ours) = ours
                .iter()
                .find(|o| o.is_telephone_event() && o.clock_rate == event.clock_rate)
            {
                event.receive_payload_type = ours.payload_type;
            }
            event
        });

    let offered_lines: Vec<CryptoAttr> = usable_cryptos(offered).collect();
    let accepted = usable_cryptos(media).find_map(|line| {
        let suite = line.suite()?;
        let ours = offered_lines
            .iter()
            .find(|o| o.tag == line.tag && o.suite() == Some(suite))?;
        Some((line, suite, ours.keys.first().and_then(|k| k.mki)))
    });
    let srtp = match accepted {
        Some((line, suite, mki)) => {
            let key = local_key(material, suite).ok_or(Rejection::NoCommonCryptoSuite)?;
            // We send with the MKI our own line declared (a re-offer repeating an answer we
            // gave to a key with an MKI has one), whatever the answer's key has.
            Some(srtp_params(&line, suite, key, mki).ok_or(Rejection::NoCommonCryptoSuite)?)
        }
        None if config.srtp == SrtpPolicy::Required => return Err(Rejection::SrtpRequired),
        None if remote.secure_profile => return Err(Rejection::NoCommonCryptoSuite),
        None => None,
    };

    Ok(NegotiatedMedia {
        remote_rtp: remote.rtp,
        remote_rtcp: remote.rtcp,
        telephone_event,
        codec,
        also_received,
        ptime: send_ptime(config, answer, media),
        direction: offered_direction.intersect(remote.direction.reversed()),
        srtp,
        proto: media.proto.clone(),
    })
}
