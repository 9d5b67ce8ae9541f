//! Which deliveries to attempt, and when: one queue per call and URL, so a call's events reach
//! the receiver in order (a later one waits while an earlier one is retried); events without
//! a call each go on their own. An application has at most `per_app` attempts in flight, so
//! one whose receiver is slow or unreachable (each attempt waiting out its timeout) cannot
//! hold every slot while other applications' events wait. Pure: times are Unix milliseconds
//! passed in.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;

use sipx_store::{AfterAttempt, DeliveryRecord};

/// A delivery waiting for its next attempt.
#[derive(Debug, Clone)]
pub struct Pending {
    pub id: String,
    pub app_id: String,
    pub event_id: String,
    pub call_id: Option<String>,
    pub url: Arc<str>,
    /// Goes to the application's URL as it is at each attempt (`url`: as it was last).
    pub to_app_url: bool,
    pub body: Arc<str>,
    /// Attempts made so far.
    pub attempts: u32,
    pub created_at_ms: i64,
    /// When it is due (for a queue's later entries: not before the ones ahead).
    pub next_at_ms: i64,
}

impl From<DeliveryRecord> for Pending {
    fn from(d: DeliveryRecord) -> Self {
        Pending {
            next_at_ms: d.next_attempt_at_ms.unwrap_or(d.created_at_ms),
            id: d.id,
            app_id: d.app_id,
            event_id: d.event_id,
            call_id: d.call_id,
            url: d.url.into(),
            to_app_url: d.to_app_url,
            body: d.body.into(),
            attempts: d.attempt_count,
            created_at_ms: d.created_at_ms,
        }
    }
}

impl Pending {
    /// The queue it waits in: its call's at its URL (the application's URL, whatever it
    /// becomes, is one), or one of its own.
    pub fn queue_key(&self) -> String {
        let url = if self.to_app_url {
            "\u{0}app"
        } else {
            &*self.url
        };
        match &self.call_id {
            Some(call) => format!("call\u{0}{}\u{0}{call}\u{0}{url}", self.app_id),
            None => format!("one\u{0}{}", self.id),
        }
    }
}

#[derive(Debug)]
pub struct Schedule {
    queues: HashMap<String, VecDeque<Pending>>,
    /// Each application's queues whose head is waiting (not being attempted), by when the
    /// head is due.
    due: HashMap<String, BTreeSet<(i64, String)>>,
    /// The applications that may start an attempt (some head waiting, a slot free), by when
    /// their earliest head is due: what to start next is the first of these, without looking
    /// at the waiting heads of applications at their limit (a dead receiver's backlog can be
    /// tens of thousands).
    ready: BTreeSet<(i64, String)>,
    /// Each ready application's entry in `ready`.
    ready_at: HashMap<String, i64>,
    /// Every delivery held, so one added twice (reloaded at start and also announced) is
    /// held once.
    held: HashSet<String>,
    /// Attempts in flight per application, and the most one may have.
    in_flight: HashMap<String, usize>,
    per_app: usize,
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule::new(usize::MAX)
    }
}

impl Schedule {
    pub fn new(per_app: usize) -> Self {
        Schedule {
            queues: HashMap::new(),
            due: HashMap::new(),
            ready: BTreeSet::new(),
            ready_at: HashMap::new(),
            held: HashSet::new(),
            in_flight: HashMap::new(),
            per_app: per_app.max(1),
        }
    }

    /// Puts application `app`'s entry in `ready` right: its earliest waiting head, if it has
    /// one and a slot free; none otherwise.
    fn refresh(&mut self, app: &str) {
        if let Some(at) = self.ready_at.remove(app) {
            self.ready.remove(&(at, app.to_owned()));
        }
        let busy = self.in_flight.get(app).copied().unwrap_or(0);
        let earliest = self
            .due
            .get(app)
            .and_then(BTreeSet::first)
            .map(|(at, _)| *at);
        if let Some(at) = earliest.filter(|_| busy < self.per_app) {
            self.ready.insert((at, app.to_owned()));
            self.ready_at.insert(app.to_owned(), at);
        }
    }

    /// Queue `key`'s head (of application `app`) waits again, due at `at`.
    fn wait(&mut self, app: &str, at: i64, key: String) {
        self.due
            .entry(app.to_owned())
            .or_default()
            .insert((at, key));
        self.refresh(app);
    }

    /// Queues a delivery behind the earlier ones of its call.
    pub fn add(&mut self, p: Pending) {
        if !self.held.insert(p.id.clone()) {
            return;
        }
        let key = p.queue_key();
        let queue = self.queues.entry(key.clone()).or_default();
        let first = queue.is_empty();
        let (app, at) = (p.app_id.clone(), p.next_at_ms);
        queue.push_back(p);
        if first {
            self.wait(&app, at, key);
        }
    }

    /// Heads due at `now_ms`, at most `max`, earliest first. They stay at the head of their
    /// queue, out of the due set, until [`Schedule::finish`]. Heads of applications at their
    /// limit are left waiting.
    pub fn take_due(&mut self, now_ms: i64, max: usize) -> Vec<Pending> {
        let mut out = Vec::new();
        while out.len() < max {
            let Some((at, app)) = self.ready.first().cloned() else {
                break;
            };
            if at > now_ms {
                break;
            }
            let key = self
                .due
                .get_mut(&app)
                .and_then(BTreeSet::pop_first)
                .map(|(_, key)| key);
            if self.due.get(&app).is_some_and(BTreeSet::is_empty) {
                self.due.remove(&app);
            }
            if let Some(head) = key
                .and_then(|k| self.queues.get(&k))
                .and_then(VecDeque::front)
            {
                *self.in_flight.entry(app.clone()).or_default() += 1;
                out.push(head.clone());
            }
            self.refresh(&app);
        }
        out
    }

