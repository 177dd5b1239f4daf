//! Prometheus metrics, served by `GET /metrics` (`routes/metrics.rs`) in
//! the Prometheus text format (0.0.4) by the official client
//! (`prometheus-client`). One registry per server state, never a global.
//!
//! Every counter and histogram is an atomic: a decision pays a family's
//! label lookup (a read lock, no allocation once its series exists) and a
//! few atomic adds. Labels are fixed sets of values (the effects, the
//! reason codes of `bridle-core`, the OAuth error codes, the approval
//! kinds), never ids, names or anything a caller sends, so the number of
//! series is bounded. Gauges of the store (pending approvals) are read when
//! scraped. The audit writer in `bridle-store` knows nothing of Prometheus:
//! it reports each batch to an [`AuditObserver`] this module implements.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use bridle_core::decision::{Effect, ReasonCode};
use bridle_store::{ApprovalKind, AuditObserver, BatchWritten, PendingApprovals};
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};

/// The `Content-Type` of what [`Metrics::encode`] writes.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// The metrics of one server.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    decisions: Family<DecisionLabels, Counter>,
    decision_duration: Histogram,
    audit: Arc<AuditTimings>,
    approvals_pending: Family<KindLabels, Gauge>,
    approvals_oldest: Family<KindLabels, Gauge<f64, AtomicU64>>,
    tokens_issued: Family<GrantLabels, Counter>,
    tokens_refused: Family<RefusalLabels, Counter>,
    /// Resolved once: a cache lookup takes no lock here.
    token_cache: HitMiss,
    compiled_cache: HitMiss,
    store_errors: Counter,
}

/// What `bridle_decisions_total` counts a decision under.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct DecisionLabels {
    effect: EffectLabel,
    reason: ReasonLabel,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct EffectLabel(Effect);

impl EncodeLabelValue for EffectLabel {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        std::fmt::Write::write_str(encoder, self.0.as_str())
    }
}

/// A decision's first reason code; `refused` for a request an enforcement
/// point refused before it could be decided (no route maps it, or it is
/// ambiguous as sent); `none` for a decision without a reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum ReasonLabel {
    Code(ReasonCode),
    Refused,
    None,
}

impl EncodeLabelValue for ReasonLabel {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        let text = match self {
            Self::Code(code) => code.as_str(),
            Self::Refused => "refused",
            Self::None => "none",
        };
        std::fmt::Write::write_str(encoder, text)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct KindLabels {
    kind: KindLabel,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct KindLabel(ApprovalKind);

impl EncodeLabelValue for KindLabel {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        std::fmt::Write::write_str(encoder, self.0.as_str())
    }
}

/// The OAuth grant a token was issued by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Grant {
    ClientCredentials,
    TokenExchange,
    AuthorizationCode,
}

impl EncodeLabelValue for Grant {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        let text = match self {
            Self::ClientCredentials => "client_credentials",
            Self::TokenExchange => "token_exchange",
            Self::AuthorizationCode => "authorization_code",
        };
        std::fmt::Write::write_str(encoder, text)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct GrantLabels {
    grant: Grant,
}

/// A refused token request, by its OAuth error code (`invalid_client`,
/// `invalid_scope`, …): a fixed set of `&'static str` in the code.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RefusalLabels {
    reason: &'static str,
}

/// The caches whose lookups are counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cache {
    /// Verified access tokens (`token_cache.rs`).
    Token,
    /// Compiled manifests (`state.rs`).
    CompiledManifest,
}

