//! The SFU without a network: phone participants (no WebRTC) and a browser's signalling show
//! how rooms, forwarding, mute, removal and events behave.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::signal::{LeaveReason, ServerMessage};
use crate::{JoinRequest, Output, ParticipantId, RoomError, RoomEvent, RoomKey, Sfu, SfuConfig};

fn sfu(auto_create: bool) -> (Sfu, Instant) {
    let now = Instant::now();
    let cfg = SfuConfig {
        candidate: SocketAddr::from(([127, 0, 0, 1], 7882)),
        auto_create,
        empty_room_timeout: Duration::from_secs(60),
        max_participants: 3,
    };
    (Sfu::new(cfg, now), now)
}

fn key(name: &str) -> RoomKey {
    RoomKey::new("app_1", name)
}

fn phone(room: &str, identity: &str) -> JoinRequest {
    JoinRequest {
        room: key(room),
        identity: identity.to_owned(),
        name: identity.to_owned(),
        can_publish: true,
        can_subscribe: true,
        call_id: Some(format!("call-{identity}")),
        wall: 1_800_000_000,
    }
}

fn browser(room: &str, identity: &str) -> JoinRequest {
    JoinRequest {
        call_id: None,
        ..phone(room, identity)
    }
}

/// Everything the SFU has to say, up to its timeout.
fn drain(sfu: &mut Sfu) -> Vec<Output> {
    sfu.drain_outputs()
}

#[test]
fn a_phones_voice_reaches_the_other_phones_of_its_room_only() {
    let (mut sfu, now) = sfu(true);
    let a = sfu.join(now, phone("sales", "a")).unwrap();
    let b = sfu.join(now, phone("sales", "b")).unwrap();
    let c = sfu.join(now, phone("other", "c")).unwrap();
    drain(&mut sfu);
    sfu.handle_phone_audio(now, a, 7, 960, Some(30), &[1, 2, 3]);
    let out = drain(&mut sfu);
    let to: Vec<(ParticipantId, ParticipantId, u64, u64)> = out
        .iter()
        .filter_map(|o| match o {
            Output::ToPhone {
                to,
                source,
                seq,
                rtp_time,
                payload,
            } => {
                assert_eq!(&payload[..], &[1, 2, 3]);
                Some((*to, *source, *seq, *rtp_time))
            }
            _ => None,
        })
        .collect();
    assert_eq!(to, vec![(b, a, 7, 960)]);
    let _ = c;
}

#[test]
fn a_muted_participant_is_not_heard_and_everyone_is_told() {
    let (mut sfu, now) = sfu(true);
    let a = sfu.join(now, phone("sales", "a")).unwrap();
    let _b = sfu.join(now, phone("sales", "b")).unwrap();
    let _w = sfu.join(now, browser("sales", "web")).unwrap();
    drain(&mut sfu);
    let view = sfu.set_muted(&key("sales"), "a", true).unwrap();
    assert!(view.muted);
    let out = drain(&mut sfu);
    assert!(out.iter().any(|o| matches!(o,
        Output::Signal { message: ServerMessage::ParticipantUpdated { participant }, .. }
            if participant.identity == "a" && participant.muted)));
    sfu.handle_phone_audio(now, a, 1, 960, None, &[9]);
    assert!(
        !drain(&mut sfu)
            .iter()
            .any(|o| matches!(o, Output::ToPhone { .. }))
    );
    assert_eq!(
        sfu.set_muted(&key("sales"), "nobody", true),
        Err(RoomError::ParticipantNotFound)
    );
}

/// The `PhoneHeard` changes in `out`, in order, each list sorted.
fn phone_heard(out: &[Output]) -> Vec<(ParticipantId, Vec<ParticipantId>)> {
    out.iter()
        .filter_map(|o| match o {
            Output::PhoneHeard { phone, heard_by } => {
                let mut list = heard_by.clone();
                list.sort();
                Some((*phone, list))
            }
            _ => None,
        })
        .collect()
}

/// Whether each phone told is heard at all.
fn heard(out: &[Output]) -> Vec<(ParticipantId, bool)> {
    phone_heard(out)
        .into_iter()
        .map(|(phone, list)| (phone, !list.is_empty()))
        .collect()
}

#[test]
fn a_phone_is_told_whether_anyone_hears_it_as_that_changes() {
    let (mut sfu, now) = sfu(true);
    let a = sfu.join(now, phone("sales", "a")).unwrap();
    assert_eq!(heard(&drain(&mut sfu)), vec![(a, false)], "alone");
    // A browser that only publishes hears nobody.
    let talker = JoinRequest {
        can_subscribe: false,
        ..browser("sales", "talker")
    };
    sfu.join(now, talker).unwrap();
    assert_eq!(heard(&drain(&mut sfu)), vec![]);
    let b = sfu.join(now, phone("sales", "b")).unwrap();
    assert_eq!(heard(&drain(&mut sfu)), vec![(a, true), (b, true)]);
    // Muted, its voice goes nowhere; unmuted, it does again.
    sfu.set_muted(&key("sales"), "a", true).unwrap();
    assert_eq!(heard(&drain(&mut sfu)), vec![(a, false)]);
    sfu.set_muted(&key("sales"), "a", false).unwrap();
    assert_eq!(heard(&drain(&mut sfu)), vec![(a, true)]);
    sfu.leave(now, b, LeaveReason::Hangup);
    assert_eq!(heard(&drain(&mut sfu)), vec![(a, false)]);
    // Another room's members change nothing here.
    sfu.join(now, phone("other", "c")).unwrap();
    assert!(!heard(&drain(&mut sfu)).iter().any(|(p, _)| *p == a));
}

