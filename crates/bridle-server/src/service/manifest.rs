//! Changing an agent's record: who may apply a manifest, what it changes
//! against the version in force, and the history of versions.
//!
//! apply: authorize (before the body is read) → parse and compile → check
//! ownership → classify against the version in force → either store the
//! version with its changes, or — for a widening change or a new agent in an
//! environment under change control — propose it with a `kind: change`
//! approval → cache → audit (`manifest`, with version, submitter, changes
//! and the SHA-256 of the source).
//!
//! A proposal comes into force only through [`decided`], when someone other
//! than its submitter approves it; it is discarded when denied or when it
//! expires ([`expire_overdue`]).

use bridle_core::audit::EventType;
use bridle_core::change::{Change, ChangeEffect, classify, is_widening};
use bridle_core::engine::AgentState;
use bridle_core::id::{AgentId, ApprovalId, PrincipalId};
use bridle_core::manifest::{Approver, Warning};
use bridle_core::{CompiledAgent, Manifest, ManifestErrors};
use bridle_store::{
    AgentRow, AgentVersion, Approval, ApprovalKind, ApprovalState, ApprovalStore, NewApproval,
    PrincipalStore, Proposal, ProposalState, ProposalStore, RegistryRead, RegistryWrite,
};
use sha2::{Digest, Sha256};

use super::ServiceError;
use crate::auth::Caller;
use crate::state::AppState;
use crate::tokens::new_id;
use jiff::Timestamp;

/// What applying a manifest did.
#[derive(Debug)]
pub enum Outcome {
    /// In force now.
    Applied(Box<Applied>),
    /// Waiting for a second person's approval (change control).
    Proposed(Box<Proposed>),
}

/// A manifest applied: the record now in force and what it changed.
#[derive(Debug)]
pub struct Applied {
    pub row: AgentRow,
    pub created: bool,
    pub changes: Vec<Change>,
    /// Meaning-level mistakes the manifest may hold (it applied anyway).
    pub warnings: Vec<Warning>,
}

/// A manifest proposed: the version it would become, its approval, what it
/// changes, and who besides the submitter could approve it.
#[derive(Debug)]
pub struct Proposed {
    pub proposal: Proposal,
    pub approval: Approval,
    pub changes: Vec<Change>,
    /// Active principals other than the submitter who may approve it; empty
    /// means nobody can, and the answer says so.
    pub eligible: Vec<String>,
    pub warnings: Vec<Warning>,
}

/// Whether `caller` may apply a manifest to `id` at all, decided before its
/// body is read (a caller who may not apply learns nothing and costs
/// nothing): an admin, or the current owner of an existing, live agent.
/// Returns the agent as it is now (`None` for a new id).
pub async fn authorize(
    state: &AppState,
    caller: &Caller,
    id: &AgentId,
) -> Result<Option<AgentRow>, ServiceError> {
    let principal = caller.principal().ok_or_else(|| {
        ServiceError::Refused("this endpoint is for principals, not agents".into())
    })?;
    // An expired proposal no longer holds anything (a new agent's id is
    // free again once its proposal has expired).
    expire_overdue(state).await?;
    let existing = state.store().agent(id).await?;
    if let Some(row) = &existing {
        if !(caller.is_admin() || row.owner == principal.id) {
            return Err(ServiceError::Refused(
                "only an admin or the agent's owner may apply its manifest".into(),
            ));
        }
        if row.state == AgentState::Retired {
            return Err(ServiceError::Conflict(format!(
                "agent `{id}` is retired; retirement is final"
            )));
        }
    }
    Ok(existing)
}

