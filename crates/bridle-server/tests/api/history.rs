//! The history of a record: every version as submitted, who submitted it
//! and what it changed, visible to those who may read the agent. The attack
//! it answers: an owner raised an approval threshold, acted, and reverted,
//! and the audit said only `{"op":"update","version":2}`.

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::common::{ADMIN_KEY, Server, manifest};

fn pay(threshold: u32, purpose: &str) -> String {
    manifest("pay-bot", "alice", "").replace("Exercise the API", purpose)
        + &format!(
            "tools:\n  - name: payments.wire\n    access: write\n    args:\n      amount: {{ min: 1, max: 1000000 }}\n    approval:\n      when: context.args.amount > {threshold}\n      approvers: [group:finance-approvers]\n"
        )
}

fn effects(changes: &Value) -> Vec<(String, String)> {
    changes
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["path"].as_str().unwrap().to_owned(),
                c["effect"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn sha256(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

async fn versions_diffs_and_audit_show_what_changed(s: Server) {
    let people = s.people().await;
    let alice = &people["alice"];
    let (v1, v2, v3) = (
        pay(5000, "Pay invoices"),
        pay(100000, "Pay invoices"),
        pay(5000, "Pay approved invoices"),
    );
    let r = s.apply(alice, &v1).await.expect(201);
    assert!(
        effects(&r["changes"]).iter().all(|(_, e)| e == "widening"),
        "a new agent's grants are all widening: {}",
        r.text
    );
    let r = s.apply(alice, &v2).await.expect(200);
    assert_eq!(r["version"], 2);
    let raised = effects(&r["changes"]);
    assert!(
        raised
            .iter()
            .any(|(p, e)| p.contains("payments.wire") && p.contains("approval") && e == "widening"),
        "raising the threshold is widening: {raised:?}"
    );
    let r = s.apply(alice, &v3).await.expect(200);
    let reverted = effects(&r["changes"]);
    // Whether lowering a threshold narrows depends on what the classifier
    // can prove of a Cedar condition; it is never passed over as neutral.
    assert!(
        reverted
            .iter()
            .any(|(p, e)| p.contains("approval.when") && e != "neutral"),
        "{reverted:?}"
    );
    assert!(
        reverted
            .iter()
            .any(|(p, e)| p == "purpose" && e == "neutral"),
        "{reverted:?}"
    );

    // Every version, oldest first, with its submitter and standing.
    let list = s
        .get("/v1/agents/pay-bot/versions", alice)
        .await
        .expect(200);
    let versions = list["versions"].as_array().unwrap();
    let summary: Vec<(i64, &str, &str)> = versions
        .iter()
        .map(|v| {
            (
                v["version"].as_i64().unwrap(),
                v["state"].as_str().unwrap(),
                v["created_by"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (1, "superseded", "alice"),
            (2, "superseded", "alice"),
            (3, "active", "alice")
        ]
    );
    assert_eq!(effects(&versions[1]["changes"]), raised);

    // A version's text exactly as submitted.
    let v = s
        .get("/v1/agents/pay-bot/versions/2", alice)
        .await
        .expect(200);
    assert_eq!(v["source"], v2.as_str());
    assert_eq!(
        v["manifest"]["tools"][0]["approval"]["when"],
        "context.args.amount > 100000"
    );

    // A diff between any two versions; by default the last change.
    let d = s
        .get("/v1/agents/pay-bot/diff?from=1&to=2", alice)
        .await
        .expect(200);
    let unified = d["unified"].as_str().unwrap();
    assert!(
        unified.contains("-      when: context.args.amount > 5000")
            && unified.contains("+      when: context.args.amount > 100000"),
        "{unified}"
    );
    assert_eq!(effects(&d["changes"]), raised);
    let d = s.get("/v1/agents/pay-bot/diff", alice).await.expect(200);
    assert_eq!((d["from"].as_i64(), d["to"].as_i64()), (Some(2), Some(3)));
    assert_eq!(effects(&d["changes"]), reverted);

    // The audit says who changed what, with the text's hash.
    let events = s.audit(ADMIN_KEY, "type=manifest&agent=pay-bot").await;
    assert_eq!(events.len(), 3, "{events:?}");
    let e = &events[1];
    assert_eq!(e["detail"]["op"], "update");
    assert_eq!(e["detail"]["version"], 2);
    assert_eq!(e["detail"]["submitter"], "alice");
    assert_eq!(e["detail"]["source_sha256"], sha256(&v2).as_str());
    assert_eq!(effects(&e["detail"]["changes"]), raised);

    // Others do not see that the agent exists; bad versions are named.
    for path in [
        "/v1/agents/pay-bot/versions",
        "/v1/agents/pay-bot/versions/1",
        "/v1/agents/pay-bot/diff",
    ] {
        s.get(path, &people["mallory"]).await.problem(404);
        s.get(path, &people["ann"]).await.expect(200);
    }
    s.get("/v1/agents/pay-bot/versions/9", alice)
        .await
        .problem(404);
    s.get("/v1/agents/pay-bot/diff?from=9", alice)
        .await
        .problem(404);
    let r = s
        .get("/v1/agents/pay-bot/versions/two", alice)
        .await
        .problem(400);
    assert_eq!(r["errors"][0]["path"], "version");
}
on_both!(versions_diffs_and_audit_show_what_changed);
