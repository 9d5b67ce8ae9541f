//! Simulated networks against the jitter buffer: seeded delay, loss, reordering, clock drift and
//! wrap-arounds, with assertions on order, loss counts and bounded depth.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use super::*;
use crate::rng::Rng;

/// One simulated call leg's sending side and network.
#[derive(Debug, Clone)]
struct Net {
    ptime_ms: u32,
    /// Extra one-way delay, uniform in [0, jitter_ms].
    jitter_ms: u32,
    loss: f64,
    /// Sender clock error: +0.005 sends 0.5% more audio per real second.
    drift: f64,
    seconds: u32,
    seq0: u16,
    ts0: u32,
    seed: u64,
    /// Every `.0` ms the sender stalls for `.1` ms, then sends what it held at once.
    stalls: Option<(u32, u32)>,
}

impl Default for Net {
    fn default() -> Self {
        Net {
            ptime_ms: 20,
            jitter_ms: 0,
            loss: 0.0,
            drift: 0.0,
            seconds: 20,
            seq0: 1000,
            ts0: 5000,
            seed: 1,
            stalls: None,
        }
    }
}

#[derive(Debug, Default)]
struct Outcome {
    /// Sender indices of played packets, in playout order.
    played: Vec<u32>,
    sent: u32,
    dropped_by_net: u32,
    lost_ticks: u32,
    continue_ticks: u32,
    frames_per_tick: Vec<usize>,
    max_depth_ms: f64,
    stats: JitterStats,
}

fn packet(net: &Net, i: u32) -> (RtpHeader, [u8; 4]) {
    let header = RtpHeader {
        marker: i == 0,
        pt: Pt(0),
        seq: net.seq0.wrapping_add(i as u16),
        timestamp: net.ts0.wrapping_add(i * net.ptime_ms * 8),
        ssrc: Ssrc(7),
    };
    (header, i.to_be_bytes())
}

fn simulate(net: &Net) -> Outcome {
    let t0 = Instant::now();
    let mut rng = Rng::new(net.seed);
    let mut out = Outcome::default();
    let count = net.seconds * 1000 / net.ptime_ms;
    let mut arrivals = Vec::new();
    for i in 0..count {
        let mut sent_ns = f64::from(i * net.ptime_ms) * 1e6 / (1.0 + net.drift);
        if let Some((every, stall)) = net.stalls {
            let at = i * net.ptime_ms;
            if at % every < stall {
                sent_ns = f64::from(at - at % every + stall) * 1e6;
            }
        }
        let delay_ns = 30e6 + rng.unit() * f64::from(net.jitter_ms) * 1e6;
        if rng.unit() < net.loss {
            out.dropped_by_net += 1;
            continue;
        }
        arrivals.push((t0 + Duration::from_nanos((sent_ns + delay_ns) as u64), i));
    }
    out.sent = count;
    arrivals.sort();
    let mut jb = JitterBuffer::new(&JitterConfig::default());
    let mut next = arrivals.iter().peekable();
    for k in 0..(net.seconds * 50 + 50) {
        let now = t0 + Duration::from_millis(u64::from(k) * 20);
        while let Some((at, i)) = next.next_if(|(at, _)| *at <= now) {
            let (header, payload) = packet(net, *i);
            jb.push(*at, &header, &payload);
        }
        match jb.tick(now) {
            Playout::Frame(frame) => {
                let before = out.played.len();
                for p in frame.packets() {
                    out.played
                        .push(u32::from_be_bytes(p.payload.try_into().unwrap()));
                }
                out.frames_per_tick.push(out.played.len() - before);
            }
            // Only while packets are still to come: the end of the stream underruns by design.
            Playout::Lost { .. } if next.peek().is_some() => out.lost_ticks += 1,
            Playout::Continue => out.continue_ticks += 1,
            _ => {}
        }
        out.max_depth_ms = out.max_depth_ms.max(jb.stats().depth_ms);
    }
    out.stats = jb.stats();
    out
}

fn assert_in_order(played: &[u32]) {
    for w in played.windows(2) {
        assert!(w[0] < w[1], "out of order: {} then {}", w[0], w[1]);
    }
}

#[test]
fn clean_stream_plays_every_packet_in_order() {
    let out = simulate(&Net::default());
    assert_in_order(&out.played);
    assert_eq!(out.played.len() as u32, out.sent);
    assert_eq!(out.lost_ticks, 0);
    assert_eq!(out.stats.late + out.stats.skipped + out.stats.stretched, 0);
    assert!(out.max_depth_ms <= 60.0, "{}", out.max_depth_ms);
}

