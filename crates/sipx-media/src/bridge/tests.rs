//! The bridge with real Opus packets: participants ("browsers") encode tones at 48 kHz as a
//! browser would, the listener decodes and mixes them at the phone's rate in simulated time,
//! and what comes out is checked for the tones (Goertzel) and for what must not be there.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use sipx_codec::opus::{OpusDecoder, OpusEncoder};
use sipx_codec::tone::{Sine, goertzel_power, mean_power, tone_snr_db};
use sipx_codec::{AudioDecoder, AudioEncoder, EncoderOptions};

use super::*;
use crate::jitter::JitterConfig;

const TICK: Duration = Duration::from_millis(20);

/// How a participant encodes.
enum Voice {
    /// A browser: 48 kHz, 32 kbit/s (hybrid or CELT mode; libopus drops the FEC at this rate
    /// once it goes fullband).
    Browser(OpusEncoder),
    /// Another phone in the room: its own bridge's speaker (SILK, with FEC).
    Phone(RoomSpeaker),
}

/// A participant of the room sending a tone as 20 ms Opus packets.
struct Talker {
    key: u64,
    sine: Sine,
    voice: Voice,
    pcm: Vec<i16>,
    buf: Vec<u8>,
    seq: u64,
}

/// One packet as the rooms thread hands it over.
#[derive(Clone)]
struct Packet {
    key: u64,
    seq: u64,
    rtp_time: u64,
    payload: Vec<u8>,
}

impl Talker {
    fn new(key: u64, frequency: f64, amplitude: f64) -> Talker {
        let options = EncoderOptions::default().bitrate(32_000);
        Talker {
            key,
            sine: Sine::new(frequency, 48_000, amplitude),
            voice: Voice::Browser(OpusEncoder::new(48_000, &options).unwrap()),
            pcm: vec![0; 960],
            buf: vec![0; MAX_PAYLOAD],
            // Far from zero: extension across the 16-bit wrap is the jitter buffer's job.
            seq: 65_530,
        }
    }

    fn phone(key: u64, frequency: f64, amplitude: f64) -> Talker {
        Talker {
            sine: Sine::new(frequency, 16_000, amplitude),
            voice: Voice::Phone(RoomSpeaker::new(16_000).unwrap()),
            pcm: vec![0; 320],
            ..Talker::new(key, frequency, amplitude)
        }
    }

    fn next(&mut self) -> Packet {
        self.sine.fill(&mut self.pcm);
        let (seq, rtp_time, payload) = match &mut self.voice {
            Voice::Browser(encoder) => {
                let n = encoder.encode(&self.pcm, &mut self.buf).unwrap();
                let seq = self.seq;
                self.seq += 1;
                let time = 7_000_000 + (seq - 65_530) * FRAME_TICKS;
                (seq, time, self.buf[..n].to_vec())
            }
            Voice::Phone(speaker) => {
                let p = speaker.encode(&self.pcm).unwrap();
                (p.seq, p.rtp_time, p.payload.to_vec())
            }
        };
        Packet {
            key: self.key,
            seq,
            rtp_time,
            payload,
        }
    }
}

/// The listener in simulated time, with everything it played.
struct Phone {
    t0: Instant,
    listener: RoomListener,
    rate: u32,
    heard: Vec<i16>,
    /// Sources with audio, per tick.
    counts: Vec<usize>,
}

impl Phone {
    fn new(rate: u32) -> Phone {
        Phone {
            t0: Instant::now(),
            listener: RoomListener::new(rate, &JitterConfig::default()).unwrap(),
            rate,
            heard: Vec::new(),
            counts: Vec::new(),
        }
    }

    fn now(&self, tick: usize) -> Instant {
        self.t0 + TICK * tick as u32
    }

    /// Tick `k`: the packets arrive, then the frame is mixed.
    fn tick(&mut self, k: usize, packets: &[Packet]) {
        let now = self.now(k);
        for p in packets {
            self.listener
                .handle_packet(now, p.key, p.seq, p.rtp_time, &p.payload);
        }
        let mut out = vec![0i16; self.listener.frame_samples()];
        let count = self.listener.mix(now, &mut out).unwrap();
        self.heard.extend_from_slice(&out);
        self.counts.push(count);
    }

    /// The last `seconds` heard.
    fn last(&self, seconds: f64) -> &[i16] {
        let n = (f64::from(self.rate) * seconds) as usize;
        &self.heard[self.heard.len() - n..]
    }

