//! What agents actually do: decisions tallied per hour, action, effect and
//! reason, with the argument values seen in allowed uses, and the usage
//! report that attributes them to the grants of a manifest (what is used,
//! how, and what is never used).
//!
//! The store keeps [`Tally`] rows, folded from each decision's audit record
//! in the transaction that appends it ([`observe`], [`Tally::absorb`]); this
//! module reads them back as a [`UsageReport`] ([`report`]). Pure.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::audit::EventBody;
use crate::decision::Effect;
use crate::manifest::{ArgValue, Manifest};

/// Most distinct values kept per argument; beyond it only `more` is set.
pub const MAX_VALUES: usize = 32;
/// Longest string value kept (longer ones are seen, not kept).
pub const MAX_VALUE_LEN: usize = 200;
/// The reason recorded for a decision event without reasons: an
/// enforcement point refused the request before it could be decided.
pub const REFUSED: &str = "refused";

/// What was seen of one argument across allowed uses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArgSeen {
    /// Smallest and largest number seen (non-integers rounded outwards).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<i64>,
    /// Distinct scalar values seen, in order, at most [`MAX_VALUES`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<ArgValue>,
    /// More distinct values (or longer ones, or objects and lists) were
    /// seen than are kept: `values` is not the whole set.
    #[serde(default, skip_serializing_if = "is_false")]
    pub more: bool,
    /// The values are sensitive and were recorded only as keyed hashes.
    #[serde(default, skip_serializing_if = "is_false")]
    pub redacted: bool,
}

// Serde's `skip_serializing_if` passes a reference.
#[expect(clippy::trivially_copy_pass_by_ref, reason = "serde's signature")]
fn is_false(b: &bool) -> bool {
    !*b
}

impl ArgSeen {
    fn see(&mut self, v: &Value) {
        match v {
            Value::String(s) if s.starts_with("hmac-sha256:") => self.redacted = true,
            Value::String(s) if s.len() <= MAX_VALUE_LEN => self.keep(ArgValue::Str(s.clone())),
            Value::Bool(b) => self.keep(ArgValue::Bool(*b)),
            Value::Number(n) => {
                let (lo, hi) = match n.as_i64() {
                    Some(i) => (i, i),
                    None => {
                        let f = n.as_f64().unwrap_or(0.0);
                        (saturate(f.floor()), saturate(f.ceil()))
                    }
                };
                self.min = Some(self.min.map_or(lo, |m| m.min(lo)));
                self.max = Some(self.max.map_or(hi, |m| m.max(hi)));
                if let Some(i) = n.as_i64() {
                    self.keep(ArgValue::Int(i));
                } else {
                    self.more = true;
                }
            }
            _ => self.more = true,
        }
    }

    fn keep(&mut self, v: ArgValue) {
        if self.values.contains(&v) {
            return;
        }
        if self.values.len() < MAX_VALUES {
            self.values.push(v);
        } else {
            self.more = true;
        }
    }

    /// The values in a stable order: booleans, then integers by value,
    /// then strings.
    pub fn sort(&mut self) {
        self.values.sort_by(|a, b| match (a, b) {
            (ArgValue::Bool(x), ArgValue::Bool(y)) => x.cmp(y),
            (ArgValue::Int(x), ArgValue::Int(y)) => x.cmp(y),
            (ArgValue::Str(x), ArgValue::Str(y)) => x.cmp(y),
            _ => rank(a).cmp(&rank(b)),
        });
    }

    /// What both saw.
    pub fn merge(&mut self, other: &ArgSeen) {
        self.min = match (self.min, other.min) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.max = match (self.max, other.max) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        for v in &other.values {
            self.keep(v.clone());
        }
        self.more |= other.more;
        self.redacted |= other.redacted;
    }
}

fn rank(v: &ArgValue) -> u8 {
    match v {
        ArgValue::Bool(_) => 0,
        ArgValue::Int(_) => 1,
        ArgValue::Str(_) => 2,
    }
}

#[expect(
    clippy::cast_possible_truncation,
    reason = "an `as` cast from f64 saturates at the i64 bounds, which is wanted"
)]
fn saturate(f: f64) -> i64 {
    f as i64
}

/// The arguments of the allowed uses of one action, by name.
pub type ArgsSeen = BTreeMap<String, ArgSeen>;

