//! Delegation by RFC 8693 token exchange, introspection (RFC 7662) and
//! revocation (RFC 7009): a sub-agent never does more than both records and
//! the token's scope allow, and losing any link of a chain kills it.

use serde_json::json;

use crate::common::{ADMIN_KEY, Server, assert_decision, jwt_parts, manifest};

/// swe-bot (delegator) and test-runner (its delegate), with credentials.
/// Also returns the API key of their owner, bob.
async fn pair(s: &Server) -> (String, (String, String), String) {
    let bob = s.principal("bob", &[], &[]).await;
    s.load("swe-bot").await;
    s.load("test-runner").await;
    let swe = s.agent_token("swe-bot").await;
    (swe, s.credentials("test-runner").await, bob)
}

async fn exchange_issues_a_delegated_token_that_both_records_bound(s: Server) {
    let (swe, (tr_id, tr_secret), _) = pair(&s).await;
    let r = s.exchange(&tr_id, &tr_secret, &swe, &[]).await.expect(200);
    assert_eq!(
        r["issued_token_type"],
        "urn:ietf:params:oauth:token-type:access_token"
    );
    assert_eq!(r["token_type"], "Bearer");
    let delegated = r["access_token"].as_str().unwrap().to_owned();
    let (_, claims) = jwt_parts(&delegated);
    let (_, parent) = jwt_parts(&swe);
    assert_eq!(claims["sub"], "swe-bot");
    assert_eq!(claims["act"], json!({"sub": "test-runner"}));
    assert_eq!(claims["client_id"], tr_id.as_str());
    assert!(claims["exp"].as_i64() <= parent["exp"].as_i64());

    // Both records grant ci.run_tests.
    assert_decision(
        &s.decide(&delegated, "ci.run_tests", json!({})).await,
        "allow",
        "granted",
    );
    // test-runner alone may read secrets; swe-bot forbids them.
    let tr = s.agent_token("test-runner").await;
    assert_decision(
        &s.decide(&tr, "secrets.read", json!({})).await,
        "allow",
        "granted",
    );
    assert_decision(
        &s.decide(&delegated, "secrets.read", json!({})).await,
        "deny",
        "forbidden",
    );
    // swe-bot may open PRs; test-runner has no such grant.
    assert_decision(
        &s.decide(
            &delegated,
            "github.create_pull_request",
            json!({"repo": "acme/x"}),
        )
        .await,
        "deny",
        "not_granted",
    );

    // Introspection shows the chain.
    let i = s.introspect(&delegated).await;
    assert_eq!(i["active"], true, "{i}");
    assert_eq!(i["sub"], "swe-bot");
    assert_eq!(i["act"]["sub"], "test-runner");
    assert_eq!(i["client_id"], tr_id.as_str());
    assert_eq!(i["jti"], claims["jti"]);
    assert_eq!(i["token_type"], "Bearer");

    // The issue and the exchange are in the audit log, without the tokens.
    let events = s.audit(ADMIN_KEY, "type=token").await;
    let exchange = events
        .iter()
        .find(|e| e["detail"]["grant_type"] == "urn:ietf:params:oauth:grant-type:token-exchange")
        .unwrap_or_else(|| panic!("no exchange event in {events:?}"));
    assert_eq!(exchange["detail"]["parent_jti"], parent["jti"]);
    let all = serde_json::to_string(&s.audit(ADMIN_KEY, "").await).unwrap();
    assert!(!all.contains(&delegated) && !all.contains(&swe));
}
on_both!(exchange_issues_a_delegated_token_that_both_records_bound);

