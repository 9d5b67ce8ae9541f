//! Session timers (RFC 4028), as the UAS of the requests that set them: what a request's
//! `Session-Expires` asks and what the answer says ([`negotiate_uas`]), and one dialog's timer
//! ([`SessionTimer`]): when to refresh with an UPDATE, and when a session nobody refreshed is
//! over.
//!
//! Why: a peer that vanishes without a BYE while no media flows (a call on `inactive` hold)
//! would otherwise hold its call and room seat for ever; and carriers that require the timer
//! (`Require: timer`) used to get 420.

use std::time::{Duration, Instant};

use crate::msg::Request;
use crate::msg::lex::trim_ws;

/// The smallest interval RFC 4028 allows anyone to ask for (§4): the default of what we take.
pub const MIN_SE_FLOOR: u32 = 90;

/// Who sends the refreshes, named from the request's side (the UAC or UAS of it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refresher {
    Uac,
    Uas,
}

impl Refresher {
    pub fn as_str(self) -> &'static str {
        match self {
            Refresher::Uac => "uac",
            Refresher::Uas => "uas",
        }
    }
}

/// A `Session-Expires` value: `delta-seconds *(;param)` (RFC 4028 §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionExpires {
    pub delta: u32,
    pub refresher: Option<Refresher>,
}

impl SessionExpires {
    /// Parses a header value; `None` when it is malformed. Unknown parameters are ignored,
    /// a refresher other than `uac` or `uas` is malformed.
    pub fn parse(value: &str) -> Option<SessionExpires> {
        let mut parts = value.split(';');
        let delta = parse_delta(parts.next()?)?;
        let mut refresher = None;
        for param in parts {
            let (name, value) = param.split_once('=').unwrap_or((param, ""));
            if trim_ws(name).eq_ignore_ascii_case("refresher") {
                refresher = match trim_ws(value).to_ascii_lowercase().as_str() {
                    "uac" => Some(Refresher::Uac),
                    "uas" => Some(Refresher::Uas),
                    _ => return None,
                };
            }
        }
        Some(SessionExpires { delta, refresher })
    }

    /// The header value, e.g. `1800;refresher=uac`.
    pub fn to_value(self) -> String {
        match self.refresher {
            Some(r) => format!("{};refresher={}", self.delta, r.as_str()),
            None => self.delta.to_string(),
        }
    }
}

/// `delta-seconds` (RFC 3261 §25.1: any number of digits): a value past what 32 bits hold is
/// read as the largest they do, some 136 years.
fn parse_delta(text: &str) -> Option<u32> {
    let digits = trim_ws(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(digits.parse().unwrap_or(u32::MAX))
}

/// What a UAS does with a request's session timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UasTimer {
    /// No timer: the request asked for none.
    Off,
    /// The interval is below what we take: 422 with this `Min-SE` (§9).
    TooSmall { min_se: u32 },
    /// `Session-Expires` is malformed: 400 with this reason.
    Malformed(&'static str),
    /// The timer runs: the answer carries [`UasTimer::answer_headers`]. `uac_supports`: the
    /// request listed `timer`, so the answer may require it.
    On {
        interval: u32,
        refresher: Refresher,
        uac_supports: bool,
    },
}

impl UasTimer {
    /// The headers a 2xx to the request carries: `Session-Expires`, and `Require: timer` when
    /// the UAC supports the timer (RFC 4028 §9: a MUST when it refreshes, a SHOULD when we do,
    /// so that it knows the session is timed).
    pub fn answer_headers(self) -> Vec<(&'static str, String)> {
        let UasTimer::On {
            interval,
            refresher,
            uac_supports,
        } = self
        else {
            return Vec::new();
        };
        let expires = SessionExpires {
            delta: interval,
            refresher: Some(refresher),
        };
        let mut headers = vec![("Session-Expires", expires.to_value())];
        if uac_supports {
            headers.push(("Require", "timer".to_owned()));
        }
        headers
    }
}

/// Whether a request's `Supported` or `Require` names an option tag.
fn names_option(req: &Request, tag: &str) -> bool {
    ["Supported", "Require"].iter().any(|h| {
        req.headers
            .list(h)
            .iter()
            .any(|t| t.eq_ignore_ascii_case(tag))
    })
}

/// The UAS's decision on a request's `Session-Expires` (RFC 4028 §9), taking intervals of at
/// least `min_se` seconds. The UAC refreshes when it supports the timer and did not ask
/// otherwise; SIPx refreshes when asked, or when the UAC does not support the timer and a
/// proxy asked for it (by UPDATE, or by re-INVITE to a peer without UPDATE).
pub fn negotiate_uas(req: &Request, min_se: u32) -> UasTimer {
    let Some(value) = req.headers.get("Session-Expires") else {
        return UasTimer::Off;
    };
    let Some(asked) = SessionExpires::parse(value) else {
        return UasTimer::Malformed("Malformed Session-Expires");
    };
    if asked.delta < min_se {
        return UasTimer::TooSmall { min_se };
    }
    // A UAC that does not list `timer` cannot refresh (a proxy put the header in): the UAS
    // does, whatever the header says (§9), and its answer requires nothing of the UAC.
    let uac_supports = names_option(req, "timer");
    let refresher = match asked.refresher {
        _ if !uac_supports => Refresher::Uas,
        Some(r) => r,
        None => Refresher::Uac,
    };
    UasTimer::On {
        interval: asked.delta,
        refresher,
        uac_supports,
    }
}

/// What the 2xx to our INVITE says of the session timer we offered (RFC 4028 §7.2): the
/// interval and whether we refresh, or `None` when the answer has no `Session-Expires` (the
/// peer does not support the timer, so no timer runs) or a malformed one. A 2xx that names no
/// refresher is read by its `Require`: `timer` there means the UAC (us) must refresh.
pub fn uac_timer_of(answer: &crate::msg::Headers) -> Option<(u32, bool)> {
    let se = SessionExpires::parse(answer.get("Session-Expires")?)?;
    let ours = match se.refresher {
        Some(r) => r == Refresher::Uac,
        None => answer
            .list("Require")
            .iter()
            .any(|t| t.eq_ignore_ascii_case("timer")),
    };
    Some((se.delta, ours))
}

/// The `Min-SE` of a 422, if readable.
pub fn min_se_of(headers: &crate::msg::Headers) -> Option<u32> {
    parse_delta(headers.get("Min-SE")?.split(';').next()?)
}

/// What a [`SessionTimer`] asks of its dialog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimerAction {
    /// Send a refresh (an UPDATE or re-INVITE with `Session-Expires: <interval>;refresher=uac`).
    Refresh,
    /// Nobody refreshed the session in time: end it with a BYE (§10).
    Expired,
}

