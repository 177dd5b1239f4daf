//! The decision engine: the decision order of the manifest spec, step by step.
//!
//! 1. the agent is active and not expired;
//! 2. the schedule allows now;
//! 3. to 6. Cedar — forbid, grant, arguments and `when`, data scope — in one
//!    evaluation of the agent's own policy set;
//! 7. rate limits and budgets;
//! 8. approval;
//! 9. for delegated tokens, every agent in the chain passes 1–8 on its own
//!    record and the action is inside the token's scope.
//!
//! Anything not granted is denied.
//!
//! The clock, the usage ledger and the approval store are inputs, so the
//! engine is pure and every rule is testable at any instant. It only reads
//! the ledger: the usage a decision adds comes back with it ([`Decided`]),
//! for the caller to commit once the decision stands.

mod approval_key;
mod context;
mod elevation;
mod explain;
mod limits;

pub use approval_key::approval_key;
pub use limits::limit_denial;
use limits::{Spending, budgets};

use std::collections::HashSet;

use cedar_policy::authorization_errors::PolicyEvaluationError;
use cedar_policy::{
    AuthorizationError, Authorizer, Decision as CedarDecision, Entities, EntityUid, PolicyId,
};
use jiff::Timestamp;
use jiff::tz::TimeZone;

use crate::cedar::invoke_uid;
use crate::compile::{CompiledAgent, Inner, Origin};
use crate::decision::{ApprovalNeed, Decision, Effect, Obligation, Reason, ReasonCode, SourceRef};
use crate::id::ApprovalId;
use crate::ledger::{Charge, LedgerRead, LimitHit, Usage};
use crate::manifest::schedule::day_name;
use crate::manifest::{ApprovalRule, Pos};

/// Lifecycle state of an agent, as the registry holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AgentState {
    Active,
    Suspended,
    Retired,
    /// A new agent whose first version awaits change approval: it exists
    /// so that its id is taken and its proposal can be read, and every
    /// decision for it is denied (`agent_proposed`).
    Proposed,
}

impl AgentState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Suspended => "suspended",
            Self::Retired => "retired",
            Self::Proposed => "proposed",
        }
    }
}

/// One agent taking part in a decision, with what the registry knows now.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub agent: &'a CompiledAgent,
    pub state: AgentState,
    /// Names of this agent's elevations that are active now.
    pub elevations: &'a [String],
}

/// The action asked for.
#[derive(Debug, Clone, Copy)]
pub struct ActionRequest<'a> {
    pub name: &'a str,
    pub args: &'a serde_json::Map<String, serde_json::Value>,
    pub resource: Option<&'a str>,
}

/// Everything a decision depends on besides the ledger and approvals.
#[derive(Debug, Clone, Copy)]
pub struct DecisionInput<'a> {
    /// The token's subject first, then each actor of its delegation chain
    /// (`act`, outermost last). One element for a plain token.
    pub subjects: &'a [Subject<'a>],
    /// Tool names (or globs) a delegated token was narrowed to.
    pub scope: Option<&'a [String]>,
    pub action: ActionRequest<'a>,
    pub now: Timestamp,
}

/// The state of human approval for one exact request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApprovalStatus {
    None,
    Pending(ApprovalId),
    Granted(ApprovalId),
    Denied(ApprovalId),
}

pub trait ApprovalLookup {
    fn find(&self, key: &str, now: Timestamp) -> ApprovalStatus;
}

/// For offline checks: no approval has ever been given.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoApprovals;

impl ApprovalLookup for NoApprovals {
    fn find(&self, _key: &str, _now: Timestamp) -> ApprovalStatus {
        ApprovalStatus::None
    }
}

/// A decision and the usage it adds to the ledger, to commit once the
/// decision stands ([`Usage::commit`]).
#[derive(Debug, Clone)]
#[must_use]
pub struct Decided {
    pub decision: Decision,
    pub usage: Usage,
}

