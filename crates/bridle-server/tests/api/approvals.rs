//! Human approvals over HTTP, on the procurement reference agent: binding
//! to one exact request, reuse, eligibility, single use, denial.

use serde_json::{Value, json};

use crate::common::{ADMIN_KEY, Server, assert_decision, codes, effect, eventually, example};

const CREATE: &str = "procurement.create_purchase_request";

async fn procurement_approval_flow(s: Server) {
    let people = s.people().await;
    s.load("procurement-bot").await;
    let token = s.agent_token("procurement-bot").await;
    let small = json!({"vendor": "acme", "amount": 700});
    let big = json!({"vendor": "acme", "amount": 7000});

    assert_decision(&s.decide(&token, CREATE, small).await, "allow", "granted");
    let first = s.decide(&token, CREATE, big.clone()).await;
    assert_decision(&first, "approval_required", "approval_required");
    let approval = first["approval_id"].as_str().unwrap().to_owned();
    // An identical request waits on the same approval; a different one does not.
    let again = s.decide(&token, CREATE, big.clone()).await;
    assert_eq!(again["approval_id"], approval.as_str());
    let other = s
        .decide(&token, CREATE, json!({"vendor": "acme", "amount": 7001}))
        .await;
    assert_ne!(other["approval_id"], approval.as_str());

    assert_decision(
        &s.decide(&token, CREATE, json!({"vendor": "evilcorp", "amount": 10}))
            .await,
        "deny",
        "arg_constraint",
    );
    assert_decision(
        &s.decide(&token, "procurement.approve_po", json!({"po": 1}))
            .await,
        "deny",
        "forbidden",
    );

    // The inbox shows it to principals, and to the agent that caused it.
    let a = s
        .get(&format!("/v1/approvals/{approval}"), &people["frank"])
        .await
        .expect(200);
    assert_eq!(a["state"], "pending");
    assert_eq!(a["kind"], "action");
    assert_eq!(a["agent"], "procurement-bot");
    assert_eq!(a["action"], CREATE);
    assert_eq!(a["args"], big);
    assert_eq!(a["approvers"], json!(["group:finance-approvers"]));
    assert_eq!(a["min_approvals"], 1);
    s.get(&format!("/v1/approvals/{approval}"), &token)
        .await
        .expect(200);
    // Another agent does not even learn that it exists.
    s.load("research-bot").await;
    let stranger = s.agent_token("research-bot").await;
    s.get(&format!("/v1/approvals/{approval}"), &stranger)
        .await
        .problem(404);
    let pending = s
        .get("/v1/approvals?state=pending", &people["frank"])
        .await
        .expect(200);
    assert!(
        pending["approvals"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["id"] == approval.as_str())
    );
    s.get("/v1/approvals", &token).await.problem(403);
    s.get("/v1/approvals?state=bogus", ADMIN_KEY)
        .await
        .problem(422);

    // Eligibility: not the owner, not outsiders, not the agent.
    for who in ["alice", "mallory", "admin"] {
        s.approve(&approval, &people[who]).await.problem(403);
    }
    s.approve(&approval, &token).await.problem(403);
    let decided = s.approve(&approval, &people["frank"]).await.expect(200);
    assert_eq!(decided["state"], "approved");
    assert_eq!(decided["votes"][0]["principal"], "frank");
    // Decided approvals take no more votes.
    s.approve(&approval, &people["gina"]).await.problem(409);
    s.deny(&approval, &people["gina"]).await.problem(409);
    s.post(
        "/v1/approvals/apr_nope/approve",
        &people["frank"],
        json!({}),
    )
    .await
    .problem(404);

    // Single use: the next identical decision consumes it, the one after asks again.
    let d = s.decide(&token, CREATE, big.clone()).await;
    assert_decision(&d, "allow", "approved");
    assert_eq!(codes(&d), vec!["approved"]);
    let a = s
        .get(&format!("/v1/approvals/{approval}"), ADMIN_KEY)
        .await
        .expect(200);
    assert_eq!(a["state"], "consumed");
    let d = s.decide(&token, CREATE, big.clone()).await;
    assert_decision(&d, "approval_required", "approval_required");
    assert_ne!(d["approval_id"], approval.as_str());
}
on_both!(procurement_approval_flow);

