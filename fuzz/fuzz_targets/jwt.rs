//! Access-token verification (`Keys::verify`, what every agent request goes
//! through) and `private_key_jwt` client assertions (the claim peeking that
//! picks the client, then `verify_client_assertion`).
//!
//! Input: a first line naming the mode, then fields, one per line:
//! - `token` / `assertion`: the rest is the JWT as sent;
//! - `signed-token` / `signed-assertion`: a JOSE header line and a payload
//!   (the rest), which the target signs with the fixed fuzz key, so the
//!   claim checks behind the signature check are reached.
//!
//! Any other first line: the whole input is tried as both kinds of JWT.
#![no_main]

use bridle_fuzz::{ISSUER, NOW, fields, server_keys, sign};
use bridle_server::jose;
use libfuzzer_sys::fuzz_target;

const CLIENT: &str = "procurement-bot";

fn token(jwt: &str) {
    let Some(keys) = server_keys() else {
        return;
    };
    if let Ok(claims) = keys.verify(jwt, ISSUER) {
        // A verified token is one of ours: our issuer, a subject.
        assert_eq!(claims.iss, ISSUER, "a token of another issuer verified");
        let header = jwt.split('.').next().unwrap_or_default();
        assert!(!header.is_empty(), "a token without a header verified");
    }
}

fn assertion(jwt: &str) {
    // The token endpoint finds the client by the unverified `sub`/`iss`.
    let _ = jose::unverified_claim(jwt, "sub");
    let _ = jose::unverified_claim(jwt, "iss");
    let Ok(key) = jose::PublicKey::from_json(&bridle_fuzz::public_jwk()) else {
        return;
    };
    let audiences = [format!("{ISSUER}/oauth/token"), ISSUER.to_owned()];
    if let Ok(a) = jose::verify_client_assertion(jwt, &key, CLIENT, &audiences, NOW) {
        assert!(
            !a.jti.as_str().is_empty() && a.jti.as_str().len() <= 256,
            "bad jti accepted"
        );
        assert!(
            a.exp <= NOW + jose::ASSERTION_MAX_LIFETIME + 30,
            "an assertion living too long was accepted"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let f = fields(text, 3);
    let rest = text.split_once('\n').map_or("", |(_, rest)| rest);
    match f[0] {
        "token" => token(rest),
        "assertion" => assertion(rest),
        "signed-token" => token(&sign(f[1].as_bytes(), f[2].as_bytes())),
        "signed-assertion" => assertion(&sign(f[1].as_bytes(), f[2].as_bytes())),
        _ => {
            token(text);
            assertion(text);
        }
    }
});
