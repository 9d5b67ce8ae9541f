//! Graceful drain: work that must finish before the process exits (live calls, in-flight
//! requests) holds a [`DrainGuard`]; on SIGTERM the server stops taking new work and waits until
//! no guard is left, or the drain timeout passes.

use std::time::Duration;

use tokio::sync::watch;

#[derive(Clone)]
pub struct Drain {
    active: watch::Sender<usize>,
}

/// Held while one unit of work is live.
pub struct DrainGuard {
    active: watch::Sender<usize>,
}

impl Default for Drain {
    fn default() -> Self {
        Drain {
            active: watch::channel(0).0,
        }
    }
}

impl Drain {
    pub fn track(&self) -> DrainGuard {
        self.active.send_modify(|n| *n += 1);
        DrainGuard {
            active: self.active.clone(),
        }
    }

    pub fn active(&self) -> usize {
        *self.active.borrow()
    }

    /// Waits until nothing is tracked; `false` if `timeout` passed first.
    pub async fn wait_idle(&self, timeout: Duration) -> bool {
        let mut rx = self.active.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|n| *n == 0))
            .await
            .is_ok()
    }
}

impl Drop for DrainGuard {
    fn drop(&mut self) {
        self.active.send_modify(|n| *n = n.saturating_sub(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waits_for_guards() {
        let drain = Drain::default();
        assert!(drain.wait_idle(Duration::from_millis(1)).await);
        let g = drain.track();
        assert_eq!(drain.active(), 1);
        assert!(!drain.wait_idle(Duration::from_millis(10)).await);
        let d2 = drain.clone();
        let waiter = tokio::spawn(async move { d2.wait_idle(Duration::from_secs(5)).await });
        drop(g);
        assert!(waiter.await.unwrap());
    }
}
