//! Several replicas on one PostgreSQL database see each other's changes at
//! once (LISTEN/NOTIFY), not when their caches expire: a suspension or a
//! revoked token on one replica is enforced on the other, and an approval
//! decided on one wakes a waiter parked on the other.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::{ADMIN_KEY, Backend, Server, effect, eventually};

/// Two replicas behind one issuer; the second caches verified tokens for a
/// minute, so only a notification can make it see a change in time.
async fn pair() -> (Server, Server) {
    let a = Server::start(Backend::Postgres, |_| {}).await;
    let db = a.db_url.clone();
    let issuer = a.base.clone();
    let b = Server::start(Backend::Postgres, move |c| {
        c.db = db;
        c.issuer = Some(issuer);
        c.token_cache_ms = 60_000;
    })
    .await;
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspension_reaches_the_other_replica() {
    let (a, b) = pair().await;
    let _people = a.people().await;
    a.load("swe-bot").await;
    let token = a.agent_token("swe-bot").await;
    let run = json!({"suite": "unit"});
    // B has verified (and cached) the token.
    assert_eq!(
        effect(&b.decide(&token, "ci.run_tests", run.clone()).await),
        "allow"
    );
    let t0 = Instant::now();
    a.post(
        "/v1/agents/swe-bot/suspend",
        ADMIN_KEY,
        json!({"reason": "incident"}),
    )
    .await
    .expect(200);
    eventually(5, "the suspension on the other replica", || async {
        let r = b
            .post(
                "/v1/decisions",
                &token,
                json!({"action": "ci.run_tests", "args": run}),
            )
            .await;
        // Denied (or refused outright): no longer allowed.
        r.status != 200 || effect(&r.json) == "deny"
    })
    .await;
    let waited = t0.elapsed();
    assert!(
        waited < Duration::from_secs(5),
        "seen after {waited:?}, not through its minute-long cache"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_token_is_refused_by_the_other_replica() {
    let (a, b) = pair().await;
    let _people = a.people().await;
    a.load("swe-bot").await;
    let token = a.agent_token("swe-bot").await;
    let run = json!({"action": "ci.run_tests", "args": {"suite": "unit"}});
    b.post("/v1/decisions", &token, run.clone())
        .await
        .expect(200);
    let (id, secret) = a.credentials("swe-bot").await;
    let revoked = a
        .http
        .post(a.url("/oauth/revoke"))
        .basic_auth(&id, Some(&secret))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status().as_u16(), 200);
    eventually(5, "the revocation on the other replica", || async {
        b.post("/v1/decisions", &token, run.clone()).await.status == 401
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_on_one_replica_wakes_a_waiter_on_the_other() {
    let (a, b) = pair().await;
    let people = a.people().await;
    a.load("procurement-bot").await;
    let token = a.agent_token("procurement-bot").await;
    let d = a
        .decide(
            &token,
            "procurement.create_purchase_request",
            json!({"vendor": "acme", "amount": 7000}),
        )
        .await;
    let approval = d["approval_id"].as_str().unwrap().to_owned();
    let wait = {
        let req = b.req(
            reqwest::Method::GET,
            &format!("/v1/approvals/{approval}/wait?timeout=25s"),
            &token,
        );
        tokio::spawn(async move {
            let t0 = Instant::now();
            let r = req.send().await.unwrap();
            let body: serde_json::Value = r.json().await.unwrap();
            (body, t0.elapsed())
        })
    };
    // The waiter is parked on B before the vote on A.
    eventually(5, "the waiter parked", || async {
        b.state
            .parked_waits
            .load(std::sync::atomic::Ordering::Relaxed)
            == 1
    })
    .await;
    a.approve(&approval, &people["frank"]).await.expect(200);
    let (body, waited) = wait.await.unwrap();
    assert_eq!(body["state"], "approved", "{body}");
    assert!(
        waited < Duration::from_secs(10),
        "woken after {waited:?}: by the vote, not by its 25 s timeout"
    );
}
