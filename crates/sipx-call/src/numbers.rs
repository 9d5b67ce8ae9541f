//! A trunk's number rules: the first rule whose prefix starts a number replaces that prefix.
//!
//! Providers write numbers their own way: national (`030123456`), with an international
//! access code (`004930123456`), or E.164 (`+4930123456`). One list of rules rewrites the
//! numbers SIPx dials into the provider's form (a trunk's `outbound.number_rules`), another
//! the numbers it receives into the application's (`inbound.number_rules`), so routing rules,
//! DID lists and webhooks see one form whatever the provider sends. Rules are tried in order,
//! so a longer prefix that shares its start with a shorter one (`00` before `0`) comes first.

use std::borrow::Cow;

/// Rewrites, in order: (prefix, replacement).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NumberRules(Vec<(String, String)>);

impl NumberRules {
    pub fn new(rules: impl IntoIterator<Item = (String, String)>) -> Self {
        NumberRules(rules.into_iter().collect())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `number` with the first matching rule's prefix replaced; unchanged when none matches,
    /// or when it is not a number at all (a room's name, `echo`), which no rule is about. An
    /// empty prefix matches every number but one already in international form (`+…`): a
    /// carrier that writes numbers two ways must not get `+1` put before `+1202…`.
    pub fn apply<'a>(&self, number: &'a str) -> Cow<'a, str> {
        if !is_number(number) {
            return Cow::Borrowed(number);
        }
        self.0
            .iter()
            .filter(|(prefix, _)| !prefix.is_empty() || !number.starts_with('+'))
            .find_map(|(prefix, with)| {
                number
                    .strip_prefix(prefix.as_str())
                    .map(|rest| Cow::Owned(format!("{with}{rest}")))
            })
            .unwrap_or(Cow::Borrowed(number))
    }
}

/// An optional `+`, then digits, `*`, `#` and the visual separators of a tel URI.
fn is_number(s: &str) -> bool {
    let digits = s.strip_prefix('+').unwrap_or(s);
    !digits.is_empty()
        && digits
            .bytes()
            .all(|b| b.is_ascii_digit() || b"*#-.() ".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn german() -> NumberRules {
        NumberRules::new([
            ("00".to_owned(), "+".to_owned()),
            ("0".to_owned(), "+49".to_owned()),
        ])
    }

    #[test]
    fn the_first_matching_rule_rewrites() {
        let rules = german();
        assert_eq!(rules.apply("004930123"), "+4930123");
        assert_eq!(rules.apply("030123"), "+4930123");
        assert_eq!(rules.apply("+4930123"), "+4930123");
    }

    #[test]
    fn no_rule_or_no_match_leaves_the_number_as_it_is() {
        assert!(matches!(
            NumberRules::default().apply("030"),
            Cow::Borrowed("030")
        ));
        assert!(matches!(german().apply("112"), Cow::Borrowed("112")));
        assert_eq!(german().apply(""), "");
    }

    #[test]
    fn an_empty_prefix_matches_every_national_number_and_nothing_else() {
        let rules = NumberRules::new([("".to_owned(), "+1".to_owned())]);
        assert_eq!(rules.apply("2025550100"), "+12025550100");
        assert_eq!(rules.apply("202-555-0100"), "+1202-555-0100");
        assert_eq!(rules.apply("+12025550100"), "+12025550100");
        assert_eq!(rules.apply("+442071234567"), "+442071234567");
        for name in ["echo", "room-support", "alice", "+", "", "12ab"] {
            assert_eq!(rules.apply(name), name);
        }
    }

    #[test]
    fn a_rule_may_remove_its_prefix() {
        let rules = NumberRules::new([("+49".to_owned(), "0".to_owned())]);
        assert_eq!(rules.apply("+4930123"), "030123");
        assert_eq!(rules.apply("+3312"), "+3312");
    }
}
