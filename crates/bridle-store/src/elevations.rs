//! Just-in-time elevations: requested, granted (by approval or condition),
//! ended automatically at `expires_at`.

use bridle_core::id::{AgentId, ApprovalId, ElevationId};
use jiff::Timestamp;
use sqlx::Row;

use crate::time::{Stamp, now};
use crate::{Store, StoreError, with_pool};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElevationState {
    Pending,
    Active,
    Ended,
    Denied,
}

impl ElevationState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Active => "active",
            Self::Ended => "ended",
            Self::Denied => "denied",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Elevation {
    pub id: ElevationId,
    pub agent: AgentId,
    pub name: String,
    pub reason: String,
    pub duration_secs: i64,
    pub state: ElevationState,
    pub approval_id: Option<ApprovalId>,
    /// Who asked, as an actor (`principal:alice`, `agent:swe-bot`).
    pub requested_by: String,
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
}

#[expect(
    async_fn_in_trait,
    reason = "implemented by `Store` alone and called on it directly, so its futures' `Send` is known"
)]
pub trait ElevationStore {
    async fn create_elevation(&self, e: &Elevation) -> Result<(), StoreError>;
    async fn elevation(&self, id: &ElevationId) -> Result<Option<Elevation>, StoreError>;
    /// Names of the agent's elevations active at `now`.
    async fn active_elevations(
        &self,
        agent: &AgentId,
        now: Timestamp,
    ) -> Result<Vec<String>, StoreError>;
    /// Start a pending elevation now (on approval); returns it.
    async fn activate_elevation(
        &self,
        id: &ElevationId,
        expires_at: Timestamp,
    ) -> Result<Option<Elevation>, StoreError>;
    async fn deny_elevation(&self, id: &ElevationId) -> Result<(), StoreError>;
}

fn parse_state(s: &str) -> Result<ElevationState, StoreError> {
    match s {
        "pending" => Ok(ElevationState::Pending),
        "active" => Ok(ElevationState::Active),
        "ended" => Ok(ElevationState::Ended),
        "denied" => Ok(ElevationState::Denied),
        _ => Err(StoreError::Corrupt(format!("elevation state `{s}`"))),
    }
}

fn from_row<R>(r: &R) -> Result<Elevation, StoreError>
where
    R: Row,
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Option<String>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> i64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    let state: String = r.try_get("state")?;
    let expires_at: Option<Timestamp> = r
        .try_get::<Option<Stamp>, _>("expires_at")?
        .map(Timestamp::from);
    let mut state = parse_state(&state)?;
    if state == ElevationState::Active && expires_at.is_some_and(|e| e <= now()) {
        state = ElevationState::Ended;
    }
    Ok(Elevation {
        id: r.try_get("id")?,
        agent: r.try_get("agent_id")?,
        name: r.try_get("name")?,
        reason: r.try_get("reason")?,
        duration_secs: r.try_get("duration_secs")?,
        state,
        approval_id: r.try_get("approval_id")?,
        requested_by: r.try_get("requested_by")?,
        created_at: r.try_get::<Stamp, _>("created_at")?.into(),
        expires_at,
    })
}

impl ElevationStore for Store {
    async fn create_elevation(&self, e: &Elevation) -> Result<(), StoreError> {
        with_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO elevations (id, agent_id, name, reason, duration_secs, state, approval_id, requested_by, \
                 created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(&e.id)
            .bind(&e.agent)
            .bind(&e.name)
            .bind(&e.reason)
            .bind(e.duration_secs)
            .bind(e.state.as_str())
            .bind(&e.approval_id)
            .bind(&e.requested_by)
            .bind(Stamp(e.created_at))
            .bind(e.expires_at.map(Stamp))
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    async fn elevation(&self, id: &ElevationId) -> Result<Option<Elevation>, StoreError> {
        with_pool!(self, |pool| {
            let row = sqlx::query(
                "SELECT id, agent_id, name, reason, duration_secs, state, approval_id, requested_by, created_at, expires_at \
                 FROM elevations WHERE id = $1",
            )
            .bind(id)
            .fetch_optional(pool)
            .await?;
            row.as_ref().map(from_row).transpose()
        })
    }

    async fn active_elevations(
        &self,
        agent: &AgentId,
        now: Timestamp,
    ) -> Result<Vec<String>, StoreError> {
        // Read only: this is on every decision's path. An elevation past its
        // `expires_at` is simply not returned (and reads as `ended`).
        with_pool!(self, |pool| {
            let rows = sqlx::query("SELECT name FROM elevations WHERE agent_id = $1 AND state = 'active' AND expires_at > $2")
                .bind(agent)
                .bind(Stamp(now))
                .fetch_all(pool)
                .await?;
            rows.iter().map(|r| Ok(r.try_get("name")?)).collect()
        })
    }

    async fn activate_elevation(
        &self,
        id: &ElevationId,
        expires_at: Timestamp,
    ) -> Result<Option<Elevation>, StoreError> {
        with_pool!(self, |pool| {
            sqlx::query("UPDATE elevations SET state = 'active', expires_at = $1 WHERE id = $2 AND state = 'pending'")
                .bind(Stamp(expires_at))
                .bind(id)
                .execute(pool)
                .await?;
            Ok::<(), StoreError>(())
        })?;
        self.elevation(id).await
    }

    async fn deny_elevation(&self, id: &ElevationId) -> Result<(), StoreError> {
        with_pool!(self, |pool| {
            sqlx::query("UPDATE elevations SET state = 'denied', ended_at = $1 WHERE id = $2 AND state = 'pending'")
                .bind(Stamp(now()))
                .bind(id)
                .execute(pool)
                .await?;
            Ok(())
        })
    }
}
