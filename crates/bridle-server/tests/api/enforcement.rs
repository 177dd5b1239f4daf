//! What enforcement points use: reachable actions (`pep`) and the approval
//! long poll, on the procurement reference agent.

use serde_json::json;

use crate::common::{Server, assert_decision, eventually};

const CREATE: &str = "procurement.create_purchase_request";

async fn reachable_lists_what_the_record_can_reach(s: Server) {
    let people = s.people().await;
    s.load("procurement-bot").await;
    let token = s.agent_token("procurement-bot").await;
    let ask = json!({"agent_token": token, "actions": [
        "procurement.list_vendors", CREATE, "procurement.approve_request", "crm.read_case",
    ]});
    let r = s
        .post("/v1/decisions/reachable", &people["gateway"], ask.clone())
        .await
        .expect(200);
    assert_eq!(r["agent"], "procurement-bot");
    assert_eq!(r["reachable"], json!(["procurement.list_vendors", CREATE]));
    // Only a `pep` may ask; a bad token is 401.
    s.post("/v1/decisions/reachable", &people["alice"], ask.clone())
        .await
        .problem(403);
    let forged = json!({"agent_token": "a.b.c", "actions": [CREATE]});
    s.post("/v1/decisions/reachable", &people["gateway"], forged)
        .await
        .problem(401);
    // A suspended agent reaches nothing.
    s.post(
        "/v1/agents/procurement-bot/suspend",
        &people["admin"],
        json!({"reason": "test"}),
    )
    .await
    .expect(200);
    let r = s
        .post("/v1/decisions/reachable", &people["gateway"], ask)
        .await
        .expect(200);
    assert_eq!(r["reachable"], json!([]));
}
on_both!(reachable_lists_what_the_record_can_reach);

async fn approval_wait_returns_when_decided(s: Server) {
    let people = s.people().await;
    s.load("procurement-bot").await;
    let token = s.agent_token("procurement-bot").await;
    let d = s
        .decide(&token, CREATE, json!({"vendor": "acme", "amount": 7000}))
        .await;
    assert_decision(&d, "approval_required", "approval_required");
    let id = d["approval_id"].as_str().unwrap().to_owned();
    // Still pending when the wait ends.
    let r = s
        .get(
            &format!("/v1/approvals/{id}/wait?timeout=1s"),
            &people["gateway"],
        )
        .await
        .expect(200);
    assert_eq!(r["state"], "pending");
    // A vote wakes a waiter: it is parked (it read `pending`) before the
    // vote, so its answer can only come from being woken.
    let parked = || {
        s.state
            .parked_waits
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    assert_eq!(parked(), 0);
    let waiter = {
        let http = s.http.clone();
        let url = s.url(&format!("/v1/approvals/{id}/wait?timeout=60s"));
        let key = people["gateway"].to_owned();
        tokio::spawn(async move {
            let r = http.get(url).bearer_auth(key).send().await.unwrap();
            r.json::<serde_json::Value>().await.unwrap()
        })
    };
    eventually(10, "the waiter to park", || {
        let n = parked();
        async move { n == 1 }
    })
    .await;
    s.post(
        &format!("/v1/approvals/{id}/approve"),
        &people["frank"],
        json!({}),
    )
    .await
    .expect(200);
    assert_eq!(waiter.await.unwrap()["state"], "approved");
    assert_eq!(parked(), 0);
    s.get(
        &format!("/v1/approvals/{id}/wait?timeout=soon"),
        &people["gateway"],
    )
    .await
    .problem(400);
    s.get("/v1/approvals/apr_nope/wait?timeout=1s", &people["gateway"])
        .await
        .problem(404);
}
on_both!(approval_wait_returns_when_decided);
