//! The media driver with real sockets: a "phone" (a UDP socket on loopback speaking PCMU) on a
//! leg of a running `MediaEngine`, and the room's side of its `PhoneLink` played by the test.
//! The phone answers every RTP packet the leg sends with one of its own, so both sides run at
//! the leg's 20 ms clock without sleeping; every socket read has a deadline.

#![allow(clippy::unwrap_used)]

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::mpsc as std_mpsc;
use std::time::Duration;

use sipx_codec::opus::{OpusDecoder, OpusEncoder};
use sipx_codec::tone::{Sine, goertzel_power, mean_power};
use sipx_codec::{
    AudioDecoder, AudioEncoder, CodecKind, Decoder, Encoder, EncoderOptions, new_decoder,
    new_encoder,
};
use sipx_media::leg::LegConfig;
use sipx_media::{Pt, RtpHeader, RtpPacket, Ssrc};
use tokio::sync::mpsc;

use super::{LegId, LegMode, MediaEngine, PhoneLink};
use crate::config::MediaConfig;

/// The tone the caller sends (DTMF "1"'s low tone) and the room's (its high tone).
const CALLER_HZ: f64 = 697.0;
const ROOM_HZ: f64 = 1209.0;
const AMPLITUDE: f64 = 8000.0;

/// A phone on loopback: sends PCMU RTP with a tone, keeps what it hears.
struct Phone {
    socket: UdpSocket,
    leg: SocketAddr,
    voice: Sine,
    encoder: Encoder,
    decoder: Decoder,
    seq: u16,
    heard: Vec<i16>,
}

/// The room's end of the link: one other participant sending a tone as 48 kHz Opus, and what
/// the room receives of the caller.
struct Room {
    link: Arc<PhoneLink>,
    woken: std_mpsc::Receiver<()>,
    voice: Sine,
    encoder: OpusEncoder,
    decoder: OpusDecoder,
    seq: u64,
    heard: Vec<i16>,
}

impl Phone {
    /// Waits (bounded) for the leg's next RTP packet and keeps its audio; then answers with
    /// 20 ms of tone. RTCP is read past.
    fn exchange(&mut self) {
        let mut buf = [0u8; 1500];
        let audio = loop {
            let (n, _) = self
                .socket
                .recv_from(&mut buf)
                .expect("the leg sends RTP every 20 ms");
            if let Ok(p) = RtpPacket::parse(&buf[..n])
                && p.header.pt == Pt(0)
            {
                break p.payload.to_vec();
            }
        };
        let mut pcm = vec![0i16; audio.len()];
        let n = self.decoder.decode(&audio, &mut pcm).unwrap();
        self.heard.extend_from_slice(&pcm[..n]);
        let mut frame = [0i16; 160];
        self.voice.fill(&mut frame);
        let mut payload = [0u8; 160];
        let len = self.encoder.encode(&frame, &mut payload).unwrap();
        let header = RtpHeader {
            marker: self.seq == 0,
            pt: Pt(0),
            seq: self.seq,
            timestamp: u32::from(self.seq) * 160,
            ssrc: Ssrc(0x5eed),
        };
        self.seq += 1;
        let mut packet = [0u8; 200];
        let len = header.write_packet(&payload[..len], &mut packet).unwrap();
        self.socket.send_to(&packet[..len], self.leg).unwrap();
    }

    /// Power at `frequency` in the last second heard.
    fn power(&self, frequency: f64) -> f64 {
        goertzel_power(last_second(&self.heard), frequency, 8000)
    }
}

impl Room {
    fn new() -> Room {
        let (tx, woken) = std_mpsc::channel();
        let link = PhoneLink::new(Arc::new(move || {
            let _ = tx.send(());
        }));
        Room {
            link,
            woken,
            voice: Sine::new(ROOM_HZ, 48_000, AMPLITUDE),
            encoder: OpusEncoder::new(48_000, &EncoderOptions::default().bitrate(32_000)).unwrap(),
            decoder: OpusDecoder::new(8000).unwrap(),
            seq: 0,
            heard: Vec::new(),
        }
    }

