//! `[tls]`: the server speaks https with the configured certificate. A
//! client trusting its CA gets answers and decisions; plain http to the
//! port, a client that does not trust the certificate, garbage and a
//! handshake left hanging get no answer and stop nothing; the peer address
//! still reaches the handlers (failed authentication is counted by it);
//! half a configuration, or a file that is not there, stops the start with
//! an error naming what is wrong.

use std::time::Duration;

use serde_json::json;
use tokio::io::AsyncWriteExt as _;

use crate::common::{ADMIN_KEY, Backend, KEK, Server, TestCert, assert_decision, fresh_db};

async fn https() -> Server {
    // No `issuer` given: it is derived from the listener, as https.
    Server::start_https(Backend::Sqlite, |c| c.issuer = None).await
}

async fn healthy(s: &Server) {
    let r = s.get("/healthz", "").await.expect(200);
    assert_eq!(r.json["status"], "ok", "{}", r.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_answers_health_metadata_and_decisions() {
    let s = https().await;
    assert!(s.base.starts_with("https://127.0.0.1:"), "{}", s.base);
    healthy(&s).await;
    // Everything derived from the listen address says https.
    let meta = s
        .get("/.well-known/oauth-authorization-server", "")
        .await
        .expect(200);
    assert_eq!(meta.json["issuer"], s.base.as_str(), "{}", meta.text);
    assert_eq!(
        meta.json["token_endpoint"],
        format!("{}/oauth/token", s.base),
        "{}",
        meta.text
    );
    s.people().await;
    s.load("swe-bot").await;
    let token = s.agent_token("swe-bot").await;
    let d = s.decide(&token, "ci.run_tests", json!({})).await;
    assert_decision(&d, "allow", "granted");
    let d = s.decide(&token, "secrets.read", json!({})).await;
    assert_decision(&d, "deny", "forbidden");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_to_the_tls_port_gets_no_answer_and_the_server_goes_on() {
    let s = https().await;
    let plain = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let url = s.url("/healthz").replacen("https://", "http://", 1);
    let r = plain.get(&url).send().await;
    assert!(r.is_err(), "plain http got an answer: {r:?}");
    healthy(&s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_and_hanging_handshakes_do_not_stop_the_server() {
    let s = https().await;
    let addr = s.state.config.listen;
    // A handshake that never starts: while it waits, others are served.
    let _hanging = tokio::net::TcpStream::connect(addr).await.unwrap();
    // Garbage, then a close.
    let mut garbage = tokio::net::TcpStream::connect(addr).await.unwrap();
    garbage
        .write_all(b"\x16\x03\x01\x00\x05hello, not a ClientHello")
        .await
        .unwrap();
    drop(garbage);
    // A client that does not trust the certificate (another CA).
    let stranger = reqwest::Client::builder()
        .tls_certs_only([TestCert::new().ca()])
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let r = stranger.get(s.url("/healthz")).send().await;
    assert!(r.is_err(), "an untrusted certificate was accepted: {r:?}");
    for _ in 0..3 {
        healthy(&s).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_peer_address_reaches_the_handlers_under_tls() {
    let s = https().await;
    s.people().await;
    s.load("swe-bot").await;
    let (id, _) = s.credentials("swe-bot").await;
    for _ in 0..3 {
        s.send(
            s.http
                .post(s.url("/oauth/token"))
                .basic_auth(&id, Some("definitely-not-the-secret-0123456789"))
                .form(&[("grant_type", "client_credentials")]),
        )
        .await
        .expect(401);
    }
    let r = s
        .get("/v1/audit?type=authentication&limit=100", ADMIN_KEY)
        .await
        .expect(200);
    let events = r.json["events"].as_array().unwrap();
    assert!(!events.is_empty(), "{}", r.text);
    for e in events {
        assert_eq!(e["detail"]["source"], "127.0.0.1", "{e}");
    }
}

/// `start` with `[tls]` as given, on a fresh database: its error text.
async fn start_error(cert: Option<&std::path::Path>, key: Option<&std::path::Path>) -> String {
    let (db, _dir) = fresh_db(Backend::Sqlite).await;
    let mut config = bridle_server::Config {
        db,
        key_encryption_key: Some(bridle_server::Secret::new(KEK)),
        ..bridle_server::Config::default()
    };
    config.tls.cert_file = cert.map(ToOwned::to_owned);
    config.tls.key_file = key.map(ToOwned::to_owned);
    match bridle_server::start(config).await {
        Ok(_) => panic!("started with cert {cert:?} and key {key:?}"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn half_a_tls_configuration_or_a_missing_file_stops_the_start() {
    let cert = TestCert::new();
    let e = start_error(Some(&cert.cert_file), None).await;
    assert_eq!(
        e,
        "TLS: a certificate is given but no key: `tls.key_file`, `BRIDLE_TLS_KEY_FILE` or `--tls-key`"
    );
    let e = start_error(None, Some(&cert.key_file)).await;
    assert!(e.contains("no certificate: `tls.cert_file`"), "{e}");
    let missing = cert.dir.path().join("absent.key");
    let e = start_error(Some(&cert.cert_file), Some(&missing)).await;
    assert!(
        e.starts_with("TLS: cannot read `") && e.contains("absent.key"),
        "{e}"
    );
    // The key file given as the certificate.
    let e = start_error(Some(&cert.key_file), Some(&cert.key_file)).await;
    assert!(
        e.contains("server.key") && e.contains("no PEM certificate"),
        "{e}"
    );
}
