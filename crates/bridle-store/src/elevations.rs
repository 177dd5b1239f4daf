//! Just-in-time elevations: requested, granted (by approval or condition),
//! ended automatically at `expires_at` (read as `expired`), or ended early
//! (`end_elevation`: a conditional update, so of several replicas exactly
//! one ends it).

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
    /// Active until `expires_at`, which has passed. Never stored: an
    /// active row past its `expires_at` reads as this.
    Expired,
}

impl ElevationState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Active => "active",
            Self::Ended => "ended",
            Self::Denied => "denied",
            Self::Expired => "expired",
        }
    }

    /// Pending or active: it can still be ended.
    pub fn is_open(self) -> bool {
        matches!(self, Self::Pending | Self::Active)
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
    /// When it ended early, was denied, or its agent was retired.
    pub ended_at: Option<Timestamp>,
    /// Who ended it early (an actor), and why (migration 0017).
    pub ended_by: Option<String>,
    pub end_reason: Option<String>,
}

/// Who ends an elevation early, why, and when.
#[derive(Debug, Clone, Copy)]
pub struct EndElevation<'a> {
    /// An actor (`principal:alice`, `agent:ir-bot`).
    pub by: &'a str,
    pub reason: &'a str,
    pub at: Timestamp,
}

#[expect(
    async_fn_in_trait,
    reason = "implemented by `Store` alone and called on it directly, so its futures' `Send` is known"
)]
pub trait ElevationStore {
    async fn create_elevation(&self, e: &Elevation) -> Result<(), StoreError>;
    async fn elevation(&self, id: &ElevationId) -> Result<Option<Elevation>, StoreError>;
    /// The agent's elevations, oldest first; with `active_only`, those
    /// active at `now` alone.
    async fn elevations(
        &self,
        agent: &AgentId,
        active_only: bool,
        now: Timestamp,
    ) -> Result<Vec<Elevation>, StoreError>;
    /// End a pending or active (unexpired) elevation now; the ended row, or
    /// `None` when it was not open (another replica, or a vote, came
    /// first). Its pending approval is the caller's to withdraw.
    async fn end_elevation(
        &self,
        id: &ElevationId,
        end: EndElevation<'_>,
    ) -> Result<Option<Elevation>, StoreError>;
    /// Names of the agent's elevations active at `now`.
    async fn active_elevations(
        &self,
        agent: &AgentId,
        now: Timestamp,
    ) -> Result<Vec<String>, StoreError>;
    /// Start a pending elevation now (on approval); returns it, or `None`
    /// when it was no longer pending (ended meanwhile).
    async fn activate_elevation(
        &self,
        id: &ElevationId,
        expires_at: Timestamp,
    ) -> Result<Option<Elevation>, StoreError>;
    async fn deny_elevation(&self, id: &ElevationId) -> Result<(), StoreError>;
}

/// The columns [`from_row`] reads.
macro_rules! columns {
    () => {
        "id, agent_id, name, reason, duration_secs, state, approval_id, requested_by, created_at, expires_at, \
         ended_at, ended_by, end_reason"
    };
}

fn parse_state(s: &str) -> Result<ElevationState, StoreError> {
    match s {
        "pending" => Ok(ElevationState::Pending),
        "active" => Ok(ElevationState::Active),
        "ended" => Ok(ElevationState::Ended),
        "denied" => Ok(ElevationState::Denied),
        // `expired` is never stored (see `ElevationState::Expired`).
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
        state = ElevationState::Expired;
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
        ended_at: r
            .try_get::<Option<Stamp>, _>("ended_at")?
            .map(Timestamp::from),
        ended_by: r.try_get("ended_by")?,
        end_reason: r.try_get("end_reason")?,
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
            let row = sqlx::query(concat!(
                "SELECT ",
                columns!(),
                " FROM elevations WHERE id = $1"
            ))
            .bind(id)
            .fetch_optional(pool)
            .await?;
            row.as_ref().map(from_row).transpose()
        })
    }

    async fn elevations(
        &self,
        agent: &AgentId,
        active_only: bool,
        now: Timestamp,
    ) -> Result<Vec<Elevation>, StoreError> {
        with_pool!(self, |pool| {
            let rows = sqlx::query(concat!(
                "SELECT ",
                columns!(),
                " FROM elevations WHERE agent_id = $1 \
                 AND (NOT $2 OR (state = 'active' AND expires_at > $3)) ORDER BY created_at, id"
            ))
            .bind(agent)
            .bind(active_only)
            .bind(Stamp(now))
            .fetch_all(pool)
            .await?;
            rows.iter().map(from_row).collect()
        })
    }

    async fn end_elevation(
        &self,
        id: &ElevationId,
        end: EndElevation<'_>,
    ) -> Result<Option<Elevation>, StoreError> {
        // Conditional: only a pending one, or an active one not yet past
        // its `expires_at`, ends; a second replica's update matches no row.
        let done = with_pool!(self, |pool| {
            let done = sqlx::query(
                "UPDATE elevations SET state = 'ended', ended_at = $1, ended_by = $2, end_reason = $3 \
                 WHERE id = $4 AND (state = 'pending' OR (state = 'active' AND expires_at > $1))",
            )
            .bind(Stamp(end.at))
            .bind(end.by)
            .bind(end.reason)
            .bind(id)
            .execute(pool)
            .await?;
            Ok::<bool, StoreError>(done.rows_affected() == 1)
        })?;
        if done {
            self.elevation(id).await
        } else {
            Ok(None)
        }
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
        let done = with_pool!(self, |pool| {
            let done = sqlx::query(
                "UPDATE elevations SET state = 'active', expires_at = $1 WHERE id = $2 AND state = 'pending'",
            )
            .bind(Stamp(expires_at))
            .bind(id)
            .execute(pool)
            .await?;
            Ok::<bool, StoreError>(done.rows_affected() == 1)
        })?;
        if done {
            self.elevation(id).await
        } else {
            Ok(None)
        }
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
