//! The inventory (`/console/`) and an agent's record
//! (`/console/agents/{id}`) with its lifecycle buttons.

use askama::Template;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use bridle_core::engine::AgentState;
use bridle_core::id::AgentId;
use bridle_store::{AgentRow, ApprovalState, ClientAuth};
use jiff::SignedDuration;
use serde::Deserialize;

use super::permissions::{self, ActiveElevation, Permissions};
use super::{Chrome, ConsoleError, SignedIn, page, when};
use crate::capability::OwnerOf;
use crate::error::ApiError;
use crate::service;
use crate::state::AppState;

/// How far back the console looks for activity and usage.
const WINDOW: SignedDuration = SignedDuration::from_hours(24 * 30);

#[derive(Debug, Default, Deserialize)]
pub struct InventoryQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    state: String,
    #[serde(default)]
    environment: String,
    /// 1-based; pages of [`PER_PAGE`].
    page: Option<usize>,
}

/// Agents per inventory page: flags and last activity are read for the
/// shown page only.
const PER_PAGE: usize = 50;

impl InventoryQuery {
    /// The inventory's URL for `page` with the same search and filters.
    fn page_url(&self, page: usize) -> String {
        let mut query = vec![format!("page={page}")];
        for (k, v) in [
            ("q", &self.q),
            ("state", &self.state),
            ("environment", &self.environment),
        ] {
            if !v.is_empty() {
                query.push(format!(
                    "{k}={}",
                    percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC)
                ));
            }
        }
        format!("/console/?{}", query.join("&"))
    }
}

struct Row {
    id: String,
    state: &'static str,
    flags: String,
    owner: String,
    team: String,
    environment: String,
    last_activity: String,
}

#[derive(Template)]
#[template(path = "console/inventory.html")]
struct Inventory {
    c: Chrome,
    rows: Vec<Row>,
    q: String,
    state: String,
    environment: String,
    environments: Vec<String>,
    /// Agents that match, over every page.
    matching: usize,
    /// `first–last` of this page.
    shown: String,
    previous: Option<String>,
    next: Option<String>,
}

fn text(row: &AgentRow, key: &str) -> String {
    row.manifest
        .get(key)
        .and_then(|v| v.as_str())
        .unwrap_or("")
        .to_owned()
}

