//! The Envoy ext_authz endpoint, as Envoy calls it (HTTP service): the
//! original method and path under `/ext_authz`, the agent's token, the body.
//! The real Envoy in front of an upstream is `scripts/ext-authz.sh`.

use bridle_server::Config;
use bridle_server::ext_authz::{ExtAuthzConfig, RouteRule};
use serde_json::json;

use crate::common::{ADMIN_KEY, Server};

const API: &str = "https://api.example.com";

fn routes(config: &mut Config) {
    let rule = |method: &str, path: &str, action: &str, resource: Option<&str>| RouteRule {
        method: method.into(),
        path: path.into(),
        action: action.into(),
        resource: resource.map(Into::into),
    };
    config.ext_authz = ExtAuthzConfig {
        audiences: vec![API.into()],
        public_url: None,
        routes: vec![
            rule(
                "POST",
                "/api/purchase-requests",
                "procurement.create_purchase_request",
                None,
            ),
            rule("GET", "/api/vendors", "procurement.list_vendors", None),
            rule(
                "POST",
                "/api/po/{po}/approve",
                "procurement.approve_po",
                Some("po:{po}"),
            ),
        ],
    };
}

async fn check(
    s: &Server,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Option<serde_json::Value>,
) -> (u16, reqwest::header::HeaderMap, String) {
    let mut req = s.http.request(method, s.url(&format!("/ext_authz{path}")));
    if !token.is_empty() {
        req = req.bearer_auth(token);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    (status, headers, r.text().await.unwrap())
}

async fn ext_authz_maps_requests_to_decisions(s: Server) {
    s.principal("alice", &[], &[]).await;
    s.load("procurement-bot").await;
    let (id, secret) = s.credentials("procurement-bot").await;
    let r = s
        .token_request(&id, &secret, &[("resource", API)])
        .await
        .expect(200);
    let token = r["access_token"].as_str().unwrap().to_owned();
    let post = reqwest::Method::POST;

    let (status, h, _) = check(
        &s,
        post.clone(),
        "/api/purchase-requests",
        &token,
        Some(json!({"vendor": "acme", "amount": 700})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(h["x-bridle-decision"], "allow");
    assert!(
        h["x-bridle-decision-id"]
            .to_str()
            .unwrap()
            .starts_with("dec_")
    );
    let (status, h, _) = check(
        &s,
        reqwest::Method::GET,
        "/api/vendors?region=eu",
        &token,
        None,
    )
    .await;
    assert_eq!(
        (status, h["x-bridle-decision"].to_str().unwrap()),
        (200, "allow")
    );

    // Arguments come from the body: a vendor off the list, an amount that
    // needs approval.
    let (status, h, body) = check(
        &s,
        post.clone(),
        "/api/purchase-requests",
        &token,
        Some(json!({"vendor": "evilcorp", "amount": 700})),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(h["x-bridle-reason"], "arg_constraint");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["reasons"][0]["code"], "arg_constraint");
    let (status, h, body) = check(
        &s,
        post.clone(),
        "/api/purchase-requests",
        &token,
        Some(json!({"vendor": "acme", "amount": 7000})),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(h["x-bridle-reason"], "approval_required");
    assert!(h.contains_key("x-bridle-approval-id"));
    // A forbidden action, its resource from the path.
    let (status, h, _) = check(&s, post.clone(), "/api/po/17/approve", &token, None).await;
    assert_eq!(
        (status, h["x-bridle-reason"].to_str().unwrap()),
        (403, "forbidden")
    );
    // No route: refused, and recorded.
    let (status, h, body) = check(&s, reqwest::Method::DELETE, "/api/vendors", &token, None).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(h["x-bridle-reason"], "not_granted");

    // Unauthenticated: no token, an API key, a token for another audience.
    for bad in ["", ADMIN_KEY, "a.b.c"] {
        let (status, h, _) = check(&s, post.clone(), "/api/purchase-requests", bad, None).await;
        assert_eq!(status, 401, "{bad}");
        assert!(h.contains_key("www-authenticate"));
    }
    let other = s
        .token_request(&id, &secret, &[("resource", "https://other.example")])
        .await
        .expect(200);
    let other = other["access_token"].as_str().unwrap();
    let (status, _, _) = check(&s, reqwest::Method::GET, "/api/vendors", other, None).await;
    assert_eq!(status, 401);

    let events = s
        .audit(ADMIN_KEY, "type=decision&agent=procurement-bot")
        .await;
    assert_eq!(events.len(), 6, "{events:?}");
    assert!(events.iter().any(|e| e["resource"] == "po:17"));
    assert!(
        events
            .iter()
            .any(|e| e["detail"]["ext_authz"]["method"] == "DELETE")
    );
}
on_both!(ext_authz_maps_requests_to_decisions, super::routes);
