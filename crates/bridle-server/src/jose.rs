//! JWTs that clients sign with their own keys: DPoP proofs (RFC 9449) and
//! `private_key_jwt` client assertions (RFC 7523). Signature work is
//! `jsonwebtoken`'s; this module decides which keys and algorithms are
//! acceptable and checks the claims each RFC asks for. One-time use of each
//! `jti` is the caller's job (it needs the store).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bridle_core::id::Jti;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// Signature algorithms accepted from clients (asymmetric only). `Ed25519`
/// is RFC 9864's fully specified name for `EdDSA` with Ed25519 keys.
pub const CLIENT_ALGS: &[&str] = &["EdDSA", "Ed25519", "ES256", "ES384", "RS256", "PS256"];

/// How far a DPoP proof's `iat` may be from now, either way.
pub const DPOP_IAT_WINDOW: i64 = 60;

/// Smallest RSA modulus accepted, in bits.
const MIN_RSA_BITS: usize = 2048;

/// A public JWK a client registered or sent: parsed and checked.
#[derive(Debug, Clone)]
pub struct PublicKey {
    pub jwk: Jwk,
    /// RFC 7638 SHA-256 thumbprint, base64url.
    pub thumbprint: String,
    key: DecodingKey,
}

/// Why a JWK was refused as a client's or a DPoP proof's public key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwkError {
    #[error("a JWK must be a JSON object")]
    NotObject,
    #[error("the JWK has the private or symmetric member `{0}`; send the public key only")]
    PrivateMember(&'static str),
    #[error("not a supported JWK: {0}")]
    Unsupported(String),
    #[error("the RSA modulus `n` is not base64url")]
    RsaModulus,
    #[error("RSA keys must have at least {MIN_RSA_BITS} bits, this one has {0}")]
    RsaBits(usize),
    #[error("unsupported key type: use OKP (Ed25519), EC (P-256, P-384) or RSA")]
    KeyType,
    #[error("cannot compute the key's thumbprint: {0}")]
    Thumbprint(String),
    #[error("unusable key: {0}")]
    Unusable(String),
    #[error("the key's `{member}` must be {expected} bytes (base64url), not {got}")]
    KeyLength {
        member: &'static str,
        expected: usize,
        got: usize,
    },
}

