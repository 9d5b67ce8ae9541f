//! The webhook delivery log: one row per event on its way to one URL, one per attempt.
//!
//! The dispatcher in sipx-server writes it; the API reads it (filtered by application, like
//! every tenant object). Pending rows are the dispatcher's durable queue: it reloads them at
//! start, in id order, which is the order the events were published in.

use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use crate::time::now_ms;
use crate::{Page, PageRequest, Store, StoreError, sorted_id};

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// Not yet accepted by the receiver; another attempt is due at `next_attempt_at_ms`.
    Pending,
    /// The receiver answered 2xx.
    Delivered,
    /// Given up: a final refusal (4xx other than 408/429), or the retry window ran out.
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
        }
    }

    fn from_column(s: &str) -> Self {
        match s {
            "delivered" => DeliveryStatus::Delivered,
            "failed" => DeliveryStatus::Failed,
            // The column's CHECK admits nothing else.
            _ => DeliveryStatus::Pending,
        }
    }
}

/// An event to deliver to one URL.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub app_id: String,
    pub event_id: String,
    pub event_type: String,
    pub call_id: Option<String>,
    pub url: String,
    /// Made to the application's webhook URL: each attempt goes where it points then.
    pub to_app_url: bool,
    /// The envelope exactly as it will be POSTed.
    pub body: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRecord {
    pub id: String,
    pub app_id: String,
    pub event_id: String,
    pub event_type: String,
    pub call_id: Option<String>,
    /// Where it was last sent (or is to be sent).
    pub url: String,
    pub to_app_url: bool,
    pub body: String,
    pub status: DeliveryStatus,
    pub attempt_count: u32,
    pub next_attempt_at_ms: Option<i64>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// One attempt, as it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRecord {
    /// 1 for the first attempt.
    pub n: u32,
    pub at_ms: i64,
    pub duration_ms: u32,
    /// The receiver's answer, when there was one.
    pub http_status: Option<u16>,
    /// Why there was no answer (or why it did not count), otherwise.
    pub error: Option<String>,
}

/// An attempt to record (its number is the delivery's next).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAttempt {
    pub at_ms: i64,
    pub duration_ms: u32,
    pub http_status: Option<u16>,
    pub error: Option<String>,
    /// The URL it went to, when not the delivery's (its application's URL changed).
    pub url: Option<String>,
}

/// What an attempt leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterAttempt {
    Delivered,
    Failed,
    /// Try again at this time (Unix ms).
    RetryAt(i64),
}

/// Narrows a listing; `None` matches everything.
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    pub call_id: Option<String>,
    pub status: Option<DeliveryStatus>,
}

/// Longest error text kept per attempt: enough for a reason, not a receiver's whole page.
const MAX_ERROR_CHARS: usize = 300;

const COLUMNS: &str = "id, app_id, event_id, event_type, call_id, url, to_app_url, body, \
                       status, attempt_count, next_attempt_at_ms, created_at_ms, updated_at_ms";

fn from_row(row: &SqliteRow) -> Result<DeliveryRecord, sqlx::Error> {
    let status: String = row.try_get("status")?;
    let attempts: i64 = row.try_get("attempt_count")?;
    Ok(DeliveryRecord {
        id: row.try_get("id")?,
        app_id: row.try_get("app_id")?,
        event_id: row.try_get("event_id")?,
        event_type: row.try_get("event_type")?,
        call_id: row.try_get("call_id")?,
        url: row.try_get("url")?,
        to_app_url: row.try_get::<i64, _>("to_app_url")? != 0,
        body: row.try_get("body")?,
        status: DeliveryStatus::from_column(&status),
        attempt_count: u32::try_from(attempts).unwrap_or(0),
        next_attempt_at_ms: row.try_get("next_attempt_at_ms")?,
        created_at_ms: row.try_get("created_at_ms")?,
        updated_at_ms: row.try_get("updated_at_ms")?,
    })
}

