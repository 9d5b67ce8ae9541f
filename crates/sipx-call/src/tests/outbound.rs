//! Dial-out: the happy path, every way a call ends (one table), and DTMF after answer.

use std::time::Duration;

use super::Step::{At, FireNext, Hangup, In};
use super::*;
use crate::CallStateKind::{Calling, Confirmed, Connecting, Disconnected, Early};
use crate::{Digit, Invite, MediaMode};

fn invite() -> Command {
    Command::SendInvite(Invite {
        to: "+4930123456".to_owned(),
        from: Some("+4930999".to_owned()),
        route: Some("trunk_1".to_owned()),
    })
}

fn join() -> Command {
    Command::JoinRoom(room())
}

#[test]
fn happy_path_calling_early_confirmed_disconnected_with_codes_and_times() {
    for remote_hangs_up in [false, true] {
        let mut d = Driver::outbound(dial_out());
        assert_eq!(d.commands(), [join()]);
        assert_eq!(d.ms(d.timeout.unwrap()), 30_000, "ring timeout armed");

        assert_eq!(d.at(5).input(joined()), [invite()]);
        assert_eq!(d.call.participant(), Some("p1"));
        assert!(d.at(20).input(response(100, "Trying", false)).is_empty());
        assert!(d.at(300).input(response(180, "Ringing", false)).is_empty());
        // A retransmitted 180 adds nothing.
        assert!(d.at(800).input(response(180, "Ringing", false)).is_empty());
        assert_eq!(
            d.at(4000).input(response(200, "OK", true)),
            [
                Command::StartMedia,
                Command::SetMediaMode(MediaMode::Bridged)
            ]
        );
        assert_eq!(d.call.answered_at(), Some(d.now));
        assert_eq!(
            d.ms(d.timeout.unwrap()),
            4000 + 1_800_000,
            "max duration armed"
        );

        d.at(64_000);
        let teardown = if remote_hangs_up {
            d.input(sip(SipInput::Bye))
        } else {
            d.hangup()
        };
        let mut expected = vec![Command::LeaveRoom, Command::StopMedia];
        if !remote_hangs_up {
            expected.insert(0, Command::SendBye);
        }
        assert_eq!(teardown, expected);

        assert_eq!(
            d.states(),
            [
                st(Calling, 0, ""),
                st(Early, 180, "Ringing"),
                st(Connecting, 200, "OK"),
                st(Confirmed, 200, "OK"),
                st(Disconnected, 200, "Normal call clearing"),
            ]
        );
        let times: Vec<u64> = d.call.history().iter().map(|s| d.ms(s.at)).collect();
        assert_eq!(times, [0, 300, 4000, 4000, 64_000]);
        let cause = if remote_hangs_up {
            EndCause::RemoteHangup
        } else {
            EndCause::LocalHangup
        };
        assert_eq!(d.ending().2, Some(cause));
        d.assert_finished();
    }
}

