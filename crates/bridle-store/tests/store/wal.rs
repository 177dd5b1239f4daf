//! SQLite's write-ahead log: no connection copies it back into the
//! database in a commit; the audit writer does, between batches.

use bridle_store::AuditLog;

/// While the audit log is written, its records reach the database file
/// itself, not only the WAL (which would otherwise grow until the last
/// connection closed).
#[tokio::test]
async fn the_log_reaches_the_database_file_while_it_is_written() {
    let db = crate::sqlite().await;
    let path = db.url.strip_prefix("sqlite://").unwrap().to_owned();
    let size = || std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    let before = size();
    let log = AuditLog::start(db.store.clone());
    for round in 0..20 {
        let appends: Vec<_> = (0..100)
            .map(|i| {
                let log = log.clone();
                tokio::spawn(async move { log.append(crate::event(round * 100 + i)).await })
            })
            .collect();
        for a in appends {
            a.await.unwrap().unwrap();
        }
    }
    // 2,000 records of a few hundred bytes each: half a megabyte at least.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while size() < before + 500_000 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        size() >= before + 500_000,
        "database file {before} -> {} bytes",
        size()
    );
    let v = bridle_store::AuditRead::verify_audit(&db.store)
        .await
        .unwrap();
    assert!(v.ok && v.events == 2_000, "{v:?}");
}

/// Under appends without a pause the WAL is started over after each
/// checkpoint: it holds the last fraction of a second of writes, not the
/// whole log (which, on a small disk, would fill it).
#[tokio::test]
async fn the_wal_starts_over_under_continuous_appends() {
    let db = crate::sqlite().await;
    let path = db.url.strip_prefix("sqlite://").unwrap().to_owned();
    let size = |p: &str| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let log = AuditLog::start(db.store.clone());
    let started = std::time::Instant::now();
    let mut n = 0;
    // At least 10,000 records, and for at least two seconds.
    while n < 10_000 || started.elapsed() < std::time::Duration::from_secs(2) {
        let appends: Vec<_> = (0..200)
            .map(|i| {
                let log = log.clone();
                tokio::spawn(async move { log.append(crate::event(n + i)).await })
            })
            .collect();
        for a in appends {
            a.await.unwrap().unwrap();
        }
        n += 200;
    }
    let (wal, file) = (size(&format!("{path}-wal")), size(&path));
    assert!(
        wal < file / 2,
        "{n} records: WAL {wal} bytes, database file {file} bytes"
    );
}
