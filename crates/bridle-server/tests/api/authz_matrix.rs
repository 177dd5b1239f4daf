//! R6: every route of the router × every kind of caller, table-driven.
//! The routes come from `routes::ROUTES`, the very list the router is built
//! from, so a new endpoint without a row here fails this test. Each route is
//! tried on a fresh server, by the least privileged caller first, with a
//! request that is valid for the callers allowed to make it; what is
//! checked is whether the caller got past authorization:
//!
//! - `Ok`: authorized (a 2xx, or a 409/400/422 about the request itself);
//! - `Unauth`: 401, no acceptable credential;
//! - `Forbidden`: 403, a write the caller may not make;
//! - `Hidden`: 404, a record the caller may not even see (least disclosure).

use bridle_server::Config;
use bridle_server::ext_authz::{ExtAuthzConfig, RouteRule};
use serde_json::{Value, json};

use crate::common::{ADMIN_KEY, People, Resp, Server};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Ok,
    Unauth,
    Forbidden,
    Hidden,
}
use Class::{Forbidden as F, Hidden as H, Ok as O, Unauth as U};

/// The callers, least privileged first (the order each route is tried in).
const ROLES: [&str; 8] = [
    "none", "agent", "other", "pep", "approver", "auditor", "owner", "admin",
];

const API: &str = "https://api.example.com";
const AGENT: &str = "procurement-bot";
const BUY: &str = "procurement.create_purchase_request";

/// The expected class per role (in [`ROLES`] order) for a route, by
/// `(method, path)` as in `routes::ROUTES`.
fn expected(method: &str, path: &str) -> Option<[Class; 8]> {
    //                        none agent other pep appr  aud  owner admin
    Some(match (method, path) {
        ("get", "/healthz")
        | ("get", "/readyz")
        | ("get", "/openapi.json")
        | ("get", "/schemas/manifest-v1.json")
        | ("get", "/.well-known/oauth-authorization-server")
        | ("get", "/.well-known/jwks.json")
        | ("get", "/oauth/authorize")
        | ("post", "/oauth/token") => [O, O, O, O, O, O, O, O],
        // A principal introspects with `admin` or `pep`; an agent's bearer
        // token is no client authentication.
        ("post", "/oauth/introspect") => [U, U, F, O, F, F, F, O],
        // Revoking: the owner or an admin (`unauthorized_client` otherwise).
        ("post", "/oauth/revoke") => [U, U, F, F, F, F, O, O],
        ("get", "/v1/keys")
        | ("post", "/v1/keys/rotate")
        | ("post", "/v1/principals")
        | ("post", "/v1/principals/{id}/deactivate") => [U, F, F, F, F, F, F, O],
        // Listings are filtered to what the caller may see.
        ("get", "/v1/agents")
        | ("get", "/v1/approvals")
        | ("get", "/v1/audit")
        | ("get", "/v1/findings")
        | ("get", "/v1/reports/compliance") => [U, F, O, O, O, O, O, O],
        ("put", "/v1/agents/{id}")
        | ("post", "/v1/agents/{id}/suspend")
        | ("post", "/v1/agents/{id}/resume")
        | ("post", "/v1/agents/{id}/retire")
        | ("post", "/v1/agents/{id}/review")
        | ("post", "/v1/agents/{id}/credentials")
        | ("post", "/v1/agents/{id}/credentials/{client_id}/rotate")
        | ("post", "/v1/agents/{id}/credentials/{client_id}/revoke") => [U, F, F, F, F, F, O, O],
        // Another's record is not even seen; the agent sees its own.
        ("get", "/v1/agents/{id}")
        | ("get", "/v1/agents/{id}/versions")
        | ("get", "/v1/agents/{id}/versions/{version}")
        | ("get", "/v1/agents/{id}/diff")
        | ("get", "/v1/agents/{id}/usage")
        | ("get", "/v1/agents/{id}/suggestion")
        | ("get", "/v1/agents/{id}/elevations")
        | ("post", "/v1/agents/{id}/replay") => [U, O, H, H, H, O, O, O],
        ("get", "/v1/agents/{id}/credentials") => [U, F, H, H, H, O, O, O],
        // Elevation is asked by the agent itself or its owner.
        ("post", "/v1/agents/{id}/elevations") => [U, O, F, F, F, F, O, F],
        // Ended early by the agent itself, its owner or an admin; the
        // auditor sees it but may not end it.
        ("post", "/v1/agents/{id}/elevations/{elevation_id}/end") => [U, O, H, H, H, F, O, O],
        // Decisions and outcomes: the agent, or a pep forwarding its token.
        ("post", "/v1/decisions") | ("post", "/v1/decisions/{id}/outcome") => {
            [U, O, F, O, F, F, F, F]
        }
        ("post", "/v1/decisions/reachable") => [U, F, F, O, F, F, F, F],
        // ext_authz takes only agent tokens for the API behind Envoy; the
        // agent's 403 at the bare path is the decision (no route maps `/`).
        ("any", "/ext_authz") => [U, F, U, U, U, U, U, U],
        ("any", "/ext_authz/{*path}") => [U, O, U, U, U, U, U, U],
        // An approval: its agent, the pep waiting on it, its approvers, its
        // agent's owner, auditor and admin; hidden from anyone else.
        ("get", "/v1/approvals/{id}") | ("get", "/v1/approvals/{id}/wait") => {
            [U, O, H, O, O, O, O, O]
        }
        // Votes: only an eligible approver, never the agent's owner.
        ("post", "/v1/approvals/{id}/approve") | ("post", "/v1/approvals/{id}/deny") => {
            [U, F, F, F, O, F, F, F]
        }
        ("get", "/v1/audit/verify") | ("get", "/v1/audit/checkpoints") => [U, F, F, F, F, O, F, O],
        ("get", "/metrics") => [U, F, F, F, F, O, F, O],
        _ => return None,
    })
}

