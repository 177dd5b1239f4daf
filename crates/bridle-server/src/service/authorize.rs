//! The authorization code grant (RFC 6749 §4.1) with PKCE (RFC 7636, S256
//! only) for interactive clients identified by a client metadata document
//! ([`crate::client_metadata`]): the request is checked and kept
//! (`begin`), the agent's owner consents or refuses in the console
//! (`decide`), and the token endpoint redeems the code once (`redeem`).
//!
//! Who may consent: the agent's current owner, and nobody else — not an
//! admin either, who would otherwise let a client act as an agent its
//! owner never saw. An admin who must can become the owner through a
//! manifest change, which is itself controlled and audited.

use bridle_core::audit::EventType;
use bridle_core::engine::AgentState;
use bridle_core::id::{AgentId, Jti};
use bridle_store::{
    AgentRow, AuthorizationCodeRow, AuthorizationRequestRow, AuthorizationStore as _,
    CredentialStore as _, Principal, Redeemed, RegistryRead as _,
};
use jiff::{SignedDuration, Timestamp};

use super::ServiceError;
use crate::client_metadata;
use crate::state::AppState;
use crate::tokens::{hash_secret, random_token};

/// How long a request waits for consent.
pub const REQUEST_TTL: SignedDuration = SignedDuration::from_mins(10);
/// How long a code may be redeemed after consent.
pub const CODE_TTL: SignedDuration = SignedDuration::from_secs(60);
/// Consumed codes are kept this long past expiry, so that a late second
/// redemption is still recognised as reuse (and revokes the token).
pub const CODE_KEPT: SignedDuration = SignedDuration::from_hours(24);
/// The longest `state` a client may send.
const STATE_MAX: usize = 1024;

/// The parameters of `GET /oauth/authorize`, as sent.
#[derive(Debug, Default)]
pub struct AuthorizeParams<'a> {
    pub client_id: Option<&'a str>,
    pub redirect_uri: Option<&'a str>,
    pub response_type: Option<&'a str>,
    pub state: Option<&'a str>,
    pub code_challenge: Option<&'a str>,
    pub code_challenge_method: Option<&'a str>,
    pub resource: Option<&'a str>,
    pub scope: Option<&'a str>,
}

/// An authorization request that is not taken.
#[derive(Debug)]
pub enum Refusal {
    /// The redirect URI is not (yet) known to be the client's: the
    /// browser is shown an error page, never redirected (no open redirect).
    Page(String),
    /// The redirect URI is the client's: the error goes back to it.
    Redirect(String),
}

/// `redirect_uri` with the response parameters added to its query, and
/// `iss` (RFC 9207) last.
pub fn redirect_url(state: &AppState, redirect_uri: &str, params: &[(&str, &str)]) -> String {
    let mut url = match reqwest::Url::parse(redirect_uri) {
        Ok(u) => u,
        // Checked when the request was kept; a URL that no longer parses
        // is answered without parameters rather than with a guess.
        Err(_) => return redirect_uri.to_owned(),
    };
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in params {
            q.append_pair(k, v);
        }
        q.append_pair("iss", &state.config.issuer());
    }
    url.into()
}

/// An error response for the client's redirect URI (RFC 6749 §4.1.2.1).
fn error_redirect(
    state: &AppState,
    redirect_uri: &str,
    client_state: Option<&str>,
    error: &str,
    description: &str,
) -> Refusal {
    let mut params = vec![("error", error), ("error_description", description)];
    if let Some(s) = client_state {
        params.push(("state", s));
    }
    Refusal::Redirect(redirect_url(state, redirect_uri, &params))
}

