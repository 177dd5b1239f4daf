//! Human approvals and their votes.

use bridle_core::id::{AgentId, ApprovalId, ElevationId, PrincipalId};
use jiff::Timestamp;
use sqlx::Row;

use crate::BeginWrite as _;
use crate::time::{Stamp, now, stored};
use crate::{Store, StoreError, with_pool};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ApprovalKind {
    Action,
    Elevation,
    /// A proposed manifest change (change control): approving it makes the
    /// proposed version the version in force.
    Change,
}

impl ApprovalKind {
    pub const ALL: [Self; 3] = [Self::Action, Self::Elevation, Self::Change];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Action => "action",
            Self::Elevation => "elevation",
            Self::Change => "change",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApprovalState {
    Pending,
    Approved,
    Denied,
    Expired,
    Consumed,
    Cancelled,
}

impl ApprovalState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Denied => "denied",
            Self::Expired => "expired",
            Self::Consumed => "consumed",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Pending,
            Self::Approved,
            Self::Denied,
            Self::Expired,
            Self::Consumed,
            Self::Cancelled,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vote {
    pub principal: PrincipalId,
    pub vote: String,
    pub comment: Option<String>,
    pub at: Timestamp,
}

/// An approval as stored (the server's `views::approval` is its wire form).
#[derive(Debug, Clone, PartialEq)]
pub struct Approval {
    pub id: ApprovalId,
    pub kind: ApprovalKind,
    pub agent: AgentId,
    /// The approval key (a hash of the request it binds to).
    pub key: String,
    pub action: String,
    pub args: serde_json::Value,
    pub resource: Option<String>,
    /// As stored; `expired` is derived by the caller when `expires_at` passed.
    pub state: ApprovalState,
    pub approvers: Vec<String>,
    pub min_approvals: i64,
    pub allow_owner: bool,
    pub owner: PrincipalId,
    pub elevation_id: Option<ElevationId>,
    pub votes: Vec<Vote>,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

impl Approval {
    /// Who submitted a `kind: change` approval's manifest change (it may
    /// never approve it); `None` for other kinds.
    pub fn change_submitter(&self) -> Option<&str> {
        match self.kind {
            ApprovalKind::Change => self.args.get("submitted_by").and_then(|v| v.as_str()),
            ApprovalKind::Action | ApprovalKind::Elevation => None,
        }
    }
}

/// The approvals of one kind pending at an instant (for metrics): how many,
/// and when the oldest was created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingApprovals {
    pub kind: ApprovalKind,
    pub count: u64,
    pub oldest: Timestamp,
}

#[derive(Debug, Clone)]
pub struct NewApproval {
    pub id: ApprovalId,
    pub kind: ApprovalKind,
    pub agent: AgentId,
    pub key: String,
    pub action: String,
    pub args: serde_json::Value,
    pub resource: Option<String>,
    pub approvers: Vec<String>,
    pub min_approvals: i64,
    pub allow_owner: bool,
    pub owner: PrincipalId,
    pub elevation_id: Option<ElevationId>,
    pub expires_at: Timestamp,
}

#[expect(
    async_fn_in_trait,
    reason = "implemented by `Store` alone and called on it directly, so its futures' `Send` is known"
)]
pub trait ApprovalStore {
    /// The newest approval for `key` that is still in force at `now`
    /// (pending, approved or denied, not expired).
    async fn approval_for_key(
        &self,
        key: &str,
        now: Timestamp,
    ) -> Result<Option<Approval>, StoreError>;
    /// Insert unless a pending one for the same key exists; returns the one in force.
    async fn create_approval(&self, a: &NewApproval) -> Result<(Approval, bool), StoreError>;
    async fn approval(&self, id: &ApprovalId) -> Result<Option<Approval>, StoreError>;
    async fn approvals(
        &self,
        state: Option<ApprovalState>,
        now: Timestamp,
    ) -> Result<Vec<Approval>, StoreError>;
    /// Record a vote and move the approval to approved/denied when decided.
    /// `Conflict` when it is not pending or the principal already voted.
    async fn vote(
        &self,
        id: &ApprovalId,
        principal: &PrincipalId,
        approve: bool,
        comment: Option<&str>,
        now: Timestamp,
    ) -> Result<Approval, StoreError>;
    /// Consume a granted approval once; false if someone else did first.
    async fn consume_approval(&self, id: &ApprovalId) -> Result<bool, StoreError>;
    /// Give back an approval this caller consumed for an action that then
    /// did not stand (its usage broke a limit at commit): approved again.
    async fn restore_approval(&self, id: &ApprovalId) -> Result<(), StoreError>;
    /// Withdraw a pending approval this caller created for a request that
    /// then did not stand (its rate limit was broken at commit), so nobody
    /// is asked to approve what was refused: cancelled, if still pending.
    async fn withdraw_approval(&self, id: &ApprovalId, now: Timestamp) -> Result<(), StoreError>;
    /// The approvals pending at `now` (not past `expires_at`), per kind
    /// that has any: one aggregate query, whatever their number.
    async fn pending_approvals(&self, now: Timestamp) -> Result<Vec<PendingApprovals>, StoreError>;
}

