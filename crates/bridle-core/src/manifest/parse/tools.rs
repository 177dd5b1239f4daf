//! `tools[]`: grants, argument constraints, conditions and approval rules.

use jiff::SignedDuration;

use super::*;
use crate::cedar::{ArgType, ConditionShape, arg_refs, check_condition};
use crate::glob::Glob;
use crate::manifest::limits::MAX_ARGS;
use crate::manifest::node::{Node, Pos, Value};
use crate::manifest::*;

impl Parser {
    pub(super) fn tools(&mut self, node: &Node) -> Vec<ToolGrant> {
        let Some(items) = self.list(node, "tools") else {
            return Vec::new();
        };
        items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| self.tool(item, &index("tools", i)))
            .collect()
    }

    pub(super) fn tool(&mut self, node: &Node, path: &str) -> Option<ToolGrant> {
        let f = self.mapping(node, path, TOOL_KEYS)?;
        let name = self
            .required(&f, "name")
            .and_then(|n| self.parsed(n, &f.path("name"), Glob::tool));
        let access = match f.get("access") {
            Some(n) => self.access(n, &f.path("access")),
            None => Some(Access::Read),
        };
        let args = match f.get("args") {
            Some(n) => self.args(n, &f.path("args")),
            None => Some(Vec::new()),
        };
        let mut shape = args
            .as_ref()
            .and_then(|a| self.arg_shape(a, &f.path("args"), node.pos));
        // Arguments that a condition uses without a constraint get the type
        // the conditions need (`context.args.a > 100`: an integer).
        let conditions: Vec<&str> = [
            f.get("when"),
            f.get("approval").and_then(|a| match &a.value {
                Value::Map(entries) => entries
                    .iter()
                    .find(|(k, _, _)| k == "when")
                    .map(|(_, _, v)| v),
                _ => None,
            }),
        ]
        .into_iter()
        .flatten()
        .filter_map(|n| match &n.value {
            Value::Str(s) => Some(s.as_str()),
            _ => None,
        })
        .collect();
        let mut inferred_args = Vec::new();
        if let Some(ConditionShape::Action { args: known }) = &mut shape {
            inferred_args = infer_arg_types(known, &conditions);
            known.extend(inferred_args.iter().cloned());
        }
        let when = f
            .get("when")
            .and_then(|n| self.condition(n, &f.path("when"), shape.as_ref()));
        let approval = f
            .get("approval")
            .and_then(|n| self.approval(n, &f.path("approval"), shape.as_ref()));
        let sensitive = match f.get("sensitive") {
            Some(n) => self.string_list(n, &f.path("sensitive"), |s| {
                Ok::<_, std::convert::Infallible>(s.to_owned())
            }),
            None => Some(Vec::new()),
        };
        if f.get("approval").is_some() && approval.is_none() {
            return None;
        }
        if f.get("when").is_some() && when.is_none() {
            return None;
        }
        Some(ToolGrant {
            name: name?,
            access: access?,
            args: args?,
            when,
            approval,
            sensitive: sensitive?,
            inferred_args,
            pos: node.pos,
        })
    }

    pub(super) fn access(&mut self, node: &Node, path: &str) -> Option<Access> {
        self.parsed(node, path, |s| {
            Access::ALL
                .into_iter()
                .find(|a| a.as_str() == s)
                .ok_or_else(|| format!("`{s}` is not an access level: expected `read`, `write`, `export` or `admin`"))
        })
    }

    pub(super) fn args(&mut self, node: &Node, path: &str) -> Option<Vec<ArgCheck>> {
        let Value::Map(entries) = &node.value else {
            self.err(
                path,
                node.pos,
                format!(
                    "expected a mapping of argument names to constraints, found {}",
                    node.kind()
                ),
            );
            return None;
        };
        if entries.len() > MAX_ARGS {
            self.err(
                path,
                node.pos,
                format!(
                    "{} constrained arguments; at most {MAX_ARGS} are accepted",
                    entries.len()
                ),
            );
            return None;
        }
        let before = self.errors.len();
        let mut checks = Vec::new();
        for (arg, _, spec) in entries {
            let arg_path = join(path, arg);
            let Some(f) = self.mapping(spec, &arg_path, ARG_KEYS) else {
                continue;
            };
            if f.entries.is_empty() {
                self.err(
                    &arg_path,
                    spec.pos,
                    "expected at least one of: in, not_in, min, max, pattern, prefix",
                );
            }
            for (key, _, v) in f.entries {
                let p = join(&arg_path, key);
                let rule = match key.as_str() {
                    "in" => self.literals(v, &p).map(ArgRule::In),
                    "not_in" => self.literals(v, &p).map(ArgRule::NotIn),
                    "min" => self.int(v, &p).map(ArgRule::Min),
                    "max" => self.int(v, &p).map(ArgRule::Max),
                    "prefix" => self.string(v, &p).map(ArgRule::Prefix),
                    "pattern" => self.string(v, &p).and_then(|source| {
                        regex::RegexBuilder::new(&format!("^(?:{source})$"))
                            .size_limit(1 << 20)
                            .build()
                            .map(|regex| ArgRule::Pattern {
                                source: source.clone(),
                                regex,
                            })
                            .map_err(|e| {
                                self.err(
                                    &p,
                                    v.pos,
                                    format!(
                                        "invalid regular expression: {}",
                                        first_line(&e.to_string())
                                    ),
                                )
                            })
                            .ok()
                    }),
                    _ => None, // already reported as unknown
                };
                if let Some(rule) = rule {
                    checks.push(ArgCheck {
                        arg: arg.clone(),
                        rule,
                        pos: v.pos,
                    });
                }
            }
            let min = checks
                .iter()
                .rev()
                .take_while(|c| &c.arg == arg)
                .find_map(|c| match c.rule {
                    ArgRule::Min(n) => Some(n),
                    _ => None,
                });
            let max = checks
                .iter()
                .rev()
                .take_while(|c| &c.arg == arg)
                .find_map(|c| match c.rule {
                    ArgRule::Max(n) => Some(n),
                    _ => None,
                });
            if let (Some(min), Some(max)) = (min, max)
                && min > max
            {
                self.err(
                    join(&arg_path, "max"),
                    spec.pos,
                    format!("`max` ({max}) is less than `min` ({min}): nothing could pass"),
                );
            }
        }
        (self.errors.len() == before).then_some(checks)
    }

    pub(super) fn literals(&mut self, node: &Node, path: &str) -> Option<Vec<ArgValue>> {
        let items = self.list(node, path)?;
        if items.is_empty() {
            self.err(path, node.pos, "expected at least one value");
            return None;
        }
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            match &item.value {
                Value::Str(s) => out.push(ArgValue::Str(s.clone())),
                Value::Int(n) => out.push(ArgValue::Int(*n)),
                Value::Bool(b) => out.push(ArgValue::Bool(*b)),
                _ => {
                    self.err(
                        index(path, i),
                        item.pos,
                        format!(
                            "expected a string, integer or boolean, found {}",
                            item.kind()
                        ),
                    );
                    return None;
                }
            }
        }
        Some(out)
    }

    /// Infer each constrained argument's type for checking `when` expressions.
    pub(super) fn arg_shape(
        &mut self,
        checks: &[ArgCheck],
        path: &str,
        pos: Pos,
    ) -> Option<ConditionShape> {
        let mut args: Vec<(String, ArgType)> = Vec::new();
        for c in checks {
            let ty = match &c.rule {
                ArgRule::Min(_) | ArgRule::Max(_) => ArgType::Long,
                ArgRule::Pattern { .. } | ArgRule::Prefix(_) => ArgType::String,
                ArgRule::In(vs) | ArgRule::NotIn(vs) => match vs.first() {
                    Some(ArgValue::Int(_)) if vs.iter().all(|v| matches!(v, ArgValue::Int(_))) => {
                        ArgType::Long
                    }
                    Some(ArgValue::Bool(_))
                        if vs.iter().all(|v| matches!(v, ArgValue::Bool(_))) =>
                    {
                        ArgType::Bool
                    }
                    Some(ArgValue::Str(_)) if vs.iter().all(|v| matches!(v, ArgValue::Str(_))) => {
                        ArgType::String
                    }
                    _ => ArgType::Any,
                },
            };
            match args.iter_mut().find(|(a, _)| *a == c.arg) {
                Some((_, existing))
                    if *existing != ty && *existing != ArgType::Any && ty != ArgType::Any =>
                {
                    self.err(
                        join(path, &c.arg),
                        pos,
                        format!(
                            "constraints on `{}` disagree on its type ({} and {})",
                            c.arg,
                            existing.name(),
                            ty.name()
                        ),
                    );
                    return None;
                }
                Some((_, existing)) => {
                    if *existing == ArgType::Any {
                        *existing = ty;
                    }
                }
                None => args.push((c.arg.clone(), ty)),
            }
        }
        Some(ConditionShape::Action { args })
    }

    pub(super) fn condition(
        &mut self,
        node: &Node,
        path: &str,
        shape: Option<&ConditionShape>,
    ) -> Option<CedarCondition> {
        let expr = self.string(node, path)?;
        let shape = shape?;
        match check_condition(&expr, shape) {
            Ok(()) => Some(CedarCondition {
                expr,
                pos: node.pos,
            }),
            Err(e) => {
                self.err(path, node.pos, e.to_string());
                None
            }
        }
    }

    pub(super) fn approvers(&mut self, node: &Node, path: &str) -> Option<Vec<Approver>> {
        let list = self.string_list(node, path, |s| {
            s.parse::<Approver>()
                .map_err(|e| format!("{e}; approvers are `group:NAME` or a principal id"))
        })?;
        if list.is_empty() {
            self.err(path, node.pos, "expected at least one approver");
            return None;
        }
        Some(list)
    }

    pub(super) fn approval(
        &mut self,
        node: &Node,
        path: &str,
        shape: Option<&ConditionShape>,
    ) -> Option<ApprovalRule> {
        self.approval_with(node, path, shape, APPROVAL_KEYS)
    }

    /// A budget's `approval`: the same rule without `when` (it applies when
    /// the window's sum would pass the budget's `max`).
    pub(super) fn budget_approval(&mut self, node: &Node, path: &str) -> Option<ApprovalRule> {
        if let Value::Map(entries) = &node.value
            && let Some((_, pos, _)) = entries.iter().find(|(k, _, _)| k == "when")
        {
            self.err(
                join(path, "when"),
                *pos,
                "a budget's approval has no `when`: it asks when an action would take the sum past `max`",
            );
            return None;
        }
        self.approval_with(node, path, None, BUDGET_APPROVAL_KEYS)
    }

    fn approval_with(
        &mut self,
        node: &Node,
        path: &str,
        shape: Option<&ConditionShape>,
        keys: &[&str],
    ) -> Option<ApprovalRule> {
        let f = self.mapping(node, path, keys)?;
        let when = match f.get("when") {
            Some(n) => Some(self.condition(n, &f.path("when"), shape)?),
            None => None,
        };
        let approvers = self
            .required(&f, "approvers")
            .and_then(|n| self.approvers(n, &f.path("approvers")));
        let min_approvals = match f.get("min_approvals") {
            Some(n) => self.int(n, &f.path("min_approvals")).and_then(|m| {
                u32::try_from(m)
                    .ok()
                    .filter(|m| (1..=100).contains(m))
                    .or_else(|| {
                        self.err(
                            f.path("min_approvals"),
                            n.pos,
                            format!("`{m}` is out of range: expected 1 to 100"),
                        );
                        None
                    })
            }),
            None => Some(1),
        };
        if let (Some(approvers), Some(min)) = (&approvers, min_approvals) {
            let only_people = approvers
                .iter()
                .all(|a| matches!(a, Approver::Principal(_)));
            if only_people && (approvers.len() as u64) < u64::from(min) {
                self.err(
                    f.path("min_approvals"),
                    f.pos,
                    format!(
                        "needs {min} approvals but only {} approvers are listed",
                        approvers.len()
                    ),
                );
            }
        }
        let ttl = match f.get("ttl") {
            Some(n) => self.duration(n, &f.path("ttl")).and_then(|d| {
                if d > MAX_APPROVAL_TTL {
                    self.err(f.path("ttl"), n.pos, "an approval may live at most 30d");
                    None
                } else {
                    Some(d)
                }
            }),
            None => Some(SignedDuration::from_hours(24)),
        };
        let allow_owner = match f.get("allow_owner") {
            Some(n) => self.bool(n, &f.path("allow_owner")),
            None => Some(false),
        };
        Some(ApprovalRule {
            when,
            approvers: approvers?,
            min_approvals: min_approvals?,
            ttl: ttl?,
            allow_owner: allow_owner?,
            pos: node.pos,
        })
    }
}

