//! Visibility: what an agent actually did with each grant (`/usage`), and
//! what a candidate manifest would have decided differently (`/replay`),
//! from the aggregates and the audit log the decisions themselves wrote.

use serde_json::{Value, json};

use crate::common::{ADMIN_KEY, Backend, Server, effect, example};

pub(crate) const AGENT: &str = "procurement-bot";
const BUY: &str = "procurement.create_purchase_request";

/// The procurement agent's recorded week: three vendor listings, two
/// purchases within policy, one held for approval, one for a vendor off
/// the list, one forbidden approval of its own purchase.
pub(crate) async fn history(s: &Server) -> String {
    s.load(AGENT).await;
    let token = s.agent_token(AGENT).await;
    for _ in 0..3 {
        let d = s
            .decide(&token, "procurement.list_vendors", json!({}))
            .await;
        assert_eq!(effect(&d), "allow");
    }
    for (vendor, amount, want) in [
        ("acme", 500, "allow"),
        ("globex", 1200, "allow"),
        ("acme", 7000, "approval_required"),
        ("evil-corp", 10, "deny"),
    ] {
        let d = s
            .decide(&token, BUY, json!({"vendor": vendor, "amount": amount}))
            .await;
        assert_eq!(effect(&d), want, "{vendor} {amount}: {d}");
    }
    let d = s
        .decide(&token, "procurement.approve_po", json!({"po": 1}))
        .await;
    assert_eq!(effect(&d), "deny");
    token
}

fn grant<'a>(usage: &'a Value, path: &str) -> &'a Value {
    usage["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["path"] == path)
        .unwrap_or_else(|| panic!("no grant at {path}: {usage}"))
}

async fn usage_counts_each_grant(s: Server) {
    let people = s.people().await;
    history(&s).await;
    let u = s
        .get(
            &format!("/v1/agents/{AGENT}/usage?window=7d"),
            &people["alice"],
        )
        .await
        .expect(200)
        .json;
    assert_eq!(u["window"], "7d");
    let list = grant(&u, "tools[0]");
    assert_eq!(list["grant"], "procurement.list_vendors");
    assert_eq!(
        (list["allowed"].as_i64(), list["denied"].as_i64()),
        (Some(3), Some(0))
    );
    let buy = grant(&u, "tools[1]");
    assert_eq!(buy["uses"], 4);
    assert_eq!(buy["allowed"], 2);
    assert_eq!(buy["denied"], 1);
    assert_eq!(buy["approvals"], 1);
    assert_eq!(buy["actions"][BUY], 2);
    assert_eq!(buy["reasons"]["arg_constraint"], 1);
    assert_eq!(buy["reasons"]["approval_required"], 1);
    // Only what was allowed counts as used: the 7,000 and evil-corp are not.
    assert_eq!(buy["args"]["amount"]["min"], 500);
    assert_eq!(buy["args"]["amount"]["max"], 1200);
    assert_eq!(buy["args"]["vendor"]["values"], json!(["acme", "globex"]));
    assert!(buy["last_used"].is_string());
    assert_eq!(u["unused"], json!([]));
    let ungranted = u["ungranted"].as_array().unwrap();
    assert_eq!(ungranted.len(), 1, "{u}");
    assert_eq!(ungranted[0]["action"], "procurement.approve_po");
    assert_eq!(ungranted[0]["denied"], 1);
    assert_eq!(ungranted[0]["reasons"]["forbidden"], 1);
    assert!(u["last_activity"].is_string());

    // A grant nothing used is named as unused.
    let wider = example(AGENT).replace("tools:\n", "tools:\n  - name: procurement.read_invoice\n");
    s.apply(ADMIN_KEY, &wider).await.expect(200);
    let u = s
        .get(&format!("/v1/agents/{AGENT}/usage"), ADMIN_KEY)
        .await
        .expect(200)
        .json;
    assert_eq!(u["window"], "30d");
    assert_eq!(u["unused"], json!(["tools[0]"]));
    assert_eq!(grant(&u, "tools[1]")["allowed"], 3);

    // Least disclosure: the auditor sees it, an outsider does not.
    s.get(&format!("/v1/agents/{AGENT}/usage"), &people["ann"])
        .await
        .expect(200);
    s.get(&format!("/v1/agents/{AGENT}/usage"), &people["mallory"])
        .await
        .problem(404);
    // A window that is not one is a 400 naming the field.
    for bad in ["soon", "-3d", "9000d"] {
        let r = s
            .get(&format!("/v1/agents/{AGENT}/usage?window={bad}"), ADMIN_KEY)
            .await
            .problem(400);
        assert_eq!(r["errors"][0]["path"], "window", "{bad}: {}", r.json);
    }
}
on_both!(usage_counts_each_grant);

