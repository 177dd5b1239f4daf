//! Usage behind rate limits and budgets, decided in the store.
//!
//! Usage is kept as counters: per agent and argument (`""` for the actions
//! a rate limit counts), one row per bucket of a second, a minute, an hour
//! and a day, all four upserted together when a charge is recorded. A
//! window sums its whole days, then the whole hours, minutes and seconds at
//! its two edges ([`window_slots`]): at most eight index ranges and a few
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
use bridle_core::ledger::UsageSnapshot;
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

/// The bucket ranges covering the window of `per` ending at `now`: from
/// the second holding `now - per` (counted whole) on, with no end. Whole buckets of the largest size that fits come first, then
/// the edges left over on each side in smaller ones.
pub(crate) fn window_slots(now: Timestamp, per: SignedDuration) -> Slots {
    let from = now.checked_sub(per).unwrap_or(Timestamp::MIN);
    let mut slots: Slots = [(1, 0); 2 * TIERS.len()];
    // Seconds still to cover, inclusive: the window, then its edges. Once
    // split, the left edge ends and the right edge starts on a boundary of
    // every smaller size, so there are never more than two.
    //
    // The window has no end: usage recorded after `now` counts too. A
    // decision committed after another replica's later one (their clocks,
    // or the order the writers took the lock in) must still see it.
    let mut pieces = vec![(from.as_millisecond().div_euclid(1000), OPEN_END)];
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
/// within the last `per`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Window<'a> {
    pub agent: &'a AgentId,
    pub arg: &'a str,
    pub per: SignedDuration,
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

/// What each of `$windows` (a slice of [`Window`]) used by `$now`, in
/// order, on transaction or connection `$ex`: one statement.
macro_rules! used_within {
    ($ex:expr, $windows:expr, $now:expr) => {{
        let windows: &[$crate::usage::Window<'_>] = $windows;
        let now: jiff::Timestamp = $now;
        let mut used = Vec::with_capacity(windows.len());
        if !windows.is_empty() {
            let sql = $crate::usage::used_within_sql(windows.len());
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for w in windows {
                q = q.bind(w.agent.clone()).bind(w.arg);
                for (lo, hi) in $crate::usage::window_slots(now, w.per) {
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

/// The windows a charge is checked against: its rate's, then each budget's.
pub(crate) fn charge_windows(c: &bridle_core::ledger::Charge) -> Vec<Window<'_>> {
    let rate = c.rate.map(|r| Window {
        agent: &c.agent,
        arg: "",
        per: r.per,
    });
    rate.into_iter()
        .chain(c.spend.iter().map(|s| Window {
            agent: &c.agent,
            arg: &s.arg,
            per: s.per,
        }))
        .collect()
}

/// Check `$usage` (a [`bridle_core::ledger::Usage`]) against what is stored
/// and, when every charge of it fits, record it, inside the write
/// transaction `$tx`: one statement reads every window of every charge,
/// one upserts every counter. Evaluates to `Ok(None)` when recorded, or
/// `Ok(Some((agent, hit)))` for the first limit it would break (nothing is
/// recorded then).
macro_rules! charge {
    ($tx:expr, $usage:expr) => {
        async {
            let usage: &bridle_core::ledger::Usage = $usage;
            let now = usage.at;
            let windows: Vec<_> = usage
                .charges
                .iter()
                .flat_map($crate::usage::charge_windows)
                .collect();
            let mut used = $crate::usage::used_within!(&mut *$tx, &windows, now)?.into_iter();
            for c in &usage.charges {
                let rate = c
                    .rate
                    .map(|r| (r, u64::try_from(used.next().unwrap_or(0)).unwrap_or(0)));
                let spent: Vec<_> = c
                    .spend
                    .iter()
                    .map(|s| (s.clone(), used.next().unwrap_or(0)))
                    .collect();
                if let Some(hit) = bridle_core::ledger::over_limit(rate, spent) {
                    return Ok::<_, $crate::StoreError>(Some((c.agent.clone(), hit)));
                }
            }
            let entries: Vec<_> = usage
                .charges
                .iter()
                .map(|c| (&c.agent, c.kept_entries()))
                .collect();
            let rows: Vec<_> = entries
                .iter()
                .flat_map(|(agent, e)| {
                    $crate::usage::counter_rows(now, e)
                        .into_iter()
                        .map(move |row| (*agent, row))
                })
                .collect();
            if !rows.is_empty() {
                let mut q = sqlx::QueryBuilder::new(
                    "INSERT INTO usage_counters (agent_id, arg, tier, bucket, amount, keep_until_ms) ",
                );
                q.push_values(&rows, |mut b, (agent, row)| {
                    b.push_bind((*agent).clone())
                        .push_bind(row.arg)
                        .push_bind(row.tier)
                        .push_bind(row.bucket)
                        .push_bind(row.amount)
                        .push_bind(row.keep_until_ms);
                });
                q.push($crate::usage::UPSERT_SQL);
                q.build().execute(&mut *$tx).await?;
            }
            Ok(None)
        }
    };
}
pub(crate) use {charge, used_within};

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
                windows.push(Window {
                    agent: need.agent,
                    arg: "",
                    per: r.per,
                });
            }
            for (arg, per) in &need.budgets {
                windows.push(Window {
                    agent: need.agent,
                    arg,
                    per: *per,
                });
            }
        }
        if windows.is_empty() {
            return Ok(snapshot);
        }
        let used = with_pool!(self, |pool| used_within!(pool, &windows, now))?;
        for (w, used) in windows.iter().zip(used) {
            if w.arg.is_empty() {
                snapshot.set_actions(w.agent, u64::try_from(used).unwrap_or(0));
            } else {
                snapshot.set_spent(w.agent, w.arg, w.per, used);
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
}
