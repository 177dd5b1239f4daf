//! Posture findings as the sweeps saw them. A sweep of one agent hands
//! over everything it finds now ([`SeenFinding`]); [`FindingStore::sync_findings`]
//! opens what is new, refreshes what is still open and resolves what is
//! gone, each with a conditional write, so that of several replicas
//! sweeping the same agent at once exactly one reports each opening and
//! each resolution.

use bridle_core::id::AgentId;
use jiff::Timestamp;
use sqlx::Row;

use crate::time::Stamp;
use crate::{Store, StoreError, with_pool};

/// A finding as one sweep sees it now.
#[derive(Debug, Clone, PartialEq)]
pub struct SeenFinding {
    /// The kind of finding (`wildcard_grant`, …).
    pub code: String,
    /// What it is about within the agent (a tool, a client id), or `""`.
    pub subject: String,
    pub severity: String,
    pub detail: String,
    pub evidence: serde_json::Value,
}

/// A finding as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct FindingRow {
    pub agent: AgentId,
    pub code: String,
    pub subject: String,
    pub severity: String,
    pub detail: String,
    pub evidence: serde_json::Value,
    pub opened_at: Timestamp,
    pub last_seen_at: Timestamp,
    pub resolved_at: Option<Timestamp>,
}

/// What one sync changed: the findings this call opened (new, or back
/// after being resolved) and those it resolved.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Synced {
    pub opened: Vec<FindingRow>,
    pub resolved: Vec<FindingRow>,
}

#[expect(
    async_fn_in_trait,
    reason = "implemented by `Store` alone and called on it directly, so its futures' `Send` is known"
)]
pub trait FindingStore {
    /// Make the agent's open findings what `seen` holds at `now`: open each
    /// one not open (reporting it in `opened` only if this call opened it),
    /// refresh the detail and evidence of those still open, and resolve the
    /// open ones `seen` lacks (in `resolved` only if this call resolved it).
    async fn sync_findings(
        &self,
        agent: &AgentId,
        seen: &[SeenFinding],
        now: Timestamp,
    ) -> Result<Synced, StoreError>;
    /// Take back an opening this process could not audit, so that the next
    /// sweep opens (and reports) it again.
    async fn unopen_finding(&self, f: &FindingRow) -> Result<(), StoreError>;
    /// Take back a resolution this process could not audit.
    async fn unresolve_finding(&self, f: &FindingRow) -> Result<(), StoreError>;
    /// The open findings, of one agent or of all, oldest first.
    async fn open_findings(&self, agent: Option<&AgentId>) -> Result<Vec<FindingRow>, StoreError>;
}

macro_rules! columns {
    () => {
        "agent_id, code, subject, severity, detail, evidence, opened_at, last_seen_at, resolved_at"
    };
}

fn from_row<R>(row: &R) -> Result<FindingRow, StoreError>
where
    R: Row,
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Option<String>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    let evidence: String = row.try_get("evidence")?;
    Ok(FindingRow {
        agent: row.try_get("agent_id")?,
        code: row.try_get("code")?,
        subject: row.try_get("subject")?,
        severity: row.try_get("severity")?,
        detail: row.try_get("detail")?,
        evidence: serde_json::from_str(&evidence)
            .map_err(|_| StoreError::Corrupt("finding evidence".into()))?,
        opened_at: row.try_get::<Stamp, _>("opened_at")?.into(),
        last_seen_at: row.try_get::<Stamp, _>("last_seen_at")?.into(),
        resolved_at: row
            .try_get::<Option<Stamp>, _>("resolved_at")?
            .map(Timestamp::from),
    })
}

