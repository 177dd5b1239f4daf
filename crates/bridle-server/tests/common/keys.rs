//! Client-side JOSE for the tests: an agent's own Ed25519 key (for
//! `private_key_jwt` and DPoP proofs, in `client_key.rs`), and JWTs signed
//! with the server's real signing key read from its database (to forge
//! tokens that only the claims betray).

use jsonwebtoken::{EncodingKey, Header};
use serde_json::{Value, json};

#[path = "client_key.rs"]
mod client_key;
pub use client_key::ClientKey;

pub fn now() -> i64 {
    client_key::now()
}

use super::Server;

impl Server {
    /// A JWT signed with the server's current signing key, read from its
    /// database and opened with the key-encryption key: what only the
    /// holder of both could make.
    pub async fn sign_as_server(&self, header: &Value, claims: &Value) -> String {
        let row = super::sql_text(
            &self.db_url,
            self.backend,
            "SELECT kid || ' ' || private_der FROM signing_keys WHERE retired_at IS NULL ORDER BY created_at DESC LIMIT 1",
        )
        .await;
        let (kid, der) = row.split_once(' ').unwrap();
        let kek = bridle_server::kek::Kek::parse(super::KEK, "the test KEK").unwrap();
        let key = EncodingKey::from_ed_der(&kek.open(kid, der).unwrap());
        let mut h: Header = serde_json::from_value(header.clone()).unwrap();
        h.kid = Some(kid.to_owned());
        jsonwebtoken::encode(&h, claims, &key).unwrap()
    }

    /// Register `key` as a `private_key_jwt` credential of `agent`.
    pub async fn key_credentials(&self, agent: &str, key: &ClientKey) -> String {
        let r = self
            .post(
                &format!("/v1/agents/{agent}/credentials"),
                super::ADMIN_KEY,
                json!({"jwk": key.jwk}),
            )
            .await
            .expect(201);
        assert_eq!(r["token_endpoint_auth_method"], "private_key_jwt");
        assert!(r.json.get("client_secret").is_none(), "{}", r.text);
        r["client_id"].as_str().unwrap().to_owned()
    }

    /// RFC 8693 token exchange as the delegate (`client_secret_basic`).
    pub async fn exchange(
        &self,
        delegate_id: &str,
        delegate_secret: &str,
        subject_token: &str,
        extra: &[(&str, &str)],
    ) -> super::Resp {
        let mut form = vec![
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:token-exchange",
            ),
            ("subject_token", subject_token),
            (
                "subject_token_type",
                "urn:ietf:params:oauth:token-type:access_token",
            ),
        ];
        form.extend_from_slice(extra);
        self.send(
            self.http
                .post(self.url("/oauth/token"))
                .basic_auth(delegate_id, Some(delegate_secret))
                .form(&form),
        )
        .await
    }

    /// RFC 7662 introspection with the admin key.
    pub async fn introspect(&self, token: &str) -> Value {
        self.send(
            self.http
                .post(self.url("/oauth/introspect"))
                .bearer_auth(super::ADMIN_KEY)
                .form(&[("token", token)]),
        )
        .await
        .expect(200)
        .json
    }
}
