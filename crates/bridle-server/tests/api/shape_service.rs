//! The decision service as one unit: only a decision that stands is
//! charged, outcomes are recorded only against the caller's own decisions,
//! and every decision or outcome a `pep` forwards names the pep.

use serde_json::{Value, json};

use crate::common::{ADMIN_KEY, Server, assert_decision, concurrently, effect};

/// One approved approval, 40 identical decisions at once: exactly one is
/// allowed, and the budget counts that one only. (The losers of the race
/// for the single-use approval were each charged the full amount before.)
async fn a_lost_approval_race_charges_nothing(s: Server) {
    let people = s.people().await;
    s.load("procurement-bot").await;
    let token = s.agent_token("procurement-bot").await;
    // Above 5,000 needs approval; the 24 h budget is 50,000, so several
    // losers of the race could each have been charged before.
    let big = json!({"vendor": "acme", "amount": 6000});
    let d = s
        .decide(&token, "procurement.create_purchase_request", big.clone())
        .await;
    assert_decision(&d, "approval_required", "approval_required");
    let approval = d["approval_id"].as_str().unwrap().to_owned();
    s.approve(&approval, &people["frank"]).await.expect(200);

    let answers = concurrently(
        &s,
        40,
        "/v1/decisions",
        &token,
        json!({"action": "procurement.create_purchase_request", "args": big}),
    )
    .await;
    let allowed = answers
        .iter()
        .filter(|r| {
            assert_eq!(r.status, 200, "{}", r.text);
            effect(&r.json) == "allow"
        })
        .count();
    assert_eq!(allowed, 1, "a granted approval is single use");

    // 6,000 spent once leaves 44,000: eight purchases of 5,000 and one of
    // 4,000 fit exactly; one more does not.
    let buy = |amount: u32| {
        s.decide(
            &token,
            "procurement.create_purchase_request",
            json!({"vendor": "acme", "amount": amount}),
        )
    };
    for i in 0..8 {
        let d = buy(5000).await;
        assert_eq!(effect(&d), "allow", "purchase {i} of 5,000: {d}");
    }
    assert_decision(&buy(4000).await, "allow", "granted");
    assert_decision(&buy(1).await, "deny", "budget_exceeded");
}
on_both!(a_lost_approval_race_charges_nothing);

/// An outcome is recorded only for a decision that exists and that the
/// reporting agent took part in; anything else is 404 and records nothing.
async fn outcomes_only_for_own_decisions(s: Server) {
    let people = s.people().await;
    s.load("swe-bot").await;
    s.load("support-bot").await;
    let swe = s.agent_token("swe-bot").await;
    let support = s.agent_token("support-bot").await;
    let mine = s.decide(&swe, "ci.run_tests", json!({})).await;
    let mine = mine["decision_id"].as_str().unwrap().to_owned();
    let path = format!("/v1/decisions/{mine}/outcome");

    // Another agent, directly or through a pep: not found.
    s.post(&path, &support, json!({"status": "ok"}))
        .await
        .problem(404);
    s.post(
        &path,
        &people["gateway"],
        json!({"status": "ok", "agent_token": support}),
    )
    .await
    .problem(404);
    // A well-formed id that no decision has: not found.
    s.post(
        "/v1/decisions/dec_AAAAAAAAAAAAAAAA/outcome",
        &swe,
        json!({"status": "ok"}),
    )
    .await
    .problem(404);
    // An id that is some other record's (an approval): not found.
    s.post(
        "/v1/decisions/apr_AAAAAAAAAAAAAAAA/outcome",
        &swe,
        json!({"status": "ok"}),
    )
    .await
    .problem(404);
    let outcomes = || async {
        s.audit(ADMIN_KEY, "type=outcome")
            .await
            .into_iter()
            .filter(|e| e["type"] == "outcome")
            .count()
    };
    assert_eq!(outcomes().await, 0, "a refused outcome records nothing");

    // The agent the decision was for: recorded.
    let r = s.post(&path, &swe, json!({"status": "ok"})).await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(outcomes().await, 1);
}
on_both!(outcomes_only_for_own_decisions);

/// The `pep` that forwarded a decision or an outcome is in its audit event
/// (`detail.pep`); an agent asking for itself records no pep.
async fn a_forwarding_pep_is_on_the_record(s: Server) {
    let people = s.people().await;
    s.load("swe-bot").await;
    let token = s.agent_token("swe-bot").await;
    let own = s.decide(&token, "ci.run_tests", json!({})).await;
    let forwarded = s
        .post(
            "/v1/decisions",
            &people["gateway"],
            json!({"action": "ci.run_tests", "agent_token": token}),
        )
        .await
        .expect(200)
        .json;
    let id = forwarded["decision_id"].as_str().unwrap().to_owned();
    let r = s
        .post(
            &format!("/v1/decisions/{id}/outcome"),
            &people["gateway"],
            json!({"status": "ok", "agent_token": token}),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);

    let events = s.audit(ADMIN_KEY, "").await;
    let by_decision = |kind: &str, id: &Value| -> Value {
        events
            .iter()
            .find(|e| e["type"] == kind && e["detail"]["decision_id"] == *id)
            .unwrap_or_else(|| panic!("no {kind} event for {id}"))
            .clone()
    };
    let d = by_decision("decision", &forwarded["decision_id"]);
    assert_eq!(d["detail"]["pep"], "gateway", "{d}");
    let o = by_decision("outcome", &forwarded["decision_id"]);
    assert_eq!(o["detail"]["pep"], "gateway", "{o}");
    let d = by_decision("decision", &own["decision_id"]);
    assert!(d["detail"].get("pep").is_none(), "{d}");
}
on_both!(a_forwarding_pep_is_on_the_record);
