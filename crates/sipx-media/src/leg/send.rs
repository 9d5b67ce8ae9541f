//! The send path: resample to the encoder's rate if needed, gather `ptime` of PCM, encode,
//! packetise with our SSRC, sequence and timestamps; RFC 4733 key presses on their own 20 ms
//! timer, in the same sequence space, with audio held back meanwhile; for a peer without
//! telephone-event, key presses as tones in place of the audio (`DtmfTones`).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use sipx_codec::{AudioEncoder, CodecKind, EncoderOptions};

use super::SharedFormat;
use super::transmit::{Channel, TransmitQueue};
use super::{Counters, DTMF_QUEUE, DTMF_TICK, MediaLeg};
use crate::dtmf::DtmfDigit;
use crate::ids::{Pt, Ssrc};
use crate::rtp::RtpHeader;
use crate::session::RtcpSession;
use crate::silence::DtxSkip;

/// RFC 4733 volume of the key presses we send, in -dBm0.
const DTMF_VOLUME: u8 = 10;
/// A paced packet due this close to now leaves now: not worth a wake-up of its own.
const PACE_SLACK: Duration = Duration::from_millis(2);

impl MediaLeg {
    /// 20 ms of audio at the frame rate to send. Encodes and sends a packet whenever `ptime`
    /// of audio has gathered. Nothing is sent while `send` is false or a key press is being
    /// sent, but the RTP clock runs on; key presses sent as tones replace the audio. A frame
    /// of the wrong length is ignored.
    pub fn push_frame(&mut self, now: Instant, pcm: &[i16]) {
        self.clock = self.clock.max(now);
        if pcm.len() != self.frame.len() {
            return;
        }
        if self.tones.is_active() {
            self.push_tones(now);
        } else {
            self.encode_frame(now, pcm);
        }
    }

    /// The next frame of key-press tones, encoded by this leg in place of the audio.
    fn push_tones(&mut self, now: Instant) {
        let mut frame = std::mem::take(&mut self.tone_frame);
        self.tones.fill(&mut frame);
        self.encode_frame(now, &frame);
        self.tone_frame = frame;
    }

    fn encode_frame(&mut self, now: Instant, pcm: &[i16]) {
        let frame_at_codec = self.encode_rate as usize / 50;
        if !self.sending() {
            self.skip_samples(frame_at_codec + self.pending.len());
            self.pending.clear();
            self.marker_next = true;
            return;
        }
        match self.downsampler.as_mut() {
            Some(down) => {
                let n = down.process(pcm, &mut self.packet_pcm);
                self.pending.push(&self.packet_pcm[..n]);
            }
            None => self.pending.push(pcm),
        }
        let packet_samples = self.packet_samples();
        let paced = packet_samples != frame_at_codec;
        let dtx = self.cfg.codec == CodecKind::Opus && self.cfg.opus.dtx;
        while self.pending.len() >= packet_samples {
            let pcm = &mut self.packet_pcm[..packet_samples];
            self.pending.pop_into(pcm);
            // A DTX peer is sent nothing for digital silence: its decoder makes the same
            // silence, and the encoder's work is saved (`crate::silence`).
            let (encoder, payload) = (&mut self.encoder, &mut self.payload);
            let encoded = self
                .dtx_skip
                .encode(dtx, pcm, |pcm| encoder.encode(pcm, payload));
            match encoded {
                // Zero bytes: discontinuous transmission; the next packet starts a talkspurt.
                Ok(0) => self.marker_next = true,
                Ok(len) => {
                    let due = paced.then(|| self.pace(now, packet_samples)).flatten();
                    self.send_audio(now, due, len);
                }
                Err(_) => self.counters.transmit_dropped += 1,
            }
            self.skip_samples(packet_samples);
        }
    }

    /// An already encoded 20 ms payload of this leg's codec (a room encodes once for all legs
    /// with the same [`SharedFormat`]); sent as one packet whatever `ptime` says. An empty
    /// payload is discontinuous transmission: nothing is sent and the next packet starts a
    /// talkspurt.
    pub fn push_payload(&mut self, now: Instant, payload: &[u8]) {
        self.clock = self.clock.max(now);
        if self.tones.is_active() {
            // Key-press tones replace the room's audio: this leg encodes them itself.
            self.push_tones(now);
            return;
        }
        let frame_at_codec = self.encode_rate as usize / 50;
        if payload.is_empty() {
            self.marker_next = true;
        } else if self.sending() && payload.len() <= self.payload.len() {
            // Speech from the room's encoder: this leg's own has not coded the way into the
            // next pause (`DtxSkip`).
            self.dtx_skip = DtxSkip::default();
            self.payload[..payload.len()].copy_from_slice(payload);
            self.send_audio(now, None, payload.len());
        }
        self.skip_samples(frame_at_codec);
    }

