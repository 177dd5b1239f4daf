//! `POST /v1/decisions` and outcomes: the decision API as a transport.
//! Authenticates the agent (its own token, or a `pep` principal forwarding
//! it), checks the request's shape, and hands it to the decision service
//! ([`crate::service::decision`]), which decides, consumes or creates
//! approvals, charges usage and writes the audit record durably before it
//! answers.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use bridle_core::id::{ApprovalId, DecisionId, ToolName};
use bridle_core::resource::Resource;
use bridle_store::Role;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::{AgentCaller, Caller, DpopEvidence, Presentation, verify_agent_token};
use crate::error::ApiError;
use crate::json::StrictJson;
use crate::openapi as doc;
use crate::path::{IdPath, IdRejection, PathId as _};
use crate::service::{self, ActionCall, Answer, Via, outcome};
use crate::state::AppState;
use crate::views::decision as views;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionRequest {
    /// The tool name.
    #[schema(example = "procurement.create_purchase_request")]
    action: String,
    /// The tool's arguments: a JSON object.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    args: Option<serde_json::Value>,
    /// The resource acted on, in the resource grammar (`scheme:path`, at
    /// most 1024 bytes, no `.`/`..` segments; see `docs/input.md`); a name
    /// outside it is a 400 naming `resource`.
    #[schema(example = "crm:cases/17")]
    resource: Option<String>,
    /// The agent's access token, when a `pep` principal asks for it.
    agent_token: Option<String>,
    /// With `agent_token`: the audience of the resource server the `pep`
    /// guards (its URL), so tokens issued for it (`resource` = that URL)
    /// are accepted.
    audience: Option<String>,
    /// With `agent_token`, when the token is DPoP-bound: the proof the agent
    /// sent to the `pep`, and the request it was for.
    agent_dpop: Option<ForwardedDpop>,
}

/// A DPoP proof an agent sent to a `pep` (RFC 9449), forwarded for checking.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ForwardedDpop {
    /// The `DPoP` header value.
    proof: String,
    /// The HTTP method of the agent's request to the `pep`.
    #[schema(example = "POST")]
    htm: String,
    /// The URL of the agent's request to the `pep`.
    #[schema(example = "http://127.0.0.1:8090/mcp")]
    htu: String,
}

impl ForwardedDpop {
    pub(crate) fn evidence(&self) -> DpopEvidence<'_> {
        DpopEvidence {
            proof: &self.proof,
            method: &self.htm,
            url: &self.htu,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DecisionResponse {
    pub(crate) decision: views::Effect,
    #[schema(example = "dec_4bXk2mQ9aZ1r")]
    pub(crate) decision_id: String,
    pub(crate) reasons: Vec<views::Reason>,
    pub(crate) obligations: Vec<views::Obligation>,
    /// The approval to wait for, when `approval_required`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) approval_id: Option<String>,
}

/// The agent a decision is for, and who brought it: its own token, or a
/// PEP forwarding it.
async fn acting_agent(
    state: &AppState,
    caller: Caller,
    forwarded: Option<&str>,
    audience: Option<&str>,
    agent_dpop: Option<&ForwardedDpop>,
) -> Result<(AgentCaller, Via), ApiError> {
    match (caller, forwarded) {
        (Caller::Agent(a), None) if audience.is_none() && agent_dpop.is_none() => {
            Ok((*a, Via::Agent))
        }
        (Caller::Agent(_), _) => Err(ApiError::BadRequest(
            "`agent_token`, `audience` and `agent_dpop` are only for `pep` principals".into(),
        )),
        (Caller::Principal(p), Some(token)) if p.has_role(Role::Pep) => {
            let how = Presentation {
                audience,
                scheme: None,
                dpop: agent_dpop.map(ForwardedDpop::evidence),
                pep: Some(p.id.as_str()),
            };
            let agent = verify_agent_token(state, token, how).await?;
            Ok((agent, Via::Pep(p.id.clone())))
        }
        (Caller::Principal(p), _) if p.has_role(Role::Pep) => Err(ApiError::Unauthenticated(
            "a `pep` must forward the agent's token as `agent_token`".into(),
        )),
        (Caller::Principal(_), _) => Err(ApiError::Forbidden(
            "decisions are asked by agents, or by a principal with role `pep`".into(),
        )),
    }
}

/// Decide whether the agent may perform an action (the agent's access token,
/// or a `pep` principal forwarding it as `agent_token`).
#[utoipa::path(
    post,
    path = "/v1/decisions",
    tag = "decisions",
    operation_id = "decide",
    request_body = DecisionRequest,
    responses(
        (status = 200, description = "The decision (also for deny and approval_required)", body = DecisionResponse,
            links(
                ("outcome" = (operation_id = "decision_outcome", parameters(("id" = "$response.body#/decision_id")))),
                ("approval" = (operation_id = "show_approval", parameters(("id" = "$response.body#/approval_id")))),
            )),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized),
        (status = 403, response = doc::Forbidden),
        (status = 413, response = doc::PayloadTooLarge),
        (status = 422, response = doc::Invalid),
        (status = 503, response = doc::Unavailable),
    ),
)]
pub async fn decide(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<StrictJson<DecisionRequest>, ApiError>,
) -> Result<Json<DecisionResponse>, ApiError> {
    let StrictJson(req) = body?;
    let (agent, via) = acting_agent(
        &state,
        caller,
        req.agent_token.as_deref(),
        req.audience.as_deref(),
        req.agent_dpop.as_ref(),
    )
    .await?;
    let action: ToolName = req.action.parse().map_err(|_| {
        ApiError::invalid(
            "invalid action",
            "action",
            "a tool name: letters, digits and `_.:/-`",
        )
    })?;
    let args = match req.args {
        None | Some(serde_json::Value::Null) => serde_json::Map::new(),
        Some(serde_json::Value::Object(m)) => m,
        Some(_) => {
            return Err(ApiError::invalid(
                "invalid arguments",
                "args",
                "must be a JSON object",
            ));
        }
    };
    let resource = req.resource.as_deref().map(request_resource).transpose()?;
    let call = ActionCall {
        action,
        args,
        resource,
    };
    let answer = service::decision::decide(&state, &agent, &via, call).await?;
    Ok(Json(DecisionResponse::from(answer)))
}

