//! Ids that sort in the order they were made, even within one millisecond: a call's events and
//! their deliveries must keep their order, and both are listed by id.

use std::sync::Mutex;

/// One generator for the process: ULIDs of the same millisecond are incremented, not random.
static IDS: Mutex<ulid::Generator> = Mutex::new(ulid::Generator::new());

/// `<prefix>_` + a lowercase ULID later than every one made before by this process.
pub fn sorted_id(prefix: &str) -> String {
    #[allow(clippy::unwrap_or_default)] // Ulid's Default is the nil id, not a new one
    let id = IDS
        .lock()
        .ok()
        .and_then(|mut g| g.generate().ok())
        // A poisoned lock or 2^80 ids in one millisecond: a plain ULID is still unique.
        .unwrap_or_else(ulid::Ulid::new);
    format!("{prefix}_{}", id.to_string().to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sort_in_the_order_made() {
        let ids: Vec<String> = (0..1000).map(|_| sorted_id("x")).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        assert!(ids[0].starts_with("x_") && ids[0].len() == 28);
    }
}
