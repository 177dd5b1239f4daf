//! Findings that only the agent's history shows: failed authentication,
//! inactivity, unused grants, many denials, approval structuring, and what
//! its delegates are. Read from the audit log and the usage aggregates the
//! audit writer keeps, so every replica's and every restart's count.

use bridle_core::Manifest;
use bridle_core::audit::{AuditEvent, EventType};
use bridle_core::decision::{Effect, ReasonCode};
use bridle_core::manifest::{Environment, units};
use bridle_store::{AgentRow, AuditFilter, AuditRead as _, RegistryRead as _};
use jiff::{SignedDuration, Timestamp};
use serde_json::json;

use super::{Finding, FindingCode};
use crate::posture::PostureConfig;
use crate::service::ServiceError;
use crate::state::AppState;
use crate::views::time::instant;

/// How far back failed client authentications count.
const AUTH_FAILURES_SINCE: SignedDuration = SignedDuration::from_hours(24);
/// The window many denials are counted in.
const DENIALS_SINCE: SignedDuration = SignedDuration::from_hours(24);
/// At most this many decision ids are listed as a finding's evidence.
const EVIDENCE_IDS: usize = 20;

/// Failed authentications of the agent's clients: as many as lock a client
/// (`auth_throttle.max_failures`) within a day is a finding.
pub async fn auth_failures(
    state: &AppState,
    row: &AgentRow,
    now: Timestamp,
) -> Result<Option<Finding>, ServiceError> {
    let filter = AuditFilter {
        agent: Some(row.id.clone()),
        kind: Some(EventType::Authentication),
        after_seq: None,
        since: Some(now - AUTH_FAILURES_SINCE),
        limit: 1000,
    };
    let events = state.store().audit_events(&filter).await?;
    let count = |field: &str| -> u64 {
        events
            .iter()
            .filter_map(|e| e.body.detail.as_ref()?.get(field)?.as_u64())
            .sum()
    };
    let (failures, throttled) = (count("failures"), count("throttled"));
    if failures < u64::from(state.config.auth_throttle.max_failures) {
        return Ok(None);
    }
    let sources: std::collections::BTreeSet<&str> = events
        .iter()
        .filter_map(|e| e.body.detail.as_ref()?.get("source")?.as_str())
        .collect();
    let sources: Vec<&str> = sources.into_iter().collect();
    Ok(Some(Finding::new(
        row,
        FindingCode::AuthFailures,
        "",
        format!(
            "{failures} failed client authentications and {throttled} throttled attempts in the last 24 hours, from {}; someone may be guessing a secret, or a deployment holds a revoked or stale one (`bridle audit list --type authentication --agent {}`)",
            sources.join(", "),
            row.id
        ),
        json!({
            "failures": failures,
            "throttled": throttled,
            "sources": sources,
            "audit_seqs": events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        }),
    )))
}

