//! Failed authentication: throttled per credential and per source, and
//! audited in aggregate so that a flood of failures cannot flood the log.
//!
//! Throttling (in memory, per replica):
//! - every failure counts against its *pair* (kind, presented identifier,
//!   source) and against its *source*;
//! - `max_failures` failures of a pair within `window_secs` lock the pair,
//!   `source_max_failures` failures of a source lock the source;
//! - a lock lasts `lockout_secs`, doubling with each further lock of the same
//!   pair or source (no success in between), up to `max_lockout_secs`;
//! - a locked attempt is answered 429 with `Retry-After` before its
//!   credentials are looked at; a success clears its pair, never its source;
//! - access tokens are locked by source only: a new token is a new
//!   credential, and an agent that presented an expired one must get through
//!   with the next.
//!
//! So a source that hammers one client locks itself out, and the client still
//! authenticates from everywhere else. The tables are bounded by
//! `max_entries` each; quiet entries go first, then the least recent.
//!
//! Auditing (`authentication` events): failures are gathered per (kind,
//! client, source), where the client is known only when the presented client
//! id exists; unknown client ids, API keys and access tokens are gathered per
//! source, listing what was presented. The first failure of a quiet key is
//! written at once, and so is the failure that locks; after that one
//! summary per `window_secs` while failures or throttled attempts continue.
//! Events name the client id, an API key's first characters or a token's
//! claimed subject, never a secret, key or token.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bridle_core::audit::{EventBody, EventType};
use jiff::Timestamp;

use crate::error::ApiError;
use crate::state::AppState;

mod config;
mod origin;
#[cfg(test)]
mod tests;

pub use config::{ThrottleConfig, ThrottleConfigError};
#[cfg(test)]
use origin::client_address;
pub use origin::{Origin, Source};

/// What kind of credential failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// An OAuth client (secret or `private_key_jwt`).
    Client,
    ApiKey,
    AccessToken,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Client => "client",
            Self::ApiKey => "api_key",
            Self::AccessToken => "access_token",
        }
    }
}

/// Longest presented identifier kept (client ids and claimed subjects are
/// the caller's own text).
const MAX_IDENTIFIER: usize = 64;
/// Presented identifiers listed per audit event.
const MAX_LISTED: usize = 8;

/// A presented identifier fit for the log: at most [`MAX_IDENTIFIER`]
/// characters, control characters replaced.
pub fn identifier(s: &str) -> String {
    s.chars()
        .take(MAX_IDENTIFIER)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// The first characters of an API key: at most 8 and at most a quarter of
/// it, so even a short key is never written out.
pub fn key_prefix(key: &str) -> String {
    let n = (key.chars().count() / 4).min(8);
    let mut p = identifier(&key.chars().take(n).collect::<String>());
    p.push('…');
    p
}

/// One authentication attempt.
#[derive(Debug, Clone, Copy)]
pub struct Attempt<'a> {
    pub kind: Kind,
    /// The client id, API key prefix or claimed subject, as [`identifier`]
    /// or [`key_prefix`] made it.
    pub identifier: &'a str,
    pub origin: &'a Origin,
}

/// Too many failures: come back later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many failed authentications; retry after {retry_after} s")]
pub struct Throttled {
    /// Seconds until the lock ends.
    pub retry_after: u64,
}

impl From<Throttled> for ApiError {
    fn from(t: Throttled) -> Self {
        Self::TooManyRequests {
            retry_after: t.retry_after,
        }
    }
}

type PairKey = (Kind, String, Source);

/// Where failures of one kind are gathered for the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ReportKey {
    kind: Kind,
    /// The client id, when it names an existing client.
    client: Option<String>,
    source: Source,
}

/// Failures of one pair or source in the current window, and its lock.
#[derive(Debug)]
struct Counter {
    window_start: Instant,
    failures: u32,
    locked_until: Option<Instant>,
    /// Locks so far; the next lasts twice as long.
    locks: u32,
    seen: Instant,
}

impl Counter {
    fn new(now: Instant) -> Self {
        Self {
            window_start: now,
            failures: 0,
            locked_until: None,
            locks: 0,
            seen: now,
        }
    }

    /// Time left on the lock, if locked.
    fn locked(&self, now: Instant) -> Option<Duration> {
        self.locked_until
            .and_then(|until| until.checked_duration_since(now))
            .filter(|left| !left.is_zero())
    }

