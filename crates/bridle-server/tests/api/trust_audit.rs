//! Audit integrity against a hostile client and a hostile database: a value
//! that does not survive a JSON round trip cannot poison the chain; every
//! altered record is listed; a log cut short, or rewritten with every later
//! hash and the head recomputed, is caught by the signed checkpoints; the
//! checkpoints verify with the JWKS key and survive key rotation; a file
//! witness receives each one.

use serde_json::{Value, json};

use crate::common::{ADMIN_KEY, Backend, Server, eventually, sql, sql_text};

const FLOAT: &str = "7.370437700706684e+208";

/// Its owner, the agent and `n` harmless decisions; the agent's token.
async fn activity(s: &Server, n: usize) -> String {
    s.principal("alice", &[], &[]).await;
    decisions(s, n).await
}

async fn decisions(s: &Server, n: usize) -> String {
    s.load("procurement-bot").await;
    let token = s.agent_token("procurement-bot").await;
    for i in 0..n {
        s.decide(&token, "procurement.list_vendors", json!({"page": i}))
            .await;
    }
    token
}

async fn verify(s: &Server) -> crate::common::Resp {
    s.get("/v1/audit/verify", ADMIN_KEY).await.expect(200)
}

fn kinds(v: &Value) -> Vec<(u64, String)> {
    v["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["seq"].as_u64().unwrap(),
                p["kind"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn seqs(v: &Value) -> Vec<u64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_u64().unwrap())
        .collect()
}

async fn checkpoints(s: &Server, query: &str) -> Vec<Value> {
    let r = s
        .get(&format!("/v1/audit/checkpoints?{query}"), ADMIN_KEY)
        .await
        .expect(200);
    r["checkpoints"].as_array().unwrap().clone()
}

/// The last `seq`, once a checkpoint covers it.
async fn settled(s: &Server) -> u64 {
    let head = s.audit(ADMIN_KEY, "").await.last().unwrap()["seq"]
        .as_u64()
        .unwrap();
    eventually(20, "a checkpoint of the head", || async {
        checkpoints(s, "")
            .await
            .last()
            .is_some_and(|c| c["seq"] == head)
    })
    .await;
    head
}

async fn column(s: &Server, col: &str, seq: u64) -> String {
    sql_text(
        &s.db_url,
        s.backend,
        &format!("SELECT {col} FROM audit_events WHERE seq = {seq}"),
    )
    .await
}

fn quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// Change who acted in one stored record, behind Bridle's back.
async fn alter(s: &Server, seq: u64) {
    let body = column(s, "body", seq).await;
    let mut v: Value = serde_json::from_str(&body).unwrap();
    v["actor"] = "principal:nobody".into();
    let text = serde_json::to_string(&v).unwrap();
    sql(
        &s.db_url,
        s.backend,
        &format!(
            "UPDATE audit_events SET body = {} WHERE seq = {seq}",
            quoted(&text)
        ),
    )
    .await;
}

/// As an attacker holding the database would: alter `seq`, recompute the
/// hash of it and of every later record, and the stored head.
async fn rewrite_and_recompute(s: &Server, seq: u64, head: u64) {
    alter(s, seq).await;
    let mut prev = column(s, "prev_hash", seq).await;
    for n in seq..=head {
        let body = column(s, "body", n).await;
        let hash = bridle_core::audit::hash_exact(n, &body, &prev);
        sql(
            &s.db_url,
            s.backend,
            &format!(
                "UPDATE audit_events SET prev_hash = {}, hash = {} WHERE seq = {n}",
                quoted(&prev),
                quoted(&hash)
            ),
        )
        .await;
        prev = hash;
    }
    sql(
        &s.db_url,
        s.backend,
        &format!(
            "UPDATE audit_head SET hash = {} WHERE id = 1",
            quoted(&prev)
        ),
    )
    .await;
}

async fn a_float_that_does_not_round_trip_cannot_poison_the_chain(s: Server) {
    let token = activity(&s, 0).await;
    // Sent as text: the exact digits a client chose.
    let raw = format!(r#"{{"action": "procurement.list_vendors", "args": {{"value": {FLOAT}}}}}"#);
    let req = s
        .req(reqwest::Method::POST, "/v1/decisions", &token)
        .header("content-type", "application/json")
        .body(raw);
    s.send(req).await.expect(200);
    let v = verify(&s).await;
    assert_eq!(v["ok"], true, "{}", v.text);
    assert_eq!(seqs(&v["broken"]), Vec::<u64>::new());

    // The value stored is the value sent.
    let decisions = s.audit(ADMIN_KEY, "type=decision").await;
    let float_seq = decisions[0]["seq"].as_u64().unwrap();
    let sent: f64 = FLOAT.parse().unwrap();
    assert_eq!(decisions[0]["args"]["value"].as_f64(), Some(sent));

    // Tampering after it is still seen, and only there.
    s.decide(&token, "procurement.list_vendors", json!({}))
        .await;
    s.decide(&token, "procurement.list_vendors", json!({}))
        .await;
    let target = float_seq + 1;
    alter(&s, target).await;
    let v = verify(&s).await;
    assert_eq!(v["ok"], false, "{}", v.text);
    assert_eq!(seqs(&v["broken"]), vec![target], "{}", v.text);
    assert_eq!(v["first_bad_seq"], target);
}
on_both!(a_float_that_does_not_round_trip_cannot_poison_the_chain);

async fn every_altered_record_is_listed(s: Server) {
    activity(&s, 6).await;
    let v = verify(&s).await;
    assert_eq!(v["ok"], true, "{}", v.text);
    let total = v["events"].as_u64().unwrap();
    let targets = [3, 7, total - 1];
    for seq in targets {
        alter(&s, seq).await;
    }
    let v = verify(&s).await;
    assert_eq!(v["ok"], false, "{}", v.text);
    assert_eq!(seqs(&v["broken"]), targets.to_vec(), "{}", v.text);
    assert_eq!(v["first_bad_seq"], 3);
    assert!(
        kinds(&v.json).iter().all(|(_, k)| k == "altered"),
        "{}",
        v.text
    );
    assert_eq!(v["events"], total);
}
on_both!(every_altered_record_is_listed);

async fn deleting_the_last_rows_is_detected(s: Server) {
    activity(&s, 4).await;
    let head = settled(&s).await;
    // Delete the last two records and point the stored head at what is left.
    let keep = head - 2;
    let kept_hash = column(&s, "hash", keep).await;
    sql(
        &s.db_url,
        s.backend,
        &format!("DELETE FROM audit_events WHERE seq > {keep}"),
    )
    .await;
    sql(
        &s.db_url,
        s.backend,
        &format!(
            "UPDATE audit_head SET seq = {keep}, hash = {} WHERE id = 1",
            quoted(&kept_hash)
        ),
    )
    .await;
    let v = verify(&s).await;
    assert_eq!(v["ok"], false, "{}", v.text);
    assert_eq!(seqs(&v["broken"]), vec![keep + 1], "{}", v.text);
    assert_eq!(kinds(&v.json), vec![(keep + 1, "truncated".to_owned())]);
    assert_eq!(v["checkpoint_seq"], head);
}
on_both!(
    deleting_the_last_rows_is_detected,
    |c: &mut bridle_server::Config| {
        c.audit.checkpoint_every = 1;
    }
);

async fn a_recomputed_chain_is_detected(s: Server) {
    activity(&s, 4).await;
    let head = settled(&s).await;
    let target = head - 3;
    rewrite_and_recompute(&s, target, head).await;
    let v = verify(&s).await;
    assert_eq!(v["ok"], false, "{}", v.text);
    // Every checkpoint from the rewritten record on disagrees; the chain
    // itself is consistent, so nothing else is reported.
    let problems = kinds(&v.json);
    assert!(
        problems
            .iter()
            .all(|(seq, k)| k == "checkpoint_mismatch" && *seq >= target),
        "{}",
        v.text
    );
    assert!(
        problems.contains(&(head, "checkpoint_mismatch".to_owned())),
        "{}",
        v.text
    );
}
on_both!(
    a_recomputed_chain_is_detected,
    |c: &mut bridle_server::Config| {
        c.audit.checkpoint_every = 1;
    }
);

fn jwks_key(jwks: &Value, kid: &str) -> Option<jsonwebtoken::DecodingKey> {
    let jwk = jwks["keys"].as_array()?.iter().find(|k| k["kid"] == kid)?;
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(jwk.clone()).ok()?;
    jsonwebtoken::DecodingKey::from_jwk(&jwk).ok()
}

fn kid_of(jws: &str) -> String {
    jsonwebtoken::decode_header(jws).unwrap().kid.unwrap()
}

async fn the_checkpoint_jws_verifies_with_the_jwks_key(s: Server) {
    let auditor = s.principal("ann", &["auditor"], &[]).await;
    let owner = s.principal("alice", &[], &[]).await;
    decisions(&s, 3).await;
    let head = settled(&s).await;
    let jwks = s.get("/.well-known/jwks.json", "").await.expect(200).json;
    let all = checkpoints(&s, "").await;
    assert!(!all.is_empty());
    let events = s.audit(ADMIN_KEY, "").await;
    for cp in &all {
        let jws = cp["jws"].as_str().unwrap();
        let header = jsonwebtoken::decode_header(jws).unwrap();
        assert_eq!(header.alg, jsonwebtoken::Algorithm::EdDSA);
        let key = jwks_key(&jwks, &kid_of(jws)).expect("the checkpoint's kid is in JWKS");
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.validate_aud = false;
        let payload = jsonwebtoken::decode::<Value>(jws, &key, &validation)
            .unwrap()
            .claims;
        assert_eq!(payload["seq"], cp["seq"]);
        assert_eq!(payload["head"], cp["head"]);
        assert_eq!(payload["time"], cp["time"]);
        let seq = cp["seq"].as_u64().unwrap();
        assert_eq!(events[seq as usize - 1]["hash"], cp["head"], "{cp}");
    }
    // Filters and who may read them.
    let later = checkpoints(&s, &format!("after={}", head - 1)).await;
    assert_eq!(later.len(), 1);
    assert_eq!(later[0]["seq"], head);
    assert_eq!(checkpoints(&s, "limit=1").await.len(), 1);
    s.get("/v1/audit/checkpoints?since=yesterday", ADMIN_KEY)
        .await
        .problem(422);
    s.get("/v1/audit/checkpoints", &auditor).await.expect(200);
    s.get("/v1/audit/checkpoints", &owner).await.problem(403);
    s.get("/v1/audit/checkpoints", "").await.problem(401);
    let v = verify(&s).await;
    assert_eq!(v["ok"], true, "{}", v.text);
    assert_eq!(v["checkpoint_seq"], head);
}
on_both!(
    the_checkpoint_jws_verifies_with_the_jwks_key,
    |c: &mut bridle_server::Config| {
        c.audit.checkpoint_every = 1;
    }
);

async fn checkpoints_survive_a_key_rotation(s: Server) {
    let token = activity(&s, 2).await;
    settled(&s).await;
    let old = kid_of(checkpoints(&s, "").await[0]["jws"].as_str().unwrap());
    s.post("/v1/keys/rotate", ADMIN_KEY, json!({}))
        .await
        .expect(200);
    s.decide(&token, "procurement.list_vendors", json!({}))
        .await;
    let head = settled(&s).await;
    let latest = checkpoints(&s, "").await;
    assert_ne!(
        kid_of(latest.last().unwrap()["jws"].as_str().unwrap()),
        old,
        "the newest checkpoint is signed with the new key"
    );
    // Long after: the old key has left JWKS, its checkpoints still verify.
    sql(
        &s.db_url,
        s.backend,
        &format!(
            "UPDATE signing_keys SET retired_at = '2000-01-01T00:00:00.000000Z' WHERE kid = {}",
            quoted(&old)
        ),
    )
    .await;
    s.post("/v1/keys/rotate", ADMIN_KEY, json!({}))
        .await
        .expect(200);
    let jwks = s.get("/.well-known/jwks.json", "").await.expect(200).json;
    assert!(jwks_key(&jwks, &old).is_none(), "{jwks}");
    let v = verify(&s).await;
    assert_eq!(v["ok"], true, "{}", v.text);
    assert!(v["checkpoint_seq"].as_u64().unwrap() >= head, "{}", v.text);
    // A checkpoint whose signature is not the server's is refused.
    let forged = {
        let cp = &checkpoints(&s, "").await[0];
        let jws = cp["jws"].as_str().unwrap();
        let (rest, sig) = jws.rsplit_once('.').unwrap();
        let flipped = if sig.starts_with('A') { "B" } else { "A" };
        format!("{rest}.{flipped}{}", sig.get(1..).unwrap())
    };
    let first = checkpoints(&s, "").await[0]["seq"].as_u64().unwrap();
    sql(
        &s.db_url,
        s.backend,
        &format!(
            "UPDATE audit_checkpoints SET jws = {} WHERE seq = {first}",
            quoted(&forged)
        ),
    )
    .await;
    let v = verify(&s).await;
    assert_eq!(v["ok"], false, "{}", v.text);
    assert!(
        kinds(&v.json).contains(&(first, "bad_checkpoint".to_owned())),
        "{}",
        v.text
    );
}
on_both!(
    checkpoints_survive_a_key_rotation,
    |c: &mut bridle_server::Config| {
        c.audit.checkpoint_every = 1;
    }
);

/// A file witness gets one JSON line per checkpoint, the same as the API's.
async fn a_file_witness_receives_every_checkpoint(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("witness.jsonl");
    let witness = path.display().to_string();
    let s = Server::start(backend, move |c| {
        c.audit.checkpoint_every = 1;
        c.audit.witnesses = vec![witness];
    })
    .await;
    activity(&s, 2).await;
    let head = settled(&s).await;
    let api = checkpoints(&s, "").await;
    eventually(20, "the witness line of the head", || async {
        std::fs::read_to_string(&path).is_ok_and(|t| {
            t.lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .any(|l| l["seq"] == head)
        })
    })
    .await;
    let lines: Vec<Value> = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines, api);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_witness_receives_every_checkpoint_sqlite() {
    a_file_witness_receives_every_checkpoint(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_witness_receives_every_checkpoint_postgres() {
    a_file_witness_receives_every_checkpoint(Backend::Postgres).await;
}
