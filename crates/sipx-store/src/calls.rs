//! Calls and their history, per application. An ended call is its call detail record.
//!
//! The SIP core owns live calls; it inserts a row when a call starts and rewrites the row's
//! mutable part at every state change (one writer per call, in order), so the row is always the
//! call's last known state. The history is JSON the store does not interpret.

use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use crate::time::now_ms;
use crate::{Page, PageRequest, Store, StoreError};

/// A call as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRecord {
    pub id: String,
    pub app_id: String,
    /// `outbound` or `inbound`.
    pub direction: String,
    pub from_uri: Option<String>,
    pub to_uri: String,
    /// `trunk:<id>`, `sip_account:<id>`, `rule:<id>`.
    pub route: Option<String>,
    pub room: Option<String>,
    pub identity: Option<String>,
    pub webhook_url: Option<String>,
    pub created_at_ms: i64,
    pub progress: CallProgress,
}

/// What changes during a call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallProgress {
    pub state: String,
    /// JSON array of history entries.
    pub history: String,
    pub sip_call_id: Option<String>,
    pub codec: Option<String>,
    /// JSON media statistics.
    pub stats: Option<String>,
    pub answered_at_ms: Option<i64>,
    pub end: Option<CallEnd>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallEnd {
    pub code: u16,
    pub reason: String,
    pub cause: String,
    pub at_ms: i64,
}

/// Which calls a listing returns.
#[derive(Debug, Clone, Default)]
pub struct CallFilter {
    pub state: Option<String>,
    pub direction: Option<String>,
    pub room: Option<String>,
    /// `Some(true)`: only ended calls (call detail records); `Some(false)`: only live ones.
    pub ended: Option<bool>,
    /// Created at or after this time (Unix ms).
    pub since_ms: Option<i64>,
}

const COLUMNS: &str = "id, app_id, direction, from_uri, to_uri, route, room, identity, \
    webhook_url, created_at_ms, state, history, sip_call_id, codec, stats, answered_at_ms, \
    end_code, end_reason, end_cause, ended_at_ms";

fn from_row(row: &SqliteRow) -> Result<CallRecord, sqlx::Error> {
    let end_code: Option<i64> = row.try_get("end_code")?;
    let ended_at: Option<i64> = row.try_get("ended_at_ms")?;
    let end = match (end_code, ended_at) {
        (Some(code), Some(at_ms)) => Some(CallEnd {
            code: u16::try_from(code).unwrap_or(0),
            reason: row
                .try_get::<Option<String>, _>("end_reason")?
                .unwrap_or_default(),
            cause: row
                .try_get::<Option<String>, _>("end_cause")?
                .unwrap_or_default(),
            at_ms,
        }),
        _ => None,
    };
    Ok(CallRecord {
        id: row.try_get("id")?,
        app_id: row.try_get("app_id")?,
        direction: row.try_get("direction")?,
        from_uri: row.try_get("from_uri")?,
        to_uri: row.try_get("to_uri")?,
        route: row.try_get("route")?,
        room: row.try_get("room")?,
        identity: row.try_get("identity")?,
        webhook_url: row.try_get("webhook_url")?,
        created_at_ms: row.try_get("created_at_ms")?,
        progress: CallProgress {
            state: row.try_get("state")?,
            history: row.try_get("history")?,
            sip_call_id: row.try_get("sip_call_id")?,
            codec: row.try_get("codec")?,
            stats: row.try_get("stats")?,
            answered_at_ms: row.try_get("answered_at_ms")?,
            end,
        },
    })
}

type Query<'q> = sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments>;

/// Binds the changing part of a call, in the column order both statements use.
fn bind_progress<'q>(query: Query<'q>, p: &'q CallProgress) -> Query<'q> {
    query
        .bind(&p.state)
        .bind(&p.history)
        .bind(p.sip_call_id.as_deref())
        .bind(p.codec.as_deref())
        .bind(p.stats.as_deref())
        .bind(p.answered_at_ms)
        .bind(p.end.as_ref().map(|e| i64::from(e.code)))
        .bind(p.end.as_ref().map(|e| e.reason.as_str()))
        .bind(p.end.as_ref().map(|e| e.cause.as_str()))
        .bind(p.end.as_ref().map(|e| e.at_ms))
}