    /// Another participant's next 20 ms toward the phone, and the caller's packets from it.
    fn exchange(&mut self) {
        let mut pcm = [0i16; 960];
        self.voice.fill(&mut pcm);
        let mut payload = [0u8; 1275];
        let n = self.encoder.encode(&pcm, &mut payload).unwrap();
        self.link
            .push_downlink(7, self.seq, self.seq * 960, &payload[..n]);
        self.seq += 1;
        let (decoder, heard) = (&mut self.decoder, &mut self.heard);
        self.link.drain_uplink(|p| {
            let mut out = [0i16; 160];
            let n = decoder.decode(p.payload(), &mut out).unwrap();
            heard.extend_from_slice(&out[..n]);
            assert!(p.level.is_some_and(|l| l < 127));
        });
    }

    fn power(&self, frequency: f64) -> f64 {
        goertzel_power(last_second(&self.heard), frequency, 8000)
    }
}

fn last_second(pcm: &[i16]) -> &[i16] {
    &pcm[pcm.len().saturating_sub(8000)..]
}

fn sine_power() -> f64 {
    AMPLITUDE * AMPLITUDE / 2.0
}

/// A one-thread engine on its own port range, and a phone for a leg of it.
fn engine_and_phone(ports_from: u16) -> (MediaEngine, Phone, super::PortPair, LegConfig) {
    let (events, _events) = mpsc::unbounded_channel();
    let config = MediaConfig {
        rtp_port_min: ports_from,
        rtp_port_max: ports_from + 199,
        threads: 1,
        ..MediaConfig::default()
    };
    let engine = MediaEngine::start(&config, events).unwrap();
    let ports = engine.allocate_for(None).unwrap().0;
    let (phone, cfg) = phone_for(&ports, CALLER_HZ);
    (engine, phone, ports, cfg)
}

/// A PCMU phone saying `hz` to the leg on `ports`, and that leg's configuration.
fn phone_for(ports: &super::PortPair, hz: f64) -> (Phone, LegConfig) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let phone = Phone {
        leg: ports.rtp.local_addr().unwrap(),
        voice: Sine::new(hz, 8000, AMPLITUDE),
        encoder: new_encoder(CodecKind::Pcmu, 8000, &EncoderOptions::default()).unwrap(),
        decoder: new_decoder(CodecKind::Pcmu, 8000).unwrap(),
        seq: 0,
        heard: Vec::new(),
        socket,
    };
    let cfg = LegConfig {
        local_ssrc: 0x1e9,
        cname: "room-test".to_owned(),
        ..LegConfig::new(CodecKind::Pcmu, 0, phone.socket.local_addr().unwrap())
    };
    (phone, cfg)
}