    fn power(&self, seconds: f64, frequency: f64) -> f64 {
        goertzel_power(self.last(seconds), frequency, self.rate)
    }
}

/// Runs `ticks` ticks in which every talker sends one packet.
fn talk(phone: &mut Phone, talkers: &mut [Talker], ticks: std::ops::Range<usize>) {
    for k in ticks {
        let packets: Vec<_> = talkers.iter_mut().map(Talker::next).collect();
        phone.tick(k, &packets);
    }
}

/// Mean power of a sine of peak `amplitude`.
fn sine_power(amplitude: f64) -> f64 {
    amplitude * amplitude / 2.0
}

/// Two seconds of two browsers at 16 kHz: 440 and 1000 Hz at the same `amplitude`.
fn duet(amplitude: f64) -> Phone {
    let mut phone = Phone::new(16_000);
    let mut talkers = [
        Talker::new(1, 440.0, amplitude),
        Talker::new(2, 1000.0, amplitude),
    ];
    talk(&mut phone, &mut talkers, 0..100);
    phone
}

#[test]
fn two_sources_are_both_heard() {
    let phone = duet(8000.0);
    let expected = sine_power(8000.0);
    for f in [440.0, 1000.0] {
        let p = phone.power(1.0, f);
        assert!(p > 0.6 * expected && p < 1.5 * expected, "{f} Hz: {p}");
    }
    // Nothing but the two tones: the sum is clean.
    let rest = mean_power(phone.last(1.0)) - phone.power(1.0, 440.0) - phone.power(1.0, 1000.0);
    assert!(rest < 0.03 * expected, "rest {rest}");
    assert_eq!(phone.counts.last(), Some(&2));
    assert_eq!(phone.listener.stats().sources, 2);
}

/// What a plain decoder makes of the talker's packets, in order.
fn reference(packets: &[Packet], rate: u32) -> Vec<i16> {
    let mut decoder = OpusDecoder::new(rate).unwrap();
    let mut out = vec![0i16; rate as usize / 50];
    let mut all = Vec::new();
    for p in packets {
        let n = decoder.decode(&p.payload, &mut out).unwrap();
        all.extend_from_slice(&out[..n]);
    }
    all
}

/// The tick from which the phone played exactly `reference`, if it did.
fn played_untouched(phone: &Phone, reference: &[i16]) -> Option<usize> {
    let frame = phone.rate as usize / 50;
    let frames = reference.len() / frame;
    (0..phone.counts.len()).find(|&start| {
        let from = start * frame;
        let to = from + (frames - 10) * frame;
        phone.heard.len() >= to && phone.heard[from..to] == reference[..to - from]
    })
}

#[test]
fn one_source_passes_untouched() {
    let mut phone = Phone::new(8000);
    // At full scale: any arithmetic or limiting on the way would change it.
    let mut talker = Talker::new(5, 440.0, 32_700.0);
    let packets: Vec<_> = (0..100).map(|_| talker.next()).collect();
    for (k, p) in packets.iter().enumerate() {
        phone.tick(k, std::slice::from_ref(p));
    }
    // Sample for sample what the decoder gives, from the tick playout began.
    let start = played_untouched(&phone, &reference(&packets, 8000));
    assert!(start.is_some_and(|s| s <= 4), "{start:?}");
    assert!(tone_snr_db(phone.last(1.0), 440.0, 8000) > 20.0);
    let p = phone.power(1.0, 440.0);
    assert!((p / sine_power(32_700.0) - 1.0).abs() < 0.25, "{p}");
    // Peaks a limiter would have taken down.
    let peak = phone.heard.iter().map(|s| s.unsigned_abs()).max().unwrap();
    assert!(peak > 32_000, "peak {peak}");
    assert_eq!(phone.listener.stats().concealed, 0);
}

#[test]
fn reordered_packets_play_in_order() {
    let mut phone = Phone::new(16_000);
    let mut talker = Talker::new(3, 440.0, 8000.0);
    let packets: Vec<_> = (0..150).map(|_| talker.next()).collect();
    // Every fourth packet is overtaken by the next one: it arrives 20 ms late, behind it.
    for k in 0..packets.len() {
        let arriving: Vec<Packet> = match k % 4 {
            1 => vec![],
            2 => vec![packets[k].clone(), packets[k - 1].clone()],
            _ => vec![packets[k].clone()],
        };
        phone.tick(k, &arriving);
    }
    let stats = phone.listener.stats();
    assert_eq!((stats.late, stats.concealed), (0, 0), "{stats:?}");
    let start = played_untouched(&phone, &reference(&packets, 16_000));
    assert!(
        start.is_some(),
        "the reordered stream did not play as decoded in order"
    );
}

