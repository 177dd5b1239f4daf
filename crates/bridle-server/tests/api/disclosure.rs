//! Who sees what (least disclosure), as a table: every read endpoint ×
//! every kind of caller (admin, auditor, pep, owner, approver, another
//! principal, the agent, nobody), with the status expected and whether a
//! listing contains the item. Reading another's record, approval or finding
//! is 404; a listing omits it; a write the caller may not make stays 403.

use serde_json::{Value, json};

use crate::common::{ADMIN_KEY, Resp, Server, assert_decision, manifest};

const CREATE: &str = "procurement.create_purchase_request";

/// What one caller should get from one endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    /// 200, and the answer shows the item.
    Has,
    /// 200, and the listing does not contain the item.
    Omits,
    /// This status, as problem+json (or an OAuth error for introspection).
    Is(u16),
}
use Want::{Has, Is, Omits};

/// The callers, in the order of each row's expectations.
const CALLERS: [&str; 8] = [
    "admin", "auditor", "pep", "owner", "approver", "other", "agent", "none",
];

/// How a caller authenticates.
struct Who {
    name: &'static str,
    /// `Authorization: Bearer` (an API key or the agent's access token).
    bearer: Option<String>,
    /// The agent's client credentials (for the OAuth endpoints).
    basic: Option<(String, String)>,
}

/// One read endpoint: how to call it and how to see the item in its answer.
struct Endpoint {
    name: &'static str,
    method: reqwest::Method,
    path: String,
    /// A form body (introspection) instead of none.
    form: Option<Vec<(&'static str, String)>>,
    shows: fn(&Value, &str) -> bool,
    item: String,
    want: [Want; 8],
}

fn lists(key: &'static str, field: &'static str) -> impl Fn(&Value, &str) -> bool {
    move |v, item| {
        v[key]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x[field] == item))
    }
}

async fn call(s: &Server, who: &Who, e: &Endpoint) -> Resp {
    let mut req = s.http.request(e.method.clone(), s.url(&e.path));
    let oauth = e.path.starts_with("/oauth/");
    match (&who.bearer, &who.basic) {
        (_, Some((id, secret))) if oauth => req = req.basic_auth(id, Some(secret)),
        (Some(key), _) if !(oauth && who.name == "agent") => req = req.bearer_auth(key),
        _ => {}
    }
    if let Some(form) = &e.form {
        req = req.form(form);
    }
    s.send(req).await
}

