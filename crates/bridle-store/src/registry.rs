//! The agent registry: one row per agent (current version and lifecycle
//! state) and every past version of its manifest.

use bridle_core::Manifest;
use bridle_core::engine::AgentState;
use bridle_core::id::{AgentId, PrincipalId};
use jiff::Timestamp;
use jiff::civil::Date;
use sqlx::Row;

use crate::BeginWrite as _;
use crate::time::{Stamp, now};
use crate::{Store, StoreError, with_pool};

/// An agent as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentRow {
    pub id: AgentId,
    pub version: i64,
    pub state: AgentState,
    pub state_reason: Option<String>,
    /// Who made the last lifecycle change (its audit actor), if recorded.
    pub state_by: Option<StateBy>,
    pub owner: PrincipalId,
    pub environment: String,
    /// The manifest's `expires` (a date).
    pub expires: Date,
    pub manifest: serde_json::Value,
    pub source: String,
    pub last_review_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// Who changed an agent's lifecycle state: the audit actor
/// (`principal:ID`, `system`) and whether it acted with the `admin` role.
/// A suspension made by an admin is lifted only by an admin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateBy {
    pub actor: String,
    pub admin: bool,
}

/// One past (or the current) version of an agent's manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentVersion {
    pub version: i64,
    pub manifest: serde_json::Value,
    /// The manifest text exactly as submitted.
    pub source: String,
    /// What this version changed against the one before it, as classified
    /// when it was applied (`None` for versions from before that was kept).
    pub changes: Option<serde_json::Value>,
    /// The principal who submitted it.
    pub created_by: PrincipalId,
    pub created_at: Timestamp,
}

#[expect(
    async_fn_in_trait,
    reason = "implemented by `Store` alone and called on it directly, so its futures' `Send` is known"
)]
pub trait RegistryRead {
    async fn agent(&self, id: &AgentId) -> Result<Option<AgentRow>, StoreError>;
    async fn agents(&self) -> Result<Vec<AgentRow>, StoreError>;
    /// Every agent's id, in order: what a walk over the whole registry
    /// holds at once (each record is read when its turn comes).
    async fn agent_ids(&self) -> Result<Vec<AgentId>, StoreError>;
    /// Every version of the agent, oldest first.
    async fn agent_versions(&self, id: &AgentId) -> Result<Vec<AgentVersion>, StoreError>;
}

#[expect(
    async_fn_in_trait,
    reason = "implemented by `Store` alone and called on it directly, so its futures' `Send` is known"
)]
pub trait RegistryWrite {
    /// Create the agent (version 1) or store a new version. Returns the row
    /// and whether it was created. `Conflict` when the agent is retired.
    /// `changes` is what this version changes against the one in force
    /// (kept with the version, JSON).
    async fn apply_manifest(
        &self,
        m: &Manifest,
        source: &str,
        by: &PrincipalId,
        changes: &serde_json::Value,
    ) -> Result<(AgentRow, bool), StoreError>;
    /// Move to `state`. Retired is terminal: `Conflict` on any change after it.
    async fn set_state(
        &self,
        id: &AgentId,
        state: AgentState,
        reason: &str,
        by: &StateBy,
    ) -> Result<AgentRow, StoreError>;
    /// Suspend an active agent only if its record is still `seen` (same
    /// `updated_at` and `last_review_at`: no apply, review or lifecycle
    /// change since): `None`
    /// when anything changed, so of several replicas acting on one reading
    /// only one suspends, and never over a newer state.
    async fn suspend_unchanged(
        &self,
        seen: &AgentRow,
        reason: &str,
        by: &StateBy,
    ) -> Result<Option<AgentRow>, StoreError>;
    async fn record_review(&self, id: &AgentId) -> Result<AgentRow, StoreError>;
    /// Retire in one transaction: state `retired` (terminal), every
    /// credential and token revoked, pending approvals cancelled, elevations
    /// ended. The evidence (versions, audit, approvals) stays.
    async fn retire(&self, id: &AgentId, reason: &str) -> Result<AgentRow, StoreError>;
}

macro_rules! columns {
    () => {
        "id, version, state, state_reason, state_by, state_by_admin, owner, environment, expires, \
         manifest, source, last_review_at, created_at, updated_at"
    };
}

