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
        let detail = body
            .get("detail")
            .and_then(Value::as_str)
            .unwrap_or("no detail")
            .to_owned();
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
    /// the server's to check.
    pub async fn introspect(&self, token: &str) -> Result<Introspection, BridleError> {
        let url = format!("{}/oauth/introspect", self.base);
        self.json(
            self.http.post(url).form(&[("token", token)]),
            "/oauth/introspect",
        )
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
        self.introspect("bridle-gateway-start-up-check")
            .await
            .map(drop)
    }

    /// The OAuth issuer (for the protected-resource metadata).
    pub async fn issuer(&self) -> Result<String, BridleError> {
        let url = format!("{}/.well-known/oauth-authorization-server", self.base);
        let meta: Value = self
            .json(
                self.http.get(url),
                "/.well-known/oauth-authorization-server",
            )
            .await?;
        meta.get("issuer")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| BridleError::Unreachable("metadata without `issuer`".into()))
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
        let body =
            json!({"agent_token": agent.token, "audience": agent.audience, "actions": actions});
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
        let mut body = json!({
            "agent_token": agent.token, "audience": agent.audience,
            "action": action, "args": args,
        });
        if let (Some(r), Some(obj)) = (resource, body.as_object_mut()) {
            obj.insert("resource".into(), Value::String(r.to_owned()));
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
        let body = json!({
            "agent_token": agent.token, "audience": agent.audience,
            "status": if ok { "ok" } else { "error" }, "retrievals": retrievals,
        });
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
