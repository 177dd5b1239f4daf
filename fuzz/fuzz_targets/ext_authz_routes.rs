//! The ext_authz route table: the `[ext_authz]` TOML as the server's
//! configuration reads it, its validation, then requests matched against
//! it.
//!
//! Input: the TOML table's body, a line `----`, then one request per line,
//! `METHOD REQUEST-TARGET` (parsed as the HTTP request's URI).
#![no_main]

use axum::http::Uri;
use bridle_server::ext_authz::ExtAuthzConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (config, requests) = text.split_once("\n----\n").unwrap_or((text, ""));
    let Ok(config) = toml::from_str::<ExtAuthzConfig>(config) else {
        return;
    };
    if config.validate().is_err() {
        return;
    }
    for line in requests.lines() {
        let (method, target) = line.split_once(' ').unwrap_or((line, "/"));
        let Ok(uri) = target.parse::<Uri>() else {
            continue;
        };
        let Some(m) = config.matching(method, uri.path()) else {
            continue;
        };
        assert!(
            bridle_core::id::is_tool_name(&m.action),
            "a route matched to a non-tool action"
        );
        for (name, value) in &m.params {
            // A captured segment is one non-empty segment: never a `/`.
            assert!(!value.is_empty(), "empty capture {name}");
            assert!(!value.contains('/'), "capture {name} spans segments");
        }
    }
});
