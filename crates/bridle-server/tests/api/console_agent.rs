//! The console's agent page says what the agent may do in words (each
//! constraint, approval rule, limit and elevation) and lets its owner end
//! an elevation early, through the API's service and proof: an auditor's
//! direct POST and a POST without the CSRF token change nothing.

use serde_json::json;

use crate::common::{ADMIN_KEY, Server, assert_decision};
use crate::console::{csrf, get, post, sign_in};

async fn permissions_in_words(s: Server) {
    let people = s.people().await;
    s.load("procurement-bot").await;
    let (alice, _) = sign_in(&s, &people["alice"]).await;
    let (status, _, page) = get(&s, &alice, "/console/agents/procurement-bot").await;
    assert_eq!(status, 200);
    for words in [
        "vendor: one of [acme, globex, initech]",
        "amount: at least 1",
        "amount: at most 100000",
        "1 of group:finance-approvers when context.args.amount &#62; 5000",
        "a request expires after 24h",
        "At most 120 actions per 1m",
        "The sum of amount at most 50000 per 24h; past it, denied",
        "<code>procurement.approve_*</code>",
        "Delegates to no agent",
    ] {
        assert!(page.contains(words), "`{words}` is missing from\n{page}");
    }
    assert!(!page.contains("{&quot;"), "no grant is shown as raw JSON");
}
on_both!(permissions_in_words);

async fn the_owner_ends_an_elevation(s: Server) {
    let people = s.people().await;
    s.load("ir-bot").await;
    let agent = s.agent_token("ir-bot").await;
    let path = "/console/agents/ir-bot";
    let (dave, _) = sign_in(&s, &people["dave"]).await;
    let (_, _, page) = get(&s, &dave, path).await;
    assert!(
        page.contains("identity.disable_user, identity.reset_credentials")
            && page.contains("approved by group:secops"),
        "the elevation the manifest declares: {page}"
    );
    assert!(page.contains("No elevation is active or pending."));

    let r = s
        .post(
            "/v1/agents/ir-bot/elevations",
            &agent,
            json!({"name": "identity-write", "duration": "30m", "reason": "INC-42"}),
        )
        .await
        .expect(201);
    let id = r["id"].as_str().unwrap().to_owned();
    s.approve(r["approval_id"].as_str().unwrap(), &people["sam"])
        .await
        .expect(200);
    assert_decision(
        &s.decide(&agent, "identity.disable_user", json!({})).await,
        "allow",
        "elevated",
    );

    let (_, _, page) = get(&s, &dave, path).await;
    assert!(
        page.contains("INC-42") && page.contains(">active<") && page.contains(">End<"),
        "the active elevation with its reason and an End button: {page}"
    );
    let token = csrf(&page);
    let end = format!("{path}/elevations/{id}/end");

    // The auditor sees it, gets no button, and a direct POST is refused.
    let (ann, _) = sign_in(&s, &people["ann"]).await;
    let (_, _, seen) = get(&s, &ann, path).await;
    assert!(seen.contains("INC-42") && !seen.contains(">End<"));
    let ann_form = [("csrf", csrf(&seen)), ("reason", "t".to_owned())];
    let ann_form: Vec<(&str, &str)> = ann_form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(post(&s, &ann, &end, &ann_form).await, 403);
    // No CSRF token, or no reason: refused.
    assert_eq!(post(&s, &dave, &end, &[("reason", "done")]).await, 403);
    assert_eq!(
        post(&s, &dave, &end, &[("csrf", token.as_str())]).await,
        422
    );
    assert_decision(
        &s.decide(&agent, "identity.disable_user", json!({})).await,
        "allow",
        "elevated",
    );

    let form = [("csrf", token.as_str()), ("reason", "contained")];
    assert_eq!(post(&s, &dave, &end, &form).await, 303);
    let d = s.decide(&agent, "identity.disable_user", json!({})).await;
    assert_eq!(d["decision"], "deny", "{d}");
    let list = s
        .get("/v1/agents/ir-bot/elevations", ADMIN_KEY)
        .await
        .expect(200);
    let e = &list["elevations"][0];
    assert_eq!(e["state"], "ended");
    assert_eq!(e["end_reason"], "contained");
    assert_eq!(e["ended_by"], "principal:dave");
    let (_, _, page) = get(&s, &dave, path).await;
    assert!(page.contains("No elevation is active or pending."));
    // Twice is a conflict, shown as a page.
    assert_eq!(post(&s, &dave, &end, &form).await, 409);
}
on_both!(the_owner_ends_an_elevation);
