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
    let registered = now.duration_since(row.created_at);
    let inactive_since = now
        .checked_sub(config.inactive_after)
        .unwrap_or(Timestamp::MIN);
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
        .activity(
            &row.id,
            now.checked_sub(DENIALS_SINCE).unwrap_or(Timestamp::MIN),
        )
        .await?
        .into_iter()
        .filter(|a| a.effect == Effect::Deny)
        .collect();
    let total: i64 = denied.iter().fold(0, |n, a| n.saturating_add(a.uses));
    if total >= i64::from(config.denials_per_day) {
        let mut by_reason = std::collections::BTreeMap::<&str, i64>::new();
        let mut by_action = std::collections::BTreeMap::<&str, i64>::new();
        for a in &denied {
            let r = by_reason.entry(a.reason.as_str()).or_default();
            *r = r.saturating_add(a.uses);
            let n = by_action.entry(a.action.as_str()).or_default();
            *n = n.saturating_add(a.uses);
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
    let since = config
        .structuring_window
        .checked_mul(2)
        .and_then(|back| now.checked_sub(back).ok())
        .unwrap_or(Timestamp::MIN);
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
        // In i128: no threshold or sum a manifest and its history can reach
        // overflows it.
        let limit = i128::from(threshold);
        let floor = limit - limit * i128::from(config.structuring_band_percent) / 100;
        let mut under: Vec<(&AuditEvent, i128)> = events
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
                let v = i128::from(e.body.args.as_ref()?.get(&arg)?.as_i64()?);
                let below = if inclusive { v < limit } else { v <= limit };
                (below && v >= floor).then_some((e, v))
            })
            .collect();
        // Replicas stamp their own records: order by time, not by seq.
        under.sort_by_key(|(e, _)| e.body.time);
        let min = usize::try_from(config.structuring_min).unwrap_or(usize::MAX);
        if let Some(found) = worst_window(&under, config.structuring_window, limit, min) {
            let sum: i128 = found.iter().map(|(_, v)| v).sum();
            let sum = i64::try_from(sum).unwrap_or(i64::MAX);
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

/// Of the time-ordered `under`, the run within one `window` of at least
/// `min` requests with the largest sum, if that sum is over `threshold`.
fn worst_window<'a>(
    under: &[(&'a AuditEvent, i128)],
    window: SignedDuration,
    threshold: i128,
    min: usize,
) -> Option<Vec<(&'a AuditEvent, i128)>> {
    let mut best: Option<(i128, usize, usize)> = None;
    let mut start = 0;
    let mut sum = 0;
    for (end, (e, v)) in under.iter().enumerate() {
        sum += v;
        while let Some((s, sv)) = under.get(start)
            && e.body.time.duration_since(s.body.time) > window
        {
            sum -= sv;
            start += 1;
        }
        if end + 1 - start >= min && sum > threshold && best.is_none_or(|(b, ..)| sum > b) {
            best = Some((sum, start, end));
        }
    }
    let (_, start, end) = best?;
    under.get(start..=end).map(<[_]>::to_vec)
}

#[cfg(test)]
mod tests {
    use bridle_core::audit::{AuditEvent, EventBody, EventType};
    use jiff::{SignedDuration, Timestamp};

    use super::{threshold, worst_window};

    fn at(hours: f64, seq: u64) -> AuditEvent {
        let secs = (hours * 3600.0) as i64;
        let time = Timestamp::UNIX_EPOCH + SignedDuration::from_secs(secs);
        AuditEvent {
            seq,
            body: EventBody::new(EventType::Decision, time, "agent:payer"),
            prev_hash: String::new(),
            hash: String::new(),
        }
    }

    fn seqs(found: Option<Vec<(&AuditEvent, i128)>>) -> Option<Vec<u64>> {
        found.map(|f| f.iter().map(|(e, _)| e.seq).collect())
    }

    #[test]
    fn the_window_holds_exactly_its_length_and_at_least_min_requests() {
        let day = SignedDuration::from_hours(24);
        let events = [at(0.0, 1), at(12.0, 2), at(24.0, 3), at(24.5, 4)];
        let under: Vec<(&AuditEvent, i128)> = events.iter().map(|e| (e, 900)).collect();
        // 0h..24h is one window (inclusive): 1, 2, 3 add up to 2,700.
        assert_eq!(
            seqs(worst_window(&under, day, 2000, 3)),
            Some(vec![1, 2, 3]),
        );
        // A window an hour shorter: request 1 falls out when 3 comes in.
        let under: Vec<(&AuditEvent, i128)> = events.iter().map(|e| (e, 1999)).collect();
        assert_eq!(
            seqs(worst_window(&under, day, 5000, 3)),
            Some(vec![1, 2, 3])
        );
        assert_eq!(
            seqs(worst_window(
                &under,
                SignedDuration::from_hours(23),
                5000,
                3
            )),
            Some(vec![2, 3, 4]),
        );
        assert_eq!(
            seqs(worst_window(
                &under,
                SignedDuration::from_hours(12),
                5000,
                3
            )),
            None,
            "no 12-hour window holds three"
        );
        // The largest sum has too few requests; a smaller one has enough.
        let few = [
            at(0.0, 1),
            at(0.1, 2),
            at(30.0, 3),
            at(30.1, 4),
            at(30.2, 5),
        ];
        let amounts = [999, 999, 600, 600, 600];
        let under: Vec<(&AuditEvent, i128)> = few.iter().zip(amounts).collect();
        assert_eq!(
            seqs(worst_window(&under, day, 1000, 3)),
            Some(vec![3, 4, 5])
        );
        assert_eq!(
            seqs(worst_window(&under, day, 2000, 3)),
            None,
            "1,800 is not over 2,000"
        );
    }

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
