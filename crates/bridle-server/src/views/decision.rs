//! What a decision says and why: the wire form of `bridle_core::decision`.

use bridle_core::decision as core;
use serde::Serialize;
use utoipa::ToSchema;

/// What a decision says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    Allow,
    Deny,
    ApprovalRequired,
}

impl From<core::Effect> for Effect {
    fn from(e: core::Effect) -> Self {
        match e {
            core::Effect::Allow => Self::Allow,
            core::Effect::Deny => Self::Deny,
            core::Effect::ApprovalRequired => Self::ApprovalRequired,
        }
    }
}

/// Why a decision came out as it did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Reason {
    pub code: ReasonCode,
    pub message: String,
    /// The manifest element that decided.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<SourceRef>,
}

impl From<core::Reason> for Reason {
    fn from(r: core::Reason) -> Self {
        let core::Reason {
            code,
            message,
            source,
        } = r;
        Self {
            code: code.into(),
            message,
            source: source.map(SourceRef::from),
        }
    }
}

/// The manifest element that decided: its path and line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct SourceRef {
    /// The agent whose record it is (differs from the caller in delegation).
    pub agent: String,
    /// Path in the manifest (`tools[1].args.amount.max`), or a guardrail name.
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
}

impl From<core::SourceRef> for SourceRef {
    fn from(s: core::SourceRef) -> Self {
        let core::SourceRef { agent, path, line } = s;
        Self { agent, path, line }
    }
}

/// A stable reason code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
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

impl From<core::ReasonCode> for ReasonCode {
    fn from(c: core::ReasonCode) -> Self {
        use core::ReasonCode as C;
        match c {
            C::Granted => Self::Granted,
            C::Approved => Self::Approved,
            C::NotGranted => Self::NotGranted,
            C::Forbidden => Self::Forbidden,
            C::ArgConstraint => Self::ArgConstraint,
            C::DataScope => Self::DataScope,
            C::OutsideSchedule => Self::OutsideSchedule,
            C::AgentSuspended => Self::AgentSuspended,
            C::AgentProposed => Self::AgentProposed,
            C::AgentExpired => Self::AgentExpired,
            C::RateLimited => Self::RateLimited,
            C::BudgetExceeded => Self::BudgetExceeded,
            C::ApprovalRequired => Self::ApprovalRequired,
            C::ApprovalDenied => Self::ApprovalDenied,
            C::DelegationScope => Self::DelegationScope,
            C::Elevated => Self::Elevated,
        }
    }
}

/// What the caller must do along with an allowed action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Obligation {
    LogRetrieval,
}

impl From<core::Obligation> for Obligation {
    fn from(o: core::Obligation) -> Self {
        match o {
            core::Obligation::LogRetrieval => Self::LogRetrieval,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The view spells every reason code as the domain does (the audit log
    /// stores the domain's spelling; the API must not disagree with it).
    #[test]
    fn reason_codes_serialize_as_the_domain_spells_them() {
        for code in core::ReasonCode::ALL {
            let view = serde_json::to_value(ReasonCode::from(code)).ok();
            assert_eq!(
                view,
                Some(serde_json::Value::from(code.as_str())),
                "{code:?}"
            );
        }
    }

    #[test]
    fn a_reason_serializes_like_the_domain_reason() {
        let domain = core::Reason {
            code: core::ReasonCode::ArgConstraint,
            message: "amount above 500".into(),
            source: Some(core::SourceRef {
                agent: "procurement-bot".into(),
                path: "tools[1].args.amount.max".into(),
                line: Some(12),
            }),
        };
        let plain = core::Reason {
            source: None,
            ..domain.clone()
        };
        for r in [domain, plain] {
            assert_eq!(
                serde_json::to_value(Reason::from(r.clone())).ok(),
                serde_json::to_value(&r).ok()
            );
        }
    }
}