#[derive(Debug)]
pub struct Engine {
    authorizer: Authorizer,
    entities: Entities,
    action: EntityUid,
}

impl Default for Engine {
    fn default() -> Self {
        Self::new()
    }
}

/// How one subject passed steps 1–6.
struct Pass<'a> {
    inner: &'a Inner,
    reason: Reason,
    approval: Option<(&'a ApprovalRule, usize)>,
    spend: Spending<'a>,
}

/// The rule that asks for approval of an action: a grant's, or a budget's
/// that the action would take past its maximum.
struct Need<'a> {
    inner: &'a Inner,
    rule: &'a ApprovalRule,
    /// Where the rule is (`tools[i].approval`, `limits.budgets[i].approval`).
    path: String,
    /// Why it asks, for the reason's text.
    because: String,
}

impl Engine {
    pub fn new() -> Self {
        Self {
            authorizer: Authorizer::new(),
            entities: Entities::empty(),
            action: invoke_uid(),
        }
    }

    pub(crate) fn authorizer(&self) -> &Authorizer {
        &self.authorizer
    }

    /// Decide `input`. Nothing is recorded anywhere: the returned usage is
    /// what the decision adds to the ledger, once committed.
    pub fn decide(
        &self,
        input: &DecisionInput<'_>,
        ledger: &dyn LedgerRead,
        approvals: &dyn ApprovalLookup,
    ) -> Decided {
        let (mut decision, charges) = self.decide_steps(input, ledger, approvals);
        // `log_retrievals` puts the obligation on every decision, denials
        // included, for every agent of the chain that asks for it.
        if input
            .subjects
            .iter()
            .any(|s| s.agent.manifest().monitoring.log_retrievals)
        {
            decision.obligations = vec![Obligation::LogRetrieval];
        }
        Decided {
            decision,
            usage: Usage {
                at: input.now,
                charges,
            },
        }
    }

