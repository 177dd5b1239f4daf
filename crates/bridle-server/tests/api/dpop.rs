//! Sender-constrained tokens (DPoP, RFC 9449): an agent whose manifest says
//! `credentials.dpop: required` only gets tokens bound to its key, and each
//! use needs a fresh proof for that exact request.

use serde_json::json;

use crate::common::keys::{ClientKey, now};
use crate::common::{ADMIN_KEY, Server, jwt_parts, manifest};

const BOUND: &str = "tools: [{name: ci.*}]\ncredentials: { dpop: required }";

async fn bound_token(s: &Server, key: &ClientKey, id: &str, secret: &str) -> String {
    let proof = key.dpop("POST", &s.url("/oauth/token"), None);
    let r = s
        .send(
            s.http
                .post(s.url("/oauth/token"))
                .basic_auth(id, Some(secret))
                .header("DPoP", proof)
                .form(&[("grant_type", "client_credentials")]),
        )
        .await
        .expect(200);
    assert_eq!(r["token_type"], "DPoP", "{}", r.text);
    r["access_token"].as_str().unwrap().to_owned()
}

async fn decide_with(s: &Server, token: &str, proof: Option<String>) -> crate::common::Resp {
    let mut req = s
        .http
        .post(s.url("/v1/decisions"))
        .header("Authorization", format!("DPoP {token}"))
        .json(&json!({"action": "ci.run_tests"}));
    if let Some(p) = proof {
        req = req.header("DPoP", p);
    }
    s.send(req).await
}

async fn dpop_required_binds_tokens_to_the_agents_key(s: Server) {
    s.principal("bob", &[], &[]).await;
    s.apply(ADMIN_KEY, &manifest("ci-bot", "bob", BOUND))
        .await
        .expect(201);
    let (id, secret) = s.credentials("ci-bot").await;
    // Without a proof there is no token.
    let r = s.token_request(&id, &secret, &[]).await.expect(400);
    assert_eq!(r["error"], "invalid_dpop_proof", "{}", r.text);

    let key = ClientKey::generate();
    let token = bound_token(&s, &key, &id, &secret).await;
    let (_, claims) = jwt_parts(&token);
    assert!(claims["cnf"]["jkt"].is_string(), "{claims}");
    let i = s.introspect(&token).await;
    assert_eq!(i["token_type"], "DPoP");
    assert_eq!(i["cnf"]["jkt"], claims["cnf"]["jkt"]);

    let url = s.url("/v1/decisions");
    let r = decide_with(&s, &token, Some(key.dpop("POST", &url, Some(&token))))
        .await
        .expect(200);
    assert_eq!(r["decision"], "allow", "{}", r.text);
    // RFC 9864's name for the same algorithm.
    let header = json!({"typ": "dpop+jwt", "alg": "Ed25519", "jwk": key.jwk});
    let claims = json!({"jti": "rfc9864", "htm": "POST", "htu": url, "iat": now(),
                        "ath": jwt_free_ath(&token)});
    decide_with(&s, &token, Some(key.sign_raw(&header, &claims)))
        .await
        .expect(200);

    // Each of these is refused with 401.
    let replayed = key.dpop("POST", &url, Some(&token));
    decide_with(&s, &token, Some(replayed.clone()))
        .await
        .expect(200);
    let other = ClientKey::generate();
    let stale = key.sign(
        "dpop+jwt",
        true,
        &json!({"jti": "stale-1", "htm": "POST", "htu": url, "iat": now() - 600,
                "ath": jwt_free_ath(&token)}),
    );
    let cases = [
        ("replayed", Some(replayed)),
        ("no proof", None),
        (
            "another URL",
            Some(key.dpop("POST", &s.url("/v1/approvals"), Some(&token))),
        ),
        ("another method", Some(key.dpop("PUT", &url, Some(&token)))),
        ("no ath", Some(key.dpop("POST", &url, None))),
        ("another key", Some(other.dpop("POST", &url, Some(&token)))),
        ("too old", Some(stale)),
        ("not a JWT", Some("garbage".to_owned())),
    ];
    for (what, proof) in cases {
        let r = decide_with(&s, &token, proof).await;
        assert_eq!(r.status, 401, "{what}: {}", r.text);
    }
    // A bound token presented as a plain bearer token.
    let r = s
        .send(
            s.http
                .post(&url)
                .bearer_auth(&token)
                .header("DPoP", key.dpop("POST", &url, Some(&token)))
                .json(&json!({"action": "ci.run_tests"})),
        )
        .await;
    assert_eq!(r.status, 401, "{}", r.text);
    // Turning DPoP off does not unbind existing tokens; an unbound token of
    // an agent that requires DPoP is refused.
    s.apply(
        ADMIN_KEY,
        &manifest("ci-bot", "bob", "tools: [{name: ci.*}]"),
    )
    .await
    .expect(200);
    let plain = s.token_request(&id, &secret, &[]).await.expect(200);
    let plain = plain["access_token"].as_str().unwrap().to_owned();
    s.decide(&plain, "ci.run_tests", json!({})).await;
    s.apply(ADMIN_KEY, &manifest("ci-bot", "bob", BOUND))
        .await
        .expect(200);
    s.post("/v1/decisions", &plain, json!({"action": "ci.run_tests"}))
        .await
        .problem(401);
}
on_both!(dpop_required_binds_tokens_to_the_agents_key);

