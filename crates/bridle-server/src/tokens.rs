//! Access tokens: RFC 9068 JWTs (`typ: at+jwt`) signed with Ed25519. The
//! signing key is generated on first start and kept in the store sealed with
//! the key-encryption key ([`crate::kek`]); it never appears in logs or API
//! output. JWKS publishes the public halves.

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use bridle_core::id::{Jti, Kid};
use bridle_store::{CredentialStore, SigningKeyRow, Store, StoreError};
use zeroize::Zeroizing;

use crate::kek::{Kek, KekError};
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};

/// The claims of a Bridle access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub client_id: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: Jti,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub scope: Option<String>,
    /// RFC 8693 actor chain: `{sub, act?}`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub act: Option<serde_json::Value>,
    /// RFC 9449 confirmation: the thumbprint of the key the token is bound to.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub cnf: Option<Confirmation>,
}

/// `cnf` of a sender-constrained token (RFC 9449 §6).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confirmation {
    /// Base64url SHA-256 JWK thumbprint (RFC 7638) of the DPoP key.
    pub jkt: String,
}

/// How long a retired signing key stays in JWKS and verifies tokens: the
/// longest token lifetime, plus time for every replica to reload its keys.
pub const RETIRED_KEY_KEPT: jiff::SignedDuration = jiff::SignedDuration::from_mins(62);

/// The JWS `typ` of an audit checkpoint (never accepted as a token).
pub const CHECKPOINT_TYP: &str = "bridle-checkpoint+jwt";

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("the token is not a valid Bridle access token: {0}")]
    Invalid(String),
    /// Signed by a key this process does not know (yet): another replica
    /// may have rotated.
    #[error("the token is not a valid Bridle access token: unknown `kid`")]
    UnknownKid,
}

pub struct Keys {
    kid: Kid,
    encoding: EncodingKey,
    decoding: HashMap<String, DecodingKey>,
    jwks: serde_json::Value,
    hmac_key: AuditKey,
}

/// The key that hashes sensitive argument values in the audit log. It never
/// prints.
#[derive(Clone)]
pub struct AuditKey(Zeroizing<Vec<u8>>);

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditKey(***)")
    }
}

impl std::ops::Deref for AuditKey {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    rand::rng().fill_bytes(&mut b);
    b
}

/// A random URL-safe string with `bytes` bytes of entropy.
pub fn random_token(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut b);
    URL_SAFE_NO_PAD.encode(b)
}

/// A new server-made id of type `T`: `prefix` and `bytes` random bytes in
/// base64url (`apr_…`, `dec_…`). Every id type accepts that shape; the
/// error exists because parsing is how an id is made.
pub fn new_id<T>(prefix: &str, bytes: usize) -> Result<T, bridle_core::id::IdError>
where
    T: std::str::FromStr<Err = bridle_core::id::IdError>,
{
    format!("{prefix}{}", random_token(bytes)).parse()
}

impl Keys {
    /// Load the signing keys, generating the first one if there is none.
    /// A plain key (written by a replica of an earlier release) is sealed
    /// first.
    pub async fn load_or_create(store: &Store, kek: &Kek) -> Result<Self, KekError> {
        let mut rows = store.signing_keys().await?;
        if rows.iter().any(|k| !crate::kek::is_sealed(&k.private_der)) {
            crate::kek::seal_plain(kek, store, None, &rows).await?;
            rows = store.signing_keys().await?;
        }
        if rows.iter().all(|k| k.retired_at.is_some()) {
            let row = generate(kek)?;
            store.add_signing_key(&row).await?;
            rows.insert(0, row);
        }
        Self::from_rows(&rows, kek, jiff::Timestamp::now())
    }

    /// Retire the current key and sign with a new one from now on. The old
    /// key keeps verifying (and stays in JWKS) for [`RETIRED_KEY_KEPT`].
    pub async fn rotate(store: &Store, kek: &Kek) -> Result<Self, KekError> {
        store.rotate_signing_key(&generate(kek)?).await?;
        Self::load_or_create(store, kek).await
    }

