//! DPoP-bound agent tokens through the gateway (RFC 9449): each request to
//! the gateway needs a fresh proof for it, which the server checks and uses
//! up at the door; the gateway's later questions about the same request
//! (reachable tools, decisions, a held call's second decision, outcomes)
//! forward that proof, and a replayed proof never gets in.

use std::sync::atomic::Ordering;

use serde_json::{Value, json};

use super::client_key::ClientKey;
use super::harness::*;

/// An agent like `mcp-bot` whose tokens must be DPoP-bound.
async fn dpop_agent(env: &Env) {
    let record = format!(
        "{}credentials:\n  dpop: required\n",
        RECORD.replace("agent: mcp-bot", "agent: dpop-bot")
    );
    let r = env
        .http
        .put(format!("{}/v1/agents/dpop-bot", env.bridle))
        .bearer_auth(ADMIN)
        .header("content-type", "application/yaml")
        .body(record)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
}

/// A token of `dpop-bot` for the gateway, bound to `key`.
async fn bound_token(env: &Env, key: &ClientKey) -> String {
    let cred = env
        .post("/v1/agents/dpop-bot/credentials", ADMIN, json!({}))
        .await;
    let url = format!("{}/oauth/token", env.bridle);
    let r = env
        .http
        .post(&url)
        .basic_auth(
            cred["client_id"].as_str().unwrap(),
            cred["client_secret"].as_str(),
        )
        .header("DPoP", key.dpop("POST", &url, None))
        .form(&[
            ("grant_type", "client_credentials"),
            ("resource", env.mcp.as_str()),
        ])
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["token_type"], "DPoP", "{v}");
    v["access_token"].as_str().unwrap().to_owned()
}

/// A 2026-07-28 request with `Authorization: DPoP` and `proof`.
fn call(
    env: &Env,
    token: &str,
    proof: &str,
    method: &str,
    params: Value,
) -> reqwest::RequestBuilder {
    modern_as(env, &format!("DPoP {token}"), 1, method, params).header("dpop", proof)
}

/// The `DPoP` challenge of a 401, and the error it names.
fn dpop_challenge(r: &reqwest::Response) -> String {
    r.headers()
        .get_all("www-authenticate")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("DPoP "))
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dpop_bound_token_gets_in_with_a_fresh_proof_for_each_request() {
    let env = start().await;
    dpop_agent(&env).await;
    let key = ClientKey::generate();
    let token = bound_token(&env, &key).await;
    let proof = || key.dpop("POST", &env.mcp, Some(&token));

    let r = call(&env, &token, &proof(), "tools/list", json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v = response(r).await;
    let tools: Vec<&str> = v["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("{v}"))
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(tools.contains(&"up.echo"), "{v}");
    assert!(!tools.contains(&"up.secret_dump"), "{v}");

    let once = proof();
    let echo = json!({"name": "up.echo", "arguments": {"message": "hi"}});
    let r = call(&env, &token, &once, "tools/call", echo.clone())
        .send()
        .await
        .unwrap();
    let v = response(r).await;
    assert_eq!(v["result"]["content"][0]["text"], "Echo: hi", "{v}");

    // The same proof again is a replay: refused at the door.
    let r = call(&env, &token, &once, "tools/call", echo.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let challenge = dpop_challenge(&r);
    assert!(challenge.contains("invalid_dpop_proof"), "{challenge}");
    assert!(challenge.contains("already used"), "{challenge}");
    assert!(challenge.contains("algs=\"EdDSA"), "{challenge}");

    // A bound token as a bearer token, without a proof, with a proof for
    // another request or by another key: none gets in.
    let r = modern(&env, &token, 1, "tools/call", echo.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let bearer = r.headers()["www-authenticate"].to_str().unwrap().to_owned();
    assert!(bearer.contains("DPoP-bound"), "{bearer}");
    let r = modern_as(
        &env,
        &format!("DPoP {token}"),
        1,
        "tools/call",
        echo.clone(),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 401);
    assert!(dpop_challenge(&r).contains("invalid_dpop_proof"));
    let elsewhere = key.dpop(
        "POST",
        &format!("{}/v1/decisions", env.bridle),
        Some(&token),
    );
    let other_key = ClientKey::generate().dpop("POST", &env.mcp, Some(&token));
    for bad in [
        elsewhere,
        other_key,
        key.dpop("GET", &env.mcp, Some(&token)),
    ] {
        let r = call(&env, &token, &bad, "tools/call", echo.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{bad}");
        assert!(dpop_challenge(&r).contains("error="), "{bad}");
    }
    // An unbound token with the `DPoP` scheme is refused too.
    let plain = env.token(&env.mcp).await;
    let r = call(
        &env,
        &plain,
        &key.dpop("POST", &env.mcp, Some(&plain)),
        "tools/list",
        json!({}),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 401);
    assert!(dpop_challenge(&r).contains("not DPoP-bound"));

    // The protected-resource metadata says which proofs it takes.
    let meta = resource_metadata(&env).await;
    let algs = meta["dpop_signing_alg_values_supported"]
        .as_array()
        .unwrap();
    assert!(algs.iter().any(|a| a == "EdDSA"), "{meta}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_dpop_call_runs_once_when_approved() {
    let env = start().await;
    dpop_agent(&env).await;
    let approver = approver(&env).await;
    let key = ClientKey::generate();
    let token = bound_token(&env, &key).await;
    let proof = key.dpop("POST", &env.mcp, Some(&token));
    let add = json!({"name": "up.add", "arguments": {"a": 2, "b": 3}});
    let held = tokio::spawn(call(&env, &token, &proof, "tools/call", add).send());
    let id = pending_approval(&env).await;
    assert!(!held.is_finished(), "the call waits for the approval");
    env.post(&format!("/v1/approvals/{id}/approve"), &approver, json!({}))
        .await;
    // Decided again after the wait, on the proof the door admitted.
    let v = response(held.await.unwrap().unwrap()).await;
    assert_eq!(v["result"]["content"][0]["text"], "5", "{v}");
    assert_eq!(env.adds.load(Ordering::SeqCst), 1);
    let a = env.get(&format!("/v1/approvals/{id}"), ADMIN).await;
    assert_eq!(a["state"], "consumed", "{a}");
    // Its outcome was reported with the same proof.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let audit = env.get("/v1/audit?type=outcome", ADMIN).await;
        if audit["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e.to_string().contains("dpop-bot"))
        {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no outcome: {audit}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
