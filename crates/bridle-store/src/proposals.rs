//! Change control: proposed manifest versions waiting for a `kind: change`
//! approval. The version in force keeps deciding until a proposal is
//! activated; a new agent's first proposal holds its id with a `proposed`
//! placeholder row, which is deleted (freeing the id) if it is rejected or
//! expires.

use bridle_core::Manifest;
use bridle_core::id::{AgentId, ApprovalId, PrincipalId};
use jiff::Timestamp;
use sqlx::Row;

use crate::BeginWrite as _;
use crate::approvals::{NewApproval, insert_approval};
use crate::registry::{
    AgentRow, agent_columns, from_row as agent_from_row, lock_agent, write_agent,
};
use crate::time::{Stamp, now};
use crate::{Store, StoreError, with_pool};

/// Where a proposal stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProposalState {
    /// Waiting for its approval.
    Pending,
    /// Approved: it became the version in force.
    Activated,
    /// Its approval was denied.
    Rejected,
    /// Its approval expired undecided.
    Expired,
    /// A later apply replaced it before it was decided.
    Superseded,
}

impl ProposalState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Activated => "activated",
            Self::Rejected => "rejected",
            Self::Expired => "expired",
            Self::Superseded => "superseded",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Pending,
            Self::Activated,
            Self::Rejected,
            Self::Expired,
            Self::Superseded,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// A proposed version as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Proposal {
    pub agent: AgentId,
    pub version: i64,
    /// The version in force when it was proposed (0 for a new agent).
    pub base_version: i64,
    pub state: ProposalState,
    pub manifest: serde_json::Value,
    pub source: String,
    pub changes: serde_json::Value,
    pub submitted_by: PrincipalId,
    pub approval_id: ApprovalId,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    pub decided_at: Option<Timestamp>,
}

#[expect(
    async_fn_in_trait,
    reason = "implemented by `Store` alone and called on it directly, so its futures' `Send` is known"
)]
pub trait ProposalStore {
    /// In one transaction: supersede the agent's pending proposal (its
    /// approval is cancelled), take the next version number, insert the
    /// approval and the proposal, and for a new agent the `proposed`
    /// placeholder row. `Conflict` when the agent is retired, or when it is
    /// new and its id was taken meanwhile. `approval.expires_at` is the
    /// proposal's expiry too.
    async fn propose(
        &self,
        m: &Manifest,
        source: &str,
        changes: &serde_json::Value,
        submitted_by: &PrincipalId,
        approval: &NewApproval,
    ) -> Result<Proposal, StoreError>;
    /// Every proposal of the agent, oldest first.
    async fn proposals(&self, agent: &AgentId) -> Result<Vec<Proposal>, StoreError>;
    async fn proposal_for_approval(
        &self,
        approval_id: &ApprovalId,
    ) -> Result<Option<Proposal>, StoreError>;
    /// Make a pending proposal the version in force, in one transaction:
    /// the version is recorded (with its changes and submitter), the agent
    /// row takes its manifest (a `proposed` agent becomes `active`), the
    /// proposal is `activated`. `Conflict` when it is no longer pending, or
    /// when another version came into force since it was proposed.
    /// `m` is the proposal's manifest, parsed (and compiled) by the caller.
    async fn activate_proposal(&self, m: &Manifest, version: i64) -> Result<AgentRow, StoreError>;
    /// Close a pending proposal as `rejected` or `expired`; a new agent's
    /// placeholder row goes with it. False when it was not pending.
    async fn discard_proposal(
        &self,
        agent: &AgentId,
        version: i64,
        state: ProposalState,
    ) -> Result<bool, StoreError>;
    /// Pending proposals whose time has passed at `now`.
    async fn overdue_proposals(&self, now: Timestamp) -> Result<Vec<Proposal>, StoreError>;
}

macro_rules! columns {
    () => {
        "agent_id, version, base_version, state, manifest, source, changes, submitted_by, \
         approval_id, created_at, expires_at, decided_at"
    };
}

fn from_row<R>(row: &R) -> Result<Proposal, StoreError>
where
    R: Row,
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Option<String>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> i64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    let corrupt = |what: &str| StoreError::Corrupt(format!("manifest proposal {what}"));
    let state: String = row.try_get("state")?;
    let manifest: String = row.try_get("manifest")?;
    let changes: String = row.try_get("changes")?;
    Ok(Proposal {
        agent: row.try_get("agent_id")?,
        version: row.try_get("version")?,
        base_version: row.try_get("base_version")?,
        state: ProposalState::parse(&state).ok_or_else(|| corrupt("state"))?,
        manifest: serde_json::from_str(&manifest).map_err(|_| corrupt("manifest"))?,
        source: row.try_get("source")?,
        changes: serde_json::from_str(&changes).map_err(|_| corrupt("changes"))?,
        submitted_by: row.try_get("submitted_by")?,
        approval_id: row.try_get("approval_id")?,
        created_at: row.try_get::<Stamp, _>("created_at")?.into(),
        expires_at: row.try_get::<Stamp, _>("expires_at")?.into(),
        decided_at: row
            .try_get::<Option<Stamp>, _>("decided_at")?
            .map(Timestamp::from),
    })
}

