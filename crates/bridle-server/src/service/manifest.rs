//! Changing an agent's record: who may apply a manifest, what it changes
//! against the version in force, and the history of versions.
//!
//! apply: authorize (before the body is read) → parse and compile → check
//! ownership → classify against the version in force → store the version
//! with its changes → cache → audit (`manifest`, with version, submitter,
//! changes and the SHA-256 of the source).

use bridle_core::audit::EventType;
use bridle_core::change::{Change, ChangeEffect, classify};
use bridle_core::engine::AgentState;
use bridle_core::id::AgentId;
use bridle_core::{CompiledAgent, Manifest, ManifestErrors};
use bridle_store::{AgentRow, AgentVersion, PrincipalStore, RegistryRead, RegistryWrite};
use sha2::{Digest, Sha256};

use super::ServiceError;
use crate::auth::Caller;
use crate::state::AppState;

/// A manifest applied: the record now in force and what it changed.
#[derive(Debug)]
pub struct Applied {
    pub row: AgentRow,
    pub created: bool,
    pub changes: Vec<Change>,
}

/// Whether `caller` may apply a manifest to `id` at all, decided before its
/// body is read (a caller who may not apply learns nothing and costs
/// nothing): an admin, or the current owner of an existing, live agent.
/// Returns the agent as it is now (`None` for a new id).
pub async fn authorize(
    state: &AppState,
    caller: &Caller,
    id: &AgentId,
) -> Result<Option<AgentRow>, ServiceError> {
    let principal = caller.principal().ok_or_else(|| {
        ServiceError::Refused("this endpoint is for principals, not agents".into())
    })?;
    let existing = state.store.agent(id).await?;
    if let Some(row) = &existing {
        if !(caller.is_admin() || row.owner == principal.id) {
            return Err(ServiceError::Refused(
                "only an admin or the agent's owner may apply its manifest".into(),
            ));
        }
        if row.state == AgentState::Retired {
            return Err(ServiceError::Conflict(format!(
                "agent `{id}` is retired; retirement is final"
            )));
        }
    }
    Ok(existing)
}

/// Apply `source` to `id` as `caller`, who passed [`authorize`] with
/// `existing`.
pub async fn apply(
    state: &AppState,
    caller: &Caller,
    id: &AgentId,
    existing: Option<AgentRow>,
    source: String,
) -> Result<Applied, ServiceError> {
    let principal = caller.principal().ok_or_else(|| {
        ServiceError::Refused("this endpoint is for principals, not agents".into())
    })?;
    // Parsing and compiling are CPU work bounded by `manifest::limits`; they
    // run on the blocking pool so no async worker (and no other caller's
    // decision) waits for them. The version in force is parsed there too,
    // to classify the change against it.
    let (manifest, compiled, source, in_force) = {
        let guardrails = state.guardrails.clone();
        let in_force_source = existing.as_ref().map(|row| row.source.clone());
        tokio::task::spawn_blocking(move || {
            let manifest = Manifest::from_source(&source).map_err(ServiceError::Manifest)?;
            // Compile before storing: a manifest that cannot be enforced is not accepted.
            let compiled = CompiledAgent::compile(manifest.clone(), &guardrails)
                .map_err(|e| ServiceError::Compile(e.to_string()))?;
            let in_force = in_force_source.map(|s| Manifest::from_source(&s));
            Ok::<_, ServiceError>((manifest, compiled, source, in_force))
        })
        .await
        .map_err(|e| ServiceError::Task(format!("parsing a manifest failed: {e}")))??
    };
    if manifest.agent != *id {
        return Err(ServiceError::Mismatch(format!(
            "the path names `{id}` but the manifest's `agent` is `{}`",
            manifest.agent
        )));
    }
    // Ownership is authority over the record: only an admin gives an agent
    // to someone else, at creation or later (an owner who could hand its
    // agent away could then approve that agent's requests as a bystander).
    match &existing {
        None if !(caller.is_admin() || manifest.owner == principal.id) => {
            return Err(ServiceError::Refused(format!(
                "only an admin may create an agent for another owner (`{}`)",
                manifest.owner
            )));
        }
        Some(row) if row.owner != manifest.owner && !caller.is_admin() => {
            return Err(ServiceError::Refused(format!(
                "only an admin may change the owner of `{id}` (from `{}` to `{}`)",
                row.owner, manifest.owner
            )));
        }
        _ => {}
    }
    match state.store.principal(&manifest.owner).await? {
        Some(p) if p.active => {}
        _ => return Err(ServiceError::OwnerInactive(manifest.owner.to_string())),
    }
    let changes = match &in_force {
        None => classify(None, &manifest),
        Some(Ok(old)) => classify(Some(old), &manifest),
        // The version in force no longer loads (a rule was tightened since):
        // nothing about the new one is provably narrower.
        Some(Err(e)) => vec![unclassifiable(e)],
    };
    let changes_json = serde_json::to_value(&changes)
        .map_err(|e| ServiceError::Task(format!("changes as JSON: {e}")))?;
    let (row, created) = state
        .store
        .apply_manifest(&manifest, &source, principal.id.as_str(), &changes_json)
        .await?;
    state.cache_compiled(row.id.as_str(), row.version, &compiled);
    // Delegation rules and DPoP requirements may have changed.
    state.tokens.invalidate();
    let mut event = state.event(EventType::Manifest, &caller.actor());
    event.agent = Some(row.id.to_string());
    event.detail = Some(serde_json::json!({
        "op": if created { "create" } else { "update" },
        "version": row.version,
        "submitter": principal.id.as_str(),
        "changes": changes_json,
        "source_sha256": source_sha256(&source),
    }));
    state.audit.append(event).await?;
    Ok(Applied {
        row,
        created,
        changes,
    })
}