/// A new call's id: `call_` + a lower-case ULID (sorts by creation time).
pub fn new_call_id() -> String {
    format!("call_{}", ulid::Ulid::new().to_string().to_lowercase())
}

/// A write of a call's row, for [`Store::write_calls`].
#[derive(Debug, Clone)]
pub enum CallWrite {
    Insert(Box<CallRecord>),
    /// What changes during a call.
    Update(String, Box<CallProgress>),
    /// A call's media statistics (JSON), which arrive when its media leg is gone.
    Stats(String, String),
    /// The route a dial-out now takes (`trunk:<id>`…), when one failed and the next is tried.
    Route(String, Option<String>),
}

impl CallWrite {
    pub fn call_id(&self) -> &str {
        match self {
            CallWrite::Insert(r) => &r.id,
            CallWrite::Update(id, _) | CallWrite::Stats(id, _) | CallWrite::Route(id, _) => id,
        }
    }
}

fn insert_query(call: &CallRecord) -> Query<'_> {
    let query = sqlx::query(
        "INSERT INTO calls (id, app_id, direction, from_uri, to_uri, route, room, identity,
         webhook_url, created_at_ms, state, history, sip_call_id, codec, stats,
         answered_at_ms, end_code, end_reason, end_cause, ended_at_ms, updated_at_ms)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&call.id)
    .bind(&call.app_id)
    .bind(&call.direction)
    .bind(call.from_uri.as_deref())
    .bind(&call.to_uri)
    .bind(call.route.as_deref())
    .bind(call.room.as_deref())
    .bind(call.identity.as_deref())
    .bind(call.webhook_url.as_deref())
    .bind(call.created_at_ms);
    bind_progress(query, &call.progress).bind(now_ms())
}

fn update_query<'q>(id: &'q str, p: &'q CallProgress) -> Query<'q> {
    let query = sqlx::query(
        "UPDATE calls SET state = ?, history = ?, sip_call_id = ?, codec = ?,
           stats = COALESCE(?, stats),
           answered_at_ms = ?, end_code = ?, end_reason = ?, end_cause = ?, ended_at_ms = ?,
           updated_at_ms = ?
         WHERE id = ?",
    );
    bind_progress(query, p).bind(now_ms()).bind(id)
}

fn stats_query<'q>(id: &'q str, stats: &'q str) -> Query<'q> {
    sqlx::query("UPDATE calls SET stats = ? WHERE id = ?")
        .bind(stats)
        .bind(id)
}

fn route_query<'q>(id: &'q str, route: Option<&'q str>) -> Query<'q> {
    sqlx::query("UPDATE calls SET route = ? WHERE id = ?")
        .bind(route)
        .bind(id)
}

impl Store {
    /// Stores a new call (its id chosen by the caller, see [`new_call_id`]).
    pub async fn insert_call(&self, call: &CallRecord) -> Result<(), StoreError> {
        insert_query(call).execute(&self.pool).await?;
        Ok(())
    }

    /// Rewrites what changes during a call; `false` when there is no such call.
    pub async fn update_call(&self, id: &str, p: &CallProgress) -> Result<bool, StoreError> {
        let done = update_query(id, p).execute(&self.pool).await?;
        Ok(done.rows_affected() > 0)
    }

    /// Sets a call's media statistics (JSON): every few seconds while its media flows, and
    /// last when its media leg is gone.
    pub async fn update_call_stats(&self, id: &str, stats: &str) -> Result<bool, StoreError> {
        let done = stats_query(id, stats).execute(&self.pool).await?;
        Ok(done.rows_affected() > 0)
    }

