//! The per-call cost through the real leg code: microseconds per 20 ms for one PCMU ↔ Opus
//! leg pair (the PCMU leg towards a phone at 8 kHz, the Opus leg towards a room fed at 8 kHz),
//! both directions: receive, jitter buffer, decode, encode, packetise, transmit. Compare with
//! the bare codec floor (`cargo run --release -p sipx-media --example codec_floor`).
//!
//! ```sh
//! cargo run --release -p sipx-media --example leg_cost -- [--frames N] [--srtp]
//! ```

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sipx_codec::tone::Sine;
use sipx_codec::{CodecKind, EncoderOptions};
use sipx_media::leg::{LegConfig, MediaLeg};
use sipx_media::srtp::{SrtpConfig, SrtpKey, SrtpSuite};

fn leg(codec: CodecKind, pt: u8, remote: SocketAddr, ssrc: u32, srtp: bool) -> MediaLeg {
    let mut cfg = LegConfig::new(codec, pt, remote);
    cfg.local_ssrc = ssrc;
    cfg.seed = u64::from(ssrc);
    cfg.opus = EncoderOptions::default();
    if srtp {
        let key = SrtpKey {
            key: vec![7; 16],
            salt: vec![8; 14],
            mki: Vec::new(),
        };
        cfg.srtp = Some(SrtpConfig {
            suite: SrtpSuite::AesCm128HmacSha1_80,
            local: key.clone(),
            remote: key,
        });
    }
    match MediaLeg::new(cfg, Instant::now()) {
        Ok(leg) => leg,
        Err(e) => panic!("leg: {e}"),
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut frames = 5000u32;
    let mut srtp = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--frames" => frames = args.next().ok_or("missing value")?.parse()?,
            "--srtp" => srtp = true,
            _ => return Err(format!("unknown argument {arg}").into()),
        }
    }
    let phone_addr: SocketAddr = "10.0.0.1:4000".parse()?;
    let pcmu_addr: SocketAddr = "10.0.0.2:5000".parse()?;
    let opus_addr: SocketAddr = "10.0.0.3:6000".parse()?;
    let room_addr: SocketAddr = "10.0.0.4:7000".parse()?;
    // The peers stand in for the phone and the room; only the middle pair is timed.
    let mut phone = leg(CodecKind::Pcmu, 0, pcmu_addr, 1, srtp);
    let mut pcmu = leg(CodecKind::Pcmu, 0, phone_addr, 2, srtp);
    let mut opus = leg(CodecKind::Opus, 111, room_addr, 3, srtp);
    let mut room = leg(CodecKind::Opus, 111, opus_addr, 4, srtp);
    let mut voice = Sine::new(440.0, 8000, 6000.0);
    let (mut frame, mut bridge, mut buf) = (vec![0i16; 160], vec![0i16; 160], vec![0u8; 1500]);
    let mut timed = Duration::ZERO;
    let t0 = Instant::now();
    for k in 0..frames {
        let now = t0 + Duration::from_millis(20 * u64::from(k));
        voice.fill(&mut frame);
        phone.push_frame(now, &frame);
        room.push_frame(now, &frame);
        let mut inbound = Vec::new();
        while let Some(t) = phone.poll_transmit(&mut buf) {
            let n = t.len;
            inbound.push((true, buf[..n].to_vec()));
        }
        while let Some(t) = room.poll_transmit(&mut buf) {
            let n = t.len;
            inbound.push((false, buf[..n].to_vec()));
        }
        let started = Instant::now();
        for (to_pcmu, mut bytes) in inbound {
            if to_pcmu {
                pcmu.handle_receive(now, phone_addr, &mut bytes);
            } else {
                opus.handle_receive(now, room_addr, &mut bytes);
            }
        }
        for leg in [&mut pcmu, &mut opus] {
            if leg.poll_timeout().is_some_and(|t| t <= now) {
                leg.handle_timeout(now);
            }
        }
        bridge.copy_from_slice(pcmu.pull_frame(now).1);
        opus.push_frame(now, &bridge);
        bridge.copy_from_slice(opus.pull_frame(now).1);
        pcmu.push_frame(now, &bridge);
        let mut outbound = Vec::new();
        while let Some(t) = pcmu.poll_transmit(&mut buf) {
            let n = t.len;
            outbound.push((true, buf[..n].to_vec()));
        }
        while let Some(t) = opus.poll_transmit(&mut buf) {
            let n = t.len;
            outbound.push((false, buf[..n].to_vec()));
        }
        timed += started.elapsed();
        for (to_phone, mut bytes) in outbound {
            if to_phone {
                phone.handle_receive(now, pcmu_addr, &mut bytes);
            } else {
                room.handle_receive(now, opus_addr, &mut bytes);
            }
        }
        let _ = phone.pull_frame(now);
        let _ = room.pull_frame(now);
    }
    let per_frame = timed.as_secs_f64() * 1e6 / f64::from(frames);
    println!(
        "one PCMU <-> Opus leg pair{}: {per_frame:.1} µs per 20 ms ({frames} frames)",
        if srtp { " with SRTP" } else { "" }
    );
    println!("received: {:?}", pcmu.stats().media.packets_received);
    Ok(())
}
