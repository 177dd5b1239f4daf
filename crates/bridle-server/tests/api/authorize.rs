//! The authorization code grant for interactive clients: the client's
//! metadata document served from a listener of the test (loopback http,
//! with the development switch on), the owner's consent in the console,
//! PKCE S256, one-time codes, `iss` on every redirect back, and the token
//! being the agent's ordinary token.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::common::{ADMIN_KEY, People, Resp, Server, assert_decision, jwt_parts};
use crate::console::{client, csrf, get, sign_in};

const AGENT: &str = "procurement-bot";
const VERIFIER: &str = "a-verifier-of-forty-three-characters-or-more_0123456789";
const REDIRECT: &str = "http://127.0.0.1:9/callback";

fn loopback(c: &mut bridle_server::Config) {
    c.oauth.client_metadata_allow_loopback_http = true;
}

fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// Serve `doc` (with `{url}` replaced by the document's own URL) on a
/// port of 127.0.0.1; answers the document's URL.
async fn serve_document(doc: Value) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/client.json", listener.local_addr().unwrap());
    let text = doc.to_string().replace("{url}", &url);
    let app = axum::Router::new().route(
        "/client.json",
        axum::routing::get(move || {
            let text = text.clone();
            async move { ([("content-type", "application/json")], text) }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

/// A well-formed client's document.
async fn inspector() -> String {
    serve_document(json!({
        "client_id": "{url}", "client_name": "Test Inspector",
        "redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none",
    }))
    .await
}

/// The `Location` of a response, if any.
fn location(r: &reqwest::Response) -> Option<String> {
    r.headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_owned())
}

/// `GET /oauth/authorize` with `params` (not followed): status, Location, body.
async fn authorize(s: &Server, params: &[(&str, &str)]) -> (u16, Option<String>, String) {
    let r = client()
        .get(s.url("/oauth/authorize"))
        .query(params)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let loc = location(&r);
    (status, loc, r.text().await.unwrap())
}

/// The parameters of a good request from `client_id`.
fn request<'a>(client_id: &'a str, challenge: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", REDIRECT),
        ("state", "st-123"),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
    ]
}

const RESOURCE: &str = "https://mcp.example.com/mcp";

async fn introspect(s: &Server, token: &str) -> Value {
    s.send(
        s.req(reqwest::Method::POST, "/oauth/introspect", ADMIN_KEY)
            .form(&[("token", token)]),
    )
    .await
    .expect(200)
    .json
}

/// A query parameter of a URL.
fn param(url: &str, name: &str) -> Option<String> {
    reqwest::Url::parse(url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// Start a request: the consent page's request id.
async fn start(s: &Server, client_id: &str) -> String {
    start_with(s, client_id, &[]).await
}

async fn start_with(s: &Server, client_id: &str, extra: &[(&str, &str)]) -> String {
    let c = challenge(VERIFIER);
    let mut params = request(client_id, &c);
    params.extend_from_slice(extra);
    let (status, loc, body) = authorize(s, &params).await;
    assert_eq!(status, 303, "{body}");
    let loc = loc.unwrap();
    let id = loc
        .strip_prefix("/console/oauth/consent?request=")
        .unwrap_or_else(|| panic!("{loc}"));
    id.to_owned()
}

/// POST the consent form as the session `cookie`: status and Location.
async fn consent(s: &Server, cookie: &str, form: &[(&str, &str)]) -> (u16, Option<String>) {
    let r = client()
        .post(s.url("/console/oauth/consent"))
        .header("cookie", format!("bridle_session={cookie}"))
        .form(form)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), location(&r))
}

