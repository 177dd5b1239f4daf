//! Change classification: what a proposed manifest changes against the
//! version in force, element by element, and whether each change widens,
//! narrows or leaves alone what the agent may do.
//!
//! Conservative by construction: a change is `narrowing` only where it is
//! provably narrower (a subset list, a lower cap, a shorter duration, a
//! removed grant that no other grant overlaps); everything else that differs
//! is `widening`. Only descriptive fields (`name`, `team`, `purpose`) are
//! `neutral`. Grants are identified by their `name`, data grants by
//! `resource`, elevations by `name`, budgets by `arg` and `per`, so a
//! reordering changes nothing.

use std::collections::{BTreeMap, BTreeSet};

use jiff::SignedDuration;
use serde::Serialize;

mod tools;

use self::tools::{
    approvers, compare_approval, compare_tools, condition, describe_tool, tool_path,
};
use crate::glob::Glob;
use crate::manifest::units::format_duration;
use crate::manifest::{Budget, DataGrant, ElevationSpec, Manifest, Rate, Schedule, Window};

/// One classified difference between two manifests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// Where, by identity rather than index:
    /// `tools[procurement.create_purchase_request].args.amount.max`.
    pub path: String,
    pub effect: ChangeEffect,
    /// What changed, for a human: `max 100000 → 200000`.
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeEffect {
    Neutral,
    Narrowing,
    Widening,
}

impl ChangeEffect {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Neutral => "neutral",
            Self::Narrowing => "narrowing",
            Self::Widening => "widening",
        }
    }

    pub fn is_widening(self) -> bool {
        self == Self::Widening
    }
}

/// Whether any change widens (a set of changes needing change control).
pub fn is_widening(changes: &[Change]) -> bool {
    changes.iter().any(|c| c.effect.is_widening())
}

/// The strongest effect of a set of changes (`None` for no change at all).
pub fn overall(changes: &[Change]) -> Option<ChangeEffect> {
    changes.iter().map(|c| c.effect).max()
}

/// Classify `proposed` against the version `in_force`.
///
/// `in_force: None` is a new agent: one widening change at path `agent`
/// ("new agent"), followed by one widening change per thing it grants (each
/// tool grant, data grant, elevation and delegate), so a reviewer sees what
/// the new record would allow. Identical manifests give no changes.
pub fn classify(in_force: Option<&Manifest>, proposed: &Manifest) -> Vec<Change> {
    let mut out = Changes::default();
    match in_force {
        None => new_agent(proposed, &mut out),
        Some(old) => compare(old, proposed, &mut out),
    }
    out.0
}

#[derive(Default)]
pub(super) struct Changes(Vec<Change>);

impl Changes {
    fn push(&mut self, path: impl Into<String>, effect: ChangeEffect, detail: impl Into<String>) {
        self.0.push(Change {
            path: path.into(),
            effect,
            detail: detail.into(),
        });
    }
    fn widen(&mut self, path: impl Into<String>, detail: impl Into<String>) {
        self.push(path, ChangeEffect::Widening, detail);
    }
    fn narrow(&mut self, path: impl Into<String>, detail: impl Into<String>) {
        self.push(path, ChangeEffect::Narrowing, detail);
    }
    fn neutral(&mut self, path: impl Into<String>, detail: impl Into<String>) {
        self.push(path, ChangeEffect::Neutral, detail);
    }
    /// `narrower` decides; equal values push nothing.
    fn ordered(&mut self, path: String, detail: String, narrower: bool) {
        if narrower {
            self.narrow(path, detail);
        } else {
            self.widen(path, detail);
        }
    }
}

fn new_agent(m: &Manifest, out: &mut Changes) {
    out.widen(
        "agent",
        format!("new agent `{}` (owner `{}`)", m.agent, m.owner),
    );
    for g in &m.tools {
        out.widen(tool_path(&g.name), describe_tool(g));
    }
    for d in &m.data {
        out.widen(
            format!("data[{}]", d.resource.as_str()),
            format!("new data grant: {}", access_list(&d.access)),
        );
    }
    for e in &m.elevation {
        out.widen(
            format!("elevation[{}]", e.name),
            format!("new elevation: {}", glob_list(&e.tools)),
        );
    }
    for to in &m.delegation.to {
        out.widen(
            format!("delegation.to[{to}]"),
            format!("may delegate to `{to}`"),
        );
    }
}

