//! A cheap RTP load generator for `bench/media.py`: one thread, one socket, N PCMU streams of
//! 20 ms packets (160 bytes of μ-law each, taken in turn from a raw file), their send times
//! spread evenly over the 20 ms, and what comes back counted per stream with the regularity
//! of its arrivals. The calls themselves are set up by the caller (SIP, or rtpengine's ng
//! protocol); this only moves RTP.
//!
//! With `--reflect ADDR`, a second socket sends every packet it receives back where it came
//! from (SSRC changed): the far side of a media relay, so the relay transcodes both ways.
//!
//! ```sh
//! cargo run --release -p sipx-media --example rtp_load -- --targets FILE --payload FILE.ulaw \
//!     --bind 127.0.0.1:40000 [--reflect 127.0.0.1:40002] [--seconds 20] [--warmup 3]
//! ```
//!
//! `--targets` holds one `ip:port` per line: where stream i sends. Prints one JSON object.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

const PERIOD: Duration = Duration::from_millis(20);
const SAMPLES: usize = 160;
/// Inter-arrival deviations are histogrammed in 100 µs steps up to this many steps.
const DEVIATION_STEPS: usize = 2000;

struct Args {
    targets: Vec<SocketAddr>,
    payload: Vec<u8>,
    bind: SocketAddr,
    reflect: Option<SocketAddr>,
    seconds: f64,
    warmup: f64,
}

fn parse_args() -> Result<Args, Box<dyn std::error::Error>> {
    let (mut targets, mut payload, mut bind, mut reflect) = (None, None, None, None);
    let (mut seconds, mut warmup) = (20.0, 3.0);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next().ok_or_else(|| format!("{arg} needs a value"))?;
        match arg.as_str() {
            "--targets" => {
                let text = std::fs::read_to_string(&value)?;
                targets = Some(
                    text.lines()
                        .filter(|l| !l.trim().is_empty())
                        .map(|l| l.trim().parse())
                        .collect::<Result<Vec<SocketAddr>, _>>()?,
                );
            }
            "--payload" => payload = Some(std::fs::read(&value)?),
            "--bind" => bind = Some(value.parse()?),
            "--reflect" => reflect = Some(value.parse()?),
            "--seconds" => seconds = value.parse()?,
            "--warmup" => warmup = value.parse()?,
            _ => return Err(format!("unknown argument {arg}").into()),
        }
    }
    let payload: Vec<u8> = payload.ok_or("--payload is required")?;
    if payload.len() < SAMPLES {
        return Err("the payload file holds less than one packet".into());
    }
    Ok(Args {
        targets: targets.ok_or("--targets is required")?,
        payload,
        bind: bind.ok_or("--bind is required")?,
        reflect,
        seconds,
        warmup,
    })
}

/// What came back on one stream.
#[derive(Default, Clone)]
struct Stream {
    received: u64,
    /// Packets whose μ-law payload is not near silence: the audio survived the round trip.
    audible: u64,
    last: Option<Instant>,
}

