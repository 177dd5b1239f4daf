//! Failed authentication is seen and slowed: wrong client secrets, wrong API
//! keys and forged access tokens are audited in aggregate (`authentication`
//! events, never the secret), a credential hammered from one source is
//! answered 429 with `Retry-After` there and still works from elsewhere, a
//! hammering source is locked for every credential, and the attacked agent
//! gets a finding.

use std::net::IpAddr;
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{ADMIN_KEY, Server, b64, jwt_parts};

const WRONG_SECRET: &str = "definitely-not-the-secret-0123456789";
const WRONG_KEY: &str = "bk_nope-0123456789abcdefghijklmn";

/// A client that connects from another loopback address: another source.
fn from(ip: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(ip.parse::<IpAddr>().unwrap())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// Status, `Retry-After` and JSON body of an answer.
async fn answer(req: reqwest::RequestBuilder) -> (u16, Option<u64>, Value) {
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let retry_after = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().parse::<u64>().unwrap());
    let body = r.json::<Value>().await.unwrap_or(Value::Null);
    (status, retry_after, body)
}

fn token_req(
    s: &Server,
    client: &reqwest::Client,
    id: &str,
    secret: &str,
) -> reqwest::RequestBuilder {
    client
        .post(s.url("/oauth/token"))
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", "client_credentials")])
}

/// The `authentication` events, read as admin through `client`.
async fn auth_events(s: &Server, client: &reqwest::Client) -> Vec<Value> {
    let r = s
        .send(
            client
                .get(s.url("/v1/audit?type=authentication&limit=1000"))
                .bearer_auth(ADMIN_KEY),
        )
        .await
        .expect(200);
    r["events"].as_array().unwrap().clone()
}

async fn audit_len(s: &Server, client: &reqwest::Client) -> usize {
    let r = s
        .send(
            client
                .get(s.url("/v1/audit?limit=1000"))
                .bearer_auth(ADMIN_KEY),
        )
        .await
        .expect(200);
    r["events"].as_array().unwrap().len()
}

fn failures(events: &[Value]) -> u64 {
    events
        .iter()
        .map(|e| e["detail"]["failures"].as_u64().unwrap())
        .sum()
}

async fn swe_bot(s: &Server) -> (String, String) {
    s.principal("bob", &[], &[]).await;
    s.load("swe-bot").await;
    s.credentials("swe-bot").await
}

async fn wrong_client_secrets_are_audited_then_throttled_only_from_their_source(s: Server) {
    let (id, secret) = swe_bot(&s).await;
    for i in 0..10 {
        let (status, _, body) = answer(token_req(&s, &s.http, &id, WRONG_SECRET)).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("invalid_client")),
            "attempt {i}"
        );
    }
    let events = auth_events(&s, &s.http).await;
    let states: Vec<&str> = events
        .iter()
        .map(|e| e["detail"]["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["failing", "locked"], "{events:?}");
    assert_eq!(failures(&events), 10);
    for e in &events {
        assert_eq!(e["agent"], "swe-bot", "{e}");
        let d = &e["detail"];
        assert_eq!(d["kind"], "client", "{e}");
        assert_eq!(d["client_id"], id.as_str(), "{e}");
        assert_eq!(d["source"], "127.0.0.1", "{e}");
        assert_eq!(d["endpoints"], json!(["/oauth/token"]), "{e}");
        let text = e.to_string();
        assert!(
            !text.contains(WRONG_SECRET) && !text.contains(&secret),
            "{e}"
        );
    }
    assert_eq!(events[1]["detail"]["locked"], "credential");

    // Locked: 429 with Retry-After, the right secret included, from here.
    let (status, retry_after, body) = answer(token_req(&s, &s.http, &id, WRONG_SECRET)).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"], "temporarily_unavailable", "{body}");
    assert!(
        retry_after.is_some_and(|secs| (1..=60).contains(&secs)),
        "{retry_after:?}"
    );
    let (status, _, _) = answer(token_req(&s, &s.http, &id, &secret)).await;
    assert_eq!(status, 429, "the pair stays locked for its source");

    // From another source the client still gets its token.
    let elsewhere = from("127.0.0.2");
    let (status, _, body) = answer(token_req(&s, &elsewhere, &id, &secret)).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["access_token"].is_string());
}
on_both!(wrong_client_secrets_are_audited_then_throttled_only_from_their_source);