/// How a refresh we sent was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshOutcome {
    /// 2xx: with the interval and refresher its `Session-Expires` says (`None`: no header, so
    /// no timer any more, RFC 4028 §7.2).
    Done(Option<SessionExpires>),
    /// 422: the peer wants at least this interval; ask again at once.
    TooSmall(u32),
    /// 408 or 481: the dialog is gone (RFC 4028 §10 and RFC 5057).
    DialogGone,
    /// 491: the peer's own re-INVITE or UPDATE crossed ours. Try again after this wait,
    /// which the caller draws as RFC 3261 §14.1 says ([`glare_wait`]) so that the two sides
    /// do not meet again.
    Glare(Duration),
    /// Anything else, or no answer: try again 2 s later, while the session lasts.
    Failed,
    /// Refused for good (a challenge we cannot answer): no more tries; the session ends when
    /// its interval runs out, as it will at the peer.
    Refused,
}

/// After a failed refresh, the next try comes this much later.
const RETRY: Duration = Duration::from_secs(2);

/// How long to wait after a 491 before asking again (RFC 3261 §14.1): 2.1 to 4 s for the
/// side that generated the dialog's Call-ID (the caller), 0 to 2 s for the other, in steps of
/// 10 ms; `random` picks the point in that range. The two ranges do not overlap, so the
/// callee always goes first and the two requests cannot cross again.
pub fn glare_wait(owns_call_id: bool, random: u16) -> Duration {
    let (first, steps) = if owns_call_id { (210, 190) } else { (0, 200) };
    Duration::from_millis(10 * (first + u64::from(random) % (steps + 1)))
}

/// One dialog's session timer. Fed with time and refresh outcomes; says when it next needs
/// [`SessionTimer::handle_timeout`].
#[derive(Debug, Clone)]
pub struct SessionTimer {
    /// The interval our next refresh asks for.
    interval: Duration,
    /// The interval the last refresh agreed: when the session ends. A 422 raises `interval`
    /// for the next try, not the end of the session already running.
    agreed: Duration,
    /// The smallest interval either side takes: ours, raised by a peer's 422 (its `Min-SE`
    /// goes into our refreshes, RFC 4028 §7.4).
    min_se: u32,
    /// We send the refreshes (else the peer does).
    ours: bool,
    /// The last successful refresh (or the answer that started the timer).
    refreshed_at: Instant,
    /// Our next refresh, while no refresh of ours is in flight.
    next_refresh: Option<Instant>,
    /// The refresh in flight is the immediate retry after a 422.
    retried_422: bool,
    /// Counts the restarts: an answer to a refresh sent before the last one (the peer
    /// refreshed meanwhile) is stale.
    epoch: u64,
}

impl SessionTimer {
    /// A timer started now, of `interval` seconds (not below `min_se`), refreshed by us
    /// (`ours`) or by the peer.
    pub fn new(now: Instant, interval: u32, ours: bool, min_se: u32) -> SessionTimer {
        let mut timer = SessionTimer {
            interval: Duration::ZERO,
            agreed: Duration::ZERO,
            min_se,
            ours,
            refreshed_at: now,
            next_refresh: None,
            retried_422: false,
            epoch: 0,
        };
        timer.refreshed(now, interval, ours);
        timer
    }