/// Sign in as `who`, open the consent page and answer `decision` for
/// `AGENT`: the redirect back to the client.
async fn answer(s: &Server, key: &str, request: &str, decision: &str) -> String {
    let (cookie, _) = sign_in(s, key).await;
    let (status, _, page) = get(
        s,
        &cookie,
        &format!("/console/oauth/consent?request={request}"),
    )
    .await;
    assert_eq!(status, 200, "{page}");
    let token = csrf(&page);
    let (status, loc) = consent(
        s,
        &cookie,
        &[
            ("csrf", &token),
            ("request", request),
            ("agent", AGENT),
            ("decision", decision),
        ],
    )
    .await;
    assert_eq!(status, 303);
    loc.unwrap()
}

/// `POST /v1/agents/{AGENT}/{op}` as admin.
async fn lifecycle(s: &Server, op: &str, reason: &str) {
    s.post(
        &format!("/v1/agents/{AGENT}/{op}"),
        ADMIN_KEY,
        json!({ "reason": reason }),
    )
    .await
    .expect(200);
}

/// The token is no credential at `/v1/decisions` (401, not a decision).
async fn refused_at_decisions(s: &Server, access: &str) {
    let body = json!({"action": "procurement.list_vendors", "args": {}});
    s.send(
        s.req(reqwest::Method::POST, "/v1/decisions", access)
            .json(&body),
    )
    .await
    .problem(401);
}

/// `POST /oauth/token` with `form`.
async fn token_form(s: &Server, form: &[(&str, &str)]) -> Resp {
    s.send(s.http.post(s.url("/oauth/token")).form(form)).await
}

/// Allow `request` for `AGENT` as the session `cookie`.
async fn allow_for_agent(
    s: &Server,
    cookie: &str,
    csrf: &str,
    request: &str,
) -> (u16, Option<String>) {
    let form = [
        ("csrf", csrf),
        ("request", request),
        ("agent", AGENT),
        ("decision", "allow"),
    ];
    consent(s, cookie, &form).await
}

async fn redeem(s: &Server, client_id: &str, code: &str, verifier: &str) -> Resp {
    token_form(
        s,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("client_id", client_id),
            ("code_verifier", verifier),
        ],
    )
    .await
}

/// Everything up to a code from alice's consent.
async fn code(s: &Server, people: &People, client_id: &str) -> String {
    let request = start(s, client_id).await;
    let back = answer(s, &people["alice"], &request, "allow").await;
    param(&back, "code").unwrap()
}

async fn setup(s: &Server) -> (People, String) {
    let people = s.people().await;
    s.load(AGENT).await;
    (people, inspector().await)
}