fn jwt_free_ath(token: &str) -> String {
    use base64::Engine as _;
    use sha2::Digest;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(token.as_bytes()))
}

/// `ci-bot` (DPoP required), a `gateway` pep, and a token of `ci-bot`
/// bound to a fresh key.
struct Bound {
    pep: String,
    key: ClientKey,
    token: String,
    id: String,
    secret: String,
}

async fn pep_and_bound_agent(s: &Server) -> Bound {
    s.principal("bob", &[], &[]).await;
    let pep = s.principal("gateway", &["pep"], &[]).await;
    s.apply(ADMIN_KEY, &manifest("ci-bot", "bob", BOUND))
        .await
        .expect(201);
    let (id, secret) = s.credentials("ci-bot").await;
    let key = ClientKey::generate();
    let token = bound_token(s, &key, &id, &secret).await;
    Bound {
        pep,
        key,
        token,
        id,
        secret,
    }
}

async fn a_pep_forwards_the_agents_proof(s: Server) {
    let Bound {
        pep, key, token, ..
    } = pep_and_bound_agent(&s).await;
    let gateway_url = "http://127.0.0.1:8090/mcp";
    let proof = key.dpop("POST", gateway_url, Some(&token));
    let body = |proof: &str, htu: &str| {
        json!({"action": "ci.run_tests", "agent_token": token,
               "agent_dpop": {"proof": proof, "htm": "POST", "htu": htu}})
    };
    let r = s
        .post("/v1/decisions", &pep, body(&proof, gateway_url))
        .await
        .expect(200);
    assert_eq!(r["decision"], "allow");
    // The proof was for the gateway's URL, not another.
    let again = key.dpop("POST", gateway_url, Some(&token));
    s.post(
        "/v1/decisions",
        &pep,
        body(&again, "http://127.0.0.1:9999/mcp"),
    )
    .await
    .problem(401);
    // Without the proof, a bound token is refused.
    s.post(
        "/v1/decisions",
        &pep,
        json!({"action": "ci.run_tests", "agent_token": token}),
    )
    .await
    .problem(401);
}
on_both!(a_pep_forwards_the_agents_proof);

/// `POST /oauth/introspect` by a `pep`, with the agent's proof.
async fn admit(s: &Server, pep: &str, token: &str, proof: &str, htu: &str) -> crate::common::Resp {
    s.send(
        s.http
            .post(s.url("/oauth/introspect"))
            .bearer_auth(pep)
            .form(&[
                ("token", token),
                ("dpop_proof", proof),
                ("dpop_htm", "POST"),
                ("dpop_htu", htu),
            ]),
    )
    .await
}

