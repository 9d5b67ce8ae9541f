//! The hot path allocates nothing: after warm-up, 1000 ticks of a transcoded call (a PCMU leg
//! to a phone, an Opus leg to a room, each with a peer leg on the other end of a simulated
//! wire) through `push_frame`, `poll_transmit`, `handle_receive`, `handle_timeout` and
//! `pull_frame` make zero heap allocations; nor do 1000 ticks of a phone in a room (three
//! participants heard through the `RoomListener`, the caller's voice through the
//! `RoomSpeaker`). Counted by a wrapping global allocator, one test at a time.

#![allow(clippy::unwrap_used)]

use std::alloc::System;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sipx_codec::opus::OpusEncoder;
use sipx_codec::tone::Sine;
use sipx_codec::{AudioEncoder, CodecKind, EncoderOptions};
use sipx_media::bridge::{RoomListener, RoomSpeaker};
use sipx_media::jitter::JitterConfig;
use sipx_media::leg::{LegConfig, MediaLeg};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// The counts are process-wide: tests that measure take turns.
static MEASURING: Mutex<()> = Mutex::new(());

fn leg(codec: CodecKind, pt: u8, remote: &str, ssrc: u32, now: Instant) -> MediaLeg {
    let mut cfg = LegConfig::new(codec, pt, remote.parse().unwrap());
    cfg.local_ssrc = ssrc;
    cfg.seed = u64::from(ssrc);
    cfg.cname = format!("leg{ssrc}");
    cfg.opus = EncoderOptions::default();
    cfg.telephone_event = Some((101, codec.rtp_clock_rate()));
    MediaLeg::new(cfg, now).unwrap()
}

/// Moves every queued datagram of `from` into `to` through one reused buffer.
fn wire(from: &mut MediaLeg, to: &mut MediaLeg, source: SocketAddr, now: Instant, buf: &mut [u8]) {
    while let Some(t) = from.poll_transmit(buf) {
        let n = t.len;
        to.handle_receive(now, source, &mut buf[..n]);
    }
}

#[test]
fn a_transcoded_call_allocates_nothing_per_tick() {
    let _turn = MEASURING.lock().unwrap_or_else(|e| e.into_inner());
    let t0 = Instant::now();
    // phone <-> pcmu leg (bridge) opus leg <-> room
    let mut phone = leg(CodecKind::Pcmu, 0, "10.0.0.2:5000", 1, t0);
    let mut pcmu = leg(CodecKind::Pcmu, 0, "10.0.0.1:4000", 2, t0);
    let mut opus = leg(CodecKind::Opus, 111, "10.0.0.4:7000", 3, t0);
    let mut room = leg(CodecKind::Opus, 111, "10.0.0.3:6000", 4, t0);
    let (phone_addr, room_addr): (SocketAddr, SocketAddr) = (
        "10.0.0.1:4000".parse().unwrap(),
        "10.0.0.4:7000".parse().unwrap(),
    );
    let mut voice = Sine::new(440.0, 8000, 6000.0);
    let mut frame = vec![0i16; 160];
    let mut bridge = vec![0i16; 160];
    let mut buf = vec![0u8; 1500];
    let mut tick = |k: u32, frame: &mut Vec<i16>, bridge: &mut Vec<i16>, buf: &mut Vec<u8>| {
        let now = t0 + Duration::from_millis(20 * u64::from(k));
        voice.fill(frame);
        phone.push_frame(now, frame);
        room.push_frame(now, frame);
        for leg in [&mut phone, &mut pcmu, &mut opus, &mut room] {
            if leg.poll_timeout().is_some_and(|t| t <= now) {
                leg.handle_timeout(now);
            }
        }
        wire(&mut phone, &mut pcmu, phone_addr, now, buf);
        wire(&mut room, &mut opus, room_addr, now, buf);
        let (_, heard) = pcmu.pull_frame(now);
        bridge.copy_from_slice(heard);
        opus.push_frame(now, bridge);
        let (_, heard) = opus.pull_frame(now);
        bridge.copy_from_slice(heard);
        pcmu.push_frame(now, bridge);
        wire(
            &mut pcmu,
            &mut phone,
            "10.0.0.2:5000".parse().unwrap(),
            now,
            buf,
        );
        wire(
            &mut opus,
            &mut room,
            "10.0.0.3:6000".parse().unwrap(),
            now,
            buf,
        );
        let _ = phone.pull_frame(now);
        let _ = room.pull_frame(now);
        for leg in [&mut phone, &mut pcmu, &mut opus, &mut room] {
            while leg.poll_event().is_some() {}
        }
    };
    // Warm-up: the first RTCP reports and the jitter buffers' first talkspurt.
    for k in 0..500 {
        tick(k, &mut frame, &mut bridge, &mut buf);
    }
    let region = Region::new(GLOBAL);
    for k in 500..1500 {
        tick(k, &mut frame, &mut bridge, &mut buf);
    }
    let change = region.change();
    assert_eq!(change.allocations, 0, "{change:?}");
    assert_eq!(change.reallocations, 0, "{change:?}");
    assert!(pcmu.stats().media.packets_received > 1400);
    assert!(room.stats().media.packets_received > 1400);
}

#[test]
fn a_phone_in_a_room_allocates_nothing_per_tick() {
    let _turn = MEASURING.lock().unwrap_or_else(|e| e.into_inner());
    let t0 = Instant::now();
    let mut listener = RoomListener::new(8000, &JitterConfig::default()).unwrap();
    let mut speaker = RoomSpeaker::new(8000).unwrap();
    // Three browsers talking at 48 kHz.
    let mut talkers: Vec<(Sine, OpusEncoder)> = [300.0, 700.0, 1100.0]
        .iter()
        .map(|&f| {
            let options = EncoderOptions::default().bitrate(32_000);
            (
                Sine::new(f, 48_000, 6000.0),
                OpusEncoder::new(48_000, &options).unwrap(),
            )
        })
        .collect();
    let mut voice = Sine::new(440.0, 8000, 6000.0);
    let (mut pcm48, mut payload) = (vec![0i16; 960], vec![0u8; 1500]);
    let (mut caller, mut heard) = (vec![0i16; 160], vec![0i16; 160]);
    let mut tick = |k: u64| {
        let now = t0 + Duration::from_millis(20 * k);
        for (key, (sine, encoder)) in talkers.iter_mut().enumerate() {
            sine.fill(&mut pcm48);
            let n = encoder.encode(&pcm48, &mut payload).unwrap();
            // One packet in twenty lost: concealment and FEC are on the measured path too.
            if k % 20 != 7 {
                listener.handle_packet(now, key as u64, k, k * 960, &payload[..n]);
            }
        }
        voice.fill(&mut caller);
        let spoken = speaker.encode(&caller).unwrap();
        assert!(!spoken.payload.is_empty());
        listener.mix(now, &mut heard).unwrap()
    };
    for k in 0..200 {
        tick(k);
    }
    let region = Region::new(GLOBAL);
    for k in 200..1200 {
        // Every participant is heard, so the mixing path is what is measured.
        assert_eq!(tick(k), 3);
    }
    let change = region.change();
    assert_eq!(change.allocations, 0, "{change:?}");
    assert_eq!(change.reallocations, 0, "{change:?}");
    let stats = listener.stats();
    assert_eq!(stats.sources, 3);
    assert!(stats.concealed >= 3 * 50, "{stats:?}");
}
