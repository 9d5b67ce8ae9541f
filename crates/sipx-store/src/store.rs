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
    /// The last version of `changes` the SIP service has loaded; `None` while no SIP service
    /// follows this store (API-only tools and tests), so writes do not wait for one.
    applied: Arc<tokio::sync::watch::Sender<Option<u64>>>,
}

/// How long a write waits for the SIP service to load it before answering anyway: a reload
/// takes milliseconds, unless a trunk's host name resolves slowly.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(3);

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
            applied: Arc::new(tokio::sync::watch::channel(None).0),
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

    /// The current version of the data `subscribe_changes` watches. A load that reads this
    /// first, then the data, holds every write up to that version.
    pub fn change_version(&self) -> u64 {
        *self.changes.borrow()
    }

    /// The SIP service has loaded everything up to `version`.
    pub fn mark_applied(&self, version: u64) {
        self.applied.send_if_modified(|v| {
            let newer = v.is_none_or(|old| version > old);
            if newer {
                *v = Some(version);
            }
            newer
        });
    }

    /// The SIP service stopped: writes no longer wait for it.
    pub fn follower_gone(&self) {
        self.applied.send_replace(None);
    }

    /// Tells the SIP service about a committed write, then waits until it has loaded it: an
    /// API call that returned has taken effect, so the next INVITE follows the new rule or
    /// trunk. Gives up (and says so) after `SETTLE_TIMEOUT`; the write stands either way.
    pub(crate) async fn changed(&self) {
        let mut version = 0;
        self.changes.send_modify(|n| {
            *n = n.saturating_add(1);
            version = *n;
        });
        let mut applied = self.applied.subscribe();
        if applied.borrow().is_none() {
            return;
        }
        let loaded = applied.wait_for(|v| v.is_none_or(|v| v >= version));
        if tokio::time::timeout(SETTLE_TIMEOUT, loaded).await.is_err() {
            tracing::warn!(version, "the SIP service has not loaded a change yet");
        }
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

    #[tokio::test]
    async fn a_write_answers_once_the_sip_service_has_loaded_it() {
        let (store, _dir) = temp_store().await;
        // No SIP service follows the store: writes do not wait.
        store.changed().await;
        assert_eq!(store.change_version(), 1);

        store.mark_applied(1);
        let writer = tokio::spawn({
            let store = store.clone();
            async move { store.changed().await }
        });
        let mut changes = store.subscribe_changes();
        changes.wait_for(|v| *v == 2).await.unwrap();
        tokio::task::yield_now().await;
        assert!(!writer.is_finished(), "the write waits for the SIP service");
        store.mark_applied(1);
        assert!(
            !writer.is_finished(),
            "an older version does not release it"
        );
        store.mark_applied(2);
        tokio::time::timeout(Duration::from_secs(1), writer)
            .await
            .unwrap()
            .unwrap();

        // A SIP service that stops releases the writes waiting for it.
        let writer = tokio::spawn({
            let store = store.clone();
            async move { store.changed().await }
        });
        changes.wait_for(|v| *v == 3).await.unwrap();
        store.follower_gone();
        tokio::time::timeout(Duration::from_secs(1), writer)
            .await
            .unwrap()
            .unwrap();
    }
}
