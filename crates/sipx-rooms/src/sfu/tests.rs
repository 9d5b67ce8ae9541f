//! The routing of datagrams to sessions, with real WebRTC peers (str0m clients, full ICE) and
//! simulated time, no sockets: each peer's STUN must reach its own session, whose answer the
//! peer accepts (signed with that session's password) and so connects.
//!
//! Only ICE is awaited: str0m-to-str0m DTLS fails for many clients (upstream #932).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use str0m::change::SdpAnswer;
use str0m::media::{Direction, MediaKind};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Rtc};

use super::*;

const SFU: &str = "127.0.0.1:7000";
/// Simulated time a test may take.
const LIMIT: Duration = Duration::from_secs(10);
const STEP: Duration = Duration::from_millis(5);

struct Peer {
    id: ParticipantId,
    addr: SocketAddr,
    rtc: Rtc,
    connected: bool,
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn sfu(now: Instant) -> Sfu {
    Sfu::new(
        SfuConfig {
            candidate: addr(SFU),
            auto_create: true,
            empty_room_timeout: Duration::from_secs(60),
            max_participants: 10,
        },
        now,
    )
}

/// Joins `identity` to room "r" and negotiates a client publishing audio from `from`.
fn join(sfu: &mut Sfu, now: Instant, identity: &str, from: &str) -> Peer {
    let id = sfu
        .join(
            now,
            JoinRequest {
                room: RoomKey::new("app", "r"),
                identity: identity.to_owned(),
                name: identity.to_owned(),
                can_publish: true,
                can_subscribe: true,
                call_id: None,
                wall: 0,
            },
        )
        .unwrap();
    let mut rtc = Rtc::builder().build(now);
    rtc.add_local_candidate(Candidate::host(addr(from), "udp").unwrap());
    let mut change = rtc.sdp_api();
    change.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
    let (offer, pending) = change.apply().unwrap();
    let text = serde_json::json!({"type": "offer", "sdp": offer.to_sdp_string()}).to_string();
    sfu.handle_signal(now, id, &text);
    let mut answer = None;
    loop {
        match sfu.poll_output() {
            Output::Timeout(_) => break,
            Output::Signal {
                to,
                message: ServerMessage::Answer { sdp },
            } if to == id => answer = Some(sdp),
            _ => {}
        }
    }
    let answer = SdpAnswer::from_sdp_string(&answer.expect("an answer")).unwrap();
    rtc.sdp_api().accept_answer(pending, answer).unwrap();
    Peer {
        id,
        addr: addr(from),
        rtc,
        connected: false,
    }
}

/// Runs the peers and the SFU on simulated time until every peer's ICE is connected; returns
/// the time reached. Panics when that takes longer than `LIMIT`.
fn connect(sfu: &mut Sfu, peers: &mut [Peer], mut now: Instant) -> Instant {
    let deadline = now + LIMIT;
    while !peers.iter().all(|p| p.connected) {
        assert!(now < deadline, "ICE did not connect every peer");
        for p in peers.iter_mut() {
            p.rtc.handle_input(Input::Timeout(now)).unwrap();
            while let Ok(o) = p.rtc.poll_output() {
                match o {
                    str0m::Output::Timeout(_) => break,
                    str0m::Output::Transmit(t) => {
                        sfu.handle_datagram(now, t.source, t.destination, &t.contents)
                    }
                    str0m::Output::Event(Event::IceConnectionStateChange(
                        IceConnectionState::Connected | IceConnectionState::Completed,
                    )) => p.connected = true,
                    str0m::Output::Event(_) => {}
                }
            }
        }
        sfu.handle_timeout(now);
        loop {
            match sfu.poll_output() {
                Output::Timeout(_) => break,
                Output::Transmit {
                    destination,
                    contents,
                } => {
                    let Some(p) = peers.iter_mut().find(|p| p.addr == destination) else {
                        continue;
                    };
                    let input = Input::Receive(
                        now,
                        Receive {
                            proto: Protocol::Udp,
                            source: addr(SFU),
                            destination,
                            contents: contents.as_slice().try_into().unwrap(),
                        },
                    );
                    p.rtc.handle_input(input).unwrap();
                }
                _ => {}
            }
        }
        now += STEP;
    }
    now
}

#[test]
fn each_peer_reaches_its_own_session_and_is_routed_by_its_address() {
    let now = Instant::now();
    let mut sfu = sfu(now);
    let mut peers = vec![
        join(&mut sfu, now, "ann", "127.0.0.1:40001"),
        join(&mut sfu, now, "ben", "127.0.0.1:40002"),
    ];
    connect(&mut sfu, &mut peers, now);
    for p in &peers {
        assert_eq!(sfu.routes.get(&p.addr), Some(&p.id), "{}", p.addr);
    }
    assert_eq!(sfu.routes.len(), 2);
}

#[test]
fn a_new_session_from_a_departed_peers_address_is_not_routed_to_the_old_one() {
    let now = Instant::now();
    let mut sfu = sfu(now);
    let mut first = vec![join(&mut sfu, now, "ann", "127.0.0.1:40001")];
    let now = connect(&mut sfu, &mut first, now);
    let old = first[0].id;
    sfu.leave(now, old, LeaveReason::Left);
    assert!(sfu.routes.values().all(|id| *id != old));

    // Another peer on the same address (a reused port) joins and connects to its own session.
    let mut second = vec![join(&mut sfu, now, "cat", "127.0.0.1:40001")];
    connect(&mut sfu, &mut second, now);
    assert_eq!(sfu.routes.get(&second[0].addr), Some(&second[0].id));
    assert_ne!(second[0].id, old);
}

#[test]
fn datagrams_from_strangers_are_dropped_and_leave_no_route() {
    let now = Instant::now();
    let mut sfu = sfu(now);
    let _ann = join(&mut sfu, now, "ann", "127.0.0.1:40001");
    // An RTP-looking datagram from an address no session knows.
    let mut rtp = vec![0x80, 0x6f, 0, 1, 0, 0, 0, 1, 0, 0, 0, 2];
    rtp.extend_from_slice(&[0u8; 20]);
    sfu.handle_datagram(now, addr("127.0.0.1:49999"), addr(SFU), &rtp);
    assert!(sfu.routes.is_empty());
    loop {
        match sfu.poll_output() {
            Output::Timeout(_) => break,
            Output::Transmit { destination, .. } => panic!("sent {destination} something"),
            _ => {}
        }
    }
}

fn phone_loss(out: &[Output]) -> Vec<(ParticipantId, u8)> {
    out.iter()
        .filter_map(|o| match o {
            Output::PhoneLoss { phone, percent } => Some((*phone, *percent)),
            _ => None,
        })
        .collect()
}

#[test]
fn the_loss_a_browser_reports_on_a_phones_voice_sizes_that_phones_fec() {
    let now = Instant::now();
    let mut sfu = sfu(now);
    let request = |identity: &str, call: Option<&str>| JoinRequest {
        room: RoomKey::new("app", "r"),
        identity: identity.to_owned(),
        name: identity.to_owned(),
        can_publish: true,
        can_subscribe: true,
        call_id: call.map(str::to_owned),
        wall: 0,
    };
    let phone = sfu.join(now, request("phone", Some("call-1"))).unwrap();
    let web = sfu.join(now, request("web", None)).unwrap();
    sfu.drain_outputs();
    // The phone's voice reaches the browser on m-line "7" once negotiated; say it is.
    let mid = Mid::from("7");
    match sfu.participants.get_mut(&web).map(|p| &mut p.role) {
        Some(Role::Browser(b)) => {
            let track = b
                .tracks_out
                .iter_mut()
                .find(|t| t.source.origin == phone)
                .expect("the browser subscribes to the phone");
            track.state = crate::track::TrackOutState::Open(mid);
        }
        _ => panic!("web is a browser"),
    }
    let report = |sfu: &mut Sfu, mid: Mid, fraction: f32| {
        let mut reported = vec![BrowserOutput::ReportedLoss { mid, fraction }];
        sfu.process(now, web, &mut reported);
        phone_loss(&sfu.drain_outputs())
    };
    assert_eq!(
        report(&mut sfu, mid, 0.0),
        vec![],
        "no loss: no FEC, nothing to say"
    );
    assert_eq!(sfu.loss_reports(), 1);
    assert_eq!(report(&mut sfu, mid, 0.12), vec![(phone, 10)]);
    assert_eq!(report(&mut sfu, mid, 0.11), vec![], "same step");
    // Loss on an m-line that carries no phone's voice changes nothing.
    assert_eq!(report(&mut sfu, Mid::from("9"), 0.5), vec![]);
    // The listener leaves: nobody reports loss any more.
    sfu.leave(now, web, LeaveReason::Left);
    assert_eq!(phone_loss(&sfu.drain_outputs()), vec![(phone, 0)]);
}
