//! Rate limits and budgets are decided in the store: with several replicas
//! on one database, concurrent decisions never spend more than the budget
//! nor act more often than the rate, and any window survives a restart.

use serde_json::{Value, json};

use crate::common::{ADMIN_KEY, Server, assert_decision, effect, patient, sql};

/// A second replica: another server on the same database, under the same
/// issuer (as behind one load balancer).
async fn replica(s: &Server) -> Server {
    let db = s.db_url.clone();
    let issuer = s.base.clone();
    Server::start(s.backend, move |c| {
        c.db = db;
        c.issuer = Some(issuer);
        patient(c);
    })
    .await
}

/// `n` decisions of `action` at once, alternating between `a` and `b`.
async fn across(
    a: &Server,
    b: &Server,
    token: &str,
    n: usize,
    action: &str,
    args: Value,
) -> Vec<Value> {
    let mut set = tokio::task::JoinSet::new();
    for i in 0..n {
        let s = if i % 2 == 0 { a } else { b };
        let req = s
            .req(reqwest::Method::POST, "/v1/decisions", token)
            .json(&json!({"action": action, "args": args}));
        set.spawn(async move {
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            let body = r.text().await.unwrap();
            assert_eq!(status, 200, "{body}");
            serde_json::from_str::<Value>(&body).unwrap()
        });
    }
    set.join_all().await
}

fn count(answers: &[Value], decision: &str) -> usize {
    answers.iter().filter(|d| effect(d) == decision).count()
}

/// The amount the store recorded as spent, over all time (second buckets).
async fn spent(s: &Server) -> String {
    crate::common::sql_text(
        &s.db_url,
        s.backend,
        "SELECT CAST(COALESCE(SUM(amount), 0) AS TEXT) FROM usage_counters WHERE arg = 'amount' AND tier = 1",
    )
    .await
}

async fn spender(s: &Server, limits: &str) -> String {
    spender_and_people(s, limits).await.0
}

/// [`spender`], and the people it registered (with their API keys).
async fn spender_and_people(s: &Server, limits: &str) -> (String, crate::common::People) {
    let people = s.people().await;
    let yaml = crate::common::manifest(
        "spender",
        "alice",
        &format!(
            "tools:\n  - name: ping\n  - name: pay\n    args:\n      amount: {{ min: 1, max: 1000 }}\n{limits}"
        ),
    );
    s.apply(ADMIN_KEY, &yaml).await.expect(201);
    (s.agent_token("spender").await, people)
}

/// 40 payments of 10 against a budget of 100, half on each of two
/// replicas: exactly 10 stand, every other is denied for the budget, and
/// the usage recorded is the 100 that was allowed.
async fn budget_holds_across_replicas(s: Server) {
    let token = spender(
        &s,
        "limits:\n  budgets:\n    - { arg: amount, max: 100, per: 24h }\n",
    )
    .await;
    let other = replica(&s).await;
    let answers = across(&s, &other, &token, 40, "pay", json!({"amount": 10})).await;
    assert_eq!(count(&answers, "allow"), 10, "{answers:?}");
    for d in answers.iter().filter(|d| effect(d) == "deny") {
        assert_decision(d, "deny", "budget_exceeded");
    }
    assert_eq!(spent(&s).await, "100");
    // Every answer is in the log, as answered, on the one chain.
    let events = s.audit(ADMIN_KEY, "type=decision&agent=spender").await;
    assert_eq!(events.len(), 40);
    let allowed = events.iter().filter(|e| e["decision"] == "allow").count();
    assert_eq!(allowed, 10);
    let v = other.get("/v1/audit/verify", ADMIN_KEY).await.expect(200);
    assert_eq!(v["ok"], true, "{}", v.text);
}
on_both!(budget_holds_across_replicas, crate::common::patient);