pub async fn inventory(
    State(state): State<AppState>,
    s: SignedIn,
    q: Result<Query<InventoryQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ConsoleError> {
    let Query(q) = q.map_err(crate::routes::query_error)?;
    let all = crate::access::agents(&state, &s.principal).await?;
    let mut environments: Vec<String> = all.iter().map(|r| r.environment.clone()).collect();
    environments.sort();
    environments.dedup();
    let needle = q.q.trim().to_lowercase();
    let matching: Vec<AgentRow> = all
        .into_iter()
        .filter(|row| {
            let found = needle.is_empty()
                || [
                    row.id.as_str(),
                    row.owner.as_str(),
                    &text(row, "team"),
                    &text(row, "purpose"),
                ]
                .iter()
                .any(|f| f.to_lowercase().contains(&needle));
            found
                && (q.state.is_empty() || row.state.as_str() == q.state)
                && (q.environment.is_empty() || row.environment == q.environment)
        })
        .collect();
    let pages = matching.len().div_ceil(PER_PAGE).max(1);
    let at = q.page.unwrap_or(1).clamp(1, pages);
    let skip = (at - 1) * PER_PAGE;
    let mut rows = Vec::new();
    for row in matching.iter().skip(skip).take(PER_PAGE) {
        let flags = service::agents::flags(&state, row).await?;
        let flags: Vec<&str> = flags.iter().map(|f| f.as_str()).collect();
        let last = service::console::last_activity(&state, row, WINDOW).await?;
        rows.push(Row {
            id: row.id.to_string(),
            state: row.state.as_str(),
            flags: flags.join(", "),
            owner: row.owner.to_string(),
            team: text(row, "team"),
            environment: row.environment.clone(),
            last_activity: last.map_or_else(|| "none in 30 days".into(), when),
        });
    }
    let shown = format!("{}–{}", skip + 1, skip + rows.len());
    let previous = (at > 1).then(|| q.page_url(at - 1));
    let next = (at < pages).then(|| q.page_url(at + 1));
    page(
        Inventory {
            c: Chrome::new(&s, "inventory"),
            rows,
            q: q.q,
            state: q.state,
            environment: q.environment,
            environments,
            matching: matching.len(),
            shown,
            previous,
            next,
        }
        .render(),
    )
}

struct VersionRow {
    version: i64,
    by: String,
    at: String,
    standing: String,
    changes: Vec<String>,
}

struct Credential {
    client_id: String,
    method: &'static str,
    created: String,
    status: String,
}

struct Pending {
    id: String,
    action: String,
    votes: String,
}

#[derive(Template)]
#[template(path = "console/agent.html")]
struct AgentPage {
    c: Chrome,
    id: String,
    state: &'static str,
    state_reason: String,
    owner: String,
    environment: String,
    flags: String,
    lines: Vec<(usize, String)>,
    versions: Vec<VersionRow>,
    diff: Option<(i64, i64, Vec<String>)>,
    permissions: Permissions,
    findings: Vec<(String, String, String)>,
    credentials: Vec<Credential>,
    elevations: Vec<ActiveElevation>,
    pending: Vec<Pending>,
    suggestion: Option<Vec<String>>,
    manages: bool,
    retired: bool,
}

#[derive(Debug, Default, Deserialize)]
pub struct AgentQuery {
    from: Option<i64>,
    to: Option<i64>,
}

pub async fn agent(
    State(state): State<AppState>,
    s: SignedIn,
    axum::extract::Path(raw): axum::extract::Path<String>,
    q: Result<Query<AgentQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ConsoleError> {
    let Query(q) = q.map_err(crate::routes::query_error)?;
    let caller = s.caller();
    let not_found = || ApiError::NotFound(format!("agent `{raw}` not found"));
    let id: AgentId = raw.parse().map_err(|_| not_found())?;
    let row = crate::access::principal_agent(&state, &caller, &id).await?;
    let flags = service::agents::flags(&state, &row).await?;
    let flags: Vec<&str> = flags.iter().map(|f| f.as_str()).collect();
    let lines = row
        .source
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.to_owned()))
        .collect();
    let history = service::manifest::history(&state, &row).await?;
    let versions = history
        .iter()
        .map(|v| VersionRow {
            version: v.version,
            by: v.created_by.to_string(),
            at: when(v.created_at),
            standing: if v.proposal {
                "proposed".into()
            } else if v.version == row.version {
                "in force".into()
            } else {
                "earlier".into()
            },
            changes: v
                .changes
                .iter()
                .map(|c| {
                    format!(
                        "{} ({}): {}",
                        c.path,
                        format!("{:?}", c.effect).to_lowercase(),
                        c.detail
                    )
                })
                .collect(),
        })
        .collect();
    let diff = if history.len() > 1 || q.from.is_some() {
        let d = service::manifest::diff(&state, &row, q.from, q.to).await?;
        Some((d.from, d.to, d.unified.lines().map(str::to_owned).collect()))
    } else {
        None
    };
    let (_, usage) = service::usage::usage(&state, &row, WINDOW, jiff::Timestamp::now()).await?;
    let permissions = permissions::describe(state.compiled(&row).await?.manifest(), &usage);
    let findings = service::findings::open(&state, &row.id)
        .await?
        .into_iter()
        .map(|f| (f.severity, f.code, f.detail))
        .collect();
    let credentials = crate::access::credentials(&state, &caller, &row.id)
        .await?
        .into_iter()
        .map(|c| Credential {
            client_id: c.client_id.to_string(),
            method: match c.auth {
                ClientAuth::Secret { .. } => "client secret",
                ClientAuth::PublicJwk(_) => "private_key_jwt",
            },
            created: when(c.created_at),
            status: c
                .revoked_at
                .map_or_else(|| "active".into(), |t| format!("revoked {}", when(t))),
        })
        .collect();
    let elevations =
        permissions::open_elevations(service::elevation::list(&state, &row, false).await?);
    let pending = crate::access::approvals(&state, &caller, Some(ApprovalState::Pending))
        .await?
        .into_iter()
        .filter(|a| a.agent == row.id)
        .map(|a| Pending {
            id: a.id.to_string(),
            action: a.action.clone(),
            votes: format!(
                "{} of {}",
                a.votes.iter().filter(|v| v.vote == "approve").count(),
                a.min_approvals
            ),
        })
        .collect();
    let suggestion =
        match service::usage::suggestion(&state, &row, "30d", WINDOW, jiff::Timestamp::now()).await
        {
            Ok((_, sug, unified)) if !sug.changes.is_empty() => {
                Some(unified.lines().map(str::to_owned).collect())
            }
            _ => None,
        };
    let manages = caller.manages(&row);
    page(
        AgentPage {
            c: Chrome::new(&s, "inventory"),
            id: row.id.to_string(),
            state: row.state.as_str(),
            state_reason: row.state_reason.clone().unwrap_or_default(),
            owner: row.owner.to_string(),
            environment: row.environment.clone(),
            flags: flags.join(", "),
            lines,
            versions,
            diff,
            permissions,
            findings,
            credentials,
            elevations,
            pending,
            suggestion,
            manages,
            retired: row.state == AgentState::Retired,
        }
        .render(),
    )
}