/// Inside a transaction: close the agent's pending proposals as
/// `superseded` and cancel their approvals.
macro_rules! supersede_pending {
    ($tx:ident, $id:expr, $now:expr) => {
        sqlx::query(
            "UPDATE approvals SET state = 'cancelled', decided_at = $2 WHERE state = 'pending' AND id IN \
             (SELECT approval_id FROM manifest_proposals WHERE agent_id = $1 AND state = 'pending')",
        )
        .bind($id)
        .bind($now)
        .execute(&mut *$tx)
        .await?;
        sqlx::query(
            "UPDATE manifest_proposals SET state = 'superseded', decided_at = $2 \
             WHERE agent_id = $1 AND state = 'pending'",
        )
        .bind($id)
        .bind($now)
        .execute(&mut *$tx)
        .await?;
    };
}
pub(crate) use supersede_pending;

/// Inside a transaction: the next version number of agent `$id`, above
/// every version in force, recorded or proposed (a rejected proposal's
/// number is never reused, so history never shows one number twice).
macro_rules! next_version {
    ($tx:ident, $id:expr) => {{
        let row = sqlx::query(
            "SELECT COALESCE(MAX(v), 0) AS top FROM ( \
             SELECT version AS v FROM agents WHERE id = $1 \
             UNION ALL SELECT version AS v FROM agent_versions WHERE agent_id = $1 \
             UNION ALL SELECT version AS v FROM manifest_proposals WHERE agent_id = $1) AS all_versions",
        )
        .bind($id)
        .fetch_one(&mut *$tx)
        .await?;
        let top: i64 = row.try_get("top")?;
        top + 1
    }};
}
pub(crate) use next_version;