async fn scope_only_narrows(s: Server) {
    let (_, (tr_id, tr_secret), _) = pair(&s).await;
    s.apply(
        ADMIN_KEY,
        &manifest(
            "ci-lead",
            "bob",
            "tools: [{name: ci.*}]\ndelegation: { to: [test-runner] }",
        ),
    )
    .await
    .expect(201);
    let lead = s.agent_token("ci-lead").await;
    let r = s
        .exchange(&tr_id, &tr_secret, &lead, &[("scope", "ci.run_tests")])
        .await
        .expect(200);
    assert_eq!(r["scope"], "ci.run_tests");
    let narrow = r["access_token"].as_str().unwrap().to_owned();
    assert_decision(
        &s.decide(&narrow, "ci.run_tests", json!({})).await,
        "allow",
        "granted",
    );
    // Granted by both records, but outside the narrowed scope.
    assert_decision(
        &s.decide(&narrow, "ci.lint", json!({})).await,
        "deny",
        "delegation_scope",
    );
    let wide = s.exchange(&tr_id, &tr_secret, &lead, &[]).await.expect(200);
    assert_decision(
        &s.decide(wide["access_token"].as_str().unwrap(), "ci.lint", json!({}))
            .await,
        "allow",
        "granted",
    );

    // A scoped subject cannot be widened by the exchange.
    let (swe_id, swe_secret) = s.credentials("swe-bot").await;
    let scoped = s
        .token_request(&swe_id, &swe_secret, &[("scope", "ci.run_tests")])
        .await
        .expect(200);
    let scoped = scoped["access_token"].as_str().unwrap();
    let r = s
        .exchange(&tr_id, &tr_secret, scoped, &[("scope", "ci.*")])
        .await
        .expect(400);
    assert_eq!(r["error"], "invalid_scope", "{}", r.text);
    // Without a scope, the delegated token inherits the subject's.
    let r = s
        .exchange(&tr_id, &tr_secret, scoped, &[])
        .await
        .expect(200);
    assert_eq!(r["scope"], "ci.run_tests");
}
on_both!(scope_only_narrows);

async fn delegation_must_be_listed_and_within_depth(s: Server) {
    let (swe, _, _) = pair(&s).await;
    s.principal("alice", &[], &[]).await;
    s.load("procurement-bot").await;
    let (pb_id, pb_secret) = s.credentials("procurement-bot").await;
    // swe-bot does not list procurement-bot.
    let r = s.exchange(&pb_id, &pb_secret, &swe, &[]).await.expect(400);
    assert_eq!(r["error"], "invalid_target", "{}", r.text);
    // test-runner lists nobody: its own token cannot be delegated.
    let tr = s.agent_token("test-runner").await;
    let (swe_id, swe_secret) = s.credentials("swe-bot").await;
    let r = s.exchange(&swe_id, &swe_secret, &tr, &[]).await.expect(400);
    assert_eq!(r["error"], "invalid_target");

    // Depth: a delegated token delegated again goes beyond max_depth 1, even
    // when the next hop is listed.
    s.apply(
        ADMIN_KEY,
        &manifest(
            "helper",
            "bob",
            "tools: [{name: ci.*}]\ndelegation: { to: [swe-bot] }",
        ),
    )
    .await
    .expect(201);
    s.apply(
        ADMIN_KEY,
        &manifest(
            "relay",
            "bob",
            "tools: [{name: ci.*}]\ndelegation: { to: [helper] }",
        ),
    )
    .await
    .expect(201);
    let relay = s.agent_token("relay").await;
    let (h_id, h_secret) = s.credentials("helper").await;
    let hop1 = s.exchange(&h_id, &h_secret, &relay, &[]).await.expect(200);
    let hop1 = hop1["access_token"].as_str().unwrap();
    // relay → helper → swe-bot: helper lists swe-bot, but relay's chain may
    // be only 1 deep.
    let r = s
        .exchange(&swe_id, &swe_secret, hop1, &[])
        .await
        .expect(400);
    assert_eq!(r["error"], "invalid_target", "{}", r.text);
    assert!(r["error_description"].as_str().unwrap().contains("deep"));
    // With max_depth 2 on relay, the chain is allowed and nests `act`.
    s.apply(
        ADMIN_KEY,
        &manifest(
            "relay",
            "bob",
            "tools: [{name: ci.*}]\ndelegation: { to: [helper], max_depth: 2 }",
        ),
    )
    .await
    .expect(200);
    let hop2 = s
        .exchange(&swe_id, &swe_secret, hop1, &[])
        .await
        .expect(200);
    let hop2 = hop2["access_token"].as_str().unwrap();
    let (_, claims) = jwt_parts(hop2);
    assert_eq!(claims["sub"], "relay");
    assert_eq!(
        claims["act"],
        json!({"sub": "swe-bot", "act": {"sub": "helper"}})
    );
    assert_decision(
        &s.decide(hop2, "ci.run_tests", json!({})).await,
        "allow",
        "granted",
    );
    // Taking max_depth back ends the longer chain at once.
    s.apply(
        ADMIN_KEY,
        &manifest(
            "relay",
            "bob",
            "tools: [{name: ci.*}]\ndelegation: { to: [helper], max_depth: 1 }",
        ),
    )
    .await
    .expect(200);
    s.post("/v1/decisions", hop2, json!({"action": "ci.run_tests"}))
        .await
        .problem(401);
    assert_eq!(s.introspect(hop2).await, json!({"active": false}));
}
on_both!(delegation_must_be_listed_and_within_depth);

