//! Bridle's storage. One [`Store`] type privately holds either an embedded
//! SQLite pool (the default, zero set-up) or a PostgreSQL pool, chosen by
//! the URL scheme. Callers see capability-split traits ([`PrincipalStore`],
//! [`RegistryRead`], [`RegistryWrite`], [`AuditRead`], [`CheckpointStore`]) and the
//! group-committing [`AuditLog`]; no sqlx type crosses this crate's boundary.
//!
//! Migrations are versioned per dialect under `migrations/` and run at
//! connect; a database migrated by a newer Bridle is refused.

mod activity;
mod approvals;
mod audit;
mod authorizations;
mod checkpoints;
mod credentials;
mod elevations;
mod error;
mod evidence;
mod findings;
mod notify;
mod principals;
mod proposals;
mod registry;
mod sessions;
mod time;
mod usage;

use std::str::FromStr;
use std::time::Duration;

use sqlx::Connection as _;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

pub use approvals::{
    Approval, ApprovalKind, ApprovalState, ApprovalStore, NewApproval, PendingApprovals, Vote,
};
pub use audit::{
    Appended, AuditFilter, AuditHead, AuditLog, AuditObserver, AuditRead, BatchWritten,
};
pub use authorizations::{
    AuthorizationCodeRow, AuthorizationRequestRow, AuthorizationStore, Redeemed,
};
pub use checkpoints::{CheckpointFilter, CheckpointStore};
pub use credentials::{
    ClientAuth, CredentialRow, CredentialStore, KekCheck, NewToken, Purged, Revoked, SealedKey,
    SigningKeyRow, TokenRow,
};
pub use elevations::{Elevation, ElevationState, ElevationStore, EndElevation};
pub use error::StoreError;
pub use evidence::{AuditRange, HourlyUses};
pub use findings::{FindingRow, FindingStore, SeenFinding, Synced};
pub use notify::Change;
pub use principals::{NewPrincipal, Principal, PrincipalStore, Role};
pub use proposals::{Proposal, ProposalState, ProposalStore};
pub use registry::{AgentRow, AgentVersion, RegistryRead, RegistryWrite, StateBy};
pub use sessions::{SessionRow, SessionStore};
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

/// How long the store waits before it gives up, so that a database that
/// is down or hangs turns into a quick 503 instead of a request that hangs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreTimeouts {
    /// Longest wait for a pooled connection, including opening a new one
    /// (PostgreSQL down; an SQLite file that cannot be opened for writing).
    pub acquire: Duration,
    /// Longest a single SQL statement may run on PostgreSQL
    /// (`statement_timeout`, enforced by the server).
    pub statement: Duration,
    /// Longest a PostgreSQL connection waits for a row lock
    /// (`lock_timeout`).
    pub lock: Duration,
}

impl Default for StoreTimeouts {
    fn default() -> Self {
        Self {
            acquire: Duration::from_millis(500),
            statement: Duration::from_secs(5),
            lock: Duration::from_secs(2),
        }
    }
}

/// Whether a connection coming back to the pool is in a known state: no
/// transaction open, neither in sqlx's count nor in the database. A
/// transaction that failed (a COMMIT refused on a full disk, a read-only
/// file system, an immutable file, an I/O error) may have been rolled back
/// by the database on its own, so that the ROLLBACK sqlx sends when the
/// transaction is dropped fails and sqlx still counts one open transaction;
/// or the database may still hold it (and its write lock). Either way the
/// next `BEGIN` on that connection would be a savepoint, whose release
/// commits nothing. Such a connection is closed, never reused: closing
/// rolls back whatever the database still holds and frees its locks.
async fn sqlite_released_clean(conn: &mut sqlx::SqliteConnection) -> bool {
    // Runs after the ROLLBACK a dropped transaction queued on this
    // connection, so the checks below see its outcome.
    // One round trip: `BEGIN` fails inside a transaction the database
    // still holds; `ROLLBACK` ends the one it just began.
    if sqlx::raw_sql("BEGIN; ROLLBACK")
        .execute(&mut *conn)
        .await
        .is_err()
    {
        tracing::warn!("closing a database connection left inside a transaction");
        return false;
    }
    if conn.is_in_transaction() {
        tracing::warn!("closing a database connection whose transaction failed");
        return false;
    }
    true
}