async fn full_flow(s: Server) {
    let (people, client_id) = setup(&s).await;
    let request = start_with(&s, &client_id, &[("resource", RESOURCE)]).await;
    // Not signed in: to the sign-in page, and back after it.
    let (status, headers, _) = get(
        &s,
        "0123456789abcdef0123456789abcdef",
        &format!("/console/oauth/consent?request={request}"),
    )
    .await;
    assert_eq!(status, 303);
    let next = format!("/console/oauth/consent?request={request}");
    let signin = headers["location"].to_str().unwrap().to_owned();
    assert!(signin.starts_with("/console/signin?next="), "{signin}");
    let (_, _, page) = get(&s, "", &signin).await;
    assert!(
        page.contains(&format!("name=\"next\" value=\"{next}\"")),
        "{page}"
    );
    let r = client()
        .post(s.url("/console/signin"))
        .form(&[("api_key", &people["alice"]), ("next", &next)])
        .send()
        .await
        .unwrap();
    assert_eq!(location(&r).as_deref(), Some(next.as_str()));
    // Only a console path is a place to go back to.
    for unsafe_next in [
        "https://evil.example/",
        "//evil.example/",
        "/console/../v1/keys",
        "/console/%2e%2e/v1/keys",
        "/v1/keys",
    ] {
        let r = client()
            .post(s.url("/console/signin"))
            .form(&[("api_key", &people["alice"]), ("next", unsafe_next)])
            .send()
            .await
            .unwrap();
        assert_eq!(location(&r).as_deref(), Some("/console/"), "{unsafe_next}");
    }

    // The page names the client, its host, where it goes back to and
    // what for, and offers alice's active agents.
    let (cookie, _) = sign_in(&s, &people["alice"]).await;
    let (status, headers, page) = get(&s, &cookie, &next).await;
    assert_eq!(status, 200);
    for shown in [
        "Test Inspector",
        "127.0.0.1",
        &client_id,
        REDIRECT,
        RESOURCE,
        AGENT,
        "Allow",
        "Deny",
    ] {
        assert!(page.contains(shown), "{shown} on the page");
    }
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("form-action 'self' http://127.0.0.1:9"),
        "{csp}"
    );
    let token = csrf(&page);
    let (status, back) = allow_for_agent(&s, &cookie, &token, &request).await;
    assert_eq!(status, 303);
    let back = back.unwrap();
    assert!(back.starts_with(&format!("{REDIRECT}?")), "{back}");
    assert_eq!(param(&back, "state").as_deref(), Some("st-123"));
    assert_eq!(param(&back, "iss"), Some(s.base.clone()));
    let code = param(&back, "code").unwrap();
    assert!(URL_SAFE_NO_PAD.decode(&code).unwrap().len() >= 16, "{code}");
    // Only its hash is stored.
    let stored =
        crate::common::sql_text(&s.db_url, s.backend, "SELECT code_hash FROM oauth_codes").await;
    assert_ne!(stored, code);
    // A request is decided once.
    let (status, _) = allow_for_agent(&s, &cookie, &token, &request).await;
    assert_eq!(status, 404);

    // The resource consented to is the one redeemed for.
    let r = token_form(
        &s,
        &[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT),
            ("client_id", client_id.as_str()),
            ("code_verifier", VERIFIER),
            ("resource", "https://other.example/"),
        ],
    )
    .await
    .expect(400);
    assert_eq!(r["error"], "invalid_target");
    let code = crate::authorize::code(&s, &people, &client_id).await;
    let request = start_with(&s, &client_id, &[("resource", RESOURCE)]).await;
    let code_for_resource = param(
        &answer(&s, &people["alice"], &request, "allow").await,
        "code",
    )
    .unwrap();
    let t = redeem(&s, &client_id, &code_for_resource, VERIFIER)
        .await
        .expect(200);
    let (_, claims) = jwt_parts(t["access_token"].as_str().unwrap());
    assert_eq!(claims["aud"], RESOURCE);
    assert_eq!(
        introspect(&s, t["access_token"].as_str().unwrap()).await["active"],
        true
    );

    let t = redeem(&s, &client_id, &code, VERIFIER).await.expect(200);
    assert_eq!(t["token_type"], "Bearer");
    assert!(t.json.get("refresh_token").is_none(), "no refresh tokens");
    let access = t["access_token"].as_str().unwrap().to_owned();
    let (_, claims) = jwt_parts(&access);
    assert_eq!(claims["sub"], AGENT);
    assert_eq!(claims["client_id"], client_id.as_str());
    assert_eq!(claims["aud"], s.state.config.audience());
    // The agent's ordinary token: decisions take it.
    let d = s
        .decide_on(&access, "procurement.list_vendors", json!({}), None)
        .await;
    assert_decision(&d, "allow", "granted");
    // Consent and issuance are audited.
    let events = s
        .audit(ADMIN_KEY, &format!("agent={AGENT}&type=token"))
        .await;
    assert!(events.iter().any(|e| e["actor"] == "principal:alice"
        && e["detail"]["op"] == "consent"
        && e["detail"]["decision"] == "allow"
        && e["detail"]["client_id"] == client_id.as_str()));
    assert!(events.iter().any(|e| e["detail"]["op"] == "issue"
        && e["detail"]["grant_type"] == "authorization_code"
        && e["detail"]["consented_by"] == "alice"));
    // Retiring the agent revokes it like any of its tokens.
    lifecycle(&s, "retire", "done").await;
    refused_at_decisions(&s, &access).await;
    assert_eq!(introspect(&s, &access).await["active"], false);
}
on_both!(full_flow, super::loopback);

