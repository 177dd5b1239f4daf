//! `/v1/agents`: apply (YAML and JSON), validation, ownership, reading,
//! lifecycle and review.

use serde_json::{Value, json};

use crate::common::{ADMIN_KEY, Server, assert_decision, example, manifest};

/// `procurement-bot` as a JSON manifest, with another purpose.
fn procurement_json(purpose: &str) -> Value {
    json!({
        "agent": "procurement-bot",
        "name": "Procurement assistant",
        "owner": "alice",
        "team": "finance-ops",
        "purpose": purpose,
        "environment": "prod",
        "expires": "2027-12-31",
        "review_every": "90d",
        "tools": [
            {"name": "procurement.list_vendors"},
            {"name": "procurement.create_purchase_request", "access": "write",
             "args": {"vendor": {"in": ["acme", "globex", "initech"]}, "amount": {"min": 1, "max": 100000}},
             "approval": {"when": "context.args.amount > 5000", "approvers": ["group:finance-approvers"], "ttl": "24h"}}
        ],
        "forbid": ["procurement.approve_*"],
        "limits": {"rate": "120/min", "budgets": [{"arg": "amount", "max": 50000, "per": "24h"}]}
    })
}

async fn apply_yaml_then_json_and_read(s: Server) {
    let people = s.people().await;
    let alice = &people["alice"];
    let r = s.apply(alice, example("procurement-bot")).await.expect(201);
    assert_eq!(r["id"], "procurement-bot");
    assert_eq!(r["version"], 1);
    assert_eq!(r["state"], "active");
    assert_eq!(r["owner"], "alice");
    assert_eq!(r["environment"], "prod");
    assert_eq!(r["expires"], "2027-12-31");
    assert_eq!(r["flags"], json!([]));
    assert_eq!(r["manifest"]["agent"], "procurement-bot");
    assert!(r["created_at"].is_string() && r["updated_at"].is_string());

    let r = s
        .send(
            s.req(reqwest::Method::PUT, "/v1/agents/procurement-bot", alice)
                .json(&procurement_json("Draft purchase requests, v2")),
        )
        .await
        .expect(200);
    assert_eq!(r["version"], 2);
    assert_eq!(r["manifest"]["purpose"], "Draft purchase requests, v2");

    // The owner reads its agents; another principal sees none of them.
    let list = s.get("/v1/agents", alice).await.expect(200);
    let agents = list["agents"].as_array().unwrap();
    assert_eq!(agents.len(), 1);
    assert_eq!(agents[0]["id"], "procurement-bot");
    assert_eq!(agents[0]["version"], 2);
    let one = s.get("/v1/agents/procurement-bot", alice).await.expect(200);
    assert_eq!(one["version"], 2);
    assert_eq!(one["owner"], "alice");
    let list = s.get("/v1/agents", &people["bob"]).await.expect(200);
    assert_eq!(list["agents"], json!([]));
    s.get("/v1/agents/procurement-bot", &people["bob"])
        .await
        .problem(404);
    s.get("/v1/agents/no-such-bot", ADMIN_KEY)
        .await
        .problem(404);
    s.get("/v1/agents", "").await.problem(401);
}
on_both!(apply_yaml_then_json_and_read);

async fn apply_validation_and_ownership(s: Server) {
    let people = s.people().await;
    // Every error carries its field path and line.
    let bad = "agent: typo-bot\nownr: alice\npurpose: Misspells a key\nenvironment: prod\nexpires: 2027-12-31\n";
    let r = s.put_yaml("typo-bot", ADMIN_KEY, bad).await.problem(422);
    let errors = r["errors"].as_array().unwrap();
    assert!(!errors.is_empty(), "{}", r.text);
    for e in errors {
        assert!(e["path"].is_string() && e["message"].is_string(), "{e}");
        assert!(e["line"].as_u64().is_some(), "no line in {e}");
    }
    assert!(
        errors.iter().any(|e| e["path"] == "ownr" && e["line"] == 2),
        "{}",
        r.text
    );
    // JSON manifests report lines too.
    let json_bad = r#"{
  "agent": "json-bot",
  "owner": "alice",
  "purpose": "A JSON manifest with a bad limit",
  "environment": "dev",
  "expires": "2027-12-31",
  "limits": {"rate": "sixty per minute"}
}"#;
    let r = s
        .send(
            s.req(reqwest::Method::PUT, "/v1/agents/json-bot", ADMIN_KEY)
                .header("content-type", "application/json")
                .body(json_bad),
        )
        .await
        .problem(422);
    assert!(
        r["errors"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["path"] == "limits.rate" && e["line"] == 7),
        "{}",
        r.text
    );

    // The path names another agent than the manifest: 400.
    s.put_yaml("other-bot", ADMIN_KEY, example("swe-bot"))
        .await
        .problem(400);
    // The owner must exist and be active.
    let r = s
        .apply(ADMIN_KEY, &manifest("ghost-bot", "zed", "tools: []\n"))
        .await
        .problem(422);
    assert_eq!(r["errors"][0]["path"], "owner", "{}", r.text);

    // A principal may create agents only for themselves, and change only their own.
    s.apply(&people["bob"], example("procurement-bot"))
        .await
        .problem(403);
    s.apply(&people["alice"], example("procurement-bot"))
        .await
        .expect(201);
    let hijack = example("procurement-bot").replace("owner: alice", "owner: bob");
    s.apply(&people["bob"], &hijack).await.problem(403);
    // An admin may hand it over; the new owner then manages it.
    let r = s.apply(ADMIN_KEY, &hijack).await.expect(200);
    assert_eq!(r["owner"], "bob");
    s.apply(&people["bob"], &hijack).await.expect(200);
    s.apply(&people["alice"], example("procurement-bot"))
        .await
        .problem(403);
    // Agents never apply manifests.
    s.load("swe-bot").await;
    let token = s.agent_token("swe-bot").await;
    s.apply(&token, example("swe-bot")).await.problem(403);
}
on_both!(apply_validation_and_ownership);

