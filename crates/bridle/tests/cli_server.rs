//! The CLI's server commands against the real `bridle serve`, as an agent
//! and its people run them: `bridle token`, `bridle decide`, `approvals
//! list` (the arguments and the rule that asked), `agent elevation
//! request|list`, `agent show` (active elevations, pending approvals, last
//! activity).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test fails by panicking: an unexpected shape should abort it loudly"
)]

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::Killed;

use serde_json::Value;

const ADMIN: &str = "bk_cli-server-admin-5c2a9e0d71f3";

const MANIFEST: &str = "\
agent: pay-bot
owner: admin
purpose: Pay small invoices
environment: dev
expires: 2030-12-31
tools:
  - name: payments.pay
    access: write
    args:
      amount: { min: 1, max: 10000 }
    approval:
      when: context.args.amount > 100
      approvers: [group:finance]
forbid: [secrets.*]
elevation:
  - name: refunds
    tools: [payments.refund]
    max_duration: 1h
    approvers: [group:finance]
";

/// `bridle serve` on a free port; its base URL once it listens.
fn serve(dir: &Path) -> (Killed, String) {
    let (child, _, port) = common::serve(dir, ADMIN, &[]);
    (child, format!("http://127.0.0.1:{port}"))
}

/// `bridle ARGS --url URL` with only the environment given.
fn bridle(url: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bridle"));
    cmd.args(args).args(["--url", url]);
    for var in [
        "BRIDLE_URL",
        "BRIDLE_TOKEN",
        "BRIDLE_CA_FILE",
        "BRIDLE_AGENT_TOKEN",
        "BRIDLE_CLIENT_SECRET",
    ] {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().copied());
    cmd.stdin(Stdio::null()).output().unwrap()
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[test]
fn an_agent_gets_a_token_asks_for_decisions_and_an_elevation() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, url) = serve(dir.path());
    let url = url.as_str();
    let admin = [("BRIDLE_TOKEN", ADMIN)];

    let fin = json(&ok(&bridle(
        url,
        &[
            "principal",
            "create",
            "fin",
            "--group",
            "finance",
            "--output",
            "json",
        ],
        &admin,
    )));
    let fin_key = fin["api_key"].as_str().unwrap().to_owned();
    let manifest = dir.path().join("pay-bot.yaml");
    std::fs::write(&manifest, MANIFEST).unwrap();
    ok(&bridle(
        url,
        &["agent", "apply", "-f", manifest.to_str().unwrap()],
        &admin,
    ));
    let cred = json(&ok(&bridle(
        url,
        &[
            "agent",
            "credentials",
            "create",
            "pay-bot",
            "--output",
            "json",
        ],
        &admin,
    )));
    let client_id = cred["client_id"].as_str().unwrap();
    let secret = cred["client_secret"].as_str().unwrap();

    // `bridle token`: the secret from the environment or a file, never
    // printed; the token alone on stdout, or as a header.
    let token = ok(&bridle(
        url,
        &["token", "--client-id", client_id],
        &[("BRIDLE_CLIENT_SECRET", secret)],
    ));
    let token = token.trim().to_owned();
    assert_eq!(token.split('.').count(), 3, "not a JWT: {token}");
    let secret_file = dir.path().join("secret");
    std::fs::write(&secret_file, format!("{secret}\n")).unwrap();
    let o = bridle(
        url,
        &[
            "token",
            "--client-id",
            client_id,
            "--client-secret-file",
            secret_file.to_str().unwrap(),
            "--format",
            "header",
        ],
        &[],
    );
    let header = ok(&o);
    assert!(header.starts_with("Authorization: Bearer ey"), "{header}");
    for out in [&o.stdout, &o.stderr] {
        assert!(!String::from_utf8_lossy(out).contains(secret));
    }
    let o = bridle(
        url,
        &["token", "--client-id", client_id],
        &[("BRIDLE_CLIENT_SECRET", "wrong")],
    );
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("invalid_client"), "{err}");
    assert!(
        !err.contains("BRIDLE_TOKEN"),
        "an API key is no help here: {err}"
    );

    // `bridle decide`: exit codes as `bridle check`.
    let agent = [("BRIDLE_AGENT_TOKEN", token.as_str())];
    let decide = |extra: &[&str]| {
        let mut args = vec!["decide", "--output", "json"];
        args.extend_from_slice(extra);
        bridle(url, &args, &agent)
    };
    let o = decide(&["--action", "payments.pay", "--args", r#"{"amount": 50}"#]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(json(&ok(&o))["decision"], "allow");
    let o = decide(&["--action", "secrets.read"]);
    assert_eq!(o.status.code(), Some(2));
    let v = json(&String::from_utf8_lossy(&o.stdout));
    assert_eq!(
        (v["decision"].as_str(), v["reasons"][0]["code"].as_str()),
        (Some("deny"), Some("forbidden"))
    );
    let o = decide(&["--action", "payments.pay", "--args", r#"{"amount": 500}"#]);
    assert_eq!(o.status.code(), Some(3));
    let v = json(&String::from_utf8_lossy(&o.stdout));
    assert_eq!(v["decision"], "approval_required");
    let approval = v["approval_id"].as_str().unwrap().to_owned();
    let o = decide(&["--action", "payments.pay", "--args", "{"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(o.stdout.is_empty());
    let o = bridle(url, &["decide", "--action", "payments.pay"], &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no agent token"));
    // As a `pep`: its key is the bearer, the agent's token rides in the body.
    let pep = json(&ok(&bridle(
        url,
        &[
            "principal",
            "create",
            "gw",
            "--role",
            "pep",
            "--output",
            "json",
        ],
        &admin,
    )));
    let pep_key = pep["api_key"].as_str().unwrap();
    let pep_env = [
        ("BRIDLE_TOKEN", pep_key),
        ("BRIDLE_AGENT_TOKEN", token.as_str()),
    ];
    let args = [
        "decide",
        "--action",
        "payments.pay",
        "--args",
        r#"{"amount": 50}"#,
        "--output",
        "json",
    ];
    let mut with_pep = args.to_vec();
    with_pep.push("--pep");
    let o = bridle(url, &with_pep, &pep_env);
    assert_eq!(json(&ok(&o))["decision"], "allow");
    // Without `--pep` the agent's token is the bearer, the key unused.
    assert_eq!(
        json(&ok(&bridle(url, &args, &pep_env)))["decision"],
        "allow"
    );
    let o = bridle(url, &with_pep, &agent);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--pep needs"));

    // Text: the decision first, then the approval to vote on.
    let o = bridle(
        url,
        &[
            "decide",
            "--action",
            "payments.pay",
            "--args",
            r#"{"amount": 500}"#,
        ],
        &agent,
    );
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.starts_with("approval_required\n"), "{text}");
    assert!(text.contains(&format!("  approval: {approval} ")), "{text}");

    // The rule the server names is the one `bridle check` names offline.
    let check = Command::new(env!("CARGO_BIN_EXE_bridle"))
        .args([
            "check",
            "-f",
            manifest.to_str().unwrap(),
            "--action",
            "payments.pay",
        ])
        .args(["--args", r#"{"amount": 500}"#, "--output", "json"])
        .output()
        .unwrap();
    let check = json(&String::from_utf8_lossy(&check.stdout));
    let source = &check["reasons"][0]["source"];
    let line = source["line"].as_u64().unwrap();

    // `approvals list`: the arguments and the rule that asked.
    let list = json(&ok(&bridle(
        url,
        &["approvals", "list", "--output", "json"],
        &admin,
    )));
    let a = list["approvals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == approval.as_str())
        .unwrap();
    assert_eq!(a["rule"]["path"], source["path"]);
    assert_eq!(a["rule"]["line"], line);
    let text = ok(&bridle(url, &["approvals", "list"], &admin));
    let row = text.lines().find(|l| l.starts_with(&approval)).unwrap();
    assert!(row.contains(r#"{"amount":500}"#), "{row}");
    assert!(
        row.contains(&format!(
            "{}, line {line}",
            source["path"].as_str().unwrap()
        )),
        "{row}"
    );

    // `agent elevation request` with the agent's own token (from a file).
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, &token).unwrap();
    let req = json(&ok(&bridle(
        url,
        &[
            "agent",
            "elevation",
            "request",
            "pay-bot",
            "refunds",
            "--duration",
            "30m",
            "--reason",
            "refund run",
            "--agent-token-file",
            token_file.to_str().unwrap(),
            "--output",
            "json",
        ],
        &[],
    )));
    assert_eq!(req["state"], "pending");
    let elevation_approval = req["approval_id"].as_str().unwrap().to_owned();
    let text = ok(&bridle(url, &["approvals", "list"], &admin));
    let row = text
        .lines()
        .find(|l| l.starts_with(&elevation_approval))
        .unwrap();
    assert!(row.contains("elevation: refunds"), "{row}");
    // The rule: the manifest's `elevation` entry, at its line.
    assert!(row.contains("elevation[0], line 16"), "{row}");
    assert!(!text.contains("elevation:refunds"), "{text}");
    let o = decide(&["--action", "payments.refund"]);
    assert_eq!(o.status.code(), Some(2));

    // Pending: `agent show` lists both approvals and no active elevation.
    let show = ok(&bridle(url, &["agent", "show", "pay-bot"], &admin));
    let field = |text: &str, k: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("{k}:")))
            .map(|l| l.split_once(':').unwrap().1.trim().to_owned())
            .unwrap_or_else(|| panic!("no `{k}` in:\n{text}"))
    };
    assert_eq!(field(&show, "active elevations"), "none");
    let pending = field(&show, "pending approvals");
    assert!(
        pending.contains(&format!("{approval} payments.pay")),
        "{pending}"
    );
    assert!(
        pending.contains(&format!("{elevation_approval} elevation refunds")),
        "{pending}"
    );
    assert_ne!(field(&show, "last activity"), "-");
    assert!(!field(&show, "last activity").starts_with("none"), "{show}");

    // Approved: the elevation is active, in the list and in `agent show`,
    // and its tool is allowed.
    ok(&bridle(
        url,
        &["approvals", "approve", &elevation_approval],
        &[("BRIDLE_TOKEN", &fin_key)],
    ));
    let list = json(&ok(&bridle(
        url,
        &["agent", "elevation", "list", "pay-bot", "--output", "json"],
        &admin,
    )));
    let e = &list["elevations"][0];
    assert_eq!(
        (e["name"].as_str(), e["state"].as_str()),
        (Some("refunds"), Some("active"))
    );
    let show = ok(&bridle(url, &["agent", "show", "pay-bot"], &admin));
    assert!(
        field(&show, "active elevations").starts_with("refunds until "),
        "{show}"
    );
    let o = decide(&["--action", "payments.refund"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );

    // `agent elevation end`: the agent gives it up with its own token; the
    // list (the agent's own, and `--active`) says so, and the tool is
    // denied again.
    let elevation_id = req["id"].as_str().unwrap().to_owned();
    let text = ok(&bridle(
        url,
        &["agent", "elevation", "list", "pay-bot", "--active"],
        &admin,
    ));
    assert!(text.lines().any(|l| l.starts_with(&elevation_id)), "{text}");
    let end = |who: &[(&str, &str)], extra: &[&str]| {
        let mut args = vec![
            "agent",
            "elevation",
            "end",
            "pay-bot",
            elevation_id.as_str(),
            "--reason",
            "refunds done",
        ];
        args.extend_from_slice(extra);
        bridle(url, &args, who)
    };
    let ended = json(&ok(&end(
        &[],
        &[
            "--agent-token-file",
            token_file.to_str().unwrap(),
            "--output",
            "json",
        ],
    )));
    assert_eq!(ended["state"], "ended", "{ended}");
    assert_eq!(ended["ended_by"], "agent:pay-bot");
    assert_eq!(ended["end_reason"], "refunds done");
    let list = json(&ok(&bridle(
        url,
        &["agent", "elevation", "list", "pay-bot", "--output", "json"],
        &[("BRIDLE_AGENT_TOKEN", token.as_str())],
    )));
    let e = &list["elevations"][0];
    assert_eq!(
        (e["id"].as_str(), e["state"].as_str()),
        (Some(elevation_id.as_str()), Some("ended"))
    );
    let text = ok(&bridle(
        url,
        &["agent", "elevation", "list", "pay-bot", "--active"],
        &admin,
    ));
    assert!(!text.contains(&elevation_id), "{text}");
    let o = decide(&["--action", "payments.refund"]);
    assert_eq!(o.status.code(), Some(2));
    // Twice: refused, on stderr.
    let o = end(&admin, &[]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("ended"), "{err}");
}
