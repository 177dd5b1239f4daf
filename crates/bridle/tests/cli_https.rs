//! The operator CLI against a server that speaks https under a private CA:
//! the real `bridle serve --tls-cert/--tls-key`, then `bridle principal
//! create` with and without `--ca-file`, as an operator runs them.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails by panicking: an unexpected shape should abort it loudly"
)]

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::Killed;

const ADMIN: &str = "bk_cli-https-admin-8d1e0c4b7a2f";

/// A CA, and a certificate it signed for `127.0.0.1` and `localhost`:
/// (ca.pem, server.pem, server.key) in `dir`.
fn certificates(dir: &Path) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "Operators' CA");
    std::fs::write(dir.join("ca.pem"), ca.self_signed(&ca_key).unwrap().pem()).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    std::fs::write(dir.join("server.pem"), leaf.pem()).unwrap();
    std::fs::write(dir.join("server.key"), key.serialize_pem()).unwrap();
}

/// `bridle serve` over https; its base URL once it listens.
fn serve(dir: &Path) -> (Killed, String) {
    let cert = dir.join("server.pem");
    let key = dir.join("server.key");
    let extra = [
        "--tls-cert".as_ref(),
        cert.as_os_str(),
        "--tls-key".as_ref(),
        key.as_os_str(),
    ];
    let (child, line, port) = common::serve(dir, ADMIN, &extra);
    assert!(line.contains("tls=true"), "{line}");
    (child, format!("https://127.0.0.1:{port}"))
}

fn cli(url: &str, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bridle"))
        .args([
            "principal",
            "create",
            "carol",
            "--url",
            url,
            "--token",
            ADMIN,
        ])
        .args(extra)
        .env_remove("BRIDLE_URL")
        .env_remove("BRIDLE_TOKEN")
        .env_remove("BRIDLE_CA_FILE")
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

#[test]
fn the_cli_trusts_a_private_ca_only_when_told() {
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path());
    let (_server, url) = serve(dir.path());

    // Unknown CA: refused, saying why, exit non-zero.
    let out = cli(&url, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("cannot reach Bridle"), "{stderr}");
    assert!(stderr.to_lowercase().contains("certificate"), "{stderr}");

    // With the CA: the principal is created, its API key shown.
    let ca = dir.path().join("ca.pem");
    let out = cli(&url, &["--ca-file", ca.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("carol") && stdout.contains("bk_"),
        "{stdout}"
    );

    // A file that holds no certificate: named, before any request.
    let out = cli(
        &url,
        &["--ca-file", dir.path().join("server.key").to_str().unwrap()],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("--ca-file") && stderr.contains("server.key"),
        "{stderr}"
    );
}