async fn agent_token_reads_only_itself(s: Server) {
    s.principal("bob", &[], &[]).await;
    s.principal("erin", &[], &[]).await;
    s.load("swe-bot").await;
    s.load("research-bot").await;
    let token = s.agent_token("swe-bot").await;
    let me = s.get("/v1/agents/swe-bot", &token).await.expect(200);
    assert_eq!(me["id"], "swe-bot");
    s.get("/v1/agents/research-bot", &token).await.problem(404);
    s.get("/v1/agents", &token).await.problem(403);
}
on_both!(agent_token_reads_only_itself);

async fn suspend_and_resume(s: Server) {
    let people = s.people().await;
    s.load("swe-bot").await;
    let (id, secret) = s.credentials("swe-bot").await;
    let r = s.token_request(&id, &secret, &[]).await.expect(200);
    let token = r["access_token"].as_str().unwrap().to_owned();
    let d = s.decide(&token, "ci.run_tests", json!({})).await;
    assert_decision(&d, "allow", "granted");

    let reason = json!({"reason": "investigating"});
    s.post(
        "/v1/agents/swe-bot/suspend",
        &people["mallory"],
        reason.clone(),
    )
    .await
    .problem(403);
    s.post("/v1/agents/swe-bot/suspend", &token, reason.clone())
        .await
        .problem(403);
    s.post(
        "/v1/agents/swe-bot/suspend",
        &people["bob"],
        json!({"reason": " "}),
    )
    .await
    .problem(422);
    let r = s
        .post("/v1/agents/swe-bot/suspend", &people["bob"], reason.clone())
        .await
        .expect(200);
    assert_eq!(r["state"], "suspended");

    // No new tokens; existing ones still authenticate but every action is denied.
    let r = s.token_request(&id, &secret, &[]).await.expect(400);
    assert_eq!(r["error"], "unauthorized_client", "{}", r.text);
    let d = s.decide(&token, "ci.run_tests", json!({})).await;
    assert_decision(&d, "deny", "agent_suspended");

    let r = s
        .post(
            "/v1/agents/swe-bot/resume",
            &people["bob"],
            json!({"reason": "cleared"}),
        )
        .await
        .expect(200);
    assert_eq!(r["state"], "active");
    let d = s.decide(&token, "ci.run_tests", json!({})).await;
    assert_decision(&d, "allow", "granted");
    let r = s.token_request(&id, &secret, &[]).await.expect(200);
    let fresh = r["access_token"].as_str().unwrap();
    assert_decision(
        &s.decide(fresh, "ci.run_tests", json!({})).await,
        "allow",
        "granted",
    );
}
on_both!(suspend_and_resume);