pub(crate) use columns as agent_columns;

/// Inside a transaction `$tx`: run `$sql`, an INSERT or UPDATE of `agents`
/// whose parameters are $1 version, $2 owner, $3 environment, $4 expires,
/// $5 manifest JSON, $6 source, $7 now and $8 the id, for manifest `$m`.
macro_rules! write_agent {
    ($tx:ident, $sql:expr, $m:expr, $manifest:expr, $source:expr, $version:expr, $now:expr) => {
        sqlx::query($sql)
            .bind($version)
            .bind($m.owner.as_str())
            .bind($m.environment.as_str())
            .bind($m.expires.to_string())
            .bind($manifest)
            .bind($source)
            .bind($now)
            .bind($m.agent.as_str())
            .execute(&mut *$tx)
            .await?
    };
}
pub(crate) use write_agent;

fn parse_state(s: &str) -> Result<AgentState, StoreError> {
    match s {
        "active" => Ok(AgentState::Active),
        "suspended" => Ok(AgentState::Suspended),
        "retired" => Ok(AgentState::Retired),
        "proposed" => Ok(AgentState::Proposed),
        other => Err(StoreError::Corrupt(format!("agent state `{other}`"))),
    }
}

pub(crate) fn from_row<R>(row: &R) -> Result<AgentRow, StoreError>
where
    R: Row,
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Option<String>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> i64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> bool: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    let corrupt =
        |what: &str, e: &dyn std::fmt::Display| StoreError::Corrupt(format!("agent {what}: {e}"));
    let state: String = row.try_get("state")?;
    let manifest: String = row.try_get("manifest")?;
    let state_by: Option<String> = row.try_get("state_by")?;
    let state_by_admin: bool = row.try_get("state_by_admin")?;
    let expires: String = row.try_get("expires")?;
    Ok(AgentRow {
        id: row.try_get("id")?,
        version: row.try_get("version")?,
        state: parse_state(&state)?,
        state_reason: row.try_get("state_reason")?,
        state_by: state_by.map(|actor| StateBy {
            actor,
            admin: state_by_admin,
        }),
        owner: row.try_get("owner")?,
        environment: row.try_get("environment")?,
        expires: expires.parse().map_err(|e| corrupt("expires", &e))?,
        manifest: serde_json::from_str(&manifest).map_err(|e| corrupt("manifest", &e))?,
        source: row.try_get("source")?,
        last_review_at: row
            .try_get::<Option<Stamp>, _>("last_review_at")?
            .map(Timestamp::from),
        created_at: row.try_get::<Stamp, _>("created_at")?.into(),
        updated_at: row.try_get::<Stamp, _>("updated_at")?.into(),
    })
}

impl RegistryRead for Store {
    async fn agent(&self, id: &AgentId) -> Result<Option<AgentRow>, StoreError> {
        with_pool!(self, |pool| {
            let row = sqlx::query(concat!("SELECT ", columns!(), " FROM agents WHERE id = $1"))
                .bind(id.as_str())
                .fetch_optional(pool)
                .await?;
            row.as_ref().map(from_row).transpose()
        })
    }

    async fn agents(&self) -> Result<Vec<AgentRow>, StoreError> {
        with_pool!(self, |pool| {
            let rows = sqlx::query(concat!("SELECT ", columns!(), " FROM agents ORDER BY id"))
                .fetch_all(pool)
                .await?;
            rows.iter().map(from_row).collect()
        })
    }

    async fn agent_ids(&self) -> Result<Vec<AgentId>, StoreError> {
        with_pool!(self, |pool| {
            Ok(sqlx::query_scalar("SELECT id FROM agents ORDER BY id")
                .fetch_all(pool)
                .await?)
        })
    }

