//! `MediaSession`: RFC 3264 offer/answer for the audio stream of one SIP call, sans-IO.
//!
//! The SIP layer decides *when* SDP goes out (INVITE, 200, ACK, re-INVITE, UPDATE); this struct
//! decides *what* it says and what the result means. It covers both roles and both kinds of
//! INVITE: an early offer (the INVITE carries SDP: `handle_offer`) and a late offer (it does
//! not: `create_offer` for the 200, `handle_answer` for the ACK).

use crate::attr::Direction;
use crate::config::{MediaConfig, SrtpPolicy};
use crate::error::SdpError;
use crate::model::{Connection, Line, MediaDescription, Origin, SessionDescription};
use crate::negotiate::{KEY_MATERIAL_LEN, answer_audio};
use crate::negotiated::{NegotiatedMedia, RtcpTarget};
use crate::offer::{PayloadNumbers, accept_answer, default_proto, offer_audio};
use crate::reject::Rejection;

/// The `o=` version of our first description.
const INITIAL_VERSION: u64 = 1;

/// Offer/answer state for one audio stream of one call.
pub struct MediaSession {
    config: MediaConfig,
    key_material: Vec<u8>,
    /// What we want: `sendrecv`, or a hold direction set by [`MediaSession::set_direction`].
    direction: Direction,
    numbers: PayloadNumbers,
    /// The last description we sent: its version is the base for the next one.
    last_sent: Option<SessionDescription>,
    /// Our offer awaiting an answer.
    pending: Option<PendingOffer>,
    /// Our offer last answered, with the payload numbers from before its answer, until the
    /// next exchange: a later answer to it may replace the first
    /// ([`MediaSession::replace_answer`]), and the first one's numbers with it.
    answered_offer: Option<(PendingOffer, PayloadNumbers)>,
    negotiated: Option<NegotiatedMedia>,
    layout: Option<Layout>,
    /// The session's `t=` (and `r=`, `z=`) lines: `t=0 0` until an offer says otherwise,
    /// then the offer's, which an answer must repeat (RFC 3264 §6: the time of a session is
    /// not negotiated) and our later offers keep.
    timing: Vec<Line>,
}

struct PendingOffer {
    sdp: SessionDescription,
    audio_index: usize,
    direction: Direction,
}

/// The `m=` sections as last agreed. A later offer must keep their number and order
/// (RFC 3264 §8), so sections we refused come back with port 0.
struct Layout {
    media: Vec<MediaDescription>,
    audio_index: usize,
    audio_proto: String,
}

impl MediaSession {
    /// A session for `config`. Unless SRTP is disabled, `key_material` must hold at least
    /// [`KEY_MATERIAL_LEN`] random bytes: they become our SRTP master keys (this crate has no
    /// random number generator).
    pub fn new(config: MediaConfig, key_material: &[u8]) -> Result<MediaSession, SdpError> {
        if config.codecs.is_empty() {
            return Err(SdpError::ApiMisuse("MediaConfig.codecs is empty"));
        }
        if config.srtp != SrtpPolicy::Disabled && key_material.len() < KEY_MATERIAL_LEN {
            return Err(SdpError::ApiMisuse(
                "SRTP key material shorter than KEY_MATERIAL_LEN",
            ));
        }
        Ok(MediaSession {
            config,
            key_material: key_material.to_vec(),
            direction: Direction::SendRecv,
            numbers: PayloadNumbers::default(),
            last_sent: None,
            pending: None,
            answered_offer: None,
            negotiated: None,
            layout: None,
            timing: vec![Line {
                kind: 't',
                value: "0 0".to_owned(),
            }],
        })
    }

    /// What we want the stream to do from now on: `SendOnly` (or `Inactive`) puts the peer on
    /// hold, `SendRecv` resumes. Takes effect in the next offer or answer we make.
    pub fn set_direction(&mut self, direction: Direction) {
        self.direction = direction;
    }

