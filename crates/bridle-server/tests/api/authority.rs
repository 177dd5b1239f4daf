//! Authority over the record: who may give an agent to someone else, and who
//! may lift a suspension. Each test is an attack that worked before.

use serde_json::json;

use crate::common::{ADMIN_KEY, Server, assert_decision, manifest};

/// An owner handed its agent to a bystander and could then approve the
/// agent's own requests as a non-owner: separation of duties defeated.
async fn only_an_admin_changes_the_owner(s: Server) {
    let people = s.people().await;
    let alice = &people["alice"];
    let body = "tools:\n  - name: payments.wire\n    access: write\n    approval:\n      approvers: [group:finance-approvers]\n";
    s.apply(alice, &manifest("wire-bot", "alice", body))
        .await
        .expect(201);
    let r = s
        .apply(alice, &manifest("wire-bot", "frank", body))
        .await
        .problem(403);
    assert!(
        r["detail"]
            .as_str()
            .unwrap()
            .contains("only an admin may change the owner"),
        "{}",
        r.text
    );
    let row = s.get("/v1/agents/wire-bot", ADMIN_KEY).await.expect(200);
    assert_eq!(row["owner"], "alice");
    assert_eq!(row["version"], 1, "the refused change stored nothing");
    // Creating an agent for someone else is an admin's act too.
    let r = s
        .apply(alice, &manifest("gift-bot", "bob", "tools: []\n"))
        .await
        .problem(403);
    assert!(
        r["detail"].as_str().unwrap().contains("another owner"),
        "{}",
        r.text
    );
    s.get("/v1/agents/gift-bot", ADMIN_KEY).await.problem(404);
    // An admin may do both.
    let row = s
        .apply(ADMIN_KEY, &manifest("wire-bot", "frank", body))
        .await
        .expect(200);
    assert_eq!(row["owner"], "frank");
    s.apply(ADMIN_KEY, &manifest("gift-bot", "bob", "tools: []\n"))
        .await
        .expect(201);
}
on_both!(only_an_admin_changes_the_owner);

/// An owner resumed a suspension an admin made "for incident INC-7".
async fn an_admin_suspension_is_lifted_only_by_an_admin(s: Server) {
    let people = s.people().await;
    let alice = &people["alice"];
    s.apply(
        alice,
        &manifest("held-bot", "alice", "tools:\n  - name: web.search\n"),
    )
    .await
    .expect(201);
    let r = s
        .post(
            "/v1/agents/held-bot/suspend",
            ADMIN_KEY,
            json!({"reason": "INC-7"}),
        )
        .await
        .expect(200);
    assert_eq!(r["state_by"], "principal:admin");
    let r = s
        .post(
            "/v1/agents/held-bot/resume",
            alice,
            json!({"reason": "looks fine to me"}),
        )
        .await
        .problem(403);
    let detail = r["detail"].as_str().unwrap();
    assert!(
        detail.contains("suspended by an admin") && detail.contains("INC-7"),
        "{detail}"
    );
    let row = s.get("/v1/agents/held-bot", alice).await.expect(200);
    assert_eq!(row["state"], "suspended");
    // The owner may still take authority away: retiring is not resuming.
    // An admin lifts it.
    let row = s
        .post(
            "/v1/agents/held-bot/resume",
            ADMIN_KEY,
            json!({"reason": "INC-7 closed"}),
        )
        .await
        .expect(200);
    assert_eq!(row["state"], "active");
    // The owner's own suspension is the owner's to lift.
    s.post(
        "/v1/agents/held-bot/suspend",
        alice,
        json!({"reason": "pause"}),
    )
    .await
    .expect(200);
    let row = s
        .post("/v1/agents/held-bot/resume", alice, json!({"reason": "go"}))
        .await
        .expect(200);
    assert_eq!(row["state"], "active");
    assert_eq!(row["state_by"], "principal:alice");
    // After an admin's suspension, the owner may retire the agent.
    s.post(
        "/v1/agents/held-bot/suspend",
        ADMIN_KEY,
        json!({"reason": "INC-8"}),
    )
    .await
    .expect(200);
    let row = s
        .post(
            "/v1/agents/held-bot/retire",
            alice,
            json!({"reason": "done"}),
        )
        .await
        .expect(200);
    assert_eq!(row["state"], "retired");
}
on_both!(an_admin_suspension_is_lifted_only_by_an_admin);

/// Automatic containment is not an admin: the owner may resume after it.
async fn the_owner_resumes_after_containment(s: Server) {
    let people = s.people().await;
    let alice = &people["alice"];
    let m = manifest(
        "jumpy-bot",
        "alice",
        "tools:\n  - name: web.search\nmonitoring:\n  suspend_after_denials: 2/10m\n",
    );
    s.apply(alice, &m).await.expect(201);
    let token = s.agent_token("jumpy-bot").await;
    for _ in 0..2 {
        assert_decision(
            &s.decide(&token, "shell.exec", json!({})).await,
            "deny",
            "not_granted",
        );
    }
    let row = s.get("/v1/agents/jumpy-bot", alice).await.expect(200);
    assert_eq!(row["state"], "suspended");
    assert_eq!(row["state_by"], "system");
    let row = s
        .post(
            "/v1/agents/jumpy-bot/resume",
            alice,
            json!({"reason": "checked"}),
        )
        .await
        .expect(200);
    assert_eq!(row["state"], "active");
}
on_both!(the_owner_resumes_after_containment);
