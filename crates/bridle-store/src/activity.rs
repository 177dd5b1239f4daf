//! What each agent did, kept as hourly aggregates: every decision's audit
//! record is tallied by agent, hour, action, effect and reason
//! ([`bridle_core::activity::observe`]) in the audit writer's transaction
//! that appends it ([`record_activity!`]). That transaction holds the
//! store's write lock (SQLite) or the audit head's row lock (PostgreSQL),
//! so the read-and-merge of a row is never interleaved with another
//! writer's, on any replica; and the aggregates hold exactly what the
//! audit log holds, through restarts and faults (one durable unit).
//!
//! A window is read by the hour: it starts at the top of the hour its
//! start falls in.

use std::collections::BTreeMap;

use bridle_core::activity::{ActionActivity, ArgsSeen, Tally, TallyKey, observe};
use bridle_core::audit::EventBody;
use bridle_core::decision::Effect;
use bridle_core::id::AgentId;
use jiff::Timestamp;
use sqlx::Row;

use crate::time::Stamp;
use crate::{Store, StoreError, with_pool};

/// Keys per statement (bounded by the backends' parameter limits).
pub(crate) const KEYS_PER_STATEMENT: usize = 100;

/// The tallies of the decision records among `bodies`, merged per key.
pub(crate) fn fold<'a>(bodies: impl Iterator<Item = &'a EventBody>) -> BTreeMap<TallyKey, Tally> {
    let mut tallies: BTreeMap<TallyKey, Tally> = BTreeMap::new();
    for (key, tally) in bodies.filter_map(observe) {
        match tallies.get_mut(&key) {
            Some(t) => t.absorb(&tally),
            None => {
                tallies.insert(key, tally);
            }
        }
    }
    tallies
}

pub(crate) fn effect_from(s: &str) -> Result<Effect, StoreError> {
    match s {
        "allow" => Ok(Effect::Allow),
        "deny" => Ok(Effect::Deny),
        "approval_required" => Ok(Effect::ApprovalRequired),
        other => Err(StoreError::Corrupt(format!(
            "an activity row with effect `{other}`"
        ))),
    }
}

pub(crate) fn args_from(text: &str) -> Result<ArgsSeen, StoreError> {
    serde_json::from_str(text)
        .map_err(|e| StoreError::Corrupt(format!("an activity row's arguments: {e}")))
}

pub(crate) fn args_text(args: &ArgsSeen) -> Result<String, StoreError> {
    serde_json::to_string(args).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// Inside write transaction `$tx`: tallies the decision records among
/// `$bodies` (an iterator of `&EventBody`) into `agent_activity`, each row
/// read, merged and written back.
macro_rules! record_activity {
    ($tx:expr, $bodies:expr) => {
        async {
            let mut tallies = $crate::activity::fold($bodies);
            let keys: Vec<bridle_core::activity::TallyKey> = tallies.keys().cloned().collect();
            for chunk in keys.chunks($crate::activity::KEYS_PER_STATEMENT) {
                let mut q = sqlx::QueryBuilder::new(
                    "SELECT agent_id, hour, action, effect, reason, uses, last_at, args \
                     FROM agent_activity WHERE (agent_id, hour, action, effect, reason) IN ",
                );
                q.push_tuples(chunk, |mut b, k| {
                    b.push_bind(k.agent.clone())
                        .push_bind(k.hour)
                        .push_bind(k.action.clone())
                        .push_bind(k.effect.as_str())
                        .push_bind(k.reason.clone());
                });
                for row in q.build().fetch_all(&mut *$tx).await? {
                    let key = bridle_core::activity::TallyKey {
                        agent: row.try_get("agent_id")?,
                        hour: row.try_get("hour")?,
                        action: row.try_get("action")?,
                        effect: $crate::activity::effect_from(row.try_get("effect")?)?,
                        reason: row.try_get("reason")?,
                    };
                    let stored = bridle_core::activity::Tally {
                        uses: row.try_get("uses")?,
                        last_at: row.try_get::<$crate::time::Stamp, _>("last_at")?.into(),
                        args: $crate::activity::args_from(row.try_get("args")?)?,
                    };
                    // What was stored comes first; the batch adds to it.
                    if let Some(t) = tallies.get_mut(&key) {
                        let mut merged = stored;
                        merged.absorb(t);
                        *t = merged;
                    }
                }
            }
            let rows: Vec<(
                bridle_core::activity::TallyKey,
                bridle_core::activity::Tally,
                String,
            )> = tallies
                .into_iter()
                .map(|(k, t)| {
                    let args = $crate::activity::args_text(&t.args)?;
                    Ok::<_, $crate::StoreError>((k, t, args))
                })
                .collect::<Result<_, _>>()?;
            for chunk in rows.chunks($crate::activity::KEYS_PER_STATEMENT) {
                let mut q = sqlx::QueryBuilder::new(
                    "INSERT INTO agent_activity \
                     (agent_id, hour, action, effect, reason, uses, last_at, args) ",
                );
                q.push_values(chunk, |mut b, (k, t, args)| {
                    b.push_bind(k.agent.clone())
                        .push_bind(k.hour)
                        .push_bind(k.action.clone())
                        .push_bind(k.effect.as_str())
                        .push_bind(k.reason.clone())
                        .push_bind(t.uses)
                        .push_bind($crate::time::Stamp(t.last_at))
                        .push_bind(args.clone());
                });
                q.push(
                    " ON CONFLICT (agent_id, hour, action, effect, reason) DO UPDATE SET \
                     uses = excluded.uses, last_at = excluded.last_at, args = excluded.args",
                );
                q.build().execute(&mut *$tx).await?;
            }
            Ok::<_, $crate::StoreError>(())
        }
    };
}
pub(crate) use record_activity;

impl Store {
    /// What `agent` did from `since` on (from the top of its hour): per
    /// action, effect and reason, summed.
    pub async fn activity(
        &self,
        agent: &AgentId,
        since: Timestamp,
    ) -> Result<Vec<ActionActivity>, StoreError> {
        let hour = since.as_second().div_euclid(3600);
        let rows = with_pool!(self, |pool| {
            let rows = sqlx::query(
                "SELECT action, effect, reason, uses, last_at, args FROM agent_activity \
                 WHERE agent_id = $1 AND hour >= $2",
            )
            .bind(agent.clone())
            .bind(hour)
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|row| {
                    Ok((
                        (
                            row.try_get::<String, _>("action")?,
                            row.try_get::<String, _>("effect")?,
                            row.try_get::<String, _>("reason")?,
                        ),
                        Tally {
                            uses: row.try_get("uses")?,
                            last_at: row.try_get::<Stamp, _>("last_at")?.into(),
                            args: args_from(row.try_get("args")?)?,
                        },
                    ))
                })
                .collect::<Result<Vec<_>, StoreError>>()
        })?;
        let mut summed: BTreeMap<(String, String, String), Tally> = BTreeMap::new();
        for (key, tally) in rows {
            match summed.get_mut(&key) {
                Some(t) => t.absorb(&tally),
                None => {
                    summed.insert(key, tally);
                }
            }
        }
        summed
            .into_iter()
            .map(|((action, effect, reason), t)| {
                Ok(ActionActivity {
                    action,
                    effect: effect_from(&effect)?,
                    reason,
                    uses: t.uses,
                    last_at: t.last_at,
                    args: t.args,
                })
            })
            .collect()
    }
}