    fn decide_steps(
        &self,
        input: &DecisionInput<'_>,
        ledger: &dyn LedgerRead,
        approvals: &dyn ApprovalLookup,
    ) -> (Decision, Vec<Charge>) {
        let denied = |d: Decision| (d, Vec::new());
        if input.subjects.is_empty() {
            return denied(Decision::deny(reason(
                ReasonCode::NotGranted,
                "no agent in the request".into(),
                None,
            )));
        }
        let chain = input.subjects.len() > 1;
        let mut passes = Vec::with_capacity(input.subjects.len());
        for subject in input.subjects {
            match self.evaluate(subject, input, chain) {
                Ok(pass) => passes.push(pass),
                Err(denial) => return denied(denial),
            }
        }
        if let Some(scope) = input.scope {
            let inside = scope
                .iter()
                .any(|s| crate::glob::Glob::tool(s).is_ok_and(|g| g.matches(input.action.name)));
            if !inside {
                return denied(Decision::deny(reason(
                    ReasonCode::DelegationScope,
                    format!(
                        "`{}` is outside the delegated token's scope ({})",
                        input.action.name,
                        scope.join(" ")
                    ),
                    None,
                )));
            }
        }
        for (subject, pass) in input.subjects.iter().zip(&passes) {
            let m = &pass.inner.manifest;
            if let Some(hit) = ledger.check(&m.agent, input.now, m.limits.rate, &pass.spend.hard) {
                return denied(limit_denial(subject.agent, hit, chain));
            }
        }

        let obligations = Vec::new();
        // An allowed action counts against every rate limit and budget of
        // the chain; one waiting for approval counts against rate limits
        // only (asking is an action; spending waits for the approval).
        let charges = |with_spend: bool, approved: bool| -> Vec<Charge> {
            passes
                .iter()
                .map(|pass| {
                    let m = &pass.inner.manifest;
                    Charge {
                        agent: m.agent.clone(),
                        rate: m.limits.rate,
                        spend: if with_spend {
                            pass.spend.charged(approved)
                        } else {
                            Vec::new()
                        },
                    }
                })
                .filter(|c| c.rate.is_some() || !c.spend.is_empty())
                .collect()
        };

        // A grant's rule asks first; else a budget the action would take
        // past its maximum, where that budget asks for approval.
        let need = passes
            .iter()
            .find_map(|p| {
                p.approval.map(|(rule, grant)| Need {
                    inner: p.inner,
                    rule,
                    path: format!("tools[{grant}].approval"),
                    because: rule
                        .when
                        .as_ref()
                        .map_or_else(String::new, |w| format!(" because `{}` holds", w.expr)),
                })
            })
            .or_else(|| {
                passes.iter().find_map(|p| {
                    p.spend.asks.iter().find_map(|a| {
                        let hit = ledger.check(
                            &p.inner.manifest.agent,
                            input.now,
                            None,
                            std::slice::from_ref(&a.spend),
                        )?;
                        let LimitHit::Budget { used, .. } = hit else {
                            return None;
                        };
                        Some(Need {
                            inner: p.inner,
                            rule: a.rule,
                            path: format!("limits.budgets[{}].approval", a.budget),
                            because: format!(
                                " because it would take `{}` past {} in the last {} ({used} spent, {} more)",
                                a.spend.arg,
                                a.spend.max,
                                crate::manifest::units::format_duration(a.spend.per),
                                a.spend.amount,
                            ),
                        })
                    })
                })
            });
        let Some(need) = need else {
            let usage = charges(true, false);
            return (
                Decision {
                    effect: Effect::Allow,
                    reasons: passes.into_iter().map(|p| p.reason).collect(),
                    obligations,
                    approval: None,
                    consumes: None,
                },
                usage,
            );
        };
        let rule = need.rule;
        let key = approval_key(input);
        let source = Some(SourceRef {
            agent: need.inner.manifest.agent.to_string(),
            path: need.path,
            line: Some(rule.pos.line),
        });
        match approvals.find(&key, input.now) {
            ApprovalStatus::Granted(id) => (
                Decision {
                    effect: Effect::Allow,
                    reasons: vec![reason(
                        ReasonCode::Approved,
                        format!("approved by human approval `{id}` for exactly this action"),
                        source,
                    )],
                    obligations,
                    approval: None,
                    consumes: Some(id),
                },
                charges(true, true),
            ),
            ApprovalStatus::Denied(id) => denied(Decision::deny(reason(
                ReasonCode::ApprovalDenied,
                format!("approval `{id}` for exactly this action was denied"),
                source,
            ))),
            status => {
                let pending = match status {
                    ApprovalStatus::Pending(id) => Some(id),
                    _ => None,
                };
                let who = rule
                    .approvers
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ");
                let condition = need.because;
                let decision = Decision {
                    effect: Effect::ApprovalRequired,
                    reasons: vec![reason(
                        ReasonCode::ApprovalRequired,
                        format!(
                            "`{}` needs {} approval{} from {who}{condition}",
                            input.action.name,
                            rule.min_approvals,
                            if rule.min_approvals == 1 { "" } else { "s" },
                        ),
                        source,
                    )],
                    obligations,
                    approval: Some(ApprovalNeed {
                        key,
                        approvers: rule.approvers.clone(),
                        min_approvals: rule.min_approvals,
                        ttl_seconds: rule.ttl.as_secs(),
                        allow_owner: rule.allow_owner,
                        pending,
                    }),
                    consumes: None,
                };
                (decision, charges(false, false))
            }
        }
    }

