//! Web console sessions: one row per signed-in browser, keyed by the hash
//! of the cookie's random id (the caller hashes). Kept in the store so that
//! every replica sees the same sessions and a sign-out ends one everywhere.

use bridle_core::id::PrincipalId;
use jiff::Timestamp;
use sqlx::Row;

use crate::time::{Stamp, stored};
use crate::{Store, StoreError, with_pool};

/// A console session as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    /// SHA-256 (hex) of the cookie's session id.
    pub id_hash: String,
    pub principal: PrincipalId,
    /// The token every state-changing form of the session carries.
    pub csrf_token: String,
    pub created_at: Timestamp,
    pub last_seen_at: Timestamp,
    /// The absolute end of the session, whatever its use.
    pub expires_at: Timestamp,
}

#[expect(
    async_fn_in_trait,
    reason = "implemented by `Store` alone and called on it directly, so its futures' `Send` is known"
)]
pub trait SessionStore {
    /// Keep a new session.
    async fn create_session(&self, s: &SessionRow) -> Result<(), StoreError>;
    /// The session whose id hashes to `id_hash`, if it is stored.
    async fn session(&self, id_hash: &str) -> Result<Option<SessionRow>, StoreError>;
    /// Note a use of the session at `at` (its idle expiry starts again).
    async fn touch_session(&self, id_hash: &str, at: Timestamp) -> Result<(), StoreError>;
    /// End a session; `false` when there was none.
    async fn delete_session(&self, id_hash: &str) -> Result<bool, StoreError>;
    /// Drop every session past its absolute expiry or unused since
    /// `idle_before`; how many were dropped.
    async fn purge_sessions(
        &self,
        now: Timestamp,
        idle_before: Timestamp,
    ) -> Result<u64, StoreError>;
}

fn from_row<R>(row: &R) -> Result<SessionRow, StoreError>
where
    R: Row,
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> PrincipalId: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    let stamp = |col: &str| -> Result<Timestamp, StoreError> {
        let s: Stamp = row
            .try_get(col)
            .map_err(|e| StoreError::Corrupt(format!("console_sessions.{col}: {e}")))?;
        Ok(s.into())
    };
    Ok(SessionRow {
        id_hash: row.try_get("id_hash")?,
        principal: row
            .try_get("principal_id")
            .map_err(|e| StoreError::Corrupt(format!("console_sessions.principal_id: {e}")))?,
        csrf_token: row.try_get("csrf_token")?,
        created_at: stamp("created_at")?,
        last_seen_at: stamp("last_seen_at")?,
        expires_at: stamp("expires_at")?,
    })
}

impl SessionStore for Store {
    async fn create_session(&self, s: &SessionRow) -> Result<(), StoreError> {
        with_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO console_sessions \
                 (id_hash, principal_id, csrf_token, created_at, last_seen_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&s.id_hash)
            .bind(&s.principal)
            .bind(&s.csrf_token)
            .bind(Stamp(stored(s.created_at)))
            .bind(Stamp(stored(s.last_seen_at)))
            .bind(Stamp(stored(s.expires_at)))
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    async fn session(&self, id_hash: &str) -> Result<Option<SessionRow>, StoreError> {
        with_pool!(self, |pool| {
            let row = sqlx::query(
                "SELECT id_hash, principal_id, csrf_token, created_at, last_seen_at, expires_at \
                 FROM console_sessions WHERE id_hash = $1",
            )
            .bind(id_hash)
            .fetch_optional(pool)
            .await?;
            row.as_ref().map(from_row).transpose()
        })
    }

    async fn touch_session(&self, id_hash: &str, at: Timestamp) -> Result<(), StoreError> {
        with_pool!(self, |pool| {
            sqlx::query("UPDATE console_sessions SET last_seen_at = $2 WHERE id_hash = $1")
                .bind(id_hash)
                .bind(Stamp(stored(at)))
                .execute(pool)
                .await?;
            Ok(())
        })
    }

    async fn delete_session(&self, id_hash: &str) -> Result<bool, StoreError> {
        with_pool!(self, |pool| {
            let done = sqlx::query("DELETE FROM console_sessions WHERE id_hash = $1")
                .bind(id_hash)
                .execute(pool)
                .await?;
            Ok(done.rows_affected() > 0)
        })
    }

    async fn purge_sessions(
        &self,
        now: Timestamp,
        idle_before: Timestamp,
    ) -> Result<u64, StoreError> {
        with_pool!(self, |pool| {
            let done = sqlx::query(
                "DELETE FROM console_sessions WHERE expires_at <= $1 OR last_seen_at < $2",
            )
            .bind(Stamp(stored(now)))
            .bind(Stamp(stored(idle_before)))
            .execute(pool)
            .await?;
            Ok(done.rows_affected())
        })
    }
}
