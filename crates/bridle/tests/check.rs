//! `bridle check`, run as the built binary: what it prints and its exit
//! codes (0 allow, 2 deny, 3 approval_required, 1 bad input).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test fails by panicking: an unexpected shape should abort it loudly"
)]

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const AT: &str = "2026-06-01T12:00:00Z";

fn example(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../../examples/{name}.yaml"))
}

fn bridle(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bridle"))
        .args(args)
        .env_remove("BRIDLE_URL")
        .env_remove("BRIDLE_TOKEN")
        .output()
        .unwrap()
}

/// `bridle check -f FILE --at AT` plus `extra`.
fn check(file: &Path, extra: &[&str]) -> Output {
    let file = file.to_str().unwrap();
    let mut args = vec!["check", "-f", file, "--at", AT];
    args.extend_from_slice(extra);
    bridle(&args)
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap()
}

fn temp_manifest(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::Builder::new().suffix(".yaml").tempfile().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f.flush().unwrap();
    f
}

const PURCHASE: &str = "procurement.create_purchase_request";

#[test]
fn a_purchase_above_the_threshold_needs_approval() {
    let o = check(
        &example("procurement-bot"),
        &[
            "--action",
            PURCHASE,
            "--args",
            r#"{"vendor": "acme", "amount": 7000}"#,
        ],
    );
    let out = stdout(&o);
    assert_eq!(code(&o), 3, "{out}{}", stderr(&o));
    assert_eq!(out.lines().next(), Some("approval_required"), "{out}");
    assert!(out.contains("approval_required: "), "{out}");
    assert!(out.contains("group:finance-approvers"), "{out}");
    assert!(
        out.contains("approval: 1 of [group:finance-approvers], valid 86400s"),
        "{out}"
    );
}

#[test]
fn a_small_purchase_is_allowed_and_points_at_its_grant() {
    let file = example("procurement-bot");
    let o = check(
        &file,
        &[
            "--action",
            PURCHASE,
            "--args",
            r#"{"vendor": "acme", "amount": 700}"#,
        ],
    );
    let out = stdout(&o);
    assert_eq!(code(&o), 0, "{out}{}", stderr(&o));
    assert_eq!(out.lines().next(), Some("allow"), "{out}");
    assert!(out.contains("granted: "), "{out}");
    // The reason quotes the manifest line that granted the action.
    let source = std::fs::read_to_string(&file).unwrap();
    let (index, text) = source
        .lines()
        .enumerate()
        .find(|(_, l)| l.trim() == format!("- name: {PURCHASE}"))
        .unwrap();
    assert!(
        out.contains(&format!("--> {}:{} (tools[1])", file.display(), index + 1)),
        "{out}"
    );
    assert!(out.contains(&format!("| {text}\n")), "{out}");
}

#[test]
fn a_denied_action_exits_2() {
    let o = check(
        &example("procurement-bot"),
        &["--action", "procurement.approve_purchase_request"],
    );
    let out = stdout(&o);
    assert_eq!(code(&o), 2, "{out}{}", stderr(&o));
    assert_eq!(out.lines().next(), Some("deny"), "{out}");
    assert!(out.contains("forbidden: "), "{out}");

    let o = check(
        &example("procurement-bot"),
        &[
            "--action",
            PURCHASE,
            "--args",
            r#"{"vendor": "evil", "amount": 700}"#,
        ],
    );
    assert_eq!(code(&o), 2);
    assert!(stdout(&o).contains("arg_constraint: "), "{}", stdout(&o));
}

#[test]
fn the_decision_instant_is_taken_from_at() {
    let file = example("support-bot");
    let get = |at: &str| {
        bridle(&[
            "check",
            "-f",
            file.to_str().unwrap(),
            "--action",
            "crm.get_case",
            "--resource",
            "crm:cases/1",
            "--at",
            at,
        ])
    };
    assert_eq!(code(&get("2026-06-01T12:00:00Z")), 0);
    let sunday = get("2026-06-07T12:00:00Z");
    assert_eq!(code(&sunday), 2);
    assert!(
        stdout(&sunday).contains("outside_schedule"),
        "{}",
        stdout(&sunday)
    );
}

