//! `GET /v1/agents/{id}/usage`: what the agent did with each grant.

use std::collections::BTreeMap;

use bridle_core::activity::{ArgSeen, GrantUsage, Ungranted, UsageReport};
use bridle_core::manifest::ArgValue;
use serde::Serialize;
use utoipa::ToSchema;

use super::time::instant;

/// An agent's usage over a window.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageView {
    /// The window asked for (`30d`).
    #[schema(example = "30d")]
    pub window: String,
    /// Where it starts (counted from the top of this hour).
    pub since: String,
    /// Each grant of the version in force (tools, then elevations).
    pub tools: Vec<GrantUsageView>,
    /// Paths of the grants nothing was allowed under.
    pub unused: Vec<String>,
    /// Actions no grant of the version in force covers.
    pub ungranted: Vec<UngrantedView>,
    pub last_activity: Option<String>,
}

/// The use of one grant.
#[derive(Debug, Serialize, ToSchema)]
pub struct GrantUsageView {
    /// The grant as written: a tool name, a glob, or an elevation's name.
    #[schema(example = "invoices.*")]
    pub grant: String,
    /// Its place in the manifest.
    #[schema(example = "tools[0]")]
    pub path: String,
    /// Decisions for actions it covers.
    pub uses: i64,
    pub allowed: i64,
    pub denied: i64,
    /// Decisions that asked for a human approval.
    pub approvals: i64,
    pub last_used: Option<String>,
    /// How often each action under it was allowed.
    pub actions: BTreeMap<String, i64>,
    /// Decisions by reason code.
    pub reasons: BTreeMap<String, i64>,
    /// What was seen of each argument in allowed uses.
    pub args: BTreeMap<String, ArgView>,
}

/// What was seen of one argument in allowed uses.
#[derive(Debug, Serialize, ToSchema)]
pub struct ArgView {
    pub min: Option<i64>,
    pub max: Option<i64>,
    /// The distinct values seen (at most 32).
    pub values: Vec<Scalar>,
    /// More values were seen than `values` lists.
    pub more: bool,
    /// A sensitive argument: only keyed hashes were recorded.
    pub redacted: bool,
}

/// One argument value: a string, an integer or a boolean.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum Scalar {
    Str(String),
    Int(i64),
    Bool(bool),
}

/// Decisions for an action no grant covers.
#[derive(Debug, Serialize, ToSchema)]
pub struct UngrantedView {
    pub action: String,
    pub uses: i64,
    pub allowed: i64,
    pub denied: i64,
    pub last_used: String,
    pub reasons: BTreeMap<String, i64>,
}

impl UsageView {
    pub fn new(window: String, since: jiff::Timestamp, r: UsageReport) -> Self {
        Self {
            window,
            since: instant(since),
            tools: r.tools.into_iter().map(Into::into).collect(),
            unused: r.unused,
            ungranted: r.ungranted.into_iter().map(Into::into).collect(),
            last_activity: r.last_activity.map(instant),
        }
    }
}

impl From<GrantUsage> for GrantUsageView {
    fn from(g: GrantUsage) -> Self {
        Self {
            grant: g.grant,
            path: g.path,
            uses: g.uses,
            allowed: g.allowed,
            denied: g.denied,
            approvals: g.approvals,
            last_used: g.last_used.map(instant),
            actions: g.actions,
            reasons: g.reasons,
            args: g.args.into_iter().map(|(k, v)| (k, v.into())).collect(),
        }
    }
}

impl From<ArgSeen> for ArgView {
    fn from(a: ArgSeen) -> Self {
        Self {
            min: a.min,
            max: a.max,
            values: a
                .values
                .into_iter()
                .map(|v| match v {
                    ArgValue::Str(s) => Scalar::Str(s),
                    ArgValue::Int(i) => Scalar::Int(i),
                    ArgValue::Bool(b) => Scalar::Bool(b),
                })
                .collect(),
            more: a.more,
            redacted: a.redacted,
        }
    }
}

impl From<Ungranted> for UngrantedView {
    fn from(u: Ungranted) -> Self {
        Self {
            action: u.action,
            uses: u.uses,
            allowed: u.allowed,
            denied: u.denied,
            last_used: instant(u.last_used),
            reasons: u.reasons,
        }
    }
}

/// `GET /v1/agents/{id}/suggestion`: the version in force narrowed to what
/// was used.
#[derive(Debug, Serialize, ToSchema)]
pub struct SuggestionView {
    pub window: String,
    pub since: String,
    /// The suggested manifest (YAML; comments are not kept).
    pub manifest: String,
    /// From the version in force to the suggestion, both written back the
    /// same way.
    pub unified: String,
    /// The suggestion classified against the version in force: never
    /// `widening`.
    pub changes: Vec<super::history::ChangeView>,
    /// Why each part of the suggestion is what it is.
    pub evidence: Vec<EvidenceView>,
}

/// Why one part of a suggestion is what it is.
#[derive(Debug, Serialize, ToSchema)]
pub struct EvidenceView {
    /// The element of the version in force.
    #[schema(example = "tools[1].args.vendor.in")]
    pub path: String,
    pub message: String,
}

impl SuggestionView {
    pub fn new(
        window: String,
        since: jiff::Timestamp,
        s: bridle_core::manifest::suggest::Suggestion,
        unified: String,
    ) -> Self {
        Self {
            window,
            since: instant(since),
            manifest: s.manifest,
            unified,
            changes: s.changes.into_iter().map(Into::into).collect(),
            evidence: s
                .evidence
                .into_iter()
                .map(|e| EvidenceView {
                    path: e.path,
                    message: e.message,
                })
                .collect(),
        }
    }
}