    async fn agent_versions(&self, id: &AgentId) -> Result<Vec<AgentVersion>, StoreError> {
        with_pool!(self, |pool| {
            let rows = sqlx::query(
                "SELECT version, manifest, source, changes, created_by, created_at FROM agent_versions \
                 WHERE agent_id = $1 ORDER BY version",
            )
            .bind(id.as_str())
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|r| {
                    let manifest: String = r.try_get("manifest")?;
                    let changes: Option<String> = r.try_get("changes")?;
                    let corrupt = |what: &str, e: serde_json::Error| {
                        StoreError::Corrupt(format!("agent version {what}: {e}"))
                    };
                    Ok(AgentVersion {
                        version: r.try_get("version")?,
                        manifest: serde_json::from_str(&manifest)
                            .map_err(|e| corrupt("manifest", e))?,
                        source: r.try_get("source")?,
                        changes: changes
                            .map(|c| serde_json::from_str(&c))
                            .transpose()
                            .map_err(|e| corrupt("changes", e))?,
                        created_by: r.try_get("created_by")?,
                        created_at: r.try_get::<Stamp, _>("created_at")?.into(),
                    })
                })
                .collect()
        })
    }
}

/// Inside a transaction: lock the agent's row (a no-op update, so concurrent
/// changes serialize on both backends), then fail with `NotFound` if it does
/// not exist or `Conflict` if it is retired (terminal).
macro_rules! lock_live_agent {
    ($tx:ident, $id:ident) => {
        let row =
            lock_agent!($tx, $id.as_str()).ok_or_else(|| StoreError::NotFound($id.to_string()))?;
        let current: String = row.try_get("state")?;
        if parse_state(&current)? == AgentState::Retired {
            return Err(StoreError::Conflict(format!("agent `{}` is retired", $id)));
        }
    };
}

/// Inside a transaction: lock agent `$id`'s row (a no-op update), so
/// concurrent applies, proposals and lifecycle changes of one agent
/// serialize on both backends, and read its `version` and `state` (`None`
/// when it does not exist).
macro_rules! lock_agent {
    ($tx:ident, $id:expr) => {{
        sqlx::query("UPDATE agents SET version = version WHERE id = $1")
            .bind($id)
            .execute(&mut *$tx)
            .await?;
        sqlx::query("SELECT version, state FROM agents WHERE id = $1")
            .bind($id)
            .fetch_optional(&mut *$tx)
            .await?
    }};
}
pub(crate) use lock_agent;