#[test]
fn a_pcmu_call_joins_a_room_and_leaves_it() {
    let (engine, mut phone, ports, cfg) = engine_and_phone(47_000);
    let id: LegId = engine.new_leg_id();
    // Waiting for the room: the phone hears silence.
    engine.add_leg(id, ports, cfg, LegMode::Silence);
    for _ in 0..25 {
        phone.exchange();
    }
    assert!(mean_power(last_second(&phone.heard)) < 1.0);

    let mut room = Room::new();
    engine.set_mode(id, LegMode::Room(room.link.clone()));
    for _ in 0..100 {
        phone.exchange();
        room.exchange();
    }
    // The room hears the caller's tone, as Opus.
    assert!(room.woken.try_iter().count() > 40);
    let caller = room.power(CALLER_HZ);
    assert!(
        caller > 0.5 * sine_power(),
        "room hears the caller at {caller}"
    );
    assert!(room.power(ROOM_HZ) < 0.01 * sine_power());
    // The phone hears the room, and not itself.
    let other = phone.power(ROOM_HZ);
    assert!(
        other > 0.5 * sine_power(),
        "phone hears the room at {other}"
    );
    assert!(phone.power(CALLER_HZ) < 0.01 * sine_power());

    // The room ends the link: silence for the phone.
    room.link.close();
    for _ in 0..60 {
        phone.exchange();
        room.exchange();
    }
    assert!(mean_power(last_second(&phone.heard)) < 1.0);

    // Back to the echo test: the phone hears itself.
    engine.set_mode(id, LegMode::Echo);
    for _ in 0..60 {
        phone.exchange();
    }
    let echo = phone.power(CALLER_HZ);
    assert!(echo > 0.5 * sine_power(), "echo at {echo}");

    // Into another room, then the call ends: that link is closed for the rooms side.
    let next = Room::new();
    engine.set_mode(id, LegMode::Room(next.link.clone()));
    engine.remove_leg(id);
    // The leg's last datagram is an RTCP BYE (RFC 3550 §6.3.7); then nothing comes.
    let mut bye = false;
    for _ in 0..20 {
        let mut buf = [0u8; 1500];
        let Ok((n, _)) = phone.socket.recv_from(&mut buf) else {
            break;
        };
        bye |= rtcp_types(&buf[..n]).contains(&203);
    }
    assert!(bye, "no RTCP BYE from a removed leg");
    assert!(
        next.link.is_closed(),
        "the link of a removed leg stays open"
    );
}

/// The packet types of an RTCP compound packet (none for RTP).
fn rtcp_types(packet: &[u8]) -> Vec<u8> {
    let mut types = Vec::new();
    let mut at = 0;
    while packet.len() >= at + 4 && (200..=206).contains(&packet[at + 1]) {
        types.push(packet[at + 1]);
        at += (usize::from(u16::from_be_bytes([packet[at + 2], packet[at + 3]])) + 1) * 4;
    }
    types
}

#[test]
fn the_room_is_sent_nothing_while_nobody_hears_the_caller_or_the_caller_is_silent() {
    let (engine, mut phone, ports, cfg) = engine_and_phone(47_200);
    let id = engine.new_leg_id();
    let mut room = Room::new();
    // Alone in the room: the caller's tone is not encoded.
    room.link.set_audience([]);
    engine.add_leg(id, ports, cfg, LegMode::Room(room.link.clone()));
    for _ in 0..50 {
        phone.exchange();
        room.exchange();
    }
    assert!(
        room.heard.is_empty(),
        "{} samples reached nobody",
        room.heard.len()
    );
    assert_eq!(room.woken.try_iter().count(), 0);
    // Someone joined: the voice flows, and the phone hears the room meanwhile.
    room.link.set_audience([99]);
    for _ in 0..50 {
        phone.exchange();
        room.exchange();
    }
    assert!(room.power(CALLER_HZ) > 0.5 * sine_power());
    assert!(phone.power(ROOM_HZ) > 0.5 * sine_power());
    // The phone sends digital silence (PCMU's zero code): nothing goes to the room.
    phone.voice = Sine::new(CALLER_HZ, 8000, 0.0);
    for _ in 0..10 {
        phone.exchange();
        room.exchange();
    }
    let before = room.heard.len();
    for _ in 0..50 {
        phone.exchange();
        room.exchange();
    }
    assert_eq!(
        room.heard.len(),
        before,
        "digital silence was encoded for the room"
    );
    engine.remove_leg(id);
}

/// The second phone's tone.
const B_HZ: f64 = 852.0;

