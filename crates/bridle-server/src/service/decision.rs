//! Deciding one action, as one unit: load the chain's records, decide
//! (pure), consume a granted approval or create a pending one, commit the
//! usage, write the audit record durably, then contain (denial spikes).
//! Every enforcement point calls [`decide`]; only a decision that stands is
//! charged, and the record is durable before the answer exists.

use bridle_core::audit::{EventBody, EventType, redact_args};
use bridle_core::decision::Effect;
use bridle_core::engine::{ActionRequest, ApprovalStatus, DecisionInput, Subject, approval_key};
use bridle_core::id::{ApprovalId, DecisionId, PrincipalId, ToolName};
use bridle_core::ledger::UsageSnapshot;
use bridle_core::resource::Resource;
use bridle_core::{ApprovalLookup, CompiledAgent, Decided, Decision};
use bridle_store::{
    AgentRow, Appended, ApprovalKind, ApprovalState, ApprovalStore, ElevationStore, LimitNeed,
    NewApproval, UsageStore,
};
use jiff::Timestamp;
use serde_json::{Map, Value, json};
use tracing::Instrument as _;

use super::ServiceError;
use super::containment;
use crate::auth::AgentCaller;
use crate::state::AppState;
use crate::tokens::new_id;

/// The action an agent asks to perform.
#[derive(Debug, Clone)]
pub struct ActionCall {
    pub action: ToolName,
    pub args: Map<String, Value>,
    pub resource: Option<Resource>,
}

/// Who brought the request to Bridle, recorded in every decision and
/// outcome event it causes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    /// The agent itself, with its own token.
    Agent,
    /// A `pep` principal (the MCP gateway, a service's enforcement point)
    /// forwarding the agent's token.
    Pep(PrincipalId),
    /// Envoy's ext_authz check of the agent's HTTP request.
    ExtAuthz { method: String, path: String },
}

impl Via {
    /// Adds this to an audit event's `detail`: `pep` (the principal's id)
    /// or `ext_authz` (`{method, path}`); nothing for the agent itself.
    pub(crate) fn note(&self, detail: &mut Map<String, Value>) {
        match self {
            Self::Agent => {}
            Self::Pep(p) => {
                detail.insert("pep".into(), Value::String(p.to_string()));
            }
            Self::ExtAuthz { method, path } => {
                detail.insert("ext_authz".into(), json!({"method": method, "path": path}));
            }
        }
    }
}

/// What the service answers: the decision as audited under `decision_id`,
/// and the approval to wait for when one is required.
#[derive(Debug, Clone)]
pub struct Answer {
    pub decision_id: DecisionId,
    pub decision: Decision,
    pub approval_id: Option<ApprovalId>,
}

/// The records of the chain as they stand now.
struct Loaded {
    compiled: Vec<CompiledAgent>,
    elevations: Vec<Vec<String>>,
}

/// Decide `call` for an authenticated agent (its token's chain), with every
/// consequence; returns only once the audit record is durable.
pub async fn decide(
    state: &AppState,
    agent: &AgentCaller,
    via: &Via,
    call: ActionCall,
) -> Result<Answer, ServiceError> {
    let started = std::time::Instant::now();
    let span = crate::telemetry::decision_span(agent.row().id.as_str(), call.action.as_str(), via);
    let answer = decide_in_span(state, agent, via, call)
        .instrument(span.clone())
        .await;
    crate::telemetry::decided(&span, &answer);
    state.metrics.decided(
        started.elapsed(),
        answer.as_ref().ok().map(|a| {
            let d = &a.decision;
            (d.effect, d.reasons.first().map(|r| r.code))
        }),
    );
    answer
}