impl ProposalStore for Store {
    async fn propose(
        &self,
        m: &Manifest,
        source: &str,
        changes: &serde_json::Value,
        submitted_by: &PrincipalId,
        approval: &NewApproval,
    ) -> Result<Proposal, StoreError> {
        let id = m.agent.as_str();
        let manifest = serde_json::to_string(&m.document)
            .map_err(|e| StoreError::Corrupt(format!("manifest json: {e}")))?;
        let approvers = serde_json::Value::from(approval.approvers.clone()).to_string();
        with_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let now = Stamp(now());
            // Locked (when it exists) so concurrent applies and proposals
            // of one agent serialize on both backends.
            let current = lock_agent!(tx, id);
            supersede_pending!(tx, id, &now);
            let version = next_version!(tx, id);
            let base_version = match current {
                Some(row) => {
                    let state: String = row.try_get("state")?;
                    match state.as_str() {
                        "retired" => {
                            return Err(StoreError::Conflict(format!("agent `{id}` is retired")));
                        }
                        // A new agent's earlier proposal, now superseded:
                        // its placeholder takes the new proposal's text.
                        "proposed" => {
                            write_agent!(
                                tx,
                                "UPDATE agents SET version = $1, owner = $2, environment = $3, expires = $4, \
                                 manifest = $5, source = $6, updated_at = $7 WHERE id = $8",
                                m,
                                &manifest,
                                source,
                                version,
                                &now
                            );
                            0
                        }
                        _ => row.try_get::<i64, _>("version")?,
                    }
                }
                None => {
                    write_agent!(
                        tx,
                        "INSERT INTO agents (version, owner, environment, expires, manifest, source, \
                         last_review_at, created_at, updated_at, id, state) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $7, $8, 'proposed')",
                        m,
                        &manifest,
                        source,
                        version,
                        &now
                    );
                    0
                }
            };
            // The approval names the version it would bring into force.
            let mut approval = approval.clone();
            if let Some(args) = approval.args.as_object_mut() {
                args.insert("version".into(), version.into());
            }
            insert_approval!(tx, approval, &approvers, &now);
            sqlx::query(concat!(
                "INSERT INTO manifest_proposals (",
                columns!(),
                ") VALUES ($1, $2, $3, 'pending', $4, $5, $6, $7, $8, $9, $10, NULL)"
            ))
            .bind(id)
            .bind(version)
            .bind(base_version)
            .bind(&manifest)
            .bind(source)
            .bind(changes.to_string())
            .bind(submitted_by)
            .bind(&approval.id)
            .bind(now)
            .bind(Stamp(approval.expires_at))
            .execute(&mut *tx)
            .await?;
            let row = sqlx::query(concat!(
                "SELECT ",
                columns!(),
                " FROM manifest_proposals WHERE agent_id = $1 AND version = $2"
            ))
            .bind(id)
            .bind(version)
            .fetch_one(&mut *tx)
            .await?;
            tx.commit().await?;
            from_row(&row)
        })
    }

    async fn proposals(&self, agent: &AgentId) -> Result<Vec<Proposal>, StoreError> {
        with_pool!(self, |pool| {
            let rows = sqlx::query(concat!(
                "SELECT ",
                columns!(),
                " FROM manifest_proposals WHERE agent_id = $1 ORDER BY version"
            ))
            .bind(agent.as_str())
            .fetch_all(pool)
            .await?;
            rows.iter().map(from_row).collect()
        })
    }

    async fn proposal_for_approval(
        &self,
        approval_id: &ApprovalId,
    ) -> Result<Option<Proposal>, StoreError> {
        with_pool!(self, |pool| {
            let row = sqlx::query(concat!(
                "SELECT ",
                columns!(),
                " FROM manifest_proposals WHERE approval_id = $1"
            ))
            .bind(approval_id)
            .fetch_optional(pool)
            .await?;
            row.as_ref().map(from_row).transpose()
        })
    }

    async fn activate_proposal(&self, m: &Manifest, version: i64) -> Result<AgentRow, StoreError> {
        let id = m.agent.as_str();
        with_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let now = Stamp(now());
            let current = lock_agent!(tx, id);
            let proposal = sqlx::query(concat!(
                "SELECT ",
                columns!(),
                " FROM manifest_proposals WHERE agent_id = $1 AND version = $2"
            ))
            .bind(id)
            .bind(version)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("{id} version {version}")))?;
            let p = from_row(&proposal)?;
            if p.state != ProposalState::Pending {
                return Err(StoreError::Conflict(format!(
                    "the proposal of `{id}` version {version} is {}",
                    p.state.as_str()
                )));
            }
            let current = current.ok_or_else(|| StoreError::NotFound(id.to_owned()))?;
            let state: String = current.try_get("state")?;
            let in_force: i64 = current.try_get("version")?;
            let base_holds = match state.as_str() {
                "proposed" => p.base_version == 0,
                "retired" => false,
                _ => p.base_version == in_force,
            };
            if !base_holds {
                return Err(StoreError::Conflict(format!(
                    "`{id}` changed since version {version} was proposed against version {}",
                    p.base_version
                )));
            }
            write_agent!(
                tx,
                "UPDATE agents SET version = $1, owner = $2, environment = $3, expires = $4, manifest = $5, \
                 source = $6, updated_at = $7, \
                 state = CASE WHEN state = 'proposed' THEN 'active' ELSE state END, \
                 last_review_at = CASE WHEN state = 'proposed' THEN $7 ELSE last_review_at END \
                 WHERE id = $8",
                m,
                p.manifest.to_string(),
                &p.source,
                version,
                &now
            );
            sqlx::query(
                "INSERT INTO agent_versions (agent_id, version, manifest, source, created_by, created_at, changes) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(id)
            .bind(version)
            .bind(p.manifest.to_string())
            .bind(&p.source)
            .bind(&p.submitted_by)
            .bind(now)
            .bind(p.changes.to_string())
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "UPDATE manifest_proposals SET state = 'activated', decided_at = $3 \
                 WHERE agent_id = $1 AND version = $2",
            )
            .bind(id)
            .bind(version)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            let row = sqlx::query(concat!(
                "SELECT ",
                agent_columns!(),
                " FROM agents WHERE id = $1"
            ))
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
            tx.commit().await?;
            agent_from_row(&row)
        })
    }

    async fn discard_proposal(
        &self,
        agent: &AgentId,
        version: i64,
        state: ProposalState,
    ) -> Result<bool, StoreError> {
        let id = agent.as_str();
        with_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let now = Stamp(now());
            let done = sqlx::query(
                "UPDATE manifest_proposals SET state = $3, decided_at = $4 \
                 WHERE agent_id = $1 AND version = $2 AND state = 'pending'",
            )
            .bind(id)
            .bind(version)
            .bind(state.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 0 {
                tx.rollback().await?;
                return Ok(false);
            }
            // A new agent that never came into force: its id is free again.
            sqlx::query("DELETE FROM agents WHERE id = $1 AND state = 'proposed' AND version = $2")
                .bind(id)
                .bind(version)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(true)
        })
    }

    async fn overdue_proposals(&self, now: Timestamp) -> Result<Vec<Proposal>, StoreError> {
        with_pool!(self, |pool| {
            let rows = sqlx::query(concat!(
                "SELECT ",
                columns!(),
                " FROM manifest_proposals WHERE state = 'pending' AND expires_at <= $1 ORDER BY created_at"
            ))
            .bind(Stamp(now))
            .fetch_all(pool)
            .await?;
            rows.iter().map(from_row).collect()
        })
    }
}
