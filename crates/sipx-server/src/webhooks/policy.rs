//! What an attempt's outcome leads to: delivered, failed, or another try later. Pure: the time
//! is passed in.

use std::time::Duration;

use sipx_store::AfterAttempt;

use crate::config::WebhooksConfig;

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The receiver answered with this status.
    Answered(u16),
    /// No answer: connection refused, timeout, TLS failure, reset… Worth another try.
    NoAnswer(String),
    /// The request cannot be made at all (a URL the HTTP stack refuses): retrying is futile.
    Unsendable(String),
}

impl Outcome {
    pub fn http_status(&self) -> Option<u16> {
        match self {
            Outcome::Answered(s) => Some(*s),
            _ => None,
        }
    }

    pub fn error(&self) -> Option<String> {
        match self {
            Outcome::Answered(_) => None,
            Outcome::NoAnswer(e) | Outcome::Unsendable(e) => Some(e.clone()),
        }
    }
}

/// The retry rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// Retries stop this long after the event.
    pub retry_for: Duration,
}

impl From<&WebhooksConfig> for RetryPolicy {
    fn from(c: &WebhooksConfig) -> Self {
        RetryPolicy {
            initial_backoff: Duration::from_millis(c.initial_backoff_ms),
            max_backoff: Duration::from_millis(c.max_backoff_ms),
            retry_for: Duration::from_secs(c.retry_for_secs),
        }
    }
}

impl RetryPolicy {
    /// The wait after the `attempts`-th failed attempt: the initial backoff, doubled per
    /// further attempt, capped.
    pub fn backoff(&self, attempts: u32) -> Duration {
        let doublings = attempts.saturating_sub(1).min(63);
        let factor = 1u32.checked_shl(doublings).unwrap_or(u32::MAX);
        self.initial_backoff
            .checked_mul(factor)
            .unwrap_or(self.max_backoff)
            .min(self.max_backoff)
    }

    /// What follows the `attempts`-th attempt (1 for the first) of a delivery created at
    /// `created_at_ms`, ending at `now_ms`. 2xx delivers; a 4xx other than 408 (timeout) and
    /// 429 (too many requests) is the receiver refusing this event for good; anything else is
    /// retried while the retry falls inside the window.
    pub fn after(
        &self,
        outcome: &Outcome,
        attempts: u32,
        created_at_ms: i64,
        now_ms: i64,
    ) -> AfterAttempt {
        match outcome {
            Outcome::Answered(s) if (200..300).contains(s) => return AfterAttempt::Delivered,
            Outcome::Answered(s) if (400..500).contains(s) && *s != 408 && *s != 429 => {
                return AfterAttempt::Failed;
            }
            Outcome::Unsendable(_) => return AfterAttempt::Failed,
            _ => {}
        }
        let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        let next = now_ms.saturating_add(ms(self.backoff(attempts)));
        let deadline = created_at_ms.saturating_add(ms(self.retry_for));
        if next <= deadline {
            AfterAttempt::RetryAt(next)
        } else {
            AfterAttempt::Failed
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> RetryPolicy {
        RetryPolicy::from(&WebhooksConfig::default())
    }

    #[test]
    fn backoff_doubles_from_one_second_up_to_a_minute() {
        let p = defaults();
        let secs: Vec<u64> = (1..=10).map(|n| p.backoff(n).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 32, 60, 60, 60, 60]);
        assert_eq!(p.backoff(u32::MAX), Duration::from_secs(60), "no overflow");
    }

    #[test]
    fn a_failing_receiver_is_retried_for_an_hour() {
        let p = defaults();
        // Attempt after attempt against a dead receiver, each taking no time.
        let mut now = 0;
        let mut attempts = 0;
        let mut retries_at = Vec::new();
        loop {
            attempts += 1;
            match p.after(&Outcome::NoAnswer("refused".into()), attempts, 0, now) {
                AfterAttempt::RetryAt(t) => {
                    retries_at.push(t);
                    now = t;
                }
                AfterAttempt::Failed => break,
                AfterAttempt::Delivered => unreachable!(),
            }
        }
        assert_eq!(
            &retries_at[..7],
            &[1_000, 3_000, 7_000, 15_000, 31_000, 63_000, 123_000]
        );
        let last = *retries_at.last().unwrap();
        assert!(last <= 3_600_000 && last + 60_000 > 3_600_000, "{last}");
        assert_eq!(attempts as usize, retries_at.len() + 1);
    }

    #[test]
    fn statuses_decide() {
        let p = defaults();
        let after = |s| p.after(&Outcome::Answered(s), 1, 0, 0);
        for s in [200, 201, 202, 204, 299] {
            assert_eq!(after(s), AfterAttempt::Delivered, "{s}");
        }
        for s in [400, 401, 403, 404, 410, 422, 499] {
            assert_eq!(after(s), AfterAttempt::Failed, "{s}");
        }
        for s in [408, 429, 500, 502, 503, 504, 301, 302, 100] {
            assert_eq!(after(s), AfterAttempt::RetryAt(1000), "{s}");
        }
        assert_eq!(
            p.after(&Outcome::Unsendable("bad".into()), 1, 0, 0),
            AfterAttempt::Failed
        );
    }
}
