//! Usage behind rate limits and budgets, decided in the store.
//!
//! Usage is kept as counters: per agent and argument (`""` for the actions
//! a rate limit counts), one row per bucket of a second, a minute, an hour
//! and a day, all four upserted together when a charge is recorded. A
//! window sums its whole days, then the whole hours, minutes and seconds at
//! its two edges ([`slots_from`]): at most eight index ranges and a few
//! hundred rows for any window length, however many decisions it saw. The
//! oldest second of a window is counted whole (a window of `per` counts up
//! to a second more, never less), and a manifest that changes a window's
//! length is counted right at once, since every bucket size is always kept.
//!
//! Before a decision, [`UsageStore::usage_snapshot`] reads what the chain's
//! agents used within their windows (the engine decides against it). When
//! the decision's usage is committed, it is checked again and recorded in
//! the audit writer's transaction ([`charge!`], through
//! [`crate::AuditLog::append_charged`]), which holds the store's write lock
//! (SQLite) or the audit head's row lock (PostgreSQL): every charge of every
//! replica is checked and recorded one at a time, in the same durable unit
//! as its decision's audit record. So limits hold with any number of
//! replicas, across restarts and for any window length, and a charge costs
//! no transaction of its own.

use bridle_core::id::AgentId;
use std::collections::HashMap;

use bridle_core::ledger::{Charge, LimitHit, Usage, UsageSnapshot, over_limit};
use bridle_core::manifest::Rate;
use jiff::{SignedDuration, Timestamp};
use sqlx::Row;

use crate::{Store, StoreError, with_pool};

/// One agent's limits, as a decision needs them read.
#[derive(Debug, Clone)]
pub struct LimitNeed<'a> {
    pub agent: &'a AgentId,
    pub rate: Option<Rate>,
    /// Each budget's (argument, window).
    pub budgets: Vec<(&'a str, SignedDuration)>,
}

/// The bucket sizes counters are kept in, in seconds, largest first. Each
/// divides the one before, so a range of whole buckets of one size ends on
/// a bucket boundary of every smaller size.
pub(crate) const TIERS: [i64; 4] = [86_400, 3_600, 60, 1];

/// Bucket ranges `(lo, hi)`, inclusive, that together cover a window: two
/// per tier of [`TIERS`], in that order (an unused one is `(1, 0)`, which
/// matches nothing). The SQL that sums them has a fixed shape.
pub(crate) type Slots = [(i64, i64); 2 * TIERS.len()];

/// The last second a window covers: none is ever recorded after it.
pub(crate) const OPEN_END: i64 = i64::MAX / 4;

#[cfg(test)]
fn window_slots(now: Timestamp, per: SignedDuration) -> Slots {
    slots_from(window_start(now, per))
}

/// The second a window of `per` ending at `now` starts in (counted whole).
pub(crate) fn window_start(now: Timestamp, per: SignedDuration) -> i64 {
    now.checked_sub(per)
        .unwrap_or(Timestamp::MIN)
        .as_millisecond()
        .div_euclid(1000)
}

/// The bucket ranges covering the window that starts in second `from`
/// ([`window_start`]) and has no end. Whole buckets of the largest size
/// that fits come first, then the edges left over on each side in smaller
/// ones.
pub(crate) fn slots_from(from: i64) -> Slots {
    let mut slots: Slots = [(1, 0); 2 * TIERS.len()];
    // Seconds still to cover, inclusive: the window, then its edges. Once
    // split, the left edge ends and the right edge starts on a boundary of
    // every smaller size, so there are never more than two.
    //
    // The window has no end: usage recorded after `now` counts too. A
    // decision committed after another replica's later one (their clocks,
    // or the order the writers took the lock in) must still see it.
    let mut pieces = vec![(from, OPEN_END)];
    for (i, tier) in TIERS.iter().enumerate() {
        let mut rest = Vec::with_capacity(2);
        for (k, &(a, b)) in pieces.iter().enumerate() {
            let lo = a.div_euclid(*tier) + i64::from(a.rem_euclid(*tier) != 0);
            let hi = (b + 1).div_euclid(*tier) - 1;
            match slots.get_mut(2 * i + k) {
                Some(slot) if lo <= hi => *slot = (lo, hi),
                _ => {
                    rest.push((a, b));
                    continue;
                }
            }
            if a < lo * tier {
                rest.push((a, lo * tier - 1));
            }
            if (hi + 1) * tier <= b {
                rest.push(((hi + 1) * tier, b));
            }
        }
        pieces = rest;
    }
    slots
}