/// Where a decision is tallied: the agent, the hour (Unix seconds / 3600)
/// and what was decided.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TallyKey {
    pub agent: String,
    pub hour: i64,
    pub action: String,
    pub effect: Effect,
    /// The decision's first reason code, or [`REFUSED`].
    pub reason: String,
}

/// The decisions of one [`TallyKey`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tally {
    pub uses: i64,
    pub last_at: Timestamp,
    /// Seen in allowed uses only (what the agent did, not what it tried).
    pub args: ArgsSeen,
}

impl Tally {
    /// Adds what `other` tallied.
    pub fn absorb(&mut self, other: &Tally) {
        self.uses = self.uses.saturating_add(other.uses);
        self.last_at = self.last_at.max(other.last_at);
        for (name, seen) in &other.args {
            self.args.entry(name.clone()).or_default().merge(seen);
        }
    }
}

/// The tally of one decision's audit record; `None` for any other event
/// (and for a decision without an agent or action).
pub fn observe(event: &EventBody) -> Option<(TallyKey, Tally)> {
    if event.kind != crate::audit::EventType::Decision {
        return None;
    }
    let effect = event.decision?;
    let key = TallyKey {
        agent: event.agent.clone()?,
        hour: event.time.as_second().div_euclid(3600),
        action: event.action.clone()?,
        effect,
        reason: event
            .reasons
            .as_ref()
            .and_then(|r| r.first())
            .map_or(REFUSED, |r| r.code.as_str())
            .to_owned(),
    };
    let mut args = ArgsSeen::new();
    if effect == Effect::Allow
        && let Some(Value::Object(given)) = &event.args
    {
        for (name, v) in given {
            args.entry(name.clone()).or_default().see(v);
        }
    }
    Some((
        key,
        Tally {
            uses: 1,
            last_at: event.time,
            args,
        },
    ))
}

/// One action's decisions over a window, as the store sums them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionActivity {
    pub action: String,
    pub effect: Effect,
    pub reason: String,
    pub uses: i64,
    pub last_at: Timestamp,
    pub args: ArgsSeen,
}

/// What an agent did with one grant of its manifest over a window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GrantUsage {
    /// The grant as written (`tools[].name`: a name or a glob).
    pub grant: String,
    /// Where it is in the manifest: `tools[2]`, `elevation[0]`.
    pub path: String,
    /// Decisions for actions this grant covers.
    pub uses: i64,
    pub allowed: i64,
    pub denied: i64,
    /// Decisions that asked for a human approval.
    pub approvals: i64,
    pub last_used: Option<Timestamp>,
    /// The actions used under it, with how often each was allowed.
    pub actions: BTreeMap<String, i64>,
    /// Decisions by reason code.
    pub reasons: BTreeMap<String, i64>,
    /// The arguments of allowed uses.
    pub args: ArgsSeen,
}

/// Decisions for an action no grant of the manifest covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ungranted {
    pub action: String,
    pub uses: i64,
    pub allowed: i64,
    pub denied: i64,
    pub last_used: Timestamp,
    pub reasons: BTreeMap<String, i64>,
}

/// Usage of one agent's manifest over a window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UsageReport {
    /// One entry per tool grant, then per elevation, in manifest order.
    pub tools: Vec<GrantUsage>,
    /// Paths of the grants nothing was allowed under in the window.
    pub unused: Vec<String>,
    /// Actions no grant covers (tried, or allowed by a version since
    /// narrowed).
    pub ungranted: Vec<Ungranted>,
    /// The last decision of the window, if any.
    pub last_activity: Option<Timestamp>,
}

/// The grant of `m` an action is used under: the most specific tool grant
/// naming it, else the first elevation that lists it.
pub fn grant_of(m: &Manifest, action: &str) -> Option<usize> {
    let tool = m
        .tools
        .iter()
        .enumerate()
        .filter(|(_, t)| t.name.matches(action))
        .max_by_key(|(i, t)| (t.name.specificity(), std::cmp::Reverse(*i)))
        .map(|(i, _)| i);
    tool.or_else(|| {
        m.elevation
            .iter()
            .position(|e| e.tools.iter().any(|g| g.matches(action)))
            .map(|j| m.tools.len() + j)
    })
}

