//! The Cedar vocabulary Bridle compiles to: one entity type for agents, one
//! for tools, one action `invoke`, and the context record every condition sees.
//! Also: checking a manifest's Cedar conditions against that context shape,
//! turning JSON arguments into Cedar values, and quoting literals.

use std::fmt::Write as _;
use std::str::FromStr;

use cedar_policy::{
    EntityId, EntityTypeName, EntityUid, PolicySet, RestrictedExpression, Schema, ValidationMode,
    Validator,
};

pub const AGENT_TYPE: &str = "Agent";
pub const TOOL_TYPE: &str = "Tool";
pub const INVOKE: &str = "invoke";

/// Deepest argument nesting turned into Cedar values; deeper parts are dropped
/// (and so fail any constraint that needs them).
const MAX_ARG_DEPTH: usize = 8;

/// The type an argument constraint implies, for type-checking conditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgType {
    Long,
    String,
    Bool,
    /// Mixed literals: not declared, so conditions cannot use it.
    Any,
}

impl ArgType {
    pub fn name(self) -> &'static str {
        match self {
            Self::Long => "integer",
            Self::String => "string",
            Self::Bool => "boolean",
            Self::Any => "mixed",
        }
    }

    fn cedar(self) -> Option<&'static str> {
        match self {
            Self::Long => Some("Long"),
            Self::String => Some("String"),
            Self::Bool => Some("Bool"),
            Self::Any => None,
        }
    }
}

/// What `context` holds where a condition is evaluated.
#[derive(Debug, Clone)]
pub enum ConditionShape {
    /// A tool grant's `when` or `approval.when`: the action's arguments (the
    /// constrained ones, with their types), resource, time, elevations.
    Action { args: Vec<(String, ArgType)> },
    /// An elevation's `auto_grant_when`: the request's reason and duration.
    Elevation,
}

const TIME_TYPE: &str = "{ epoch: Long, hour: Long, minute: Long, weekday: String, date: String }";

fn schema_text(shape: &ConditionShape) -> String {
    let mut s = format!("entity {AGENT_TYPE}; entity {TOOL_TYPE};\n");
    match shape {
        ConditionShape::Action { args } => {
            let mut fields = String::new();
            for (name, ty) in args {
                if let Some(t) = ty.cedar() {
                    let _ = write!(fields, "{}: {t}, ", quote(name));
                }
            }
            let _ = write!(
                s,
                "action \"{INVOKE}\" appliesTo {{ principal: [{AGENT_TYPE}], resource: [{TOOL_TYPE}], \
                 context: {{ tool: String, args: {{ {fields} }}, \"resource\"?: String, time: {TIME_TYPE}, \
                 elevations: Set<String>, patterns: Set<String> }} }};"
            );
        }
        ConditionShape::Elevation => {
            let _ = write!(
                s,
                "action \"elevate\" appliesTo {{ principal: [{AGENT_TYPE}], resource: [{TOOL_TYPE}], \
                 context: {{ elevation: String, reason: String, duration_seconds: Long, time: {TIME_TYPE} }} }};"
            );
        }
    }
    s
}

/// Parse `expr` and type-check it as a boolean condition over `context`.
pub fn check_condition(expr: &str, shape: &ConditionShape) -> Result<(), String> {
    if let Err(e) = cedar_policy::Expression::from_str(expr) {
        return Err(format!(
            "invalid Cedar expression `{expr}`: {}",
            flatten(&e.to_string())
        ));
    }
    let policy = format!("permit(principal, action, resource) when {{ {expr} }};");
    let pset = PolicySet::from_str(&policy).map_err(|e| {
        format!(
            "invalid Cedar expression `{expr}`: {}",
            flatten(&e.to_string())
        )
    })?;
    let (schema, _) = Schema::from_cedarschema_str(&schema_text(shape))
        .map_err(|e| format!("internal schema error: {e}"))?;
    let result = Validator::new(schema).validate(&pset, ValidationMode::Strict);
    if result.validation_passed() {
        return Ok(());
    }
    let messages: Vec<String> = result
        .validation_errors()
        .map(|e| {
            let text = flatten(&e.to_string());
            // Drop Cedar's "for policy `policy0`," prefix: that policy is
            // our wrapper, not something the manifest's author wrote.
            let text = text
                .split_once([':', ','])
                .filter(|(head, _)| head.starts_with("for policy"))
                .map(|(_, tail)| tail.trim_start().to_owned())
                .unwrap_or(text);
            match miette_help(e) {
                Some(help) => format!("{text} ({help})"),
                None => text,
            }
        })
        .collect();
    let hint = match shape {
        ConditionShape::Action { .. } => {
            "; conditions see `context.args.NAME` for arguments that have a constraint (which sets their type), \
             `context.resource`, `context.tool`, `context.time` and `context.elevations`"
        }
        ConditionShape::Elevation => {
            "; elevation conditions see `context.reason`, `context.duration_seconds`, `context.elevation` and `context.time`"
        }
    };
    Err(format!(
        "Cedar condition `{expr}` does not type-check: {}{hint}",
        messages.join("; ")
    ))
}

