//! Why the main policies said no. Runs only on denials: evaluates the
//! per-check `explain` policies and turns the failed ones into reasons that
//! name the manifest line.

use std::collections::HashSet;

use cedar_policy::{PolicyId, PolicySet, Request, Response};

use super::{ActionRequest, Engine, deny_all, reason};
use crate::compile::{Inner, Origin};
use crate::decision::{Decision, Reason, ReasonCode, SourceRef};
use crate::manifest::{ArgRule, Pos};

impl Engine {
    /// Why the main policies said no: a forbid, no matching grant, a failed
    /// argument check or condition, or data scope.
    pub(super) fn explain_denial(
        &self,
        inner: &Inner,
        explain: &PolicySet,
        request: &Request,
        response: &Response,
        action: &ActionRequest<'_>,
        chain: bool,
    ) -> Decision {
        let m = &inner.manifest;
        let agent = m.agent.as_str();
        let who = |msg: String| {
            if chain {
                format!("`{agent}`: {msg}")
            } else {
                msg
            }
        };
        let src = |path: String, pos: Option<Pos>| {
            Some(SourceRef {
                agent: agent.to_owned(),
                path,
                line: pos.map(|p| p.line),
            })
        };

        // Cedar reports the satisfied policies as an unordered set: list the
        // forbids in manifest order, then the guardrails by name.
        let mut fired: Vec<&Origin> = response
            .diagnostics()
            .reason()
            .filter_map(|id| inner.origins.get(id))
            .collect();
        fired.sort_by(|a, b| rank(a).cmp(&rank(b)));
        let forbids: Vec<Reason> = fired
            .into_iter()
            .filter_map(|origin| match origin {
                Origin::Forbid(j) => {
                    let f = m.forbid.get(*j)?;
                    Some(reason(
                        ReasonCode::Forbidden,
                        who(format!(
                            "`{}` is forbidden by `{}` (line {})",
                            action.name, f.name, f.pos.line
                        )),
                        src(format!("forbid[{j}]"), Some(f.pos)),
                    ))
                }
                Origin::Guardrail { name } => Some(reason(
                    ReasonCode::Forbidden,
                    who(format!(
                        "`{}` is forbidden by organisation guardrail `{name}`",
                        action.name
                    )),
                    src(format!("guardrail:{name}"), None),
                )),
                _ => None,
            })
            .collect();
        if !forbids.is_empty() {
            return deny_all(forbids);
        }

        let aux = self
            .authorizer
            .is_authorized(request, explain, &self.entities);
        let ok: HashSet<&PolicyId> = aux.diagnostics().reason().collect();
        let passed = |id: String| ok.contains(&PolicyId::new(id));

        // Each grant with its argument checks, compiled in the same order.
        let matched: Vec<Matched<'_>> = m
            .tools
            .iter()
            .zip(&inner.grant_checks)
            .enumerate()
            .filter(|(i, _)| passed(format!("tools[{i}].name")))
            .map(|(i, (grant, checks))| (i, grant, checks.as_slice()))
            .collect();
        let elevated_match = m.elevation.iter().enumerate().any(|(e, spec)| {
            (0..spec.tools.len()).any(|t| passed(format!("elevation[{e}].tools[{t}].name")))
        });
        if matched.is_empty() && !elevated_match {
            let hint = m
                .elevation
                .iter()
                .find(|spec| spec.tools.iter().any(|g| g.matches(action.name)))
                .map_or_else(String::new, |spec| {
                    format!("; elevation `{}` grants it while active", spec.name)
                });
            return Decision::deny(reason(
                ReasonCode::NotGranted,
                who(format!(
                    "no tool grant of `{agent}` matches `{}`{hint}",
                    action.name
                )),
                None,
            ));
        }

        // A matching grant whose arguments all pass failed on data scope.
        let data_failure = matched
            .iter()
            .copied()
            .find(|(_, _, checks)| checks.iter().all(|(id, _, _)| ok.contains(id)));
        if data_failure.is_some() || matched.is_empty() {
            let (access, path, pos) = match data_failure {
                Some((i, grant, _)) => (grant.access, format!("tools[{i}]"), Some(grant.pos)),
                None => (crate::manifest::Access::Read, "data".to_owned(), None),
            };
            return Decision::deny(reason(
                ReasonCode::DataScope,
                who(format!(
                    "resource `{}` is not covered by a data grant with `{}` access",
                    action.resource.unwrap_or(""),
                    access.as_str()
                )),
                src(path, pos),
            ));
        }

        let Some(&(_, grant, checks)) = matched.first() else {
            return Decision::deny(reason(
                ReasonCode::NotGranted,
                who(format!("no tool grant matches `{}`", action.name)),
                None,
            ));
        };
        let note =
            crate::specific::explain(m, action.name).map_or_else(String::new, |n| format!("; {n}"));
        let reasons = checks
            .iter()
            .filter(|(id, _, _)| !ok.contains(id))
            .map(|(_, path, pos)| {
                let msg = match grant
                    .args
                    .iter()
                    .find(|c| path.ends_with(&format!(".args.{}.{}", c.arg, c.rule.key())))
                {
                    Some(c) => match action.args.get(&c.arg) {
                        None | Some(serde_json::Value::Null) => {
                            format!("argument `{}` is required ({})", c.arg, c.rule.describe())
                        }
                        Some(v) => format!(
                            "argument `{}` = {} must be {}",
                            c.arg,
                            v,
                            match &c.rule {
                                ArgRule::Min(_) | ArgRule::Max(_) if v.as_i64().is_none() => {
                                    format!("an integer {}", c.rule.describe())
                                }
                                _ => c.rule.describe(),
                            }
                        ),
                    },
                    None => format!(
                        "condition `{}` does not hold",
                        grant.when.as_ref().map_or("", |w| w.expr.as_str())
                    ),
                };
                reason(
                    ReasonCode::ArgConstraint,
                    who(format!("{msg} (line {}){note}", pos.line)),
                    src(path.clone(), Some(*pos)),
                )
            })
            .collect::<Vec<_>>();
        if reasons.is_empty() {
            // Unreachable in a consistent compile; stay closed and say so.
            return Decision::deny(reason(
                ReasonCode::NotGranted,
                who(format!("`{}` is not granted", action.name)),
                None,
            ));
        }
        deny_all(reasons)
    }
}

/// Sort key for satisfied policies: manifest forbids by position, then
/// guardrails by name.
fn rank(origin: &Origin) -> (u8, usize, &str) {
    match origin {
        Origin::Forbid(j) => (0, *j, ""),
        Origin::Guardrail { name } => (1, 0, name),
        _ => (2, 0, ""),
    }
}

/// A grant whose name matched: its index, the grant and its argument checks.
type Matched<'a> = (
    usize,
    &'a crate::manifest::ToolGrant,
    &'a [(PolicyId, String, Pos)],
);
