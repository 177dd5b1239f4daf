//! Signed checkpoints of the audit chain: `{seq, head, time}` and the JWS
//! the server made of it. Written by the background task that signs them,
//! read by verification and `GET /v1/audit/checkpoints`.

use bridle_core::audit::SignedCheckpoint;
use sqlx::Row;

use crate::time::Stamp;
use crate::{Store, StoreError, with_pool};

/// Which checkpoints to list.
#[derive(Debug, Clone, Default)]
pub struct CheckpointFilter {
    /// Only checkpoints with `seq` greater than this.
    pub after_seq: Option<u64>,
    /// Only checkpoints made at or after this instant.
    pub since: Option<jiff::Timestamp>,
    /// At most this many (all when `None`).
    pub limit: Option<u32>,
}

#[expect(
    async_fn_in_trait,
    reason = "implemented by `Store` alone and called on it directly, so its futures' `Send` is known"
)]
pub trait CheckpointStore {
    /// Keep a checkpoint; `false` when one for that `seq` exists already
    /// (another replica signed it first).
    async fn add_checkpoint(&self, cp: &SignedCheckpoint) -> Result<bool, StoreError>;
    /// Checkpoints in `seq` order.
    async fn checkpoints(
        &self,
        filter: &CheckpointFilter,
    ) -> Result<Vec<SignedCheckpoint>, StoreError>;
    /// The checkpoint with the highest `seq`.
    async fn latest_checkpoint(&self) -> Result<Option<SignedCheckpoint>, StoreError>;
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn from_row<R>(row: &R) -> Result<SignedCheckpoint, StoreError>
where
    R: Row,
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> i64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    let seq: i64 = row.try_get("seq")?;
    let time: Stamp = row
        .try_get("time")
        .map_err(|e| StoreError::Corrupt(format!("checkpoint {seq}: {e}")))?;
    Ok(SignedCheckpoint {
        seq: u64::try_from(seq).unwrap_or(0),
        head: row.try_get("head")?,
        time: time.into(),
        jws: row.try_get("jws")?,
    })
}

impl CheckpointStore for Store {
    async fn add_checkpoint(&self, cp: &SignedCheckpoint) -> Result<bool, StoreError> {
        with_pool!(self, |pool| {
            let done = sqlx::query(
                "INSERT INTO audit_checkpoints (seq, head, time, jws) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (seq) DO NOTHING",
            )
            .bind(to_i64(cp.seq))
            .bind(&cp.head)
            .bind(Stamp(cp.time))
            .bind(&cp.jws)
            .execute(pool)
            .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    async fn checkpoints(
        &self,
        filter: &CheckpointFilter,
    ) -> Result<Vec<SignedCheckpoint>, StoreError> {
        with_pool!(self, |pool| {
            let mut q = sqlx::QueryBuilder::new(
                "SELECT seq, head, time, jws FROM audit_checkpoints WHERE 1 = 1",
            );
            if let Some(after) = filter.after_seq {
                q.push(" AND seq > ").push_bind(to_i64(after));
            }
            if let Some(since) = filter.since {
                q.push(" AND time >= ").push_bind(Stamp(since));
            }
            q.push(" ORDER BY seq");
            if let Some(limit) = filter.limit {
                q.push(" LIMIT ").push_bind(i64::from(limit.max(1)));
            }
            let rows = q.build().fetch_all(pool).await?;
            rows.iter().map(from_row).collect()
        })
    }

    async fn latest_checkpoint(&self) -> Result<Option<SignedCheckpoint>, StoreError> {
        with_pool!(self, |pool| {
            let row = sqlx::query(
                "SELECT seq, head, time, jws FROM audit_checkpoints ORDER BY seq DESC LIMIT 1",
            )
            .fetch_optional(pool)
            .await?;
            row.as_ref().map(from_row).transpose()
        })
    }
}
