"""Authlib, unchanged, against Bridle's token, introspection and revocation
endpoints: client credentials with client_secret_basic and
client_secret_post, RFC 8693 token exchange through authlib's generic
`fetch_token`, private_key_jwt (RFC 7523) with keys authlib generates, and
client-secret rotation."""

import httpx
import pytest
from authlib.integrations.base_client import OAuthError
from authlib.oauth2.rfc7523 import PrivateKeyJWT, private_key_jwt_sign
from joserfc.jwk import ECKey, OKPKey

from support import (
    ACCESS_TOKEN_TYPE,
    TOKEN_EXCHANGE,
    StatusRecorder,
    jwt_parts,
    new_agent,
    new_secret,
    oauth_client,
)


def decide(issuer, token, action, args=None):
    return httpx.post(
        f"{issuer}/v1/decisions",
        headers={"Authorization": f"Bearer {token}"},
        json={"action": action, "args": args or {}},
        timeout=10,
    )


def fetch_client_token(admin, token_endpoint, agent, **params):
    client_id, secret = new_secret(admin, agent)
    with oauth_client(client_id, secret) as client:
        return client.fetch_token(token_endpoint, grant_type="client_credentials", **params)


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_client_credentials(admin, issuer, token_endpoint, method):
    client_id, secret = new_secret(admin, "procurement-bot")
    sent = []
    client = oauth_client(client_id, secret, method)
    client.event_hooks["request"].append(sent.append)
    with client:
        token = client.fetch_token(token_endpoint, grant_type="client_credentials")

        # The client really used the method under test.
        request = sent[0]
        body = request.content.decode()
        if method == "client_secret_basic":
            assert request.headers["authorization"].startswith("Basic ")
            assert "client_secret=" not in body
        else:
            assert "authorization" not in request.headers
            assert "client_secret=" in body

        assert token["token_type"].lower() == "bearer"
        assert 0 < token["expires_in"] <= 3600
        header, claims = jwt_parts(token["access_token"])
        assert header["typ"] == "at+jwt"
        assert claims["sub"] == "procurement-bot"
        assert claims["client_id"] == client_id
        assert claims["iss"] == issuer

        # authlib's session puts the token on the next request by itself.
        r = client.post(
            f"{issuer}/v1/decisions",
            json={"action": "procurement.list_vendors", "args": {}},
        )
        assert r.status_code == 200, r.text
        assert r.request.headers["authorization"] == f"Bearer {token['access_token']}"
        assert r.json()["decision"] == "allow"
        assert [reason["code"] for reason in r.json()["reasons"]] == ["granted"]


def test_client_credentials_with_scope_and_resource(admin, token_endpoint):
    token = fetch_client_token(
        admin,
        token_endpoint,
        "procurement-bot",
        scope="procurement.list_vendors",
        resource="https://erp.example.com/",
    )
    assert token["scope"] == "procurement.list_vendors"
    _, claims = jwt_parts(token["access_token"])
    assert claims["aud"] in ("https://erp.example.com/", ["https://erp.example.com/"])


def test_bad_secret_is_invalid_client(admin, token_endpoint):
    client_id, _ = new_secret(admin, "procurement-bot")
    statuses = StatusRecorder()
    with oauth_client(client_id, "bcs_not-the-secret") as client:
        client.register_compliance_hook("access_token_response", statuses)
        with pytest.raises(OAuthError) as e:
            client.fetch_token(token_endpoint, grant_type="client_credentials")
    assert e.value.error == "invalid_client"
    assert statuses.statuses == [401]


