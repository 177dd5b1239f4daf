//! `POST /v1/decisions`: the control point. Authenticates the agent (its own
//! token, or a `pep` principal forwarding it), decides with the engine,
//! creates or consumes approvals, persists usage, writes the audit record
//! durably, and only then answers.

#![expect(
    clippy::indexing_slicing,
    reason = "the decision path is being moved into a decision service; its indexing is rewritten with it"
)]

use std::sync::Mutex;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use bridle_core::audit::{EventType, redact_args};
use bridle_core::decision::Effect;
use bridle_core::engine::{ActionRequest, ApprovalStatus, DecisionInput, Subject, approval_key};
use bridle_core::id::is_tool_name;
use bridle_core::ledger::{Ledger, LimitHit, MemoryLedger, Spend};
use bridle_core::manifest::Rate;
use bridle_core::resource::Resource;
use bridle_core::{CompiledAgent, Decision, id::AgentId};
use bridle_store::{
    ApprovalKind, ApprovalState, ApprovalStore, ElevationStore, NewApproval, Role, UsageStore, ts,
};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::{AgentCaller, Caller, DpopEvidence, Presentation, verify_agent_token};
use crate::error::ApiError;
use crate::json::StrictJson;
use crate::openapi as doc;
use crate::state::AppState;
use crate::tokens::random_token;

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

#[derive(Debug, Serialize, ToSchema)]
pub struct DecisionResponse {
    #[schema(value_type = doc::EffectSchema)]
    pub(crate) decision: &'static str,
    #[schema(example = "dec_4bXk2mQ9aZ1r")]
    pub(crate) decision_id: String,
    #[schema(value_type = Vec<doc::ReasonSchema>)]
    pub(crate) reasons: Vec<bridle_core::decision::Reason>,
    #[schema(value_type = Vec<doc::ObligationSchema>)]
    pub(crate) obligations: Vec<bridle_core::decision::Obligation>,
    /// The approval to wait for, when `approval_required`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) approval_id: Option<String>,
}

/// The agent a decision is for: its own token, or a PEP forwarding it.
async fn acting_agent(
    state: &AppState,
    caller: Caller,
    forwarded: Option<&str>,
    audience: Option<&str>,
    agent_dpop: Option<&ForwardedDpop>,
) -> Result<AgentCaller, ApiError> {
    match (caller, forwarded) {
        (Caller::Agent(a), None) if audience.is_none() && agent_dpop.is_none() => Ok(*a),
        (Caller::Agent(_), _) => Err(ApiError::BadRequest(
            "`agent_token`, `audience` and `agent_dpop` are only for `pep` principals".into(),
        )),
        (Caller::Principal(p), Some(token)) if p.has_role(Role::Pep) => {
            let how = Presentation {
                audience,
                scheme: None,
                dpop: agent_dpop.map(|d| DpopEvidence {
                    proof: &d.proof,
                    method: &d.htm,
                    url: &d.htu,
                }),
            };
            verify_agent_token(state, token, how).await
        }
        (Caller::Principal(p), _) if p.has_role(Role::Pep) => Err(ApiError::Unauthenticated(
            "a `pep` must forward the agent's token as `agent_token`".into(),
        )),
        (Caller::Principal(_), _) => Err(ApiError::Forbidden(
            "decisions are asked by agents, or by a principal with role `pep`".into(),
        )),
    }
}

/// Records what the engine counts, so the server can persist it.
struct RecordingLedger<'a> {
    inner: &'a MemoryLedger,
    /// `(agent, [(argument or "" for the rate count, amount)])`.
    recorded: Mutex<Vec<Usage>>,
}

type Usage = (String, Vec<(String, i64)>);

