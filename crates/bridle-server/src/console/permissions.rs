//! The agent page's "Effective permissions", in words: each grant of the
//! manifest in force with its constraints, condition, approval rule and
//! usage; what is forbidden; the data it may reach; its limits, schedule
//! and delegation; its elevations with what they add, and the ones active
//! now. Built from the compiled manifest (what the engine enforces), never
//! from the raw document.

use bridle_core::activity::UsageReport;
use bridle_core::manifest::{ApprovalRule, Approver, Manifest};
use bridle_store::{Elevation, ElevationState};

use super::when;

pub struct Grant {
    pub path: String,
    pub name: String,
    pub access: &'static str,
    /// `amount: at most 5000`, one per constraint.
    pub constraints: Vec<String>,
    /// The Cedar condition that must hold, as written.
    pub condition: String,
    /// `1 of group:finance-approvers when … (expires after 1h)`, or empty.
    pub approval: String,
    pub sensitive: String,
    pub uses: i64,
    pub last_used: String,
}

pub struct ElevationSpec {
    pub name: String,
    pub tools: String,
    pub max_duration: String,
    pub how: String,
}

pub struct ActiveElevation {
    pub id: String,
    pub name: String,
    pub state: &'static str,
    pub requested_by: String,
    pub reason: String,
    pub expires: String,
}

pub struct Permissions {
    pub grants: Vec<Grant>,
    pub forbid: Vec<String>,
    pub data: Vec<(String, String)>,
    /// Rate, budgets, schedule and delegation, one line each.
    pub bounds: Vec<String>,
    pub elevations: Vec<ElevationSpec>,
}

fn approvers(list: &[Approver]) -> String {
    list.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// `2 of group:finance-approvers, principal:cfo when …; the owner may
/// approve; a request expires after 1h`.
fn approval(rule: &ApprovalRule) -> String {
    let mut text = format!("{} of {}", rule.min_approvals, approvers(&rule.approvers));
    if let Some(cond) = &rule.when {
        text.push_str(&format!(" when {}", cond.expr));
    } else {
        text.push_str(", always");
    }
    if rule.allow_owner {
        text.push_str("; the owner may approve");
    }
    text.push_str(&format!("; a request expires after {:#}", rule.ttl));
    text
}

pub fn describe(manifest: &Manifest, usage: &UsageReport) -> Permissions {
    let grants = manifest
        .tools
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let path = format!("tools[{i}]");
            let used = usage.tools.iter().find(|g| g.path == path);
            Grant {
                name: t.name.to_string(),
                access: t.access.as_str(),
                constraints: t
                    .args
                    .iter()
                    .map(|c| format!("{}: {}", c.arg, c.rule.describe()))
                    .collect(),
                condition: t.when.as_ref().map(|c| c.expr.clone()).unwrap_or_default(),
                approval: t.approval.as_ref().map(approval).unwrap_or_default(),
                sensitive: t.sensitive.join(", "),
                uses: used.map_or(0, |g| g.uses),
                last_used: used
                    .and_then(|g| g.last_used)
                    .map_or_else(|| "never".into(), when),
                path,
            }
        })
        .collect();
    let mut bounds = Vec::new();
    if let Some(rate) = &manifest.limits.rate {
        bounds.push(format!("At most {} actions per {:#}", rate.count, rate.per));
    }
    for b in &manifest.limits.budgets {
        let past = match &b.approval {
            Some(rule) => format!("; past it, {}", approval(rule)),
            None => "; past it, denied".into(),
        };
        bounds.push(format!(
            "The sum of {} at most {} per {:#}{past}",
            b.arg, b.max, b.per
        ));
    }
    if let Some(s) = &manifest.schedule {
        let windows: Vec<&str> = s.windows.iter().map(|w| w.text.as_str()).collect();
        bounds.push(format!(
            "Acts only {} ({})",
            windows.join(", "),
            s.timezone_name
        ));
    }
    if manifest.delegation.to.is_empty() {
        bounds.push("Delegates to no agent".into());
    } else {
        let to: Vec<String> = manifest
            .delegation
            .to
            .iter()
            .map(|a| a.to_string())
            .collect();
        bounds.push(format!(
            "May delegate to {} (at most {} deep)",
            to.join(", "),
            manifest.delegation.max_depth
        ));
    }
    Permissions {
        grants,
        forbid: manifest.forbid.iter().map(|f| f.name.to_string()).collect(),
        data: manifest
            .data
            .iter()
            .map(|d| {
                let access: Vec<&str> = d.access.iter().map(|a| a.as_str()).collect();
                (d.resource.to_string(), access.join(", "))
            })
            .collect(),
        bounds,
        elevations: manifest
            .elevation
            .iter()
            .map(|e| {
                let tools: Vec<String> = e.tools.iter().map(|t| t.to_string()).collect();
                let mut how = Vec::new();
                if !e.approvers.is_empty() {
                    how.push(format!("approved by {}", approvers(&e.approvers)));
                }
                if let Some(cond) = &e.auto_grant_when {
                    how.push(format!("granted at once when {}", cond.expr));
                }
                ElevationSpec {
                    name: e.name.clone(),
                    tools: tools.join(", "),
                    max_duration: format!("{:#}", e.max_duration),
                    how: how.join("; "),
                }
            })
            .collect(),
    }
}

/// The elevations that are active or waiting for approval, newest first.
pub fn open_elevations(all: Vec<Elevation>) -> Vec<ActiveElevation> {
    let mut open: Vec<ActiveElevation> = all
        .into_iter()
        .filter(|e| matches!(e.state, ElevationState::Active | ElevationState::Pending))
        .map(|e| ActiveElevation {
            id: e.id.to_string(),
            state: e.state.as_str(),
            requested_by: e.requested_by,
            reason: e.reason,
            expires: e
                .expires_at
                .map_or_else(|| format!("{}s once approved", e.duration_secs), when),
            name: e.name,
        })
        .collect();
    open.reverse();
    open
}
