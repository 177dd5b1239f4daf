//! Rate limits and budgets in the engine: the spend an action carries, and
//! the denial when a limit would be broken (by the engine's own check, or
//! by the store's when it commits the usage).

use super::reason;
use crate::compile::CompiledAgent;
use crate::decision::{Decision, Reason, ReasonCode, SourceRef};
use crate::ledger::{LimitHit, Spend};
use crate::manifest::ApprovalRule;
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
            // A budget whose overrun asks for approval denies only when a
            // concurrent decision took the sum past it after this one read
            // it: asked again, the action waits for approval.
            let asks = idx.is_some_and(|(_, b)| b.approval.is_some());
            let then = if asks {
                "; past it an action needs approval: ask again"
            } else {
                ""
            };
            reason(
                ReasonCode::BudgetExceeded,
                format!(
                    "{prefix}budget on `{arg}` exceeded: {used} spent in the last {}, {amount} more would pass the maximum {max}{then}",
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

/// What an action draws on its agent's budgets: those that deny past their
/// maximum, and those that ask for approval instead ([`Ask`]).
#[derive(Debug, Default)]
pub(super) struct Spending<'m> {
    pub hard: Vec<Spend>,
    pub asks: Vec<Ask<'m>>,
}

/// A budget whose overrun asks for approval, and what the action would
/// spend on it.
#[derive(Debug)]
pub(super) struct Ask<'m> {
    /// Index in `limits.budgets`.
    pub budget: usize,
    pub rule: &'m ApprovalRule,
    pub spend: Spend,
}

impl Spending<'_> {
    /// What the action charges once it stands. A budget that asks for
    /// approval is charged with its maximum (the store's check at commit
    /// denies an unapproved action that a concurrent one took past it) or,
    /// for an approved action, with none: approval lets it spend past.
    pub fn charged(&self, approved: bool) -> Vec<Spend> {
        let asks = self.asks.iter().map(|a| Spend {
            max: if approved { i64::MAX } else { a.spend.max },
            ..a.spend.clone()
        });
        self.hard.iter().cloned().chain(asks).collect()
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
) -> Result<Spending<'m>, (usize, &'m crate::manifest::Budget, String)> {
    let mut spending = Spending::default();
    for (i, b) in m.limits.budgets.iter().enumerate() {
        let Some(value) = args.get(&b.arg) else {
            continue;
        };
        let amount = value
            .as_u64()
            .and_then(|a| i64::try_from(a).ok())
            .ok_or_else(|| (i, b, value.to_string()))?;
        let spend = Spend {
            arg: b.arg.clone(),
            amount,
            max: b.max,
            per: b.per,
        };
        match &b.approval {
            Some(rule) => spending.asks.push(Ask {
                budget: i,
                rule,
                spend,
            }),
            None => spending.hard.push(spend),
        }
    }
    Ok(spending)
}
