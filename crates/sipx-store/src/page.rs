/// Keyset pagination: items come in id order (ids are ULIDs, so creation order), and the next
/// page starts after the last id seen. Stable under concurrent inserts, unlike OFFSET.
#[derive(Debug, Clone, Default)]
pub struct PageRequest {
    /// Return items whose id is greater than this one.
    pub after: Option<String>,
    /// At most this many items (callers clamp it).
    pub limit: u32,
}

#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// The id to pass as `after` for the next page, when there is one.
    pub next_after: Option<String>,
}

impl<T> Page<T> {
    /// Builds a page from up to `limit + 1` rows: the extra row only proves there is more.
    pub(crate) fn from_rows(mut rows: Vec<T>, limit: u32, key: impl Fn(&T) -> String) -> Self {
        let limit = limit as usize;
        let more = rows.len() > limit;
        rows.truncate(limit);
        let next_after = if more { rows.last().map(key) } else { None };
        Page {
            items: rows,
            next_after,
        }
    }
}
