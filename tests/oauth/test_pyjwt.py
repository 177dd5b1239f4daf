"""PyJWT's PyJWKClient verifying Bridle's access tokens from the published
JWKS (RFC 7517), across a signing-key rotation."""

import jwt
import pytest
from jwt import PyJWKClient

from support import jwt_parts, new_secret, oauth_client


@pytest.fixture
def fetch_token(admin, token_endpoint):
    client_id, secret = new_secret(admin, "ir-bot")

    def fetch(**params):
        with oauth_client(client_id, secret) as client:
            return client.fetch_token(
                token_endpoint, grant_type="client_credentials", **params
            )["access_token"]

    return fetch


def verify(jwks_client, token, audience, issuer):
    key = jwks_client.get_signing_key_from_jwt(token)
    return jwt.decode(
        token,
        key,
        algorithms=["EdDSA"],
        audience=audience,
        issuer=issuer,
        options={"require": ["exp", "iat", "iss", "sub", "aud", "jti"]},
    )


def test_pyjwkclient_verifies_access_tokens(metadata, issuer, fetch_token):
    jwks = PyJWKClient(metadata["jwks_uri"])

    token = fetch_token()
    assert jwt_parts(token)[0]["typ"] == "at+jwt"
    claims = verify(jwks, token, issuer, issuer)
    assert claims["sub"] == "ir-bot"

    # With RFC 8707 `resource` the token is for that audience, and only it.
    for_edr = fetch_token(resource="https://edr.example.com/")
    claims = verify(jwks, for_edr, "https://edr.example.com/", issuer)
    assert claims["sub"] == "ir-bot"
    with pytest.raises(jwt.InvalidAudienceError):
        verify(jwks, for_edr, issuer, issuer)

    # A tampered token does not verify.
    header, payload, signature = token.split(".")
    flipped = signature[:5] + ("A" if signature[5] != "A" else "B") + signature[6:]
    with pytest.raises(jwt.InvalidSignatureError):
        verify(jwks, f"{header}.{payload}.{flipped}", issuer, issuer)


def test_signing_key_rotation(admin, metadata, issuer, fetch_token):
    before_client = PyJWKClient(metadata["jwks_uri"])
    old_token = fetch_token()
    old_kid = jwt_parts(old_token)[0]["kid"]
    assert verify(before_client, old_token, issuer, issuer)["sub"] == "ir-bot"

    r = admin.post("/v1/keys/rotate", json={})
    assert r.status_code in (200, 201), r.text

    new_token = fetch_token()
    new_kid = jwt_parts(new_token)[0]["kid"]
    assert new_kid != old_kid

    # A fresh client verifies both: the JWKS keeps the old key while tokens
    # signed with it can still be live.
    after_client = PyJWKClient(metadata["jwks_uri"])
    kids = {k.key_id for k in after_client.get_signing_keys()}
    assert {old_kid, new_kid} <= kids
    assert verify(after_client, new_token, issuer, issuer)["sub"] == "ir-bot"
    assert verify(after_client, old_token, issuer, issuer)["sub"] == "ir-bot"
