"""An MCP client that knows only the interactive OAuth flow connects to the
gateway: the official Python SDK's `OAuthClientProvider`, unchanged, with no
token given to it. It is answered 401 by the gateway, reads the gateway's
protected resource metadata (RFC 9728), then Bridle's authorization server
metadata (RFC 8414), sends the browser to `/oauth/authorize` with PKCE S256
and `resource` = the gateway's URL; the agent's owner (alice) signs in to the
console and allows it for `mcp-bot`; the SDK redeems the code and calls
tools as mcp-bot, under mcp-bot's manifest (an allowed call answers, a
forbidden one is refused).

The client's id is its client metadata document's URL, served by this test
on loopback over plain http (the server runs with
`[oauth] client_metadata_allow_loopback_http`, development only). The SDK
accepts only https URLs as `client_metadata_url`, so its client information
is given to it as already known (the id, `token_endpoint_auth_method:
none`), which is what it records after choosing such a URL itself.

Run by scripts/gateway-tests.sh (which installs the pinned packages).
"""

import asyncio
import json
import os
import re
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx2
from mcp.client.auth import OAuthClientProvider
from mcp.client.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientInformationFull, OAuthClientMetadata, OAuthToken
from mcp.shared.exceptions import MCPError

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gateway_test import ADMIN, BIN, DENIED, ROOT, check, free_port, run, wait_http  # noqa: E402

CALLBACK = "http://127.0.0.1:9/callback"


def serve_document() -> tuple[ThreadingHTTPServer, str]:
    """The client metadata document on a loopback port: its URL is the id."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    url = f"http://127.0.0.1:{server.server_address[1]}/mcp-client.json"
    body = json.dumps({
        "client_id": url,
        "client_name": "MCP SDK client",
        "redirect_uris": [CALLBACK],
        "grant_types": ["authorization_code"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
    }).encode()

    class Document(BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path != "/mcp-client.json":
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
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, url


class Storage:
    """The SDK's token storage, in memory, knowing the client already."""

    def __init__(self, client: OAuthClientInformationFull):
        self.client = client
        self.tokens = None

    async def get_tokens(self):
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken):
        self.tokens = tokens

    async def get_client_info(self):
        return self.client

    async def set_client_info(self, info: OAuthClientInformationFull):
        self.client = info


def owner_allows(bridle: str, alice_key: str, authorization_url: str, agent: str) -> str:
    """Alice in a cookie session: the authorization URL leads to the console's
    consent page; she signs in, allows `agent`; the redirect back."""
    with httpx2.Client(base_url=bridle, follow_redirects=False, timeout=10) as browser:
        r = browser.get(authorization_url)
        assert r.status_code == 303, (r.status_code, r.text)
        consent = r.headers["location"]
        r = browser.post("/console/signin", data={"api_key": alice_key, "next": consent})
        assert r.status_code == 303 and r.headers["location"] == consent, r.text
        page = browser.get(consent).text
        check("MCP SDK client" in page and "mcp-bot" in page,
              "the consent page names the client and offers alice's agent")
        csrf = re.search(r'name="csrf" value="([0-9a-f]{32})"', page).group(1)
        request = parse_qs(urlsplit(consent).query)["request"][0]
        r = browser.post("/console/oauth/consent", data={
            "csrf": csrf, "request": request, "agent": agent, "decision": "allow"})
        assert r.status_code == 303, (r.status_code, r.text)
        return r.headers["location"]