    /// When the earliest head that may start is due (`None`: nothing may start before an
    /// attempt finishes).
    pub fn next_due(&self) -> Option<i64> {
        self.ready.first().map(|(at, _)| *at)
    }

    /// Applies what an attempt of `p` (as returned by `take_due`) led to.
    pub fn finish(&mut self, p: &Pending, after: AfterAttempt) {
        let key = p.queue_key();
        let Some(queue) = self.queues.get_mut(&key) else {
            return;
        };
        if queue.front().is_none_or(|head| head.id != p.id) {
            return; // not ours: nothing to do
        }
        if let Some(n) = self.in_flight.get_mut(&p.app_id) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.in_flight.remove(&p.app_id);
            }
        }
        let next_at = match after {
            AfterAttempt::RetryAt(at) => {
                if let Some(head) = queue.front_mut() {
                    head.attempts = p.attempts + 1;
                    head.next_at_ms = at;
                }
                Some(at)
            }
            AfterAttempt::Delivered | AfterAttempt::Failed => {
                queue.pop_front();
                self.held.remove(&p.id);
                let next = queue.front().map(|next| next.next_at_ms);
                if next.is_none() {
                    self.queues.remove(&key);
                }
                next
            }
        };
        match next_at {
            Some(at) => self.wait(&p.app_id, at, key),
            None => self.refresh(&p.app_id),
        }
    }

    /// Deliveries held (waiting or being attempted).
    pub fn len(&self) -> usize {
        self.held.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(id: &str, call: Option<&str>, url: &str, at: i64) -> Pending {
        Pending {
            id: id.to_owned(),
            app_id: "app_a".to_owned(),
            event_id: format!("evt_{id}"),
            call_id: call.map(str::to_owned),
            url: url.into(),
            to_app_url: false,
            body: "{}".into(),
            attempts: 0,
            created_at_ms: at,
            next_at_ms: at,
        }
    }

    fn ids(v: &[Pending]) -> Vec<&str> {
        v.iter().map(|p| p.id.as_str()).collect()
    }

    #[test]
    fn a_calls_events_wait_for_the_earlier_one() {
        let mut s = Schedule::default();
        s.add(pending("1", Some("c1"), "u", 0));
        s.add(pending("2", Some("c1"), "u", 0));
        s.add(pending("3", Some("c1"), "u", 0));
        s.add(pending("x", Some("c2"), "u", 0));
        s.add(pending("y", None, "u", 0));
        s.add(pending("z", None, "u", 0));
        let first = s.take_due(0, 10);
        let mut got = ids(&first);
        got.sort_unstable();
        assert_eq!(
            got,
            ["1", "x", "y", "z"],
            "one per call, every call-less one"
        );
        assert!(
            s.take_due(0, 10).is_empty(),
            "heads in flight are not handed out twice"
        );

        // 1 fails: retried at 1000; 2 and 3 wait behind it.
        s.finish(&first[0], AfterAttempt::RetryAt(1000));
        assert_eq!(s.next_due(), Some(1000));
        assert!(s.take_due(999, 10).is_empty());
        let again = s.take_due(1000, 10);
        assert_eq!(ids(&again), ["1"]);
        assert_eq!(again[0].attempts, 1);
        s.finish(&again[0], AfterAttempt::Delivered);
        let next = s.take_due(1000, 10);
        assert_eq!(ids(&next), ["2"], "then the next of the call");
        s.finish(&next[0], AfterAttempt::Failed);
        assert_eq!(
            ids(&s.take_due(1000, 10)),
            ["3"],
            "a failed one does not block"
        );
        assert_eq!(s.len(), 4, "3, x, y, z still held");
    }

    #[test]
    fn the_same_call_to_another_url_is_another_queue() {
        let mut s = Schedule::default();
        s.add(pending("1", Some("c1"), "u1", 0));
        s.add(pending("2", Some("c1"), "u2", 0));
        assert_eq!(s.take_due(0, 10).len(), 2);
    }

    #[test]
    fn respects_the_limit_and_the_time_order() {
        let mut s = Schedule::default();
        s.add(pending("late", None, "u", 50));
        s.add(pending("early", None, "u", 10));
        s.add(pending("mid", None, "u", 20));
        assert_eq!(ids(&s.take_due(100, 2)), ["early", "mid"]);
        assert_eq!(ids(&s.take_due(100, 2)), ["late"]);
    }

    #[test]
    fn an_application_at_its_limit_leaves_the_slots_to_the_others() {
        let mut s = Schedule::new(2);
        for n in 0..5 {
            s.add(pending(&format!("a{n}"), None, "slow", n));
        }
        let mut b = pending("b0", None, "fine", 10);
        b.app_id = "app_b".to_owned();
        s.add(b);
        let first = s.take_due(100, 10);
        assert_eq!(
            ids(&first),
            ["a0", "a1", "b0"],
            "two of A's, then B's at once"
        );
        assert_eq!(
            s.next_due(),
            None,
            "A's others wait for a slot, not a timer"
        );
        s.finish(&first[0], AfterAttempt::RetryAt(1000));
        assert_eq!(s.next_due(), Some(2), "a slot came back: A's next may go");
        assert_eq!(ids(&s.take_due(100, 10)), ["a2"]);
    }

    #[test]
    fn a_delivery_added_twice_is_held_once() {
        let mut s = Schedule::default();
        s.add(pending("1", Some("c"), "u", 0));
        s.add(pending("1", Some("c"), "u", 0));
        let got = s.take_due(0, 10);
        assert_eq!(ids(&got), ["1"]);
        s.finish(&got[0], AfterAttempt::Delivered);
        assert_eq!(s.len(), 0);
        assert!(s.next_due().is_none());
    }
}
