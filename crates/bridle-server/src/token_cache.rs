//! Verified access tokens, remembered for a short while so a busy agent does
//! not pay a signature check and store reads on every decision.
//!
//! An entry holds what full verification found: the claims and the registry
//! rows of every agent in the token's chain. It is used only for the exact
//! token bytes that were verified, never past the token's `exp`, and at most
//! [`TokenCache::ttl`] after the store was read, so a revocation, suspension
//! or manifest change made on another replica shows here within that time.
//! Changes made through this process invalidate at once ([`TokenCache::invalidate`]).

use std::collections::HashMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bridle_store::AgentRow;

use crate::tokens::Claims;

/// Most entries kept; past it, expired and stale entries are dropped, and if
/// that is not enough the cache starts over.
const MAX_ENTRIES: usize = 100_000;

/// A verified token: its claims, then the rows of its subject and each actor
/// (the order of [`crate::auth::AgentCaller::chain`]).
#[derive(Debug, Clone)]
pub struct Verified {
    pub claims: Claims,
    pub chain: std::sync::Arc<[AgentRow]>,
    /// The first agent of the chain whose manifest requires DPoP-bound
    /// tokens, if any (decided with the store read, so the decision path
    /// need not look at the manifests again).
    pub dpop_required: Option<String>,
}

#[derive(Debug)]
struct Entry {
    verified: Verified,
    generation: u64,
    checked: Instant,
}

#[derive(Debug)]
pub struct TokenCache {
    ttl: Duration,
    generation: AtomicU64,
    entries: RwLock<HashMap<String, Entry>>,
}

impl TokenCache {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            generation: AtomicU64::new(0),
            entries: RwLock::new(HashMap::new()),
        }
    }

    /// The verified form of exactly this token, if still fresh.
    pub fn get(&self, token: &str, now_s: i64) -> Option<Verified> {
        if self.ttl.is_zero() {
            return None;
        }
        let generation = self.generation.load(Ordering::Acquire);
        let entries = self.entries.read().ok()?;
        let e = entries.get(token)?;
        (e.generation == generation
            && e.checked.elapsed() < self.ttl
            && e.verified.claims.exp > now_s)
            .then(|| e.verified.clone())
    }

    /// Remember a token verified against the store now. `generation` is the
    /// value of [`Self::generation`] read before the store was.
    pub fn put(&self, token: &str, verified: Verified, generation: u64) {
        if self.ttl.is_zero() {
            return;
        }
        let Ok(mut entries) = self.entries.write() else {
            return;
        };
        if entries.len() >= MAX_ENTRIES {
            let current = self.generation.load(Ordering::Acquire);
            entries.retain(|_, e| e.generation == current && e.checked.elapsed() < self.ttl);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(
            token.to_owned(),
            Entry {
                verified,
                generation,
                checked: Instant::now(),
            },
        );
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Forget everything: a token was revoked, or an agent's state or
    /// manifest changed. An entry being filled concurrently carries the old
    /// generation and is never used.
    pub fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        if let Ok(mut entries) = self.entries.write() {
            entries.clear();
        }
    }
}
