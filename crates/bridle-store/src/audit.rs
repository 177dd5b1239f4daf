//! The audit log: append-only and hash-chained, durable before `append`
//! returns, with group commit — concurrent appends are gathered into one
//! transaction (one fsync) so throughput stays high while every caller still
//! waits for its own record to be on disk.
//!
//! Each body is serialised once, when sealed; that text is what is stored
//! and what the hash covers (format 2). Verification reads the stored text
//! and never re-serialises it.

use bridle_core::audit::{
    AuditEvent, EventBody, EventType, HashFormat, StoredEvent, Verification, Verifier,
};
use bridle_core::id::{AgentId, DecisionId};
use bridle_core::ledger::{LimitHit, Usage};
use sqlx::Row;
use tokio::sync::{mpsc, oneshot, watch};

use crate::BeginWrite as _;
use crate::time::Stamp;
use crate::{Store, StoreError, with_pool};

/// Most events written in one transaction.
const MAX_BATCH: usize = 512;
/// Rows per INSERT statement (bounded by the backends' parameter limits).
const ROWS_PER_INSERT: usize = 100;

type Reply = oneshot::Sender<Result<Appended, StoreError>>;

/// One event to append, with the usage its decision charges (if any).
type Item = (EventBody, Option<Usage>, Reply);

/// What an append with usage came to.
#[derive(Debug, Clone)]
pub enum Appended {
    /// The usage was within every limit: it and the event are durable.
    Event(Box<AuditEvent>),
    /// The usage would break `agent`'s limit `hit`: nothing was written.
    Limited { agent: AgentId, hit: LimitHit },
}

/// The writer handle. Cheap to clone; all clones feed one writer task.
#[derive(Debug, Clone)]
pub struct AuditLog {
    tx: mpsc::Sender<Item>,
    /// The `seq` of the last event this writer committed.
    committed: watch::Receiver<u64>,
}

/// Told about every batch the writer writes (the server's metrics): how
/// many events it held and how long its transaction took, committed or
/// not. Called on the writer task between two batches, so it must be
/// quick and must not block (atomic counters, no I/O).
pub trait AuditObserver: Send + Sync + std::fmt::Debug {
    fn batch_written(&self, batch: BatchWritten);
}

/// One batch of the group-commit writer, as its [`AuditObserver`] sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BatchWritten {
    /// The appends gathered into it (events written and those a limit refused).
    pub appends: usize,
    /// From the batch gathered to its transaction committed (or failed).
    pub took: std::time::Duration,
    pub committed: bool,
}

impl AuditLog {
    /// Start the writer task on the current tokio runtime.
    pub fn start(store: Store) -> Self {
        Self::spawn(store, None)
    }

    /// [`AuditLog::start`], telling `observer` about every batch written.
    pub fn start_observed(store: Store, observer: std::sync::Arc<dyn AuditObserver>) -> Self {
        Self::spawn(store, Some(observer))
    }

    fn spawn(store: Store, observer: Option<std::sync::Arc<dyn AuditObserver>>) -> Self {
        let (tx, rx) = mpsc::channel(8 * MAX_BATCH);
        let (seq_tx, committed) = watch::channel(0);
        tokio::spawn(writer(store.audit_writer(), rx, seq_tx, observer));
        Self { tx, committed }
    }

    /// Sees the `seq` of each batch this writer commits (events appended by
    /// other replicas are not seen here).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.committed.clone()
    }

    /// Append one event; returns once it is durable, with its place in the chain.
    pub async fn append(&self, body: EventBody) -> Result<AuditEvent, StoreError> {
        match self.send(body, None).await? {
            Appended::Event(event) => Ok(*event),
            // Nothing was charged, so no limit can be hit.
            Appended::Limited { agent, .. } => Err(StoreError::Corrupt(format!(
                "an event without usage was refused for a limit of `{agent}`"
            ))),
        }
    }

    /// Append a decision's event together with the usage it charges: the
    /// usage is checked against the stored usage of every limit and, when
    /// it fits, recorded in the same transaction as the event. Returns once
    /// both are durable, or [`Appended::Limited`] with nothing written.
    pub async fn append_charged(
        &self,
        body: EventBody,
        usage: Usage,
    ) -> Result<Appended, StoreError> {
        let usage = (!usage.is_empty()).then_some(usage);
        self.send(body, usage).await
    }

    async fn send(&self, body: EventBody, usage: Option<Usage>) -> Result<Appended, StoreError> {
        let (reply, wait) = oneshot::channel();
        self.tx
            .send((body, usage, reply))
            .await
            .map_err(|_| StoreError::AuditUnavailable)?;
        wait.await.map_err(|_| StoreError::AuditUnavailable)?
    }
}

