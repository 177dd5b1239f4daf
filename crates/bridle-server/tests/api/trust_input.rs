//! Hostile input: a request that means one thing to Bridle and another to
//! the service behind it. Duplicate JSON keys, integers no 64-bit type
//! holds, names given twice to ext_authz, resources that climb out of their
//! glob, tokens for another audience, and JOSE headers with `crit`.

use bridle_server::Config;
use bridle_server::ext_authz::{ExtAuthzConfig, RouteRule};
use serde_json::{Value, json};

use crate::common::keys::{ClientKey, now};
use crate::common::{ADMIN_KEY, Resp, Server, manifest};

const API: &str = "https://api.example.com";
const CASES: &str =
    "tools: [{name: crm.get_case}]\ndata:\n  - { resource: \"crm:cases/*\", access: [read] }";

async fn raw(s: &Server, path: &str, key: &str, content_type: &str, body: &str) -> Resp {
    s.send(
        s.req(reqwest::Method::POST, path, key)
            .header("content-type", content_type)
            .body(body.to_owned()),
    )
    .await
}

fn paths(r: &Resp) -> Vec<String> {
    r["errors"]
        .as_array()
        .map(|e| {
            e.iter()
                .map(|e| e["path"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

async fn procurement_token(s: &Server, resource: Option<&str>) -> String {
    s.principal("alice", &[], &[]).await;
    s.load("procurement-bot").await;
    let (id, secret) = s.credentials("procurement-bot").await;
    let form: Vec<(&str, &str)> = resource.map(|r| ("resource", r)).into_iter().collect();
    let r = s.token_request(&id, &secret, &form).await.expect(200);
    r["access_token"].as_str().unwrap().to_owned()
}

async fn duplicate_json_keys_are_refused_with_their_path(s: Server) {
    let token = procurement_token(&s, None).await;
    let body = r#"{"action":"procurement.create_purchase_request","args":{"vendor":"evil","amount":700,"vendor":"acme"}}"#;
    let r = raw(&s, "/v1/decisions", &token, "application/json", body)
        .await
        .problem(400);
    assert_eq!(paths(&r), ["args.vendor"], "{}", r.text);
    // Unicode escapes do not hide a duplicate; a duplicate field is named too.
    let body = r#"{"action":"procurement.list_vendors","action":"procurement.approve_po","args":{"vendor":1,"vend\u006fr":2}}"#;
    let r = raw(&s, "/v1/decisions", &token, "application/json", body)
        .await
        .problem(400);
    assert_eq!(paths(&r), ["action", "args.vendor"], "{}", r.text);
    // Every JSON endpoint: a principal, an outcome.
    let r = raw(
        &s,
        "/v1/principals",
        ADMIN_KEY,
        "application/json",
        r#"{"id":"mallory","roles":[],"id":"admin2"}"#,
    )
    .await
    .problem(400);
    assert_eq!(paths(&r), ["id"]);
    let d = s
        .decide(&token, "procurement.list_vendors", json!({}))
        .await;
    let outcome = format!(
        "/v1/decisions/{}/outcome",
        d["decision_id"].as_str().unwrap()
    );
    let r = raw(
        &s,
        &outcome,
        &token,
        "application/json",
        r#"{"status":"ok","status":"error"}"#,
    )
    .await
    .problem(400);
    assert_eq!(paths(&r), ["status"]);
    // Nothing was decided, and a body that is not JSON is still a clear 400.
    let events = s
        .audit(ADMIN_KEY, "type=decision&agent=procurement-bot")
        .await;
    assert_eq!(events.len(), 1, "{events:?}");
    let r = raw(&s, "/v1/decisions", &token, "application/json", "{nope")
        .await
        .problem(400);
    assert!(r["detail"].as_str().unwrap().contains("invalid JSON body"));
    raw(&s, "/v1/decisions", &token, "text/plain", "{}")
        .await
        .problem(400);
    raw(
        &s,
        "/v1/decisions",
        &token,
        "application/json",
        r#"{"args":{}}"#,
    )
    .await
    .problem(422);
}
on_both!(duplicate_json_keys_are_refused_with_their_path);

async fn integers_no_64_bit_type_holds_are_refused(s: Server) {
    let token = procurement_token(&s, None).await;
    for (amount, ok) in [
        ("18446744073709551616", false),
        ("-9223372036854775809", false),
        ("100000000000000000000000000000", false),
        ("18446744073709551615", true),
        ("-9223372036854775808", true),
        ("1.5e300", true),
    ] {
        let body = format!(
            r#"{{"action":"procurement.create_purchase_request","args":{{"vendor":"acme","amount":{amount}}}}}"#
        );
        let r = raw(&s, "/v1/decisions", &token, "application/json", &body).await;
        if ok {
            r.expect(200);
        } else {
            let r = r.problem(400);
            assert_eq!(paths(&r), ["args.amount"], "{amount}: {}", r.text);
            assert!(r.text.contains("64-bit"), "{}", r.text);
        }
    }
    let events = s
        .audit(ADMIN_KEY, "type=decision&agent=procurement-bot")
        .await;
    assert_eq!(
        events.len(),
        3,
        "only the representable amounts were decided"
    );
}
on_both!(integers_no_64_bit_type_holds_are_refused);

async fn resources_outside_the_grammar_are_refused(s: Server) {
    s.principal("bob", &[], &[]).await;
    s.apply(ADMIN_KEY, &manifest("case-bot", "bob", CASES))
        .await
        .expect(201);
    let token = s.agent_token("case-bot").await;
    let ask = |resource: String| {
        let s = &s;
        let token = token.clone();
        async move {
            s.post(
                "/v1/decisions",
                &token,
                json!({"action": "crm.get_case", "resource": resource}),
            )
            .await
        }
    };
    let d = ask("crm:cases/17".into()).await.expect(200);
    assert_eq!(d["decision"], "allow", "{}", d.text);
    // Escapes of unreserved characters are decoded once: still case 17.
    let d = ask("crm:cases/%31%37".into()).await.expect(200);
    assert_eq!(d["decision"], "allow", "{}", d.text);
    for bad in [
        "crm:cases/../../hr/salaries".to_owned(),
        "crm:cases/%2e%2e/%2e%2e/hr/salaries".into(),
        "crm:cases/..%2Fhr".into(),
        "crm:cases/%252e%252e/hr".into(),
        "crm:cases/1\0".into(),
        "crm:cases/1\nhr:salaries".into(),
        "crm:cases//17".into(),
        format!("crm:cases/{}", "a".repeat(100 * 1024)),
    ] {
        let r = ask(bad.clone()).await.problem(400);
        assert_eq!(paths(&r), ["resource"], "{bad:?}: {}", r.text);
    }
    let events = s.audit(ADMIN_KEY, "type=decision&agent=case-bot").await;
    assert_eq!(events.len(), 2, "refused resources are not decisions");
    assert!(events.iter().all(|e| e["resource"] == "crm:cases/17"));
}
on_both!(resources_outside_the_grammar_are_refused);

async fn retrievals_outside_the_grammar_are_refused(s: Server) {
    s.principal("bob", &[], &[]).await;
    s.apply(ADMIN_KEY, &manifest("case-bot", "bob", CASES))
        .await
        .expect(201);
    let token = s.agent_token("case-bot").await;
    let d = s
        .decide_on(&token, "crm.get_case", json!({}), Some("crm:cases/17"))
        .await;
    let outcome = format!(
        "/v1/decisions/{}/outcome",
        d["decision_id"].as_str().unwrap()
    );
    let r = s
        .post(
            &outcome,
            &token,
            json!({"status": "ok", "retrievals": ["https://host/a?b", "file:///srv/../etc/passwd"]}),
        )
        .await
        .problem(400);
    assert_eq!(paths(&r), ["retrievals[1]"]);
    s.post(
        &outcome,
        &token,
        json!({"status": "ok", "retrievals": ["https://host/a?b", "file:///srv/x.txt"]}),
    )
    .await
    .expect(204);
    let events = s.audit(ADMIN_KEY, "type=outcome&agent=case-bot").await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(
        events[0]["retrievals"],
        json!(["https://host/a?b", "file:///srv/x.txt"])
    );
}
on_both!(retrievals_outside_the_grammar_are_refused);

async fn data_globs_outside_the_grammar_are_invalid(s: Server) {
    s.principal("bob", &[], &[]).await;
    let r = s
        .apply(
            ADMIN_KEY,
            &manifest(
                "case-bot",
                "bob",
                "tools: [{name: crm.get_case}]\ndata:\n  - { resource: \"crm:cases/../*\", access: [read] }",
            ),
        )
        .await
        .problem(422);
    assert_eq!(paths(&r), ["data[0].resource"], "{}", r.text);
    s.apply(ADMIN_KEY, &manifest("case-bot", "bob", CASES))
        .await
        .expect(201);
}
on_both!(data_globs_outside_the_grammar_are_invalid);

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
                "/api/vendors/{vendor}/orders",
                "procurement.create_purchase_request",
                Some("vendor:{vendor}"),
            ),
        ],
    };
}

async fn check(s: &Server, method: reqwest::Method, path: &str, token: &str, body: &str) -> Resp {
    let mut req = s.req(method, &format!("/ext_authz{path}"), token);
    if !body.is_empty() {
        req = req
            .header("content-type", "application/json")
            .body(body.to_owned());
    }
    s.send(req).await
}

async fn ext_authz_refuses_names_given_twice(s: Server) {
    let token = procurement_token(&s, Some(API)).await;
    let post = reqwest::Method::POST;
    let good = r#"{"vendor":"acme","amount":700}"#;
    check(&s, post.clone(), "/api/purchase-requests", &token, good)
        .await
        .expect(200);
    let cases: [(reqwest::Method, &str, &str, &[&str]); 6] = [
        // The service might read the query, Bridle the body.
        (
            post.clone(),
            "/api/purchase-requests?vendor=evilcorp",
            good,
            &["body.vendor"],
        ),
        (
            post.clone(),
            "/api/purchase-requests",
            r#"{"vendor":"evilcorp","amount":700,"vendor":"acme"}"#,
            &["body.vendor"],
        ),
        (
            reqwest::Method::GET,
            "/api/vendors?region=eu&region=us",
            "",
            &["query.region"],
        ),
        (
            reqwest::Method::GET,
            "/api/vendors?region=eu&r%65gion=us",
            "",
            &["query.region"],
        ),
        // A path capture and a body field of the same name.
        (
            post.clone(),
            "/api/vendors/evilcorp/orders",
            good,
            &["path.vendor"],
        ),
        // A capture that puts a control character into the resource.
        (
            post.clone(),
            "/api/vendors/acme%00/orders",
            r#"{"amount":700}"#,
            &["resource"],
        ),
    ];
    for (method, path, body, want) in cases {
        let r = check(&s, method, path, &token, body).await.problem(400);
        assert_eq!(paths(&r), want, "{path}: {}", r.text);
        assert!(
            r.text.contains("given twice") || r.text.contains("resource grammar"),
            "{}",
            r.text
        );
    }
    // Each refusal is a recorded denial.
    let events = s
        .audit(ADMIN_KEY, "type=decision&agent=procurement-bot")
        .await;
    let refused: Vec<&Value> = events
        .iter()
        .filter(|e| e["detail"]["errors"].is_array())
        .collect();
    assert_eq!(refused.len(), 6, "{events:?}");
    assert!(refused.iter().all(|e| e["decision"] == "deny"));
}
on_both!(ext_authz_refuses_names_given_twice, super::routes);

async fn ext_authz_requires_a_configured_audience(s: Server) {
    // A token for the server itself (no `resource`), or for another API.
    let own = procurement_token(&s, None).await;
    let (id, secret) = s.credentials("procurement-bot").await;
    let other = s
        .token_request(&id, &secret, &[("resource", "https://other.example")])
        .await
        .expect(200);
    let other = other["access_token"].as_str().unwrap().to_owned();
    for token in [&own, &other] {
        let r = check(&s, reqwest::Method::GET, "/api/vendors", token, "")
            .await
            .problem(401);
        assert!(r.text.contains("ext_authz.audiences"), "{}", r.text);
    }
    // The server's own API still takes its own token.
    s.decide(&own, "procurement.list_vendors", json!({})).await;
    let api = s
        .token_request(&id, &secret, &[("resource", API)])
        .await
        .expect(200);
    let api = api["access_token"].as_str().unwrap();
    check(&s, reqwest::Method::GET, "/api/vendors", api, "")
        .await
        .expect(200);
}
on_both!(ext_authz_requires_a_configured_audience, super::routes);

const BOUND: &str = "tools: [{name: ci.*}]\ncredentials: { dpop: required }";

fn ath(token: &str) -> String {
    use base64::Engine as _;
    use sha2::Digest;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(token.as_bytes()))
}