/// Whether `s` is a PKCE value of the RFC 7636 alphabet and length.
fn pkce_shaped(s: &str, min: usize) -> bool {
    (min..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// `resource` (RFC 8707) as the token's audience: an absolute URI
/// without a fragment, the rule of every grant.
pub fn valid_resource(r: &str) -> bool {
    r.contains("://") && !r.contains('#')
}

/// Check an authorization request and keep it for consent: the id of the
/// consent page's request.
pub async fn begin(
    state: &AppState,
    p: &AuthorizeParams<'_>,
) -> Result<Result<String, Refusal>, ServiceError> {
    let page = |why: &str| Ok(Err(Refusal::Page(why.to_owned())));
    let Some(client_id) = p.client_id else {
        return page("client_id is missing");
    };
    let client = match client_metadata::fetch(&state.config.oauth, client_id).await {
        Ok(c) => c,
        Err(e) => return page(&e.to_string()),
    };
    let Some(redirect_uri) = p.redirect_uri else {
        return page("redirect_uri is missing");
    };
    if !client.redirect_uris.iter().any(|u| u == redirect_uri) {
        return page(&format!(
            "redirect_uri `{redirect_uri}` is not one of the client's `redirect_uris`"
        ));
    }
    if reqwest::Url::parse(redirect_uri).is_err() || redirect_uri.contains('#') {
        return page(&format!(
            "redirect_uri `{redirect_uri}` must be an absolute URL without a fragment"
        ));
    }
    if p.state.is_some_and(|s| s.len() > STATE_MAX) {
        return page(&format!("state is longer than {STATE_MAX} bytes"));
    }
    // From here on errors go back to the client.
    let back = |error: &str, description: &str| {
        Ok(Err(error_redirect(
            state,
            redirect_uri,
            p.state,
            error,
            description,
        )))
    };
    match p.response_type {
        Some("code") => {}
        Some(_) => return back("unsupported_response_type", "only `code` is supported"),
        None => return back("invalid_request", "response_type is missing"),
    }
    if p.code_challenge_method != Some("S256") {
        return back(
            "invalid_request",
            "PKCE is required with code_challenge_method `S256`",
        );
    }
    let Some(challenge) = p.code_challenge.filter(|c| pkce_shaped(c, 43)) else {
        return back(
            "invalid_request",
            "code_challenge is missing or not a base64url S256 challenge",
        );
    };
    if p.resource.is_some_and(|r| !valid_resource(r)) {
        return back(
            "invalid_target",
            "resource must be an absolute URI without a fragment",
        );
    }
    let scope = match bridle_core::delegation::narrow(None, p.scope) {
        Ok(s) => s,
        Err(e) => return back("invalid_scope", &e.to_string()),
    };
    let id = random_token(32);
    let now = Timestamp::now();
    state
        .store()
        .create_authorization_request(&AuthorizationRequestRow {
            id_hash: hash_secret(&id),
            client_id: client.client_id,
            client_name: client.client_name,
            redirect_uri: redirect_uri.to_owned(),
            state: p.state.map(str::to_owned),
            code_challenge: challenge.to_owned(),
            resource: p.resource.map(str::to_owned),
            scope,
            created_at: now,
            expires_at: now + REQUEST_TTL,
        })
        .await?;
    Ok(Ok(id))
}

/// The pending request the consent page's `request` id names, if it is
/// kept and not expired.
pub async fn pending(
    state: &AppState,
    request: &str,
) -> Result<Option<AuthorizationRequestRow>, ServiceError> {
    Ok(state
        .store()
        .authorization_request(&hash_secret(request), Timestamp::now())
        .await?)
}

/// Whether `row` can be given a token now: active and not expired.
async fn usable(state: &AppState, row: &AgentRow) -> Result<bool, ServiceError> {
    if row.state != AgentState::Active {
        return Ok(false);
    }
    let compiled = state.compiled(row).await?;
    let today = Timestamp::now()
        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .date();
    Ok(today <= compiled.manifest().expires)
}

/// The agents `p` may consent for: those it owns that are active and not
/// expired.
pub async fn consentable(state: &AppState, p: &Principal) -> Result<Vec<AgentRow>, ServiceError> {
    let mut out = Vec::new();
    for row in state.store().agents().await? {
        if row.owner == p.id && usable(state, &row).await? {
            out.push(row);
        }
    }
    Ok(out)
}

/// The owner's answer on the consent page.
#[derive(Debug)]
pub enum Consent {
    Allow(AgentId),
    Deny,
}

/// Decide a pending request as `p`: the URL the browser goes back to the
/// client with (`code` or `error=access_denied`, `state`, `iss`). Audited
/// either way. Refused (403) when `p` does not own the agent or the agent
/// cannot be given a token; not found when the request is not pending
/// (decided already, expired, never made).
pub async fn decide(
    state: &AppState,
    p: &Principal,
    request: &str,
    consent: Consent,
) -> Result<String, ServiceError> {
    if let Consent::Allow(agent) = &consent {
        let row = state.store().agent(agent).await?;
        let owned = row.filter(|r| r.owner == p.id);
        match owned {
            Some(r) if usable(state, &r).await? => {}
            _ => {
                return Err(ServiceError::Refused(format!(
                    "`{}` may consent only for an active agent it owns",
                    p.id
                )));
            }
        }
    }
    let now = Timestamp::now();
    let Some(req) = state
        .store()
        .take_authorization_request(&hash_secret(request), now)
        .await?
    else {
        return Err(ServiceError::NotFound(
            "the authorization request is unknown, expired or already decided".into(),
        ));
    };
    let mut params: Vec<(&str, &str)> = Vec::new();
    let code = random_token(32);
    let (agent, decision) = match &consent {
        Consent::Allow(agent) => {
            state
                .store()
                .create_authorization_code(&AuthorizationCodeRow {
                    code_hash: hash_secret(&code),
                    client_id: req.client_id.clone(),
                    redirect_uri: req.redirect_uri.clone(),
                    code_challenge: req.code_challenge.clone(),
                    agent: agent.clone(),
                    principal: p.id.clone(),
                    resource: req.resource.clone(),
                    scope: req.scope.clone(),
                    created_at: now,
                    expires_at: now + CODE_TTL,
                })
                .await?;
            params.push(("code", &code));
            (Some(agent), "allow")
        }
        Consent::Deny => {
            params.push(("error", "access_denied"));
            params.push(("error_description", "the owner refused"));
            (None, "deny")
        }
    };
    if let Some(s) = &req.state {
        params.push(("state", s));
    }
    let mut event = state.event(EventType::Token, &format!("principal:{}", p.id));
    event.agent = agent.map(ToString::to_string);
    event.detail = Some(serde_json::json!({
        "op": "consent", "decision": decision, "client_id": req.client_id,
        "client_name": req.client_name, "redirect_uri": req.redirect_uri,
        "resource": req.resource, "scope": req.scope,
    }));
    state.audit.append(event).await?;
    Ok(redirect_url(state, &req.redirect_uri, &params))
}

/// What the token endpoint was sent with `grant_type=authorization_code`.
#[derive(Debug)]
pub struct Redemption<'a> {
    pub code: &'a str,
    pub redirect_uri: &'a str,
    pub client_id: &'a str,
    pub code_verifier: &'a str,
    pub resource: Option<&'a str>,
}

/// A redemption refused with an OAuth error code.
#[derive(Debug)]
pub struct CodeRefused {
    pub error: &'static str,
    pub description: String,
}

fn refused(error: &'static str, description: impl Into<String>) -> CodeRefused {
    CodeRefused {
        error,
        description: description.into(),
    }
}

/// Whether `verifier` is the one `challenge` was made from (S256), in
/// constant time.
fn pkce_matches(verifier: &str, challenge: &str) -> bool {
    use base64::Engine as _;
    use sha2::{Digest as _, Sha256};
    use subtle::ConstantTimeEq as _;
    let made = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(Sha256::digest(verifier.as_bytes()));
    made.as_bytes().ct_eq(challenge.as_bytes()).into()
}

/// Revoke what was issued from a code presented twice (RFC 6749 §4.1.2),
/// audited.
async fn revoke_reused(state: &AppState, agent: &AgentId, jti: &Jti) -> Result<(), ServiceError> {
    let revoked = state.store().revoke_token(jti).await?;
    state.changed(bridle_store::Change::Tokens).await;
    let mut event = state.event(EventType::Token, "system:oauth");
    event.agent = Some(agent.to_string());
    event.detail = Some(serde_json::json!({
        "op": "revoke", "jti": jti, "revoked": revoked,
        "reason": "authorization code presented again",
    }));
    state.audit.append(event).await?;
    Ok(())
}

/// Redeem a code: consumed at once (whatever follows, it cannot be used
/// again), then checked against everything it is bound to. A code
/// presented a second time is refused and the token issued from it
/// revoked. A consumed code that does not check is audited.
pub async fn redeem(
    state: &AppState,
    r: &Redemption<'_>,
) -> Result<Result<AuthorizationCodeRow, CodeRefused>, ServiceError> {
    if !pkce_shaped(r.code_verifier, 43) {
        return Ok(Err(refused(
            "invalid_request",
            "code_verifier must be 43 to 128 characters of [A-Za-z0-9-._~]",
        )));
    }
    let hash = hash_secret(r.code);
    let now = Timestamp::now();
    let row = match state.store().redeem_authorization_code(&hash, now).await? {
        Redeemed::Fresh(row) => row,
        Redeemed::Unknown => return Ok(Err(refused("invalid_grant", "unknown code"))),
        Redeemed::Reused { agent, jti } => {
            if let Some(jti) = jti {
                revoke_reused(state, &agent, &jti).await?;
            }
            return Ok(Err(refused(
                "invalid_grant",
                "the code was already used; the token issued from it is revoked",
            )));
        }
    };
    let why = if now >= row.expires_at {
        Some(("invalid_grant", "the code has expired"))
    } else if row.client_id.as_str() != r.client_id {
        Some(("invalid_grant", "the code was issued to another client"))
    } else if row.redirect_uri != r.redirect_uri {
        Some((
            "invalid_grant",
            "redirect_uri differs from the authorization request's",
        ))
    } else if !pkce_matches(r.code_verifier, &row.code_challenge) {
        Some((
            "invalid_grant",
            "code_verifier does not match the challenge",
        ))
    } else if r.resource.is_some() && r.resource != row.resource.as_deref() {
        Some((
            "invalid_target",
            "resource differs from the one the owner consented to",
        ))
    } else {
        None
    };
    if let Some((error, description)) = why {
        let mut event = state.event(EventType::Token, "system:oauth");
        event.agent = Some(row.agent.to_string());
        event.detail = Some(serde_json::json!({
            "op": "refuse", "grant_type": "authorization_code", "client_id": row.client_id,
            "error": error, "reason": description,
        }));
        state.audit.append(event).await?;
        return Ok(Err(refused(error, description)));
    }
    Ok(Ok(row))
}

/// Note the token issued from a redeemed code. When the code was
/// presented again meanwhile, the token is revoked at once and `false`
/// answered: it must not be handed out.
pub async fn issued(
    state: &AppState,
    code: &AuthorizationCodeRow,
    jti: &Jti,
) -> Result<bool, ServiceError> {
    if state
        .store()
        .authorization_code_issued(&code.code_hash, jti)
        .await?
    {
        revoke_reused(state, &code.agent, jti).await?;
        return Ok(false);
    }
    Ok(true)
}

/// Drop expired requests and codes (the maintenance loop).
pub async fn purge(state: &AppState) -> Result<u64, ServiceError> {
    let now = Timestamp::now();
    let codes_before = now.checked_sub(CODE_KEPT).unwrap_or(Timestamp::MIN);
    Ok(state
        .store()
        .purge_authorizations(now, codes_before)
        .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_is_s256_of_the_verifier() {
        // RFC 7636 appendix B.
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(pkce_matches(verifier, challenge));
        assert!(!pkce_matches(
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXl",
            challenge
        ));
        assert!(pkce_shaped(verifier, 43));
        assert!(!pkce_shaped("short", 43));
        assert!(!pkce_shaped(&"a".repeat(129), 43));
        assert!(!pkce_shaped(&format!("{}+", "a".repeat(43)), 43));
    }
}
