//! Signed audit checkpoints: every `checkpoint_every` events or
//! `checkpoint_seconds` seconds (when there are new events) the server signs
//! the stored head `{seq, head, time}` with its current signing key, keeps
//! the checkpoint in the store and sends it to the configured witnesses (a
//! file, one JSON line each; a URL, POSTed with retries). All of it runs in
//! the background, never on a decision's path.
//!
//! Verification ([`verify_log`]) checks every stored checkpoint's signature
//! against every signing key the store has ever held (retired ones
//! included: JWKS drops them, checkpoints still need them), then the whole
//! chain against the checkpoints and the stored head. A checkpoint catches
//! what the chain alone cannot: a log cut short, or rewritten with every
//! later hash and the head recomputed. A witness copy catches it even when
//! the store's own checkpoints were removed or re-signed with a key taken
//! from the store.

#![expect(
    clippy::disallowed_methods,
    reason = "a background task below the transports: it signs and verifies the audit log"
)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use bridle_core::audit::{Checkpoint, SignedCheckpoint, Verification, Verifier};
use bridle_store::{
    AuditRead, CheckpointFilter, CheckpointStore, CredentialStore, Store, StoreError,
};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use tokio::io::AsyncWriteExt as _;

use crate::state::AppState;
use crate::tokens::CHECKPOINT_TYP;

/// Delivery attempts per webhook witness.
const ATTEMPTS: u32 = 5;

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("the checkpoint is not a valid signed checkpoint: {0}")]
    Invalid(String),
    #[error("the checkpoint is signed with an unknown key `{0}`")]
    UnknownKid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot sign the checkpoint: {0}")]
    Sign(#[from] crate::tokens::TokenError),
}

/// The public halves of every signing key the store holds, by `kid`.
pub struct CheckpointKeys(HashMap<String, DecodingKey>);

impl std::fmt::Debug for CheckpointKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.keys()).finish()
    }
}

impl CheckpointKeys {
    pub async fn load(store: &Store) -> Result<Self, StoreError> {
        let mut keys = HashMap::new();
        for row in store.signing_keys().await? {
            let key = DecodingKey::from_ed_components(&row.public_x).map_err(|_| {
                StoreError::Corrupt(format!("signing key `{}`: public key", row.kid))
            })?;
            keys.insert(row.kid.into_string(), key);
        }
        Ok(Self(keys))
    }

    /// The payload of a checkpoint JWS whose signature verifies.
    pub fn verify(&self, jws: &str) -> Result<Checkpoint, CheckpointError> {
        let invalid = |e: &dyn std::fmt::Display| CheckpointError::Invalid(e.to_string());
        let header = jsonwebtoken::decode_header(jws).map_err(|e| invalid(&e))?;
        if header.alg != Algorithm::EdDSA || header.typ.as_deref() != Some(CHECKPOINT_TYP) {
            return Err(CheckpointError::Invalid(format!(
                "expected `alg` EdDSA and `typ` {CHECKPOINT_TYP}"
            )));
        }
        let kid = header
            .kid
            .ok_or_else(|| CheckpointError::Invalid("no `kid`".into()))?;
        let key = self
            .0
            .get(&kid)
            .ok_or_else(|| CheckpointError::UnknownKid(kid.clone()))?;
        let mut v = Validation::new(Algorithm::EdDSA);
        v.required_spec_claims.clear();
        v.validate_exp = false;
        v.validate_aud = false;
        jsonwebtoken::decode::<Checkpoint>(jws, key, &v)
            .map(|d| d.claims)
            .map_err(|e| invalid(&e))
    }
}

/// Verify the whole log: the chain, the stored head, every stored
/// checkpoint, and the `witnessed` ones (from a witness copy). A checkpoint
/// whose signature does not verify, or whose fields differ from what was
/// signed, is itself reported.
pub async fn verify_log(
    store: &Store,
    witnessed: &[SignedCheckpoint],
) -> Result<Verification, StoreError> {
    let keys = CheckpointKeys::load(store).await?;
    let stored = store.checkpoints(&CheckpointFilter::default()).await?;
    let mut verifier = Verifier::new();
    for cp in stored.iter().chain(witnessed) {
        match keys.verify(&cp.jws) {
            Ok(payload) if cp.matches(&payload) => verifier.checkpoint(&payload),
            Ok(_) | Err(_) => verifier.bad_checkpoint(cp.seq),
        }
    }
    store.verify_audit_with(verifier).await
}

#[derive(Debug, Clone)]
enum Witness {
    File(PathBuf),
    Url(String),
}

impl Witness {
    fn parse(s: &str) -> Self {
        if s.starts_with("http://") || s.starts_with("https://") {
            Self::Url(s.to_owned())
        } else {
            Self::File(PathBuf::from(s))
        }
    }
}

