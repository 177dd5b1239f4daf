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

/// The argument names a condition reads: `context.args.NAME` and
/// `context.args["NAME"]`, in order of first use. Lexical (a name inside a
/// string literal counts too, which only ever adds a requirement).
pub fn arg_refs(expr: &str) -> Vec<String> {
    static REFS: std::sync::LazyLock<Option<regex::Regex>> = std::sync::LazyLock::new(|| {
        regex::Regex::new(
            r#"context\s*\.\s*args\s*(?:\.\s*([A-Za-z_][A-Za-z0-9_]*)|\[\s*"([^"\\]*)"\s*\])"#,
        )
        .ok()
    });
    let mut out: Vec<String> = Vec::new();
    let Some(re) = REFS.as_ref() else {
        return out;
    };
    for c in re.captures_iter(expr) {
        if let Some(m) = c.get(1).or_else(|| c.get(2)) {
            let name = m.as_str().to_owned();
            if !out.contains(&name) {
                out.push(name);
            }
        }
    }
    out
}

/// A Cedar condition that holds when argument `arg` is present and of type
/// `ty`, and fails to evaluate (an error, never `true`) when it has another
/// type. `None` for `Any`.
pub fn arg_type_guard(arg: &str, ty: ArgType) -> Option<String> {
    let a = format!("context.args[{}]", quote(arg));
    let check = match ty {
        ArgType::Long => format!("({a} < 0 || {a} >= 0)"),
        ArgType::String => format!("{a} like \"*\""),
        ArgType::Bool => format!("({a} || true)"),
        ArgType::Any => return None,
    };
    Some(format!("(context.args has {} && {check})", quote(arg)))
}

/// Why Cedar text was refused before reaching Cedar's parser.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CedarTextError {
    #[error("{len} bytes of Cedar; at most {max} are accepted")]
    TooLong { len: usize, max: usize },
    #[error("Cedar nested deeper than {max} levels (brackets, `if`, `!` and `-` each add one)")]
    TooDeep { max: usize },
    #[error("more than {max} Cedar operators in one expression")]
    TooManyOperators { max: usize },
}

/// Bound Cedar text before Cedar parses it: Cedar's parser, validator and
/// evaluator recurse over the expression, so unbounded nesting (or a long
/// operator chain, which parses into a tree as deep as it is long) would
/// exhaust the stack. Lexical, so it runs in one pass without recursion;
/// string literals and comments are skipped. Nesting counts open brackets,
/// every `if` seen so far in the statement and the current run of unary
/// operators; operators are counted per statement (up to a `;` at the top
/// level), so a file of many small policies passes.
pub fn bound_cedar(text: &str, max_bytes: usize) -> Result<(), CedarTextError> {
    use crate::manifest::limits::{MAX_CEDAR_NESTING, MAX_CEDAR_OPERATORS};
    if text.len() > max_bytes {
        return Err(CedarTextError::TooLong {
            len: text.len(),
            max: max_bytes,
        });
    }
    let deep = CedarTextError::TooDeep {
        max: MAX_CEDAR_NESTING,
    };
    let mut brackets = 0usize;
    let mut ifs = 0usize;
    let mut unary = 0usize;
    let mut operators = 0usize;
    // Whether the last token ends an operand (so a `-` after it is binary).
    let mut after_operand = false;
    let mut chars = text.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        let mut operator = false;
        let mut is_unary = false;
        match c {
            '"' => {
                while let Some((_, d)) = chars.next() {
                    match d {
                        '\\' => {
                            chars.next();
                        }
                        '"' => break,
                        _ => {}
                    }
                }
                after_operand = true;
            }
            '/' if chars.peek().is_some_and(|(_, d)| *d == '/') => {
                for (_, d) in chars.by_ref() {
                    if d == '\n' {
                        break;
                    }
                }
                continue;
            }
            '(' | '[' | '{' => {
                brackets += 1;
                after_operand = false;
            }
            ')' | ']' | '}' => {
                brackets = brackets.saturating_sub(1);
                after_operand = true;
            }
            ';' if brackets == 0 => {
                ifs = 0;
                operators = 0;
                after_operand = false;
            }
            '!' if chars.peek().is_some_and(|(_, d)| *d == '=') => {
                chars.next();
                operator = true;
            }
            '!' => {
                operator = true;
                is_unary = true;
            }
            '-' if !after_operand => {
                operator = true;
                is_unary = true;
            }
            '.' | '+' | '-' | '*' | '<' | '>' | '=' | '&' | '|' => {
                // Two-character operators (`&&`, `<=`, `==`) count once.
                if let Some((_, d)) = chars.peek()
                    && matches!(d, '=' | '&' | '|')
                {
                    chars.next();
                }
                operator = true;
            }
            c if c.is_alphanumeric() || c == '_' => {
                let mut word = String::from(c);
                while let Some((_, d)) = chars.peek() {
                    if d.is_alphanumeric() || *d == '_' {
                        word.push(*d);
                        chars.next();
                    } else {
                        break;
                    }
                }
                match word.as_str() {
                    "if" => {
                        ifs += 1;
                        operator = true;
                    }
                    "has" | "like" | "in" | "is" => operator = true,
                    "then" | "else" => {}
                    _ => after_operand = true,
                }
                if operator {
                    after_operand = false;
                }
            }
            _ => {}
        }
        if operator {
            operators += 1;
            if operators > MAX_CEDAR_OPERATORS {
                return Err(CedarTextError::TooManyOperators {
                    max: MAX_CEDAR_OPERATORS,
                });
            }
            if is_unary {
                unary += 1;
            } else {
                unary = 0;
            }
            after_operand = false;
        } else if !c.is_whitespace() {
            unary = 0;
        }
        if brackets + ifs + unary > MAX_CEDAR_NESTING {
            return Err(deep);
        }
    }
    Ok(())
}

