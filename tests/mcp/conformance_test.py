"""I3: the official MCP conformance suite (server scenarios, pinned in
package.json, run on the Node 22 it needs from node_modules) against the
gateway in front of conformance_fixtures.py (an upstream with the fixtures
the scenarios look for, so what they check is what the gateway relays),
through token_proxy.py (the suite cannot send a token). The gateway runs inside the
server (`bridle serve --gateway FILE`). Expected failures, with
their reasons, are in conformance-baseline.yml; the suite fails on any
other failure. Run by scripts/gateway-tests.sh.
"""

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx2

ROOT = Path(__file__).resolve().parents[2]
HERE = ROOT / "tests/mcp"
BIN = os.environ.get("BRIDLE_BIN", str(ROOT / "target/debug/bridle"))
ADMIN = "bk_conformance-admin-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            httpx2.get(url, timeout=2)
            return
        except httpx2.HTTPError:
            if time.monotonic() > deadline:
                raise SystemExit(f"not ready: {url}")
            time.sleep(0.1)


def main(tmp: Path, procs: list) -> int:
    port, gw_port, proxy_port = free_port(), free_port(), free_port()
    bridle = f"http://127.0.0.1:{port}"
    mcp_url = f"http://127.0.0.1:{gw_port}/mcp"
    env = dict(os.environ, BRIDLE_ADMIN_TOKEN=ADMIN, BRIDLE_LOG="error")
    serve = [BIN, "serve", "--listen", f"127.0.0.1:{port}", "--db", f"sqlite://{tmp}/bridle.db"]
    first = subprocess.Popen(serve, env=env, stdout=subprocess.DEVNULL)
    procs.append(first)
    wait_http(f"{bridle}/healthz")
    admin = httpx2.Client(base_url=bridle, headers={"Authorization": f"Bearer {ADMIN}"})
    pep = admin.post("/v1/principals", json={"id": "gateway", "roles": ["pep"]}).json()["api_key"]
    admin.post("/v1/principals", json={"id": "alice"})
    r = admin.put("/v1/agents/conformance-bot", content=(HERE / "conformance-bot.yaml").read_text(),
                  headers={"content-type": "application/yaml"})
    assert r.status_code == 201, r.text
    cred = admin.post("/v1/agents/conformance-bot/credentials", json={}).json()
    token = httpx2.post(f"{bridle}/oauth/token", auth=(cred["client_id"], cred["client_secret"]),
                        data={"grant_type": "client_credentials", "resource": mcp_url}).json()["access_token"]

    config = tmp / "gateway.yaml"
    config.write_text(
        f"listen: 127.0.0.1:{gw_port}\nbridle_url: {bridle}\nupstreams:\n"
        "  - name: fixtures\n"
        f"    command: [\"{sys.executable}\", \"{HERE}/conformance_fixtures.py\"]\n"
        "    prefix: \"\"\n")
    # This time the gateway runs inside the server process: `serve --gateway`.
    first.terminate()
    first.wait(10)
    procs.append(subprocess.Popen(serve + ["--gateway", str(config)],
                                  env=dict(env, BRIDLE_PEP_KEY=pep), stdout=subprocess.DEVNULL))
    wait_http(f"{bridle}/healthz")
    wait_http(f"http://127.0.0.1:{gw_port}/.well-known/oauth-protected-resource")
    procs.append(subprocess.Popen([sys.executable, str(HERE / "token_proxy.py"),
                                   f"http://127.0.0.1:{gw_port}", str(proxy_port)],
                                  env=dict(env, BRIDLE_TOKEN=token)))
    wait_http(f"http://127.0.0.1:{proxy_port}/.well-known/oauth-protected-resource")
    # The upstream starts in the background; the first listing waits for it.
    return subprocess.run(
        [str(HERE / "node_modules/.bin/node"),
         str(HERE / "node_modules/@modelcontextprotocol/conformance/dist/index.js"), "server",
         "--url", f"http://127.0.0.1:{proxy_port}/mcp",
         "--expected-failures", str(HERE / "conformance-baseline.yml"),
         "-o", os.environ.get("CONFORMANCE_OUT", str(tmp / "results")), *os.environ.get("CONFORMANCE_ARGS", "").split()],
        cwd=tmp).returncode


if __name__ == "__main__":
    procs: list = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            rc = main(Path(tmp), procs)
    finally:
        for p in procs:
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
    print("conformance:", "as expected" if rc == 0 else f"failed (exit {rc})")
    sys.exit(rc)