async fn exchange_rejects_bad_subject_and_actor_tokens(s: Server) {
    let (swe, (tr_id, tr_secret), _) = pair(&s).await;
    let r = s
        .exchange(&tr_id, &tr_secret, "a.b.c", &[])
        .await
        .expect(400);
    assert_eq!(r["error"], "invalid_request");
    let wrong_type = s
        .send(
            s.http
                .post(s.url("/oauth/token"))
                .basic_auth(&tr_id, Some(&tr_secret))
                .form(&[
                    (
                        "grant_type",
                        "urn:ietf:params:oauth:grant-type:token-exchange",
                    ),
                    ("subject_token", swe.as_str()),
                    (
                        "subject_token_type",
                        "urn:ietf:params:oauth:token-type:id_token",
                    ),
                ]),
        )
        .await
        .expect(400);
    assert_eq!(wrong_type["error"], "invalid_request");
    // The actor token must be the delegate's own.
    let tr = s.agent_token("test-runner").await;
    let typ = "urn:ietf:params:oauth:token-type:access_token";
    s.exchange(
        &tr_id,
        &tr_secret,
        &swe,
        &[("actor_token", tr.as_str()), ("actor_token_type", typ)],
    )
    .await
    .expect(200);
    let r = s
        .exchange(
            &tr_id,
            &tr_secret,
            &swe,
            &[("actor_token", swe.as_str()), ("actor_token_type", typ)],
        )
        .await
        .expect(400);
    assert_eq!(r["error"], "invalid_request");
    // A suspended delegator cannot delegate.
    s.post(
        "/v1/agents/swe-bot/suspend",
        ADMIN_KEY,
        json!({"reason": "investigation"}),
    )
    .await
    .expect(200);
    let r = s.exchange(&tr_id, &tr_secret, &swe, &[]).await.expect(400);
    assert_eq!(r["error"], "invalid_request", "{}", r.text);
}
on_both!(exchange_rejects_bad_subject_and_actor_tokens);

async fn revoking_a_token_revokes_its_lineage(s: Server) {
    let (swe, (tr_id, tr_secret), bob) = pair(&s).await;
    let delegated = s.exchange(&tr_id, &tr_secret, &swe, &[]).await.expect(200);
    let delegated = delegated["access_token"].as_str().unwrap().to_owned();
    s.decide(&delegated, "ci.run_tests", json!({})).await;

    // Another client may not revoke it (RFC 7009 §2.1).
    s.principal("alice", &[], &[]).await;
    s.load("procurement-bot").await;
    let (pb_id, pb_secret) = s.credentials("procurement-bot").await;
    let r = s
        .send(
            s.http
                .post(s.url("/oauth/revoke"))
                .basic_auth(&pb_id, Some(&pb_secret))
                .form(&[("token", swe.as_str())]),
        )
        .await
        .expect(400);
    assert_eq!(r["error"], "unauthorized_client");
    // Unauthenticated: 401.
    let r = s
        .send(
            s.http
                .post(s.url("/oauth/revoke"))
                .form(&[("token", swe.as_str())]),
        )
        .await
        .expect(401);
    assert_eq!(r["error"], "invalid_client");
    // Garbage is "revoked" without complaint.
    s.send(
        s.http
            .post(s.url("/oauth/revoke"))
            .basic_auth(&pb_id, Some(&pb_secret))
            .form(&[
                ("token", "not-a-token"),
                ("token_type_hint", "access_token"),
            ]),
    )
    .await
    .expect(200);

    // Another principal may not; swe-bot's owner (bob) may, and the
    // delegated token dies with it.
    let carol = s.principal("carol", &[], &[]).await;
    let r = s
        .send(
            s.http
                .post(s.url("/oauth/revoke"))
                .bearer_auth(&carol)
                .form(&[("token", swe.as_str())]),
        )
        .await
        .expect(400);
    assert_eq!(r["error"], "unauthorized_client");
    let r = s
        .send(
            s.http
                .post(s.url("/oauth/revoke"))
                .bearer_auth(&bob)
                .form(&[("token", swe.as_str())]),
        )
        .await
        .expect(200);
    assert_eq!(r.text, "");
    for t in [&swe, &delegated] {
        s.post("/v1/decisions", t, json!({"action": "ci.run_tests"}))
            .await
            .problem(401);
        assert_eq!(s.introspect(t).await, json!({"active": false}));
    }
    let revokes: Vec<_> = s
        .audit(ADMIN_KEY, "type=token")
        .await
        .into_iter()
        .filter(|e| e["detail"]["op"] == "revoke")
        .collect();
    assert_eq!(revokes.len(), 1);
    assert_eq!(revokes[0]["detail"]["revoked"], 2);
}
on_both!(revoking_a_token_revokes_its_lineage);

