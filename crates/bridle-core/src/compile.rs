//! Manifest → Cedar. Each manifest compiles once into:
//!
//! - `policies`: the authorization policies proper — one `permit` per tool
//!   grant (name, argument constraints, `when`, data scope all in its
//!   condition), one `permit` per elevation tool (guarded by the elevation
//!   being active), one `forbid` per `forbid` entry, plus the organisation's
//!   guardrail `forbid`s. Cedar's forbid-overrides-permit gives "forbid wins
//!   over everything, elevation included" by construction.
//! - `explain`: one small policy per check (`tools[1].name`,
//!   `tools[1].args.amount.max`, `tools[1].data`, `tools[1].approval`…),
//!   evaluated only when a decision needs a reason beyond the main answer
//!   (a denial to explain, or an approval condition to test).
//!
//! Every policy id is the manifest path of the element it came from, so a
//! decision names the line that decided it.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, RwLock};

use cedar_policy::{Effect, EntityUid, Policy, PolicyId, PolicySet};
use regex::Regex;

use crate::cedar::{agent_uid, quote, quote_like_literal};
use crate::glob::Glob;
use crate::manifest::{Access, ArgRule, ArgValue, DataGrant, Manifest, Pos};

/// Where a policy came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Grant(usize),
    ElevationTool { elevation: usize, tool: usize },
    Forbid(usize),
    Guardrail { name: String },
}

/// Organisation-wide guardrails: raw Cedar `forbid` policies applied to every
/// agent. Permits are refused (a guardrail may only narrow).
#[derive(Debug, Clone, Default)]
pub struct Guardrails {
    policies: Vec<(String, Policy)>,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum GuardrailError {
    #[error("guardrail `{name}`: invalid Cedar: {message}")]
    Parse { name: String, message: String },
    #[error("guardrail `{name}`: only `forbid` policies are allowed (a guardrail may never grant)")]
    Permit { name: String },
    #[error("guardrail `{name}`: {source}")]
    Bound {
        name: String,
        source: crate::cedar::CedarTextError,
    },
}

impl Guardrails {
    pub fn new() -> Self {
        Self::default()
    }

    /// Add the policies in `text` under `name` (e.g. the file name).
    pub fn add(&mut self, name: &str, text: &str) -> Result<(), GuardrailError> {
        crate::cedar::bound_cedar(text, crate::manifest::limits::MAX_GUARDRAIL_BYTES).map_err(
            |source| GuardrailError::Bound {
                name: name.to_owned(),
                source,
            },
        )?;
        let set = PolicySet::from_str(text).map_err(|e| GuardrailError::Parse {
            name: name.to_owned(),
            message: e
                .to_string()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" "),
        })?;
        let mut parsed = Vec::new();
        for (n, p) in set.policies().enumerate() {
            if p.effect() != Effect::Forbid {
                return Err(GuardrailError::Permit {
                    name: name.to_owned(),
                });
            }
            let label = match p.annotation("id") {
                Some(id) => format!("{name}/{id}"),
                None => format!("{name}/{n}"),
            };
            parsed.push((label, p.clone()));
        }
        self.policies.extend(parsed);
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.policies.is_empty()
    }
}

/// A regex constraint: evaluated in Rust (Cedar has no regex) and handed to
/// the policies as membership of `context.patterns`.
#[derive(Debug, Clone)]
pub(crate) struct PatternCheck {
    pub id: String,
    pub arg: String,
    pub regex: Regex,
}

/// A manifest compiled for evaluation. Cheap to share (`Arc` inside).
#[derive(Debug, Clone)]
pub struct CompiledAgent {
    pub(crate) inner: Arc<Inner>,
}