/// One window to sum: what `agent` used of `arg` (`""`: counted actions)
/// from second `from` on ([`window_start`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Window<'a> {
    pub agent: &'a AgentId,
    pub arg: &'a str,
    pub from: i64,
}

/// The statement summing `n` windows, one column each (`n0`, `n1`, …): per
/// window, one sum per slot of [`Slots`], each an index range on the
/// primary key (agent, argument, tier, then bucket). Its text depends on
/// `n` alone, so it is prepared once per shape.
pub(crate) fn used_within_sql(n: usize) -> String {
    use std::fmt::Write as _;
    let per_window = 2 + 2 * 2 * TIERS.len();
    let mut sql = String::with_capacity(n * 1200 + 16);
    sql.push_str("SELECT ");
    for w in 0..n {
        let p = w * per_window;
        if w > 0 {
            sql.push_str(", ");
        }
        sql.push_str("CAST(");
        for (slot, tier) in TIERS.iter().flat_map(|t| [t, t]).enumerate() {
            if slot > 0 {
                sql.push_str(" + ");
            }
            let lo = p + 3 + 2 * slot;
            let _ = write!(
                sql,
                "COALESCE((SELECT SUM(amount) FROM usage_counters WHERE agent_id = ${} \
                 AND arg = ${} AND tier = {tier} AND bucket BETWEEN ${lo} AND ${}), 0)",
                p + 1,
                p + 2,
                lo + 1
            );
        }
        let _ = write!(sql, " AS BIGINT) AS n{w}");
    }
    sql
}

/// What each of `$windows` (a slice of [`Window`]) used, in order, on
/// transaction or connection `$ex`: one statement.
macro_rules! used_within {
    ($ex:expr, $windows:expr) => {{
        let windows: &[$crate::usage::Window<'_>] = $windows;
        let mut used = Vec::with_capacity(windows.len());
        if !windows.is_empty() {
            let sql = $crate::usage::used_within_sql(windows.len());
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for w in windows {
                q = q.bind(w.agent.clone()).bind(w.arg);
                for (lo, hi) in $crate::usage::slots_from(w.from) {
                    q = q.bind(lo).bind(hi);
                }
            }
            let row = q.fetch_one($ex).await?;
            for i in 0..windows.len() {
                used.push(row.try_get::<i64, _>(i)?);
            }
        }
        Ok::<_, $crate::StoreError>(used)
    }};
}

/// The windows a charge made at `at` is checked against: its rate's, then
/// each budget's.
pub(crate) fn charge_windows(c: &Charge, at: Timestamp) -> Vec<Window<'_>> {
    let rate = c.rate.map(|r| Window {
        agent: &c.agent,
        arg: "",
        from: window_start(at, r.per),
    });
    rate.into_iter()
        .chain(c.spend.iter().map(|s| Window {
            agent: &c.agent,
            arg: &s.arg,
            from: window_start(at, s.per),
        }))
        .collect()
}

/// The distinct windows the usages of a batch are checked against (each
/// read once), and for each usage the index of each of its windows, in
/// the order of [`charge_windows`] over its charges.
pub(crate) fn batch_windows<'a>(
    usages: &[Option<&'a Usage>],
) -> (Vec<Window<'a>>, Vec<Vec<usize>>) {
    let mut windows: Vec<Window<'a>> = Vec::new();
    let mut seen: HashMap<Window<'a>, usize> = HashMap::new();
    let index = usages
        .iter()
        .map(|u| {
            u.iter()
                .flat_map(|u| u.charges.iter().flat_map(|c| charge_windows(c, u.at)))
                .map(|w| {
                    *seen.entry(w).or_insert_with(|| {
                        windows.push(w);
                        windows.len() - 1
                    })
                })
                .collect()
        })
        .collect();
    (windows, index)
}

