//! Rate limits and budgets in the engine: the spend an action carries, and
//! the denial when a limit would be broken (by the engine's own check, or
//! by the store's when it commits the usage).

use super::reason;
use crate::compile::CompiledAgent;
use crate::decision::{Decision, Reason, ReasonCode, SourceRef};
use crate::ledger::{LimitHit, Spend};
use crate::manifest::units::format_duration;

/// The denial for an action that would break `agent`'s limit `hit` (found
/// when the store commits usage atomically, after a decision that read a
/// snapshot stale by a concurrent one). `chain`: the agent is one of a
/// delegation chain, named in the reason.
pub fn limit_denial(agent: &CompiledAgent, hit: LimitHit, chain: bool) -> Decision {
    Decision::deny(limit_reason(agent, hit, chain))
}

fn limit_reason(agent: &CompiledAgent, hit: LimitHit, chain: bool) -> Reason {
    let m = agent.manifest();
    let name = m.agent.as_str();
    let prefix = if chain {
        format!("`{name}`: ")
    } else {
        String::new()
    };
    match hit {
        LimitHit::Rate { limit, used } => reason(
            ReasonCode::RateLimited,
            format!(
                "{prefix}rate limit {}/{} reached ({used} in the window)",
                limit.count,
                format_duration(limit.per)
            ),
            Some(SourceRef {
                agent: name.to_owned(),
                path: "limits.rate".into(),
                line: None,
            }),
        ),
        LimitHit::Budget {
            arg,
            max,
            per,
            used,
            amount,
        } => {
            let idx = m
                .limits
                .budgets
                .iter()
                .enumerate()
                .find(|(_, b)| b.arg == arg && b.per == per);
            reason(
                ReasonCode::BudgetExceeded,
                format!(
                    "{prefix}budget on `{arg}` exceeded: {used} spent in the last {}, {amount} more would pass the maximum {max}",
                    format_duration(per)
                ),
                Some(SourceRef {
                    agent: name.to_owned(),
                    path: idx.map_or_else(
                        || "limits.budgets".into(),
                        |(i, _)| format!("limits.budgets[{i}]"),
                    ),
                    line: idx.map(|(_, b)| b.pos.line),
                }),
            )
        }
    }
}

/// The budgets an action draws on: each budget whose argument the action
/// carries. A carried budget argument must be a non-negative integer (a
/// string, a fraction, a negative or a number beyond `i64` would otherwise
/// pass uncounted or act as a refund); the error is the budget's index and
/// the value as sent.
pub(super) fn budgets<'m>(
    m: &'m crate::manifest::Manifest,
    args: &serde_json::Map<String, serde_json::Value>,
) -> Result<Vec<Spend>, (usize, &'m crate::manifest::Budget, String)> {
    let mut spend = Vec::new();
    for (i, b) in m.limits.budgets.iter().enumerate() {
        let Some(value) = args.get(&b.arg) else {
            continue;
        };
        let amount = value
            .as_u64()
            .and_then(|a| i64::try_from(a).ok())
            .ok_or_else(|| (i, b, value.to_string()))?;
        spend.push(Spend {
            arg: b.arg.clone(),
            amount,
            max: b.max,
            per: b.per,
        });
    }
    Ok(spend)
}
