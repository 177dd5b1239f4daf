//! The protocol revisions: 2026-07-28 results from older upstreams, and
//! the `Mcp-Method`/`Mcp-Name` header check before the body.

use serde_json::json;

use super::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_2026_07_28_result_has_its_result_type_even_from_an_older_upstream() {
    let env = start().await;
    let token = env.token(&env.mcp).await;
    let r = modern(
        &env,
        &token,
        1,
        "tools/call",
        json!({"name": "up.bare", "arguments": {}}),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let v = response(r).await;
    assert_eq!(v["result"]["content"][0]["text"], "bare", "{v}");
    assert_eq!(v["result"]["resultType"], "complete", "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_headers_refuse_an_ungranted_call_before_the_body_is_read() {
    let env = start().await;
    let token = env.token(&env.mcp).await;
    // The body lacks what 2026-07-28 requires of a request (`_meta`); only a
    // refusal on the headers answers it with the decision.
    let r = env
        .http
        .post(&env.mcp)
        .bearer_auth(&token)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .header("mcp-name", "up.secret_dump")
        .json(&json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                      "params": {"name": "up.secret_dump"}}))
        .send()
        .await
        .unwrap();
    let v = response(r).await;
    assert_eq!(v["id"], 7, "{v}");
    assert_eq!(v["error"]["code"], bridle_gateway::proxy::DENIED, "{v}");
    assert_eq!(v["error"]["data"]["reason"], "forbidden", "{v}");
    // The refusal is a decision: it is in the audit log.
    let audit = env.get("/v1/audit?type=decision", ADMIN).await;
    assert!(
        audit["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e.to_string().contains("up.secret_dump")),
        "{audit}"
    );
    // A granted call with the same headers goes on to be decided and run.
    let r = modern(
        &env,
        &token,
        8,
        "tools/call",
        json!({"name": "up.echo", "arguments": {"message": "hi"}}),
    )
    .send()
    .await
    .unwrap();
    let v = response(r).await;
    assert_eq!(v["result"]["content"][0]["text"], "Echo: hi", "{v}");
}

/// Resource subscriptions and `list_changed` are offered to a 2025-11-25
/// session (`resources/subscribe`) and to a 2026-07-28 client
/// (`subscriptions/listen`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_are_offered_on_both_revisions() {
    let env = start().await;
    let token = env.token(&env.mcp).await;
    let client = env.client(&token).await;
    let caps = client.peer_info().unwrap().capabilities.clone();
    let resources = caps.resources.unwrap();
    assert_eq!(resources.subscribe, Some(true));
    assert_eq!(caps.tools.unwrap().list_changed, Some(true));
    client.cancel().await.unwrap();

    let r = modern(&env, &token, 1, "server/discover", json!({}))
        .send()
        .await
        .unwrap();
    let v = response(r).await;
    let caps = &v["result"]["capabilities"];
    assert_eq!(caps["resources"]["subscribe"], true, "{v}");
    assert_eq!(caps["tools"]["listChanged"], true, "{v}");
}