async fn dpop_proofs_with_crit_are_refused(s: Server) {
    s.principal("bob", &[], &[]).await;
    s.apply(ADMIN_KEY, &manifest("ci-bot", "bob", BOUND))
        .await
        .expect(201);
    let (id, secret) = s.credentials("ci-bot").await;
    let key = ClientKey::generate();
    let proof = key.dpop("POST", &s.url("/oauth/token"), None);
    let r = s
        .send(
            s.http
                .post(s.url("/oauth/token"))
                .basic_auth(&id, Some(&secret))
                .header("DPoP", proof)
                .form(&[("grant_type", "client_credentials")]),
        )
        .await
        .expect(200);
    let token = r["access_token"].as_str().unwrap().to_owned();
    let url = s.url("/v1/decisions");
    let decide = |proof: String| {
        s.send(
            s.http
                .post(&url)
                .header("Authorization", format!("DPoP {token}"))
                .header("DPoP", proof)
                .json(&json!({"action": "ci.run_tests"})),
        )
    };
    let claims = |jti: &str| {
        json!({"jti": jti, "htm": "POST", "htu": url, "iat": now(), "exp": now() + 60,
               "ath": ath(&token)})
    };
    let plain = json!({"typ": "dpop+jwt", "alg": "EdDSA", "jwk": key.jwk});
    decide(key.sign_raw(&plain, &claims("plain")))
        .await
        .expect(200);
    for (i, crit) in [json!(["exp"]), json!(["urn:example:must-check"]), json!([])]
        .into_iter()
        .enumerate()
    {
        let mut header = plain.clone();
        header["crit"] = crit;
        let r = decide(key.sign_raw(&header, &claims(&format!("crit-{i}"))))
            .await
            .problem(401);
        assert!(r.text.contains("crit"), "{}", r.text);
    }
}
on_both!(dpop_proofs_with_crit_are_refused);

