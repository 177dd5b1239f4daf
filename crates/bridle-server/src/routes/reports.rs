//! `GET /v1/reports/compliance`: per agent and per control of OWASP NHI
//! Top 10 (2025), OWASP Agentic Top 10 (2026) and NIST AI RMF, satisfied or
//! not, with the evidence (`service::report`); as JSON, Markdown or a
//! self-contained HTML page with SVG charts (`crate::report`).

use axum::extract::{Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use bridle_core::id::AgentId;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::openapi as doc;
use crate::path::PathId as _;
use crate::report::{self, Format};
use crate::service::report as service;
use crate::state::AppState;
use crate::views::report::ComplianceReport;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReportQuery {
    /// How far back (`30d`, `7d`, `12h`; default `30d`, at most `400d`).
    window: Option<String>,
    /// Only this agent.
    agent: Option<String>,
    /// `json` (default), `md` or `html`; without it, an `Accept` of
    /// `text/markdown` or `text/html` chooses.
    #[param(value_type = Option<String>, example = "md")]
    format: Option<String>,
}

/// The format a request asks for: `format=` first, then `Accept`.
fn format(q: Option<&str>, headers: &HeaderMap) -> Result<Format, ApiError> {
    if let Some(text) = q {
        return Format::parse(text).ok_or_else(|| {
            ApiError::malformed(
                "invalid format",
                "format",
                format!("`{text}` is not one of `json`, `md`, `html`"),
            )
        });
    }
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let wants = |media: &str| {
        accept
            .split(',')
            .any(|part| part.split(';').next().is_some_and(|m| m.trim() == media))
    };
    Ok(if wants("text/html") {
        Format::Html
    } else if wants("text/markdown") {
        Format::Markdown
    } else {
        Format::Json
    })
}

/// The compliance report: every active and suspended agent's for `admin`
/// and `auditor`, the agents it owns for any other principal (`agent=`
/// naming an agent the caller may not see is 404). Each control is
/// `satisfied`, `not_satisfied` (with the open findings) or `not_assessed`
/// (no rule of Bridle checks it).
#[utoipa::path(
    get,
    path = "/v1/reports/compliance",
    tag = "reports",
    operation_id = "compliance_report",
    params(ReportQuery),
    responses(
        (status = 200, description = "The report", content(
            (ComplianceReport = "application/json"),
            (String = "text/markdown"),
            (String = "text/html"),
        )),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized),
        (status = 403, response = doc::Forbidden),
        (status = 404, response = doc::NotFound),
        (status = 503, response = doc::Unavailable),
    ),
)]
pub async fn compliance(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    q: Result<Query<ReportQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = q.map_err(super::query_error)?;
    let p = caller.require_principal()?;
    let window = super::usage::window(q.window.as_deref(), "window")?;
    let format = format(q.format.as_deref(), &headers)?;
    let rows = match &q.agent {
        Some(raw) => {
            // An `agent` that cannot be an agent id names no agent.
            let id: AgentId = raw.parse().map_err(|_| AgentId::not_found(raw))?;
            vec![crate::access::principal_agent(&state, &caller, &id).await?]
        }
        None => {
            let mut rows = crate::access::agents(&state, p).await?;
            rows.retain(|r| r.state != bridle_core::engine::AgentState::Retired);
            rows
        }
    };
    let r: ComplianceReport = service::compliance(&state, &rows, window, jiff::Timestamp::now())
        .await?
        .into();
    let body = match format {
        Format::Json => return Ok(axum::Json(r).into_response()),
        Format::Markdown => report::markdown(&r),
        Format::Html => report::html(&r),
    }
    .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(([(header::CONTENT_TYPE, format.content_type())], body).into_response())
}