    /// The result of the last successful offer/answer exchange.
    pub fn negotiated(&self) -> Option<&NegotiatedMedia> {
        self.negotiated.as_ref()
    }

    /// True while our offer awaits its answer.
    pub fn offer_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// Our offer: for an INVITE, a re-INVITE or UPDATE, or the 200 answering an INVITE without
    /// SDP (late offer, answered in the ACK). A re-offer keeps the `m=` sections of the session
    /// and bumps the `o=` version only when something changed.
    pub fn create_offer(&mut self) -> Result<SessionDescription, SdpError> {
        if self.pending.is_some() {
            return Err(SdpError::ApiMisuse("an offer is already outstanding"));
        }
        self.answered_offer = None;
        let proto = match &self.layout {
            Some(layout) => layout.audio_proto.clone(),
            None => default_proto(self.config.srtp).to_owned(),
        };
        // An MKI our packets already carry stays: a re-offer that dropped it would make the
        // peer read our packets' last bytes as one.
        let mki = self
            .negotiated
            .as_ref()
            .and_then(|n| n.srtp.as_ref())
            .and_then(|srtp| srtp.local.mki);
        let audio = offer_audio(
            &self.config,
            &self.numbers,
            &self.key_material,
            self.direction,
            &proto,
            mki,
        );
        let (media, audio_index) = match &self.layout {
            Some(layout) => {
                let mut media = layout.media.clone();
                match media.get_mut(layout.audio_index) {
                    Some(slot) => *slot = audio,
                    None => media.push(audio),
                }
                let index = layout.audio_index.min(media.len() - 1);
                (media, index)
            }
            None => (vec![audio], 0),
        };
        let sdp = self.stamp(media);
        self.pending = Some(PendingOffer {
            sdp: sdp.clone(),
            audio_index,
            direction: self.direction,
        });
        Ok(sdp)
    }

    /// Our offer in a session refresh (a re-INVITE for RFC 4028): the description we last
    /// sent, unchanged and with its `o=` version (RFC 3264 §8), so the refresh proposes
    /// nothing the peer has not agreed to (a full offer could make it switch codec). A full
    /// offer when nothing was sent yet, or when we have since asked for a hold it does not say.
    pub fn create_refresh_offer(&mut self) -> Result<SessionDescription, SdpError> {
        if self.pending.is_some() {
            return Err(SdpError::ApiMisuse("an offer is already outstanding"));
        }
        let last = match (&self.last_sent, &self.layout) {
            (Some(last), Some(layout)) => last
                .media
                .get(layout.audio_index)
                .map(|audio| (last.clone(), layout.audio_index, last.direction_for(audio))),
            _ => None,
        };
        match last {
            Some((sdp, audio_index, direction))
                if self.direction == Direction::SendRecv || self.direction == direction =>
            {
                self.answered_offer = None;
                self.pending = Some(PendingOffer {
                    sdp: sdp.clone(),
                    audio_index,
                    direction,
                });
                Ok(sdp)
            }
            _ => self.create_offer(),
        }
    }

    /// Our offer was refused (488, 491, a timeout…) or withdrawn: forget it and keep the
    /// previous negotiation, as RFC 3264 §8 requires.
    pub fn rollback_offer(&mut self) {
        self.pending = None;
    }

    /// The answer to our offer (in a 200, or in the ACK for a late offer). On success the
    /// result replaces the previous negotiation; on failure the exchange is over all the same,
    /// the previous negotiation stays, and the call should be re-offered or ended.
    pub fn handle_answer(
        &mut self,
        answer: &SessionDescription,
    ) -> Result<NegotiatedMedia, SdpError> {
        let taken = self.handle_early_answer(answer);
        // A final answer ends the exchange, taken or not.
        self.pending = None;
        taken
    }