async fn client_assertions_with_crit_are_refused(s: Server) {
    s.principal("bob", &[], &[]).await;
    s.load("swe-bot").await;
    let key = ClientKey::generate();
    let client_id = s.key_credentials("swe-bot", &key).await;
    let assertion = |header: &Value, jti: &str| {
        key.sign_raw(
            header,
            &json!({"iss": client_id, "sub": client_id, "aud": s.url("/oauth/token"),
                    "iat": now(), "exp": now() + 60, "jti": jti}),
        )
    };
    let token_with = |assertion: String| {
        s.send(s.http.post(s.url("/oauth/token")).form(&[
            ("grant_type", "client_credentials".to_owned()),
            ("client_id", client_id.clone()),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".to_owned(),
            ),
            ("client_assertion", assertion),
        ]))
    };
    token_with(assertion(&json!({"alg": "EdDSA", "typ": "JWT"}), "plain"))
        .await
        .expect(200);
    let r = token_with(assertion(
        &json!({"alg": "EdDSA", "typ": "JWT", "crit": ["urn:example:must-check"],
                "urn:example:must-check": true}),
        "crit",
    ))
    .await
    .expect(401);
    assert_eq!(r["error"], "invalid_client", "{}", r.text);
    assert!(
        r["error_description"].as_str().unwrap().contains("crit"),
        "{}",
        r.text
    );
}
on_both!(client_assertions_with_crit_are_refused);

