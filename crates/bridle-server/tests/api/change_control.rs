//! Change control: in a change-controlled environment, a widening manifest
//! change or a new agent is proposed, not applied, and comes into force only
//! when someone other than its submitter approves it. Each attack below
//! worked before: any principal could register an agent with `*` authority
//! and use it at once, and hold an id for ever.

use serde_json::{Value, json};

use crate::common::{ADMIN_KEY, Server, assert_decision, effect};

/// The default `[change_control]` (staging and prod, approvers `role:admin`),
/// which the suite's other tests turn off.
fn controlled(config: &mut bridle_server::Config) {
    config.change_control = bridle_server::config::ChangeControl::default();
}

fn pay(owner: &str, threshold: u32) -> String {
    format!(
        "agent: pay-bot\nowner: {owner}\npurpose: Pay approved invoices\nenvironment: prod\nexpires: 2099-12-31\nreview_every: 90d\ntools:\n  - name: payments.wire\n    access: write\n    args:\n      amount: {{ min: 1, max: 1000000 }}\n    approval:\n      when: context.args.amount > {threshold}\n      approvers: [group:finance-approvers]\n"
    )
}

fn wildcard(id: &str, owner: &str) -> String {
    format!(
        "agent: {id}\nowner: {owner}\npurpose: Everything\nenvironment: prod\nexpires: 2099-12-31\ntools:\n  - name: \"*\"\n    access: admin\ndata:\n  - {{ resource: \"*\", access: [read, write, export, admin] }}\n"
    )
}

fn widening(changes: &Value) -> bool {
    changes
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["effect"] == "widening")
}

async fn second_admin(s: &Server) -> String {
    s.principal("sec-lead", &["admin"], &[]).await
}

