//! Elevations listed (`GET /v1/agents/{id}/elevations`) and ended early
//! (`POST /v1/agents/{id}/elevations/{elevation_id}/end`): who may, what
//! the next decision sees, the approval of a pending one, the audit
//! record, and two replicas ending the same one at once.

use serde_json::{Value, json};

use crate::common::{ADMIN_KEY, People, Resp, Server, assert_decision, patient};

const LIST: &str = "/v1/agents/ir-bot/elevations";
const DISABLE: &str = "identity.disable_user";

/// A second server on the same database, as another replica.
async fn replica(s: &Server) -> Server {
    let db = s.db_url.clone();
    let issuer = s.base.clone();
    Server::start(s.backend, move |c| {
        c.db = db;
        c.issuer = Some(issuer);
        patient(c);
    })
    .await
}

fn end_path(elevation: &str) -> String {
    format!("{LIST}/{elevation}/end")
}

/// `ir-bot` (owner `dave`, approvers `group:secops`), the cast and the
/// agent's token.
async fn ir_bot(s: &Server) -> (People, String) {
    let people = s.people().await;
    s.load("ir-bot").await;
    let token = s.agent_token("ir-bot").await;
    (people, token)
}

/// The agent asks for `identity-write`: its id and its approval's.
async fn request(s: &Server, token: &str) -> (String, String) {
    let r = s
        .post(
            LIST,
            token,
            json!({"name": "identity-write", "duration": "30m", "reason": "INC-42"}),
        )
        .await
        .expect(201);
    assert_eq!(r["state"], "pending", "{}", r.text);
    (
        r["id"].as_str().unwrap().to_owned(),
        r["approval_id"].as_str().unwrap().to_owned(),
    )
}

/// Requested and approved by `sam`: its id.
async fn active(s: &Server, people: &People, token: &str) -> String {
    let (id, approval) = request(s, token).await;
    s.approve(&approval, &people["sam"]).await.expect(200);
    id
}

fn listed(r: &Resp) -> &Vec<Value> {
    r["elevations"].as_array().unwrap()
}

async fn disable(s: &Server, token: &str) -> Value {
    s.decide(token, DISABLE, json!({"user": "u-1"})).await
}

/// Pending, then active, listed with their fields; the owner ends it, the
/// agent's very next decision is `not_granted`, the list says who and why,
/// and a second end is 409.
async fn elevation_listed_and_ended_by_the_owner(s: Server) {
    let (people, token) = ir_bot(&s).await;
    let (id, approval) = request(&s, &token).await;
    let r = s.get(LIST, &token).await.expect(200);
    let list = listed(&r);
    assert_eq!(list.len(), 1, "{}", r.text);
    let e = &list[0];
    assert_eq!(
        (e["id"].as_str(), e["name"].as_str(), e["state"].as_str()),
        (Some(id.as_str()), Some("identity-write"), Some("pending"))
    );
    assert_eq!(e["approval_id"], approval.as_str());
    assert_eq!(e["reason"], "INC-42");
    assert_eq!(e["requested_by"], "agent:ir-bot");
    assert!(e["created_at"].is_string());
    assert!(e.get("expires_at").is_none() && e.get("ended_at").is_none());
    let r = s
        .get(&format!("{LIST}?active=true"), &token)
        .await
        .expect(200);
    assert!(listed(&r).is_empty(), "{}", r.text);

    s.approve(&approval, &people["sam"]).await.expect(200);
    assert_decision(&disable(&s, &token).await, "allow", "elevated");
    let r = s
        .get(&format!("{LIST}?active=true"), &people["dave"])
        .await
        .expect(200);
    assert_eq!(listed(&r).len(), 1, "{}", r.text);
    assert_eq!(listed(&r)[0]["state"], "active");
    assert!(listed(&r)[0]["expires_at"].is_string());

    let r = s
        .post(
            &end_path(&id),
            &people["dave"],
            json!({"reason": "incident closed"}),
        )
        .await
        .expect(200);
    assert_eq!(r["id"], id.as_str());
    assert_eq!(r["state"], "ended", "{}", r.text);
    assert_eq!(r["ended_by"], "principal:dave");
    assert_eq!(r["end_reason"], "incident closed");
    assert!(r["ended_at"].is_string());
    // The very next decision no longer sees it.
    assert_decision(&disable(&s, &token).await, "deny", "not_granted");

    let r = s
        .get(&format!("{LIST}?active=true"), &token)
        .await
        .expect(200);
    assert!(listed(&r).is_empty(), "{}", r.text);
    let r = s.get(LIST, &token).await.expect(200);
    assert_eq!(listed(&r)[0]["state"], "ended", "{}", r.text);
    assert_eq!(listed(&r)[0]["ended_by"], "principal:dave");

    let again = s
        .post(&end_path(&id), ADMIN_KEY, json!({"reason": "twice"}))
        .await
        .problem(409);
    assert!(
        again["detail"].as_str().unwrap().contains("ended"),
        "{}",
        again.text
    );

    // The audit log says who ended it and why, once.
    let ends: Vec<Value> = s
        .audit(ADMIN_KEY, "agent=ir-bot&type=elevation")
        .await
        .into_iter()
        .filter(|e| e["detail"]["op"] == "end")
        .collect();
    assert_eq!(ends.len(), 1, "{ends:?}");
    assert_eq!(ends[0]["actor"], "principal:dave");
    assert_eq!(ends[0]["detail"]["elevation_id"], id.as_str());
    assert_eq!(ends[0]["detail"]["reason"], "incident closed");
    assert_eq!(ends[0]["detail"]["was"], "active");
}
on_both!(elevation_listed_and_ended_by_the_owner);

