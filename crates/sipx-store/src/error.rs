use sipx_secrets::SealError;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A uniqueness rule refused the write; the string names what clashed.
    #[error("{0} already exists")]
    Conflict(&'static str),
    #[error("cannot open the database at {path}: {source}")]
    Open {
        path: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
    /// A sealed secret does not open: the master key changed, or the row was tampered with.
    #[error("stored secret cannot be opened: {0}")]
    Sealed(#[from] SealError),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &e
            && db.is_unique_violation()
        {
            // The only unique columns are api_key and username; the message names the column.
            let what = if db.message().contains("username") {
                "username"
            } else {
                "key"
            };
            return StoreError::Conflict(what);
        }
        StoreError::Database(e)
    }
}