    /// Count one failure; the lock's length when this failure starts one.
    fn fail(&mut self, now: Instant, max: u32, config: &ThrottleConfig) -> Option<Duration> {
        self.seen = now;
        if self.locked(now).is_some() {
            return None;
        }
        if self.locked_until.take().is_some()
            || now.saturating_duration_since(self.window_start) >= config.window()
        {
            self.window_start = now;
            self.failures = 0;
        }
        self.failures = self.failures.saturating_add(1);
        if self.failures < max {
            return None;
        }
        let length = config.lockout(self.locks);
        self.locks = self.locks.saturating_add(1);
        self.failures = 0;
        self.locked_until = Some(now + length);
        Some(length)
    }

    /// Nothing left to remember: unlocked, quiet for a window, and quiet for
    /// the longest lock once it has been locked (so back-off is not forgotten).
    fn idle(&self, now: Instant, config: &ThrottleConfig) -> bool {
        let quiet = now.saturating_duration_since(self.seen);
        self.locked(now).is_none()
            && quiet >= config.window()
            && (self.locks == 0 || quiet >= Duration::from_secs(config.max_lockout_secs))
    }
}

#[derive(Debug)]
struct Pair {
    counter: Counter,
    /// Where its throttled attempts are counted.
    report: ReportKey,
}

/// What has not been written to the audit log yet for one [`ReportKey`].
#[derive(Debug)]
struct Pending {
    agent: Option<String>,
    presented: BTreeSet<String>,
    presented_more: bool,
    endpoints: BTreeSet<String>,
    failures: u64,
    throttled: u64,
    first: Option<Timestamp>,
    last: Timestamp,
    /// When the last event for this key was written (or the key was created).
    reported: Instant,
}

impl Pending {
    fn new(now: Instant, at: Timestamp) -> Self {
        Self {
            agent: None,
            presented: BTreeSet::new(),
            presented_more: false,
            endpoints: BTreeSet::new(),
            failures: 0,
            throttled: 0,
            first: None,
            last: at,
            reported: now,
        }
    }

    fn note(&mut self, attempt: &Attempt<'_>, at: Timestamp) {
        if self.presented.len() < MAX_LISTED {
            self.presented.insert(attempt.identifier.to_owned());
        } else if !self.presented.contains(attempt.identifier) {
            self.presented_more = true;
        }
        if self.endpoints.len() < MAX_LISTED {
            self.endpoints.insert(attempt.origin.endpoint.clone());
        }
        self.first.get_or_insert(at);
        self.last = at;
    }

    fn is_empty(&self) -> bool {
        self.failures == 0 && self.throttled == 0
    }

    /// Turn what is pending into a report and start over.
    fn take(&mut self, key: &ReportKey, state: ReportState, now: Instant) -> Report {
        self.reported = now;
        Report {
            kind: key.kind,
            client: key.client.clone(),
            source: key.source,
            state,
            agent: self.agent.clone(),
            presented: std::mem::take(&mut self.presented).into_iter().collect(),
            presented_more: std::mem::take(&mut self.presented_more),
            endpoints: std::mem::take(&mut self.endpoints).into_iter().collect(),
            failures: std::mem::take(&mut self.failures),
            throttled: std::mem::take(&mut self.throttled),
            first: self.first.take().unwrap_or(self.last),
            last: self.last,
        }
    }
}

/// Why a report is written now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportState {
    /// The first failure of a quiet key.
    Failing,
    /// This failure locked the credential (pair) or the source.
    Locked {
        what: &'static str,
        retry_after: u64,
    },
    /// The failures and throttled attempts of the last window.
    Summary,
}

/// One `authentication` audit event to write.
#[derive(Debug, Clone)]
pub struct Report {
    pub kind: Kind,
    pub client: Option<String>,
    pub source: Source,
    pub state: ReportState,
    pub agent: Option<String>,
    pub presented: Vec<String>,
    pub presented_more: bool,
    pub endpoints: Vec<String>,
    pub failures: u64,
    pub throttled: u64,
    pub first: Timestamp,
    pub last: Timestamp,
}

impl Report {
    pub fn event(&self) -> EventBody {
        let mut body = EventBody::new(EventType::Authentication, self.last, "system");
        body.agent.clone_from(&self.agent);
        let mut detail = serde_json::json!({
            "kind": self.kind.as_str(),
            "state": match self.state {
                ReportState::Failing => "failing",
                ReportState::Locked { .. } => "locked",
                ReportState::Summary => "summary",
            },
            "source": self.source.to_string(),
            "endpoints": self.endpoints,
            "presented": self.presented,
            "failures": self.failures,
            "throttled": self.throttled,
            "first": self.first,
            "last": self.last,
        });
        if let Some(fields) = detail.as_object_mut() {
            if let Some(client) = &self.client {
                fields.insert("client_id".into(), client.as_str().into());
            }
            if self.presented_more {
                fields.insert("presented_more".into(), true.into());
            }
            if let ReportState::Locked { what, retry_after } = self.state {
                fields.insert("locked".into(), what.into());
                fields.insert("retry_after".into(), retry_after.into());
            }
        }
        body.detail = Some(detail);
        body
    }

