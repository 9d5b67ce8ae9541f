//! Number rules, as trunks and SIP accounts take them: prefix rewrites between a provider's or
//! gateway's way of writing numbers and the application's (`sipx_call::NumberRules` applies
//! them). Stored as a JSON array.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::problem::Checker;

/// Most rules in one list.
const MAX_RULES: usize = 32;

/// A number starting with `prefix` has that prefix replaced with `replace_with` (the first
/// matching rule of a list wins).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"prefix": "0", "replace_with": "+49"}))]
pub struct NumberRule {
    #[schema(pattern = r"^\+?[0-9*#]{0,16}$")]
    pub prefix: String,
    #[schema(pattern = r"^\+?[0-9*#]{0,16}$")]
    pub replace_with: String,
}

/// A phone number: an optional `+`, then up to 32 digits, `*` or `#` (none when `allow_empty`).
pub(super) fn is_number(s: &str, allow_empty: bool) -> bool {
    let digits = s.strip_prefix('+').unwrap_or(s);
    (allow_empty || !digits.is_empty())
        && digits.len() <= 32
        && digits
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'*' || b == b'#')
}

/// Checks a list given as `field`, naming each rule at fault by its index.
pub(super) fn check(rules: &[NumberRule], field: &str, c: &mut Checker) {
    c.check(rules.len() <= MAX_RULES, field, "at most 32 rules");
    for (i, r) in rules.iter().enumerate() {
        c.check(
            is_number(&r.prefix, true)
                && is_number(&r.replace_with, true)
                && r.prefix.len() <= 17
                && r.replace_with.len() <= 17,
            format!("{field}[{i}]"),
            "prefix and replace_with: optional +, then up to 16 digits",
        );
    }
}

pub(super) fn to_stored(rules: &[NumberRule]) -> String {
    serde_json::to_string(rules).unwrap_or_else(|_| "[]".to_owned())
}

/// The API wrote what is stored; anything else reads as no rules.
pub(super) fn from_stored(json: &str) -> Vec<NumberRule> {
    serde_json::from_str(json).unwrap_or_default()
}

/// Stored rules as the SIP service applies them.
pub fn stored_number_rules(json: &str) -> sipx_call::NumberRules {
    sipx_call::NumberRules::new(
        from_stored(json)
            .into_iter()
            .map(|r| (r.prefix, r.replace_with)),
    )
}
