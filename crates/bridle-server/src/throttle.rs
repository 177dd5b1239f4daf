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
use std::convert::Infallible;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRequestParts, MatchedPath};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use bridle_core::audit::{EventBody, EventType};
use jiff::Timestamp;
use serde::Deserialize;

use crate::error::ApiError;
use crate::state::AppState;

/// `[auth_throttle]` in the configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ThrottleConfig {
    /// Failures of one credential from one source, within `window_secs`,
    /// that lock that pair.
    pub max_failures: u32,
    /// Failures from one source (any credential), within `window_secs`,
    /// that lock the source.
    pub source_max_failures: u32,
    /// The counting window, and the interval of summary audit events.
    pub window_secs: u64,
    /// The first lock's length; each further lock doubles it.
    pub lockout_secs: u64,
    /// The longest lock.
    pub max_lockout_secs: u64,
    /// Entries kept per table (pairs, sources, pending audit summaries).
    pub max_entries: usize,
    /// Reverse proxies whose `X-Forwarded-For` is believed. Empty (the
    /// default): the source is the TCP peer, whatever the headers say.
    pub trusted_proxies: Vec<IpAddr>,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        Self {
            max_failures: 10,
            source_max_failures: 100,
            window_secs: 60,
            lockout_secs: 60,
            max_lockout_secs: 900,
            max_entries: 10_000,
            trusted_proxies: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ThrottleConfigError {
    #[error("auth_throttle.{0} must be at least 1")]
    Zero(&'static str),
    #[error("auth_throttle.max_lockout_secs must not be below lockout_secs")]
    LockoutRange,
}

impl ThrottleConfig {
    pub fn validate(&self) -> Result<(), ThrottleConfigError> {
        let zero = [
            ("max_failures", u64::from(self.max_failures)),
            ("source_max_failures", u64::from(self.source_max_failures)),
            ("window_secs", self.window_secs),
            ("lockout_secs", self.lockout_secs),
            ("max_entries", self.max_entries as u64),
        ];
        if let Some((name, _)) = zero.iter().find(|(_, v)| *v == 0) {
            return Err(ThrottleConfigError::Zero(name));
        }
        if self.max_lockout_secs < self.lockout_secs {
            return Err(ThrottleConfigError::LockoutRange);
        }
        Ok(())
    }

    fn window(&self) -> Duration {
        Duration::from_secs(self.window_secs)
    }

    /// The length of lock number `n` (0 for the first).
    fn lockout(&self, n: u32) -> Duration {
        let secs = self
            .lockout_secs
            .saturating_mul(1u64.checked_shl(n.min(32)).unwrap_or(u64::MAX))
            .min(self.max_lockout_secs);
        Duration::from_secs(secs)
    }
}

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

/// Where attempts come from: an IPv4 address, or an IPv6 /64 network (one
/// host usually holds a whole /64).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Source(IpAddr);

impl Source {
    pub fn new(ip: IpAddr) -> Self {
        match ip.to_canonical() {
            IpAddr::V6(v6) => {
                let network = u128::from(v6) & !u128::from(u64::MAX);
                Self(IpAddr::V6(Ipv6Addr::from(network)))
            }
            v4 => Self(v4),
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            IpAddr::V4(v4) => write!(f, "{v4}"),
            IpAddr::V6(v6) => write!(f, "{v6}/64"),
        }
    }
}

/// The source and the endpoint of a request.
#[derive(Debug, Clone)]
pub struct Origin {
    pub source: Source,
    /// The route template (`/v1/agents/{id}`), not the raw path.
    pub endpoint: String,
}

impl Origin {
    pub fn of(parts: &Parts, config: &ThrottleConfig) -> Self {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
        let ip = client_address(peer, &parts.headers, &config.trusted_proxies);
        let endpoint = parts
            .extensions
            .get::<MatchedPath>()
            .map_or("unknown", MatchedPath::as_str)
            .to_owned();
        Self {
            source: Source::new(ip),
            endpoint,
        }
    }
}

impl FromRequestParts<AppState> for Origin {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Infallible> {
        Ok(Self::of(parts, &state.config.auth_throttle))
    }
}

/// The peer, or when the peer is a trusted proxy, the nearest address in
/// `X-Forwarded-For` that is not one (right to left: each proxy appends).
fn client_address(peer: IpAddr, headers: &HeaderMap, trusted: &[IpAddr]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.contains(&ip.to_canonical());
    if !is_trusted(&peer) {
        return peer;
    }
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .collect();
    let mut nearest = peer;
    for hop in hops.iter().rev() {
        match hop.trim().parse::<IpAddr>() {
            Ok(ip) if is_trusted(&ip) => nearest = ip,
            Ok(ip) => return ip,
            // Garbage from beyond the last trusted hop: that hop is the source.
            Err(_) => return nearest,
        }
    }
    nearest
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
        if let Some(client) = &self.client {
            detail["client_id"] = client.as_str().into();
        }
        if self.presented_more {
            detail["presented_more"] = true.into();
        }
        if let ReportState::Locked { what, retry_after } = self.state {
            detail["locked"] = what.into();
            detail["retry_after"] = retry_after.into();
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

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(ip: [u8; 4]) -> Origin {
        Origin {
            source: Source::new(IpAddr::from(ip)),
            endpoint: "/oauth/token".into(),
        }
    }

    fn config() -> ThrottleConfig {
        ThrottleConfig {
            max_failures: 3,
            source_max_failures: 10,
            window_secs: 60,
            lockout_secs: 10,
            max_lockout_secs: 35,
            max_entries: 4,
            trusted_proxies: Vec::new(),
        }
    }

    fn attempt<'a>(id: &'a str, origin: &'a Origin) -> Attempt<'a> {
        Attempt {
            kind: Kind::Client,
            identifier: id,
            origin,
        }
    }

    #[test]
    fn a_pair_locks_after_max_failures_with_doubling_lockouts() {
        let t = Throttle::new(config());
        let (o, at) = (origin([10, 0, 0, 1]), Timestamp::now());
        let a = attempt("cl_a", &o);
        let start = Instant::now();
        let mut now = start;
        let mut lengths = Vec::new();
        for _ in 0..4 {
            for i in 0..3 {
                assert!(t.check(&a, now, at).is_ok(), "attempt {i} refused");
                let reports = t.failure(&a, Some("cl_a"), None, now, at);
                if let Some(ReportState::Locked { retry_after, .. }) =
                    reports.last().map(|r| r.state)
                {
                    lengths.push(retry_after);
                }
            }
            let refused = t.check(&a, now, at).unwrap_err();
            now += Duration::from_secs(refused.retry_after);
            assert!(t.check(&a, now, at).is_ok());
        }
        assert_eq!(lengths, [10, 20, 35, 35]);
        // A success forgets the back-off.
        t.success(&a);
        for _ in 0..3 {
            t.failure(&a, Some("cl_a"), None, now, at);
        }
        assert_eq!(t.check(&a, now, at).unwrap_err().retry_after, 10);
    }

    #[test]
    fn another_source_is_not_locked_and_failures_are_reported_once_then_summarised() {
        let t = Throttle::new(config());
        let (bad, good, at) = (
            origin([10, 0, 0, 1]),
            origin([10, 0, 0, 2]),
            Timestamp::now(),
        );
        let now = Instant::now();
        let mut events = Vec::new();
        for _ in 0..3 {
            events.extend(t.failure(&attempt("cl_a", &bad), Some("cl_a"), Some("bot"), now, at));
        }
        for _ in 0..5 {
            assert!(t.check(&attempt("cl_a", &bad), now, at).is_err());
        }
        assert!(t.check(&attempt("cl_a", &good), now, at).is_ok());
        let states: Vec<_> = events.iter().map(|r| (r.state, r.failures)).collect();
        assert_eq!(
            states,
            [
                (ReportState::Failing, 1),
                (
                    ReportState::Locked {
                        what: "credential",
                        retry_after: 10
                    },
                    2
                )
            ]
        );
        assert!(t.flush(now + Duration::from_secs(59)).is_empty());
        let summary = t.flush(now + Duration::from_secs(60));
        assert_eq!(summary.len(), 1);
        assert_eq!((summary[0].failures, summary[0].throttled), (0, 5));
        assert_eq!(summary[0].agent.as_deref(), Some("bot"));
        // Quiet for a window: forgotten, and the next failure is reported at once.
        assert!(t.flush(now + Duration::from_secs(200)).is_empty());
        assert_eq!(t.sizes(), (0, 0, 0));
    }

    #[test]
    fn a_source_locks_for_every_credential() {
        let t = Throttle::new(config());
        let (o, at, now) = (origin([10, 0, 0, 1]), Timestamp::now(), Instant::now());
        let ids: Vec<String> = (0..10).map(|i| format!("cl_{i}")).collect();
        let mut reports = Vec::new();
        for id in &ids {
            reports.extend(t.failure(&attempt(id, &o), None, None, now, at));
        }
        assert!(t.check(&attempt("cl_fresh", &o), now, at).is_err());
        // Unknown clients are gathered per source: one event, then the lock.
        assert_eq!(reports.len(), 2, "{reports:?}");
        assert!(reports.iter().any(|r| r.presented_more));
    }

    #[test]
    fn the_tables_are_bounded_and_evicted_failures_are_still_reported() {
        let t = Throttle::new(config());
        let (at, now) = (Timestamp::now(), Instant::now());
        let mut reported = 0;
        for i in 0..50u8 {
            let o = origin([10, 0, 1, i]);
            let a = attempt("cl_a", &o);
            for _ in 0..2 {
                for r in t.failure(&a, Some("cl_a"), None, now, at) {
                    reported += r.failures;
                }
            }
        }
        let (pairs, sources, reports) = t.sizes();
        assert!(pairs <= 4 && sources <= 4 && reports <= 4);
        for r in t.flush(now) {
            reported += r.failures;
        }
        let pending: u64 = t
            .flush(now + Duration::from_secs(60))
            .iter()
            .map(|r| r.failures)
            .sum();
        assert_eq!(reported + pending, 100);
    }

    #[test]
    fn forwarded_for_counts_only_behind_a_trusted_proxy() {
        let proxy: IpAddr = "10.0.0.9".parse().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", "6.6.6.6, 1.2.3.4".parse().unwrap());
        assert_eq!(client_address(proxy, &headers, &[]), proxy);
        assert_eq!(
            client_address(proxy, &headers, &[proxy]),
            "1.2.3.4".parse::<IpAddr>().unwrap()
        );
        headers.insert("x-forwarded-for", "1.2.3.4, nonsense".parse().unwrap());
        assert_eq!(client_address(proxy, &headers, &[proxy]), proxy);
    }

    #[test]
    fn key_prefixes_never_show_much_of_a_key() {
        assert_eq!(
            key_prefix("bk_abcdefghijklmnopqrstuvwxyz0123456789"),
            "bk_abcde…"
        );
        assert_eq!(key_prefix("hunter2"), "h…");
        assert_eq!(key_prefix("abc"), "…");
        assert_eq!(
            Source::new("2001:db8:1:2:3:4:5:6".parse().unwrap()).to_string(),
            "2001:db8:1:2::/64"
        );
    }
}
