//! `/v1/audit`: who may read it, the hash chain, redaction of sensitive
//! arguments, verification and tamper detection, and that no secret is ever
//! written to it.

use serde_json::{Value, json};

use crate::common::{ADMIN_KEY, Server, codes, manifest, sql, sql_text};

const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

async fn who_reads_the_audit_log(s: Server) {
    let people = s.people().await;
    s.load("procurement-bot").await;
    s.load("swe-bot").await;
    let token = s.agent_token("procurement-bot").await;
    s.decide(&token, "procurement.list_vendors", json!({}))
        .await;

    s.get("/v1/audit", ADMIN_KEY).await.expect(200);
    s.get("/v1/audit", &people["ann"]).await.expect(200);
    s.get("/v1/audit/verify", &people["ann"]).await.expect(200);
    // An owner reads their own agents' events, and only those.
    let own = s.audit(&people["alice"], "agent=procurement-bot").await;
    assert!(!own.is_empty());
    assert!(
        own.iter().all(|e| e["agent"] == "procurement-bot"),
        "{own:?}"
    );
    assert_eq!(s.audit(&people["alice"], "").await, own);
    assert!(s.audit(&people["alice"], "agent=swe-bot").await.is_empty());
    s.get("/v1/audit/verify", &people["alice"])
        .await
        .problem(403);
    // Others see nothing: an empty listing, not whether the agent exists.
    assert!(
        s.audit(&people["mallory"], "agent=procurement-bot")
            .await
            .is_empty()
    );
    assert!(s.audit(&people["mallory"], "").await.is_empty());
    s.get("/v1/audit?agent=procurement-bot", &token)
        .await
        .problem(403);
    s.get("/v1/audit", "").await.problem(401);
    s.get("/v1/audit?type=bogus", ADMIN_KEY).await.problem(422);
}
on_both!(who_reads_the_audit_log);

async fn events_form_a_hash_chain(s: Server) {
    s.principal("alice", &[], &[]).await;
    s.load("procurement-bot").await;
    let token = s.agent_token("procurement-bot").await;
    let args = json!({"vendor": "acme", "amount": 700});
    s.decide(&token, "procurement.create_purchase_request", args.clone())
        .await;
    s.decide(&token, "procurement.approve_po", json!({})).await;

    let events = s.audit(ADMIN_KEY, "").await;
    assert!(events.len() >= 6, "{events:?}");
    let mut prev = GENESIS.to_owned();
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e["seq"], i as u64 + 1, "{e}");
        assert_eq!(e["prev_hash"], prev.as_str(), "{e}");
        let hash = e["hash"].as_str().unwrap();
        assert_eq!(hash.len(), 64);
        assert!(e["time"].is_string() && e["type"].is_string() && e["actor"].is_string());
        prev = hash.to_owned();
    }
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    for t in ["principal", "manifest", "credential", "token", "decision"] {
        assert!(types.contains(&t), "no `{t}` event in {types:?}");
    }

    let decisions = s.audit(ADMIN_KEY, "type=decision").await;
    assert_eq!(decisions.len(), 2);
    let allowed = &decisions[0];
    assert_eq!(allowed["agent"], "procurement-bot");
    assert_eq!(allowed["actor"], "agent:procurement-bot");
    assert_eq!(allowed["action"], "procurement.create_purchase_request");
    assert_eq!(allowed["decision"], "allow");
    assert_eq!(codes(allowed), vec!["granted"]);
    assert_eq!(allowed["args"], args);
    assert_eq!(decisions[1]["decision"], "deny");
    assert_eq!(codes(&decisions[1]), vec!["forbidden"]);

    let limited = s
        .get("/v1/audit?limit=2&type=decision", ADMIN_KEY)
        .await
        .expect(200);
    assert_eq!(limited["events"].as_array().unwrap().len(), 2);
    let after = s
        .audit(ADMIN_KEY, &format!("after={}", decisions[0]["seq"]))
        .await;
    assert_eq!(after[0]["seq"], decisions[0]["seq"].as_u64().unwrap() + 1);

    let v = s.get("/v1/audit/verify", ADMIN_KEY).await.expect(200);
    assert_eq!(v["ok"], true, "{}", v.text);
    assert_eq!(v["events"], events.len() as u64);
    assert_eq!(v["head"], prev.as_str());
    assert!(v.json.get("first_bad_seq").is_none());
}
on_both!(events_form_a_hash_chain);

async fn sensitive_arguments_are_keyed_hashes(s: Server) {
    s.principal("alice", &[], &[]).await;
    let m = manifest(
        "mail-bot",
        "alice",
        "tools:\n  - name: mail.send\n    args:\n      to: { prefix: \"ops@\" }\n    sensitive: [body]\n",
    );
    s.apply(ADMIN_KEY, &m).await.expect(201);
    let token = s.agent_token("mail-bot").await;
    let secret = "the launch code is 0000-SECRET";
    for _ in 0..2 {
        let d = s
            .decide(
                &token,
                "mail.send",
                json!({"to": "ops@acme.example", "body": secret}),
            )
            .await;
        assert_eq!(d["decision"], "allow", "{d}");
    }
    let events = s.audit(ADMIN_KEY, "type=decision&agent=mail-bot").await;
    assert_eq!(events.len(), 2);
    let hashed = events[0]["args"]["body"].as_str().unwrap();
    assert!(hashed.starts_with("hmac-sha256:"), "{hashed}");
    assert_eq!(events[0]["args"]["to"], "ops@acme.example");
    // The same value always hashes alike, so an investigator can match it.
    assert_eq!(events[1]["args"]["body"], hashed);
    let all = serde_json::to_string(&s.audit(ADMIN_KEY, "").await).unwrap();
    assert!(
        !all.contains("0000-SECRET"),
        "a sensitive value leaked: {all}"
    );
}
on_both!(sensitive_arguments_are_keyed_hashes);