/// Attributes `activity` to the grants of `m`.
pub fn report(m: &Manifest, activity: &[ActionActivity]) -> UsageReport {
    let mut tools: Vec<GrantUsage> = m
        .tools
        .iter()
        .enumerate()
        .map(|(i, t)| empty_grant(t.name.as_str(), format!("tools[{i}]")))
        .chain(
            m.elevation
                .iter()
                .enumerate()
                .map(|(j, e)| empty_grant(&e.name, format!("elevation[{j}]"))),
        )
        .collect();
    let mut ungranted: BTreeMap<String, Ungranted> = BTreeMap::new();
    let mut last_activity: Option<Timestamp> = None;
    for a in activity {
        last_activity = Some(last_activity.map_or(a.last_at, |t| t.max(a.last_at)));
        let allowed = if a.effect == Effect::Allow { a.uses } else { 0 };
        let denied = if a.effect == Effect::Deny { a.uses } else { 0 };
        match grant_of(m, &a.action).and_then(|g| tools.get_mut(g)) {
            Some(g) => {
                g.uses += a.uses;
                g.allowed += allowed;
                g.denied += denied;
                if a.effect == Effect::ApprovalRequired {
                    g.approvals += a.uses;
                }
                g.last_used = Some(g.last_used.map_or(a.last_at, |t| t.max(a.last_at)));
                *g.reasons.entry(a.reason.clone()).or_default() += a.uses;
                if allowed > 0 {
                    *g.actions.entry(a.action.clone()).or_default() += allowed;
                }
                for (name, seen) in &a.args {
                    g.args.entry(name.clone()).or_default().merge(seen);
                }
            }
            None => {
                let u = ungranted
                    .entry(a.action.clone())
                    .or_insert_with(|| Ungranted {
                        action: a.action.clone(),
                        uses: 0,
                        allowed: 0,
                        denied: 0,
                        last_used: a.last_at,
                        reasons: BTreeMap::new(),
                    });
                u.uses += a.uses;
                u.allowed += allowed;
                u.denied += denied;
                u.last_used = u.last_used.max(a.last_at);
                *u.reasons.entry(a.reason.clone()).or_default() += a.uses;
            }
        }
    }
    for g in &mut tools {
        g.args.values_mut().for_each(ArgSeen::sort);
    }
    let unused = tools
        .iter()
        .filter(|g| g.allowed == 0)
        .map(|g| g.path.clone())
        .collect();
    UsageReport {
        tools,
        unused,
        ungranted: ungranted.into_values().collect(),
        last_activity,
    }
}

fn empty_grant(grant: &str, path: String) -> GrantUsage {
    GrantUsage {
        grant: grant.to_owned(),
        path,
        uses: 0,
        allowed: 0,
        denied: 0,
        approvals: 0,
        last_used: None,
        actions: BTreeMap::new(),
        reasons: BTreeMap::new(),
        args: ArgsSeen::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_give_a_range_and_strings_a_bounded_set() {
        let mut seen = ArgSeen::default();
        for v in [
            json!(5),
            json!(-2),
            json!(7.5),
            json!("acme"),
            json!("acme"),
        ] {
            seen.see(&v);
        }
        assert_eq!((seen.min, seen.max), (Some(-2), Some(8)));
        assert_eq!(
            seen.values,
            vec![
                ArgValue::Int(5),
                ArgValue::Int(-2),
                ArgValue::Str("acme".into())
            ]
        );
        assert!(seen.more, "a non-integer is not kept as a value");
        let mut many = ArgSeen::default();
        for i in 0..100 {
            many.see(&json!(format!("v{i}")));
        }
        assert_eq!(many.values.len(), MAX_VALUES);
        assert!(many.more);
        let mut secret = ArgSeen::default();
        secret.see(&json!("hmac-sha256:00ff"));
        assert!(secret.redacted && secret.values.is_empty());
    }

    #[test]
    fn merging_keeps_the_widest_range_and_the_union() {
        let mut a = ArgSeen {
            min: Some(3),
            max: Some(9),
            values: vec![ArgValue::Str("x".into())],
            ..ArgSeen::default()
        };
        let b = ArgSeen {
            min: Some(1),
            max: Some(4),
            values: vec![ArgValue::Str("y".into()), ArgValue::Str("x".into())],
            redacted: true,
            ..ArgSeen::default()
        };
        a.merge(&b);
        assert_eq!((a.min, a.max), (Some(1), Some(9)));
        assert_eq!(a.values.len(), 2);
        assert!(a.redacted && !a.more);
    }
}