#[test]
fn jitter_loss_and_reordering_are_absorbed() {
    for seed in 1..=4 {
        let net = Net {
            jitter_ms: 60,
            loss: 0.05,
            seconds: 60,
            seed,
            ..Net::default()
        };
        let out = simulate(&net);
        assert_in_order(&out.played);
        let st = out.stats;
        // Everything that arrived is played, except a small share that came too late.
        let arrived = out.sent - out.dropped_by_net;
        assert_eq!(
            out.played.len() as u64 + st.late,
            u64::from(arrived),
            "{st:?}"
        );
        assert!(st.late * 100 < u64::from(arrived), "late {st:?}");
        // Concealment matches the network's loss (plus what came late), give or take a few.
        let missing = u64::from(out.dropped_by_net) + st.late;
        assert!(
            st.lost.abs_diff(missing) <= missing / 10 + 3,
            "lost {} vs {missing}",
            st.lost
        );
        // The target grew to the jitter, and the queue stayed bounded.
        assert!((60.0..=200.0).contains(&st.target_ms), "{st:?}");
        assert!(
            out.max_depth_ms <= 200.0 + 60.0,
            "depth {}",
            out.max_depth_ms
        );
    }
}

#[test]
fn clock_drift_keeps_depth_bounded() {
    for drift in [0.005, -0.005] {
        let net = Net {
            drift,
            jitter_ms: 10,
            seconds: 120,
            ..Net::default()
        };
        let out = simulate(&net);
        assert_in_order(&out.played);
        let st = out.stats;
        assert!(
            out.max_depth_ms <= 120.0,
            "drift {drift}: depth {}",
            out.max_depth_ms
        );
        // 0.5% of 120 s is 600 ms: about 30 frames dropped or repeated.
        let corrections = if drift > 0.0 {
            st.skipped
        } else {
            st.stretched + st.underruns
        };
        assert!((20..=45).contains(&corrections), "drift {drift}: {st:?}");
        assert!(st.lost + st.late <= 3, "drift {drift}: {st:?}");
    }
}

#[test]
fn sequence_and_timestamp_wrap_around() {
    let net = Net {
        seq0: 65_000,
        ts0: u32::MAX - 8000 * 5,
        jitter_ms: 30,
        seconds: 30,
        ..Net::default()
    };
    let out = simulate(&net);
    assert_in_order(&out.played);
    assert_eq!(out.stats.resyncs, 0);
    assert_eq!(
        out.played.len() as u64 + out.stats.late,
        u64::from(out.sent)
    );
}

#[test]
fn packetisation_from_10_to_60_ms() {
    // (ptime, payloads per frame tick, continue ticks per packet)
    for (ptime, per_tick, continues) in [(10, 2, 0), (20, 1, 0), (40, 1, 1), (60, 1, 2)] {
        let net = Net {
            ptime_ms: ptime,
            seconds: 10,
            ..Net::default()
        };
        let out = simulate(&net);
        assert_in_order(&out.played);
        assert_eq!(out.played.len() as u32, out.sent, "ptime {ptime}");
        assert_eq!(out.lost_ticks, 0, "ptime {ptime}");
        assert!(
            out.frames_per_tick.iter().all(|&n| n == per_tick),
            "ptime {ptime}"
        );
        assert_eq!(out.continue_ticks, continues * out.sent, "ptime {ptime}");
    }
    // 30 ms packets against 20 ms ticks: two frames then a continue, every 60 ms.
    let out = simulate(&Net {
        ptime_ms: 30,
        seconds: 6,
        ..Net::default()
    });
    assert_eq!(out.played.len() as u32, out.sent);
    assert_eq!(out.lost_ticks, 0);
    assert_eq!(out.continue_ticks, out.sent / 2);
}