    /// The key that signs new tokens.
    pub fn current_kid(&self) -> &str {
        self.kid.as_str()
    }

    /// The keys of these store rows as of `now`, opened with `kek`. Public
    /// only for the fuzz targets (`fuzz/`), which verify tokens without a
    /// store.
    #[doc(hidden)]
    pub fn from_rows(
        rows: &[SigningKeyRow],
        kek: &Kek,
        now: jiff::Timestamp,
    ) -> Result<Self, KekError> {
        let corrupt = |w: &str| StoreError::Corrupt(format!("signing key: {w}"));
        let current = rows
            .iter()
            .filter(|k| k.retired_at.is_none())
            .max_by(|a, b| a.created_at.cmp(&b.created_at))
            .ok_or_else(|| corrupt("no active key"))?;
        let der = kek.open(current.kid.as_str(), &current.private_der)?;
        let kept_since = now - RETIRED_KEY_KEPT;
        let mut decoding = HashMap::new();
        let mut jwks = Vec::new();
        let verifying = rows
            .iter()
            .filter(|k| k.retired_at.is_none_or(|at| at > kept_since));
        for k in verifying {
            decoding.insert(
                k.kid.to_string(),
                DecodingKey::from_ed_components(&k.public_x).map_err(|_| corrupt("public key"))?,
            );
            jwks.push(serde_json::json!({
                "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": k.kid, "x": k.public_x,
            }));
        }
        // The audit HMAC key derives from the first key ever made, so it
        // stays stable across signing-key rotations; it hashes the base64
        // of the plain DER, as it did before keys were sealed, so values
        // hashed by earlier releases still compare equal.
        let first = rows
            .iter()
            .min_by(|a, b| a.created_at.cmp(&b.created_at))
            .unwrap_or(current);
        let first_der = if first.kid == current.kid {
            Zeroizing::new(der.to_vec())
        } else {
            kek.open(first.kid.as_str(), &first.private_der)?
        };
        let hmac_key = {
            use sha2::{Digest, Sha256};
            let text = Zeroizing::new(format!(
                "bridle-audit-hmac\n{}",
                STANDARD.encode(&*first_der)
            ));
            AuditKey(Zeroizing::new(Sha256::digest(text.as_bytes()).to_vec()))
        };
        Ok(Self {
            hmac_key,
            kid: current.kid.clone(),
            encoding: EncodingKey::from_ed_der(&der),
            decoding,
            jwks: serde_json::json!({ "keys": jwks }),
        })
    }

    /// Key for hashing sensitive argument values in the audit log.
    pub fn audit_hmac_key(&self) -> &AuditKey {
        &self.hmac_key
    }

    pub fn jwks(&self) -> &serde_json::Value {
        &self.jwks
    }

    pub fn mint(&self, claims: &Claims) -> Result<String, TokenError> {
        let mut header = Header::new(Algorithm::EdDSA);
        header.typ = Some("at+jwt".into());
        header.kid = Some(self.kid.to_string());
        jsonwebtoken::encode(&header, claims, &self.encoding)
            .map_err(|e| TokenError::Invalid(e.to_string()))
    }

    /// Sign an audit checkpoint: a compact JWS (`typ` [`CHECKPOINT_TYP`],
    /// the current `kid`) over `{seq, head, time}`.
    pub fn sign_checkpoint(
        &self,
        cp: &bridle_core::audit::Checkpoint,
    ) -> Result<String, TokenError> {
        let mut header = Header::new(Algorithm::EdDSA);
        header.typ = Some(CHECKPOINT_TYP.into());
        header.kid = Some(self.kid.to_string());
        jsonwebtoken::encode(&header, cp, &self.encoding)
            .map_err(|e| TokenError::Invalid(e.to_string()))
    }