/// Inside a transaction `$tx`: insert the pending approval `$a`
/// ([`NewApproval`]) with its approvers as JSON text, created at `$now`.
macro_rules! insert_approval {
    ($tx:ident, $a:expr, $approvers:expr, $now:expr) => {
        sqlx::query(
            "INSERT INTO approvals (id, kind, agent_id, approval_key, action, args, resource, state, approvers, \
             min_approvals, allow_owner, owner, elevation_id, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', $8, $9, $10, $11, $12, $13, $14)",
        )
        .bind(&$a.id)
        .bind($a.kind.as_str())
        .bind(&$a.agent)
        .bind(&$a.key)
        .bind(&$a.action)
        .bind($a.args.to_string())
        .bind(&$a.resource)
        .bind($approvers)
        .bind($a.min_approvals)
        .bind($a.allow_owner)
        .bind(&$a.owner)
        .bind(&$a.elevation_id)
        .bind($now)
        .bind($crate::time::Stamp($a.expires_at))
        .execute(&mut *$tx)
        .await?;
    };
}
pub(crate) use insert_approval;

macro_rules! select {
    ($tail:literal) => {
        concat!(
            "SELECT id, kind, agent_id, approval_key, action, args, resource, state, approvers, min_approvals, \
             allow_owner, owner, elevation_id, created_at, expires_at FROM approvals ",
            $tail
        )
    };
}

fn from_row<R>(row: &R) -> Result<Approval, StoreError>
where
    R: Row,
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Option<String>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> i64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> bool: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    let corrupt = |w: &str| StoreError::Corrupt(format!("approval {w}"));
    let kind: String = row.try_get("kind")?;
    let state: String = row.try_get("state")?;
    let args: String = row.try_get("args")?;
    let approvers: String = row.try_get("approvers")?;
    Ok(Approval {
        id: row.try_get("id")?,
        kind: ApprovalKind::parse(&kind).ok_or_else(|| corrupt("kind"))?,
        agent: row.try_get("agent_id")?,
        key: row.try_get("approval_key")?,
        action: row.try_get("action")?,
        args: serde_json::from_str(&args).map_err(|_| corrupt("args"))?,
        resource: row.try_get("resource")?,
        state: ApprovalState::parse(&state).ok_or_else(|| corrupt("state"))?,
        approvers: serde_json::from_str(&approvers).map_err(|_| corrupt("approvers"))?,
        min_approvals: row.try_get("min_approvals")?,
        allow_owner: row.try_get("allow_owner")?,
        owner: row.try_get("owner")?,
        elevation_id: row.try_get("elevation_id")?,
        votes: Vec::new(),
        created_at: row.try_get::<Stamp, _>("created_at")?.into(),
        expires_at: row.try_get::<Stamp, _>("expires_at")?.into(),
    })
}

/// `a` as of `now`: pending or approved past `expires_at` is expired.
fn as_of(mut a: Approval, now: Timestamp) -> Approval {
    if matches!(a.state, ApprovalState::Pending | ApprovalState::Approved)
        && a.expires_at <= stored(now)
    {
        a.state = ApprovalState::Expired;
    }
    a
}

impl Store {
    async fn with_votes(&self, mut a: Approval) -> Result<Approval, StoreError> {
        a.votes = with_pool!(self, |pool| {
            let rows = sqlx::query(
                "SELECT principal_id, vote, comment, created_at FROM approval_votes WHERE approval_id = $1 ORDER BY created_at",
            )
            .bind(&a.id)
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|r| {
                    Ok(Vote {
                        principal: r.try_get("principal_id")?,
                        vote: r.try_get("vote")?,
                        comment: r.try_get("comment")?,
                        at: r.try_get::<Stamp, _>("created_at")?.into(),
                    })
                })
                .collect::<Result<Vec<_>, StoreError>>()
        })?;
        Ok(a)
    }

    /// Mark pending/approved approvals whose time has passed as expired.
    async fn expire_approvals(&self, now: Timestamp) -> Result<(), StoreError> {
        with_pool!(self, |pool| {
            sqlx::query("UPDATE approvals SET state = 'expired' WHERE state IN ('pending', 'approved') AND expires_at <= $1")
                .bind(Stamp(now))
                .execute(pool)
                .await?;
            Ok(())
        })
    }
}