/// Most unconstrained arguments whose types are inferred for one grant
/// (every combination of integer, string and boolean is tried).
const MAX_INFERRED_ARGS: usize = 4;

/// The types of the arguments `conditions` use that `known` does not
/// constrain: the first assignment (integers first, then strings, then
/// booleans) under which every condition type-checks. Nothing is inferred
/// when no assignment does: the conditions' own check then reports why.
fn infer_arg_types(known: &[(String, ArgType)], conditions: &[&str]) -> Vec<(String, ArgType)> {
    let mut free: Vec<String> = Vec::new();
    for c in conditions {
        for a in arg_refs(c) {
            if !known.iter().any(|(k, _)| *k == a) && !free.contains(&a) {
                free.push(a);
            }
        }
    }
    if free.is_empty() || free.len() > MAX_INFERRED_ARGS {
        return Vec::new();
    }
    const TYPES: [ArgType; 3] = [ArgType::Long, ArgType::String, ArgType::Bool];
    let combinations = TYPES.len().pow(u32::try_from(free.len()).unwrap_or(1));
    for mut n in 0..combinations {
        let mut guess = Vec::with_capacity(free.len());
        for a in &free {
            let ty = TYPES.get(n % TYPES.len()).copied().unwrap_or(ArgType::Long);
            guess.push((a.clone(), ty));
            n /= TYPES.len();
        }
        let mut args = known.to_vec();
        args.extend(guess.iter().cloned());
        let shape = ConditionShape::Action { args };
        if conditions
            .iter()
            .all(|c| check_condition(c, &shape).is_ok())
        {
            return guess;
        }
    }
    Vec::new()
}
