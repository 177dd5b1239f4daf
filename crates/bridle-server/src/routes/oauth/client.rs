//! OAuth client authentication for agents: `client_secret_basic`,
//! `client_secret_post` (RFC 6749 §2.3.1) and `private_key_jwt` (RFC 7523
//! §2.2). Exactly one method per request.

use axum::http::{HeaderMap, StatusCode, header};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bridle_core::engine::AgentState;
use bridle_core::id::{AgentId, ClientId};
use bridle_store::{ClientAuth, CredentialStore, RegistryRead};

use super::{OAuthError, OAuthForm};
use crate::jose::{self, PublicKey};
use crate::state::AppState;
use crate::throttle::{self, Attempt, Kind, Origin};
use crate::tokens::hash_secret;

pub const JWT_BEARER_ASSERTION: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The authentication methods this server supports, as RFC 8414 names them.
pub const METHODS: &[&str] = &[
    "client_secret_basic",
    "client_secret_post",
    "private_key_jwt",
];

/// An agent's OAuth client that proved who it is.
#[derive(Debug, Clone)]
pub struct Client {
    pub client_id: ClientId,
    /// The agent the credential belongs to.
    pub agent: AgentId,
    pub method: &'static str,
}

enum Presented {
    Secret {
        client_id: String,
        secret: String,
        method: &'static str,
    },
    Assertion {
        client_id: String,
        assertion: String,
    },
}

fn invalid_client(d: &str) -> OAuthError {
    OAuthError::new(StatusCode::UNAUTHORIZED, "invalid_client", d)
}

/// The `Basic` credentials of the Authorization header, if that is its scheme.
pub fn basic(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("basic").then_some(rest.trim())
}

/// One form-urlencoded value (RFC 6749 §2.3.1 encodes Basic credentials
/// so): `+` is a space, then percent-decoding; `None` when not UTF-8.
fn form_decode(s: &str) -> Option<String> {
    percent_encoding::percent_decode_str(&s.replace('+', " "))
        .decode_utf8()
        .ok()
        .map(|c| c.into_owned())
}

fn presented(headers: &HeaderMap, form: &OAuthForm) -> Result<Presented, OAuthError> {
    let basic = basic(headers);
    let methods = usize::from(basic.is_some())
        + usize::from(form.client_secret.is_some())
        + usize::from(form.client_assertion.is_some());
    if methods > 1 {
        return Err(OAuthError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "use one client authentication method, not two",
        ));
    }
    if let Some(b64) = basic {
        let raw = STANDARD
            .decode(b64)
            .ok()
            .and_then(|raw| String::from_utf8(raw).ok())
            .ok_or_else(|| invalid_client("malformed Basic credentials"))?;
        let (id, secret) = raw
            .split_once(':')
            .ok_or_else(|| invalid_client("malformed Basic credentials"))?;
        return Ok(Presented::Secret {
            client_id: form_decode(id).ok_or_else(|| invalid_client("malformed client id"))?,
            secret: form_decode(secret).ok_or_else(|| invalid_client("malformed client secret"))?,
            method: "client_secret_basic",
        });
    }
    if let Some(secret) = &form.client_secret {
        let client_id = form
            .client_id
            .clone()
            .ok_or_else(|| invalid_client("client_id is missing"))?;
        return Ok(Presented::Secret {
            client_id,
            secret: secret.clone(),
            method: "client_secret_post",
        });
    }
    if let Some(assertion) = &form.client_assertion {
        if form.client_assertion_type.as_deref() != Some(JWT_BEARER_ASSERTION) {
            return Err(OAuthError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                format!("client_assertion_type must be `{JWT_BEARER_ASSERTION}`"),
            ));
        }
        // Only to find which registered key must check the assertion.
        let subject = jose::unverified_claim(assertion, "sub")
            .ok_or_else(|| invalid_client("the client assertion has no `sub`"))?;
        if form.client_id.as_deref().is_some_and(|id| id != subject) {
            return Err(invalid_client(
                "client_id differs from the client assertion's `sub`",
            ));
        }
        return Ok(Presented::Assertion {
            client_id: subject,
            assertion: assertion.clone(),
        });
    }
    Err(invalid_client("client authentication is required"))
}

fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Authenticate the calling client, presented from `origin`. Unknown
/// clients, wrong secrets, bad assertions and revoked credentials are
/// `invalid_client`, except a retired agent's credential, which is
/// `unauthorized_client` as the contract says. While the client id from this
/// source, or the source, is locked after too many failures the answer is
/// 429 before the credentials are looked at; each failure is counted and
/// audited ([`crate::throttle`]).
pub async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    form: &OAuthForm,
    origin: &Origin,
) -> Result<Client, OAuthError> {
    let presented = presented(headers, form)?;
    let client_id = match &presented {
        Presented::Secret { client_id, .. } | Presented::Assertion { client_id, .. } => {
            client_id.as_str()
        }
    };
    let shown = throttle::identifier(client_id);
    let attempt = Attempt {
        kind: Kind::Client,
        identifier: &shown,
        origin,
    };
    throttle::check(state, &attempt).map_err(OAuthError::throttled)?;
    match verify(state, &presented, client_id).await {
        Ok(client) => {
            state.throttle.success(&attempt);
            Ok(client)
        }
        Err(Rejected::Credentials { error, agent }) => {
            let known = agent.as_ref().map(|_| shown.as_str());
            throttle::failed(state, &attempt, known, agent.as_deref()).await;
            Err(error)
        }
        Err(Rejected::Unavailable(error)) => Err(error),
    }
}

/// Why a client was not authenticated.
enum Rejected {
    /// The credentials do not prove the client; `agent` when the client
    /// exists.
    Credentials {
        error: OAuthError,
        agent: Option<String>,
    },
    /// The store failed: nothing was decided about the credentials.
    Unavailable(OAuthError),
}

impl From<crate::error::ApiError> for Rejected {
    fn from(e: crate::error::ApiError) -> Self {
        Self::Unavailable(e.into())
    }
}

impl From<bridle_store::StoreError> for Rejected {
    fn from(e: bridle_store::StoreError) -> Self {
        Self::Unavailable(e.into())
    }
}

async fn verify(
    state: &AppState,
    presented: &Presented,
    client_id: &str,
) -> Result<Client, Rejected> {
    let bad = || invalid_client("unknown client or wrong credentials");
    // A client id that cannot be one names no credential.
    let Ok(client_id) = client_id.parse::<ClientId>() else {
        return Err(Rejected::Credentials {
            error: bad(),
            agent: None,
        });
    };
    let Some(cred) = state.store().credential(&client_id).await? else {
        return Err(Rejected::Credentials {
            error: bad(),
            agent: None,
        });
    };
    let reject = |error: OAuthError| Rejected::Credentials {
        error,
        agent: Some(cred.agent_id.to_string()),
    };
    let now = jiff::Timestamp::now();
    let method = match (presented, &cred.auth) {
        (Presented::Secret { secret, method, .. }, ClientAuth::Secret { hash, previous }) => {
            let given = hash_secret(secret);
            let current = constant_time_eq(&given, hash);
            let overlap = previous
                .as_ref()
                .is_some_and(|(old, until)| constant_time_eq(&given, old) && *until > now);
            if !current && !overlap {
                return Err(reject(bad()));
            }
            *method
        }
        (Presented::Assertion { assertion, .. }, ClientAuth::PublicJwk(jwk)) => {
            let jwk: serde_json::Value = serde_json::from_str(jwk)
                .map_err(|e| crate::error::ApiError::Internal(format!("stored JWK: {e}")))?;
            let key = PublicKey::from_json(&jwk)
                .map_err(|e| crate::error::ApiError::Internal(format!("stored JWK: {e}")))?;
            let iss = state.config.issuer();
            let audiences: Vec<String> = ["", "/oauth/token", "/oauth/introspect", "/oauth/revoke"]
                .iter()
                .map(|p| format!("{iss}{p}"))
                .collect();
            let checked = jose::verify_client_assertion(
                assertion,
                &key,
                client_id.as_str(),
                &audiences,
                now.as_second(),
            )
            .map_err(|e| reject(invalid_client(&e.to_string())))?;
            let until = jiff::Timestamp::from_second(checked.exp + 5).map_err(|_| reject(bad()))?;
            if !state
                .store()
                .use_jti("client_assertion", &checked.jti, until)
                .await?
            {
                return Err(reject(invalid_client(
                    "the client assertion was already used",
                )));
            }
            "private_key_jwt"
        }
        (Presented::Secret { .. }, ClientAuth::PublicJwk(_)) => {
            return Err(reject(invalid_client(
                "this client authenticates with `private_key_jwt`, not a secret",
            )));
        }
        (Presented::Assertion { .. }, ClientAuth::Secret { .. }) => {
            return Err(reject(invalid_client(
                "this client authenticates with its secret, not `private_key_jwt`",
            )));
        }
    };
    if cred.revoked_at.is_some() {
        let retired = state
            .store()
            .agent(&cred.agent_id)
            .await?
            .is_some_and(|r| r.state == AgentState::Retired);
        if retired {
            return Err(reject(OAuthError::new(
                StatusCode::BAD_REQUEST,
                "unauthorized_client",
                format!("agent `{}` is retired", cred.agent_id),
            )));
        }
        return Err(reject(bad()));
    }
    Ok(Client {
        client_id,
        agent: cred.agent_id,
        method,
    })
}