/// Apply `source` to `id` as `caller`, who passed [`authorize`] with
/// `existing`.
pub async fn apply(
    state: &AppState,
    caller: &Caller,
    id: &AgentId,
    existing: Option<AgentRow>,
    source: String,
) -> Result<Outcome, ServiceError> {
    let principal = caller.principal().ok_or_else(|| {
        ServiceError::Refused("this endpoint is for principals, not agents".into())
    })?;
    // Parsing and compiling are CPU work bounded by `manifest::limits`; they
    // run on the blocking pool so no async worker (and no other caller's
    // decision) waits for them. The version in force is parsed there too,
    // to classify the change against it.
    let (manifest, compiled, source, in_force) = {
        let guardrails = state.guardrails.clone();
        // A new agent's placeholder is not a version in force: its
        // proposal is compared with nothing, like any new agent.
        let in_force_source = existing
            .as_ref()
            .filter(|row| row.state != AgentState::Proposed)
            .map(|row| row.source.clone());
        tokio::task::spawn_blocking(move || {
            let manifest = Manifest::from_source(&source).map_err(ServiceError::Manifest)?;
            // Compile before storing: a manifest that cannot be enforced is not accepted.
            let compiled = CompiledAgent::compile(manifest.clone(), &guardrails)
                .map_err(|e| ServiceError::Compile(e.to_string()))?;
            let in_force = in_force_source.map(|s| Manifest::from_source(&s));
            Ok::<_, ServiceError>((manifest, compiled, source, in_force))
        })
        .await
        .map_err(|e| ServiceError::Task(format!("parsing a manifest failed: {e}")))??
    };
    if manifest.agent != *id {
        return Err(ServiceError::Mismatch(format!(
            "the path names `{id}` but the manifest's `agent` is `{}`",
            manifest.agent
        )));
    }
    // Ownership is authority over the record: only an admin gives an agent
    // to someone else, at creation or later (an owner who could hand its
    // agent away could then approve that agent's requests as a bystander).
    match &existing {
        None if !(caller.is_admin() || manifest.owner == principal.id) => {
            return Err(ServiceError::Refused(format!(
                "only an admin may create an agent for another owner (`{}`)",
                manifest.owner
            )));
        }
        Some(row) if row.owner != manifest.owner && !caller.is_admin() => {
            return Err(ServiceError::Refused(format!(
                "only an admin may change the owner of `{id}` (from `{}` to `{}`)",
                row.owner, manifest.owner
            )));
        }
        _ => {}
    }
    match state.store().principal(&manifest.owner).await? {
        Some(p) if p.active => {}
        _ => return Err(ServiceError::OwnerInactive(manifest.owner.to_string())),
    }
    let warnings = warnings_of(state, &manifest).await?;
    let changes = match &in_force {
        None => classify(None, &manifest),
        Some(Ok(old)) => classify(Some(old), &manifest),
        // The version in force no longer loads (a rule was tightened since):
        // nothing about the new one is provably narrower.
        Some(Err(e)) => vec![unclassifiable(e)],
    };
    let changes_json = serde_json::to_value(&changes)
        .map_err(|e| ServiceError::Task(format!("changes as JSON: {e}")))?;
    let in_force_row = existing
        .as_ref()
        .filter(|row| row.state != AgentState::Proposed);
    if state
        .config
        .change_control
        .covers(manifest.environment.as_str())
        && (in_force_row.is_none() || is_widening(&changes))
    {
        let mut proposed = propose(
            state,
            caller,
            in_force_row,
            &manifest,
            &source,
            changes,
            changes_json,
        )
        .await?;
        proposed.warnings = warnings;
        return Ok(Outcome::Proposed(Box::new(proposed)));
    }
    let (row, created) = state
        .store()
        .apply_manifest(&manifest, &source, &principal.id, &changes_json)
        .await?;
    state.cache_compiled(&row.id, row.version, &compiled);
    // Delegation rules and DPoP requirements may have changed.
    state.changed(bridle_store::Change::Tokens).await;
    let mut event = state.event(EventType::Manifest, &caller.actor());
    event.agent = Some(row.id.to_string());
    event.detail = Some(serde_json::json!({
        "op": if created { "create" } else { "update" },
        "version": row.version,
        "submitter": principal.id.as_str(),
        "changes": changes_json,
        "source_sha256": source_sha256(&source),
    }));
    state.posture.about(&event);
    state.audit.append(event).await?;
    Ok(Outcome::Applied(Box::new(Applied {
        row,
        created,
        changes,
        warnings,
    })))
}