async fn writer(
    store: Store,
    mut rx: mpsc::Receiver<Item>,
    committed: watch::Sender<u64>,
    observer: Option<std::sync::Arc<dyn AuditObserver>>,
) {
    let mut wal = Wal::new(&store);
    loop {
        let first = match wal.due_in() {
            // Idle with writes not yet checkpointed: checkpoint once the
            // interval is up, unless an append comes first.
            Some(wait) => match tokio::time::timeout(wait, rx.recv()).await {
                Ok(item) => item,
                Err(_) => {
                    wal.checkpoint(&store).await;
                    continue;
                }
            },
            None => rx.recv().await,
        };
        let Some(first) = first else { break };
        let mut items = Vec::with_capacity(MAX_BATCH);
        let mut replies = Vec::with_capacity(MAX_BATCH);
        let (body, usage, reply) = first;
        items.push((body, usage));
        replies.push(reply);
        while items.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok((body, usage, reply)) => {
                    items.push((body, usage));
                    replies.push(reply);
                }
                Err(_) => break,
            }
        }
        let started = std::time::Instant::now();
        let written = store.append_batch(items).await;
        if let Some(observer) = &observer {
            observer.batch_written(BatchWritten {
                appends: replies.len(),
                took: started.elapsed(),
                committed: written.is_ok(),
            });
        }
        match written {
            Ok(outcomes) => {
                if let Some(last) = outcomes.iter().rev().find_map(|o| match o {
                    Appended::Event(e) => Some(e.seq),
                    Appended::Limited { .. } => None,
                }) {
                    committed.send_replace(last);
                }
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    let _ = reply.send(Ok(outcome));
                }
                wal.written();
            }
            Err(e) => {
                tracing::error!(error = %e, "audit append failed");
                for reply in replies {
                    let _ = reply.send(Err(StoreError::AuditUnavailable));
                }
            }
        }
        // After the batch's callers have their answers: the next batch
        // waits for the checkpoint, none of this one's.
        if wal.due_in() == Some(std::time::Duration::ZERO) {
            wal.checkpoint(&store).await;
        }
    }
}

/// How often, at most, the writer checkpoints the SQLite WAL.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(250);
/// Batches after which the writer checkpoints sooner: a batch adds about
/// 20–25 pages to the WAL under full load, so the WAL stays near SQLite's
/// own 1,000-page mark (4 MiB) instead of holding a quarter of a second
/// of writes (measured up to 28 MiB).
const CHECKPOINT_BATCHES: u32 = 48;

/// SQLite only: when the writer copies the WAL back into the database.
/// No connection checkpoints inside a commit (`wal_autocheckpoint=0`):
/// SQLite would do it in whichever commit crossed 1,000 pages, with that
/// batch's callers waiting. The writer does it itself, on its connection,
/// every [`CHECKPOINT_EVERY`] or [`CHECKPOINT_BATCHES`], whichever comes first, and only after answering a batch (or
/// when idle), with nothing else writing meanwhile, so the checkpoint
/// completes and the next commit starts the WAL over. (On another
/// connection, concurrently with the writer, a passive checkpoint never
/// caught up and the WAL grew without end.)
struct Wal {
    sqlite: bool,
    last: std::time::Instant,
    /// Batches committed since the last checkpoint.
    batches: u32,
}

impl Wal {
    fn new(store: &Store) -> Self {
        Self {
            sqlite: store.backend() == crate::Backend::Sqlite,
            last: std::time::Instant::now(),
            batches: 0,
        }
    }

    fn written(&mut self) {
        if self.sqlite {
            self.batches += 1;
        }
    }

    /// How long until a checkpoint is due; `None` when none is needed.
    fn due_in(&self) -> Option<std::time::Duration> {
        match self.batches {
            0 => None,
            n if n >= CHECKPOINT_BATCHES => Some(std::time::Duration::ZERO),
            _ => Some(CHECKPOINT_EVERY.saturating_sub(self.last.elapsed())),
        }
    }

    async fn checkpoint(&mut self, store: &Store) {
        if let Err(e) = store.checkpoint().await {
            tracing::warn!(error = %e, "WAL checkpoint failed (tried again after the next commit)");
        }
        self.last = std::time::Instant::now();
        self.batches = 0;
    }
}

#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub agent: Option<AgentId>,
    pub kind: Option<EventType>,
    /// Only events with `seq` greater than this.
    pub after_seq: Option<u64>,
    /// Only events at or after this RFC 3339 instant.
    pub since: Option<jiff::Timestamp>,
    pub limit: u32,
}

/// The head of the stored chain: the last record's `seq` and hash (`0` and
/// the genesis hash when the log is empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditHead {
    pub seq: u64,
    pub hash: String,
}

