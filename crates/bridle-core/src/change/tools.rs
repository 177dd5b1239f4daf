//! Tool grants compared: each grant by name, its access, argument
//! constraints, condition and approval rule.

use std::collections::BTreeSet;

use crate::glob::Glob;
use crate::manifest::units::format_duration;
use crate::manifest::{
    ApprovalRule, ArgCheck, ArgRule, ArgValue, CedarCondition, Manifest, ToolGrant,
};

use super::{Changes, ConditionKind, keyed, label};

pub(super) fn tool_path(name: &Glob) -> String {
    format!("tools[{}]", name.as_str())
}

pub(super) fn describe_tool(g: &ToolGrant) -> String {
    let mut s = format!("new grant `{}` ({})", g.name.as_str(), g.access.as_str());
    if g.args.is_empty() && g.when.is_none() {
        s.push_str(", unconstrained");
    }
    if g.approval.is_none() {
        s.push_str(", no approval");
    }
    s
}

pub(super) fn compare_tools(old: &Manifest, new: &Manifest, out: &mut Changes) {
    let o = keyed(&old.tools, |g| g.name.as_str().to_owned());
    let n = keyed(&new.tools, |g| g.name.as_str().to_owned());
    for (k, og) in &o {
        let path = format!("tools[{}]", label(k));
        match n.get(k) {
            Some(ng) => compare_grant(&path, og, ng, out),
            None => {
                // With the most specific grant governing, the names this
                // grant governed fall to any other grant that matches them:
                // a removal narrows only when every remaining grant that
                // overlaps it lies within it and is no looser than it (its
                // names are then governed by something no looser, or by
                // nothing).
                let fallback = new.tools.iter().find(|g| {
                    g.name.overlaps(&og.name) && !(g.name.is_within(&og.name) && no_looser(og, g))
                });
                let within: Vec<&str> = new
                    .tools
                    .iter()
                    .filter(|g| g.name.overlaps(&og.name))
                    .map(|g| g.name.as_str())
                    .collect();
                match fallback {
                    None if within.is_empty() => {
                        out.narrow(path, format!("grant `{}` removed", og.name.as_str()));
                    }
                    None => out.narrow(
                        path,
                        format!(
                            "grant `{}` removed: only `{}` within it, no looser, remain",
                            og.name.as_str(),
                            within.join("`, `")
                        ),
                    ),
                    Some(g) => out.widen(
                        path,
                        format!(
                            "grant `{}` removed: what it governed falls to `{}`",
                            og.name.as_str(),
                            g.name.as_str()
                        ),
                    ),
                }
            }
        }
    }
    let old_names: Vec<&Glob> = old.tools.iter().map(|g| &g.name).collect();
    for (k, ng) in &n {
        if o.contains_key(k) {
            continue;
        }
        let path = format!("tools[{}]", label(k));
        // A literal name split out of the grant that governed it before
        // (the most specific that matched it) and no looser than that grant
        // decides that name no more loosely; a literal governs only itself.
        let before = ng
            .name
            .is_literal()
            .then(|| crate::specific::governing(&old_names, ng.name.as_str()))
            .flatten()
            .and_then(|i| old.tools.get(i));
        match before {
            Some(og) if no_looser(og, ng) => {
                let mut probe = Changes(Vec::new());
                compare_grant(&path, og, ng, &mut probe);
                let detail = format!(
                    "grant `{}` split out of `{}`",
                    ng.name.as_str(),
                    og.name.as_str()
                );
                if probe.0.is_empty() {
                    out.neutral(path, format!("{detail}, as it was"));
                } else {
                    out.narrow(path, format!("{detail}, narrower"));
                }
            }
            _ => out.widen(path, describe_tool(ng)),
        }
    }
}

/// Whether `g` decides no more loosely than `than` would: comparing the one
/// with the other finds nothing widening.
fn no_looser(than: &ToolGrant, g: &ToolGrant) -> bool {
    let mut probe = Changes(Vec::new());
    compare_grant("", than, g, &mut probe);
    !probe
        .0
        .iter()
        .any(|c| c.effect == super::ChangeEffect::Widening)
}

pub(super) fn compare_grant(path: &str, old: &ToolGrant, new: &ToolGrant, out: &mut Changes) {
    if old.access != new.access {
        // The access level decides which data grants must cover a resource
        // and how reviewers see the tool: any change is reviewed.
        out.widen(
            format!("{path}.access"),
            format!("{} → {}", old.access.as_str(), new.access.as_str()),
        );
    }
    compare_args(path, &old.args, &new.args, out);
    condition(
        &format!("{path}.when"),
        old.when.as_ref(),
        new.when.as_ref(),
        ConditionKind::Requirement,
        out,
    );
    compare_approval(
        &format!("{path}.approval"),
        old.approval.as_ref(),
        new.approval.as_ref(),
        out,
    );
    let os: BTreeSet<&str> = old.sensitive.iter().map(String::as_str).collect();
    let ns: BTreeSet<&str> = new.sensitive.iter().map(String::as_str).collect();
    for gone in os.difference(&ns) {
        out.widen(
            format!("{path}.sensitive"),
            format!("`{gone}` is no longer kept only as a keyed hash"),
        );
    }
    for added in ns.difference(&os) {
        out.narrow(
            format!("{path}.sensitive"),
            format!("`{added}` now kept only as a keyed hash"),
        );
    }
}

