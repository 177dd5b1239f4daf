//! What one replica changes, every replica sees at once: a change is
//! applied here (verified tokens dropped, keys reloaded, approval waiters
//! woken) and published through the store (`LISTEN`/`NOTIFY` on
//! PostgreSQL), and every replica's listener applies what the others
//! publish. A missed notification costs at most the token cache's bound
//! (`token_cache_ms`): the cache expires by itself.

#![expect(
    clippy::disallowed_methods,
    reason = "below the transports: it publishes and listens to changes through the store"
)]

use bridle_store::Change;

use crate::state::AppState;

impl AppState {
    /// `change` happened here: apply it now and tell the other replicas. A
    /// failure to tell them is logged; their caches still expire.
    pub async fn changed(&self, change: Change) {
        self.apply(change).await;
        if let Err(e) = self.store().publish(change).await {
            tracing::warn!(error = %e, ?change, "cannot notify the other replicas");
        }
    }

    /// Apply a change made here or on another replica.
    async fn apply(&self, change: Change) {
        if matches!(change, Change::Tokens | Change::Resync) {
            self.tokens.invalidate();
        }
        if matches!(change, Change::Keys | Change::Resync)
            && let Err(e) = self.reload_keys().await
        {
            tracing::warn!(error = %e, "cannot reload signing keys");
        }
        if matches!(change, Change::Approval | Change::Resync) {
            self.http.poke();
        }
    }
}

/// Apply what the other replicas publish, for as long as the server runs
/// (PostgreSQL; nothing to listen to on SQLite).
pub async fn listen(state: AppState) {
    loop {
        match state.store().changes().await {
            Ok(None) => return,
            Ok(Some(mut rx)) => {
                while let Some(change) = rx.recv().await {
                    state.apply(change).await;
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot listen for other replicas' changes"),
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}
