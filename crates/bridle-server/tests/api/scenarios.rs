//! The reference agents end to end over HTTP (procurement's approvals are in
//! `approvals.rs`): budgets, swe-bot, support-bot, ir-bot's elevation and
//! research-bot's retrieval logging.

use jiff::civil::Weekday;
use serde_json::json;

use crate::common::{ADMIN_KEY, Server, assert_decision, effect, eventually, example};

async fn procurement_daily_budget(s: Server) {
    s.principal("alice", &[], &[]).await;
    s.load("procurement-bot").await;
    let token = s.agent_token("procurement-bot").await;
    let spend = json!({"vendor": "acme", "amount": 5000});
    // 10 × 5000 = the 50000 daily budget (5000 is the largest amount without approval).
    for i in 0..10 {
        let d = s
            .decide(&token, "procurement.create_purchase_request", spend.clone())
            .await;
        assert_eq!(d["decision"], "allow", "spend {i}: {d}");
    }
    let d = s
        .decide(&token, "procurement.create_purchase_request", spend)
        .await;
    assert_decision(&d, "deny", "budget_exceeded");
    let d = s
        .decide(
            &token,
            "procurement.create_purchase_request",
            json!({"vendor": "acme", "amount": 1}),
        )
        .await;
    assert_decision(&d, "deny", "budget_exceeded");
    // Other tools are not budgeted.
    assert_decision(
        &s.decide(&token, "procurement.list_vendors", json!({}))
            .await,
        "allow",
        "granted",
    );
}
on_both!(procurement_daily_budget);

async fn swe_bot(s: Server) {
    s.principal("bob", &[], &[]).await;
    s.load("swe-bot").await;
    let token = s.agent_token("swe-bot").await;
    for (action, args, decision, code) in [
        (
            "secrets.read",
            json!({"name": "prod-db"}),
            "deny",
            "forbidden",
        ),
        (
            "github.merge_pull_request",
            json!({"repo": "acme/x", "pr": 1}),
            "deny",
            "forbidden",
        ),
        (
            "github.create_pull_request",
            json!({"repo": "acme/x", "title": "fix"}),
            "allow",
            "granted",
        ),
        (
            "github.create_pull_request",
            json!({"repo": "evil/x"}),
            "deny",
            "arg_constraint",
        ),
        ("github.get_issue", json!({}), "allow", "granted"),
        ("ci.run_tests", json!({}), "allow", "granted"),
        ("shell.exec", json!({}), "deny", "not_granted"),
    ] {
        let d = s.decide(&token, action, args).await;
        assert_decision(&d, decision, code);
    }
}
on_both!(swe_bot);

/// support-bot without its schedule, under another id: deterministic at any hour.
fn support_anytime() -> String {
    let src = example("support-bot").replace("agent: support-bot", "agent: support-anytime");
    let (kept, _) = src.split_once("schedule:").unwrap();
    assert!(kept.contains("sensitive: [body]") && !kept.contains("windows"));
    kept.to_owned()
}

async fn support_bot_scope(s: Server) {
    s.principal("carol", &[], &[]).await;
    s.apply(ADMIN_KEY, &support_anytime()).await.expect(201);
    let token = s.agent_token("support-anytime").await;
    for (resource, action, decision, code) in [
        ("crm:cases/1", "crm.get_case", "allow", "granted"),
        ("crm:users/1", "crm.get_case", "deny", "data_scope"),
        ("crm:cases/1", "crm.reply_to_case", "allow", "granted"),
        ("crm:cases/1", "crm.export_cases", "deny", "forbidden"),
        ("crm:cases/1", "admin.delete_user", "deny", "forbidden"),
    ] {
        let d = s
            .decide_on(&token, action, json!({"body": "hi"}), Some(resource))
            .await;
        assert_decision(&d, decision, code);
    }
}
on_both!(support_bot_scope);

/// Whether support-bot's schedule (Europe/Dublin Mon-Fri 07:00-20:00,
/// Sat 09:00-13:00) covers `at`.
fn support_hours(at: jiff::Timestamp) -> bool {
    let local = at.to_zoned_datetime(jiff::tz::TimeZone::get("Europe/Dublin").unwrap());
    let minute = i32::from(local.hour()) * 60 + i32::from(local.minute());
    match local.weekday() {
        Weekday::Saturday => (9 * 60..13 * 60).contains(&minute),
        Weekday::Sunday => false,
        _ => (7 * 60..20 * 60).contains(&minute),
    }
}

async fn support_bot_schedule_follows_the_clock(s: Server) {
    s.principal("carol", &[], &[]).await;
    s.load("support-bot").await;
    let token = s.agent_token("support-bot").await;
    let before = support_hours(jiff::Timestamp::now());
    let d = s
        .decide_on(&token, "crm.get_case", json!({}), Some("crm:cases/1"))
        .await;
    let after = support_hours(jiff::Timestamp::now());
    if before != after {
        return; // the window opened or closed during the request
    }
    if before {
        assert_decision(&d, "allow", "granted");
    } else {
        assert_decision(&d, "deny", "outside_schedule");
    }
}
on_both!(support_bot_schedule_follows_the_clock);