async fn decide_in_span(
    state: &AppState,
    agent: &AgentCaller,
    via: &Via,
    call: ActionCall,
) -> Result<Answer, ServiceError> {
    let rows: &[AgentRow] = &agent.chain;
    let Some(head) = rows.first() else {
        return Err(ServiceError::Task(
            "a verified token without an agent".into(),
        ));
    };
    let now = Timestamp::now();
    let loaded = load(state, rows, call.action.as_str(), now).await?;
    let subjects: Vec<Subject<'_>> = rows
        .iter()
        .zip(&loaded.compiled)
        .zip(&loaded.elevations)
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
    let resource = call.resource.map(Resource::into_string);
    let input = DecisionInput {
        subjects: &subjects,
        scope: scope.as_deref(),
        action: ActionRequest {
            name: call.action.as_str(),
            args: &call.args,
            resource: resource.as_deref(),
        },
        now,
    };
    // Approvals are read only for a decision that needs one: the engine
    // asks for the approval state only where a rule asks for approval, so
    // deciding first without it and again with it, where it is asked for,
    // is the same decision (most decisions need no approval and no read).
    // Hashed only where an approval is asked for or read.
    let key = || approval_key(&input);
    let mut status = ApprovalStatus::None;
    let mut status_read = false;
    // Optimistic on limits: the store checks every window again when it
    // commits the usage, atomically and for all replicas, so a plain allow
    // needs no read of the usage first (a limit it breaks makes it a
    // denial at commit). A decision that asks for or consumes an approval
    // reads it first, so nobody is asked to approve what a limit refuses.
    // A budget that asks for approval past its maximum is read first too:
    // optimism would turn what should ask into a denial at commit.
    let mut used = UsageSnapshot::new();
    let mut decided = state.engine.decide(&input, &used, &Fixed(status.clone()));
    if decided.decision.approval.is_some() {
        status = approval_status(state, &key(), now).await?;
        status_read = true;
        decided = state.engine.decide(&input, &used, &Fixed(status.clone()));
    }
    let plain_allow = decided.decision.effect == Effect::Allow
        && decided.decision.consumes.is_none()
        && !loaded.compiled.iter().any(asks_over_budget);
    if !decided.usage.is_empty() && !plain_allow {
        used = usage_snapshot(state, &loaded.compiled, now).await?;
        decided = state.engine.decide(&input, &used, &Fixed(status.clone()));
        // What was spent may make a budget ask for approval.
        if !status_read && decided.decision.approval.is_some() {
            status = approval_status(state, &key(), now).await?;
            decided = state.engine.decide(&input, &used, &Fixed(status));
        }
    }
    if let Some(id) = &decided.decision.consumes
        && !state.store().consume_approval(id).await?
    {
        // Someone consumed it first: a granted approval is single use, and
        // the decision it would have allowed never stands (nor is charged).
        decided = state
            .engine
            .decide(&input, &used, &Fixed(ApprovalStatus::None));
    }
    let Decided { decision, usage } = decided;

    let sensitive: Vec<&str> = loaded
        .compiled
        .iter()
        .flat_map(|c| c.manifest().sensitive_args(call.action.as_str()))
        .collect();
    let logged_args = redact_args(&call.args, &sensitive, &state.hmac_key);
    // An approval this request creates; its approvers are told once the
    // decision stands.
    let mut created_approval = None;
    let approval_id = match (&decision.effect, &decision.approval) {
        (Effect::ApprovalRequired, Some(need)) => Some(match &need.pending {
            Some(id) => id.clone(),
            None => {
                let new = NewApproval {
                    id: new_id("apr_", 12).map_err(|e| ServiceError::Task(e.to_string()))?,
                    kind: ApprovalKind::Action,
                    agent: head.id.clone(),
                    key: key(),
                    action: call.action.to_string(),
                    args: Value::Object(logged_args.clone()),
                    resource: resource.clone(),
                    approvers: need.approvers.iter().map(ToString::to_string).collect(),
                    min_approvals: i64::from(need.min_approvals),
                    allow_owner: need.allow_owner,
                    owner: head.owner.clone(),
                    elevation_id: None,
                    expires_at: now + jiff::SignedDuration::from_secs(need.ttl_seconds),
                };
                let (approval, created) = state.store().create_approval(&new).await?;
                let id = approval.id.clone();
                if created {
                    created_approval = Some(approval);
                }
                id
            }
        }),
        _ => None,
    };

    let decision_id = new_decision_id()?;
    let record = Record {
        state,
        head,
        rows,
        agent,
        via,
        action: &call.action,
        logged_args,
        resource,
        decision_id: &decision_id,
    };
    // The usage is checked again and recorded with the audit record, in
    // one durable unit: only the decision that stands is charged, and a
    // concurrent decision (on any replica) that took the room first makes
    // this one a denial.
    let (decision, approval_id) = match state
        .audit
        .append_charged(record.event(&decision, approval_id.as_ref()), usage)
        .await?
    {
        Appended::Event(event) => {
            // As i64: OpenTelemetry has no unsigned integers.
            tracing::Span::current().record("bridle.audit.seq", i64::try_from(event.seq).ok());
            if let Some(approval) = &created_approval {
                notify_requested(state, approval);
            }
            (decision, approval_id)
        }
        Appended::Limited { agent: over, hit } => {
            if let Some(id) = &decision.consumes {
                state.store().restore_approval(id).await?;
            }
            if let Some(approval) = &created_approval {
                state.store().withdraw_approval(&approval.id, now).await?;
            }
            let chain = rows.len() > 1;
            let limited = rows
                .iter()
                .zip(&loaded.compiled)
                .find(|(row, _)| row.id == over)
                .map(|(_, c)| bridle_core::engine::limit_denial(c, hit, chain))
                .ok_or_else(|| {
                    ServiceError::Task(format!("a limit of `{over}` outside the chain"))
                })?;
            let mut limited = limited;
            limited.obligations.clone_from(&decision.obligations);
            state.audit.append(record.event(&limited, None)).await?;
            (limited, None)
        }
    };

    if decision.effect == Effect::Deny
        && let Some(compiled) = loaded.compiled.first()
    {
        containment::note_denial(state, head, compiled, now).await?;
    }
    Ok(Answer {
        decision_id,
        decision,
        approval_id,
    })
}