async fn denied_approval(s: Server) {
    let people = s.people().await;
    s.load("procurement-bot").await;
    let token = s.agent_token("procurement-bot").await;
    let args = json!({"vendor": "globex", "amount": 8000});
    let d = s.decide(&token, CREATE, args.clone()).await;
    let approval = d["approval_id"].as_str().unwrap().to_owned();
    let r = s
        .post(
            &format!("/v1/approvals/{approval}/deny"),
            &people["gina"],
            json!({"comment": "not this quarter"}),
        )
        .await
        .expect(200);
    assert_eq!(r["state"], "denied");
    // Identical requests are denied while the denial stands.
    for _ in 0..2 {
        let d = s.decide(&token, CREATE, args.clone()).await;
        assert_decision(&d, "deny", "approval_denied");
        assert!(d.get("approval_id").is_none(), "{d}");
    }
    let denied = s
        .get("/v1/approvals?state=denied", ADMIN_KEY)
        .await
        .expect(200);
    assert_eq!(denied["approvals"].as_array().unwrap().len(), 1);
}
on_both!(denied_approval);

async fn two_approvers_and_double_votes(s: Server) {
    let people = s.people().await;
    let two = example("procurement-bot")
        .replace("agent: procurement-bot", "agent: procurement-two")
        .replace(
            "      ttl: 24h\n",
            "      ttl: 24h\n      min_approvals: 2\n",
        );
    assert!(two.contains("min_approvals: 2"));
    s.apply(ADMIN_KEY, &two).await.expect(201);
    let token = s.agent_token("procurement-two").await;
    let args = json!({"vendor": "initech", "amount": 9000});
    let d = s.decide(&token, CREATE, args.clone()).await;
    let approval = d["approval_id"].as_str().unwrap().to_owned();
    let path = format!("/v1/approvals/{approval}/approve");

    let r: Value = s
        .post(&path, &people["frank"], json!({}))
        .await
        .expect(200)
        .json;
    assert_eq!(r["state"], "pending", "one of two votes");
    // Still pending: the request still waits on the same approval.
    let d = s.decide(&token, CREATE, args.clone()).await;
    assert_eq!(d["approval_id"], approval.as_str());
    // The same approver twice is not a second approver.
    s.post(&path, &people["frank"], json!({}))
        .await
        .problem(403);
    s.post(
        &format!("/v1/approvals/{approval}/deny"),
        &people["frank"],
        json!({}),
    )
    .await
    .problem(403);
    let r = s.post(&path, &people["gina"], json!({})).await.expect(200);
    assert_eq!(r["state"], "approved");
    assert_eq!(r["votes"].as_array().unwrap().len(), 2);
    assert_decision(&s.decide(&token, CREATE, args).await, "allow", "approved");
}
on_both!(two_approvers_and_double_votes);

/// Approvals live for their `ttl`: an unanswered one expires, and a denial
/// stands only until then; afterwards a new approval can be asked.
async fn approvals_expire(s: Server) {
    let people = s.people().await;
    let quick = example("procurement-bot")
        .replace("agent: procurement-bot", "agent: procurement-quick")
        .replace("      ttl: 24h\n", "      ttl: 2s\n");
    s.apply(ADMIN_KEY, &quick).await.expect(201);
    let token = s.agent_token("procurement-quick").await;
    let args = json!({"vendor": "acme", "amount": 6000});

    let d = s.decide(&token, CREATE, args.clone()).await;
    let unanswered = d["approval_id"].as_str().unwrap().to_owned();
    eventually(20, "the approval to expire", || async {
        let a = s
            .get(&format!("/v1/approvals/{unanswered}"), ADMIN_KEY)
            .await;
        a["state"] == "expired"
    })
    .await;
    s.approve(&unanswered, &people["frank"]).await.problem(409);
    let expired = s
        .get("/v1/approvals?state=expired", ADMIN_KEY)
        .await
        .expect(200);
    assert_eq!(expired["approvals"][0]["id"], unanswered.as_str());

    let d = s.decide(&token, CREATE, args.clone()).await;
    assert_decision(&d, "approval_required", "approval_required");
    let denied = d["approval_id"].as_str().unwrap().to_owned();
    assert_ne!(denied, unanswered);
    s.deny(&denied, &people["frank"]).await.expect(200);
    assert_decision(
        &s.decide(&token, CREATE, args.clone()).await,
        "deny",
        "approval_denied",
    );
    eventually(20, "the denial to lapse", || async {
        effect(&s.decide(&token, CREATE, args.clone()).await) == "approval_required"
    })
    .await;
}
on_both!(approvals_expire);