/// The usages of one batch (in the order their decisions are written),
/// each checked against what the store held (`stored`, per window of
/// [`batch_windows`]) plus what the batch's usages before it that fit
/// added: for each, the first limit it would break (`None` when it fits, or
/// has no usage), and the counter increments of those that fit, merged by
/// counter so one statement can upsert them.
pub(crate) fn settle<'a>(
    usages: &[Option<&'a Usage>],
    windows: &[Window<'a>],
    index: &[Vec<usize>],
    stored: &[i64],
) -> (Vec<Option<(AgentId, LimitHit)>>, Vec<Increment<'a>>) {
    // What the fitting usages added: (agent, argument, second, amount).
    let mut added: Vec<(&AgentId, String, i64, i64)> = Vec::new();
    let mut outcomes = Vec::with_capacity(usages.len());
    let mut rows: Vec<Increment<'a>> = Vec::new();
    let mut row_at: HashMap<(&'a AgentId, String, i64, i64), usize> = HashMap::new();
    for (usage, idx) in usages.iter().zip(index) {
        let Some(usage) = usage else {
            outcomes.push(None);
            continue;
        };
        let used = |i: &usize| -> i64 {
            let Some(w) = windows.get(*i) else { return 0 };
            let earlier = added
                .iter()
                .filter(|(a, arg, sec, _)| *a == w.agent && *arg == w.arg && *sec >= w.from)
                .fold(0_i64, |n, (_, _, _, amount)| n.saturating_add(*amount));
            stored.get(*i).copied().unwrap_or(0).saturating_add(earlier)
        };
        let mut used = idx.iter().map(used);
        let hit = usage.charges.iter().find_map(|c| {
            let rate = c
                .rate
                .map(|r| (r, u64::try_from(used.next().unwrap_or(0)).unwrap_or(0)));
            let spent: Vec<_> = c
                .spend
                .iter()
                .map(|s| (s.clone(), used.next().unwrap_or(0)))
                .collect();
            over_limit(rate, spent).map(|hit| (c.agent.clone(), hit))
        });
        if hit.is_some() {
            outcomes.push(hit);
            continue;
        }
        outcomes.push(None);
        let second = usage.at.as_millisecond().div_euclid(1000);
        for c in &usage.charges {
            let entries = c.kept_entries();
            for row in counter_rows(usage.at, &entries) {
                if row.tier == 1 {
                    added.push((&c.agent, row.arg.to_owned(), second, row.amount));
                }
                let key = (&c.agent, row.arg.to_owned(), row.tier, row.bucket);
                match row_at.get(&key).and_then(|i| rows.get_mut(*i)) {
                    Some(r) => {
                        r.amount = r.amount.saturating_add(row.amount);
                        r.keep_until_ms = r.keep_until_ms.max(row.keep_until_ms);
                    }
                    None => {
                        row_at.insert(key, rows.len());
                        rows.push(Increment {
                            agent: &c.agent,
                            arg: row.arg.to_owned(),
                            tier: row.tier,
                            bucket: row.bucket,
                            amount: row.amount,
                            keep_until_ms: row.keep_until_ms,
                        });
                    }
                }
            }
        }
    }
    (outcomes, rows)
}

/// One counter's increment from a batch (the sum of its usages' charges in
/// that bucket; a statement may upsert each counter once).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Increment<'a> {
    pub agent: &'a AgentId,
    pub arg: String,
    pub tier: i64,
    pub bucket: i64,
    pub amount: i64,
    pub keep_until_ms: i64,
}

/// Windows read per statement, and counters upserted per statement (well
/// under both backends' limits on bound parameters).
pub(crate) const WINDOWS_PER_READ: usize = 64;
pub(crate) const COUNTERS_PER_UPSERT: usize = 1_000;

/// Check the usages of a batch (`$usages`: `&[Option<&Usage>]`, in the
/// order their decisions are written) and record those that fit, inside
/// the write transaction `$tx`: every window of the batch read at once,
/// every counter upserted at once ([`settle`]). Evaluates to one outcome
/// per usage: `None` recorded (or none to record), `Some((agent, hit))` the
/// first limit it would break (nothing of it recorded).
macro_rules! charge_batch {
    ($tx:expr, $usages:expr) => {
        async {
            let usages: &[Option<&bridle_core::ledger::Usage>] = $usages;
            let (windows, index) = $crate::usage::batch_windows(usages);
            let mut stored = Vec::with_capacity(windows.len());
            for chunk in windows.chunks($crate::usage::WINDOWS_PER_READ) {
                stored.extend($crate::usage::used_within!(&mut *$tx, chunk)?);
            }
            let (outcomes, rows) = $crate::usage::settle(usages, &windows, &index, &stored);
            for chunk in rows.chunks($crate::usage::COUNTERS_PER_UPSERT) {
                let mut q = sqlx::QueryBuilder::new(
                    "INSERT INTO usage_counters (agent_id, arg, tier, bucket, amount, keep_until_ms) ",
                );
                q.push_values(chunk, |mut b, row| {
                    b.push_bind(row.agent.clone())
                        .push_bind(row.arg.clone())
                        .push_bind(row.tier)
                        .push_bind(row.bucket)
                        .push_bind(row.amount)
                        .push_bind(row.keep_until_ms);
                });
                q.push($crate::usage::UPSERT_SQL);
                q.build().execute(&mut *$tx).await?;
            }
            Ok::<_, $crate::StoreError>(outcomes)
        }
    };
}
pub(crate) use {charge_batch, used_within};

/// How a counter row already there takes a charge: amounts add (saturating
/// at the largest integer), the row is kept as long as the longest need.
pub(crate) const UPSERT_SQL: &str = " ON CONFLICT (agent_id, arg, tier, bucket) DO UPDATE SET \
     amount = CASE WHEN usage_counters.amount > 9223372036854775807 - excluded.amount \
         THEN 9223372036854775807 ELSE usage_counters.amount + excluded.amount END, \
     keep_until_ms = CASE WHEN excluded.keep_until_ms > usage_counters.keep_until_ms \
         THEN excluded.keep_until_ms ELSE usage_counters.keep_until_ms END";

/// One counter increment: a charge entry in one bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CounterRow<'a> {
    pub arg: &'a str,
    pub tier: i64,
    pub bucket: i64,
    pub amount: i64,
    pub keep_until_ms: i64,
}

