//! Who sees what (least disclosure): the one place that decides whether a
//! caller may *read* an agent's record (and what hangs off it: versions,
//! credentials, findings, audit, usage) or an approval. Every read handler
//! asks here, so a new endpoint follows the same rules.
//!
//! - `admin` and `auditor` see everything (the auditor only reads: no write
//!   is granted by the role).
//! - Any other principal sees the agents it owns; the approvals it may vote
//!   on (a listed approver or in a listed group), those of agents it owns and
//!   those it submitted; nothing else.
//! - A `pep` role adds what an enforcement point's calls need and nothing
//!   more: an approval a decision created (`kind: action`), read by id (show
//!   and the long poll), never listed.
//! - An agent (access token) sees its own record and the approvals of its
//!   own requests.
//!
//! What a caller may not see does not exist for it: reads answer 404 with
//! the same text as for an unknown id, listings omit it. A write the caller
//! may not make stays 403 (decided by the write handlers).

#![expect(
    clippy::disallowed_methods,
    reason = "the visibility checkpoint: it reads the record to decide what a caller may see"
)]

use std::collections::HashMap;

use bridle_core::audit::AuditEvent;
use bridle_core::id::{AgentId, ApprovalId};
use bridle_store::{
    AgentRow, Approval, ApprovalKind, ApprovalState, ApprovalStore as _, AuditFilter, AuditRead,
    CredentialStore as _, ElevationStore, Principal, RegistryRead, Role,
};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

/// `admin` or `auditor`: reads everything.
pub fn sees_everything(p: &Principal) -> bool {
    p.has_role(Role::Admin) || p.has_role(Role::Auditor)
}

/// Whether `caller` may read `row` (and what hangs off it): admin and
/// auditor, its current owner, or the agent itself with its own token.
pub fn can_see_agent(caller: &Caller, row: &AgentRow) -> bool {
    match caller {
        Caller::Principal(p) => principal_sees_agent(p, row),
        Caller::Agent(a) => a.claims.sub == row.id.as_str(),
    }
}

/// Whether a principal may read `row`: admin and auditor, or its owner.
pub fn principal_sees_agent(p: &Principal, row: &AgentRow) -> bool {
    sees_everything(p) || p.id == row.owner
}

fn agent_not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!("agent `{id}` not found"))
}

/// The agent `id` if `caller` may read its record; 404 alike for an unknown
/// agent and one the caller may not see.
pub async fn agent(state: &AppState, caller: &Caller, id: &AgentId) -> Result<AgentRow, ApiError> {
    let row = crate::service::agents::load(state, id).await?;
    if can_see_agent(caller, &row) {
        Ok(row)
    } else {
        Err(agent_not_found(id.as_str()))
    }
}

/// As [`agent`], for what only principals read about an agent (findings,
/// credentials, audit, usage): an agent token is 403 here.
pub async fn principal_agent(
    state: &AppState,
    caller: &Caller,
    id: &AgentId,
) -> Result<AgentRow, ApiError> {
    let p = caller.require_principal()?;
    let row = crate::service::agents::load(state, id).await?;
    if principal_sees_agent(p, &row) {
        Ok(row)
    } else {
        Err(agent_not_found(id.as_str()))
    }
}

/// Every agent the principal may read, in the registry's order.
pub async fn agents(state: &AppState, p: &Principal) -> Result<Vec<AgentRow>, ApiError> {
    let mut rows = state.store().agents().await?;
    rows.retain(|row| principal_sees_agent(p, row));
    Ok(rows)
}

/// Who stands behind an approval besides its approvers: the current owner
/// of its agent, and the principal who submitted it (when one did).
#[derive(Debug, Default, Clone)]
pub struct Parties {
    pub owner: Option<String>,
    /// `principal:<id>` or `agent:<id>`, as audit actors are written.
    pub submitter: Option<String>,
}

/// Whether `p` is named among `a`'s approvers, directly or by a group:
/// someone who may be asked to vote on it.
pub fn is_listed_approver(a: &Approval, p: &Principal) -> bool {
    a.approvers.iter().any(|who| names_approver(who, p))
}

/// Whether one approvers entry — `group:NAME`, `role:admin` (change
/// control's default) or a principal id — names `p`.
pub fn names_approver(entry: &str, p: &Principal) -> bool {
    match entry.split_once(':') {
        Some(("group", group)) => p.groups.iter().any(|g| g.as_str() == group),
        Some(("role", "admin")) => p.has_role(Role::Admin),
        Some(_) => false,
        None => entry == p.id.as_str(),
    }
}

/// Whether `caller` may see `a` (in a listing and by id).
pub fn can_see_approval(caller: &Caller, a: &Approval, parties: &Parties) -> bool {
    match caller {
        Caller::Principal(p) => {
            sees_everything(p)
                || is_listed_approver(a, p)
                || parties.owner.as_deref() == Some(p.id.as_str())
                || parties.submitter.as_deref() == Some(&format!("principal:{}", p.id))
        }
        // The agent whose request (or elevation) it is.
        Caller::Agent(agent) => agent.claims.sub == a.agent.as_str(),
    }
}

