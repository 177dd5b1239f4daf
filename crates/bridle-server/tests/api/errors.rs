//! Errors as problem+json: malformed bodies, size limits, unknown routes,
//! and 5xx answers that carry no internal detail. Plus `/healthz`.

use serde_json::json;

use crate::common::{ADMIN_KEY, Server, sql};

async fn healthz(s: Server) {
    let r = s.get("/healthz", "").await.expect(200);
    assert_eq!(r.json, json!({"status": "ok"}));
}
on_both!(healthz);

/// `/healthz` tests what a decision needs, an audit append that reaches
/// the database: while inserts into the audit table fail, it is 503 with an
/// opaque body, as decisions are; once they succeed again, both recover
/// without a restart. `/readyz` says ready throughout (the store answers,
/// its migrations are applied, the keys are loaded).
async fn healthz_fails_with_the_audit_append(s: Server) {
    s.principal("bob", &[], &[]).await;
    s.load("swe-bot").await;
    let token = s.agent_token("swe-bot").await;
    let r = s.get("/readyz", "").await.expect(200);
    assert_eq!(r.json, json!({"status": "ok"}));
    let (install, drop): (&[&str], &str) = match s.backend {
        crate::common::Backend::Sqlite => (
            &["CREATE TRIGGER refuse BEFORE INSERT ON audit_events \
               BEGIN SELECT RAISE(ABORT, 'injected: audit insert refused'); END"],
            "DROP TRIGGER refuse",
        ),
        crate::common::Backend::Postgres => (
            &[
                "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS \
                 $$BEGIN RAISE EXCEPTION 'injected: audit insert refused'; END$$",
                "CREATE TRIGGER refuse BEFORE INSERT ON audit_events \
                 FOR EACH ROW EXECUTE FUNCTION refuse()",
            ],
            "DROP TRIGGER refuse ON audit_events",
        ),
    };
    for statement in install {
        sql(&s.db_url, s.backend, statement).await;
    }
    let r = s.get("/healthz", "").await.problem(503);
    assert_opaque(&r.text);
    assert!(!r.text.contains("injected"), "{}", r.text);
    s.post("/v1/decisions", &token, json!({"action": "ci.run_tests"}))
        .await
        .problem(503);
    s.get("/readyz", "").await.expect(200);
    sql(&s.db_url, s.backend, drop).await;
    s.get("/healthz", "").await.expect(200);
    s.post("/v1/decisions", &token, json!({"action": "ci.run_tests"}))
        .await
        .expect(200);
}
on_both!(healthz_fails_with_the_audit_append);

async fn malformed_requests(s: Server) {
    s.principal("bob", &[], &[]).await;
    s.load("swe-bot").await;
    let token = s.agent_token("swe-bot").await;
    for (path, key) in [
        ("/v1/principals", ADMIN_KEY),
        ("/v1/decisions", token.as_str()),
    ] {
        let r = s
            .send(
                s.req(reqwest::Method::POST, path, key)
                    .header("content-type", "application/json")
                    .body("{not json"),
            )
            .await
            .problem(400);
        assert!(r["detail"].as_str().unwrap().contains("JSON"), "{}", r.text);
        // JSON without the JSON content type.
        s.send(
            s.req(reqwest::Method::POST, path, key)
                .body("{\"id\": \"x\"}"),
        )
        .await
        .problem(400);
    }
    // Optional JSON bodies are still parsed strictly.
    for path in [
        "/v1/agents/swe-bot/review",
        "/v1/approvals/apr_x/approve",
        "/v1/approvals/apr_x/deny",
    ] {
        s.send(
            s.req(reqwest::Method::POST, path, ADMIN_KEY)
                .header("content-type", "application/json")
                .body("{bad"),
        )
        .await
        .problem(400);
    }
    // A query string that does not parse.
    s.get("/v1/audit?limit=many", ADMIN_KEY).await.problem(400);
    // Unknown fields are refused, not ignored.
    s.post(
        "/v1/decisions",
        &token,
        json!({"action": "ci.run_tests", "agnet_token": "x"}),
    )
    .await
    .problem(422);
    // A manifest that is not UTF-8.
    s.send(
        s.req(reqwest::Method::PUT, "/v1/agents/swe-bot", ADMIN_KEY)
            .header("content-type", "application/yaml")
            .body(vec![0xff, 0xfe, 0x00]),
    )
    .await
    .problem(400);
}
on_both!(malformed_requests);