/// One way a dial-out ends.
struct Case {
    name: &'static str,
    params: DialOut,
    steps: Vec<Step>,
    /// Every command of the call, in order.
    commands: Vec<Command>,
    states: Vec<CallStateKind>,
    end: (u16, &'static str, EndCause),
    /// When `DISCONNECTED` is recorded, in ms from the start.
    ended_at: u64,
}

fn ringing() -> Vec<Step> {
    vec![
        At(5),
        In(joined()),
        In(response(100, "Trying", false)),
        At(300),
        In(response(180, "Ringing", false)),
    ]
}

fn answered() -> Vec<Step> {
    let mut s = ringing();
    s.extend([At(4000), In(response(200, "OK", true))]);
    s
}

fn cases() -> Vec<Case> {
    use Command::*;
    let bridged = [StartMedia, SetMediaMode(MediaMode::Bridged)];
    let up = |more: &[Command]| -> Vec<Command> {
        let mut c = vec![join(), invite()];
        c.extend(bridged.iter().cloned());
        c.extend(more.iter().cloned());
        c
    };
    let answered_states = vec![Calling, Early, Connecting, Confirmed, Disconnected];
    vec![
        Case {
            params: dial_out(),
            name: "busy",
            steps: then(ringing(), [At(900), In(response(486, "Busy Here", false))]),
            commands: vec![join(), invite(), LeaveRoom],
            states: vec![Calling, Early, Disconnected],
            end: (486, "Busy Here", EndCause::Rejected),
            ended_at: 900,
        },
        Case {
            params: dial_out(),
            name: "unknown number",
            steps: vec![
                In(joined()),
                In(response(100, "Trying", false)),
                At(50),
                In(response(404, "Not Found", false)),
            ],
            commands: vec![join(), invite(), LeaveRoom],
            states: vec![Calling, Disconnected],
            end: (404, "Not Found", EndCause::Rejected),
            ended_at: 50,
        },
        Case {
            params: DialOut {
                ring_timeout: None,
                ..dial_out()
            },
            name: "unreachable: Timer B",
            steps: vec![In(joined()), At(32_000), In(sip(SipInput::RequestTimeout))],
            commands: vec![join(), invite(), LeaveRoom],
            states: vec![Calling, Disconnected],
            end: (408, "Request Timeout", EndCause::Unreachable),
            ended_at: 32_000,
        },
        Case {
            params: dial_out(),
            name: "no answer before any provisional: the ring timeout waits for Timer B",
            steps: vec![
                In(joined()),
                FireNext,
                At(32_000),
                In(sip(SipInput::RequestTimeout)),
            ],
            commands: vec![join(), invite(), LeaveRoom],
            states: vec![Calling, Disconnected],
            end: (408, "No answer", EndCause::NoAnswer),
            ended_at: 32_000,
        },
        Case {
            params: dial_out(),
            name: "unreachable: the INVITE could not be sent (no registered device)",
            steps: vec![
                In(joined()),
                At(10),
                In(sip(SipInput::NotSent {
                    code: 480,
                    reason: "Not registered".to_owned(),
                })),
            ],
            commands: vec![join(), invite(), LeaveRoom],
            states: vec![Calling, Disconnected],
            end: (480, "Not registered", EndCause::Unreachable),
            ended_at: 10,
        },
        Case {
            params: dial_out(),
            name: "unreachable: transport error",
            steps: vec![In(joined()), At(10), In(sip(SipInput::TransportError))],
            commands: vec![join(), invite(), LeaveRoom],
            states: vec![Calling, Disconnected],
            end: (503, "Service Unavailable", EndCause::Unreachable),
            ended_at: 10,
        },
        Case {
            params: dial_out(),
            name: "unreachable: 503 from the provider",
            steps: vec![
                In(joined()),
                At(70),
                In(response(503, "Service Unavailable", false)),
            ],
            commands: vec![join(), invite(), LeaveRoom],
            states: vec![Calling, Disconnected],
            end: (503, "Service Unavailable", EndCause::Rejected),
            ended_at: 70,
        },
        Case {
            params: dial_out(),
            name: "no answer: ring timeout, CANCEL, 487",
            steps: then(
                ringing(),
                [
                    FireNext,
                    At(30_100),
                    In(response(487, "Request Terminated", false)),
                ],
            ),
            commands: vec![join(), invite(), SendCancel, LeaveRoom],
            states: vec![Calling, Early, Disconnected],
            end: (408, "No answer", EndCause::NoAnswer),
            ended_at: 30_100,
        },
        Case {
            params: dial_out(),
            name: "caller cancels (API hang-up while ringing)",
            steps: then(
                ringing(),
                [
                    At(2000),
                    Hangup,
                    At(2050),
                    In(response(487, "Request Terminated", false)),
                ],
            ),
            commands: vec![join(), invite(), SendCancel, LeaveRoom],
            states: vec![Calling, Early, Disconnected],
            end: (487, "Request Terminated", EndCause::LocalHangup),
            ended_at: 2050,
        },
        Case {
            params: dial_out(),
            name: "a 200 crosses the CANCEL: BYE after the dialog layer's ACK",
            steps: then(
                ringing(),
                [
                    At(2000),
                    Hangup,
                    At(2010),
                    In(response(200, "OK", true)),
                    In(response(487, "Request Terminated", false)),
                ],
            ),
            commands: vec![join(), invite(), SendCancel, LeaveRoom, SendBye],
            // The phone answered: the record shows it, and the call ends as an answered one.
            states: vec![Calling, Early, Connecting, Disconnected],
            end: (200, "Normal call clearing", EndCause::LocalHangup),
            ended_at: 2010,
        },
        Case {
            params: dial_out(),
            name: "hang-up before any provisional, then the phone answers: answered, then BYE",
            steps: vec![
                In(joined()),
                At(10),
                Hangup,
                At(3000),
                In(response(200, "OK", true)),
            ],
            commands: vec![join(), invite(), LeaveRoom, SendBye],
            states: vec![Calling, Connecting, Disconnected],
            end: (200, "Normal call clearing", EndCause::LocalHangup),
            ended_at: 3000,
        },
        Case {
            params: dial_out(),
            name: "hang-up before any provisional: the CANCEL waits for the 100",
            steps: vec![
                In(joined()),
                At(10),
                Hangup,
                At(40),
                In(response(100, "Trying", false)),
                At(60),
                In(response(487, "Request Terminated", false)),
            ],
            commands: vec![join(), invite(), LeaveRoom, SendCancel],
            states: vec![Calling, Disconnected],
            end: (487, "Request Terminated", EndCause::LocalHangup),
            ended_at: 60,
        },
        Case {
            params: dial_out(),
            name: "hang-up before any provisional, then Timer B: no CANCEL at all",
            steps: vec![
                In(joined()),
                At(10),
                Hangup,
                At(32_000),
                In(sip(SipInput::RequestTimeout)),
            ],
            commands: vec![join(), invite(), LeaveRoom],
            states: vec![Calling, Disconnected],
            end: (487, "Request Terminated", EndCause::LocalHangup),
            ended_at: 32_000,
        },
        Case {
            params: dial_out(),
            name: "a cancelled INVITE that never gets a final response ends at the guard",
            steps: then(ringing(), [At(1000), Hangup, FireNext]),
            commands: vec![join(), invite(), SendCancel, LeaveRoom],
            states: vec![Calling, Early, Disconnected],
            end: (487, "Request Terminated", EndCause::LocalHangup),
            ended_at: 33_000,
        },
        Case {
            params: dial_out(),
            name: "hang-up while joining the room",
            steps: vec![At(1), Hangup],
            commands: vec![join(), LeaveRoom],
            states: vec![Calling, Disconnected],
            end: (487, "Request Terminated", EndCause::LocalHangup),
            ended_at: 1,
        },
        Case {
            params: dial_out(),
            name: "the room cannot be joined: no INVITE",
            steps: vec![
                At(2),
                In(Input::Room(RoomInput::Failed {
                    why: "room is full".to_owned(),
                })),
            ],
            commands: vec![join()],
            states: vec![Calling, Disconnected],
            end: (500, "Room failed: room is full", EndCause::RoomFailed),
            ended_at: 2,
        },
        Case {
            params: dial_out(),
            name: "the room never answers the join",
            steps: vec![FireNext],
            commands: vec![join(), LeaveRoom],
            states: vec![Calling, Disconnected],
            end: (500, "Room join timed out", EndCause::RoomFailed),
            ended_at: 30_000,
        },
        Case {
            params: dial_out(),
            name: "removed from the room while ringing: CANCEL",
            steps: then(
                ringing(),
                [
                    At(1500),
                    In(removed()),
                    At(1600),
                    In(response(487, "Request Terminated", false)),
                ],
            ),
            commands: vec![join(), invite(), SendCancel],
            states: vec![Calling, Early, Disconnected],
            end: (487, "Removed from room: removed", EndCause::RoomRemoved),
            ended_at: 1600,
        },
        Case {
            params: dial_out(),
            name: "removed from the room after the answer: BYE",
            steps: then(answered(), [At(9000), In(removed())]),
            commands: up(&[SendBye, StopMedia]),
            states: answered_states.clone(),
            end: (200, "Removed from room: removed", EndCause::RoomRemoved),
            ended_at: 9000,
        },
        Case {
            params: dial_out(),
            name: "the room's session fails after the answer: BYE",
            steps: then(
                answered(),
                [
                    At(9000),
                    In(Input::Room(RoomInput::Failed {
                        why: "ice".to_owned(),
                    })),
                ],
            ),
            commands: up(&[SendBye, StopMedia]),
            states: answered_states.clone(),
            end: (200, "Room failed: ice", EndCause::RoomFailed),
            ended_at: 9000,
        },
        Case {
            params: dial_out(),
            name: "max duration: BYE",
            steps: then(answered(), [FireNext]),
            commands: up(&[SendBye, LeaveRoom, StopMedia]),
            states: answered_states.clone(),
            end: (200, "Max duration reached", EndCause::MaxDuration),
            ended_at: 4000 + 1_800_000,
        },
        Case {
            params: dial_out(),
            name: "media timeout: BYE",
            steps: then(answered(), [At(70_000), In(media_timeout())]),
            commands: up(&[SendBye, LeaveRoom, StopMedia]),
            states: answered_states.clone(),
            end: (200, "Media timeout", EndCause::MediaTimeout),
            ended_at: 70_000,
        },
        Case {
            params: dial_out(),
            name: "session timer expired: BYE",
            steps: then(answered(), [At(90_000), In(sip(SipInput::SessionExpired))]),
            commands: up(&[SendBye, LeaveRoom, StopMedia]),
            states: answered_states.clone(),
            end: (408, "Session expired", EndCause::SessionExpired),
            ended_at: 90_000,
        },
        Case {
            params: dial_out(),
            name: "hang-up twice after the answer: one BYE",
            steps: then(answered(), [At(5000), Hangup, At(5001), Hangup]),
            commands: up(&[SendBye, LeaveRoom, StopMedia]),
            states: answered_states.clone(),
            end: (200, "Normal call clearing", EndCause::LocalHangup),
            ended_at: 5000,
        },
        Case {
            params: dial_out(),
            name: "hang-up twice while ringing: one CANCEL",
            steps: then(
                ringing(),
                [
                    At(1000),
                    Hangup,
                    Hangup,
                    At(1100),
                    Hangup,
                    In(response(487, "Request Terminated", false)),
                    Hangup,
                ],
            ),
            commands: vec![join(), invite(), SendCancel, LeaveRoom],
            states: vec![Calling, Early, Disconnected],
            end: (487, "Request Terminated", EndCause::LocalHangup),
            ended_at: 1100,
        },
        Case {
            params: dial_out(),
            name: "a BYE that overtook the 200",
            steps: then(ringing(), [At(3000), In(sip(SipInput::Bye))]),
            commands: vec![join(), invite(), LeaveRoom],
            states: vec![Calling, Early, Disconnected],
            end: (200, "Normal call clearing", EndCause::RemoteHangup),
            ended_at: 3000,
        },
    ]
}

#[test]
fn every_way_a_dial_out_ends() {
    for case in cases() {
        let mut d = Driver::outbound(case.params.clone());
        d.run(&case.steps);
        d.assert_ended_as(case.name, &case.commands, &case.states, case.end);
        let ended_at = d.call.history().last().map(|s| d.ms(s.at));
        assert_eq!(ended_at, Some(case.ended_at), "{}", case.name);
        d.assert_finished();
    }
}

#[test]
fn early_media_is_played_into_the_room_when_asked() {
    for early_media in [false, true] {
        let mut d = Driver::outbound(DialOut {
            early_media,
            ..dial_out()
        });
        d.input(joined());
        let mut expected = vec![Command::StartMedia];
        if early_media {
            expected.push(Command::SetMediaMode(MediaMode::EarlyToRoom));
        }
        let got = d.at(100).input(response(183, "Session Progress", true));
        assert_eq!(got, expected);
        // A later 180 with SDP does not start the leg again.
        assert!(d.at(200).input(response(180, "Ringing", true)).is_empty());
        assert_eq!(
            d.at(300).input(response(200, "OK", true)),
            [Command::SetMediaMode(MediaMode::Bridged)]
        );
        assert_eq!(
            d.states()[1..3],
            [
                st(Early, 183, "Session Progress"),
                st(Early, 180, "Ringing")
            ]
        );
    }
}

#[test]
fn dtmf_after_answer_is_paced_with_pauses() {
    let mut d = Driver::outbound(DialOut {
        dtmf_after_answer: DtmfSequence::parse("1234,,#").unwrap(),
        ..dial_out()
    });
    d.input(joined());
    d.at(1000).input(response(180, "Ringing", false));
    // Nothing is pressed before the answer.
    assert!(
        !d.commands()
            .iter()
            .any(|c| matches!(c, Command::SendDtmf { .. }))
    );

    let mut pressed = Vec::new();
    let mut note = |d: &Driver, cmds: Vec<Command>| {
        for c in cmds {
            if let Command::SendDtmf { digit, duration } = c {
                assert_eq!(duration, Duration::from_millis(100));
                pressed.push((d.ms(d.now) - 5000, digit.as_char()));
            }
        }
    };
    let cmds = d.at(5000).input(response(200, "OK", true));
    note(&d, cmds);
    // Bounded: seven steps.
    for _ in 0..7 {
        if d.timeout.is_some_and(|t| d.ms(t) < 60_000) {
            let cmds = d.fire_next();
            note(&d, cmds);
        }
    }
    assert_eq!(
        pressed,
        [
            (0, '1'),
            (200, '2'),
            (400, '3'),
            (600, '4'),
            // Two pauses of 500 ms after 4's tone and gap.
            (1800, '#'),
        ]
    );
    // Done: the next timer is max duration.
    assert_eq!(d.ms(d.timeout.unwrap()), 5000 + 1_800_000);
}

#[test]
fn dtmf_through_the_api_waits_for_the_answer_and_queues_behind_the_dial_string() {
    let mut d = Driver::outbound(DialOut {
        dtmf_after_answer: DtmfSequence::parse("9").unwrap(),
        ..dial_out()
    });
    let seq = DtmfSequence::parse("1,2").unwrap();
    assert_eq!(
        d.call.send_dtmf(d.now, &seq),
        Err(crate::CallError::NotAnswered)
    );
    d.input(joined());
    d.at(50).input(response(200, "OK", true));
    assert!(d.commands().contains(&Command::SendDtmf {
        digit: Digit::from_char('9').unwrap(),
        duration: Duration::from_millis(100),
    }));
    d.at(60);
    d.call.send_dtmf(d.now, &seq).unwrap();
    // '9' still sounds: '1' waits for its tone and gap.
    assert!(d.drain().is_empty());
    assert_eq!(d.ms(d.timeout.unwrap()), 250);
    let one = d.fire_next();
    assert!(matches!(one[..], [Command::SendDtmf { digit, .. }] if digit.as_char() == '1'));
    d.fire_next(); // the pause
    assert_eq!(d.ms(d.now), 450);
    let two = d.fire_next();
    assert_eq!(d.ms(d.now), 950);
    assert!(matches!(two[..], [Command::SendDtmf { digit, .. }] if digit.as_char() == '2'));
    // A hang-up drops what still waits.
    d.call.send_dtmf(d.now, &seq).unwrap();
    d.drain();
    let bye = d.hangup();
    assert!(!bye.iter().any(|c| matches!(c, Command::SendDtmf { .. })));
    d.assert_finished();
}

#[test]
fn digits_from_the_phone_become_events() {
    let mut d = Driver::outbound(dial_out());
    d.input(joined());
    d.at(10).input(response(200, "OK", true));
    let digit = Digit::from_char('#').unwrap();
    d.at(20).input(Input::Media(MediaInput::Dtmf { digit }));
    let at = d.now;
    assert_eq!(
        d.log.last(),
        Some(&Output::Event(Event::DtmfReceived { digit, at }))
    );
}

#[test]
fn mute_before_the_join_is_applied_once_joined() {
    let mut d = Driver::outbound(dial_out());
    d.call.set_muted(d.now, true).unwrap();
    assert!(d.drain().is_empty());
    assert_eq!(d.input(joined()), [Command::SetMuted(true), invite()]);
    d.call.set_muted(d.now, true).unwrap();
    assert!(d.drain().is_empty(), "no change, no command");
    d.call.set_muted(d.now, false).unwrap();
    assert_eq!(d.drain(), [Command::SetMuted(false)]);
    assert!(!d.call.is_muted());
}

#[test]
fn the_history_keeps_distinct_provisionals_and_bounds_them() {
    let mut d = Driver::outbound(dial_out());
    d.input(joined());
    for i in 0..100u16 {
        let code = if i % 2 == 0 { 180 } else { 183 };
        d.at(u64::from(i)).input(response(code, "x", false));
    }
    let early = d.states().iter().filter(|s| s.0 == Early).count();
    assert_eq!(early, 16);
    let long = "r".repeat(10_000);
    d.input(response(200, &long, true));
    assert!(d.call.history().iter().all(|s| s.reason.len() <= 128));
}

#[test]
fn time_never_goes_backwards() {
    let mut d = Driver::outbound(dial_out());
    d.at(1000).input(joined());
    // An input stamped earlier is taken as happening now.
    d.call.handle_input(d.t0, response(180, "Ringing", false));
    d.drain();
    let times: Vec<u64> = d.call.history().iter().map(|s| d.ms(s.at)).collect();
    assert_eq!(times, [0, 1000]);
}

#[test]
fn a_completed_transfer_ends_with_a_bye_as_transferred_and_before_the_answer_is_a_hangup() {
    let mut d = Driver::outbound(dial_out());
    d.input(joined());
    d.at(300).input(response(180, "Ringing", false));
    d.at(4000).input(response(200, "OK", true));
    d.call.transferred(d.now);
    assert_eq!(
        d.drain(),
        [Command::SendBye, Command::LeaveRoom, Command::StopMedia]
    );
    assert_eq!(
        d.ending(),
        (200, "Transferred".to_owned(), Some(EndCause::Transferred))
    );
    d.assert_finished();

    // Not answered yet: there is nothing to transfer, so it ends like a hang-up.
    let mut d = Driver::outbound(dial_out());
    d.input(joined());
    d.at(300).input(response(180, "Ringing", false));
    d.call.transferred(d.now);
    d.drain();
    d.at(400).input(response(487, "Request Terminated", false));
    assert_eq!(
        d.ending(),
        (
            487,
            "Request Terminated".to_owned(),
            Some(EndCause::LocalHangup)
        )
    );
}

#[test]
fn an_answer_that_cannot_be_used_ends_the_call_with_a_bye_as_media_refused() {
    let mut d = Driver::outbound(dial_out());
    d.input(joined());
    d.at(300).input(response(180, "Ringing", false));
    d.at(2000).input(response(200, "OK", false));
    d.drain();
    d.call.answer_refused(d.now, "Incompatible media format");
    assert_eq!(
        d.drain(),
        [Command::SendBye, Command::LeaveRoom, Command::StopMedia]
    );
    assert_eq!(
        d.ending(),
        (
            488,
            "Incompatible media format".to_owned(),
            Some(EndCause::MediaRefused)
        )
    );
    d.assert_finished();
}

#[test]
fn a_replaced_call_ends_as_transferred_when_its_phone_hangs_up() {
    let mut d = Driver::outbound(dial_out());
    d.input(joined());
    d.at(4000).input(response(200, "OK", true));
    d.drain();
    d.call.set_replaced(d.now, true);
    let teardown = d.at(5000).input(sip(SipInput::Bye));
    assert_eq!(teardown, [Command::LeaveRoom, Command::StopMedia]);
    assert_eq!(
        d.ending(),
        (200, "Transferred".to_owned(), Some(EndCause::Transferred))
    );

    // A withdrawn replacement (the transfer failed) leaves an ordinary hang-up.
    let mut d = Driver::outbound(dial_out());
    d.input(joined());
    d.at(4000).input(response(200, "OK", true));
    d.call.set_replaced(d.now, true);
    d.call.set_replaced(d.now, false);
    d.at(5000).input(sip(SipInput::Bye));
    assert_eq!(
        d.ending(),
        (
            200,
            "Normal call clearing".to_owned(),
            Some(EndCause::RemoteHangup)
        )
    );
}

#[test]
fn a_call_up_when_sipx_stops_ends_saying_so_with_a_bye_or_a_cancel() {
    let shutting_down = || Some(EndCause::LocalHangup);
    let mut d = Driver::outbound(dial_out());
    d.input(joined());
    d.at(300).input(response(180, "Ringing", false));
    d.at(4000).input(response(200, "OK", true));
    d.call.shut_down(d.now);
    assert_eq!(
        d.drain(),
        [Command::SendBye, Command::LeaveRoom, Command::StopMedia]
    );
    assert_eq!(
        d.ending(),
        (200, crate::SHUTTING_DOWN.to_owned(), shutting_down())
    );
    d.assert_finished();

    // Still ringing: a CANCEL, and the 487 that answers it ends the call with the same words.
    let mut d = Driver::outbound(dial_out());
    d.input(joined());
    d.at(300).input(response(180, "Ringing", false));
    d.call.shut_down(d.now);
    assert!(d.drain().contains(&Command::SendCancel));
    d.at(400).input(response(487, "Request Terminated", false));
    assert_eq!(
        d.ending(),
        (487, crate::SHUTTING_DOWN.to_owned(), shutting_down())
    );
}

#[test]
fn a_stopping_sipx_records_an_unanswered_cancel_as_ended_at_once() {
    let mut d = Driver::outbound(dial_out());
    d.input(joined());
    // No provisional answer: no CANCEL may go (RFC 3261 §9.1), the end waits for a response.
    d.at(300);
    d.call.shut_down(d.now);
    assert!(!d.drain().contains(&Command::SendCancel));
    d.at(2300);
    d.call.give_up(d.now);
    d.drain();
    assert_eq!(
        d.ending(),
        (
            487,
            crate::SHUTTING_DOWN.to_owned(),
            Some(EndCause::LocalHangup)
        )
    );
    let ended_at = d.call.history().last().map(|s| d.ms(s.at));
    assert_eq!(ended_at, Some(2300));
    d.assert_finished();
}
