//! Thousands of random input sequences from a seeded generator, each checked against the
//! rules every call must keep, whatever the network, the room and the API do and in whatever
//! order: exactly one `DISCONNECTED`, last, with a code and a reason; nothing after it; each
//! one-shot command at most once; CANCEL only after a provisional response and before the INVITE
//! is settled; BYE only on an answered dialog; symmetric teardown (an answered phone gets a BYE
//! unless it hung up, the room is left unless it let go first, started media is stopped); and a
//! hang-up always ends the call within the guard time.

use std::time::Duration;

use super::*;
use crate::{CallConfig, CallError, Digit, Direction};

/// splitmix64: small, seeded, good enough to pick inputs (no new dependency).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<T: Clone>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize].clone()
    }
}

/// Response codes by kind: provisional, success, failure (odd ones included).
const PROVISIONAL: [u16; 4] = [100, 180, 183, 199];
const SUCCESS: [u16; 2] = [200, 202];
const FAILURE: [u16; 13] = [302, 404, 408, 486, 487, 500, 503, 603, 0, 99, 699, 700, 999];

/// One thing the world can do to a call.
#[derive(Debug, Clone)]
enum Act {
    In(Input),
    Hangup,
    Dtmf,
    Mute(bool),
    /// Advance the clock by this many ms and fire what is due.
    Wait(u64),
    /// Jump to the call's next timer and fire it.
    FireNext,
}

fn random_act(rng: &mut Rng) -> Act {
    // Weighted so that most walks get past the join and the answer: room failures and timer
    // jumps are rarer than responses.
    match rng.below(40) {
        0..=15 => {
            let code = match rng.below(10) {
                0..=3 => rng.pick(&PROVISIONAL),
                4..=6 => rng.pick(&SUCCESS),
                _ => rng.pick(&FAILURE),
            };
            let reason = if rng.below(4) == 0 { "" } else { "Reason" };
            Act::In(response(code, reason, rng.below(2) == 0))
        }
        16..=18 => Act::In(sip(rng.pick(&[
            SipInput::RequestTimeout,
            SipInput::TransportError,
            SipInput::NotSent {
                code: 480,
                reason: "Not registered".to_owned(),
            },
            SipInput::Bye,
            SipInput::Cancel,
            SipInput::Ack,
            SipInput::AckTimeout,
        ]))),
        19 | 20 => Act::In(sip(rng.pick(&[SipInput::Ack, SipInput::Bye]))),
        21..=24 => Act::In(joined()),
        25 => Act::In(rng.pick(&[
            removed(),
            Input::Room(RoomInput::Failed {
                why: "x".to_owned(),
            }),
        ])),
        26 | 27 => Act::In(rng.pick(&[
            media_timeout(),
            Input::Sip(SipInput::SessionExpired),
            Input::Media(MediaInput::Dtmf {
                digit: Digit::from_char('7').unwrap(),
            }),
        ])),
        28 | 29 => Act::Hangup,
        30 | 31 => Act::Dtmf,
        32 => Act::Mute(rng.below(2) == 0),
        33..=37 => Act::Wait(rng.below(3000)),
        _ => Act::FireNext,
    }
}

/// What the outside world saw, to judge the call's commands by.
#[derive(Default)]
struct Seen {
    invite_sent: bool,
    provisional: bool,
    /// The INVITE's first final response, Timer B or transport error: `Some(true)` for a 2xx.
    settled: Option<bool>,
    remote_bye: bool,
    room_gone: bool,
    answer_sent: bool,
    ack_or_timeout: bool,
    counts: std::collections::HashMap<&'static str, usize>,
}

fn name(c: &Command) -> &'static str {
    match c {
        Command::JoinRoom(_) => "join",
        Command::LeaveRoom => "leave",
        Command::SetMuted(_) => "mute",
        Command::SendInvite(_) => "invite",
        Command::SendCancel => "cancel",
        Command::SendBye => "bye",
        Command::Answer => "answer",
        Command::Reject { .. } => "reject",
        Command::StartMedia => "start",
        Command::SetMediaMode(_) => "mode",
        Command::StopMedia => "stop",
        Command::SendDtmf { .. } => "dtmf",
    }
}

