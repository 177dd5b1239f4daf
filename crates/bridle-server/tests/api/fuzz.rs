//! Inputs the fuzz targets (`fuzz/`) found to break the server, replayed
//! through the real HTTP API: each must be refused with a clear error, not
//! crash the request.

use serde_json::json;

use crate::common::keys::{ClientKey, now};
use crate::common::{ADMIN_KEY, Server, manifest};

/// `fuzz/corpus/dpop`: a DPoP proof whose `iat` is so far from now that
/// the distance overflowed (a panic with overflow checks, and with wrapping
/// arithmetic one `iat` inside the window).
async fn dpop_proof_with_extreme_iat_is_refused(s: Server) {
    s.principal("bob", &[], &[]).await;
    s.apply(
        ADMIN_KEY,
        &manifest(
            "ci-bot",
            "bob",
            "tools: [{name: ci.*}]\ncredentials: { dpop: required }",
        ),
    )
    .await
    .expect(201);
    let (id, secret) = s.credentials("ci-bot").await;
    let key = ClientKey::generate();
    let url = s.url("/oauth/token");
    for (jti, iat) in [
        ("min", i64::MIN),
        ("max", i64::MAX),
        ("min-1", i64::MIN + 1),
    ] {
        let proof = key.sign(
            "dpop+jwt",
            true,
            &json!({"jti": jti, "htm": "POST", "htu": url, "iat": iat}),
        );
        let r = s
            .send(
                s.http
                    .post(&url)
                    .basic_auth(&id, Some(&secret))
                    .header("DPoP", proof)
                    .form(&[("grant_type", "client_credentials")]),
            )
            .await
            .expect(400);
        assert_eq!(r["error"], "invalid_dpop_proof", "{jti}: {}", r.text);
        assert!(
            r["error_description"]
                .as_str()
                .unwrap_or_default()
                .contains("iat"),
            "{jti}: {}",
            r.text
        );
    }
    // A proof made now still works.
    let proof = key.dpop("POST", &url, None);
    s.send(
        s.http
            .post(&url)
            .basic_auth(&id, Some(&secret))
            .header("DPoP", proof)
            .form(&[("grant_type", "client_credentials")]),
    )
    .await
    .expect(200);
}
on_both!(dpop_proof_with_extreme_iat_is_refused);

/// `fuzz/corpus/jwt`: a `private_key_jwt` assertion whose `exp` or `nbf`
/// is at the end of the integer range overflowed the leeway arithmetic.
async fn client_assertion_with_extreme_times_is_refused(s: Server) {
    s.principal("bob", &[], &[]).await;
    s.load("swe-bot").await;
    let key = ClientKey::generate();
    let client_id = s.key_credentials("swe-bot", &key).await;
    let cases = [
        ("exp-max", json!({"exp": i64::MAX})),
        ("exp-min", json!({"exp": i64::MIN})),
        ("nbf-max", json!({"exp": now() + 60, "nbf": i64::MAX})),
        ("nbf-min", json!({"exp": now() + 60, "nbf": i64::MIN})),
    ];
    for (jti, times) in cases {
        let mut claims = json!({"iss": client_id, "sub": client_id, "aud": s.base,
                                "iat": now(), "jti": jti});
        for (k, v) in times.as_object().unwrap() {
            claims[k] = v.clone();
        }
        let assertion = key.sign("JWT", false, &claims);
        let r = s
            .send(s.http.post(s.url("/oauth/token")).form(&[
                ("grant_type", "client_credentials"),
                ("client_id", client_id.as_str()),
                (
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                ),
                ("client_assertion", assertion.as_str()),
            ]))
            .await;
        if jti == "nbf-min" {
            // Valid since the beginning of time: accepted.
            assert_eq!(r.status, 200, "{jti}: {}", r.text);
        } else {
            assert_eq!(r.status, 401, "{jti}: {}", r.text);
            assert_eq!(r["error"], "invalid_client", "{jti}: {}", r.text);
        }
    }
}
on_both!(client_assertion_with_extreme_times_is_refused);