async fn unknown_routes(s: Server) {
    let r = s.get("/v1/nothing-here", ADMIN_KEY).await.problem(404);
    assert_eq!(r["status"], 404);
    s.get("/nope", "").await.problem(404);
    let r = s.get("/v1/decisions", ADMIN_KEY).await;
    assert_eq!(r.status, 405, "{}", r.text);
    assert_eq!(r.content_type, "application/problem+json", "{}", r.text);
    r.problem(405);
}
on_both!(unknown_routes);

async fn body_limit(s: Server) {
    s.principal("bob", &[], &[]).await;
    s.load("swe-bot").await;
    let token = s.agent_token("swe-bot").await;
    let padding = "x".repeat(8192);
    let yaml = format!("{}# {padding}\n", crate::common::example("swe-bot"));
    s.put_yaml("swe-bot", ADMIN_KEY, &yaml).await.problem(413);
    s.post(
        "/v1/decisions",
        &token,
        json!({"action": "ci.run_tests", "args": {"pad": padding}}),
    )
    .await
    .problem(413);
    s.post(
        "/v1/principals",
        ADMIN_KEY,
        json!({"id": "carol", "name": padding}),
    )
    .await
    .problem(413);
    // Under the limit, all is well.
    assert_eq!(
        s.decide(&token, "ci.run_tests", json!({"pad": "x"})).await["decision"],
        "allow"
    );
}
on_both!(body_limit, |c: &mut bridle_server::Config| c.body_limit =
    4096);

/// Text that must never reach a client in a 5xx body.
const INTERNALS: &[&str] = &[
    "audit_head",
    "no such table",
    "relation",
    "sqlx",
    "database",
    "no longer parses",
    "SELECT",
    "UPDATE",
];

#[track_caller]
fn assert_opaque(text: &str) {
    for word in INTERNALS {
        assert!(!text.contains(word), "`{word}` leaked in: {text}");
    }
}

/// With the audit log unwritable the server answers 503, never an
/// unaudited decision, and says nothing about why.
async fn audit_unavailable_is_opaque_503(s: Server) {
    s.principal("bob", &[], &[]).await;
    s.load("swe-bot").await;
    let (id, secret) = s.credentials("swe-bot").await;
    let r = s.token_request(&id, &secret, &[]).await.expect(200);
    let token = r["access_token"].as_str().unwrap().to_owned();
    sql(
        &s.db_url,
        s.backend,
        "ALTER TABLE audit_head RENAME TO audit_head_gone",
    )
    .await;

    let r = s
        .post("/v1/decisions", &token, json!({"action": "ci.run_tests"}))
        .await
        .problem(503);
    assert!(
        r["detail"].as_str().unwrap().contains("request id"),
        "{}",
        r.text
    );
    assert_opaque(&r.text);
    let r = s.get("/healthz", "").await.problem(503);
    assert_opaque(&r.text);
    let r = s.token_request(&id, &secret, &[]).await.expect(503);
    assert_eq!(r["error"], "temporarily_unavailable");
    assert_opaque(&r.text);
}
on_both!(audit_unavailable_is_opaque_503);

/// A stored manifest that no longer parses is a 500 saying only
/// "internal error" and a request id.
async fn internal_error_is_opaque_500(s: Server) {
    s.principal("bob", &[], &[]).await;
    s.load("swe-bot").await;
    let token = s.agent_token("swe-bot").await;
    sql(
        &s.db_url,
        s.backend,
        "UPDATE agents SET source = 'agent: [', version = version + 1 WHERE id = 'swe-bot'",
    )
    .await;
    let r = s
        .post("/v1/decisions", &token, json!({"action": "ci.run_tests"}))
        .await
        .problem(500);
    let detail = r["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("internal error") && detail.contains("request id"),
        "{}",
        r.text
    );
    assert_opaque(&r.text);
    assert!(!r.text.contains("agent: ["), "{}", r.text);
}
on_both!(internal_error_is_opaque_500);
