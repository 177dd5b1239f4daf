//! DPoP proofs (RFC 9449) as `jose::verify_dpop` checks them for the token
//! endpoint, the API and ext_authz, and the public JWKs clients register.
//!
//! Input, one field per line: mode, method, URL, access token (empty for
//! none), JOSE header, then the payload (the rest). Modes:
//! - `raw`: the header field is the proof as sent (payload unused);
//! - `signed`: header and payload are signed with the fixed fuzz key as
//!   given;
//! - `signed-jwk`: as `signed`, with the fuzz key's public JWK put into a
//!   JSON-object header as `jwk` (so the signature checks out);
//! - `jwk`: the payload is a JWK to register (`PublicKey::from_json`).
#![no_main]

use bridle_fuzz::{NOW, fields, public_jwk, sign};
use bridle_server::jose;
use libfuzzer_sys::fuzz_target;

fn check(proof: &str, method: &str, url: &str, token: Option<&str>) {
    if let Ok(p) = jose::verify_dpop(proof, method, url, token, NOW) {
        assert!(
            (p.iat - NOW).abs() <= jose::DPOP_IAT_WINDOW,
            "a proof outside the iat window was accepted"
        );
        assert!(
            !p.jti.as_str().is_empty() && p.jti.as_str().len() <= 256,
            "bad jti accepted"
        );
        assert!(!p.jkt.is_empty(), "a proof without a key thumbprint");
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let f = fields(text, 6);
    let (mode, method, url, header, payload) = (f[0], f[1], f[2], f[4], f[5]);
    let token = (!f[3].is_empty()).then_some(f[3]);
    match mode {
        "raw" => check(header, method, url, token),
        "signed" => check(
            &sign(header.as_bytes(), payload.as_bytes()),
            method,
            url,
            token,
        ),
        "signed-jwk" => {
            let header = match serde_json::from_str::<serde_json::Value>(header) {
                Ok(serde_json::Value::Object(mut h)) => {
                    h.insert("jwk".into(), public_jwk());
                    serde_json::Value::Object(h).to_string()
                }
                _ => header.to_owned(),
            };
            check(
                &sign(header.as_bytes(), payload.as_bytes()),
                method,
                url,
                token,
            );
        }
        "jwk" => {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(payload)
                && let Ok(key) = jose::PublicKey::from_json(&v)
            {
                assert!(!key.thumbprint.is_empty());
            }
        }
        _ => check(text, "POST", "https://bridle.example/oauth/token", None),
    }
});
