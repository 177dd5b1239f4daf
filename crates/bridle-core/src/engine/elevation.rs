//! `auto_grant_when`: whether an elevation request is granted without a
//! human, by the condition its manifest states.

use std::str::FromStr;

use cedar_policy::{Context, Decision as CedarDecision, PolicySet, Request, RestrictedExpression};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

use super::Engine;
use super::context::time_record;
use crate::cedar::{action_uid, agent_uid, tool_uid};
use crate::compile::CompiledAgent;

impl Engine {
    /// True only when the elevation exists, has `auto_grant_when`, and the
    /// condition evaluates to true; any error is false (a human decides).
    pub fn auto_grant(
        &self,
        agent: &CompiledAgent,
        elevation: &str,
        reason: &str,
        duration: SignedDuration,
        now: Timestamp,
    ) -> bool {
        let m = agent.manifest();
        let Some(spec) = m.elevation.iter().find(|e| e.name == elevation) else {
            return false;
        };
        let Some(cond) = &spec.auto_grant_when else {
            return false;
        };
        let Ok(policies) = PolicySet::from_str(&format!(
            "permit(principal, action, resource) when {{ {} }};",
            cond.expr
        )) else {
            return false;
        };
        let tz = m
            .schedule
            .as_ref()
            .map_or(TimeZone::UTC, |s| s.timezone.clone());
        let Some(time) = time_record(&now.to_zoned_datetime(tz)) else {
            return false;
        };
        let Ok(context) = Context::from_pairs([
            (
                "elevation".to_owned(),
                RestrictedExpression::new_string(elevation.to_owned()),
            ),
            (
                "reason".to_owned(),
                RestrictedExpression::new_string(reason.to_owned()),
            ),
            (
                "duration_seconds".to_owned(),
                RestrictedExpression::new_long(duration.as_secs()),
            ),
            ("time".to_owned(), time),
        ]) else {
            return false;
        };
        let Ok(request) = Request::new(
            agent_uid(m.agent.as_str()),
            action_uid("elevate"),
            tool_uid(elevation),
            context,
            None,
        ) else {
            return false;
        };
        let response =
            self.authorizer()
                .is_authorized(&request, &policies, &cedar_policy::Entities::empty());
        response.decision() == CedarDecision::Allow
            && response.diagnostics().errors().next().is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Guardrails, Manifest};

    fn agent(auto: Option<&str>) -> CompiledAgent {
        let auto = auto.map_or_else(String::new, |c| format!("\n    auto_grant_when: '{c}'"));
        let src = format!(
            "agent: ir\nowner: o\npurpose: p\nenvironment: prod\nexpires: 2099-01-01\n\
             elevation:\n  - name: identity-write\n    tools: [identity.*]\n    max_duration: 1h\n    approvers: [group:secops]{auto}\n"
        );
        CompiledAgent::compile(Manifest::from_source(&src).unwrap(), &Guardrails::new()).unwrap()
    }

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn the_condition_decides_auto_grant() {
        let e = Engine::new();
        let a = agent(Some(
            "context.reason like \"INC-*\" && context.duration_seconds <= 1800",
        ));
        let now = at("2026-11-30T10:00:00Z");
        assert!(e.auto_grant(
            &a,
            "identity-write",
            "INC-4711 contain",
            SignedDuration::from_mins(30),
            now
        ));
        assert!(!e.auto_grant(
            &a,
            "identity-write",
            "just because",
            SignedDuration::from_mins(30),
            now
        ));
        assert!(!e.auto_grant(
            &a,
            "identity-write",
            "INC-4711",
            SignedDuration::from_mins(45),
            now
        ));
        assert!(!e.auto_grant(&a, "other", "INC-1", SignedDuration::from_mins(5), now));
    }

    #[test]
    fn without_a_condition_a_human_decides() {
        let e = Engine::new();
        let a = agent(None);
        assert!(!e.auto_grant(
            &a,
            "identity-write",
            "INC-1",
            SignedDuration::from_mins(5),
            at("2026-11-30T10:00:00Z")
        ));
    }

    #[test]
    fn time_is_available_to_the_condition() {
        let e = Engine::new();
        let a = agent(Some("context.time.hour >= 22 || context.time.hour < 6"));
        let d = SignedDuration::from_mins(10);
        assert!(e.auto_grant(&a, "identity-write", "night", d, at("2026-11-30T23:00:00Z")));
        assert!(!e.auto_grant(&a, "identity-write", "day", d, at("2026-11-30T12:00:00Z")));
    }
}