/// An agent gives up its own elevation with its own token.
async fn elevation_ended_by_the_agent_itself(s: Server) {
    let (people, token) = ir_bot(&s).await;
    let id = active(&s, &people, &token).await;
    assert_decision(&disable(&s, &token).await, "allow", "elevated");
    let r = s
        .post(&end_path(&id), &token, json!({"reason": "done early"}))
        .await
        .expect(200);
    assert_eq!(r["state"], "ended");
    assert_eq!(r["ended_by"], "agent:ir-bot");
    assert_decision(&disable(&s, &token).await, "deny", "not_granted");
    let ends = s.audit(ADMIN_KEY, "agent=ir-bot&type=elevation").await;
    assert!(
        ends.iter()
            .any(|e| e["detail"]["op"] == "end" && e["actor"] == "agent:ir-bot"),
        "{ends:?}"
    );
}
on_both!(elevation_ended_by_the_agent_itself);

/// Another owner and an outsider do not see the agent (404, listing and
/// end alike); the auditor lists but may not end (403); an admin ends.
async fn elevation_visibility_and_who_may_end(s: Server) {
    let (people, token) = ir_bot(&s).await;
    s.load("procurement-bot").await; // alice's
    let id = active(&s, &people, &token).await;
    for who in ["alice", "mallory", "frank"] {
        let r = s.get(LIST, &people[who]).await.problem(404);
        assert_eq!(r["detail"], "agent `ir-bot` not found", "{who}");
        s.post(&end_path(&id), &people[who], json!({"reason": "mine now"}))
            .await
            .problem(404);
    }
    // Another agent's own token sees nothing of ir-bot either.
    let other = s.agent_token("procurement-bot").await;
    s.get(LIST, &other).await.problem(404);
    s.post(&end_path(&id), &other, json!({"reason": "x"}))
        .await
        .problem(404);

    let r = s.get(LIST, &people["ann"]).await.expect(200);
    assert_eq!(listed(&r).len(), 1, "{}", r.text);
    s.post(&end_path(&id), &people["ann"], json!({"reason": "audit"}))
        .await
        .problem(403);
    // An approver who does not own the agent may not end it either.
    s.post(&end_path(&id), &people["sam"], json!({"reason": "x"}))
        .await
        .problem(404);
    assert_decision(&disable(&s, &token).await, "allow", "elevated");

    // Bad input: a blank reason, an unknown field, an unknown elevation.
    let r = s
        .post(&end_path(&id), &people["dave"], json!({"reason": "  "}))
        .await
        .problem(422);
    assert_eq!(r["errors"][0]["path"], "reason", "{}", r.text);
    let r = s
        .post(
            &end_path(&id),
            &people["dave"],
            json!({"reason": "x", "why": 1}),
        )
        .await;
    assert!(matches!(r.status, 400 | 422), "{}", r.text);
    s.post(
        &end_path("elv_nonesuch0000"),
        &people["dave"],
        json!({"reason": "x"}),
    )
    .await
    .problem(404);
    s.get("/v1/agents/nobody/elevations", ADMIN_KEY)
        .await
        .problem(404);

    let r = s
        .post(&end_path(&id), ADMIN_KEY, json!({"reason": "policy"}))
        .await
        .expect(200);
    assert_eq!(r["ended_by"], "principal:admin");
}
on_both!(elevation_visibility_and_who_may_end);

