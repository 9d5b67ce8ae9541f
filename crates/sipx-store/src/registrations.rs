//! Registered contacts. The SIP registrar owns them in memory and writes changes behind,
//! batched: one transaction replaces the bindings of every username that changed.

use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use crate::time::now_ms;
use crate::{Store, StoreError};

#[derive(Debug, Clone, PartialEq)]
pub struct RegistrationRecord {
    pub username: String,
    pub app_id: String,
    pub contact: String,
    pub expires_at: i64,
    pub q: Option<f64>,
    pub call_id: String,
    pub cseq: u32,
    pub source: String,
    pub transport: String,
    pub user_agent: Option<String>,
    /// The proxies on the way to the contact (RFC 3327 `Path` values, in order).
    pub path: Vec<String>,
}

/// The new full set of bindings of one username (empty: all removed).
#[derive(Debug, Clone)]
pub struct BindingSet {
    pub username: String,
    pub app_id: String,
    pub bindings: Vec<RegistrationRecord>,
}

const COLUMNS: &str =
    "username, app_id, contact, expires_at, q, call_id, cseq, source, transport, user_agent, path";

/// `path` is stored one value per line: a header value holds no line break once parsed.
fn join_path(path: &[String]) -> String {
    path.join("\n")
}

fn split_path(stored: &str) -> Vec<String> {
    stored
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

fn from_row(row: &SqliteRow) -> Result<RegistrationRecord, sqlx::Error> {
    let cseq: i64 = row.try_get("cseq")?;
    Ok(RegistrationRecord {
        username: row.try_get("username")?,
        app_id: row.try_get("app_id")?,
        contact: row.try_get("contact")?,
        expires_at: row.try_get("expires_at")?,
        q: row.try_get("q")?,
        call_id: row.try_get("call_id")?,
        cseq: u32::try_from(cseq).unwrap_or(0),
        source: row.try_get("source")?,
        transport: row.try_get("transport")?,
        user_agent: row.try_get("user_agent")?,
        path: split_path(row.try_get("path")?),
    })
}

impl Store {
    /// Replaces the bindings of each username in `sets`, all in one transaction.
    pub async fn replace_registrations(&self, sets: &[BindingSet]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let now = now_ms();
        for set in sets {
            sqlx::query("DELETE FROM registrations WHERE username = ?")
                .bind(&set.username)
                .execute(&mut *tx)
                .await?;
            for b in &set.bindings {
                sqlx::query(
                    "INSERT INTO registrations (username, app_id, contact, expires_at, q, call_id,
                     cseq, source, transport, user_agent, path, updated_at_ms)
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                )
                .bind(&set.username)
                .bind(&set.app_id)
                .bind(&b.contact)
                .bind(b.expires_at)
                .bind(b.q)
                .bind(&b.call_id)
                .bind(i64::from(b.cseq))
                .bind(&b.source)
                .bind(&b.transport)
                .bind(b.user_agent.as_deref())
                .bind(join_path(&b.path))
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Every binding still live at `now_secs`, for the registrar to start from.
    pub async fn live_registrations(
        &self,
        now_secs: i64,
    ) -> Result<Vec<RegistrationRecord>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM registrations WHERE expires_at > ? ORDER BY username, contact"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(now_secs)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(from_row).collect::<Result<_, _>>()?)
    }

    /// Deletes bindings that lapsed before `now_secs`.
    pub async fn purge_expired_registrations(&self, now_secs: i64) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM registrations WHERE expires_at <= ?")
            .bind(now_secs)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::temp_store;

    fn rec(username: &str, app_id: &str, contact: &str, expires_at: i64) -> RegistrationRecord {
        RegistrationRecord {
            username: username.into(),
            app_id: app_id.into(),
            contact: contact.into(),
            expires_at,
            q: None,
            call_id: "c".into(),
            cseq: 1,
            source: "127.0.0.1:5070".into(),
            transport: "UDP".into(),
            user_agent: Some("ua".into()),
            path: Vec::new(),
        }
    }

    #[tokio::test]
    async fn replaces_lists_and_purges() {
        let (store, _dir) = temp_store().await;
        let (a, _) = store.create_app("a").await.unwrap();
        let (b, _) = store.create_app("b").await.unwrap();
        let set = |u: &str, app: &str, contacts: &[&str]| BindingSet {
            username: u.into(),
            app_id: app.into(),
            bindings: contacts.iter().map(|c| rec(u, app, c, 2000)).collect(),
        };
        store
            .replace_registrations(&[
                set("gw1", &a.id, &["sip:x@1", "sip:x@2"]),
                set("gw2", &b.id, &["sip:y@1"]),
            ])
            .await
            .unwrap();
        assert_eq!(store.live_registrations(1000).await.unwrap().len(), 3);
        store
            .replace_registrations(&[set("gw1", &a.id, &["sip:x@2"])])
            .await
            .unwrap();
        let live = store.live_registrations(1000).await.unwrap();
        let contacts: Vec<&str> = live.iter().map(|r| r.contact.as_str()).collect();
        assert_eq!(contacts, ["sip:x@2", "sip:y@1"]);
        store
            .replace_registrations(&[set("gw1", &a.id, &[])])
            .await
            .unwrap();
        assert_eq!(store.live_registrations(1000).await.unwrap().len(), 1);
        assert_eq!(store.live_registrations(3000).await.unwrap().len(), 0);
        assert_eq!(store.purge_expired_registrations(3000).await.unwrap(), 1);
    }

    #[tokio::test]
    async fn a_path_comes_back_as_it_went_in() {
        let (store, _dir) = temp_store().await;
        let (a, _) = store.create_app("a").await.unwrap();
        let path = vec![
            "<sip:edge2.test;lr>".to_owned(),
            "<sip:10.0.0.1:5080;lr;received=sip:192.0.2.7:1024>".to_owned(),
        ];
        let mut behind = rec("gw1", &a.id, "sip:x@1", 2000);
        behind.path = path.clone();
        let direct = rec("gw1", &a.id, "sip:x@2", 2000);
        let set = BindingSet {
            username: "gw1".into(),
            app_id: a.id.clone(),
            bindings: vec![behind, direct],
        };
        store.replace_registrations(&[set]).await.unwrap();
        let live = store.live_registrations(1000).await.unwrap();
        assert_eq!(live[0].path, path);
        assert!(live[1].path.is_empty());
    }
}
