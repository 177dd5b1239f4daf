//! Shared pieces of Bridle's fuzz targets: a fixed Ed25519 key the targets
//! sign their own inputs with (so the fuzzer gets past signature checks into
//! the claim checks), a compiled example manifest, and the line framing the
//! multi-field targets use.

use std::sync::OnceLock;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bridle_core::{CompiledAgent, Guardrails, Manifest};
use ed25519_dalek::{Signer, SigningKey};

/// The instant every target checks times against (2026-06-01T00:00:00Z), so
/// a corpus entry means the same thing on every run.
pub const NOW: i64 = 1_780_272_000;

/// Issuer the `jwt` target's tokens are verified against.
pub const ISSUER: &str = "https://bridle.example";

/// Key id of the fuzz signing key.
pub const KID: &str = "fuzz-key";

/// The fixed signing key (not secret: it exists only in the fuzz targets).
pub fn signing_key() -> &'static SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(|| SigningKey::from_bytes(&[7u8; 32]))
}

/// The public half as a JWK (what a DPoP proof or a client registration
/// carries).
pub fn public_jwk() -> serde_json::Value {
    let x = URL_SAFE_NO_PAD.encode(signing_key().verifying_key().to_bytes());
    serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": x})
}

/// A compact JWS over `header` and `payload` exactly as given (bytes, not
/// necessarily JSON), signed with [`signing_key`].
pub fn sign(header: &[u8], payload: &[u8]) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let signature = signing_key().sign(input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
}

/// Split `data` into at most `n` newline-separated fields (the last keeps
/// any further newlines); missing fields are empty.
pub fn fields(data: &str, n: usize) -> Vec<&str> {
    let mut out: Vec<&str> = data.splitn(n, '\n').collect();
    out.resize(n, "");
    out
}

/// `examples/procurement-bot.yaml`, compiled: grants with argument checks,
/// an approval rule, a forbid, a rate and a budget.
pub fn procurement_bot() -> Option<&'static CompiledAgent> {
    static AGENT: OnceLock<Option<CompiledAgent>> = OnceLock::new();
    AGENT
        .get_or_init(|| {
            let source = include_str!("../../examples/procurement-bot.yaml");
            let manifest = Manifest::from_source(source).ok()?;
            CompiledAgent::compile(manifest, &Guardrails::new()).ok()
        })
        .as_ref()
}

/// Arguments that exercise numeric, string, list and nested checks.
fn sample_args() -> serde_json::Map<String, serde_json::Value> {
    let serde_json::Value::Object(m) = serde_json::json!({
        "amount": 6000, "vendor": "acme", "path": "/tmp/x", "recipients": ["a@example.com"],
        "nested": {"k": [1, 2.5, null, true]}, "query": "https://example.com/a b",
    }) else {
        return serde_json::Map::new();
    };
    m
}

/// The whole manifest path the server takes on apply and on load: parse,
/// compile to Cedar (conditions type-checked), then decide one action per
/// grant (at most eight) with and without arguments, which evaluates every
/// compiled condition.
pub fn manifest_path(source: &str) {
    let Ok(manifest) = Manifest::from_source(source) else {
        return;
    };
    let names: Vec<String> = manifest
        .tools
        .iter()
        .map(|g| g.name.as_str().replace('*', "x"))
        .take(8)
        .collect();
    let Ok(agent) = CompiledAgent::compile(manifest, &Guardrails::new()) else {
        return;
    };
    let _ = agent.policy_text();
    let engine = bridle_core::Engine::new();
    let ledger = bridle_core::ledger::MemoryLedger::new();
    let empty = serde_json::Map::new();
    let args = sample_args();
    for name in &names {
        for args in [&empty, &args] {
            decide(&engine, &ledger, &agent, name, args, Some("crm:cases/1"));
        }
    }
}

/// One decision by the real engine for `agent`, at [`NOW`].
pub fn decide(
    engine: &bridle_core::Engine,
    ledger: &dyn bridle_core::ledger::Ledger,
    agent: &CompiledAgent,
    action: &str,
    args: &serde_json::Map<String, serde_json::Value>,
    resource: Option<&str>,
) -> bridle_core::Decision {
    let subjects = [bridle_core::Subject {
        agent,
        state: bridle_core::AgentState::Active,
        elevations: &[],
    }];
    let now = jiff::Timestamp::from_second(NOW).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    let input = bridle_core::DecisionInput {
        subjects: &subjects,
        scope: None,
        action: bridle_core::ActionRequest {
            name: action,
            args,
            resource,
        },
        now,
    };
    let decided = engine.decide(&input, ledger, &bridle_core::NoApprovals);
    decided.usage.commit(ledger);
    decided.decision
}

/// The server's signing keys with [`signing_key`] as the only key
/// ([`KID`]), built from a store row as the server builds them.
pub fn server_keys() -> Option<&'static bridle_server::tokens::Keys> {
    use ed25519_dalek::pkcs8::EncodePrivateKey;
    static KEYS: OnceLock<Option<bridle_server::tokens::Keys>> = OnceLock::new();
    KEYS.get_or_init(|| {
        let der = signing_key().to_pkcs8_der().ok()?;
        // Sealed as the server stores it, with a key-encryption key of its own.
        let kek = bridle_server::kek::Kek::generate();
        let row = bridle_store::SigningKeyRow {
            kid: KID.parse().ok()?,
            private_der: kek.seal(KID, der.as_bytes()).ok()?,
            public_x: URL_SAFE_NO_PAD.encode(signing_key().verifying_key().to_bytes()),
            created_at: "2026-01-01T00:00:00Z".parse().ok()?,
            retired_at: None,
        };
        bridle_server::tokens::Keys::from_rows(&[row], &kek, jiff::Timestamp::now()).ok()
    })
    .as_ref()
}