/// Whether `caller` may read `a` by its id (show, long poll): what it may
/// see, and for a `pep` the approvals decisions create, which it forwards
/// and then waits on. A `pep` never lists them.
pub fn can_read_approval(caller: &Caller, a: &Approval, parties: &Parties) -> bool {
    let pep_waits = caller
        .principal()
        .is_some_and(|p| p.has_role(Role::Pep) && a.kind == ApprovalKind::Action);
    pep_waits || can_see_approval(caller, a, parties)
}

/// Looks up [`Parties`] at most once per agent and elevation within one
/// request.
#[derive(Debug, Default)]
pub struct PartyCache {
    owners: HashMap<AgentId, Option<String>>,
}

impl PartyCache {
    pub async fn parties(&mut self, state: &AppState, a: &Approval) -> Result<Parties, ApiError> {
        let owner = match self.owners.get(&a.agent) {
            Some(owner) => owner.clone(),
            None => {
                let owner = state
                    .store()
                    .agent(&a.agent)
                    .await?
                    .map(|r| r.owner.to_string());
                self.owners.insert(a.agent.clone(), owner.clone());
                owner
            }
        };
        let submitter = match (a.kind, &a.elevation_id) {
            (ApprovalKind::Elevation, Some(eid)) => {
                state.store().elevation(eid).await?.map(|e| e.requested_by)
            }
            // A manifest change is submitted by the principal who applied it.
            (ApprovalKind::Change, _) => a.change_submitter().map(|p| format!("principal:{p}")),
            // An action approval is submitted by the agent's decision.
            (ApprovalKind::Elevation, None) | (ApprovalKind::Action, _) => None,
        };
        Ok(Parties { owner, submitter })
    }
}

fn approval_not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!("approval `{id}` not found"))
}

/// The approval `id` if `caller` may read it by id; 404 alike for an
/// unknown approval and one the caller may not see.
pub async fn approval(
    state: &AppState,
    caller: &Caller,
    id: &ApprovalId,
) -> Result<Approval, ApiError> {
    let a = crate::service::approvals::load(state, id).await?;
    if let Caller::Principal(p) = caller
        && sees_everything(p)
    {
        return Ok(a);
    }
    let parties = PartyCache::default().parties(state, &a).await?;
    if can_read_approval(caller, &a, &parties) {
        Ok(a)
    } else {
        Err(approval_not_found(id.as_str()))
    }
}

/// The approvals (in `state`, or all) that `caller` may see.
pub async fn approvals(
    state: &AppState,
    caller: &Caller,
    filter: Option<ApprovalState>,
) -> Result<Vec<Approval>, ApiError> {
    let all = state
        .store()
        .approvals(filter, jiff::Timestamp::now())
        .await?;
    visible_approvals(state, caller, all).await
}

/// The credentials of agent `id`, for a principal who may see the agent.
pub async fn credentials(
    state: &AppState,
    caller: &Caller,
    id: &AgentId,
) -> Result<Vec<bridle_store::CredentialRow>, ApiError> {
    let row = principal_agent(state, caller, id).await?;
    Ok(state.store().credentials(&row.id).await?)
}

/// The approvals of a listing that `caller` may see.
pub async fn visible_approvals(
    state: &AppState,
    caller: &Caller,
    all: Vec<Approval>,
) -> Result<Vec<Approval>, ApiError> {
    if let Caller::Principal(p) = caller
        && sees_everything(p)
    {
        return Ok(all);
    }
    let mut cache = PartyCache::default();
    let mut out = Vec::new();
    for a in all {
        let parties = cache.parties(state, &a).await?;
        if can_see_approval(caller, &a, &parties) {
            out.push(a);
        }
    }
    Ok(out)
}

/// The audit events `p` may read under `filter`: everything for admin and
/// auditor; otherwise only events of agents it owns (`filter.agent` naming
/// another agent, or none owned, is an empty listing).
pub async fn audit_events(
    state: &AppState,
    p: &Principal,
    filter: AuditFilter,
) -> Result<Vec<AuditEvent>, ApiError> {
    if sees_everything(p) {
        return Ok(state.store().audit_events(&filter).await?);
    }
    let owned: Vec<AgentId> = match &filter.agent {
        Some(id) => {
            let visible = state
                .store()
                .agent(id)
                .await?
                .is_some_and(|row| principal_sees_agent(p, &row));
            if visible {
                vec![id.clone()]
            } else {
                Vec::new()
            }
        }
        None => agents(state, p)
            .await?
            .into_iter()
            .map(|row| row.id)
            .collect(),
    };
    // Each agent's first `limit` events after the cursor; merged by `seq`,
    // the first `limit` of the union are exactly the listing's page.
    let mut events = Vec::new();
    for agent in owned {
        let one = AuditFilter {
            agent: Some(agent),
            ..filter.clone()
        };
        events.extend(state.store().audit_events(&one).await?);
    }
    events.sort_by_key(|e| e.seq);
    events.truncate(usize::try_from(filter.limit).unwrap_or(usize::MAX));
    Ok(events)
}