impl Seen {
    fn n(&self, what: &str) -> usize {
        self.counts.get(what).copied().unwrap_or(0)
    }

    /// Notes an input fed to a live call.
    fn input(&mut self, input: &Input) {
        match input {
            Input::Sip(SipInput::Response { code, .. })
                if self.invite_sent && self.settled.is_none() =>
            {
                match code {
                    100..=199 => self.provisional = true,
                    200..=299 => self.settled = Some(true),
                    300.. => self.settled = Some(false),
                    _ => {}
                }
            }
            Input::Sip(
                SipInput::RequestTimeout | SipInput::TransportError | SipInput::NotSent { .. },
            ) if self.invite_sent && self.settled.is_none() => {
                self.settled = Some(false);
            }
            Input::Sip(SipInput::Bye) if self.invite_sent || self.answer_sent => {
                self.remote_bye = true;
            }
            Input::Sip(SipInput::Ack | SipInput::AckTimeout) if self.answer_sent => {
                self.ack_or_timeout = true;
            }
            Input::Room(RoomInput::Removed { .. } | RoomInput::Failed { .. }) => {
                self.room_gone = true;
            }
            _ => {}
        }
    }

    /// Checks one command as it comes out, given what was seen before it.
    fn command(&mut self, c: &Command, dir: Direction, from_timer: bool, answered: bool) {
        *self.counts.entry(name(c)).or_default() += 1;
        match c {
            Command::SendInvite(_) => self.invite_sent = true,
            Command::Answer => {
                assert_eq!(dir, Direction::Inbound);
                self.answer_sent = true;
            }
            Command::SendCancel => {
                assert_eq!(dir, Direction::Outbound);
                assert!(self.provisional, "CANCEL before any provisional response");
                assert!(self.settled.is_none(), "CANCEL of a settled INVITE");
            }
            Command::SendBye => match dir {
                Direction::Outbound => {
                    assert_eq!(self.settled, Some(true), "BYE without a 2xx")
                }
                Direction::Inbound => {
                    assert!(self.answer_sent, "BYE before the answer");
                    assert!(
                        self.ack_or_timeout || from_timer,
                        "BYE before the ACK (or its timeout, or the guard)"
                    );
                }
            },
            Command::LeaveRoom => assert!(!self.room_gone, "left a room that let go"),
            Command::SendDtmf { .. } => assert!(answered, "DTMF before the answer"),
            Command::Reject { .. } => assert_eq!(dir, Direction::Inbound),
            _ => {}
        }
        for once in [
            "join", "invite", "cancel", "bye", "answer", "reject", "start", "stop",
        ] {
            assert!(self.n(once) <= 1, "{once} twice");
        }
        assert!(self.n("leave") <= 1, "leave twice");
        assert!(self.n("answer") + self.n("reject") <= 1);
    }

    /// The obligations of a finished call.
    fn finished(&self, dir: Direction) {
        assert_eq!(self.n("join"), 1);
        if !self.room_gone {
            assert_eq!(self.n("leave"), 1, "the room was not left");
        }
        assert_eq!(self.n("start"), self.n("stop"), "media not stopped");
        match dir {
            Direction::Outbound => {
                if self.settled == Some(true) && !self.remote_bye {
                    assert_eq!(self.n("bye"), 1, "an answered phone was not hung up");
                }
                if self.settled.is_none() && self.provisional && !self.remote_bye {
                    assert_eq!(self.n("cancel"), 1, "a ringing phone was not cancelled");
                }
            }
            Direction::Inbound => {
                assert_eq!(self.n("answer") + self.n("reject"), 1, "INVITE unanswered");
                if self.answer_sent && !self.remote_bye {
                    assert_eq!(self.n("bye"), 1, "an answered phone was not hung up");
                }
            }
        }
    }
}