impl CompiledAgent {
    /// About how many bytes this compiled record holds (its policies, their
    /// per-tool slices and the manifest), for a cache bounded by memory.
    /// Calibrated against resident memory (`docs/benchmarks.md`, P9): a fixed
    /// part per record and a part per grant-like entry.
    pub fn estimated_bytes(&self) -> u64 {
        const BASE: u64 = 24 * 1024;
        const PER_ENTRY: u64 = 6 * 1024;
        let m = &self.inner.manifest;
        let entries = m.tools.len()
            + m.data.len()
            + m.forbid.len()
            + m.elevation.iter().map(|e| e.tools.len()).sum::<usize>();
        BASE + PER_ENTRY * u64::try_from(entries).unwrap_or(u64::MAX / PER_ENTRY)
    }
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub manifest: Manifest,
    pub principal: EntityUid,
    pub policies: PolicySet,
    pub explain: PolicySet,
    pub origins: HashMap<PolicyId, Origin>,
    pub patterns: Vec<PatternCheck>,
    /// The explain policy ids of each grant's checks, in manifest order:
    /// `(policy id, manifest path, position)`.
    pub grant_checks: Vec<Vec<(PolicyId, String, Pos)>>,
    /// Every policy with the tool glob it can apply to (`None`: any tool).
    main_parsed: Vec<(Option<Glob>, Policy)>,
    explain_parsed: Vec<(Option<Glob>, Policy)>,
    /// Per tool name, only the policies that can apply to it.
    slices: RwLock<HashMap<String, Arc<Slice>>>,
}

/// The policies of one agent that can apply to one tool. Cedar evaluates
/// every policy it is given, so handing it only these keeps a decision's
/// cost independent of how many grants the agent has. Selection uses the
/// same `*` semantics as Cedar's `like` (see `glob.rs`), and a policy with
/// no tool selector (a guardrail) is always included, so a slice decides
/// exactly as the full set would.
#[derive(Debug)]
pub(crate) struct Slice {
    pub policies: PolicySet,
    pub explain: PolicySet,
}

/// Most slices cached per agent; beyond it slices are built per request
/// (an agent calling endless distinct tool names cannot grow memory).
const MAX_SLICES: usize = 1024;

impl Inner {
    pub(crate) fn slice(&self, tool: &str) -> Arc<Slice> {
        if let Ok(cache) = self.slices.read()
            && let Some(s) = cache.get(tool)
        {
            return Arc::clone(s);
        }
        let slice = Arc::new(self.build_slice(tool));
        if let Ok(mut cache) = self.slices.write()
            && cache.len() < MAX_SLICES
        {
            cache.insert(tool.to_owned(), Arc::clone(&slice));
        }
        slice
    }

    fn build_slice(&self, tool: &str) -> Slice {
        let select = |all: &[(Option<Glob>, Policy)], full: &PolicySet| {
            let mut set = PolicySet::new();
            for (glob, p) in all {
                if glob.as_ref().is_none_or(|g| g.matches(tool)) && set.add(p.clone()).is_err() {
                    // Cannot happen (ids are unique); stay exact by using everything.
                    return full.clone();
                }
            }
            set
        };
        Slice {
            policies: select(&self.main_parsed, &self.policies),
            explain: select(&self.explain_parsed, &self.explain),
        }
    }
}

/// The tool glob a policy id's manifest element applies to.
fn selector(id: &str, m: &Manifest) -> Option<Glob> {
    let index = |rest: &str| -> Option<(usize, String)> {
        let (n, tail) = rest.split_once(']')?;
        Some((n.parse().ok()?, tail.to_owned()))
    };
    if let Some(rest) = id.strip_prefix("tools[") {
        let (i, _) = index(rest)?;
        return m.tools.get(i).map(|g| g.name.clone());
    }
    if let Some(rest) = id.strip_prefix("forbid[") {
        let (j, _) = index(rest)?;
        return m.forbid.get(j).map(|f| f.name.clone());
    }
    if let Some(rest) = id.strip_prefix("elevation[") {
        let (e, tail) = index(rest)?;
        let (t, _) = index(tail.strip_prefix(".tools[")?)?;
        return m.elevation.get(e)?.tools.get(t).cloned();
    }
    None
}

