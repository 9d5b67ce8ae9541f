//! Applications (tenants) and their credentials.

use sipx_secrets::{Redacted, generate};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use crate::time::now_ms;
use crate::{Page, PageRequest, Store, StoreError};

/// An application as stored, without its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppRecord {
    pub id: String,
    pub name: String,
    pub api_key: String,
    pub disabled: bool,
    /// Where the application's events are POSTed; `None`: nowhere.
    pub webhook_url: Option<String>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// Fields an operator may change. `None` leaves a field as it is; `webhook_url: Some(None)`
/// clears the URL.
#[derive(Debug, Clone, Default)]
pub struct AppUpdate {
    pub name: Option<String>,
    pub disabled: Option<bool>,
    pub webhook_url: Option<Option<String>>,
}

const COLUMNS: &str = "id, name, api_key, disabled, webhook_url, created_at_ms, updated_at_ms";

fn secret_context(app_id: &str) -> String {
    format!("app-secret:{app_id}")
}

fn from_row(row: &SqliteRow) -> Result<AppRecord, sqlx::Error> {
    Ok(AppRecord {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        api_key: row.try_get("api_key")?,
        disabled: row.try_get("disabled")?,
        webhook_url: row.try_get("webhook_url")?,
        created_at_ms: row.try_get("created_at_ms")?,
        updated_at_ms: row.try_get("updated_at_ms")?,
    })
}

impl Store {
    /// Creates an application with a fresh key pair. The secret is returned this once.
    pub async fn create_app(
        &self,
        name: &str,
    ) -> Result<(AppRecord, Redacted<String>), StoreError> {
        let id = format!("app_{}", ulid::Ulid::new().to_string().to_lowercase());
        let secret = generate::api_secret();
        let now = now_ms();
        let record = AppRecord {
            id,
            name: name.to_owned(),
            api_key: generate::api_key(),
            disabled: false,
            webhook_url: None,
            created_at_ms: now,
            updated_at_ms: now,
        };
        let sealed = self
            .master
            .seal(&secret_context(&record.id), secret.as_bytes());
        sqlx::query(
            "INSERT INTO apps (id, name, api_key, api_secret_sealed, disabled, created_at_ms, updated_at_ms)
             VALUES (?, ?, ?, ?, 0, ?, ?)",
        )
        .bind(&record.id)
        .bind(&record.name)
        .bind(&record.api_key)
        .bind(sealed)
        .bind(now)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok((record, Redacted::new(secret)))
    }