impl ApprovalStore for Store {
    async fn approval_for_key(
        &self,
        key: &str,
        now: Timestamp,
    ) -> Result<Option<Approval>, StoreError> {
        // Read only (every decision that may need approval comes here): the
        // query itself ignores approvals past `expires_at`.
        let row = with_pool!(self, |pool| {
            let row = sqlx::query(select!(
                "WHERE approval_key = $1 AND state IN ('pending', 'approved', 'denied') AND expires_at > $2 \
                 ORDER BY created_at DESC LIMIT 1"
            ))
            .bind(key)
            .bind(Stamp(now))
            .fetch_optional(pool)
            .await?;
            row.as_ref().map(from_row).transpose()
        })?;
        match row {
            Some(a) => Ok(Some(self.with_votes(a).await?)),
            None => Ok(None),
        }
    }

    async fn create_approval(&self, a: &NewApproval) -> Result<(Approval, bool), StoreError> {
        let now = Stamp(now());
        // Who may vote, as a JSON array: a `Value`'s `Display` cannot fail, so
        // no serialisation error can store an empty list of approvers.
        let approvers = serde_json::Value::from(a.approvers.clone()).to_string();
        let inserted = with_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            // Serialize creators of the same key on both backends.
            sqlx::query("UPDATE audit_head SET seq = seq WHERE id = 1")
                .execute(&mut *tx)
                .await?;
            let existing = sqlx::query(
                "SELECT id FROM approvals WHERE approval_key = $1 AND state = 'pending' AND expires_at > $2",
            )
            .bind(&a.key)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(row) = existing {
                let id: ApprovalId = row.try_get("id")?;
                tx.rollback().await?;
                Err(id)
            } else {
                insert_approval!(tx, a, &approvers, now);
                tx.commit().await?;
                Ok(a.id.clone())
            }
        });
        let (id, created) = match inserted {
            Ok(id) => (id, true),
            Err(id) => (id, false),
        };
        let approval = self
            .approval(&id)
            .await?
            .ok_or_else(|| StoreError::NotFound(id.to_string()))?;
        Ok((approval, created))
    }

    async fn approval(&self, id: &ApprovalId) -> Result<Option<Approval>, StoreError> {
        // Read only: an approval past `expires_at` reads as expired, whatever
        // its stored state (votes and consumption check the time themselves).
        let now = now();
        let row = with_pool!(self, |pool| {
            let row = sqlx::query(select!("WHERE id = $1"))
                .bind(id)
                .fetch_optional(pool)
                .await?;
            row.as_ref().map(from_row).transpose()
        })?;
        match row {
            Some(a) => Ok(Some(self.with_votes(as_of(a, now)).await?)),
            None => Ok(None),
        }
    }

    async fn approvals(
        &self,
        state: Option<ApprovalState>,
        now: Timestamp,
    ) -> Result<Vec<Approval>, StoreError> {
        // Read only, as `approval`: the state is as of `now`.
        let rows = with_pool!(self, |pool| {
            let rows = match state {
                Some(ApprovalState::Pending | ApprovalState::Approved) => {
                    sqlx::query(select!(
                        "WHERE state = $1 AND expires_at > $2 ORDER BY created_at DESC LIMIT 1000"
                    ))
                    .bind(state.map_or("", ApprovalState::as_str))
                    .bind(Stamp(now))
                    .fetch_all(pool)
                    .await?
                }
                Some(ApprovalState::Expired) => {
                    sqlx::query(select!(
                        "WHERE state = 'expired' OR (state IN ('pending', 'approved') AND expires_at <= $1) \
                         ORDER BY created_at DESC LIMIT 1000"
                    ))
                    .bind(Stamp(now))
                    .fetch_all(pool)
                    .await?
                }
                Some(s) => {
                    sqlx::query(select!(
                        "WHERE state = $1 ORDER BY created_at DESC LIMIT 1000"
                    ))
                    .bind(s.as_str())
                    .fetch_all(pool)
                    .await?
                }
                None => {
                    sqlx::query(select!("ORDER BY created_at DESC LIMIT 1000"))
                        .fetch_all(pool)
                        .await?
                }
            };
            rows.iter()
                .map(from_row)
                .collect::<Result<Vec<_>, StoreError>>()
        })?;
        let mut out = Vec::with_capacity(rows.len());
        for a in rows {
            out.push(self.with_votes(as_of(a, now)).await?);
        }
        Ok(out)
    }

    async fn vote(
        &self,
        id: &ApprovalId,
        principal: &PrincipalId,
        approve: bool,
        comment: Option<&str>,
        now: Timestamp,
    ) -> Result<Approval, StoreError> {
        self.expire_approvals(now).await?;
        with_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            sqlx::query("UPDATE approvals SET state = state WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            let row = sqlx::query("SELECT state, min_approvals FROM approvals WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or_else(|| StoreError::NotFound(id.to_string()))?;
            let state: String = row.try_get("state")?;
            if state != "pending" {
                return Err(StoreError::Conflict(format!("approval `{id}` is {state}")));
            }
            let min: i64 = row.try_get("min_approvals")?;
            let voted = sqlx::query(
                "SELECT vote FROM approval_votes WHERE approval_id = $1 AND principal_id = $2",
            )
            .bind(id)
            .bind(principal)
            .fetch_optional(&mut *tx)
            .await?;
            if voted.is_some() {
                return Err(StoreError::Conflict(format!(
                    "`{principal}` already voted on `{id}`"
                )));
            }
            sqlx::query(
                "INSERT INTO approval_votes (approval_id, principal_id, vote, comment, created_at) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(id)
            .bind(principal)
            .bind(if approve { "approve" } else { "deny" })
            .bind(comment)
            .bind(Stamp(now))
            .execute(&mut *tx)
            .await?;
            // One denial decides; approval needs `min_approvals` distinct approvers.
            let approvals: i64 = sqlx::query(
                "SELECT COUNT(*) AS n FROM approval_votes WHERE approval_id = $1 AND vote = 'approve'",
            )
            .bind(id)
            .fetch_one(&mut *tx)
            .await?
            .try_get("n")?;
            let next = if !approve {
                Some("denied")
            } else if approvals >= min {
                Some("approved")
            } else {
                None
            };
            if let Some(next) = next {
                sqlx::query("UPDATE approvals SET state = $1, decided_at = $2 WHERE id = $3")
                    .bind(next)
                    .bind(Stamp(now))
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok::<(), StoreError>(())
        })?;
        self.approval(id)
            .await?
            .ok_or_else(|| StoreError::NotFound(id.to_string()))
    }

    async fn consume_approval(&self, id: &ApprovalId) -> Result<bool, StoreError> {
        with_pool!(self, |pool| {
            let now = Stamp(now());
            let done = sqlx::query(
                "UPDATE approvals SET state = 'consumed', consumed_at = $1 \
                 WHERE id = $2 AND state = 'approved' AND expires_at > $1",
            )
            .bind(now)
            .bind(id)
            .execute(pool)
            .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    async fn restore_approval(&self, id: &ApprovalId) -> Result<(), StoreError> {
        with_pool!(self, |pool| {
            sqlx::query(
                "UPDATE approvals SET state = 'approved', consumed_at = NULL \
                 WHERE id = $1 AND state = 'consumed'",
            )
            .bind(id)
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    async fn withdraw_approval(&self, id: &ApprovalId, now: Timestamp) -> Result<(), StoreError> {
        with_pool!(self, |pool| {
            sqlx::query(
                "UPDATE approvals SET state = 'cancelled', decided_at = $1 \
                 WHERE id = $2 AND state = 'pending'",
            )
            .bind(Stamp(now))
            .bind(id)
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    async fn pending_approvals(&self, now: Timestamp) -> Result<Vec<PendingApprovals>, StoreError> {
        with_pool!(self, |pool| {
            let rows = sqlx::query(
                "SELECT kind, COUNT(*) AS n, MIN(created_at) AS oldest FROM approvals \
                 WHERE state = 'pending' AND expires_at > $1 GROUP BY kind",
            )
            .bind(Stamp(now))
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|r| {
                    let kind: String = r.try_get("kind")?;
                    Ok(PendingApprovals {
                        kind: ApprovalKind::parse(&kind)
                            .ok_or_else(|| StoreError::Corrupt("approval kind".into()))?,
                        count: u64::try_from(r.try_get::<i64, _>("n")?).unwrap_or(0),
                        oldest: r.try_get::<Stamp, _>("oldest")?.into(),
                    })
                })
                .collect()
        })
    }
}
