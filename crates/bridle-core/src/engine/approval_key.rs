//! The key a human approval binds to: exactly one request, canonically.

use sha2::{Digest, Sha256};

use super::DecisionInput;

/// The key an approval binds to: subject, delegation chain, action, canonical
/// arguments (object keys sorted) and resource, hashed.
pub fn approval_key(input: &DecisionInput<'_>) -> String {
    let chain: Vec<&str> = input
        .subjects
        .iter()
        .map(|s| s.agent.manifest().agent.as_str())
        .collect();
    let canonical = sorted_keys(&serde_json::json!({
        "chain": chain,
        "action": input.action.name,
        "args": input.action.args,
        "resource": input.action.resource,
    }));
    // A `Value`'s compact `Display` is its JSON text and cannot fail (every
    // key is a string), so there is no error to lose on the way to the hash.
    let digest = Sha256::digest(canonical.to_string().as_bytes());
    crate::audit::hex(&digest)
}

/// `v` with every object's keys in sorted order. serde_json's map keeps
/// insertion order when its `preserve_order` feature is on (cedar-policy turns
/// it on), so sorting here is what makes the serialization canonical.
fn sorted_keys(v: &serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            serde_json::Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k.clone(), sorted_keys(v)))
                    .collect(),
            )
        }
        serde_json::Value::Array(items) => {
            serde_json::Value::Array(items.iter().map(sorted_keys).collect())
        }
        other => other.clone(),
    }
}