impl RegistryWrite for Store {
    async fn apply_manifest(
        &self,
        m: &Manifest,
        source: &str,
        by: &PrincipalId,
        changes: &serde_json::Value,
    ) -> Result<(AgentRow, bool), StoreError> {
        let id = m.agent.as_str();
        let manifest = serde_json::to_string(&m.document)
            .map_err(|e| StoreError::Corrupt(format!("manifest json: {e}")))?;
        let changes = changes.to_string();
        with_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let now = Stamp(now());
            // Locked first, so concurrent applies of one agent get distinct
            // versions on both backends.
            let current = lock_agent!(tx, id);
            // Whatever was proposed for this agent is replaced by what is
            // applied now.
            crate::proposals::supersede_pending!(tx, id, &now);
            let version = crate::proposals::next_version!(tx, id);
            let created = match current {
                Some(row) => {
                    let state: String = row.try_get("state")?;
                    let state = parse_state(&state)?;
                    if state == AgentState::Retired {
                        return Err(StoreError::Conflict(format!("agent `{id}` is retired")));
                    }
                    // A new agent's placeholder (its first version was only
                    // proposed) comes into force: this is its creation.
                    let proposed = state == AgentState::Proposed;
                    write_agent!(
                        tx,
                        "UPDATE agents SET version = $1, owner = $2, environment = $3, expires = $4, \
                         manifest = $5, source = $6, updated_at = $7, \
                         state = CASE WHEN state = 'proposed' THEN 'active' ELSE state END, \
                         created_at = CASE WHEN state = 'proposed' THEN $7 ELSE created_at END, \
                         last_review_at = CASE WHEN state = 'proposed' THEN $7 ELSE last_review_at END \
                         WHERE id = $8",
                        m,
                        &manifest,
                        source,
                        version,
                        &now
                    );
                    proposed
                }
                None => {
                    write_agent!(
                        tx,
                        "INSERT INTO agents (version, owner, environment, expires, manifest, source, \
                         last_review_at, created_at, updated_at, id, state) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $7, $8, 'active')",
                        m,
                        &manifest,
                        source,
                        version,
                        &now
                    );
                    true
                }
            };
            sqlx::query(
                "INSERT INTO agent_versions (agent_id, version, manifest, source, created_by, created_at, changes) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(id)
            .bind(version)
            .bind(&manifest)
            .bind(source)
            .bind(by)
            .bind(now)
            .bind(&changes)
            .execute(&mut *tx)
            .await?;
            let row = sqlx::query(concat!("SELECT ", columns!(), " FROM agents WHERE id = $1"))
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok((from_row(&row)?, created))
        })
    }

    async fn set_state(
        &self,
        id: &AgentId,
        state: AgentState,
        reason: &str,
        by: &StateBy,
    ) -> Result<AgentRow, StoreError> {
        with_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            lock_live_agent!(tx, id);
            sqlx::query(
                "UPDATE agents SET state = $1, state_reason = $2, state_by = $5, state_by_admin = $6, \
                 updated_at = $3 WHERE id = $4",
            )
            .bind(state.as_str())
            .bind(reason)
            .bind(Stamp(now()))
            .bind(id.as_str())
            .bind(&by.actor)
            .bind(by.admin)
            .execute(&mut *tx)
            .await?;
            let row = sqlx::query(concat!("SELECT ", columns!(), " FROM agents WHERE id = $1"))
                .bind(id.as_str())
                .fetch_one(&mut *tx)
                .await?;
            tx.commit().await?;
            from_row(&row)
        })
    }

    async fn suspend_unchanged(
        &self,
        seen: &AgentRow,
        reason: &str,
        by: &StateBy,
    ) -> Result<Option<AgentRow>, StoreError> {
        with_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let changed = sqlx::query(
                "UPDATE agents SET state = 'suspended', state_reason = $1, state_by = $2, state_by_admin = $3, \
                 updated_at = $4 WHERE id = $5 AND state = 'active' AND updated_at = $6 \
                 AND last_review_at IS NOT DISTINCT FROM $7",
            )
            .bind(reason)
            .bind(&by.actor)
            .bind(by.admin)
            .bind(Stamp(now()))
            .bind(seen.id.as_str())
            .bind(Stamp(seen.updated_at))
            .bind(seen.last_review_at.map(Stamp))
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if changed == 0 {
                return Ok(None);
            }
            let row = sqlx::query(concat!("SELECT ", columns!(), " FROM agents WHERE id = $1"))
                .bind(seen.id.as_str())
                .fetch_one(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(Some(from_row(&row)?))
        })
    }

    async fn retire(&self, id: &AgentId, reason: &str) -> Result<AgentRow, StoreError> {
        with_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let now = Stamp(now());
            lock_live_agent!(tx, id);
            for sql in [
                "UPDATE agents SET state = 'retired', state_reason = $2, updated_at = $1 WHERE id = $3",
                "UPDATE agent_credentials SET revoked_at = $1 WHERE agent_id = $3 AND revoked_at IS NULL AND $2 = $2",
                "UPDATE tokens SET revoked_at = $1 WHERE agent_id = $3 AND revoked_at IS NULL AND $2 = $2",
                "UPDATE approvals SET state = 'cancelled', decided_at = $1 WHERE agent_id = $3 AND state IN ('pending', 'approved') AND $2 = $2",
                "UPDATE elevations SET state = 'ended', ended_at = $1 WHERE agent_id = $3 AND state IN ('pending', 'active') AND $2 = $2",
            ] {
                sqlx::query(sql)
                    .bind(now)
                    .bind(reason)
                    .bind(id.as_str())
                    .execute(&mut *tx)
                    .await?;
            }
            let row = sqlx::query(concat!("SELECT ", columns!(), " FROM agents WHERE id = $1"))
                .bind(id.as_str())
                .fetch_one(&mut *tx)
                .await?;
            tx.commit().await?;
            from_row(&row)
        })
    }

    async fn record_review(&self, id: &AgentId) -> Result<AgentRow, StoreError> {
        with_pool!(self, |pool| {
            let done = sqlx::query("UPDATE agents SET last_review_at = $1 WHERE id = $2")
                .bind(Stamp(now()))
                .bind(id.as_str())
                .execute(pool)
                .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound(id.to_string()));
            }
            let row = sqlx::query(concat!("SELECT ", columns!(), " FROM agents WHERE id = $1"))
                .bind(id.as_str())
                .fetch_one(pool)
                .await?;
            from_row(&row)
        })
    }
}