async fn deny_goes_back_with_access_denied(s: Server) {
    let (people, client_id) = setup(&s).await;
    let request = start(&s, &client_id).await;
    let back = answer(&s, &people["alice"], &request, "deny").await;
    assert_eq!(param(&back, "error").as_deref(), Some("access_denied"));
    assert_eq!(param(&back, "state").as_deref(), Some("st-123"));
    assert_eq!(param(&back, "iss"), Some(s.base.clone()));
    assert!(param(&back, "code").is_none());
    let events = s.audit(ADMIN_KEY, "type=token").await;
    assert!(events.iter().any(|e| e["actor"] == "principal:alice"
        && e["detail"]["op"] == "consent"
        && e["detail"]["decision"] == "deny"));
}
on_both!(deny_goes_back_with_access_denied, super::loopback);

async fn only_s256_pkce(s: Server) {
    let (_, client_id) = setup(&s).await;
    let c = challenge(VERIFIER);
    let cases: [(&str, Option<&str>, Option<&str>); 4] = [
        ("plain", Some(VERIFIER), Some("plain")),
        ("no method", Some(&c), None),
        ("no challenge", None, Some("S256")),
        ("not a challenge", Some("short"), Some("S256")),
    ];
    for (what, challenge, method) in cases {
        let mut params: Vec<(&str, &str)> = request(&client_id, "")
            .into_iter()
            .filter(|(k, _)| !k.starts_with("code_challenge"))
            .collect();
        if let Some(ch) = challenge {
            params.push(("code_challenge", ch));
        }
        if let Some(m) = method {
            params.push(("code_challenge_method", m));
        }
        let (status, loc, _) = authorize(&s, &params).await;
        assert_eq!(status, 303, "{what}");
        let loc = loc.unwrap();
        assert!(loc.starts_with(REDIRECT), "{what}: {loc}");
        assert_eq!(
            param(&loc, "error").as_deref(),
            Some("invalid_request"),
            "{what}"
        );
        assert_eq!(param(&loc, "state").as_deref(), Some("st-123"), "{what}");
        assert_eq!(param(&loc, "iss"), Some(s.base.clone()), "{what}");
    }
    // `response_type` other than code goes back too, with `iss`.
    let mut params = request(&client_id, &c);
    params[0] = ("response_type", "token");
    let (_, loc, _) = authorize(&s, &params).await;
    let loc = loc.unwrap();
    assert_eq!(
        param(&loc, "error").as_deref(),
        Some("unsupported_response_type")
    );
    assert_eq!(param(&loc, "iss"), Some(s.base.clone()));
}
on_both!(only_s256_pkce, super::loopback);

async fn a_wrong_verifier_burns_the_code(s: Server) {
    let (people, client_id) = setup(&s).await;
    let code = code(&s, &people, &client_id).await;
    let other = "another-verifier-of-forty-three-characters-or-more_0123";
    let r = redeem(&s, &client_id, &code, other).await.expect(400);
    assert_eq!(r["error"], "invalid_grant");
    // Consumed: the right verifier afterwards is refused too.
    let r = redeem(&s, &client_id, &code, VERIFIER).await.expect(400);
    assert_eq!(r["error"], "invalid_grant");
    // A verifier outside RFC 7636's shape is a bad request.
    let code = crate::authorize::code(&s, &people, &client_id).await;
    let r = redeem(&s, &client_id, &code, "short").await.expect(400);
    assert_eq!(r["error"], "invalid_request");
}
on_both!(a_wrong_verifier_burns_the_code, super::loopback);