impl Ledger for RecordingLedger<'_> {
    fn check(
        &self,
        agent: &AgentId,
        now: Timestamp,
        rate: Option<Rate>,
        spend: &[Spend],
    ) -> Option<LimitHit> {
        self.inner.check(agent, now, rate, spend)
    }

    fn record(&self, agent: &AgentId, now: Timestamp, rate: Option<Rate>, spend: &[Spend]) {
        self.inner.record(agent, now, rate, spend);
        let mut entries: Vec<(String, i64)> = Vec::new();
        if rate.is_some() {
            entries.push((String::new(), 1));
        }
        for s in spend {
            if !entries.iter().any(|(arg, _)| arg == &s.arg) {
                entries.push((s.arg.clone(), s.amount));
            }
        }
        if let Ok(mut r) = self.recorded.lock() {
            r.push((agent.to_string(), entries));
        }
    }
}

struct Fixed(ApprovalStatus);

impl bridle_core::ApprovalLookup for Fixed {
    fn find(&self, _key: &str, _now: Timestamp) -> ApprovalStatus {
        self.0.clone()
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
    let agent = acting_agent(
        &state,
        caller,
        req.agent_token.as_deref(),
        req.audience.as_deref(),
        req.agent_dpop.as_ref(),
    )
    .await?;
    if !is_tool_name(&req.action) {
        return Err(ApiError::invalid(
            "invalid action",
            "action",
            "a tool name: letters, digits and `_.:/-`",
        ));
    }
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
    decide_as(&state, &agent, &req.action, args, resource)
        .await
        .map(Json)
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

/// Decide one action for an authenticated agent (its chain and token),
/// create or consume approvals, persist usage and write the audit record;
/// returns only once the record is durable. Every enforcement point (the
/// decision API, the Envoy ext_authz endpoint) goes through here.
pub(crate) async fn decide_as(
    state: &AppState,
    agent: &AgentCaller,
    action: &str,
    args: serde_json::Map<String, serde_json::Value>,
    resource: Option<Resource>,
) -> Result<DecisionResponse, ApiError> {
    let resource = resource.map(Resource::into_string);
    let rows = agent.chain.as_slice();
    let now = Timestamp::now();
    let now_text = ts(now);
    let mut compiled: Vec<CompiledAgent> = Vec::with_capacity(rows.len());
    let mut elevations: Vec<Vec<String>> = Vec::with_capacity(rows.len());
    for row in rows {
        let agent = state.compiled(row).await?;
        // Only agents that can be elevated need the store asked.
        elevations.push(if agent.manifest().elevation.is_empty() {
            Vec::new()
        } else {
            state
                .store
                .active_elevations(row.id.as_str(), &now_text)
                .await?
        });
        compiled.push(agent);
    }
    let subjects: Vec<Subject<'_>> = rows
        .iter()
        .zip(&compiled)
        .zip(&elevations)
        .map(|((row, agent), elevations)| Subject {
            agent,
            state: row.state,
            elevations,
        })
        .collect();
    let scope: Option<Vec<String>> = agent
        .claims
        .scope
        .as_ref()
        .map(|s| s.split(' ').map(String::from).collect());
    let input = DecisionInput {
        subjects: &subjects,
        scope: scope.as_deref(),
        action: ActionRequest {
            name: action,
            args: &args,
            resource: resource.as_deref(),
        },
        now,
    };
    let key = approval_key(&input);
    // Only records with an approval rule can need (or consume) an approval.
    let may_need_approval = compiled
        .iter()
        .any(|c| c.manifest().tools.iter().any(|t| t.approval.is_some()));
    let existing = if may_need_approval {
        state.store.approval_for_key(&key, &now_text).await?
    } else {
        None
    };
    let status = match &existing {
        Some(a) if a.state == ApprovalState::Approved => ApprovalStatus::Granted(parse_id(&a.id)?),
        Some(a) if a.state == ApprovalState::Denied => ApprovalStatus::Denied(parse_id(&a.id)?),
        Some(a) if a.state == ApprovalState::Pending => ApprovalStatus::Pending(parse_id(&a.id)?),
        _ => ApprovalStatus::None,
    };
    let ledger = RecordingLedger {
        inner: &state.ledger,
        recorded: Mutex::new(Vec::new()),
    };
    let mut decision = state.engine.decide(&input, &ledger, &Fixed(status));
    if let Some(id) = &decision.consumes
        && !state.store.consume_approval(id.as_str()).await?
    {
        // Someone consumed it first: a granted approval is single use.
        decision = state
            .engine
            .decide(&input, &ledger, &Fixed(ApprovalStatus::None));
    }

    let owner = rows[0].owner.to_string();
    let sensitive: Vec<&str> = compiled
        .iter()
        .flat_map(|c| c.manifest().sensitive_args(action))
        .collect();
    let logged_args = redact_args(&args, &sensitive, &state.hmac_key);
    let approval_id = match (&decision.effect, &decision.approval) {
        (Effect::ApprovalRequired, Some(need)) => match &need.pending {
            Some(id) => Some(id.to_string()),
            None => {
                let new = NewApproval {
                    id: format!("apr_{}", random_token(12)),
                    kind: ApprovalKind::Action,
                    agent: rows[0].id.to_string(),
                    key: key.clone(),
                    action: action.to_owned(),
                    args: serde_json::Value::Object(logged_args.clone()),
                    resource: resource.clone(),
                    approvers: need.approvers.iter().map(ToString::to_string).collect(),
                    min_approvals: i64::from(need.min_approvals),
                    allow_owner: need.allow_owner,
                    owner: owner.clone(),
                    elevation_id: None,
                    expires_at: ts(now + jiff::SignedDuration::from_secs(need.ttl_seconds)),
                };
                let (approval, created) = state.store.create_approval(&new).await?;
                if created {
                    state.http.notify(
                        "dev.bridle.approval.requested",
                        &approval.id,
                        serde_json::to_value(&approval).unwrap_or_default(),
                    );
                }
                Some(approval.id)
            }
        },
        _ => None,
    };
    let recorded = ledger.recorded.into_inner().unwrap_or_default();
    for (agent_id, entries) in &recorded {
        state
            .store
            .record_usage(agent_id, now.as_millisecond(), entries)
            .await?;
    }

    let decision_id = format!("dec_{}", random_token(12));
    let mut event = state.event(EventType::Decision, &format!("agent:{}", rows[0].id));
    event.agent = Some(rows[0].id.to_string());
    event.action = Some(action.to_owned());
    event.decision = Some(decision.effect.as_str().to_owned());
    event.reasons = serde_json::to_value(&decision.reasons).ok();
    event.args = Some(serde_json::Value::Object(logged_args));
    event.resource = resource.clone();
    event.detail = Some(serde_json::json!({
        "decision_id": decision_id,
        "jti": agent.claims.jti,
        "chain": rows.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        "approval_id": approval_id,
        "consumed_approval": decision.consumes,
    }));
    state.audit(event).await?;
    if decision.effect == Effect::Deny {
        super::monitor::note_denial(state, &rows[0], &compiled[0], now).await?;
    }
    Ok(response(decision, decision_id, approval_id))
}

fn parse_id(id: &str) -> Result<bridle_core::id::ApprovalId, ApiError> {
    id.parse()
        .map_err(|_| ApiError::Internal(format!("stored approval id `{id}` is malformed")))
}

fn response(d: Decision, decision_id: String, approval_id: Option<String>) -> DecisionResponse {
    DecisionResponse {
        decision: d.effect.as_str(),
        decision_id,
        reasons: d.reasons,
        obligations: d.obligations,
        approval_id,
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
    Path(decision_id): Path<String>,
    body: Result<StrictJson<Outcome>, ApiError>,
) -> Result<StatusCode, ApiError> {
    let StrictJson(body) = body?;
    if !decision_id.starts_with("dec_") || decision_id.len() > 64 {
        return Err(ApiError::NotFound(format!(
            "decision `{decision_id}` not found"
        )));
    }
    let agent = acting_agent(
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
        retrievals.push(r.into_string());
    }
    let mut event = state.event(EventType::Outcome, &format!("agent:{}", agent.row().id));
    event.agent = Some(agent.row().id.to_string());
    event.retrievals = Some(retrievals);
    event.detail = Some(serde_json::json!({
        "decision_id": decision_id,
        "status": match body.status { OutcomeStatus::Ok => "ok", OutcomeStatus::Error => "error" },
    }));
    state.audit(event).await?;
    Ok(StatusCode::NO_CONTENT)
}
