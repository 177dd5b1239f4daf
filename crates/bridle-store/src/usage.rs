//! Usage events behind rate limits and budgets, so they survive a restart.

use bridle_core::id::AgentId;
use bridle_core::ledger::Usage;
use sqlx::Row;

use crate::{Store, StoreError, with_pool};

/// One recorded usage event: `amount` of `arg` (empty for the counted
/// action itself) spent by `agent` at `at_ms` (Unix milliseconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageEvent {
    pub agent: AgentId,
    pub at_ms: i64,
    pub arg: String,
    pub amount: i64,
}

#[expect(
    async_fn_in_trait,
    reason = "implemented by `Store` alone and called on it directly, so its futures' `Send` is known"
)]
pub trait UsageStore {
    /// Record a decision's usage, every agent of its chain in one insert:
    /// per agent one row for the counted action (`arg` empty, amount 1)
    /// and one per budgeted argument.
    async fn record_usage(&self, usage: &Usage) -> Result<(), StoreError>;
    /// Every event since `since_ms`, oldest first.
    async fn usage_since(&self, since_ms: i64) -> Result<Vec<UsageEvent>, StoreError>;
}

impl UsageStore for Store {
    async fn record_usage(&self, usage: &Usage) -> Result<(), StoreError> {
        let rows: Vec<(&AgentId, String, i64)> = usage
            .charges
            .iter()
            .flat_map(|c| {
                c.entries()
                    .into_iter()
                    .map(|(arg, amount)| (&c.agent, arg, amount))
            })
            .collect();
        if rows.is_empty() {
            return Ok(());
        }
        let at_ms = usage.at.as_millisecond();
        with_pool!(self, |pool| {
            let mut q =
                sqlx::QueryBuilder::new("INSERT INTO usage_events (agent_id, at_ms, arg, amount) ");
            q.push_values(&rows, |mut b, (agent, arg, amount)| {
                b.push_bind((*agent).clone())
                    .push_bind(at_ms)
                    .push_bind(arg.clone())
                    .push_bind(*amount);
            });
            q.build().execute(pool).await?;
            Ok(())
        })
    }

    async fn usage_since(&self, since_ms: i64) -> Result<Vec<UsageEvent>, StoreError> {
        with_pool!(self, |pool| {
            let rows = sqlx::query("SELECT agent_id, at_ms, arg, amount FROM usage_events WHERE at_ms > $1 ORDER BY at_ms")
                .bind(since_ms)
                .fetch_all(pool)
                .await?;
            rows.iter()
                .map(|r| {
                    Ok(UsageEvent {
                        agent: r.try_get("agent_id")?,
                        at_ms: r.try_get("at_ms")?,
                        arg: r.try_get("arg")?,
                        amount: r.try_get("amount")?,
                    })
                })
                .collect()
        })
    }
}
