//! Shared server state: the store, the audit writer, signing keys, the
//! decision engine and the cache of compiled manifests.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, RwLock};

use bridle_core::audit::{AuditEvent, EventBody, EventType};
use bridle_core::ledger::MemoryLedger;
use bridle_core::{CompiledAgent, Engine, Guardrails, Manifest};
use bridle_store::{AgentRow, AuditLog, Store, UsageStore};

use crate::config::Config;
use crate::error::ApiError;
use crate::tokens::Keys;

#[derive(Debug, Clone)]
pub struct AppState(pub(crate) Arc<Inner>);

#[derive(Debug)]
pub struct Inner {
    pub store: Store,
    pub audit: AuditLog,
    pub keys: Keys,
    pub engine: Engine,
    pub config: Config,
    pub guardrails: Guardrails,
    /// Compiled manifests by agent id, tagged with their version.
    pub compiled: RwLock<HashMap<String, (i64, CompiledAgent)>>,
    /// Rate-limit and budget usage; persisted in the store, reloaded at start.
    pub ledger: MemoryLedger,
    /// Key for hashing sensitive argument values in the audit log.
    pub hmac_key: Vec<u8>,
    pub http: crate::webhooks::Notifier,
    /// Recent denials per agent, for `suspend_after_denials`. A restart
    /// forgets them, which can only delay an automatic suspension.
    pub denials: Mutex<HashMap<String, VecDeque<jiff::Timestamp>>>,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// The longest window a budget may look back over when reloading usage.
const USAGE_RELOAD: jiff::SignedDuration = jiff::SignedDuration::from_hours(24 * 31);

impl AppState {
    pub async fn new(store: Store, config: Config) -> Result<Self, String> {
        let keys = Keys::load_or_create(&store)
            .await
            .map_err(|e| e.to_string())?;
        let hmac_key = keys.audit_hmac_key().to_vec();
        let ledger = MemoryLedger::new();
        let since = jiff::Timestamp::now() - USAGE_RELOAD;
        for (agent, at_ms, arg, amount) in store
            .usage_since(since.as_millisecond())
            .await
            .map_err(|e| e.to_string())?
        {
            ledger.replay(&agent, at_ms, &arg, amount);
        }
        let audit = AuditLog::start(store.clone());
        let http = crate::webhooks::Notifier::start(config.webhooks.clone());
        Ok(Self(Arc::new(Inner {
            store,
            audit,
            keys,
            engine: Engine::new(),
            config,
            guardrails: Guardrails::new(),
            compiled: RwLock::new(HashMap::new()),
            ledger,
            hmac_key,
            http,
            denials: Mutex::new(HashMap::new()),
        })))
    }

    /// The compiled form of an agent's current manifest (cached per version).
    pub fn compiled(&self, row: &AgentRow) -> Result<CompiledAgent, ApiError> {
        if let Ok(cache) = self.compiled.read()
            && let Some((version, agent)) = cache.get(row.id.as_str())
            && *version == row.version
        {
            return Ok(agent.clone());
        }
        let manifest = Manifest::from_source(&row.source).map_err(|e| {
            ApiError::Internal(format!(
                "stored manifest of `{}` no longer parses: {e}",
                row.id
            ))
        })?;
        let agent = CompiledAgent::compile(manifest, &self.guardrails)
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        if let Ok(mut cache) = self.compiled.write() {
            cache.insert(row.id.to_string(), (row.version, agent.clone()));
        }
        Ok(agent)
    }

    /// Append to the audit log; returns once durable. Failure is a 503.
    pub async fn audit(&self, body: EventBody) -> Result<AuditEvent, ApiError> {
        self.audit.append(body).await.map_err(ApiError::from)
    }

    pub fn event(&self, kind: EventType, actor: &str) -> EventBody {
        EventBody::new(kind, jiff::Timestamp::now(), actor)
    }
}