impl FindingStore for Store {
    async fn sync_findings(
        &self,
        agent: &AgentId,
        seen: &[SeenFinding],
        now: Timestamp,
    ) -> Result<Synced, StoreError> {
        let now = crate::time::stored(now);
        let mut synced = Synced::default();
        with_pool!(self, |pool| {
            for f in seen {
                let evidence = f.evidence.to_string();
                let refreshed = sqlx::query(
                    "UPDATE findings SET severity = $4, detail = $5, evidence = $6, last_seen_at = $7 \
                     WHERE agent_id = $1 AND code = $2 AND subject = $3 AND resolved_at IS NULL",
                )
                .bind(agent)
                .bind(&f.code)
                .bind(&f.subject)
                .bind(&f.severity)
                .bind(&f.detail)
                .bind(&evidence)
                .bind(Stamp(now))
                .execute(pool)
                .await?
                .rows_affected();
                if refreshed > 0 {
                    continue;
                }
                // New, or back after being resolved; a row another replica
                // opened meanwhile is left alone (the WHERE fails).
                let opened = sqlx::query(
                    "INSERT INTO findings (agent_id, code, subject, severity, detail, evidence, opened_at, last_seen_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $7) \
                     ON CONFLICT (agent_id, code, subject) DO UPDATE SET severity = excluded.severity, \
                     detail = excluded.detail, evidence = excluded.evidence, opened_at = excluded.opened_at, \
                     last_seen_at = excluded.last_seen_at, resolved_at = NULL \
                     WHERE findings.resolved_at IS NOT NULL",
                )
                .bind(agent)
                .bind(&f.code)
                .bind(&f.subject)
                .bind(&f.severity)
                .bind(&f.detail)
                .bind(&evidence)
                .bind(Stamp(now))
                .execute(pool)
                .await?
                .rows_affected();
                if opened > 0 {
                    synced.opened.push(FindingRow {
                        agent: agent.clone(),
                        code: f.code.clone(),
                        subject: f.subject.clone(),
                        severity: f.severity.clone(),
                        detail: f.detail.clone(),
                        evidence: f.evidence.clone(),
                        opened_at: now,
                        last_seen_at: now,
                        resolved_at: None,
                    });
                }
            }
            let rows = sqlx::query(concat!(
                "SELECT ",
                columns!(),
                " FROM findings WHERE agent_id = $1 AND resolved_at IS NULL"
            ))
            .bind(agent)
            .fetch_all(pool)
            .await?;
            for row in &rows {
                let open = from_row(row)?;
                if seen
                    .iter()
                    .any(|f| f.code == open.code && f.subject == open.subject)
                {
                    continue;
                }
                let resolved = sqlx::query(
                    "UPDATE findings SET resolved_at = $4 \
                     WHERE agent_id = $1 AND code = $2 AND subject = $3 AND resolved_at IS NULL",
                )
                .bind(agent)
                .bind(&open.code)
                .bind(&open.subject)
                .bind(Stamp(now))
                .execute(pool)
                .await?
                .rows_affected();
                if resolved > 0 {
                    synced.resolved.push(FindingRow {
                        resolved_at: Some(now),
                        ..open
                    });
                }
            }
            Ok::<(), StoreError>(())
        })?;
        Ok(synced)
    }

    async fn unopen_finding(&self, f: &FindingRow) -> Result<(), StoreError> {
        with_pool!(self, |pool| {
            sqlx::query(
                "DELETE FROM findings WHERE agent_id = $1 AND code = $2 AND subject = $3 \
                 AND opened_at = $4 AND resolved_at IS NULL",
            )
            .bind(&f.agent)
            .bind(&f.code)
            .bind(&f.subject)
            .bind(Stamp(f.opened_at))
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    async fn unresolve_finding(&self, f: &FindingRow) -> Result<(), StoreError> {
        let Some(at) = f.resolved_at else {
            return Ok(());
        };
        with_pool!(self, |pool| {
            sqlx::query(
                "UPDATE findings SET resolved_at = NULL WHERE agent_id = $1 AND code = $2 \
                 AND subject = $3 AND resolved_at = $4",
            )
            .bind(&f.agent)
            .bind(&f.code)
            .bind(&f.subject)
            .bind(Stamp(at))
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    async fn open_findings(&self, agent: Option<&AgentId>) -> Result<Vec<FindingRow>, StoreError> {
        with_pool!(self, |pool| {
            let rows = match agent {
                Some(agent) => {
                    sqlx::query(concat!(
                        "SELECT ",
                        columns!(),
                        " FROM findings WHERE agent_id = $1 AND resolved_at IS NULL \
                     ORDER BY opened_at, code, subject"
                    ))
                    .bind(agent)
                    .fetch_all(pool)
                    .await?
                }
                None => {
                    sqlx::query(concat!(
                        "SELECT ",
                        columns!(),
                        " FROM findings WHERE resolved_at IS NULL \
                     ORDER BY opened_at, agent_id, code, subject"
                    ))
                    .fetch_all(pool)
                    .await?
                }
            };
            rows.iter().map(from_row).collect()
        })
    }
}