    /// An answer in a provisional response (a 183 without reliable provisionals): taken as
    /// [`MediaSession::handle_answer`] takes one when it is usable; when it is not, our offer
    /// stays outstanding, since the 2xx brings the answer that counts (RFC 3261 §13.2.1).
    pub fn handle_early_answer(
        &mut self,
        answer: &SessionDescription,
    ) -> Result<NegotiatedMedia, SdpError> {
        let pending = self.pending.as_ref().ok_or(SdpError::ApiMisuse(
            "an answer arrived with no offer outstanding",
        ))?;
        let negotiated = self.read_answer(pending, answer)?;
        if let Some(pending) = self.pending.take() {
            self.settle(pending, &negotiated);
        }
        Ok(negotiated)
    }

    /// What `answer` makes of our offer `pending`.
    fn read_answer(
        &self,
        pending: &PendingOffer,
        answer: &SessionDescription,
    ) -> Result<NegotiatedMedia, SdpError> {
        let offered = pending
            .sdp
            .media
            .get(pending.audio_index)
            .ok_or(SdpError::ApiMisuse("offer without its audio section"))?;
        let media = answer
            .media
            .get(pending.audio_index)
            .ok_or(Rejection::NoAudio)?;
        Ok(accept_answer(
            &self.config,
            &self.key_material,
            offered,
            pending.direction,
            answer,
            media,
        )?)
    }

    /// Makes `negotiated`, the answer to `pending`, the session's.
    fn settle(&mut self, pending: PendingOffer, negotiated: &NegotiatedMedia) {
        if let Some(offered) = pending.sdp.media.get(pending.audio_index) {
            self.layout = Some(Layout {
                media: pending.sdp.media.iter().map(disabled_copy).collect(),
                audio_index: pending.audio_index,
                audio_proto: offered.proto.clone(),
            });
        }
        let before = self.numbers.clone();
        self.agree(negotiated);
        self.answered_offer = Some((pending, before));
    }

    /// Another answer to the offer last answered, which replaces the first: the 2xx of an
    /// INVITE whose 183 carried an early answer, when it brings a different one (another fork
    /// answered, RFC 3261 §13.2.2.4, or the phone changed its mind). As with
    /// [`MediaSession::handle_answer`], on failure the previous negotiation stays.
    pub fn replace_answer(
        &mut self,
        answer: &SessionDescription,
    ) -> Result<NegotiatedMedia, SdpError> {
        if self.pending.is_some() {
            return Err(SdpError::ApiMisuse("an offer is outstanding"));
        }
        let (offer, before) = self.answered_offer.take().ok_or(SdpError::ApiMisuse(
            "no answered offer to take another answer to",
        ))?;
        let negotiated = self.read_answer(&offer, answer)?;
        // The numbers the first answer taught us were that fork's, not this dialog's.
        self.numbers = before;
        self.settle(offer, &negotiated);
        Ok(negotiated)
    }

