//! Posture findings: a sync opens what is new, refreshes what stays and
//! resolves what is gone, and of two replicas syncing at once exactly one
//! reports each opening.

use bridle_core::id::AgentId;
use bridle_store::{FindingStore, SeenFinding, Store};
use jiff::{SignedDuration, Timestamp};

use crate::{Db, id};

fn seen(code: &str, subject: &str, detail: &str) -> SeenFinding {
    SeenFinding {
        code: code.into(),
        subject: subject.into(),
        severity: "high".into(),
        detail: detail.into(),
        evidence: serde_json::json!({"detail": detail}),
    }
}

async fn findings_open_refresh_resolve_and_reopen(db: Db) {
    let s = &db.store;
    let agent: AgentId = id("payer");
    let t0 = Timestamp::now();
    let at = |mins: i64| t0 + SignedDuration::from_mins(mins);
    let wild = seen("wildcard_grant", "*", "grants *");
    let stale = seen("stale_client_secret", "client-1", "old secret");

    let first = s
        .sync_findings(&agent, &[wild.clone(), stale.clone()], at(0))
        .await
        .unwrap();
    assert_eq!(first.opened.len(), 2);
    assert!(first.resolved.is_empty());

    // Seen again: nothing opens, the detail is refreshed, opened_at kept.
    let refreshed = seen("wildcard_grant", "*", "still grants *");
    let again = s
        .sync_findings(&agent, &[refreshed, stale.clone()], at(5))
        .await
        .unwrap();
    assert!(again.opened.is_empty() && again.resolved.is_empty());
    let open = s.open_findings(Some(&agent)).await.unwrap();
    let w = open.iter().find(|f| f.code == "wildcard_grant").unwrap();
    assert_eq!(w.detail, "still grants *");
    assert_eq!(w.opened_at, first.opened[0].opened_at);
    assert!(w.last_seen_at > w.opened_at);

    // Gone: resolved once, and a second sync resolves nothing more.
    let gone = s
        .sync_findings(&agent, std::slice::from_ref(&stale), at(10))
        .await
        .unwrap();
    assert_eq!(gone.resolved.len(), 1);
    assert_eq!(gone.resolved[0].code, "wildcard_grant");
    assert!(gone.resolved[0].resolved_at.is_some());
    let still = s
        .sync_findings(&agent, std::slice::from_ref(&stale), at(11))
        .await
        .unwrap();
    assert!(still.resolved.is_empty() && still.opened.is_empty());
    assert_eq!(s.open_findings(Some(&agent)).await.unwrap().len(), 1);

    // Back: reopened with a new opened_at.
    let back = s
        .sync_findings(&agent, &[wild.clone(), stale.clone()], at(20))
        .await
        .unwrap();
    assert_eq!(back.opened.len(), 1);
    assert!(back.opened[0].opened_at > first.opened[0].opened_at);

    // An opening that could not be audited is taken back, and opens again.
    s.unopen_finding(&back.opened[0]).await.unwrap();
    let retried = s
        .sync_findings(&agent, &[wild.clone(), stale.clone()], at(21))
        .await
        .unwrap();
    assert_eq!(retried.opened.len(), 1);
    // A resolution that could not be audited is taken back, and resolves again.
    let resolved = s.sync_findings(&agent, &[], at(30)).await.unwrap();
    assert_eq!(resolved.resolved.len(), 2);
    for f in &resolved.resolved {
        s.unresolve_finding(f).await.unwrap();
    }
    assert_eq!(s.open_findings(None).await.unwrap().len(), 2);
    assert_eq!(
        s.sync_findings(&agent, &[], at(31))
            .await
            .unwrap()
            .resolved
            .len(),
        2
    );
    assert!(s.open_findings(None).await.unwrap().is_empty());
}
on_both!(findings_open_refresh_resolve_and_reopen);

/// Two stores on one database (two replicas) sync the same findings at
/// once, many times over: each opening and each resolution is reported by
/// exactly one of them.
async fn findings_are_reported_once_across_replicas(db: Db) {
    let other = Store::connect(&db.url).await.unwrap();
    let agent: AgentId = id("payer");
    let now = Timestamp::now();
    let findings = [
        seen("wildcard_grant", "*", "grants *"),
        seen("auth_failures", "", "x"),
    ];
    let mut opened = 0;
    let mut resolved = 0;
    for round in 0..10 {
        let t = now + SignedDuration::from_mins(round);
        let present: &[SeenFinding] = if round % 2 == 0 { &findings } else { &[] };
        let (a, b) = tokio::join!(
            db.store.sync_findings(&agent, present, t),
            other.sync_findings(&agent, present, t)
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        opened += a.opened.len() + b.opened.len();
        resolved += a.resolved.len() + b.resolved.len();
    }
    assert_eq!(opened, 10, "5 rounds open 2 findings each");
    assert_eq!(resolved, 10, "5 rounds resolve 2 findings each");
    other.close().await;
}
on_both!(findings_are_reported_once_across_replicas);
