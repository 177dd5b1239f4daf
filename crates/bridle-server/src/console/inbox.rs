//! The approval inbox (`/console/approvals`): the pending approvals the
//! signed-in principal may see, with **Approve** / **Deny** where it may
//! vote; the list is a fragment htmx polls, so new requests appear
//! without a reload.

use askama::Template;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use bridle_core::id::ApprovalId;
use bridle_store::{Approval, ApprovalKind, ApprovalState};
use serde::Deserialize;

use super::{Chrome, ConsoleError, SignedIn, page, when};
use crate::capability::Voter;
use crate::error::ApiError;
use crate::state::AppState;

struct Item {
    id: String,
    kind: &'static str,
    agent: String,
    owner: String,
    action: String,
    args: String,
    resource: String,
    rule: String,
    /// The grant's approval rule that asked, and its manifest line.
    asked: Option<(String, String, usize)>,
    votes: String,
    voters: Vec<String>,
    expires: String,
    /// Whether the principal may vote on it now (the `Voter` proof).
    can_vote: bool,
    diff: Vec<String>,
    replay: String,
}

#[derive(Template)]
#[template(path = "console/approvals.html")]
struct Inbox {
    c: Chrome,
    items: Vec<Item>,
}

#[derive(Template)]
#[template(path = "console/approvals_list.html")]
struct List {
    csrf: String,
    items: Vec<Item>,
}

fn rule(a: &Approval) -> String {
    let needed = format!("{} of {}", a.min_approvals, a.approvers.join(", "));
    match a.kind {
        ApprovalKind::Change => format!("change control: {needed}"),
        ApprovalKind::Elevation => format!("elevation: {needed}"),
        ApprovalKind::Action => needed,
    }
}

/// The arguments as shown: a change's diff is shown on its own.
fn shown_args(a: &Approval) -> String {
    let mut args = a.args.clone();
    if a.kind == ApprovalKind::Change
        && let Some(fields) = args.as_object_mut()
    {
        fields.remove("unified");
    }
    serde_json::to_string_pretty(&args).unwrap_or_default()
}

async fn items(state: &AppState, s: &SignedIn) -> Result<Vec<Item>, ConsoleError> {
    let caller = s.caller();
    let pending = crate::access::approvals(state, &caller, Some(ApprovalState::Pending)).await?;
    let mut out = Vec::with_capacity(pending.len());
    for a in pending {
        let can_vote = Voter::prove(state, caller.clone(), &a.id).await.is_ok();
        let asked = crate::service::console::asking_rule(state, &a).await?;
        let (diff, replay) = match a.kind {
            ApprovalKind::Change => {
                let diff = a
                    .args
                    .get("unified")
                    .and_then(|d| d.as_str())
                    .map(|d| d.lines().map(str::to_owned).collect())
                    .unwrap_or_default();
                let replay = match crate::service::replay::of_change(state, &a).await {
                    Ok(Some((_, since, r))) => format!(
                        "Replayed against the decisions since {}: {} decisions, {} unchanged, {} would change, {} skipped",
                        when(since),
                        r.decisions,
                        r.unchanged,
                        r.changed.len(),
                        r.skipped
                    ),
                    _ => String::new(),
                };
                (diff, replay)
            }
            ApprovalKind::Action | ApprovalKind::Elevation => (Vec::new(), String::new()),
        };
        out.push(Item {
            id: a.id.to_string(),
            kind: a.kind.as_str(),
            agent: a.agent.to_string(),
            owner: a.owner.to_string(),
            action: a.action.clone(),
            args: shown_args(&a),
            resource: a.resource.clone().unwrap_or_default(),
            rule: rule(&a),
            asked,
            votes: format!(
                "{} of {}",
                a.votes.iter().filter(|v| v.vote == "approve").count(),
                a.min_approvals
            ),
            voters: a
                .votes
                .iter()
                .map(|v| format!("{} {}", v.principal, v.vote))
                .collect(),
            expires: when(a.expires_at),
            can_vote,
            diff,
            replay,
        });
    }
    Ok(out)
}

pub async fn inbox(State(state): State<AppState>, s: SignedIn) -> Result<Response, ConsoleError> {
    let items = items(&state, &s).await?;
    page(
        Inbox {
            c: Chrome::new(&s, "approvals"),
            items,
        }
        .render(),
    )
}

/// The list alone, which the inbox page polls.
pub async fn pending(State(state): State<AppState>, s: SignedIn) -> Result<Response, ConsoleError> {
    let items = items(&state, &s).await?;
    page(
        List {
            csrf: s.session.csrf_token.clone(),
            items,
        }
        .render(),
    )
}

#[derive(Debug, Deserialize)]
pub struct VoteForm {
    #[serde(default)]
    csrf: String,
    vote: String,
    #[serde(default)]
    comment: String,
}

/// A vote, through the API's proof (`Voter`) and service.
pub async fn vote(
    State(state): State<AppState>,
    s: SignedIn,
    Path(raw): Path<String>,
    form: Result<axum::Form<VoteForm>, axum::extract::rejection::FormRejection>,
) -> Result<Response, ConsoleError> {
    let form = form
        .map_err(|e| ApiError::BadRequest(format!("invalid form: {}", e.body_text())))?
        .0;
    s.check_csrf(&form.csrf)?;
    let approve = match form.vote.as_str() {
        "approve" => true,
        "deny" => false,
        other => return Err(ApiError::BadRequest(format!("unknown vote `{other}`")).into()),
    };
    let id: ApprovalId = raw
        .parse()
        .map_err(|_| ApiError::NotFound(format!("approval `{raw}` not found")))?;
    let voter = Voter::prove(&state, s.caller(), &id).await?;
    let comment = Some(form.comment.trim().to_owned()).filter(|c| !c.is_empty());
    crate::service::approvals::vote(&state, &voter, approve, comment).await?;
    Ok(Redirect::to("/console/approvals").into_response())
}
