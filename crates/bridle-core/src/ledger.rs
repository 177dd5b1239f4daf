//! Rate limits and rolling budgets need memory across decisions. The engine
//! only reads it ([`LedgerRead::check`]) and returns the [`Usage`] a decision
//! would add; the caller commits that usage ([`Usage::commit`]) once the
//! decision stands (a lost race for a single-use approval, say, charges
//! nothing). [`MemoryLedger`] keeps it in process (for `bridle check`, tests
//! and benches); the server also keeps it in the store so it survives a
//! restart.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use jiff::{SignedDuration, Timestamp};

use crate::id::AgentId;
use crate::manifest::Rate;

/// One budget that an action would draw on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spend {
    pub arg: String,
    pub amount: i64,
    pub max: i64,
    pub per: SignedDuration,
}

/// Which limit an action would break.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LimitHit {
    Rate {
        limit: Rate,
        used: u64,
    },
    Budget {
        arg: String,
        max: i64,
        per: SignedDuration,
        used: i64,
        amount: i64,
    },
}

/// What the engine may ask of a ledger: reading only.
pub trait LedgerRead {
    /// Whether one more action by `agent` at `now` stays within `rate` and
    /// every `spend`. Does not record anything.
    fn check(
        &self,
        agent: &AgentId,
        now: Timestamp,
        rate: Option<Rate>,
        spend: &[Spend],
    ) -> Option<LimitHit>;
}

/// A ledger that usage can be committed to.
pub trait Ledger: LedgerRead {
    /// Record one action (counted against `rate`) and its spend.
    fn record(&self, agent: &AgentId, now: Timestamp, rate: Option<Rate>, spend: &[Spend]);
}

/// What one decision adds to one agent's ledger: an action counted against
/// its rate limit (when it has one) and what it draws on each budget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charge {
    pub agent: AgentId,
    pub rate: Option<Rate>,
    pub spend: Vec<Spend>,
}

impl Charge {
    /// The charge as stored usage entries: `("", 1)` for the counted action,
    /// then `(argument, amount)` once per budgeted argument (several budgets
    /// may watch one argument over different windows; it is spent once).
    pub fn entries(&self) -> Vec<(String, i64)> {
        self.kept_entries()
            .into_iter()
            .map(|(arg, amount, _)| (arg, amount))
            .collect()
    }

    /// [`Self::entries`], each with how long it must be kept: the window of
    /// the rate limit, or the longest window of the budgets on its argument.
    pub fn kept_entries(&self) -> Vec<(String, i64, SignedDuration)> {
        let mut entries: Vec<(String, i64, SignedDuration)> = Vec::new();
        if let Some(rate) = self.rate {
            entries.push((String::new(), 1, rate.per));
        }
        for s in &self.spend {
            match entries.iter_mut().find(|(arg, _, _)| arg == &s.arg) {
                Some(e) => e.2 = e.2.max(s.per),
                None => entries.push((s.arg.clone(), s.amount, s.per)),
            }
        }
        entries
    }
}

/// What the store holds of one agent's usage within the windows its limits
/// look back over, read just before a decision: the actions counted against
/// its rate limit, and the amount spent on each budget (argument, window).
/// The store re-checks atomically when the usage is committed, so a
/// snapshot that is stale by a concurrent decision is caught there.
#[derive(Debug, Default, Clone)]
pub struct UsageSnapshot {
    agents: HashMap<AgentId, SnapshotEntry>,
}

#[derive(Debug, Default, Clone)]
struct SnapshotEntry {
    /// Actions within the rate limit's window.
    actions: u64,
    /// Amount spent per (argument, window).
    spent: Vec<(String, SignedDuration, i64)>,
}

impl UsageSnapshot {
    pub fn new() -> Self {
        Self::default()
    }

    /// `agent` made `actions` counted actions within its rate window.
    pub fn set_actions(&mut self, agent: &AgentId, actions: u64) {
        self.agents.entry(agent.clone()).or_default().actions = actions;
    }

    /// `agent` spent `used` on `arg` within the last `per`.
    pub fn set_spent(&mut self, agent: &AgentId, arg: &str, per: SignedDuration, used: i64) {
        self.agents
            .entry(agent.clone())
            .or_default()
            .spent
            .push((arg.to_owned(), per, used));
    }
}

/// Whether `used` actions in the window leave room for one more under
/// `limit`, and whether each `spend` fits its budget given what was spent:
/// the one rule both the in-process ledger and the store apply.
pub fn over_limit(
    rate: Option<(Rate, u64)>,
    spend: impl IntoIterator<Item = (Spend, i64)>,
) -> Option<LimitHit> {
    if let Some((limit, used)) = rate
        && used >= u64::from(limit.count)
    {
        return Some(LimitHit::Rate { limit, used });
    }
    for (s, used) in spend {
        if used.saturating_add(s.amount) > s.max {
            return Some(LimitHit::Budget {
                arg: s.arg,
                max: s.max,
                per: s.per,
                used,
                amount: s.amount,
            });
        }
    }
    None
}