/// A DPoP proof whose embedded key is shorter than an Ed25519 key (found by
/// the `dpop` fuzz target): refused as a bad proof, before any signature is
/// checked. It used to reach the verifier, which panicked slicing the key
/// and dropped the connection, on the unauthenticated token endpoint.
async fn dpop_keys_of_the_wrong_length_are_refused(s: Server) {
    s.principal("bob", &[], &[]).await;
    s.apply(ADMIN_KEY, &manifest("ci-bot", "bob", BOUND))
        .await
        .expect(201);
    let (id, secret) = s.credentials("ci-bot").await;
    let header = json!({"typ": "dpop+jwt", "alg": "EdDSA",
                        "jwk": {"kty": "OKP", "crv": "Ed25519", "x": "15qYAYKxDusAxyuf2A"}});
    let claims = json!({"jti": "short-key", "htm": "POST", "htu": s.url("/oauth/token"),
                        "iat": now()});
    let proof = format!(
        "{}.{}.{}",
        crate::common::b64(&header),
        crate::common::b64(&claims),
        "c2lnbmF0dXJl"
    );
    let r = s
        .send(
            s.http
                .post(s.url("/oauth/token"))
                .basic_auth(&id, Some(&secret))
                .header("DPoP", proof)
                .form(&[("grant_type", "client_credentials")]),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r["error"], "invalid_dpop_proof", "{}", r.text);
    assert!(r.text.contains("32 bytes"), "{}", r.text);
    // The server is still there.
    s.get("/healthz", "").await.expect(200);
}
on_both!(dpop_keys_of_the_wrong_length_are_refused);