/// Ending a pending elevation withdraws its approval: no approver can
/// approve it afterwards, and nothing is granted.
async fn elevation_pending_end_withdraws_its_approval(s: Server) {
    let (people, token) = ir_bot(&s).await;
    let (id, approval) = request(&s, &token).await;
    let r = s
        .post(
            &end_path(&id),
            &people["dave"],
            json!({"reason": "not needed"}),
        )
        .await
        .expect(200);
    assert_eq!(r["state"], "ended");
    assert_eq!(r["approval_id"], approval.as_str());
    let a = s
        .get(&format!("/v1/approvals/{approval}"), &people["sam"])
        .await
        .expect(200);
    assert_eq!(a["state"], "cancelled", "{}", a.text);
    s.approve(&approval, &people["sam"]).await.problem(409);
    assert_decision(&disable(&s, &token).await, "deny", "not_granted");
    let r = s.get(LIST, &token).await.expect(200);
    assert_eq!(listed(&r)[0]["state"], "ended");
    let ends = s.audit(ADMIN_KEY, "agent=ir-bot&type=elevation").await;
    let end = ends
        .iter()
        .find(|e| e["detail"]["op"] == "end")
        .expect("an end event");
    assert_eq!(end["detail"]["was"], "pending");
    assert_eq!(end["detail"]["approval_withdrawn"], true);
    // A denied one is not open any more either.
    let (id, approval) = request(&s, &token).await;
    s.deny(&approval, &people["sam"]).await.expect(200);
    let r = s
        .post(&end_path(&id), &people["dave"], json!({"reason": "x"}))
        .await
        .problem(409);
    assert!(
        r["detail"].as_str().unwrap().contains("denied"),
        "{}",
        r.text
    );
}
on_both!(elevation_pending_end_withdraws_its_approval);

/// Two replicas end the same elevation at once: exactly one succeeds, the
/// others are 409, and one end is audited.
async fn elevation_end_races_across_replicas(s: Server) {
    let (people, token) = ir_bot(&s).await;
    let b = replica(&s).await;
    let id = active(&s, &people, &token).await;
    let path = end_path(&id);
    let mut set = tokio::task::JoinSet::new();
    for i in 0..6 {
        let server = if i % 2 == 0 { &s } else { &b };
        let req = server
            .req(reqwest::Method::POST, &path, &people["dave"])
            .json(&json!({"reason": format!("end {i}")}));
        set.spawn(async move {
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.text().await.unwrap())
        });
    }
    let answers = set.join_all().await;
    let ok = answers.iter().filter(|(st, _)| *st == 200).count();
    assert_eq!(ok, 1, "{answers:?}");
    assert!(
        answers.iter().all(|(st, _)| matches!(st, 200 | 409)),
        "{answers:?}"
    );
    // Neither replica sees it any more.
    assert_decision(&disable(&s, &token).await, "deny", "not_granted");
    assert_decision(&disable(&b, &token).await, "deny", "not_granted");
    let ends = s
        .audit(ADMIN_KEY, "agent=ir-bot&type=elevation")
        .await
        .into_iter()
        .filter(|e| e["detail"]["op"] == "end")
        .count();
    assert_eq!(ends, 1);
}
on_both!(elevation_end_races_across_replicas);
