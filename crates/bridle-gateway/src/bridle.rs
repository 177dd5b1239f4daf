//! The gateway's client of the Bridle server, as a `pep` principal: token
//! introspection, reachable actions, decisions, outcomes, approval waits.

use std::time::Duration;

use bridle_core::secret::Secret;
use serde::Deserialize;
use serde_json::{Value, json};
use tracing::Instrument as _;

/// A failure to get an answer from Bridle. The gateway fails closed on it.
#[derive(Debug, thiserror::Error)]
pub enum BridleError {
    #[error("the Bridle server is unreachable: {0}")]
    Unreachable(String),
    /// The server refused the agent's token (401).
    #[error("the access token was refused: {0}")]
    Unauthenticated(String),
    /// The server refused the agent's DPoP proof (`invalid_dpop_proof`).
    #[error("the DPoP proof was refused: {0}")]
    InvalidDpop(String),
    #[error("the Bridle server answered {status}: {detail}")]
    Status { status: u16, detail: String },
}

#[derive(Debug, Clone)]
pub struct Bridle {
    http: reqwest::Client,
    base: String,
    /// The `pep` principal's API key.
    key: Secret<String>,
}

/// What `POST /oauth/introspect` says about a token.
#[derive(Debug, Clone, Deserialize)]
pub struct Introspection {
    pub active: bool,
    #[serde(default)]
    pub sub: Option<String>,
    #[serde(default)]
    pub aud: Option<String>,
    /// `DPoP` for a token bound to a key.
    #[serde(default)]
    pub token_type: Option<String>,
}

/// What the gateway uses of RFC 8414 authorization-server metadata.
#[derive(Debug, Clone, Deserialize)]
pub struct ServerMetadata {
    pub issuer: String,
    #[serde(default)]
    pub dpop_signing_alg_values_supported: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Reason {
    pub code: String,
    pub message: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Decision {
    pub decision: String,
    pub decision_id: String,
    #[serde(default)]
    pub reasons: Vec<Reason>,
    #[serde(default)]
    pub approval_id: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
struct Reachable {
    reachable: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
struct Approval {
    state: String,
}

/// The agent's token as presented to the gateway, and the audience the
/// gateway accepted it for.
#[derive(Debug, Clone)]
pub struct AgentToken {
    pub token: String,
    pub audience: String,
    pub agent: String,
    /// The DPoP proof of the agent's request, for a DPoP-bound token: the
    /// server admitted it at the door and takes it again from this `pep`.
    pub dpop: Option<AgentDpop>,
}

/// A DPoP proof (RFC 9449) an agent sent, and the request it was for.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AgentDpop {
    pub proof: String,
    pub htm: String,
    pub htu: String,
}

impl AgentToken {
    /// The fields every question about this agent's request carries.
    fn fields(&self) -> serde_json::Map<String, Value> {
        let mut m = serde_json::Map::new();
        m.insert("agent_token".into(), Value::from(self.token.as_str()));
        m.insert("audience".into(), Value::from(self.audience.as_str()));
        if let Some(d) = &self.dpop {
            m.insert("agent_dpop".into(), json!(d));
        }
        m
    }
}

impl Bridle {
    /// `roots`: CA certificates trusted besides the system's.
    pub fn new(
        base: &str,
        key: String,
        timeout: Duration,
        roots: Vec<bridle_tls::rustls::pki_types::CertificateDer<'static>>,
    ) -> Result<Self, BridleError> {
        let mut builder = reqwest::Client::builder().timeout(timeout);
        for der in roots {
            let cert = reqwest::Certificate::from_der(&der)
                .map_err(|e| BridleError::Unreachable(e.to_string()))?;
            builder = builder.add_root_certificate(cert);
        }
        let http = builder
            .build()
            .map_err(|e| BridleError::Unreachable(e.to_string()))?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            key: Secret::new(key),
        })
    }

    /// Send `req` (of `route`, the path template a span is named by).
    async fn send(
        &self,
        req: reqwest::RequestBuilder,
        route: &'static str,
    ) -> Result<reqwest::Response, BridleError> {
        let mut request = req
            .bearer_auth(self.key.expose())
            .build()
            .map_err(|e| BridleError::Unreachable(e.to_string()))?;
        let span = crate::telemetry::http_client(&mut request, route);
        let res = self.http.execute(request).instrument(span.clone()).await;
        crate::telemetry::http_ended(&span, res.as_ref().ok().map(|r| r.status().as_u16()));
        let res = res.map_err(|e| BridleError::Unreachable(e.to_string()))?;
        let status = res.status();
        if status.is_success() {
            return Ok(res);
        }
        let body: Value = res.json().await.unwrap_or(Value::Null);
        let text = |name: &str| body.get(name).and_then(Value::as_str).map(str::to_owned);
        if status == reqwest::StatusCode::BAD_REQUEST
            && text("error").as_deref() == Some("invalid_dpop_proof")
        {
            return Err(BridleError::InvalidDpop(
                text("error_description").unwrap_or_default(),
            ));
        }
        let detail = text("detail").unwrap_or_else(|| "no detail".into());
        if status == reqwest::StatusCode::UNAUTHORIZED {
            return Err(BridleError::Unauthenticated(detail));
        }
        Err(BridleError::Status {
            status: status.as_u16(),
            detail,
        })
    }

    async fn json<T: serde::de::DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
        route: &'static str,
    ) -> Result<T, BridleError> {
        self.send(req, route)
            .await?
            .json()
            .await
            .map_err(|e| BridleError::Unreachable(format!("unexpected answer: {e}")))
    }

