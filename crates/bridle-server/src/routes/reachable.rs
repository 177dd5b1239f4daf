//! `POST /v1/decisions/reachable` (`pep`): which of a list of actions an
//! agent's record can reach at all. A gateway uses it to show an agent only
//! the tools it may try (`tools/list`); it decides nothing, writes nothing
//! and is not audited. Every call is still decided by `POST /v1/decisions`.

use axum::Json;
use axum::extract::State;
use bridle_core::engine::Subject;
use bridle_core::id::is_tool_name;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::{Presentation, verify_agent_token};
use crate::capability::Pep;
use crate::error::ApiError;
use crate::json::StrictJson;
use crate::openapi as doc;
use crate::routes::decisions::ForwardedDpop;
use crate::state::AppState;

/// At most this many actions per question.
const MAX_ACTIONS: usize = 1000;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReachableRequest {
    /// The agent's access token, forwarded by the `pep`.
    agent_token: String,
    /// The audience of the resource server the token was presented to.
    #[schema(example = "http://127.0.0.1:8090/mcp")]
    audience: Option<String>,
    /// When the token is DPoP-bound: the proof the agent sent to the `pep`
    /// (admitted at its door, `POST /oauth/introspect`), and its request.
    agent_dpop: Option<ForwardedDpop>,
    /// Tool names to ask about.
    #[schema(example = json!(["everything.echo", "everything.add"]))]
    actions: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReachableResponse {
    /// The agent the token names.
    #[schema(example = "swe-bot")]
    agent: String,
    /// The asked actions a grant or elevation names, no `forbid` names, that
    /// the token's scope includes, while every agent of the chain is active
    /// and unexpired; in the order asked.
    reachable: Vec<String>,
}

/// Which actions an agent's record can reach (a `pep` principal, with the
/// agent's token). Side-effect free: arguments, conditions, schedules,
/// limits and approvals are left to the decision.
#[utoipa::path(
    post,
    path = "/v1/decisions/reachable",
    tag = "decisions",
    operation_id = "reachable_actions",
    request_body = ReachableRequest,
    responses(
        (status = 200, description = "The reachable subset of the actions", body = ReachableResponse),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized),
        (status = 403, response = doc::Forbidden),
        (status = 413, response = doc::PayloadTooLarge),
        (status = 422, response = doc::Invalid),
        (status = 503, response = doc::Unavailable),
    ),
)]
pub async fn reachable(
    State(state): State<AppState>,
    Pep(pep): Pep,
    body: Result<StrictJson<ReachableRequest>, ApiError>,
) -> Result<Json<ReachableResponse>, ApiError> {
    let StrictJson(req) = body?;
    if req.actions.len() > MAX_ACTIONS {
        return Err(ApiError::invalid(
            "too many actions",
            "actions",
            format!("at most {MAX_ACTIONS}"),
        ));
    }
    if let Some(i) = req.actions.iter().position(|a| !is_tool_name(a)) {
        return Err(ApiError::invalid(
            "invalid action",
            &format!("actions[{i}]"),
            "a tool name: letters, digits and `_.:/-`",
        ));
    }
    let how = Presentation {
        audience: req.audience.as_deref(),
        scheme: None,
        dpop: req.agent_dpop.as_ref().map(ForwardedDpop::evidence),
        pep: Some(pep.id.as_str()),
    };
    let agent = verify_agent_token(&state, &req.agent_token, how).await?;
    let mut compiled = Vec::with_capacity(agent.chain.len());
    for row in agent.chain.iter() {
        compiled.push(state.compiled(row).await?);
    }
    let subjects: Vec<Subject<'_>> = agent
        .chain
        .iter()
        .zip(&compiled)
        .map(|(row, agent)| Subject {
            agent,
            state: row.state,
            elevations: &[],
        })
        .collect();
    let scope: Option<Vec<String>> = agent
        .claims
        .scope
        .as_ref()
        .map(|s| s.split(' ').map(String::from).collect());
    let now = Timestamp::now();
    let reachable = req
        .actions
        .into_iter()
        .filter(|a| bridle_core::reach::reachable(&subjects, scope.as_deref(), a, now))
        .collect();
    Ok(Json(ReachableResponse {
        agent: agent.row().id.to_string(),
        reachable,
    }))
}
