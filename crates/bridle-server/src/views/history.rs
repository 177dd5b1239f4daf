//! The history of an agent's record: what a manifest change does, the
//! versions, and diffs between them.

use bridle_core::change::{Change, ChangeEffect};
use bridle_core::id::{ApprovalId, PrincipalId};
use bridle_core::manifest::Warning;
use serde::Serialize;
use utoipa::ToSchema;

use super::agent::AgentRecord;
use crate::service::manifest::{Diff as DomainDiff, Standing, Version};

/// One classified difference between two versions of a manifest.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ChangeView {
    /// Where, by identity rather than position.
    #[schema(example = "tools[procurement.create_purchase_request].args.amount.max")]
    pub path: String,
    pub effect: Effect,
    /// What changed, for a human.
    #[schema(example = "max 100000 → 200000")]
    pub detail: String,
}

/// Whether a change widens, narrows or leaves alone what the agent may do.
/// Anything not provably narrower is `widening`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = ChangeEffect)]
pub enum Effect {
    Widening,
    Narrowing,
    Neutral,
}

impl From<ChangeEffect> for Effect {
    fn from(e: ChangeEffect) -> Self {
        match e {
            ChangeEffect::Widening => Self::Widening,
            ChangeEffect::Narrowing => Self::Narrowing,
            ChangeEffect::Neutral => Self::Neutral,
        }
    }
}

impl From<Change> for ChangeView {
    fn from(c: Change) -> Self {
        Self {
            path: c.path,
            effect: c.effect.into(),
            detail: c.detail,
        }
    }
}

fn views(changes: Vec<Change>) -> Vec<ChangeView> {
    changes.into_iter().map(ChangeView::from).collect()
}

/// The answer to `PUT /v1/agents/{id}`: the agent record, and what the
/// manifest changed against the version it replaced.
#[derive(Debug, Serialize, ToSchema)]
pub struct Applied {
    #[serde(flatten)]
    pub record: AgentRecord,
    pub changes: Vec<ChangeView>,
    /// Meaning-level mistakes the manifest may hold; it applied anyway.
    pub warnings: Vec<WarningView>,
}

impl Applied {
    pub fn new(record: AgentRecord, changes: Vec<Change>, warnings: Vec<Warning>) -> Self {
        Self {
            record,
            changes: views(changes),
            warnings: warnings.into_iter().map(WarningView::from).collect(),
        }
    }
}

/// A manifest warning: where, and what may be a mistake.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct WarningView {
    #[schema(example = "tools[0].approval.approvers[0]")]
    pub path: String,
    /// The YAML line, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    pub message: String,
}

impl From<Warning> for WarningView {
    fn from(w: Warning) -> Self {
        let Warning {
            path,
            line,
            message,
        } = w;
        Self {
            path,
            line,
            message,
        }
    }
}

/// The answer to `PUT /v1/agents/{id}` under change control: the change
/// is proposed, not applied, and waits for a second person's approval.
/// The version in force keeps deciding meanwhile.
#[derive(Debug, Serialize, ToSchema)]
pub struct Proposed {
    /// Always `pending_approval`.
    #[schema(example = "pending_approval")]
    pub state: String,
    /// The `kind: change` approval to vote on (`/v1/approvals/{id}/approve`).
    #[schema(example = "apr_3kq9Zt0bW1xe")]
    pub approval_id: String,
    /// The version it becomes when approved.
    pub version: i64,
    /// The version in force it was compared with (0 for a new agent).
    pub base_version: i64,
    pub changes: Vec<ChangeView>,
    /// Who may approve (`role:admin`, `group:NAME`, principal ids).
    pub approvers: Vec<String>,
    /// The active principals, other than the submitter, who may approve now.
    pub eligible_approvers: Vec<String>,
    pub expires_at: String,
    /// Said when nobody but the submitter could approve: the change cannot
    /// come into force until an eligible approver exists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
    /// Meaning-level mistakes the manifest may hold.
    pub warnings: Vec<WarningView>,
}