/// A rate limit of 5 a minute holds for 30 concurrent calls on two replicas.
async fn rate_holds_across_replicas(s: Server) {
    let token = spender(&s, "limits:\n  rate: 5/min\n").await;
    let other = replica(&s).await;
    let answers = across(&s, &other, &token, 30, "ping", json!({})).await;
    assert_eq!(count(&answers, "allow"), 5, "{answers:?}");
    for d in answers.iter().filter(|d| effect(d) == "deny") {
        assert_decision(d, "deny", "rate_limited");
    }
}
on_both!(rate_holds_across_replicas, crate::common::patient);

/// A budget over 90 days still counts spending from 40 days ago after a
/// restart (the store is asked; nothing is replayed from a bounded window).
async fn long_windows_survive_a_restart(s: Server) {
    let token = spender(
        &s,
        "limits:\n  budgets:\n    - { arg: amount, max: 100, per: 90d }\n",
    )
    .await;
    assert_decision(
        &s.decide(&token, "pay", json!({"amount": 90})).await,
        "allow",
        "granted",
    );
    // The payment was made 40 days ago (its counters moved back 40 days).
    let forty_days_s: i64 = 40 * 24 * 3600;
    sql(
        &s.db_url,
        s.backend,
        &format!("UPDATE usage_counters SET bucket = bucket - {forty_days_s} / tier"),
    )
    .await;
    let again = replica(&s).await;
    let token = again.agent_token("spender").await;
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
}
on_both!(long_windows_survive_a_restart);

/// A window's length changed by a new manifest counts right at once: 90
/// spent a day ago under a 2-day budget counts under a 30-day one (read in
/// whole days) and not under a budget of one hour.
async fn a_changed_window_counts_right(s: Server) {
    let limits =
        |per: &str| format!("limits:\n  budgets:\n    - {{ arg: amount, max: 100, per: {per} }}\n");
    let token = spender(&s, &limits("2d")).await;
    assert_decision(
        &s.decide(&token, "pay", json!({"amount": 90})).await,
        "allow",
        "granted",
    );
    // The payment was made a day ago (a day is whole buckets of every size).
    sql(
        &s.db_url,
        s.backend,
        "UPDATE usage_counters SET bucket = bucket - 86400 / tier",
    )
    .await;
    let manifest = |per: &str| {
        crate::common::manifest(
            "spender",
            "alice",
            &format!(
                "tools:\n  - name: ping\n  - name: pay\n    args:\n      amount: {{ min: 1, max: 1000 }}\n{}",
                limits(per)
            ),
        )
    };
    s.apply(ADMIN_KEY, &manifest("30d")).await.expect(200);
    assert_decision(
        &s.decide(&token, "pay", json!({"amount": 20})).await,
        "deny",
        "budget_exceeded",
    );
    s.apply(ADMIN_KEY, &manifest("1h")).await.expect(200);
    assert_decision(
        &s.decide(&token, "pay", json!({"amount": 20})).await,
        "allow",
        "granted",
    );
}
on_both!(a_changed_window_counts_right);

/// Usage outside every window is purged; usage a window still counts is
/// kept however old it is.
async fn purge_keeps_what_a_window_counts(s: Server) {
    use bridle_store::UsageStore as _;
    let token = spender(
        &s,
        "limits:\n  rate: 100/min\n  budgets:\n    - { arg: amount, max: 1000, per: 30d }\n",
    )
    .await;
    assert_decision(
        &s.decide(&token, "pay", json!({"amount": 5})).await,
        "allow",
        "granted",
    );
    let store = bridle_store::Store::connect(&s.db_url).await.unwrap();
    // An hour later: the rate's counters (1 minute; one per bucket size)
    // are gone, the budget's kept.
    let later = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(1);
    assert_eq!(store.purge_usage(later).await.unwrap(), 4);
    let rows = crate::common::sql_text(
        &s.db_url,
        s.backend,
        "SELECT CAST(COUNT(*) AS TEXT) FROM usage_counters WHERE arg = 'amount'",
    )
    .await;
    assert_eq!(rows, "4");
    // Past the 30 days, nothing is left.
    let much_later = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(31 * 24);
    assert_eq!(store.purge_usage(much_later).await.unwrap(), 4);
    store.close().await;
}
on_both!(purge_keeps_what_a_window_counts);

