//! `/v1/approvals`: the approval inbox, and voting with eligibility (group
//! or named approver, owner excluded unless `allow_owner`, one vote each,
//! N-of-M distinct approvers).

use axum::Json;
use axum::extract::{Query, State};
use bridle_core::audit::EventType;
use bridle_core::id::ApprovalId;
use bridle_store::{
    Approval, ApprovalKind, ApprovalState, ApprovalStore, ElevationStore, Principal,
};
use jiff::Timestamp;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::json::StrictJson;
use crate::openapi as doc;
use crate::path::{IdPath, IdRejection, PathId as _};
use crate::state::AppState;
use crate::views::approval::{self as view, ApprovalList};
use crate::views::time::instant;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only approvals in this state.
    #[param(value_type = Option<view::ApprovalState>)]
    state: Option<String>,
}

/// The approval inbox: every approval for `admin` and `auditor`; for any
/// other principal those it may vote on, those of agents it owns and those
/// it submitted.
#[utoipa::path(
    get,
    path = "/v1/approvals",
    tag = "approvals",
    operation_id = "list_approvals",
    params(ListQuery),
    responses(
        (status = 200, description = "The approvals", body = ApprovalList),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized),
        (status = 403, response = doc::Forbidden),
        (status = 422, response = doc::Invalid),
        (status = 503, response = doc::Unavailable),
    ),
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<ApprovalList>, ApiError> {
    let Query(q) = q.map_err(super::query_error)?;
    caller.require_principal()?;
    let filter = match q.state.as_deref() {
        None | Some("") => None,
        Some(s) => Some(ApprovalState::parse(s).ok_or_else(|| {
            ApiError::invalid(
                "invalid state",
                "state",
                "one of pending, approved, denied, expired, consumed, cancelled",
            )
        })?),
    };
    let approvals = state.store.approvals(filter, Timestamp::now()).await?;
    let approvals = crate::access::visible_approvals(&state, &caller, approvals).await?;
    Ok(Json(approvals.into_iter().collect()))
}

/// The approval `id` names; 404 when there is none.
pub(crate) async fn load(state: &AppState, id: &ApprovalId) -> Result<Approval, ApiError> {
    state
        .store
        .approval(id)
        .await?
        .ok_or_else(|| ApprovalId::not_found(id.as_str()))
}

/// One approval: for whoever may see it in the inbox, the agent that caused
/// it, and a `pep` (approvals of decisions); 404 for anyone else.
#[utoipa::path(
    get,
    path = "/v1/approvals/{id}",
    tag = "approvals",
    operation_id = "show_approval",
    params(("id" = String, Path, description = "The approval's id")),
    responses(
        (status = 200, description = "The approval", body = view::Approval),
        (status = 401, response = doc::Unauthorized),
        (status = 404, response = doc::NotFound),
        (status = 503, response = doc::Unavailable),
    ),
)]
pub async fn show(
    State(state): State<AppState>,
    caller: Caller,
    IdPath(id): IdPath<ApprovalId>,
) -> Result<Json<view::Approval>, ApiError> {
    Ok(Json(
        crate::access::approval(&state, &caller, &id).await?.into(),
    ))
}

/// Why `p` may not vote on `a`, if they may not.
fn ineligible(a: &Approval, p: &Principal) -> Option<String> {
    // Two people: whoever proposed a change to the record never approves it.
    if a.change_submitter() == Some(p.id.as_str()) {
        return Some("the submitter of a change may not approve it".into());
    }
    if a.owner == p.id && !a.allow_owner {
        return Some("the agent's owner may not approve its own agent's request".into());
    }
    if !crate::access::is_listed_approver(a, p) {
        return Some(format!(
            "`{}` is not an eligible approver ({})",
            p.id,
            a.approvers.join(", ")
        ));
    }
    if a.votes.iter().any(|v| v.principal == p.id) {
        return Some(format!("`{}` has already voted", p.id));
    }
    None
}

#[derive(Debug, Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VoteBody {
    comment: Option<String>,
}

