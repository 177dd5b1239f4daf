//! The agent manifest (format v1): the whole governance record of one agent,
//! as a typed value that is valid by construction. [`Manifest::from_source`]
//! is the only way to build one; it reports every problem of a file at once.

mod error;
pub mod limits;
mod node;
mod parse;
pub mod schedule;
pub mod schema;
pub mod suggest;
pub mod units;
pub mod warnings;

use jiff::SignedDuration;
use jiff::civil::Date;
use regex::Regex;
use serde::Serialize;

pub use error::{ManifestError, ManifestErrors};
pub use node::Pos;
pub use schedule::{Schedule, Window};
pub use units::Rate;
pub use warnings::{Warning, approver_warnings, warnings};

use crate::glob::Glob;
use crate::id::{AgentId, GroupName, PrincipalId};

/// The governance record of one agent.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub agent: AgentId,
    pub name: Option<String>,
    pub owner: PrincipalId,
    pub team: Option<String>,
    pub purpose: String,
    pub environment: Environment,
    /// Every action is denied after this day.
    pub expires: Date,
    pub review_every: Option<SignedDuration>,
    pub tools: Vec<ToolGrant>,
    pub forbid: Vec<Forbid>,
    pub data: Vec<DataGrant>,
    pub schedule: Option<Schedule>,
    pub limits: Limits,
    pub delegation: Delegation,
    pub elevation: Vec<ElevationSpec>,
    pub monitoring: Monitoring,
    pub credentials: Credentials,
    /// The manifest as JSON, exactly as given (for storage and display).
    pub document: serde_json::Value,
}

impl Manifest {
    /// Parse and validate a YAML or JSON manifest.
    pub fn from_source(source: &str) -> Result<Self, ManifestErrors> {
        parse::parse(source)
    }

    /// Tool-name globs (grants and elevations) whose values the audit log keeps
    /// only as keyed hashes for the given action.
    pub fn sensitive_args(&self, action: &str) -> Vec<&str> {
        self.tools
            .iter()
            .filter(|g| g.name.matches(action))
            .flat_map(|g| g.sensitive.iter().map(String::as_str))
            .collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    Dev,
    Staging,
    Prod,
}

impl Environment {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Dev => "dev",
            Self::Staging => "staging",
            Self::Prod => "prod",
        }
    }
}

/// Access levels, for tool grants and data grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    Read,
    Write,
    Export,
    Admin,
}

impl Access {
    pub const ALL: [Access; 4] = [Self::Read, Self::Write, Self::Export, Self::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Export => "export",
            Self::Admin => "admin",
        }
    }
}

/// One entry of `tools`.
#[derive(Debug, Clone)]
pub struct ToolGrant {
    pub name: Glob,
    pub access: Access,
    pub args: Vec<ArgCheck>,
    pub when: Option<CedarCondition>,
    pub approval: Option<ApprovalRule>,
    pub sensitive: Vec<String>,
    /// Arguments that `when` or `approval.when` use without a constraint,
    /// with the type inferred from the expressions. At decision time a
    /// missing or wrong-typed one makes `when` fail and `approval.when`
    /// hold.
    pub inferred_args: Vec<(String, crate::cedar::ArgType)>,
    pub pos: Pos,
}

/// One constraint on one argument, e.g. `tools[1].args.amount.max`.
#[derive(Debug, Clone)]
pub struct ArgCheck {
    pub arg: String,
    pub rule: ArgRule,
    pub pos: Pos,
}

#[derive(Debug, Clone)]
pub enum ArgRule {
    In(Vec<ArgValue>),
    NotIn(Vec<ArgValue>),
    Min(i64),
    Max(i64),
    /// Whole-match regular expression (anchored at compile time).
    Pattern {
        source: String,
        regex: Regex,
    },
    Prefix(String),
}

impl ArgRule {
    pub fn key(&self) -> &'static str {
        match self {
            Self::In(_) => "in",
            Self::NotIn(_) => "not_in",
            Self::Min(_) => "min",
            Self::Max(_) => "max",
            Self::Pattern { .. } => "pattern",
            Self::Prefix(_) => "prefix",
        }
    }

    /// A short human description: `in [acme, globex]`, `max 100000`.
    pub fn describe(&self) -> String {
        let list = |vs: &[ArgValue]| {
            vs.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        match self {
            Self::In(vs) => format!("one of [{}]", list(vs)),
            Self::NotIn(vs) => format!("none of [{}]", list(vs)),
            Self::Min(n) => format!("at least {n}"),
            Self::Max(n) => format!("at most {n}"),
            Self::Pattern { source, .. } => format!("a whole match of `{source}`"),
            Self::Prefix(p) => format!("a string starting with `{p}`"),
        }
    }
}

