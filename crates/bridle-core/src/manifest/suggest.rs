//! Least privilege from evidence: the version in force narrowed to what the
//! agent was seen to use over a window ([`crate::activity::UsageReport`]).
//!
//! Each edit is tried on its own and kept only when the result still loads
//! and the change classifier ([`crate::change::classify`]) finds nothing
//! widening against the version in force, so a suggestion is never wider:
//! - a tool grant under which nothing was allowed is removed;
//! - a glob grant is replaced by one grant per name used under it, each
//!   with the glob's constraints;
//! - an `in` list keeps only the values used (when every value used is
//!   known: not sensitive, not too many);
//! - `max` and `min` move to what was used, with [`HEADROOM_PERCENT`] of
//!   headroom, never past where they were;
//! - an elevation never used is flagged, not removed (it exists for the
//!   rare case).
//!
//! The suggestion is the manifest written back from its parsed form:
//! comments and formatting are not kept, so it is compared with the
//! version in force written back the same way.

use serde::Serialize;

use super::node::{Node, Value, parse_document};
use super::{ArgValue, Manifest};
use crate::activity::{ArgSeen, GrantUsage, UsageReport};
use crate::change::{Change, classify, is_widening};

/// How far past the largest (or below the smallest) value used a
/// suggested `max` (`min`) lies, in percent of that value (at least 1).
pub const HEADROOM_PERCENT: i64 = 10;

/// Why one part of the suggestion is what it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Evidence {
    /// The element of the version in force (`tools[2]`, `tools[1].args.amount.max`).
    pub path: String,
    pub message: String,
}

/// A narrowed manifest and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suggestion {
    /// The suggested manifest (YAML).
    pub manifest: String,
    /// The version in force written the same way, to diff against.
    pub current: String,
    /// The suggestion classified against the version in force (never
    /// widening).
    pub changes: Vec<Change>,
    pub evidence: Vec<Evidence>,
}

#[derive(Debug, thiserror::Error)]
pub enum SuggestError {
    #[error("the version in force does not load: {0}")]
    InForce(String),
    #[error("the version in force cannot be written back as YAML: {0}")]
    Write(String),
}

/// A suggestion for the manifest `source` (the version in force) from its
/// usage over `window` (a duration's text, for the evidence).
pub fn suggest(
    source: &str,
    usage: &UsageReport,
    window: &str,
) -> Result<Suggestion, SuggestError> {
    let in_force =
        Manifest::from_source(source).map_err(|e| SuggestError::InForce(e.to_string()))?;
    let root = parse_document(source).map_err(|e| SuggestError::InForce(e.message))?;
    let current = write(&root).map_err(SuggestError::Write)?;
    let mut tree = Tree {
        root,
        in_force,
        evidence: Vec::new(),
    };
    // Constraints first, then globs split into the names used (each copy
    // keeps the tightened constraints), then the grants nothing used go.
    let grants = usage.tools.iter().filter(|g| g.path.starts_with("tools["));
    let (unused, used): (Vec<&GrantUsage>, Vec<&GrantUsage>) = grants.partition(|g| g.allowed == 0);
    for g in &used {
        tree.tighten(g);
    }
    tree.split_globs(&used);
    for g in unused {
        let denied = if g.denied > 0 {
            format!(" ({} denied)", g.denied)
        } else {
            String::new()
        };
        tree.attempt(
            &g.path,
            format!(
                "`{}`: nothing allowed under it in the last {window}{denied}: removed",
                g.grant
            ),
            |root| {
                tools_mut(root).is_some_and(|tools| {
                    let found = position(tools, &g.grant);
                    if let Some(at) = found {
                        tools.remove(at);
                    }
                    found.is_some()
                })
            },
        );
    }
    for g in usage
        .tools
        .iter()
        .filter(|g| g.path.starts_with("elevation[") && g.allowed == 0)
    {
        tree.evidence.push(Evidence {
            path: g.path.clone(),
            message: format!(
                "elevation `{}` was never used in the last {window}: remove it unless it is kept for the rare case",
                g.grant
            ),
        });
    }
    let manifest = write(&tree.root).map_err(SuggestError::Write)?;
    let changes = match Manifest::from_source(&manifest) {
        Ok(m) => classify(Some(&tree.in_force), &m),
        Err(e) => return Err(SuggestError::Write(e.to_string())),
    };
    Ok(Suggestion {
        manifest,
        current,
        changes,
        evidence: tree.evidence,
    })
}