#[expect(
    async_fn_in_trait,
    reason = "implemented by `Store` alone and called on it directly, so its futures' `Send` is known"
)]
pub trait AuditRead {
    async fn audit_events(&self, filter: &AuditFilter) -> Result<Vec<AuditEvent>, StoreError>;
    /// Walk the whole chain and report every record that does not verify,
    /// checking the stored head too.
    async fn verify_audit(&self) -> Result<Verification, StoreError> {
        self.verify_audit_with(Verifier::new()).await
    }
    /// Feed the records after `verifier.start_after()` (up to the stored
    /// head, read first, so concurrent appends are not mistaken for
    /// anything) to a verifier the caller has given its checkpoints.
    async fn verify_audit_with(&self, verifier: Verifier) -> Result<Verification, StoreError>;
    /// The stored head: the last `seq` and its hash.
    async fn audit_head(&self) -> Result<AuditHead, StoreError>;
    /// The `decision` event that answered decision `id`, if any.
    async fn decision_event(&self, id: &DecisionId) -> Result<Option<AuditEvent>, StoreError>;
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn stored_from_row<R>(row: &R) -> Result<StoredEvent, StoreError>
where
    R: Row,
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> i64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    let seq: i64 = row.try_get("seq")?;
    Ok(StoredEvent {
        seq: u64::try_from(seq).unwrap_or(0),
        format: HashFormat::from_number(row.try_get("format")?),
        body: row.try_get("body")?,
        prev_hash: row.try_get("prev_hash")?,
        hash: row.try_get("hash")?,
    })
}

/// Inside the write transaction `$tx`: take the write lock on the audit
/// head (every writer of every replica takes it in turn) and read it, in
/// one statement.
macro_rules! locked_head {
    ($tx:ident) => {{
        sqlx::query("UPDATE audit_head SET seq = seq WHERE id = 1 RETURNING seq, hash")
            .fetch_one(&mut *$tx)
            .await?
    }};
}

impl Store {
    /// Whether an audit append reaches the disk right now (for `/healthz`):
    /// the path every decision takes — lock the head, insert a row into the
    /// audit table — then the row is deleted again and the transaction
    /// committed, which on SQLite writes and syncs the WAL and on
    /// PostgreSQL flushes its WAL. A full disk, a read-only file system, an
    /// immutable file or a failing insert (a trigger, a constraint) fails
    /// it; the chain is unchanged either way.
    pub async fn check_writable(&self) -> Result<(), StoreError> {
        with_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let head = locked_head!(tx);
            let seq = head.try_get::<i64, _>("seq")?.saturating_add(1);
            let hash: String = head.try_get("hash")?;
            sqlx::query(
                "INSERT INTO audit_events (seq, time, type, agent, body, prev_hash, hash, format, decision_id) \
                 VALUES ($1, $2, 'health_probe', NULL, '{}', $3, $3, $4, NULL)",
            )
            .bind(seq)
            .bind(Stamp(jiff::Timestamp::now()))
            .bind(&hash)
            .bind(HashFormat::Exact.number())
            .execute(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM audit_events WHERE seq = $1 AND type = 'health_probe'")
                .bind(seq)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// SQLite: copy what the WAL holds back into the database, as far as
    /// no reader still needs it (`wal_checkpoint(PASSIVE)`). PostgreSQL:
    /// nothing (the server checkpoints).
    async fn checkpoint(&self) -> Result<(), StoreError> {
        match &self.pool {
            crate::Pool::Sqlite(pool) => {
                sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                    .execute(pool)
                    .await?;
                Ok(())
            }
            crate::Pool::Postgres(_) => Ok(()),
        }
    }

    /// Write a batch in one transaction: each item's usage is checked and
    /// recorded first (an item whose usage breaks a limit is left out, and
    /// answered [`Appended::Limited`]); the others' events are chained.
    async fn append_batch(
        &self,
        items: Vec<(EventBody, Option<Usage>)>,
    ) -> Result<Vec<Appended>, StoreError> {
        with_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let head = locked_head!(tx);
            let mut seq = u64::try_from(head.try_get::<i64, _>("seq")?).unwrap_or(0);
            let mut prev: String = head.try_get("hash")?;
            let mut sealed = Vec::with_capacity(items.len());
            let usages: Vec<Option<&Usage>> = items.iter().map(|(_, u)| u.as_ref()).collect();
            let outcomes: Vec<Option<(AgentId, LimitHit)>> =
                crate::usage::charge_batch!(tx, &usages).await?;
            drop(usages);
            for ((body, _), outcome) in items.into_iter().zip(&outcomes) {
                if outcome.is_some() {
                    continue;
                }
                seq += 1;
                let stored = StoredEvent::seal(seq, &body, &prev)
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                prev.clone_from(&stored.hash);
                sealed.push((body, stored));
            }
            crate::activity::record_activity!(tx, sealed.iter().map(|(body, _)| body)).await?;
            for chunk in sealed.chunks(ROWS_PER_INSERT) {
                let mut q = sqlx::QueryBuilder::new(
                    "INSERT INTO audit_events (seq, time, type, agent, body, prev_hash, hash, format, decision_id) ",
                );
                q.push_values(chunk, |mut b, (body, e)| {
                    b.push_bind(to_i64(e.seq))
                        .push_bind(Stamp(body.time))
                        .push_bind(body.kind.as_str())
                        .push_bind(body.agent.clone())
                        .push_bind(e.body.clone())
                        .push_bind(e.prev_hash.clone())
                        .push_bind(e.hash.clone())
                        .push_bind(e.format.number())
                        .push_bind(body.decision_id().map(str::to_owned));
                });
                q.build().execute(&mut *tx).await?;
            }
            sqlx::query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1")
                .bind(to_i64(seq))
                .bind(&prev)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            let mut events = sealed.into_iter().map(|(body, e)| AuditEvent {
                seq: e.seq,
                body,
                prev_hash: e.prev_hash,
                hash: e.hash,
            });
            outcomes
                .into_iter()
                .map(|o| match o {
                    Some((agent, hit)) => Ok(Appended::Limited { agent, hit }),
                    None => events
                        .next()
                        .map(|e| Appended::Event(Box::new(e)))
                        .ok_or_else(|| {
                            StoreError::Corrupt("an appended event went missing".into())
                        }),
                })
                .collect()
        })
    }
}