/// The cache of compiled manifests is bounded by memory: with 1 MiB for it,
/// 40 agents that each decided leave at most 1 MiB cached, and an evicted
/// agent still decides (compiled again).
async fn compiled_records_are_bounded(s: Server) {
    let _people = s.people().await;
    let mut tokens = Vec::new();
    for i in 0..40 {
        let id = format!("worker-{i}");
        let yaml = crate::common::manifest(
            &id,
            "alice",
            "tools:\n  - name: ping\n  - name: pong\n  - name: 'read.*'\n",
        );
        s.apply(ADMIN_KEY, &yaml).await.expect(201);
        let token = s.agent_token(&id).await;
        assert_eq!(effect(&s.decide(&token, "ping", json!({})).await), "allow");
        tokens.push(token);
    }
    let (count, bytes) = s.state.compiled_cached();
    assert!(bytes <= 1024 * 1024, "{bytes} bytes cached");
    assert!(count < 40, "{count} records cached: nothing was evicted");
    for token in &tokens {
        assert_eq!(effect(&s.decide(token, "pong", json!({})).await), "allow");
        assert_eq!(effect(&s.decide(token, "write", json!({})).await), "deny");
    }
}
on_both!(
    compiled_records_are_bounded,
    |c: &mut bridle_server::Config| {
        c.compiled_cache_mib = 1;
    }
);

/// One approved approval, 40 identical decisions at once on two replicas:
/// exactly one is allowed (single use holds across replicas), and the
/// budget counts that one only.
async fn a_single_use_approval_holds_across_replicas(s: Server) {
    let people = s.people().await;
    s.load("procurement-bot").await;
    let token = s.agent_token("procurement-bot").await;
    let big = json!({"vendor": "acme", "amount": 6000});
    let d = s
        .decide(&token, "procurement.create_purchase_request", big.clone())
        .await;
    let approval = d["approval_id"].as_str().unwrap().to_owned();
    s.approve(&approval, &people["frank"]).await.expect(200);
    let other = replica(&s).await;
    let answers = across(
        &s,
        &other,
        &token,
        40,
        "procurement.create_purchase_request",
        big,
    )
    .await;
    assert_eq!(count(&answers, "allow"), 1, "{answers:?}");
    assert_eq!(spent(&s).await, "6000");
}
on_both!(
    a_single_use_approval_holds_across_replicas,
    crate::common::patient
);

/// A rate limit of 1 a minute on an action that always asks a person: 20
/// different requests at once on two replicas. Those that lose the race
/// at commit are denied for the rate and leave no approval behind, so the
/// approvers are asked exactly as often as an answer said
/// `approval_required` (before, the losers' approvals stayed pending).
async fn a_request_refused_at_commit_leaves_no_approval(s: Server) {
    let _people = s.people().await;
    let yaml = crate::common::manifest(
        "asker",
        "alice",
        "tools:\n  - name: wire\n    args:\n      n: { min: 0, max: 1000 }\n    approval:\n      approvers: [frank]\n      ttl: 1h\nlimits:\n  rate: 1/min\n",
    );
    s.apply(ADMIN_KEY, &yaml).await.expect(201);
    let token = s.agent_token("asker").await;
    let other = replica(&s).await;
    let mut set = tokio::task::JoinSet::new();
    for n in 0..20 {
        let srv = if n % 2 == 0 { &s } else { &other };
        let req = srv
            .req(reqwest::Method::POST, "/v1/decisions", &token)
            .json(&json!({"action": "wire", "args": {"n": n}}));
        set.spawn(async move {
            let r = req.send().await.unwrap();
            assert_eq!(r.status().as_u16(), 200);
            r.json::<Value>().await.unwrap()
        });
    }
    let answers = set.join_all().await;
    assert_eq!(count(&answers, "approval_required"), 1, "{answers:?}");
    for d in answers.iter().filter(|d| effect(d) == "deny") {
        assert_decision(d, "deny", "rate_limited");
    }
    let pending = crate::common::sql_text(
        &s.db_url,
        s.backend,
        "SELECT CAST(COUNT(*) AS TEXT) FROM approvals WHERE agent_id = 'asker' AND state = 'pending'",
    )
    .await;
    assert_eq!(pending, "1", "{answers:?}");
}
on_both!(
    a_request_refused_at_commit_leaves_no_approval,
    crate::common::patient
);