#[test]
fn elevations_and_obligations_show_in_the_output() {
    let o = check(
        &example("ir-bot"),
        &[
            "--action",
            "identity.disable_user",
            "--elevation",
            "identity-write",
        ],
    );
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("elevated: "), "{}", stdout(&o));
    let o = check(&example("ir-bot"), &["--action", "identity.disable_user"]);
    assert_eq!(code(&o), 2);

    let o = check(&example("research-bot"), &["--action", "web.search"]);
    assert_eq!(code(&o), 0);
    assert!(
        stdout(&o).contains("obligation: log_retrieval"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn json_output_is_the_decision() {
    let o = check(
        &example("procurement-bot"),
        &[
            "--action",
            PURCHASE,
            "--args",
            r#"{"vendor": "acme", "amount": 7000}"#,
            "--output",
            "json",
        ],
    );
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    // The field is `decision`, as `POST /v1/decisions` names it.
    assert_eq!(v["decision"], "approval_required");
    assert!(v.get("effect").is_none(), "{v}");
    assert_eq!(v["reasons"][0]["code"], "approval_required");
    assert_eq!(v["approval"]["min_approvals"], 1);
    assert_eq!(v["approval"]["key"].as_str().unwrap().len(), 64);

    let o = check(
        &example("swe-bot"),
        &["--action", "secrets.read", "--output", "json"],
    );
    assert_eq!(code(&o), 2);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["decision"], "deny");
    assert_eq!(v["reasons"][0]["code"], "forbidden");
    assert_eq!(v["reasons"][0]["source"]["path"], "forbid[1]");
}

#[test]
fn a_bad_manifest_exits_1_with_file_line_column_and_path() {
    let f = temp_manifest(
        "agent: bad-bot\nownr: alice\npurpose: Broken\nenvironment: prod\nexpires: 2027-12-31\ntools:\n  - name: pay\n    args:\n      amount: { min: 10, max: five }\n",
    );
    let path = f.path().display().to_string();
    let o = check(f.path(), &["--action", "pay"]);
    let err = stderr(&o);
    assert_eq!(code(&o), 1, "{err}");
    assert!(stdout(&o).is_empty(), "{}", stdout(&o));
    assert!(err.contains("3 errors"), "{err}");
    assert!(
        err.contains(&format!(
            "{path}:2:1: `ownr`: unknown key `ownr`; did you mean `owner`?"
        )),
        "{err}"
    );
    assert!(err.contains("`owner`: missing required field"), "{err}");
    assert!(
        err.contains(&format!("{path}:9:31: `tools[0].args.amount.max`: ")),
        "{err}"
    );
}

#[test]
fn bad_input_exits_1() {
    let file = example("procurement-bot");
    let run = |extra: &[&str]| check(&file, extra);
    for (extra, expected) in [
        (
            &["--action", PURCHASE, "--args", "{vendor: acme}"][..],
            "--args is not valid JSON",
        ),
        (
            &["--action", PURCHASE, "--args", "[1, 2]"][..],
            "--args must be a JSON object",
        ),
        (&["--action", "not a tool"][..], "is not a tool name"),
        (
            &["--action", PURCHASE, "--elevation", "root"][..],
            "--elevation `root` is not defined",
        ),
    ] {
        let o = run(extra);
        assert_eq!(code(&o), 1, "{extra:?}: {}", stdout(&o));
        assert!(stderr(&o).contains(expected), "{extra:?}: {}", stderr(&o));
        assert!(stdout(&o).is_empty(), "{extra:?}: {}", stdout(&o));
    }
    let o = bridle(&[
        "check",
        "-f",
        file.to_str().unwrap(),
        "--action",
        PURCHASE,
        "--at",
        "yesterday",
    ]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("--at `yesterday`"), "{}", stderr(&o));

    let o = bridle(&["check", "-f", "/nonexistent/manifest.yaml", "--action", "x"]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("cannot read"), "{}", stderr(&o));
}

#[test]
fn guardrail_files_forbid_and_may_not_permit() {
    let file = example("swe-bot");
    let forbid = temp_manifest(r#"forbid (principal, action, resource == Tool::"ci.run_tests");"#);
    let o = check(
        &file,
        &[
            "--action",
            "ci.run_tests",
            "--guardrails",
            forbid.path().to_str().unwrap(),
        ],
    );
    assert_eq!(code(&o), 2, "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("forbidden: "), "{}", stdout(&o));
    // Without the guardrail the same action is allowed.
    assert_eq!(code(&check(&file, &["--action", "ci.run_tests"])), 0);

    let permit = temp_manifest("permit (principal, action, resource);");
    let o = check(
        &file,
        &[
            "--action",
            "secrets.read",
            "--guardrails",
            permit.path().to_str().unwrap(),
        ],
    );
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("only `forbid`"), "{}", stderr(&o));
}

#[test]
fn check_says_which_grant_governed_and_prints_warnings() {
    let f = temp_manifest(
        "agent: inv-bot\nowner: alice\npurpose: Pay invoices\nenvironment: dev\nexpires: 2027-12-31\ntools:\n  - name: \"invoices.*\"\n  - name: invoices.pay_invoice\n    access: write\n    args:\n      vendor: { in: [acme] }\n",
    );
    let o = check(
        f.path(),
        &[
            "--action",
            "invoices.pay_invoice",
            "--args",
            r#"{"vendor": "evil-corp"}"#,
        ],
    );
    let out = stdout(&o);
    assert_eq!(code(&o), 2, "{out}{}", stderr(&o));
    assert!(out.contains("arg_constraint: "), "{out}");
    assert!(
        out.contains("governed by `invoices.pay_invoice` (a literal name beats `invoices.*`)"),
        "{out}"
    );
    let err = stderr(&o);
    assert!(
        err.contains(&format!(
            "warning: {}:8: `tools[1]`: `invoices.pay_invoice` has `write` access with neither an approval rule nor a budget",
            f.path().display()
        )),
        "{err}"
    );
}

#[test]
fn equally_specific_grants_are_an_error_with_their_line() {
    let f = temp_manifest(
        "agent: inv-bot\nowner: alice\npurpose: Pay invoices\nenvironment: dev\nexpires: 2027-12-31\ntools:\n  - name: \"*.pay\"\n  - name: \"*\"\n",
    );
    let o = check(f.path(), &["--action", "x.pay"]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!("{}:8:5: `tools[1].name`: ", f.path().display())),
        "{}",
        stderr(&o)
    );
}

/// `bridle check … | head`: a reader that went away ends the command
/// quietly (141, as a shell reports a closed pipe), never with a panic.
#[test]
fn a_closed_stdout_is_not_a_panic() {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let file = example("swe-bot");
    let o = Command::new(env!("CARGO_BIN_EXE_bridle"))
        .args(["check", "-f", file.to_str().unwrap(), "--at", AT])
        .args(["--action", "github.create_pull_request"])
        .env_remove("BRIDLE_URL")
        .env_remove("BRIDLE_TOKEN")
        .stdout(writer)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(141), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
