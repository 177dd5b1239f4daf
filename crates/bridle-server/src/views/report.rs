//! The compliance report's body (`GET /v1/reports/compliance`): built
//! `From` the service's [`report::Report`]; the Markdown and HTML renderings
//! ([`crate::report`]) are drawn from this very value, so the three formats
//! say the same.

use std::collections::BTreeMap;

use serde::Serialize;
use utoipa::ToSchema;

use crate::service::findings::{FindingCode, Severity};
use crate::service::report::controls::{self, Framework, Status};
use crate::service::report::{self, AgentEvidence};
use crate::views::time::instant;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ComplianceReport {
    /// When the report was made (the end of the window).
    pub generated_at: String,
    /// The window as asked, e.g. `30d`.
    #[schema(example = "30d")]
    pub window: String,
    /// The start of the window.
    pub since: String,
    pub frameworks: Vec<FrameworkView>,
    pub audit_chain: AuditChain,
    /// One entry per agent the caller may see (active and suspended; a
    /// retired agent when named by `agent=`).
    pub agents: Vec<AgentReport>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FrameworkView {
    pub id: Framework,
    pub title: &'static str,
}

/// The whole audit chain as verified when the report was made.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AuditChain {
    /// The chain, the stored head and every signed checkpoint verify.
    pub verified: bool,
    /// Records read.
    pub events: u64,
    pub first_bad_seq: Option<u64>,
    pub latest_checkpoint: Option<CheckpointRef>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CheckpointRef {
    pub seq: u64,
    pub time: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AgentReport {
    #[schema(example = "procurement-bot")]
    pub agent: String,
    pub owner: String,
    pub environment: String,
    /// `active`, `suspended` or `retired`.
    pub state: String,
    pub summary: Summary,
    /// Every control of the three frameworks, in the frameworks' order.
    pub controls: Vec<ControlResult>,
    pub evidence: Evidence,
}

/// How many controls are in each status.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct Summary {
    pub satisfied: u64,
    pub not_satisfied: u64,
    pub not_assessed: u64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ControlResult {
    /// As findings name it, e.g. `OWASP-NHI1:2025`, `NIST-AI-RMF-GOVERN-1.7`.
    pub id: &'static str,
    pub framework: Framework,
    pub title: &'static str,
    /// `not_satisfied`: an open finding maps to it (listed in `findings`);
    /// `satisfied`: a rule checks it and none is open; `not_assessed`: no
    /// rule of Bridle checks it.
    pub status: Status,
    /// The finding rules that check it (empty when not assessed).
    pub rules: Vec<FindingCode>,
    /// The open findings that fail it.
    pub findings: Vec<OpenFinding>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OpenFinding {
    pub code: FindingCode,
    pub severity: Severity,
    pub title: &'static str,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Evidence {
    pub versions: VersionsView,
    /// The last recorded access review (`POST /v1/agents/{id}/review`).
    pub last_review_at: Option<String>,
    pub approvals: ApprovalsView,
    pub audit: AuditRangeView,
    /// Decisions in the window by outcome: `allow`, `deny`, `approval_required`.
    pub decisions: BTreeMap<String, i64>,
    /// Denials in the window by reason code.
    pub denials: BTreeMap<String, i64>,
    /// Every UTC day of the window, oldest first.
    pub activity: Vec<DayView>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct VersionsView {
    /// Manifest versions ever applied.
    pub count: u64,
    /// The version in force.
    pub in_force: i64,
    /// Who applied the version in force.
    pub applied_by: Option<String>,
    pub applied_at: Option<String>,
}

/// Approvals of the agent requested in the window.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ApprovalsView {
    pub requested: u64,
    /// Approved (consumed ones included).
    pub approved: u64,
    pub denied: u64,
    pub expired: u64,
    pub pending: u64,
    pub cancelled: u64,
    /// Seconds from request to decision: the median of the decided ones.
    pub latency_p50_seconds: Option<i64>,
    pub latency_max_seconds: Option<i64>,
    /// Decided approvals per latency bucket (`<1m`, `1-5m`, `5-15m`,
    /// `15-60m`, `1-4h`, `>=4h`).
    pub latency_histogram: Vec<Bucket>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Bucket {
    pub bucket: &'static str,
    pub count: u64,
}

/// The agent's audit records in the window.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AuditRangeView {
    pub events: u64,
    pub first_seq: Option<u64>,
    pub first_at: Option<String>,
    pub last_seq: Option<u64>,
    pub last_at: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DayView {
    /// `YYYY-MM-DD` (UTC).
    pub date: String,
    pub allow: i64,
    pub deny: i64,
    pub approval_required: i64,
}

/// Latency buckets: label and upper bound in seconds (exclusive).
const BUCKETS: [(&str, i64); 6] = [
    ("<1m", 60),
    ("1-5m", 300),
    ("5-15m", 900),
    ("15-60m", 3600),
    ("1-4h", 4 * 3600),
    (">=4h", i64::MAX),
];

fn histogram(latencies: &[i64]) -> Vec<Bucket> {
    let mut out: Vec<Bucket> = BUCKETS
        .iter()
        .map(|(bucket, _)| Bucket { bucket, count: 0 })
        .collect();
    for l in latencies {
        let i = BUCKETS.iter().position(|(_, max)| l < max).unwrap_or(0);
        if let Some(b) = out.get_mut(i) {
            b.count += 1;
        }
    }
    out
}

impl From<report::Report> for ComplianceReport {
    fn from(r: report::Report) -> Self {
        Self {
            generated_at: instant(r.generated_at),
            window: r.window,
            since: instant(r.since),
            frameworks: Framework::ALL
                .into_iter()
                .map(|id| FrameworkView {
                    id,
                    title: id.title(),
                })
                .collect(),
            audit_chain: AuditChain {
                verified: r.chain.verified,
                events: r.chain.events,
                first_bad_seq: r.chain.first_bad_seq,
                latest_checkpoint: r.chain.checkpoint.map(|(seq, t)| CheckpointRef {
                    seq,
                    time: instant(t),
                }),
            },
            agents: r.agents.into_iter().map(AgentReport::from).collect(),
        }
    }
}

impl From<AgentEvidence> for AgentReport {
    fn from(e: AgentEvidence) -> Self {
        let mut summary = Summary::default();
        let controls: Vec<ControlResult> = controls::assess(&e.findings)
            .into_iter()
            .map(|a| {
                match a.status {
                    Status::Satisfied => summary.satisfied += 1,
                    Status::NotSatisfied => summary.not_satisfied += 1,
                    Status::NotAssessed => summary.not_assessed += 1,
                }
                ControlResult {
                    id: a.control.id,
                    framework: a.control.framework,
                    title: a.control.title,
                    status: a.status,
                    rules: a.rules,
                    findings: a
                        .open
                        .into_iter()
                        .map(|f| OpenFinding {
                            code: f.code,
                            severity: f.code.severity(),
                            title: f.code.title(),
                            detail: f.detail.clone(),
                        })
                        .collect(),
                }
            })
            .collect();
        let a = &e.approvals;
        Self {
            agent: e.row.id.to_string(),
            owner: e.row.owner.to_string(),
            environment: e.row.environment.clone(),
            state: e.row.state.as_str().to_owned(),
            summary,
            controls,
            evidence: Evidence {
                versions: VersionsView {
                    count: e.versions.count,
                    in_force: e.versions.in_force,
                    applied_by: e.versions.applied_by.clone(),
                    applied_at: e.versions.applied_at.map(instant),
                },
                last_review_at: e.row.last_review_at.map(instant),
                approvals: ApprovalsView {
                    requested: a.requested,
                    approved: a.approved,
                    denied: a.denied,
                    expired: a.expired,
                    pending: a.pending,
                    cancelled: a.cancelled,
                    latency_p50_seconds: a.p50(),
                    latency_max_seconds: a.max(),
                    latency_histogram: histogram(&a.latencies),
                },
                audit: AuditRangeView {
                    events: e.audit.count,
                    first_seq: e.audit.first.map(|(s, _)| s),
                    first_at: e.audit.first.map(|(_, t)| instant(t)),
                    last_seq: e.audit.last.map(|(s, _)| s),
                    last_at: e.audit.last.map(|(_, t)| instant(t)),
                },
                decisions: e
                    .outcomes
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), *v))
                    .collect(),
                denials: e.denials.clone(),
                activity: e
                    .days
                    .iter()
                    .map(|d| DayView {
                        date: d.date.to_string(),
                        allow: d.allow,
                        deny: d.deny,
                        approval_required: d.approval_required,
                    })
                    .collect(),
            },
        }
    }
}
