//! Continuous posture: the sweep keeps each agent's findings, audits and
//! announces each one that opens or resolves (once, with several replicas),
//! runs on its own after a change, and suspends an agent overdue for review
//! past the grace period. Each rule the sweep added has a fixture that
//! triggers it and one that does not.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;
use bridle_server::posture::sweep_all;
use serde_json::{Value, json};

use crate::common::{ADMIN_KEY, Backend, Server, eventually, manifest, sql};

/// A webhook receiver that records every CloudEvent it is sent.
async fn receiver() -> (String, Arc<Mutex<Vec<Value>>>) {
    let seen: Arc<Mutex<Vec<Value>>> = Arc::default();
    let app = Router::new().route(
        "/hook",
        post({
            let seen = Arc::clone(&seen);
            move |body: String| {
                let seen = Arc::clone(&seen);
                async move {
                    seen.lock()
                        .unwrap()
                        .push(serde_json::from_str(&body).unwrap());
                    StatusCode::NO_CONTENT
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, seen)
}

/// The open findings of `agent` as `GET /v1/findings` answers them.
async fn findings(s: &Server, agent: &str) -> Vec<Value> {
    s.get(&format!("/v1/findings?agent={agent}"), ADMIN_KEY)
        .await
        .expect(200)["findings"]
        .as_array()
        .unwrap()
        .clone()
}

fn codes(findings: &[Value]) -> Vec<&str> {
    findings
        .iter()
        .map(|f| f["code"].as_str().unwrap())
        .collect()
}

/// `finding` audit events of `agent` with `op`.
async fn finding_events(s: &Server, agent: &str, op: &str) -> Vec<Value> {
    s.audit(ADMIN_KEY, &format!("type=finding&agent={agent}"))
        .await
        .into_iter()
        .filter(|e| e["detail"]["op"] == op)
        .collect()
}

/// Moves the agent's registration (and the review that applying its
/// first version counts as) `days` into the past.
async fn registered_days_ago(s: &Server, agent: &str, days: i64) {
    let at = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(24 * days);
    let at = bridle_server::views::time::instant(at);
    sql(
        &s.db_url,
        s.backend,
        &format!(
            "UPDATE agents SET created_at = '{at}', last_review_at = '{at}' WHERE id = '{agent}'"
        ),
    )
    .await;
}

async fn a_sweep_opens_audits_and_resolves_each_finding_once(s: Server) {
    s.principal("bob", &[], &[]).await;
    s.apply(
        ADMIN_KEY,
        &manifest("wild-bot", "bob", "tools: [{name: \"*\"}]"),
    )
    .await
    .expect(201);
    let other = Server::start_on(s.backend, s.db_url.clone(), None, |_| {}).await;
    // Two replicas sweep at once, twice: each finding opens once.
    for _ in 0..2 {
        tokio::join!(sweep_all(&s.state), sweep_all(&other.state));
    }
    let opened = finding_events(&s, "wild-bot", "opened").await;
    let wildcard: Vec<&Value> = opened
        .iter()
        .filter(|e| e["detail"]["code"] == "wildcard_grant")
        .collect();
    assert_eq!(wildcard.len(), 1, "{opened:#?}");
    let e = wildcard[0];
    assert_eq!(e["actor"], "system:posture");
    assert_eq!(e["detail"]["severity"], "high");
    assert_eq!(e["detail"]["subject"], "*");
    assert_eq!(e["detail"]["evidence"]["path"], "tools[0]");
    assert!(
        e["detail"]["remediation"]
            .as_str()
            .unwrap()
            .contains("suggest")
    );
    assert!(
        e["detail"]["frameworks"]
            .as_array()
            .unwrap()
            .contains(&json!("OWASP-NHI5:2025"))
    );
    let now = findings(&s, "wild-bot").await;
    let f = now.iter().find(|f| f["code"] == "wildcard_grant").unwrap();
    assert_eq!(f["opened_at"], e["detail"]["opened_at"], "{f}");
    assert!(
        f["remediation"].is_string() && f["evidence"]["line"].is_u64(),
        "{f}"
    );

    // Fixed: the next sweeps resolve it, once.
    s.apply(
        ADMIN_KEY,
        &manifest("wild-bot", "bob", "tools: [{name: web.search}]"),
    )
    .await
    .expect(200);
    for _ in 0..2 {
        tokio::join!(sweep_all(&s.state), sweep_all(&other.state));
    }
    let resolved = finding_events(&s, "wild-bot", "resolved").await;
    assert_eq!(
        resolved
            .iter()
            .filter(|e| e["detail"]["code"] == "wildcard_grant")
            .count(),
        1,
        "{resolved:#?}"
    );
    assert!(!codes(&findings(&s, "wild-bot").await).contains(&"wildcard_grant"));
    let verify = s.get("/v1/audit/verify", ADMIN_KEY).await.expect(200);
    assert_eq!(verify["ok"], true);
}
on_both!(a_sweep_opens_audits_and_resolves_each_finding_once);

/// With the sweep on, a change is looked at without anyone asking: the new
/// finding is audited and its CloudEvent reaches the webhook.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_is_swept_at_once_and_announced() {
    let (url, seen) = receiver().await;
    let s = Server::start(Backend::Sqlite, move |c| {
        c.webhooks = vec![url];
        c.posture.enabled = true;
    })
    .await;
    s.principal("bob", &[], &[]).await;
    s.apply(
        ADMIN_KEY,
        &manifest(
            "dump-bot",
            "bob",
            "tools: [{name: db.dump, access: export}]",
        ),
    )
    .await
    .expect(201);
    eventually(10, "the finding's CloudEvent", || {
        let seen = Arc::clone(&seen);
        async move {
            seen.lock().unwrap().iter().any(|e| {
                e["type"] == "bridle.finding.opened"
                    && e["data"]["code"] == "privileged_without_approval"
            })
        }
    })
    .await;
    let events = seen.lock().unwrap().clone();
    let e = events
        .iter()
        .find(|e| e["data"]["code"] == "privileged_without_approval")
        .unwrap();
    assert_eq!(e["specversion"], "1.0");
    assert_eq!(e["subject"], "agents/dump-bot");
    assert_eq!(e["data"]["evidence"]["tool"], "db.dump");
    assert_eq!(
        finding_events(&s, "dump-bot", "opened").await.len(),
        events.len()
    );
}

async fn write_tools_need_approval_or_budget(s: Server) {
    s.principal("bob", &[], &[]).await;
    s.apply(
        ADMIN_KEY,
        &manifest(
            "free-writer",
            "bob",
            "tools: [{name: crm.update, access: write}]",
        ),
    )
    .await
    .expect(201);
    s.apply(
        ADMIN_KEY,
        &manifest(
            "bounded-writer",
            "bob",
            "tools:\n  - name: pay\n    access: write\n    args: {amount: {max: 100}}\nlimits:\n  budgets: [{arg: amount, max: 1000, per: 24h}]\n",
        ),
    )
    .await
    .expect(201);
    assert!(codes(&findings(&s, "free-writer").await).contains(&"unbounded_write"));
    assert!(!codes(&findings(&s, "bounded-writer").await).contains(&"unbounded_write"));
}
on_both!(write_tools_need_approval_or_budget);

fn prod(id: &str, body: &str) -> String {
    format!(
        "agent: {id}\nowner: bob\npurpose: Exercise the API\nenvironment: prod\nexpires: 2099-12-31\nreview_every: 90d\n{body}"
    )
}

async fn a_prod_agent_delegating_outside_prod_is_found(s: Server) {
    s.principal("bob", &[], &[]).await;
    s.apply(
        ADMIN_KEY,
        &manifest("dev-helper", "bob", "tools: [{name: web.search}]"),
    )
    .await
    .expect(201);
    s.apply(
        ADMIN_KEY,
        &prod("prod-helper", "tools: [{name: web.search}]"),
    )
    .await
    .expect(201);
    let delegating = |to: &str| {
        format!("tools: [{{name: web.search}}]\nforbid: [admin.*]\ndelegation: {{to: [{to}]}}")
    };
    s.apply(ADMIN_KEY, &prod("lead-a", &delegating("dev-helper")))
        .await
        .expect(201);
    s.apply(ADMIN_KEY, &prod("lead-b", &delegating("prod-helper")))
        .await
        .expect(201);
    let a = findings(&s, "lead-a").await;
    let f = a
        .iter()
        .find(|f| f["code"] == "prod_delegates_to_non_prod")
        .unwrap_or_else(|| panic!("{a:#?}"));
    assert_eq!(f["subject"], "dev-helper");
    assert_eq!(f["evidence"]["delegate_environment"], "dev");
    assert!(!codes(&findings(&s, "lead-b").await).contains(&"prod_delegates_to_non_prod"));
}
on_both!(a_prod_agent_delegating_outside_prod_is_found);

async fn inactivity_and_unused_grants_come_from_usage(s: Server) {
    s.principal("bob", &[], &[]).await;
    let body = "tools: [{name: web.search}, {name: web.fetch}]";
    for id in ["idle-bot", "busy-bot", "new-bot"] {
        s.apply(ADMIN_KEY, &manifest(id, "bob", body))
            .await
            .expect(201);
    }
    registered_days_ago(&s, "idle-bot", 40).await;
    registered_days_ago(&s, "busy-bot", 40).await;
    let token = s.agent_token("busy-bot").await;
    s.decide(&token, "web.search", json!({})).await;

    let idle = codes(&findings(&s, "idle-bot").await).join(",");
    assert!(
        idle.contains("inactive") && idle.contains("unused_grants"),
        "{idle}"
    );
    let busy = findings(&s, "busy-bot").await;
    assert!(!codes(&busy).contains(&"inactive"), "{busy:#?}");
    let unused = busy.iter().find(|f| f["code"] == "unused_grants").unwrap();
    assert_eq!(unused["evidence"]["grants"], json!(["web.fetch"]));
    // Registered within the window: too early to tell.
    let new = codes(&findings(&s, "new-bot").await).join(",");
    assert!(
        !new.contains("inactive") && !new.contains("unused_grants"),
        "{new}"
    );
}
on_both!(inactivity_and_unused_grants_come_from_usage);

async fn many_denials_in_a_day_are_found(s: Server) {
    s.principal("bob", &[], &[]).await;
    for id in ["noisy-bot", "quiet-bot"] {
        s.apply(
            ADMIN_KEY,
            &manifest(id, "bob", "tools: [{name: web.search}]"),
        )
        .await
        .expect(201);
    }
    let noisy = s.agent_token("noisy-bot").await;
    let quiet = s.agent_token("quiet-bot").await;
    for _ in 0..3 {
        s.decide(&noisy, "db.drop", json!({})).await;
    }
    s.decide(&quiet, "db.drop", json!({})).await;
    s.decide(&quiet, "db.drop", json!({})).await;
    let found = findings(&s, "noisy-bot").await;
    let f = found.iter().find(|f| f["code"] == "many_denials").unwrap();
    assert_eq!(f["evidence"]["denied"], 3);
    assert_eq!(f["evidence"]["by_reason"]["not_granted"], 3);
    assert!(!codes(&findings(&s, "quiet-bot").await).contains(&"many_denials"));
}
on_both!(
    many_denials_in_a_day_are_found,
    |c: &mut bridle_server::Config| {
        c.posture.denials_per_day = 3;
    }
);

fn payer(id: &str) -> String {
    manifest(
        id,
        "bob",
        "tools:\n  - name: pay\n    access: write\n    args: {amount: {min: 1, max: 100000}}\n    approval:\n      when: context.args.amount > 2000\n      approvers: [alice]\n",
    )
}

/// Nine payments of 1,999 under a 2,000 threshold are found; payments far
/// under it, or too few to add up, are not.
async fn approval_structuring_is_found(s: Server) {
    s.principal("bob", &[], &[]).await;
    s.principal("alice", &[], &[]).await;
    for id in ["structurer", "small-payer", "one-off"] {
        s.apply(ADMIN_KEY, &payer(id)).await.expect(201);
    }
    let pay = async |id: &str, amount: i64, times: usize| {
        let token = s.agent_token(id).await;
        for _ in 0..times {
            let d = s.decide(&token, "pay", json!({"amount": amount})).await;
            assert_eq!(d["decision"], "allow", "{d}");
        }
    };
    pay("structurer", 1999, 9).await;
    pay("small-payer", 500, 9).await;
    pay("one-off", 1999, 1).await;
    let found = findings(&s, "structurer").await;
    let f = found
        .iter()
        .find(|f| f["code"] == "approval_structuring")
        .unwrap_or_else(|| panic!("{found:#?}"));
    assert_eq!(f["severity"], "high");
    assert_eq!(f["subject"], "pay");
    assert_eq!(f["evidence"]["requests"], 9);
    assert_eq!(f["evidence"]["sum"], 9 * 1999);
    assert_eq!(f["evidence"]["threshold"], 2000);
    assert_eq!(f["evidence"]["audit_seqs"].as_array().unwrap().len(), 9);
    for id in ["small-payer", "one-off"] {
        assert!(
            !codes(&findings(&s, id).await).contains(&"approval_structuring"),
            "{id}"
        );
    }
}
on_both!(approval_structuring_is_found);

/// Overdue for review past the grace period: suspended by the sweep, and
/// its token refused; within the grace period: only the finding.
async fn an_agent_overdue_past_the_grace_period_is_suspended(s: Server) {
    s.principal("bob", &[], &[]).await;
    let body = "review_every: 1d\ntools: [{name: web.search}]";
    for id in ["late-bot", "grace-bot"] {
        s.apply(ADMIN_KEY, &manifest(id, "bob", body))
            .await
            .expect(201);
    }
    registered_days_ago(&s, "late-bot", 10).await;
    registered_days_ago(&s, "grace-bot", 2).await;
    let late = s.agent_token("late-bot").await;
    // Two replicas sweep at once: one suspends.
    let other = Server::start_on(s.backend, s.db_url.clone(), None, |c| {
        c.posture.suspend_review_overdue_after = Some(jiff::SignedDuration::from_hours(3 * 24));
    })
    .await;
    tokio::join!(sweep_all(&s.state), sweep_all(&other.state));

    let record = s
        .get("/v1/agents/late-bot", ADMIN_KEY)
        .await
        .expect(200)
        .json;
    assert_eq!(record["state"], "suspended", "{record}");
    assert!(
        record["state_reason"]
            .as_str()
            .unwrap()
            .contains("access review overdue"),
        "{record}"
    );
    let d = s.decide(&late, "web.search", json!({})).await;
    assert_eq!(d["decision"], "deny", "{d}");
    let lifecycle = s.audit(ADMIN_KEY, "type=lifecycle&agent=late-bot").await;
    assert_eq!(
        lifecycle
            .iter()
            .filter(|e| e["actor"] == "system:posture" && e["detail"]["state"] == "suspended")
            .count(),
        1,
        "{lifecycle:#?}"
    );
    // An admin's suspension is never replaced by the sweep's.
    s.post(
        "/v1/agents/late-bot/resume",
        ADMIN_KEY,
        json!({"reason": "reviewed elsewhere"}),
    )
    .await
    .expect(200);
    s.post(
        "/v1/agents/late-bot/suspend",
        ADMIN_KEY,
        json!({"reason": "compromised"}),
    )
    .await
    .expect(200);
    sweep_all(&other.state).await;
    let record = s
        .get("/v1/agents/late-bot", ADMIN_KEY)
        .await
        .expect(200)
        .json;
    assert_eq!(record["state_reason"], "compromised", "{record}");

    let grace = s.get("/v1/agents/grace-bot", ADMIN_KEY).await.expect(200);
    assert_eq!(grace["state"], "active");
    assert!(codes(&findings(&s, "grace-bot").await).contains(&"review_overdue"));
}
on_both!(
    an_agent_overdue_past_the_grace_period_is_suspended,
    |c: &mut bridle_server::Config| {
        c.posture.suspend_review_overdue_after = Some(jiff::SignedDuration::from_hours(3 * 24));
    }
);