/// A request an enforcement point refused before it could be decided (no
/// route maps it to an action, or it is ambiguous as sent): recorded as a
/// denial of `action` (when known), with `why` and the enforcement point.
pub async fn refuse(
    state: &AppState,
    agent: &AgentCaller,
    via: &Via,
    action: Option<&ToolName>,
    why: &str,
    errors: Option<Value>,
) -> Result<Option<DecisionId>, ServiceError> {
    let head = agent.row();
    // A refusal of a named action is a decision the caller may report an
    // outcome for or be asked about; one with no action is not.
    let decision_id = action.map(|_| new_decision_id()).transpose()?;
    let mut detail = Map::new();
    if let Some(id) = &decision_id {
        detail.insert("decision_id".into(), json!(id));
    }
    via.note(&mut detail);
    detail.insert("why".into(), json!(why));
    if let Some(errors) = errors {
        detail.insert("errors".into(), errors);
    }
    let mut event = state.event(EventType::Decision, &format!("agent:{}", head.id));
    event.agent = Some(head.id.to_string());
    event.action = action.map(ToString::to_string);
    event.decision = Some(Effect::Deny);
    event.detail = Some(Value::Object(detail));
    state.audit.append(event).await?;
    state.metrics.refused();
    Ok(decision_id)
}

/// Each agent's compiled record and its active elevations (only agents
/// that can be elevated need the store asked).
/// The chain's compiled records, and the active elevations of each agent
/// that has an elevation naming `action` (no other can change the
/// decision, so no other is read).
async fn load(
    state: &AppState,
    rows: &[AgentRow],
    action: &str,
    now: Timestamp,
) -> Result<Loaded, ServiceError> {
    let mut compiled = Vec::with_capacity(rows.len());
    let mut elevations = Vec::with_capacity(rows.len());
    for row in rows {
        let agent = state.compiled(row).await?;
        let elevates = agent
            .manifest()
            .elevation
            .iter()
            .any(|e| e.tools.iter().any(|g| g.matches(action)));
        elevations.push(if elevates {
            state.store().active_elevations(&row.id, now).await?
        } else {
            Vec::new()
        });
        compiled.push(agent);
    }
    Ok(Loaded {
        compiled,
        elevations,
    })
}

/// Whether a budget of `agent` asks for approval past its maximum.
fn asks_over_budget(agent: &CompiledAgent) -> bool {
    let m = agent.manifest();
    m.limits.budgets.iter().any(|b| b.approval.is_some())
}

