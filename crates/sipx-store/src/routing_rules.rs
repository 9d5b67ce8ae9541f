//! Inbound routing rules, per application: what a call arriving through a trunk or from a
//! registered device matches on, and where it goes. Listed (and matched) lowest `priority`
//! first, ties by id; the PIN of a fixed room is sealed like every other secret.

use std::fmt;
use std::str::FromStr;

use sipx_secrets::Redacted;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use crate::time::now_ms;
use crate::{Page, SecretChange, Store, StoreError};

/// How a number condition compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchKind {
    Exact,
    Prefix,
    /// A regular expression over the whole user part (validated by the API).
    Pattern,
}

impl MatchKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MatchKind::Exact => "exact",
            MatchKind::Prefix => "prefix",
            MatchKind::Pattern => "pattern",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "exact" => Some(MatchKind::Exact),
            "prefix" => Some(MatchKind::Prefix),
            "pattern" => Some(MatchKind::Pattern),
            _ => None,
        }
    }
}

/// A condition on the called or the calling number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberMatch {
    pub kind: MatchKind,
    pub value: String,
}

/// Where a matching call goes. The PIN of `FixedRoom` is not here: it is a secret, written
/// through a [`SecretChange`] and read only by [`Store::routing_rules_for_sip`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleAction {
    FixedRoom {
        room: String,
    },
    /// A new room per call: the prefix plus a unique suffix.
    RoomPerCaller {
        prefix: String,
    },
    /// The room named by the called number's digits, after the prefix.
    RoomByCalledNumber {
        prefix: Option<String>,
    },
    Webhook {
        url: String,
        timeout_ms: u32,
        fallback_room: Option<String>,
    },
    Reject {
        sip_code: u16,
        reason: Option<String>,
    },
}

impl RuleAction {
    pub fn type_name(&self) -> &'static str {
        match self {
            RuleAction::FixedRoom { .. } => "fixed_room",
            RuleAction::RoomPerCaller { .. } => "room_per_caller",
            RuleAction::RoomByCalledNumber { .. } => "room_by_called_number",
            RuleAction::Webhook { .. } => "webhook",
            RuleAction::Reject { .. } => "reject",
        }
    }
}

/// Everything about a rule except its PIN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutingRuleData {
    /// Lower first.
    pub priority: u32,
    pub enabled: bool,
    pub description: Option<String>,
    /// Only calls through this trunk (`None`: any).
    pub trunk_id: Option<String>,
    /// Only calls from this account's registered devices (`None`: any).
    pub sip_account_id: Option<String>,
    pub called: Option<NumberMatch>,
    pub caller: Option<NumberMatch>,
    pub action: RuleAction,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutingRuleRecord {
    pub id: String,
    pub app_id: String,
    pub data: RoutingRuleData,
    /// Whether a PIN protects the fixed room (it is never returned).
    pub has_pin: bool,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// A rule with its PIN opened, for the SIP service.
#[derive(Debug, Clone)]
pub struct RoutingRuleWithPin {
    pub rule: RoutingRuleRecord,
    pub pin: Option<Redacted<String>>,
}

/// Where a page of rules starts: after this (priority, id). Rules are listed in match order,
/// so the key is both; printed and parsed as `<priority>:<id>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleKey {
    pub priority: u32,
    pub id: String,
}

impl fmt::Display for RuleKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.priority, self.id)
    }
}

impl FromStr for RuleKey {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        let (priority, id) = s.split_once(':').ok_or(())?;
        Ok(RuleKey {
            priority: priority.parse().map_err(|_| ())?,
            id: id.to_owned(),
        })
    }
}

/// Which reference of a rule does not exist in its application.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissingRef {
    Trunk,
    SipAccount,
}

const COLUMNS: &str = "id, app_id, priority, enabled, description, trunk_id, sip_account_id, \
    called_kind, called_value, caller_kind, caller_value, action, room, pin_sealed, room_prefix, \
    webhook_url, timeout_ms, fallback_room, sip_code, reason, created_at_ms, updated_at_ms";

fn pin_context(id: &str) -> String {
    format!("routing-pin:{id}")
}

fn number_match(
    row: &SqliteRow,
    kind: &str,
    value: &str,
) -> Result<Option<NumberMatch>, sqlx::Error> {
    let kind: Option<String> = row.try_get(kind)?;
    let value: Option<String> = row.try_get(value)?;
    Ok(kind
        .as_deref()
        .and_then(MatchKind::parse)
        .zip(value)
        .map(|(kind, value)| NumberMatch { kind, value }))
}

