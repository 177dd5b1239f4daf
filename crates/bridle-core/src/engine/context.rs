//! Building the Cedar request for one subject: the context record every
//! condition sees (`tool`, `args`, `resource`, `time`, `elevations`,
//! `patterns`).

use cedar_policy::{Context, Request, RestrictedExpression};

use super::{ActionRequest, Engine};
use crate::cedar::{json_to_cedar, tool_uid};
use crate::compile::Inner;
use crate::manifest::schedule::day_name;

impl Engine {
    pub(super) fn request(
        &self,
        inner: &Inner,
        elevations: &[String],
        action: &ActionRequest<'_>,
        local: &jiff::ZonedDateTime,
    ) -> Option<Request> {
        let args = RestrictedExpression::new_record(
            action
                .args
                .iter()
                .filter_map(|(k, v)| json_to_cedar(v).map(|e| (k.clone(), e))),
        )
        .ok()?;
        let patterns = inner.patterns.iter().filter_map(|p| {
            let value = action.args.get(&p.arg)?.as_str()?;
            p.regex
                .is_match(value)
                .then(|| RestrictedExpression::new_string(p.id.clone()))
        });
        let time = time_record(local)?;
        let mut pairs = vec![
            (
                "tool".to_owned(),
                RestrictedExpression::new_string(action.name.to_owned()),
            ),
            ("args".to_owned(), args),
            ("time".to_owned(), time),
            (
                "elevations".to_owned(),
                RestrictedExpression::new_set(
                    elevations
                        .iter()
                        .map(|e| RestrictedExpression::new_string(e.clone())),
                ),
            ),
            (
                "patterns".to_owned(),
                RestrictedExpression::new_set(patterns),
            ),
        ];
        if let Some(r) = action.resource {
            pairs.push((
                "resource".to_owned(),
                RestrictedExpression::new_string(r.to_owned()),
            ));
        }
        let context = Context::from_pairs(pairs).ok()?;
        Request::new(
            inner.principal.clone(),
            self.action.clone(),
            tool_uid(action.name),
            context,
            None,
        )
        .ok()
    }
}

/// `context.time`: the instant in the agent's time zone.
pub(super) fn time_record(local: &jiff::ZonedDateTime) -> Option<RestrictedExpression> {
    RestrictedExpression::new_record([
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
    .ok()
}