impl AuditRead for Store {
    async fn audit_events(&self, filter: &AuditFilter) -> Result<Vec<AuditEvent>, StoreError> {
        with_pool!(self, |pool| {
            let mut q = sqlx::QueryBuilder::new(
                "SELECT seq, format, body, prev_hash, hash FROM audit_events WHERE 1 = 1",
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
                q.push(" AND time >= ").push_bind(Stamp(since));
            }
            q.push(" ORDER BY seq LIMIT ")
                .push_bind(i64::from(filter.limit.clamp(1, 10_000)));
            let rows = q.build().fetch_all(pool).await?;
            rows.iter()
                .map(|r| {
                    stored_from_row(r)?
                        .event()
                        .map_err(|e| StoreError::Corrupt(e.to_string()))
                })
                .collect()
        })
    }

    async fn verify_audit_with(&self, mut verifier: Verifier) -> Result<Verification, StoreError> {
        const PAGE: i64 = 5_000;
        let AuditHead {
            seq: head_seq,
            hash: head_hash,
        } = self.audit_head().await?;
        verifier.head(head_seq, &head_hash);
        let mut after = to_i64(verifier.start_after());
        loop {
            let rows: Vec<StoredEvent> = with_pool!(self, |pool| {
                let rows = sqlx::query(
                    "SELECT seq, format, body, prev_hash, hash FROM audit_events \
                     WHERE seq > $1 AND seq <= $2 ORDER BY seq LIMIT $3",
                )
                .bind(after)
                .bind(to_i64(head_seq))
                .bind(PAGE)
                .fetch_all(pool)
                .await?;
                rows.iter()
                    .map(stored_from_row)
                    .collect::<Result<Vec<_>, StoreError>>()
            })?;
            let Some(last) = rows.last() else { break };
            after = to_i64(last.seq);
            rows.iter().for_each(|e| verifier.push(e));
            if rows.len() < usize::try_from(PAGE).unwrap_or(usize::MAX) {
                break;
            }
        }
        Ok(verifier.finish())
    }

    async fn decision_event(&self, id: &DecisionId) -> Result<Option<AuditEvent>, StoreError> {
        with_pool!(self, |pool| {
            let row = sqlx::query(
                "SELECT seq, format, body, prev_hash, hash FROM audit_events \
                 WHERE decision_id = $1 AND type = 'decision' ORDER BY seq LIMIT 1",
            )
            .bind(id.as_str())
            .fetch_optional(pool)
            .await?;
            row.as_ref()
                .map(|r| {
                    stored_from_row(r)?
                        .event()
                        .map_err(|e| StoreError::Corrupt(e.to_string()))
                })
                .transpose()
        })
    }

    async fn audit_head(&self) -> Result<AuditHead, StoreError> {
        with_pool!(self, |pool| {
            let row = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
                .fetch_one(pool)
                .await?;
            let seq = u64::try_from(row.try_get::<i64, _>("seq")?).unwrap_or(0);
            Ok(AuditHead {
                seq,
                hash: row.try_get("hash")?,
            })
        })
    }
}
