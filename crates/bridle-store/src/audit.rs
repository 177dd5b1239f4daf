//! The audit log: append-only and hash-chained, durable before `append`
//! returns, with group commit — concurrent appends are gathered into one
//! transaction (one fsync) so throughput stays high while every caller still
//! waits for its own record to be on disk.

use bridle_core::audit::{AuditEvent, EventBody, EventType, Verification, Verifier};
use sqlx::Row;
use tokio::sync::{mpsc, oneshot};

use crate::{Store, StoreError, with_pool};

/// Most events written in one transaction.
const MAX_BATCH: usize = 512;
/// Rows per INSERT statement (bounded by the backends' parameter limits).
const ROWS_PER_INSERT: usize = 100;

type Reply = oneshot::Sender<Result<AuditEvent, StoreError>>;

/// The writer handle. Cheap to clone; all clones feed one writer task.
#[derive(Debug, Clone)]
pub struct AuditLog {
    tx: mpsc::Sender<(EventBody, Reply)>,
}

impl AuditLog {
    /// Start the writer task on the current tokio runtime.
    pub fn start(store: Store) -> Self {
        let (tx, rx) = mpsc::channel(8 * MAX_BATCH);
        tokio::spawn(writer(store, rx));
        Self { tx }
    }

    /// Append one event; returns once it is durable, with its place in the chain.
    pub async fn append(&self, body: EventBody) -> Result<AuditEvent, StoreError> {
        let (reply, wait) = oneshot::channel();
        self.tx
            .send((body, reply))
            .await
            .map_err(|_| StoreError::AuditUnavailable)?;
        wait.await.map_err(|_| StoreError::AuditUnavailable)?
    }
}

async fn writer(store: Store, mut rx: mpsc::Receiver<(EventBody, Reply)>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(item) => batch.push(item),
                Err(_) => break,
            }
        }
        let bodies: Vec<EventBody> = batch.iter().map(|(b, _)| b.clone()).collect();
        match store.append_batch(bodies).await {
            Ok(events) => {
                for ((_, reply), event) in batch.drain(..).zip(events) {
                    let _ = reply.send(Ok(event));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "audit append failed");
                for (_, reply) in batch.drain(..) {
                    let _ = reply.send(Err(StoreError::AuditUnavailable));
                }
            }
        }
    }
}

/// Which events to list.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub agent: Option<String>,
    pub kind: Option<EventType>,
    /// Only events with `seq` greater than this.
    pub after_seq: Option<u64>,
    /// Only events at or after this RFC 3339 instant.
    pub since: Option<jiff::Timestamp>,
    pub limit: u32,
}

#[allow(async_fn_in_trait)]
pub trait AuditRead {
    async fn audit_events(&self, filter: &AuditFilter) -> Result<Vec<AuditEvent>, StoreError>;
    /// Walk the whole chain and report the first record that does not verify.
    async fn verify_audit(&self) -> Result<Verification, StoreError>;
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn event_from_row<R>(row: &R) -> Result<Result<AuditEvent, u64>, StoreError>
where
    R: Row,
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> i64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    let seq: i64 = row.try_get("seq")?;
    let seq = u64::try_from(seq).unwrap_or(0);
    let body: String = row.try_get("body")?;
    let Ok(body) = serde_json::from_str::<EventBody>(&body) else {
        return Ok(Err(seq));
    };
    Ok(Ok(AuditEvent {
        seq,
        body,
        prev_hash: row.try_get("prev_hash")?,
        hash: row.try_get("hash")?,
    }))
}

impl Store {
    /// Chain and write `bodies` in one transaction, after the current head.
    async fn append_batch(&self, bodies: Vec<EventBody>) -> Result<Vec<AuditEvent>, StoreError> {
        with_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            // Take the write lock on the head before reading it.
            sqlx::query("UPDATE audit_head SET seq = seq WHERE id = 1")
                .execute(&mut *tx)
                .await?;
            let head = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
                .fetch_one(&mut *tx)
                .await?;
            let mut seq = u64::try_from(head.try_get::<i64, _>("seq")?).unwrap_or(0);
            let mut prev: String = head.try_get("hash")?;
            let mut events = Vec::with_capacity(bodies.len());
            for body in bodies {
                seq += 1;
                let event = AuditEvent::chain(seq, body, &prev);
                prev.clone_from(&event.hash);
                events.push(event);
            }
            for chunk in events.chunks(ROWS_PER_INSERT) {
                let mut q = sqlx::QueryBuilder::new(
                    "INSERT INTO audit_events (seq, time, type, agent, body, prev_hash, hash) ",
                );
                q.push_values(chunk, |mut b, e| {
                    let body = serde_json::to_string(&e.body).unwrap_or_default();
                    b.push_bind(to_i64(e.seq))
                        .push_bind(crate::ts(e.body.time))
                        .push_bind(e.body.kind.as_str())
                        .push_bind(e.body.agent.clone())
                        .push_bind(body)
                        .push_bind(e.prev_hash.clone())
                        .push_bind(e.hash.clone());
                });
                q.build().execute(&mut *tx).await?;
            }
            sqlx::query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1")
                .bind(to_i64(seq))
                .bind(&prev)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(events)
        })
    }
}

impl AuditRead for Store {
    async fn audit_events(&self, filter: &AuditFilter) -> Result<Vec<AuditEvent>, StoreError> {
        with_pool!(self, |pool| {
            let mut q = sqlx::QueryBuilder::new(
                "SELECT seq, body, prev_hash, hash FROM audit_events WHERE 1 = 1",
            );
            if let Some(agent) = &filter.agent {
                q.push(" AND agent = ").push_bind(agent.clone());
            }
            if let Some(kind) = filter.kind {
                q.push(" AND type = ").push_bind(kind.as_str());
            }
            if let Some(after) = filter.after_seq {
                q.push(" AND seq > ").push_bind(to_i64(after));
            }
            if let Some(since) = filter.since {
                q.push(" AND time >= ").push_bind(crate::ts(since));
            }
            q.push(" ORDER BY seq LIMIT ")
                .push_bind(i64::from(filter.limit.clamp(1, 10_000)));
            let rows = q.build().fetch_all(pool).await?;
            rows.iter()
                .map(|r| {
                    event_from_row(r)?.map_err(|seq| {
                        StoreError::Corrupt(format!("audit event {seq} is unreadable"))
                    })
                })
                .collect()
        })
    }

    async fn verify_audit(&self) -> Result<Verification, StoreError> {
        const PAGE: i64 = 5_000;
        let mut verifier = Verifier::new();
        let mut after: i64 = 0;
        loop {
            let rows: Vec<Result<AuditEvent, u64>> = with_pool!(self, |pool| {
                let rows = sqlx::query(
                    "SELECT seq, body, prev_hash, hash FROM audit_events WHERE seq > $1 ORDER BY seq LIMIT $2",
                )
                .bind(after)
                .bind(PAGE)
                .fetch_all(pool)
                .await?;
                rows.iter()
                    .map(event_from_row)
                    .collect::<Result<Vec<_>, StoreError>>()
            })?;
            let Some(last) = rows.last() else { break };
            after = to_i64(match last {
                Ok(e) => e.seq,
                Err(seq) => *seq,
            });
            for row in &rows {
                match row {
                    Ok(e) => verifier.push(e),
                    Err(seq) => verifier.push_unreadable(*seq),
                }
            }
            if rows.len() < usize::try_from(PAGE).unwrap_or(usize::MAX) {
                break;
            }
        }
        Ok(verifier.finish())
    }
}