class TestTokenExchange:
    """swe-bot delegates to test-runner (max_depth 1): test-runner is the
    client, swe-bot's access token is the subject token."""

    @pytest.fixture
    def swe_token(self, admin, token_endpoint):
        return fetch_client_token(admin, token_endpoint, "swe-bot")

    @pytest.fixture
    def runner(self, admin):
        client_id, secret = new_secret(admin, "test-runner")
        with oauth_client(client_id, secret) as client:
            yield client

    def exchange(self, runner, token_endpoint, subject_token, **params):
        return runner.fetch_token(
            token_endpoint,
            grant_type=TOKEN_EXCHANGE,
            subject_token=subject_token,
            subject_token_type=ACCESS_TOKEN_TYPE,
            **params,
        )

    def test_exchange(self, issuer, token_endpoint, swe_token, runner):
        token = self.exchange(runner, token_endpoint, swe_token["access_token"])
        assert token["issued_token_type"] == ACCESS_TOKEN_TYPE
        assert token["token_type"].lower() == "bearer"

        _, subject = jwt_parts(swe_token["access_token"])
        header, claims = jwt_parts(token["access_token"])
        assert header["typ"] == "at+jwt"
        assert claims["sub"] == "swe-bot"
        assert claims["act"] == {"sub": "test-runner"}
        assert claims["exp"] <= subject["exp"]

        # Acting for swe-bot, test-runner gets only what both records allow.
        r = decide(issuer, token["access_token"], "ci.run_tests")
        assert r.status_code == 200, r.text
        assert r.json()["decision"] == "allow"
        r = decide(issuer, token["access_token"], "secrets.read")
        assert r.status_code == 200, r.text
        assert r.json()["decision"] == "deny"

    def test_exchange_with_actor_token_and_narrower_scope(
        self, token_endpoint, swe_token, runner
    ):
        actor = runner.fetch_token(token_endpoint, grant_type="client_credentials")
        token = self.exchange(
            runner,
            token_endpoint,
            swe_token["access_token"],
            actor_token=actor["access_token"],
            actor_token_type=ACCESS_TOKEN_TYPE,
            scope="ci.run_tests",
        )
        assert token["issued_token_type"] == ACCESS_TOKEN_TYPE
        assert token["scope"] == "ci.run_tests"
        _, claims = jwt_parts(token["access_token"])
        assert claims["sub"] == "swe-bot"
        assert claims["act"]["sub"] == "test-runner"

    def test_wider_scope_is_invalid_scope(self, token_endpoint, admin, runner):
        narrow = fetch_client_token(
            admin, token_endpoint, "swe-bot", scope="github.get_repo"
        )
        with pytest.raises(OAuthError) as e:
            self.exchange(
                runner, token_endpoint, narrow["access_token"], scope="ci.run_tests"
            )
        assert e.value.error == "invalid_scope"

    def test_undeclared_delegate_is_invalid_target(self, admin, token_endpoint, runner):
        # procurement-bot's record names no delegates.
        subject = fetch_client_token(admin, token_endpoint, "procurement-bot")
        statuses = StatusRecorder()
        runner.register_compliance_hook("access_token_response", statuses)
        with pytest.raises(OAuthError) as e:
            self.exchange(runner, token_endpoint, subject["access_token"])
        assert e.value.error == "invalid_target"
        assert statuses.statuses == [400]

    def test_depth_beyond_max_depth_is_invalid_target(
        self, token_endpoint, swe_token, runner
    ):
        once = self.exchange(runner, token_endpoint, swe_token["access_token"])
        with pytest.raises(OAuthError) as e:
            self.exchange(runner, token_endpoint, once["access_token"])
        assert e.value.error == "invalid_target"


def test_introspection_and_revocation(admin, issuer, metadata, token_endpoint):
    client_id, secret = new_secret(admin, "research-bot")
    with oauth_client(client_id, secret) as client:
        token = client.fetch_token(token_endpoint, grant_type="client_credentials")
        access_token = token["access_token"]

        r = client.introspect_token(metadata["introspection_endpoint"], token=access_token)
        assert r.status_code == 200, r.text
        info = r.json()
        assert info["active"] is True
        assert info["sub"] == "research-bot"
        assert info["client_id"] == client_id
        assert info["iss"] == issuer
        _, claims = jwt_parts(access_token)
        assert info["jti"] == claims["jti"]
        assert info["exp"] == claims["exp"]

        r = client.revoke_token(metadata["revocation_endpoint"], token=access_token)
        assert r.status_code == 200, r.text

        r = client.introspect_token(metadata["introspection_endpoint"], token=access_token)
        assert r.status_code == 200, r.text
        assert r.json() == {"active": False}

    r = decide(issuer, access_token, "web.fetch", {"url": "https://example.com/"})
    assert r.status_code == 401, r.text


