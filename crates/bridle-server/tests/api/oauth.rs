//! OAuth 2.0: metadata, JWKS, the client-credentials grant with both client
//! authentication methods, RFC 8707 audiences, and forged tokens.

use serde_json::json;

use crate::common::{Server, assert_decision, b64, jwt_parts};

async fn metadata_and_jwks_are_public(s: Server) {
    let m = s
        .get("/.well-known/oauth-authorization-server", "")
        .await
        .expect(200);
    // Exactly the RFC 8414 members a client may read, no more, no fewer.
    let mut members: Vec<&str> = m
        .json
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    members.sort_unstable();
    assert_eq!(
        members,
        [
            "access_token_signing_alg_values_supported",
            "authorization_endpoint",
            "authorization_response_iss_parameter_supported",
            "client_id_metadata_document_supported",
            "code_challenge_methods_supported",
            "dpop_signing_alg_values_supported",
            "grant_types_supported",
            "introspection_endpoint",
            "introspection_endpoint_auth_methods_supported",
            "introspection_endpoint_auth_signing_alg_values_supported",
            "issuer",
            "jwks_uri",
            "resource_parameter_supported",
            "response_types_supported",
            "revocation_endpoint",
            "revocation_endpoint_auth_methods_supported",
            "revocation_endpoint_auth_signing_alg_values_supported",
            "scopes_supported",
            "token_endpoint",
            "token_endpoint_auth_methods_supported",
            "token_endpoint_auth_signing_alg_values_supported",
        ],
        "{}",
        m.text
    );
    assert_eq!(m["resource_parameter_supported"], true);
    assert_eq!(
        m["access_token_signing_alg_values_supported"],
        json!(["EdDSA"])
    );
    assert!(
        m["introspection_endpoint_auth_methods_supported"]
            .as_array()
            .unwrap()
            .contains(&json!("bearer"))
    );
    assert_eq!(m["issuer"], s.base.as_str());
    assert_eq!(m["token_endpoint"], s.url("/oauth/token"));
    assert_eq!(m["jwks_uri"], s.url("/.well-known/jwks.json"));
    assert!(
        m["grant_types_supported"]
            .as_array()
            .unwrap()
            .contains(&json!("client_credentials"))
    );
    // The authorization code grant for interactive clients (PKCE S256,
    // RFC 9207 `iss`, clients named by their metadata document URL).
    assert_eq!(m["authorization_endpoint"], s.url("/oauth/authorize"));
    assert_eq!(m["response_types_supported"], json!(["code"]));
    assert_eq!(m["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(m["authorization_response_iss_parameter_supported"], true);
    assert_eq!(m["client_id_metadata_document_supported"], true);
    assert!(
        m["grant_types_supported"]
            .as_array()
            .unwrap()
            .contains(&json!("authorization_code"))
    );
    for method in ["client_secret_basic", "client_secret_post", "none"] {
        assert!(
            m["token_endpoint_auth_methods_supported"]
                .as_array()
                .unwrap()
                .contains(&json!(method)),
            "{}",
            m.text
        );
    }
    let jwks = s.get("/.well-known/jwks.json", "").await.expect(200);
    let keys = jwks["keys"].as_array().unwrap();
    assert!(!keys.is_empty());
    for k in keys {
        assert_eq!(k["kty"], "OKP");
        assert_eq!(k["crv"], "Ed25519");
        assert!(k["kid"].is_string() && k["x"].is_string(), "{k}");
        assert!(k.get("d").is_none(), "a private key is published: {k}");
    }
}
on_both!(metadata_and_jwks_are_public);

async fn client_credentials_grant(s: Server) {
    s.principal("bob", &[], &[]).await;
    s.load("swe-bot").await;
    let (id, secret) = s.credentials("swe-bot").await;

    // client_secret_basic
    let basic = s.token_request(&id, &secret, &[]).await.expect(200);
    assert_eq!(basic["token_type"], "Bearer");
    assert_eq!(basic["expires_in"], 600, "swe-bot's token_ttl is 10m");
    assert!(basic.json.get("scope").is_none(), "{}", basic.text);
    let token = basic["access_token"].as_str().unwrap().to_owned();

    let (header, claims) = jwt_parts(&token);
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["alg"], "EdDSA");
    let jwks = s.get("/.well-known/jwks.json", "").await.expect(200);
    assert!(
        jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["kid"] == header["kid"]),
        "kid {} not in {}",
        header["kid"],
        jwks.text
    );
    assert_eq!(claims["iss"], s.base.as_str());
    assert_eq!(claims["sub"], "swe-bot");
    assert_eq!(claims["aud"], s.base.as_str(), "default audience");
    assert_eq!(claims["client_id"], id.as_str());
    assert!(claims["jti"].as_str().is_some_and(|j| !j.is_empty()));
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        600
    );

    // client_secret_post
    let post = s
        .send(s.http.post(s.url("/oauth/token")).form(&[
            ("grant_type", "client_credentials"),
            ("client_id", id.as_str()),
            ("client_secret", secret.as_str()),
            ("scope", "ci.run_tests"),
        ]))
        .await
        .expect(200);
    assert_eq!(post["token_type"], "Bearer");
    assert_eq!(post["scope"], "ci.run_tests");
    let other = post["access_token"].as_str().unwrap();
    assert_ne!(
        jwt_parts(other).1["jti"],
        claims["jti"],
        "jti must be unique"
    );
    assert_decision(
        &s.decide(other, "ci.run_tests", json!({})).await,
        "allow",
        "granted",
    );

    // RFC 8707: `resource` becomes `aud`. Bridle's own URL is accepted by
    // the decision endpoint; another resource server's token is not.
    let mine = s
        .token_request(&id, &secret, &[("resource", s.base.as_str())])
        .await
        .expect(200);
    let mine = mine["access_token"].as_str().unwrap();
    assert_eq!(jwt_parts(mine).1["aud"], s.base.as_str());
    assert_decision(
        &s.decide(mine, "ci.run_tests", json!({})).await,
        "allow",
        "granted",
    );
    let foreign = s
        .token_request(&id, &secret, &[("resource", "https://other.example")])
        .await
        .expect(200);
    let foreign = foreign["access_token"].as_str().unwrap();
    assert_eq!(jwt_parts(foreign).1["aud"], "https://other.example");
    s.post("/v1/decisions", foreign, json!({"action": "ci.run_tests"}))
        .await
        .problem(401);
    let r = s
        .token_request(&id, &secret, &[("resource", "not-a-uri")])
        .await
        .expect(400);
    assert_eq!(r["error"], "invalid_target");
}
on_both!(client_credentials_grant);