async def main(tmp: Path, procs: list) -> None:
    port, gw_port = free_port(), free_port()
    bridle = f"http://127.0.0.1:{port}"
    mcp_url = f"http://127.0.0.1:{gw_port}/mcp"
    config = tmp / "bridle.toml"
    config.write_text("[oauth]\nclient_metadata_allow_loopback_http = true\n")
    env = dict(os.environ, BRIDLE_ADMIN_TOKEN=ADMIN, BRIDLE_LOG="warn,rmcp=error")
    procs.append(subprocess.Popen(
        [BIN, "serve", "--listen", f"127.0.0.1:{port}", "--db", f"sqlite://{tmp}/bridle.db",
         "--config", str(config)], env=env, stdout=subprocess.DEVNULL))
    wait_http(f"{bridle}/healthz")
    admin = httpx2.Client(base_url=bridle, headers={"Authorization": f"Bearer {ADMIN}"})
    pep = admin.post("/v1/principals", json={"id": "gateway", "roles": ["pep"]}).json()["api_key"]
    alice = admin.post("/v1/principals", json={"id": "alice"}).json()["api_key"]
    r = admin.put("/v1/agents/mcp-bot", content=(ROOT / "tests/mcp/mcp-bot.yaml").read_text(),
                  headers={"content-type": "application/yaml"})
    assert r.status_code == 201, r.text

    everything = ROOT / "tests/mcp/node_modules/.bin/mcp-server-everything"
    gateway = tmp / "gateway.yaml"
    gateway.write_text(
        f"listen: 127.0.0.1:{gw_port}\n"
        f"bridle_url: {bridle}\n"
        "upstreams:\n"
        "  - name: everything\n"
        f"    command: [node, \"{everything}\", stdio]\n"
        "    prefix: everything.\n")
    procs.append(subprocess.Popen([BIN, "gateway", "--config", str(gateway)],
                                  env=dict(env, BRIDLE_PEP_KEY=pep), stdout=subprocess.DEVNULL))
    wait_http(f"http://127.0.0.1:{gw_port}/healthz")

    document, client_id = serve_document()
    redirected: list[str] = []

    async def redirect_handler(url: str) -> None:
        check(url.startswith(f"{bridle}/oauth/authorize?"), "the SDK sends the browser to Bridle")
        query = parse_qs(urlsplit(url).query)
        check(query.get("code_challenge_method") == ["S256"], "with PKCE S256")
        check(query.get("resource") == [mcp_url], "for the gateway as the resource")
        redirected.append(await asyncio.to_thread(owner_allows, bridle, alice, url, "mcp-bot"))

    async def callback_handler():
        back = parse_qs(urlsplit(redirected[-1]).query)
        check(back.get("iss") == [bridle], "the redirect back says who issued the code (RFC 9207)")
        # The SDK checks `state` and `iss` itself.
        return AuthorizationCodeResult(code=back["code"][0], state=back.get("state", [None])[0],
                                       iss=back["iss"][0])

    storage = Storage(OAuthClientInformationFull(
        client_id=client_id, token_endpoint_auth_method="none", redirect_uris=[CALLBACK]))
    auth = OAuthClientProvider(
        server_url=mcp_url,
        client_metadata=OAuthClientMetadata(
            client_name="MCP SDK client", redirect_uris=[CALLBACK],
            grant_types=["authorization_code"], response_types=["code"],
            token_endpoint_auth_method="none"),
        storage=storage, redirect_handler=redirect_handler, callback_handler=callback_handler)
    try:
        async with httpx2.AsyncClient(auth=auth, timeout=httpx2.Timeout(30, read=60)) as http:
            async with Client(streamable_http_client(mcp_url, http_client=http)) as s:
                tools = [t.name for t in (await s.list_tools()).tools]
                check("everything.echo" in tools, f"the SDK lists mcp-bot's tools: {tools}")
                result = await s.call_tool("everything.echo", {"message": "through consent"})
                text = " ".join(getattr(c, "text", "") for c in result.content)
                check("through consent" in text, "an allowed call answers")
                try:
                    await s.call_tool("everything.get-env", {})
                    check(False, "a call mcp-bot's manifest forbids is refused")
                except MCPError as e:
                    check(e.code == DENIED and e.data["reason"] == "forbidden",
                          f"a call mcp-bot's manifest forbids is refused: {e.message}")
    finally:
        document.shutdown()
    check(len(redirected) == 1, "the owner consented once")
    claims = json.loads(_b64(storage.tokens.access_token.split(".")[1]))
    check(claims["sub"] == "mcp-bot" and claims["client_id"] == client_id
          and claims["aud"] == mcp_url,
          "the token is mcp-bot's, for this client and the gateway")
    events = admin.get("/v1/audit", params={"type": "token"}).json()["events"]
    ops = [e.get("detail", {}).get("op") for e in events]
    check("consent" in ops, "the consent is in the audit log")


def _b64(part: str) -> bytes:
    import base64
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


if __name__ == "__main__":
    run(main, "oauth client through the gateway: passed")
