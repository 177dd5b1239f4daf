//! Ids in the path: one that cannot be an id of its kind is answered exactly
//! as an unknown one (404 problem+json naming it), after every check the
//! endpoint makes first; `PUT /v1/agents/{id}` alone calls it a bad request
//! (it names the agent to create).

use serde_json::json;

use crate::common::{ADMIN_KEY, Server, example};

async fn an_unparsable_id_is_answered_as_an_unknown_one(s: Server) {
    s.principal("bob", &[], &[]).await;
    s.load("swe-bot").await;
    for (bad, unknown) in [("Not_An_Agent", "no-such-bot"), ("a%20b", "ghost")] {
        let shown = bad.replace("%20", " ");
        let r = s
            .get(&format!("/v1/agents/{bad}"), ADMIN_KEY)
            .await
            .problem(404);
        assert_eq!(r["detail"], format!("agent `{shown}` not found"));
        let u = s
            .get(&format!("/v1/agents/{unknown}"), ADMIN_KEY)
            .await
            .problem(404);
        assert_eq!(u["detail"], format!("agent `{unknown}` not found"));
        // Lifecycle, review, credentials and elevations alike.
        for tail in ["suspend", "review", "credentials", "elevations"] {
            let body = match tail {
                "suspend" => json!({"reason": "x"}),
                "elevations" => json!({"name": "x", "duration": "1h", "reason": "x"}),
                _ => json!({}),
            };
            let r = s
                .post(&format!("/v1/agents/{bad}/{tail}"), ADMIN_KEY, body)
                .await
                .problem(404);
            assert_eq!(r["detail"], format!("agent `{shown}` not found"), "{tail}");
        }
        s.get(&format!("/v1/agents/{bad}/credentials"), ADMIN_KEY)
            .await
            .problem(404);
    }
    let r = s.get("/v1/approvals/apr%20x", ADMIN_KEY).await.problem(404);
    assert_eq!(r["detail"], "approval `apr x` not found");
    let r = s
        .post("/v1/approvals/apr%20x/approve", ADMIN_KEY, json!({}))
        .await
        .problem(404);
    assert_eq!(r["detail"], "approval `apr x` not found");
    let r = s
        .post("/v1/principals/Bad%20Id/deactivate", ADMIN_KEY, json!({}))
        .await
        .problem(404);
    assert_eq!(r["detail"], "principal `Bad Id` not found");
}
on_both!(an_unparsable_id_is_answered_as_an_unknown_one);

/// The checks an endpoint makes before it looks the id up still come first:
/// a malformed body, and an agent's token where only principals may act.
async fn checks_before_the_lookup_keep_their_order(s: Server) {
    s.principal("bob", &[], &[]).await;
    s.load("swe-bot").await;
    let token = s.agent_token("swe-bot").await;
    for id in ["Not_An_Agent", "no-such-bot"] {
        let r = s
            .post(
                &format!("/v1/agents/{id}/suspend"),
                ADMIN_KEY,
                json!({"reason": " "}),
            )
            .await
            .problem(422);
        assert_eq!(r["errors"][0]["path"], "reason", "{id}");
        s.get(&format!("/v1/agents/{id}/credentials"), &token)
            .await
            .problem(403);
        s.post("/v1/approvals/Not%20One/approve", &token, json!({}))
            .await
            .problem(403);
    }
}
on_both!(checks_before_the_lookup_keep_their_order);

/// `PUT` names the agent to create: an id that cannot be one is a 400 that
/// says why, and only for a caller who may apply at all.
async fn applying_under_an_invalid_id_is_a_bad_request(s: Server) {
    s.principal("bob", &[], &[]).await;
    s.load("swe-bot").await;
    let token = s.agent_token("swe-bot").await;
    let yaml = example("swe-bot");
    let r = s
        .put_yaml("Not_An_Agent", ADMIN_KEY, yaml)
        .await
        .problem(400);
    let detail = r["detail"].as_str().unwrap_or_default();
    assert!(
        detail.starts_with("`Not_An_Agent` is not an agent id: ")
            && detail.contains("not a valid agent id"),
        "{detail}"
    );
    s.put_yaml("Not_An_Agent", &token, yaml).await.problem(403);
}
on_both!(applying_under_an_invalid_id_is_a_bad_request);

/// A path that is not UTF-8 once decoded is a 400 problem, not plain text.
async fn an_undecodable_path_is_a_problem(s: Server) {
    let r = s.get("/v1/agents/%FF", ADMIN_KEY).await.problem(400);
    assert!(
        r["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "{}",
        r.text
    );
}
on_both!(an_undecodable_path_is_a_problem);