/// What a route's request looks like: its path with real ids, and its body.
struct Call {
    path: String,
    body: Option<Body>,
}

enum Body {
    Json(Value),
    Form(Vec<(String, String)>),
    Yaml(String),
}

/// The world each route is tried in: the reference cast, the procurement
/// agent (owned by `alice`, approvals by `finance-approvers`) with a
/// credential, a token, a decision and a pending approval.
struct World {
    s: Server,
    people: People,
    token: String,
    client_id: String,
    secret: String,
    decision_id: String,
    approval_id: String,
}

async fn world(s: Server) -> World {
    let people = s.people().await;
    s.load(AGENT).await;
    let (client_id, secret) = s.credentials(AGENT).await;
    let token = s.token_request(&client_id, &secret, &[]).await.expect(200)["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let d = s
        .decide(&token, "procurement.list_vendors", json!({}))
        .await;
    let decision_id = d["decision_id"].as_str().unwrap().to_owned();
    let a = s
        .decide(&token, BUY, json!({"vendor": "acme", "amount": 7000}))
        .await;
    let approval_id = a["approval_id"].as_str().unwrap().to_owned();
    World {
        s,
        people,
        token,
        client_id,
        secret,
        decision_id,
        approval_id,
    }
}

fn ext_authz(config: &mut Config) {
    config.ext_authz = ExtAuthzConfig {
        audiences: vec![API.into()],
        public_url: None,
        routes: vec![RouteRule {
            method: "GET".into(),
            path: "/api/vendors".into(),
            action: "procurement.list_vendors".into(),
            resource: None,
        }],
    };
}

/// The credential `role` presents (empty: none).
async fn credential(w: &World, role: &str) -> String {
    match role {
        "none" => String::new(),
        "agent" => w.token.clone(),
        "other" => w.people["mallory"].to_owned(),
        "pep" => w.people["gateway"].to_owned(),
        "approver" => w.people["frank"].to_owned(),
        "auditor" => w.people["ann"].to_owned(),
        "owner" => w.people["alice"].to_owned(),
        "admin" => ADMIN_KEY.to_owned(),
        other => panic!("no role `{other}`"),
    }
}

/// The request for `path` by `role`.
async fn call(w: &World, method: &str, path: &str, role: &str) -> Call {
    let json = |v: Value| Some(Body::Json(v));
    let reason = json!({"reason": "authorization matrix"});
    // A pep forwards the agent's token; everyone else asks for itself.
    let forwarded = |mut v: Value| {
        if role == "pep" {
            v["agent_token"] = w.token.clone().into();
        }
        Some(Body::Json(v))
    };
    let (p, body) = match (method, path) {
        ("post", "/oauth/token") => (
            path.to_owned(),
            Some(Body::Form(vec![
                ("grant_type".into(), "client_credentials".into()),
                ("client_id".into(), w.client_id.clone()),
                ("client_secret".into(), w.secret.clone()),
            ])),
        ),
        ("post", "/oauth/introspect" | "/oauth/revoke") => (
            path.to_owned(),
            Some(Body::Form(vec![("token".into(), w.token.clone())])),
        ),
        ("post", "/v1/keys/rotate") => (path.to_owned(), json(json!({}))),
        ("post", "/v1/principals") => (
            path.to_owned(),
            json(json!({"id": format!("new-{role}"), "roles": [], "groups": []})),
        ),
        ("post", "/v1/principals/{id}/deactivate") => {
            w.s.principal(&format!("victim-{role}"), &[], &[]).await;
            (
                format!("/v1/principals/victim-{role}/deactivate"),
                json(json!({})),
            )
        }
        ("put", "/v1/agents/{id}") => (
            format!("/v1/agents/{AGENT}"),
            Some(Body::Yaml(crate::common::example(AGENT).to_owned())),
        ),
        ("get", "/v1/agents/{id}") => (format!("/v1/agents/{AGENT}"), None),
        (
            "get",
            "/v1/agents/{id}/versions"
            | "/v1/agents/{id}/diff"
            | "/v1/agents/{id}/usage"
            | "/v1/agents/{id}/suggestion"
            | "/v1/agents/{id}/elevations",
        ) => (path.replace("{id}", AGENT), None),
        // A blank reason: 422 once past authorization (none is looked up).
        ("post", "/v1/agents/{id}/elevations/{elevation_id}/end") => (
            path.replace("{id}", AGENT)
                .replace("{elevation_id}", "elv_matrix000000"),
            json(json!({"reason": " "})),
        ),
        ("post", "/v1/agents/{id}/replay") => (
            path.replace("{id}", AGENT),
            Some(Body::Yaml(crate::common::example(AGENT).to_owned())),
        ),
        ("get", "/v1/agents/{id}/versions/{version}") => {
            (path.replace("{id}", AGENT).replace("{version}", "1"), None)
        }
        ("post", "/v1/agents/{id}/suspend") => (path.replace("{id}", AGENT), json(reason)),
        ("post", "/v1/agents/{id}/retire") => {
            // Each caller tries to retire an agent of its own (retired is
            // final, so one would answer 409 for the rest).
            let id = format!("retire-{role}");
            w.s.apply(
                &w.people["alice"],
                &crate::common::manifest(&id, "alice", "tools:\n  - name: x.read\n"),
            )
            .await
            .expect(201);
            (path.replace("{id}", &id), json(reason))
        }
        ("post", "/v1/agents/{id}/resume") => {
            // Suspended by its owner just before, so there is something
            // to resume.
            w.s.post(
                &format!("/v1/agents/{AGENT}/suspend"),
                &w.people["alice"],
                json!({"reason": "to resume"}),
            )
            .await;
            (path.replace("{id}", AGENT), json(reason))
        }
        ("post", "/v1/agents/{id}/review") => (path.replace("{id}", AGENT), json(json!({}))),
        ("post", "/v1/agents/{id}/credentials") => (path.replace("{id}", AGENT), json(json!({}))),
        ("get", "/v1/agents/{id}/credentials") => (path.replace("{id}", AGENT), None),
        (
            "post",
            "/v1/agents/{id}/credentials/{client_id}/rotate"
            | "/v1/agents/{id}/credentials/{client_id}/revoke",
        ) => {
            // A credential of its own for each caller (revoked is final).
            let (client_id, _) = w.s.credentials(AGENT).await;
            (
                path.replace("{id}", AGENT)
                    .replace("{client_id}", &client_id),
                json(json!({})),
            )
        }
        ("post", "/v1/agents/{id}/elevations") => (
            path.replace("{id}", AGENT),
            json(json!({"name": "none-such", "duration": "10m", "reason": "matrix"})),
        ),
        ("post", "/v1/decisions") => (
            path.to_owned(),
            forwarded(json!({"action": "procurement.list_vendors"})),
        ),
        ("post", "/v1/decisions/reachable") => (
            path.to_owned(),
            json(json!({"agent_token": w.token, "actions": ["procurement.list_vendors"]})),
        ),
        ("post", "/v1/decisions/{id}/outcome") => (
            path.replace("{id}", &w.decision_id),
            forwarded(json!({"status": "ok"})),
        ),
        ("any", "/ext_authz") => ("/ext_authz".into(), None),
        ("any", "/ext_authz/{*path}") => ("/ext_authz/api/vendors".into(), None),
        ("get", "/v1/approvals/{id}" | "/v1/approvals/{id}/wait") => (
            format!(
                "{}{}",
                path.replace("{id}", &w.approval_id),
                if path.ends_with("/wait") {
                    "?timeout=0s"
                } else {
                    ""
                }
            ),
            None,
        ),
        ("post", "/v1/approvals/{id}/approve" | "/v1/approvals/{id}/deny") => {
            // A pending approval of its own for each caller (a decided one
            // takes no more votes).
            let amount = 7001 + ROLES.iter().position(|r| *r == role).unwrap_or(0);
            let d =
                w.s.decide(&w.token, BUY, json!({"vendor": "acme", "amount": amount}))
                    .await;
            let id = d["approval_id"].as_str().unwrap().to_owned();
            (
                path.replace("{id}", &id),
                json(json!({"comment": "matrix"})),
            )
        }
        _ => (path.to_owned(), None),
    };
    Call { path: p, body }
}

async fn send(w: &World, method: &str, c: &Call, key: &str) -> Resp {
    let m = match method {
        "get" | "any" => reqwest::Method::GET,
        "put" => reqwest::Method::PUT,
        _ => reqwest::Method::POST,
    };
    let mut req = w.s.http.request(m, w.s.url(&c.path));
    if !key.is_empty() {
        req = req.bearer_auth(key);
    }
    req = match &c.body {
        None => req,
        Some(Body::Json(v)) => req.json(v),
        Some(Body::Form(f)) => req.form(f),
        Some(Body::Yaml(y)) => req
            .header("content-type", "application/yaml")
            .body(y.clone()),
    };
    w.s.send(req).await
}

fn class(r: &Resp) -> Class {
    match r.status {
        401 => U,
        403 => F,
        404 => H,
        // RFC 7009's refusal of a token the caller may not revoke.
        400 if r.json["error"] == "unauthorized_client" => F,
        _ => O,
    }
}

async fn authorization_matrix(backend: crate::common::Backend) {
    let mut failures = Vec::new();
    let mut actual = Vec::new();
    for (method, path) in bridle_server::routes::ROUTES {
        let Some(want) = expected(method, path) else {
            failures.push(format!(
                "{method} {path}: no row in the authorization matrix"
            ));
            continue;
        };
        let s = Server::start(backend, ext_authz).await;
        // ext_authz takes tokens for the API behind Envoy.
        let w = world(s).await;
        let mut row = Vec::new();
        for (role, want) in ROLES.iter().zip(want) {
            let mut key = credential(&w, role).await;
            if path.starts_with("/ext_authz") && *role == "agent" {
                key =
                    w.s.token_request(&w.client_id, &w.secret, &[("resource", API)])
                        .await
                        .expect(200)["access_token"]
                        .as_str()
                        .unwrap()
                        .to_owned();
            }
            let c = call(&w, method, path, role).await;
            let r = send(&w, method, &c, &key).await;
            let got = class(&r);
            row.push(format!("{role}={}:{got:?}", r.status));
            if got != want {
                failures.push(format!(
                    "{method} {path} as {role}: expected {want:?}, got {} {}",
                    r.status,
                    r.text.chars().take(200).collect::<String>()
                ));
            }
        }
        actual.push(format!("{method} {path}: {}", row.join(" ")));
    }
    assert!(
        failures.is_empty(),
        "{}\n\nwhat each route answered:\n{}",
        failures.join("\n"),
        actual.join("\n")
    );
}

async fn matrix(s: Server) {
    let backend = s.backend;
    drop(s);
    authorization_matrix(backend).await;
}
on_both!(matrix);