    /// Applies `writes` in order in one transaction: at thousands of calls a second, one
    /// commit per state change would be most of the database's work. All or nothing.
    pub async fn write_calls(&self, writes: &[CallWrite]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for w in writes {
            let query = match w {
                CallWrite::Insert(r) => insert_query(r),
                CallWrite::Update(id, p) => update_query(id, p),
                CallWrite::Stats(id, stats) => stats_query(id, stats),
                CallWrite::Route(id, route) => route_query(id, route.as_deref()),
            };
            query.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn get_call(&self, app_id: &str, id: &str) -> Result<Option<CallRecord>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM calls WHERE app_id = ? AND id = ?");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(app_id)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(from_row).transpose()?)
    }

    pub async fn list_calls(
        &self,
        app_id: &str,
        filter: &CallFilter,
        page: &PageRequest,
    ) -> Result<Page<CallRecord>, StoreError> {
        let ended = filter.ended.map(i64::from);
        let sql = format!(
            "SELECT {COLUMNS} FROM calls WHERE app_id = ? AND id > ?
               AND (? IS NULL OR state = ?)
               AND (? IS NULL OR direction = ?)
               AND (? IS NULL OR room = ?)
               AND (? IS NULL OR (ended_at_ms IS NOT NULL) = ?)
               AND (? IS NULL OR created_at_ms >= ?)
             ORDER BY id LIMIT ?"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(app_id)
            .bind(page.after.as_deref().unwrap_or(""))
            .bind(filter.state.as_deref())
            .bind(filter.state.as_deref())
            .bind(filter.direction.as_deref())
            .bind(filter.direction.as_deref())
            .bind(filter.room.as_deref())
            .bind(filter.room.as_deref())
            .bind(ended)
            .bind(ended)
            .bind(filter.since_ms)
            .bind(filter.since_ms)
            .bind(i64::from(page.limit) + 1)
            .fetch_all(&self.pool)
            .await?;
        let rows = rows.iter().map(from_row).collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_rows(rows, page.limit, |c| c.id.clone()))
    }

    /// The id of a live call (not ended) of `app_id` that has, or is to have, `identity` in
    /// `room`: a dial-out still ringing holds its identity before it is in the room.
    pub async fn live_call_with_identity(
        &self,
        app_id: &str,
        room: &str,
        identity: &str,
    ) -> Result<Option<String>, StoreError> {
        let id = sqlx::query_scalar::<_, String>(
            "SELECT id FROM calls WHERE app_id = ? AND ended_at_ms IS NULL
               AND room = ? AND identity = ? LIMIT 1",
        )
        .bind(app_id)
        .bind(room)
        .bind(identity)
        .fetch_optional(&self.pool)
        .await?;
        Ok(id)
    }

    /// Calls that were live when SIPx last stopped without ending them (a crash, `kill -9`):
    /// their SIP and media state is gone, so they are ended now. Returns how many.
    pub async fn end_orphaned_calls(&self, reason: &str) -> Result<u64, StoreError> {
        let now = now_ms();
        let done = sqlx::query(
            "UPDATE calls SET state = 'DISCONNECTED', end_code = 500, end_reason = ?,
               end_cause = 'restart', ended_at_ms = ?, updated_at_ms = ?,
               history = json_insert(history, '$[#]', json_object('state', 'DISCONNECTED',
                 'at_ms', ?, 'code', 500, 'reason', ?, 'cause', 'restart'))
             WHERE ended_at_ms IS NULL",
        )
        .bind(reason)
        .bind(now)
        .bind(now)
        .bind(now)
        .bind(reason)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::store::tests::temp_store;

    fn call(app_id: &str, to: &str) -> CallRecord {
        CallRecord {
            id: new_call_id(),
            app_id: app_id.to_owned(),
            direction: "outbound".to_owned(),
            from_uri: None,
            to_uri: to.to_owned(),
            route: Some("trunk:trunk_1".to_owned()),
            room: Some("support".to_owned()),
            identity: Some("phone".to_owned()),
            webhook_url: None,
            created_at_ms: now_ms(),
            progress: CallProgress {
                state: "CALLING".to_owned(),
                history: "[]".to_owned(),
                ..CallProgress::default()
            },
        }
    }

    #[tokio::test]
    async fn a_call_is_stored_updated_and_listed_per_application() {
        let (store, _dir) = temp_store().await;
        let a = store.create_app("a").await.unwrap().0.id;
        let b = store.create_app("b").await.unwrap().0.id;
        let apps = [a, b];
        let mine = call(&apps[0], "+4930123");
        store.insert_call(&mine).await.unwrap();
        store
            .insert_call(&call(&apps[1], "+4930999"))
            .await
            .unwrap();

        let ended = CallProgress {
            state: "DISCONNECTED".to_owned(),
            history: "[{\"state\":\"CALLING\"}]".to_owned(),
            sip_call_id: Some("abc@host".to_owned()),
            codec: Some("PCMU".to_owned()),
            stats: None,
            answered_at_ms: Some(5),
            end: Some(CallEnd {
                code: 486,
                reason: "Busy Here".to_owned(),
                cause: "rejected".to_owned(),
                at_ms: 9,
            }),
        };
        assert!(store.update_call(&mine.id, &ended).await.unwrap());
        let got = store.get_call(&apps[0], &mine.id).await.unwrap().unwrap();
        assert_eq!(got.progress, ended);
        // Another application sees nothing of it.
        assert!(store.get_call(&apps[1], &mine.id).await.unwrap().is_none());

        let page = PageRequest {
            after: None,
            limit: 10,
        };
        let cdrs = CallFilter {
            ended: Some(true),
            ..CallFilter::default()
        };
        let list = store.list_calls(&apps[0], &cdrs, &page).await.unwrap();
        assert_eq!(list.items.len(), 1);
        let live = CallFilter {
            ended: Some(false),
            ..CallFilter::default()
        };
        assert!(
            store
                .list_calls(&apps[0], &live, &page)
                .await
                .unwrap()
                .items
                .is_empty()
        );
        let busy = CallFilter {
            state: Some("CALLING".to_owned()),
            ..CallFilter::default()
        };
        assert!(
            store
                .list_calls(&apps[0], &busy, &page)
                .await
                .unwrap()
                .items
                .is_empty()
        );
    }

    #[tokio::test]
    async fn a_batch_of_writes_is_applied_in_order_or_not_at_all() {
        let (store, _dir) = temp_store().await;
        let app = store.create_app("a").await.unwrap().0.id;
        let c = call(&app, "+1");
        let answered = CallProgress {
            state: "CONFIRMED".to_owned(),
            history: "[]".to_owned(),
            ..CallProgress::default()
        };
        store
            .write_calls(&[
                CallWrite::Insert(Box::new(c.clone())),
                CallWrite::Update(c.id.clone(), Box::new(answered)),
                CallWrite::Stats(c.id.clone(), "{\"mos\":4.1}".to_owned()),
            ])
            .await
            .unwrap();
        let got = store.get_call(&app, &c.id).await.unwrap().unwrap();
        assert_eq!(got.progress.state, "CONFIRMED");
        assert_eq!(got.progress.stats.as_deref(), Some("{\"mos\":4.1}"));

        // A second insert of the same id fails, and takes the batch's other writes with it.
        let other = call(&app, "+2");
        let err = store
            .write_calls(&[
                CallWrite::Insert(Box::new(other.clone())),
                CallWrite::Insert(Box::new(c.clone())),
            ])
            .await;
        assert!(err.is_err());
        assert!(store.get_call(&app, &other.id).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn calls_left_live_by_a_crash_are_ended_at_start() {
        let (store, _dir) = temp_store().await;
        let app = store.create_app("a").await.unwrap().0.id;
        let c = call(&app, "+1");
        store.insert_call(&c).await.unwrap();
        assert_eq!(store.end_orphaned_calls("SIPx restarted").await.unwrap(), 1);
        let got = store.get_call(&app, &c.id).await.unwrap().unwrap();
        assert_eq!(got.progress.state, "DISCONNECTED");
        assert_eq!(got.progress.end.unwrap().cause, "restart");
        assert!(
            got.progress
                .history
                .ends_with("\"code\":500,\"reason\":\"SIPx restarted\",\"cause\":\"restart\"}]")
        );
        assert_eq!(store.end_orphaned_calls("again").await.unwrap(), 0);
    }

    #[tokio::test]
    async fn a_live_call_holds_its_identity_in_its_room_until_it_ends() {
        let (store, _dir) = temp_store().await;
        let app = store.create_app("a").await.unwrap().0.id;
        let other = store.create_app("b").await.unwrap().0.id;
        let c = call(&app, "+1");
        store.insert_call(&c).await.unwrap();
        let held = |app: String, room: &'static str, identity: &'static str| {
            let store = store.clone();
            async move {
                store
                    .live_call_with_identity(&app, room, identity)
                    .await
                    .unwrap()
            }
        };
        assert_eq!(
            held(app.clone(), "support", "phone").await,
            Some(c.id.clone())
        );
        assert_eq!(held(app.clone(), "support", "other").await, None);
        assert_eq!(held(app.clone(), "sales", "phone").await, None);
        assert_eq!(held(other, "support", "phone").await, None);
        store.end_orphaned_calls("ended").await.unwrap();
        assert_eq!(held(app, "support", "phone").await, None);
    }
}