async fn ir_bot_elevation(s: Server) {
    let people = s.people().await;
    s.load("ir-bot").await;
    let token = s.agent_token("ir-bot").await;
    let disable = json!({"user": "u-123"});
    assert_decision(
        &s.decide(&token, "identity.disable_user", disable.clone())
            .await,
        "deny",
        "not_granted",
    );
    assert_decision(
        &s.decide(&token, "edr.quarantine_endpoint", json!({"host": "h1"}))
            .await,
        "allow",
        "granted",
    );

    let path = "/v1/agents/ir-bot/elevations";
    let r = s
        .post(
            path,
            &token,
            json!({"name": "identity-write", "duration": "2h", "reason": "too long"}),
        )
        .await
        .problem(422);
    assert_eq!(r["errors"][0]["path"], "duration", "{}", r.text);
    s.post(
        path,
        &token,
        json!({"name": "root", "duration": "30m", "reason": "no such elevation"}),
    )
    .await
    .problem(422);
    s.post(
        path,
        &people["sam"],
        json!({"name": "identity-write", "duration": "30m", "reason": "not the owner"}),
    )
    .await
    .problem(403);

    let r = s
        .post(
            path,
            &token,
            json!({"name": "identity-write", "duration": "30m", "reason": "INC-42: compromised account"}),
        )
        .await
        .expect(201);
    assert_eq!(r["state"], "pending", "{}", r.text);
    assert!(r["id"].is_string());
    let approval = r["approval_id"].as_str().unwrap().to_owned();
    // Pending is not granted yet.
    assert_decision(
        &s.decide(&token, "identity.disable_user", disable.clone())
            .await,
        "deny",
        "not_granted",
    );
    let a = s
        .get(&format!("/v1/approvals/{approval}"), &people["sam"])
        .await
        .expect(200);
    assert_eq!(a["kind"], "elevation");
    // The owner (in secops too) may not approve their own agent's elevation.
    s.approve(&approval, &people["dave"]).await.problem(403);
    s.approve(&approval, &people["frank"]).await.problem(403);
    let r = s.approve(&approval, &people["sam"]).await.expect(200);
    assert_eq!(r["state"], "approved");

    assert_decision(
        &s.decide(&token, "identity.disable_user", disable).await,
        "allow",
        "elevated",
    );
    assert_decision(
        &s.decide(&token, "identity.reset_credentials", json!({}))
            .await,
        "allow",
        "elevated",
    );
    // Forbid still wins over an elevation.
    assert_decision(
        &s.decide(&token, "secrets.read", json!({})).await,
        "deny",
        "forbidden",
    );
    let events = s.audit(ADMIN_KEY, "type=elevation&agent=ir-bot").await;
    assert!(
        events.iter().any(|e| e["detail"]["op"] == "activate"),
        "{events:?}"
    );
}
on_both!(ir_bot_elevation);

async fn research_bot_retrievals(s: Server) {
    s.principal("erin", &[], &[]).await;
    s.load("research-bot").await;
    let token = s.agent_token("research-bot").await;
    let d = s
        .decide(&token, "web.fetch", json!({"url": "https://example.org/a"}))
        .await;
    assert_decision(&d, "allow", "granted");
    assert_eq!(d["obligations"], json!(["log_retrieval"]));
    // Denials carry the obligation too.
    let denied = s
        .decide(&token, "web.fetch", json!({"url": "http://plain.example"}))
        .await;
    assert_decision(&denied, "deny", "arg_constraint");
    assert_eq!(denied["obligations"], json!(["log_retrieval"]));

    let id = d["decision_id"].as_str().unwrap();
    let retrievals = json!(["https://example.org/a", "https://example.org/b"]);
    let r = s
        .post(
            &format!("/v1/decisions/{id}/outcome"),
            &token,
            json!({"status": "ok", "retrievals": retrievals}),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert!(r.text.is_empty());
    let events = s.audit(ADMIN_KEY, "type=outcome").await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["agent"], "research-bot");
    assert_eq!(events[0]["retrievals"], retrievals);
    assert_eq!(events[0]["detail"]["decision_id"], id);
    assert_eq!(events[0]["detail"]["status"], "ok");
}
on_both!(research_bot_retrievals);

/// The owner may ask for an elevation too; it ends on time by itself.
async fn elevation_ends_on_time(s: Server) {
    let people = s.people().await;
    s.load("ir-bot").await;
    let token = s.agent_token("ir-bot").await;
    let r = s
        .post(
            "/v1/agents/ir-bot/elevations",
            &people["dave"],
            json!({"name": "identity-write", "duration": "3s", "reason": "INC-9 drill"}),
        )
        .await
        .expect(201);
    let approval = r["approval_id"].as_str().unwrap().to_owned();
    s.approve(&approval, &people["sam"]).await.expect(200);
    let d = s.decide(&token, "identity.disable_user", json!({})).await;
    assert_decision(&d, "allow", "elevated");
    eventually(20, "the elevation to end", || async {
        let d = s.decide(&token, "identity.disable_user", json!({})).await;
        effect(&d) == "deny"
    })
    .await;
    assert_decision(
        &s.decide(&token, "identity.disable_user", json!({})).await,
        "deny",
        "not_granted",
    );
}
on_both!(elevation_ends_on_time);