/// Inactivity, unused grants and many denials, from the usage aggregates.
pub async fn usage(
    state: &AppState,
    row: &AgentRow,
    m: &Manifest,
    config: &PostureConfig,
    now: Timestamp,
) -> Result<Vec<Finding>, ServiceError> {
    let mut out = Vec::new();
    let registered = now - row.created_at;
    let inactive_since = now - config.inactive_after;
    if registered > config.inactive_after
        && state
            .store()
            .activity(&row.id, inactive_since)
            .await?
            .is_empty()
    {
        out.push(Finding::new(
            row,
            FindingCode::Inactive,
            "",
            format!(
                "no decision for `{}` in the last {}",
                row.id,
                units::format_duration(config.inactive_after)
            ),
            json!({
                "no_decision_since": instant(inactive_since),
                "registered": instant(row.created_at),
                "state": row.state.as_str(),
            }),
        ));
    }
    if registered > config.unused_window {
        let (since, report) =
            crate::service::usage::usage(state, row, config.unused_window, now).await?;
        let unused: Vec<(&str, &str)> = report
            .tools
            .iter()
            .filter(|g| g.path.starts_with("tools[") && report.unused.contains(&g.path))
            .map(|g| (g.path.as_str(), g.grant.as_str()))
            .collect();
        if !unused.is_empty() {
            out.push(Finding::new(
                row,
                FindingCode::UnusedGrants,
                "",
                format!(
                    "{} of {} tool grants were not used in the last {}: {}",
                    unused.len(),
                    m.tools.len(),
                    units::format_duration(config.unused_window),
                    unused
                        .iter()
                        .map(|(_, g)| format!("`{g}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                json!({
                    "since": instant(since),
                    "paths": unused.iter().map(|(p, _)| *p).collect::<Vec<_>>(),
                    "grants": unused.iter().map(|(_, g)| *g).collect::<Vec<_>>(),
                }),
            ));
        }
    }
    let denied: Vec<_> = state
        .store()
        .activity(&row.id, now - DENIALS_SINCE)
        .await?
        .into_iter()
        .filter(|a| a.effect == Effect::Deny)
        .collect();
    let total: i64 = denied.iter().map(|a| a.uses).sum();
    if total >= i64::from(config.denials_per_day) {
        let mut by_reason = std::collections::BTreeMap::<&str, i64>::new();
        let mut by_action = std::collections::BTreeMap::<&str, i64>::new();
        for a in &denied {
            *by_reason.entry(a.reason.as_str()).or_default() += a.uses;
            *by_action.entry(a.action.as_str()).or_default() += a.uses;
        }
        out.push(Finding::new(
            row,
            FindingCode::ManyDenials,
            "",
            format!(
                "{total} denied actions in the last 24 hours (the threshold is {})",
                config.denials_per_day
            ),
            json!({"denied": total, "by_reason": by_reason, "by_action": by_action}),
        ));
    }
    Ok(out)
}

/// A production agent whose delegates are not production agents.
pub async fn delegates(
    state: &AppState,
    row: &AgentRow,
    m: &Manifest,
) -> Result<Vec<Finding>, ServiceError> {
    let mut out = Vec::new();
    if m.environment != Environment::Prod {
        return Ok(out);
    }
    for to in &m.delegation.to {
        let Some(other) = state.store().agent(to).await? else {
            continue;
        };
        if other.environment != Environment::Prod.as_str() {
            out.push(Finding::new(
                row,
                FindingCode::ProdDelegatesToNonProd,
                to.as_str(),
                format!(
                    "`{}` (prod) may delegate to `{to}`, a `{}` agent: production work would run under an identity outside production's controls",
                    row.id, other.environment
                ),
                json!({"delegate": to.as_str(), "delegate_environment": other.environment}),
            ));
        }
    }
    Ok(out)
}

/// An approval threshold `approval.when` states as `context.args.ARG > N`
/// (or `>=`), anywhere in the condition: the argument, `N`, and whether
/// `N` itself needs approval. The first such comparison counts.
pub fn threshold(expr: &str) -> Option<(String, i64, bool)> {
    const LEAD: &str = "context.args.";
    expr.match_indices(LEAD).find_map(|(at, _)| {
        let rest = expr.get(at + LEAD.len()..)?;
        let arg: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let rest = rest.get(arg.len()..)?.trim_start();
        let (inclusive, rest) = match rest.strip_prefix(">=") {
            Some(r) => (true, r),
            None => (false, rest.strip_prefix('>')?),
        };
        let digits: String = rest
            .trim_start()
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        let n = digits.parse().ok()?;
        (!arg.is_empty()).then_some((arg, n, inclusive))
    })
}

/// Approval structuring: requests that each stayed under a grant's approval
/// threshold (within `structuring_band_percent` of it) and so passed
/// without a person, at least `structuring_min` of them within one
/// `structuring_window`, adding up to more than the threshold.
pub async fn structuring(
    state: &AppState,
    row: &AgentRow,
    m: &Manifest,
    config: &PostureConfig,
    now: Timestamp,
) -> Result<Vec<Finding>, ServiceError> {
    let rules: Vec<(usize, String, i64, bool)> = m
        .tools
        .iter()
        .enumerate()
        .filter_map(|(i, g)| {
            let when = g.approval.as_ref()?.when.as_ref()?;
            let (arg, n, inclusive) = threshold(&when.expr)?;
            Some((i, arg, n, inclusive))
        })
        .collect();
    if rules.is_empty() {
        return Ok(Vec::new());
    }
    let since = now - config.structuring_window * 2;
    let events = match crate::service::replay::decisions(state.store(), &row.id, since).await {
        Ok(events) => events,
        Err(ServiceError::Invalid { .. }) => {
            tracing::warn!(agent = %row.id, "too many decisions to look for approval structuring");
            return Ok(Vec::new());
        }
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for (i, arg, threshold, inclusive) in rules {
        let floor = threshold - threshold * i64::from(config.structuring_band_percent) / 100;
        let under: Vec<(&AuditEvent, i64)> = events
            .iter()
            .filter(|e| e.body.decision == Some(Effect::Allow))
            .filter(|e| {
                !e.body
                    .reasons
                    .iter()
                    .flatten()
                    .any(|r| r.code == ReasonCode::Approved)
            })
            .filter(|e| {
                e.body
                    .action
                    .as_deref()
                    .and_then(|a| bridle_core::activity::grant_of(m, a))
                    == Some(i)
            })
            .filter_map(|e| {
                let v = e.body.args.as_ref()?.get(&arg)?.as_i64()?;
                let below = if inclusive {
                    v < threshold
                } else {
                    v <= threshold
                };
                (below && v >= floor).then_some((e, v))
            })
            .collect();
        if let Some(found) = worst_window(&under, config.structuring_window, threshold)
            && found.len() >= config.structuring_min as usize
        {
            let sum: i64 = found.iter().map(|(_, v)| v).sum();
            let (Some((first, _)), Some((last, _))) = (found.first(), found.last()) else {
                continue;
            };
            let grant = m.tools.get(i).map(|g| g.name.as_str()).unwrap_or_default();
            out.push(Finding::new(
                row,
                FindingCode::ApprovalStructuring,
                grant,
                format!(
                    "{} requests of `{grant}` each under the approval threshold ({arg} {} {threshold}) passed without approval within {}, {sum} in all",
                    found.len(),
                    if inclusive { ">=" } else { ">" },
                    units::format_duration(config.structuring_window),
                ),
                json!({
                    "path": format!("tools[{i}]"),
                    "arg": arg,
                    "threshold": threshold,
                    "requests": found.len(),
                    "sum": sum,
                    "first": instant(first.body.time),
                    "last": instant(last.body.time),
                    "audit_seqs": found.iter().take(EVIDENCE_IDS).map(|(e, _)| e.seq).collect::<Vec<_>>(),
                }),
            ));
        }
    }
    Ok(out)
}

/// Of the time-ordered `under`, the run within one `window` with the
/// largest sum, if that sum is over `threshold`.
fn worst_window<'a>(
    under: &[(&'a AuditEvent, i64)],
    window: SignedDuration,
    threshold: i64,
) -> Option<Vec<(&'a AuditEvent, i64)>> {
    let mut best: Option<(i64, usize, usize)> = None;
    let mut start = 0;
    let mut sum = 0;
    for (end, (e, v)) in under.iter().enumerate() {
        sum += v;
        while let Some((s, sv)) = under.get(start)
            && e.body.time - s.body.time > window
        {
            sum -= sv;
            start += 1;
        }
        if sum > threshold && best.is_none_or(|(b, ..)| sum > b) {
            best = Some((sum, start, end));
        }
    }
    let (_, start, end) = best?;
    under.get(start..=end).map(<[_]>::to_vec)
}

#[cfg(test)]
mod tests {
    use super::threshold;

    #[test]
    fn thresholds_are_read_from_simple_comparisons_only() {
        assert_eq!(
            threshold("context.args.amount > 2000"),
            Some(("amount".into(), 2000, false))
        );
        assert_eq!(
            threshold("context.args.vendor == \"acme\" && context.args.amount >= 500"),
            Some(("amount".into(), 500, true))
        );
        assert_eq!(
            threshold("context.args.amount>=500 || context.hour > 18"),
            Some(("amount".into(), 500, true))
        );
        assert_eq!(threshold("context.args.amount < 10"), None);
        assert_eq!(threshold("context.hour > 18"), None);
    }
}