impl From<crate::service::manifest::Proposed> for Proposed {
    fn from(p: crate::service::manifest::Proposed) -> Self {
        let warning = p.eligible.is_empty().then(|| {
            "no eligible approver other than the submitter exists; nothing comes into force without a second person".to_owned()
        });
        Self {
            state: "pending_approval".into(),
            approval_id: p.approval.id.into_string(),
            version: p.proposal.version,
            base_version: p.proposal.base_version,
            changes: views(p.changes),
            approvers: p.approval.approvers,
            eligible_approvers: p.eligible,
            expires_at: super::time::instant(p.approval.expires_at),
            warning,
            warnings: p.warnings.into_iter().map(WarningView::from).collect(),
        }
    }
}

/// What `PUT /v1/agents/{id}` answers: the record in force (200/201) or the
/// proposal waiting for approval (202).
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum ApplyAnswer {
    Applied(Applied),
    Proposed(Proposed),
}

/// A version's standing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum VersionState {
    /// The version in force.
    Active,
    /// Replaced by a later version (a proposal: by a later apply).
    Superseded,
    /// Proposed under change control, waiting for its approval.
    Pending,
    /// Proposed and denied, or expired undecided.
    Rejected,
}

impl From<Standing> for VersionState {
    fn from(s: Standing) -> Self {
        match s {
            Standing::Active => Self::Active,
            Standing::Superseded => Self::Superseded,
            Standing::Pending => Self::Pending,
            Standing::Rejected => Self::Rejected,
        }
    }
}

/// One version of an agent's manifest.
#[derive(Debug, Serialize, ToSchema)]
pub struct VersionSummary {
    pub version: i64,
    pub state: VersionState,
    pub created_at: String,
    /// The principal who submitted it.
    pub created_by: String,
    /// What it changed against the version before it (a proposal: against
    /// the version in force when it was proposed).
    pub changes: Vec<ChangeView>,
    /// The change approval it waited for (change control).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval_id: Option<String>,
    /// Who approved it into force (change control's second person).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub approved_by: Vec<String>,
}

impl VersionSummary {
    fn of(v: &mut Version) -> Self {
        Self {
            version: v.version,
            state: v.standing.into(),
            created_at: super::time::instant(v.created_at),
            created_by: v.created_by.to_string(),
            changes: views(std::mem::take(&mut v.changes)),
            approval_id: v.approval_id.take().map(ApprovalId::into_string),
            approved_by: std::mem::take(&mut v.approved_by)
                .into_iter()
                .map(PrincipalId::into_string)
                .collect(),
        }
    }
}

impl From<Version> for VersionSummary {
    fn from(mut v: Version) -> Self {
        Self::of(&mut v)
    }
}

/// The body of `GET /v1/agents/{id}/versions`, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct VersionList {
    pub versions: Vec<VersionSummary>,
}

/// The body of `GET /v1/agents/{id}/versions/{version}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct VersionDetail {
    #[serde(flatten)]
    pub summary: VersionSummary,
    /// The manifest text exactly as submitted.
    pub source: String,
    /// The manifest, as JSON.
    #[schema(value_type = Object)]
    pub manifest: serde_json::Value,
}

impl From<Version> for VersionDetail {
    fn from(mut v: Version) -> Self {
        Self {
            summary: VersionSummary::of(&mut v),
            source: v.source,
            manifest: v.manifest,
        }
    }
}

/// The body of `GET /v1/agents/{id}/diff`.
#[derive(Debug, Serialize, ToSchema)]
pub struct DiffView {
    /// The earlier version (0: nothing, as before the agent existed).
    pub from: i64,
    pub to: i64,
    /// A unified diff of the two manifest texts.
    pub unified: String,
    /// The classified changes from `from` to `to`.
    pub changes: Vec<ChangeView>,
}

impl From<DomainDiff> for DiffView {
    fn from(d: DomainDiff) -> Self {
        Self {
            from: d.from,
            to: d.to,
            unified: d.unified,
            changes: views(d.changes),
        }
    }
}