/// The counter increments of a charge's entries `(argument, amount, kept
/// for)` at `now`: each entry in the bucket of every size holding `now`.
/// A bucket is read only while it lies wholly inside a window, so it need
/// be kept no longer than an entry in it. Negative amounts are no refund.
pub(crate) fn counter_rows(
    now: Timestamp,
    entries: &[(String, i64, SignedDuration)],
) -> Vec<CounterRow<'_>> {
    let second = now.as_millisecond().div_euclid(1000);
    let mut rows = Vec::with_capacity(entries.len() * TIERS.len());
    for (arg, amount, keep) in entries {
        let keep_until_ms = now
            .checked_add(*keep)
            .unwrap_or(Timestamp::MAX)
            .as_millisecond();
        for tier in TIERS {
            rows.push(CounterRow {
                arg,
                tier,
                bucket: second.div_euclid(tier),
                amount: (*amount).max(0),
                keep_until_ms,
            });
        }
    }
    rows
}

#[expect(
    async_fn_in_trait,
    reason = "implemented by `Store` alone and called on it directly, so its futures' `Send` is known"
)]
pub trait UsageStore {
    /// What each agent used within the windows of its limits, at `now`.
    async fn usage_snapshot(
        &self,
        needs: &[LimitNeed<'_>],
        now: Timestamp,
    ) -> Result<UsageSnapshot, StoreError>;
    /// Drop usage no window counts any more; returns how many counter rows.
    async fn purge_usage(&self, now: Timestamp) -> Result<u64, StoreError>;
}

impl UsageStore for Store {
    async fn usage_snapshot(
        &self,
        needs: &[LimitNeed<'_>],
        now: Timestamp,
    ) -> Result<UsageSnapshot, StoreError> {
        let mut snapshot = UsageSnapshot::new();
        let mut windows = Vec::new();
        for need in needs {
            if let Some(r) = need.rate {
                windows.push((
                    Window {
                        agent: need.agent,
                        arg: "",
                        from: window_start(now, r.per),
                    },
                    r.per,
                ));
            }
            for (arg, per) in &need.budgets {
                windows.push((
                    Window {
                        agent: need.agent,
                        arg,
                        from: window_start(now, *per),
                    },
                    *per,
                ));
            }
        }
        if windows.is_empty() {
            return Ok(snapshot);
        }
        let read: Vec<Window<'_>> = windows.iter().map(|(w, _)| *w).collect();
        let used = with_pool!(self, |pool| used_within!(pool, &read))?;
        for ((w, per), used) in windows.iter().zip(used) {
            if w.arg.is_empty() {
                snapshot.set_actions(w.agent, u64::try_from(used).unwrap_or(0));
            } else {
                snapshot.set_spent(w.agent, w.arg, *per, used);
            }
        }
        Ok(snapshot)
    }

    async fn purge_usage(&self, now: Timestamp) -> Result<u64, StoreError> {
        with_pool!(self, |pool| {
            Ok(
                sqlx::query("DELETE FROM usage_counters WHERE keep_until_ms < $1")
                    .bind(now.as_millisecond())
                    .execute(pool)
                    .await?
                    .rows_affected(),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    /// Every second from the window's start on is covered exactly once,
    /// by buckets wholly inside it, and none before it: checked for
    /// windows of many lengths and alignments.
    #[test]
    fn slots_cover_each_second_of_the_window_once() {
        let nows = [
            "2026-12-01T22:47:13.250Z",
            "2026-12-01T00:00:00Z",
            "2026-12-01T23:59:59.999Z",
            "2026-12-02T00:59:00Z",
        ];
        let pers = [
            0, 1, 59, 60, 61, 3_599, 3_600, 3_601, 7_322, 86_399, 86_400, 90_061, 200_000,
        ];
        for now in nows {
            let now = at(now);
            for per_s in pers {
                let per = SignedDuration::from_secs(per_s);
                let first = (now - per).as_millisecond().div_euclid(1000);
                let mut spans: Vec<(i64, i64)> = window_slots(now, per)
                    .iter()
                    .enumerate()
                    .filter(|(_, (lo, hi))| lo <= hi)
                    .map(|(i, (lo, hi))| {
                        let tier = TIERS[i / 2];
                        (
                            lo * tier,
                            hi.saturating_add(1).saturating_mul(tier).saturating_sub(1),
                        )
                    })
                    .collect();
                spans.sort_unstable();
                assert_eq!(
                    spans[0].0, first,
                    "now {now}, per {per_s}s: starts elsewhere"
                );
                for pair in spans.windows(2) {
                    assert_eq!(
                        pair[1].0,
                        pair[0].1 + 1,
                        "now {now}, per {per_s}s: {spans:?}"
                    );
                }
                assert!(
                    spans.last().unwrap().1 >= OPEN_END,
                    "now {now}, per {per_s}s: ends"
                );
            }
        }
    }

    /// Usage recorded in a later second than `now` (a replica ahead, or a
    /// writer that took the lock first) is counted.
    #[test]
    fn the_window_has_no_end() {
        let now = at("2026-12-01T22:47:13.250Z");
        let later = (now.as_millisecond() / 1000) + 5;
        let slots = window_slots(now, SignedDuration::from_mins(1));
        assert!(
            slots
                .iter()
                .enumerate()
                .any(|(i, (lo, hi))| (*lo..=*hi).contains(&later.div_euclid(TIERS[i / 2])))
        );
    }

    /// A 30-day window reads a few hundred buckets, not one per decision.
    #[test]
    fn a_long_window_reads_few_buckets() {
        let slots = window_slots(
            at("2026-12-01T22:47:13.250Z"),
            SignedDuration::from_hours(30 * 24),
        );
        // Past the current day, buckets are future days, which hold nothing.
        let near: i64 = slots
            .iter()
            .enumerate()
            .filter(|(i, _)| TIERS[i / 2] < 86_400)
            .map(|(_, (lo, hi))| (hi - lo + 1).max(0))
            .sum();
        assert!(near <= 2 * (23 + 59 + 59) + 1, "{near} buckets");
    }

    /// A charge lands in the bucket of every size holding its instant,
    /// kept as long as its entry; a negative amount counts nothing.
    #[test]
    fn a_charge_is_counted_in_every_bucket_size() {
        let now = at("2026-12-01T22:47:13.250Z");
        let entries = vec![
            (String::new(), 1, SignedDuration::from_mins(1)),
            ("amount".to_owned(), -5, SignedDuration::from_hours(24)),
        ];
        let rows = counter_rows(now, &entries);
        assert_eq!(rows.len(), 8);
        let s = now.as_millisecond() / 1000;
        let buckets: Vec<(i64, i64)> = rows.iter().take(4).map(|r| (r.tier, r.bucket)).collect();
        assert_eq!(
            buckets,
            vec![
                (86_400, s / 86_400),
                (3_600, s / 3_600),
                (60, s / 60),
                (1, s)
            ]
        );
        assert!(
            rows[..4]
                .iter()
                .all(|r| r.keep_until_ms == now.as_millisecond() + 60_000)
        );
        assert!(rows[4..].iter().all(|r| r.amount == 0 && r.arg == "amount"));
    }

    fn agent(id: &str) -> AgentId {
        id.parse().unwrap()
    }

    fn pay(who: &AgentId, at_: &str, rate: Option<u32>, amount: i64, max: i64) -> Usage {
        Usage {
            at: at(at_),
            charges: vec![Charge {
                agent: who.clone(),
                rate: rate.map(|count| bridle_core::manifest::Rate {
                    count,
                    per: SignedDuration::from_mins(1),
                }),
                spend: vec![bridle_core::ledger::Spend {
                    arg: "amount".into(),
                    amount,
                    max,
                    per: SignedDuration::from_hours(24),
                }],
            }],
        }
    }

    /// `settle` over a batch with `stored` used in every window.
    fn settled<'a>(
        usages: &[Option<&'a Usage>],
        stored: i64,
    ) -> (Vec<Option<(AgentId, LimitHit)>>, Vec<Increment<'a>>) {
        let (windows, index) = batch_windows(usages);
        settle(usages, &windows, &index, &vec![stored; windows.len()])
    }

    /// In one batch, a usage counts what the usages before it added: a
    /// budget of 100 with 80 spent takes two payments of 10, not three.
    #[test]
    fn a_batch_counts_its_own_earlier_charges() {
        let a = agent("spender");
        let u: Vec<Usage> = (0..3)
            .map(|_| pay(&a, "2026-12-01T10:00:00.100Z", None, 10, 100))
            .collect();
        let usages: Vec<Option<&Usage>> = u.iter().map(Some).collect();
        let (outcomes, rows) = settled(&usages, 80);
        assert!(outcomes[0].is_none() && outcomes[1].is_none());
        match &outcomes[2] {
            Some((who, LimitHit::Budget { used, amount, .. })) => {
                assert_eq!((who, *used, *amount), (&a, 100, 10));
            }
            other => panic!("{other:?}"),
        }
        // One increment per counter: the two that fit, summed.
        assert_eq!(rows.len(), 4);
        assert!(rows.iter().all(|r| r.amount == 20 && r.arg == "amount"));
    }

    /// A rate of 1 a minute: of two actions in one batch the second is
    /// refused; one refused adds nothing for those after it; one that has
    /// no usage is no outcome.
    #[test]
    fn a_refused_usage_adds_nothing() {
        let a = agent("pinger");
        let first = pay(&a, "2026-12-01T10:00:00.100Z", Some(1), 0, 1_000);
        let second = pay(&a, "2026-12-01T10:00:00.200Z", Some(1), 0, 1_000);
        let (outcomes, _) = settled(&[Some(&first), None, Some(&second)], 0);
        assert!(outcomes[0].is_none() && outcomes[1].is_none());
        assert!(matches!(
            outcomes[2],
            Some((_, LimitHit::Rate { used: 1, .. }))
        ));

        let big = pay(&a, "2026-12-01T10:00:00.100Z", None, 900, 1_000);
        let small = pay(&a, "2026-12-01T10:00:00.200Z", None, 50, 1_000);
        let (outcomes, rows) = settled(&[Some(&big), Some(&small)], 500);
        assert!(matches!(outcomes[0], Some((_, LimitHit::Budget { .. }))));
        assert!(outcomes[1].is_none(), "{outcomes:?}");
        assert!(rows.iter().all(|r| r.amount == 50));
    }

    /// An earlier charge counts only in windows that reach back to its
    /// second, and only for its own agent and argument.
    #[test]
    fn an_earlier_charge_counts_only_inside_a_window() {
        let a = agent("a");
        let b = agent("b");
        let rate = |who: &AgentId, at_: &str, per: i64| Usage {
            at: at(at_),
            charges: vec![Charge {
                agent: who.clone(),
                rate: Some(bridle_core::manifest::Rate {
                    count: 1,
                    per: SignedDuration::from_secs(per),
                }),
                spend: Vec::new(),
            }],
        };
        let early = rate(&a, "2026-12-01T10:00:10.900Z", 1);
        let other = rate(&b, "2026-12-01T10:00:11.000Z", 1);
        // Its window starts in second :11, after `early`'s second :10.
        let late = rate(&a, "2026-12-01T10:00:12.500Z", 1);
        // This one's starts in :10, so `early` fills it.
        let near = rate(&a, "2026-12-01T10:00:11.500Z", 1);
        let (outcomes, rows) = settled(&[Some(&early), Some(&other), Some(&late)], 0);
        assert!(outcomes.iter().all(Option::is_none), "{outcomes:?}");
        // `a`'s two charges share their day, hour and minute counters (summed)
        // and differ in the second's; `b` has its own four.
        assert_eq!(rows.len(), 9, "{rows:?}");
        assert_eq!(rows.iter().filter(|r| r.amount == 2).count(), 3);
        let (outcomes, _) = settled(&[Some(&early), Some(&near)], 0);
        assert!(
            matches!(outcomes[1], Some((_, LimitHit::Rate { .. }))),
            "{outcomes:?}"
        );
    }
}