/// A request's `resource`, checked against the resource grammar: a name
/// outside it is a 400 naming `resource`, not a decision.
fn request_resource(s: &str) -> Result<Resource, ApiError> {
    Resource::parse(s).map_err(|e| {
        ApiError::malformed(
            "the resource does not fit the resource grammar",
            "resource",
            e.to_string(),
        )
    })
}

impl From<Answer> for DecisionResponse {
    fn from(a: Answer) -> Self {
        Self {
            decision: a.decision.effect.into(),
            decision_id: a.decision_id.into_string(),
            reasons: a.decision.reasons.into_iter().map(Into::into).collect(),
            obligations: a.decision.obligations.into_iter().map(Into::into).collect(),
            approval_id: a.approval_id.map(ApprovalId::into_string),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Outcome {
    status: OutcomeStatus,
    /// URIs the agent retrieved (obligation `log_retrieval`), each in the
    /// resource grammar.
    #[serde(default)]
    retrievals: Vec<String>,
    /// The agent's access token, when a `pep` principal reports.
    agent_token: Option<String>,
    /// With `agent_token`: as for decisions.
    audience: Option<String>,
    /// With `agent_token`: as for decisions.
    agent_dpop: Option<ForwardedDpop>,
}

#[derive(Debug, Deserialize, Clone, Copy, ToSchema)]
#[serde(rename_all = "lowercase")]
enum OutcomeStatus {
    Ok,
    Error,
}

/// Report the outcome of a decided action (the agent, or a `pep`); recorded
/// in the audit log.
#[utoipa::path(
    post,
    path = "/v1/decisions/{id}/outcome",
    tag = "decisions",
    operation_id = "decision_outcome",
    params(("id" = String, Path, description = "The decision's `decision_id`")),
    request_body = Outcome,
    responses(
        (status = 204, description = "Recorded"),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized),
        (status = 403, response = doc::Forbidden),
        (status = 404, response = doc::NotFound),
        (status = 413, response = doc::PayloadTooLarge),
        (status = 422, response = doc::Invalid),
        (status = 503, response = doc::Unavailable),
    ),
)]
pub async fn outcome(
    State(state): State<AppState>,
    caller: Caller,
    id: Result<IdPath<DecisionId>, IdRejection>,
    body: Result<StrictJson<Outcome>, ApiError>,
) -> Result<StatusCode, ApiError> {
    let StrictJson(body) = body?;
    // Only the server makes decision ids, all `dec_…`: another id names none.
    let IdPath(id) = id?;
    if !id.as_str().starts_with("dec_") {
        return Err(DecisionId::not_found(id.as_str()));
    }
    let (agent, via) = acting_agent(
        &state,
        caller,
        body.agent_token.as_deref(),
        body.audience.as_deref(),
        body.agent_dpop.as_ref(),
    )
    .await?;
    if body.retrievals.len() > 1000 {
        return Err(ApiError::invalid(
            "too many retrievals",
            "retrievals",
            "at most 1000 entries",
        ));
    }
    let mut retrievals = Vec::with_capacity(body.retrievals.len());
    for (i, r) in body.retrievals.iter().enumerate() {
        let r = Resource::parse(r).map_err(|e| {
            ApiError::malformed(
                "a retrieval does not fit the resource grammar",
                &format!("retrievals[{i}]"),
                e.to_string(),
            )
        })?;
        retrievals.push(r);
    }
    let status = match body.status {
        OutcomeStatus::Ok => outcome::Status::Ok,
        OutcomeStatus::Error => outcome::Status::Error,
    };
    outcome::record(&state, &agent, &via, &id, status, retrievals).await?;
    Ok(StatusCode::NO_CONTENT)
}
