//! YAML tree → [`Manifest`], collecting every error with its path and position.

use jiff::SignedDuration;
use jiff::civil::Date;
use jiff::tz::TimeZone;

use super::error::did_you_mean;
use super::node::{Node, Pos, Value, parse_document};
use super::units::{parse_duration, parse_rate};
use super::*;
use crate::cedar::{ArgType, ConditionShape, check_condition};
use crate::glob::Glob;

const TOP_KEYS: &[&str] = &[
    "agent",
    "name",
    "owner",
    "team",
    "purpose",
    "environment",
    "expires",
    "review_every",
    "tools",
    "forbid",
    "data",
    "schedule",
    "limits",
    "delegation",
    "elevation",
    "monitoring",
    "credentials",
];
const TOOL_KEYS: &[&str] = &["name", "access", "args", "when", "approval", "sensitive"];
const ARG_KEYS: &[&str] = &["in", "not_in", "min", "max", "pattern", "prefix"];
const APPROVAL_KEYS: &[&str] = &["when", "approvers", "min_approvals", "ttl", "allow_owner"];
const DATA_KEYS: &[&str] = &["resource", "access"];
const SCHEDULE_KEYS: &[&str] = &["timezone", "windows"];
const LIMIT_KEYS: &[&str] = &["rate", "budgets"];
const BUDGET_KEYS: &[&str] = &["arg", "max", "per"];
const DELEGATION_KEYS: &[&str] = &["to", "max_depth"];
const ELEVATION_KEYS: &[&str] = &[
    "name",
    "tools",
    "max_duration",
    "approvers",
    "auto_grant_when",
];
const MONITORING_KEYS: &[&str] = &["log_retrievals", "suspend_after_denials"];
const CREDENTIAL_KEYS: &[&str] = &["token_ttl", "dpop"];

/// Longest `max_depth` a delegation chain may declare.
const MAX_DELEGATION_DEPTH: i64 = 5;
/// Longest approval `ttl`.
const MAX_APPROVAL_TTL: SignedDuration = SignedDuration::from_hours(24 * 30);

pub(super) fn parse(source: &str) -> Result<Manifest, ManifestErrors> {
    let root = parse_document(source).map_err(|e| ManifestErrors {
        errors: vec![ManifestError::new(
            "",
            e.pos,
            format!("invalid YAML: {}", e.message),
        )],
    })?;
    let mut p = Parser { errors: Vec::new() };
    let manifest = p.manifest(&root);
    p.errors.sort_by_key(|e| (e.line, e.column));
    match manifest {
        Some(m) if p.errors.is_empty() => Ok(m),
        _ => Err(ManifestErrors { errors: p.errors }),
    }
}

struct Parser {
    errors: Vec<ManifestError>,
}

/// A mapping whose keys have been checked against the allowed set.
struct Fields<'a> {
    path: String,
    pos: Pos,
    entries: &'a [(String, Pos, Node)],
}

impl<'a> Fields<'a> {
    fn get(&self, key: &str) -> Option<&'a Node> {
        self.entries
            .iter()
            .find(|(k, _, _)| k == key)
            .map(|(_, _, v)| v)
    }

    fn path(&self, key: &str) -> String {
        join(&self.path, key)
    }
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

fn index(parent: &str, i: usize) -> String {
    format!("{parent}[{i}]")
}

impl Parser {
    fn err(&mut self, path: impl Into<String>, pos: Pos, message: impl Into<String>) {
        self.errors.push(ManifestError::new(path, pos, message));
    }

