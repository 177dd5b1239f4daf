//! `bridle agent usage` and `bridle check --replay` as an operator runs
//! them: a real server records an agent's decisions in a SQLite file, then
//! the CLI shows the usage through the API and replays the history offline,
//! on the database file itself, against a narrower candidate.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test fails by panicking: an unexpected shape should abort it loudly"
)]

use std::process::Command;

use bridle_server::{Config, Secret};
use serde_json::{Value, json};

const ADMIN: &str = "bk_replay-admin-2c41f0a9d8e7b6";
const KEK: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

fn bridle(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_bridle"))
        .args(args)
        .env_remove("BRIDLE_URL")
        .env_remove("BRIDLE_TOKEN")
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn call(req: reqwest::RequestBuilder) -> Value {
    let r = req.send().await.unwrap();
    let status = r.status();
    let v: Value = r.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "{status}: {v}");
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_and_an_offline_replay_of_a_recorded_history() {
    bridle_server::install_tls_provider();
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/bridle.db", dir.path().display());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let mut config = Config {
        listen: listener.local_addr().unwrap(),
        db: db.clone(),
        issuer: Some(base.clone()),
        admin_token: Some(Secret::new(ADMIN)),
        key_encryption_key: Some(Secret::new(KEK)),
        ..Config::default()
    };
    config.change_control.environments.clear();
    let started = bridle_server::start(config).await.unwrap();
    tokio::spawn(bridle_server::serve_on(listener, started.state));
    let http = reqwest::Client::new();
    let url = |p: &str| format!("{base}{p}");

    call(
        http.post(url("/v1/principals"))
            .bearer_auth(ADMIN)
            .json(&json!({"id": "alice"})),
    )
    .await;
    let manifest = include_str!("../../../examples/procurement-bot.yaml");
    call(
        http.put(url("/v1/agents/procurement-bot"))
            .bearer_auth(ADMIN)
            .header("content-type", "application/yaml")
            .body(manifest),
    )
    .await;
    let cred = call(
        http.post(url("/v1/agents/procurement-bot/credentials"))
            .bearer_auth(ADMIN)
            .json(&json!({})),
    )
    .await;
    let token = call(
        http.post(url("/oauth/token"))
            .basic_auth(
                cred["client_id"].as_str().unwrap(),
                cred["client_secret"].as_str(),
            )
            .form(&[("grant_type", "client_credentials")]),
    )
    .await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let decide = |action: &str, args: Value| {
        http.post(url("/v1/decisions"))
            .bearer_auth(&token)
            .json(&json!({"action": action, "args": args}))
    };
    for _ in 0..3 {
        let d = call(decide("procurement.list_vendors", json!({}))).await;
        assert_eq!(d["decision"], "allow");
    }
    let d = call(decide(
        "procurement.create_purchase_request",
        json!({"vendor": "globex", "amount": 900}),
    ))
    .await;
    assert_eq!(d["decision"], "allow");

    // Usage through the API, as a table.
    let (code, out, err) = bridle(&[
        "agent",
        "usage",
        "procurement-bot",
        "--url",
        &base,
        "--token",
        ADMIN,
    ]);
    assert_eq!(code, 0, "{err}");
    let list = out
        .lines()
        .find(|l| l.starts_with("tools[0]"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        list.contains("procurement.list_vendors") && list.contains(" 3 "),
        "{out}"
    );
    let buy = out.lines().find(|l| l.starts_with("tools[1]")).unwrap();
    assert!(
        buy.contains("amount 900..900") && buy.contains("vendor {globex}"),
        "{out}"
    );

    // Offline, on the file: the version in force changes nothing (exit 0).
    let same = dir.path().join("same.yaml");
    std::fs::write(&same, manifest).unwrap();
    let replay = |file: &std::path::Path, extra: &[&str]| {
        let file = file.to_str().unwrap();
        let mut args = vec![
            "check",
            "--replay",
            "--db",
            &db,
            "--agent",
            "procurement-bot",
            "--since",
            "1d",
            "-f",
            file,
        ];
        args.extend_from_slice(extra);
        bridle(&args)
    };
    let (code, out, err) = replay(&same, &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("4 decisions") && out.contains("0 changed"),
        "{out}"
    );

    // A narrower candidate: no vendor listing, acme only (exit 2).
    let narrower = dir.path().join("narrower.yaml");
    std::fs::write(
        &narrower,
        manifest
            .replace("  - name: procurement.list_vendors\n", "")
            .replace("in: [acme, globex, initech]", "in: [acme]"),
    )
    .unwrap();
    let (code, out, err) = replay(&narrower, &["--output", "json"]);
    assert_eq!(code, 2, "{out}{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["summary"], json!({"allow_to_deny": 4}));
    // The server answers the same replay with the same document.
    let online = call(
        http.post(url("/v1/agents/procurement-bot/replay?since=1d"))
            .bearer_auth(ADMIN)
            .header("content-type", "application/yaml")
            .body(std::fs::read_to_string(&narrower).unwrap()),
    )
    .await;
    assert_eq!(online["changed"], v["changed"]);

    // Bad input: a candidate for another agent, no such database.
    let (code, _, err) = bridle(&[
        "check",
        "--replay",
        "--db",
        &db,
        "--agent",
        "swe-bot",
        "-f",
        narrower.to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("not `swe-bot`"), "{err}");
    let missing = format!("sqlite://{}/none.db", dir.path().display());
    let (code, _, err) = bridle(&[
        "check",
        "--replay",
        "--db",
        &missing,
        "--agent",
        "procurement-bot",
        "-f",
        narrower.to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("does not exist"), "{err}");
    assert!(!dir.path().join("none.db").exists());
}
