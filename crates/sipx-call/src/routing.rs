//! Inbound routing: which rule an arriving call matches and what it does, as a pure function.
//!
//! [`route`] takes the application's rules (the driver converts the stored ones once per
//! change, compiling patterns then) and the call, and gives a [`Decision`]. The matching
//! enabled rule with the lowest `priority` wins, ties going to the lower id (the older rule);
//! the order of the slice does not matter.
//!
//! A rule matches when each condition it sets holds: the trunk, the SIP account, the called
//! and the calling number. Numbers are the SIP user parts. `exact` and `prefix` compare them
//! as dialled numbers: a leading `+` and the visual separators `-` `.` `(` `)` and space are
//! ignored on both sides, so `+49 30 1234` equals `4930-1234`. A `pattern` is a regular
//! expression over the raw user part, matched whole (anchored at both ends), in linear time
//! (the `regex` crate has no backtracking), with its length and compiled size bounded.
//!
//! Room names made here pass `sipx_rooms::valid_name` (at most 64 of `A-Z a-z 0-9 - _ . @ +`):
//! numbers are reduced to their digits, the unique suffix to letters and digits, and a name
//! that would be too long loses the end of its prefix, never its unique part. Prefixes and
//! fixed room names are the API's to validate.

use std::time::Duration;

use crate::pin::Pin;

/// Longest pattern accepted, in bytes.
pub const MAX_PATTERN_LEN: usize = 256;
/// Bound on a compiled pattern (and its lazy DFA's cache), so no rule can take much memory.
const PATTERN_SIZE_LIMIT: usize = 256 * 1024;
/// The longest room name `sipx_rooms::valid_name` accepts.
const MAX_ROOM_NAME: usize = 64;
/// Digits kept from a number for a room name.
const MAX_NUMBER_DIGITS: usize = 32;

/// The status and reason of a call whose called number gives no room name.
const NO_DIGITS: (u16, &str) = (404, "Called number has no digits");

