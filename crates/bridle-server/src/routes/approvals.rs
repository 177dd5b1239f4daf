//! `/v1/approvals`: the approval inbox, and voting with eligibility (group
//! or named approver, owner excluded unless `allow_owner`, one vote each,
//! N-of-M distinct approvers).

use axum::Json;
use axum::extract::{Query, State};
use bridle_core::id::ApprovalId;
use bridle_store::ApprovalState;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use crate::auth::Caller;
use crate::capability::Voter;
use crate::error::ApiError;
use crate::json::StrictJson;
use crate::openapi as doc;
use crate::path::IdPath;
use crate::state::AppState;
use crate::views::approval::{self as view, ApprovalList};

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
    let approvals = crate::access::approvals(&state, &caller, filter).await?;
    Ok(Json(approvals.into_iter().collect()))
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
    let approval = crate::access::approval(&state, &caller, &id).await?;
    let replay = crate::service::replay::of_change(&state, &approval).await?;
    let mut shown = view::Approval::from(approval);
    shown.replay = replay.map(|(agent, since, report)| {
        crate::views::replay::ReplayView::new(
            agent,
            crate::service::replay::CHANGE_WINDOW.into(),
            since,
            report,
        )
    });
    Ok(Json(shown))
}

#[derive(Debug, Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VoteBody {
    comment: Option<String>,
}

async fn vote(
    state: &AppState,
    voter: Result<Voter, ApiError>,
    approve: bool,
    comment: Option<String>,
) -> Result<Json<view::Approval>, ApiError> {
    let voter = voter?;
    let updated = crate::service::approvals::vote(state, &voter, approve, comment).await?;
    Ok(Json(updated.into()))
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
    voter: Result<Voter, ApiError>,
    body: Result<Option<StrictJson<VoteBody>>, ApiError>,
) -> Result<Json<view::Approval>, ApiError> {
    let body = body?;
    vote(&state, voter, true, body.and_then(|b| b.0.comment)).await
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
    voter: Result<Voter, ApiError>,
    body: Result<Option<StrictJson<VoteBody>>, ApiError>,
) -> Result<Json<view::Approval>, ApiError> {
    let body = body?;
    vote(&state, voter, false, body.and_then(|b| b.0.comment)).await
}
