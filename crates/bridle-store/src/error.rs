use thiserror::Error;

/// Storage failures. Messages may contain database detail: they are for
/// logs, never for an HTTP response body.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(sqlx::Error),
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

/// A column that does not decode (an id that does not validate, an instant
/// that does not parse) is corrupt data, not an unavailable database.
impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::ColumnDecode { index, source } => {
                Self::Corrupt(format!("column {index}: {source}"))
            }
            sqlx::Error::Decode(source) => Self::Corrupt(source.to_string()),
            e => Self::Database(e),
        }
    }
}
