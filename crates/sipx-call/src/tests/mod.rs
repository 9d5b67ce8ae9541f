//! Tests of the call machine without a network: a harness that plays the driver, scenario
//! tables for each way a call ends, and a seeded random walk that checks the invariants.

mod inbound;
mod outbound;
mod random;

use std::time::{Duration, Instant};

use crate::{
    Call, CallConfig, CallStateKind, Command, DialOut, DtmfSequence, EndCause, Event, Inbound,
    Input, MediaInput, Output, RoomInput, RoomTarget, SipInput,
};

pub(super) fn room() -> RoomTarget {
    RoomTarget {
        room: "sales".to_owned(),
        identity: "phone-1".to_owned(),
        name: "Phone".to_owned(),
        metadata: None,
    }
}

pub(super) fn dial_out() -> DialOut {
    DialOut {
        to: "+4930123456".to_owned(),
        from: Some("+4930999".to_owned()),
        route: Some("trunk_1".to_owned()),
        room: room(),
        ring_timeout: Some(Duration::from_secs(30)),
        max_duration: Some(Duration::from_secs(1800)),
        dtmf_after_answer: DtmfSequence::default(),
        early_media: false,
    }
}

pub(super) fn inbound() -> Inbound {
    Inbound {
        room: room(),
        answer_timeout: Some(Duration::from_secs(10)),
        max_duration: Some(Duration::from_secs(1800)),
    }
}

pub(super) fn response(code: u16, reason: &str, sdp: bool) -> Input {
    Input::Sip(SipInput::Response {
        code,
        reason: reason.to_owned(),
        sdp,
    })
}

pub(super) fn sip(s: SipInput) -> Input {
    Input::Sip(s)
}

pub(super) fn joined() -> Input {
    Input::Room(RoomInput::Joined {
        participant: "p1".to_owned(),
    })
}

pub(super) fn removed() -> Input {
    Input::Room(RoomInput::Removed {
        why: "removed".to_owned(),
    })
}

pub(super) fn media_timeout() -> Input {
    Input::Media(MediaInput::Timeout)
}

/// Plays the driver: feeds one input at a time at a chosen time, drains the outputs and keeps
/// them all.
pub(super) struct Driver {
    pub call: Call,
    pub t0: Instant,
    pub now: Instant,
    pub log: Vec<Output>,
    /// The last `Timeout` the call asked for (`None`: no timer).
    pub timeout: Option<Instant>,
}

impl Driver {
    pub fn outbound(params: DialOut) -> Driver {
        let t0 = Instant::now();
        Driver::start(t0, Call::dial_out(t0, params, CallConfig::default()))
    }

    pub fn inbound(params: Inbound) -> Driver {
        let t0 = Instant::now();
        Driver::start(t0, Call::inbound(t0, params, CallConfig::default()))
    }

    fn start(t0: Instant, call: Call) -> Driver {
        let mut d = Driver {
            call,
            t0,
            now: t0,
            log: Vec::new(),
            timeout: None,
        };
        d.drain();
        d
    }

    /// Moves the clock to `ms` after the start (never backwards).
    pub fn at(&mut self, ms: u64) -> &mut Driver {
        self.now = self.now.max(self.t0 + Duration::from_millis(ms));
        self
    }

    pub fn input(&mut self, input: Input) -> Vec<Command> {
        self.call.handle_input(self.now, input);
        self.drain()
    }

    pub fn hangup(&mut self) -> Vec<Command> {
        self.call.hangup(self.now);
        self.drain()
    }

    /// Fires the timers due at the current time.
    pub fn fire(&mut self) -> Vec<Command> {
        self.call.handle_timeout(self.now);
        self.drain()
    }

    /// Jumps to the next timer and fires it.
    pub fn fire_next(&mut self) -> Vec<Command> {
        let at = self.timeout.expect("a timer is armed");
        self.now = self.now.max(at);
        self.fire()
    }

    /// The commands since the last call; every output is kept in `log`.
    pub fn drain(&mut self) -> Vec<Command> {
        let mut commands = Vec::new();
        self.timeout = None;
        // Bounded: a call queues a handful of outputs per input.
        for _ in 0..1000 {
            match self.call.poll_output() {
                Some(Output::Timeout(at)) => {
                    self.timeout = Some(at);
                    return commands;
                }
                Some(Output::Command(c)) => {
                    commands.push(c.clone());
                    self.log.push(Output::Command(c));
                }
                Some(o) => self.log.push(o),
                None => return commands,
            }
        }
        panic!("poll_output never ran dry");
    }

    /// The history as (state, code, reason).
    pub fn states(&self) -> Vec<(CallStateKind, u16, String)> {
        self.call
            .history()
            .iter()
            .map(|s| (s.kind, s.code, s.reason.clone()))
            .collect()
    }