async fn retire_is_final(s: Server) {
    let people = s.people().await;
    s.load("procurement-bot").await;
    let (id, secret) = s.credentials("procurement-bot").await;
    let r = s.token_request(&id, &secret, &[]).await.expect(200);
    let token = r["access_token"].as_str().unwrap().to_owned();
    let d = s
        .decide(
            &token,
            "procurement.create_purchase_request",
            json!({"vendor": "acme", "amount": 7000}),
        )
        .await;
    assert_decision(&d, "approval_required", "approval_required");
    let approval = d["approval_id"].as_str().unwrap().to_owned();

    let r = s
        .post(
            "/v1/agents/procurement-bot/retire",
            &people["alice"],
            json!({"reason": "replaced"}),
        )
        .await
        .expect(200);
    assert_eq!(r["state"], "retired");

    // Tokens die with the agent, and no new ones are issued.
    s.post(
        "/v1/decisions",
        &token,
        json!({"action": "procurement.list_vendors"}),
    )
    .await
    .problem(401);
    let r = s.token_request(&id, &secret, &[]).await;
    // The contract: retired agents get `400 unauthorized_client`.
    assert!(
        r.status == 400 && r["error"] == "unauthorized_client",
        "a retired agent got: {} {}",
        r.status,
        r.text
    );
    // Retirement is terminal.
    for op in ["resume", "suspend", "retire"] {
        s.post(
            &format!("/v1/agents/procurement-bot/{op}"),
            ADMIN_KEY,
            json!({"reason": "try"}),
        )
        .await
        .problem(409);
    }
    s.apply(ADMIN_KEY, example("procurement-bot"))
        .await
        .problem(409);
    s.post(
        "/v1/agents/procurement-bot/credentials",
        ADMIN_KEY,
        json!({}),
    )
    .await
    .problem(409);
    // Its pending approvals are cancelled and can no longer be voted on.
    let a = s
        .get(&format!("/v1/approvals/{approval}"), ADMIN_KEY)
        .await
        .expect(200);
    assert_eq!(a["state"], "cancelled", "{}", a.text);
    s.post(
        &format!("/v1/approvals/{approval}/approve"),
        &people["frank"],
        json!({}),
    )
    .await
    .problem(409);
    // The record and its history stay readable.
    let r = s
        .get("/v1/agents/procurement-bot", ADMIN_KEY)
        .await
        .expect(200);
    assert_eq!(r["state"], "retired");
}
on_both!(retire_is_final);

async fn review_by_owner_or_admin(s: Server) {
    let people = s.people().await;
    s.load("procurement-bot").await;
    let before = s
        .get("/v1/agents/procurement-bot", ADMIN_KEY)
        .await
        .expect(200);
    // Creation counts as the first review.
    let first = before["last_review_at"].as_str().unwrap().to_owned();
    let r = s
        .post(
            "/v1/agents/procurement-bot/review",
            &people["alice"],
            json!({"comment": "still needed"}),
        )
        .await
        .expect(200);
    // Instants are fixed-width UTC text, so text order is time order.
    assert!(
        r["last_review_at"].as_str().unwrap() > first.as_str(),
        "{}",
        r.text
    );
    assert!(
        !r["flags"]
            .as_array()
            .unwrap()
            .contains(&json!("review_overdue"))
    );
    s.post(
        "/v1/agents/procurement-bot/review",
        &people["bob"],
        json!({}),
    )
    .await
    .problem(403);
    let token = s.agent_token("procurement-bot").await;
    s.post("/v1/agents/procurement-bot/review", &token, json!({}))
        .await
        .problem(403);
    s.post("/v1/agents/procurement-bot/review", ADMIN_KEY, json!({}))
        .await
        .expect(200);
    s.post("/v1/agents/no-such-bot/review", ADMIN_KEY, json!({}))
        .await
        .problem(404);
    // The review is audited with its comment.
    let events = s
        .audit(ADMIN_KEY, "type=lifecycle&agent=procurement-bot")
        .await;
    assert!(
        events
            .iter()
            .any(|e| e["detail"]["op"] == "review" && e["detail"]["comment"] == "still needed"),
        "{events:?}"
    );
}
on_both!(review_by_owner_or_admin);

async fn expired_agents(s: Server) {
    s.principal("alice", &[], &[]).await;
    let live = manifest("old-bot", "alice", "tools:\n  - name: web.search\n");
    s.apply(ADMIN_KEY, &live).await.expect(201);
    let (id, secret) = s.credentials("old-bot").await;
    let r = s.token_request(&id, &secret, &[]).await.expect(200);
    let token = r["access_token"].as_str().unwrap().to_owned();

    let past = live.replace("expires: 2099-12-31", "expires: 2020-01-31");
    let r = s.apply(ADMIN_KEY, &past).await.expect(200);
    assert_eq!(r["flags"], json!(["expired"]), "{}", r.text);
    assert_decision(
        &s.decide(&token, "web.search", json!({})).await,
        "deny",
        "agent_expired",
    );
    let r = s.token_request(&id, &secret, &[]).await.expect(400);
    assert_eq!(r["error"], "unauthorized_client");
}
on_both!(expired_agents);

async fn credentials_for_admin_or_owner(s: Server) {
    let people = s.people().await;
    s.load("swe-bot").await;
    let path = "/v1/agents/swe-bot/credentials";
    let r = s.post(path, &people["bob"], json!({})).await.expect(201);
    assert!(r["client_id"].as_str().unwrap().starts_with("swe-bot"));
    let secret = r["client_secret"].as_str().unwrap();
    // Shown once: never in the record or the audit log.
    let record = s.get("/v1/agents/swe-bot", ADMIN_KEY).await.expect(200);
    assert!(!record.text.contains(secret));
    s.post(path, &people["alice"], json!({})).await.problem(403);
    s.post(path, "", json!({})).await.problem(401);
    let token = s.agent_token("swe-bot").await;
    s.post(path, &token, json!({})).await.problem(403);
    s.post("/v1/agents/no-such-bot/credentials", ADMIN_KEY, json!({}))
        .await
        .problem(404);
}
on_both!(credentials_for_admin_or_owner);
