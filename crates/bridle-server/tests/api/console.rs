//! The web console (`/console/`): sign-in through the API-key checkpoint,
//! the session cookie, CSRF and same-origin checks, the CSP, least
//! disclosure, and that its actions are the API's (an auditor changes
//! nothing, a deactivated principal's session ends at once).

use serde_json::json;

use crate::common::{ADMIN_KEY, Server, assert_decision};

const CREATE: &str = "procurement.create_purchase_request";

/// A client that does not follow redirects, so each answer is seen.
pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Sign in with `key`: the session cookie's value and the whole header.
pub(crate) async fn sign_in(s: &Server, key: &str) -> (String, String) {
    let r = client()
        .post(s.url("/console/signin"))
        .form(&[("api_key", key)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "sign-in with a good key redirects");
    let header = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    let value = header
        .split(';')
        .next()
        .unwrap()
        .strip_prefix("bridle_session=")
        .unwrap()
        .to_owned();
    (value, header)
}

pub(crate) async fn get(
    s: &Server,
    cookie: &str,
    path: &str,
) -> (u16, reqwest::header::HeaderMap, String) {
    let r = client()
        .get(s.url(path))
        .header("cookie", format!("bridle_session={cookie}"))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    (status, headers, r.text().await.unwrap())
}

pub(crate) async fn post(s: &Server, cookie: &str, path: &str, form: &[(&str, &str)]) -> u16 {
    client()
        .post(s.url(path))
        .header("cookie", format!("bridle_session={cookie}"))
        .form(form)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// The CSRF token of the page's forms.
pub(crate) fn csrf(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").unwrap() + "name=\"csrf\" value=\"".len();
    page.get(at..at + 32).unwrap().to_owned()
}

async fn sign_in_session_and_headers(s: Server) {
    let people = s.people().await;
    // A bad key: refused with a page, no cookie, and audited as an
    // authentication failure like any API key.
    let r = client()
        .post(s.url("/console/signin"))
        .form(&[("api_key", "bk_wrong-key-00000000000000")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().get("set-cookie").is_none());
    let body = r.text().await.unwrap();
    assert!(body.contains("unknown"), "{body}");
    crate::common::eventually(10, "the failed sign-in in the audit log", || async {
        s.audit(ADMIN_KEY, "type=authentication")
            .await
            .iter()
            .any(|e| {
                e["detail"]["kind"] == "api_key"
                    && e["detail"]["endpoints"]
                        .to_string()
                        .contains("/console/signin")
            })
    })
    .await;

    let (cookie, header) = sign_in(&s, &people["alice"]).await;
    assert_eq!(cookie.len(), 32, "128 bits as hex: {header}");
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/console"] {
        assert!(header.contains(attr), "{attr} in {header}");
    }
    assert!(!header.contains("Secure"), "plain http: {header}");
    // Only the hash is stored.
    let stored =
        crate::common::sql_text(&s.db_url, s.backend, "SELECT id_hash FROM console_sessions").await;
    assert!(!stored.contains(&cookie), "{stored}");

    for path in [
        "/console/",
        "/console/approvals",
        "/console/audit",
        "/console/posture",
    ] {
        let (status, headers, page) = get(&s, &cookie, path).await;
        assert_eq!(status, 200, "{path}");
        let csp = headers["content-security-policy"].to_str().unwrap();
        for part in [
            "default-src 'none'",
            "frame-ancestors 'none'",
            "form-action 'self'",
            "base-uri 'none'",
            "script-src 'self'",
        ] {
            assert!(csp.contains(part), "{part} in {csp}");
        }
        assert!(!csp.contains("unsafe"), "{csp}");
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert_eq!(headers["referrer-policy"], "no-referrer");
        // Nothing from another origin.
        for bad in ["http://", "https://", "src=\"//", "href=\"//"] {
            assert!(!page.contains(bad), "{path} references {bad}");
        }
        assert_eq!(page.matches("<h1").count(), 1, "{path}: one h1");
    }
    // Without a session every page sends the browser to sign in.
    let (status, headers, _) = get(&s, "0123456789abcdef0123456789abcdef", "/console/").await;
    assert_eq!(status, 303);
    assert_eq!(headers["location"], "/console/signin");

    // Signing out ends the session.
    let (_, _, page) = get(&s, &cookie, "/console/").await;
    let token = csrf(&page);
    assert_eq!(
        post(&s, &cookie, "/console/signout", &[("csrf", &token)]).await,
        303
    );
    let (status, _, _) = get(&s, &cookie, "/console/").await;
    assert_eq!(status, 303, "a signed-out session no longer works");
}
on_both!(sign_in_session_and_headers);

/// Failed sign-ins count like failed API keys: past `max_failures` the
/// same key from the same source is refused unchecked (429).
async fn sign_in_is_throttled(s: Server) {
    let statuses: Vec<u16> = {
        let mut out = Vec::new();
        for _ in 0..3 {
            let r = client()
                .post(s.url("/console/signin"))
                .form(&[("api_key", "bk_wrong-key-11111111111111")])
                .send()
                .await
                .unwrap();
            out.push(r.status().as_u16());
        }
        out
    };
    assert_eq!(statuses, [401, 401, 429]);
}
on_both!(sign_in_is_throttled, |c: &mut bridle_server::Config| c
    .auth_throttle
    .max_failures =
    2);

async fn csrf_auditor_and_visibility(s: Server) {
    let people = s.people().await;
    s.load("procurement-bot").await;
    let (alice, _) = sign_in(&s, &people["alice"]).await;
    let path = "/console/agents/procurement-bot";
    let (status, _, page) = get(&s, &alice, path).await;
    assert_eq!(status, 200);
    assert!(
        page.contains(">Suspend<") && page.contains(">Retire<"),
        "the owner's buttons"
    );
    let token = csrf(&page);
    let lifecycle = "/console/agents/procurement-bot/lifecycle";
    // No token, a wrong token, a cross-site origin: refused, nothing changes.
    let suspend = [("action", "suspend"), ("reason", "test")];
    let zeros = "0".repeat(32);
    assert_eq!(post(&s, &alice, lifecycle, &suspend).await, 403);
    let wrong = [
        ("csrf", zeros.as_str()),
        ("action", "suspend"),
        ("reason", "t"),
    ];
    assert_eq!(post(&s, &alice, lifecycle, &wrong).await, 403);
    let cross = client()
        .post(s.url(lifecycle))
        .header("cookie", format!("bridle_session={alice}"))
        .header("origin", "https://evil.example")
        .form(&[
            ("csrf", token.as_str()),
            ("action", "suspend"),
            ("reason", "t"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(cross.status(), 403);
    let record = s
        .get("/v1/agents/procurement-bot", ADMIN_KEY)
        .await
        .expect(200);
    assert_eq!(record["state"], "active", "nothing changed");

    // The auditor sees the record but gets no buttons, and a direct POST
    // (with its own valid token) is refused by the API's proof.
    let (ann, _) = sign_in(&s, &people["ann"]).await;
    let (status, _, page) = get(&s, &ann, path).await;
    assert_eq!(status, 200);
    assert!(!page.contains(">Suspend<") && !page.contains(">Retire<"));
    let ann_token = csrf(&page);
    let form = [
        ("csrf", ann_token.as_str()),
        ("action", "suspend"),
        ("reason", "t"),
    ];
    assert_eq!(post(&s, &ann, lifecycle, &form).await, 403);
    let record = s
        .get("/v1/agents/procurement-bot", ADMIN_KEY)
        .await
        .expect(200);
    assert_eq!(record["state"], "active");

    // A pending approval: the auditor sees it but may not vote.
    let token_agent = s.agent_token("procurement-bot").await;
    let big = json!({"vendor": "acme", "amount": 7000});
    let first = s.decide(&token_agent, CREATE, big.clone()).await;
    assert_decision(&first, "approval_required", "approval_required");
    let approval = first["approval_id"].as_str().unwrap().to_owned();
    let (_, _, inbox) = get(&s, &ann, "/console/approvals").await;
    assert!(inbox.contains(&approval) && !inbox.contains(">Approve<"));
    let vote = format!("/console/approvals/{approval}/vote");
    let form = [("csrf", ann_token.as_str()), ("vote", "approve")];
    assert_eq!(post(&s, &ann, &vote, &form).await, 403);

    // frank votes from the console; the agent's next identical request is allowed.
    let (frank, _) = sign_in(&s, &people["frank"]).await;
    let (_, _, inbox) = get(&s, &frank, "/console/approvals").await;
    assert!(
        inbox.contains(">Approve<") && inbox.contains("7000"),
        "{inbox}"
    );
    let frank_token = csrf(&inbox);
    assert_eq!(
        post(&s, &frank, &vote, &[("vote", "approve")]).await,
        403,
        "no CSRF token"
    );
    let form = [
        ("csrf", frank_token.as_str()),
        ("vote", "approve"),
        ("comment", "ok"),
    ];
    assert_eq!(post(&s, &frank, &vote, &form).await, 303);
    assert_decision(
        &s.decide(&token_agent, CREATE, big).await,
        "allow",
        "approved",
    );

    // Someone else's agent does not exist for mallory.
    let (mallory, _) = sign_in(&s, &people["mallory"]).await;
    let (status, _, page) = get(&s, &mallory, path).await;
    assert_eq!(status, 404);
    assert!(page.contains("not found"));
    let (_, _, page) = get(&s, &mallory, "/console/").await;
    assert!(!page.contains("procurement-bot"));

    // The owner suspends from the console.
    let form = [
        ("csrf", token.as_str()),
        ("action", "suspend"),
        ("reason", "test"),
    ];
    assert_eq!(post(&s, &alice, lifecycle, &form).await, 303);
    let record = s
        .get("/v1/agents/procurement-bot", ADMIN_KEY)
        .await
        .expect(200);
    assert_eq!(record["state"], "suspended");

    // A deactivated principal's session stops working at once.
    s.post("/v1/principals/alice/deactivate", ADMIN_KEY, json!({}))
        .await
        .expect(200);
    let (status, _, _) = get(&s, &alice, "/console/").await;
    assert_eq!(status, 303, "sent back to sign in");
    let form = [
        ("csrf", token.as_str()),
        ("action", "resume"),
        ("reason", "t"),
    ];
    assert_eq!(post(&s, &alice, lifecycle, &form).await, 303);
    let record = s
        .get("/v1/agents/procurement-bot", ADMIN_KEY)
        .await
        .expect(200);
    assert_eq!(record["state"], "suspended", "nothing changed");

    // Bad input is a readable page, never a 500.
    let (status, _, page) = get(&s, &frank, "/console/audit?since=yesterday").await;
    assert_eq!(status, 400);
    assert!(page.contains("not a date"));
}
on_both!(csrf_auditor_and_visibility);

/// A change to the record waiting in the inbox shows its diff and what
/// replaying history says, and the change's submitter may not approve it.
async fn change_approvals_show_their_diff(s: Server) {
    let people = s.people().await;
    let yaml = "agent: pay-bot\nowner: alice\npurpose: Pay approved invoices\nenvironment: prod\nexpires: 2099-12-31\nreview_every: 90d\ntools:\n  - name: payments.wire\n    access: write\n    args:\n      amount: { min: 1, max: 1000000 }\n";
    let r = s.apply(&people["alice"], yaml).await.expect(202);
    let approval = r["approval_id"].as_str().unwrap().to_owned();
    let (admin, _) = sign_in(&s, ADMIN_KEY).await;
    let (status, _, inbox) = get(&s, &admin, "/console/approvals").await;
    assert_eq!(status, 200);
    assert!(inbox.contains(&approval), "{inbox}");
    assert!(
        inbox.contains("+  - name: payments.wire"),
        "the diff: {inbox}"
    );
    assert!(inbox.contains("change control"), "{inbox}");
    assert!(inbox.contains(">Approve<"), "the admin may vote");
    // alice submitted it: she sees it, without buttons.
    let (alice, _) = sign_in(&s, &people["alice"]).await;
    let (_, _, inbox) = get(&s, &alice, "/console/approvals").await;
    assert!(
        inbox.contains(&approval) && !inbox.contains(">Approve<"),
        "{inbox}"
    );
    // The fragment htmx polls is the same list without the layout.
    let (status, _, fragment) = get(&s, &admin, "/console/approvals/pending").await;
    assert_eq!(status, 200);
    assert!(fragment.contains(&approval) && !fragment.contains("<h1"));
}
on_both!(
    change_approvals_show_their_diff,
    |c: &mut bridle_server::Config| {
        c.change_control = bridle_server::config::ChangeControl::default();
    }
);

/// Over https the session cookie is `Secure` too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cookie_is_secure_over_https() {
    let s = Server::start_https(crate::common::Backend::Sqlite, |c| c.issuer = None).await;
    let cert = s.tls.as_ref().unwrap();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .tls_certs_only([cert.ca()])
        .build()
        .unwrap();
    let r = http
        .post(s.url("/console/signin"))
        .form(&[("api_key", ADMIN_KEY)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let header = r.headers()["set-cookie"].to_str().unwrap();
    for attr in ["Secure", "HttpOnly", "SameSite=Strict"] {
        assert!(header.contains(attr), "{attr} in {header}");
    }
}

/// An unknown console page is an HTML page with the console's headers.
async fn unknown_pages_are_pages(s: Server) {
    let (cookie, _) = sign_in(&s, ADMIN_KEY).await;
    for path in [
        "/console/nope",
        "/console/agents/no-such-agent",
        "/console/audit/999999",
    ] {
        let (status, headers, page) = get(&s, &cookie, path).await;
        assert_eq!(status, 404, "{path}");
        assert!(
            headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        assert!(headers.contains_key("content-security-policy"));
        assert!(page.contains("<h1>404"), "{page}");
    }
}
on_both!(unknown_pages_are_pages);

/// A session unused past the idle limit, or past its absolute end, is
/// refused and deleted.
async fn sessions_expire(s: Server) {
    let stamp = "2000-01-01T00:00:00.000000Z";
    for column in ["last_seen_at", "expires_at"] {
        let (cookie, _) = sign_in(&s, ADMIN_KEY).await;
        assert_eq!(get(&s, &cookie, "/console/").await.0, 200);
        crate::common::sql(
            &s.db_url,
            s.backend,
            &format!("UPDATE console_sessions SET {column} = '{stamp}'"),
        )
        .await;
        let (status, headers, _) = get(&s, &cookie, "/console/").await;
        assert_eq!(status, 303, "{column} in the past");
        assert_eq!(headers["location"], "/console/signin");
        let left = crate::common::sql_text(
            &s.db_url,
            s.backend,
            "SELECT CAST(COUNT(*) AS TEXT) FROM console_sessions",
        )
        .await;
        assert_eq!(left, "0", "the ended session is deleted");
    }
}
on_both!(sessions_expire);