/// A column the action needs but the row lacks: only a hand-edited database gets here.
fn missing(column: &str) -> sqlx::Error {
    sqlx::Error::ColumnDecode {
        index: column.to_owned(),
        source: "NULL where the rule's action needs a value".into(),
    }
}

fn action(row: &SqliteRow) -> Result<RuleAction, sqlx::Error> {
    let kind: String = row.try_get("action")?;
    let text = |c: &str| -> Result<Option<String>, sqlx::Error> { row.try_get(c) };
    let need = |c: &str| -> Result<String, sqlx::Error> { text(c)?.ok_or_else(|| missing(c)) };
    Ok(match kind.as_str() {
        "fixed_room" => RuleAction::FixedRoom {
            room: need("room")?,
        },
        "room_per_caller" => RuleAction::RoomPerCaller {
            prefix: need("room_prefix")?,
        },
        "room_by_called_number" => RuleAction::RoomByCalledNumber {
            prefix: text("room_prefix")?,
        },
        "webhook" => {
            let timeout: Option<i64> = row.try_get("timeout_ms")?;
            RuleAction::Webhook {
                url: need("webhook_url")?,
                timeout_ms: timeout
                    .and_then(|t| u32::try_from(t).ok())
                    .ok_or_else(|| missing("timeout_ms"))?,
                fallback_room: text("fallback_room")?,
            }
        }
        _ => {
            let code: Option<i64> = row.try_get("sip_code")?;
            RuleAction::Reject {
                sip_code: code
                    .and_then(|c| u16::try_from(c).ok())
                    .ok_or_else(|| missing("sip_code"))?,
                reason: text("reason")?,
            }
        }
    })
}

fn from_row(row: &SqliteRow) -> Result<RoutingRuleRecord, sqlx::Error> {
    let priority: i64 = row.try_get("priority")?;
    let pin: Option<String> = row.try_get("pin_sealed")?;
    Ok(RoutingRuleRecord {
        id: row.try_get("id")?,
        app_id: row.try_get("app_id")?,
        data: RoutingRuleData {
            priority: u32::try_from(priority).unwrap_or(u32::MAX),
            enabled: row.try_get("enabled")?,
            description: row.try_get("description")?,
            trunk_id: row.try_get("trunk_id")?,
            sip_account_id: row.try_get("sip_account_id")?,
            called: number_match(row, "called_kind", "called_value")?,
            caller: number_match(row, "caller_kind", "caller_value")?,
            action: action(row)?,
        },
        has_pin: pin.is_some(),
        created_at_ms: row.try_get("created_at_ms")?,
        updated_at_ms: row.try_get("updated_at_ms")?,
    })
}

type SqliteQuery<'q> =
    sqlx::query::Query<'q, sqlx::Sqlite, <sqlx::Sqlite as sqlx::Database>::Arguments>;

/// Binds a rule's fields, in the column order both the INSERT and the UPDATE list them.
fn bind_fields<'q>(
    q: SqliteQuery<'q>,
    d: &'q RoutingRuleData,
    pin_sealed: Option<String>,
) -> SqliteQuery<'q> {
    let (mut room, mut prefix, mut url, mut timeout, mut fallback, mut code, mut reason) =
        (None, None, None, None, None, None, None);
    match &d.action {
        RuleAction::FixedRoom { room: r } => room = Some(r.as_str()),
        RuleAction::RoomPerCaller { prefix: p } => prefix = Some(p.as_str()),
        RuleAction::RoomByCalledNumber { prefix: p } => prefix = p.as_deref(),
        RuleAction::Webhook {
            url: u,
            timeout_ms,
            fallback_room,
        } => {
            url = Some(u.as_str());
            timeout = Some(i64::from(*timeout_ms));
            fallback = fallback_room.as_deref();
        }
        RuleAction::Reject {
            sip_code,
            reason: r,
        } => {
            code = Some(i64::from(*sip_code));
            reason = r.as_deref();
        }
    }
    // Only a fixed room has a PIN; changing the action drops it.
    let pin_sealed = pin_sealed.filter(|_| room.is_some());
    q.bind(i64::from(d.priority))
        .bind(d.enabled)
        .bind(d.description.as_deref())
        .bind(d.trunk_id.as_deref())
        .bind(d.sip_account_id.as_deref())
        .bind(d.called.as_ref().map(|m| m.kind.as_str()))
        .bind(d.called.as_ref().map(|m| m.value.as_str()))
        .bind(d.caller.as_ref().map(|m| m.kind.as_str()))
        .bind(d.caller.as_ref().map(|m| m.value.as_str()))
        .bind(d.action.type_name())
        .bind(room)
        .bind(pin_sealed)
        .bind(prefix)
        .bind(url)
        .bind(timeout)
        .bind(fallback)
        .bind(code)
        .bind(reason)
}