impl EncodeLabelValue for Cache {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        let text = match self {
            Self::Token => "token",
            Self::CompiledManifest => "compiled_manifest",
        };
        std::fmt::Write::write_str(encoder, text)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct CacheLabels {
    cache: Cache,
}

/// One cache's two counters.
#[derive(Debug, Clone)]
struct HitMiss {
    hits: Counter,
    misses: Counter,
}

/// The audit writer's batches, as `bridle-store` reports them.
#[derive(Debug)]
struct AuditTimings {
    append: Histogram,
    batch: Histogram,
}

impl AuditObserver for AuditTimings {
    fn batch_written(&self, batch: BatchWritten) {
        self.append.observe(batch.took.as_secs_f64());
        self.batch
            .observe(u32::try_from(batch.appends).map_or(f64::MAX, f64::from));
    }
}

/// Latency buckets from 0.5 ms to about 4 s (a decision is a few ms with
/// its durable audit record; seconds mean a stalled store).
fn latency_buckets() -> impl Iterator<Item = f64> {
    exponential_buckets(0.0005, 2.0, 14)
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("bridle");
        let decisions = Family::<DecisionLabels, Counter>::default();
        registry.register(
            "decisions",
            "Decisions answered, by effect and first reason code (`refused`: refused by an enforcement point before deciding)",
            decisions.clone(),
        );
        let decision_duration = Histogram::new(latency_buckets());
        registry.register_with_unit(
            "decision_duration",
            "Time to decide one action, its durable audit record included (every call, failed ones too)",
            Unit::Seconds,
            decision_duration.clone(),
        );
        let audit = Arc::new(AuditTimings {
            append: Histogram::new(latency_buckets()),
            batch: Histogram::new(exponential_buckets(1.0, 2.0, 10)),
        });
        registry.register_with_unit(
            "audit_append_duration",
            "Time to write one group-committed batch of audit records: one transaction, one fsync",
            Unit::Seconds,
            audit.append.clone(),
        );
        registry.register(
            "audit_batch_size",
            "Appends gathered into one audit transaction (group commit)",
            audit.batch.clone(),
        );
        let approvals_pending = Family::<KindLabels, Gauge>::default();
        registry.register(
            "approvals_pending",
            "Approvals pending now (not expired), by kind; read from the store when scraped",
            approvals_pending.clone(),
        );
        let approvals_oldest = Family::<KindLabels, Gauge<f64, AtomicU64>>::default();
        registry.register_with_unit(
            "approval_pending_oldest",
            "Age of the oldest pending approval, by kind (0 when none)",
            Unit::Seconds,
            approvals_oldest.clone(),
        );
        let tokens_issued = Family::<GrantLabels, Counter>::default();
        registry.register(
            "tokens_issued",
            "Access tokens issued by the token endpoint, by grant",
            tokens_issued.clone(),
        );
        let tokens_refused = Family::<RefusalLabels, Counter>::default();
        registry.register(
            "tokens_refused",
            "Token requests refused, by OAuth error code",
            tokens_refused.clone(),
        );
        let hits = Family::<CacheLabels, Counter>::default();
        registry.register(
            "cache_hits",
            "Cache lookups answered from the cache, by cache",
            hits.clone(),
        );
        let misses = Family::<CacheLabels, Counter>::default();
        registry.register(
            "cache_misses",
            "Cache lookups that had to go to the store or compile, by cache",
            misses.clone(),
        );
        let hit_miss = |cache| {
            let labels = CacheLabels { cache };
            HitMiss {
                hits: hits.get_or_create_owned(&labels),
                misses: misses.get_or_create_owned(&labels),
            }
        };
        let token_cache = hit_miss(Cache::Token);
        let compiled_cache = hit_miss(Cache::CompiledManifest);
        let store_errors = Counter::default();
        registry.register(
            "store_errors",
            "Requests answered 503 because the store or the audit log failed (fail closed)",
            store_errors.clone(),
        );
        registry.register(
            "build",
            "The running build",
            Info::new([("version", env!("CARGO_PKG_VERSION"))]),
        );
        for grant in [
            Grant::ClientCredentials,
            Grant::TokenExchange,
            Grant::AuthorizationCode,
        ] {
            // Both series exist from the start, at 0.
            tokens_issued.get_or_create_owned(&GrantLabels { grant });
        }
        Self {
            registry,
            decisions,
            decision_duration,
            audit,
            approvals_pending,
            approvals_oldest,
            tokens_issued,
            tokens_refused,
            token_cache,
            compiled_cache,
            store_errors,
        }
    }

    /// What the audit writer reports its batches to.
    pub fn audit_observer(&self) -> Arc<dyn AuditObserver> {
        self.audit.clone()
    }

    /// One call of the decision service: how long it took and, when it
    /// answered, the decision's effect and first reason.
    pub fn decided(&self, took: Duration, decided: Option<(Effect, Option<ReasonCode>)>) {
        self.decision_duration.observe(took.as_secs_f64());
        if let Some((effect, reason)) = decided {
            let reason = reason.map_or(ReasonLabel::None, ReasonLabel::Code);
            self.decisions
                .get_or_create(&DecisionLabels {
                    effect: EffectLabel(effect),
                    reason,
                })
                .inc();
        }
    }