async fn token_endpoint_errors(s: Server) {
    s.principal("bob", &[], &[]).await;
    s.load("swe-bot").await;
    let (id, secret) = s.credentials("swe-bot").await;

    let r = s.token_request(&id, "bcs_wrong", &[]).await.expect(401);
    assert_eq!(r["error"], "invalid_client", "{}", r.text);
    let r = s
        .token_request("swe-bot.unknown", &secret, &[])
        .await
        .expect(401);
    assert_eq!(r["error"], "invalid_client");
    let r = s
        .send(s.http.post(s.url("/oauth/token")).form(&[
            ("grant_type", "client_credentials"),
            ("client_id", id.as_str()),
            ("client_secret", "bcs_wrong"),
        ]))
        .await
        .expect(401);
    assert_eq!(r["error"], "invalid_client");
    let r = s
        .send(
            s.http
                .post(s.url("/oauth/token"))
                .form(&[("grant_type", "client_credentials")]),
        )
        .await
        .expect(401);
    assert_eq!(r["error"], "invalid_client");

    let r = s
        .send(
            s.http
                .post(s.url("/oauth/token"))
                .basic_auth(&id, Some(&secret))
                .form(&[("grant_type", "password"), ("username", "x")]),
        )
        .await
        .expect(400);
    assert_eq!(r["error"], "unsupported_grant_type", "{}", r.text);
    // Two authentication methods at once.
    let r = s
        .send(
            s.http
                .post(s.url("/oauth/token"))
                .basic_auth(&id, Some(&secret))
                .form(&[
                    ("grant_type", "client_credentials"),
                    ("client_secret", secret.as_str()),
                ]),
        )
        .await
        .expect(400);
    assert_eq!(r["error"], "invalid_request");
    // A body that is not a form still gets an OAuth error, in JSON.
    for req in [
        s.http
            .post(s.url("/oauth/token"))
            .basic_auth(&id, Some(&secret))
            .json(&json!({"grant_type": "client_credentials"})),
        s.http.post(s.url("/oauth/token")),
    ] {
        let r = s.send(req).await.expect(400);
        assert_eq!(r["error"], "invalid_request", "{}", r.text);
        assert!(
            r.content_type.starts_with("application/json"),
            "{}",
            r.content_type
        );
    }
}
on_both!(token_endpoint_errors);

async fn forged_tokens_are_rejected(s: Server) {
    s.principal("alice", &[], &[]).await;
    s.principal("bob", &[], &[]).await;
    s.load("swe-bot").await;
    s.load("procurement-bot").await;
    let token = s.agent_token("swe-bot").await;
    let ask = json!({"action": "ci.run_tests"});
    s.post("/v1/decisions", &token, ask.clone())
        .await
        .expect(200);

    let (header, claims) = jwt_parts(&token);
    let mut parts: Vec<String> = token.split('.').map(String::from).collect();

    // One flipped character of the signature.
    let mut sig: Vec<char> = parts[2].chars().collect();
    sig[0] = if sig[0] == 'A' { 'B' } else { 'A' };
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        parts[1],
        sig.into_iter().collect::<String>()
    );
    s.post("/v1/decisions", &tampered, ask.clone())
        .await
        .problem(401);

    // Claims changed under the original signature.
    let mut other = claims.clone();
    other["sub"] = "procurement-bot".into();
    parts[1] = b64(&other);
    let swapped = parts.join(".");
    s.post("/v1/decisions", &swapped, ask.clone())
        .await
        .problem(401);

    // `alg: none`, crafted by hand.
    let mut none = header.clone();
    none["alg"] = "none".into();
    let unsigned = format!("{}.{}.", b64(&none), b64(&claims));
    s.post("/v1/decisions", &unsigned, ask.clone())
        .await
        .problem(401);
    // HS256 signed with the public key is a classic confusion attack.
    let mut hs = header.clone();
    hs["alg"] = "HS256".into();
    let confused = format!("{}.{}.{}", b64(&hs), b64(&claims), parts[2]);
    s.post("/v1/decisions", &confused, ask.clone())
        .await
        .problem(401);

    s.post("/v1/decisions", "a.b.c", ask.clone())
        .await
        .problem(401);
    // A token is not an API key, nor the other way round.
    s.get("/v1/agents", "bk_garbage").await.problem(401);
}
on_both!(forged_tokens_are_rejected);