/// The `PhoneHeard` lists in `out` for `phone`.
fn heard_by(out: &[Output], phone: ParticipantId) -> Vec<Vec<ParticipantId>> {
    phone_heard(out)
        .into_iter()
        .filter(|(p, _)| *p == phone)
        .map(|(_, list)| list)
        .collect()
}

#[test]
fn a_phone_is_told_who_hears_it_so_its_media_thread_can_tell_phones_beside_it_from_others() {
    let (mut sfu, now) = sfu(true);
    let a = sfu.join(now, phone("sales", "a")).unwrap();
    assert_eq!(heard_by(&drain(&mut sfu), a), vec![vec![]], "alone");
    let b = sfu.join(now, phone("sales", "b")).unwrap();
    assert_eq!(heard_by(&drain(&mut sfu), a), vec![vec![b]]);
    let web = sfu.join(now, browser("sales", "web")).unwrap();
    let mut both = vec![b, web];
    both.sort();
    assert_eq!(heard_by(&drain(&mut sfu), a), vec![both]);
    // Still heard, by fewer: the list changed, so the phone is told.
    sfu.leave(now, web, LeaveReason::Left);
    assert_eq!(heard_by(&drain(&mut sfu), a), vec![vec![b]]);
    // Muted: nobody, not even the phone beside it.
    sfu.set_muted(&key("sales"), "a", true).unwrap();
    assert_eq!(heard_by(&drain(&mut sfu), a), vec![vec![]]);
}

#[test]
fn removing_a_phone_reports_why_so_its_call_is_hung_up() {
    let (mut sfu, now) = sfu(true);
    let a = sfu.join(now, phone("sales", "a")).unwrap();
    let b = sfu.join(now, phone("sales", "b")).unwrap();
    drain(&mut sfu);
    sfu.remove_participant(now, &key("sales"), "a").unwrap();
    let out = drain(&mut sfu);
    assert!(out.iter().any(|o| matches!(o,
        Output::Event(RoomEvent::Left { id, reason: LeaveReason::Removed, call_id: Some(c), .. })
            if *id == a && c == "call-a")));
    // b's media thread forgets a's decoder.
    assert!(out.iter().any(|o| matches!(o,
        Output::SourceGone { to, source } if *to == b && *source == a)));
    // Leaving twice is harmless; the room view shows who is left.
    sfu.leave(now, a, LeaveReason::Hangup);
    assert!(drain(&mut sfu).is_empty());
    let view = sfu.room(&key("sales")).unwrap();
    assert_eq!(view.participants.len(), 1);
    assert_eq!(view.participants[0].identity, "b");
}

#[test]
fn closing_a_room_removes_everyone_and_the_same_identity_replaces_itself() {
    let (mut sfu, now) = sfu(true);
    let first = sfu.join(now, browser("sales", "ann")).unwrap();
    let out = drain(&mut sfu);
    assert!(out.iter().any(|o| matches!(o,
        Output::Signal { to, message: ServerMessage::Welcome { room, .. } } if *to == first && room == "sales")));
    let second = sfu.join(now, browser("sales", "ann")).unwrap();
    let out = drain(&mut sfu);
    assert!(out.iter().any(|o| matches!(o,
        Output::Signal { to, message: ServerMessage::Closed { reason: LeaveReason::Replaced } } if *to == first)));
    let _p = sfu.join(now, phone("sales", "p")).unwrap();
    drain(&mut sfu);
    sfu.close_room(now, &key("sales")).unwrap();
    let out = drain(&mut sfu);
    assert!(out.iter().any(|o| matches!(o,
        Output::Signal { to, message: ServerMessage::Closed { reason: LeaveReason::RoomClosed } } if *to == second)));
    assert!(out.iter().any(|o| matches!(
        o,
        Output::Event(RoomEvent::Left {
            reason: LeaveReason::RoomClosed,
            call_id: Some(_),
            ..
        })
    )));
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::Event(RoomEvent::Closed { .. })))
    );
    assert!(sfu.room(&key("sales")).is_none());
    assert_eq!(sfu.close_room(now, &key("sales")), Err(RoomError::NotFound));
}