    /// How this leg encodes a 20 ms frame into one packet, when another leg's encoding of the
    /// same frame would do as well: G.711 (no state: the bytes are the same) or Opus (where the
    /// saving matters; a listener moving between a shared encoder and its own gives the phone's
    /// decoder one frame from another encoder's state), one packet per frame at the frame rate,
    /// nothing pending. `None`: the leg encodes its frames itself ([`MediaLeg::push_frame`]).
    pub fn shared_format(&self) -> Option<SharedFormat> {
        let shareable = matches!(
            self.cfg.codec,
            CodecKind::Pcmu | CodecKind::Pcma | CodecKind::Opus
        );
        let one_frame = self.encode_rate as usize / 50;
        (shareable
            && self.encode_rate == self.cfg.frame_rate
            && self.packet_samples() == one_frame
            && self.pending.len() == 0)
            .then(|| SharedFormat {
                codec: self.cfg.codec,
                rate: self.encode_rate,
                options: match self.cfg.codec {
                    CodecKind::Opus => self.cfg.opus.clone(),
                    _ => EncoderOptions::default(),
                },
            })
    }

    /// Sends a key press: as RFC 4733 events when the peer negotiated telephone-event,
    /// otherwise as its two tones in the audio (a flash, which has no tones, is then dropped).
    /// Presses queue behind one another (up to 16); audio pauses while they play. Returns
    /// whether the press was queued.
    pub fn send_dtmf(
        &mut self,
        now: Instant,
        digit: DtmfDigit,
        duration: std::time::Duration,
    ) -> bool {
        // Tones for a peer without telephone-event, or one whose events leave this key out
        // (`0-11`: no A-D). Flash has no tones; it stays an event.
        let code = digit.event_code();
        let taken = code > 15 || self.cfg.telephone_event_keys & (1 << code) != 0;
        if self.dtmf_tx.is_none() || !taken {
            return self.tones.push(digit, duration);
        }
        if self.dtmf_queue.len() == DTMF_QUEUE {
            return false;
        }
        self.dtmf_queue.push_back((digit, duration));
        if self.next_dtmf.is_none() {
            self.start_next_dtmf(now);
        }
        true
    }

    /// Sends the telephone-event packets due at `now`.
    pub(super) fn send_due_dtmf(&mut self, now: Instant) {
        while let Some(due) = self.next_dtmf.filter(|&t| t <= now) {
            let packet = self.dtmf_tx.as_mut().and_then(|tx| tx.poll_packet());
            let Some(packet) = packet else {
                // The event is over: audio resumes as a new talkspurt after it, never on its
                // timestamps. The RTP clock ran on meanwhile (`encode_frame` skips the audio
                // not sent), so this only moves it when the event outlasted the ticks.
                if let Some(end) = self.dtmf_end.take()
                    && (end.wrapping_sub(self.ts) as i32) > 0
                {
                    self.ts = end;
                }
                self.next_dtmf = None;
                self.marker_next = true;
                self.start_next_dtmf(due);
                continue;
            };
            if self.cfg.send
                && let Some((pt, event_clock)) = self.cfg.telephone_event
            {
                let header = self.header(Pt(pt), packet.marker, packet.timestamp);
                let (transmit, rtcp) = (&mut self.transmit, &mut self.rtcp);
                queue_rtp(
                    transmit,
                    rtcp,
                    &mut self.counters,
                    (now, None),
                    header,
                    &packet.payload,
                );
                // Where the event ends on the RTP clock, applied once it is over: moved here,
                // the clock would count the first packet's duration and the tick's frame both
                // (20 ms ahead of real time after every key).
                // It counts the events' clock, which may not be the audio's
                // (telephone-event/16000 beside G.722's 8 kHz RTP clock, /8000 beside Opus):
                // the audio goes on where the press ends in real time.
                let duration = u16::from_be_bytes([packet.payload[2], packet.payload[3]]);
                let units = packet.timestamp.wrapping_sub(self.dtmf_start) + u32::from(duration);
                let ticks = u64::from(units) * u64::from(self.cfg.codec.rtp_clock_rate())
                    / u64::from(event_clock.max(1));
                self.dtmf_end = Some(self.dtmf_start.wrapping_add(ticks as u32));
            }
            self.next_dtmf = Some(due + DTMF_TICK);
        }
    }