async fn a_reused_code_is_refused_and_revokes_its_token(s: Server) {
    let (people, client_id) = setup(&s).await;
    let code = code(&s, &people, &client_id).await;
    let t = redeem(&s, &client_id, &code, VERIFIER).await.expect(200);
    let access = t["access_token"].as_str().unwrap().to_owned();
    let d = s
        .decide_on(&access, "procurement.list_vendors", json!({}), None)
        .await;
    assert_decision(&d, "allow", "granted");
    let r = redeem(&s, &client_id, &code, VERIFIER).await.expect(400);
    assert_eq!(r["error"], "invalid_grant");
    refused_at_decisions(&s, &access).await;
    let events = s.audit(ADMIN_KEY, "type=token").await;
    assert!(events.iter().any(|e| e["detail"]["op"] == "revoke"
        && e["detail"]["reason"] == "authorization code presented again"));
}
on_both!(
    a_reused_code_is_refused_and_revokes_its_token,
    super::loopback
);

async fn expired_and_mismatched_codes_are_refused(s: Server) {
    let (people, client_id) = setup(&s).await;
    let code = crate::authorize::code(&s, &people, &client_id).await;
    crate::common::sql(
        &s.db_url,
        s.backend,
        "UPDATE oauth_codes SET expires_at = '2000-01-01T00:00:00.000000Z'",
    )
    .await;
    let r = redeem(&s, &client_id, &code, VERIFIER).await.expect(400);
    assert_eq!(r["error"], "invalid_grant");
    assert!(
        r["error_description"].as_str().unwrap().contains("expired"),
        "{}",
        r.text
    );

    // Bound to the redirect URI and the client.
    let code = crate::authorize::code(&s, &people, &client_id).await;
    let r = token_form(
        &s,
        &[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", "http://127.0.0.1:9/other"),
            ("client_id", client_id.as_str()),
            ("code_verifier", VERIFIER),
        ],
    )
    .await
    .expect(400);
    assert_eq!(r["error"], "invalid_grant");
    let code = crate::authorize::code(&s, &people, &client_id).await;
    let r = redeem(&s, "https://other.example/client.json", &code, VERIFIER)
        .await
        .expect(400);
    assert_eq!(r["error"], "invalid_grant");
    // A client secret has no place here.
    let r = token_form(
        &s,
        &[
            ("grant_type", "authorization_code"),
            ("code", "x"),
            ("client_secret", "s"),
        ],
    )
    .await
    .expect(401);
    assert_eq!(r["error"], "invalid_client");
    let r = token_form(&s, &[("grant_type", "authorization_code")])
        .await
        .expect(400);
    assert_eq!(r["error"], "invalid_request");
}
on_both!(expired_and_mismatched_codes_are_refused, super::loopback);

async fn untrusted_redirects_get_a_page(s: Server) {
    let (_, client_id) = setup(&s).await;
    let c = challenge(VERIFIER);
    // A redirect URI the document does not list: a page, never a redirect.
    let mut params = request(&client_id, &c);
    params[2] = ("redirect_uri", "https://evil.example/cb");
    let (status, loc, body) = authorize(&s, &params).await;
    assert_eq!(status, 400);
    assert!(loc.is_none());
    assert!(body.contains("redirect_uri"), "{body}");
    assert!(body.contains("<html"), "{body}");
    // Even with the other errors present.
    params[0] = ("response_type", "token");
    let (status, loc, _) = authorize(&s, &params).await;
    assert_eq!((status, loc), (400, None));
    // A document that names another client id.
    let liar = serve_document(json!({
        "client_id": "http://127.0.0.1:1/someone-else.json",
        "redirect_uris": [REDIRECT],
    }))
    .await;
    let (status, loc, body) = authorize(&s, &request(&liar, &c)).await;
    assert_eq!((status, loc.is_none()), (400, true));
    assert!(body.contains("client_id"), "{body}");
    // No document at all, and no client id.
    let (status, loc, _) = authorize(&s, &request("http://127.0.0.1:1/none.json", &c)).await;
    assert_eq!((status, loc.is_none()), (400, true));
    let (status, loc, _) = authorize(&s, &[("response_type", "code")]).await;
    assert_eq!((status, loc.is_none()), (400, true));
}
on_both!(untrusted_redirects_get_a_page, super::loopback);