/// A new SQLite connection must be able to write: when the database file
/// cannot be opened for writing (an immutable file, a read-only mount),
/// SQLite silently opens it read-only, and such a connection stays
/// read-only after the fault is gone (even `BEGIN IMMEDIATE` succeeds on
/// it; only a write fails). So a new connection writes once — a table
/// created and rolled back, nothing reaches the file — and is refused when
/// that fails (the request that wanted it is a 503); the next attempt
/// opens the file again.
async fn sqlite_connected_writable(conn: &mut sqlx::SqliteConnection) -> Result<(), sqlx::Error> {
    let probe =
        sqlx::raw_sql("BEGIN IMMEDIATE; CREATE TABLE bridle_write_probe (x INTEGER); ROLLBACK")
            .execute(&mut *conn)
            .await;
    if probe.is_err() {
        // Leave nothing open on a connection that is being refused anyway.
        sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await.ok();
    }
    probe.map(drop)
}

/// The same for PostgreSQL: the ROLLBACK a dropped transaction queued is
/// flushed first, and a connection that fails it, or still counts a
/// transaction, is closed.
async fn pg_released_clean(conn: &mut sqlx::PgConnection) -> bool {
    if conn.ping().await.is_err() {
        return false;
    }
    if conn.is_in_transaction() {
        tracing::warn!("closing a database connection whose transaction failed");
        return false;
    }
    true
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
    /// SQLite: the audit writer's own connection (a pool of one, with the
    /// same checks on connect and release). A connection that finds the
    /// database changed by another connection discards its whole page
    /// cache, so the writer, taking a different pooled connection for each
    /// batch, read every index page it touched back through the kernel;
    /// on a connection of its own it finds them cached. `None` on
    /// PostgreSQL, whose writers share the pool.
    writer: Option<SqlitePool>,
}

/// Which backend a store uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Store {
    /// Connect by URL (`sqlite://PATH`, `postgres://…`), creating and
    /// migrating the database on first use, with the default timeouts.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with(url, StoreTimeouts::default()).await
    }

    /// Connect by URL with these timeouts.
    pub async fn connect_with(url: &str, timeouts: StoreTimeouts) -> Result<Self, StoreError> {
        let mut writer = None;
        let pool = if let Some(path) = url.strip_prefix("sqlite://") {
            let pool = sqlite_pool(path, 8, timeouts.acquire).await?;
            writer = Some(sqlite_pool_on(path, 1, timeouts.acquire).await?);
            Pool::Sqlite(pool)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let options = PgConnectOptions::from_str(url)
                .map_err(|e| {
                    StoreError::Config(format!("invalid PostgreSQL URL `{}`: {e}", redact_url(url)))
                })?
                .options([
                    ("statement_timeout", millis(timeouts.statement)),
                    ("lock_timeout", millis(timeouts.lock)),
                ]);
            let pool = PgPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(timeouts.acquire)
                .after_release(|conn, _| Box::pin(async move { Ok(pg_released_clean(conn).await) }))
                .connect_with(options)
                .await?;
            sqlx::migrate!("./migrations/postgres").run(&pool).await?;
            Pool::Postgres(pool)
        } else {
            return Err(StoreError::Config(format!(
                "unsupported database URL `{}`: expected `sqlite://PATH` or `postgres://…`",
                redact_url(url)
            )));
        };
        Ok(Self { pool, writer })
    }

    /// The store the audit writer writes through: on SQLite, its own
    /// connection ([`Store::writer`]); otherwise this one.
    pub(crate) fn audit_writer(&self) -> Self {
        match &self.writer {
            Some(writer) => Self {
                pool: Pool::Sqlite(writer.clone()),
                writer: None,
            },
            None => self.clone(),
        }
    }

    pub fn backend(&self) -> Backend {
        match self.pool {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    /// Whether the store is reachable and carries every migration this
    /// build knows (for `/readyz`).
    pub async fn check_ready(&self) -> Result<(), StoreError> {
        let latest = with_pool!(self, |pool| {
            let migrator = match self.pool {
                Pool::Sqlite(_) => sqlx::migrate!("./migrations/sqlite"),
                Pool::Postgres(_) => sqlx::migrate!("./migrations/postgres"),
            };
            let known = migrator.iter().map(|m| m.version).max().unwrap_or(0);
            let applied: Option<i64> = sqlx::query_scalar(
                "SELECT MAX(version) FROM _sqlx_migrations WHERE success = TRUE",
            )
            .fetch_one(pool)
            .await?;
            (known, applied.unwrap_or(0))
        });
        match latest {
            (known, applied) if applied >= known => Ok(()),
            (known, applied) => Err(StoreError::Config(format!(
                "the database is at migration {applied}, this build needs {known}"
            ))),
        }
    }

    pub async fn close(&self) {
        if let Some(writer) = &self.writer {
            writer.close().await;
        }
        with_pool!(self, |pool| pool.close().await)
    }
}

/// The SQLite pool on the file at `path` (created with its directory on
/// first use), migrated.
async fn sqlite_pool(
    path: &str,
    max_connections: u32,
    acquire_timeout: Duration,
) -> Result<SqlitePool, StoreError> {
    let pool = sqlite_pool_on(path, max_connections, acquire_timeout).await?;
    sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
    Ok(pool)
}

/// A pool on the SQLite file at `path` (created with its directory on
/// first use), not migrated.
async fn sqlite_pool_on(
    path: &str,
    max_connections: u32,
    acquire_timeout: Duration,
) -> Result<SqlitePool, StoreError> {
    if let Some(parent) = std::path::Path::new(path).parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent).map_err(|e| {
            StoreError::Config(format!("cannot create the directory for `{path}`: {e}"))
        })?;
    }
    let options = SqliteConnectOptions::from_str(&format!("sqlite://{path}"))
        .map_err(|e| StoreError::Config(format!("invalid SQLite URL `sqlite://{path}`: {e}")))?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // Durable at commit: an answered decision's audit record survives a crash.
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(10))
        // No checkpoint inside a commit: SQLite would copy the WAL back
        // into the database (and sync it) in whichever commit crossed
        // 1,000 pages, mostly the audit writer's, stalling every decision
        // waiting on that batch. The audit writer checkpoints between
        // batches instead (`audit::Wal`), and the last connection to
        // close checkpoints what is left.
        .pragma("wal_autocheckpoint", "0")
        // Statement journals (a multi-row INSERT inside a transaction
        // keeps one) in memory, not in a temporary file per statement.
        .pragma("temp_store", "memory")
        // 16 MiB of page cache per connection (SQLite's default is 2 MiB):
        // the audit indexes' pages a commit touches stay in memory instead
        // of being read back through the kernel for every batch.
        .pragma("cache_size", "-16384");
    let pool = SqlitePoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(acquire_timeout)
        // No ping on every acquire: a SQLite connection is a file handle in
        // this process, with nothing between it and the database to lose.
        // A connection whose transaction failed is closed on release
        // (`sqlite_released_clean`), which is what a ping could not see.
        .test_before_acquire(false)
        .after_connect(|conn, _| Box::pin(sqlite_connected_writable(conn)))
        .after_release(|conn, _| Box::pin(async move { Ok(sqlite_released_clean(conn).await) }))
        .connect_with(options)
        .await?;
    Ok(pool)
}