    /// A refresh succeeded (ours, or the peer's request that we answered 2xx), with this
    /// interval (an answer below the minimum is read as the minimum: a peer's odd 2xx must
    /// not make us refresh in a loop or end the call at once) and refresher from now on.
    pub fn refreshed(&mut self, now: Instant, interval: u32, ours: bool) {
        self.interval = Duration::from_secs(u64::from(interval.max(self.min_se).max(1)));
        self.agreed = self.interval;
        self.ours = ours;
        self.restart(now);
    }

    fn restart(&mut self, now: Instant) {
        self.refreshed_at = now;
        self.retried_422 = false;
        self.epoch += 1;
        // The refresher refreshes half-way (§10); the other side waits for it.
        self.next_refresh = self.ours.then(|| now + self.interval / 2);
    }

    /// Whether we are the refresher.
    pub fn ours(&self) -> bool {
        self.ours
    }

    /// The interval in seconds.
    pub fn interval(&self) -> u32 {
        u32::try_from(self.interval.as_secs()).unwrap_or(u32::MAX)
    }

    /// Which restart the timer is at: given back with a refresh's outcome
    /// ([`SessionTimer::on_refresh_outcome`]), it tells a stale answer.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The `Min-SE` our refreshes carry.
    pub fn min_se(&self) -> u32 {
        self.min_se
    }

    /// When the session is over without a refresh. The side that waits sends its BYE a little
    /// before the interval runs out, by the smaller of 32 s and a third of it (§10), so the
    /// BYE arrives while proxies still hold the session; the refresher gives up at the end.
    fn expiry(&self) -> Instant {
        if self.ours {
            self.refreshed_at + self.agreed
        } else {
            self.peer_gives_up()
        }
    }

    /// When the side that waits for refreshes ends the session without one (§10).
    fn peer_gives_up(&self) -> Instant {
        let end = self.refreshed_at + self.agreed;
        end - (self.agreed / 3).min(Duration::from_secs(32))
    }

    pub fn poll_timeout(&self) -> Instant {
        match self.next_refresh {
            Some(at) => at.min(self.expiry()),
            None => self.expiry(),
        }
    }

    /// What is due at `now`, if anything. A refresh is asked for once, until its outcome.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<TimerAction> {
        if now >= self.expiry() {
            return Some(TimerAction::Expired);
        }
        match self.next_refresh {
            Some(at) if now >= at => {
                self.next_refresh = None;
                Some(TimerAction::Refresh)
            }
            _ => None,
        }
    }

    /// The answer to our refresh sent at `epoch`. Returns `false` when the timer is over (no
    /// timer any more, or the dialog is gone: `DialogGone` means the call should end). The
    /// answer to a refresh overtaken by the peer's own (the timer restarted since) changes
    /// nothing, unless it says the dialog is gone.
    pub fn on_refresh_outcome(
        &mut self,
        now: Instant,
        epoch: u64,
        outcome: RefreshOutcome,
    ) -> bool {
        if epoch != self.epoch && outcome != RefreshOutcome::DialogGone {
            return true;
        }
        match outcome {
            RefreshOutcome::Done(None) => false,
            RefreshOutcome::Done(Some(se)) => {
                // In our refresh we were the UAC: `uac` is us.
                let ours = se.refresher != Some(Refresher::Uas);
                self.refreshed(now, se.delta, ours);
                true
            }
            // A 422 asking for more than we asked: again at once with that, once. One asking
            // for no more, or a second one, is a peer that refuses whatever we send: a plain
            // failure, retried at the failure's pace (never a loop of instant retries).
            RefreshOutcome::TooSmall(min_se) if min_se > self.interval() && !self.retried_422 => {
                self.min_se = self.min_se.max(min_se);
                self.interval = Duration::from_secs(u64::from(min_se));
                self.next_refresh = Some(now);
                self.retried_422 = true;
                true
            }
            RefreshOutcome::DialogGone => false,
            RefreshOutcome::Refused => {
                self.next_refresh = None;
                true
            }
            RefreshOutcome::TooSmall(_) | RefreshOutcome::Failed | RefreshOutcome::Glare(_) => {
                // Again shortly, while that is still before the end.
                self.retried_422 = false;
                let wait = match outcome {
                    RefreshOutcome::Glare(wait) => wait,
                    _ => RETRY,
                };
                // Not after the peer's last moment while that is still ahead: waiting for
                // the refresh, it sends its BYE a little before the end (`expiry`). A short
                // interval leaves less than the full wait; the session comes first. Past
                // that moment, a lenient peer may still take one, at the usual pace.
                let last_chance = self.peer_gives_up();
                let again = match now + wait {
                    again if again > last_chance && last_chance > now => last_chance,
                    again => again,
                };
                self.next_refresh = (again < self.expiry()).then_some(again);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests;