    fn mapping<'a>(&mut self, node: &'a Node, path: &str, allowed: &[&str]) -> Option<Fields<'a>> {
        let Value::Map(entries) = &node.value else {
            self.err(
                path,
                node.pos,
                format!("expected a mapping, found {}", node.kind()),
            );
            return None;
        };
        for (key, pos, _) in entries {
            if !allowed.contains(&key.as_str()) {
                let hint = match did_you_mean(key, allowed) {
                    Some(s) => format!("; did you mean `{s}`?"),
                    None => format!("; expected one of: {}", allowed.join(", ")),
                };
                self.err(join(path, key), *pos, format!("unknown key `{key}`{hint}"));
            }
        }
        Some(Fields {
            path: path.to_owned(),
            pos: node.pos,
            entries,
        })
    }

    fn required<'a>(&mut self, f: &Fields<'a>, key: &str) -> Option<&'a Node> {
        let node = f.get(key);
        if node.is_none() {
            self.err(
                f.path(key),
                f.pos,
                format!("missing required field `{key}`"),
            );
        }
        node
    }

    fn string(&mut self, node: &Node, path: &str) -> Option<String> {
        match &node.value {
            Value::Str(s) if !s.trim().is_empty() => Some(s.clone()),
            Value::Str(_) => {
                self.err(path, node.pos, "must not be empty");
                None
            }
            _ => {
                self.err(
                    path,
                    node.pos,
                    format!("expected a string, found {}", node.kind()),
                );
                None
            }
        }
    }

    fn opt_string(&mut self, f: &Fields<'_>, key: &str) -> Option<String> {
        f.get(key).and_then(|n| self.string(n, &f.path(key)))
    }

    fn int(&mut self, node: &Node, path: &str) -> Option<i64> {
        match &node.value {
            Value::Int(i) => Some(*i),
            _ => {
                self.err(
                    path,
                    node.pos,
                    format!("expected an integer, found {}", node.kind()),
                );
                None
            }
        }
    }

    fn bool(&mut self, node: &Node, path: &str) -> Option<bool> {
        match &node.value {
            Value::Bool(b) => Some(*b),
            _ => {
                self.err(
                    path,
                    node.pos,
                    format!("expected `true` or `false`, found {}", node.kind()),
                );
                None
            }
        }
    }

    fn list<'a>(&mut self, node: &'a Node, path: &str) -> Option<&'a [Node]> {
        match &node.value {
            Value::Seq(items) => Some(items),
            _ => {
                self.err(
                    path,
                    node.pos,
                    format!("expected a list, found {}", node.kind()),
                );
                None
            }
        }
    }

    /// A list of strings, each converted by `f`; `None` if any item failed.
    fn string_list<T>(
        &mut self,
        node: &Node,
        path: &str,
        mut f: impl FnMut(&str) -> Result<T, String>,
    ) -> Option<Vec<T>> {
        let items = self.list(node, path)?;
        let mut out = Vec::with_capacity(items.len());
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            let p = index(path, i);
            match self.string(item, &p).map(|s| f(&s)) {
                Some(Ok(v)) => out.push(v),
                Some(Err(e)) => {
                    self.err(p, item.pos, e);
                    ok = false;
                }
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    fn duration(&mut self, node: &Node, path: &str) -> Option<SignedDuration> {
        let s = self.string(node, path)?;
        parse_duration(&s)
            .map_err(|e| self.err(path, node.pos, e))
            .ok()
    }

    fn parsed<T, E: std::fmt::Display>(
        &mut self,
        node: &Node,
        path: &str,
        f: impl FnOnce(&str) -> Result<T, E>,
    ) -> Option<T> {
        let s = self.string(node, path)?;
        f(&s)
            .map_err(|e| self.err(path, node.pos, e.to_string()))
            .ok()
    }

    fn manifest(&mut self, root: &Node) -> Option<Manifest> {
        let f = self.mapping(root, "", TOP_KEYS)?;
        let agent = self
            .required(&f, "agent")
            .and_then(|n| self.parsed(n, "agent", str::parse::<AgentId>));
        let owner = self
            .required(&f, "owner")
            .and_then(|n| self.parsed(n, "owner", str::parse::<PrincipalId>));
        let purpose = self
            .required(&f, "purpose")
            .and_then(|n| self.string(n, "purpose"));
        let environment = self.required(&f, "environment").and_then(|n| {
            self.parsed(n, "environment", |s| match s {
                "dev" => Ok(Environment::Dev),
                "staging" => Ok(Environment::Staging),
                "prod" => Ok(Environment::Prod),
                other => Err(format!(
                    "`{other}` is not an environment: expected `dev`, `staging` or `prod`"
                )),
            })
        });
        let expires = self
            .required(&f, "expires")
            .and_then(|n| self.date(n, "expires"));
        let name = self.opt_string(&f, "name");
        let team = self.opt_string(&f, "team");
        let review_every = f
            .get("review_every")
            .and_then(|n| self.duration(n, "review_every"));

        let schedule = f.get("schedule").and_then(|n| self.schedule(n));
        let tools = f.get("tools").map(|n| self.tools(n)).unwrap_or_default();
        let forbid = f.get("forbid").map(|n| self.forbids(n)).unwrap_or_default();
        let data = f.get("data").map(|n| self.data(n)).unwrap_or_default();
        let limits = f.get("limits").map(|n| self.limits(n)).unwrap_or_default();
        let delegation = f
            .get("delegation")
            .map(|n| self.delegation(n))
            .unwrap_or_default();
        let elevation = f
            .get("elevation")
            .map(|n| self.elevations(n))
            .unwrap_or_default();
        let monitoring = f
            .get("monitoring")
            .map(|n| self.monitoring(n))
            .unwrap_or_default();
        let credentials = f
            .get("credentials")
            .map(|n| self.credentials(n))
            .unwrap_or_default();

        if let (Some(agent), Some(d)) = (&agent, f.get("delegation")) {
            if delegation.to.contains(agent) {
                self.err(
                    "delegation.to",
                    d.pos,
                    format!("`{agent}` cannot delegate to itself"),
                );
            }
        }

        Some(Manifest {
            agent: agent?,
            name,
            owner: owner?,
            team,
            purpose: purpose?,
            environment: environment?,
            expires: expires?,
            review_every,
            tools,
            forbid,
            data,
            schedule,
            limits,
            delegation,
            elevation,
            monitoring,
            credentials,
            document: root.to_json(),
        })
    }

    fn date(&mut self, node: &Node, path: &str) -> Option<Date> {
        // YAML may read 2027-12-31 as a string (core schema) — that is what we want.
        let s = self.string(node, path)?;
        if s.len() != 10 {
            self.err(
                path,
                node.pos,
                format!("`{s}` is not a date: expected `YYYY-MM-DD`"),
            );
            return None;
        }
        s.parse::<Date>()
            .map_err(|_| {
                self.err(
                    path,
                    node.pos,
                    format!("`{s}` is not a date: expected `YYYY-MM-DD`"),
                )
            })
            .ok()
    }

    fn tools(&mut self, node: &Node) -> Vec<ToolGrant> {
        let Some(items) = self.list(node, "tools") else {
            return Vec::new();
        };
        items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| self.tool(item, &index("tools", i)))
            .collect()
    }

    fn tool(&mut self, node: &Node, path: &str) -> Option<ToolGrant> {
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
        let shape = args
            .as_ref()
            .and_then(|a| self.arg_shape(a, &f.path("args"), node.pos));
        let when = f
            .get("when")
            .and_then(|n| self.condition(n, &f.path("when"), shape.as_ref()));
        let approval = f
            .get("approval")
            .and_then(|n| self.approval(n, &f.path("approval"), shape.as_ref()));
        let sensitive = match f.get("sensitive") {
            Some(n) => self.string_list(n, &f.path("sensitive"), |s| Ok(s.to_owned())),
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
            pos: node.pos,
        })
    }

    fn access(&mut self, node: &Node, path: &str) -> Option<Access> {
        self.parsed(node, path, |s| {
            Access::ALL
                .into_iter()
                .find(|a| a.as_str() == s)
                .ok_or_else(|| format!("`{s}` is not an access level: expected `read`, `write`, `export` or `admin`"))
        })
    }

    fn args(&mut self, node: &Node, path: &str) -> Option<Vec<ArgCheck>> {
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
            if let (Some(min), Some(max)) = (min, max) {
                if min > max {
                    self.err(
                        join(&arg_path, "max"),
                        spec.pos,
                        format!("`max` ({max}) is less than `min` ({min}): nothing could pass"),
                    );
                }
            }
        }
        (self.errors.len() == before).then_some(checks)
    }

    fn literals(&mut self, node: &Node, path: &str) -> Option<Vec<ArgValue>> {
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
    fn arg_shape(&mut self, checks: &[ArgCheck], path: &str, pos: Pos) -> Option<ConditionShape> {
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

    fn condition(
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
                self.err(path, node.pos, e);
                None
            }
        }
    }

    fn approvers(&mut self, node: &Node, path: &str) -> Option<Vec<Approver>> {
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

    fn approval(
        &mut self,
        node: &Node,
        path: &str,
        shape: Option<&ConditionShape>,
    ) -> Option<ApprovalRule> {
        let f = self.mapping(node, path, APPROVAL_KEYS)?;
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

    fn forbids(&mut self, node: &Node) -> Vec<Forbid> {
        let Some(items) = self.list(node, "forbid") else {
            return Vec::new();
        };
        items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| {
                self.parsed(item, &index("forbid", i), Glob::tool)
                    .map(|name| Forbid {
                        name,
                        pos: item.pos,
                    })
            })
            .collect()
    }

    fn data(&mut self, node: &Node) -> Vec<DataGrant> {
        let Some(items) = self.list(node, "data") else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let path = index("data", i);
            let Some(f) = self.mapping(item, &path, DATA_KEYS) else {
                continue;
            };
            let resource = self
                .required(&f, "resource")
                .and_then(|n| self.parsed(n, &f.path("resource"), Glob::resource));
            let access = self.required(&f, "access").and_then(|n| {
                let p = f.path("access");
                let items = self.list(n, &p)?;
                let mut out = Vec::new();
                for (j, a) in items.iter().enumerate() {
                    out.push(self.access(a, &index(&p, j))?);
                }
                if out.is_empty() {
                    self.err(p, n.pos, "expected at least one access level");
                    return None;
                }
                Some(out)
            });
            if let (Some(resource), Some(access)) = (resource, access) {
                out.push(DataGrant {
                    resource,
                    access,
                    pos: item.pos,
                });
            }
        }
        out
    }

    fn schedule(&mut self, node: &Node) -> Option<Schedule> {
        let f = self.mapping(node, "schedule", SCHEDULE_KEYS)?;
        let tz = self.required(&f, "timezone").and_then(|n| {
            let name = self.string(n, "schedule.timezone")?;
            match TimeZone::get(&name) {
                Ok(tz) => Some((tz, name)),
                Err(_) => {
                    self.err(
                        "schedule.timezone",
                        n.pos,
                        format!(
                            "`{name}` is not an IANA time zone (such as `Europe/Berlin` or `UTC`)"
                        ),
                    );
                    None
                }
            }
        });
        let windows = self.required(&f, "windows").and_then(|n| {
            let w = self.string_list(n, "schedule.windows", Window::parse)?;
            if w.is_empty() {
                self.err(
                    "schedule.windows",
                    n.pos,
                    "expected at least one window (an empty schedule would deny everything)",
                );
                return None;
            }
            Some(w)
        });
        let (timezone, timezone_name) = tz?;
        Some(Schedule {
            timezone,
            timezone_name,
            windows: windows?,
        })
    }

    fn limits(&mut self, node: &Node) -> Limits {
        let Some(f) = self.mapping(node, "limits", LIMIT_KEYS) else {
            return Limits::default();
        };
        let rate = f
            .get("rate")
            .and_then(|n| self.parsed(n, "limits.rate", parse_rate));
        let mut budgets = Vec::new();
        if let Some(n) = f.get("budgets") {
            if let Some(items) = self.list(n, "limits.budgets") {
                for (i, item) in items.iter().enumerate() {
                    let path = index("limits.budgets", i);
                    let Some(b) = self.mapping(item, &path, BUDGET_KEYS) else {
                        continue;
                    };
                    let arg = self
                        .required(&b, "arg")
                        .and_then(|n| self.string(n, &b.path("arg")));
                    let max = self.required(&b, "max").and_then(|n| {
                        let m = self.int(n, &b.path("max"))?;
                        if m < 1 {
                            self.err(
                                b.path("max"),
                                n.pos,
                                format!(
                                    "`{m}` must be a positive integer (amounts are in minor units)"
                                ),
                            );
                            return None;
                        }
                        Some(m)
                    });
                    let per = self
                        .required(&b, "per")
                        .and_then(|n| self.duration(n, &b.path("per")));
                    if let (Some(arg), Some(max), Some(per)) = (arg, max, per) {
                        budgets.push(Budget {
                            arg,
                            max,
                            per,
                            pos: item.pos,
                        });
                    }
                }
            }
        }
        Limits { rate, budgets }
    }

    fn delegation(&mut self, node: &Node) -> Delegation {
        let Some(f) = self.mapping(node, "delegation", DELEGATION_KEYS) else {
            return Delegation::default();
        };
        let to = f
            .get("to")
            .and_then(|n| {
                self.string_list(n, "delegation.to", |s| {
                    s.parse::<AgentId>().map_err(|e| e.to_string())
                })
            })
            .unwrap_or_default();
        let max_depth = f
            .get("max_depth")
            .and_then(|n| {
                let d = self.int(n, "delegation.max_depth")?;
                if !(1..=MAX_DELEGATION_DEPTH).contains(&d) {
                    self.err(
                        "delegation.max_depth",
                        n.pos,
                        format!("`{d}` is out of range: expected 1 to {MAX_DELEGATION_DEPTH}"),
                    );
                    return None;
                }
                u32::try_from(d).ok()
            })
            .unwrap_or(1);
        Delegation { to, max_depth }
    }

    fn elevations(&mut self, node: &Node) -> Vec<ElevationSpec> {
        let Some(items) = self.list(node, "elevation") else {
            return Vec::new();
        };
        let mut out: Vec<ElevationSpec> = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let path = index("elevation", i);
            let Some(f) = self.mapping(item, &path, ELEVATION_KEYS) else {
                continue;
            };
            let name = self.required(&f, "name").and_then(|n| {
                self.parsed(n, &f.path("name"), |s| {
                    s.parse::<AgentId>().map(|_| s.to_owned()).map_err(|_| {
                        format!(
                            "`{s}` is not a valid elevation name: lowercase letters, digits and `-`"
                        )
                    })
                })
            });
            if let Some(name) = &name {
                if out.iter().any(|e| &e.name == name) {
                    self.err(
                        f.path("name"),
                        item.pos,
                        format!("elevation `{name}` is defined twice"),
                    );
                }
            }
            let tools = self.required(&f, "tools").and_then(|n| {
                let t = self.string_list(n, &f.path("tools"), |s| {
                    Glob::tool(s).map_err(|e| e.to_string())
                })?;
                if t.is_empty() {
                    self.err(f.path("tools"), n.pos, "expected at least one tool");
                    return None;
                }
                Some(t)
            });
            let max_duration = self
                .required(&f, "max_duration")
                .and_then(|n| self.duration(n, &f.path("max_duration")));
            let approvers = self
                .required(&f, "approvers")
                .and_then(|n| self.approvers(n, &f.path("approvers")));
            let auto = f.get("auto_grant_when").and_then(|n| {
                self.condition(
                    n,
                    &f.path("auto_grant_when"),
                    Some(&ConditionShape::Elevation),
                )
            });
            if f.get("auto_grant_when").is_some() && auto.is_none() {
                continue;
            }
            if let (Some(name), Some(tools), Some(max_duration), Some(approvers)) =
                (name, tools, max_duration, approvers)
            {
                out.push(ElevationSpec {
                    name,
                    tools,
                    max_duration,
                    approvers,
                    auto_grant_when: auto,
                    pos: item.pos,
                });
            }
        }
        out
    }

    fn monitoring(&mut self, node: &Node) -> Monitoring {
        let Some(f) = self.mapping(node, "monitoring", MONITORING_KEYS) else {
            return Monitoring::default();
        };
        Monitoring {
            log_retrievals: f
                .get("log_retrievals")
                .and_then(|n| self.bool(n, "monitoring.log_retrievals"))
                .unwrap_or(false),
            suspend_after_denials: f
                .get("suspend_after_denials")
                .and_then(|n| self.parsed(n, "monitoring.suspend_after_denials", parse_rate)),
        }
    }

    fn credentials(&mut self, node: &Node) -> Credentials {
        let Some(f) = self.mapping(node, "credentials", CREDENTIAL_KEYS) else {
            return Credentials::default();
        };
        let token_ttl = f
            .get("token_ttl")
            .and_then(|n| {
                let d = self.duration(n, "credentials.token_ttl")?;
                if d > Credentials::MAX_TTL {
                    self.err(
                        "credentials.token_ttl",
                        n.pos,
                        format!(
                            "`{}` is too long: tokens live at most `1h`",
                            units::format_duration(d)
                        ),
                    );
                    return None;
                }
                Some(d)
            })
            .unwrap_or(Credentials::DEFAULT_TTL);
        let dpop_required = f
            .get("dpop")
            .and_then(|n| {
                self.parsed(n, "credentials.dpop", |s| match s {
                    "required" => Ok(true),
                    "optional" => Ok(false),
                    other => Err(format!(
                        "`{other}` is not a DPoP mode: expected `required` or `optional`"
                    )),
                })
            })
            .unwrap_or(false);
        Credentials {
            token_ttl,
            dpop_required,
        }
    }
}

fn first_line(s: &str) -> &str {
    s.lines().last().unwrap_or(s).trim()
}
