//! Hostile manifests and budget arguments through the real server: any
//! principal's deep Cedar or YAML nesting is refused (and the server keeps
//! answering), authorization comes before the body is parsed, the manifest
//! bounds answer 413/422 with the path, duplicate keys are 422 naming path
//! and line, and a budgeted argument must be a non-negative integer.

use serde_json::{Value, json};

use crate::common::{ADMIN_KEY, Server, assert_decision, codes, manifest};

fn deep_parens(n: usize) -> String {
    format!("{}context.args.amount > 1{}", "(".repeat(n), ")".repeat(n))
}

fn first_error(r: &crate::common::Resp) -> &Value {
    &r["errors"][0]
}

async fn apply_authorizes_before_parsing(s: Server) {
    let people = s.people().await;
    let mallory = &people["mallory"];
    s.apply(
        &people["alice"],
        &manifest("alice-bot", "alice", "tools:\n  - name: t\n"),
    )
    .await
    .expect(201);
    // On someone else's agent the body is never parsed: not even garbage
    // gets a validation answer.
    let r = s
        .put_yaml("alice-bot", mallory, "{{{{ not yaml")
        .await
        .problem(403);
    assert!(
        r["detail"].as_str().unwrap().contains("owner"),
        "{}",
        r.text
    );
    let deep = manifest(
        "alice-bot",
        "alice",
        &format!("tools:\n  - name: t\n    when: \"{}\"\n", deep_parens(150)),
    );
    s.put_yaml("alice-bot", mallory, &deep).await.problem(403);
    // A retired agent is 409 before its body is looked at.
    s.post(
        "/v1/agents/alice-bot/retire",
        ADMIN_KEY,
        json!({"reason": "done"}),
    )
    .await
    .expect(200);
    s.put_yaml("alice-bot", &people["alice"], "{{{{ not yaml")
        .await
        .problem(409);
}
on_both!(apply_authorizes_before_parsing);

async fn deep_cedar_is_refused_and_the_server_survives(s: Server) {
    let people = s.people().await;
    let mallory = &people["mallory"];
    s.apply(
        &people["alice"],
        &manifest("alice-bot", "alice", "tools:\n  - name: t\n"),
    )
    .await
    .expect(201);

    // On a new agent of their own, any principal can send it: refused
    // with the path, in every place a condition can appear.
    let sets = format!("{}1{} == []", "[".repeat(150), "]".repeat(150));
    for (body, path) in [
        (
            format!("tools:\n  - name: t\n    when: \"{}\"\n", deep_parens(150)),
            "tools[0].when",
        ),
        (
            format!(
                "tools:\n  - name: t\n    approval: {{when: \"{sets}\", approvers: [alice]}}\n"
            ),
            "tools[0].approval.when",
        ),
        (
            format!(
                "elevation:\n  - name: e\n    tools: [x]\n    max_duration: 1h\n    approvers: [alice]\n    auto_grant_when: \"{}\"\n",
                deep_parens(150)
            ),
            "elevation[0].auto_grant_when",
        ),
    ] {
        let r = s
            .put_yaml(
                "mallory-bot",
                mallory,
                &manifest("mallory-bot", "mallory", &body),
            )
            .await
            .problem(422);
        assert_eq!(first_error(&r)["path"], path, "{}", r.text);
        assert!(
            first_error(&r)["message"]
                .as_str()
                .unwrap()
                .contains("nested deeper"),
            "{}",
            r.text
        );
    }

    // Deep YAML and JSON (not Cedar) neither.
    let n = 30_000;
    let yaml = manifest(
        "mallory-bot",
        "mallory",
        &format!("x: {}1{}\n", "[".repeat(n), "]".repeat(n)),
    );
    let r = s.put_yaml("mallory-bot", mallory, &yaml).await.problem(422);
    assert!(
        r.text.contains("nesting deeper than") || r.text.contains("recursion limit exceeded"),
        "{}",
        r.text
    );
    let json = format!("{}1{}", "{\"a\": ".repeat(n), "}".repeat(n));
    let r = s
        .send(
            s.req(reqwest::Method::PUT, "/v1/agents/mallory-bot", mallory)
                .header("content-type", "application/json")
                .body(json),
        )
        .await
        .problem(422);
    assert!(
        r.text.contains("nesting deeper than") || r.text.contains("recursion limit exceeded"),
        "{}",
        r.text
    );

    // The server is still up and still deciding.
    s.get("/healthz", "").await.expect(200);
    let token = s.agent_token("alice-bot").await;
    assert_decision(&s.decide(&token, "t", json!({})).await, "allow", "granted");
    s.get("/v1/agents/mallory-bot", ADMIN_KEY)
        .await
        .problem(404);
}
on_both!(deep_cedar_is_refused_and_the_server_survives);