    /// The last history entry, which a finished call has as `DISCONNECTED`.
    pub fn ending(&self) -> (u16, String, Option<EndCause>) {
        let last = self.call.history().last().expect("a history");
        assert_eq!(
            last.kind,
            CallStateKind::Disconnected,
            "{:?}",
            self.states()
        );
        (last.code, last.reason.clone(), last.cause)
    }

    /// Every command so far.
    pub fn commands(&self) -> Vec<Command> {
        self.log
            .iter()
            .filter_map(|o| match o {
                Output::Command(c) => Some(c.clone()),
                _ => None,
            })
            .collect()
    }

    /// The state-change events, which must repeat the history exactly.
    pub fn state_events(&self) -> Vec<crate::CallState> {
        self.log
            .iter()
            .filter_map(|o| match o {
                Output::Event(Event::StateChanged(s)) => Some(s.clone()),
                _ => None,
            })
            .collect()
    }

    pub fn ms(&self, at: Instant) -> u64 {
        at.duration_since(self.t0).as_millis() as u64
    }
}

/// Shorthand for expected histories.
pub(super) fn st(kind: CallStateKind, code: u16, reason: &str) -> (CallStateKind, u16, String) {
    (kind, code, reason.to_owned())
}

/// `base` followed by `more`.
pub(super) fn then(mut base: Vec<Step>, more: impl IntoIterator<Item = Step>) -> Vec<Step> {
    base.extend(more);
    base
}

/// A step of a scenario.
#[derive(Debug, Clone)]
pub(super) enum Step {
    In(Input),
    Hangup,
    /// Move the clock to this many ms after the start.
    At(u64),
    /// Jump to the next timer and fire it.
    FireNext,
}

impl Driver {
    pub fn run(&mut self, steps: &[Step]) {
        for step in steps {
            match step {
                Step::In(input) => drop(self.input(input.clone())),
                Step::Hangup => drop(self.hangup()),
                Step::At(ms) => drop(self.at(*ms).fire()),
                Step::FireNext => drop(self.fire_next()),
            }
        }
    }

    /// A scenario's outcome: every command in order, the states, and how it ended.
    pub fn assert_ended_as(
        &self,
        name: &str,
        commands: &[Command],
        states: &[CallStateKind],
        end: (u16, &str, EndCause),
    ) {
        assert_eq!(self.commands(), commands, "{name}");
        let kinds: Vec<_> = self.call.history().iter().map(|s| s.kind).collect();
        assert_eq!(kinds, states, "{name}");
        let (code, reason, cause) = self.ending();
        assert_eq!(
            (code, reason.as_str(), cause),
            (end.0, end.1, Some(end.2)),
            "{name}"
        );
    }

    /// The checks every finished call must pass: one `DISCONNECTED`, last, with a code and a
    /// reason; the events repeat the history; and nothing at all comes out afterwards, whatever
    /// is fed in.
    pub fn assert_finished(&mut self) {
        let history = self.call.history();
        let ends = history
            .iter()
            .filter(|s| s.kind == CallStateKind::Disconnected)
            .count();
        assert_eq!(ends, 1, "{:?}", self.states());
        let (code, reason, cause) = self.ending();
        assert!((200..700).contains(&code), "code {code}");
        assert!(!reason.is_empty());
        assert!(cause.is_some());
        assert!(self.call.is_ended());
        assert_eq!(self.state_events(), self.call.history());
        assert_eq!(self.call.poll_output(), None);

        let logged = self.log.len();
        let later = [
            response(100, "Trying", false),
            response(180, "Ringing", true),
            response(200, "OK", true),
            response(486, "Busy Here", false),
            sip(SipInput::RequestTimeout),
            sip(SipInput::TransportError),
            sip(SipInput::Bye),
            sip(SipInput::Cancel),
            sip(SipInput::Ack),
            sip(SipInput::AckTimeout),
            sip(SipInput::SessionExpired),
            joined(),
            removed(),
            Input::Room(RoomInput::Failed {
                why: "x".to_owned(),
            }),
            Input::Media(MediaInput::Dtmf {
                digit: crate::Digit::from_char('5').unwrap(),
            }),
            media_timeout(),
        ];
        for input in later {
            assert!(self.input(input).is_empty());
        }
        assert!(self.hangup().is_empty());
        let seq = DtmfSequence::parse("1").unwrap();
        assert_eq!(
            self.call.send_dtmf(self.now, &seq),
            Err(crate::CallError::Ended)
        );
        assert_eq!(
            self.call.set_muted(self.now, true),
            Err(crate::CallError::Ended)
        );
        self.now += Duration::from_secs(7200);
        assert!(self.fire().is_empty());
        assert_eq!(self.log.len(), logged, "outputs after DISCONNECTED");
        assert_eq!(self.call.history().len(), history_len(self));
    }
}

fn history_len(d: &Driver) -> usize {
    d.state_events().len()
}
