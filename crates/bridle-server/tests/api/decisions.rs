//! `POST /v1/decisions` as a control point: who may ask, request
//! validation, rate limits and automatic suspension on denial spikes.

use serde_json::json;

use crate::common::{
    ADMIN_KEY, Server, assert_decision, codes, concurrently, effect, eventually, manifest,
};

async fn who_may_ask(s: Server) {
    let people = s.people().await;
    s.load("swe-bot").await;
    let token = s.agent_token("swe-bot").await;

    // A PEP forwards the agent's token with its own key.
    let r = s
        .post(
            "/v1/decisions",
            &people["gateway"],
            json!({"action": "ci.run_tests", "agent_token": token}),
        )
        .await
        .expect(200);
    assert_decision(&r.json, "allow", "granted");
    let r = s
        .post(
            "/v1/decisions",
            &people["gateway"],
            json!({"action": "secrets.read", "agent_token": token}),
        )
        .await
        .expect(200);
    assert_decision(&r.json, "deny", "forbidden");
    // A PEP without the agent's token, or with a forged one: 401.
    s.post(
        "/v1/decisions",
        &people["gateway"],
        json!({"action": "ci.run_tests"}),
    )
    .await
    .problem(401);
    s.post(
        "/v1/decisions",
        &people["gateway"],
        json!({"action": "ci.run_tests", "agent_token": "x.y.z"}),
    )
    .await
    .problem(401);
    // Any other principal, the admin included: 403.
    for who in ["bob", "admin", "ann"] {
        s.post(
            "/v1/decisions",
            &people[who],
            json!({"action": "ci.run_tests", "agent_token": token}),
        )
        .await
        .problem(403);
    }
    // No token at all: 401 (not a decision).
    s.post("/v1/decisions", "", json!({"action": "ci.run_tests"}))
        .await
        .problem(401);
    // An agent may not forward a token.
    s.post(
        "/v1/decisions",
        &token,
        json!({"action": "ci.run_tests", "agent_token": token}),
    )
    .await
    .problem(400);

    // Outcomes: the agent, or a PEP for it.
    let d = s.decide(&token, "ci.run_tests", json!({})).await;
    let id = d["decision_id"].as_str().unwrap();
    let path = format!("/v1/decisions/{id}/outcome");
    let r = s.post(&path, &token, json!({"status": "ok"})).await;
    assert_eq!(r.status, 204, "{}", r.text);
    let r = s
        .post(
            &path,
            &people["gateway"],
            json!({"status": "error", "agent_token": token}),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    s.post(&path, &people["bob"], json!({"status": "ok"}))
        .await
        .problem(403);
    s.post(&path, &token, json!({"status": "maybe"}))
        .await
        .problem(422);
    s.post(
        "/v1/decisions/nope/outcome",
        &token,
        json!({"status": "ok"}),
    )
    .await
    .problem(404);
}
on_both!(who_may_ask);

async fn request_validation(s: Server) {
    s.principal("bob", &[], &[]).await;
    s.load("swe-bot").await;
    let token = s.agent_token("swe-bot").await;
    let r = s
        .post("/v1/decisions", &token, json!({"action": "not a tool!"}))
        .await
        .problem(422);
    assert_eq!(r["errors"][0]["path"], "action", "{}", r.text);
    let r = s
        .post(
            "/v1/decisions",
            &token,
            json!({"action": "ci.run_tests", "args": [1, 2]}),
        )
        .await
        .problem(422);
    assert_eq!(r["errors"][0]["path"], "args", "{}", r.text);
    s.post("/v1/decisions", &token, json!({"args": {}}))
        .await
        .problem(422);
    // Unknown tools are simply not granted.
    let d = s.decide(&token, "web.search", json!({})).await;
    assert_decision(&d, "deny", "not_granted");
    assert!(d.get("approval_id").is_none());
}
on_both!(request_validation);

async fn rate_limit(s: Server) {
    s.principal("alice", &[], &[]).await;
    let m = manifest(
        "rate-bot",
        "alice",
        "tools:\n  - name: web.search\nlimits:\n  rate: 2/min\n",
    );
    s.apply(ADMIN_KEY, &m).await.expect(201);
    let token = s.agent_token("rate-bot").await;
    for _ in 0..2 {
        assert_decision(
            &s.decide(&token, "web.search", json!({})).await,
            "allow",
            "granted",
        );
    }
    let d = s.decide(&token, "web.search", json!({})).await;
    assert_decision(&d, "deny", "rate_limited");
    assert_eq!(codes(&d), vec!["rate_limited"]);
}
on_both!(rate_limit);

async fn suspend_after_denials(s: Server) {
    s.principal("alice", &[], &[]).await;
    let m = manifest(
        "jumpy-bot",
        "alice",
        "tools:\n  - name: web.search\nmonitoring:\n  suspend_after_denials: 3/10m\n",
    );
    s.apply(ADMIN_KEY, &m).await.expect(201);
    let (id, secret) = s.credentials("jumpy-bot").await;
    let r = s.token_request(&id, &secret, &[]).await.expect(200);
    let token = r["access_token"].as_str().unwrap().to_owned();
    // Allowed actions do not count.
    assert_eq!(
        effect(&s.decide(&token, "web.search", json!({})).await),
        "allow"
    );
    for i in 0..3 {
        let row = s.get("/v1/agents/jumpy-bot", ADMIN_KEY).await.expect(200);
        assert_eq!(row["state"], "active", "suspended after {i} denials");
        assert_decision(
            &s.decide(&token, "shell.exec", json!({})).await,
            "deny",
            "not_granted",
        );
    }
    let row = s.get("/v1/agents/jumpy-bot", ADMIN_KEY).await.expect(200);
    assert_eq!(row["state"], "suspended", "{}", row.text);
    assert_decision(
        &s.decide(&token, "web.search", json!({})).await,
        "deny",
        "agent_suspended",
    );
    let r = s.token_request(&id, &secret, &[]).await.expect(400);
    assert_eq!(r["error"], "unauthorized_client");
    // The automatic suspension is audited as the system's act.
    let events = s.audit(ADMIN_KEY, "type=lifecycle&agent=jumpy-bot").await;
    assert!(
        events
            .iter()
            .any(|e| e["actor"] == "system" && e["detail"]["state"] == "suspended"),
        "{events:?}"
    );
}
on_both!(suspend_after_denials);

async fn expired_tokens_are_rejected(s: Server) {
    s.principal("alice", &[], &[]).await;
    let m = manifest(
        "brief-bot",
        "alice",
        "tools:\n  - name: web.search\ncredentials:\n  token_ttl: 1s\n",
    );
    s.apply(ADMIN_KEY, &m).await.expect(201);
    let (id, secret) = s.credentials("brief-bot").await;
    let r = s.token_request(&id, &secret, &[]).await.expect(200);
    assert_eq!(r["expires_in"], 1);
    let token = r["access_token"].as_str().unwrap().to_owned();
    let ask = json!({"action": "web.search"});
    // Valid at first; 401 once past `exp` (plus the verifier's small leeway).
    let first = s.post("/v1/decisions", &token, ask.clone()).await;
    assert_eq!(first.status, 200, "{}", first.text);
    eventually(20, "the token to expire", || async {
        let r = s.post("/v1/decisions", &token, ask.clone()).await;
        assert!(matches!(r.status, 200 | 401), "{}", r.text);
        r.status == 401
    })
    .await;
    s.post("/v1/decisions", &token, ask).await.problem(401);
}
on_both!(expired_tokens_are_rejected);

/// Concurrent decisions: every one audited in one unbroken chain, and a
/// granted approval is consumed by exactly one of several identical requests.
async fn concurrent_decisions(s: Server) {
    let people = s.people().await;
    s.load("procurement-bot").await;
    let token = s.agent_token("procurement-bot").await;
    let list = json!({"action": "procurement.list_vendors"});
    let answers = concurrently(&s, 24, "/v1/decisions", &token, list).await;
    assert!(
        answers
            .iter()
            .all(|r| r.status == 200 && effect(&r.json) == "allow")
    );
    let ids: std::collections::HashSet<&str> = answers
        .iter()
        .map(|r| r.json["decision_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 24, "decision ids must be unique");

    let big = json!({"action": "procurement.create_purchase_request", "args": {"vendor": "acme", "amount": 6000}});
    let d = s
        .post("/v1/decisions", &token, big.clone())
        .await
        .expect(200);
    let approval = d["approval_id"].as_str().unwrap().to_owned();
    s.approve(&approval, &people["frank"]).await.expect(200);
    let answers = concurrently(&s, 6, "/v1/decisions", &token, big).await;
    let allowed: Vec<_> = answers
        .iter()
        .filter(|r| effect(&r.json) == "allow")
        .collect();
    assert_eq!(allowed.len(), 1, "{answers:?}");
    assert_eq!(codes(&allowed[0].json), vec!["approved"]);
    let waiting: std::collections::HashSet<&str> = answers
        .iter()
        .filter(|r| effect(&r.json) == "approval_required")
        .map(|r| r.json["approval_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        waiting.len(),
        1,
        "the others share one new approval: {answers:?}"
    );
    assert!(!waiting.contains(approval.as_str()));

    let decisions = s.audit(ADMIN_KEY, "type=decision").await;
    assert_eq!(decisions.len(), 24 + 1 + 6);
    let v = s.get("/v1/audit/verify", ADMIN_KEY).await.expect(200);
    assert_eq!(v["ok"], true, "{}", v.text);
}
on_both!(concurrent_decisions);

/// Rate limits and budgets are kept in the store: a restarted server (or a
/// second replica on the same database) still knows what was used.
async fn limits_survive_a_restart(s: Server) {
    let _people = s.people().await;
    let yaml = crate::common::manifest(
        "spender",
        "alice",
        "tools:\n  - name: ping\n  - name: pay\n    args:\n      amount: { min: 1, max: 1000 }\n\
         limits:\n  rate: 3/min\n  budgets:\n    - { arg: amount, max: 100, per: 24h }\n",
    );
    s.apply(crate::common::ADMIN_KEY, &yaml).await.expect(201);
    let token = s.agent_token("spender").await;
    assert_decision(
        &s.decide(&token, "pay", json!({"amount": 60})).await,
        "allow",
        "granted",
    );
    assert_decision(
        &s.decide(&token, "pay", json!({"amount": 30})).await,
        "allow",
        "granted",
    );

    let db = s.db_url.clone();
    let again = Server::start(s.backend, move |c| c.db = db).await;
    let token = again.agent_token("spender").await;
    // 90 of 100 spent and 2 of 3 actions used before the restart.
    assert_decision(
        &again.decide(&token, "pay", json!({"amount": 20})).await,
        "deny",
        "budget_exceeded",
    );
    assert_decision(
        &again.decide(&token, "pay", json!({"amount": 10})).await,
        "allow",
        "granted",
    );
    assert_decision(
        &again.decide(&token, "ping", json!({})).await,
        "deny",
        "rate_limited",
    );
}
on_both!(limits_survive_a_restart);

/// Decision ids are unguessable and in the order the decisions were made
/// (so the audit log's index on them grows at its end): each later id
/// sorts after the earlier ones, and no two share their random part.
async fn decision_ids_sort_in_decision_order(s: Server) {
    s.people().await;
    s.load("swe-bot").await;
    let token = s.agent_token("swe-bot").await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        let d = s.decide(&token, "ci.run_tests", json!({})).await;
        ids.push(d["decision_id"].as_str().unwrap().to_owned());
        // Ids of one millisecond are ordered only by their random part.
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(sorted, ids, "ids in the order they were made");
    let random: std::collections::HashSet<&str> = ids
        .iter()
        .map(|id| {
            let (time, rest) = id.strip_prefix("dec_").unwrap().split_at(12);
            assert!(time.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
            // 12 random bytes, base64url: 16 characters.
            assert_eq!(rest.len(), 16, "{id}");
            rest
        })
        .collect();
    assert_eq!(random.len(), ids.len());
}
on_both!(decision_ids_sort_in_decision_order);