async fn manifest_bounds_answer_413_and_422_with_the_path(s: Server) {
    let people = s.people().await;
    let mallory = &people["mallory"];

    // Over the byte bound: 413, before any parsing.
    let huge = manifest(
        "big-bot",
        "mallory",
        &format!("team: \"{}\"\n", "x".repeat(300 * 1024)),
    );
    s.put_yaml("big-bot", mallory, &huge).await.problem(413);

    // Four times the grant bound (and under the byte bound): 422 on `tools`.
    let mut grants = String::from("tools:\n");
    for i in 0..2_000 {
        grants.push_str(&format!("  - name: t{i}\n"));
    }
    let r = s
        .put_yaml("big-bot", mallory, &manifest("big-bot", "mallory", &grants))
        .await
        .problem(422);
    assert_eq!(first_error(&r)["path"], "tools", "{}", r.text);
    assert_eq!(first_error(&r)["line"], 7, "{}", r.text);
    assert!(r.text.contains("at most"), "{}", r.text);

    // 20,000 aliases: 422 where the budget ran out.
    let mut aliases = String::from("tools:\n  - &t {name: \"a.*\"}\n");
    for _ in 0..20_000 {
        aliases.push_str("  - *t\n");
    }
    let r = s
        .put_yaml(
            "big-bot",
            mallory,
            &manifest("big-bot", "mallory", &aliases),
        )
        .await
        .problem(422);
    assert!(
        first_error(&r)["path"]
            .as_str()
            .unwrap()
            .starts_with("tools["),
        "{}",
        r.text
    );
    assert!(r.text.contains("aliases expand"), "{}", r.text);

    // Too deep: 422 with the path of the node that went too deep.
    let deep = manifest(
        "big-bot",
        "mallory",
        &format!("x: {}1{}\n", "[".repeat(40), "]".repeat(40)),
    );
    let r = s.put_yaml("big-bot", mallory, &deep).await.problem(422);
    assert!(
        first_error(&r)["path"]
            .as_str()
            .unwrap()
            .starts_with("x[0][0]"),
        "{}",
        r.text
    );

    // Nothing was stored, and a manifest at the bounds' side of real use applies.
    s.get("/v1/agents/big-bot", ADMIN_KEY).await.problem(404);
    s.put_yaml(
        "big-bot",
        mallory,
        &manifest("big-bot", "mallory", "tools:\n  - name: t\n"),
    )
    .await
    .expect(201);
}
on_both!(manifest_bounds_answer_413_and_422_with_the_path);

async fn duplicate_keys_are_422_with_path_and_line(s: Server) {
    let people = s.people().await;
    let alice = &people["alice"];
    let yaml = manifest(
        "dup-bot",
        "alice",
        "tools:\n  - name: pay\n    args:\n      amount: { max: 100 }\n      amount: { max: 100000000 }\n",
    );
    let r = s.put_yaml("dup-bot", alice, &yaml).await.problem(422);
    assert_eq!(
        first_error(&r)["path"],
        "tools[0].args.amount",
        "{}",
        r.text
    );
    assert_eq!(first_error(&r)["line"], 10, "{}", r.text);
    assert!(r.text.contains("duplicate key"), "{}", r.text);

    let json = "{\"agent\": \"dup-bot\", \"owner\": \"alice\", \"purpose\": \"p\",\n\
                \"environment\": \"dev\", \"expires\": \"2099-12-31\",\n\
                \"forbid\": [\"x\"], \"forbid\": []}";
    let r = s
        .send(
            s.req(reqwest::Method::PUT, "/v1/agents/dup-bot", alice)
                .header("content-type", "application/json")
                .body(json),
        )
        .await
        .problem(422);
    assert_eq!(first_error(&r)["path"], "forbid", "{}", r.text);
    assert_eq!(first_error(&r)["line"], 3, "{}", r.text);
    s.get("/v1/agents/dup-bot", ADMIN_KEY).await.problem(404);
}
on_both!(duplicate_keys_are_422_with_path_and_line);

async fn budget_arguments_must_be_non_negative_integers(s: Server) {
    let people = s.people().await;
    let yaml = manifest(
        "spend-bot",
        "alice",
        "tools:\n  - name: pay\nlimits:\n  budgets:\n    - { arg: amount, max: 1000, per: 24h }\n",
    );
    s.apply(&people["alice"], &yaml).await.expect(201);
    let token = s.agent_token("spend-bot").await;
    let pay = |amount: &'static str| {
        let body = format!("{{\"action\": \"pay\", \"args\": {{\"amount\": {amount}}}}}");
        let s = &s;
        let token = &token;
        async move {
            s.send(
                s.req(reqwest::Method::POST, "/v1/decisions", token)
                    .header("content-type", "application/json")
                    .body(body),
            )
            .await
            .expect(200)
            .json
        }
    };
    assert_decision(&pay("1000").await, "allow", "granted");
    assert_decision(&pay("1").await, "deny", "budget_exceeded");
    for value in [
        "\"500000\"",
        "500000.0",
        "1e6",
        "18446744073709551615",
        "-5000",
    ] {
        let d = pay(value).await;
        assert_decision(&d, "deny", "arg_constraint");
        assert_eq!(codes(&d), ["arg_constraint"], "{value}: {d}");
        assert_eq!(
            d["reasons"][0]["source"]["path"], "limits.budgets[0]",
            "{d}"
        );
    }
    // The negative amount refunded nothing.
    assert_decision(&pay("1").await, "deny", "budget_exceeded");
    // Without the argument, nothing is counted.
    let d = s.decide(&token, "pay", json!({})).await;
    assert_decision(&d, "allow", "granted");
}
on_both!(budget_arguments_must_be_non_negative_integers);