/// A literal allowed in `in` / `not_in` lists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum ArgValue {
    Str(String),
    Int(i64),
    Bool(bool),
}

impl std::fmt::Display for ArgValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Str(s) => f.write_str(s),
            Self::Int(i) => write!(f, "{i}"),
            Self::Bool(b) => write!(f, "{b}"),
        }
    }
}

/// A Cedar boolean expression over `context`, checked against the context
/// shape when the manifest is loaded.
#[derive(Debug, Clone)]
pub struct CedarCondition {
    pub expr: String,
    pub pos: Pos,
}

/// `approval:` on a tool grant.
#[derive(Debug, Clone)]
pub struct ApprovalRule {
    /// Absent: every matching action needs approval.
    pub when: Option<CedarCondition>,
    pub approvers: Vec<Approver>,
    pub min_approvals: u32,
    pub ttl: SignedDuration,
    pub allow_owner: bool,
    pub pos: Pos,
}

/// Who may approve: everyone in a group, or one principal.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(into = "String")]
pub enum Approver {
    Group(GroupName),
    Principal(PrincipalId),
}

impl From<Approver> for String {
    fn from(a: Approver) -> String {
        a.to_string()
    }
}

impl std::fmt::Display for Approver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Group(g) => write!(f, "group:{g}"),
            Self::Principal(p) => write!(f, "{p}"),
        }
    }
}

impl std::str::FromStr for Approver {
    type Err = crate::id::IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.strip_prefix("group:") {
            Some(g) => Ok(Self::Group(g.parse()?)),
            None => Ok(Self::Principal(s.parse()?)),
        }
    }
}

/// One entry of `forbid`.
#[derive(Debug, Clone)]
pub struct Forbid {
    pub name: Glob,
    pub pos: Pos,
}

/// One entry of `data`.
#[derive(Debug, Clone)]
pub struct DataGrant {
    pub resource: Glob,
    pub access: Vec<Access>,
    pub pos: Pos,
}

#[derive(Debug, Clone, Default)]
pub struct Limits {
    pub rate: Option<Rate>,
    pub budgets: Vec<Budget>,
}

/// The sum of integer argument `arg` over allowed actions in a rolling `per`
/// window may not exceed `max`; or, with `approval`, may exceed it only by
/// an approved action.
#[derive(Debug, Clone)]
pub struct Budget {
    pub arg: String,
    pub max: i64,
    pub per: SignedDuration,
    /// Over `max`, ask these approvers instead of denying: an action that
    /// would take the window's sum past `max` needs approval, and once
    /// approved spends past it (its `when` is always `None`).
    pub approval: Option<ApprovalRule>,
    pub pos: Pos,
}

#[derive(Debug, Clone)]
pub struct Delegation {
    pub to: Vec<AgentId>,
    pub max_depth: u32,
}

impl Default for Delegation {
    fn default() -> Self {
        Self {
            to: Vec::new(),
            max_depth: 1,
        }
    }
}

/// One entry of `elevation`: extra tools, for a bounded time, on approval or
/// when `auto_grant_when` holds.
#[derive(Debug, Clone)]
pub struct ElevationSpec {
    pub name: String,
    pub tools: Vec<Glob>,
    pub max_duration: SignedDuration,
    pub approvers: Vec<Approver>,
    pub auto_grant_when: Option<CedarCondition>,
    pub pos: Pos,
}

#[derive(Debug, Clone, Default)]
pub struct Monitoring {
    pub log_retrievals: bool,
    pub suspend_after_denials: Option<Rate>,
}

#[derive(Debug, Clone)]
pub struct Credentials {
    pub token_ttl: SignedDuration,
    pub dpop_required: bool,
}

impl Credentials {
    pub const DEFAULT_TTL: SignedDuration = SignedDuration::from_mins(15);
    pub const MAX_TTL: SignedDuration = SignedDuration::from_hours(1);
}

impl Default for Credentials {
    fn default() -> Self {
        Self {
            token_ttl: Self::DEFAULT_TTL,
            dpop_required: false,
        }
    }
}