/// The background task (started by `serve_on`).
pub async fn run(state: AppState) {
    let every = state.config.audit.checkpoint_every.max(1);
    let period = Duration::from_secs(state.config.audit.checkpoint_seconds.max(1));
    let witnesses: Vec<Witness> = state
        .config
        .audit
        .witnesses
        .iter()
        .map(|w| Witness::parse(w))
        .collect();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .ok();
    let mut committed = state.audit.subscribe();
    let mut last = match state.store().latest_checkpoint().await {
        Ok(cp) => cp.map_or(0, |cp| cp.seq),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the latest audit checkpoint");
            0
        }
    };
    let mut deadline = tokio::time::Instant::now() + period;
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(deadline) => {}
            changed = committed.changed() => {
                if changed.is_err() {
                    return; // the audit writer is gone
                }
                if *committed.borrow_and_update() < last.saturating_add(every) {
                    continue;
                }
            }
        }
        match checkpoint(&state).await {
            Ok(Some(cp)) => {
                last = cp.seq;
                for w in &witnesses {
                    send(w, &cp, http.as_ref()).await;
                }
            }
            Ok(None) => {}
            Err(e) => tracing::error!(error = %e, "cannot sign an audit checkpoint"),
        }
        deadline = tokio::time::Instant::now() + period;
    }
}

/// Sign the stored head if it moved past the latest checkpoint. `None`
/// when there is nothing new (or another replica signed it first).
pub async fn checkpoint(state: &AppState) -> Result<Option<SignedCheckpoint>, CheckpointError> {
    let bridle_store::AuditHead { seq, hash: head } = state.store().audit_head().await?;
    let previous = state.store().latest_checkpoint().await?;
    if seq == 0 || previous.as_ref().is_some_and(|p| p.seq >= seq) {
        return Ok(None);
    }
    // The segment since the previous checkpoint is checked first; a break
    // is signed all the same (the checkpoint records what is, and the break
    // stays visible to every verification) but raised loudly now.
    let mut verifier = match &previous {
        Some(p) => Verifier::resume(p.seq, &p.head),
        None => Verifier::new(),
    };
    verifier.head(seq, &head);
    let segment = state.store().verify_audit_with(verifier).await?;
    if !segment.ok {
        tracing::error!(broken = ?segment.broken, "the audit chain does not verify");
    }
    // Microseconds: the precision the store keeps instants in.
    let now = jiff::Timestamp::now().as_microsecond();
    let cp = Checkpoint {
        seq,
        head,
        time: jiff::Timestamp::from_microsecond(now)
            .map_err(|e| CheckpointError::Invalid(e.to_string()))?,
    };
    let jws = state.keys().sign_checkpoint(&cp)?;
    let signed = SignedCheckpoint {
        seq: cp.seq,
        head: cp.head,
        time: cp.time,
        jws,
    };
    if !state.store().add_checkpoint(&signed).await? {
        return Ok(None);
    }
    tracing::debug!(seq, "audit checkpoint signed");
    Ok(Some(signed))
}

async fn send(witness: &Witness, cp: &SignedCheckpoint, http: Option<&reqwest::Client>) {
    let line = match serde_json::to_string(cp) {
        Ok(line) => line,
        Err(e) => {
            tracing::error!(error = %e, "cannot serialise an audit checkpoint");
            return;
        }
    };
    match witness {
        Witness::File(path) => {
            if let Err(e) = append_line(path, &line).await {
                tracing::error!(path = %path.display(), error = %e, "cannot write the audit witness file");
            }
        }
        Witness::Url(url) => match http {
            Some(http) => {
                tokio::spawn(deliver(http.clone(), url.clone(), line));
            }
            None => tracing::error!(%url, "no HTTP client for the audit witness"),
        },
    }
}

/// Append one line and flush it to disk.
async fn append_line(path: &std::path::Path, line: &str) -> std::io::Result<()> {
    let mut file = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .await?;
    file.write_all(format!("{line}\n").as_bytes()).await?;
    file.sync_data().await
}

async fn deliver(http: reqwest::Client, url: String, body: String) {
    let mut delay = Duration::from_millis(500);
    for attempt in 1..=ATTEMPTS {
        let sent = http
            .post(&url)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await;
        match sent {
            Ok(r) if r.status().is_success() => return,
            Ok(r) => tracing::warn!(%url, attempt, status = %r.status(), "audit witness rejected"),
            Err(e) => tracing::warn!(%url, attempt, error = %e, "audit witness unreachable"),
        }
        tokio::time::sleep(delay).await;
        delay *= 2;
    }
    tracing::error!(%url, "audit witness gave up after {ATTEMPTS} attempts");
}