/// Propose `manifest` for approval: the change-control half of [`apply`].
async fn propose(
    state: &AppState,
    caller: &Caller,
    in_force: Option<&AgentRow>,
    manifest: &Manifest,
    source: &str,
    changes: Vec<Change>,
    changes_json: serde_json::Value,
) -> Result<Proposed, ServiceError> {
    let principal = caller.principal().ok_or_else(|| {
        ServiceError::Refused("this endpoint is for principals, not agents".into())
    })?;
    let cc = &state.config.change_control;
    let base_version = in_force.map_or(0, |row| row.version);
    let unified = unified_diff(
        in_force.map_or("", |row| row.source.as_str()),
        source,
        base_version,
        "proposed",
    );
    let approval_id: ApprovalId =
        new_id("apr_", 12).map_err(|e| ServiceError::Task(e.to_string()))?;
    let new = NewApproval {
        id: approval_id.clone(),
        kind: ApprovalKind::Change,
        agent: manifest.agent.clone(),
        key: format!("change:{approval_id}"),
        action: "manifest".into(),
        args: serde_json::json!({
            "base_version": base_version,
            "submitted_by": principal.id.as_str(),
            "environment": manifest.environment.as_str(),
            "changes": changes_json,
            "unified": unified,
        }),
        resource: None,
        approvers: cc.approvers.clone(),
        min_approvals: cc.min_approvals,
        // The submitter may never approve (checked at the vote); the owner
        // may, when someone else submitted.
        allow_owner: true,
        owner: manifest.owner.clone(),
        elevation_id: None,
        expires_at: jiff::Timestamp::now() + cc.ttl(),
    };
    let proposal = state
        .store()
        .propose(manifest, source, &changes_json, &principal.id, &new)
        .await?;
    let approval = state
        .store()
        .approval(&approval_id)
        .await?
        .ok_or_else(|| ServiceError::Task(format!("approval `{approval_id}` vanished")))?;
    let mut event = state.event(EventType::Manifest, &caller.actor());
    event.agent = Some(manifest.agent.to_string());
    event.detail = Some(serde_json::json!({
        "op": "propose",
        "version": proposal.version,
        "base_version": base_version,
        "submitter": principal.id.as_str(),
        "approval_id": approval_id,
        "changes": changes_json,
        "source_sha256": source_sha256(source),
    }));
    state.posture.about(&event);
    state.audit.append(event).await?;
    super::decision::notify_requested(state, &approval);
    let eligible = eligible_approvers(state, &approval, principal.id.as_str()).await?;
    if eligible.is_empty() {
        tracing::warn!(
            agent = %manifest.agent,
            approval = %approval_id,
            "no eligible approver other than the submitter exists: this change cannot come into force until one is added"
        );
    }
    Ok(Proposed {
        proposal,
        approval,
        changes,
        eligible,
        warnings: Vec::new(),
    })
}

/// Active principals named by `approval`'s approvers, other than
/// `submitter`.
pub async fn eligible_approvers(
    state: &AppState,
    approval: &Approval,
    submitter: &str,
) -> Result<Vec<String>, ServiceError> {
    Ok(state
        .store()
        .principals()
        .await?
        .into_iter()
        .filter(|p| {
            p.active && p.id.as_str() != submitter && crate::access::is_listed_approver(approval, p)
        })
        .map(|p| p.id.to_string())
        .collect())
}

/// An approval of `kind: change` was decided: activate its proposal when
/// approved, discard it when denied. Audited as `manifest` events.
pub async fn decided(
    state: &AppState,
    caller: &Caller,
    approval: &Approval,
) -> Result<(), ServiceError> {
    let Some(proposal) = state.store().proposal_for_approval(&approval.id).await? else {
        return Ok(());
    };
    match approval.state {
        ApprovalState::Approved => {
            let source = proposal.source.clone();
            let guardrails = state.guardrails.clone();
            let (manifest, compiled) = tokio::task::spawn_blocking(move || {
                let manifest = Manifest::from_source(&source).map_err(ServiceError::Manifest)?;
                let compiled = CompiledAgent::compile(manifest.clone(), &guardrails)
                    .map_err(|e| ServiceError::Compile(e.to_string()))?;
                Ok::<_, ServiceError>((manifest, compiled))
            })
            .await
            .map_err(|e| ServiceError::Task(format!("loading a proposal failed: {e}")))??;
            let row = state
                .store()
                .activate_proposal(&manifest, proposal.version)
                .await?;
            state.cache_compiled(&row.id, row.version, &compiled);
            state.changed(bridle_store::Change::Tokens).await;
            let mut event = state.event(EventType::Manifest, &caller.actor());
            event.agent = Some(row.id.to_string());
            event.detail = Some(serde_json::json!({
                "op": "activate",
                "version": proposal.version,
                "submitter": proposal.submitted_by,
                "approval_id": approval.id,
                "changes": proposal.changes,
                "source_sha256": source_sha256(&proposal.source),
            }));
            state.posture.about(&event);
            state.audit.append(event).await?;
        }
        ApprovalState::Denied => {
            discard(state, &caller.actor(), &proposal, ProposalState::Rejected).await?;
        }
        _ => {}
    }
    Ok(())
}

/// Discard every pending proposal whose approval expired undecided.
pub async fn expire_overdue(state: &AppState) -> Result<(), ServiceError> {
    for proposal in state
        .store()
        .overdue_proposals(jiff::Timestamp::now())
        .await?
    {
        discard(state, "system", &proposal, ProposalState::Expired).await?;
    }
    Ok(())
}