    /// A request an enforcement point refused before deciding, recorded
    /// as a denial.
    pub fn refused(&self) {
        self.decisions
            .get_or_create(&DecisionLabels {
                effect: EffectLabel(Effect::Deny),
                reason: ReasonLabel::Refused,
            })
            .inc();
    }

    pub fn token_issued(&self, grant: Grant) {
        self.tokens_issued
            .get_or_create(&GrantLabels { grant })
            .inc();
    }

    /// A refused token request, by its OAuth error code.
    pub fn token_refused(&self, reason: &'static str) {
        self.tokens_refused
            .get_or_create(&RefusalLabels { reason })
            .inc();
    }

    pub fn cache_lookup(&self, cache: Cache, hit: bool) {
        let counters = match cache {
            Cache::Token => &self.token_cache,
            Cache::CompiledManifest => &self.compiled_cache,
        };
        if hit {
            counters.hits.inc();
        } else {
            counters.misses.inc();
        }
    }

    pub fn store_error(&self) {
        self.store_errors.inc();
    }

    /// The pending approvals as read from the store at `now`: every kind
    /// is set, to 0 when it has none.
    pub fn set_pending(&self, pending: &[PendingApprovals], now: jiff::Timestamp) {
        for kind in ApprovalKind::ALL {
            let labels = KindLabels {
                kind: KindLabel(kind),
            };
            let found = pending.iter().find(|p| p.kind == kind);
            let count = found.map_or(0, |p| i64::try_from(p.count).unwrap_or(i64::MAX));
            let age = found.map_or(0.0, |p| now.duration_since(p.oldest).as_secs_f64().max(0.0));
            self.approvals_pending.get_or_create(&labels).set(count);
            self.approvals_oldest.get_or_create(&labels).set(age);
        }
    }

    /// Every metric in the Prometheus text format ([`CONTENT_TYPE`]).
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::with_capacity(8 * 1024);
        prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_labels_and_units_follow_the_conventions() {
        let m = Metrics::new();
        m.decided(
            Duration::from_millis(3),
            Some((Effect::Allow, Some(ReasonCode::Granted))),
        );
        m.decided(
            Duration::from_millis(4),
            Some((Effect::Deny, Some(ReasonCode::NotGranted))),
        );
        m.decided(Duration::from_millis(5), None);
        m.refused();
        m.token_issued(Grant::TokenExchange);
        m.token_refused("invalid_client");
        m.cache_lookup(Cache::Token, true);
        m.cache_lookup(Cache::CompiledManifest, false);
        m.store_error();
        m.audit_observer().batch_written(BatchWritten {
            appends: 3,
            took: Duration::from_millis(2),
            committed: true,
        });
        let now = jiff::Timestamp::now();
        m.set_pending(
            &[PendingApprovals {
                kind: ApprovalKind::Action,
                count: 2,
                oldest: now - jiff::SignedDuration::from_secs(90),
            }],
            now,
        );
        let text = m.encode().unwrap();
        for line in [
            "# TYPE bridle_decisions_total counter",
            r#"bridle_decisions_total{effect="allow",reason="granted"} 1"#,
            r#"bridle_decisions_total{effect="deny",reason="not_granted"} 1"#,
            r#"bridle_decisions_total{effect="deny",reason="refused"} 1"#,
            "# TYPE bridle_decision_duration_seconds histogram",
            "bridle_decision_duration_seconds_count 3",
            "bridle_audit_append_duration_seconds_count 1",
            "bridle_audit_batch_size_sum 3.0",
            r#"bridle_approvals_pending{kind="action"} 2"#,
            r#"bridle_approvals_pending{kind="change"} 0"#,
            r#"bridle_approval_pending_oldest_seconds{kind="action"} 90.0"#,
            r#"bridle_tokens_issued_total{grant="token_exchange"} 1"#,
            r#"bridle_tokens_issued_total{grant="client_credentials"} 0"#,
            r#"bridle_tokens_refused_total{reason="invalid_client"} 1"#,
            r#"bridle_cache_hits_total{cache="token"} 1"#,
            r#"bridle_cache_misses_total{cache="compiled_manifest"} 1"#,
            "bridle_store_errors_total 1",
            "# TYPE bridle_build_info gauge",
        ] {
            assert!(text.lines().any(|l| l == line), "no `{line}` in\n{text}");
        }
        assert!(
            text.contains(&format!(
                r#"bridle_build_info{{version="{}"}} 1"#,
                env!("CARGO_PKG_VERSION")
            )),
            "{text}"
        );
    }
}