impl LedgerRead for UsageSnapshot {
    fn check(
        &self,
        agent: &AgentId,
        _now: Timestamp,
        rate: Option<Rate>,
        spend: &[Spend],
    ) -> Option<LimitHit> {
        let entry = self.agents.get(agent);
        let actions = entry.map_or(0, |e| e.actions);
        let spent = |s: &Spend| {
            entry
                .and_then(|e| {
                    e.spent
                        .iter()
                        .find(|(arg, per, _)| *arg == s.arg && *per == s.per)
                })
                .map_or(0, |(_, _, used)| *used)
        };
        over_limit(
            rate.map(|r| (r, actions)),
            spend.iter().map(|s| (s.clone(), spent(s))),
        )
    }
}

/// The usage a decision would add, one [`Charge`] per agent of the chain,
/// at the decision's instant. Empty for a denial.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "usage counts only once committed"]
pub struct Usage {
    pub at: Timestamp,
    pub charges: Vec<Charge>,
}

impl Usage {
    pub fn none(at: Timestamp) -> Self {
        Self {
            at,
            charges: Vec::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.charges.is_empty()
    }

    /// Count this usage in `ledger`.
    pub fn commit(&self, ledger: &dyn Ledger) {
        for c in &self.charges {
            ledger.record(&c.agent, self.at, c.rate, &c.spend);
        }
    }
}

/// An in-process ledger. Keeps only what the longest window still needs.
#[derive(Debug, Default)]
pub struct MemoryLedger {
    state: Mutex<HashMap<AgentId, AgentUsage>>,
}

#[derive(Debug, Default)]
struct AgentUsage {
    actions: VecDeque<Timestamp>,
    spend: HashMap<String, VecDeque<(Timestamp, i64)>>,
}

impl MemoryLedger {
    pub fn new() -> Self {
        Self::default()
    }

    /// Load one stored usage event (at start-up): `arg` empty for an action
    /// counted against the rate limit, else a spend on that argument.
    pub fn replay(&self, agent: &str, at_ms: i64, arg: &str, amount: i64) {
        let (Ok(agent), Ok(at)) = (agent.parse::<AgentId>(), Timestamp::from_millisecond(at_ms))
        else {
            return;
        };
        // Budgets count non-negative amounts only; a negative one stored by
        // an older version is not a refund.
        if !arg.is_empty() && amount < 0 {
            return;
        }
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let usage = state.entry(agent).or_default();
        if arg.is_empty() {
            usage.actions.push_back(at);
        } else {
            usage
                .spend
                .entry(arg.to_owned())
                .or_default()
                .push_back((at, amount));
        }
    }
}

fn since(now: Timestamp, per: SignedDuration) -> Timestamp {
    now.checked_sub(per).unwrap_or(Timestamp::MIN)
}

impl LedgerRead for MemoryLedger {
    fn check(
        &self,
        agent: &AgentId,
        now: Timestamp,
        rate: Option<Rate>,
        spend: &[Spend],
    ) -> Option<LimitHit> {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let usage = state.get(agent);
        let actions = rate.map(|limit| {
            let from = since(now, limit.per);
            let used = usage.map_or(0, |u| {
                u.actions.iter().filter(|t| **t > from).count() as u64
            });
            (limit, used)
        });
        let spent = spend.iter().map(|s| {
            let from = since(now, s.per);
            let used: i64 = usage.and_then(|u| u.spend.get(&s.arg)).map_or(0, |q| {
                q.iter()
                    .filter(|(t, _)| *t > from)
                    .fold(0, |sum, (_, a)| sum.saturating_add(*a))
            });
            (s.clone(), used)
        });
        over_limit(actions, spent)
    }
}

impl Ledger for MemoryLedger {
    fn record(&self, agent: &AgentId, now: Timestamp, rate: Option<Rate>, spend: &[Spend]) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let usage = state.entry(agent.clone()).or_default();
        if let Some(limit) = rate {
            let from = since(now, limit.per);
            while usage.actions.front().is_some_and(|t| *t <= from) {
                usage.actions.pop_front();
            }
            usage.actions.push_back(now);
        }
        // Several budgets may watch one argument over different windows: the
        // amount is recorded once and kept as long as the longest window.
        let mut by_arg: HashMap<&str, (i64, SignedDuration)> = HashMap::new();
        for s in spend {
            let e = by_arg.entry(&s.arg).or_insert((s.amount, s.per));
            e.1 = e.1.max(s.per);
        }
        for (arg, (amount, per)) in by_arg {
            let q = usage.spend.entry(arg.to_owned()).or_default();
            let from = since(now, per);
            while q.front().is_some_and(|(t, _)| *t <= from) {
                q.pop_front();
            }
            q.push_back((now, amount));
        }
    }
}