/// A sender whose packets change length as `pattern` (ms, repeated) says, each sent when its
/// last sample is captured and arriving 30 ms later, with the buffer's ticks `phase_ms` after
/// the stream's start: (played packets in order, lost ticks, continue ticks, packets sent,
/// continue ticks the lengths call for, the last packet's aside).
fn simulate_pattern(
    pattern: &[u32],
    phase_ms: u32,
    seconds: u32,
) -> (Vec<u32>, u32, u32, u32, u32) {
    let t0 = Instant::now();
    let (mut arrivals, mut ts_ms, mut i) = (Vec::new(), 0u32, 0u32);
    let mut windows_started = std::collections::BTreeSet::new();
    while ts_ms < seconds * 1000 {
        let len = pattern[i as usize % pattern.len()];
        let header = RtpHeader {
            marker: i == 0,
            pt: Pt(0),
            seq: 100u16.wrapping_add(i as u16),
            timestamp: 4000 + ts_ms * 8,
            ssrc: Ssrc(3),
        };
        let sent = ts_ms + len;
        arrivals.push((t0 + Duration::from_millis(u64::from(sent + 30)), header, i));
        windows_started.insert(ts_ms / 20);
        ts_ms += len;
        i += 1;
    }
    // Every 20 ms window up to the last packet's in which no packet starts continues one (the
    // last packet's length no next packet tells: it plays as the stream's).
    let last = windows_started.last().copied().unwrap_or(0);
    let expected_continues = (0..last).filter(|w| !windows_started.contains(w)).count() as u32;
    let mut jb = JitterBuffer::new(&JitterConfig::default());
    let (mut played, mut lost, mut continues) = (Vec::new(), 0, 0);
    let mut next = arrivals.iter().peekable();
    for k in 0..(seconds * 50 + 50) {
        let now = t0 + Duration::from_millis(u64::from(k * 20 + phase_ms));
        while let Some((at, header, n)) = next.next_if(|(at, _, _)| *at <= now) {
            jb.push(*at, header, &n.to_be_bytes());
        }
        match jb.tick(now) {
            Playout::Frame(frame) => {
                played.extend(
                    frame
                        .packets()
                        .map(|p| u32::from_be_bytes(p.payload.try_into().unwrap())),
                );
            }
            Playout::Lost { .. } if next.peek().is_some() => lost += 1,
            Playout::Continue => continues += 1,
            _ => {}
        }
    }
    (played, lost, continues, i, expected_continues)
}

#[test]
fn packets_of_changing_lengths_play_whole_at_any_phase() {
    // Each packet lasts as long as its own timestamps say, not as long as the last pair of
    // packets did: a 60 ms packet after a 20 ms one plays its whole 60 ms.
    for pattern in [
        &[20, 60][..],
        &[40, 40, 20, 20],
        &[20, 40, 60, 30, 30],
        &[60, 20, 20],
    ] {
        for phase in 0..20 {
            let (played, lost, continues, sent, expected) = simulate_pattern(pattern, phase, 4);
            let what = format!("{pattern:?} at {phase} ms");
            assert_in_order(&played);
            assert_eq!(played.len() as u32, sent, "{what}");
            // At most one frame stretched at the start: the first long packet arrives a
            // packet time after its first sample, later than the short ones led to expect.
            assert!(lost <= 1, "{what}: {lost} lost ticks");
            assert_eq!(continues, expected, "{what}");
        }
    }
}

/// A hand-driven buffer for event-level tests: 8 kHz, 20 ms packets.
struct Driver {
    jb: JitterBuffer,
    t0: Instant,
}

impl Driver {
    fn new() -> Self {
        Driver {
            jb: JitterBuffer::new(&JitterConfig::default()),
            t0: Instant::now(),
        }
    }

    fn at(&self, ms: u64) -> Instant {
        self.t0 + Duration::from_millis(ms)
    }

    fn push(&mut self, ms: u64, seq: u16, ts: u32, marker: bool, pt: u8) -> Pushed {
        let header = RtpHeader {
            marker,
            pt: Pt(pt),
            seq,
            timestamp: ts,
            ssrc: Ssrc(1),
        };
        self.jb.push(self.at(ms), &header, &seq.to_be_bytes())
    }

    /// Ticks at `ms` and describes the outcome in one short word.
    fn tick(&mut self, ms: u64) -> String {
        let now = self.at(ms);
        match self.jb.tick(now) {
            Playout::Frame(f) => {
                let seqs: Vec<String> = f.packets().map(|p| p.seq.to_string()).collect();
                format!("F{}", seqs.join("+"))
            }
            Playout::Continue => "C".into(),
            Playout::Lost { fec: Some(p), .. } => format!("L(fec {})", p.seq),
            Playout::Lost { fec: None, .. } => "L".into(),
            Playout::ComfortNoise { update: Some(_) } => "CN!".into(),
            Playout::ComfortNoise { update: None } => "CN".into(),
            Playout::Empty => "-".into(),
        }
    }
}

