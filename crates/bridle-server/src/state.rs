//! Shared server state: the store, the audit writer, signing keys, the
//! decision engine and the cache of compiled manifests.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use bridle_core::audit::{AuditEvent, EventBody, EventType};
use bridle_core::id::AgentId;
use bridle_core::{CompiledAgent, Engine, Guardrails, Manifest};
use bridle_store::{AgentRow, AuditLog, Store};

use crate::config::Config;
use crate::error::ApiError;
use crate::kek::Kek;
use crate::service::ServiceError;
use crate::token_cache::TokenCache;
use crate::tokens::{AuditKey, Claims, Keys, TokenError};

#[derive(Debug, Clone)]
pub struct AppState(pub(crate) Arc<Inner>);

#[derive(Debug)]
pub struct Inner {
    /// Reached through [`AppState::store`] below the transports, and by
    /// handlers only through a capability ([`crate::capability`]).
    store: Store,
    pub audit: AuditLog,
    /// Seals and opens the private signing keys in the store.
    kek: Kek,
    /// The signing keys; replaced whole on rotation or reload.
    keys: RwLock<Arc<Keys>>,
    /// When the keys were last read from the store.
    keys_loaded: Mutex<Instant>,
    /// Verified access tokens ([`crate::token_cache`]).
    pub tokens: TokenCache,
    pub engine: Engine,
    pub config: Config,
    pub guardrails: Guardrails,
    /// Compiled manifests by agent id, tagged with their version; bounded by
    /// estimated memory (`compiled_cache_mib`), least recently used first out.
    compiled: quick_cache::sync::Cache<AgentId, Compiled, ByMemory>,
    /// Key for hashing sensitive argument values in the audit log.
    pub hmac_key: AuditKey,
    pub http: crate::webhooks::Notifier,
    /// Asks the posture sweep to look at an agent now ([`crate::posture`]).
    pub posture: crate::posture::Trigger,
    /// Recent denials per agent, for `suspend_after_denials`. A restart
    /// forgets them, which can only delay an automatic suspension.
    pub denials: Mutex<HashMap<String, VecDeque<jiff::Timestamp>>>,
    /// Failed authentication: locks and pending audit summaries.
    pub throttle: crate::throttle::Throttle,
    /// Approval long-polls parked now, waiting to be woken by a change.
    pub parked_waits: std::sync::atomic::AtomicUsize,
    /// What `GET /metrics` serves ([`crate::metrics`]).
    pub metrics: crate::metrics::Metrics,
    /// The console's posture charts, drawn once a minute per principal.
    pub charts: crate::console::ChartCache,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// Least time between two key reloads caused by unknown `kid`s.
const KEY_RELOAD_MIN: Duration = Duration::from_secs(5);

impl AppState {
    pub async fn new(store: Store, config: Config, kek: Kek) -> Result<Self, crate::StartError> {
        let keys = Keys::load_or_create(&store, &kek).await?;
        let hmac_key = keys.audit_hmac_key().clone();
        let metrics = crate::metrics::Metrics::new();
        let audit = AuditLog::start_observed(store.clone(), metrics.audit_observer());
        let compiled = compiled_cache(config.compiled_cache_mib);
        let tokens = TokenCache::new(Duration::from_millis(config.token_cache_ms));
        let http = crate::webhooks::Notifier::start(config.webhooks.clone());
        let throttle = crate::throttle::Throttle::new(config.auth_throttle.clone());
        Ok(Self(Arc::new(Inner {
            store,
            audit,
            kek,
            keys: RwLock::new(Arc::new(keys)),
            keys_loaded: Mutex::new(Instant::now()),
            tokens,
            engine: Engine::new(),
            config,
            guardrails: Guardrails::new(),
            compiled,
            charts: crate::console::ChartCache::default(),
            hmac_key,
            http,
            posture: crate::posture::Trigger::default(),
            denials: Mutex::new(HashMap::new()),
            throttle,
            parked_waits: std::sync::atomic::AtomicUsize::new(0),
            metrics,
        })))
    }

