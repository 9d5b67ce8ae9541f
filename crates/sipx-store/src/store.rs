use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sipx_secrets::MasterKey;
use sqlx::sqlite::SqliteSynchronous;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

use crate::StoreError;

/// Handle to the database. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    pub(crate) pool: SqlitePool,
    pub(crate) master: Arc<MasterKey>,
    /// Bumped on every write the SIP service caches (trunks, SIP accounts, routing rules), so it reloads at
    /// once instead of polling.
    changes: Arc<tokio::sync::watch::Sender<u64>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (creating if needed) the SQLite database at `path` and applies pending migrations.
    pub async fn open(path: &Path, master: MasterKey) -> Result<Self, StoreError> {
        let open_err = |source| StoreError::Open {
            path: path.display().to_string(),
            source,
        };
        let options = SqliteConnectOptions::from_str("sqlite://")
            .map_err(open_err)?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: the WAL is synced at every commit, so an acknowledged write survives a
            // power cut, not only a process kill.
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(open_err)?;
        crate::migrations::migrator().run(&pool).await?;
        Ok(Self {
            pool,
            master: Arc::new(master),
            changes: Arc::new(tokio::sync::watch::channel(0).0),
        })
    }

    /// A round trip to the database, for readiness checks.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Opens one stored secret, if any, to prove the master key is the one the database was
    /// written with: better a clear startup error than every signature failing later.
    pub async fn check_master_key(&self) -> Result<(), StoreError> {
        let key: Option<String> =
            sqlx::query_scalar("SELECT api_key FROM apps ORDER BY id LIMIT 1")
                .fetch_optional(&self.pool)
                .await?;
        if let Some(key) = key {
            self.app_credentials(&key).await?;
        }
        Ok(())
    }

    /// A receiver that wakes on every change to trunks, SIP accounts or routing rules.
    pub fn subscribe_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    pub(crate) fn changed(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Closes the pool, waiting for in-flight queries.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) async fn temp_store() -> (Store, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let (key, _) = MasterKey::generate();
        let store = Store::open(&dir.path().join("sipx.db"), key).await.unwrap();
        (store, dir)
    }

    #[tokio::test]
    async fn reopening_keeps_data_and_applies_migrations_once() {
        let dir = tempfile::tempdir().unwrap();
        let (_, raw) = MasterKey::generate();
        let key = || MasterKey::parse(&MasterKey::encode(&raw)).unwrap();
        let path = dir.path().join("sipx.db");
        let store = Store::open(&path, key()).await.unwrap();
        let (app, secret) = store.create_app("kept").await.unwrap();
        store.close().await;

        let store = Store::open(&path, key()).await.unwrap();
        let (again, s) = store.app_credentials(&app.api_key).await.unwrap().unwrap();
        assert_eq!(again, app);
        assert_eq!(s.expose(), secret.expose().as_bytes());
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&store.pool)
            .await
            .unwrap();
        assert_eq!(mode, "wal");
    }

    #[tokio::test]
    async fn another_master_key_cannot_open_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sipx.db");
        let store = Store::open(&path, MasterKey::generate().0).await.unwrap();
        let (app, _) = store.create_app("x").await.unwrap();
        store.close().await;
        let store = Store::open(&path, MasterKey::generate().0).await.unwrap();
        assert!(matches!(
            store.app_credentials(&app.api_key).await,
            Err(StoreError::Sealed(_))
        ));
    }
}