async fn five_hundred_failures_make_a_handful_of_audit_events(s: Server) {
    let (id, _) = swe_bot(&s).await;
    let reader = from("127.0.0.2");
    let before = audit_len(&s, &reader).await;
    let mut refused = 0;
    for i in 0..500 {
        let (status, _, _) = answer(token_req(&s, &s.http, &id, &format!("guess-{i}"))).await;
        match status {
            401 => {}
            429 => refused += 1,
            other => panic!("attempt {i}: {other}"),
        }
    }
    assert_eq!(
        refused, 490,
        "all but the first max_failures are refused unchecked"
    );
    let grown = audit_len(&s, &reader).await - before;
    assert!(
        (1..=3).contains(&grown),
        "{grown} audit events for 500 failures"
    );
    assert_eq!(failures(&auth_events(&s, &reader).await), 10);
}
on_both!(five_hundred_failures_make_a_handful_of_audit_events);

async fn wrong_api_keys_are_audited_and_throttled(s: Server) {
    for _ in 0..10 {
        s.get("/v1/agents", WRONG_KEY).await.problem(401);
    }
    let locked = answer(s.http.get(s.url("/v1/agents")).bearer_auth(WRONG_KEY)).await;
    assert_eq!(locked.0, 429, "{}", locked.2);
    assert!(locked.1.is_some_and(|secs| secs >= 1), "{locked:?}");
    assert_eq!(locked.2["status"], 429);
    assert_eq!(
        locked.2["type"],
        "https://bridle.dev/problems/too-many-requests"
    );
    // Only that key is locked: another principal from the same source works.
    s.get("/v1/agents", ADMIN_KEY).await.expect(200);

    let events = auth_events(&s, &s.http).await;
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(failures(&events), 10);
    for e in &events {
        assert_eq!(e["detail"]["kind"], "api_key", "{e}");
        assert_eq!(e["detail"]["endpoints"], json!(["/v1/agents"]), "{e}");
        assert!(
            !e.to_string().contains(WRONG_KEY),
            "the key is in the log: {e}"
        );
    }
    assert_eq!(events[0]["detail"]["presented"], json!(["bk_nope-…"]));
}
on_both!(wrong_api_keys_are_audited_and_throttled);

async fn a_hammering_source_is_locked_for_every_credential_but_only_itself(s: Server) {
    // Twenty different keys: no pair reaches max_failures, the source does.
    for i in 0..20 {
        s.get("/v1/agents", &format!("k{i:02}-guessed-api-key-0123456789"))
            .await
            .problem(401);
    }
    let (status, retry_after, _) =
        answer(s.http.get(s.url("/v1/agents")).bearer_auth(ADMIN_KEY)).await;
    assert_eq!(status, 429);
    assert!(retry_after.is_some());
    // X-Forwarded-For from an untrusted peer changes nothing.
    let (status, _, _) = answer(
        s.http
            .get(s.url("/v1/agents"))
            .bearer_auth(ADMIN_KEY)
            .header("x-forwarded-for", "198.51.100.4"),
    )
    .await;
    assert_eq!(status, 429, "a forged X-Forwarded-For escaped the lock");
    let elsewhere = from("127.0.0.3");
    s.send(elsewhere.get(s.url("/v1/agents")).bearer_auth(ADMIN_KEY))
        .await
        .expect(200);
    let events = auth_events(&s, &elsewhere).await;
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[1]["detail"]["locked"], "source");
    assert_eq!(events[1]["detail"]["presented_more"], true);
    assert_eq!(failures(&events), 20);
}
on_both!(
    a_hammering_source_is_locked_for_every_credential_but_only_itself,
    |c: &mut bridle_server::Config| c.auth_throttle.source_max_failures = 20
);

