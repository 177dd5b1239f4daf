//! The body of `POST /v1/decisions` as the server reads it, then the
//! handler's own checks and the engine's decision for the action and
//! arguments it names (against `examples/procurement-bot.yaml`).
#![no_main]

use axum::Json;
use bridle_server::routes::decisions::DecisionRequest;
use libfuzzer_sys::fuzz_target;

/// The server's body parser: the `Json` extractor into the request type.
/// (One place to change when the server's parser changes.)
fn parse(body: &[u8]) -> bool {
    Json::<DecisionRequest>::from_bytes(body).is_ok()
}

fuzz_target!(|data: &[u8]| {
    if !parse(data) {
        return;
    }
    // The request type's fields are the server's own; read the accepted
    // body again as JSON for the steps after parsing, as `decide` takes them.
    let Ok(serde_json::Value::Object(body)) = serde_json::from_slice(data) else {
        return;
    };
    let Some(action) = body.get("action").and_then(|a| a.as_str()) else {
        return;
    };
    if !bridle_core::id::is_tool_name(action) {
        return;
    }
    let args = match body.get("args") {
        None | Some(serde_json::Value::Null) => serde_json::Map::new(),
        Some(serde_json::Value::Object(m)) => m.clone(),
        Some(_) => return,
    };
    let resource = body.get("resource").and_then(|r| r.as_str());
    let Some(agent) = bridle_fuzz::procurement_bot() else {
        return;
    };
    let engine = bridle_core::Engine::new();
    let ledger = bridle_core::ledger::MemoryLedger::new();
    let decision = bridle_fuzz::decide(&engine, &ledger, agent, action, &args, resource);
    // The decision is serialised into the response and the audit record.
    let _ = serde_json::to_string(&decision);
});