    /// Verify signature (EdDSA only, known `kid`), `typ`, `iss`, `exp`,
    /// `nbf`, and that `aud` is present. Which audiences are acceptable is
    /// the caller's question.
    pub fn verify(&self, token: &str, issuer: &str) -> Result<Claims, TokenError> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| TokenError::Invalid(e.to_string()))?;
        if header.alg != Algorithm::EdDSA {
            return Err(TokenError::Invalid(format!(
                "algorithm {:?} is not accepted",
                header.alg
            )));
        }
        if header
            .typ
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
            != Some("at+jwt")
        {
            return Err(TokenError::Invalid("`typ` must be `at+jwt`".into()));
        }
        let kid = header
            .kid
            .ok_or_else(|| TokenError::Invalid("no `kid`".into()))?;
        let key = self.decoding.get(&kid).ok_or(TokenError::UnknownKid)?;
        let mut v = Validation::new(Algorithm::EdDSA);
        v.set_issuer(&[issuer]);
        v.validate_aud = false;
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        v.validate_nbf = true;
        v.leeway = 5;
        jsonwebtoken::decode::<Claims>(token, key, &v)
            .map(|d| d.claims)
            .map_err(|e| TokenError::Invalid(e.to_string()))
    }
}

/// A new signing key, its private half sealed with `kek`.
fn generate(kek: &Kek) -> Result<SigningKeyRow, KekError> {
    let seed = Zeroizing::new(random_bytes::<32>());
    let signing = SigningKey::from_bytes(&seed);
    let der = signing
        .to_pkcs8_der()
        .map_err(|e| StoreError::Corrupt(format!("cannot encode a new signing key: {e}")))?;
    let kid: Kid = new_id("", 12)
        .map_err(|e| StoreError::Corrupt(format!("cannot make a signing key id: {e}")))?;
    Ok(SigningKeyRow {
        private_der: kek.seal(kid.as_str(), der.as_bytes())?,
        kid,
        public_x: URL_SAFE_NO_PAD.encode(signing.verifying_key().to_bytes()),
        created_at: jiff::Timestamp::now(),
        retired_at: None,
    })
}

/// SHA-256 hex of a secret (API keys and client secrets are high-entropy
/// random strings, so a fast hash is the right tool).
pub fn hash_secret(secret: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ways a `Debug` could leak `bytes`: as a byte list, base64 or hex.
    fn leaks(shown: &str, bytes: &[u8]) -> bool {
        let list = format!("{bytes:?}");
        let inner = list.trim_start_matches('[').trim_end_matches(']');
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        shown.contains(inner)
            || shown.contains(&STANDARD.encode(bytes))
            || shown.contains(&URL_SAFE_NO_PAD.encode(bytes))
            || shown.contains(&hex)
    }

    #[test]
    fn no_holder_of_key_material_prints_it() {
        let kek = Kek::generate();
        let row = generate(&kek).unwrap();
        let der = kek.open(row.kid.as_str(), &row.private_der).unwrap();
        let keys =
            Keys::from_rows(std::slice::from_ref(&row), &kek, jiff::Timestamp::now()).unwrap();
        let hmac: &[u8] = keys.audit_hmac_key();
        let shown = [
            format!("{keys:?}"),
            format!("{:?}", keys.audit_hmac_key()),
            format!("{row:?}"),
            format!("{kek:?}"),
        ];
        for s in &shown {
            assert!(!leaks(s, &der), "signing key DER in {s}");
            assert!(!leaks(s, hmac), "audit HMAC key in {s}");
            assert!(!s.contains(&row.private_der), "sealed key in {s}");
        }
        // The audit key is what it hashes with: the bytes are really there.
        assert_eq!(hmac.len(), 32);
    }

    #[test]
    fn the_configuration_does_not_print_its_secrets() {
        let config = crate::Config {
            admin_token: Some(crate::Secret::new("bk_admin_do_not_print")),
            key_encryption_key: Some(crate::Secret::new("a2VrLWRvLW5vdC1wcmludA==")),
            ..crate::Config::default()
        };
        let shown = format!("{config:?}");
        assert!(!shown.contains("bk_admin_do_not_print"), "{shown}");
        assert!(!shown.contains("a2VrLWRvLW5vdC1wcmludA=="), "{shown}");
        assert!(shown.contains("Secret(***)"), "{shown}");
    }
}
