//! `GET /metrics`: who may scrape it (admin, auditor, the metrics token;
//! never an agent), and that what it counts follows what the server did —
//! decisions by effect and reason, their latency, the audit writer's
//! batches, pending approvals, tokens, caches and store failures.

use serde_json::json;

use crate::common::{ADMIN_KEY, Server, assert_decision, sql};

const METRICS_TOKEN: &str = "mt_scraper-0123456789abcdef";
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
const AGENT: &str = "procurement-bot";
const BUY: &str = "procurement.create_purchase_request";

fn with_metrics_token(config: &mut bridle_server::Config) {
    config.metrics_token = Some(bridle_server::Secret::new(METRICS_TOKEN));
    // Every decision of a test finds its token verified: the hits are certain.
    config.token_cache_ms = 600_000;
}

/// A scrape as `key`, which must succeed in the Prometheus text format.
async fn scrape(s: &Server, key: &str) -> Scrape {
    let r = s.get("/metrics", key).await.expect(200);
    assert_eq!(r.content_type, CONTENT_TYPE, "{}", r.text);
    Scrape(r.text)
}

struct Scrape(String);

impl Scrape {
    /// The value of one sample, named exactly as the text writes it
    /// (`name{label="value",…}`, labels in their declared order).
    fn value(&self, series: &str) -> Option<f64> {
        self.0.lines().find_map(|line| {
            let rest = line.strip_prefix(series)?.strip_prefix(' ')?;
            Some(
                rest.parse::<f64>()
                    .unwrap_or_else(|e| panic!("{line}: {e}")),
            )
        })
    }

    /// [`Scrape::value`], 0 when the series does not exist yet.
    fn count(&self, series: &str) -> f64 {
        self.value(series).unwrap_or(0.0)
    }

    #[track_caller]
    fn expect(&self, series: &str) -> f64 {
        self.value(series)
            .unwrap_or_else(|| panic!("no `{series}` in\n{}", self.0))
    }
}

const ALLOWED: &str = r#"bridle_decisions_total{effect="allow",reason="granted"}"#;
const FORBIDDEN: &str = r#"bridle_decisions_total{effect="deny",reason="forbidden"}"#;
const HELD: &str =
    r#"bridle_decisions_total{effect="approval_required",reason="approval_required"}"#;
const LATENCY: &str = "bridle_decision_duration_seconds_count";
const PENDING: &str = r#"bridle_approvals_pending{kind="action"}"#;
const OLDEST: &str = r#"bridle_approval_pending_oldest_seconds{kind="action"}"#;