impl Store {
    fn seal_pin(&self, id: &str, change: &SecretChange, old: Option<String>) -> Option<String> {
        match change {
            SecretChange::Keep => old,
            SecretChange::Clear => None,
            SecretChange::Set(pin) => {
                Some(self.master.seal(&pin_context(id), pin.expose().as_bytes()))
            }
        }
    }

    /// Checks, inside the write's transaction, that the trunk and the account a rule names
    /// are the application's own: another tenant's id is as unknown as a made-up one.
    async fn check_refs(
        tx: &mut sqlx::SqliteConnection,
        app_id: &str,
        d: &RoutingRuleData,
    ) -> Result<Option<MissingRef>, StoreError> {
        for (id, table, which) in [
            (&d.trunk_id, "trunks", MissingRef::Trunk),
            (&d.sip_account_id, "sip_accounts", MissingRef::SipAccount),
        ] {
            let Some(id) = id else { continue };
            let sql = format!("SELECT 1 FROM {table} WHERE app_id = ? AND id = ?");
            let found: Option<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .bind(app_id)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
            if found.is_none() {
                return Ok(Some(which));
            }
        }
        Ok(None)
    }

    /// Creates a rule; `Ok(Err(_))` names a trunk or account the application does not have.
    pub async fn create_routing_rule(
        &self,
        app_id: &str,
        data: &RoutingRuleData,
        pin: &SecretChange,
    ) -> Result<Result<RoutingRuleRecord, MissingRef>, StoreError> {
        let id = format!("rule_{}", ulid::Ulid::new().to_string().to_lowercase());
        let now = now_ms();
        let sealed = self.seal_pin(&id, pin, None);
        // IMMEDIATE: the transaction reads, then writes. A deferred one would hold a read
        // snapshot that another connection's commit makes stale, and its first write would
        // fail with SQLITE_BUSY at once instead of waiting its turn.
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        if let Some(missing) = Self::check_refs(&mut tx, app_id, data).await? {
            return Ok(Err(missing));
        }
        let insert = sqlx::query(
            "INSERT INTO routing_rules (id, app_id, priority, enabled, description, trunk_id,
             sip_account_id, called_kind, called_value, caller_kind, caller_value, action, room,
             pin_sealed, room_prefix, webhook_url, timeout_ms, fallback_room, sip_code, reason,
             created_at_ms, updated_at_ms)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&id)
        .bind(app_id);
        bind_fields(insert, data, sealed)
            .bind(now)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.changed().await;
        let created = self
            .get_routing_rule(app_id, &id)
            .await?
            .ok_or(StoreError::Conflict("routing rule"))?;
        Ok(Ok(created))
    }

    /// Replaces a rule's fields; `Ok(None)`: no such rule in this application.
    pub async fn update_routing_rule(
        &self,
        app_id: &str,
        id: &str,
        data: &RoutingRuleData,
        pin: &SecretChange,
    ) -> Result<Option<Result<RoutingRuleRecord, MissingRef>>, StoreError> {
        // IMMEDIATE: the transaction reads, then writes. A deferred one would hold a read
        // snapshot that another connection's commit makes stale, and its first write would
        // fail with SQLITE_BUSY at once instead of waiting its turn.
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let old: Option<(Option<String>,)> =
            sqlx::query_as("SELECT pin_sealed FROM routing_rules WHERE app_id = ? AND id = ?")
                .bind(app_id)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
        let Some((old_pin,)) = old else {
            return Ok(None);
        };
        if let Some(missing) = Self::check_refs(&mut tx, app_id, data).await? {
            return Ok(Some(Err(missing)));
        }
        let sealed = self.seal_pin(id, pin, old_pin);
        let update = sqlx::query(
            "UPDATE routing_rules SET priority = ?, enabled = ?, description = ?, trunk_id = ?,
             sip_account_id = ?, called_kind = ?, called_value = ?, caller_kind = ?,
             caller_value = ?, action = ?, room = ?, pin_sealed = ?, room_prefix = ?,
             webhook_url = ?, timeout_ms = ?, fallback_room = ?, sip_code = ?, reason = ?,
             updated_at_ms = ? WHERE app_id = ? AND id = ?",
        );
        bind_fields(update, data, sealed)
            .bind(now_ms())
            .bind(app_id)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.changed().await;
        Ok(self.get_routing_rule(app_id, id).await?.map(Ok))
    }

    pub async fn get_routing_rule(
        &self,
        app_id: &str,
        id: &str,
    ) -> Result<Option<RoutingRuleRecord>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM routing_rules WHERE app_id = ? AND id = ?");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(app_id)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(from_row).transpose()?)
    }

    /// One page of an application's rules in match order; `next_after` is a [`RuleKey`].
    pub async fn list_routing_rules(
        &self,
        app_id: &str,
        after: Option<&RuleKey>,
        limit: u32,
    ) -> Result<Page<RoutingRuleRecord>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM routing_rules WHERE app_id = ? AND (priority > ? OR
             (priority = ? AND id > ?)) ORDER BY priority, id LIMIT ?"
        );
        // With no key, start before every rule: priority -1 (priorities are >= 0).
        let (priority, id) = after.map_or((-1, ""), |k| (i64::from(k.priority), k.id.as_str()));
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(app_id)
            .bind(priority)
            .bind(priority)
            .bind(id)
            .bind(i64::from(limit) + 1)
            .fetch_all(&self.pool)
            .await?;
        let rows = rows.iter().map(from_row).collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_rows(rows, limit, |r| {
            RuleKey {
                priority: r.data.priority,
                id: r.id.clone(),
            }
            .to_string()
        }))
    }

    pub async fn delete_routing_rule(&self, app_id: &str, id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM routing_rules WHERE app_id = ? AND id = ?")
            .bind(app_id)
            .bind(id)
            .execute(&self.pool)
            .await?;
        self.changed().await;
        Ok(done.rows_affected() > 0)
    }

    /// Every enabled rule of every enabled application, in match order within each
    /// application, PINs opened: the SIP service's view.
    pub async fn routing_rules_for_sip(&self) -> Result<Vec<RoutingRuleWithPin>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM routing_rules WHERE enabled = 1 AND app_id IN
             (SELECT id FROM apps WHERE disabled = 0) ORDER BY app_id, priority, id"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let rule = from_row(row)?;
            let sealed: Option<String> = row.try_get("pin_sealed")?;
            let pin = sealed
                .map(|s| {
                    let plain = self.master.open(&pin_context(&rule.id), &s)?;
                    Ok::<_, StoreError>(Redacted::new(String::from_utf8_lossy(&plain).into_owned()))
                })
                .transpose()?;
            out.push(RoutingRuleWithPin { rule, pin });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::TrunkData;
    use crate::store::tests::temp_store;

    fn rule(priority: u32, action: RuleAction) -> RoutingRuleData {
        RoutingRuleData {
            priority,
            enabled: true,
            description: None,
            trunk_id: None,
            sip_account_id: None,
            called: None,
            caller: None,
            action,
        }
    }

    fn fixed(room: &str) -> RuleAction {
        RuleAction::FixedRoom { room: room.into() }
    }

    #[tokio::test]
    async fn every_action_round_trips_and_pins_are_sealed() {
        let (store, _dir) = temp_store().await;
        let (a, _) = store.create_app("a").await.unwrap();
        let actions = [
            fixed("lobby"),
            RuleAction::RoomPerCaller {
                prefix: "call-".into(),
            },
            RuleAction::RoomByCalledNumber { prefix: None },
            RuleAction::RoomByCalledNumber {
                prefix: Some("did-".into()),
            },
            RuleAction::Webhook {
                url: "https://example.com/route".into(),
                timeout_ms: 2500,
                fallback_room: Some("lobby".into()),
            },
            RuleAction::Reject {
                sip_code: 486,
                reason: Some("Busy Here".into()),
            },
        ];
        for (i, action) in actions.into_iter().enumerate() {
            let mut d = rule(10, action);
            d.description = Some(format!("rule {i}"));
            d.called = Some(NumberMatch {
                kind: MatchKind::Pattern,
                value: "49[0-9]+".into(),
            });
            d.caller = Some(NumberMatch {
                kind: MatchKind::Prefix,
                value: "+1".into(),
            });
            let r = store
                .create_routing_rule(&a.id, &d, &SecretChange::Keep)
                .await
                .unwrap()
                .unwrap();
            assert!(r.id.starts_with("rule_"));
            assert_eq!(r.data, d);
        }

        let pinned = store
            .create_routing_rule(
                &a.id,
                &rule(5, fixed("vip")),
                &SecretChange::Set(Redacted::new("4711".into())),
            )
            .await
            .unwrap()
            .unwrap();
        assert!(pinned.has_pin);
        let raw: String = sqlx::query_scalar("SELECT pin_sealed FROM routing_rules WHERE id = ?")
            .bind(&pinned.id)
            .fetch_one(&store.pool)
            .await
            .unwrap();
        assert!(!raw.contains("4711"), "the PIN is sealed at rest");
        let for_sip = store.routing_rules_for_sip().await.unwrap();
        assert_eq!(for_sip.len(), 7);
        assert_eq!(for_sip[0].rule.id, pinned.id, "priority 5 comes first");
        assert_eq!(for_sip[0].pin.as_ref().unwrap().expose(), "4711");

        // Another action drops the PIN; an update that keeps it leaves it.
        let kept = store
            .update_routing_rule(
                &a.id,
                &pinned.id,
                &rule(6, fixed("vip2")),
                &SecretChange::Keep,
            )
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert!(kept.has_pin);
        let changed = store
            .update_routing_rule(
                &a.id,
                &pinned.id,
                &rule(
                    6,
                    RuleAction::RoomPerCaller {
                        prefix: "p-".into(),
                    },
                ),
                &SecretChange::Keep,
            )
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert!(!changed.has_pin);
    }

    #[tokio::test]
    async fn rules_list_in_priority_order_across_pages() {
        let (store, _dir) = temp_store().await;
        let (a, _) = store.create_app("a").await.unwrap();
        let mut made = Vec::new();
        for p in [30, 10, 20, 10, 0] {
            let r = store
                .create_routing_rule(&a.id, &rule(p, fixed("x")), &SecretChange::Keep)
                .await
                .unwrap()
                .unwrap();
            made.push((p, r.id));
        }
        made.sort();
        let mut seen = Vec::new();
        let mut after: Option<RuleKey> = None;
        for _ in 0..10 {
            let page = store
                .list_routing_rules(&a.id, after.as_ref(), 2)
                .await
                .unwrap();
            seen.extend(page.items.iter().map(|r| (r.data.priority, r.id.clone())));
            match page.next_after {
                Some(k) => after = Some(k.parse().unwrap()),
                None => break,
            }
        }
        assert_eq!(seen, made);
        assert!("nope".parse::<RuleKey>().is_err());
        assert!("x:rule_1".parse::<RuleKey>().is_err());
    }

    #[tokio::test]
    async fn references_must_be_the_applications_own_and_tenants_are_apart() {
        let (store, _dir) = temp_store().await;
        let (a, _) = store.create_app("a").await.unwrap();
        let (b, _) = store.create_app("b").await.unwrap();
        let keep = SecretChange::Keep;
        let b_trunk = store
            .create_trunk(&b.id, &TrunkData::new("b's"), &keep, &keep)
            .await
            .unwrap();
        let a_trunk = store
            .create_trunk(&a.id, &TrunkData::new("a's"), &keep, &keep)
            .await
            .unwrap();
        let mut d = rule(1, fixed("x"));
        d.trunk_id = Some(b_trunk.id.clone());
        assert_eq!(
            store.create_routing_rule(&a.id, &d, &keep).await.unwrap(),
            Err(MissingRef::Trunk)
        );
        d.trunk_id = Some(a_trunk.id.clone());
        d.sip_account_id = Some("sipacct_none".into());
        assert_eq!(
            store.create_routing_rule(&a.id, &d, &keep).await.unwrap(),
            Err(MissingRef::SipAccount)
        );
        d.sip_account_id = None;
        let changes = store.subscribe_changes();
        let r = store
            .create_routing_rule(&a.id, &d, &keep)
            .await
            .unwrap()
            .unwrap();
        assert!(changes.has_changed().unwrap(), "the SIP service is told");

        assert!(
            store
                .get_routing_rule(&b.id, &r.id)
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            store
                .update_routing_rule(&b.id, &r.id, &rule(1, fixed("y")), &keep)
                .await
                .unwrap()
                .is_none()
        );
        assert!(!store.delete_routing_rule(&b.id, &r.id).await.unwrap());
        assert!(
            store
                .list_routing_rules(&b.id, None, 10)
                .await
                .unwrap()
                .items
                .is_empty()
        );

        // Deleting the trunk takes the rules limited to it along.
        assert!(store.delete_trunk(&a.id, &a_trunk.id).await.unwrap());
        assert!(
            store
                .get_routing_rule(&a.id, &r.id)
                .await
                .unwrap()
                .is_none()
        );
    }
}