async fn replay(s: &Server, key: &str, candidate: &str, query: &str) -> crate::common::Resp {
    s.send(
        s.req(
            reqwest::Method::POST,
            &format!("/v1/agents/{AGENT}/replay{query}"),
            key,
        )
        .header("content-type", "application/yaml")
        .body(candidate.to_owned()),
    )
    .await
}

async fn replay_shows_what_a_candidate_changes(s: Server) {
    let people = s.people().await;
    history(&s).await;
    // Narrower: no vendor listing, acme only.
    let narrower = example(AGENT)
        .replace("  - name: procurement.list_vendors\n", "")
        .replace("in: [acme, globex, initech]", "in: [acme]");
    let r = replay(&s, &people["alice"], &narrower, "?since=1d")
        .await
        .expect(200)
        .json;
    assert_eq!(r["agent"], AGENT);
    assert_eq!(r["decisions"], 8, "{r}");
    assert_eq!(r["unchanged"], 4, "{r}");
    assert_eq!(r["skipped"], 0);
    assert_eq!(r["summary"], json!({"allow_to_deny": 4}));
    let changed = r["changed"].as_array().unwrap();
    let actions: Vec<&str> = changed
        .iter()
        .map(|c| c["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "procurement.list_vendors",
            "procurement.list_vendors",
            "procurement.list_vendors",
            BUY
        ]
    );
    assert!(
        changed
            .iter()
            .all(|c| c["decision_id"].as_str().unwrap().starts_with("dec_"))
    );
    assert_eq!(changed[3]["reasons"][0]["code"], "arg_constraint");

    // Wider: the forbidden approval granted.
    let wider = example(AGENT)
        .replace("forbid: [procurement.approve_*]\n", "")
        .replace("tools:\n", "tools:\n  - name: procurement.approve_po\n");
    let r = replay(&s, ADMIN_KEY, &wider, "").await.expect(200).json;
    assert_eq!(r["summary"], json!({"deny_to_allow": 1}), "{r}");
    assert_eq!(r["changed"][0]["action"], "procurement.approve_po");

    // Nothing is changed by a replay: the version in force still decides.
    let token = s.agent_token(AGENT).await;
    assert_eq!(
        effect(
            &s.decide(&token, "procurement.list_vendors", json!({}))
                .await
        ),
        "allow"
    );
    // A candidate for another agent, or one that does not load, is refused.
    let other = example(AGENT).replace("agent: procurement-bot", "agent: other-bot");
    replay(&s, ADMIN_KEY, &other, "").await.problem(400);
    replay(&s, ADMIN_KEY, "agent: [", "").await.problem(422);
    replay(&s, &people["mallory"], &narrower, "")
        .await
        .problem(404);
}
on_both!(replay_shows_what_a_candidate_changes);

/// Usage is kept in the store, one row per key merged under the audit
/// writer's lock: two replicas deciding at once count every decision once,
/// and a server started later reads the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_is_exact_across_replicas() {
    let a = Server::start(Backend::Postgres, crate::common::patient).await;
    let db = a.db_url.clone();
    let issuer = a.base.clone();
    let b = Server::start(Backend::Postgres, move |c| {
        c.db = db;
        c.issuer = Some(issuer);
        crate::common::patient(c);
    })
    .await;
    let _people = a.people().await;
    a.load(AGENT).await;
    let token = a.agent_token(AGENT).await;
    let mut set = tokio::task::JoinSet::new();
    for i in 0..40 {
        let s = if i % 2 == 0 { &a } else { &b };
        let body = json!({"action": BUY, "args": {"vendor": "acme", "amount": 100 + i}});
        let req = s
            .req(reqwest::Method::POST, "/v1/decisions", &token)
            .json(&body);
        set.spawn(async move {
            let r = req.send().await.unwrap();
            assert_eq!(r.status().as_u16(), 200);
            r.json::<Value>().await.unwrap()
        });
    }
    for d in set.join_all().await {
        assert_eq!(effect(&d), "allow", "{d}");
    }
    let db = a.db_url.clone();
    let issuer = a.base.clone();
    let later = Server::start(Backend::Postgres, move |c| {
        c.db = db;
        c.issuer = Some(issuer);
    })
    .await;
    for s in [&a, &b, &later] {
        let u = s
            .get(&format!("/v1/agents/{AGENT}/usage"), ADMIN_KEY)
            .await
            .expect(200)
            .json;
        let buy = grant(&u, "tools[1]");
        assert_eq!(buy["allowed"], 40, "{u}");
        assert_eq!(buy["args"]["amount"]["min"], 100);
        assert_eq!(buy["args"]["amount"]["max"], 139);
        assert_eq!(
            buy["args"]["amount"]["values"].as_array().unwrap().len(),
            32
        );
        assert_eq!(buy["args"]["amount"]["more"], true);
    }
}

