//! Hostile manifests: every bound of `manifest::limits` gives a clear error
//! naming the path and line, never a crash or a long stall.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test fails by panicking: an unexpected shape should abort it loudly"
)]

use bridle_core::manifest::limits::{
    MAX_ALIAS_NODES, MAX_DEPTH, MAX_GRANTS, MAX_LIST_ITEMS, MAX_MANIFEST_BYTES,
};
use bridle_core::{Guardrails, Manifest, ManifestError};

const HEAD: &str = "\
agent: hostile-bot
owner: alice
purpose: Test the bounds
environment: dev
expires: 2027-12-31
";

fn errors(source: &str) -> Vec<ManifestError> {
    Manifest::from_source(source).unwrap_err().errors
}

fn only_error(source: &str) -> ManifestError {
    let errors = errors(source);
    assert_eq!(errors.len(), 1, "{errors:?}");
    errors.into_iter().next().unwrap()
}

/// Run `f` on a thread with a small stack: a stack overflow aborts the test
/// binary, which fails the test.
fn on_small_stack(f: impl FnOnce() + Send + 'static) {
    std::thread::Builder::new()
        .stack_size(512 * 1024)
        .spawn(f)
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn duplicate_yaml_keys_name_the_path_and_both_lines() {
    let e = only_error(&format!(
        "{HEAD}tools:\n  - name: a\n    access: read\n    access: admin\n"
    ));
    assert_eq!(e.path, "tools[0].access");
    assert_eq!(e.line, 9);
    assert!(e.message.contains("duplicate key `access`"), "{e:?}");
    assert!(e.message.contains("line 8"), "{e:?}");
    let e = only_error(&format!("{HEAD}owner: mallory\n"));
    assert_eq!((e.path.as_str(), e.line), ("owner", 6));
}

#[test]
fn duplicate_json_keys_name_the_path_and_line() {
    let source = "{\"agent\": \"hostile-bot\", \"owner\": \"alice\", \"purpose\": \"p\",\n \
                  \"environment\": \"dev\", \"expires\": \"2027-12-31\",\n \
                  \"limits\": {\"budgets\": [{\"arg\": \"amount\", \"max\": 5, \"max\": 500000, \"per\": \"1h\"}]}}";
    let e = only_error(source);
    assert_eq!(e.path, "limits.budgets[0].max");
    assert_eq!(e.line, 3);
    assert!(e.message.contains("duplicate key `max`"), "{e:?}");
}

#[test]
fn deep_yaml_and_json_nesting_is_refused_without_recursion() {
    on_small_stack(|| {
        for n in [MAX_DEPTH + 1, 150, 30_000] {
            // Either bound may stop it first: ours, or the YAML scanner's
            // own limit on flow nesting.
            let too_deep = |e: &ManifestError| {
                e.message.contains("nesting deeper than")
                    || e.message.contains("recursion limit exceeded")
            };
            let flow = format!("{HEAD}x: {}1{}\n", "[".repeat(n), "]".repeat(n));
            let e = only_error(&flow);
            assert!(too_deep(&e), "{e:?}");
            assert!(e.path.starts_with("x[0]"), "{e:?}");
            let json = format!("{}1{}", "{\"a\": ".repeat(n), "}".repeat(n));
            let e = only_error(&json);
            assert!(too_deep(&e), "{e:?}");
            let block: String = (0..n.min(300))
                .map(|i| format!("{}- \n", "  ".repeat(i)))
                .collect();
            let e = only_error(&format!("{HEAD}x:\n{block}"));
            assert!(too_deep(&e), "{e:?}");
        }
    });
}

#[test]
fn aliases_are_bounded_by_the_nodes_they_expand_to() {
    // 20,000 aliases of one small anchor: each use counts.
    let mut source = format!("{HEAD}tools:\n  - &t {{name: \"a.*\"}}\n");
    for _ in 0..20_000 {
        source.push_str("  - *t\n");
    }
    let e = only_error(&source);
    assert!(e.message.contains("aliases expand to more than"), "{e:?}");
    assert!(e.path.starts_with("tools["), "{e:?}");
    // A few shared lists are fine.
    let ok = format!(
        "{HEAD}tools:\n  - name: a\n    approval: {{approvers: &who [alice, bob]}}\n  - name: b\n    approval: {{approvers: *who}}\n"
    );
    Manifest::from_source(&ok).unwrap();
    // An alias may not carry a deep anchor past the depth bound either.
    let deep = format!(
        "{HEAD}x: &d {}1{}\ny: [[[[[[*d]]]]]]\n",
        "[".repeat(MAX_DEPTH - 3),
        "]".repeat(MAX_DEPTH - 3)
    );
    let e = only_error(&deep);
    assert_eq!(e.line, 7, "{e:?}");
    assert!(e.message.contains("nesting deeper than"), "{e:?}");
    const { assert!(MAX_ALIAS_NODES < 20_000) };
}

#[test]
fn too_many_grants_or_list_items_are_refused_with_the_path() {
    let mut source = format!("{HEAD}tools:\n");
    for i in 0..=MAX_GRANTS {
        source.push_str(&format!("  - name: t{i}\n"));
    }
    let e = only_error(&source);
    assert_eq!((e.path.as_str(), e.line), ("tools", 7));
    assert!(
        e.message.contains(&format!("at most {MAX_GRANTS}")),
        "{e:?}"
    );

    let forbid = format!(
        "{HEAD}forbid: [{}]\n",
        (0..=MAX_LIST_ITEMS)
            .map(|i| format!("f{i}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let e = only_error(&forbid);
    assert_eq!(e.path, "forbid");

    // At the bound, a manifest loads.
    let mut source = format!("{HEAD}tools:\n");
    for i in 0..MAX_GRANTS {
        source.push_str(&format!("  - name: t{i}\n"));
    }
    assert_eq!(
        Manifest::from_source(&source).unwrap().tools.len(),
        MAX_GRANTS
    );
}

#[test]
fn an_oversized_manifest_is_refused_before_it_is_parsed() {
    let source = format!("{HEAD}purpose: \"{}\"\n", "x".repeat(MAX_MANIFEST_BYTES));
    let e = only_error(&source);
    assert!(e.message.contains("bytes; at most"), "{e:?}");
}

#[test]
fn deep_cedar_in_any_condition_is_refused_on_a_small_stack() {
    on_small_stack(|| {
        let deep = format!("{}true{}", "(".repeat(150), ")".repeat(150));
        let sets = format!("{}1{} == []", "[".repeat(150), "]".repeat(150));
        for (body, path) in [
            (
                format!("tools:\n  - name: a\n    when: \"{deep}\"\n"),
                "tools[0].when",
            ),
            (
                format!(
                    "tools:\n  - name: a\n    approval: {{when: \"{sets}\", approvers: [alice]}}\n"
                ),
                "tools[0].approval.when",
            ),
            (
                format!(
                    "elevation:\n  - name: e\n    tools: [x]\n    max_duration: 1h\n    approvers: [alice]\n    auto_grant_when: \"{deep}\"\n"
                ),
                "elevation[0].auto_grant_when",
            ),
        ] {
            let e = only_error(&format!("{HEAD}{body}"));
            assert_eq!(e.path, path, "{e:?}");
            assert!(e.message.contains("nested deeper than"), "{e:?}");
        }
        let mut g = Guardrails::new();
        let policy = format!("forbid(principal, action, resource) when {{ {deep} }};");
        let e = g.add("deep.cedar", &policy).unwrap_err().to_string();
        assert!(e.contains("nested deeper than"), "{e}");
        assert!(g.is_empty());
    });
}