/// Why a manifest's Cedar condition was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConditionError {
    #[error("Cedar condition refused: {0}")]
    Refused(CedarTextError),
    #[error("invalid Cedar expression `{expr}`: {message}")]
    Syntax { expr: String, message: String },
    /// The schema Bridle generates for a condition did not parse: a bug here,
    /// not in the manifest.
    #[error("internal schema error: {0}")]
    Schema(String),
    #[error("Cedar condition `{expr}` does not type-check: {joined}{hint}", joined = messages.join("; "))]
    TypeCheck {
        expr: String,
        messages: Vec<String>,
        hint: &'static str,
    },
}

/// Parse `expr` and type-check it as a boolean condition over `context`.
pub fn check_condition(expr: &str, shape: &ConditionShape) -> Result<(), ConditionError> {
    bound_cedar(expr, crate::manifest::limits::MAX_CONDITION_BYTES)
        .map_err(ConditionError::Refused)?;
    let syntax = |e: &dyn std::fmt::Display| ConditionError::Syntax {
        expr: expr.to_owned(),
        message: flatten(&e.to_string()),
    };
    if let Err(e) = cedar_policy::Expression::from_str(expr) {
        return Err(syntax(&e));
    }
    let policy = format!("permit(principal, action, resource) when {{ {expr} }};");
    let pset = PolicySet::from_str(&policy).map_err(|e| syntax(&e))?;
    let (schema, _) = Schema::from_cedarschema_str(&schema_text(shape))
        .map_err(|e| ConditionError::Schema(e.to_string()))?;
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
            "; conditions see `context.args.NAME` (typed by its constraint, else inferred from the conditions), \
             `context.resource`, `context.tool`, `context.time` and `context.elevations`"
        }
        ConditionShape::Elevation => {
            "; elevation conditions see `context.reason`, `context.duration_seconds`, `context.elevation` and `context.time`"
        }
    };
    Err(ConditionError::TypeCheck {
        expr: expr.to_owned(),
        messages,
        hint,
    })
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
        let e = check_condition("context.args.amount >", &shape())
            .unwrap_err()
            .to_string();
        assert!(e.contains("invalid Cedar expression"), "{e}");
        let e = check_condition("context.args.amout > 5", &shape())
            .unwrap_err()
            .to_string();
        assert!(e.contains("does not type-check"), "{e}");
        let e = check_condition("context.args.vendor > 5", &shape())
            .unwrap_err()
            .to_string();
        assert!(e.contains("does not type-check"), "{e}");
        let e = check_condition("context.args.amount", &shape())
            .unwrap_err()
            .to_string();
        assert!(e.contains("does not type-check"), "{e}");
    }

    #[test]
    fn quoting_escapes_quotes_backslashes_and_stars() {
        assert_eq!(quote("a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(quote_like_literal("a*b"), "\"a\\*b\"");
    }

    fn nested(open: &str, inner: &str, close: &str, n: usize) -> String {
        format!("{}{inner}{}", open.repeat(n), close.repeat(n))
    }

    #[test]
    fn hostile_nesting_is_refused_before_cedar_parses_it() {
        use crate::manifest::limits::MAX_CONDITION_BYTES as MAX;
        let deep_parens = nested("(", "context.args.amount > 1", ")", 150);
        let deep_sets = format!("{} == []", nested("[", "1", "]", 150));
        let deep_records = format!("{} == {{}}", nested("{a: ", "1", "}", 150));
        let nots = format!("{}true", "!".repeat(150));
        let negs = format!("{}1 == 1", "-".repeat(150));
        let ifs = format!(
            "{}true{}",
            "if true then ".repeat(40),
            " else false".repeat(40)
        );
        let chain = format!("{}1 > 0", "1 + ".repeat(500));
        for (text, want) in [
            (&deep_parens, "nested deeper"),
            (&deep_sets, "nested deeper"),
            (&deep_records, "nested deeper"),
            (&nots, "nested deeper"),
            (&negs, "nested deeper"),
            (&ifs, "nested deeper"),
            (&chain, "operators"),
        ] {
            let e = bound_cedar(text, MAX).unwrap_err().to_string();
            assert!(e.contains(want), "{e} for {text}");
            let e = check_condition(text, &shape()).unwrap_err().to_string();
            assert!(e.contains("refused"), "{e}");
        }
        let long = format!("context.args.vendor == {}", quote(&"x".repeat(MAX)));
        assert!(matches!(
            bound_cedar(&long, MAX),
            Err(CedarTextError::TooLong { .. })
        ));
        // Brackets, operators and `if`s inside strings and comments do not count.
        let quoted = format!(
            "context.args.vendor == {} // {}\n && true",
            quote(&"((((!!!!".repeat(40)),
            "((((".repeat(40)
        );
        bound_cedar(&quoted, MAX).unwrap();
        // Statements are bounded one by one.
        let many =
            "forbid(principal, action, resource) when { context.args.amount > 1 };\n".repeat(200);
        bound_cedar(&many, usize::MAX).unwrap();
    }

    #[test]
    fn real_conditions_are_well_inside_the_bounds() {
        for text in [
            "context.args.amount > 5000",
            "context.args.vendor == \"acme\" && context.time.hour < 18",
            "context has resource && context.resource like \"crm:*\"",
            "!(context.args.amount < -5) || [1, 2, 3].contains(context.args.amount)",
            "if context.args.amount > 10 then context.time.hour < 18 else true",
        ] {
            bound_cedar(text, 4096).unwrap();
        }
    }

    /// The worst text the bounds let through parses, type-checks and
    /// evaluates on a thread with a small stack (an async worker has 2 MiB).
    #[test]
    fn at_the_bounds_cedar_fits_a_small_stack() {
        use crate::manifest::limits::{MAX_CEDAR_NESTING, MAX_CEDAR_OPERATORS};
        let n = MAX_CEDAR_NESTING;
        let worst = vec![
            nested("(", "context.args.amount > 1", ")", n - 1),
            format!("{} == []", nested("[", "1", "]", n - 1)),
            format!("{}true", "!".repeat(n)),
            format!(
                "{}true{}",
                "if true then ".repeat(n),
                " else false".repeat(n)
            ),
            format!("{}1 > 0", "1 + ".repeat(MAX_CEDAR_OPERATORS - 1)),
            format!("{}true", "true && ".repeat(MAX_CEDAR_OPERATORS)),
            format!(
                "{}context.args.amount > 0{}",
                "(1 + ".repeat(n - 1),
                ")".repeat(n - 1)
            ),
        ];
        let run = move || {
            for text in &worst {
                bound_cedar(text, 4096).unwrap();
                let _ = check_condition(text, &shape());
                let policy = format!("permit(principal, action, resource) when {{ {text} }};");
                // Cedar refuses some of these itself (more than 4 unary
                // operators in a row); those that parse must also evaluate.
                let Ok(set) = PolicySet::from_str(&policy) else {
                    continue;
                };
                let request = cedar_policy::Request::new(
                    agent_uid("a"),
                    invoke_uid(),
                    tool_uid("t"),
                    cedar_policy::Context::empty(),
                    None,
                )
                .unwrap();
                let _ = cedar_policy::Authorizer::new().is_authorized(
                    &request,
                    &set,
                    &cedar_policy::Entities::empty(),
                );
                let _ = set.to_string();
            }
        };
        std::thread::Builder::new()
            .stack_size(1024 * 1024)
            .spawn(run)
            .unwrap()
            .join()
            .unwrap();
    }
}