/// A budget that asks for approval past its maximum: `limits.budgets`
/// with `approval`, the answer to requests structured under a threshold.
const SUM_ASKS: &str = "limits:\n  budgets:\n    - arg: amount\n      max: 5000\n      per: 24h\n      approval:\n        approvers: [frank]\n        ttl: 1h\n";

/// Five payments of 999 under a 5000 daily sum that asks, then one of
/// 1000: it waits for a person (naming the budget's rule and line), is allowed
/// once approved, and from then on every payment of the day asks.
async fn a_sum_past_the_maximum_asks_for_approval(s: Server) {
    let (token, people) = spender_and_people(&s, SUM_ASKS).await;
    for _ in 0..5 {
        let d = s.decide(&token, "pay", json!({"amount": 999})).await;
        assert_decision(&d, "allow", "granted");
    }
    let big = json!({"amount": 1000});
    let d = s.decide(&token, "pay", big.clone()).await;
    assert_decision(&d, "approval_required", "approval_required");
    assert_eq!(
        d["reasons"][0]["source"]["path"], "limits.budgets[0].approval",
        "{d}"
    );
    assert!(
        d["reasons"][0]["message"]
            .as_str()
            .unwrap()
            .contains("4995 spent"),
        "{d}"
    );
    let approval = d["approval_id"].as_str().unwrap().to_owned();
    let shown = s
        .get(&format!("/v1/approvals/{approval}"), ADMIN_KEY)
        .await
        .expect(200);
    assert_eq!(shown["approvers"], json!(["frank"]), "{}", shown.text);
    s.approve(&approval, &people["frank"]).await.expect(200);
    let d = s.decide(&token, "pay", big).await;
    assert_decision(&d, "allow", "approved");
    // Spent past the maximum, by approval only.
    assert_eq!(spent(&s).await, "5995");
    assert_decision(
        &s.decide(&token, "pay", json!({"amount": 1})).await,
        "approval_required",
        "approval_required",
    );
}
on_both!(a_sum_past_the_maximum_asks_for_approval);

/// 30 payments of 500 at once on two replicas against that 5000 sum:
/// exactly ten are allowed, none spends past the maximum without approval
/// (one that a concurrent payment overtook is denied at commit, saying to
/// ask again), and the rest wait for a person.
async fn a_sum_that_asks_holds_across_replicas(s: Server) {
    let token = spender(&s, SUM_ASKS).await;
    let other = replica(&s).await;
    let answers = across(&s, &other, &token, 30, "pay", json!({"amount": 500})).await;
    assert_eq!(count(&answers, "allow"), 10, "{answers:?}");
    for d in answers.iter().filter(|d| effect(d) == "deny") {
        assert_decision(d, "deny", "budget_exceeded");
        let msg = d["reasons"][0]["message"].as_str().unwrap();
        assert!(msg.contains("ask again"), "{msg}");
    }
    assert_eq!(
        count(&answers, "allow") + count(&answers, "deny") + count(&answers, "approval_required"),
        30
    );
    assert_eq!(spent(&s).await, "5000");
}
on_both!(
    a_sum_that_asks_holds_across_replicas,
    crate::common::patient
);