async fn vote(
    state: &AppState,
    caller: &Caller,
    id: Result<IdPath<ApprovalId>, IdRejection>,
    approve: bool,
    comment: Option<String>,
) -> Result<Json<view::Approval>, ApiError> {
    let p = caller.require_principal()?;
    let IdPath(id) = id?;
    let approval = load(state, &id).await?;
    // Someone who may not see the approval learns neither its state nor
    // its approvers from a refused vote.
    let parties = crate::access::PartyCache::default()
        .parties(state, &approval)
        .await?;
    if !crate::access::can_see_approval(caller, &approval, &parties) {
        return Err(ApiError::Forbidden(format!(
            "`{}` is not an eligible approver of `{id}`",
            p.id
        )));
    }
    if approval.state != ApprovalState::Pending {
        return Err(ApiError::Conflict(format!(
            "approval `{id}` is {}",
            approval.state.as_str()
        )));
    }
    if let Some(why) = ineligible(&approval, p) {
        return Err(ApiError::Forbidden(why));
    }
    let now = Timestamp::now();
    let updated = state
        .store
        .vote(&id, &p.id, approve, comment.as_deref(), now)
        .await?;
    if updated.kind == ApprovalKind::Elevation
        && let Some(eid) = &updated.elevation_id
    {
        match updated.state {
            ApprovalState::Approved => {
                if let Some(e) = state.store.elevation(eid).await? {
                    let expires = now + jiff::SignedDuration::from_secs(e.duration_secs);
                    state.store.activate_elevation(eid, expires).await?;
                    let mut event = state.event(EventType::Elevation, &caller.actor());
                    event.agent = Some(updated.agent.to_string());
                    event.detail = Some(
                        serde_json::json!({"op": "activate", "elevation_id": eid, "name": e.name, "expires_at": instant(expires), "approval_id": id}),
                    );
                    state.audit(event).await?;
                }
            }
            ApprovalState::Denied => state.store.deny_elevation(eid).await?,
            _ => {}
        }
    }
    let mut event = state.event(EventType::Approval, &caller.actor());
    event.agent = Some(updated.agent.to_string());
    event.action = Some(updated.action.clone());
    // The vote is recorded before what it brings into force, so the log
    // reads approve → activate.
    let change_decided =
        updated.kind == ApprovalKind::Change && updated.state != ApprovalState::Pending;
    event.detail = Some(serde_json::json!({
        "op": if approve { "approve" } else { "deny" }, "approval_id": id, "state": updated.state.as_str(), "comment": comment,
    }));
    state.audit(event).await?;
    if change_decided {
        crate::service::manifest::decided(state, caller, &updated).await?;
    }
    let decided = updated.state != ApprovalState::Pending;
    let updated = view::Approval::from(updated);
    if decided {
        state.http.notify(
            "dev.bridle.approval.decided",
            id.as_str(),
            serde_json::to_value(&updated).unwrap_or_default(),
        );
    }
    Ok(Json(updated))
}

/// Approve a pending approval (an eligible approver; not the agent's owner
/// unless `allow_owner`; one vote each).
#[utoipa::path(
    post,
    path = "/v1/approvals/{id}/approve",
    tag = "approvals",
    operation_id = "approve_approval",
    params(("id" = String, Path, description = "The approval's id")),
    request_body = Option<VoteBody>,
    responses(
        (status = 200, description = "The approval after the vote", body = view::Approval),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized),
        (status = 403, response = doc::Forbidden),
        (status = 404, response = doc::NotFound),
        (status = 409, response = doc::Conflict),
        (status = 413, response = doc::PayloadTooLarge),
        (status = 422, response = doc::Invalid),
        (status = 503, response = doc::Unavailable),
    ),
)]
pub async fn approve(
    State(state): State<AppState>,
    caller: Caller,
    id: Result<IdPath<ApprovalId>, IdRejection>,
    body: Result<Option<StrictJson<VoteBody>>, ApiError>,
) -> Result<Json<view::Approval>, ApiError> {
    let body = body?;
    vote(&state, &caller, id, true, body.and_then(|b| b.0.comment)).await
}

/// Deny a pending approval (an eligible approver; not the agent's owner
/// unless `allow_owner`; one vote each).
#[utoipa::path(
    post,
    path = "/v1/approvals/{id}/deny",
    tag = "approvals",
    operation_id = "deny_approval",
    params(("id" = String, Path, description = "The approval's id")),
    request_body = Option<VoteBody>,
    responses(
        (status = 200, description = "The approval after the vote", body = view::Approval),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized),
        (status = 403, response = doc::Forbidden),
        (status = 404, response = doc::NotFound),
        (status = 409, response = doc::Conflict),
        (status = 413, response = doc::PayloadTooLarge),
        (status = 422, response = doc::Invalid),
        (status = 503, response = doc::Unavailable),
    ),
)]
pub async fn deny(
    State(state): State<AppState>,
    caller: Caller,
    id: Result<IdPath<ApprovalId>, IdRejection>,
    body: Result<Option<StrictJson<VoteBody>>, ApiError>,
) -> Result<Json<view::Approval>, ApiError> {
    let body = body?;
    vote(&state, &caller, id, false, body.and_then(|b| b.0.comment)).await
}