/// The approval in force for exactly this request.
async fn approval_status(
    state: &AppState,
    key: &str,
    now: Timestamp,
) -> Result<ApprovalStatus, ServiceError> {
    let Some(a) = state.store().approval_for_key(key, now).await? else {
        return Ok(ApprovalStatus::None);
    };
    let id = a.id;
    Ok(match a.state {
        ApprovalState::Approved => ApprovalStatus::Granted(id),
        ApprovalState::Denied => ApprovalStatus::Denied(id),
        ApprovalState::Pending => ApprovalStatus::Pending(id),
        _ => ApprovalStatus::None,
    })
}

/// What the decision's audit record is made of, besides the decision.
struct Record<'a> {
    state: &'a AppState,
    head: &'a AgentRow,
    rows: &'a [AgentRow],
    agent: &'a AgentCaller,
    via: &'a Via,
    action: &'a ToolName,
    logged_args: Map<String, Value>,
    resource: Option<String>,
    decision_id: &'a DecisionId,
}

impl Record<'_> {
    fn event(&self, decision: &Decision, approval_id: Option<&ApprovalId>) -> EventBody {
        let mut detail = Map::new();
        detail.insert("decision_id".into(), json!(self.decision_id));
        detail.insert("jti".into(), json!(self.agent.claims.jti));
        detail.insert(
            "chain".into(),
            json!(self.rows.iter().map(|r| r.id.as_str()).collect::<Vec<_>>()),
        );
        detail.insert("approval_id".into(), json!(approval_id));
        detail.insert("consumed_approval".into(), json!(decision.consumes));
        self.via.note(&mut detail);
        let mut event = decision_event(self.state, self.head, decision);
        event.action = Some(self.action.to_string());
        event.args = Some(Value::Object(self.logged_args.clone()));
        event.resource.clone_from(&self.resource);
        event.detail = Some(Value::Object(detail));
        event
    }
}

/// What the chain's agents used within the windows of their limits, read
/// from the store (only agents with limits need it asked).
async fn usage_snapshot(
    state: &AppState,
    compiled: &[CompiledAgent],
    now: Timestamp,
) -> Result<UsageSnapshot, ServiceError> {
    let needs: Vec<LimitNeed<'_>> = compiled
        .iter()
        .map(|c| {
            let m = c.manifest();
            LimitNeed {
                agent: &m.agent,
                rate: m.limits.rate,
                budgets: m
                    .limits
                    .budgets
                    .iter()
                    .map(|b| (b.arg.as_str(), b.per))
                    .collect(),
            }
        })
        .filter(|n| n.rate.is_some() || !n.budgets.is_empty())
        .collect();
    if needs.is_empty() {
        return Ok(UsageSnapshot::new());
    }
    Ok(state.store().usage_snapshot(&needs, now).await?)
}

/// The approval status the service read, for the engine.
struct Fixed(ApprovalStatus);

impl ApprovalLookup for Fixed {
    fn find(&self, _key: &str, _now: Timestamp) -> ApprovalStatus {
        self.0.clone()
    }
}

fn decision_event(state: &AppState, head: &AgentRow, decision: &Decision) -> EventBody {
    let mut event = state.event(EventType::Decision, &format!("agent:{}", head.id));
    event.agent = Some(head.id.to_string());
    event.decision = Some(decision.effect);
    event.reasons = Some(decision.reasons.clone());
    event
}

pub(crate) fn notify_requested(state: &AppState, approval: &bridle_store::Approval) {
    match serde_json::to_value(crate::views::approval::Approval::from(approval.clone())) {
        Ok(data) => state
            .http
            .notify("dev.bridle.approval.requested", approval.id.as_str(), data),
        Err(e) => tracing::error!(approval = %approval.id, error = %e, "approval not notified"),
    }
}

/// `dec_`, the time in milliseconds as 12 hex digits, then 12 random bytes:
/// as unguessable as a wholly random id, and in time order, so the audit
/// log's index on decision ids grows at its end. (With wholly random ids
/// every record of a batch landed on an index page of its own: a batch of
/// 30 decisions wrote about 30 more pages to the WAL.)
fn new_decision_id() -> Result<DecisionId, ServiceError> {
    let ms = Timestamp::now().as_millisecond().max(0);
    new_id(&format!("dec_{ms:012x}"), 12).map_err(|e| ServiceError::Task(e.to_string()))
}