fn miette_help(e: &cedar_policy::ValidationError) -> Option<String> {
    use miette::Diagnostic;
    e.help().map(|h| flatten(&h.to_string()))
}

fn flatten(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Quote a string as a Cedar string literal.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Quote a string as the literal part of a Cedar `like` pattern (so `*` in
/// the value is matched literally).
pub fn quote_like_literal(s: &str) -> String {
    let q = quote(s);
    q.replace('*', "\\*")
}

pub fn agent_uid(id: &str) -> EntityUid {
    EntityUid::from_type_name_and_id(type_name(AGENT_TYPE), EntityId::new(id))
}

pub fn tool_uid(name: &str) -> EntityUid {
    EntityUid::from_type_name_and_id(type_name(TOOL_TYPE), EntityId::new(name))
}

pub fn invoke_uid() -> EntityUid {
    action_uid(INVOKE)
}

pub fn action_uid(name: &str) -> EntityUid {
    EntityUid::from_type_name_and_id(type_name("Action"), EntityId::new(name))
}

#[expect(
    clippy::expect_used,
    reason = "only called with the fixed identifiers above, which are valid Cedar type names"
)]
fn type_name(s: &str) -> EntityTypeName {
    EntityTypeName::from_str(s).expect("built-in Cedar type name")
}

/// Convert a JSON argument value to a Cedar value. Numbers that are not
/// 64-bit integers become strings (so numeric constraints fail closed); nulls
/// are dropped from records; nesting is bounded.
pub fn json_to_cedar(v: &serde_json::Value) -> Option<RestrictedExpression> {
    to_cedar(v, 0)
}

fn to_cedar(v: &serde_json::Value, depth: usize) -> Option<RestrictedExpression> {
    use serde_json::Value as J;
    if depth > MAX_ARG_DEPTH {
        return None;
    }
    Some(match v {
        J::Null => return None,
        J::Bool(b) => RestrictedExpression::new_bool(*b),
        J::Number(n) => match n.as_i64() {
            Some(i) => RestrictedExpression::new_long(i),
            None => RestrictedExpression::new_string(n.to_string()),
        },
        J::String(s) => RestrictedExpression::new_string(s.clone()),
        J::Array(items) => {
            RestrictedExpression::new_set(items.iter().filter_map(|i| to_cedar(i, depth + 1)))
        }
        J::Object(map) => RestrictedExpression::new_record(
            map.iter()
                .filter_map(|(k, v)| to_cedar(v, depth + 1).map(|e| (k.clone(), e))),
        )
        .ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape() -> ConditionShape {
        ConditionShape::Action {
            args: vec![
                ("amount".into(), ArgType::Long),
                ("vendor".into(), ArgType::String),
            ],
        }
    }

    #[test]
    fn well_typed_conditions_pass() {
        check_condition("context.args.amount > 5000", &shape()).unwrap();
        check_condition(
            "context.args.vendor == \"acme\" && context.time.hour < 18",
            &shape(),
        )
        .unwrap();
        check_condition(
            "context has resource && context.resource like \"crm:*\"",
            &shape(),
        )
        .unwrap();
        check_condition("context.elevations.contains(\"x\")", &shape()).unwrap();
        check_condition("context.reason like \"INC-*\"", &ConditionShape::Elevation).unwrap();
    }

    #[test]
    fn bad_conditions_say_why() {
        let e = check_condition("context.args.amount >", &shape()).unwrap_err();
        assert!(e.contains("invalid Cedar expression"), "{e}");
        let e = check_condition("context.args.amout > 5", &shape()).unwrap_err();
        assert!(e.contains("does not type-check"), "{e}");
        let e = check_condition("context.args.vendor > 5", &shape()).unwrap_err();
        assert!(e.contains("does not type-check"), "{e}");
        let e = check_condition("context.args.amount", &shape()).unwrap_err();
        assert!(e.contains("does not type-check"), "{e}");
    }

    #[test]
    fn quoting_escapes_quotes_backslashes_and_stars() {
        assert_eq!(quote("a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(quote_like_literal("a*b"), "\"a\\*b\"");
    }
}