/// Two phones (A at the caller's tone, B at [`B_HZ`]) in room 1 as participants 10 and 11, on
/// one media thread; `before` sets their links up before their legs start.
fn two_phones(
    base_port: u16,
    before: impl FnOnce(&PhoneLink, &PhoneLink),
) -> (
    MediaEngine,
    Phone,
    Phone,
    Arc<PhoneLink>,
    Arc<PhoneLink>,
    LegId,
    LegId,
) {
    let (engine, a, ports_a, cfg_a) = engine_and_phone(base_port);
    let ports_b = engine.allocate_for(None).unwrap().0;
    let (b, cfg_b) = phone_for(&ports_b, B_HZ);
    let (link_a, link_b) = (Room::new().link, Room::new().link);
    for (link, participant) in [(&link_a, 10), (&link_b, 11)] {
        link.set_joined(super::Joined {
            room: 1,
            participant,
        });
    }
    before(&link_a, &link_b);
    let (id_a, id_b) = (
        engine.new_leg_id_near(&"weekly"),
        engine.new_leg_id_near(&"weekly"),
    );
    engine.add_leg(id_a, ports_a, cfg_a, LegMode::Room(link_a.clone()));
    engine.add_leg(id_b, ports_b, cfg_b, LegMode::Room(link_b.clone()));
    (engine, a, b, link_a, link_b, id_a, id_b)
}

/// Two phones of one room on one media thread, with the test playing the SFU: each phone's
/// voice goes to the other's link (keyed by its participant). They share one group, where each
/// participant is decoded once for both: a browser's tone put on A's link only (the SFU would
/// put it on both) reaches B too. Each hears the other and the browser, never itself.
#[test]
fn two_phones_of_a_room_hear_each_other_and_not_themselves() {
    let (engine, mut a, mut b, link_a, link_b, id_a, id_b) = two_phones(47_400, |_, _| {});
    let mut browser = Sine::new(ROOM_HZ, 48_000, AMPLITUDE);
    let mut encoder = OpusEncoder::new(48_000, &EncoderOptions::default().bitrate(32_000)).unwrap();
    let (mut pcm, mut payload) = ([0i16; 960], [0u8; 1275]);
    for seq in 0..100u64 {
        a.exchange();
        b.exchange();
        browser.fill(&mut pcm);
        let n = encoder.encode(&pcm, &mut payload).unwrap();
        link_a.push_downlink(7, seq, seq * 960, &payload[..n]);
        link_a.drain_uplink(|p| link_b.push_downlink(10, p.seq, p.rtp_time, p.payload()));
        link_b.drain_uplink(|p| link_a.push_downlink(11, p.seq, p.rtp_time, p.payload()));
    }
    let hears = |phone: &Phone, f: f64| phone.power(f) > 0.3 * sine_power();
    let deaf = |phone: &Phone, f: f64| phone.power(f) < 0.01 * sine_power();
    assert!(hears(&a, B_HZ) && hears(&a, ROOM_HZ) && deaf(&a, CALLER_HZ));
    assert!(hears(&b, CALLER_HZ) && hears(&b, ROOM_HZ) && deaf(&b, B_HZ));
    engine.remove_leg(id_a);
    engine.remove_leg(id_b);
}