/// `conds` joined by `op` as a balanced tree of parenthesised halves (the
/// result is parenthesised, so it combines with any operator).
/// Cedar parses `a && b && c …` into a tree as deep as the chain is long, and
/// evaluates it recursively (on the async workers); halving keeps the depth
/// logarithmic in the number of conditions a grant compiles to.
fn balanced(conds: &[String], op: &str) -> String {
    match conds {
        [] => "true".to_owned(),
        [one] => one.clone(),
        _ if conds.len() <= 4 => format!("({})", conds.join(&format!(" {op} "))),
        _ => {
            let (left, right) = conds.split_at(conds.len() / 2);
            format!("({} {op} {})", balanced(left, op), balanced(right, op))
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("internal error compiling `{agent}` to Cedar: {message}")]
pub struct CompileError {
    pub agent: String,
    pub message: String,
}

impl CompiledAgent {
    pub fn compile(manifest: Manifest, guardrails: &Guardrails) -> Result<Self, CompileError> {
        Compiler::new(&manifest).run(manifest, guardrails)
    }

    pub fn manifest(&self) -> &Manifest {
        &self.inner.manifest
    }

    /// The authorization policies, as Cedar sees them.
    pub fn policies(&self) -> &PolicySet {
        &self.inner.policies
    }

    pub fn principal(&self) -> &EntityUid {
        &self.inner.principal
    }

    /// The Cedar text of the authorization policies (for display and audit).
    pub fn policy_text(&self) -> String {
        self.inner
            .policies
            .policies()
            .map(|p| format!("{p}\n"))
            .collect()
    }
}

struct Compiler {
    agent: String,
    principal_scope: String,
    main: Vec<(String, String)>,
    explain: Vec<(String, String)>,
    origins: Vec<(String, Origin)>,
    patterns: Vec<PatternCheck>,
    grant_checks: Vec<Vec<(String, String, Pos)>>,
}

impl Compiler {
    fn new(m: &Manifest) -> Self {
        Self {
            agent: m.agent.to_string(),
            principal_scope: format!("principal == Agent::{}", quote(m.agent.as_str())),
            main: Vec::new(),
            explain: Vec::new(),
            origins: Vec::new(),
            patterns: Vec::new(),
            grant_checks: Vec::new(),
        }
    }

    /// `resource == Tool::"x"` for a literal name, `resource` for a glob.
    fn resource_scope(glob: &Glob) -> String {
        if glob.is_literal() {
            format!("resource == Tool::{}", quote(glob.as_str()))
        } else {
            "resource".to_owned()
        }
    }

    /// The name condition a glob needs beyond its scope (`true` for literals).
    fn name_cond(glob: &Glob) -> String {
        if glob.is_literal() {
            "true".to_owned()
        } else {
            format!("context.tool like {}", quote(glob.cedar_like()))
        }
    }

    /// The name condition of `globs[i]` under "the most specific grant
    /// governs": its own glob, minus every more specific glob that shares a
    /// name with it (those names are governed there, not here).
    fn governed_cond(globs: &[&Glob], i: usize) -> String {
        let Some(glob) = globs.get(i) else {
            return "false".to_owned();
        };
        let mut conds = vec![Self::name_cond(glob)];
        for j in crate::specific::more_specific(globs, i) {
            if let Some(other) = globs.get(j) {
                conds.push(if other.is_literal() {
                    format!("context.tool != {}", quote(other.as_str()))
                } else {
                    format!("!(context.tool like {})", quote(other.cedar_like()))
                });
            }
        }
        balanced(&conds, "&&")
    }

    /// Presence and type guards for the inferred arguments `expr` reads.
    fn inferred_guards(g: &crate::manifest::ToolGrant, expr: &str) -> Vec<String> {
        let used = crate::cedar::arg_refs(expr);
        g.inferred_args
            .iter()
            .filter(|(a, _)| used.contains(a))
            .filter_map(|(a, ty)| crate::cedar::arg_type_guard(a, *ty))
            .collect()
    }

    fn data_cond(data: &[DataGrant], access: Access) -> String {
        let mut conds = vec![String::from("!(context has \"resource\")")];
        for d in data.iter().filter(|d| d.access.contains(&access)) {
            conds.push(format!(
                "context[\"resource\"] like {}",
                quote(d.resource.cedar_like())
            ));
        }
        balanced(&conds, "||")
    }

    fn permit(&self, resource_scope: &str, cond: &str) -> String {
        format!(
            "permit ({}, action == Action::\"invoke\", {resource_scope}) when {{ {cond} }};",
            self.principal_scope
        )
    }

    fn explain_permit(cond: &str) -> String {
        format!("permit (principal, action, resource) when {{ {cond} }};")
    }

    fn arg_cond(&mut self, id: &str, arg: &str, rule: &ArgRule) -> String {
        let a = format!("context.args[{}]", quote(arg));
        let lit = |v: &ArgValue| match v {
            ArgValue::Str(s) => quote(s),
            ArgValue::Int(i) => i.to_string(),
            ArgValue::Bool(b) => b.to_string(),
        };
        let list = |vs: &[ArgValue]| vs.iter().map(lit).collect::<Vec<_>>().join(", ");
        let check = match rule {
            ArgRule::In(vs) => format!("[{}].contains({a})", list(vs)),
            ArgRule::NotIn(vs) => format!("!([{}].contains({a}))", list(vs)),
            ArgRule::Min(n) => format!("{a} >= {n}"),
            ArgRule::Max(n) => format!("{a} <= {n}"),
            ArgRule::Prefix(p) => {
                // The quoted literal without its closing quote, so `*"` ends it.
                let q = quote_like_literal(p);
                let open = q.strip_suffix('"').unwrap_or(&q);
                format!("{a} like {open}*\"")
            }
            ArgRule::Pattern { regex, .. } => {
                self.patterns.push(PatternCheck {
                    id: id.to_owned(),
                    arg: arg.to_owned(),
                    regex: regex.clone(),
                });
                format!("context.patterns.contains({})", quote(id))
            }
        };
        format!("(context.args has {} && {check})", quote(arg))
    }

    fn run(
        mut self,
        manifest: Manifest,
        guardrails: &Guardrails,
    ) -> Result<CompiledAgent, CompileError> {
        let grant_globs: Vec<&Glob> = manifest.tools.iter().map(|g| &g.name).collect();
        for (i, g) in manifest.tools.iter().enumerate() {
            let path = format!("tools[{i}]");
            let governed = Self::governed_cond(&grant_globs, i);
            let mut conds = vec![governed.clone()];
            let mut checks = Vec::new();
            self.explain.push((
                format!("{path}.name"),
                Self::explain_permit(&format!(
                    "{governed} && {}",
                    if g.name.is_literal() {
                        format!("resource == Tool::{}", quote(g.name.as_str()))
                    } else {
                        "true".into()
                    }
                )),
            ));
            for c in &g.args {
                let id = format!("{path}.args.{}.{}", c.arg, c.rule.key());
                let cond = self.arg_cond(&id, &c.arg, &c.rule);
                self.explain.push((id.clone(), Self::explain_permit(&cond)));
                checks.push((id.clone(), id, c.pos));
                conds.push(cond);
            }
            if let Some(w) = &g.when {
                let id = format!("{path}.when");
                // An inferred argument that is missing or of another type
                // makes `when` fail (never hold).
                let mut parts = Self::inferred_guards(g, &w.expr);
                parts.push(format!("({})", w.expr));
                let cond = balanced(&parts, "&&");
                self.explain.push((id.clone(), Self::explain_permit(&cond)));
                checks.push((id.clone(), id, w.pos));
                conds.push(cond);
            }
            let data = Self::data_cond(&manifest.data, g.access);
            self.explain
                .push((format!("{path}.data"), Self::explain_permit(&data)));
            conds.push(data);
            if let Some(a) = &g.approval {
                // An inferred argument that is missing or of another type
                // makes `approval.when` hold: approval is required.
                let cond = a.when.as_ref().map_or_else(
                    || "true".to_owned(),
                    |w| {
                        let guards = Self::inferred_guards(g, &w.expr);
                        if guards.is_empty() {
                            format!("({})", w.expr)
                        } else {
                            format!("(!{} || ({}))", balanced(&guards, "&&"), w.expr)
                        }
                    },
                );
                self.explain
                    .push((format!("{path}.approval"), Self::explain_permit(&cond)));
            }
            let text = self.permit(&Self::resource_scope(&g.name), &balanced(&conds, "&&"));
            self.main.push((path.clone(), text));
            self.origins.push((path, Origin::Grant(i)));
            self.grant_checks.push(checks);
        }
        let elevation_globs: Vec<&Glob> = manifest
            .elevation
            .iter()
            .flat_map(|spec| spec.tools.iter())
            .collect();
        let mut k = 0usize;
        for (e, spec) in manifest.elevation.iter().enumerate() {
            for (t, glob) in spec.tools.iter().enumerate() {
                let path = format!("elevation[{e}].tools[{t}]");
                let active = format!("context.elevations.contains({})", quote(&spec.name));
                let name = Self::governed_cond(&elevation_globs, k);
                k += 1;
                let data = Self::data_cond(&manifest.data, Access::Read);
                let text = self.permit(
                    &Self::resource_scope(glob),
                    &format!("{active} && {name} && {data}"),
                );
                self.explain.push((
                    format!("{path}.name"),
                    Self::explain_permit(&format!(
                        "{active} && {name} && {}",
                        if glob.is_literal() {
                            format!("resource == Tool::{}", quote(glob.as_str()))
                        } else {
                            "true".into()
                        }
                    )),
                ));
                self.main.push((path.clone(), text));
                self.origins.push((
                    path,
                    Origin::ElevationTool {
                        elevation: e,
                        tool: t,
                    },
                ));
            }
        }
        for (j, f) in manifest.forbid.iter().enumerate() {
            let path = format!("forbid[{j}]");
            let text = if f.name.is_literal() {
                format!(
                    "forbid (principal, action, {});",
                    Self::resource_scope(&f.name)
                )
            } else {
                format!(
                    "forbid (principal, action, resource) when {{ {} }};",
                    Self::name_cond(&f.name)
                )
            };
            self.main.push((path.clone(), text));
            self.origins.push((path, Origin::Forbid(j)));
        }

        let err = |message: String| CompileError {
            agent: self.agent.clone(),
            message,
        };
        let mut policies = PolicySet::new();
        let mut main_parsed = Vec::with_capacity(self.main.len() + guardrails.policies.len());
        for (id, text) in &self.main {
            let p = Policy::parse(Some(PolicyId::new(id)), text)
                .map_err(|e| err(format!("{id}: {e}")))?;
            let glob = selector(id, &manifest);
            if glob.is_none() {
                return Err(err(format!("{id}: no tool selector")));
            }
            main_parsed.push((glob, p.clone()));
            policies.add(p).map_err(|e| err(format!("{id}: {e}")))?;
        }
        let mut origins: HashMap<PolicyId, Origin> = self
            .origins
            .iter()
            .map(|(id, o)| (PolicyId::new(id), o.clone()))
            .collect();
        for (label, p) in &guardrails.policies {
            let id = PolicyId::new(format!("guardrail:{label}"));
            let p = p.new_id(id.clone());
            main_parsed.push((None, p.clone()));
            policies.add(p).map_err(|e| err(format!("{label}: {e}")))?;
            origins.insert(
                id,
                Origin::Guardrail {
                    name: label.clone(),
                },
            );
        }
        let mut explain = PolicySet::new();
        let mut explain_parsed = Vec::with_capacity(self.explain.len());
        for (id, text) in &self.explain {
            let p = Policy::parse(Some(PolicyId::new(id)), text)
                .map_err(|e| err(format!("{id}: {e}")))?;
            explain_parsed.push((selector(id, &manifest), p.clone()));
            explain.add(p).map_err(|e| err(format!("{id}: {e}")))?;
        }
        let grant_checks = self
            .grant_checks
            .into_iter()
            .map(|v| {
                v.into_iter()
                    .map(|(id, path, pos)| (PolicyId::new(id), path, pos))
                    .collect()
            })
            .collect();
        Ok(CompiledAgent {
            inner: Arc::new(Inner {
                principal: agent_uid(manifest.agent.as_str()),
                manifest,
                policies,
                explain,
                origins,
                patterns: self.patterns,
                grant_checks,
                main_parsed,
                explain_parsed,
                slices: RwLock::new(HashMap::new()),
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use cedar_policy::{Authorizer, Context, Entities, Request, RestrictedExpression};

    use super::*;
    use crate::cedar::{invoke_uid, tool_uid};

    const MANIFEST: &str = "agent: a\nowner: o\npurpose: p\nenvironment: dev\nexpires: 2099-01-01\n\
        tools:\n  - name: github.*\n  - name: github.merge\n  - name: ci.run\n    args:\n      n: { max: 3 }\n  - name: '*.read'\n\
        forbid: [github.merge, secrets.*]\n\
        elevation:\n  - { name: up, tools: [secrets.rotate, 'id.*'], max_duration: 1h, approvers: [x] }\n";

    fn request(agent: &CompiledAgent, tool: &str) -> Request {
        let context = Context::from_pairs([
            (
                "tool".to_owned(),
                RestrictedExpression::new_string(tool.to_owned()),
            ),
            (
                "args".to_owned(),
                RestrictedExpression::new_record([(
                    "n".to_owned(),
                    RestrictedExpression::new_long(2),
                )])
                .unwrap(),
            ),
            (
                "elevations".to_owned(),
                RestrictedExpression::new_set([RestrictedExpression::new_string("up".into())]),
            ),
            ("patterns".to_owned(), RestrictedExpression::new_set([])),
        ])
        .unwrap();
        Request::new(
            agent.principal().clone(),
            invoke_uid(),
            tool_uid(tool),
            context,
            None,
        )
        .unwrap()
    }

    #[test]
    fn a_slice_decides_exactly_as_the_full_policy_set() {
        let mut guardrails = Guardrails::new();
        guardrails
            .add(
                "org",
                "forbid(principal, action, resource) when { context.tool like \"*.delete\" };",
            )
            .unwrap();
        let agent =
            CompiledAgent::compile(Manifest::from_source(MANIFEST).unwrap(), &guardrails).unwrap();
        let auth = Authorizer::new();
        for tool in [
            "github.pr",
            "github.merge",
            "github.x.delete",
            "ci.run",
            "ci.other",
            "secrets.read",
            "secrets.rotate",
            "id.disable",
            "docs.read",
            "nothing",
            "a.read.delete",
        ] {
            let req = request(&agent, tool);
            let slice = agent.inner.slice(tool);
            let full = auth.is_authorized(&req, agent.policies(), &Entities::empty());
            let part = auth.is_authorized(&req, &slice.policies, &Entities::empty());
            assert_eq!(full.decision(), part.decision(), "{tool}");
            let ids = |r: &cedar_policy::Response| {
                r.diagnostics()
                    .reason()
                    .map(ToString::to_string)
                    .collect::<BTreeSet<_>>()
            };
            assert_eq!(ids(&full), ids(&part), "{tool}");
            assert!(slice.policies.policies().count() <= agent.policies().policies().count());
        }
        // Slices are small: `ci.run` sees its grant and the guardrail only.
        assert_eq!(agent.inner.slice("ci.run").policies.policies().count(), 2);
    }
}
