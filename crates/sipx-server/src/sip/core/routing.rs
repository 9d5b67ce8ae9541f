//! The routing rules as the core holds them: read from the store at start and after every
//! change, converted once (patterns compiled then) to `sipx_call::routing::Rule`s per
//! application, and asked for each new call whose trunk or account names its application.

use std::collections::HashMap;
use std::time::Duration;

use sipx_call::Pin;
use sipx_call::routing::{Action, Decision, InboundCall, NumberMatch, Pattern, Rule, route};
use sipx_store::{MatchKind, RoutingRuleWithPin, RuleAction};

use super::{Core, CoreInput};

/// What the store holds, ready for matching.
#[derive(Debug, Default)]
pub(crate) struct Routing {
    /// Application id → its rules (the matcher orders them itself).
    rules: HashMap<String, Vec<Rule>>,
    /// SIP account username → its id: calls are known by the username their device
    /// registered as, rules name the account by id.
    account_ids: HashMap<String, String>,
}

impl Routing {
    pub fn new(stored: Vec<RoutingRuleWithPin>, account_ids: Vec<(String, String)>) -> Routing {
        let mut rules: HashMap<String, Vec<Rule>> = HashMap::new();
        for r in stored {
            let app = r.rule.app_id.clone();
            let id = r.rule.id.clone();
            match convert(r) {
                Ok(rule) => rules.entry(app).or_default().push(rule),
                // The API validated it; a rule stored otherwise (an older version's) is skipped
                // rather than matched wrongly.
                Err(why) => tracing::warn!(rule = %id, why, "routing rule skipped"),
            }
        }
        Routing {
            rules,
            account_ids: account_ids.into_iter().collect(),
        }
    }

    pub fn rule_count(&self) -> usize {
        self.rules.values().map(Vec::len).sum()
    }

    pub fn account_id(&self, username: &str) -> Option<&str> {
        self.account_ids.get(username).map(String::as_str)
    }

    /// The fate of `call` under `app_id`'s rules.
    pub fn decide(&self, app_id: &str, call: &InboundCall<'_>, unique: &str) -> Decision {
        let rules = self.rules.get(app_id).map(Vec::as_slice).unwrap_or(&[]);
        route(rules, call, unique)
    }
}

fn number(m: &sipx_store::NumberMatch) -> Result<NumberMatch, &'static str> {
    Ok(match m.kind {
        MatchKind::Exact => NumberMatch::Exact(m.value.clone()),
        MatchKind::Prefix => NumberMatch::Prefix(m.value.clone()),
        MatchKind::Pattern => {
            NumberMatch::Pattern(Pattern::new(&m.value).map_err(|_| "pattern does not compile")?)
        }
    })
}

/// A stored rule as the matcher takes it.
fn convert(stored: RoutingRuleWithPin) -> Result<Rule, &'static str> {
    let d = stored.rule.data;
    let action = match d.action {
        RuleAction::FixedRoom { room } => Action::FixedRoom {
            room,
            pin: match &stored.pin {
                Some(p) => Some(Pin::new(p.expose()).ok_or("stored PIN is not 4-12 digits")?),
                None => None,
            },
        },
        RuleAction::RoomPerCaller { prefix } => Action::RoomPerCaller { prefix },
        RuleAction::RoomByCalledNumber { prefix } => Action::RoomByCalledNumber { prefix },
        RuleAction::Webhook {
            url,
            timeout_ms,
            fallback_room,
        } => Action::Webhook {
            url,
            timeout: Duration::from_millis(u64::from(timeout_ms)),
            fallback_room,
        },
        RuleAction::Reject { sip_code, reason } => Action::Reject {
            code: sip_code,
            reason,
        },
    };
    Ok(Rule {
        id: stored.rule.id,
        priority: d.priority,
        trunk_id: d.trunk_id,
        sip_account_id: d.sip_account_id,
        called: d.called.as_ref().map(number).transpose()?,
        caller: d.caller.as_ref().map(number).transpose()?,
        action,
    })
}

