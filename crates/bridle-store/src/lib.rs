//! Bridle's storage. One [`Store`] type privately holds either an embedded
//! SQLite pool (the default, zero set-up) or a PostgreSQL pool, chosen by
//! the URL scheme. Callers see capability-split traits ([`PrincipalStore`],
//! [`RegistryRead`], [`RegistryWrite`], [`AuditRead`], [`CheckpointStore`]) and the
//! group-committing [`AuditLog`]; no sqlx type crosses this crate's boundary.
//!
//! Migrations are versioned per dialect under `migrations/` and run at
//! connect; a database migrated by a newer Bridle is refused.

mod approvals;
mod audit;
mod checkpoints;
mod credentials;
mod elevations;
mod error;
mod notify;
mod principals;
mod proposals;
mod registry;
mod time;
mod usage;

use std::str::FromStr;

use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

pub use approvals::{Approval, ApprovalKind, ApprovalState, ApprovalStore, NewApproval, Vote};
pub use audit::{Appended, AuditFilter, AuditHead, AuditLog, AuditRead};
pub use checkpoints::{CheckpointFilter, CheckpointStore};
pub use credentials::{
    ClientAuth, CredentialRow, CredentialStore, KekCheck, NewToken, Purged, Revoked, SealedKey,
    SigningKeyRow, TokenRow,
};
pub use elevations::{Elevation, ElevationState, ElevationStore};
pub use error::StoreError;
pub use notify::Change;
pub use principals::{NewPrincipal, Principal, PrincipalStore, Role};
pub use proposals::{Proposal, ProposalState, ProposalStore};
pub use registry::{AgentRow, AgentVersion, RegistryRead, RegistryWrite, StateBy};
pub use usage::{LimitNeed, UsageStore};

#[derive(Debug, Clone)]
enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// A transaction that will write. On SQLite it begins `IMMEDIATE`, taking
/// the write lock first: a deferred transaction that reads and then writes
/// fails at once with `SQLITE_BUSY_SNAPSHOT` when another connection commits
/// in between (the busy timeout does not apply), which turned ordinary
/// concurrent writes into 503s. PostgreSQL needs nothing extra.
pub(crate) trait BeginWrite {
    type Db: sqlx::Database;
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, Self::Db>, sqlx::Error>;
}

impl BeginWrite for SqlitePool {
    type Db = sqlx::Sqlite;
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error> {
        self.begin_with("BEGIN IMMEDIATE").await
    }
}

impl BeginWrite for PgPool {
    type Db = sqlx::Postgres;
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error> {
        self.begin().await
    }
}

/// Run `$body` with `$pool` bound to whichever pool the store holds. The SQL
/// in the body is written once in the dialect both accept (`$1` placeholders,
/// TEXT/BIGINT/BOOLEAN columns).
macro_rules! with_pool {
    ($store:expr, |$pool:ident| $body:expr) => {
        match &$store.pool {
            $crate::Pool::Sqlite($pool) => $body,
            $crate::Pool::Postgres($pool) => $body,
        }
    };
}
pub(crate) use with_pool;

/// The store: SQLite or PostgreSQL.
#[derive(Debug, Clone)]
pub struct Store {
    pool: Pool,
}

/// Which backend a store uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Store {
    /// Connect by URL (`sqlite://PATH`, `postgres://…`), creating and
    /// migrating the database on first use.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let pool = if let Some(path) = url.strip_prefix("sqlite://") {
            if let Some(parent) = std::path::Path::new(path).parent()
                && !parent.as_os_str().is_empty()
            {
                std::fs::create_dir_all(parent).map_err(|e| {
                    StoreError::Config(format!("cannot create the directory for `{path}`: {e}"))
                })?;
            }
            let options = SqliteConnectOptions::from_str(&format!("sqlite://{path}"))
                .map_err(|e| StoreError::Config(format!("invalid SQLite URL `{url}`: {e}")))?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                // Durable at commit: an answered decision's audit record survives a crash.
                .synchronous(SqliteSynchronous::Full)
                .foreign_keys(true)
                .busy_timeout(std::time::Duration::from_secs(10));
            let pool = SqlitePoolOptions::new()
                .max_connections(8)
                .connect_with(options)
                .await?;
            sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
            Pool::Sqlite(pool)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let pool = PgPoolOptions::new()
                .max_connections(16)
                .connect(url)
                .await?;
            sqlx::migrate!("./migrations/postgres").run(&pool).await?;
            Pool::Postgres(pool)
        } else {
            return Err(StoreError::Config(format!(
                "unsupported database URL `{}`: expected `sqlite://PATH` or `postgres://…`",
                redact_url(url)
            )));
        };
        Ok(Self { pool })
    }

    pub fn backend(&self) -> Backend {
        match self.pool {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    /// Whether the store accepts writes right now (for `/healthz`): writes
    /// and rolls back a row in a transaction.
    pub async fn check_writable(&self) -> Result<(), StoreError> {
        with_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            sqlx::query("UPDATE audit_head SET seq = seq WHERE id = 1")
                .execute(&mut *tx)
                .await?;
            tx.rollback().await?;
            Ok(())
        })
    }

    pub async fn close(&self) {
        with_pool!(self, |pool| pool.close().await)
    }
}

/// A URL without its password, for error messages.
fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.rsplit_once('@') {
        Some((_, host)) => format!("{scheme}://…@{host}"),
        None => url.to_owned(),
    }
}