/// The hex SHA-256 of a manifest's text as submitted.
pub fn source_sha256(source: &str) -> String {
    let digest = Sha256::digest(source.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// One widening change standing for a comparison that cannot be made.
fn unclassifiable(e: &ManifestErrors) -> Change {
    Change {
        path: String::new(),
        effect: ChangeEffect::Widening,
        detail: format!("the version it replaces no longer loads ({e}); not provably narrower"),
    }
}

/// One version of an agent's history, as the API shows it.
#[derive(Debug)]
pub struct Version {
    pub stored: AgentVersion,
    /// The version in force now.
    pub active: bool,
    pub changes: Vec<Change>,
}

/// Every version of `row`, oldest first, each with what it changed (as
/// stored, or classified again from the sources for versions from before
/// changes were kept).
pub async fn history(state: &AppState, row: &AgentRow) -> Result<Vec<Version>, ServiceError> {
    let stored = state.store.agent_versions(&row.id).await?;
    let in_force = row.version;
    tokio::task::spawn_blocking(move || {
        let mut previous: Option<Result<Manifest, ManifestErrors>> = None;
        let mut out = Vec::with_capacity(stored.len());
        for v in stored {
            let this = Manifest::from_source(&v.source);
            let changes = match v.changes.as_ref().and_then(stored_changes) {
                Some(changes) => changes,
                None => compare(previous.as_ref(), &this),
            };
            previous = Some(this);
            out.push(Version {
                active: v.version == in_force,
                stored: v,
                changes,
            });
        }
        out
    })
    .await
    .map_err(|e| ServiceError::Task(format!("classifying versions failed: {e}")))
}

/// Changes as [`apply`] stored them; `None` when they do not read back
/// (then they are classified again).
fn stored_changes(value: &serde_json::Value) -> Option<Vec<Change>> {
    #[derive(serde::Deserialize)]
    struct Stored {
        path: String,
        effect: String,
        detail: String,
    }
    let stored: Vec<Stored> = serde_json::from_value(value.clone()).ok()?;
    stored
        .into_iter()
        .map(|c| {
            let effect = [
                ChangeEffect::Widening,
                ChangeEffect::Narrowing,
                ChangeEffect::Neutral,
            ]
            .into_iter()
            .find(|e| e.as_str() == c.effect)?;
            Some(Change {
                path: c.path,
                effect,
                detail: c.detail,
            })
        })
        .collect()
}

fn compare(
    old: Option<&Result<Manifest, ManifestErrors>>,
    new: &Result<Manifest, ManifestErrors>,
) -> Vec<Change> {
    match (old, new) {
        (_, Err(e)) | (Some(Err(e)), _) => vec![unclassifiable(e)],
        (None, Ok(new)) => classify(None, new),
        (Some(Ok(old)), Ok(new)) => classify(Some(old), new),
    }
}

/// Two versions compared: a unified diff of their texts and the classified
/// changes from the first to the second.
#[derive(Debug)]
pub struct Diff {
    pub from: i64,
    pub to: i64,
    pub unified: String,
    pub changes: Vec<Change>,
}

/// `from` → `to` of `row` (`to` defaults to the version in force, `from` to
/// the version before `to`; `from` 0 compares against nothing, as for a new
/// agent).
pub async fn diff(
    state: &AppState,
    row: &AgentRow,
    from: Option<i64>,
    to: Option<i64>,
) -> Result<Diff, ServiceError> {
    let stored = state.store.agent_versions(&row.id).await?;
    let to = to.unwrap_or(row.version);
    let new = stored
        .iter()
        .find(|v| v.version == to)
        .ok_or(ServiceError::VersionNotFound(to))?
        .source
        .clone();
    let from = match from {
        Some(from) => from,
        None => stored
            .iter()
            .rev()
            .map(|v| v.version)
            .find(|v| *v < to)
            .unwrap_or(0),
    };
    let old = match from {
        0 => None,
        from => Some(
            stored
                .iter()
                .find(|v| v.version == from)
                .ok_or(ServiceError::VersionNotFound(from))?
                .source
                .clone(),
        ),
    };
    tokio::task::spawn_blocking(move || {
        let old_text = old.as_deref().unwrap_or("");
        let unified = similar::TextDiff::from_lines(old_text, new.as_str())
            .unified_diff()
            .context_radius(3)
            .header(&format!("version {from}"), &format!("version {to}"))
            .to_string();
        let old = old.map(|s| Manifest::from_source(&s));
        let changes = compare(old.as_ref(), &Manifest::from_source(&new));
        Diff {
            from,
            to,
            unified,
            changes,
        }
    })
    .await
    .map_err(|e| ServiceError::Task(format!("comparing versions failed: {e}")))
}