    /// An offer from the peer (initial or re-offer). Returns our answer, or why we refuse:
    /// then answer the request with [`Rejection::status`] and a `Warning` header from
    /// [`Rejection::warning`]; the previous negotiation, if any, stays in force.
    pub fn handle_offer(
        &mut self,
        offer: &SessionDescription,
    ) -> Result<SessionDescription, Rejection> {
        if self.pending.is_some() {
            return Err(Rejection::Glare);
        }
        self.answered_offer = None;
        if let Some(answer) = self.accept_audio_removal(offer) {
            return Ok(answer);
        }
        let mut first_error = None;
        let mut chosen = None;
        for (index, media) in offer.media.iter().enumerate() {
            if !media.is_audio() || media.is_disabled() {
                continue;
            }
            match answer_audio(
                &self.config,
                &self.key_material,
                self.direction,
                offer,
                media,
            ) {
                Ok(result) => {
                    chosen = Some((index, result));
                    break;
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        let Some((audio_index, (audio, negotiated))) = chosen else {
            return Err(first_error.unwrap_or(Rejection::NoAudio));
        };
        let layout: Vec<MediaDescription> = offer.media.iter().map(disabled_copy).collect();
        let mut media = layout.clone();
        media[audio_index] = audio;
        if offer.timing.iter().any(|line| line.kind == 't') {
            self.timing.clone_from(&offer.timing);
        }
        let answer = self.stamp(media);
        self.layout = Some(Layout {
            media: layout,
            audio_index,
            audio_proto: negotiated.proto.clone(),
        });
        self.agree(&negotiated);
        Ok(answer)
    }

    /// A re-offer that sets every audio stream's port to 0 removes the audio (RFC 3264 §8.2,
    /// some PBXes before a transfer): it must be answered with port 0 too, not refused, and
    /// the call stays up with no media either way (`inactive`, so that silence does not end
    /// it) until an offer brings a stream back. `None` when the offer is not that.
    fn accept_audio_removal(&mut self, offer: &SessionDescription) -> Option<SessionDescription> {
        let mut audio = offer.media.iter().filter(|m| m.is_audio()).peekable();
        audio.peek()?;
        if !audio.all(|m| m.is_disabled()) {
            return None;
        }
        let mut removed = self.negotiated.clone()?;
        removed.direction = Direction::Inactive;
        // Nor RTCP: the peer has closed its ports (port 0 is "send nothing" to a leg).
        removed.remote_rtp.set_port(0);
        if let RtcpTarget::Separate(rtcp) = &mut removed.remote_rtcp {
            rtcp.set_port(0);
        }
        let media: Vec<MediaDescription> = offer.media.iter().map(disabled_copy).collect();
        let audio_index = self
            .layout
            .as_ref()
            .map_or(0, |layout| layout.audio_index)
            .min(media.len().saturating_sub(1));
        let answer = self.stamp(media.clone());
        self.layout = Some(Layout {
            media,
            audio_index,
            audio_proto: removed.proto.clone(),
        });
        self.agree(&removed);
        Some(answer)
    }

    fn agree(&mut self, negotiated: &NegotiatedMedia) {
        self.numbers.learn(negotiated);
        self.negotiated = Some(negotiated.clone());
    }

    /// A full description around `media`, with the `o=` version RFC 3264 §8 asks for: the
    /// previous one if nothing changed, one more otherwise.
    fn stamp(&mut self, media: Vec<MediaDescription>) -> SessionDescription {
        let address = self.config.address;
        let mut sdp = SessionDescription {
            origin: Origin {
                username: self.config.username.clone(),
                session_id: self.config.session_id,
                session_version: INITIAL_VERSION,
                net_type: "IN".to_owned(),
                addr_type: crate::model::addr_type_of(address).to_owned(),
                address: address.to_string(),
            },
            session_name: "sipx".to_owned(),
            info: Vec::new(),
            connection: Some(Connection::for_ip(address)),
            bandwidths: Vec::new(),
            timing: self.timing.clone(),
            other: Vec::new(),
            attributes: Vec::new(),
            media,
        };
        if let Some(last) = &self.last_sent {
            sdp.origin.session_version = last.origin.session_version;
            if sdp != *last {
                sdp.origin.session_version = last.origin.session_version.wrapping_add(1);
            }
        }
        self.last_sent = Some(sdp.clone());
        sdp
    }
}

impl std::fmt::Debug for MediaSession {
    // Only what explains the state: key material and our SDPs (which carry it) stay out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaSession")
            .field("direction", &self.direction)
            .field("offer_pending", &self.pending.is_some())
            .field("negotiated", &self.negotiated)
            .finish_non_exhaustive()
    }
}

/// A refused copy of a section (RFC 3264 §6: port 0, same media, proto and formats).
fn disabled_copy(media: &MediaDescription) -> MediaDescription {
    MediaDescription::new(&media.kind, 0, &media.proto, media.formats.clone())
}
