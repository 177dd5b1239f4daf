//! The P2 bare arm: Cedar alone on the caller's policies, with the request
//! built the way the engine builds it.

use bridle_core::cedar::{invoke_uid, json_to_cedar, tool_uid};
use bridle_core::manifest::schedule::day_name;
use cedar_policy::{
    Authorizer, Context, Decision as CedarDecision, Entities, EntityUid, PolicySet, Request,
    ResourceConstraint, RestrictedExpression,
};
use jiff::tz::TimeZone;

use crate::fixtures::Fixtures;

/// Cedar alone: the caller's policies, a request built exactly the way
/// `Engine::request` builds it (principal, `Action::"invoke"`, `Tool::name`,
/// context `tool`, `args`, `time`, `elevations`, `patterns`, `resource`).
pub(crate) struct Bare<'a> {
    fx: &'a Fixtures,
    authorizer: Authorizer,
    entities: Entities,
    action: EntityUid,
    pub(crate) prebuilt: Request,
    /// Reference only: 54 scope-only policies (no `when`), the floor of
    /// Cedar's per-policy cost for a policy set of the caller's size.
    scope_only: PolicySet,
    /// Reference only: the caller's policies that can apply to the tool at
    /// all (resource scope unconstrained, i.e. globs, or `== Tool::name`).
    pub(crate) sliced: PolicySet,
}

impl<'a> Bare<'a> {
    pub(crate) fn new(fx: &'a Fixtures) -> Self {
        let action = invoke_uid();
        let prebuilt = build_request(fx, &action);
        let scope_only: String = (0..fx.caller.policies().policies().count())
            .map(|i| {
                format!(
                    "permit (principal == Agent::\"bench-caller\", action == Action::\"invoke\", resource == Tool::\"svc{i}.op{i}\");\n"
                )
            })
            .collect();
        let tool = tool_uid(fx.allow_name);
        let mut sliced = PolicySet::new();
        for p in fx.caller.policies().policies() {
            match p.resource_constraint() {
                ResourceConstraint::Any => {}
                ResourceConstraint::Eq(uid) if uid == tool => {}
                _ => continue,
            }
            sliced.add(p.clone()).unwrap();
        }
        Self {
            fx,
            authorizer: Authorizer::new(),
            entities: Entities::empty(),
            action,
            prebuilt,
            scope_only: scope_only.parse().unwrap(),
            sliced,
        }
    }

    pub(crate) fn authorize(&self, request: &Request) -> CedarDecision {
        self.authorizer
            .is_authorized(request, self.fx.caller.policies(), &self.entities)
            .decision()
    }

    pub(crate) fn authorize_scope_only(&self) -> CedarDecision {
        self.authorizer
            .is_authorized(&self.prebuilt, &self.scope_only, &self.entities)
            .decision()
    }

    pub(crate) fn authorize_empty(&self) -> CedarDecision {
        self.authorizer
            .is_authorized(&self.prebuilt, &PolicySet::new(), &self.entities)
            .decision()
    }

    pub(crate) fn authorize_sliced(&self) -> CedarDecision {
        self.authorizer
            .is_authorized(&self.prebuilt, &self.sliced, &self.entities)
            .decision()
    }

    pub(crate) fn build_and_authorize(&self) -> CedarDecision {
        let request = build_request(self.fx, &self.action);
        self.authorize(&request)
    }
}

fn build_request(fx: &Fixtures, action: &EntityUid) -> Request {
    let local = fx.now.to_zoned_datetime(TimeZone::UTC);
    let args = RestrictedExpression::new_record(
        fx.allow_args
            .iter()
            .filter_map(|(k, v)| json_to_cedar(v).map(|e| (k.clone(), e))),
    )
    .unwrap();
    let time = RestrictedExpression::new_record([
        (
            "epoch".to_owned(),
            RestrictedExpression::new_long(local.timestamp().as_second()),
        ),
        (
            "hour".to_owned(),
            RestrictedExpression::new_long(i64::from(local.hour())),
        ),
        (
            "minute".to_owned(),
            RestrictedExpression::new_long(i64::from(local.minute())),
        ),
        (
            "weekday".to_owned(),
            RestrictedExpression::new_string(day_name(local.weekday()).to_owned()),
        ),
        (
            "date".to_owned(),
            RestrictedExpression::new_string(local.date().to_string()),
        ),
    ])
    .unwrap();
    let mut pairs = vec![
        (
            "tool".to_owned(),
            RestrictedExpression::new_string(fx.allow_name.to_owned()),
        ),
        ("args".to_owned(), args),
        ("time".to_owned(), time),
        (
            "elevations".to_owned(),
            RestrictedExpression::new_set(std::iter::empty()),
        ),
        // The caller has no `pattern` constraints, so the engine's set is empty too.
        (
            "patterns".to_owned(),
            RestrictedExpression::new_set(std::iter::empty()),
        ),
    ];
    if let Some(r) = fx.resource {
        pairs.push((
            "resource".to_owned(),
            RestrictedExpression::new_string(r.to_owned()),
        ));
    }
    let context = Context::from_pairs(pairs).unwrap();
    Request::new(
        fx.caller.principal().clone(),
        action.clone(),
        tool_uid(fx.allow_name),
        context,
        None,
    )
    .unwrap()
}
