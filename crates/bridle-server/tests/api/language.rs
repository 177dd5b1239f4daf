//! The manifest language through the API: the most specific grant governs
//! (the `invoices.*` attack), and the manifest JSON Schema is served.

use serde_json::json;

use crate::common::{ADMIN_KEY, Server, assert_decision, effect, manifest};

/// `invoices.*` next to a constrained `invoices.pay_invoice` once lifted
/// the vendor list, the cap and the approval.
async fn a_glob_does_not_lift_a_literal_grants_constraints(s: Server) {
    s.principal("alice", &[], &[]).await;
    s.principal("frank", &[], &["finance-approvers"]).await;
    let yaml = manifest(
        "ap-bot",
        "alice",
        "tools:\n  - name: \"invoices.*\"\n  - name: invoices.pay_invoice\n    access: write\n    args:\n      vendor: { in: [acme, globex] }\n      amount: { max: 1000000 }\n    approval:\n      when: context.args.amount > 500000\n      approvers: [group:finance-approvers]\n",
    );
    s.apply(ADMIN_KEY, &yaml).await.expect(201);
    let token = s.agent_token("ap-bot").await;
    let pay = |args| s.decide(&token, "invoices.pay_invoice", args);

    let d = pay(json!({"vendor": "evil-corp", "amount": 100})).await;
    assert_decision(&d, "deny", "arg_constraint");
    let d = pay(json!({"vendor": "acme", "amount": 900_000_000})).await;
    assert_decision(&d, "deny", "arg_constraint");
    let d = pay(json!({"vendor": "acme", "amount": 900_000})).await;
    assert_eq!(effect(&d), "approval_required", "{d}");
    let d = pay(json!({"vendor": "acme", "amount": 100})).await;
    assert_decision(&d, "allow", "granted");
    let d = s.decide(&token, "invoices.list", json!({})).await;
    assert_decision(&d, "allow", "granted");
}
on_both!(a_glob_does_not_lift_a_literal_grants_constraints);

/// Equally specific grants that match one name are refused: 422 with the
/// path and line.
async fn equally_specific_grants_are_refused(s: Server) {
    s.principal("alice", &[], &[]).await;
    let yaml = manifest(
        "dup-bot",
        "alice",
        "tools:\n  - name: \"*.pay\"\n  - name: \"*\"\n",
    );
    let r = s.apply(ADMIN_KEY, &yaml).await.problem(422);
    let errors = r.json["errors"].as_array().unwrap();
    assert!(
        errors
            .iter()
            .any(|e| e["path"] == "tools[1].name" && e["line"] == 8),
        "{}",
        r.json
    );
}
on_both!(equally_specific_grants_are_refused);

/// Public, for editors: the schema as the core generates it.
async fn the_manifest_schema_is_served_without_auth(s: Server) {
    let r = s.get("/schemas/manifest-v1.json", "").await.expect(200);
    assert_eq!(r.content_type, "application/schema+json");
    assert_eq!(r.text, bridle_core::manifest::schema::json_schema_text());
    assert_eq!(r.json["title"], "Bridle agent manifest, format v1");
}
on_both!(the_manifest_schema_is_served_without_auth);
