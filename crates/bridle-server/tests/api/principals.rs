//! `/v1/principals`: creation, conflicts, roles, deactivation.

use serde_json::json;

use crate::common::{ADMIN_KEY, Server};

async fn create_conflict_and_authorization(s: Server) {
    let r = s
        .post(
            "/v1/principals",
            ADMIN_KEY,
            json!({"id": "alice", "name": "Alice", "roles": ["auditor"], "groups": ["finance"]}),
        )
        .await
        .expect(201);
    assert_eq!(r["id"], "alice");
    let alice = r["api_key"].as_str().unwrap().to_owned();
    assert!(alice.len() > 20, "{alice}");
    // The new key works at once.
    s.get("/v1/audit/verify", &alice).await.expect(200);

    let dup = s
        .post("/v1/principals", ADMIN_KEY, json!({"id": "alice"}))
        .await
        .problem(409);
    assert!(!dup.text.contains(&alice));

    // Not an admin (an auditor): 403.
    s.post("/v1/principals", &alice, json!({"id": "bob"}))
        .await
        .problem(403);
    // No credentials at all, or an unknown key: 401.
    s.post("/v1/principals", "", json!({"id": "bob"}))
        .await
        .problem(401);
    s.post("/v1/principals", "bk_not-a-key", json!({"id": "bob"}))
        .await
        .problem(401);
    s.send(
        s.http
            .post(s.url("/v1/principals"))
            .header("authorization", "Basic YWRtaW46eA==")
            .json(&json!({"id": "bob"})),
    )
    .await
    .problem(401);

    // A bad id is a validation error naming the field.
    let bad = s
        .post("/v1/principals", ADMIN_KEY, json!({"id": "Not Valid!"}))
        .await
        .problem(422);
    assert_eq!(bad["errors"][0]["path"], "id", "{}", bad.text);
    // Unknown role: the body does not match the schema.
    let r = s
        .post(
            "/v1/principals",
            ADMIN_KEY,
            json!({"id": "carol", "roles": ["root"]}),
        )
        .await;
    assert!(matches!(r.status, 400 | 422), "{}", r.text);
    assert_eq!(r.content_type, "application/problem+json");
}
on_both!(create_conflict_and_authorization);

async fn deactivation_revokes_keys_and_orphans_agents(s: Server) {
    let people = s.people().await;
    s.load("procurement-bot").await;
    s.load("research-bot").await;
    let before = s
        .get("/v1/agents/procurement-bot", &people["alice"])
        .await
        .expect(200);
    assert_eq!(before["flags"], json!([]), "{}", before.text);

    // Only an admin deactivates.
    s.post("/v1/principals/alice/deactivate", &people["bob"], json!({}))
        .await
        .problem(403);
    s.post("/v1/principals/nobody/deactivate", ADMIN_KEY, json!({}))
        .await
        .problem(404);

    let r = s
        .post("/v1/principals/alice/deactivate", ADMIN_KEY, json!({}))
        .await
        .expect(200);
    assert_eq!(r["active"], false, "{}", r.text);
    assert_eq!(r["orphaned_agents"], json!(["procurement-bot"]));

    // Her key stops working everywhere.
    s.get("/v1/agents", &people["alice"]).await.problem(401);
    s.get("/v1/agents/procurement-bot", &people["alice"])
        .await
        .problem(401);

    let after = s
        .get("/v1/agents/procurement-bot", ADMIN_KEY)
        .await
        .expect(200);
    assert_eq!(after["flags"], json!(["orphaned"]), "{}", after.text);
    // Other owners' agents are untouched.
    let other = s
        .get("/v1/agents/research-bot", ADMIN_KEY)
        .await
        .expect(200);
    assert_eq!(other["flags"], json!([]));
    // A deactivated principal can no longer own a newly applied agent.
    let r = s
        .apply(
            ADMIN_KEY,
            &crate::common::manifest("new-bot", "alice", "tools: []\n"),
        )
        .await
        .problem(422);
    assert_eq!(r["errors"][0]["path"], "owner", "{}", r.text);
}
on_both!(deactivation_revokes_keys_and_orphans_agents);