    fn log(&self) {
        let locked = match self.state {
            ReportState::Locked { what, .. } => what,
            _ => "",
        };
        tracing::warn!(
            kind = self.kind.as_str(),
            client_id = self.client.as_deref().unwrap_or(""),
            presented = ?self.presented,
            source = %self.source,
            endpoints = ?self.endpoints,
            failures = self.failures,
            throttled = self.throttled,
            locked,
            "failed authentication"
        );
    }
}

#[derive(Debug, Default)]
struct Tables {
    pairs: HashMap<PairKey, Pair>,
    sources: HashMap<Source, Counter>,
    reports: HashMap<ReportKey, Pending>,
    /// Reports of entries evicted to make room, written with the next batch.
    evicted: Vec<Report>,
}

/// The throttle and the aggregation of failures ([`crate::throttle`]).
#[derive(Debug)]
pub struct Throttle {
    config: ThrottleConfig,
    tables: Mutex<Tables>,
}

fn secs_up(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// Make room for one more entry: drop the idle, then the least recent.
fn make_room<K: Clone + Eq + std::hash::Hash, V>(
    map: &mut HashMap<K, V>,
    cap: usize,
    idle: impl Fn(&V) -> bool,
    recency: impl Fn(&V) -> Instant,
) -> Option<(K, V)> {
    if map.len() < cap {
        return None;
    }
    map.retain(|_, v| !idle(v));
    if map.len() < cap {
        return None;
    }
    let oldest = map
        .iter()
        .min_by_key(|(_, v)| recency(v))
        .map(|(k, _)| k.clone())?;
    map.remove_entry(&oldest)
}

impl Throttle {
    pub fn new(config: ThrottleConfig) -> Self {
        Self {
            config,
            tables: Mutex::new(Tables::default()),
        }
    }

    pub fn config(&self) -> &ThrottleConfig {
        &self.config
    }

    fn tables(&self) -> MutexGuard<'_, Tables> {
        // The tables stay consistent between statements; a panic elsewhere
        // must not turn throttling off.
        self.tables
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Refuse an attempt whose pair or source is locked (counted for the
    /// audit summary); otherwise let it be checked.
    pub fn check(
        &self,
        attempt: &Attempt<'_>,
        now: Instant,
        at: Timestamp,
    ) -> Result<(), Throttled> {
        let source = attempt.origin.source;
        let mut t = self.tables();
        let by_source = t.sources.get(&source).and_then(|c| c.locked(now));
        let by_pair = if attempt.kind == Kind::AccessToken || t.pairs.is_empty() {
            None
        } else {
            let key = (attempt.kind, attempt.identifier.to_owned(), source);
            t.pairs
                .get(&key)
                .and_then(|p| p.counter.locked(now).map(|left| (left, p.report.clone())))
        };
        let (left, report) = match (by_pair, by_source) {
            (None, None) => return Ok(()),
            (Some((left, report)), by_source) => (left.max(by_source.unwrap_or_default()), report),
            (None, Some(left)) => (
                left,
                ReportKey {
                    kind: attempt.kind,
                    client: None,
                    source,
                },
            ),
        };
        let pending = self.pending(&mut t, report, now, at).0;
        pending.throttled = pending.throttled.saturating_add(1);
        pending.note(attempt, at);
        Err(Throttled {
            retry_after: secs_up(left).max(1),
        })
    }

    /// The pending entry of `key` (created when absent: `true`).
    fn pending<'t>(
        &self,
        t: &'t mut Tables,
        key: ReportKey,
        now: Instant,
        at: Timestamp,
    ) -> (&'t mut Pending, bool) {
        let window = self.config.window();
        let fresh = !t.reports.contains_key(&key);
        if fresh
            && let Some((old_key, mut old)) = make_room(
                &mut t.reports,
                self.config.max_entries,
                |p| p.is_empty() && now.saturating_duration_since(p.reported) >= window,
                |p| p.reported,
            )
            && !old.is_empty()
        {
            t.evicted
                .push(old.take(&old_key, ReportState::Summary, now));
        }
        (
            t.reports
                .entry(key)
                .or_insert_with(|| Pending::new(now, at)),
            fresh,
        )
    }

    /// Count a failed attempt. `client` is the client id when it names an
    /// existing client, `agent` that client's agent. Returns the reports to
    /// write now: the first failure of a quiet key, or the one that locked.
    pub fn failure(
        &self,
        attempt: &Attempt<'_>,
        client: Option<&str>,
        agent: Option<&str>,
        now: Instant,
        at: Timestamp,
    ) -> Vec<Report> {
        let config = &self.config;
        let source = attempt.origin.source;
        let report = ReportKey {
            kind: attempt.kind,
            client: client.map(str::to_owned),
            source,
        };
        let mut t = self.tables();
        if !t.sources.contains_key(&source) {
            make_room(
                &mut t.sources,
                config.max_entries,
                |c| c.idle(now, config),
                |c| c.seen,
            );
        }
        let source_lock = t
            .sources
            .entry(source)
            .or_insert_with(|| Counter::new(now))
            .fail(now, config.source_max_failures, config);
        let pair_lock = if attempt.kind == Kind::AccessToken {
            None
        } else {
            let key = (attempt.kind, attempt.identifier.to_owned(), source);
            if !t.pairs.contains_key(&key) {
                make_room(
                    &mut t.pairs,
                    config.max_entries,
                    |p| p.counter.idle(now, config),
                    |p| p.counter.seen,
                );
            }
            let pair = t.pairs.entry(key).or_insert_with(|| Pair {
                counter: Counter::new(now),
                report: report.clone(),
            });
            pair.report = report.clone();
            pair.counter.fail(now, config.max_failures, config)
        };
        let locked = match (pair_lock, source_lock) {
            (_, Some(left)) => Some(("source", left)),
            (Some(left), None) => Some(("credential", left)),
            (None, None) => None,
        };
        let (pending, fresh) = self.pending(&mut t, report.clone(), now, at);
        pending.failures = pending.failures.saturating_add(1);
        if let Some(agent) = agent {
            pending.agent = Some(agent.to_owned());
        }
        pending.note(attempt, at);
        let state = match locked {
            Some((what, left)) => Some(ReportState::Locked {
                what,
                retry_after: secs_up(left),
            }),
            None if fresh => Some(ReportState::Failing),
            None => None,
        };
        let now_report = state.map(|s| pending.take(&report, s, now));
        let mut out = std::mem::take(&mut t.evicted);
        out.extend(now_report);
        out
    }

    /// A successful authentication clears its pair's failures and locks.
    pub fn success(&self, attempt: &Attempt<'_>) {
        if attempt.kind == Kind::AccessToken {
            return;
        }
        let mut t = self.tables();
        if !t.pairs.is_empty() {
            let key = (
                attempt.kind,
                attempt.identifier.to_owned(),
                attempt.origin.source,
            );
            t.pairs.remove(&key);
        }
    }

    /// The summaries due (a window since the key's last event), and the
    /// reports of evicted entries; forgets what is idle.
    pub fn flush(&self, now: Instant) -> Vec<Report> {
        let config = &self.config;
        let window = config.window();
        let mut t = self.tables();
        let mut out = std::mem::take(&mut t.evicted);
        for (key, pending) in &mut t.reports {
            if !pending.is_empty() && now.saturating_duration_since(pending.reported) >= window {
                out.push(pending.take(key, ReportState::Summary, now));
            }
        }
        t.reports
            .retain(|_, p| !p.is_empty() || now.saturating_duration_since(p.reported) < window);
        t.pairs.retain(|_, p| !p.counter.idle(now, config));
        t.sources.retain(|_, c| !c.idle(now, config));
        out
    }

    /// Entries held, for tests of the bounds: (pairs, sources, reports).
    pub fn sizes(&self) -> (usize, usize, usize) {
        let t = self.tables();
        (t.pairs.len(), t.sources.len(), t.reports.len())
    }
}

/// Refuse a locked attempt now.
pub(crate) fn check(state: &AppState, attempt: &Attempt<'_>) -> Result<(), Throttled> {
    state
        .throttle
        .check(attempt, Instant::now(), Timestamp::now())
}

/// Count and, when due, audit a failed attempt (see [`Throttle::failure`]).
/// The request is refused either way; an audit log that cannot be written
/// is logged, it does not turn the refusal into something else.
pub(crate) async fn failed(
    state: &AppState,
    attempt: &Attempt<'_>,
    client: Option<&str>,
    agent: Option<&str>,
) {
    let reports = state
        .throttle
        .failure(attempt, client, agent, Instant::now(), Timestamp::now());
    write(state, reports).await;
}

async fn write(state: &AppState, reports: Vec<Report>) {
    for report in reports {
        report.log();
        if let Err(e) = state.audit(report.event()).await {
            tracing::error!(error = %e, "cannot audit failed authentication");
        }
    }
}

/// Write the summaries as they fall due (spawned by `serve_on`).
pub async fn report_loop(state: AppState) {
    let every = (state.throttle.config().window() / 4)
        .clamp(Duration::from_secs(1), Duration::from_secs(15));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let reports = state.throttle.flush(Instant::now());
        write(&state, reports).await;
    }
}