async fn behind_a_trusted_proxy_the_forwarded_client_is_the_source(s: Server) {
    let via = |ip: &str| {
        s.http
            .get(s.url("/v1/agents"))
            .header("x-forwarded-for", format!("{ip}, 127.0.0.1"))
    };
    for i in 0..20 {
        let (status, _, _) =
            answer(via("203.0.113.7").bearer_auth(format!("k{i:02}-wrong-key-xxxxxxxxxxxx"))).await;
        assert_eq!(status, 401);
    }
    let (status, _, _) = answer(via("203.0.113.7").bearer_auth(ADMIN_KEY)).await;
    assert_eq!(status, 429);
    let (status, _, _) = answer(via("203.0.113.8").bearer_auth(ADMIN_KEY)).await;
    assert_eq!(status, 200);
    let events = auth_events(&s, &s.http).await;
    assert!(!events.is_empty());
    for e in &events {
        assert_eq!(e["detail"]["source"], "203.0.113.7", "{e}");
    }
}
on_both!(
    behind_a_trusted_proxy_the_forwarded_client_is_the_source,
    |c: &mut bridle_server::Config| {
        c.auth_throttle.source_max_failures = 20;
        c.auth_throttle.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    }
);

async fn forged_access_tokens_at_decisions_are_audited(s: Server) {
    s.principal("bob", &[], &[]).await;
    s.load("swe-bot").await;
    let token = s.agent_token("swe-bot").await;
    let (_, mut claims) = jwt_parts(&token);
    claims["scope"] = "*".into();
    let mut parts = token.split('.');
    let (header, _, signature) = (parts.next().unwrap(), parts.next(), parts.next().unwrap());
    let forged = format!("{header}.{}.{signature}", b64(&claims));
    let body = json!({"action": "github.read_file", "args": {}});
    for _ in 0..3 {
        s.post("/v1/decisions", &forged, body.clone())
            .await
            .problem(401);
    }
    let events = auth_events(&s, &s.http).await;
    assert_eq!(events.len(), 1, "{events:?}");
    let d = &events[0]["detail"];
    assert_eq!(d["kind"], "access_token");
    assert_eq!(d["presented"], json!(["swe-bot"]));
    assert_eq!(d["endpoints"], json!(["/v1/decisions"]));
    let text = events[0].to_string();
    assert!(
        !text.contains(&forged) && !text.contains(signature),
        "{text}"
    );
    // The agent's real token is not locked by forgeries of it.
    s.post("/v1/decisions", &token, body).await.expect(200);
}
on_both!(forged_access_tokens_at_decisions_are_audited);

async fn introspection_and_revocation_client_failures_are_audited(s: Server) {
    let (first, _) = swe_bot(&s).await;
    let (second, _) = s.credentials("swe-bot").await;
    for (path, id) in [("/oauth/introspect", &first), ("/oauth/revoke", &second)] {
        let (status, _, body) = answer(
            s.http
                .post(s.url(path))
                .basic_auth(id, Some(WRONG_SECRET))
                .form(&[("token", "x")]),
        )
        .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("invalid_client"))
        );
    }
    let events = auth_events(&s, &s.http).await;
    let seen: Vec<(&str, &str)> = events
        .iter()
        .map(|e| {
            (
                e["detail"]["client_id"].as_str().unwrap(),
                e["detail"]["endpoints"][0].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (first.as_str(), "/oauth/introspect"),
            (second.as_str(), "/oauth/revoke")
        ]
    );
}
on_both!(introspection_and_revocation_client_failures_are_audited);

async fn the_attacked_agent_has_an_auth_failures_finding(s: Server) {
    let (id, _) = swe_bot(&s).await;
    let codes = |r: &crate::common::Resp| -> Vec<Value> {
        r["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["code"] == "auth_failures")
            .cloned()
            .collect()
    };
    let quiet = s
        .get("/v1/findings?agent=swe-bot", ADMIN_KEY)
        .await
        .expect(200);
    assert!(codes(&quiet).is_empty(), "{}", quiet.text);
    for _ in 0..10 {
        answer(token_req(&s, &s.http, &id, WRONG_SECRET)).await;
    }
    let r = s
        .get("/v1/findings?agent=swe-bot", ADMIN_KEY)
        .await
        .expect(200);
    let found = codes(&r);
    assert_eq!(found.len(), 1, "{}", r.text);
    assert_eq!(found[0]["severity"], "high");
    assert!(
        found[0]["frameworks"]
            .as_array()
            .unwrap()
            .contains(&json!("OWASP-NHI4:2025"))
    );
    assert!(
        found[0]["detail"].as_str().unwrap().contains("10 failed"),
        "{}",
        found[0]
    );
}
on_both!(the_attacked_agent_has_an_auth_failures_finding);