fn compare(old: &Manifest, new: &Manifest, out: &mut Changes) {
    if old.agent != new.agent {
        out.widen(
            "agent",
            format!("a different agent: `{}` → `{}`", old.agent, new.agent),
        );
    }
    let text = |v: &Option<String>| v.clone().unwrap_or_else(|| "(none)".into());
    if old.name != new.name {
        out.neutral(
            "name",
            format!("`{}` → `{}`", text(&old.name), text(&new.name)),
        );
    }
    if old.team != new.team {
        out.neutral(
            "team",
            format!("`{}` → `{}`", text(&old.team), text(&new.team)),
        );
    }
    if old.purpose != new.purpose {
        out.neutral("purpose", "purpose reworded");
    }
    if old.owner != new.owner {
        out.widen(
            "owner",
            format!("new owner: `{}` → `{}`", old.owner, new.owner),
        );
    }
    if old.environment != new.environment {
        // The environment decides which change control applies: any move
        // is reviewed.
        out.widen(
            "environment",
            format!(
                "{} → {}",
                old.environment.as_str(),
                new.environment.as_str()
            ),
        );
    }
    if old.expires != new.expires {
        out.ordered(
            "expires".into(),
            format!("{} → {}", old.expires, new.expires),
            new.expires < old.expires,
        );
    }
    optional_duration(
        "review_every",
        old.review_every,
        new.review_every,
        true,
        out,
    );
    compare_tools(old, new, out);
    compare_forbid(old, new, out);
    compare_data(&old.data, &new.data, out);
    compare_schedule(old.schedule.as_ref(), new.schedule.as_ref(), out);
    optional_rate("limits.rate", old.limits.rate, new.limits.rate, out);
    compare_budgets(&old.limits.budgets, &new.limits.budgets, out);
    compare_delegation(old, new, out);
    compare_elevations(old, new, out);
    if old.monitoring.log_retrievals != new.monitoring.log_retrievals {
        out.ordered(
            "monitoring.log_retrievals".into(),
            format!(
                "{} → {}",
                old.monitoring.log_retrievals, new.monitoring.log_retrievals
            ),
            new.monitoring.log_retrievals,
        );
    }
    optional_rate(
        "monitoring.suspend_after_denials",
        old.monitoring.suspend_after_denials,
        new.monitoring.suspend_after_denials,
        out,
    );
    let (oc, nc) = (&old.credentials, &new.credentials);
    if oc.token_ttl != nc.token_ttl {
        out.ordered(
            "credentials.token_ttl".into(),
            format!(
                "{} → {}",
                format_duration(oc.token_ttl),
                format_duration(nc.token_ttl)
            ),
            nc.token_ttl < oc.token_ttl,
        );
    }
    if oc.dpop_required != nc.dpop_required {
        out.ordered(
            "credentials.dpop".into(),
            if nc.dpop_required {
                "dpop now required".into()
            } else {
                "dpop no longer required".into()
            },
            nc.dpop_required,
        );
    }
}

/// A duration where `None` means "no bound" and shorter is stricter
/// (`review_every`).
fn optional_duration(
    path: &str,
    old: Option<SignedDuration>,
    new: Option<SignedDuration>,
    shorter_is_narrower: bool,
    out: &mut Changes,
) {
    let show = |d: Option<SignedDuration>| d.map_or_else(|| "(none)".into(), format_duration);
    let detail = format!("{} → {}", show(old), show(new));
    match (old, new) {
        (Some(o), Some(n)) if o == n => {}
        (None, None) => {}
        (Some(o), Some(n)) => out.ordered(path.into(), detail, (n < o) == shorter_is_narrower),
        (None, Some(_)) => out.narrow(path, detail),
        (Some(_), None) => out.widen(path, detail),
    }
}

/// A rate where `None` means "no limit": narrower only if it allows at most
/// as many events over a window at least as long.
fn optional_rate(path: &str, old: Option<Rate>, new: Option<Rate>, out: &mut Changes) {
    let show = |r: Option<Rate>| {
        r.map_or_else(
            || "(none)".into(),
            |r| format!("{}/{}", r.count, format_duration(r.per)),
        )
    };
    let detail = format!("{} → {}", show(old), show(new));
    match (old, new) {
        (None, None) => {}
        (Some(o), Some(n)) if o == n => {}
        (Some(o), Some(n)) => {
            out.ordered(path.into(), detail, n.count <= o.count && n.per >= o.per)
        }
        (None, Some(_)) => out.narrow(path, detail),
        (Some(_), None) => out.widen(path, detail),
    }
}

