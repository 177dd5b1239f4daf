//! `bridle demo`: the real server on a fresh SQLite file, loaded through its
//! own HTTP API with the reference agents, their owners and approvers, and a
//! little activity; then it prints what to try next and keeps serving.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use serde_json::{Value, json};

use crate::serve::{init_tracing, runtime};

#[derive(Debug, clap::Args)]
pub(crate) struct DemoArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// The demo's database file; it is recreated on every run.
    #[arg(long, default_value = "./bridle-data/demo.db")]
    db_file: String,
    /// Load everything, print the summary, and exit instead of serving.
    #[arg(long)]
    no_serve: bool,
}

const EXAMPLES: &[(&str, &str)] = &[
    (
        "procurement-bot",
        include_str!("../../../examples/procurement-bot.yaml"),
    ),
    ("swe-bot", include_str!("../../../examples/swe-bot.yaml")),
    (
        "test-runner",
        include_str!("../../../examples/test-runner.yaml"),
    ),
    (
        "support-bot",
        include_str!("../../../examples/support-bot.yaml"),
    ),
    ("ir-bot", include_str!("../../../examples/ir-bot.yaml")),
    (
        "research-bot",
        include_str!("../../../examples/research-bot.yaml"),
    ),
];

/// (id, name, roles, groups)
const PEOPLE: &[(&str, &str, &[&str], &[&str])] = &[
    (
        "alice",
        "Alice (finance ops, owns procurement-bot)",
        &[],
        &[],
    ),
    ("bob", "Bob (platform, owns swe-bot)", &[], &[]),
    ("carol", "Carol (support, owns support-bot)", &[], &[]),
    ("dave", "Dave (secops, owns ir-bot)", &[], &["secops"]),
    ("erin", "Erin (research, owns research-bot)", &[], &[]),
    (
        "frank",
        "Frank (finance approver)",
        &[],
        &["finance-approvers"],
    ),
    ("sam", "Sam (security on call)", &[], &["secops"]),
    ("ann", "Ann (auditor)", &["auditor"], &[]),
    ("gateway", "MCP gateway", &["pep"], &[]),
];

/// How to run `bridle` again the way the demo was started: through cargo
/// (`cargo run` sets `CARGO_MANIFEST_DIR`), or as the program it was
/// started as (`bridle` when it was found on the `PATH`).
fn invocation(under_cargo: bool, arg0: &str) -> String {
    if under_cargo {
        return "cargo run -q --release --".into();
    }
    if arg0.is_empty() || arg0.contains(char::is_whitespace) {
        "bridle".into()
    } else {
        arg0.into()
    }
}

pub(crate) fn run(args: &DemoArgs) -> ExitCode {
    let _telemetry = init_tracing(false);
    match runtime().and_then(|rt| rt.block_on(demo(args))) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        key: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.map_err(|e| anyhow!("{path}: {e}"))?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| anyhow!("{path}: {e}"))?;
        if !status.is_success() {
            bail!("{path}: {status}: {text}");
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn put_yaml(&self, path: &str, key: &str, yaml: &str) -> anyhow::Result<Value> {
        let resp = self
            .http
            .put(format!("{}{path}", self.base))
            .bearer_auth(key)
            .header("content-type", "application/yaml")
            .body(yaml.to_owned())
            .send()
            .await
            .map_err(|e| anyhow!("{path}: {e}"))?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| anyhow!("{path}: {e}"))?;
        if !status.is_success() {
            bail!("{path}: {status}: {text}");
        }
        Ok(serde_json::from_str(&text)?)
    }

    async fn token(&self, client_id: &str, secret: &str) -> anyhow::Result<String> {
        self.grant(client_id, secret, &[("grant_type", "client_credentials")])
            .await
    }

    /// RFC 8693: the delegate exchanges the delegator's token for its own.
    async fn exchange(
        &self,
        client_id: &str,
        secret: &str,
        subject: &str,
    ) -> anyhow::Result<String> {
        self.grant(
            client_id,
            secret,
            &[
                (
                    "grant_type",
                    "urn:ietf:params:oauth:grant-type:token-exchange",
                ),
                ("subject_token", subject),
                (
                    "subject_token_type",
                    "urn:ietf:params:oauth:token-type:access_token",
                ),
            ],
        )
        .await
    }

    async fn grant(
        &self,
        client_id: &str,
        secret: &str,
        form: &[(&str, &str)],
    ) -> anyhow::Result<String> {
        let resp = self
            .http
            .post(format!("{}/oauth/token", self.base))
            .basic_auth(client_id, Some(secret))
            .form(form)
            .send()
            .await?;
        let v: Value = resp.json().await?;
        text(&v, "access_token")
            .map(String::from)
            .ok_or_else(|| anyhow!("no token: {v}"))
    }
}