/// Plays a tone with one packet in ten lost (and once two in a row); returns the power of each
/// frame from the first with audio on, relative to the tone's, in dB, and the phone.
fn lossy(mut talker: Talker, amplitude: f64) -> (Vec<f64>, Phone) {
    let mut phone = Phone::new(8000);
    let mut lost = 0;
    for k in 0..150 {
        let p = talker.next();
        if k % 10 == 5 || k == 71 {
            lost += 1;
            phone.tick(k, &[]);
        } else {
            phone.tick(k, &[p]);
        }
    }
    let stats = phone.listener.stats();
    assert!(stats.concealed >= lost, "{stats:?}, {lost} lost");
    let first = phone.counts.iter().position(|&c| c > 0).unwrap();
    let levels = phone
        .heard
        .chunks(160)
        .skip(first + 1)
        .map(|frame| 10.0 * (mean_power(frame) / sine_power(amplitude)).log10())
        .collect();
    (levels, phone)
}

#[test]
fn lost_packets_are_concealed_without_gaps() {
    for talker in [
        Talker::phone(9, 440.0, 10_000.0),
        Talker::new(9, 440.0, 10_000.0),
    ] {
        let (levels, phone) = lossy(talker, 10_000.0);
        // Opus's concealment fades a little (and so does its next frame, as libopus does),
        // but never to silence.
        for (i, db) in levels.iter().enumerate() {
            assert!(*db > -15.0 && *db < 2.0, "frame {i}: {db:.1} dB");
        }
        // The tone carries on through it all.
        assert!(phone.power(2.0, 440.0) > 0.6 * sine_power(10_000.0));
    }
    // Once its listeners report loss, a phone's packets carry FEC (SILK's LBRR) while
    // libopus's voice detector takes the tone for speech, about the first 600 ms of a steady
    // one: those losses are rebuilt from the next packet at full level, where concealment
    // alone loses 4 to 12 dB (as it does before any loss is reported).
    let mut protected = Talker::phone(9, 440.0, 10_000.0);
    if let Voice::Phone(speaker) = &mut protected.voice {
        speaker.set_expected_loss(10).unwrap();
    }
    let (levels, _) = lossy(protected, 10_000.0);
    let first = levels.iter().position(|db| db.abs() > 1.0);
    assert!(first.is_none_or(|i| i > 25), "{levels:?}");
    let (levels, _) = lossy(Talker::phone(9, 440.0, 10_000.0), 10_000.0);
    let first = levels.iter().position(|db| db.abs() > 1.0);
    assert!(first.is_some_and(|i| i < 25), "{levels:?}");
}

#[test]
fn departed_and_idle_sources_are_dropped() {
    let mut phone = Phone::new(16_000);
    let mut a = Talker::new(1, 440.0, 8000.0);
    let mut b = Talker::new(2, 1000.0, 8000.0);
    for k in 0..50 {
        phone.tick(k, &[a.next(), b.next()]);
    }
    assert_eq!(phone.listener.stats().sources, 2);
    // A leaves: the rooms thread says so and forwards no more of it.
    phone.listener.forget(1);
    assert_eq!(phone.listener.stats().sources, 1);
    for k in 50..100 {
        phone.tick(k, &[b.next()]);
    }
    assert!(phone.power(0.5, 440.0) < 0.001 * sine_power(8000.0));
    assert!(phone.power(0.5, 1000.0) > 0.6 * sine_power(8000.0));
    // B goes quiet without a word: still held for two seconds, then dropped.
    for k in 100..200 {
        phone.tick(k, &[]);
    }
    assert_eq!(phone.listener.stats().sources, 1);
    for k in 200..203 {
        phone.tick(k, &[]);
    }
    let stats = phone.listener.stats();
    assert_eq!((stats.sources, stats.expired), (0, 1), "{stats:?}");
    assert_eq!(phone.counts.last(), Some(&0));
    assert!(phone.last(0.02).iter().all(|&s| s == 0));
}