/// A duration as PostgreSQL's milliseconds setting (`0` would mean none,
/// so at least 1).
fn millis(d: Duration) -> String {
    d.as_millis().max(1).to_string()
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

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        reason = "a test fails by panicking"
    )]

    use bridle_core::audit::{EventBody, EventType};

    use super::*;
    use crate::AuditLog;

    /// A write transaction that fails so that SQLite rolls it back on its
    /// own (here a full database: `max_page_count`, as a full disk does)
    /// leaves sqlx counting an open transaction on that connection. The
    /// pool's only connection must not come back in that state: the next
    /// audit append commits, and is on disk for another connection.
    #[tokio::test]
    async fn a_connection_whose_transaction_failed_is_not_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bridle.db").display().to_string();
        let store = Store {
            pool: Pool::Sqlite(
                sqlite_pool(&path, 1, StoreTimeouts::default().acquire)
                    .await
                    .unwrap(),
            ),
            writer: None,
        };
        let Pool::Sqlite(pool) = &store.pool else {
            panic!("a SQLite store")
        };
        {
            let mut tx = pool.begin_write().await.unwrap();
            let pages: i64 = sqlx::query_scalar("PRAGMA page_count")
                .fetch_one(&mut *tx)
                .await
                .unwrap();
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "PRAGMA max_page_count = {}",
                pages + 4
            )))
            .execute(&mut *tx)
            .await
            .unwrap();
            let full = sqlx::query(
                "INSERT INTO audit_events (seq, time, type, body, prev_hash, hash) \
                 VALUES (999, 't', 'x', hex(randomblob(400000)), 'p', 'h')",
            )
            .execute(&mut *tx)
            .await;
            assert!(full.is_err(), "the insert must not fit");
        }
        let log = AuditLog::start(store.clone());
        let body = EventBody::new(EventType::Principal, jiff::Timestamp::now(), "admin");
        let event = log
            .append(body)
            .await
            .expect("an append after a failed transaction commits");
        assert_eq!(event.seq, 1);
        store.check_writable().await.expect("the store is writable");
        let other = Store::connect(&format!("sqlite://{path}")).await.unwrap();
        assert_eq!(other.audit_head().await.unwrap().seq, 1);
        assert!(other.verify_audit().await.unwrap().ok);
    }
}
