"""P7: `tools/call` through the Bridle gateway against the same call made
directly to the same upstream, in one run. The upstream is
@modelcontextprotocol/server-everything over streamable HTTP; the client is
the official MCP Python SDK for both arms (its own cost cancels out in the
difference). Batches of the two arms alternate, so drift hits both alike.
Prints p50/p99 of each arm, their ratio, and what the gateway adds, for
each MCP revision: 2025-11-25 (`ClientSession`, the initialize handshake and
a session) and 2026-07-28 (the SDK's `Client` in its default mode:
stateless requests with `Mcp-Method`/`Mcp-Name` headers). REVISIONS picks
them (default both: `2025-11-25,2026-07-28`).
"""

import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx2
from mcp import ClientSession
from mcp.client.client import Client
from mcp.client.streamable_http import streamable_http_client

ROOT = Path(__file__).resolve().parents[1]
BIN = os.environ.get("BRIDLE_BIN", str(ROOT / "target/release/bridle"))
CALLS = int(os.environ.get("CALLS", "2000"))
REVISIONS = os.environ.get("REVISIONS", "2025-11-25,2026-07-28").split(",")
BATCH = 100
ADMIN = "bk_gateway-bench-admin-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx2.get(url, timeout=2)
            return
        except httpx2.HTTPError:
            if time.monotonic() > deadline:
                raise SystemExit(f"not ready: {url}")
            time.sleep(0.1)


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))]


async def open_session(stack, url, headers, revision):
    http = await stack.enter_async_context(httpx2.AsyncClient(headers=headers, timeout=60))
    if revision == "2026-07-28":
        return await stack.enter_async_context(
            Client(streamable_http_client(url, http_client=http)))
    read, write = await stack.enter_async_context(streamable_http_client(url, http_client=http))
    s = await stack.enter_async_context(ClientSession(read, write))
    await s.initialize()
    return s


async def bench(direct_url, gw_url, token, revision):
    from contextlib import AsyncExitStack
    async with AsyncExitStack() as stack:
        direct = await open_session(stack, direct_url, {}, revision)
        via = await open_session(stack, gw_url, {"Authorization": f"Bearer {token}"}, revision)
        arms = {"direct": (direct, "echo"), "gateway": (via, "everything.echo")}
        times = {k: [] for k in arms}
        for _ in range(20):  # warm up both paths
            for s, tool in arms.values():
                await s.call_tool(tool, {"message": "warm"})
        for _ in range(CALLS // BATCH):
            for name, (s, tool) in arms.items():
                for _ in range(BATCH):
                    t0 = time.perf_counter()
                    r = await s.call_tool(tool, {"message": "bench"})
                    times[name].append(time.perf_counter() - t0)
                    assert not r.is_error
        return times


def main(tmp: Path, procs: list) -> None:
    port, gw_port, up_port = free_port(), free_port(), free_port()
    bridle = f"http://127.0.0.1:{port}"
    gw_url = f"http://127.0.0.1:{gw_port}/mcp"
    env = dict(os.environ, BRIDLE_ADMIN_TOKEN=ADMIN, BRIDLE_LOG="error")
    procs.append(subprocess.Popen(
        [BIN, "serve", "--listen", f"127.0.0.1:{port}", "--db", f"sqlite://{tmp}/bridle.db"],
        env=env, stdout=subprocess.DEVNULL))
    procs.append(subprocess.Popen(
        ["node", str(ROOT / "tests/mcp/node_modules/.bin/mcp-server-everything"), "streamableHttp"],
        env=dict(env, PORT=str(up_port)), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    wait_http(f"{bridle}/healthz")
    wait_http(f"http://127.0.0.1:{up_port}/mcp")
    admin = httpx2.Client(base_url=bridle, headers={"Authorization": f"Bearer {ADMIN}"})
    pep = admin.post("/v1/principals", json={"id": "gateway", "roles": ["pep"]}).json()["api_key"]
    admin.post("/v1/principals", json={"id": "alice"})
    r = admin.put("/v1/agents/mcp-bot", content=(ROOT / "tests/mcp/mcp-bot.yaml").read_text(),
                  headers={"content-type": "application/yaml"})
    assert r.status_code == 201, r.text
    cred = admin.post("/v1/agents/mcp-bot/credentials", json={}).json()
    token = httpx2.post(f"{bridle}/oauth/token", auth=(cred["client_id"], cred["client_secret"]),
                        data={"grant_type": "client_credentials", "resource": gw_url}).json()["access_token"]
    config = tmp / "gateway.yaml"
    config.write_text(
        f"listen: 127.0.0.1:{gw_port}\nbridle_url: {bridle}\nupstreams:\n"
        f"  - name: everything\n    url: http://127.0.0.1:{up_port}/mcp\n    prefix: everything.\n")
    procs.append(subprocess.Popen([BIN, "gateway", "--config", str(config)],
                                  env=dict(env, BRIDLE_PEP_KEY=pep), stdout=subprocess.DEVNULL))
    wait_http(f"http://127.0.0.1:{gw_port}/.well-known/oauth-protected-resource")

    for revision in REVISIONS:
        times = asyncio.run(bench(f"http://127.0.0.1:{up_port}/mcp", gw_url, token, revision))
        ms = {k: (pct(v, 0.5) * 1e3, pct(v, 0.99) * 1e3) for k, v in times.items()}
        (d50, d99), (g50, g99) = ms["direct"], ms["gateway"]
        print(f"MCP {revision}, calls per arm: {len(times['direct'])}")
        print(f"  direct   p50 {d50:.3f} ms  p99 {d99:.3f} ms")
        print(f"  gateway  p50 {g50:.3f} ms  p99 {g99:.3f} ms")
        print(f"  ratio (p50): {g50 / d50:.2f}x")
        print(f"  added by the gateway: p50 {g50 - d50:.3f} ms, p99 {g99 - d99:.3f} ms"
              " (P7 target: p50 <= 1 ms, p99 <= 3 ms)")


if __name__ == "__main__":
    procs: list = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            main(Path(tmp), procs)
    finally:
        for p in procs:
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
    sys.exit(0)