KEYS = {
    "Ed25519/EdDSA": (lambda: OKPKey.generate_key("Ed25519"), "EdDSA"),
    "P-256/ES256": (lambda: ECKey.generate_key("P-256"), "ES256"),
}


def register_key(admin, agent, key):
    public = key.as_dict(private=False)
    r = admin.post(f"/v1/agents/{agent}/credentials", json={"jwk": public})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["token_endpoint_auth_method"] == "private_key_jwt"
    assert "client_secret" not in body
    # RFC 7638 thumbprint, as the client computes it.
    assert body["jwk_thumbprint"] == key.thumbprint()
    return body["client_id"]


@pytest.mark.parametrize("kind", list(KEYS))
def test_private_key_jwt(admin, issuer, token_endpoint, kind):
    """authlib's PrivateKeyJWT exactly as its documentation sets it up."""
    generate, alg = KEYS[kind]
    key = generate()
    client_id = register_key(admin, "support-bot", key)

    client = oauth_client(client_id, key, "private_key_jwt")
    client.register_client_auth_method(PrivateKeyJWT(token_endpoint, alg=alg))
    with client:
        token = client.fetch_token(token_endpoint, grant_type="client_credentials")
    _, claims = jwt_parts(token["access_token"])
    assert claims["sub"] == "support-bot"
    assert claims["client_id"] == client_id
    assert claims["iss"] == issuer


def test_private_key_jwt_assertion_is_single_use(admin, token_endpoint):
    key = OKPKey.generate_key("Ed25519")
    client_id = register_key(admin, "support-bot", key)
    # An assertion signed by authlib, five minutes long.
    assertion = private_key_jwt_sign(
        key, client_id, token_endpoint, alg="EdDSA", expires_in=300
    )
    form = {
        "grant_type": "client_credentials",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": assertion,
    }
    first = httpx.post(token_endpoint, data=form, timeout=10)
    assert first.status_code == 200, first.text
    assert jwt_parts(first.json()["access_token"])[1]["client_id"] == client_id
    replay = httpx.post(token_endpoint, data=form, timeout=10)
    assert replay.status_code == 401, replay.text
    assert replay.json()["error"] == "invalid_client"


def test_secret_rotation(admin, token_endpoint):
    agent = new_agent(admin, "interop-rotation")
    client_id, first = new_secret(admin, agent)

    def works(secret):
        with oauth_client(client_id, secret) as client:
            token = client.fetch_token(token_endpoint, grant_type="client_credentials")
        return jwt_parts(token["access_token"])[1]["sub"] == agent

    def rejected(secret):
        statuses = StatusRecorder()
        with oauth_client(client_id, secret) as client:
            client.register_compliance_hook("access_token_response", statuses)
            with pytest.raises(OAuthError) as e:
                client.fetch_token(token_endpoint, grant_type="client_credentials")
        return e.value.error == "invalid_client" and statuses.statuses == [401]

    def rotate(overlap):
        r = admin.post(
            f"/v1/agents/{agent}/credentials/{client_id}/rotate", json={"overlap": overlap}
        )
        assert r.status_code in (200, 201), r.text
        body = r.json()
        assert body["client_id"] == client_id
        return body["client_secret"]

    assert works(first)
    second = rotate("1h")
    assert second != first
    # During the overlap both secrets work, so clients can move over.
    assert works(second)
    assert works(first)

    third = rotate("0s")
    assert works(third)
    assert rejected(second)
    assert rejected(first)
