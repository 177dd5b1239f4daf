//! Client authentication and key management: `private_key_jwt` (RFC 7523),
//! secret rotation with an overlap window, credential revocation,
//! signing-key rotation with JWKS overlap, and tokens forged with the
//! server's own key that only their claims betray (R5).

use serde_json::json;

use crate::common::keys::{ClientKey, now};
use crate::common::{ADMIN_KEY, Server, jwt_parts};

async fn assertion_token(s: &Server, client_id: &str, assertion: &str) -> crate::common::Resp {
    s.send(s.http.post(s.url("/oauth/token")).form(&[
        ("grant_type", "client_credentials"),
        ("client_id", client_id),
        (
            "client_assertion_type",
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        ),
        ("client_assertion", assertion),
    ]))
    .await
}

async fn private_key_jwt_authenticates_without_a_secret(s: Server) {
    s.principal("bob", &[], &[]).await;
    s.load("swe-bot").await;
    let key = ClientKey::generate();
    let client_id = s.key_credentials("swe-bot", &key).await;
    let listed = s
        .get("/v1/agents/swe-bot/credentials", ADMIN_KEY)
        .await
        .expect(200);
    assert_eq!(
        listed["credentials"][0]["token_endpoint_auth_method"],
        "private_key_jwt"
    );

    let assertion = key.assertion(&client_id, &s.url("/oauth/token"));
    let r = assertion_token(&s, &client_id, &assertion)
        .await
        .expect(200);
    let token = r["access_token"].as_str().unwrap();
    assert_eq!(jwt_parts(token).1["client_id"], client_id.as_str());
    s.decide(token, "ci.run_tests", json!({})).await;
    // The issuer is an accepted audience too, an hour's lifetime is fine
    // (authlib's default), and RFC 9864's `alg: Ed25519` names EdDSA.
    assertion_token(&s, &client_id, &key.assertion(&client_id, &s.base))
        .await
        .expect(200);
    let claims = json!({"iss": client_id, "sub": client_id, "aud": [s.base.clone()],
                        "iat": now(), "exp": now() + 3600, "jti": "rfc9864"});
    let fully_specified = key.sign_raw(&json!({"alg": "Ed25519", "typ": "JWT"}), &claims);
    assertion_token(&s, &client_id, &fully_specified)
        .await
        .expect(200);
    let unknown_alg = key.sign_raw(&json!({"alg": "ES999"}), &claims);
    let r = assertion_token(&s, &client_id, &unknown_alg)
        .await
        .expect(401);
    assert!(
        r["error_description"]
            .as_str()
            .unwrap()
            .contains("not supported"),
        "{}",
        r.text
    );

    // Replayed, for another audience, signed by another key, expired, or
    // living too long: all invalid_client.
    let other = ClientKey::generate();
    let long = key.sign(
        "JWT",
        false,
        &json!({"iss": client_id, "sub": client_id, "aud": s.base, "exp": now() + 7200, "jti": "long"}),
    );
    let expired = key.sign(
        "JWT",
        false,
        &json!({"iss": client_id, "sub": client_id, "aud": s.base, "exp": now() - 60, "jti": "old"}),
    );
    let no_jti = key.sign(
        "JWT",
        false,
        &json!({"iss": client_id, "sub": client_id, "aud": s.base, "exp": now() + 60}),
    );
    for bad in [
        assertion,
        key.assertion(&client_id, "https://elsewhere.example/token"),
        other.assertion(&client_id, &s.base),
        long,
        expired,
        no_jti,
    ] {
        let r = assertion_token(&s, &client_id, &bad).await.expect(401);
        assert_eq!(r["error"], "invalid_client", "{}", r.text);
    }
    // The secret methods do not work for a key credential.
    let r = s
        .token_request(&client_id, "bcs_guess", &[])
        .await
        .expect(401);
    assert_eq!(r["error"], "invalid_client");

    // Private or symmetric keys are refused at registration.
    let mut private = key.jwk.clone();
    private["d"] = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A".into();
    for jwk in [private, json!({"kty": "oct", "k": "c2VjcmV0"}), json!("x")] {
        let r = s
            .post(
                "/v1/agents/swe-bot/credentials",
                ADMIN_KEY,
                json!({ "jwk": jwk }),
            )
            .await
            .problem(422);
        assert_eq!(r["errors"][0]["path"], "jwk", "{}", r.text);
    }
}
on_both!(private_key_jwt_authenticates_without_a_secret);