/// Why a JWS (a DPoP proof or a client assertion) was refused. `what` names
/// the kind of JWS; the texts are sent to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JoseError {
    #[error("malformed {what}: not a compact JWS")]
    Malformed { what: &'static str },
    #[error("{what}: algorithm `{alg}` is not supported (use one of {})", CLIENT_ALGS.join(", "))]
    Algorithm { what: &'static str, alg: String },
    #[error("{what}: the header has no `alg`")]
    NoAlgorithm { what: &'static str },
    #[error("{what}: the header's `crit` lists {crit}, which is not understood")]
    Critical { what: &'static str, crit: String },
    #[error("{what}: the algorithm does not match the key")]
    KeyMismatch { what: &'static str },
    #[error("{what}: cannot check the signature: {message}")]
    Unverifiable { what: &'static str, message: String },
    #[error("{what}: bad signature")]
    BadSignature { what: &'static str },
    #[error(transparent)]
    Key(#[from] JwkError),
    #[error("the {what}'s claims: {message}")]
    Claims { what: &'static str, message: String },
    #[error("a DPoP proof must have `typ: dpop+jwt`")]
    DpopType,
    #[error("a DPoP proof must carry its `jwk`")]
    DpopNoKey,
    #[error("the DPoP proof's `jti` is missing or too long")]
    DpopJti,
    #[error("the DPoP proof is for `{claimed}`, not `{expected}`")]
    DpopTarget { claimed: String, expected: String },
    #[error("the DPoP proof's `iat` is too far from now")]
    DpopIat,
    #[error("the DPoP proof's `ath` is for another token")]
    DpopOtherToken,
    #[error("a DPoP proof sent with a token must carry `ath`")]
    DpopNoAth,
    #[error("the client assertion has expired")]
    AssertionExpired,
    #[error("the client assertion is not valid yet")]
    AssertionNotYet,
    #[error("the client assertion's `aud` must be one of {}", audiences.join(", "))]
    AssertionAudience { audiences: Vec<String> },
    #[error("the assertion's `iss` and `sub` must be the client id")]
    AssertionIssuer,
    #[error("the assertion may live at most {ASSERTION_MAX_LIFETIME} s")]
    AssertionLifetime,
    #[error("the assertion must carry a `jti`")]
    AssertionJti,
}

/// Members that only a private or symmetric key has.
const PRIVATE_MEMBERS: &[&str] = &["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// A key member that must decode (base64url) to exactly `expected` bytes.
fn key_bytes(member: &'static str, text: &str, expected: usize) -> Result<(), JwkError> {
    let got = URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .map_or(0, |b| b.len());
    if got == expected {
        Ok(())
    } else {
        Err(JwkError::KeyLength {
            member,
            expected,
            got,
        })
    }
}

impl PublicKey {
    /// Accept a JSON JWK only if it is a public OKP (Ed25519), EC (P-256,
    /// P-384) or RSA (≥ 2048 bits) key with no private members.
    pub fn from_json(value: &serde_json::Value) -> Result<Self, JwkError> {
        let obj = value.as_object().ok_or(JwkError::NotObject)?;
        if let Some(m) = PRIVATE_MEMBERS.iter().find(|m| obj.contains_key(**m)) {
            return Err(JwkError::PrivateMember(m));
        }
        let jwk: Jwk = serde_json::from_value(value.clone())
            .map_err(|e| JwkError::Unsupported(e.to_string()))?;
        match &jwk.algorithm {
            // The verifier slices the key bytes as the curve needs them: a
            // point of another length must be refused here, not reach it.
            AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
                key_bytes("x", &p.x, 32)?;
            }
            AlgorithmParameters::EllipticCurve(p)
                if matches!(p.curve, EllipticCurve::P256 | EllipticCurve::P384) =>
            {
                let size = if p.curve == EllipticCurve::P256 {
                    32
                } else {
                    48
                };
                key_bytes("x", &p.x, size)?;
                key_bytes("y", &p.y, size)?;
            }
            AlgorithmParameters::RSA(p) => {
                let n = URL_SAFE_NO_PAD
                    .decode(p.n.trim_end_matches('='))
                    .map_err(|_| JwkError::RsaModulus)?;
                let bits = n.iter().skip_while(|b| **b == 0).count() * 8;
                if bits < MIN_RSA_BITS {
                    return Err(JwkError::RsaBits(bits));
                }
            }
            _ => {
                return Err(JwkError::KeyType);
            }
        }
        let thumbprint = jwk
            .thumbprint(ThumbprintHash::SHA256)
            .map_err(|e| JwkError::Thumbprint(e.to_string()))?;
        let key = DecodingKey::from_jwk(&jwk).map_err(|e| JwkError::Unusable(e.to_string()))?;
        Ok(Self {
            jwk,
            thumbprint,
            key,
        })
    }

    /// Whether `alg` is an accepted algorithm for this key's type.
    fn fits(&self, alg: Algorithm) -> bool {
        match (&self.jwk.algorithm, alg) {
            (AlgorithmParameters::OctetKeyPair(_), Algorithm::EdDSA)
            | (AlgorithmParameters::RSA(_), Algorithm::RS256 | Algorithm::PS256) => true,
            (AlgorithmParameters::EllipticCurve(p), Algorithm::ES256) => {
                p.curve == EllipticCurve::P256
            }
            (AlgorithmParameters::EllipticCurve(p), Algorithm::ES384) => {
                p.curve == EllipticCurve::P384
            }
            _ => false,
        }
    }
}

/// A compact JWS taken apart; its signature not yet checked.
struct Jws<'a> {
    header: serde_json::Map<String, serde_json::Value>,
    payload: Vec<u8>,
    signing_input: &'a str,
    signature: &'a str,
    alg: Algorithm,
}

impl<'a> Jws<'a> {
    /// Split and decode; the header's `alg` must be one of [`CLIENT_ALGS`]
    /// and it may have no `crit` (no extension is understood here).
    /// (Parsed here rather than by `jsonwebtoken`, whose header type does
    /// not know `Ed25519`.)
    fn parse(jwt: &'a str, what: &'static str) -> Result<Self, JoseError> {
        let malformed = || JoseError::Malformed { what };
        let (signing_input, signature) = jwt.rsplit_once('.').ok_or_else(malformed)?;
        let (head, body) = signing_input.split_once('.').ok_or_else(malformed)?;
        let decode = |part: &str| URL_SAFE_NO_PAD.decode(part).map_err(|_| malformed());
        let header: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(&decode(head)?).map_err(|_| malformed())?;
        let alg = match header.get("alg").and_then(|a| a.as_str()) {
            Some("EdDSA" | "Ed25519") => Algorithm::EdDSA,
            Some("ES256") => Algorithm::ES256,
            Some("ES384") => Algorithm::ES384,
            Some("RS256") => Algorithm::RS256,
            Some("PS256") => Algorithm::PS256,
            Some(other) => {
                return Err(JoseError::Algorithm {
                    what,
                    alg: other.to_owned(),
                });
            }
            None => return Err(JoseError::NoAlgorithm { what }),
        };
        // RFC 7515 §4.1.11: a recipient that does not understand every
        // extension `crit` lists must reject the JWS. We understand none.
        if let Some(crit) = header.get("crit") {
            return Err(JoseError::Critical {
                what,
                crit: crit.to_string(),
            });
        }
        Ok(Self {
            header,
            payload: decode(body)?,
            signing_input,
            signature,
            alg,
        })
    }

    fn header_str(&self, name: &str) -> Option<&str> {
        self.header.get(name).and_then(|v| v.as_str())
    }

    /// Check the signature with `key`, whose type must fit the algorithm.
    fn verify(&self, key: &PublicKey, what: &'static str) -> Result<(), JoseError> {
        if !key.fits(self.alg) {
            return Err(JoseError::KeyMismatch { what });
        }
        let ok = jsonwebtoken::crypto::verify(
            self.signature,
            self.signing_input.as_bytes(),
            &key.key,
            self.alg,
        )
        .map_err(|e| JoseError::Unverifiable {
            what,
            message: e.to_string(),
        })?;
        if ok {
            Ok(())
        } else {
            Err(JoseError::BadSignature { what })
        }
    }
}

/// The claims of a DPoP proof (RFC 9449 §4.2).
#[derive(Debug, Clone, Deserialize)]
pub struct DpopClaims {
    pub jti: String,
    pub htm: String,
    pub htu: String,
    pub iat: i64,
    #[serde(default)]
    pub ath: Option<String>,
}

/// A DPoP proof that passed every check but `jti` reuse.
#[derive(Debug, Clone)]
pub struct DpopProof {
    /// Thumbprint of the key that signed it.
    pub jkt: String,
    pub jti: Jti,
    pub iat: i64,
}

/// `htu` comparison per RFC 9449 §4.3: no query or fragment, scheme and
/// host case-insensitive.
fn same_htu(claimed: &str, expected: &str) -> bool {
    let strip = |u: &str| -> String {
        let u = u.split(['?', '#']).next().unwrap_or_default();
        match u.split_once("://") {
            Some((scheme, rest)) => {
                let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
                let path = if path.is_empty() { "/" } else { path };
                format!(
                    "{}://{}{}",
                    scheme.to_ascii_lowercase(),
                    host.to_ascii_lowercase(),
                    path
                )
            }
            None => u.to_owned(),
        }
    };
    strip(claimed) == strip(expected)
}

/// One string claim of a JWT **before** its signature is checked: only to
/// choose how to check it (which registered key, which audience), never to
/// trust it.
pub fn unverified_claim(jwt: &str, name: &str) -> Option<String> {
    let payload = jwt.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    v.get(name)?.as_str().map(str::to_owned)
}

/// Base64url SHA-256 of an access token (the `ath` claim).
pub fn access_token_hash(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()))
}

/// Check a DPoP proof for one request (RFC 9449 §4.3, steps 1–11 but the
/// `jti` replay check). `access_token` is the token it accompanies, if any.
pub fn verify_dpop(
    proof: &str,
    method: &str,
    url: &str,
    access_token: Option<&str>,
    now: i64,
) -> Result<DpopProof, JoseError> {
    let checked = verify_dpop_unaged(proof, method, url, access_token)?;
    check_dpop_iat(checked.iat, now)?;
    Ok(checked)
}

/// A DPoP proof's `iat` must be within [`DPOP_IAT_WINDOW`] of `now`.
pub fn check_dpop_iat(iat: i64, now: i64) -> Result<(), JoseError> {
    // `abs_diff`: `iat - now` overflows for an `iat` near the ends of the
    // range (a panic with overflow checks, else one wrapped `iat` inside).
    if iat.abs_diff(now) > DPOP_IAT_WINDOW.unsigned_abs() {
        return Err(JoseError::DpopIat);
    }
    Ok(())
}

/// [`verify_dpop`] without the `iat` window: for a proof whose freshness
/// and one-time use were established when it first arrived (a `pep`'s
/// later questions about the same agent request).
pub fn verify_dpop_unaged(
    proof: &str,
    method: &str,
    url: &str,
    access_token: Option<&str>,
) -> Result<DpopProof, JoseError> {
    let jws = Jws::parse(proof, "DPoP proof")?;
    if jws.header_str("typ") != Some("dpop+jwt") {
        return Err(JoseError::DpopType);
    }
    let raw_jwk = jws.header.get("jwk").ok_or(JoseError::DpopNoKey)?;
    let key = PublicKey::from_json(raw_jwk)?;
    jws.verify(&key, "DPoP proof")?;
    let claims: DpopClaims =
        serde_json::from_slice(&jws.payload).map_err(|e| JoseError::Claims {
            what: "DPoP proof",
            message: e.to_string(),
        })?;
    let jti: Jti = claims.jti.parse().map_err(|_| JoseError::DpopJti)?;
    if !claims.htm.eq_ignore_ascii_case(method) {
        return Err(JoseError::DpopTarget {
            claimed: claims.htm,
            expected: method.to_owned(),
        });
    }
    if !same_htu(&claims.htu, url) {
        return Err(JoseError::DpopTarget {
            claimed: claims.htu,
            expected: url.to_owned(),
        });
    }
    if let Some(token) = access_token {
        match &claims.ath {
            Some(ath) if *ath == access_token_hash(token) => {}
            Some(_) => return Err(JoseError::DpopOtherToken),
            None => return Err(JoseError::DpopNoAth),
        }
    }
    Ok(DpopProof {
        jkt: key.thumbprint,
        jti,
        iat: claims.iat,
    })
}

#[derive(Debug, Deserialize)]
struct AssertionClaims {
    iss: String,
    sub: String,
    aud: Audience,
    exp: i64,
    #[serde(default)]
    nbf: Option<i64>,
    #[serde(default)]
    jti: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    fn any(&self, f: impl Fn(&str) -> bool) -> bool {
        match self {
            Self::One(a) => f(a),
            Self::Many(v) => v.iter().any(|a| f(a)),
        }
    }
}

/// Clock skew tolerated on `exp` and `nbf`, in seconds.
const LEEWAY: i64 = 30;

/// A client assertion that passed every check but `jti` reuse.
#[derive(Debug, Clone)]
pub struct Assertion {
    pub jti: Jti,
    pub exp: i64,
}

/// Longest lifetime accepted for a client assertion, in seconds: an hour, as
/// common clients (authlib) make them. Used `jti`s are kept until `exp`.
pub const ASSERTION_MAX_LIFETIME: i64 = 3600;

/// Check a `private_key_jwt` client assertion (RFC 7523 §3) against the
/// client's registered key: `iss` = `sub` = client id, `aud` one of
/// `audiences`, unexpired, not absurdly long-lived, with a `jti`.
pub fn verify_client_assertion(
    assertion: &str,
    key: &PublicKey,
    client_id: &str,
    audiences: &[String],
    now: i64,
) -> Result<Assertion, JoseError> {
    let jws = Jws::parse(assertion, "client assertion")?;
    jws.verify(key, "client assertion")?;
    let claims: AssertionClaims =
        serde_json::from_slice(&jws.payload).map_err(|e| JoseError::Claims {
            what: "client assertion",
            message: e.to_string(),
        })?;
    // Saturating: `exp` and `nbf` are the client's, any `i64`.
    if claims.exp.saturating_add(LEEWAY) < now {
        return Err(JoseError::AssertionExpired);
    }
    if claims
        .nbf
        .is_some_and(|nbf| nbf > now.saturating_add(LEEWAY))
    {
        return Err(JoseError::AssertionNotYet);
    }
    if !claims.aud.any(|a| audiences.iter().any(|ok| ok == a)) {
        return Err(JoseError::AssertionAudience {
            audiences: audiences.to_vec(),
        });
    }
    if claims.iss != client_id || claims.sub != client_id {
        return Err(JoseError::AssertionIssuer);
    }
    if claims.exp > now.saturating_add(ASSERTION_MAX_LIFETIME + LEEWAY) {
        return Err(JoseError::AssertionLifetime);
    }
    let jti: Jti = claims
        .jti
        .and_then(|j| j.parse().ok())
        .ok_or(JoseError::AssertionJti)?;
    Ok(Assertion {
        jti,
        exp: claims.exp,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn htu_ignores_query_and_case_of_scheme_and_host() {
        assert!(same_htu(
            "HTTP://Example.com/v1/decisions?x=1",
            "http://example.com/v1/decisions"
        ));
        assert!(!same_htu(
            "http://example.com/v1/decision",
            "http://example.com/v1/decisions"
        ));
        assert!(!same_htu(
            "http://example.com/V1/decisions",
            "http://example.com/v1/decisions"
        ));
    }

    /// A public key of the wrong length for its curve is refused as a key;
    /// it used to reach the verifier, which panicked slicing it (found by
    /// the `dpop` fuzz target).
    #[test]
    fn keys_of_the_wrong_length_are_refused() {
        let short = serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": "15qYAYKxDusAxyuf2A"});
        assert!(matches!(
            PublicKey::from_json(&short),
            Err(JwkError::KeyLength {
                member: "x",
                expected: 32,
                got: 13
            })
        ));
        let long = serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": URL_SAFE_NO_PAD.encode([7u8; 33])});
        assert!(PublicKey::from_json(&long).is_err());
        let ec = serde_json::json!({"kty": "EC", "crv": "P-256", "x": URL_SAFE_NO_PAD.encode([1u8; 31]), "y": URL_SAFE_NO_PAD.encode([1u8; 32])});
        assert!(matches!(
            PublicKey::from_json(&ec),
            Err(JwkError::KeyLength {
                member: "x",
                expected: 32,
                got: 31
            })
        ));
    }

    #[test]
    fn private_and_symmetric_keys_are_refused() {
        let private = serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo", "d": "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"});
        assert!(PublicKey::from_json(&private).is_err());
        let symmetric = serde_json::json!({"kty": "oct", "k": "c2VjcmV0"});
        assert!(PublicKey::from_json(&symmetric).is_err());
        let public = serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"});
        let key = PublicKey::from_json(&public).expect("a public Ed25519 key");
        // RFC 8037 appendix A.3.
        assert_eq!(
            key.thumbprint,
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
    }
}
