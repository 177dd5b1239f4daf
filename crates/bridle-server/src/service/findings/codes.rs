//! The kinds of posture finding: each one's name, severity, title,
//! remediation and the framework controls it maps to (OWASP Non-Human
//! Identity Top 10 2025, OWASP Top 10 for Agentic Applications 2026, NIST AI
//! RMF), stated once, here.

use serde::Serialize;
use utoipa::ToSchema;

/// The kinds of finding, as the API names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FindingCode {
    AgentExpired,
    OwnerOrphaned,
    ReviewOverdue,
    NoReviewCadence,
    WildcardGrant,
    PrivilegedWithoutApproval,
    LongTokenTtl,
    BearerTokensInProd,
    DelegationWithoutForbids,
    StaleClientSecret,
    ManyActiveCredentials,
    SharedSecretInProd,
    AuthFailures,
    UnboundedWrite,
    ProdDelegatesToNonProd,
    Inactive,
    UnusedGrants,
    ManyDenials,
    ApprovalStructuring,
}

/// How much a finding matters: `high`, `medium`, `low` or `info`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    High,
    Medium,
    Low,
    Info,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::High => "high",
            Self::Medium => "medium",
            Self::Low => "low",
            Self::Info => "info",
        }
    }
}

impl FindingCode {
    pub const ALL: [FindingCode; 19] = [
        Self::AgentExpired,
        Self::OwnerOrphaned,
        Self::ReviewOverdue,
        Self::NoReviewCadence,
        Self::WildcardGrant,
        Self::PrivilegedWithoutApproval,
        Self::LongTokenTtl,
        Self::BearerTokensInProd,
        Self::DelegationWithoutForbids,
        Self::StaleClientSecret,
        Self::ManyActiveCredentials,
        Self::SharedSecretInProd,
        Self::AuthFailures,
        Self::UnboundedWrite,
        Self::ProdDelegatesToNonProd,
        Self::Inactive,
        Self::UnusedGrants,
        Self::ManyDenials,
        Self::ApprovalStructuring,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::AgentExpired => "agent_expired",
            Self::OwnerOrphaned => "owner_orphaned",
            Self::ReviewOverdue => "review_overdue",
            Self::NoReviewCadence => "no_review_cadence",
            Self::WildcardGrant => "wildcard_grant",
            Self::PrivilegedWithoutApproval => "privileged_without_approval",
            Self::LongTokenTtl => "long_token_ttl",
            Self::BearerTokensInProd => "bearer_tokens_in_prod",
            Self::DelegationWithoutForbids => "delegation_without_forbids",
            Self::StaleClientSecret => "stale_client_secret",
            Self::ManyActiveCredentials => "many_active_credentials",
            Self::SharedSecretInProd => "shared_secret_in_prod",
            Self::AuthFailures => "auth_failures",
            Self::UnboundedWrite => "unbounded_write",
            Self::ProdDelegatesToNonProd => "prod_delegates_to_non_prod",
            Self::Inactive => "inactive",
            Self::UnusedGrants => "unused_grants",
            Self::ManyDenials => "many_denials",
            Self::ApprovalStructuring => "approval_structuring",
        }
    }

    pub fn severity(self) -> Severity {
        match self {
            Self::AgentExpired => Severity::High,
            Self::OwnerOrphaned => Severity::High,
            Self::ReviewOverdue => Severity::Medium,
            Self::NoReviewCadence => Severity::Low,
            Self::WildcardGrant => Severity::High,
            Self::PrivilegedWithoutApproval => Severity::Medium,
            Self::LongTokenTtl => Severity::Low,
            Self::BearerTokensInProd => Severity::Info,
            Self::DelegationWithoutForbids => Severity::Medium,
            Self::StaleClientSecret => Severity::Medium,
            Self::ManyActiveCredentials => Severity::Low,
            Self::SharedSecretInProd => Severity::Info,
            Self::AuthFailures => Severity::High,
            Self::UnboundedWrite => Severity::Medium,
            Self::ProdDelegatesToNonProd => Severity::High,
            Self::Inactive => Severity::Low,
            Self::UnusedGrants => Severity::Low,
            Self::ManyDenials => Severity::Medium,
            Self::ApprovalStructuring => Severity::High,
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Self::AgentExpired => "Agent past its expiry is still registered",
            Self::OwnerOrphaned => "Agent has no active accountable owner",
            Self::ReviewOverdue => "Access review overdue",
            Self::NoReviewCadence => "Production agent without a review cadence",
            Self::WildcardGrant => "Grant of every tool",
            Self::PrivilegedWithoutApproval => "Admin or export access without human approval",
            Self::LongTokenTtl => "Access tokens live longer than 15 minutes",
            Self::BearerTokensInProd => "Production tokens are not sender-constrained",
            Self::DelegationWithoutForbids => "Delegating agent has no explicit forbids",
            Self::StaleClientSecret => "Client secret not rotated in 90 days",
            Self::ManyActiveCredentials => "Several active OAuth clients for one agent",
            Self::SharedSecretInProd => "Production agent authenticates with a shared secret",
            Self::AuthFailures => "Repeated failed authentication of the agent's clients",
            Self::UnboundedWrite => "Write tool with neither an approval rule nor a budget",
            Self::ProdDelegatesToNonProd => {
                "Production agent delegates to an agent outside production"
            }
            Self::Inactive => "Agent has not acted for a long time",
            Self::UnusedGrants => "Grants not used in the usage window",
            Self::ManyDenials => "Many denied actions in the last day",
            Self::ApprovalStructuring => "Requests just under an approval threshold add up over it",
        }
    }

    /// What to do about it.
    pub fn remediation(self) -> &'static str {
        match self {
            Self::AgentExpired => {
                "Retire the agent (`bridle agent retire`), or renew its record with a later `expires`."
            }
            Self::OwnerOrphaned => {
                "Give the agent an active owner (a new manifest version with `owner`), or suspend it until one is found."
            }
            Self::ReviewOverdue => {
                "Have the owner review the agent's access and record it (`POST /v1/agents/{id}/review`)."
            }
            Self::NoReviewCadence => {
                "Set `review_every` (for example `90d`) so the agent's access is re-certified."
            }
            Self::WildcardGrant => {
                "Replace `*` with the tools the agent uses (`bridle agent suggest` proposes them from its usage)."
            }
            Self::PrivilegedWithoutApproval => {
                "Add an `approval` rule to the grant, so a person confirms each admin or export action."
            }
            Self::LongTokenTtl => "Lower `credentials.token_ttl` to 15 minutes or less.",
            Self::BearerTokensInProd => {
                "Set `credentials.dpop: required` and give the agent a DPoP key."
            }
            Self::DelegationWithoutForbids => {
                "List under `forbid` what must never happen, even through a delegate."
            }
            Self::StaleClientSecret => {
                "Rotate the secret (`bridle agent credentials rotate`) or register a public key (`private_key_jwt`)."
            }
            Self::ManyActiveCredentials => {
                "Give each deployment its own agent, and revoke the clients no longer in use."
            }
            Self::SharedSecretInProd => {
                "Register a public key (`private_key_jwt`) and revoke the secret clients."
            }
            Self::AuthFailures => {
                "Find the source in the audit log; revoke or rotate the credential if it is being guessed or leaked."
            }
            Self::UnboundedWrite => {
                "Add an `approval` rule or a budget (`limits.budgets`) that bounds the tool's effect."
            }
            Self::ProdDelegatesToNonProd => {
                "Delegate only to production agents, or remove the delegate from `delegation.to`."
            }
            Self::Inactive => {
                "Retire the agent if it is no longer needed; an unused identity is an attack surface."
            }
            Self::UnusedGrants => {
                "Remove the unused grants (`bridle agent suggest` writes the narrowed manifest)."
            }
            Self::ManyDenials => {
                "Find out why the agent keeps trying what it may not do (`bridle audit list --agent`); suspend it if it is misbehaving."
            }
            Self::ApprovalStructuring => {
                "Look at the requests and their sum; bound the sum with a budget (`limits.budgets` on the argument, `per` the window; with `approval`, past its maximum an action asks the approvers instead of being denied), or lower the threshold."
            }
        }
    }

    /// The framework controls it maps to.
    pub fn frameworks(self) -> &'static [&'static str] {
        match self {
            Self::AgentExpired => &[
                "OWASP-NHI1:2025",
                "OWASP-ASI10:2026",
                "NIST-AI-RMF-GOVERN-1.7",
            ],
            Self::OwnerOrphaned => &[
                "OWASP-NHI1:2025",
                "OWASP-ASI10:2026",
                "NIST-AI-RMF-GOVERN-2.1",
            ],
            Self::ReviewOverdue => &["OWASP-NHI5:2025", "NIST-AI-RMF-GOVERN-1.5"],
            Self::NoReviewCadence => &["OWASP-NHI5:2025", "NIST-AI-RMF-GOVERN-1.5"],
            Self::WildcardGrant => &[
                "OWASP-NHI5:2025",
                "OWASP-ASI03:2026",
                "OWASP-ASI02:2026",
                "NIST-AI-RMF-MANAGE-1.3",
            ],
            Self::PrivilegedWithoutApproval => &[
                "OWASP-NHI5:2025",
                "OWASP-ASI03:2026",
                "OWASP-ASI09:2026",
                "NIST-AI-RMF-MANAGE-2.4",
            ],
            Self::LongTokenTtl => &["OWASP-NHI7:2025", "NIST-AI-RMF-MEASURE-2.7"],
            Self::BearerTokensInProd => &[
                "OWASP-NHI2:2025",
                "OWASP-NHI4:2025",
                "NIST-AI-RMF-MEASURE-2.7",
            ],
            Self::DelegationWithoutForbids => &[
                "OWASP-ASI07:2026",
                "OWASP-ASI03:2026",
                "NIST-AI-RMF-MAP-4.1",
            ],
            Self::StaleClientSecret => &[
                "OWASP-NHI7:2025",
                "OWASP-NHI2:2025",
                "NIST-AI-RMF-MANAGE-2.4",
            ],
            Self::ManyActiveCredentials => &[
                "OWASP-NHI9:2025",
                "OWASP-NHI1:2025",
                "NIST-AI-RMF-GOVERN-1.6",
            ],
            Self::SharedSecretInProd => &[
                "OWASP-NHI4:2025",
                "OWASP-NHI2:2025",
                "NIST-AI-RMF-MEASURE-2.7",
            ],
            Self::AuthFailures => &[
                "OWASP-NHI4:2025",
                "OWASP-NHI2:2025",
                "OWASP-ASI03:2026",
                "NIST-AI-RMF-MEASURE-2.7",
            ],
            Self::UnboundedWrite => &[
                "OWASP-ASI02:2026",
                "OWASP-NHI5:2025",
                "NIST-AI-RMF-MANAGE-1.3",
            ],
            Self::ProdDelegatesToNonProd => &[
                "OWASP-NHI8:2025",
                "OWASP-ASI07:2026",
                "OWASP-ASI03:2026",
                "NIST-AI-RMF-MAP-4.1",
            ],
            Self::Inactive => &["OWASP-NHI1:2025", "NIST-AI-RMF-GOVERN-1.7"],
            Self::UnusedGrants => &[
                "OWASP-NHI5:2025",
                "OWASP-ASI03:2026",
                "NIST-AI-RMF-MANAGE-1.3",
            ],
            Self::ManyDenials => &[
                "OWASP-ASI10:2026",
                "OWASP-ASI01:2026",
                "NIST-AI-RMF-MEASURE-3.1",
            ],
            Self::ApprovalStructuring => &[
                "OWASP-ASI09:2026",
                "OWASP-ASI02:2026",
                "OWASP-ASI10:2026",
                "NIST-AI-RMF-MEASURE-3.1",
            ],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_is_named_as_serialized_and_maps_to_controls() {
        for code in FindingCode::ALL {
            assert_eq!(
                serde_json::to_value(code).ok(),
                Some(serde_json::Value::from(code.as_str()))
            );
            assert!(!code.title().is_empty() && !code.remediation().is_empty());
            assert!(
                code.frameworks().iter().any(|f| f.starts_with("OWASP-"))
                    && code
                        .frameworks()
                        .iter()
                        .any(|f| f.starts_with("NIST-AI-RMF-")),
                "{code:?}"
            );
        }
    }
}
