//! Which version of the store's trunks, SIP accounts and routing rules the core runs on.
//!
//! Loads run as tasks and can finish out of order (a trunk's host name may resolve slowly), so
//! each carries the store's change version it started from: a load older than what is in place
//! is dropped instead of bringing back rules or trunks the API already changed. Once trunks and
//! rules both hold a version, the store hears of it, and the API write that made it answers.

#[derive(Debug, Default)]
pub(super) struct Loaded {
    routing: Option<u64>,
    trunks: Option<u64>,
    /// The version at which the account cache was last emptied: a lookup started before it
    /// may hold a changed password, so it serves the REGISTERs that waited for it but is not
    /// cached.
    accounts_since: u64,
}

impl Loaded {
    /// Whether routing rules loaded at `version` are at least as new as those in place (and
    /// are now the ones in place).
    pub(super) fn take_routing(&mut self, version: u64) -> bool {
        take(&mut self.routing, version)
    }

    /// The same for trunks.
    pub(super) fn take_trunks(&mut self, version: u64) -> bool {
        take(&mut self.trunks, version)
    }

    /// The version both trunks and rules are at, once both have loaded.
    pub(super) fn settled(&self) -> Option<u64> {
        Some(self.routing?.min(self.trunks?))
    }

    pub(super) fn accounts_emptied(&mut self, version: u64) {
        self.accounts_since = version;
    }

    /// Whether an account looked up at `version` may be cached.
    pub(super) fn account_cacheable(&self, version: u64) -> bool {
        version >= self.accounts_since
    }
}

fn take(slot: &mut Option<u64>, version: u64) -> bool {
    let current = slot.is_none_or(|v| version >= v);
    if current {
        *slot = Some(version);
    }
    current
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_load_that_finishes_after_a_newer_one_is_dropped() {
        let mut loaded = Loaded::default();
        assert!(loaded.take_routing(3));
        assert!(!loaded.take_routing(2), "an older load came in late");
        assert!(
            loaded.take_routing(3),
            "the same version read again is as good"
        );
        assert_eq!(loaded.settled(), None, "trunks have not loaded yet");
        assert!(loaded.take_trunks(1));
        assert_eq!(loaded.settled(), Some(1));
        assert!(loaded.take_trunks(4));
        assert_eq!(loaded.settled(), Some(3));
    }

    #[test]
    fn an_account_looked_up_before_the_cache_was_emptied_is_not_cached() {
        let mut loaded = Loaded::default();
        assert!(loaded.account_cacheable(0));
        loaded.accounts_emptied(5);
        assert!(!loaded.account_cacheable(4));
        assert!(loaded.account_cacheable(5));
    }
}
