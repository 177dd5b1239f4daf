use std::net::IpAddr;

use axum::http::HeaderMap;

use super::*;

fn origin(ip: [u8; 4]) -> Origin {
    Origin {
        source: Source::new(IpAddr::from(ip)),
        endpoint: "/oauth/token".into(),
    }
}

fn config() -> ThrottleConfig {
    ThrottleConfig {
        max_failures: 3,
        source_max_failures: 10,
        window_secs: 60,
        lockout_secs: 10,
        max_lockout_secs: 35,
        max_entries: 4,
        trusted_proxies: Vec::new(),
    }
}

fn attempt<'a>(id: &'a str, origin: &'a Origin) -> Attempt<'a> {
    Attempt {
        kind: Kind::Client,
        identifier: id,
        origin,
    }
}

#[test]
fn a_pair_locks_after_max_failures_with_doubling_lockouts() {
    let t = Throttle::new(config());
    let (o, at) = (origin([10, 0, 0, 1]), Timestamp::now());
    let a = attempt("cl_a", &o);
    let start = Instant::now();
    let mut now = start;
    let mut lengths = Vec::new();
    for _ in 0..4 {
        for i in 0..3 {
            assert!(t.check(&a, now, at).is_ok(), "attempt {i} refused");
            let reports = t.failure(&a, Some("cl_a"), None, now, at);
            if let Some(ReportState::Locked { retry_after, .. }) = reports.last().map(|r| r.state) {
                lengths.push(retry_after);
            }
        }
        let refused = t.check(&a, now, at).unwrap_err();
        now += Duration::from_secs(refused.retry_after);
        assert!(t.check(&a, now, at).is_ok());
    }
    assert_eq!(lengths, [10, 20, 35, 35]);
    // A success forgets the back-off.
    t.success(&a);
    for _ in 0..3 {
        t.failure(&a, Some("cl_a"), None, now, at);
    }
    assert_eq!(t.check(&a, now, at).unwrap_err().retry_after, 10);
}

#[test]
fn another_source_is_not_locked_and_failures_are_reported_once_then_summarised() {
    let t = Throttle::new(config());
    let (bad, good, at) = (
        origin([10, 0, 0, 1]),
        origin([10, 0, 0, 2]),
        Timestamp::now(),
    );
    let now = Instant::now();
    let mut events = Vec::new();
    for _ in 0..3 {
        events.extend(t.failure(&attempt("cl_a", &bad), Some("cl_a"), Some("bot"), now, at));
    }
    for _ in 0..5 {
        assert!(t.check(&attempt("cl_a", &bad), now, at).is_err());
    }
    assert!(t.check(&attempt("cl_a", &good), now, at).is_ok());
    let states: Vec<_> = events.iter().map(|r| (r.state, r.failures)).collect();
    assert_eq!(
        states,
        [
            (ReportState::Failing, 1),
            (
                ReportState::Locked {
                    what: "credential",
                    retry_after: 10
                },
                2
            )
        ]
    );
    assert!(t.flush(now + Duration::from_secs(59)).is_empty());
    let summary = t.flush(now + Duration::from_secs(60));
    assert_eq!(summary.len(), 1);
    assert_eq!((summary[0].failures, summary[0].throttled), (0, 5));
    assert_eq!(summary[0].agent.as_deref(), Some("bot"));
    // Quiet for a window: forgotten, and the next failure is reported at once.
    assert!(t.flush(now + Duration::from_secs(200)).is_empty());
    assert_eq!(t.sizes(), (0, 0, 0));
}

#[test]
fn a_source_locks_for_every_credential() {
    let t = Throttle::new(config());
    let (o, at, now) = (origin([10, 0, 0, 1]), Timestamp::now(), Instant::now());
    let ids: Vec<String> = (0..10).map(|i| format!("cl_{i}")).collect();
    let mut reports = Vec::new();
    for id in &ids {
        reports.extend(t.failure(&attempt(id, &o), None, None, now, at));
    }
    assert!(t.check(&attempt("cl_fresh", &o), now, at).is_err());
    // Unknown clients are gathered per source: one event, then the lock.
    assert_eq!(reports.len(), 2, "{reports:?}");
    assert!(reports.iter().any(|r| r.presented_more));
}

#[test]
fn the_tables_are_bounded_and_evicted_failures_are_still_reported() {
    let t = Throttle::new(config());
    let (at, now) = (Timestamp::now(), Instant::now());
    let mut reported = 0;
    for i in 0..50u8 {
        let o = origin([10, 0, 1, i]);
        let a = attempt("cl_a", &o);
        for _ in 0..2 {
            for r in t.failure(&a, Some("cl_a"), None, now, at) {
                reported += r.failures;
            }
        }
    }
    let (pairs, sources, reports) = t.sizes();
    assert!(pairs <= 4 && sources <= 4 && reports <= 4);
    for r in t.flush(now) {
        reported += r.failures;
    }
    let pending: u64 = t
        .flush(now + Duration::from_secs(60))
        .iter()
        .map(|r| r.failures)
        .sum();
    assert_eq!(reported + pending, 100);
}

#[test]
fn forwarded_for_counts_only_behind_a_trusted_proxy() {
    let proxy: IpAddr = "10.0.0.9".parse().unwrap();
    let mut headers = HeaderMap::new();
    headers.insert("x-forwarded-for", "6.6.6.6, 1.2.3.4".parse().unwrap());
    assert_eq!(client_address(proxy, &headers, &[]), proxy);
    assert_eq!(
        client_address(proxy, &headers, &[proxy]),
        "1.2.3.4".parse::<IpAddr>().unwrap()
    );
    headers.insert("x-forwarded-for", "1.2.3.4, nonsense".parse().unwrap());
    assert_eq!(client_address(proxy, &headers, &[proxy]), proxy);
}

#[test]
fn key_prefixes_never_show_much_of_a_key() {
    assert_eq!(
        key_prefix("bk_abcdefghijklmnopqrstuvwxyz0123456789"),
        "bk_abcde…"
    );
    assert_eq!(key_prefix("hunter2"), "h…");
    assert_eq!(key_prefix("abc"), "…");
    assert_eq!(
        Source::new("2001:db8:1:2:3:4:5:6".parse().unwrap()).to_string(),
        "2001:db8:1:2::/64"
    );
}