async fn counts_follow_what_the_server_did(s: Server) {
    let people = s.people().await;
    s.load(AGENT).await;
    let (client_id, secret) = s.credentials(AGENT).await;
    let before = scrape(&s, ADMIN_KEY).await;
    assert_eq!(before.count(ALLOWED), 0.0, "a fresh server");
    assert_eq!(before.expect(PENDING), 0.0);
    assert_eq!(before.expect(OLDEST), 0.0);
    assert_eq!(
        before.expect(r#"bridle_tokens_issued_total{grant="client_credentials"}"#),
        0.0
    );

    let token = s.token_request(&client_id, &secret, &[]).await.expect(200)["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    s.token_request(&client_id, "wrong-secret", &[])
        .await
        .expect(401);
    let (n, m) = (3, 2);
    for _ in 0..n {
        let d = s
            .decide(&token, "procurement.list_vendors", json!({}))
            .await;
        assert_decision(&d, "allow", "granted");
    }
    for _ in 0..m {
        let d = s.decide(&token, "procurement.approve_po", json!({})).await;
        assert_decision(&d, "deny", "forbidden");
    }
    let held = s
        .decide(&token, BUY, json!({"vendor": "acme", "amount": 7000}))
        .await;
    assert_decision(&held, "approval_required", "approval_required");

    let after = scrape(&s, &people["ann"]).await;
    assert_eq!(after.expect(ALLOWED), f64::from(n));
    assert_eq!(after.expect(FORBIDDEN), f64::from(m));
    assert_eq!(after.expect(HELD), 1.0);
    assert_eq!(
        after.expect(LATENCY) - before.expect(LATENCY),
        f64::from(n + m + 1)
    );
    let inf = r#"bridle_decision_duration_seconds_bucket{le="+Inf"}"#;
    assert_eq!(after.expect(inf), after.expect(LATENCY));
    assert!(after.expect("bridle_decision_duration_seconds_sum") > 0.0);
    // Each decision's record went through the group-commit writer.
    let batches = "bridle_audit_append_duration_seconds_count";
    assert!(after.expect(batches) > before.expect(batches));
    let appends = "bridle_audit_batch_size_sum";
    assert!(after.expect(appends) - before.expect(appends) >= f64::from(n + m + 1));
    assert_eq!(after.expect(PENDING), 1.0);
    assert!(after.expect(OLDEST) >= 0.0);
    assert_eq!(
        after.expect(r#"bridle_approvals_pending{kind="change"}"#),
        0.0
    );
    assert_eq!(
        after.expect(r#"bridle_tokens_issued_total{grant="client_credentials"}"#),
        1.0
    );
    assert_eq!(
        after.expect(r#"bridle_tokens_refused_total{reason="invalid_client"}"#),
        1.0
    );
    // The first decision verified the token, the others found it cached.
    let token_hits = r#"bridle_cache_hits_total{cache="token"}"#;
    assert!(after.expect(token_hits) - before.expect(token_hits) >= f64::from(n + m));
    let compiled_hits = r#"bridle_cache_hits_total{cache="compiled_manifest"}"#;
    assert!(after.expect(compiled_hits) > before.expect(compiled_hits));
    assert_eq!(after.expect("bridle_store_errors_total"), 0.0);
    assert!(
        after.0.contains(&format!(
            "bridle_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        )),
        "{}",
        after.0
    );

    // Once decided, the approval is no longer pending.
    let approval = held["approval_id"].as_str().unwrap();
    s.approve(approval, &people["frank"]).await.expect(200);
    let decided = scrape(&s, METRICS_TOKEN).await;
    assert_eq!(decided.expect(PENDING), 0.0);
    assert_eq!(decided.expect(OLDEST), 0.0);
}
on_both!(counts_follow_what_the_server_did, super::with_metrics_token);

/// A 503 is a store error, whether problem+json or in the OAuth error
/// format; a decision that failed is timed but not counted as decided.
async fn store_errors_are_counted(s: Server) {
    s.principal("alice", &[], &[]).await;
    s.load(AGENT).await;
    let (client_id, secret) = s.credentials(AGENT).await;
    let token = s.token_request(&client_id, &secret, &[]).await.expect(200)["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let before = scrape(&s, ADMIN_KEY).await;
    let (install, drop): (&[&str], &str) = match s.backend {
        crate::common::Backend::Sqlite => (
            &["CREATE TRIGGER refuse BEFORE INSERT ON audit_events \
               BEGIN SELECT RAISE(ABORT, 'injected'); END"],
            "DROP TRIGGER refuse",
        ),
        crate::common::Backend::Postgres => (
            &[
                "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS \
                 $$BEGIN RAISE EXCEPTION 'injected'; END$$",
                "CREATE TRIGGER refuse BEFORE INSERT ON audit_events \
                 FOR EACH ROW EXECUTE FUNCTION refuse()",
            ],
            "DROP TRIGGER refuse ON audit_events",
        ),
    };
    for statement in install {
        sql(&s.db_url, s.backend, statement).await;
    }
    s.post(
        "/v1/decisions",
        &token,
        json!({"action": "procurement.list_vendors"}),
    )
    .await
    .problem(503);
    let r = s.token_request(&client_id, &secret, &[]).await.expect(503);
    assert_eq!(r["error"], "temporarily_unavailable");
    sql(&s.db_url, s.backend, drop).await;

    let after = scrape(&s, ADMIN_KEY).await;
    assert_eq!(after.expect("bridle_store_errors_total"), 2.0);
    assert_eq!(after.expect(LATENCY) - before.expect(LATENCY), 1.0);
    assert_eq!(after.count(ALLOWED), 0.0);
    assert_eq!(
        after.expect(r#"bridle_tokens_refused_total{reason="temporarily_unavailable"}"#),
        1.0
    );
}
on_both!(store_errors_are_counted);

/// Admin, auditor and the metrics token read the metrics; an agent's token,
/// any other principal, no credential and a wrong token do not, each as
/// problem+json. The metrics token opens nothing else.
async fn who_may_scrape(s: Server) {
    let people = s.people().await;
    s.load(AGENT).await;
    let token = s.agent_token(AGENT).await;
    scrape(&s, ADMIN_KEY).await;
    scrape(&s, &people["ann"]).await;
    scrape(&s, METRICS_TOKEN).await;
    s.get("/metrics", &token).await.problem(403);
    for who in ["alice", "gateway", "frank", "mallory"] {
        s.get("/metrics", &people[who]).await.problem(403);
    }
    s.get("/metrics", "").await.problem(401);
    s.get("/metrics", "mt_scraper-0123456789abcdeX")
        .await
        .problem(401);
    s.get("/metrics", &format!("{METRICS_TOKEN}x"))
        .await
        .problem(401);
    // Only as a bearer token.
    s.send(
        s.http
            .get(s.url("/metrics"))
            .header("authorization", format!("DPoP {METRICS_TOKEN}")),
    )
    .await
    .problem(401);
    s.get("/v1/agents", METRICS_TOKEN).await.problem(401);
    s.get("/v1/audit", METRICS_TOKEN).await.problem(401);
}
on_both!(who_may_scrape, super::with_metrics_token);

/// Without a configured metrics token, no bearer token is one.
async fn no_metrics_token_unless_configured(s: Server) {
    s.get("/metrics", METRICS_TOKEN).await.problem(401);
    scrape(&s, ADMIN_KEY).await;
}
on_both!(no_metrics_token_unless_configured);

const API: &str = "https://api.example.com";

fn one_route(config: &mut bridle_server::Config) {
    config.ext_authz = bridle_server::ext_authz::ExtAuthzConfig {
        audiences: vec![API.into()],
        public_url: None,
        routes: vec![bridle_server::ext_authz::RouteRule {
            method: "GET".into(),
            path: "/api/vendors".into(),
            action: "procurement.list_vendors".into(),
            resource: None,
        }],
    };
}

/// What ext_authz decides is counted as any decision; a request no route
/// maps, refused before any decision, is a denial with reason `refused`.
async fn ext_authz_refusals_are_denials(s: Server) {
    s.principal("alice", &[], &[]).await;
    s.load(AGENT).await;
    let (id, secret) = s.credentials(AGENT).await;
    let r = s
        .token_request(&id, &secret, &[("resource", API)])
        .await
        .expect(200);
    let token = r["access_token"].as_str().unwrap();
    let get = |path: &str| {
        s.http
            .get(s.url(&format!("/ext_authz{path}")))
            .bearer_auth(token)
            .send()
    };
    assert_eq!(get("/api/vendors").await.unwrap().status(), 200);
    assert_eq!(get("/api/unmapped").await.unwrap().status(), 403);
    let m = scrape(&s, ADMIN_KEY).await;
    assert_eq!(m.expect(ALLOWED), 1.0);
    assert_eq!(
        m.expect(r#"bridle_decisions_total{effect="deny",reason="refused"}"#),
        1.0
    );
    // Only the decided one went through the decision service.
    assert_eq!(m.expect(LATENCY), 1.0);
}
on_both!(ext_authz_refusals_are_denials, super::one_route);