    /// Ends the key press being sent at once, its end packets queued now (RFC 4733
    /// §2.5.1.4: without them the peer holds the key down until its own timeout), and hands
    /// back the presses still waiting. For a change of media settings, which starts the
    /// sender afresh.
    pub(super) fn end_dtmf_now(&mut self, now: Instant) -> VecDeque<(DtmfDigit, Duration)> {
        let waiting = std::mem::take(&mut self.dtmf_queue);
        if let Some(tx) = self.dtmf_tx.as_mut() {
            tx.end_now();
        }
        // Three end packets, then the event is over: bounded, whatever the sender's state.
        for _ in 0..8 {
            if self.next_dtmf.is_none() {
                break;
            }
            self.next_dtmf = Some(now);
            self.send_due_dtmf(now);
        }
        waiting
    }

    fn start_next_dtmf(&mut self, now: Instant) {
        let Some((digit, duration)) = self.dtmf_queue.pop_front() else {
            return;
        };
        let Some(tx) = self.dtmf_tx.as_mut() else {
            return;
        };
        if tx.start(digit, duration, DTMF_VOLUME, self.ts).is_ok() {
            self.dtmf_start = self.ts;
            self.next_dtmf = Some(now);
            self.send_due_dtmf(now);
        }
    }

    fn sending(&self) -> bool {
        self.cfg.send && self.next_dtmf.is_none()
    }

    /// Samples per packet at the encoder's rate: `ptime`, except Opus: 20 ms, or 10 ms for a
    /// peer that asks for less than 20 (`a=maxptime:10` is a limit, RFC 8866 §6.5). Opus
    /// frames longer than 20 ms save bandwidth, not work, and `ptime` above 20 is only a wish.
    fn packet_samples(&self) -> usize {
        let ms = match self.cfg.codec {
            CodecKind::Opus if self.cfg.ptime_ms < 20 => 10,
            CodecKind::Opus => 20,
            CodecKind::G729 => self.cfg.ptime_ms / 10 * 10,
            _ => self.cfg.ptime_ms,
        };
        self.encode_rate as usize * ms as usize / 1000
    }

    /// Lets the RTP clock run over audio not sent (hold, DTMF, DTX), and marks the next packet
    /// as a talkspurt start if any was skipped.
    fn skip_samples(&mut self, samples: usize) {
        let ticks = self.cfg.codec.rtp_ticks(samples, self.encode_rate);
        self.ts = self.ts.wrapping_add(ticks);
    }

    /// Queues `self.payload[..len]` as the next audio packet, to leave at `due` if it must
    /// wait.
    fn send_audio(&mut self, now: Instant, due: Option<Instant>, len: usize) {
        let header = self.header(Pt(self.cfg.payload_type), self.marker_next, self.ts);
        self.marker_next = false;
        queue_rtp(
            &mut self.transmit,
            &mut self.rtcp,
            &mut self.counters,
            (now, due),
            header,
            &self.payload[..len],
        );
    }

    /// When a packet of `samples` (a packet time other than the 20 ms tick: 10, 30 ms...)
    /// should leave: one packet time after the last, so they go evenly spaced rather than
    /// two at once on a tick or 20 and 40 ms apart in turn (a peer's jitter buffer sees that
    /// as jitter), but never later than one packet time from now, nor before now. `None`:
    /// now, or within [`PACE_SLACK`] of it.
    fn pace(&mut self, now: Instant, samples: usize) -> Option<Instant> {
        let ptime = Duration::from_micros(samples as u64 * 1_000_000 / u64::from(self.encode_rate));
        let at = self
            .last_paced
            .map_or(now, |last| (last + ptime).max(now))
            .min(now + ptime);
        self.last_paced = Some(at);
        (at > now + PACE_SLACK).then_some(at)
    }

    /// Our next header; takes a sequence number.
    fn header(&mut self, pt: Pt, marker: bool, timestamp: u32) -> RtpHeader {
        let seq = self.seq;
        self.seq = self.seq.wrapping_add(1);
        RtpHeader {
            marker,
            pt,
            seq,
            timestamp,
            ssrc: Ssrc(self.cfg.local_ssrc),
        }
    }
}

/// Queues one RTP packet made at `now`, to leave at `due` if it must wait, and counts it as
/// sent (or dropped). Takes the fields it needs, so a payload borrowed from the leg's own
/// buffer can be passed.
fn queue_rtp(
    transmit: &mut TransmitQueue,
    rtcp: &mut RtcpSession,
    counters: &mut Counters,
    (now, due): (Instant, Option<Instant>),
    header: RtpHeader,
    payload: &[u8],
) {
    if transmit.push_at(Channel::Rtp, due, |buf| header.write_packet(payload, buf)) {
        rtcp.on_rtp_sent(now, &header, payload.len());
    } else {
        counters.transmit_dropped += 1;
    }
}