fn attempt_from_row(row: &SqliteRow) -> Result<AttemptRecord, sqlx::Error> {
    let n: i64 = row.try_get("n")?;
    let duration: i64 = row.try_get("duration_ms")?;
    let status: Option<i64> = row.try_get("http_status")?;
    Ok(AttemptRecord {
        n: u32::try_from(n).unwrap_or(0),
        at_ms: row.try_get("at_ms")?,
        duration_ms: u32::try_from(duration).unwrap_or(u32::MAX),
        http_status: status.and_then(|s| u16::try_from(s).ok()),
        error: row.try_get("error")?,
    })
}

impl Store {
    /// Stores deliveries, all due now, in one transaction (one sync of the log for a batch).
    /// Their ids sort in the order given.
    pub async fn create_webhook_deliveries(
        &self,
        new: &[NewDelivery],
    ) -> Result<Vec<DeliveryRecord>, StoreError> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        let mut out = Vec::with_capacity(new.len());
        for d in new {
            let record = DeliveryRecord {
                id: sorted_id("dlv"),
                app_id: d.app_id.clone(),
                event_id: d.event_id.clone(),
                event_type: d.event_type.clone(),
                call_id: d.call_id.clone(),
                url: d.url.clone(),
                to_app_url: d.to_app_url,
                body: d.body.clone(),
                status: DeliveryStatus::Pending,
                attempt_count: 0,
                next_attempt_at_ms: Some(now),
                created_at_ms: now,
                updated_at_ms: now,
            };
            sqlx::query(
                "INSERT INTO webhook_deliveries (id, app_id, event_id, event_type, call_id, url,
                 to_app_url, body, status, attempt_count, next_attempt_at_ms, created_at_ms,
                 updated_at_ms)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?, ?)",
            )
            .bind(&record.id)
            .bind(&record.app_id)
            .bind(&record.event_id)
            .bind(&record.event_type)
            .bind(record.call_id.as_deref())
            .bind(&record.url)
            .bind(i64::from(record.to_app_url))
            .bind(&record.body)
            .bind(now)
            .bind(now)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            out.push(record);
        }
        tx.commit().await?;
        Ok(out)
    }

    /// Records an attempt and what follows from it, together.
    pub async fn record_webhook_attempt(
        &self,
        delivery_id: &str,
        attempt: &NewAttempt,
        after: AfterAttempt,
    ) -> Result<(), StoreError> {
        let error = attempt
            .error
            .as_deref()
            .map(|e| e.chars().take(MAX_ERROR_CHARS).collect::<String>());
        let (status, next) = match after {
            AfterAttempt::Delivered => (DeliveryStatus::Delivered, None),
            AfterAttempt::Failed => (DeliveryStatus::Failed, None),
            AfterAttempt::RetryAt(t) => (DeliveryStatus::Pending, Some(t)),
        };
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO webhook_attempts (delivery_id, n, at_ms, duration_ms, http_status, error)
             SELECT id, attempt_count + 1, ?, ?, ?, ? FROM webhook_deliveries WHERE id = ?",
        )
        .bind(attempt.at_ms)
        .bind(i64::from(attempt.duration_ms))
        .bind(attempt.http_status.map(i64::from))
        .bind(error)
        .bind(delivery_id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE webhook_deliveries SET attempt_count = attempt_count + 1, status = ?,
             next_attempt_at_ms = ?, url = COALESCE(?, url), updated_at_ms = ? WHERE id = ?",
        )
        .bind(status.as_str())
        .bind(next)
        .bind(attempt.url.as_deref())
        .bind(now_ms())
        .bind(delivery_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Every pending delivery, oldest first: the dispatcher's queue after a restart.
    pub async fn pending_webhook_deliveries(&self) -> Result<Vec<DeliveryRecord>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM webhook_deliveries WHERE status = 'pending' ORDER BY id"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(from_row).collect::<Result<Vec<_>, _>>()?)
    }

    pub async fn list_webhook_deliveries(
        &self,
        app_id: &str,
        filter: &DeliveryFilter,
        page: &PageRequest,
    ) -> Result<Page<DeliveryRecord>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM webhook_deliveries WHERE app_id = ? AND id > ?
             AND (?3 IS NULL OR call_id = ?3) AND (?4 IS NULL OR status = ?4)
             ORDER BY id LIMIT ?5"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(app_id)
            .bind(page.after.as_deref().unwrap_or(""))
            .bind(filter.call_id.as_deref())
            .bind(filter.status.map(DeliveryStatus::as_str))
            .bind(i64::from(page.limit) + 1)
            .fetch_all(&self.pool)
            .await?;
        let rows = rows.iter().map(from_row).collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_rows(rows, page.limit, |d| d.id.clone()))
    }

    /// A delivery of `app_id` with its attempts in order; another application's is `None`.
    pub async fn get_webhook_delivery(
        &self,
        app_id: &str,
        id: &str,
    ) -> Result<Option<(DeliveryRecord, Vec<AttemptRecord>)>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM webhook_deliveries WHERE app_id = ? AND id = ?");
        let Some(row) = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(app_id)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        let delivery = from_row(&row)?;
        let attempts = sqlx::query(
            "SELECT n, at_ms, duration_ms, http_status, error FROM webhook_attempts
             WHERE delivery_id = ? ORDER BY n",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        let attempts = attempts
            .iter()
            .map(attempt_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some((delivery, attempts)))
    }

    /// Deletes finished deliveries (and their attempts) last changed before `before_ms`.
    /// Returns how many went.
    pub async fn prune_webhook_deliveries(&self, before_ms: i64) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "DELETE FROM webhook_deliveries WHERE status != 'pending' AND updated_at_ms < ?",
        )
        .bind(before_ms)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::temp_store;

    fn new(app_id: &str, call: Option<&str>, n: u32) -> NewDelivery {
        NewDelivery {
            app_id: app_id.to_owned(),
            event_id: format!("evt_{n}"),
            event_type: "call.state".to_owned(),
            call_id: call.map(str::to_owned),
            url: "https://example.com/hook".to_owned(),
            to_app_url: false,
            body: format!(r#"{{"n":{n}}}"#),
        }
    }

    fn attempt(
        at_ms: i64,
        duration_ms: u32,
        status: Option<u16>,
        error: Option<&str>,
    ) -> NewAttempt {
        NewAttempt {
            at_ms,
            duration_ms,
            http_status: status,
            error: error.map(str::to_owned),
            url: None,
        }
    }

    fn ok(status: u16) -> NewAttempt {
        attempt(1, 1, Some(status), None)
    }

    fn all() -> PageRequest {
        PageRequest {
            after: None,
            limit: 100,
        }
    }

    #[tokio::test]
    async fn deliveries_round_trip_with_attempts() {
        let (store, _dir) = temp_store().await;
        let (a, _) = store.create_app("a").await.unwrap();
        let (b, _) = store.create_app("b").await.unwrap();
        let batch: Vec<_> = (0..20).map(|n| new(&a.id, Some("call_1"), n)).collect();
        let made = store.create_webhook_deliveries(&batch).await.unwrap();
        assert!(
            made.windows(2).all(|w| w[0].id < w[1].id),
            "ids sort in the order given, even within one millisecond"
        );
        let first = &made[0];
        assert_eq!(first.status, DeliveryStatus::Pending);
        assert_eq!(first.next_attempt_at_ms, Some(first.created_at_ms));

        store
            .record_webhook_attempt(
                &first.id,
                &attempt(1000, 12, None, Some("connection refused")),
                AfterAttempt::RetryAt(5000),
            )
            .await
            .unwrap();
        store
            .record_webhook_attempt(
                &first.id,
                &attempt(5000, 7, Some(204), None),
                AfterAttempt::Delivered,
            )
            .await
            .unwrap();
        let (got, attempts) = store
            .get_webhook_delivery(&a.id, &first.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.status, DeliveryStatus::Delivered);
        assert_eq!(got.attempt_count, 2);
        assert_eq!(got.next_attempt_at_ms, None);
        assert_eq!(got.body, first.body);
        assert_eq!(
            attempts,
            vec![
                AttemptRecord {
                    n: 1,
                    at_ms: 1000,
                    duration_ms: 12,
                    http_status: None,
                    error: Some("connection refused".to_owned()),
                },
                AttemptRecord {
                    n: 2,
                    at_ms: 5000,
                    duration_ms: 7,
                    http_status: Some(204),
                    error: None,
                },
            ]
        );
        assert!(
            store
                .get_webhook_delivery(&b.id, &first.id)
                .await
                .unwrap()
                .is_none(),
            "another application's delivery is not found"
        );

        store
            .record_webhook_attempt(&made[1].id, &ok(410), AfterAttempt::Failed)
            .await
            .unwrap();
        let pending = store.pending_webhook_deliveries().await.unwrap();
        assert_eq!(pending.len(), 18);
        assert_eq!(pending[0].id, made[2].id, "oldest first");
    }

    #[tokio::test]
    async fn lists_filter_by_call_and_status_and_page() {
        let (store, _dir) = temp_store().await;
        let (a, _) = store.create_app("a").await.unwrap();
        let (b, _) = store.create_app("b").await.unwrap();
        let made = store
            .create_webhook_deliveries(&[
                new(&a.id, Some("call_1"), 1),
                new(&a.id, Some("call_2"), 2),
                new(&a.id, None, 3),
                new(&b.id, Some("call_1"), 4),
            ])
            .await
            .unwrap();
        store
            .record_webhook_attempt(&made[0].id, &ok(200), AfterAttempt::Delivered)
            .await
            .unwrap();
        let ids = |p: Page<DeliveryRecord>| p.items.into_iter().map(|d| d.id).collect::<Vec<_>>();
        let f = DeliveryFilter::default();
        assert_eq!(
            ids(store
                .list_webhook_deliveries(&a.id, &f, &all())
                .await
                .unwrap()),
            vec![made[0].id.clone(), made[1].id.clone(), made[2].id.clone()]
        );
        let by_call = DeliveryFilter {
            call_id: Some("call_1".to_owned()),
            status: None,
        };
        assert_eq!(
            ids(store
                .list_webhook_deliveries(&a.id, &by_call, &all())
                .await
                .unwrap()),
            vec![made[0].id.clone()]
        );
        let pending = DeliveryFilter {
            call_id: None,
            status: Some(DeliveryStatus::Pending),
        };
        assert_eq!(
            ids(store
                .list_webhook_deliveries(&a.id, &pending, &all())
                .await
                .unwrap()),
            vec![made[1].id.clone(), made[2].id.clone()]
        );
        let one = PageRequest {
            after: None,
            limit: 1,
        };
        let page = store
            .list_webhook_deliveries(&a.id, &f, &one)
            .await
            .unwrap();
        assert_eq!(page.next_after.as_deref(), Some(made[0].id.as_str()));
        let next = PageRequest {
            after: page.next_after,
            limit: 5,
        };
        assert_eq!(
            ids(store
                .list_webhook_deliveries(&a.id, &f, &next)
                .await
                .unwrap()),
            vec![made[1].id.clone(), made[2].id.clone()]
        );
    }

    #[tokio::test]
    async fn pruning_keeps_pending_and_recent_deliveries() {
        let (store, _dir) = temp_store().await;
        let (a, _) = store.create_app("a").await.unwrap();
        let made = store
            .create_webhook_deliveries(&[new(&a.id, None, 1), new(&a.id, None, 2)])
            .await
            .unwrap();
        store
            .record_webhook_attempt(&made[0].id, &ok(200), AfterAttempt::Delivered)
            .await
            .unwrap();
        assert_eq!(store.prune_webhook_deliveries(0).await.unwrap(), 0);
        assert_eq!(
            store.prune_webhook_deliveries(now_ms() + 1).await.unwrap(),
            1,
            "the delivered one goes, the pending one stays"
        );
        let left = store.pending_webhook_deliveries().await.unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].id, made[1].id);
    }
}