/// The manifest tree being narrowed, with the version in force each edit is
/// checked against.
struct Tree {
    root: Node,
    in_force: Manifest,
    evidence: Vec<Evidence>,
}

impl Tree {
    /// Applies `edit` to a copy; keeps it, with its evidence, when the copy
    /// loads and is not wider than the version in force.
    fn attempt(&mut self, path: &str, message: String, edit: impl FnOnce(&mut Node) -> bool) {
        let mut copy = self.root.clone();
        if !edit(&mut copy) {
            return;
        }
        let narrower = write(&copy)
            .ok()
            .and_then(|text| Manifest::from_source(&text).ok())
            .is_some_and(|m| !is_widening(&classify(Some(&self.in_force), &m)));
        if narrower {
            self.root = copy;
            self.evidence.push(Evidence {
                path: path.to_owned(),
                message,
            });
        }
    }

    /// `in` lists, `max` and `min` of grant `i` moved to what was used.
    fn tighten(&mut self, g: &GrantUsage) {
        let name = g.grant.clone();
        for (arg, seen) in &g.args {
            let rules = arg_rules(&self.root, &name, arg);
            for (rule, value) in rules {
                let path = format!("{}.args.{arg}.{rule}", g.path);
                match (rule.as_str(), &value.value) {
                    ("in", Value::Seq(items)) => {
                        let Some(kept) = kept_values(items, seen) else {
                            continue;
                        };
                        let dropped: Vec<String> = items
                            .iter()
                            .filter(|n| !kept.contains(n))
                            .map(scalar_text)
                            .collect();
                        let used: Vec<String> = kept.iter().map(scalar_text).collect();
                        self.attempt(
                            &path,
                            format!(
                                "`{arg}`: only `{}` used, never `{}`",
                                used.join("`, `"),
                                dropped.join("`, `")
                            ),
                            |root| set_rule(root, &name, arg, "in", Value::Seq(kept)),
                        );
                    }
                    ("max", Value::Int(old)) => {
                        let Some(top) = seen.max else { continue };
                        let new = top.saturating_add(headroom(top));
                        if new < *old {
                            self.attempt(
                                &path,
                                format!(
                                    "`{arg}`: at most {top} used; max {old} → {new} ({HEADROOM_PERCENT} % headroom)"
                                ),
                                |root| set_rule(root, &name, arg, "max", Value::Int(new)),
                            );
                        }
                    }
                    ("min", Value::Int(old)) => {
                        let Some(bottom) = seen.min else { continue };
                        let new = bottom.saturating_sub(headroom(bottom));
                        if new > *old {
                            self.attempt(
                                &path,
                                format!(
                                    "`{arg}`: at least {bottom} used; min {old} → {new} ({HEADROOM_PERCENT} % headroom)"
                                ),
                                |root| set_rule(root, &name, arg, "min", Value::Int(new)),
                            );
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    /// Each glob grant used under literal names only becomes one grant per
    /// name used.
    fn split_globs(&mut self, used: &[&GrantUsage]) {
        for g in used {
            if !g.grant.contains('*') || g.actions.is_empty() {
                continue;
            }
            let names: Vec<String> = g.actions.keys().cloned().collect();
            self.attempt(
                &g.path,
                format!(
                    "`{}`: used only as `{}`: one grant per name used",
                    g.grant,
                    names.join("`, `")
                ),
                |root| {
                    let Some(tools) = tools_mut(root) else {
                        return false;
                    };
                    let Some(at) = position(tools, &g.grant) else {
                        return false;
                    };
                    let glob = tools.remove(at);
                    for (k, name) in names.iter().enumerate() {
                        let mut copy = glob.clone();
                        set_name(&mut copy, name);
                        tools.insert(at + k, copy);
                    }
                    true
                },
            );
        }
    }
}

fn headroom(v: i64) -> i64 {
    (v.saturating_abs().saturating_mul(HEADROOM_PERCENT) / 100).max(1)
}

fn write(root: &Node) -> Result<String, String> {
    serde_saphyr::to_string(root).map_err(|e| e.to_string())
}

fn entry<'a>(node: &'a Node, key: &str) -> Option<&'a Node> {
    match &node.value {
        Value::Map(entries) => entries.iter().find(|(k, _, _)| k == key).map(|(_, _, v)| v),
        _ => None,
    }
}

fn entry_mut<'a>(node: &'a mut Node, key: &str) -> Option<&'a mut Node> {
    match &mut node.value {
        Value::Map(entries) => entries
            .iter_mut()
            .find(|(k, _, _)| k == key)
            .map(|(_, _, v)| v),
        _ => None,
    }
}

fn tools_mut(root: &mut Node) -> Option<&mut Vec<Node>> {
    match &mut entry_mut(root, "tools")?.value {
        Value::Seq(items) => Some(items),
        _ => None,
    }
}

/// Where the grant named `name` is in `tools`.
fn position(tools: &[Node], name: &str) -> Option<usize> {
    tools.iter().position(
        |t| matches!(entry(t, "name").map(|n| &n.value), Some(Value::Str(s)) if s == name),
    )
}

fn set_name(grant: &mut Node, name: &str) {
    if let Some(n) = entry_mut(grant, "name") {
        n.value = Value::Str(name.to_owned());
    }
}

/// The rules written for argument `arg` of the grant named `name`.
fn arg_rules(root: &Node, name: &str, arg: &str) -> Vec<(String, Node)> {
    let grant = match &entry(root, "tools").map(|t| &t.value) {
        Some(Value::Seq(items)) => position(items, name).and_then(|at| items.get(at)),
        _ => None,
    };
    match grant
        .and_then(|g| entry(g, "args"))
        .and_then(|a| entry(a, arg))
        .map(|r| &r.value)
    {
        Some(Value::Map(rules)) => rules
            .iter()
            .map(|(k, _, v)| (k.clone(), v.clone()))
            .collect(),
        _ => Vec::new(),
    }
}

fn set_rule(root: &mut Node, name: &str, arg: &str, rule: &str, value: Value) -> bool {
    let Some(tools) = tools_mut(root) else {
        return false;
    };
    let Some(at) = position(tools, name) else {
        return false;
    };
    let target = tools
        .get_mut(at)
        .and_then(|g| entry_mut(g, "args"))
        .and_then(|a| entry_mut(a, arg))
        .and_then(|r| entry_mut(r, rule));
    match target {
        Some(node) => {
            node.value = value;
            true
        }
        None => false,
    }
}

/// The items of an `in` list that were used, when every value used is
/// known and some item was not used; `None` otherwise.
fn kept_values(items: &[Node], seen: &ArgSeen) -> Option<Vec<Node>> {
    if seen.more || seen.redacted || seen.values.is_empty() {
        return None;
    }
    let kept: Vec<Node> = items
        .iter()
        .filter(|n| seen.values.iter().any(|v| same(n, v)))
        .cloned()
        .collect();
    (!kept.is_empty() && kept.len() < items.len()).then_some(kept)
}

fn same(n: &Node, v: &ArgValue) -> bool {
    match (&n.value, v) {
        (Value::Str(a), ArgValue::Str(b)) => a == b,
        (Value::Int(a), ArgValue::Int(b)) => a == b,
        (Value::Bool(a), ArgValue::Bool(b)) => a == b,
        _ => false,
    }
}

fn scalar_text(n: &Node) -> String {
    match &n.value {
        Value::Str(s) => s.clone(),
        Value::Int(i) => i.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Float(f) => f.to_string(),
        _ => n.kind().to_owned(),
    }
}
