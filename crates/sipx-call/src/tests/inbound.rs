//! Inbound calls: answered once the room is joined; every way they end.

use super::Step::{At, FireNext, Hangup, In};
use super::*;
use crate::CallStateKind::{Confirmed, Connecting, Disconnected, Incoming};
use crate::MediaMode;

fn join() -> Command {
    Command::JoinRoom(room())
}

fn answer() -> Vec<Command> {
    vec![
        join(),
        Command::Answer,
        Command::StartMedia,
        Command::SetMediaMode(MediaMode::Bridged),
    ]
}

fn reject(code: u16, reason: &str) -> Command {
    Command::Reject {
        code,
        reason: reason.to_owned(),
    }
}

#[test]
fn answered_when_joined_confirmed_by_the_ack() {
    let mut d = Driver::inbound(inbound());
    assert_eq!(d.commands(), [join()]);
    assert_eq!(d.ms(d.timeout.unwrap()), 10_000, "answer timeout armed");
    d.at(3).input(joined());
    assert_eq!(d.commands(), answer());
    d.at(40).input(sip(SipInput::Ack));
    assert_eq!(
        d.at(9000).input(sip(SipInput::Bye)),
        [Command::LeaveRoom, Command::StopMedia]
    );
    assert_eq!(
        d.states(),
        [
            st(Incoming, 0, ""),
            st(Connecting, 200, "OK"),
            st(Confirmed, 200, "OK"),
            st(Disconnected, 200, "Normal call clearing"),
        ]
    );
    let times: Vec<u64> = d.call.history().iter().map(|s| d.ms(s.at)).collect();
    assert_eq!(times, [0, 3, 40, 9000]);
    d.assert_finished();
}

struct Case {
    name: &'static str,
    steps: Vec<Step>,
    commands: Vec<Command>,
    states: Vec<CallStateKind>,
    end: (u16, &'static str, EndCause),
}

fn up() -> Vec<Step> {
    vec![At(3), In(joined()), At(40), In(sip(SipInput::Ack))]
}

fn cases() -> Vec<Case> {
    use Command::*;
    let confirmed = vec![Incoming, Connecting, Confirmed, Disconnected];
    let with = |more: &[Command]| {
        let mut c = answer();
        c.extend(more.iter().cloned());
        c
    };
    vec![
        Case {
            name: "the caller gives up before the answer",
            steps: vec![At(2), In(sip(SipInput::Cancel))],
            commands: vec![join(), reject(487, "Request Terminated"), LeaveRoom],
            states: vec![Incoming, Disconnected],
            end: (487, "Request Terminated", EndCause::RemoteCancel),
        },
        Case {
            name: "hung up through the API before the answer",
            steps: vec![At(2), Hangup, Hangup],
            commands: vec![join(), reject(603, "Decline"), LeaveRoom],
            states: vec![Incoming, Disconnected],
            end: (603, "Decline", EndCause::LocalHangup),
        },
        Case {
            name: "the room cannot be joined",
            steps: vec![In(Input::Room(RoomInput::Failed {
                why: "no such room".to_owned(),
            }))],
            commands: vec![join(), reject(480, "Temporarily Unavailable")],
            states: vec![Incoming, Disconnected],
            end: (480, "Room failed: no such room", EndCause::RoomFailed),
        },
        Case {
            name: "the join takes too long",
            steps: vec![FireNext],
            commands: vec![join(), reject(480, "Temporarily Unavailable"), LeaveRoom],
            states: vec![Incoming, Disconnected],
            end: (480, "Room join timed out", EndCause::RoomFailed),
        },
        Case {
            name: "hung up through the API after the answer",
            steps: then(up(), [At(500), Hangup, Hangup]),
            commands: with(&[SendBye, LeaveRoom, StopMedia]),
            states: confirmed.clone(),
            end: (200, "Normal call clearing", EndCause::LocalHangup),
        },
        Case {
            name: "removed from the room after the answer",
            steps: then(up(), [In(removed())]),
            commands: with(&[SendBye, StopMedia]),
            states: confirmed.clone(),
            end: (200, "Removed from room: removed", EndCause::RoomRemoved),
        },
        Case {
            name: "max duration",
            steps: then(up(), [FireNext]),
            commands: with(&[SendBye, LeaveRoom, StopMedia]),
            states: confirmed.clone(),
            end: (200, "Max duration reached", EndCause::MaxDuration),
        },
        Case {
            name: "the ACK never comes",
            steps: vec![In(joined()), At(32_000), In(sip(SipInput::AckTimeout))],
            commands: with(&[SendBye, LeaveRoom, StopMedia]),
            states: vec![Incoming, Connecting, Disconnected],
            end: (408, "ACK timeout", EndCause::AckTimeout),
        },
        Case {
            name: "hang-up before the ACK: the BYE waits for it",
            steps: vec![In(joined()), At(5), Hangup, At(30), In(sip(SipInput::Ack))],
            commands: with(&[LeaveRoom, StopMedia, SendBye]),
            states: vec![Incoming, Connecting, Disconnected],
            end: (200, "Normal call clearing", EndCause::LocalHangup),
        },
        Case {
            name: "hang-up before the ACK, which never comes: BYE at the guard",
            steps: vec![In(joined()), At(5), Hangup, FireNext],
            commands: with(&[LeaveRoom, StopMedia, SendBye]),
            states: vec![Incoming, Connecting, Disconnected],
            end: (200, "Normal call clearing", EndCause::LocalHangup),
        },
        Case {
            name: "the caller hangs up before its ACK arrived",
            steps: vec![In(joined()), At(5), In(sip(SipInput::Bye))],
            commands: with(&[LeaveRoom, StopMedia]),
            states: vec![Incoming, Connecting, Disconnected],
            end: (200, "Normal call clearing", EndCause::RemoteHangup),
        },
        Case {
            name: "a CANCEL after the answer changes nothing; the BYE ends it",
            steps: then(
                vec![In(joined()), In(sip(SipInput::Cancel))],
                [In(sip(SipInput::Ack)), In(sip(SipInput::Bye))],
            ),
            commands: with(&[LeaveRoom, StopMedia]),
            states: confirmed.clone(),
            end: (200, "Normal call clearing", EndCause::RemoteHangup),
        },
        Case {
            name: "media timeout",
            steps: then(up(), [At(60_000), In(media_timeout())]),
            commands: with(&[SendBye, LeaveRoom, StopMedia]),
            states: confirmed,
            end: (200, "Media timeout", EndCause::MediaTimeout),
        },
    ]
}

#[test]
fn every_way_an_inbound_call_ends() {
    for case in cases() {
        let mut d = Driver::inbound(inbound());
        d.run(&case.steps);
        d.assert_ended_as(case.name, &case.commands, &case.states, case.end);
        d.assert_finished();
    }
}

#[test]
fn dtmf_can_be_sent_once_answered() {
    let mut d = Driver::inbound(inbound());
    let seq = DtmfSequence::parse("5").unwrap();
    assert_eq!(
        d.call.send_dtmf(d.now, &seq),
        Err(crate::CallError::NotAnswered)
    );
    d.input(joined());
    d.call.send_dtmf(d.now, &seq).unwrap();
    assert!(matches!(
        d.drain()[..],
        [Command::SendDtmf { digit, .. }] if digit.as_char() == '5'
    ));
}