    pub async fn list_apps(&self, page: &PageRequest) -> Result<Page<AppRecord>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM apps WHERE id > ? ORDER BY id LIMIT ?");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(page.after.as_deref().unwrap_or(""))
            .bind(i64::from(page.limit) + 1)
            .fetch_all(&self.pool)
            .await?;
        let rows = rows.iter().map(from_row).collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_rows(rows, page.limit, |a| a.id.clone()))
    }

    pub async fn get_app(&self, id: &str) -> Result<Option<AppRecord>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM apps WHERE id = ?");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(from_row).transpose()?)
    }

    /// The applications an operator means by `needle`: the one with that id or API key, else
    /// those with that name (several when names repeat: the caller asks for an id).
    pub async fn find_app(&self, needle: &str) -> Result<Vec<AppRecord>, StoreError> {
        for column in ["id", "api_key", "name"] {
            let sql = format!("SELECT {COLUMNS} FROM apps WHERE {column} = ? ORDER BY id LIMIT 10");
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(needle)
                .fetch_all(&self.pool)
                .await?;
            if !rows.is_empty() {
                return rows.iter().map(|r| Ok(from_row(r)?)).collect();
            }
        }
        Ok(Vec::new())
    }

    pub async fn update_app(
        &self,
        id: &str,
        update: &AppUpdate,
    ) -> Result<Option<AppRecord>, StoreError> {
        // `webhook_url` needs "leave" apart from "clear": the first flag says whether to set it.
        sqlx::query(
            "UPDATE apps SET name = COALESCE(?, name), disabled = COALESCE(?, disabled),
             webhook_url = CASE WHEN ? THEN ? ELSE webhook_url END,
             updated_at_ms = ? WHERE id = ?",
        )
        .bind(update.name.as_deref())
        .bind(update.disabled)
        .bind(update.webhook_url.is_some())
        .bind(update.webhook_url.as_ref().and_then(Option::as_deref))
        .bind(now_ms())
        .bind(id)
        .execute(&self.pool)
        .await?;
        // Services that keep an application's settings (its webhook URL) reload them.
        self.changed().await;
        self.get_app(id).await
    }

    /// Replaces the secret; the old one stops working at once. Returns the new one, once.
    pub async fn rotate_app_secret(
        &self,
        id: &str,
    ) -> Result<Option<(AppRecord, Redacted<String>)>, StoreError> {
        let secret = generate::api_secret();
        let sealed = self.master.seal(&secret_context(id), secret.as_bytes());
        let done =
            sqlx::query("UPDATE apps SET api_secret_sealed = ?, updated_at_ms = ? WHERE id = ?")
                .bind(sealed)
                .bind(now_ms())
                .bind(id)
                .execute(&self.pool)
                .await?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        // The secret is also the SIP password of the application key's devices: SIP drops its
        // cached copy, so the old one stops working there at once too.
        self.changed().await;
        Ok(self
            .get_app(id)
            .await?
            .map(|app| (app, Redacted::new(secret))))
    }

    /// The application owning `api_key`, with its secret opened, for checking a signature.
    pub async fn app_credentials(
        &self,
        api_key: &str,
    ) -> Result<Option<(AppRecord, Redacted<Vec<u8>>)>, StoreError> {
        let sql = format!("SELECT {COLUMNS}, api_secret_sealed FROM apps WHERE api_key = ?");
        let Some(row) = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(api_key)
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        let app = from_row(&row)?;
        let sealed: String = row.try_get("api_secret_sealed")?;
        let secret = self.master.open(&secret_context(&app.id), &sealed)?;
        Ok(Some((app, Redacted::new(secret))))
    }

    /// An application's secret opened, by application id: the key that signs its webhooks.
    /// `None` when the application is gone.
    pub async fn app_secret(&self, app_id: &str) -> Result<Option<Redacted<Vec<u8>>>, StoreError> {
        let sealed: Option<String> =
            sqlx::query_scalar("SELECT api_secret_sealed FROM apps WHERE id = ?")
                .bind(app_id)
                .fetch_optional(&self.pool)
                .await?;
        let Some(sealed) = sealed else {
            return Ok(None);
        };
        let secret = self.master.open(&secret_context(app_id), &sealed)?;
        Ok(Some(Redacted::new(secret)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::temp_store;

    #[tokio::test]
    async fn creates_lists_rotates_and_disables() {
        let (store, _dir) = temp_store().await;
        let (a, secret_a) = store.create_app("alpha").await.unwrap();
        let (b, _) = store.create_app("beta").await.unwrap();
        assert!(a.id < b.id, "ids sort by creation");

        let (found, secret) = store.app_credentials(&a.api_key).await.unwrap().unwrap();
        assert_eq!(found, a);
        assert_eq!(secret.expose(), secret_a.expose().as_bytes());

        let page = store
            .list_apps(&PageRequest {
                after: None,
                limit: 1,
            })
            .await
            .unwrap();
        assert_eq!(page.items, vec![a.clone()]);
        let next = store
            .list_apps(&PageRequest {
                after: page.next_after,
                limit: 1,
            })
            .await
            .unwrap();
        assert_eq!(next.items, vec![b.clone()]);
        assert!(next.next_after.is_none());

        let changes = store.subscribe_changes();
        let (_, rotated) = store.rotate_app_secret(&a.id).await.unwrap().unwrap();
        assert!(
            changes.has_changed().unwrap(),
            "SIP hears of it (the secret is the key's SIP password)"
        );
        assert_ne!(rotated.expose(), secret_a.expose());
        let (_, now) = store.app_credentials(&a.api_key).await.unwrap().unwrap();
        assert_eq!(now.expose(), rotated.expose().as_bytes());

        let upd = AppUpdate {
            disabled: Some(true),
            ..AppUpdate::default()
        };
        let disabled = store.update_app(&a.id, &upd).await.unwrap().unwrap();
        assert!(disabled.disabled);
        assert_eq!(disabled.name, "alpha");

        let url = Some("https://example.com/hook".to_owned());
        let set = AppUpdate {
            webhook_url: Some(url.clone()),
            ..AppUpdate::default()
        };
        assert_eq!(
            store
                .update_app(&a.id, &set)
                .await
                .unwrap()
                .unwrap()
                .webhook_url,
            url
        );
        let rename = AppUpdate {
            name: Some("alpha2".to_owned()),
            ..AppUpdate::default()
        };
        let renamed = store.update_app(&a.id, &rename).await.unwrap().unwrap();
        assert_eq!(renamed.webhook_url, url, "an absent field is left as it is");
        let clear = AppUpdate {
            webhook_url: Some(None),
            ..AppUpdate::default()
        };
        assert_eq!(
            store
                .update_app(&a.id, &clear)
                .await
                .unwrap()
                .unwrap()
                .webhook_url,
            None
        );
        let (_, now) = store.app_credentials(&a.api_key).await.unwrap().unwrap();
        assert_eq!(
            store.app_secret(&a.id).await.unwrap().unwrap().expose(),
            now.expose()
        );
        assert!(store.app_secret("app_missing").await.unwrap().is_none());
        assert_eq!(store.find_app("beta").await.unwrap()[0].id, b.id);
        // An id or key is meant before a name that happens to read the same.
        let (named_like_key, _) = store.create_app(&a.api_key).await.unwrap();
        assert_eq!(store.find_app(&a.api_key).await.unwrap()[0].id, a.id);
        assert_eq!(store.find_app(&a.id).await.unwrap().len(), 1);
        store.create_app("beta").await.unwrap();
        assert_eq!(
            store.find_app("beta").await.unwrap().len(),
            2,
            "names repeat"
        );
        assert_ne!(named_like_key.id, a.id);
        assert!(store.get_app("app_missing").await.unwrap().is_none());
        assert!(
            store
                .rotate_app_secret("app_missing")
                .await
                .unwrap()
                .is_none()
        );
    }

    #[tokio::test]
    async fn secret_is_not_stored_in_clear() {
        let (store, _dir) = temp_store().await;
        let (a, secret) = store.create_app("alpha").await.unwrap();
        let stored: String = sqlx::query_scalar("SELECT api_secret_sealed FROM apps WHERE id = ?")
            .bind(&a.id)
            .fetch_one(&store.pool)
            .await
            .unwrap();
        assert!(!stored.contains(secret.expose().as_str()));
        assert!(stored.starts_with("v1."));
    }
}