async fn discard(
    state: &AppState,
    actor: &str,
    proposal: &Proposal,
    to: ProposalState,
) -> Result<(), ServiceError> {
    if !state
        .store()
        .discard_proposal(&proposal.agent, proposal.version, to)
        .await?
    {
        return Ok(());
    }
    let mut event = state.event(EventType::Manifest, actor);
    event.agent = Some(proposal.agent.to_string());
    event.detail = Some(serde_json::json!({
        "op": if to == ProposalState::Expired { "expire" } else { "reject" },
        "version": proposal.version,
        "submitter": proposal.submitted_by,
        "approval_id": proposal.approval_id,
        "source_sha256": source_sha256(&proposal.source),
    }));
    state.posture.about(&event);
    state.audit.append(event).await?;
    Ok(())
}

fn unified_diff(old: &str, new: &str, from: i64, to: &str) -> String {
    unified(
        old,
        new,
        &format!("version {from}"),
        &format!("version {to}"),
    )
}

/// A unified diff of two manifest texts, with these headers.
pub(crate) fn unified(old: &str, new: &str, from: &str, to: &str) -> String {
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(from, to)
        .to_string()
}

/// What `manifest` may mean by mistake: the warnings that need no store,
/// and approver entries that resolve to no active principal or member of a
/// group (they could never approve).
async fn warnings_of(state: &AppState, manifest: &Manifest) -> Result<Vec<Warning>, ServiceError> {
    let today = jiff::Timestamp::now()
        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .date();
    let mut out = bridle_core::manifest::warnings(manifest, today);
    let active: Vec<_> = state
        .store()
        .principals()
        .await?
        .into_iter()
        .filter(|p| p.active)
        .collect();
    let resolves = |a: &Approver| match a {
        Approver::Principal(id) => active.iter().any(|p| &p.id == id),
        Approver::Group(g) => active.iter().any(|p| p.groups.contains(g)),
    };
    out.extend(bridle_core::manifest::approver_warnings(
        manifest, &resolves,
    ));
    Ok(out)
}