/// The string at `key` of a JSON answer, if there is one.
fn text<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// The string at `key` of an answer from `path`; a missing one is an error.
fn required(v: &Value, key: &str, path: &str) -> anyhow::Result<String> {
    text(v, key)
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("{path}: the answer has no `{key}`"))
}

async fn demo(args: &DemoArgs) -> anyhow::Result<()> {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", args.db_file));
    }
    let mut config = bridle_server::Config::load(None)?;
    config.listen = args.listen;
    config.db = format!("sqlite://{}", args.db_file);
    // Local clients (the MCP Inspector, the interop tests) serve their
    // client metadata documents over plain http on loopback; a demo that
    // listens on loopback only is a development set-up, so it lets them.
    config.oauth.client_metadata_allow_loopback_http = args.listen.ip().is_loopback();
    let admin_key = format!("bk_demo_{}", bridle_server::tokens::random_token(24));
    config.admin_token = Some(bridle_server::Secret::new(admin_key.clone()));
    let started = bridle_server::start(config).await?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| anyhow!("cannot listen on {}: {e}", args.listen))?;
    let server = tokio::spawn(async move {
        axum_serve(listener, started.state).await;
    });
    let api = Api {
        http: reqwest::Client::new(),
        base: format!("http://{}", args.listen),
    };
    wait_healthy(&api).await?;

    let mut keys = std::collections::HashMap::new();
    for (id, name, roles, groups) in PEOPLE {
        let v = api
            .call(
                reqwest::Method::POST,
                "/v1/principals",
                &admin_key,
                Some(json!({"id": id, "name": name, "roles": roles, "groups": groups})),
            )
            .await?;
        keys.insert(*id, required(&v, "api_key", "/v1/principals")?);
    }
    let mut creds = std::collections::HashMap::new();
    // Each owner registers its agent; the reference agents are prod, so
    // change control proposes each one and the admin (a second person)
    // approves it before it can act.
    for (id, yaml) in EXAMPLES {
        let owner = bridle_core::Manifest::from_source(yaml)
            .map_err(|e| anyhow!("examples/{id}.yaml: {e}"))?
            .owner;
        let owner_key = keys
            .get(owner.as_str())
            .ok_or_else(|| anyhow!("`{owner}` (owner of {id}) is not a demo principal"))?;
        let path = format!("/v1/agents/{id}");
        let v = api.put_yaml(&path, owner_key, yaml).await?;
        if let Some(approval) = text(&v, "approval_id") {
            api.call(
                reqwest::Method::POST,
                &format!("/v1/approvals/{approval}/approve"),
                &admin_key,
                Some(json!({"comment": "demo: reviewed"})),
            )
            .await?;
        }
        let path = format!("/v1/agents/{id}/credentials");
        let c = api
            .call(reqwest::Method::POST, &path, &admin_key, Some(json!({})))
            .await?;
        creds.insert(
            *id,
            (
                required(&c, "client_id", &path)?,
                required(&c, "client_secret", &path)?,
            ),
        );
    }
    let creds_of = |agent: &str| {
        creds
            .get(agent)
            .ok_or_else(|| anyhow!("`{agent}` has no credentials"))
    };

    // A little activity, through the same API an agent uses.
    let activity: &[(&str, &str, Value, Option<&str>)] = &[
        (
            "procurement-bot",
            "procurement.list_vendors",
            json!({}),
            None,
        ),
        (
            "procurement-bot",
            "procurement.create_purchase_request",
            json!({"vendor": "acme", "amount": 700}),
            None,
        ),
        (
            "procurement-bot",
            "procurement.create_purchase_request",
            json!({"vendor": "evilcorp", "amount": 900}),
            None,
        ),
        (
            "procurement-bot",
            "procurement.approve_po",
            json!({"po": 17}),
            None,
        ),
        (
            "swe-bot",
            "github.create_pull_request",
            json!({"repo": "acme/api", "title": "Fix flaky test"}),
            None,
        ),
        ("swe-bot", "secrets.read", json!({"name": "prod-db"}), None),
        (
            "swe-bot",
            "github.merge_pull_request",
            json!({"repo": "acme/api", "number": 42}),
            None,
        ),
        (
            "support-bot",
            "crm.get_case",
            json!({"case": 1234}),
            Some("crm:cases/1234"),
        ),
        (
            "support-bot",
            "crm.export_cases",
            json!({}),
            Some("crm:cases/*"),
        ),
        (
            "ir-bot",
            "edr.quarantine_endpoint",
            json!({"host": "lt-0042"}),
            None,
        ),
        (
            "ir-bot",
            "identity.disable_user",
            json!({"user": "mallory"}),
            None,
        ),
        (
            "research-bot",
            "web.fetch",
            json!({"url": "https://example.org/paper"}),
            None,
        ),
        (
            "research-bot",
            "web.fetch",
            json!({"url": "http://insecure.example"}),
            None,
        ),
    ];
    let mut tokens = std::collections::HashMap::new();
    for (agent, _, _, _) in activity {
        if !tokens.contains_key(agent) {
            let (id, secret) = creds_of(agent)?;
            tokens.insert(*agent, api.token(id, secret).await?);
        }
    }
    let token_of = |tokens: &std::collections::HashMap<&str, String>, agent: &str| {
        tokens
            .get(agent)
            .cloned()
            .ok_or_else(|| anyhow!("`{agent}` has no token"))
    };
    // test-runner acting for swe-bot, by token exchange: it may run tests,
    // but swe-bot's forbid on secrets holds through the sub-agent.
    let (tr_id, tr_secret) = creds_of("test-runner")?;
    let delegated = api
        .exchange(tr_id, tr_secret, &token_of(&tokens, "swe-bot")?)
        .await?;
    tokens.insert("test-runner for swe-bot", delegated);
    let activity: Vec<_> = activity
        .iter()
        .cloned()
        .chain([
            (
                "test-runner for swe-bot",
                "ci.run_tests",
                json!({"suite": "unit"}),
                None,
            ),
            (
                "test-runner for swe-bot",
                "secrets.read",
                json!({"name": "prod-db"}),
                None,
            ),
        ])
        .collect();
    let mut summary = Vec::new();
    for (agent, action, args, resource) in &activity {
        let body = match resource {
            Some(r) => json!({"action": action, "args": args, "resource": r}),
            None => json!({"action": action, "args": args}),
        };
        let d = api
            .call(
                reqwest::Method::POST,
                "/v1/decisions",
                &token_of(&tokens, agent)?,
                Some(body),
            )
            .await?;
        summary.push(format!(
            "  {agent:<24} {action:<40} {:<18} {}",
            text(&d, "decision").unwrap_or("?"),
            d.pointer("/reasons/0/code")
                .and_then(Value::as_str)
                .unwrap_or("")
        ));
    }
    let elevation = api
        .call(
            reqwest::Method::POST,
            "/v1/agents/ir-bot/elevations",
            &token_of(&tokens, "ir-bot")?,
            Some(json!({"name": "identity-write", "duration": "30m", "reason": "INC-4711: disable compromised account"})),
        )
        .await?;

    let (pid, psecret) = creds_of("procurement-bot")?;
    let key_of = |id: &str| keys.get(id).ok_or_else(|| anyhow!("`{id}` has no API key"));
    let (frank, sam) = (key_of("frank")?, key_of("sam")?);
    let (alice, ann) = (key_of("alice")?, key_of("ann")?);
    let base = &api.base;
    sayln!(
        "\nBridle demo is running at {base}  (database: {db})\n\
         \nLoaded: 9 principals, 6 agents (the reference cases: prod, so each was proposed by its owner and approved by the admin under change control), credentials, and this activity:\n{activity}\n\
         \nWeb console:     {base}/console/  (sign in with an API key below: frank's to approve, alice's to suspend her agent, ann's to read everything, the admin's to manage everything)\
         \nAdmin API key:   {admin_key}\
         \nfrank (finance-approvers):  {frank}\
         \nsam (secops):               {sam}\
         \nalice (owns procurement-bot): {alice}\
         \nann (auditor):               {ann}\
         \n\nTry it — a purchase above 5,000 needs a human:\n\
         \n  TOKEN=$(curl -s -u '{pid}:{psecret}' -d grant_type=client_credentials {base}/oauth/token | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"access_token\"])')\
         \n  curl -s -H \"Authorization: Bearer $TOKEN\" -H 'content-type: application/json' \\\
         \n       -d '{{\"action\":\"procurement.create_purchase_request\",\"args\":{{\"vendor\":\"acme\",\"amount\":7000}}}}' {base}/v1/decisions\
         \n\nThen approve it as frank, and send the same curl again (it is now allowed, once):\n\
         \n  BRIDLE_URL={base} BRIDLE_TOKEN={frank} {bridle} approvals list --state pending\
         \n  BRIDLE_URL={base} BRIDLE_TOKEN={frank} {bridle} approvals approve APPROVAL_ID\
         \n\nir-bot asked for the `identity-write` elevation (approval {elev}); sam can approve it the same way.\
         \nThe audit log: BRIDLE_URL={base} BRIDLE_TOKEN={admin_key} {bridle} audit verify\
         \nWho changed an agent's record, and what: BRIDLE_URL={base} BRIDLE_TOKEN={admin_key} {bridle} agent history procurement-bot\n",
        db = args.db_file,
        bridle = invocation(
            std::env::var_os("CARGO_MANIFEST_DIR").is_some(),
            &std::env::args().next().unwrap_or_default()
        ),
        activity = summary.join("\n"),
        elev = text(&elevation, "approval_id").unwrap_or("?"),
    );
    if args.no_serve {
        server.abort();
        return Ok(());
    }
    Ok(server.await?)
}

async fn axum_serve(listener: tokio::net::TcpListener, state: bridle_server::AppState) {
    if let Err(e) = bridle_server::serve_on(listener, state).await {
        eprintln!("error: {e}");
    }
}

async fn wait_healthy(api: &Api) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(r) = api.http.get(format!("{}/healthz", api.base)).send().await
            && r.status().is_success()
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the server did not become healthy within 20 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::invocation;

    #[test]
    fn the_commands_printed_run_bridle_the_way_the_demo_was_run() {
        assert_eq!(
            invocation(true, "target/release/bridle"),
            "cargo run -q --release --"
        );
        assert_eq!(invocation(false, "bridle"), "bridle");
        assert_eq!(
            invocation(false, "/usr/local/bin/bridle"),
            "/usr/local/bin/bridle"
        );
        assert_eq!(invocation(false, ""), "bridle");
        assert_eq!(invocation(false, "/tmp/my dir/bridle"), "bridle");
    }
}
