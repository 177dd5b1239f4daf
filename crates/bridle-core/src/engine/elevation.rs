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