#[test]
fn starts_after_the_initial_delay_and_offers_fec_for_a_loss() {
    let mut d = Driver::new();
    let mut log = Vec::new();
    for k in 0..8u16 {
        let ms = 20 * u64::from(k);
        if k != 3 {
            d.push(ms, 100 + k, 160 * u32::from(k), k == 0, 0);
        }
        log.push(d.tick(ms));
    }
    // 40 ms initial target: the first packet plays on the third tick.
    assert_eq!(
        log,
        [
            "-",
            "-",
            "F100",
            "F101",
            "F102",
            "L(fec 104)",
            "F104",
            "F105"
        ]
    );
    assert_eq!(d.jb.stats().lost, 1);
}

#[test]
fn duplicates_and_late_packets_are_counted() {
    let mut d = Driver::new();
    for k in 0..6u16 {
        let ms = 20 * u64::from(k);
        if k != 2 {
            d.push(ms, k, 160 * u32::from(k), k == 0, 0);
        }
        d.tick(ms);
    }
    assert_eq!(d.push(120, 4, 640, false, 0), Pushed::Duplicate);
    // Seq 2 played as a loss at 80 ms; arriving now it is late.
    assert_eq!(d.push(121, 2, 320, false, 0), Pushed::Late);
    let st = d.jb.stats();
    assert_eq!((st.duplicates, st.late, st.lost), (1, 1, 1));
}

#[test]
fn copies_of_played_packets_do_not_raise_the_target() {
    // Every tenth packet comes again 120 ms later (a redundant path, an SBC's failover).
    let run = |copies: bool| {
        let mut d = Driver::new();
        let mut copies_due = Vec::new();
        for k in 0..500u16 {
            let ms = 20 * u64::from(k);
            d.push(ms + 30, k, 160 * u32::from(k), k == 0, 0);
            if copies && k % 10 == 0 {
                copies_due.push((ms + 150, k));
            }
            while let Some(&(at, seq)) = copies_due.first().filter(|c| c.0 <= ms + 30) {
                assert_eq!(
                    d.push(at, seq, 160 * u32::from(seq), false, 0),
                    Pushed::Duplicate
                );
                copies_due.remove(0);
            }
            d.tick(ms + 30);
        }
        d.jb.stats()
    };
    let (clean, copied) = (run(false), run(true));
    assert!(copied.duplicates >= 45, "{copied:?}");
    assert!(
        copied.target_ms <= clean.target_ms + 5.0,
        "{clean:?} / {copied:?}"
    );
    assert_eq!((copied.late, copied.lost), (0, 0), "{copied:?}");
}

#[test]
fn numbers_a_key_press_took_are_not_losses() {
    // Audio 0-9, a key press as events 10-17 (same source and numbering, to the DTMF
    // receiver), audio again from 18 after the key: no packet was lost. One of the audio
    // packets after it (25) does go missing.
    let mut d = Driver::new();
    let event = |seq: u16| RtpHeader {
        marker: seq == 10,
        pt: Pt(101),
        seq,
        timestamp: 1600,
        ssrc: Ssrc(1),
    };
    for k in 0..40u16 {
        let ms = 20 * u64::from(k);
        match k {
            0..10 => {
                d.push(ms, k, 160 * u32::from(k), k == 0, 0);
            }
            10..18 => d.jb.note_other_packet(&event(k)),
            25 => {}
            _ => {
                d.push(ms, k, 160 * u32::from(k), k == 18, 0);
            }
        }
        d.tick(ms);
    }
    assert_eq!(d.jb.stats().lost, 1, "{:?}", d.jb.stats());
}

#[test]
fn comfort_noise_and_silence_are_not_losses_and_talkspurts_recentre() {
    let mut d = Driver::new();
    let mut log = Vec::new();
    // 5 packets of speech, a CN packet, 400 ms of silence, then a new talkspurt.
    for k in 0..40u16 {
        let ms = 20 * u64::from(k);
        match k {
            0..=4 => drop(d.push(ms, k, 160 * u32::from(k), k == 0, 0)),
            5 => drop(d.push(ms, 5, 800, false, 13)),
            25.. => drop(d.push(ms, k - 19, 160 * u32::from(k), k == 25, 0)),
            _ => {}
        }
        log.push(d.tick(ms));
    }
    let st = d.jb.stats();
    assert_eq!((st.lost, st.underruns, st.late), (0, 0, 0), "{log:?}");
    assert_eq!(log[2..8], ["F0", "F1", "F2", "F3", "F4", "CN!"]);
    assert!(log[8..27].iter().all(|s| s == "CN"), "{log:?}");
    // The new talkspurt waits the target delay again, like the first packet did.
    assert_eq!(log[27..30], ["F6", "F7", "F8"]);
}