#[derive(Debug, Deserialize)]
pub struct LifecycleForm {
    #[serde(default)]
    csrf: String,
    action: String,
    #[serde(default)]
    reason: String,
}

/// Suspend, resume or retire, through the API's proof (`OwnerOf`) and
/// service, as the signed-in principal.
pub async fn lifecycle(
    State(state): State<AppState>,
    s: SignedIn,
    axum::extract::Path(raw): axum::extract::Path<String>,
    form: Result<axum::Form<LifecycleForm>, axum::extract::rejection::FormRejection>,
) -> Result<Response, ConsoleError> {
    let form = form
        .map_err(|e| ApiError::BadRequest(format!("invalid form: {}", e.body_text())))?
        .0;
    s.check_csrf(&form.csrf)?;
    let to = match form.action.as_str() {
        "suspend" => AgentState::Suspended,
        "resume" => AgentState::Active,
        "retire" => AgentState::Retired,
        other => {
            return Err(ApiError::BadRequest(format!("unknown action `{other}`")).into());
        }
    };
    let reason = form.reason.trim();
    if reason.is_empty() {
        return Err(ApiError::BadRequest("a reason is required".into()).into());
    }
    let id: AgentId = raw
        .parse()
        .map_err(|_| ApiError::NotFound(format!("agent `{raw}` not found")))?;
    // What the caller may not see does not exist for it.
    crate::access::principal_agent(&state, &s.caller(), &id).await?;
    let owner = OwnerOf::prove(&state, s.caller(), &id).await?;
    service::agents::transition(&state, &owner, to, reason).await?;
    Ok(Redirect::to(&format!("/console/agents/{id}")).into_response())
}

#[derive(Debug, Deserialize)]
pub struct EndElevationForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    reason: String,
}

/// End an active or pending elevation early, through the API's service
/// (the owner or an admin; a reason required), as the signed-in principal.
pub async fn end_elevation(
    State(state): State<AppState>,
    s: SignedIn,
    axum::extract::Path((raw, elevation)): axum::extract::Path<(String, String)>,
    form: Result<axum::Form<EndElevationForm>, axum::extract::rejection::FormRejection>,
) -> Result<Response, ConsoleError> {
    let form = form
        .map_err(|e| ApiError::BadRequest(format!("invalid form: {}", e.body_text())))?
        .0;
    s.check_csrf(&form.csrf)?;
    let id: AgentId = raw
        .parse()
        .map_err(|_| ApiError::NotFound(format!("agent `{raw}` not found")))?;
    let caller = s.caller();
    let row = crate::access::principal_agent(&state, &caller, &id).await?;
    service::elevation::end(&state, &caller, &row, &elevation, form.reason.trim()).await?;
    Ok(Redirect::to(&format!("/console/agents/{id}#elevations")).into_response())
}