    /// Steps 1–6 for one subject.
    #[expect(
        clippy::result_large_err,
        reason = "the error is the final decision, built once per request"
    )]
    fn evaluate<'a>(
        &self,
        subject: &Subject<'a>,
        input: &DecisionInput<'_>,
        chain: bool,
    ) -> Result<Pass<'a>, Decision> {
        let inner: &'a Inner = &subject.agent.inner;
        let m = &inner.manifest;
        let agent = m.agent.as_str();
        let who = |msg: String| {
            if chain {
                format!("`{agent}`: {msg}")
            } else {
                msg
            }
        };
        let at = |path: &str, pos: Option<Pos>| {
            Some(SourceRef {
                agent: agent.to_owned(),
                path: path.to_owned(),
                line: pos.map(|p| p.line),
            })
        };

        match subject.state {
            AgentState::Active => {}
            AgentState::Proposed => {
                return Err(Decision::deny(reason(
                    ReasonCode::AgentProposed,
                    who(format!(
                        "agent `{agent}` is proposed: its first version awaits approval"
                    )),
                    None,
                )));
            }
            state => {
                return Err(Decision::deny(reason(
                    ReasonCode::AgentSuspended,
                    who(format!("agent `{agent}` is {}", state.as_str())),
                    None,
                )));
            }
        }
        let tz = m
            .schedule
            .as_ref()
            .map_or(TimeZone::UTC, |s| s.timezone.clone());
        let local = input.now.to_zoned_datetime(tz);
        if local.date() > m.expires {
            return Err(Decision::deny(reason(
                ReasonCode::AgentExpired,
                who(format!("agent `{agent}` expired on {}", m.expires)),
                at("expires", None),
            )));
        }
        if let Some(schedule) = &m.schedule
            && !schedule.allows(input.now)
        {
            let windows: Vec<&str> = schedule.windows.iter().map(|w| w.text.as_str()).collect();
            return Err(Decision::deny(reason(
                ReasonCode::OutsideSchedule,
                who(format!(
                    "{} {:02}:{:02} {} is outside the schedule ({})",
                    day_name(local.weekday()),
                    local.hour(),
                    local.minute(),
                    schedule.timezone_name,
                    windows.join(", ")
                )),
                at("schedule.windows", None),
            )));
        }

        let slice = inner.slice(input.action.name);
        let request = self.request(inner, subject.elevations, &input.action, &local);
        let Some(request) = request else {
            return Err(Decision::deny(reason(
                ReasonCode::ArgConstraint,
                who("the arguments cannot be evaluated".into()),
                None,
            )));
        };
        let response = self
            .authorizer
            .is_authorized(&request, &slice.policies, &self.entities);

        // A forbid that fails to evaluate must not let anything through.
        for pe in response.diagnostics().errors().map(evaluation_error) {
            let label = match inner.origins.get(pe.policy_id()) {
                Some(Origin::Guardrail { name }) => format!("guardrail `{name}`"),
                Some(Origin::Forbid(j)) => format!("forbid[{j}]"),
                _ => continue,
            };
            return Err(Decision::deny(reason(
                ReasonCode::Forbidden,
                who(format!(
                    "{label} could not be evaluated ({}); denied to be safe",
                    pe.inner()
                )),
                at(pe.policy_id().as_ref(), None),
            )));
        }

        if response.decision() == CedarDecision::Deny {
            return Err(self.explain_denial(
                inner,
                &slice.explain,
                &request,
                &response,
                &input.action,
                chain,
            ));
        }
        let satisfied: Vec<&Origin> = response
            .diagnostics()
            .reason()
            .filter_map(|id| inner.origins.get(id))
            .collect();
        // Cedar reports the satisfied policies as an unordered set; take them
        // in manifest order so the same request always names the same line.
        let mut grants: Vec<(usize, &crate::manifest::ToolGrant)> = satisfied
            .iter()
            .filter_map(|o| match o {
                Origin::Grant(i) => m.tools.get(*i).map(|g| (*i, g)),
                _ => None,
            })
            .collect();
        grants.sort_unstable_by_key(|(i, _)| *i);
        let elevation = satisfied
            .iter()
            .filter_map(|o| match o {
                Origin::ElevationTool { elevation, tool } => m
                    .elevation
                    .get(*elevation)
                    .map(|spec| (*elevation, *tool, spec)),
                _ => None,
            })
            .min_by_key(|(e, t, _)| (*e, *t));

        let spend = budgets(m, input.action.args).map_err(|(i, b, value)| {
            Decision::deny(reason(
                ReasonCode::ArgConstraint,
                who(format!(
                    "argument `{}` is counted by a budget, so it must be a non-negative integer; got `{value}`",
                    b.arg
                )),
                at(&format!("limits.budgets[{i}]"), Some(b.pos)),
            ))
        })?;
        // Which grant governs, when several match (for the reason's text).
        let note = crate::specific::explain(m, input.action.name);
        // A grant without an approval rule allows outright.
        if let Some(&(i, g)) = grants.iter().find(|(_, g)| g.approval.is_none()) {
            return Ok(Pass {
                inner,
                reason: granted(agent, i, g.pos, input.action.name, chain, note.as_deref()),
                approval: None,
                spend,
            });
        }
        if let Some((e, t, spec)) = elevation {
            return Ok(Pass {
                inner,
                reason: reason(
                    ReasonCode::Elevated,
                    who(format!(
                        "`{}` granted by active elevation `{}`",
                        input.action.name, spec.name
                    )),
                    at(&format!("elevation[{e}].tools[{t}]"), Some(spec.pos)),
                ),
                approval: None,
                spend,
            });
        }
        // Every matching grant has an approval rule: does its condition hold?
        let aux = self
            .authorizer
            .is_authorized(&request, &slice.explain, &self.entities);
        let hit: HashSet<&PolicyId> = aux
            .diagnostics()
            .reason()
            .chain(
                aux.diagnostics()
                    .errors()
                    .map(|e| evaluation_error(e).policy_id()),
            )
            .collect();
        for &(i, g) in &grants {
            let id = PolicyId::new(format!("tools[{i}].approval"));
            if !hit.contains(&id) {
                return Ok(Pass {
                    inner,
                    reason: granted(agent, i, g.pos, input.action.name, chain, note.as_deref()),
                    approval: None,
                    spend,
                });
            }
        }
        // Cedar allowed, so a grant or an elevation matched; if neither can
        // be named (an inconsistency between policies and manifest), deny.
        let Some(&(i, g)) = grants.first() else {
            return Err(Decision::deny(reason(
                ReasonCode::NotGranted,
                who(format!("no tool grant matches `{}`", input.action.name)),
                None,
            )));
        };
        Ok(Pass {
            inner,
            reason: granted(agent, i, g.pos, input.action.name, chain, note.as_deref()),
            approval: g.approval.as_ref().map(|r| (r, i)),
            spend,
        })
    }
}

pub(super) fn evaluation_error(e: &AuthorizationError) -> &PolicyEvaluationError {
    match e {
        AuthorizationError::PolicyEvaluationError(pe) => pe,
    }
}

pub(super) fn reason(code: ReasonCode, message: String, source: Option<SourceRef>) -> Reason {
    Reason {
        code,
        message,
        source,
    }
}

pub(super) fn deny_all(reasons: Vec<Reason>) -> Decision {
    Decision {
        effect: Effect::Deny,
        reasons,
        obligations: Vec::new(),
        approval: None,
        consumes: None,
    }
}

fn granted(
    agent: &str,
    i: usize,
    pos: Pos,
    action: &str,
    chain: bool,
    note: Option<&str>,
) -> Reason {
    let mut msg = format!("`{action}` granted by tools[{i}] (line {})", pos.line);
    if let Some(note) = note {
        msg.push_str(", ");
        msg.push_str(note);
    }
    reason(
        ReasonCode::Granted,
        if chain {
            format!("`{agent}`: {msg}")
        } else {
            msg
        },
        Some(SourceRef {
            agent: agent.to_owned(),
            path: format!("tools[{i}]"),
            line: Some(pos.line),
        }),
    )
}