impl Core {
    /// Reads the rules and the accounts' ids off the core task; they come back as
    /// `CoreInput::RoutingLoaded`.
    pub(super) fn load_routing(&self) {
        let store = self.store.clone();
        let inputs = self.inputs.clone();
        // Read before the rules: they hold at least every write up to it.
        let version = store.change_version();
        tokio::spawn(async move {
            let rules = store.routing_rules_for_sip().await;
            let ids = store.sip_account_ids().await;
            match (rules, ids) {
                (Ok(rules), Ok(ids)) => {
                    let _ = inputs
                        .send(CoreInput::RoutingLoaded {
                            routing: Box::new(Routing::new(rules, ids)),
                            version,
                        })
                        .await;
                }
                (Err(e), _) | (_, Err(e)) => {
                    tracing::error!(error = %e, "cannot load the routing rules");
                }
            }
        });
    }

    pub(super) fn apply_routing(&mut self, routing: Routing) {
        tracing::info!(rules = routing.rule_count(), "routing rules loaded");
        self.routing = routing;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use sipx_secrets::Redacted;
    use sipx_store::{RoutingRuleData, RoutingRuleRecord};

    fn stored(app: &str, id: &str, data: RoutingRuleData, pin: Option<&str>) -> RoutingRuleWithPin {
        RoutingRuleWithPin {
            rule: RoutingRuleRecord {
                id: id.to_owned(),
                app_id: app.to_owned(),
                data,
                has_pin: pin.is_some(),
                created_at_ms: 0,
                updated_at_ms: 0,
            },
            pin: pin.map(|p| Redacted::new(p.to_owned())),
        }
    }

    /// A rule on every call of its application, or on `called` numbers.
    fn data(
        priority: u32,
        called: Option<(MatchKind, &str)>,
        action: RuleAction,
    ) -> RoutingRuleData {
        let called = called.map(|(kind, value)| sipx_store::NumberMatch {
            kind,
            value: value.to_owned(),
        });
        RoutingRuleData {
            called,
            caller: None,
            trunk_id: None,
            sip_account_id: None,
            description: None,
            enabled: true,
            priority,
            action,
        }
    }

    fn call<'a>(called: &'a str) -> InboundCall<'a> {
        InboundCall {
            trunk_id: Some("trunk_1"),
            sip_account_id: None,
            called,
            caller: "100",
        }
    }

    #[test]
    fn stored_rules_route_per_application() {
        let by_number = data(
            5,
            Some((MatchKind::Pattern, "49[0-9]+")),
            RuleAction::RoomByCalledNumber {
                prefix: Some("did-".into()),
            },
        );
        let routing = Routing::new(
            vec![
                stored(
                    "app_a",
                    "rule_1",
                    data(
                        10,
                        None,
                        RuleAction::FixedRoom {
                            room: "lobby".into(),
                        },
                    ),
                    Some("4711"),
                ),
                stored("app_a", "rule_2", by_number, None),
                stored(
                    "app_b",
                    "rule_3",
                    data(
                        1,
                        None,
                        RuleAction::Reject {
                            sip_code: 486,
                            reason: None,
                        },
                    ),
                    None,
                ),
            ],
            vec![("gw1".into(), "sipacct_1".into())],
        );
        assert_eq!(routing.rule_count(), 3);
        assert_eq!(routing.account_id("gw1"), Some("sipacct_1"));
        assert_eq!(
            routing.decide("app_a", &call("4930"), "u"),
            Decision::Room {
                name: "did-4930".into(),
                pin: None
            }
        );
        assert_eq!(
            routing.decide("app_a", &call("100"), "u"),
            Decision::Room {
                name: "lobby".into(),
                pin: Pin::new("4711")
            }
        );
        assert!(matches!(
            routing.decide("app_b", &call("4930"), "u"),
            Decision::Reject { code: 486, .. }
        ));
        assert_eq!(routing.decide("app_c", &call("1"), "u"), Decision::NoRule);
    }

    #[test]
    fn a_rule_stored_wrong_is_skipped_not_widened() {
        let bad = data(
            1,
            Some((MatchKind::Pattern, "(")),
            RuleAction::FixedRoom { room: "x".into() },
        );
        let routing = Routing::new(
            vec![
                stored("app_a", "rule_1", bad, None),
                stored(
                    "app_a",
                    "rule_2",
                    data(2, None, RuleAction::FixedRoom { room: "y".into() }),
                    Some("12"),
                ),
            ],
            Vec::new(),
        );
        assert_eq!(routing.rule_count(), 0);
        assert_eq!(routing.decide("app_a", &call("1"), "u"), Decision::NoRule);
    }
}
