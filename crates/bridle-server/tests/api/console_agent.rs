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

/// The inventory shows 50 agents a page, keeps the search across pages,
/// and says how many match.
async fn the_inventory_pages(s: Server) {
    s.principal("alice", &[], &[]).await;
    s.principal("dave", &[], &["secops"]).await;
    for i in 0..53 {
        let yaml = format!(
            "agent: fleet-{i:02}\nowner: alice\npurpose: Page {i}\nenvironment: dev\n\
             expires: 2027-12-31\ntools:\n  - name: tickets.read\n"
        );
        s.apply(ADMIN_KEY, &yaml).await.expect(201);
    }
    s.load("ir-bot").await;
    let (admin, _) = sign_in(&s, ADMIN_KEY).await;
    let (_, _, first) = get(&s, &admin, "/console/?q=fleet").await;
    assert!(first.contains("1–50 of 53 agents"), "{first}");
    assert!(first.contains("fleet-00") && first.contains("fleet-49"));
    assert!(!first.contains("fleet-50") && !first.contains("Previous page"));
    assert!(
        first.contains("href=\"/console/?page=2&#38;q=fleet\""),
        "{first}"
    );
    let (status, _, second) = get(&s, &admin, "/console/?page=2&q=fleet").await;
    assert_eq!(status, 200);
    assert!(second.contains("51–53 of 53 agents"), "{second}");
    assert!(second.contains("fleet-52") && !second.contains("fleet-49"));
    assert!(second.contains("Previous page") && !second.contains("Next page"));
    assert!(!second.contains("ir-bot"), "the search holds on page 2");
    // Past the last page is the last page; a page that is not a number is a 400.
    let (_, _, past) = get(&s, &admin, "/console/?page=9&q=fleet").await;
    assert!(past.contains("51–53 of 53 agents"));
    let (status, _, _) = get(&s, &admin, "/console/?page=two").await;
    assert_eq!(status, 400);
    let (_, _, all) = get(&s, &admin, "/console/?q=ir-bot").await;
    assert!(
        all.contains("1 agents") || all.contains(">1 agent"),
        "{all}"
    );
}
on_both!(the_inventory_pages);

/// Each principal's charts are its own agents' figures, even drawn once a
/// minute: someone who sees no agent gets the empty chart.
async fn charts_are_per_principal(s: Server) {
    let people = s.people().await;
    s.load("procurement-bot").await;
    let token = s.agent_token("procurement-bot").await;
    let small = json!({"vendor": "acme", "amount": 10});
    s.decide(&token, "procurement.create_purchase_request", small)
        .await;
    let (alice, _) = sign_in(&s, &people["alice"]).await;
    let (mallory, _) = sign_in(&s, &people["mallory"]).await;
    for name in ["activity", "outcomes"] {
        let path = format!("/console/charts/{name}.svg");
        let (status, headers, mine) = get(&s, &alice, &path).await;
        assert_eq!(status, 200);
        assert_eq!(headers["content-type"], "image/svg+xml");
        assert!(!mine.contains("Nothing to show"), "{mine}");
        let (_, _, theirs) = get(&s, &mallory, &path).await;
        assert!(theirs.contains("Nothing to show"), "{theirs}");
        // Drawn again within the minute: the same document.
        assert_eq!(get(&s, &alice, &path).await.2, mine);
    }
    assert_eq!(get(&s, &alice, "/console/charts/secrets.svg").await.0, 404);
}
on_both!(charts_are_per_principal);