async fn a_widening_change_waits_for_a_second_person(s: Server) {
    let people = s.people().await;
    let alice = &people["alice"];
    let lead = second_admin(&s).await;

    // A new prod agent is proposed, not created.
    let r = s.apply(alice, &pay("alice", 5000)).await.expect(202);
    assert_eq!(r["state"], "pending_approval");
    assert_eq!(r["version"], 1);
    assert!(widening(&r["changes"]), "{}", r.text);
    let eligible: Vec<&str> = r["eligible_approvers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(eligible, ["admin", "sec-lead"]);
    let first = r["approval_id"].as_str().unwrap().to_owned();
    let row = s.get("/v1/agents/pay-bot", alice).await.expect(200);
    assert_eq!(row["state"], "proposed");
    // Nothing is issued for it yet.
    s.post("/v1/agents/pay-bot/credentials", ADMIN_KEY, json!({}))
        .await
        .problem(409);

    // The approver sees the diff and what it changes.
    let a = s
        .get(&format!("/v1/approvals/{first}"), &lead)
        .await
        .expect(200);
    assert_eq!(a["kind"], "change");
    assert_eq!(a["args"]["version"], 1);
    assert_eq!(a["args"]["submitted_by"], "alice");
    assert!(
        a["args"]["unified"]
            .as_str()
            .unwrap()
            .contains("+      when: context.args.amount > 5000"),
        "{}",
        a.text
    );
    // The owner is no approver of changes; an admin is.
    s.approve(&first, alice).await.problem(403);
    let voted = s.approve(&first, &lead).await.expect(200);
    assert_eq!(voted["state"], "approved");
    let row = s.get("/v1/agents/pay-bot", alice).await.expect(200);
    assert_eq!(
        (row["state"].as_str(), row["version"].as_i64()),
        (Some("active"), Some(1))
    );

    let token = s.agent_token("pay-bot").await;
    let over = || json!({"amount": 7000});
    assert_decision(
        &s.decide(&token, "payments.wire", over()).await,
        "approval_required",
        "approval_required",
    );

    // Raising the threshold is proposed; the version in force keeps deciding.
    let r = s.apply(alice, &pay("alice", 100000)).await.expect(202);
    assert_eq!(r["version"], 2);
    assert_eq!(r["base_version"], 1);
    let second = r["approval_id"].as_str().unwrap().to_owned();
    assert_decision(
        &s.decide(&token, "payments.wire", over()).await,
        "approval_required",
        "approval_required",
    );
    let versions = s
        .get("/v1/agents/pay-bot/versions", alice)
        .await
        .expect(200);
    let states: Vec<(i64, &str)> = versions["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["version"].as_i64().unwrap(), v["state"].as_str().unwrap()))
        .collect();
    assert_eq!(states, [(1, "active"), (2, "pending")]);
    let d = s
        .get("/v1/agents/pay-bot/diff?from=1&to=2", alice)
        .await
        .expect(200);
    assert!(
        d["unified"]
            .as_str()
            .unwrap()
            .contains("+      when: context.args.amount > 100000")
    );

    // Approved: it is in force at once.
    s.approve(&second, ADMIN_KEY).await.expect(200);
    let row = s.get("/v1/agents/pay-bot", alice).await.expect(200);
    assert_eq!(row["version"], 2);
    assert_eq!(
        effect(&s.decide(&token, "payments.wire", over()).await),
        "allow"
    );

    // Who did what, in order.
    let events = s.audit(ADMIN_KEY, "type=manifest&agent=pay-bot").await;
    let ops: Vec<(&str, &str)> = events
        .iter()
        .map(|e| {
            (
                e["detail"]["op"].as_str().unwrap(),
                e["actor"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        ops,
        [
            ("propose", "principal:alice"),
            ("activate", "principal:sec-lead"),
            ("propose", "principal:alice"),
            ("activate", "principal:admin"),
        ]
    );
    assert_eq!(events[3]["detail"]["submitter"], "alice");
    // The history names both people of each change.
    let versions = s
        .get("/v1/agents/pay-bot/versions", alice)
        .await
        .expect(200);
    let people_of: Vec<(&str, Value)> = versions["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["created_by"].as_str().unwrap(), v["approved_by"].clone()))
        .collect();
    assert_eq!(
        people_of,
        [("alice", json!(["sec-lead"])), ("alice", json!(["admin"]))]
    );
    assert_eq!(events[3]["detail"]["approval_id"], second.as_str());
}
on_both!(
    a_widening_change_waits_for_a_second_person,
    super::controlled
);

async fn narrowing_applies_at_once_and_replaces_a_proposal(s: Server) {
    let people = s.people().await;
    let alice = &people["alice"];
    s.apply(ADMIN_KEY, &pay("alice", 5000)).await.expect(202);
    let lead = second_admin(&s).await;
    let pending = s
        .get("/v1/approvals?state=pending", &lead)
        .await
        .expect(200);
    let first = pending["approvals"][0]["id"].as_str().unwrap().to_owned();
    s.approve(&first, &lead).await.expect(200);

    let r = s.apply(alice, &pay("alice", 100000)).await.expect(202);
    let widening_id = r["approval_id"].as_str().unwrap().to_owned();
    // A change that only narrows or describes applies at once, and the
    // pending proposal it replaces is withdrawn with its approval.
    let narrower = pay("alice", 5000).replace("max: 1000000", "max: 500000");
    let r = s.apply(alice, &narrower).await.expect(200);
    assert!(!widening(&r["changes"]), "{}", r.text);
    assert_eq!(
        r["version"], 3,
        "version 2 stays the withdrawn proposal's number"
    );
    let a = s
        .get(&format!("/v1/approvals/{widening_id}"), ADMIN_KEY)
        .await
        .expect(200);
    assert_eq!(a["state"], "cancelled");
    s.approve(&widening_id, ADMIN_KEY).await.problem(409);
    let row = s.get("/v1/agents/pay-bot", alice).await.expect(200);
    assert_eq!(row["version"], 3);
    assert_eq!(row["manifest"]["tools"][0]["args"]["amount"]["max"], 500000);
    let versions = s
        .get("/v1/agents/pay-bot/versions", alice)
        .await
        .expect(200);
    let states: Vec<(i64, &str)> = versions["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["version"].as_i64().unwrap(), v["state"].as_str().unwrap()))
        .collect();
    assert_eq!(
        states,
        [(1, "superseded"), (2, "superseded"), (3, "active")]
    );
}
on_both!(
    narrowing_applies_at_once_and_replaces_a_proposal,
    super::controlled
);

async fn the_submitter_never_approves_its_own_change(s: Server) {
    s.people().await;
    // A deployment with one admin: the proposal says nobody can approve it.
    let r = s
        .apply(ADMIN_KEY, &wildcard("ops-bot", "alice"))
        .await
        .expect(202);
    assert_eq!(r["eligible_approvers"], json!([]));
    assert!(
        r["warning"].as_str().unwrap().contains("second person"),
        "{}",
        r.text
    );
    let id = r["approval_id"].as_str().unwrap().to_owned();
    let refused = s.approve(&id, ADMIN_KEY).await.problem(403);
    assert!(
        refused["detail"].as_str().unwrap().contains("submitter"),
        "{}",
        refused.text
    );
    let row = s.get("/v1/agents/ops-bot", ADMIN_KEY).await.expect(200);
    assert_eq!(row["state"], "proposed");
    // A second admin can.
    let lead = second_admin(&s).await;
    s.approve(&id, &lead).await.expect(200);
    let row = s.get("/v1/agents/ops-bot", ADMIN_KEY).await.expect(200);
    assert_eq!(row["state"], "active");
}
on_both!(
    the_submitter_never_approves_its_own_change,
    super::controlled
);

async fn a_principal_without_a_role_cannot_grant_itself_everything(s: Server) {
    let people = s.people().await;
    let mallory = &people["mallory"];
    let r = s
        .apply(mallory, &wildcard("payments-bot", "mallory"))
        .await
        .expect(202);
    let id = r["approval_id"].as_str().unwrap().to_owned();
    // No credential, so no token, so no action while it waits.
    s.post("/v1/agents/payments-bot/credentials", mallory, json!({}))
        .await
        .problem(409);
    // Denied: discarded, and the id is free again.
    s.deny(&id, ADMIN_KEY).await.expect(200);
    s.get("/v1/agents/payments-bot", ADMIN_KEY)
        .await
        .problem(404);
    let events = s.audit(ADMIN_KEY, "type=manifest&agent=payments-bot").await;
    let ops: Vec<&str> = events
        .iter()
        .map(|e| e["detail"]["op"].as_str().unwrap())
        .collect();
    assert_eq!(ops, ["propose", "reject"]);
    let dev = wildcard("payments-bot", "alice").replace("environment: prod", "environment: dev");
    s.apply(&people["alice"], &dev).await.expect(201);
}
on_both!(
    a_principal_without_a_role_cannot_grant_itself_everything,
    super::controlled
);

async fn an_expired_proposal_holds_nothing(s: Server) {
    let people = s.people().await;
    s.apply(&people["mallory"], &wildcard("squat-bot", "mallory"))
        .await
        .expect(202);
    // Someone else cannot take the id while it waits...
    s.apply(&people["alice"], &wildcard("squat-bot", "alice"))
        .await
        .problem(403);
    // ...but once its time is up it is discarded and the id is free.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let r = s
        .apply(&people["alice"], &wildcard("squat-bot", "alice"))
        .await
        .expect(202);
    assert_eq!(r["base_version"], 0);
    let events = s.audit(ADMIN_KEY, "type=manifest&agent=squat-bot").await;
    let ops: Vec<(&str, &str)> = events
        .iter()
        .map(|e| {
            (
                e["detail"]["op"].as_str().unwrap(),
                e["actor"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        ops,
        [
            ("propose", "principal:mallory"),
            ("expire", "system"),
            ("propose", "principal:alice")
        ]
    );
}
on_both!(
    an_expired_proposal_holds_nothing,
    |c: &mut bridle_server::Config| {
        super::controlled(c);
        c.change_control.ttl = "1s".into();
    }
);

/// Outside the controlled environments nothing changes: dev applies at once.
async fn dev_is_not_change_controlled(s: Server) {
    let people = s.people().await;
    let dev = wildcard("lab-bot", "alice").replace("environment: prod", "environment: dev");
    s.apply(&people["alice"], &dev).await.expect(201);
}
on_both!(dev_is_not_change_controlled, super::controlled);

/// `approvers: [finance]` (no `group:` prefix, no such principal) could
/// never approve: the answer says so, with the path and line.
async fn an_approver_nobody_is_is_a_warning(s: Server) {
    let people = s.people().await;
    let m = "agent: fin-bot\nowner: alice\npurpose: Pay\nenvironment: dev\nexpires: 2099-12-31\ntools:\n  - name: payments.wire\n    access: write\n    approval:\n      approvers: [finance]\n";
    let r = s.apply(&people["alice"], m).await.expect(201);
    let warnings = r["warnings"].as_array().unwrap();
    let w = warnings
        .iter()
        .find(|w| w["path"].as_str().unwrap().contains("approvers"))
        .unwrap_or_else(|| panic!("no approver warning: {}", r.text));
    assert_eq!(w["line"], 10);
    assert!(
        w["message"].as_str().unwrap().contains("group:finance"),
        "{w}"
    );
    // Named correctly, it resolves.
    let fixed = m.replace("[finance]", "[group:finance-approvers]");
    let r = s.apply(&people["alice"], &fixed).await.expect(200);
    assert!(
        !r["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w["path"].as_str().unwrap().contains("approvers")),
        "{}",
        r.text
    );
}
on_both!(an_approver_nobody_is_is_a_warning);
