//! Usage behind rate limits and budgets, decided in the store.
//!
//! Before a decision, [`UsageStore::usage_snapshot`] reads what the chain's
//! agents used within their windows (the engine decides against it). When
//! the decision's usage is committed, it is checked again and recorded in
//! the audit writer's transaction ([`charge!`], through
//! [`crate::AuditLog::append_charged`]), which holds the store's write lock
//! (SQLite) or the audit head's row lock (PostgreSQL): every charge of every
//! replica is checked and recorded one at a time, in the same durable unit
//! as its decision's audit record. So limits hold with any number of
//! replicas, across restarts and for any window length, and a charge costs
//! no transaction of its own.

use bridle_core::id::AgentId;
use bridle_core::ledger::UsageSnapshot;
use bridle_core::manifest::Rate;
use jiff::{SignedDuration, Timestamp};
use sqlx::Row;

use crate::{Store, StoreError, with_pool};

/// One agent's limits, as a decision needs them read.
#[derive(Debug, Clone)]
pub struct LimitNeed<'a> {
    pub agent: &'a AgentId,
    pub rate: Option<Rate>,
    /// Each budget's (argument, window).
    pub budgets: Vec<(&'a str, SignedDuration)>,
}

/// The first instant outside a window of `per` ending at `now`, in Unix ms.
pub(crate) fn window_start(now: Timestamp, per: SignedDuration) -> i64 {
    now.checked_sub(per)
        .unwrap_or(Timestamp::MIN)
        .as_millisecond()
}

/// Counted actions of `$agent` after `$from_ms`, on transaction or pool `$ex`.
macro_rules! actions_since {
    ($ex:expr, $agent:expr, $from_ms:expr) => {
        sqlx::query(
            "SELECT COUNT(*) AS n FROM usage_events WHERE agent_id = $1 AND arg = '' AND at_ms > $2",
        )
        .bind($agent.clone())
        .bind($from_ms)
        .fetch_one($ex)
        .await?
        .try_get::<i64, _>("n")
        .map(|n| u64::try_from(n).unwrap_or(0))
    };
}

/// Amount `$agent` spent on `$arg` after `$from_ms`, on `$ex`. Negative
/// amounts (written by an older version) are no refund.
macro_rules! spent_since {
    ($ex:expr, $agent:expr, $arg:expr, $from_ms:expr) => {
        sqlx::query(
            "SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) AS n FROM usage_events \
             WHERE agent_id = $1 AND arg = $2 AND at_ms > $3 AND amount >= 0",
        )
        .bind($agent.clone())
        .bind($arg)
        .bind($from_ms)
        .fetch_one($ex)
        .await?
        .try_get::<i64, _>("n")
    };
}

/// Check `$usage` (a [`bridle_core::ledger::Usage`]) against what is stored
/// and, when every charge of it fits, record it, inside the write
/// transaction `$tx`. Evaluates to `Ok(None)` when recorded, or
/// `Ok(Some((agent, hit)))` for the first limit it would break (nothing is
/// recorded then).
macro_rules! charge {
    ($tx:expr, $usage:expr) => {
        async {
            let usage: &bridle_core::ledger::Usage = $usage;
            let now = usage.at;
            for c in &usage.charges {
                let rate = match c.rate {
                    Some(r) => {
                        let from = $crate::usage::window_start(now, r.per);
                        Some((r, $crate::usage::actions_since!(&mut *$tx, c.agent, from)?))
                    }
                    None => None,
                };
                let mut spent = Vec::with_capacity(c.spend.len());
                for s in &c.spend {
                    let from = $crate::usage::window_start(now, s.per);
                    spent.push((
                        s.clone(),
                        $crate::usage::spent_since!(&mut *$tx, c.agent, &s.arg, from)?,
                    ));
                }
                if let Some(hit) = bridle_core::ledger::over_limit(rate, spent) {
                    return Ok::<_, $crate::StoreError>(Some((c.agent.clone(), hit)));
                }
            }
            let at_ms = now.as_millisecond();
            for c in &usage.charges {
                for (arg, amount, keep) in c.kept_entries() {
                    let keep_until = now
                        .checked_add(keep)
                        .unwrap_or(jiff::Timestamp::MAX)
                        .as_millisecond();
                    sqlx::query(
                        "INSERT INTO usage_events (agent_id, at_ms, arg, amount, keep_until_ms) \
                         VALUES ($1, $2, $3, $4, $5)",
                    )
                    .bind(c.agent.clone())
                    .bind(at_ms)
                    .bind(arg)
                    .bind(amount)
                    .bind(keep_until)
                    .execute(&mut *$tx)
                    .await?;
                }
            }
            Ok(None)
        }
    };
}
pub(crate) use {actions_since, charge, spent_since};

#[expect(
    async_fn_in_trait,
    reason = "implemented by `Store` alone and called on it directly, so its futures' `Send` is known"
)]
pub trait UsageStore {
    /// What each agent used within the windows of its limits, at `now`.
    async fn usage_snapshot(
        &self,
        needs: &[LimitNeed<'_>],
        now: Timestamp,
    ) -> Result<UsageSnapshot, StoreError>;
    /// Drop usage no window counts any more; returns how many rows.
    async fn purge_usage(&self, now: Timestamp) -> Result<u64, StoreError>;
}

impl UsageStore for Store {
    async fn usage_snapshot(
        &self,
        needs: &[LimitNeed<'_>],
        now: Timestamp,
    ) -> Result<UsageSnapshot, StoreError> {
        let mut snapshot = UsageSnapshot::new();
        with_pool!(self, |pool| {
            for need in needs {
                if let Some(r) = need.rate {
                    let n = actions_since!(pool, need.agent, window_start(now, r.per))?;
                    snapshot.set_actions(need.agent, n);
                }
                for (arg, per) in &need.budgets {
                    let used = spent_since!(pool, need.agent, *arg, window_start(now, *per))?;
                    snapshot.set_spent(need.agent, arg, *per, used);
                }
            }
            Ok(snapshot)
        })
    }

    async fn purge_usage(&self, now: Timestamp) -> Result<u64, StoreError> {
        with_pool!(self, |pool| {
            Ok(
                sqlx::query("DELETE FROM usage_events WHERE keep_until_ms < $1")
                    .bind(now.as_millisecond())
                    .execute(pool)
                    .await?
                    .rows_affected(),
            )
        })
    }
}
