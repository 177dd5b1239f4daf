"""Authlib, unchanged, through the interactive flow: the authorization code
grant with PKCE (S256) and a client identified by its client metadata
document. The document is served from a port of this test (plain http on
loopback, which `bridle demo` allows); the owner, alice, signs in to the
console with her API key (from the demo's output) and allows the request;
authlib redeems the code with its verifier, and the token is the agent's
own at /v1/decisions."""

import html
import json
import os
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from authlib.common.security import generate_token
from authlib.integrations.httpx_client import OAuth2Client

from support import jwt_parts

REDIRECT = "http://127.0.0.1:9/callback"


def _alice_key():
    log = os.environ.get("BRIDLE_DEMO_LOG")
    if not log:
        raise RuntimeError("BRIDLE_DEMO_LOG is not set: run these tests through scripts/interop.sh")
    with open(log) as f:
        found = re.search(r"alice \(owns procurement-bot\):\s+(\S+)", f.read())
    assert found, "the demo printed no key for alice"
    return found.group(1)


@pytest.fixture(scope="module")
def client_id():
    """Serve a client metadata document on loopback; its URL is the client id."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    url = f"http://127.0.0.1:{server.server_address[1]}/client.json"
    body = json.dumps(
        {
            "client_id": url,
            "client_name": "Interop Inspector",
            "redirect_uris": [REDIRECT],
            "grant_types": ["authorization_code"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
        }
    ).encode()

    class Document(BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path != "/client.json":
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server.RequestHandlerClass = Document
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield url
    server.shutdown()


def _csrf(page):
    found = re.search(r'name="csrf" value="([0-9a-f]{32})"', page)
    assert found, page
    return found.group(1)


def owner_allows(issuer, authorization_url, agent):
    """Play the owner in a browser-like cookie session: follow the client's
    authorization URL to the console, sign in, allow; the redirect back."""
    with httpx.Client(base_url=issuer, follow_redirects=False, timeout=10) as browser:
        r = browser.get(authorization_url)
        assert r.status_code == 303, r.text
        consent = r.headers["location"]
        assert consent.startswith("/console/oauth/consent?request="), consent
        # Not signed in: to the sign-in page, with the way back.
        r = browser.get(consent)
        assert r.status_code == 303
        assert r.headers["location"].startswith("/console/signin?next=")
        r = browser.post("/console/signin", data={"api_key": _alice_key(), "next": consent})
        assert r.status_code == 303, r.text
        assert r.headers["location"] == consent
        r = browser.get(consent)
        assert r.status_code == 200, r.text
        page = r.text
        assert "Interop Inspector" in page
        assert html.escape(REDIRECT) in page
        request = parse_qs(urlsplit(consent).query)["request"][0]
        r = browser.post(
            "/console/oauth/consent",
            data={"csrf": _csrf(page), "request": request, "agent": agent, "decision": "allow"},
        )
        assert r.status_code == 303, r.text
        return r.headers["location"]


def test_authorization_code_with_pkce(issuer, metadata, client_id):
    assert metadata["authorization_endpoint"] == f"{issuer}/oauth/authorize"
    assert metadata["code_challenge_methods_supported"] == ["S256"]
    assert metadata["client_id_metadata_document_supported"] is True
    assert "none" in metadata["token_endpoint_auth_methods_supported"]

    verifier = generate_token(64)
    with OAuth2Client(
        client_id=client_id,
        redirect_uri=REDIRECT,
        code_challenge_method="S256",
        token_endpoint_auth_method="none",
        timeout=10,
    ) as client:
        url, state = client.create_authorization_url(
            metadata["authorization_endpoint"], code_verifier=verifier
        )
        assert "code_challenge=" in url and "code_challenge_method=S256" in url
        back = owner_allows(issuer, url, "procurement-bot")
        query = parse_qs(urlsplit(back).query)
        assert back.startswith(REDIRECT + "?")
        assert query["state"] == [state]
        assert query["iss"] == [issuer]  # RFC 9207

        token = client.fetch_token(
            metadata["token_endpoint"],
            authorization_response=back,
            state=state,
            code_verifier=verifier,
        )
        assert token["token_type"].lower() == "bearer"
        assert "refresh_token" not in token
        _, claims = jwt_parts(token["access_token"])
        assert claims["sub"] == "procurement-bot"
        assert claims["client_id"] == client_id
        assert claims["iss"] == issuer

        r = httpx.post(
            f"{issuer}/v1/decisions",
            headers={"Authorization": f"Bearer {token['access_token']}"},
            json={"action": "procurement.list_vendors", "args": {}},
            timeout=10,
        )
        assert r.status_code == 200, r.text
        assert r.json()["decision"] == "allow"

        # The code is single-use: authlib redeeming it again is refused.
        again = httpx.post(
            metadata["token_endpoint"],
            data={
                "grant_type": "authorization_code",
                "code": query["code"][0],
                "redirect_uri": REDIRECT,
                "client_id": client_id,
                "code_verifier": verifier,
            },
            timeout=10,
        )
        assert again.status_code == 400
        assert again.json()["error"] == "invalid_grant"