/// Elements keyed by identity; a key used more than once pairs the n-th
/// with the n-th.
pub(super) fn keyed<T>(items: &[T], key: impl Fn(&T) -> String) -> BTreeMap<(String, usize), &T> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut map = BTreeMap::new();
    for item in items {
        let k = key(item);
        let n = seen.entry(k.clone()).or_insert(0);
        map.insert((k, *n), item);
        *n += 1;
    }
    map
}

pub(super) fn label(key: &(String, usize)) -> String {
    if key.1 == 0 {
        key.0.clone()
    } else {
        format!("{}#{}", key.0, key.1 + 1)
    }
}

#[derive(Clone, Copy)]
pub(super) enum ConditionKind {
    /// Must hold for the action to be allowed (`when`): adding one narrows.
    Requirement,
    /// Triggers approval when it holds (`approval.when`); absent means
    /// always: removing one narrows.
    Trigger,
}

fn compare_forbid(old: &Manifest, new: &Manifest, out: &mut Changes) {
    let o: BTreeSet<&str> = old.forbid.iter().map(|f| f.name.as_str()).collect();
    let n: BTreeSet<&str> = new.forbid.iter().map(|f| f.name.as_str()).collect();
    for gone in o.difference(&n) {
        out.widen(
            format!("forbid[{gone}]"),
            format!("`{gone}` no longer forbidden"),
        );
    }
    for added in n.difference(&o) {
        out.narrow(
            format!("forbid[{added}]"),
            format!("`{added}` now forbidden"),
        );
    }
}

