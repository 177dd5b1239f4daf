//! Which actions an agent's record can reach at all: the side-effect-free
//! question a gateway asks to show an agent only the tools it may try.
//!
//! "Reachable" is a superset of "allowed": a grant or an elevation names the
//! action, no `forbid` names it, every agent of the chain is active and not
//! expired, and the action is inside the token's scope. Argument checks,
//! conditions, schedules, limits and approvals are left to the decision,
//! which still runs for every call.

use jiff::Timestamp;
use jiff::tz::TimeZone;

use crate::engine::{AgentState, Subject};
use crate::glob::Glob;
use crate::manifest::Manifest;

/// Whether `action` is reachable for the whole chain at `now`.
pub fn reachable(
    subjects: &[Subject<'_>],
    scope: Option<&[String]>,
    action: &str,
    now: Timestamp,
) -> bool {
    if subjects.is_empty() {
        return false;
    }
    let in_scope = scope.is_none_or(|scope| {
        scope
            .iter()
            .any(|s| Glob::tool(s).is_ok_and(|g| g.matches(action)))
    });
    in_scope
        && subjects.iter().all(|s| {
            let m = s.agent.manifest();
            s.state == AgentState::Active && !expired(m, now) && names(m, action)
        })
}

/// A grant or an elevation names `action`, and no `forbid` does.
pub fn names(m: &Manifest, action: &str) -> bool {
    let granted = m.tools.iter().any(|t| t.name.matches(action))
        || m.elevation
            .iter()
            .any(|e| e.tools.iter().any(|g| g.matches(action)));
    granted && !m.forbid.iter().any(|f| f.name.matches(action))
}

fn expired(m: &Manifest, now: Timestamp) -> bool {
    let tz = m
        .schedule
        .as_ref()
        .map_or(TimeZone::UTC, |s| s.timezone.clone());
    now.to_zoned_datetime(tz).date() > m.expires
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CompiledAgent, Guardrails};

    const RECORD: &str = r#"
agent: reach-bot
owner: alice
purpose: test reachability
environment: dev
expires: 2099-01-01
tools:
  - name: "everything.*"
  - name: billing.refund
    approval: { approvers: [group:finance] }
forbid: [everything.delete_all]
elevation:
  - name: oncall
    tools: [ops.restart]
    max_duration: 1h
    approvers: [group:sre]
"#;

    fn agent(source: &str) -> CompiledAgent {
        let m = Manifest::from_source(source).unwrap();
        CompiledAgent::compile(m, &Guardrails::new()).unwrap()
    }

    fn check(state: AgentState, scope: Option<&[String]>, action: &str) -> bool {
        let a = agent(RECORD);
        let subjects = [Subject {
            agent: &a,
            state,
            elevations: &[],
        }];
        reachable(&subjects, scope, action, Timestamp::UNIX_EPOCH)
    }

    #[test]
    fn grants_and_elevations_reach_forbids_do_not() {
        assert!(check(AgentState::Active, None, "everything.echo"));
        assert!(check(AgentState::Active, None, "billing.refund"));
        assert!(check(AgentState::Active, None, "ops.restart"));
        assert!(!check(AgentState::Active, None, "everything.delete_all"));
        assert!(!check(AgentState::Active, None, "other.echo"));
    }

    #[test]
    fn suspended_agents_and_scope_narrow() {
        assert!(!check(AgentState::Suspended, None, "everything.echo"));
        let scope = vec!["billing.*".to_owned()];
        assert!(!check(AgentState::Active, Some(&scope), "everything.echo"));
        assert!(check(AgentState::Active, Some(&scope), "billing.refund"));
    }

    #[test]
    fn an_expired_record_reaches_nothing() {
        let a = agent(&RECORD.replace("2099-01-01", "2000-01-01"));
        let subjects = [Subject {
            agent: &a,
            state: AgentState::Active,
            elevations: &[],
        }];
        let now: Timestamp = "2001-01-01T00:00:00Z".parse().unwrap();
        assert!(!reachable(&subjects, None, "everything.echo", now));
    }
}
