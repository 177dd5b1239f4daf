//! Client-side JOSE for the tests: an agent's own Ed25519 key (for
//! `private_key_jwt` and DPoP proofs), and JWTs signed with the server's
//! real signing key read from its database (to forge tokens that only the
//! claims betray).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rand::RngCore;
use serde_json::{Value, json};

use super::Server;

/// An Ed25519 key pair held by a client.
pub struct ClientKey {
    encoding: EncodingKey,
    /// The public JWK.
    pub jwk: Value,
}

fn random_id() -> String {
    let mut b = [0u8; 12];
    rand::rng().fill_bytes(&mut b);
    URL_SAFE_NO_PAD.encode(b)
}

pub fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

impl ClientKey {
    pub fn generate() -> Self {
        let mut seed = [0u8; 32];
        rand::rng().fill_bytes(&mut seed);
        let signing = SigningKey::from_bytes(&seed);
        let der = signing.to_pkcs8_der().unwrap();
        Self {
            encoding: EncodingKey::from_ed_der(der.as_bytes()),
            jwk: json!({
                "kty": "OKP", "crv": "Ed25519",
                "x": URL_SAFE_NO_PAD.encode(signing.verifying_key().to_bytes()),
            }),
        }
    }

    /// Sign `claims` with this key and `typ`, optionally carrying the JWK.
    pub fn sign(&self, typ: &str, with_jwk: bool, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::EdDSA);
        header.typ = Some(typ.to_owned());
        if with_jwk {
            header.jwk = Some(serde_json::from_value(self.jwk.clone()).unwrap());
        }
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap()
    }

    /// Sign with an arbitrary protected header (e.g. RFC 9864's
    /// `alg: Ed25519`, which `jsonwebtoken`'s header type cannot express).
    pub fn sign_raw(&self, header: &Value, claims: &Value) -> String {
        let input = format!("{}.{}", super::b64(header), super::b64(claims));
        let sig =
            jsonwebtoken::crypto::sign(input.as_bytes(), &self.encoding, Algorithm::EdDSA).unwrap();
        format!("{input}.{sig}")
    }

    /// A DPoP proof for `method url`, bound to `token` when given.
    pub fn dpop(&self, method: &str, url: &str, token: Option<&str>) -> String {
        let mut claims = json!({"jti": random_id(), "htm": method, "htu": url, "iat": now()});
        if let Some(t) = token {
            use sha2::Digest;
            claims["ath"] = URL_SAFE_NO_PAD
                .encode(sha2::Sha256::digest(t.as_bytes()))
                .into();
        }
        self.sign("dpop+jwt", true, &claims)
    }

    /// A `private_key_jwt` client assertion.
    pub fn assertion(&self, client_id: &str, aud: &str) -> String {
        self.sign(
            "JWT",
            false,
            &json!({
                "iss": client_id, "sub": client_id, "aud": aud,
                "exp": now() + 60, "iat": now(), "jti": random_id(),
            }),
        )
    }
}

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