async fn a_proof_admitted_at_a_peps_door_serves_that_pep_alone(s: Server) {
    let Bound {
        pep,
        key,
        token,
        id,
        secret,
    } = pep_and_bound_agent(&s).await;
    let other_pep = s.principal("envoy", &["pep"], &[]).await;
    let gw = "http://127.0.0.1:8090/mcp";
    let proof = key.dpop("POST", gw, Some(&token));

    // The door: checked and used up; the same proof again is a replay.
    let r = admit(&s, &pep, &token, &proof, gw).await.expect(200);
    assert_eq!(r["active"], true, "{}", r.text);
    let r = admit(&s, &pep, &token, &proof, gw).await.expect(400);
    assert_eq!(r["error"], "invalid_dpop_proof", "{}", r.text);
    assert!(r.text.contains("already used"), "{}", r.text);

    // The pep's questions about that request may carry it, again and again.
    let ask = |proof: &str| {
        json!({"action": "ci.run_tests", "agent_token": token,
               "agent_dpop": {"proof": proof, "htm": "POST", "htu": gw}})
    };
    for _ in 0..2 {
        let r = s.post("/v1/decisions", &pep, ask(&proof)).await.expect(200);
        assert_eq!(r["decision"], "allow", "{}", r.text);
    }
    let r = s
        .post(
            "/v1/decisions/reachable",
            &pep,
            json!({"agent_token": token, "actions": ["ci.run_tests", "deploy.prod"],
                   "agent_dpop": {"proof": proof, "htm": "POST", "htu": gw}}),
        )
        .await
        .expect(200);
    assert_eq!(r["reachable"], json!(["ci.run_tests"]), "{}", r.text);
    // Another pep cannot reuse what this one admitted, nor can the agent.
    s.post("/v1/decisions", &other_pep, ask(&proof))
        .await
        .problem(401);
    let url = s.url("/v1/decisions");
    s.send(
        s.http
            .post(&url)
            .header("Authorization", format!("DPoP {token}"))
            .header("DPoP", &proof)
            .json(&json!({"action": "ci.run_tests"})),
    )
    .await
    .problem(401);
    // A proof by another key that chose the admitted proof's `jti` is not
    // the admitted proof: it must be fresh and unused itself.
    let key2 = ClientKey::generate();
    let token2 = bound_token(&s, &key2, &id, &secret).await;
    let (_, admitted) = jwt_parts(&proof);
    let stale_twin = key2.sign(
        "dpop+jwt",
        true,
        &json!({"jti": admitted["jti"], "htm": "POST", "htu": gw, "iat": now() - 600,
                "ath": jwt_free_ath(&token2)}),
    );
    s.post(
        "/v1/decisions",
        &pep,
        json!({"action": "ci.run_tests", "agent_token": token2,
               "agent_dpop": {"proof": stale_twin, "htm": "POST", "htu": gw}}),
    )
    .await
    .problem(401);
    // An admitted proof is still only for its request and key.
    let r = s
        .post(
            "/v1/decisions",
            &pep,
            json!({"action": "ci.run_tests", "agent_token": token,
                   "agent_dpop": {"proof": proof, "htm": "GET", "htu": gw}}),
        )
        .await;
    assert_eq!(r.status, 401, "{}", r.text);

    // A bad proof at the door, and the door's misuses.
    let other = ClientKey::generate().dpop("POST", gw, Some(&token));
    let r = admit(&s, &pep, &token, &other, gw).await.expect(400);
    assert_eq!(r["error"], "invalid_dpop_proof", "{}", r.text);
    let fresh = key.dpop("POST", gw, Some(&token));
    let r = s
        .send(
            s.http
                .post(s.url("/oauth/introspect"))
                .bearer_auth(&pep)
                .form(&[("token", token.as_str()), ("dpop_proof", fresh.as_str())]),
        )
        .await
        .expect(400);
    assert_eq!(r["error"], "invalid_request", "{}", r.text);
    let r = admit(&s, ADMIN_KEY, &token, &fresh, gw).await.expect(400);
    assert_eq!(r["error"], "invalid_request", "{}", r.text);
    s.load("swe-bot").await;
    let (id, secret) = s.credentials("swe-bot").await;
    let plain = s.token_request(&id, &secret, &[]).await.expect(200);
    let plain = plain["access_token"].as_str().unwrap().to_owned();
    let r = admit(&s, &pep, &plain, &key.dpop("POST", gw, Some(&plain)), gw)
        .await
        .expect(400);
    assert_eq!(r["error"], "invalid_dpop_proof", "{}", r.text);
    assert!(r.text.contains("not DPoP-bound"), "{}", r.text);
}
on_both!(a_proof_admitted_at_a_peps_door_serves_that_pep_alone);

async fn a_pep_names_the_audience_it_guards(s: Server) {
    s.principal("bob", &[], &[]).await;
    let pep = s.principal("gateway", &["pep"], &[]).await;
    s.load("swe-bot").await;
    let (id, secret) = s.credentials("swe-bot").await;
    let gateway = "http://127.0.0.1:8090/mcp";
    let r = s
        .token_request(&id, &secret, &[("resource", gateway)])
        .await
        .expect(200);
    let token = r["access_token"].as_str().unwrap();
    // Not for Bridle itself…
    s.post("/v1/decisions", token, json!({"action": "ci.run_tests"}))
        .await
        .problem(401);
    // …but for the gateway, which says so.
    let r = s
        .post(
            "/v1/decisions",
            &pep,
            json!({"action": "ci.run_tests", "agent_token": token, "audience": gateway}),
        )
        .await
        .expect(200);
    assert_eq!(r["decision"], "allow");
    s.post(
        "/v1/decisions",
        &pep,
        json!({"action": "ci.run_tests", "agent_token": token, "audience": "http://127.0.0.1:1/mcp"}),
    )
    .await
    .problem(401);
    // Only a pep may name an audience.
    let own = s.agent_token("swe-bot").await;
    s.post(
        "/v1/decisions",
        &own,
        json!({"action": "ci.run_tests", "audience": gateway}),
    )
    .await
    .problem(400);
}
on_both!(a_pep_names_the_audience_it_guards);