/// Two phones of one room on one media thread that only hear each other (as the rooms thread
/// says): their voices cross as PCM inside the group, and nothing is encoded for the room.
/// Then a browser joins (it hears both): their voices go to the room as well, and each phone
/// still hears the other once, not also through the room's copy of its voice.
#[test]
fn phones_that_only_hear_each_other_mix_on_their_thread_without_opus() {
    let (engine, mut a, mut b, link_a, link_b, id_a, id_b) =
        two_phones(47_600, |link_a, link_b| {
            link_a.set_audience([11]);
            link_b.set_audience([10]);
        });
    let mut uplink = 0;
    for _ in 0..60 {
        a.exchange();
        b.exchange();
        link_a.drain_uplink(|_| uplink += 1);
        link_b.drain_uplink(|_| uplink += 1);
    }
    assert_eq!(
        uplink, 0,
        "voices encoded for a room where nobody else listens"
    );
    let hears = |phone: &Phone, f: f64| phone.power(f) > 0.3 * sine_power();
    let deaf = |phone: &Phone, f: f64| phone.power(f) < 0.01 * sine_power();
    assert!(hears(&a, B_HZ) && deaf(&a, CALLER_HZ));
    assert!(hears(&b, CALLER_HZ) && deaf(&b, B_HZ));

    // A browser (participant 7) joins and hears both: the voices go to the room, and the SFU
    // forwards each to the other phone too, which must not hear it twice.
    link_a.set_audience([11, 7]);
    link_b.set_audience([10, 7]);
    let mut to_browser = 0;
    for _ in 0..60 {
        a.exchange();
        b.exchange();
        link_a.drain_uplink(|p| {
            to_browser += 1;
            link_b.push_downlink(10, p.seq, p.rtp_time, p.payload());
        });
        link_b.drain_uplink(|p| {
            to_browser += 1;
            link_a.push_downlink(11, p.seq, p.rtp_time, p.payload());
        });
    }
    assert!(
        to_browser > 100,
        "only {to_browser} packets for the browser"
    );
    // Heard once: the tone's power stays that of one copy (two copies in phase would be ~4x,
    // out of phase would cancel).
    let once = |phone: &Phone, f: f64| {
        let p = phone.power(f);
        p > 0.3 * sine_power() && p < 1.5 * sine_power()
    };
    assert!(once(&a, B_HZ) && deaf(&a, CALLER_HZ));
    assert!(once(&b, CALLER_HZ) && deaf(&b, B_HZ));

    // Muted (the rooms thread says nobody hears A): B no longer hears A either.
    link_a.set_audience([]);
    for _ in 0..60 {
        a.exchange();
        b.exchange();
        link_a.drain_uplink(|_| {});
        link_b.drain_uplink(|_| {});
    }
    assert!(deaf(&b, CALLER_HZ), "a muted phone is heard beside it");
    engine.remove_leg(id_a);
    engine.remove_leg(id_b);
}

/// CPU seconds the threads named `name` of this process have used (the test runs in its own
/// process under nextest, so they are this test's engine's).
#[cfg(target_os = "linux")]
fn thread_cpu_seconds(name: &str) -> f64 {
    let ticks = std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|task| {
            let path = task.ok()?.path();
            let comm = std::fs::read_to_string(path.join("comm")).ok()?;
            if comm.trim() != name {
                return None;
            }
            let stat = std::fs::read_to_string(path.join("stat")).ok()?;
            let fields: Vec<u64> = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .filter_map(|f| f.parse().ok())
                .collect();
            // utime and stime: fields 14 and 15 of stat, 11 and 12 after the command.
            Some(fields.get(10)? + fields.get(11)?)
        })
        .sum::<u64>();
    // Linux reports these in USER_HZ, 100 a second on every architecture it runs on.
    ticks as f64 / 100.0
}

#[cfg(target_os = "linux")]
#[test]
fn a_media_thread_sleeps_once_its_last_leg_is_gone() {
    let (events, mut events_rx) = mpsc::unbounded_channel();
    let config = MediaConfig {
        rtp_port_min: 47_400,
        rtp_port_max: 47_599,
        threads: 1,
        ..MediaConfig::default()
    };
    let engine = MediaEngine::start(&config, events).unwrap();
    let ports = engine.allocate_for(None).unwrap().0;
    let (mut phone, mut cfg) = phone_for(&ports, CALLER_HZ);
    // A leg timer due soon after the leg is gone: the media timeout.
    cfg.media_timeout = Duration::from_millis(100);
    let id = engine.new_leg_id();
    engine.add_leg(id, ports, cfg, LegMode::Silence);
    // A few ticks with media: the thread has the leg's next timer in mind.
    for _ in 0..5 {
        phone.exchange();
    }
    engine.remove_leg(id);
    let ended = loop {
        match events_rx.blocking_recv() {
            Some(super::MediaEvent::Ended { leg, .. }) if leg == id => break true,
            Some(_) => continue,
            None => break false,
        }
    };
    assert!(ended);
    // Past the removed leg's timer, the thread must be asleep: well under 10 % of a core
    // (spinning, it took all of one).
    std::thread::sleep(Duration::from_millis(300));
    let before = thread_cpu_seconds("sipx-media-0");
    std::thread::sleep(Duration::from_millis(1000));
    let used = thread_cpu_seconds("sipx-media-0") - before;
    assert!(
        used < 0.1,
        "the idle media thread used {used} s of CPU in 1 s"
    );
}