/// A compiled number pattern.
#[derive(Debug, Clone)]
pub struct Pattern {
    source: String,
    regex: regex::Regex,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PatternError {
    #[error("a pattern has at most {MAX_PATTERN_LEN} bytes")]
    TooLong,
    #[error("not a valid regular expression: {0}")]
    Invalid(String),
}

impl Pattern {
    /// Compiles `source` to match a whole user part.
    pub fn new(source: &str) -> Result<Pattern, PatternError> {
        if source.len() > MAX_PATTERN_LEN {
            return Err(PatternError::TooLong);
        }
        regex::RegexBuilder::new(&format!("^(?:{source})$"))
            .size_limit(PATTERN_SIZE_LIMIT)
            .dfa_size_limit(PATTERN_SIZE_LIMIT)
            .nest_limit(32)
            .build()
            .map(|regex| Pattern {
                source: source.to_owned(),
                regex,
            })
            // The library's message spans lines (it draws a caret under the error).
            .map_err(|e| PatternError::Invalid(one_line(&e.to_string())))
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    pub fn is_match(&self, user: &str) -> bool {
        self.regex.is_match(user)
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A condition on a number.
#[derive(Debug, Clone)]
pub enum NumberMatch {
    Exact(String),
    Prefix(String),
    Pattern(Pattern),
}

/// A number as dialled: no leading `+`, no visual separators, no URI parameters
/// (`+49 (30) 123-456;npdi` is `4930123456`).
fn dialled(s: &str) -> impl Iterator<Item = char> + '_ {
    let s = s.split(';').next().unwrap_or("");
    s.strip_prefix('+')
        .unwrap_or(s)
        .chars()
        .filter(|c| !matches!(c, '-' | '.' | '(' | ')' | ' '))
}

impl NumberMatch {
    pub fn matches(&self, user: &str) -> bool {
        match self {
            NumberMatch::Exact(v) => dialled(v).eq(dialled(user)),
            NumberMatch::Prefix(v) => {
                let mut user = dialled(user);
                dialled(v).all(|c| user.next() == Some(c))
            }
            NumberMatch::Pattern(p) => p.is_match(user),
        }
    }
}

/// What a matching rule does.
#[derive(Debug, Clone)]
pub enum Action {
    /// Join this room, after the PIN when one is set.
    FixedRoom { room: String, pin: Option<Pin> },
    /// A new room per call: `prefix` plus the caller-supplied unique suffix.
    RoomPerCaller { prefix: String },
    /// The room named by the called number's digits, after `prefix`.
    RoomByCalledNumber { prefix: Option<String> },
    /// Ask the application's webhook which room (see [`after_webhook`]).
    Webhook {
        url: String,
        timeout: Duration,
        fallback_room: Option<String>,
    },
    /// Refuse the call with this final response.
    Reject { code: u16, reason: Option<String> },
}

/// One routing rule, as the driver converts it from the stored one.
#[derive(Debug, Clone)]
pub struct Rule {
    pub id: String,
    /// Lower first.
    pub priority: u32,
    pub trunk_id: Option<String>,
    pub sip_account_id: Option<String>,
    pub called: Option<NumberMatch>,
    pub caller: Option<NumberMatch>,
    pub action: Action,
}

/// The arriving call, as routing sees it.
#[derive(Debug, Clone, Copy)]
pub struct InboundCall<'a> {
    /// The trunk it came through, if any.
    pub trunk_id: Option<&'a str>,
    /// The SIP account whose device sent it, if any.
    pub sip_account_id: Option<&'a str>,
    /// User part of the Request-URI (or To).
    pub called: &'a str,
    /// User part of From.
    pub caller: &'a str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Answer and put the call into this room; with a PIN, collect it first
    /// ([`crate::PinEntry`]).
    Room { name: String, pin: Option<Pin> },
    /// Ask the webhook (ringing meanwhile), then decide with [`after_webhook`].
    AskWebhook {
        url: String,
        timeout: Duration,
        fallback_room: Option<String>,
    },
    /// Refuse with this code; no reason: the standard phrase.
    Reject { code: u16, reason: Option<String> },
    /// No rule matched: refuse with the configured `routing.no_rule_status`.
    NoRule,
}

impl Rule {
    fn matches(&self, call: &InboundCall<'_>) -> bool {
        let same = |want: &Option<String>, got: Option<&str>| {
            want.as_deref().is_none_or(|w| got == Some(w))
        };
        let number =
            |m: &Option<NumberMatch>, user: &str| m.as_ref().is_none_or(|m| m.matches(user));
        same(&self.trunk_id, call.trunk_id)
            && same(&self.sip_account_id, call.sip_account_id)
            && number(&self.called, call.called)
            && number(&self.caller, call.caller)
    }
}

/// Routes `call`. `unique` is the suffix a per-call room gets (the call's id, say): it keeps
/// this function pure; only its letters and digits are used.
pub fn route(rules: &[Rule], call: &InboundCall<'_>, unique: &str) -> Decision {
    let Some(rule) = rules
        .iter()
        .filter(|r| r.matches(call))
        .min_by(|a, b| (a.priority, &a.id).cmp(&(b.priority, &b.id)))
    else {
        return Decision::NoRule;
    };
    match &rule.action {
        Action::FixedRoom { room, pin } => Decision::Room {
            name: room.clone(),
            pin: pin.clone(),
        },
        Action::RoomPerCaller { prefix } => {
            let suffix: String = unique
                .chars()
                .filter(char::is_ascii_alphanumeric)
                .take(MAX_ROOM_NAME)
                .collect();
            room(prefix, &suffix)
        }
        Action::RoomByCalledNumber { prefix } => {
            let digits: String = call
                .called
                .chars()
                .filter(char::is_ascii_digit)
                .take(MAX_NUMBER_DIGITS)
                .collect();
            if digits.is_empty() {
                return Decision::Reject {
                    code: NO_DIGITS.0,
                    reason: Some(NO_DIGITS.1.to_owned()),
                };
            }
            room(prefix.as_deref().unwrap_or(""), &digits)
        }
        Action::Webhook {
            url,
            timeout,
            fallback_room,
        } => Decision::AskWebhook {
            url: url.clone(),
            timeout: *timeout,
            fallback_room: fallback_room.clone(),
        },
        Action::Reject { code, reason } => Decision::Reject {
            code: *code,
            reason: reason.clone(),
        },
    }
}

/// `prefix` + `suffix`, cutting the prefix's end when the whole would be too long.
fn room(prefix: &str, suffix: &str) -> Decision {
    if suffix.is_empty() {
        // Only an empty `unique` gets here: the driver's mistake, refused rather than
        // sending every such call into one shared room.
        return Decision::Reject {
            code: 500,
            reason: Some("No unique room name".to_owned()),
        };
    }
    let room_for_prefix = MAX_ROOM_NAME.saturating_sub(suffix.len());
    let mut cut = prefix.len().min(room_for_prefix);
    while !prefix.is_char_boundary(cut) {
        cut -= 1;
    }
    Decision::Room {
        name: format!("{}{suffix}", &prefix[..cut]),
        pin: None,
    }
}

/// What the webhook answered, once the driver has parsed and checked it: a room whose name
/// passes `sipx_rooms::valid_name` (with a PIN that passed [`Pin::new`]), or a refusal whose
/// code passes [`is_reject_code`]. Anything else (an error status, a timeout, a body that does
/// not parse or breaks those rules) is no answer: `None` to [`after_webhook`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookAnswer {
    Room { name: String, pin: Option<Pin> },
    Reject { code: u16 },
}

/// Turns the webhook's answer into the call's fate: its room, its refusal, or without an
/// answer the rule's fallback room, else `480 Routing webhook failed`.
pub fn after_webhook(answer: Option<WebhookAnswer>, fallback_room: Option<&str>) -> Decision {
    match answer {
        Some(WebhookAnswer::Room { name, pin }) => Decision::Room { name, pin },
        Some(WebhookAnswer::Reject { code }) => Decision::Reject { code, reason: None },
        None => match fallback_room {
            Some(room) => Decision::Room {
                name: room.to_owned(),
                pin: None,
            },
            None => Decision::Reject {
                code: 480,
                reason: Some("Routing webhook failed".to_owned()),
            },
        },
    }
}

/// The final responses a rule or a webhook may refuse with: 400–699, except 401 and 407
/// (challenges, which a caller would answer with credentials no one checks).
pub fn is_reject_code(code: u16) -> bool {
    (400..=699).contains(&code) && code != 401 && code != 407
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn rule(id: &str, priority: u32, action: Action) -> Rule {
        Rule {
            id: id.to_owned(),
            priority,
            trunk_id: None,
            sip_account_id: None,
            called: None,
            caller: None,
            action,
        }
    }

    fn fixed(room: &str) -> Action {
        Action::FixedRoom {
            room: room.to_owned(),
            pin: None,
        }
    }

    fn call<'a>(called: &'a str, caller: &'a str) -> InboundCall<'a> {
        InboundCall {
            trunk_id: Some("trunk_a"),
            sip_account_id: None,
            called,
            caller,
        }
    }

    fn room_of(d: Decision) -> String {
        match d {
            Decision::Room { name, .. } => {
                assert!(sipx_rooms::valid_name(&name), "{name}");
                name
            }
            other => panic!("not a room: {other:?}"),
        }
    }

    #[test]
    fn no_rule_matches_nothing() {
        assert_eq!(route(&[], &call("1", "2"), "u"), Decision::NoRule);
        let mut r = rule("rule_1", 1, fixed("x"));
        r.trunk_id = Some("trunk_b".into());
        assert_eq!(route(&[r], &call("1", "2"), "u"), Decision::NoRule);
    }

    #[test]
    fn lowest_priority_wins_then_lowest_id_whatever_the_order() {
        let rules = [
            rule("rule_3", 20, fixed("c")),
            rule("rule_2", 10, fixed("b")),
            rule("rule_1", 10, fixed("a")),
            rule("rule_0", 30, fixed("z")),
        ];
        assert_eq!(room_of(route(&rules, &call("1", "2"), "u")), "a");
        let mut reversed = rules.clone();
        reversed.reverse();
        assert_eq!(room_of(route(&reversed, &call("1", "2"), "u")), "a");
        // A better rule that does not match gives way.
        let mut picky = rule("rule_00", 0, fixed("picky"));
        picky.caller = Some(NumberMatch::Exact("999".into()));
        let mut with = vec![picky];
        with.extend(rules);
        assert_eq!(room_of(route(&with, &call("1", "2"), "u")), "a");
        assert_eq!(room_of(route(&with, &call("1", "999"), "u")), "picky");
    }

    #[test]
    fn trunk_and_account_conditions() {
        let mut by_trunk = rule("rule_1", 1, fixed("t"));
        by_trunk.trunk_id = Some("trunk_a".into());
        let mut by_account = rule("rule_2", 1, fixed("s"));
        by_account.sip_account_id = Some("sipacct_x".into());
        let rules = [by_trunk, by_account];
        assert_eq!(room_of(route(&rules, &call("1", "2"), "u")), "t");
        let from_device = InboundCall {
            trunk_id: None,
            sip_account_id: Some("sipacct_x"),
            called: "1",
            caller: "2",
        };
        assert_eq!(room_of(route(&rules, &from_device, "u")), "s");
        let other = InboundCall {
            sip_account_id: Some("sipacct_y"),
            ..from_device
        };
        assert_eq!(route(&rules, &other, "u"), Decision::NoRule);
    }

    #[test]
    fn exact_and_prefix_ignore_plus_and_separators() {
        let exact = NumberMatch::Exact("+49 (30) 123-45.6".into());
        assert!(exact.matches("4930123456"));
        assert!(exact.matches("+4930123456"));
        assert!(!exact.matches("49301234567"));
        assert!(!exact.matches("493012345"));
        let prefix = NumberMatch::Prefix("+49 30".into());
        assert!(prefix.matches("+4930123"));
        assert!(prefix.matches("4930"));
        assert!(!prefix.matches("493"));
        assert!(!prefix.matches("4940123"));
        assert!(NumberMatch::Prefix(String::new()).matches("anything"));
        // Only a leading + goes.
        assert!(!NumberMatch::Exact("49".into()).matches("4+9"));
    }

    #[test]
    fn patterns_match_the_whole_raw_user_part() {
        let p = NumberMatch::Pattern(Pattern::new(r"\+?49[0-9]{4}").unwrap());
        assert!(p.matches("+491234"));
        assert!(p.matches("491234"));
        assert!(!p.matches("4912345"), "anchored at the end");
        assert!(!p.matches("x491234"), "anchored at the start");
        // Alternation is grouped inside the anchors.
        let alt = NumberMatch::Pattern(Pattern::new("100|200").unwrap());
        assert!(alt.matches("200") && !alt.matches("2000") && !alt.matches("1200"));
        // The raw user part: separators are not stripped for patterns.
        assert!(!p.matches("+49 1234"));
        let sales = NumberMatch::Pattern(Pattern::new("sales-[a-z]+").unwrap());
        assert!(sales.matches("sales-east"));
    }

    #[test]
    fn bad_patterns_are_errors() {
        assert_eq!(
            Pattern::new(&"1".repeat(257)).unwrap_err(),
            PatternError::TooLong
        );
        let e = Pattern::new("(12").unwrap_err();
        assert!(
            matches!(&e, PatternError::Invalid(m) if !m.contains('\n')),
            "{e}"
        );
        // Within the length limit but huge once compiled.
        assert!(matches!(
            Pattern::new(r"\w{100}\w{100}\w{50}"),
            Err(PatternError::Invalid(_))
        ));
        // Back-references and look-around do not exist in linear-time regexes.
        assert!(Pattern::new(r"(1)\1").is_err());
        assert!(Pattern::new(r"(?=1)1").is_err());
        assert_eq!(Pattern::new("12.*").unwrap().as_str(), "12.*");
    }

    #[test]
    fn a_pathological_pattern_runs_in_linear_time() {
        // Catastrophic for a backtracking engine; instant here.
        let p = Pattern::new("(a+)+b").unwrap();
        assert!(!p.is_match(&"a".repeat(10_000)));
    }

    #[test]
    fn fixed_room_carries_its_pin() {
        let pin = Pin::new("4711");
        let r = rule(
            "rule_1",
            1,
            Action::FixedRoom {
                room: "vip".into(),
                pin: pin.clone(),
            },
        );
        assert_eq!(
            route(&[r], &call("1", "2"), "u"),
            Decision::Room {
                name: "vip".into(),
                pin
            }
        );
    }

    #[test]
    fn room_per_caller_is_unique_and_valid() {
        let r = [rule(
            "rule_1",
            1,
            Action::RoomPerCaller {
                prefix: "call-".into(),
            },
        )];
        let a = room_of(route(&r, &call("1", "2"), "01JDX3R5T6Y7"));
        let b = room_of(route(&r, &call("1", "2"), "01JDX3R5T6Y8"));
        assert_eq!(a, "call-01JDX3R5T6Y7");
        assert_ne!(a, b);
        // Only letters and digits of the suffix are used.
        assert_eq!(room_of(route(&r, &call("1", "2"), "a/b c")), "call-abc");
        // Too long: the prefix gives way, the unique part stays whole.
        let long = [rule(
            "rule_1",
            1,
            Action::RoomPerCaller {
                prefix: "p".repeat(60),
            },
        )];
        let name = room_of(route(&long, &call("1", "2"), &"u".repeat(26)));
        assert_eq!(name.len(), 64);
        assert!(name.ends_with(&"u".repeat(26)));
        assert!(matches!(
            route(&r, &call("1", "2"), "--"),
            Decision::Reject { code: 500, .. }
        ));
    }

    #[test]
    fn room_by_called_number_keeps_digits_only() {
        let plain = [rule(
            "rule_1",
            1,
            Action::RoomByCalledNumber { prefix: None },
        )];
        assert_eq!(
            room_of(route(&plain, &call("+49 (30) 1234", "2"), "u")),
            "49301234"
        );
        let prefixed = [rule(
            "rule_1",
            1,
            Action::RoomByCalledNumber {
                prefix: Some("did-".into()),
            },
        )];
        assert_eq!(
            room_of(route(&prefixed, &call("%2B4930", "2"), "u")),
            "did-24930",
            "digits only, whatever surrounds them"
        );
        let long = room_of(route(&prefixed, &call(&"9".repeat(100), "2"), "u"));
        assert_eq!(long, format!("did-{}", "9".repeat(32)));
        assert_eq!(
            route(&plain, &call("sales", "2"), "u"),
            Decision::Reject {
                code: 404,
                reason: Some("Called number has no digits".into())
            }
        );
    }

    #[test]
    fn webhook_and_reject_actions() {
        let hook = rule(
            "rule_1",
            1,
            Action::Webhook {
                url: "https://example.com/route".into(),
                timeout: Duration::from_millis(3000),
                fallback_room: Some("lobby".into()),
            },
        );
        assert_eq!(
            route(&[hook], &call("1", "2"), "u"),
            Decision::AskWebhook {
                url: "https://example.com/route".into(),
                timeout: Duration::from_millis(3000),
                fallback_room: Some("lobby".into()),
            }
        );
        let reject = rule(
            "rule_1",
            1,
            Action::Reject {
                code: 486,
                reason: None,
            },
        );
        assert_eq!(
            route(&[reject], &call("1", "2"), "u"),
            Decision::Reject {
                code: 486,
                reason: None
            }
        );
    }

    #[test]
    fn webhook_answers_and_fallbacks() {
        let pin = Pin::new("1234");
        assert_eq!(
            after_webhook(
                Some(WebhookAnswer::Room {
                    name: "r".into(),
                    pin: pin.clone()
                }),
                Some("lobby")
            ),
            Decision::Room {
                name: "r".into(),
                pin
            }
        );
        assert_eq!(
            after_webhook(Some(WebhookAnswer::Reject { code: 486 }), Some("lobby")),
            Decision::Reject {
                code: 486,
                reason: None
            }
        );
        assert_eq!(
            after_webhook(None, Some("lobby")),
            Decision::Room {
                name: "lobby".into(),
                pin: None
            }
        );
        assert!(matches!(
            after_webhook(None, None),
            Decision::Reject { code: 480, .. }
        ));
    }

    #[test]
    fn reject_codes() {
        for ok in [400, 403, 404, 480, 486, 503, 603, 699] {
            assert!(is_reject_code(ok), "{ok}");
        }
        for bad in [0, 200, 302, 399, 401, 407, 700] {
            assert!(!is_reject_code(bad), "{bad}");
        }
    }
}