#[test]
fn two_loud_sources_are_limited_not_clipped() {
    let phone = duet(25_000.0);
    let peak = phone.heard.iter().map(|s| s.unsigned_abs()).max().unwrap();
    assert!(peak <= 32_000, "peak {peak}");
    // Both tones are there, turned down together; what clipping would add (harmonics and
    // intermodulation) is not.
    let (p440, p1000) = (phone.power(1.0, 440.0), phone.power(1.0, 1000.0));
    assert!(p440 > sine_power(12_000.0) && p1000 > sine_power(12_000.0));
    assert!((p440 / p1000).log10().abs() < 0.1, "{p440} vs {p1000}");
    let rest = mean_power(phone.last(1.0)) - p440 - p1000;
    assert!(rest < 0.01 * (p440 + p1000), "rest {rest}");
}

#[test]
fn a_newcomer_takes_the_place_of_a_quiet_source_not_a_talking_one() {
    let mut phone = Phone::new(8000);
    // Sixteen sources: eight talk, eight send silence (muted microphones).
    let mut room: Vec<Talker> = (0..16)
        .map(|i| {
            let amplitude = if i < 8 { 1500.0 } else { 0.0 };
            Talker::new(i, 300.0 + 50.0 * i as f64, amplitude)
        })
        .collect();
    let mut newcomer = Talker::new(99, 1800.0, 8000.0);
    talk(&mut phone, &mut room, 0..10);
    // Too early: the quiet ones only joined, so the newcomer waits.
    for k in 10..40 {
        let mut packets: Vec<_> = room.iter_mut().map(Talker::next).collect();
        packets.push(newcomer.next());
        phone.tick(k, &packets);
    }
    let stats = phone.listener.stats();
    assert_eq!((stats.sources, stats.replaced), (16, 0), "{stats:?}");
    assert!(stats.refused >= 30);
    for k in 40..120 {
        let mut packets: Vec<_> = room.iter_mut().map(Talker::next).collect();
        packets.push(newcomer.next());
        phone.tick(k, &packets);
    }
    let stats = phone.listener.stats();
    // It took one quiet place (the one it replaced comes back into another's: silent places
    // are what is traded) and is heard; every talker kept its place.
    assert!(stats.replaced >= 1, "{stats:?}");
    assert!(phone.power(1.0, 1800.0) > 0.5 * sine_power(8000.0));
    for i in 0..8 {
        let f = 300.0 + 50.0 * f64::from(i);
        assert!(
            phone.power(1.0, f) > 0.3 * sine_power(1500.0),
            "talker {i} lost"
        );
    }
}

#[test]
fn the_speaker_sends_the_callers_voice_with_its_level() {
    let mut speaker = RoomSpeaker::new(16_000).unwrap();
    let mut decoder = OpusDecoder::new(16_000).unwrap();
    let mut voice = Sine::new(440.0, 16_000, 30_000.0);
    let mut pcm = vec![0i16; 320];
    let mut decoded = Vec::new();
    let mut out = vec![0i16; 320];
    for k in 0..50u64 {
        voice.fill(&mut pcm);
        let p = speaker.encode(&pcm).unwrap();
        assert_eq!((p.seq, p.rtp_time), (k, k * 960));
        assert!(p.level <= 4, "level {}", p.level);
        assert!(!p.payload.is_empty() && p.payload.len() < 200);
        let n = decoder.decode(p.payload, &mut out).unwrap();
        decoded.extend_from_slice(&out[..n]);
    }
    assert!(tone_snr_db(&decoded[8000..], 440.0, 16_000) > 20.0);
    // A frame not sent moves the clock, not the sequence.
    speaker.skip();
    let p = speaker.encode(&[0; 320]).unwrap();
    assert_eq!((p.seq, p.rtp_time, p.level), (50, 51 * 960, 127));
    assert!(speaker.encode(&[0; 160]).is_err());
}

