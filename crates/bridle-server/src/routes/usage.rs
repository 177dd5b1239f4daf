//! `/v1/agents/{id}/usage`: what an agent actually did with each grant of
//! the version in force over a window; `/suggestion`: that version narrowed
//! to what was used. Readable by whoever may read the
//! agent (admin, auditor, its owner, the agent itself); 404 for anyone else.

use axum::Json;
use axum::extract::{Query, State};
use bridle_core::id::AgentId;
use bridle_core::manifest::units::{format_duration, parse_duration};
use jiff::SignedDuration;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::openapi as doc;
use crate::path::{IdPath, IdRejection};
use crate::service::usage;
use crate::state::AppState;
use crate::views::usage::{SuggestionView, UsageView};

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WindowQuery {
    /// How far back (`30d`, `7d`, `12h`; default `30d`, at most `400d`).
    window: Option<String>,
}

/// The window a query names, checked.
pub(crate) fn window(
    text: Option<&str>,
    field: &str,
) -> Result<(String, SignedDuration), ApiError> {
    let text = text.unwrap_or("30d");
    let d = parse_duration(text).map_err(|e| {
        ApiError::malformed("invalid window", field, format!("{e} (e.g. `30d`, `12h`)"))
    })?;
    if d > usage::MAX_WINDOW {
        return Err(ApiError::malformed(
            "invalid window",
            field,
            format!("at most {}", format_duration(usage::MAX_WINDOW)),
        ));
    }
    Ok((text.to_owned(), d))
}

/// Per grant of the version in force: decisions, allowed, denied, approvals
/// asked, last use, the actions and argument values used; the grants never
/// used; and the actions no grant covers.
#[utoipa::path(
    get,
    path = "/v1/agents/{id}/usage",
    tag = "agents",
    operation_id = "agent_usage",
    params(("id" = String, Path, description = "The agent's id"), WindowQuery),
    responses(
        (status = 200, description = "The usage", body = UsageView),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized),
        (status = 404, response = doc::NotFound),
        (status = 503, response = doc::Unavailable),
    ),
)]
pub async fn usage(
    State(state): State<AppState>,
    caller: Caller,
    id: Result<IdPath<AgentId>, IdRejection>,
    q: Result<Query<WindowQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<UsageView>, ApiError> {
    let Query(q) = q.map_err(super::query_error)?;
    let IdPath(id) = id?;
    let (text, window) = window(q.window.as_deref(), "window")?;
    let row = crate::access::agent(&state, &caller, &id).await?;
    let (since, report) = usage::usage(&state, &row, window, jiff::Timestamp::now()).await?;
    Ok(Json(UsageView::new(text, since, report)))
}

/// A narrowed manifest from observed use: unused grants removed, globs
/// replaced by the names used, `in` lists and `min`/`max` tightened to what
/// was used (with headroom), elevations never used flagged; never wider
/// than the version in force (`changes` has no `widening`). Changes
/// nothing: apply it with `PUT /v1/agents/{id}`.
#[utoipa::path(
    get,
    path = "/v1/agents/{id}/suggestion",
    tag = "agents",
    operation_id = "agent_suggestion",
    params(("id" = String, Path, description = "The agent's id"), WindowQuery),
    responses(
        (status = 200, description = "The suggestion", body = SuggestionView),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized),
        (status = 404, response = doc::NotFound),
        (status = 503, response = doc::Unavailable),
    ),
)]
pub async fn suggestion(
    State(state): State<AppState>,
    caller: Caller,
    id: Result<IdPath<AgentId>, IdRejection>,
    q: Result<Query<WindowQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<SuggestionView>, ApiError> {
    let Query(q) = q.map_err(super::query_error)?;
    let IdPath(id) = id?;
    let (text, window) = window(q.window.as_deref(), "window")?;
    let row = crate::access::agent(&state, &caller, &id).await?;
    let (since, s, unified) =
        usage::suggestion(&state, &row, &text, window, jiff::Timestamp::now()).await?;
    Ok(Json(SuggestionView::new(text, since, s, unified)))
}