#[test]
fn timestamp_jump_resynchronises() {
    let mut d = Driver::new();
    let mut log = Vec::new();
    for k in 0..20u16 {
        let ms = 20 * u64::from(k);
        // Contiguous sequence numbers, but the timestamp jumps by an hour at k = 10.
        let ts = if k < 10 {
            160 * u32::from(k)
        } else {
            28_800_000 + 160 * u32::from(k)
        };
        let pushed = d.push(ms, k, ts, false, 0);
        assert_eq!(pushed == Pushed::Resynced, k == 10, "k {k}");
        log.push(d.tick(ms));
    }
    assert_eq!(d.jb.stats().resyncs, 1);
    assert_eq!(
        log[12..],
        ["F10", "F11", "F12", "F13", "F14", "F15", "F16", "F17"]
    );
}

#[test]
fn a_clock_rebased_backwards_by_less_than_the_resync_bound_restarts_at_once() {
    let mut d = Driver::new();
    let mut log = Vec::new();
    for k in 0..30u16 {
        let ms = 20 * u64::from(k);
        // In sequence, but from k = 10 the timestamps start again half a second back (a
        // phone after a hold): without a restart every packet would be late for 0.5 s.
        let back = if k < 10 { 0 } else { 4_000 };
        let pushed = d.push(ms, k, 100_000 + 160 * u32::from(k) - back, false, 0);
        assert_eq!(pushed == Pushed::Resynced, k == 10, "k {k}");
        log.push(d.tick(ms));
    }
    assert_eq!((d.jb.stats().resyncs, d.jb.stats().late), (1, 0));
    let expected: Vec<String> = (10..28).map(|k| format!("F{k}")).collect();
    assert_eq!(log[12..], expected);
}

#[test]
fn a_new_ssrc_restarts_the_stream() {
    let mut d = Driver::new();
    for k in 0..5u16 {
        d.push(20 * u64::from(k), k, 160 * u32::from(k), k == 0, 0);
        d.tick(20 * u64::from(k));
    }
    let header = RtpHeader {
        marker: true,
        pt: Pt(0),
        seq: 40_000,
        timestamp: 1,
        ssrc: Ssrc(2),
    };
    assert_eq!(d.jb.push(d.at(100), &header, b"x"), Pushed::Resynced);
    assert_eq!(d.jb.stats().ssrc_changes, 1);
    assert_eq!(d.jb.stats().buffered, 1);
}

#[test]
fn oversized_payloads_are_refused() {
    let mut jb = JitterBuffer::new(&JitterConfig {
        max_payload: 4,
        ..JitterConfig::default()
    });
    let header = RtpHeader {
        marker: false,
        pt: Pt(0),
        seq: 1,
        timestamp: 1,
        ssrc: Ssrc(1),
    };
    assert_eq!(jb.push(Instant::now(), &header, b"12345"), Pushed::TooLarge);
    assert_eq!(jb.stats().too_large, 1);
}

/// A sender (or a busy receiver) that stalls now and then for about the largest delay: the
/// target sits at its maximum, and the playout must not then drop and conceal frames by turns
/// (it did: a skip landed the cursor under the stretch threshold, and back; 92 % of the audio
/// was lost).
#[test]
fn a_target_at_its_maximum_does_not_drop_and_conceal_by_turns() {
    // Stalls within the largest delay: everything plays.
    let out = simulate(&Net {
        stalls: Some((1000, 150)),
        jitter_ms: 60,
        seconds: 30,
        ..Net::default()
    });
    assert_in_order(&out.played);
    let st = out.stats;
    assert!(st.target_ms >= 190.0, "{st:?}");
    assert_eq!(out.played.len() as u32, out.sent, "{st:?}");
    assert!(st.skipped + st.stretched <= 5, "{st:?}");
    // Stalls beyond it: each costs the frames that cut the delay back to it, no more.
    let out = simulate(&Net {
        stalls: Some((2000, 300)),
        jitter_ms: 20,
        seconds: 30,
        ..Net::default()
    });
    assert_in_order(&out.played);
    let st = out.stats;
    assert!(out.played.len() as u32 >= out.sent * 9 / 10, "{st:?}");
    assert!(st.skipped <= 15 * 6 && st.stretched <= 5, "{st:?}");
}