pub(super) fn compare_args(path: &str, old: &[ArgCheck], new: &[ArgCheck], out: &mut Changes) {
    let key = |c: &ArgCheck| format!("{}.{}", c.arg, c.rule.key());
    let o = keyed(old, key);
    let n = keyed(new, key);
    for (k, oc) in &o {
        let p = format!("{path}.args.{}", label(k));
        match n.get(k) {
            None => out.widen(p, format!("constraint `{}` removed", oc.rule.describe())),
            Some(nc) => compare_rule(p, &oc.rule, &nc.rule, out),
        }
    }
    for (k, nc) in &n {
        if !o.contains_key(k) {
            out.narrow(
                format!("{path}.args.{}", label(k)),
                format!("new constraint: {}", nc.rule.describe()),
            );
        }
    }
}

pub(super) fn compare_rule(path: String, old: &ArgRule, new: &ArgRule, out: &mut Changes) {
    let detail = format!("{} → {}", old.describe(), new.describe());
    let subset = |a: &[ArgValue], b: &[ArgValue]| a.iter().all(|v| b.contains(v));
    let narrower = match (old, new) {
        (ArgRule::In(o), ArgRule::In(n)) => {
            if subset(o, n) && subset(n, o) {
                return;
            }
            subset(n, o)
        }
        (ArgRule::NotIn(o), ArgRule::NotIn(n)) => {
            if subset(o, n) && subset(n, o) {
                return;
            }
            subset(o, n)
        }
        (ArgRule::Min(o), ArgRule::Min(n)) => {
            if o == n {
                return;
            }
            n > o
        }
        (ArgRule::Max(o), ArgRule::Max(n)) => {
            if o == n {
                return;
            }
            n < o
        }
        (ArgRule::Pattern { source: o, .. }, ArgRule::Pattern { source: n, .. }) => {
            if o == n {
                return;
            }
            false
        }
        (ArgRule::Prefix(o), ArgRule::Prefix(n)) => {
            if o == n {
                return;
            }
            n.starts_with(o.as_str())
        }
        // Keys are compared per rule kind, so kinds always agree here.
        _ => false,
    };
    out.ordered(path, detail, narrower);
}

pub(super) fn condition(
    path: &str,
    old: Option<&CedarCondition>,
    new: Option<&CedarCondition>,
    kind: ConditionKind,
    out: &mut Changes,
) {
    let show = |c: Option<&CedarCondition>| {
        c.map_or_else(|| "(none)".to_owned(), |c| format!("`{}`", c.expr.trim()))
    };
    let detail = format!("{} → {}", show(old), show(new));
    match (old, new) {
        (None, None) => {}
        (Some(o), Some(n)) if o.expr.trim() == n.expr.trim() => {}
        // A different expression is not provably narrower.
        (Some(_), Some(_)) => out.widen(path, detail),
        (None, Some(_)) => match kind {
            ConditionKind::Requirement => out.narrow(path, detail),
            ConditionKind::Trigger => out.widen(path, detail),
        },
        (Some(_), None) => match kind {
            ConditionKind::Requirement => out.widen(path, detail),
            ConditionKind::Trigger => out.narrow(path, detail),
        },
    }
}

pub(super) fn compare_approval(
    path: &str,
    old: Option<&ApprovalRule>,
    new: Option<&ApprovalRule>,
    out: &mut Changes,
) {
    let (o, n) = match (old, new) {
        (None, None) => return,
        (Some(_), None) => return out.widen(path, "approval rule removed"),
        (None, Some(n)) => {
            return out.narrow(
                path,
                format!(
                    "approval now required{}",
                    n.when
                        .as_ref()
                        .map_or_else(String::new, |w| format!(" when `{}`", w.expr.trim()))
                ),
            );
        }
        (Some(o), Some(n)) => (o, n),
    };
    condition(
        &format!("{path}.when"),
        o.when.as_ref(),
        n.when.as_ref(),
        ConditionKind::Trigger,
        out,
    );
    approvers(
        &format!("{path}.approvers"),
        &o.approvers,
        &n.approvers,
        out,
    );
    if o.min_approvals != n.min_approvals {
        out.ordered(
            format!("{path}.min_approvals"),
            format!("{} → {}", o.min_approvals, n.min_approvals),
            n.min_approvals > o.min_approvals,
        );
    }
    if o.ttl != n.ttl {
        out.ordered(
            format!("{path}.ttl"),
            format!("{} → {}", format_duration(o.ttl), format_duration(n.ttl)),
            n.ttl < o.ttl,
        );
    }
    if o.allow_owner != n.allow_owner {
        out.ordered(
            format!("{path}.allow_owner"),
            format!("{} → {}", o.allow_owner, n.allow_owner),
            !n.allow_owner,
        );
    }
}

/// Fewer people able to approve narrows; anyone new widens.
pub(super) fn approvers<T: std::fmt::Display + Eq>(
    path: &str,
    old: &[T],
    new: &[T],
    out: &mut Changes,
) {
    let added: Vec<String> = new
        .iter()
        .filter(|a| !old.contains(a))
        .map(ToString::to_string)
        .collect();
    let removed: Vec<String> = old
        .iter()
        .filter(|a| !new.contains(a))
        .map(ToString::to_string)
        .collect();
    if !added.is_empty() {
        out.widen(path, format!("new approvers: {}", added.join(", ")));
    }
    if !removed.is_empty() {
        out.narrow(path, format!("approvers removed: {}", removed.join(", ")));
    }
}