async fn secret_rotation_keeps_the_old_secret_for_the_overlap(s: Server) {
    let bob = s.principal("bob", &[], &[]).await;
    s.load("swe-bot").await;
    let (id, old) = s.credentials("swe-bot").await;
    let path = format!("/v1/agents/swe-bot/credentials/{id}/rotate");
    let r = s
        .post(&path, &bob, json!({"overlap": "1h"}))
        .await
        .expect(200);
    let new = r["client_secret"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    assert!(r["previous_secret_expires_at"].is_string());
    s.token_request(&id, &old, &[]).await.expect(200);
    s.token_request(&id, &new, &[]).await.expect(200);

    // Rotating again with no overlap: only the newest works.
    let r = s
        .post(&path, &bob, json!({"overlap": "0s"}))
        .await
        .expect(200);
    let newest = r["client_secret"].as_str().unwrap().to_owned();
    assert!(r.json.get("previous_secret_expires_at").is_none());
    for stale in [&old, &new] {
        let r = s.token_request(&id, stale, &[]).await.expect(401);
        assert_eq!(r["error"], "invalid_client");
    }
    let token = s.token_request(&id, &newest, &[]).await.expect(200);
    let token = token["access_token"].as_str().unwrap().to_owned();

    s.post(&path, &bob, json!({"overlap": "30d"}))
        .await
        .problem(422);
    s.post(&path, &bob, json!({"overlap": "soon"}))
        .await
        .problem(422);
    let outsider = s.principal("mallory", &[], &[]).await;
    s.post(&path, &outsider, json!({})).await.problem(403);
    s.post(
        "/v1/agents/swe-bot/credentials/swe-bot.nope/rotate",
        &bob,
        json!({}),
    )
    .await
    .problem(404);
    let listed = s
        .get("/v1/agents/swe-bot/credentials", &bob)
        .await
        .expect(200);
    assert!(!listed.text.contains(&newest), "a secret is listed");

    // Revoking the credential ends its tokens too.
    let revoke = format!("/v1/agents/swe-bot/credentials/{id}/revoke");
    let r = s.post(&revoke, &bob, json!({})).await.expect(200);
    assert!(r["revoked_at"].is_string());
    s.post(&revoke, &bob, json!({})).await.problem(409);
    s.post("/v1/decisions", &token, json!({"action": "ci.run_tests"}))
        .await
        .problem(401);
    let r = s.token_request(&id, &newest, &[]).await.expect(401);
    assert_eq!(r["error"], "invalid_client");
    let ops: Vec<_> = s
        .audit(ADMIN_KEY, "type=credential")
        .await
        .into_iter()
        .map(|e| e["detail"]["op"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(ops, ["create", "rotate", "rotate", "revoke"], "{ops:?}");
}
on_both!(secret_rotation_keeps_the_old_secret_for_the_overlap);

async fn signing_key_rotation_keeps_old_tokens_valid(s: Server) {
    s.principal("bob", &[], &[]).await;
    s.load("swe-bot").await;
    let (id, secret) = s.credentials("swe-bot").await;
    let before = s.token_request(&id, &secret, &[]).await.expect(200);
    let before = before["access_token"].as_str().unwrap().to_owned();
    let old_kid = jwt_parts(&before).0["kid"].clone();

    let outsider = s.principal("mallory", &[], &[]).await;
    s.post("/v1/keys/rotate", &outsider, json!({}))
        .await
        .problem(403);
    let keys = s
        .post("/v1/keys/rotate", ADMIN_KEY, json!({}))
        .await
        .expect(200);
    let states: Vec<(String, String)> = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["kid"].as_str().unwrap().to_owned(),
                k["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(states.len(), 2, "{states:?}");
    assert!(states.contains(&(old_kid.as_str().unwrap().to_owned(), "retiring".into())));

    let after = s.token_request(&id, &secret, &[]).await.expect(200);
    let after = after["access_token"].as_str().unwrap().to_owned();
    let new_kid = jwt_parts(&after).0["kid"].clone();
    assert_ne!(new_kid, old_kid);
    let jwks = s.get("/.well-known/jwks.json", "").await.expect(200);
    let kids: Vec<_> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].clone())
        .collect();
    assert!(
        kids.contains(&old_kid) && kids.contains(&new_kid),
        "{kids:?}"
    );
    // Both tokens work.
    s.decide(&before, "ci.run_tests", json!({})).await;
    s.decide(&after, "ci.run_tests", json!({})).await;
    let listed = s.get("/v1/keys", ADMIN_KEY).await.expect(200);
    assert!(!listed.text.contains("private"), "{}", listed.text);
}
on_both!(signing_key_rotation_keeps_old_tokens_valid);

/// R5: tokens signed with the server's real key whose claims are wrong.
async fn tokens_with_wrong_claims_are_rejected(s: Server) {
    s.principal("bob", &[], &[]).await;
    s.load("swe-bot").await;
    let token = s.agent_token("swe-bot").await;
    let (header, claims) = jwt_parts(&token);
    // Control: the same claims, re-signed, are accepted.
    let same = s.sign_as_server(&header, &claims).await;
    s.decide(&same, "ci.run_tests", json!({})).await;

    let variants: Vec<(&str, serde_json::Value)> = vec![
        ("expired", json!({"exp": now() - 120, "iat": now() - 900})),
        ("not yet valid", json!({"nbf": now() + 600})),
        ("wrong iss", json!({"iss": "https://evil.example"})),
        ("wrong aud", json!({"aud": "https://other.example"})),
        ("unknown jti", json!({"jti": "never-issued"})),
        ("unknown agent", json!({"sub": "ghost-bot"})),
    ];
    for (what, patch) in variants {
        let mut c = claims.clone();
        for (k, v) in patch.as_object().unwrap() {
            c[k] = v.clone();
        }
        let forged = s.sign_as_server(&header, &c).await;
        let r = s
            .post("/v1/decisions", &forged, json!({"action": "ci.run_tests"}))
            .await;
        assert_eq!(r.status, 401, "{what}: {}", r.text);
        // Introspection reports `aud` for the resource server to judge;
        // every other defect makes the token inactive.
        let active = s.introspect(&forged).await["active"] == true;
        assert_eq!(active, what == "wrong aud", "{what}");
    }
    // A wrong `typ` (an ID token is not an access token).
    let mut h = header.clone();
    h["typ"] = "JWT".into();
    let id_token = s.sign_as_server(&h, &claims).await;
    s.post(
        "/v1/decisions",
        &id_token,
        json!({"action": "ci.run_tests"}),
    )
    .await
    .problem(401);
    // A delegation chain nobody issued: the jti is unknown, and the chain
    // is not allowed either.
    let mut c = claims.clone();
    c["act"] = json!({"sub": "swe-bot"});
    let chained = s.sign_as_server(&header, &c).await;
    s.post("/v1/decisions", &chained, json!({"action": "ci.run_tests"}))
        .await
        .problem(401);
}
on_both!(tokens_with_wrong_claims_are_rejected);
