//! The manifest JSON Schema: the committed `docs/manifest-v1.schema.json` is
//! the generated one, and every example (`examples/`, and each YAML block of
//! `docs/manifest.md`) loads and validates against it.
//!
//! Regenerate the committed file with
//! `BRIDLE_WRITE_SCHEMA=1 cargo test -p bridle-core --test schema`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test fails by panicking: an unexpected shape should abort it loudly"
)]

mod common;

use std::path::PathBuf;

use bridle_core::Manifest;
use bridle_core::manifest::schema::{json_schema, json_schema_text};
use common::examples_dir;

fn docs_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs")
}

fn validator() -> jsonschema::Validator {
    jsonschema::draft202012::new(&json_schema()).unwrap()
}

fn assert_valid(validator: &jsonschema::Validator, what: &str, source: &str) {
    let m = Manifest::from_source(source).unwrap_or_else(|e| panic!("{what} does not load: {e}"));
    let errors: Vec<String> = validator
        .iter_errors(&m.document)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{what} does not validate: {errors:#?}");
}

#[test]
fn the_committed_schema_is_the_generated_one() {
    let path = docs_dir().join("manifest-v1.schema.json");
    let generated = json_schema_text();
    if std::env::var_os("BRIDLE_WRITE_SCHEMA").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{} is stale: regenerate it with BRIDLE_WRITE_SCHEMA=1 cargo test -p bridle-core --test schema",
        path.display()
    );
}

#[test]
fn every_example_validates() {
    let v = validator();
    let mut n = 0;
    for entry in std::fs::read_dir(examples_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            assert_valid(
                &v,
                &path.display().to_string(),
                &std::fs::read_to_string(&path).unwrap(),
            );
            n += 1;
        }
    }
    assert!(n >= 5, "only {n} examples");
}

/// Every ```yaml block of the manifest reference is a whole manifest that
/// loads and validates.
#[test]
fn every_yaml_example_of_the_reference_validates() {
    let v = validator();
    let doc = std::fs::read_to_string(docs_dir().join("manifest.md")).unwrap();
    let mut blocks = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (i, line) in doc.lines().enumerate() {
        match &mut current {
            None if line.trim_start() == "```yaml" => current = Some((i + 1, String::new())),
            Some((start, text)) if line.trim_start() == "```" => {
                blocks.push((*start, std::mem::take(text)));
                current = None;
            }
            Some((_, text)) => {
                text.push_str(line);
                text.push('\n');
            }
            None => {}
        }
    }
    assert!(blocks.len() >= 5, "only {} YAML blocks", blocks.len());
    for (line, text) in blocks {
        assert_valid(&v, &format!("docs/manifest.md block at line {line}"), &text);
    }
}

/// The schema refuses what the loader refuses by shape, so an editor
/// flags it as it is typed.
#[test]
fn the_schema_rejects_shape_errors() {
    let v = validator();
    let base = serde_json::json!({
        "agent": "a-bot", "owner": "alice", "purpose": "p",
        "environment": "dev", "expires": "2027-12-31",
        "tools": [{"name": "docs.read"}]
    });
    assert!(v.is_valid(&base));
    let broken = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut m = base.clone();
        f(&mut m);
        m
    };
    let cases = [
        broken(&|m| m["tols"] = serde_json::json!([])),
        broken(&|m| m["environment"] = "production".into()),
        broken(&|m| m["tools"][0]["access"] = "delete".into()),
        broken(&|m| m["tools"][0]["nmae"] = "x".into()),
        broken(&|m| m["tools"][0]["args"] = serde_json::json!({"amount": {}})),
        broken(&|m| m["tools"][0]["args"] = serde_json::json!({"amount": {"max": "10"}})),
        broken(&|m| m["tools"][0]["approval"] = serde_json::json!({"approvers": []})),
        broken(&|m| m["agent"] = "Not An Id".into()),
        broken(&|m| {
            m["limits"] =
                serde_json::json!({"budgets": [{"arg": "amount", "max": -1, "per": "1d"}]})
        }),
        broken(&|m| m["credentials"] = serde_json::json!({"dpop": "yes"})),
        broken(&|m| {
            m.as_object_mut().unwrap().remove("owner");
        }),
    ];
    for (i, m) in cases.iter().enumerate() {
        assert!(!v.is_valid(m), "case {i} validates: {m}");
    }
}