async fn who_sees_what(s: Server) {
    let people = s.people().await;
    s.load("procurement-bot").await; // owned by alice, approved by finance
    s.load("swe-bot").await; // owned by bob
    s.apply(
        ADMIN_KEY,
        &manifest("wild-bot", "alice", "tools: [{name: \"*\"}]"),
    )
    .await
    .expect(201);
    let (client_id, secret) = s.credentials("procurement-bot").await;
    let token = s.token_request(&client_id, &secret, &[]).await.expect(200)["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let swe = s.agent_token("swe-bot").await;
    s.decide(&swe, "ci.run_tests", json!({})).await;
    let d = s
        .decide(&token, CREATE, json!({"vendor": "acme", "amount": 7000}))
        .await;
    assert_decision(&d, "approval_required", "approval_required");
    let approval = d["approval_id"].as_str().unwrap().to_owned();

    let key = |id: &str| Some(people[id].to_owned());
    let callers = [
        Who {
            name: "admin",
            bearer: key("admin"),
            basic: None,
        },
        Who {
            name: "auditor",
            bearer: key("ann"),
            basic: None,
        },
        Who {
            name: "pep",
            bearer: key("gateway"),
            basic: None,
        },
        Who {
            name: "owner",
            bearer: key("alice"),
            basic: None,
        },
        Who {
            name: "approver",
            bearer: key("frank"),
            basic: None,
        },
        Who {
            name: "other",
            bearer: key("mallory"),
            basic: None,
        },
        Who {
            name: "agent",
            bearer: Some(token.clone()),
            basic: Some((client_id.clone(), secret.clone())),
        },
        Who {
            name: "none",
            bearer: None,
            basic: None,
        },
    ];
    for (who, name) in callers.iter().zip(CALLERS) {
        assert_eq!(who.name, name);
    }

    let get = |name, path: String, shows, item: &str, want| Endpoint {
        name,
        method: reqwest::Method::GET,
        path,
        form: None,
        shows,
        item: item.to_owned(),
        want,
    };
    let shows_id: fn(&Value, &str) -> bool = |v, item| v["id"] == item;
    let rows = [
        get(
            "agents list",
            "/v1/agents".into(),
            |v, i| lists("agents", "id")(v, i),
            "procurement-bot",
            [Has, Has, Omits, Has, Omits, Omits, Is(403), Is(401)],
        ),
        get(
            "agent show",
            "/v1/agents/procurement-bot".into(),
            shows_id,
            "procurement-bot",
            [Has, Has, Is(404), Has, Is(404), Is(404), Has, Is(401)],
        ),
        get(
            "another's agent",
            "/v1/agents/swe-bot".into(),
            shows_id,
            "swe-bot",
            [
                Has,
                Has,
                Is(404),
                Is(404),
                Is(404),
                Is(404),
                Is(404),
                Is(401),
            ],
        ),
        get(
            "agent credentials",
            "/v1/agents/procurement-bot/credentials".into(),
            |v, i| lists("credentials", "client_id")(v, i),
            &client_id,
            [Has, Has, Is(404), Has, Is(404), Is(404), Is(403), Is(401)],
        ),
        get(
            "approvals list",
            "/v1/approvals".into(),
            |v, i| lists("approvals", "id")(v, i),
            &approval,
            [Has, Has, Omits, Has, Has, Omits, Is(403), Is(401)],
        ),
        get(
            "approval show",
            format!("/v1/approvals/{approval}"),
            shows_id,
            &approval,
            [Has, Has, Has, Has, Has, Is(404), Has, Is(401)],
        ),
        get(
            "approval wait",
            format!("/v1/approvals/{approval}/wait?timeout=0s"),
            shows_id,
            &approval,
            [Has, Has, Has, Has, Has, Is(404), Has, Is(401)],
        ),
        get(
            "findings list",
            "/v1/findings".into(),
            |v, i| lists("findings", "agent")(v, i),
            "wild-bot",
            [Has, Has, Omits, Has, Omits, Omits, Is(403), Is(401)],
        ),
        get(
            "findings of one agent",
            "/v1/findings?agent=wild-bot".into(),
            |v, i| lists("findings", "agent")(v, i),
            "wild-bot",
            [Has, Has, Is(404), Has, Is(404), Is(404), Is(403), Is(401)],
        ),
        get(
            "audit list",
            "/v1/audit?limit=1000".into(),
            |v, i| lists("events", "agent")(v, i),
            "procurement-bot",
            [Has, Has, Omits, Has, Omits, Omits, Is(403), Is(401)],
        ),
        get(
            "audit of one agent",
            "/v1/audit?agent=procurement-bot&limit=1000".into(),
            |v, i| lists("events", "agent")(v, i),
            "procurement-bot",
            [Has, Has, Omits, Has, Omits, Omits, Is(403), Is(401)],
        ),
        get(
            "another's audit",
            "/v1/audit?agent=swe-bot&limit=1000".into(),
            |v, i| lists("events", "agent")(v, i),
            "swe-bot",
            [Has, Has, Omits, Omits, Omits, Omits, Is(403), Is(401)],
        ),
        get(
            "audit verify",
            "/v1/audit/verify".into(),
            |v, _| v["ok"] == true,
            "",
            [
                Has,
                Has,
                Is(403),
                Is(403),
                Is(403),
                Is(403),
                Is(403),
                Is(401),
            ],
        ),
        Endpoint {
            name: "introspect",
            method: reqwest::Method::POST,
            path: "/oauth/introspect".into(),
            form: Some(vec![("token", token.clone())]),
            shows: |v, item| v["active"] == true && v["sub"] == item,
            item: "procurement-bot".into(),
            want: [Has, Is(403), Has, Is(403), Is(403), Is(403), Has, Is(401)],
        },
    ];

    let mut wrong = Vec::new();
    for e in &rows {
        for (who, want) in callers.iter().zip(e.want) {
            let r = call(&s, who, e).await;
            let got = match r.status {
                200 if (e.shows)(&r.json, &e.item) => Has,
                200 => Omits,
                status => Is(status),
            };
            if got != want {
                wrong.push(format!(
                    "{} as {}: want {want:?}, got {got:?}: {}",
                    e.name, who.name, r.text
                ));
                continue;
            }
            if let Is(status) = want {
                if e.path.starts_with("/oauth/") {
                    assert!(r.json["error"].is_string(), "{}", r.text);
                } else {
                    r.problem(status);
                }
            } else if who.name == "owner" && e.path.starts_with("/v1/audit?") {
                // An owner's listing holds its own agents' events only.
                let events = r.json["events"].as_array().unwrap();
                assert!(
                    events
                        .iter()
                        .all(|ev| ev["agent"] == "procurement-bot" || ev["agent"] == "wild-bot"),
                    "{}",
                    r.text
                );
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} wrong answers:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}
on_both!(who_sees_what);

/// Writes stay 403 for those who may not make them, the auditor included,
/// and a refused vote tells an outsider nothing about the approval.
async fn refused_writes_stay_403_and_tell_nothing(s: Server) {
    let people = s.people().await;
    s.load("procurement-bot").await;
    let token = s.agent_token("procurement-bot").await;
    let d = s
        .decide(&token, CREATE, json!({"vendor": "acme", "amount": 7000}))
        .await;
    let approval = d["approval_id"].as_str().unwrap().to_owned();

    for who in ["ann", "mallory"] {
        s.post(
            "/v1/agents/procurement-bot/suspend",
            &people[who],
            json!({"reason": "curious"}),
        )
        .await
        .problem(403);
        s.post(
            "/v1/agents/procurement-bot/credentials",
            &people[who],
            json!({}),
        )
        .await
        .problem(403);
        s.approve(&approval, &people[who]).await.problem(403);
    }
    // The outsider does not learn who may approve.
    let r = s.approve(&approval, &people["mallory"]).await.problem(403);
    assert!(!r.text.contains("finance-approvers"), "{}", r.text);
    s.approve(&approval, &people["frank"]).await.expect(200);
    // Decided now: an outsider still gets 403, not the approval's state.
    let r = s.deny(&approval, &people["mallory"]).await.problem(403);
    assert!(!r.text.contains("approved"), "{}", r.text);
    // The approver who voted may still read it.
    s.get(&format!("/v1/approvals/{approval}"), &people["frank"])
        .await
        .expect(200);
}
on_both!(refused_writes_stay_403_and_tell_nothing);

/// An elevation request stays visible to the principal who submitted it
/// after the agent changed owner, to the new owner and to the approvers,
/// and to nobody else.
async fn submitted_approvals_stay_visible_to_their_submitter(s: Server) {
    let people = s.people().await;
    let body = "tools: [{name: edr.quarantine_endpoint}]\nelevation:\n  - name: identity-write\n    tools: [identity.disable_user]\n    max_duration: 1h\n    approvers: [group:secops]\n";
    s.apply(ADMIN_KEY, &manifest("elev-bot", "alice", body))
        .await
        .expect(201);
    let r = s
        .post(
            "/v1/agents/elev-bot/elevations",
            &people["alice"],
            json!({"name": "identity-write", "duration": "30m", "reason": "INC-7"}),
        )
        .await
        .expect(201);
    let approval = r["approval_id"].as_str().unwrap().to_owned();
    s.apply(ADMIN_KEY, &manifest("elev-bot", "bob", body))
        .await
        .expect(200);

    let path = format!("/v1/approvals/{approval}");
    for (who, visible) in [
        ("alice", true),
        ("bob", true),
        ("sam", true),
        ("ann", true),
        ("mallory", false),
        ("frank", false),
    ] {
        let listed = s.get("/v1/approvals", &people[who]).await.expect(200)["approvals"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["id"] == approval.as_str());
        assert_eq!(listed, visible, "{who} in the listing");
        let r = s.get(&path, &people[who]).await;
        if visible {
            r.expect(200);
        } else {
            r.problem(404);
        }
    }
    // The agent no longer visible to its former owner.
    s.get("/v1/agents/elev-bot", &people["alice"])
        .await
        .problem(404);
}
on_both!(submitted_approvals_stay_visible_to_their_submitter);

/// An owner's audit listing is the administrator's, restricted to the
/// owner's agents, and pages the same way (`after`, `limit`).
async fn owner_audit_pages_across_its_agents(s: Server) {
    let people = s.people().await;
    s.load("procurement-bot").await; // alice
    s.load("swe-bot").await; // bob
    s.apply(
        ADMIN_KEY,
        &manifest("wild-bot", "alice", "tools: [{name: \"*\"}]"),
    )
    .await
    .expect(201);
    let procurement = s.agent_token("procurement-bot").await;
    let swe = s.agent_token("swe-bot").await;
    let wild = s.agent_token("wild-bot").await;
    for token in [&procurement, &swe, &wild, &procurement, &swe, &wild] {
        s.decide(token, "procurement.list_vendors", json!({})).await;
    }
    let expected: Vec<Value> = s
        .audit(ADMIN_KEY, "")
        .await
        .into_iter()
        .filter(|e| e["agent"] == "procurement-bot" || e["agent"] == "wild-bot")
        .collect();
    assert!(expected.len() > 6, "{expected:?}");
    assert_eq!(s.audit(&people["alice"], "").await, expected);
    let mut paged = Vec::new();
    let mut after = 0;
    loop {
        let page = s
            .get(
                &format!("/v1/audit?limit=2&after={after}"),
                &people["alice"],
            )
            .await
            .expect(200)["events"]
            .as_array()
            .unwrap()
            .clone();
        let Some(last) = page.last() else { break };
        after = last["seq"].as_u64().unwrap();
        assert!(page.len() <= 2);
        paged.extend(page);
    }
    assert_eq!(paged, expected);
}
on_both!(owner_audit_pages_across_its_agents);