/// The hex SHA-256 of a manifest's text as submitted.
pub fn source_sha256(source: &str) -> String {
    let digest = Sha256::digest(source.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// One widening change standing for a comparison that cannot be made.
fn unclassifiable(e: &ManifestErrors) -> Change {
    Change {
        path: String::new(),
        effect: ChangeEffect::Widening,
        detail: format!("the version it replaces no longer loads ({e}); not provably narrower"),
    }
}

/// Where a version stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// The version in force.
    Active,
    /// Replaced by a later version (or, for a proposal, by a later apply).
    Superseded,
    /// Proposed, waiting for its approval.
    Pending,
    /// Proposed and denied, or expired undecided.
    Rejected,
}

/// One version of an agent's history, as the API shows it: a version that
/// was in force, or a proposal.
#[derive(Debug)]
pub struct Version {
    pub version: i64,
    pub standing: Standing,
    pub manifest: serde_json::Value,
    pub source: String,
    pub created_by: PrincipalId,
    pub created_at: Timestamp,
    pub changes: Vec<Change>,
    /// The change approval it waited for (a proposal, or a version that
    /// came into force through change control).
    pub approval_id: Option<ApprovalId>,
    /// Whether it is a proposal that never came into force.
    pub proposal: bool,
    /// Who approved it into force (change control's second person).
    pub approved_by: Vec<PrincipalId>,
}

/// Every version of `row`, oldest first — those that were in force and
/// those proposed — each with what it changed (as stored, or classified
/// again from the sources for versions from before changes were kept).
pub async fn history(state: &AppState, row: &AgentRow) -> Result<Vec<Version>, ServiceError> {
    let stored = state.store().agent_versions(&row.id).await?;
    let proposals = state.store().proposals(&row.id).await?;
    let in_force = (row.state != AgentState::Proposed).then_some(row.version);
    // The versions that came into force through an approval.
    let activated: std::collections::HashMap<i64, ApprovalId> = proposals
        .iter()
        .filter(|p| p.state == ProposalState::Activated)
        .map(|p| (p.version, p.approval_id.clone()))
        .collect();
    let mut out = tokio::task::spawn_blocking(move || {
        let mut previous: Option<Result<Manifest, ManifestErrors>> = None;
        let mut out = Vec::with_capacity(stored.len() + proposals.len());
        for v in stored {
            let this = Manifest::from_source(&v.source);
            let changes = match v.changes.as_ref().and_then(stored_changes) {
                Some(changes) => changes,
                None => compare(previous.as_ref(), &this),
            };
            previous = Some(this);
            let AgentVersion {
                version,
                manifest,
                source,
                changes: _,
                created_by,
                created_at,
            } = v;
            out.push(Version {
                version,
                standing: if Some(version) == in_force {
                    Standing::Active
                } else {
                    Standing::Superseded
                },
                manifest,
                source,
                created_by,
                created_at,
                changes,
                approval_id: activated.get(&version).cloned(),
                proposal: false,
                approved_by: Vec::new(),
            });
        }
        // Activated proposals are versions above already.
        for p in proposals {
            let standing = match p.state {
                ProposalState::Activated => continue,
                ProposalState::Pending => Standing::Pending,
                ProposalState::Superseded => Standing::Superseded,
                ProposalState::Rejected | ProposalState::Expired => Standing::Rejected,
            };
            let changes = stored_changes(&p.changes).unwrap_or_default();
            out.push(Version {
                version: p.version,
                standing,
                manifest: p.manifest,
                source: p.source,
                created_by: p.submitted_by,
                created_at: p.created_at,
                changes,
                approval_id: Some(p.approval_id),
                proposal: true,
                approved_by: Vec::new(),
            });
        }
        out
    })
    .await
    .map_err(|e| ServiceError::Task(format!("classifying versions failed: {e}")))?;
    for v in out.iter_mut().filter(|v| !v.proposal) {
        if let Some(id) = &v.approval_id
            && let Some(approval) = state.store().approval(id).await?
        {
            v.approved_by = approval
                .votes
                .into_iter()
                .filter(|vote| vote.vote == "approve")
                .map(|vote| vote.principal)
                .collect();
        }
    }
    out.sort_by_key(|v| v.version);
    Ok(out)
}

/// Changes as [`apply`] stored them; `None` when they do not read back
/// (then they are classified again).
fn stored_changes(value: &serde_json::Value) -> Option<Vec<Change>> {
    #[derive(serde::Deserialize)]
    struct Stored {
        path: String,
        effect: String,
        detail: String,
    }
    let stored: Vec<Stored> = serde_json::from_value(value.clone()).ok()?;
    stored
        .into_iter()
        .map(|c| {
            let effect = [
                ChangeEffect::Widening,
                ChangeEffect::Narrowing,
                ChangeEffect::Neutral,
            ]
            .into_iter()
            .find(|e| e.as_str() == c.effect)?;
            Some(Change {
                path: c.path,
                effect,
                detail: c.detail,
            })
        })
        .collect()
}

fn compare(
    old: Option<&Result<Manifest, ManifestErrors>>,
    new: &Result<Manifest, ManifestErrors>,
) -> Vec<Change> {
    match (old, new) {
        (_, Err(e)) | (Some(Err(e)), _) => vec![unclassifiable(e)],
        (None, Ok(new)) => classify(None, new),
        (Some(Ok(old)), Ok(new)) => classify(Some(old), new),
    }
}

/// Two versions compared: a unified diff of their texts and the classified
/// changes from the first to the second.
#[derive(Debug)]
pub struct Diff {
    pub from: i64,
    pub to: i64,
    pub unified: String,
    pub changes: Vec<Change>,
}

/// `from` → `to` of `row` (`to` defaults to the version in force, `from` to
/// the version before `to`; `from` 0 compares against nothing, as for a new
/// agent).
pub async fn diff(
    state: &AppState,
    row: &AgentRow,
    from: Option<i64>,
    to: Option<i64>,
) -> Result<Diff, ServiceError> {
    let versions = history(state, row).await?;
    let to = to.unwrap_or(row.version);
    let new = versions
        .iter()
        .find(|v| v.version == to)
        .ok_or(ServiceError::VersionNotFound(to))?
        .source
        .clone();
    // By default the version before `to` that was in force.
    let from = match from {
        Some(from) => from,
        None => versions
            .iter()
            .rev()
            .filter(|v| !v.proposal)
            .map(|v| v.version)
            .find(|v| *v < to)
            .unwrap_or(0),
    };
    let old = match from {
        0 => None,
        from => Some(
            versions
                .iter()
                .find(|v| v.version == from)
                .ok_or(ServiceError::VersionNotFound(from))?
                .source
                .clone(),
        ),
    };
    tokio::task::spawn_blocking(move || {
        let old_text = old.as_deref().unwrap_or("");
        let unified = unified_diff(old_text, &new, from, &to.to_string());
        let old = old.map(|s| Manifest::from_source(&s));
        let changes = compare(old.as_ref(), &Manifest::from_source(&new));
        Diff {
            from,
            to,
            unified,
            changes,
        }
    })
    .await
    .map_err(|e| ServiceError::Task(format!("comparing versions failed: {e}")))
}