fn access_list(access: &[crate::manifest::Access]) -> String {
    access
        .iter()
        .map(|a| a.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn glob_list(globs: &[Glob]) -> String {
    globs
        .iter()
        .map(Glob::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

fn compare_data(old: &[DataGrant], new: &[DataGrant], out: &mut Changes) {
    let o = keyed(old, |d| d.resource.as_str().to_owned());
    let n = keyed(new, |d| d.resource.as_str().to_owned());
    // Data grants add up (any one covering a resource is enough), so a
    // removal always narrows.
    for (k, od) in &o {
        let path = format!("data[{}]", label(k));
        match n.get(k) {
            None => out.narrow(
                path,
                format!("data grant removed ({})", access_list(&od.access)),
            ),
            Some(nd) => {
                let added: Vec<_> = nd
                    .access
                    .iter()
                    .filter(|a| !od.access.contains(a))
                    .copied()
                    .collect();
                let removed: Vec<_> = od
                    .access
                    .iter()
                    .filter(|a| !nd.access.contains(a))
                    .copied()
                    .collect();
                if !added.is_empty() {
                    out.widen(
                        format!("{path}.access"),
                        format!("access added: {}", access_list(&added)),
                    );
                }
                if !removed.is_empty() {
                    out.narrow(
                        format!("{path}.access"),
                        format!("access removed: {}", access_list(&removed)),
                    );
                }
            }
        }
    }
    for (k, nd) in &n {
        if !o.contains_key(k) {
            out.widen(
                format!("data[{}]", label(k)),
                format!("new data grant: {}", access_list(&nd.access)),
            );
        }
    }
}

/// Whether every time `inner` allows is also allowed by `outer`.
fn window_within(inner: &Window, outer: &Window) -> bool {
    if inner == outer {
        return true;
    }
    let days = inner.days.iter().zip(&outer.days).all(|(i, o)| !i || *o);
    // Overnight windows (end before start) are compared only for equality.
    let plain = |w: &Window| w.start < w.end;
    days && plain(inner) && plain(outer) && inner.start >= outer.start && inner.end <= outer.end
}

fn compare_schedule(old: Option<&Schedule>, new: Option<&Schedule>, out: &mut Changes) {
    let windows = |s: &Schedule| {
        s.windows
            .iter()
            .map(|w| w.text.clone())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match (old, new) {
        (None, None) => {}
        (Some(o), None) => out.widen("schedule", format!("schedule removed ({})", windows(o))),
        (None, Some(n)) => out.narrow("schedule", format!("new schedule: {}", windows(n))),
        (Some(o), Some(n)) => {
            if o.timezone_name != n.timezone_name {
                out.widen(
                    "schedule.timezone",
                    format!("{} → {}", o.timezone_name, n.timezone_name),
                );
            }
            let same = o.windows.len() == n.windows.len()
                && o.windows.iter().zip(&n.windows).all(|(a, b)| a == b);
            if !same {
                let detail = format!("{} → {}", windows(o), windows(n));
                let within = n
                    .windows
                    .iter()
                    .all(|nw| o.windows.iter().any(|ow| window_within(nw, ow)));
                out.ordered("schedule.windows".into(), detail, within);
            }
        }
    }
}

fn budget_key(b: &Budget) -> String {
    format!("{}/{}", b.arg, format_duration(b.per))
}

fn compare_budgets(old: &[Budget], new: &[Budget], out: &mut Changes) {
    let o = keyed(old, budget_key);
    let n = keyed(new, budget_key);
    for (k, ob) in &o {
        let path = format!("limits.budgets[{}]", label(k));
        let Some(nb) = n.get(k) else {
            out.widen(path, format!("budget removed (max {})", ob.max));
            continue;
        };
        if nb.max != ob.max {
            out.ordered(
                format!("{path}.max"),
                format!("{} → {}", ob.max, nb.max),
                nb.max < ob.max,
            );
        }
        let approval = format!("{path}.approval");
        match (&ob.approval, &nb.approval) {
            (None, None) => {}
            // Past the maximum, what was denied may now be approved.
            (None, Some(_)) => out.widen(
                approval,
                "past the maximum, an action now asks for approval instead of being denied",
            ),
            (Some(_), None) => out.narrow(
                approval,
                "past the maximum, an action is now denied instead of asking for approval",
            ),
            (Some(o), Some(n)) => compare_approval(&approval, Some(o), Some(n), out),
        }
    }
    for (k, nb) in &n {
        if !o.contains_key(k) {
            out.narrow(
                format!("limits.budgets[{}]", label(k)),
                format!(
                    "new budget: at most {} per {}",
                    nb.max,
                    format_duration(nb.per)
                ),
            );
        }
    }
}

fn compare_delegation(old: &Manifest, new: &Manifest, out: &mut Changes) {
    let (o, n) = (&old.delegation, &new.delegation);
    for to in n.to.iter().filter(|t| !o.to.contains(t)) {
        out.widen(
            format!("delegation.to[{to}]"),
            format!("may delegate to `{to}`"),
        );
    }
    for to in o.to.iter().filter(|t| !n.to.contains(t)) {
        out.narrow(
            format!("delegation.to[{to}]"),
            format!("no longer delegates to `{to}`"),
        );
    }
    if o.max_depth != n.max_depth {
        out.ordered(
            "delegation.max_depth".into(),
            format!("{} → {}", o.max_depth, n.max_depth),
            n.max_depth < o.max_depth,
        );
    }
}

fn compare_elevations(old: &Manifest, new: &Manifest, out: &mut Changes) {
    let o = keyed(&old.elevation, |e| e.name.clone());
    let n = keyed(&new.elevation, |e| e.name.clone());
    for (k, oe) in &o {
        let path = format!("elevation[{}]", label(k));
        match n.get(k) {
            None => out.narrow(
                path,
                format!("elevation removed ({})", glob_list(&oe.tools)),
            ),
            Some(ne) => compare_elevation(&path, oe, ne, out),
        }
    }
    for (k, ne) in &n {
        if !o.contains_key(k) {
            out.widen(
                format!("elevation[{}]", label(k)),
                format!(
                    "new elevation: {} for up to {}",
                    glob_list(&ne.tools),
                    format_duration(ne.max_duration)
                ),
            );
        }
    }
}

fn compare_elevation(path: &str, old: &ElevationSpec, new: &ElevationSpec, out: &mut Changes) {
    let same_tools =
        old.tools.len() == new.tools.len() && old.tools.iter().all(|t| new.tools.contains(t));
    if !same_tools {
        let within = new
            .tools
            .iter()
            .all(|t| old.tools.iter().any(|o| t.is_within(o)));
        out.ordered(
            format!("{path}.tools"),
            format!("{} → {}", glob_list(&old.tools), glob_list(&new.tools)),
            within,
        );
    }
    if old.max_duration != new.max_duration {
        out.ordered(
            format!("{path}.max_duration"),
            format!(
                "{} → {}",
                format_duration(old.max_duration),
                format_duration(new.max_duration)
            ),
            new.max_duration < old.max_duration,
        );
    }
    approvers(
        &format!("{path}.approvers"),
        &old.approvers,
        &new.approvers,
        out,
    );
    // `auto_grant_when` grants without a human: adding or changing it widens.
    condition(
        &format!("{path}.auto_grant_when"),
        old.auto_grant_when.as_ref(),
        new.auto_grant_when.as_ref(),
        ConditionKind::Trigger,
        out,
    );
}
