//! Meaning-level mistakes in a manifest that loads: reported with the field
//! path and line, never failing the load. [`warnings`] needs nothing but
//! the manifest and today's date; [`approver_warnings`] needs to know who
//! the approvers are (the server asks its store).

use jiff::civil::Date;
use serde::{Deserialize, Serialize};

use super::error::did_you_mean;
use super::{Access, Approver, Environment, Manifest, ToolGrant};

/// One warning: where, and what is probably wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Warning {
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    pub message: String,
}

impl Warning {
    fn new(path: impl Into<String>, line: Option<usize>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            line,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(line) => write!(f, "line {line}: `{}`: {}", self.path, self.message),
            None => write!(f, "`{}`: {}", self.path, self.message),
        }
    }
}

/// Every argument a grant mentions: constrained, or read by a condition.
fn mentioned(g: &ToolGrant) -> impl Iterator<Item = &str> {
    g.args
        .iter()
        .map(|c| c.arg.as_str())
        .chain(g.inferred_args.iter().map(|(a, _)| a.as_str()))
}

/// Whether a budget counts an argument the grant mentions, so its calls
/// add up against a bound.
pub fn budgeted(m: &Manifest, g: &ToolGrant) -> bool {
    m.limits
        .budgets
        .iter()
        .any(|b| mentioned(g).any(|a| a == b.arg))
}

/// The warnings that need no store: budgets and conditions on arguments no
/// grant mentions (or a likely typo of one), grants a `forbid` hides
/// entirely, overnight windows, an `expires` already past (`today`, in the
/// agent's zone), a prod agent without `review_every`, and write, export
/// or admin tools with neither an approval rule nor a budget.
pub fn warnings(m: &Manifest, today: Date) -> Vec<Warning> {
    let mut out = Vec::new();
    let constrained: Vec<&str> = m
        .tools
        .iter()
        .flat_map(|g| g.args.iter().map(|c| c.arg.as_str()))
        .chain(m.limits.budgets.iter().map(|b| b.arg.as_str()))
        .collect();

    for (k, b) in m.limits.budgets.iter().enumerate() {
        if !m.tools.iter().any(|g| mentioned(g).any(|a| a == b.arg)) {
            out.push(Warning::new(
                format!("limits.budgets[{k}].arg"),
                Some(b.pos.line),
                format!(
                    "no grant mentions argument `{}`: a call that does not send it is never counted against this budget",
                    b.arg
                ),
            ));
        }
    }
    for (k, b) in m.limits.budgets.iter().enumerate() {
        let Some(asks) = &b.approval else {
            continue;
        };
        // One approval per request: where the grant's own rule asks too,
        // its approvers decide, and the budget's never see the request.
        for (i, g) in m.tools.iter().enumerate() {
            let Some(rule) = &g.approval else {
                continue;
            };
            let same = rule.approvers.len() == asks.approvers.len()
                && rule.approvers.iter().all(|a| asks.approvers.contains(a))
                && rule.min_approvals >= asks.min_approvals;
            if mentioned(g).any(|a| a == b.arg) && !same {
                out.push(Warning::new(
                    format!("limits.budgets[{k}].approval"),
                    Some(asks.pos.line),
                    format!(
                        "tools[{i}] (`{}`, line {}) has its own approval rule with other approvers: where both ask for one request, the grant's approvers decide",
                        g.name, g.pos.line
                    ),
                ));
            }
        }
    }
    for (i, g) in m.tools.iter().enumerate() {
        for (arg, _) in &g.inferred_args {
            let others: Vec<&str> = constrained.iter().copied().filter(|c| c != arg).collect();
            if let Some(near) = did_you_mean(arg, &others) {
                out.push(Warning::new(
                    format!("tools[{i}]"),
                    Some(g.pos.line),
                    format!(
                        "a condition reads argument `{arg}`, which no constraint or budget names (did you mean `{near}`?); \
                         while it is missing, `when` fails and `approval.when` holds"
                    ),
                ));
            }
        }
        if let Some(f) = m.forbid.iter().find(|f| g.name.is_within(&f.name)) {
            out.push(Warning::new(
                format!("tools[{i}].name"),
                Some(g.pos.line),
                format!(
                    "grant `{}` is hidden entirely by forbid `{}` (line {}): it can never be used",
                    g.name, f.name, f.pos.line
                ),
            ));
        }
        if g.access != Access::Read && g.approval.is_none() && !budgeted(m, g) {
            out.push(Warning::new(
                format!("tools[{i}]"),
                Some(g.pos.line),
                format!(
                    "`{}` has `{}` access with neither an approval rule nor a budget",
                    g.name,
                    g.access.as_str()
                ),
            ));
        }
    }
    for (e, spec) in m.elevation.iter().enumerate() {
        for (t, glob) in spec.tools.iter().enumerate() {
            if let Some(f) = m.forbid.iter().find(|f| glob.is_within(&f.name)) {
                out.push(Warning::new(
                    format!("elevation[{e}].tools[{t}]"),
                    Some(spec.pos.line),
                    format!(
                        "elevation tool `{glob}` is hidden entirely by forbid `{}` (line {}): elevation never grants it",
                        f.name, f.pos.line
                    ),
                ));
            }
        }
    }
    if let Some(s) = &m.schedule {
        for (w, window) in s.windows.iter().enumerate() {
            if window.end < window.start {
                out.push(Warning::new(
                    format!("schedule.windows[{w}]"),
                    None,
                    format!(
                        "`{}` ends before it starts: an overnight window, running past midnight into the next day",
                        window.text
                    ),
                ));
            }
        }
    }
    if m.expires < today {
        out.push(Warning::new(
            "expires",
            None,
            format!(
                "{} is already past: every action is denied (agent_expired)",
                m.expires
            ),
        ));
    }
    if m.environment == Environment::Prod && m.review_every.is_none() {
        out.push(Warning::new(
            "review_every",
            None,
            "a prod agent without `review_every` is never due for review",
        ));
    }
    out
}

/// An approver entry that resolves to no active principal or group member
/// can never approve: `resolves` answers whether it does (the server asks
/// its store). Covers tool approval rules and elevations.
pub fn approver_warnings(m: &Manifest, resolves: &dyn Fn(&Approver) -> bool) -> Vec<Warning> {
    let mut out = Vec::new();
    let mut check = |path: String, line: usize, approvers: &[Approver]| {
        for a in approvers {
            if resolves(a) {
                continue;
            }
            let hint = match a {
                Approver::Principal(p) => format!(" (a group is written `group:{p}`)"),
                Approver::Group(_) => String::new(),
            };
            out.push(Warning::new(
                path.clone(),
                Some(line),
                format!(
                    "approver `{a}` resolves to no active principal or group member{hint}: it can never approve"
                ),
            ));
        }
    };
    for (i, g) in m.tools.iter().enumerate() {
        if let Some(rule) = &g.approval {
            check(
                format!("tools[{i}].approval.approvers"),
                rule.pos.line,
                &rule.approvers,
            );
        }
    }
    for (e, spec) in m.elevation.iter().enumerate() {
        check(
            format!("elevation[{e}].approvers"),
            spec.pos.line,
            &spec.approvers,
        );
    }
    out
}
