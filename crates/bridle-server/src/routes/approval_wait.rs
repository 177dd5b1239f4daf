//! `GET /v1/approvals/{id}/wait?timeout=5s`: a long poll. Answers as soon
//! as the approval is no longer pending (woken by the approve/deny handlers
//! through [`crate::webhooks::Notifier`], not by polling the store on a
//! timer), or with the still-pending approval when the timeout passes.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Json;
use axum::extract::{Query, State};
use bridle_core::id::ApprovalId;
use bridle_store::ApprovalState;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::openapi as doc;
use crate::path::{IdPath, IdRejection};
use crate::state::AppState;
use crate::views::approval as view;

/// The longest one request is held: short enough that no client or proxy
/// read timeout (commonly 10 s) cuts it; a waiter simply asks again.
const MAX_WAIT: Duration = Duration::from_secs(8);

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct WaitQuery {
    /// How long to wait for a decision, e.g. `5s` (default and at most 8s).
    #[param(example = "5s")]
    timeout: Option<String>,
}

/// Wait until an approval is decided, expires or is consumed (whoever may
/// read it: see `GET /v1/approvals/{id}`); answers the approval as it then is.
#[utoipa::path(
    get,
    path = "/v1/approvals/{id}/wait",
    tag = "approvals",
    operation_id = "wait_approval",
    params(("id" = String, Path, description = "The approval's id"), WaitQuery),
    responses(
        (status = 200, description = "The approval once no longer pending, or at the timeout", body = view::Approval),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized),
        (status = 404, response = doc::NotFound),
        (status = 503, response = doc::Unavailable),
    ),
)]
pub async fn wait(
    State(state): State<AppState>,
    caller: Caller,
    id: Result<IdPath<ApprovalId>, IdRejection>,
    query: Result<Query<WaitQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<view::Approval>, ApiError> {
    let Query(query) = query.map_err(super::query_error)?;
    let timeout = match &query.timeout {
        None => MAX_WAIT,
        Some(text) => parse_timeout(text)?,
    };
    let deadline = tokio::time::Instant::now() + timeout;
    let IdPath(id) = id?;
    // Subscribe before the first read, so a vote in between is not missed.
    let mut changed = state.http.subscribe();
    loop {
        let approval = crate::access::approval(&state, &caller, &id).await?;
        if approval.state != ApprovalState::Pending {
            return Ok(Json(approval.into()));
        }
        // An approval past `expires_at` is expired whatever its stored state.
        let left = Duration::try_from(approval.expires_at - jiff::Timestamp::now()).ok();
        let Some(left) = left else {
            return Ok(Json(approval.into()));
        };
        let until = deadline.min(tokio::time::Instant::now() + left);
        let _parked = Parked::new(&state.parked_waits);
        tokio::select! {
            res = changed.changed() => {
                if res.is_err() {
                    return Ok(Json(approval.into()));
                }
            }
            () = tokio::time::sleep_until(until) => {
                if until == deadline {
                    return Ok(Json(approval.into()));
                }
            }
        }
    }
}

/// Counts a parked long-poll for as long as it is parked (also when the
/// client goes away and the request is dropped).
struct Parked<'a>(&'a AtomicUsize);

impl<'a> Parked<'a> {
    fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Self(count)
    }
}

impl Drop for Parked<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

fn parse_timeout(text: &str) -> Result<Duration, ApiError> {
    let d: jiff::SignedDuration = text.parse().map_err(|_| {
        ApiError::BadRequest(format!(
            "`timeout` must be a duration like `5s`, not `{text}`"
        ))
    })?;
    let d = Duration::try_from(d)
        .map_err(|_| ApiError::BadRequest("`timeout` must not be negative".into()))?;
    Ok(d.min(MAX_WAIT))
}
