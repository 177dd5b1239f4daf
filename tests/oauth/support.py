"""Helpers shared by the Python OAuth interoperability tests."""

import base64
import json
import uuid

from authlib.integrations.httpx_client import OAuth2Client

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"


def new_secret(admin, agent):
    """Register a fresh client secret for `agent`: (client_id, client_secret)."""
    r = admin.post(f"/v1/agents/{agent}/credentials", json={})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["token_endpoint_auth_method"] == "client_secret_basic"
    return body["client_id"], body["client_secret"]


def new_agent(admin, prefix, extra_yaml=""):
    """Create a throwaway agent (owner alice) and return its id."""
    agent = f"{prefix}-{uuid.uuid4().hex[:8]}"
    manifest = (
        f"agent: {agent}\n"
        "owner: alice\n"
        "purpose: OAuth interoperability test client\n"
        "environment: dev\n"
        "expires: 2099-12-31\n"
        "tools:\n"
        "  - name: interop.ping\n"
        f"{extra_yaml}"
    )
    r = admin.put(
        f"/v1/agents/{agent}",
        content=manifest,
        headers={"Content-Type": "application/yaml"},
    )
    assert r.status_code == 201, r.text
    return agent


def oauth_client(client_id, client_secret, method="client_secret_basic"):
    return OAuth2Client(
        client_id=client_id,
        client_secret=client_secret,
        token_endpoint_auth_method=method,
        timeout=10,
    )


def jwt_parts(token):
    """The unverified header and claims of a JWT (for assertions only;
    signatures are checked with PyJWT where that is the point)."""

    def part(s):
        return json.loads(base64.urlsafe_b64decode(s + "=" * (-len(s) % 4)))

    header, claims, _ = token.split(".")
    return part(header), part(claims)


class StatusRecorder:
    """An authlib `access_token_response` hook that remembers each token
    response's HTTP status (authlib raises on the body's `error` alone)."""

    def __init__(self):
        self.statuses = []

    def __call__(self, resp):
        self.statuses.append(resp.status_code)
        return resp