struct Report {
    sent: u64,
    received: u64,
    audible: u64,
    reflected: u64,
    /// Reflected packets that were not PCMU (a relay transcoding to Opus sends Opus).
    reflected_transcoded: u64,
    other_payload_types: u64,
    /// |inter-arrival − 20 ms| per stream, in 100 µs steps.
    deviations: Vec<u64>,
    /// Arrivals 40 ms or more after the previous one: a whole packet slot went by empty.
    gaps: u64,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse_args()?;
    let socket = UdpSocket::bind(args.bind)?;
    socket.set_nonblocking(true)?;
    let reflector = match args.reflect {
        Some(addr) => {
            let s = UdpSocket::bind(addr)?;
            s.set_nonblocking(true)?;
            Some(s)
        }
        None => None,
    };
    let n = args.targets.len();
    let index: HashMap<SocketAddr, usize> = args
        .targets
        .iter()
        .enumerate()
        .map(|(i, a)| (*a, i))
        .collect();
    let mut streams = vec![Stream::default(); n];
    let mut report = Report {
        sent: 0,
        received: 0,
        audible: 0,
        reflected: 0,
        reflected_transcoded: 0,
        other_payload_types: 0,
        deviations: vec![0; DEVIATION_STEPS + 1],
        gaps: 0,
    };
    let mut packet = [0u8; 12 + SAMPLES];
    let mut buf = [0u8; 2048];
    let start = Instant::now();
    let warm = start + Duration::from_secs_f64(args.warmup);
    let end = start + Duration::from_secs_f64(args.seconds);
    // Send slot j: stream j % n, in round j / n, at its phase within the 20 ms.
    let due = |j: u64| -> Instant {
        let (round, stream) = (j / n.max(1) as u64, j % n.max(1) as u64);
        start + PERIOD * round as u32 + PERIOD * stream as u32 / n.max(1) as u32
    };
    let mut slot = 0u64;
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        while n > 0 && due(slot) <= now {
            let stream = (slot % n as u64) as usize;
            let round = slot / n as u64;
            // Streams start at different places in the audio, so they do not say the same
            // thing at once.
            let packets = args.payload.len() / SAMPLES;
            let offset = ((round as usize + stream * 37) % packets) * SAMPLES;
            write_rtp(
                &mut packet,
                stream,
                round,
                &args.payload[offset..offset + SAMPLES],
            );
            if socket.send_to(&packet, args.targets[stream]).is_ok() {
                report.sent += u64::from(now >= warm);
            }
            slot += 1;
        }
        loop {
            match socket.recv_from(&mut buf) {
                Ok((len, from)) => {
                    let at = Instant::now();
                    let Some(&i) = index.get(&from) else { continue };
                    if at < warm || len < 12 {
                        streams[i].last = Some(at);
                        continue;
                    }
                    report.received += 1;
                    let s = &mut streams[i];
                    s.received += 1;
                    if buf[1] & 0x7f != 0 {
                        report.other_payload_types += 1;
                    } else if audible(&buf[12..len]) {
                        s.audible += 1;
                        report.audible += 1;
                    }
                    if let Some(last) = s.last {
                        let gap = at - last;
                        let deviation = gap.abs_diff(PERIOD);
                        let step = (deviation.as_micros() / 100) as usize;
                        report.deviations[step.min(DEVIATION_STEPS)] += 1;
                        report.gaps += u64::from(gap >= 2 * PERIOD);
                    }
                    s.last = Some(at);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(_) => continue,
            }
        }
        if let Some(r) = &reflector {
            loop {
                match r.recv_from(&mut buf) {
                    Ok((len, from)) => {
                        if len >= 12 {
                            // Our SSRC, not the relay's own, on what it gets back.
                            buf[8] ^= 0x5a;
                            report.reflected_transcoded += u64::from(buf[1] & 0x7f != 0);
                        }
                        if r.send_to(&buf[..len], from).is_ok() {
                            report.reflected += 1;
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(_) => continue,
                }
            }
        }
        let next = if n > 0 { due(slot) } else { end };
        let wake = next.min(Instant::now() + Duration::from_millis(1));
        std::thread::sleep(wake.saturating_duration_since(Instant::now()));
    }
    print_report(&report, &streams, args.seconds - args.warmup);
    Ok(())
}

fn write_rtp(packet: &mut [u8; 12 + SAMPLES], stream: usize, round: u64, payload: &[u8]) {
    let seq = round as u16;
    let ts = (round as u32).wrapping_mul(SAMPLES as u32);
    let ssrc = 0x5100_0000 | stream as u32;
    packet[0] = 0x80;
    packet[1] = 0; // PCMU
    packet[2..4].copy_from_slice(&seq.to_be_bytes());
    packet[4..8].copy_from_slice(&ts.to_be_bytes());
    packet[8..12].copy_from_slice(&ssrc.to_be_bytes());
    packet[12..].copy_from_slice(payload);
}

/// Whether μ-law bytes carry more than faint noise (about −50 dBov mean absolute level).
fn audible(payload: &[u8]) -> bool {
    let sum: u64 = payload.iter().map(|&b| u64::from(ulaw_magnitude(b))).sum();
    sum / payload.len().max(1) as u64 > 100
}

fn ulaw_magnitude(byte: u8) -> u16 {
    let b = !byte;
    let exponent = (b >> 4) & 7;
    let mantissa = u16::from(b & 0x0f);
    (((mantissa << 3) + 0x84) << exponent) - 0x84
}

fn percentile(histogram: &[u64], p: f64) -> f64 {
    let total: u64 = histogram.iter().sum();
    if total == 0 {
        return 0.0;
    }
    let want = (total as f64 * p).ceil() as u64;
    let mut seen = 0;
    for (step, &count) in histogram.iter().enumerate() {
        seen += count;
        if seen >= want {
            return (step as f64 + 1.0) * 0.1;
        }
    }
    DEVIATION_STEPS as f64 * 0.1
}

fn print_report(r: &Report, streams: &[Stream], measured_seconds: f64) {
    let max_step = r.deviations.iter().rposition(|&c| c > 0).unwrap_or(0);
    let silent = streams.iter().filter(|s| s.received == 0).count();
    let min_received = streams.iter().map(|s| s.received).min().unwrap_or(0);
    println!(
        "{{\"streams\": {}, \"seconds\": {measured_seconds:.3}, \"sent\": {}, \"received\": {}, \
         \"audible\": {}, \"reflected\": {}, \"reflected_transcoded\": {}, \
         \"other_payload_types\": {}, \
         \"silent_streams\": {silent}, \"min_received_per_stream\": {min_received}, \
         \"gaps\": {}, \"deviation_p50_ms\": {:.1}, \"deviation_p99_ms\": {:.1}, \
         \"deviation_max_ms\": {:.1}}}",
        streams.len(),
        r.sent,
        r.received,
        r.audible,
        r.reflected,
        r.reflected_transcoded,
        r.other_payload_types,
        r.gaps,
        percentile(&r.deviations, 0.5),
        percentile(&r.deviations, 0.99),
        (max_step as f64 + 1.0) * 0.1,
    );
}
