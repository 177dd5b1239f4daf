//! `GET /v1/findings`: posture findings from the record and from the agent's
//! credentials, each mapped to framework controls.

use serde_json::json;

use crate::common::{ADMIN_KEY, Server, manifest, sql};

fn codes(findings: &crate::common::Resp) -> Vec<String> {
    findings["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap().to_owned())
        .collect()
}

async fn findings_cover_the_record_and_its_credentials(s: Server) {
    let bob = s.principal("bob", &[], &[]).await;
    s.load("swe-bot").await;
    s.apply(
        ADMIN_KEY,
        &manifest(
            "wild-bot",
            "bob",
            "tools: [{name: \"*\"}, {name: db.dump, access: export}]",
        ),
    )
    .await
    .expect(201);

    let all = s.get("/v1/findings", &bob).await.expect(200);
    let wild = s.get("/v1/findings?agent=wild-bot", &bob).await.expect(200);
    let wild_codes = codes(&wild);
    assert!(
        wild_codes.contains(&"wildcard_grant".into()),
        "{wild_codes:?}"
    );
    assert!(wild_codes.contains(&"privileged_without_approval".into()));
    for f in all["findings"].as_array().unwrap() {
        assert!(
            f["frameworks"].as_array().is_some_and(|fw| !fw.is_empty()
                && fw.iter().all(|x| x
                    .as_str()
                    .is_some_and(|x| x.contains("OWASP") || x.starts_with("NIST")))),
            "{f}"
        );
    }
    // swe-bot is in prod without DPoP, and delegates.
    let swe = codes(&s.get("/v1/findings?agent=swe-bot", &bob).await.expect(200));
    assert!(swe.contains(&"bearer_tokens_in_prod".into()), "{swe:?}");
    assert!(
        !swe.contains(&"shared_secret_in_prod".into()),
        "no credential yet"
    );

    // Credentials: a secret in prod; three clients; a secret not rotated for
    // 100 days (its creation time moved back in the store).
    let (id, _) = s.credentials("swe-bot").await;
    s.credentials("swe-bot").await;
    s.credentials("swe-bot").await;
    sql(
        &s.db_url,
        s.backend,
        &format!(
            "UPDATE agent_credentials SET created_at = '2020-01-01T00:00:00.000000Z' WHERE client_id = '{id}'"
        ),
    )
    .await;
    let swe = s.get("/v1/findings?agent=swe-bot", &bob).await.expect(200);
    let swe_codes = codes(&swe);
    for code in [
        "shared_secret_in_prod",
        "many_active_credentials",
        "stale_client_secret",
    ] {
        assert!(
            swe_codes.contains(&code.into()),
            "{code} missing from {swe_codes:?}"
        );
    }
    let stale = swe["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "stale_client_secret")
        .unwrap();
    assert!(stale["detail"].as_str().unwrap().contains(&id), "{stale}");
    assert_eq!(stale["frameworks"][0], "OWASP-NHI7:2025");

    // Rotating the old secret and revoking a client clears both.
    s.post(
        &format!("/v1/agents/swe-bot/credentials/{id}/rotate"),
        ADMIN_KEY,
        json!({"overlap": "0s"}),
    )
    .await
    .expect(200);
    s.post(
        &format!("/v1/agents/swe-bot/credentials/{id}/revoke"),
        ADMIN_KEY,
        json!({}),
    )
    .await
    .expect(200);
    let swe_codes = codes(&s.get("/v1/findings?agent=swe-bot", &bob).await.expect(200));
    assert!(
        !swe_codes.contains(&"stale_client_secret".into()),
        "{swe_codes:?}"
    );
    assert!(!swe_codes.contains(&"many_active_credentials".into()));

    // Agents cannot read findings; unknown agents are 404.
    let token = s.agent_token("swe-bot").await;
    s.get("/v1/findings", &token).await.problem(403);
    s.get("/v1/findings?agent=nobody", &bob).await.problem(404);
}
on_both!(findings_cover_the_record_and_its_credentials);