#[test]
fn rooms_are_per_application_bounded_and_named_safely() {
    let (mut sfu, now) = sfu(false);
    assert_eq!(sfu.join(now, phone("sales", "a")), Err(RoomError::NotFound));
    sfu.create_room(now, key("sales"), 1).unwrap();
    assert_eq!(
        sfu.create_room(now, key("sales"), 1),
        Err(RoomError::AlreadyExists)
    );
    assert_eq!(
        sfu.create_room(now, key("bad name"), 1),
        Err(RoomError::InvalidName)
    );
    for who in ["a", "b", "c"] {
        sfu.join(now, phone("sales", who)).unwrap();
    }
    assert_eq!(sfu.join(now, phone("sales", "d")), Err(RoomError::Full));
    assert_eq!(sfu.rooms_of("app_1").len(), 1);
    assert!(sfu.rooms_of("app_2").is_empty());
    assert!(sfu.room(&RoomKey::new("app_2", "sales")).is_none());
}

#[test]
fn an_auto_created_room_closes_once_empty_for_long_enough() {
    let (mut sfu, now) = sfu(true);
    let a = sfu.join(now, phone("pop-up", "a")).unwrap();
    sfu.leave(now, a, LeaveReason::Hangup);
    drain(&mut sfu);
    sfu.handle_timeout(now + Duration::from_secs(59));
    assert!(sfu.room(&key("pop-up")).is_some());
    sfu.handle_timeout(now + Duration::from_secs(61));
    assert!(sfu.room(&key("pop-up")).is_none());
    assert!(
        drain(&mut sfu)
            .iter()
            .any(|o| matches!(o, Output::Event(RoomEvent::Closed { .. })))
    );
}

#[test]
fn bad_signalling_gets_an_error_not_a_failure() {
    let (mut sfu, now) = sfu(true);
    let w = sfu.join(now, browser("sales", "web")).unwrap();
    drain(&mut sfu);
    for text in [
        "not json",
        r#"{"type":"dance"}"#,
        r#"{"type":"offer","sdp":"garbage"}"#,
    ] {
        sfu.handle_signal(now, w, text);
        let out = drain(&mut sfu);
        assert!(
            out.iter().any(|o| matches!(
                o,
                Output::Signal {
                    message: ServerMessage::Error { .. },
                    ..
                }
            )),
            "{text}: {out:?}"
        );
    }
    // The parser's own words name server memory: the client gets a plain one.
    sfu.handle_signal(now, w, r#"{"type":"offer","sdp":"v=0\r\nbroken"}"#);
    let said: Vec<String> = drain(&mut sfu)
        .into_iter()
        .filter_map(|o| match o {
            Output::Signal {
                message: ServerMessage::Error { message, .. },
                ..
            } => Some(message),
            _ => None,
        })
        .collect();
    assert_eq!(said, ["bad offer: the SDP could not be read"]);
    sfu.handle_signal(now, w, r#"{"type":"ping"}"#);
    assert!(drain(&mut sfu).iter().any(|o| matches!(
        o,
        Output::Signal {
            message: ServerMessage::Pong,
            ..
        }
    )));
    assert_eq!(sfu.room(&key("sales")).unwrap().participants.len(), 1);
}

#[test]
fn a_phone_that_speaks_is_announced_as_a_speaker() {
    let (mut sfu, now) = sfu(true);
    let a = sfu.join(now, phone("sales", "a")).unwrap();
    let _w = sfu.join(now, browser("sales", "web")).unwrap();
    drain(&mut sfu);
    let mut t = now;
    let mut announced = false;
    for seq in 0..20 {
        sfu.handle_phone_audio(t, a, seq, seq * 960, Some(10), &[1]);
        announced |= drain(&mut sfu).iter().any(|o| {
            matches!(o,
            Output::Signal { message: ServerMessage::Speaking { speakers }, .. }
                if speakers.iter().any(|s| s.identity == "a"))
        });
        t += Duration::from_millis(20);
    }
    assert!(announced);
    assert!(sfu.room(&key("sales")).unwrap().participants[0].speaking);
}

#[test]
fn a_browser_replaces_only_a_browser_and_a_phone_is_never_replaced() {
    let (mut sfu, now) = sfu(true);
    let caller = sfu.join(now, phone("desk", "cust")).unwrap();
    // A browser taking a live caller's identity, or another call with it: refused, the caller
    // stays.
    assert_eq!(
        sfu.join(now, browser("desk", "cust")),
        Err(RoomError::IdentityTaken)
    );
    assert_eq!(
        sfu.join(now, phone("desk", "cust")),
        Err(RoomError::IdentityTaken)
    );
    // A call may not take a browser's identity either.
    let agent = sfu.join(now, browser("desk", "agent")).unwrap();
    assert_eq!(
        sfu.join(now, phone("desk", "agent")),
        Err(RoomError::IdentityTaken)
    );
    drain(&mut sfu);
    // The same browser reconnecting replaces its older connection.
    let again = sfu.join(now, browser("desk", "agent")).unwrap();
    assert_ne!(again, agent);
    let view = sfu.room(&key("desk")).unwrap();
    let mut members: Vec<_> = view
        .participants
        .iter()
        .map(|p| p.identity.as_str())
        .collect();
    members.sort_unstable();
    assert_eq!(members, ["agent", "cust"]);
    assert!(sfu.participant_id(&key("desk"), "cust") == Some(caller));
}
