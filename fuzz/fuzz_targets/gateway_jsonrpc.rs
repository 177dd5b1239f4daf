//! A JSON-RPC message as the gateway's `/mcp` endpoint receives it: rmcp's
//! deserialisation into a client message, then what the gateway does with
//! a request before forwarding it: route the name to an upstream by prefix,
//! name the action decided, collect the URLs the arguments retrieve from.
#![no_main]

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use bridle_gateway::config::UpstreamConfig;
use bridle_gateway::proxy::retrievals;
use bridle_gateway::upstream::{Upstream, Upstreams};
use libfuzzer_sys::fuzz_target;
use rmcp::model::{ClientJsonRpcMessage, ClientRequest, JsonRpcMessage};
use serde_json::Value;

/// Upstreams with overlapping prefixes. Their supervisors are spawned on a
/// runtime that never runs, so nothing connects anywhere.
fn upstreams() -> Option<&'static Upstreams> {
    static UPSTREAMS: OnceLock<Option<(tokio::runtime::Runtime, Upstreams)>> = OnceLock::new();
    UPSTREAMS
        .get_or_init(|| {
            let rt = tokio::runtime::Builder::new_current_thread().build().ok()?;
            let _guard = rt.enter();
            let all = ["everything.", "every.", "fs.", ""]
                .iter()
                .enumerate()
                .map(|(i, prefix)| {
                    let cfg = UpstreamConfig {
                        name: format!("up{i}"),
                        command: None,
                        url: Some("http://127.0.0.1:9/mcp".into()),
                        prefix: (*prefix).into(),
                        headers_from_env: BTreeMap::new(),
                    };
                    Upstream::start(&cfg, Duration::from_secs(1), Default::default()).ok()
                })
                .collect::<Option<Vec<_>>>()?;
            drop(_guard);
            let ups = Upstreams {
                all,
                resource_owner: Arc::new(RwLock::new(HashMap::new())),
            };
            Some((rt, ups))
        })
        .as_ref()
        .map(|(_, u)| u)
}

/// The routing of `name` must leave a non-empty upstream name behind the
/// longest matching prefix.
fn route(ups: &Upstreams, name: &str) -> Option<(String, String)> {
    let (u, rest) = ups.route(name)?;
    assert!(!rest.is_empty(), "routed to an empty upstream name");
    assert_eq!(
        format!("{}{rest}", u.prefix),
        name,
        "routing lost characters"
    );
    Some((u.prefix.clone(), rest.to_owned()))
}

fuzz_target!(|data: &[u8]| {
    let Ok(message) = serde_json::from_slice::<ClientJsonRpcMessage>(data) else {
        return;
    };
    // Answers and forwards serialise the message again.
    if let Ok(text) = serde_json::to_string(&message) {
        let _ = serde_json::from_str::<ClientJsonRpcMessage>(&text);
    }
    let Some(ups) = upstreams() else {
        return;
    };
    let JsonRpcMessage::Request(request) = message else {
        return;
    };
    match request.request {
        ClientRequest::CallToolRequest(r) => {
            let action = r.params.name.to_string();
            if route(ups, &action).is_some() {
                let args = r.params.arguments.unwrap_or_default();
                let mut seen = Vec::new();
                retrievals(&Value::Object(args), &mut seen);
                assert!(seen.iter().all(|s| s.contains("://") && s.len() <= 4096));
            }
        }
        ClientRequest::GetPromptRequest(r) => {
            if let Some((prefix, prompt)) = route(ups, &r.params.name) {
                let _action = format!("{prefix}prompt.{prompt}");
            }
        }
        ClientRequest::ReadResourceRequest(r) => {
            let _ = ups
                .resource_owner
                .read()
                .map(|m| m.get(&r.params.uri).copied());
        }
        _ => {}
    }
});