    /// RFC 7662: signature, expiry, revocation and the agent's state are
    /// the server's to check; with `dpop`, the proof too (used up, so a
    /// replayed proof is refused as `InvalidDpop`).
    pub async fn introspect(
        &self,
        token: &str,
        dpop: Option<&AgentDpop>,
    ) -> Result<Introspection, BridleError> {
        let url = format!("{}/oauth/introspect", self.base);
        let mut form = vec![("token", token)];
        if let Some(d) = dpop {
            form.extend([
                ("dpop_proof", d.proof.as_str()),
                ("dpop_htm", d.htm.as_str()),
                ("dpop_htu", d.htu.as_str()),
            ]);
        }
        self.json(self.http.post(url).form(&form), "/oauth/introspect")
            .await
    }

    /// Whether the server answers its health check.
    pub async fn healthy(&self) -> bool {
        let url = format!("{}/healthz", self.base);
        self.http
            .get(url)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    }

    /// Whether the server accepts the `pep` key: an introspection of a
    /// token that cannot exist answers `active: false` to a `pep`, 401 to
    /// a wrong key and 403 to a principal without the role.
    pub async fn check_key(&self) -> Result<(), BridleError> {
        self.introspect("bridle-gateway-start-up-check", None)
            .await
            .map(drop)
    }

    /// The authorization server's metadata (for the protected-resource
    /// metadata).
    pub async fn server_metadata(&self) -> Result<ServerMetadata, BridleError> {
        let url = format!("{}/.well-known/oauth-authorization-server", self.base);
        self.json(
            self.http.get(url),
            "/.well-known/oauth-authorization-server",
        )
        .await
    }

    pub async fn reachable(
        &self,
        agent: &AgentToken,
        actions: Vec<String>,
    ) -> Result<Vec<String>, BridleError> {
        if actions.is_empty() {
            return Ok(Vec::new());
        }
        let url = format!("{}/v1/decisions/reachable", self.base);
        let mut body = agent.fields();
        body.insert("actions".into(), json!(actions));
        let r: Reachable = self
            .json(self.http.post(url).json(&body), "/v1/decisions/reachable")
            .await?;
        Ok(r.reachable)
    }

    pub async fn decide(
        &self,
        agent: &AgentToken,
        action: &str,
        args: &serde_json::Map<String, Value>,
        resource: Option<&str>,
    ) -> Result<Decision, BridleError> {
        let url = format!("{}/v1/decisions", self.base);
        let mut body = agent.fields();
        body.insert("action".into(), Value::from(action));
        body.insert("args".into(), Value::Object(args.clone()));
        if let Some(r) = resource {
            body.insert("resource".into(), Value::String(r.to_owned()));
        }
        self.json(self.http.post(url).json(&body), "/v1/decisions")
            .await
    }

    pub async fn outcome(
        &self,
        agent: &AgentToken,
        decision_id: &str,
        ok: bool,
        retrievals: Vec<String>,
    ) -> Result<(), BridleError> {
        let url = format!("{}/v1/decisions/{decision_id}/outcome", self.base);
        let mut body = agent.fields();
        body.insert(
            "status".into(),
            Value::from(if ok { "ok" } else { "error" }),
        );
        body.insert("retrievals".into(), json!(retrievals));
        self.send(
            self.http.post(url).json(&body),
            "/v1/decisions/{id}/outcome",
        )
        .await
        .map(drop)
    }

    /// Wait (long poll) until the approval leaves `pending` or `timeout`
    /// passes; returns its state then.
    pub async fn wait_approval(&self, id: &str, timeout: Duration) -> Result<String, BridleError> {
        let secs = timeout.as_secs().max(1);
        let url = format!("{}/v1/approvals/{id}/wait", self.base);
        let req = self
            .http
            .get(url)
            .query(&[("timeout", format!("{secs}s"))])
            .timeout(timeout + Duration::from_secs(10));
        let a: Approval = self.json(req, "/v1/approvals/{id}/wait").await?;
        Ok(a.state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pep_key_never_prints() {
        bridle_tls::install_provider();
        let b = Bridle::new(
            "http://127.0.0.1:1",
            "bk_pep_do_not_print".into(),
            Duration::from_secs(1),
            Vec::new(),
        )
        .unwrap();
        let shown = format!("{b:?}");
        assert!(!shown.contains("bk_pep_do_not_print"), "{shown}");
        assert!(shown.contains("Secret(***)"), "{shown}");
    }
}