    /// The store, for the layers below the transports (services, the
    /// authentication checkpoint, background tasks). Handlers reach it only
    /// through a capability ([`crate::capability`]); `clippy.toml` refuses
    /// this method anywhere that does not say why it may use it.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The current signing keys.
    pub fn keys(&self) -> Arc<Keys> {
        match self.keys.read() {
            Ok(k) => Arc::clone(&k),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    fn set_keys(&self, keys: Keys) {
        let keys = Arc::new(keys);
        match self.keys.write() {
            Ok(mut k) => *k = keys,
            Err(poisoned) => *poisoned.into_inner() = keys,
        }
        if let Ok(mut at) = self.keys_loaded.lock() {
            *at = Instant::now();
        }
    }

    /// Read the signing keys from the store again (another replica may have
    /// rotated, or a retired key may have aged out of JWKS).
    pub async fn reload_keys(&self) -> Result<(), ApiError> {
        let keys = Keys::load_or_create(&self.store, &self.kek).await?;
        self.set_keys(keys);
        Ok(())
    }

    /// Sign with a new key from now on; the old one keeps verifying until
    /// its last token has expired.
    pub async fn rotate_keys(&self) -> Result<Arc<Keys>, crate::kek::KekError> {
        let keys = Keys::rotate(&self.store, &self.kek).await?;
        self.set_keys(keys);
        Ok(self.keys())
    }

    /// Verify an access token's signature and standard claims (not its
    /// audience, revocation or agents). An unknown `kid` makes the keys
    /// reload once, at most every few seconds, in case another replica
    /// rotated.
    pub async fn verify_jwt(&self, token: &str) -> Result<Claims, ApiError> {
        let issuer = self.config.issuer();
        match self.keys().verify(token, &issuer) {
            Err(TokenError::UnknownKid) if self.may_reload_keys() => {
                self.reload_keys().await?;
                self.keys().verify(token, &issuer)
            }
            other => other,
        }
        .map_err(|e| ApiError::Unauthenticated(e.to_string()))
    }

    fn may_reload_keys(&self) -> bool {
        self.keys_loaded
            .lock()
            .is_ok_and(|at| at.elapsed() >= KEY_RELOAD_MIN)
    }

    /// The compiled form of an agent's current manifest (cached per version).
    /// A miss parses and compiles on the blocking pool, never on an async
    /// worker: other callers' decisions do not wait for it.
    pub async fn compiled(&self, row: &AgentRow) -> Result<CompiledAgent, ServiceError> {
        let cached = self.cached(row);
        self.metrics
            .cache_lookup(crate::metrics::Cache::CompiledManifest, cached.is_some());
        if let Some(agent) = cached {
            return Ok(agent);
        }
        let state = self.clone();
        let source = row.source.clone();
        let id = row.id.clone();
        let agent = tokio::task::spawn_blocking(move || {
            let manifest =
                Manifest::from_source(&source).map_err(|e| ServiceError::StoredManifest {
                    agent: id.clone(),
                    reason: e.to_string(),
                })?;
            CompiledAgent::compile(manifest, &state.guardrails).map_err(|e| {
                ServiceError::StoredManifest {
                    agent: id,
                    reason: e.to_string(),
                }
            })
        })
        .await
        .map_err(|e| ServiceError::Task(format!("compiling a manifest: {e}")))??;
        self.cache_compiled(&row.id, row.version, &agent);
        Ok(agent)
    }

    fn cached(&self, row: &AgentRow) -> Option<CompiledAgent> {
        let entry = self.compiled.get(&row.id)?;
        (entry.version == row.version).then_some(entry.agent)
    }

    /// How many compiled records are cached now, and their estimated bytes.
    pub fn compiled_cached(&self) -> (usize, u64) {
        (self.compiled.len(), self.compiled.weight())
    }

    /// Remember `agent` as the compiled form of version `version` of `id`
    /// (an apply hands over what it compiled, so no decision compiles it
    /// again).
    pub fn cache_compiled(&self, id: &AgentId, version: i64, agent: &CompiledAgent) {
        let newer = self.compiled.get(id).is_some_and(|e| e.version > version);
        if !newer {
            self.compiled.insert(
                id.clone(),
                Compiled {
                    version,
                    agent: agent.clone(),
                },
            );
        }
    }

    /// Append to the audit log; returns once durable. Failure is a 503.
    pub async fn audit(&self, body: EventBody) -> Result<AuditEvent, ApiError> {
        self.audit.append(body).await.map_err(ApiError::from)
    }

    pub fn event(&self, kind: EventType, actor: &str) -> EventBody {
        EventBody::new(kind, jiff::Timestamp::now(), actor)
    }
}

/// A cached compiled record and the version it was compiled from.
#[derive(Debug, Clone)]
struct Compiled {
    version: i64,
    agent: CompiledAgent,
}

/// Weighs a cached record by its estimated memory.
#[derive(Debug, Clone, Copy)]
struct ByMemory;

impl quick_cache::Weighter<AgentId, Compiled> for ByMemory {
    fn weight(&self, _id: &AgentId, entry: &Compiled) -> u64 {
        entry.agent.estimated_bytes()
    }
}

fn compiled_cache(mib: u64) -> quick_cache::sync::Cache<AgentId, Compiled, ByMemory> {
    let bytes = mib.saturating_mul(1024 * 1024).max(1);
    // The estimated count only sizes the table; the weight bounds it.
    let items = usize::try_from(bytes / (64 * 1024))
        .unwrap_or(usize::MAX)
        .max(16);
    quick_cache::sync::Cache::with_weighter(items, bytes, ByMemory)
}