async fn a_suggestion_narrows_to_what_was_used(s: Server) {
    let people = s.people().await;
    history(&s).await;
    let sug = s
        .get(
            &format!("/v1/agents/{AGENT}/suggestion?window=7d"),
            &people["alice"],
        )
        .await
        .expect(200)
        .json;
    assert_eq!(sug["window"], "7d");
    let changes = sug["changes"].as_array().unwrap();
    assert!(!changes.is_empty(), "{sug}");
    assert!(changes.iter().all(|c| c["effect"] != "widening"), "{sug}");
    let evidence: Vec<&str> = sug["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        evidence,
        [
            "tools[1].args.amount.min",
            "tools[1].args.amount.max",
            "tools[1].args.vendor.in"
        ],
        "{sug}"
    );
    let unified = sug["unified"].as_str().unwrap();
    assert!(
        unified.contains("-") && unified.contains("+") && unified.contains("suggestion"),
        "{unified}"
    );
    let manifest = sug["manifest"].as_str().unwrap();
    assert!(
        manifest.contains("max: 1320") && !manifest.contains("initech"),
        "{manifest}"
    );

    // Replayed against the suggestion, nothing the agent did is refused.
    let r = replay(&s, ADMIN_KEY, manifest, "?since=1d")
        .await
        .expect(200)
        .json;
    assert_eq!(r["summary"].get("allow_to_deny"), None, "{r}");
    assert_eq!(r["decisions"], 8);
    // Applied by its owner, it is a narrowing: in force at once.
    let applied = s
        .put_yaml(AGENT, &people["alice"], manifest)
        .await
        .expect(200)
        .json;
    assert!(
        applied["changes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["effect"] != "widening"),
        "{applied}"
    );
    // A suggestion is never shown to someone who may not read the agent.
    s.get(
        &format!("/v1/agents/{AGENT}/suggestion"),
        &people["mallory"],
    )
    .await
    .problem(404);
}
on_both!(a_suggestion_narrows_to_what_was_used);

/// A pending change shows, to whoever may see its approval, the agent's
/// last week replayed against what it would bring into force.
async fn a_change_approval_shows_its_replay(s: Server) {
    let people = s.people().await;
    history(&s).await;
    // Moving the agent into a controlled environment is itself widening, as
    // is granting the approval it was forbidden: the change is proposed.
    let wider = example(AGENT)
        .replace("environment: prod", "environment: staging")
        .replace("forbid: [procurement.approve_*]\n", "")
        .replace("tools:\n", "tools:\n  - name: procurement.approve_po\n");
    let r = s.apply(&people["alice"], &wider).await.expect(202);
    let id = r["approval_id"].as_str().unwrap().to_owned();
    let a = s
        .get(&format!("/v1/approvals/{id}"), &people["alice"])
        .await
        .expect(200)
        .json;
    assert_eq!(a["kind"], "change");
    let replay = &a["replay"];
    assert_eq!(replay["window"], "7d", "{a}");
    assert_eq!(replay["decisions"], 8, "{a}");
    assert_eq!(replay["summary"], json!({"deny_to_allow": 1}), "{a}");
    assert_eq!(replay["changed"][0]["action"], "procurement.approve_po");
    // An action's approval carries no replay.
    let token = s.agent_token(AGENT).await;
    let d = s
        .decide(&token, BUY, json!({"vendor": "acme", "amount": 9000}))
        .await;
    let held = d["approval_id"].as_str().unwrap();
    let a = s
        .get(&format!("/v1/approvals/{held}"), ADMIN_KEY)
        .await
        .expect(200)
        .json;
    assert!(a.get("replay").is_none(), "{a}");
}
on_both!(
    a_change_approval_shows_its_replay,
    |c: &mut bridle_server::Config| {
        c.change_control.environments = vec!["staging".into()];
    }
);
