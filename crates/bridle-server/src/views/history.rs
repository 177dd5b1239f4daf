//! The history of an agent's record: what a manifest change does, the
//! versions, and diffs between them.

use bridle_core::change::{Change, ChangeEffect};
use serde::Serialize;
use utoipa::ToSchema;

use super::agent::AgentRecord;
use crate::service::manifest::{Diff as DomainDiff, Version};

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
}

impl Applied {
    pub fn new(record: AgentRecord, changes: Vec<Change>) -> Self {
        Self {
            record,
            changes: views(changes),
        }
    }
}

/// A version's standing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum VersionState {
    /// The version in force.
    Active,
    /// Replaced by a later version.
    Superseded,
}

/// One version of an agent's manifest.
#[derive(Debug, Serialize, ToSchema)]
pub struct VersionSummary {
    pub version: i64,
    pub state: VersionState,
    pub created_at: String,
    /// The principal who submitted it.
    pub created_by: String,
    /// What it changed against the version before it.
    pub changes: Vec<ChangeView>,
}

impl From<Version> for VersionSummary {
    fn from(v: Version) -> Self {
        Self {
            version: v.stored.version,
            state: if v.active {
                VersionState::Active
            } else {
                VersionState::Superseded
            },
            created_at: v.stored.created_at,
            created_by: v.stored.created_by,
            changes: views(v.changes),
        }
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
    fn from(v: Version) -> Self {
        let source = v.stored.source.clone();
        let manifest = v.stored.manifest.clone();
        Self {
            summary: v.into(),
            source,
            manifest,
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