#[test]
fn a_dual_stack_engine_binds_each_leg_in_its_peers_family() {
    let (events, _events) = mpsc::unbounded_channel();
    let base = MediaConfig {
        rtp_port_min: 47_800,
        rtp_port_max: 47_899,
        threads: 1,
        ..MediaConfig::default()
    };
    let v6: std::net::IpAddr = "::1".parse().unwrap();
    let config = MediaConfig {
        second_ip: Some(v6),
        second_external_ip: Some("2001:db8::7".parse().unwrap()),
        ..base.clone()
    };
    let engine = MediaEngine::start(&config, events.clone()).unwrap();
    let (ports, advertised) = engine
        .allocate_for(Some("2001:db8::1".parse().unwrap()))
        .unwrap();
    assert_eq!(ports.rtp.local_addr().unwrap().ip(), v6);
    assert_eq!(
        advertised,
        "2001:db8::7".parse::<std::net::IpAddr>().unwrap()
    );
    for peer in [Some("192.0.2.1".parse().unwrap()), None] {
        let (ports, advertised) = engine.allocate_for(peer).unwrap();
        assert_eq!(ports.rtp.local_addr().unwrap().ip(), base.ip);
        assert_eq!(advertised, base.ip);
    }
    // Without a second address, an IPv6 peer's leg is on media.ip (its offer is then refused
    // by the SDP side, 488, as before).
    let single = MediaEngine::start(&base, events.clone()).unwrap();
    let (ports, advertised) = single.allocate_for(Some(v6)).unwrap();
    assert_eq!(
        (ports.rtp.local_addr().unwrap().ip(), advertised),
        (base.ip, base.ip)
    );
    // A second address of the same family, or an external one without it or of another
    // family, is a configuration error.
    for bad in [
        MediaConfig {
            second_ip: Some("127.0.0.2".parse().unwrap()),
            ..base.clone()
        },
        MediaConfig {
            second_external_ip: Some(v6),
            ..base.clone()
        },
        MediaConfig {
            second_ip: Some(v6),
            second_external_ip: Some("192.0.2.9".parse().unwrap()),
            ..base.clone()
        },
    ] {
        assert!(MediaEngine::start(&bad, events.clone()).is_err(), "{bad:?}");
    }
}

#[test]
fn a_datagram_too_big_for_the_receive_buffer_is_dropped_whole() {
    // Cut to the buffer's size, a 4000-byte datagram would read as valid RTP and, coming
    // first, teach the leg its sender's address: the call's audio would go there.
    let (engine, mut phone, ports, cfg) = engine_and_phone(48_200);
    let id = engine.new_leg_id();
    engine.add_leg(id, ports, cfg, LegMode::Echo);
    let stranger = UdpSocket::bind("127.0.0.1:0").unwrap();
    stranger
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut big = vec![0u8; 4000];
    big[0] = 0x80;
    big[8..12].copy_from_slice(&0x5bad_u32.to_be_bytes());
    stranger.send_to(&big, phone.leg).unwrap();
    for _ in 0..25 {
        phone.exchange();
    }
    let mut buf = [0u8; 1500];
    assert!(
        stranger.recv_from(&mut buf).is_err(),
        "the leg sent to the sender of a datagram it cut short"
    );
    engine.remove_leg(id);
}
