use thiserror::Error;

/// Storage failures. Messages may contain database detail: they are for
/// logs, never for an HTTP response body.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration error: {0} (was this database written by a newer Bridle?)")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("{0}")]
    Config(String),
    #[error("`{0}` already exists")]
    Conflict(String),
    #[error("`{0}` not found")]
    NotFound(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("the audit log is unavailable")]
    AuditUnavailable,
}
