//! The controls of the three frameworks Bridle reports against, and how one
//! agent stands against each: **not satisfied** when an open finding of
//! the agent maps to it, **satisfied** when some finding rule maps to it
//! and none is open, **not assessed** when no rule maps to it (Bridle
//! checks nothing there, and says so).
//!
//! Ids are spelled exactly as [`FindingCode::frameworks`] spells them;
//! titles are the frameworks' own (OWASP's risk names, NIST AI RMF's
//! subcategory statements, shortened).

use serde::Serialize;
use utoipa::ToSchema;

use crate::service::findings::{Finding, FindingCode};

/// A framework of the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, ToSchema)]
pub enum Framework {
    /// OWASP Non-Human Identities Top 10 (2025).
    #[serde(rename = "OWASP-NHI:2025")]
    OwaspNhi2025,
    /// OWASP Top 10 for Agentic Applications (2026).
    #[serde(rename = "OWASP-ASI:2026")]
    OwaspAgentic2026,
    /// NIST AI Risk Management Framework 1.0.
    #[serde(rename = "NIST-AI-RMF")]
    NistAiRmf,
}

impl Framework {
    pub const ALL: [Self; 3] = [Self::OwaspNhi2025, Self::OwaspAgentic2026, Self::NistAiRmf];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::OwaspNhi2025 => "OWASP-NHI:2025",
            Self::OwaspAgentic2026 => "OWASP-ASI:2026",
            Self::NistAiRmf => "NIST-AI-RMF",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Self::OwaspNhi2025 => "OWASP Non-Human Identities Top 10 (2025)",
            Self::OwaspAgentic2026 => "OWASP Top 10 for Agentic Applications (2026)",
            Self::NistAiRmf => "NIST AI Risk Management Framework 1.0",
        }
    }
}

/// One control of a framework.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Control {
    pub id: &'static str,
    pub framework: Framework,
    pub title: &'static str,
}

const fn c(framework: Framework, id: &'static str, title: &'static str) -> Control {
    Control {
        id,
        framework,
        title,
    }
}

use Framework::{NistAiRmf as Nist, OwaspAgentic2026 as Asi, OwaspNhi2025 as Nhi};

/// Every control the report lists, by framework, in the frameworks' order.
/// NIST AI RMF has 72 subcategories; the report lists those a finding rule
/// maps to (a control listed here with no rule is reported not assessed).
pub const CONTROLS: &[Control] = &[
    c(Nhi, "OWASP-NHI1:2025", "Improper Offboarding"),
    c(Nhi, "OWASP-NHI2:2025", "Secret Leakage"),
    c(Nhi, "OWASP-NHI3:2025", "Vulnerable Third-Party NHI"),
    c(Nhi, "OWASP-NHI4:2025", "Insecure Authentication"),
    c(Nhi, "OWASP-NHI5:2025", "Overprivileged NHI"),
    c(
        Nhi,
        "OWASP-NHI6:2025",
        "Insecure Cloud Deployment Configurations",
    ),
    c(Nhi, "OWASP-NHI7:2025", "Long-Lived Secrets"),
    c(Nhi, "OWASP-NHI8:2025", "Environment Isolation"),
    c(Nhi, "OWASP-NHI9:2025", "NHI Reuse"),
    c(Nhi, "OWASP-NHI10:2025", "Human Use of NHI"),
    c(Asi, "OWASP-ASI01:2026", "Agent Goal Hijack"),
    c(Asi, "OWASP-ASI02:2026", "Tool Misuse and Exploitation"),
    c(Asi, "OWASP-ASI03:2026", "Identity and Privilege Abuse"),
    c(
        Asi,
        "OWASP-ASI04:2026",
        "Agentic Supply Chain Vulnerabilities",
    ),
    c(Asi, "OWASP-ASI05:2026", "Unexpected Code Execution"),
    c(Asi, "OWASP-ASI06:2026", "Memory and Context Poisoning"),
    c(
        Asi,
        "OWASP-ASI07:2026",
        "Insecure Inter-Agent Communication",
    ),
    c(Asi, "OWASP-ASI08:2026", "Cascading Failures"),
    c(Asi, "OWASP-ASI09:2026", "Human-Agent Trust Exploitation"),
    c(Asi, "OWASP-ASI10:2026", "Rogue Agents"),
    c(
        Nist,
        "NIST-AI-RMF-GOVERN-1.5",
        "Ongoing monitoring and periodic review of the risk management process are planned, with the frequency of review",
    ),
    c(
        Nist,
        "NIST-AI-RMF-GOVERN-1.6",
        "Mechanisms are in place to inventory AI systems",
    ),
    c(
        Nist,
        "NIST-AI-RMF-GOVERN-1.7",
        "Processes are in place for decommissioning and phasing out AI systems safely",
    ),
    c(
        Nist,
        "NIST-AI-RMF-GOVERN-2.1",
        "Roles, responsibilities and lines of communication for AI risks are documented and clear",
    ),
    c(
        Nist,
        "NIST-AI-RMF-MAP-4.1",
        "Approaches for mapping the risks of AI components, third-party ones included, are in place and documented",
    ),
    c(
        Nist,
        "NIST-AI-RMF-MEASURE-2.7",
        "AI system security and resilience are evaluated and documented",
    ),
    c(
        Nist,
        "NIST-AI-RMF-MEASURE-3.1",
        "Approaches, personnel and documentation are in place to regularly identify and track existing, unanticipated and emergent AI risks",
    ),
    c(
        Nist,
        "NIST-AI-RMF-MANAGE-1.3",
        "Responses to the high-priority AI risks are developed, planned and documented",
    ),
    c(
        Nist,
        "NIST-AI-RMF-MANAGE-2.4",
        "Mechanisms are in place to supersede, disengage or deactivate AI systems that act outside their intended use",
    ),
];

