//! Aggregates for evidence reports, computed in SQL so a report over a busy
//! agent reads a few rows, not its whole log: the range of an agent's audit
//! records from an instant on, and its decisions per hour by effect.

use bridle_core::decision::Effect;
use bridle_core::id::AgentId;
use jiff::Timestamp;
use sqlx::Row;

use crate::activity::effect_from;
use crate::time::Stamp;
use crate::{Store, StoreError, with_pool};

/// The audit records of one agent from an instant on: how many, and the
/// first and last by `seq` with their times.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AuditRange {
    pub count: u64,
    pub first: Option<(u64, Timestamp)>,
    pub last: Option<(u64, Timestamp)>,
}

/// How many decisions of one effect an agent had in one hour (`hour` is
/// seconds since the epoch divided by 3600, as `agent_activity` keys it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HourlyUses {
    pub hour: i64,
    pub effect: Effect,
    pub uses: i64,
}

fn seq_of(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

impl Store {
    /// The range of `agent`'s audit records at or after `since`.
    pub async fn audit_range(
        &self,
        agent: &AgentId,
        since: Timestamp,
    ) -> Result<AuditRange, StoreError> {
        with_pool!(self, |pool| {
            let row = sqlx::query(
                "SELECT COUNT(*) AS n, MIN(seq) AS first, MAX(seq) AS last FROM audit_events \
                 WHERE agent = $1 AND time >= $2",
            )
            .bind(agent.clone())
            .bind(Stamp(since))
            .fetch_one(pool)
            .await?;
            let count = seq_of(row.try_get::<i64, _>("n")?);
            let bounds: Option<(i64, i64)> = row
                .try_get::<Option<i64>, _>("first")?
                .zip(row.try_get::<Option<i64>, _>("last")?);
            let Some((first, last)) = bounds else {
                return Ok(AuditRange::default());
            };
            let rows = sqlx::query("SELECT seq, time FROM audit_events WHERE seq = $1 OR seq = $2")
                .bind(first)
                .bind(last)
                .fetch_all(pool)
                .await?;
            let mut out = AuditRange {
                count,
                first: None,
                last: None,
            };
            for r in &rows {
                let seq: i64 = r.try_get("seq")?;
                let time: Timestamp = r.try_get::<Stamp, _>("time")?.into();
                if seq == first {
                    out.first = Some((seq_of(seq), time));
                }
                if seq == last {
                    out.last = Some((seq_of(seq), time));
                }
            }
            Ok(out)
        })
    }

    /// `agent`'s decisions per hour and effect from the hour `since` falls
    /// in, oldest hour first.
    pub async fn hourly_activity(
        &self,
        agent: &AgentId,
        since: Timestamp,
    ) -> Result<Vec<HourlyUses>, StoreError> {
        let hour = since.as_second().div_euclid(3600);
        let rows = with_pool!(self, |pool| {
            let rows = sqlx::query(
                "SELECT hour, effect, uses FROM agent_activity \
                 WHERE agent_id = $1 AND hour >= $2 ORDER BY hour",
            )
            .bind(agent.clone())
            .bind(hour)
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|r| {
                    Ok((
                        r.try_get::<i64, _>("hour")?,
                        r.try_get::<String, _>("effect")?,
                        r.try_get::<i64, _>("uses")?,
                    ))
                })
                .collect::<Result<Vec<_>, StoreError>>()
        })?;
        let mut out: Vec<HourlyUses> = Vec::new();
        for (hour, effect, uses) in rows {
            let effect = effect_from(&effect)?;
            match out
                .iter_mut()
                .find(|h| h.hour == hour && h.effect == effect)
            {
                Some(h) => h.uses += uses,
                None => out.push(HourlyUses { hour, effect, uses }),
            }
        }
        Ok(out)
    }
}