async fn verify_detects_tampering(s: Server) {
    s.principal("alice", &[], &[]).await;
    s.load("procurement-bot").await;
    let token = s.agent_token("procurement-bot").await;
    for _ in 0..3 {
        s.decide(&token, "procurement.list_vendors", json!({}))
            .await;
    }
    let v = s.get("/v1/audit/verify", ADMIN_KEY).await.expect(200);
    assert_eq!(v["ok"], true, "{}", v.text);
    let total = v["events"].as_u64().unwrap();

    let target = 3;
    let body = sql_text(
        &s.db_url,
        s.backend,
        &format!("SELECT body FROM audit_events WHERE seq = {target}"),
    )
    .await;
    let mut altered: Value = serde_json::from_str(&body).unwrap();
    altered["actor"] = "principal:nobody".into();
    let altered = serde_json::to_string(&altered).unwrap().replace('\'', "''");
    sql(
        &s.db_url,
        s.backend,
        &format!("UPDATE audit_events SET body = '{altered}' WHERE seq = {target}"),
    )
    .await;

    let v = s.get("/v1/audit/verify", ADMIN_KEY).await.expect(200);
    assert_eq!(v["ok"], false, "{}", v.text);
    assert_eq!(v["first_bad_seq"], target, "{}", v.text);
    assert_eq!(v["events"], total);
    // New events still append after a detected break.
    s.decide(&token, "procurement.list_vendors", json!({}))
        .await;
    let v = s.get("/v1/audit/verify", ADMIN_KEY).await.expect(200);
    assert_eq!(v["first_bad_seq"], target);
}
on_both!(verify_detects_tampering);

/// A full scenario, then every audit event: no API key, client secret or
/// access token appears anywhere in the log.
async fn secrets_never_reach_the_audit_log(s: Server) {
    let people = s.people().await;
    let mut secrets: Vec<String> = people.keys().cloned().collect();
    for name in ["procurement-bot", "swe-bot", "ir-bot", "research-bot"] {
        s.load(name).await;
    }
    let mut tokens = Vec::new();
    for agent in ["procurement-bot", "swe-bot", "ir-bot", "research-bot"] {
        let (id, secret) = s.credentials(agent).await;
        let basic = s.token_request(&id, &secret, &[]).await.expect(200);
        tokens.push(basic["access_token"].as_str().unwrap().to_owned());
        let post = s
            .send(s.http.post(s.url("/oauth/token")).form(&[
                ("grant_type", "client_credentials"),
                ("client_id", id.as_str()),
                ("client_secret", secret.as_str()),
            ]))
            .await
            .expect(200);
        tokens.push(post["access_token"].as_str().unwrap().to_owned());
        // A failed attempt with a wrong secret must not log what was tried.
        s.token_request(&id, "bcs_wrong-guess-123", &[])
            .await
            .expect(401);
        secrets.push(secret);
    }
    secrets.push("bcs_wrong-guess-123".into());
    let procurement = &tokens[0];
    let d = s
        .decide(
            procurement,
            "procurement.create_purchase_request",
            json!({"vendor": "acme", "amount": 9000}),
        )
        .await;
    s.approve(d["approval_id"].as_str().unwrap(), &people["frank"])
        .await
        .expect(200);
    s.decide(
        procurement,
        "procurement.create_purchase_request",
        json!({"vendor": "acme", "amount": 9000}),
    )
    .await;
    // A PEP forwarding a token, and an outcome.
    let d = s
        .post(
            "/v1/decisions",
            &people["gateway"],
            json!({"action": "web.search", "agent_token": tokens[6]}),
        )
        .await
        .expect(200);
    s.post(
        &format!(
            "/v1/decisions/{}/outcome",
            d["decision_id"].as_str().unwrap()
        ),
        &people["gateway"],
        json!({"status": "ok", "agent_token": tokens[6], "retrievals": ["https://example.org"]}),
    )
    .await;
    let e = s
        .post(
            "/v1/agents/ir-bot/elevations",
            &tokens[4],
            json!({"name": "identity-write", "duration": "15m", "reason": "INC-7"}),
        )
        .await
        .expect(201);
    s.approve(e["approval_id"].as_str().unwrap(), &people["sam"])
        .await
        .expect(200);
    s.post(
        "/v1/agents/swe-bot/retire",
        &people["bob"],
        json!({"reason": "done"}),
    )
    .await
    .expect(200);
    s.post("/v1/principals/mallory/deactivate", ADMIN_KEY, json!({}))
        .await
        .expect(200);

    let events = s.audit(ADMIN_KEY, "").await;
    assert!(events.len() > 30, "only {} events", events.len());
    let log = serde_json::to_string(&events).unwrap();
    for secret in &secrets {
        assert!(
            !log.contains(secret.as_str()),
            "a secret is in the audit log"
        );
    }
    for token in &tokens {
        assert!(
            !log.contains(token.as_str()),
            "an access token is in the audit log"
        );
        let signature = token.rsplit('.').next().unwrap();
        assert!(
            !log.contains(signature),
            "a token signature is in the audit log"
        );
    }
}
on_both!(secrets_never_reach_the_audit_log);