async fn any_link_of_a_chain_ends_it(s: Server) {
    let (swe, (tr_id, tr_secret), _) = pair(&s).await;
    let delegated = s.exchange(&tr_id, &tr_secret, &swe, &[]).await.expect(200);
    let delegated = delegated["access_token"].as_str().unwrap().to_owned();
    s.decide(&delegated, "ci.run_tests", json!({})).await;
    // Suspending the delegate: decisions deny, introspection says inactive.
    s.post(
        "/v1/agents/test-runner/suspend",
        ADMIN_KEY,
        json!({"reason": "odd behaviour"}),
    )
    .await
    .expect(200);
    assert_decision(
        &s.decide(&delegated, "ci.run_tests", json!({})).await,
        "deny",
        "agent_suspended",
    );
    assert_eq!(s.introspect(&delegated).await, json!({"active": false}));
    s.post(
        "/v1/agents/test-runner/resume",
        ADMIN_KEY,
        json!({"reason": "cleared"}),
    )
    .await
    .expect(200);
    s.decide(&delegated, "ci.run_tests", json!({})).await;
    // Retiring the delegate: the token is dead (401), for good.
    s.post(
        "/v1/agents/test-runner/retire",
        ADMIN_KEY,
        json!({"reason": "replaced"}),
    )
    .await
    .expect(200);
    s.post(
        "/v1/decisions",
        &delegated,
        json!({"action": "ci.run_tests"}),
    )
    .await
    .problem(401);
    assert_eq!(s.introspect(&delegated).await, json!({"active": false}));
    // The delegator's own token is unaffected.
    s.decide(&swe, "ci.run_tests", json!({})).await;
}
on_both!(any_link_of_a_chain_ends_it);

async fn introspection_needs_an_authenticated_caller(s: Server) {
    let (swe, (tr_id, tr_secret), _) = pair(&s).await;
    let r = s
        .send(
            s.http
                .post(s.url("/oauth/introspect"))
                .form(&[("token", swe.as_str())]),
        )
        .await
        .expect(401);
    assert_eq!(r["error"], "invalid_client");
    let r = s
        .send(
            s.http
                .post(s.url("/oauth/introspect"))
                .bearer_auth("bk_wrong")
                .form(&[("token", swe.as_str())]),
        )
        .await
        .expect(401);
    assert_eq!(r["error"], "invalid_client");
    // An agent client may introspect; a pep principal may too.
    let r = s
        .send(
            s.http
                .post(s.url("/oauth/introspect"))
                .basic_auth(&tr_id, Some(&tr_secret))
                .form(&[("token", swe.as_str())]),
        )
        .await
        .expect(200);
    assert_eq!(r["active"], true);
    assert_eq!(r["sub"], "swe-bot");
    assert_eq!(r.json.get("act"), None);
    let pep = s.principal("gateway", &["pep"], &[]).await;
    let r = s
        .send(
            s.http
                .post(s.url("/oauth/introspect"))
                .bearer_auth(&pep)
                .form(&[("token", "garbage")]),
        )
        .await
        .expect(200);
    assert_eq!(r.json, json!({"active": false}));
    assert_eq!(
        s.send(
            s.http
                .post(s.url("/oauth/introspect"))
                .bearer_auth(&pep)
                .form(&[("nothing", "here")]),
        )
        .await
        .expect(400)["error"],
        "invalid_request"
    );
}
on_both!(introspection_needs_an_authenticated_caller);