fn run_one(seed: u64) {
    let mut rng = Rng(seed);
    let dir = if rng.below(2) == 0 {
        Direction::Outbound
    } else {
        Direction::Inbound
    };
    let mut d = match dir {
        Direction::Outbound => Driver::outbound(DialOut {
            dtmf_after_answer: DtmfSequence::parse(rng.pick(&["", "12,#", ",,9"])).unwrap(),
            early_media: rng.below(2) == 0,
            ring_timeout: rng.pick(&[None, Some(Duration::from_secs(20))]),
            max_duration: rng.pick(&[None, Some(Duration::from_secs(60))]),
            ..dial_out()
        }),
        Direction::Inbound => Driver::inbound(inbound()),
    };
    let mut seen = Seen::default();
    let mut checked = 0;
    check_new(&mut d, &mut seen, &mut checked, dir, false);

    let len = 1 + rng.below(40);
    for _ in 0..len {
        let act = random_act(&mut rng);
        let live = !d.call.is_ended();
        let mut from_timer = false;
        match &act {
            Act::In(input) => {
                if live {
                    seen.input(input);
                }
                d.input(input.clone());
            }
            Act::Hangup => drop(d.hangup()),
            Act::Dtmf => {
                let r = d
                    .call
                    .send_dtmf(d.now, &DtmfSequence::parse("3,4").unwrap());
                if !live {
                    assert_eq!(r, Err(CallError::Ended));
                }
                d.drain();
            }
            Act::Mute(m) => {
                let r = d.call.set_muted(d.now, *m);
                assert_eq!(r.is_err(), !live);
                d.drain();
            }
            Act::Wait(ms) => {
                from_timer = true;
                d.now += Duration::from_millis(*ms);
                d.fire();
            }
            Act::FireNext => {
                from_timer = true;
                if d.timeout.is_some() {
                    d.fire_next();
                }
            }
        }
        check_new(&mut d, &mut seen, &mut checked, dir, from_timer);
        if from_timer && let Some(t) = d.timeout {
            assert!(t > d.now, "a timer due at once after handle_timeout");
        }
    }

    // Liveness: a hang-up ends any call within the guard, with no help from the network.
    if !d.call.is_ended() {
        d.hangup();
        check_new(&mut d, &mut seen, &mut checked, dir, false);
        d.now += CallConfig::default().end_guard + Duration::from_secs(1);
        d.fire();
        check_new(&mut d, &mut seen, &mut checked, dir, true);
    }
    assert!(
        d.call.is_ended(),
        "seed {seed}: not ended: {:?}",
        d.states()
    );
    seen.finished(dir);

    let history = d.call.history();
    let first = match dir {
        Direction::Outbound => CallStateKind::Calling,
        Direction::Inbound => CallStateKind::Incoming,
    };
    assert_eq!(history[0].kind, first);
    assert!(history.windows(2).all(|w| w[0].at <= w[1].at));
    assert!(
        history[..history.len() - 1]
            .iter()
            .all(|s| s.cause.is_none())
    );
    d.assert_finished();
}

/// Checks the outputs logged since the last check.
fn check_new(d: &mut Driver, seen: &mut Seen, checked: &mut usize, dir: Direction, timer: bool) {
    // Answered as the outputs say: CONNECTING seen and not yet ended.
    let mut answered = d.log[..*checked].iter().any(is_connecting);
    for o in &d.log[*checked..] {
        if is_connecting(o) {
            answered = true;
        }
        if let Output::Command(c) = o {
            seen.command(c, dir, timer, answered);
        }
    }
    *checked = d.log.len();
}

fn is_connecting(o: &Output) -> bool {
    matches!(o, Output::Event(Event::StateChanged(s)) if s.kind == CallStateKind::Connecting)
}

#[test]
fn random_sequences_keep_the_invariants() {
    for seed in 0..10_000 {
        let result = std::panic::catch_unwind(|| run_one(seed));
        assert!(result.is_ok(), "seed {seed} failed (rerun run_one({seed}))");
    }
}
