//! What the core's calls publish on the application's event bus (webhooks and `/v1/events`):
//! every state change (`call.state`), every key the phone pressed (`call.dtmf`), every step of a
//! transfer (`call.transfer`). docs/webhooks.md shows the shapes.

use serde_json::json;
use sipx_api::call_service::{StoredHistoryEntry, state_number};
use sipx_api::events::AppEvent;

/// Who a call belongs to and where its events go.
pub(crate) struct CallTag<'a> {
    pub app_id: &'a str,
    pub call_id: &'a str,
    pub direction: &'a str,
    pub webhook_url: Option<&'a str>,
}

impl CallTag<'_> {
    fn event(&self, kind: &str, data: serde_json::Value) -> AppEvent {
        AppEvent {
            app_id: self.app_id.to_owned(),
            kind: kind.to_owned(),
            call_id: Some(self.call_id.to_owned()),
            webhook_url: self.webhook_url.map(str::to_owned),
            data,
        }
    }

    /// A new entry of the call's history; `seq` is its index (receivers order by it).
    pub fn state(&self, entry: &StoredHistoryEntry, seq: usize) -> AppEvent {
        self.event(
            "call.state",
            json!({
                "call_id": self.call_id,
                "direction": self.direction,
                "seq": seq,
                "state": entry.state,
                "state_number": state_number(&entry.state),
                "code": entry.code,
                "reason": entry.reason,
                "cause": entry.cause,
                "at_ms": entry.at_ms,
                "timestamp": entry.at_ms as f64 / 1000.0,
                "done": entry.cause.is_some(),
            }),
        )
    }

    pub fn dtmf(&self, digit: char, at_ms: i64) -> AppEvent {
        self.event(
            "call.dtmf",
            json!({"call_id": self.call_id, "digit": digit.to_string(), "at_ms": at_ms}),
        )
    }

    /// `replaces`: the other call of an attended transfer.
    pub fn transfer(
        &self,
        state: &str,
        status: Option<u16>,
        to: &str,
        replaces: Option<&str>,
    ) -> AppEvent {
        let mut data = json!({"call_id": self.call_id, "state": state, "status": status, "to": to});
        if let Some(other) = replaces {
            data["replaces"] = json!(other);
        }
        self.event("call.transfer", data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_event_carries_the_history_entry_and_the_old_number() {
        let tag = CallTag {
            app_id: "app_1",
            call_id: "call_1",
            direction: "outbound",
            webhook_url: Some("https://example.com/h"),
        };
        let entry = StoredHistoryEntry {
            state: "EARLY".to_owned(),
            at_ms: 1_500,
            code: 180,
            reason: "Ringing".to_owned(),
            cause: None,
        };
        let e = tag.state(&entry, 1);
        assert_eq!(e.kind, "call.state");
        assert_eq!(e.webhook_url.as_deref(), Some("https://example.com/h"));
        assert_eq!(e.data["state_number"], 3);
        assert_eq!(e.data["timestamp"], 1.5);
        assert_eq!(e.data["done"], false);
        assert_eq!(tag.dtmf('5', 7).data["digit"], "5");
    }
}
