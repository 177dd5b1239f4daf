//! YAML tree → [`Manifest`], collecting every error with its path and position.

use jiff::SignedDuration;
use jiff::civil::Date;

mod sections;
mod tools;

use super::error::did_you_mean;
use super::limits::{MAX_GRANTS, MAX_LIST_ITEMS, MAX_MANIFEST_BYTES};
use super::node::{Node, Pos, Value, parse_document};
use super::units::parse_duration;
use super::*;

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
const BUDGET_KEYS: &[&str] = &["arg", "max", "per", "approval"];
/// A budget's approval applies when the sum passes `max`: it has no `when`.
const BUDGET_APPROVAL_KEYS: &[&str] = &["approvers", "min_approvals", "ttl", "allow_owner"];
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
    if source.len() > MAX_MANIFEST_BYTES {
        return Err(ManifestErrors {
            errors: vec![ManifestError::new(
                "",
                Pos { line: 1, column: 1 },
                format!(
                    "the manifest is {} bytes; at most {MAX_MANIFEST_BYTES} are accepted",
                    source.len()
                ),
            )],
        });
    }
    let root = parse_document(source).map_err(|e| ManifestErrors {
        errors: vec![ManifestError::new(e.path, e.pos, e.message)],
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

    /// A list, at most [`MAX_GRANTS`] entries long for `tools` and
    /// [`MAX_LIST_ITEMS`] for any other.
    fn list<'a>(&mut self, node: &'a Node, path: &str) -> Option<&'a [Node]> {
        match &node.value {
            Value::Seq(items) => {
                let most = if path == "tools" {
                    MAX_GRANTS
                } else {
                    MAX_LIST_ITEMS
                };
                if items.len() > most {
                    self.err(
                        path,
                        node.pos,
                        format!("{} entries; at most {most} are accepted", items.len()),
                    );
                    return None;
                }
                Some(items)
            }
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
    fn string_list<T, E: std::fmt::Display>(
        &mut self,
        node: &Node,
        path: &str,
        mut f: impl FnMut(&str) -> Result<T, E>,
    ) -> Option<Vec<T>> {
        let items = self.list(node, path)?;
        let mut out = Vec::with_capacity(items.len());
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            let p = index(path, i);
            match self.string(item, &p).map(|s| f(&s)) {
                Some(Ok(v)) => out.push(v),
                Some(Err(e)) => {
                    self.err(p, item.pos, e.to_string());
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
            .map_err(|e| self.err(path, node.pos, e.to_string()))
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

        self.overlaps(&tools, &elevation);

        if let (Some(agent), Some(d)) = (&agent, f.get("delegation"))
            && delegation.to.contains(agent)
        {
            self.err(
                "delegation.to",
                d.pos,
                format!("`{agent}` cannot delegate to itself"),
            );
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
}

fn first_line(s: &str) -> &str {
    s.lines().last().unwrap_or(s).trim()
}

impl Parser {
    /// Grants (and elevation tools) of equal specificity that match one
    /// name: which one governs would be a guess, so the manifest is refused.
    fn overlaps(&mut self, tools: &[ToolGrant], elevation: &[ElevationSpec]) {
        let globs: Vec<&crate::glob::Glob> = tools.iter().map(|g| &g.name).collect();
        for o in crate::specific::equal_overlaps(&globs) {
            let (Some(a), Some(b)) = (tools.get(o.first), tools.get(o.second)) else {
                continue;
            };
            self.err(
                format!("tools[{}].name", o.second),
                b.pos,
                format!(
                    "`{}` and `{}` (tools[{}], line {}) are equally specific and both match `{}`: \
                     which grant governs it would be ambiguous; make one more specific or merge them",
                    b.name, a.name, o.first, a.pos.line, o.name
                ),
            );
        }
        let mut where_: Vec<(String, Pos)> = Vec::new();
        let mut globs: Vec<&crate::glob::Glob> = Vec::new();
        for (e, spec) in elevation.iter().enumerate() {
            for (t, glob) in spec.tools.iter().enumerate() {
                where_.push((format!("elevation[{e}].tools[{t}]"), spec.pos));
                globs.push(glob);
            }
        }
        for o in crate::specific::equal_overlaps(&globs) {
            let (Some((first, fpos)), Some((second, spos)), Some(a), Some(b)) = (
                where_.get(o.first),
                where_.get(o.second),
                globs.get(o.first),
                globs.get(o.second),
            ) else {
                continue;
            };
            self.err(
                second.clone(),
                *spos,
                format!(
                    "`{b}` and `{a}` ({first}, line {}) are equally specific elevation tools that both match `{}`: \
                     make one more specific or list it once",
                    fpos.line, o.name
                ),
            );
        }
    }
}