async fn plain_http_documents_need_the_switch(s: Server) {
    let (_, client_id) = setup(&s).await;
    let (status, loc, body) = authorize(&s, &request(&client_id, &challenge(VERIFIER))).await;
    assert_eq!((status, loc.is_none()), (400, true));
    assert!(body.contains("https"), "{body}");
}
on_both!(plain_http_documents_need_the_switch);

async fn only_the_owner_consents(s: Server) {
    let (people, client_id) = setup(&s).await;
    let request = start(&s, &client_id).await;
    // Bob owns other agents, not this one: it is not offered to him...
    s.load("swe-bot").await;
    let (cookie, _) = sign_in(&s, &people["bob"]).await;
    let (status, _, page) = get(
        &s,
        &cookie,
        &format!("/console/oauth/consent?request={request}"),
    )
    .await;
    assert_eq!(status, 200);
    assert!(!page.contains(AGENT), "{page}");
    assert!(page.contains("swe-bot"), "{page}");
    let token = csrf(&page);
    // ...and a direct POST for it is refused, leaving the request pending.
    let (status, _) = allow_for_agent(&s, &cookie, &token, &request).await;
    assert_eq!(status, 403);
    // Neither may an admin consent for an agent it does not own.
    let (admin, _) = sign_in(&s, ADMIN_KEY).await;
    let (_, _, page) = get(
        &s,
        &admin,
        &format!("/console/oauth/consent?request={request}"),
    )
    .await;
    let (status, _) = allow_for_agent(&s, &admin, &csrf(&page), &request).await;
    assert_eq!(status, 403);
    // Without the CSRF token, even the owner is refused.
    let (alice, _) = sign_in(&s, &people["alice"]).await;
    let (status, _) = consent(
        &s,
        &alice,
        &[
            ("request", &request),
            ("agent", AGENT),
            ("decision", "allow"),
        ],
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = consent(
        &s,
        &alice,
        &[
            ("csrf", "0123456789abcdef0123456789abcdef"),
            ("request", &request),
            ("agent", AGENT),
            ("decision", "allow"),
        ],
    )
    .await;
    assert_eq!(status, 403);
    // A cross-site POST is refused before anything else.
    let (_, _, page) = get(
        &s,
        &alice,
        &format!("/console/oauth/consent?request={request}"),
    )
    .await;
    let token = csrf(&page);
    let r = client()
        .post(s.url("/console/oauth/consent"))
        .header("cookie", format!("bridle_session={alice}"))
        .header("origin", "https://evil.example")
        .form(&[
            ("csrf", token.as_str()),
            ("request", &request),
            ("agent", AGENT),
            ("decision", "allow"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // The owner still can.
    let (status, back) = allow_for_agent(&s, &alice, &token, &request).await;
    assert_eq!(status, 303);
    assert!(param(&back.unwrap(), "code").is_some());
}
on_both!(only_the_owner_consents, super::loopback);

async fn a_suspended_agent_cannot_redeem(s: Server) {
    let (people, client_id) = setup(&s).await;
    let code = code(&s, &people, &client_id).await;
    lifecycle(&s, "suspend", "incident").await;
    let r = redeem(&s, &client_id, &code, VERIFIER).await.expect(400);
    assert_eq!(r["error"], "unauthorized_client");
    // And a suspended agent is not offered for consent.
    let request = start(&s, &client_id).await;
    let (cookie, _) = sign_in(&s, &people["alice"]).await;
    let (_, _, page) = get(
        &s,
        &cookie,
        &format!("/console/oauth/consent?request={request}"),
    )
    .await;
    assert!(!page.contains(&format!("value=\"{AGENT}\"")), "{page}");
}
on_both!(a_suspended_agent_cannot_redeem, super::loopback);