/// The speaker starts without FEC (no loss reported) and carries it once listeners report
/// loss: a lost onset is then recovered from the next packet, where before only concealment
/// (which can only extend the silence before it) was possible.
#[test]
fn the_speakers_fec_follows_the_loss_its_listeners_report() {
    let lost_onset = |loss: Option<u8>| {
        let mut speaker = RoomSpeaker::new(8000).unwrap();
        if let Some(percent) = loss {
            speaker.set_expected_loss(percent).unwrap();
        }
        let mut signal = vec![0i16; 8000];
        Sine::new(700.0, 8000, 12_000.0).fill(&mut signal[20 * 160..]);
        let packets: Vec<Vec<u8>> = signal
            .chunks_exact(160)
            .map(|frame| speaker.encode(frame).unwrap().payload.to_vec())
            .collect();
        let mut decoder = OpusDecoder::new(8000).unwrap();
        let mut frame = [0i16; 160];
        for packet in &packets[..20] {
            decoder.decode(packet, &mut frame).unwrap();
        }
        // Packet 20 is lost; 21 may carry it.
        let mut recovered = [0i16; 160];
        decoder.recover(&packets[21], &mut recovered).unwrap();
        mean_power(&recovered) / mean_power(&signal[20 * 160..21 * 160])
    };
    assert!(lost_onset(None) < 0.01, "no FEC before any loss report");
    assert!(lost_onset(Some(0)) < 0.01, "none at 0 %");
    let with_fec = lost_onset(Some(10));
    assert!(with_fec > 0.125, "recovered {with_fec:.3} of the onset");
}

/// Three phones of a room on one listener, as a media thread holds them: each phone gives its
/// voice as PCM; the room's Opus copies of those voices (encoded for someone elsewhere, and
/// forwarded on every other phone's link) are dropped, and a browser's packets arrive on every
/// link, so twice or three times.
#[test]
fn phones_sharing_a_listener_each_hear_the_others_and_not_themselves() {
    let rate = 16_000;
    let t0 = Instant::now();
    let mut listener = RoomListener::new(rate, &JitterConfig::default()).unwrap();
    let phones = [
        listener.add_listener(Some(1)),
        listener.add_listener(Some(2)),
        listener.add_listener(Some(3)),
    ];
    assert_eq!(listener.listeners(), 3);
    assert!(listener.is_listening(2) && !listener.is_listening(9));
    // Phones 1 and 2 and a browser (9) talk; phone 3 only listens.
    let mut talkers = [
        Talker::phone(1, 440.0, 6000.0),
        Talker::phone(2, 1000.0, 6000.0),
        Talker::new(9, 1500.0, 6000.0),
    ];
    let mut heard = vec![Vec::new(); 3];
    let mut talked = [false; 3];
    for k in 0..100 {
        let now = t0 + TICK * k;
        for (i, t) in talkers.iter_mut().enumerate() {
            let p = t.next();
            if let Some(phone) = phones.get(i).filter(|_| i < 2) {
                listener.speak(*phone, &t.pcm).unwrap();
            }
            // Through every link but the talker's own.
            for own in 1..=3u64 {
                if own != p.key {
                    listener.handle_packet(now, p.key, p.seq, p.rtp_time, &p.payload);
                }
            }
        }
        assert!(listener.prepare(now) <= 1);
        for (i, id) in phones.iter().enumerate() {
            let h = listener.heard(*id).unwrap();
            heard[i].extend_from_slice(h.pcm);
            talked[i] = h.talked;
        }
    }
    let last = |pcm: &[i16]| pcm[pcm.len() - rate as usize..].to_vec();
    let power = |i: usize, f: f64| goertzel_power(&last(&heard[i]), f, rate);
    let loud = 0.3 * sine_power(6000.0);
    let faint = 0.01 * sine_power(6000.0);
    // Phone 1 hears 2 and the browser, not itself; phone 2 likewise; phone 3 everyone, each
    // once (twice would be up to four times the power).
    assert!(power(0, 440.0) < faint && power(0, 1000.0) > loud && power(0, 1500.0) > loud);
    assert!(power(1, 1000.0) < faint && power(1, 440.0) > loud && power(1, 1500.0) > loud);
    for f in [440.0, 1000.0, 1500.0] {
        let p = power(2, f);
        assert!(
            p > loud && p < 1.5 * sine_power(6000.0),
            "phone 3 at {f} Hz: {p}"
        );
    }
    assert_eq!(talked, [true, true, false]);
    // Only the browser is decoded; its duplicates from the other links are dropped.
    let stats = listener.stats();
    assert_eq!(
        (stats.sources, stats.late, stats.concealed),
        (1, 0, 0),
        "{stats:?}"
    );
    // A phone that leaves takes its mix and its voice with it.
    listener.remove_listener(phones[0]);
    assert_eq!(listener.listeners(), 2);
    assert!(listener.heard(phones[0]).is_err());
    assert!(listener.speak(phones[0], &[0; 320]).is_err());
    assert!(!listener.is_listening(1));
}