/// How an agent stands against a control.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Satisfied,
    NotSatisfied,
    NotAssessed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Satisfied => "satisfied",
            Self::NotSatisfied => "not_satisfied",
            Self::NotAssessed => "not_assessed",
        }
    }
}

/// One control assessed for one agent: the rules that check it, and the
/// open findings that fail it.
#[derive(Debug, Clone)]
pub struct Assessment<'a> {
    pub control: Control,
    pub status: Status,
    pub rules: Vec<FindingCode>,
    pub open: Vec<&'a Finding>,
}

/// The finding rules that map to control `id`.
pub fn rules(id: &str) -> Vec<FindingCode> {
    FindingCode::ALL
        .iter()
        .copied()
        .filter(|code| code.frameworks().contains(&id))
        .collect()
}

/// Every control of [`CONTROLS`] assessed against one agent's open
/// `findings` (all of them the agent's).
pub fn assess(findings: &[Finding]) -> Vec<Assessment<'_>> {
    CONTROLS
        .iter()
        .map(|control| {
            let rules = rules(control.id);
            let open: Vec<&Finding> = findings
                .iter()
                .filter(|f| f.code.frameworks().contains(&control.id))
                .collect();
            let status = if !open.is_empty() {
                Status::NotSatisfied
            } else if rules.is_empty() {
                Status::NotAssessed
            } else {
                Status::Satisfied
            };
            Assessment {
                control: *control,
                status,
                rules,
                open,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A finding rule naming a control the catalogue lacks would fail
    /// nothing in the report: every id a rule maps to is listed.
    #[test]
    fn every_control_a_rule_names_is_in_the_catalogue() {
        for code in FindingCode::ALL {
            for id in code.frameworks() {
                assert!(
                    CONTROLS.iter().any(|c| c.id == *id),
                    "{code:?} maps to `{id}`, which the catalogue lacks"
                );
            }
        }
        let mut ids: Vec<&str> = CONTROLS.iter().map(|c| c.id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), CONTROLS.len(), "a control is listed twice");
        for f in Framework::ALL {
            assert!(CONTROLS.iter().any(|c| c.framework == f), "{f:?}");
        }
    }

    #[test]
    fn open_findings_fail_their_controls_and_unmapped_controls_are_not_assessed() {
        let agent: bridle_core::id::AgentId = "swe-bot".parse().unwrap_or_else(|_| unreachable!());
        let findings = vec![Finding {
            agent,
            code: FindingCode::WildcardGrant,
            subject: String::new(),
            evidence: serde_json::Value::Null,
            detail: "tools[0] grants `*`".into(),
        }];
        let by_id = |a: &[Assessment<'_>], id: &str| {
            a.iter()
                .find(|x| x.control.id == id)
                .map(|x| (x.status, x.open.len()))
        };
        let a = assess(&findings);
        assert_eq!(
            by_id(&a, "OWASP-NHI5:2025"),
            Some((Status::NotSatisfied, 1))
        );
        assert_eq!(by_id(&a, "OWASP-NHI7:2025"), Some((Status::Satisfied, 0)));
        assert_eq!(
            by_id(&a, "OWASP-ASI05:2026"),
            Some((Status::NotAssessed, 0))
        );
        let clean = assess(&[]);
        assert!(clean.iter().all(|x| x.status != Status::NotSatisfied));
        assert!(
            clean
                .iter()
                .filter(|x| x.status == Status::Satisfied)
                .all(|x| !x.rules.is_empty())
        );
    }
}
