//! A client's own Ed25519 key, for `private_key_jwt` assertions and DPoP
//! proofs (RFC 9449). Self-contained: the gateway's tests include it too.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rand::RngCore;
use serde_json::{Value, json};

/// An Ed25519 key pair held by a client.
pub struct ClientKey {
    encoding: EncodingKey,
    /// The public JWK.
    pub jwk: Value,
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
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
        let input = format!("{}.{}", b64(header), b64(claims));
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
