//! What a decision says: the effect, stable reason codes with messages and the
//! manifest lines that decided, obligations, and approval bookkeeping.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::id::ApprovalId;
use crate::manifest::Approver;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    Allow,
    Deny,
    ApprovalRequired,
}

impl Effect {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
            Self::ApprovalRequired => "approval_required",
        }
    }
}

impl fmt::Display for Effect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The stable reason codes of the API contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReasonCode {
    Granted,
    Approved,
    NotGranted,
    Forbidden,
    ArgConstraint,
    DataScope,
    OutsideSchedule,
    AgentSuspended,
    AgentProposed,
    AgentExpired,
    RateLimited,
    BudgetExceeded,
    ApprovalRequired,
    ApprovalDenied,
    DelegationScope,
    Elevated,
}

impl ReasonCode {
    pub const ALL: [ReasonCode; 16] = [
        Self::Granted,
        Self::Approved,
        Self::NotGranted,
        Self::Forbidden,
        Self::ArgConstraint,
        Self::DataScope,
        Self::OutsideSchedule,
        Self::AgentSuspended,
        Self::AgentProposed,
        Self::AgentExpired,
        Self::RateLimited,
        Self::BudgetExceeded,
        Self::ApprovalRequired,
        Self::ApprovalDenied,
        Self::DelegationScope,
        Self::Elevated,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Granted => "granted",
            Self::Approved => "approved",
            Self::NotGranted => "not_granted",
            Self::Forbidden => "forbidden",
            Self::ArgConstraint => "arg_constraint",
            Self::DataScope => "data_scope",
            Self::OutsideSchedule => "outside_schedule",
            Self::AgentSuspended => "agent_suspended",
            Self::AgentProposed => "agent_proposed",
            Self::AgentExpired => "agent_expired",
            Self::RateLimited => "rate_limited",
            Self::BudgetExceeded => "budget_exceeded",
            Self::ApprovalRequired => "approval_required",
            Self::ApprovalDenied => "approval_denied",
            Self::DelegationScope => "delegation_scope",
            Self::Elevated => "elevated",
        }
    }
}

impl fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The manifest element that decided: its path and line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceRef {
    /// The agent whose record it is (differs from the caller in delegation).
    pub agent: String,
    /// Path in the manifest (`tools[1].args.amount.max`), or a guardrail name.
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reason {
    pub code: ReasonCode,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<SourceRef>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Obligation {
    LogRetrieval,
}

/// What an approval for this exact action must look like, when one is needed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApprovalNeed {
    /// Binds the approval to agent, delegation chain, action, canonical
    /// arguments and resource.
    pub key: String,
    pub approvers: Vec<Approver>,
    pub min_approvals: u32,
    pub ttl_seconds: i64,
    pub allow_owner: bool,
    /// A pending approval for the same key already exists.
    pub pending: Option<ApprovalId>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub effect: Effect,
    pub reasons: Vec<Reason>,
    pub obligations: Vec<Obligation>,
    /// Set when `effect` is `approval_required`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval: Option<ApprovalNeed>,
    /// The granted approval this decision consumes (reason `approved`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consumes: Option<ApprovalId>,
}

impl Decision {
    pub(crate) fn deny(reason: Reason) -> Self {
        Self {
            effect: Effect::Deny,
            reasons: vec![reason],
            obligations: Vec::new(),
            approval: None,
            consumes: None,
        }
    }

    pub fn primary_code(&self) -> Option<ReasonCode> {
        self.reasons.first().map(|r| r.code)
    }
}
