"""I2: the official MCP Python SDK, as an agent with a Bridle token, through
the Bridle gateway to @modelcontextprotocol/server-everything (stdio).

Starts `bridle serve` on a throwaway SQLite file, loads tests/mcp/mcp-bot.yaml,
starts `bridle gateway` with the npm-installed upstream and a ledger upstream
(tests/mcp/ledger_server.py, whose `pay` leaves a line in a file), then checks,
with the SDK's `Client` in its default mode (it negotiates 2026-07-28:
`server/discover`, stateless requests, `Mcp-Method`/`Mcp-Name` headers,
`resultType` on results) and in `mode="legacy"` (the 2025-11-25 initialize
handshake): the list shows only granted tools; an allowed call returns the
upstream's result; a forbidden call fails with its reason; a call that needs
approval gets progress notifications while it waits and completes once an
approver approves; a held call the agent cancels is never executed and
leaves its approval for the retry, which pays exactly once; no token gets a
401 challenge. The same with the TypeScript SDK (tests/mcp/ts_client_test.mjs).
Then: a killed upstream restarts; a wrong pep key stops `bridle gateway`
naming its variable; `bridle serve --gateway` works on an empty database and
its gateway's /healthz says so.

Run by scripts/gateway-tests.sh (which installs the pinned packages).
"""

import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import httpx2
from importlib.metadata import version as package_version
from mcp.client.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

ROOT = Path(__file__).resolve().parents[2]
BIN = os.environ.get("BRIDLE_BIN", str(ROOT / "target/debug/bridle"))
ADMIN = "bk_gateway-interop-admin-0123456789"
mcp_version = package_version("mcp")
DENIED = -32001


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, deadline_s: float = 30.0, ok=(200,)) -> None:
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            if httpx2.get(url, timeout=2).status_code in ok:
                return
        except httpx2.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"not ready: {url}")
        time.sleep(0.1)


def children(pid: int) -> list:
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        out += [int(c) for c in (task / "children").read_text().split()]
    return out


def check(cond: bool, what: str) -> None:
    if not cond:
        raise SystemExit(f"FAIL: {what}")
    print(f"ok: {what}")


def start_stack(tmp: Path, procs: list, agent: str = "mcp-bot") -> SimpleNamespace:
    """`bridle serve` on a throwaway database with a pep, alice (the owner)
    and carol (an approver); the agent from tests/mcp/<agent>.yaml with a
    token for the gateway; `bridle gateway` in front of server-everything
    and the ledger (stdio), its ledger file in `tmp`. The processes go into
    `procs`; the rest is returned."""
    port, gw_port = free_port(), free_port()
    bridle = f"http://127.0.0.1:{port}"
    mcp_url = f"http://127.0.0.1:{gw_port}/mcp"
    env = dict(os.environ, BRIDLE_ADMIN_TOKEN=ADMIN, BRIDLE_LOG="warn,rmcp=error")
    procs.append(subprocess.Popen(
        [BIN, "serve", "--listen", f"127.0.0.1:{port}", "--db", f"sqlite://{tmp}/bridle.db"],
        env=env, stdout=subprocess.DEVNULL))
    wait_http(f"{bridle}/healthz")

    admin = httpx2.Client(base_url=bridle, headers={"Authorization": f"Bearer {ADMIN}"})

    def post(path, body):
        r = admin.post(path, json=body)
        assert r.is_success, (path, r.status_code, r.text)
        return r.json()

    pep = post("/v1/principals", {"id": "gateway", "roles": ["pep"]})["api_key"]
    post("/v1/principals", {"id": "alice"})
    approver = post("/v1/principals", {"id": "carol", "groups": ["approvers"]})["api_key"]
    r = admin.put(f"/v1/agents/{agent}", content=(ROOT / f"tests/mcp/{agent}.yaml").read_text(),
                  headers={"content-type": "application/yaml"})
    assert r.status_code == 201, r.text
    cred = post(f"/v1/agents/{agent}/credentials", {})
    tok = httpx2.post(f"{bridle}/oauth/token",
                      auth=(cred["client_id"], cred["client_secret"]),
                      data={"grant_type": "client_credentials", "resource": mcp_url})
    assert tok.is_success, tok.text

    server_everything = ROOT / "tests/mcp/node_modules/.bin/mcp-server-everything"
    config = tmp / "gateway.yaml"
    config.write_text(
        f"listen: 127.0.0.1:{gw_port}\n"
        f"bridle_url: {bridle}\n"
        "approval_wait: 60s\n"
        "upstreams:\n"
        "  - name: everything\n"
        f"    command: [node, \"{server_everything}\", stdio]\n"
        "    prefix: everything.\n"
        "  - name: ledger\n"
        f"    command: [\"{sys.executable}\", \"{ROOT / 'tests/mcp/ledger_server.py'}\"]\n"
        "    prefix: ledger.\n")
    ledger = tmp / "ledger.txt"
    gateway = subprocess.Popen([BIN, "gateway", "--config", str(config)],
                               env=dict(env, BRIDLE_PEP_KEY=pep, LEDGER_FILE=str(ledger)),
                               stdout=subprocess.DEVNULL)
    procs.append(gateway)
    wait_http(f"http://127.0.0.1:{gw_port}/.well-known/oauth-protected-resource")

    def approvals(state: str) -> list:
        return admin.get("/v1/approvals", params={"state": state}).json()["approvals"]

    def pending_approval(tool: str) -> dict:
        deadline = time.monotonic() + 30
        while True:
            for a in approvals("pending"):
                if a["action"] == tool:
                    return a
            if time.monotonic() > deadline:
                raise SystemExit(f"FAIL: no pending approval for {tool}")
            time.sleep(0.1)

    def approve(approval_id: str) -> None:
        r = httpx2.post(f"{bridle}/v1/approvals/{approval_id}/approve", json={},
                        headers={"Authorization": f"Bearer {approver}"})
        assert r.is_success, r.text

    def ledger_lines() -> list:
        return ledger.read_text().splitlines() if ledger.exists() else []

    return SimpleNamespace(bridle=bridle, mcp_url=mcp_url, gw_port=gw_port, env=env, admin=admin,
                           pep=pep, approver=approver, token=tok.json()["access_token"],
                           config=config, ledger=ledger, gateway=gateway,
                           pending_approval=pending_approval, approve=approve,
                           ledger_lines=ledger_lines)


def run(main, passed: str) -> None:
    """Runs `main(tmp, procs)` (a coroutine function) in a temporary
    directory, stops the processes it started, and says `passed` (or what
    it returns, a function)."""
    procs: list = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            asyncio.run(main(Path(tmp), procs))
    finally:
        for p in procs:
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
    print(passed() if callable(passed) else passed)
    sys.exit(0)


async def main(tmp: Path, procs: list) -> None:
    st = start_stack(tmp, procs)
    bridle, mcp_url, env, admin, pep = st.bridle, st.mcp_url, st.env, st.admin, st.pep
    approver, token, config, ledger, gateway = st.approver, st.token, st.config, st.ledger, st.gateway
    approve, ledger_lines = st.approve, st.ledger_lines

    async def pending_approval(tool: str) -> dict:
        return await asyncio.to_thread(st.pending_approval, tool)

    r = httpx2.post(mcp_url, json={})
    check(r.status_code == 401 and "resource_metadata=" in r.headers.get("www-authenticate", ""),
          "no token: 401 with a resource_metadata challenge")

    headers = {"Authorization": f"Bearer {token}"}

    for mode, version in (("auto", "2026-07-28"), ("legacy", "2025-11-25")):
        print(f"-- Python mcp {mcp_version}, mode={mode!r}")
        async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=120)) as http:
            async with Client(streamable_http_client(mcp_url, http_client=http), mode=mode) as s:
                check(s.protocol_version == version, f"negotiated {s.protocol_version}")
                # The upstreams start in the background: list until they are there.
                deadline = time.monotonic() + 60
                while True:
                    names = sorted(t.name for t in (await s.list_tools()).tools)
                    if len(names) >= 4 or time.monotonic() > deadline:
                        break
                    await asyncio.sleep(0.2)
                check(names == ["everything.echo", "everything.get-sum", "everything.get-tiny-image",
                                "ledger.pay"],
                      f"exactly the granted tools are listed: {names}")

                r = await s.call_tool("everything.echo", {"message": "hello"})
                check(not r.is_error and "hello" in r.content[0].text,
                      f"allowed call returns the upstream result: {r.content[0].text!r}")

                try:
                    await s.call_tool("everything.get-env", {})
                    check(False, "forbidden call is refused")
                except MCPError as e:
                    check(e.code == DENIED and e.data["reason"] == "forbidden",
                          f"forbidden call is refused with its reason: {e.message}")

                prompts = sorted(p.name for p in (await s.list_prompts()).prompts)
                check(prompts == ["everything.simple-prompt"], f"only the granted prompt is listed: {prompts}")
                got = await s.get_prompt("everything.simple-prompt")
                check(bool(got.messages), "the granted prompt is forwarded")
                try:
                    await s.get_prompt("everything.args-prompt", {"city": "Paris"})
                    check(False, "an ungranted prompt is refused")
                except MCPError as e:
                    check(e.code == DENIED and e.data["reason"] == "not_granted",
                          f"an ungranted prompt is refused: {e.message}")

                resources = (await s.list_resources()).resources
                static = [r.uri for r in resources if r.uri.startswith("demo://resource/static/")]
                check(bool(static), f"resources are listed ({len(resources)})")
                read = await s.read_resource(static[0])
                check(bool(read.contents), f"a resource inside the data scope is read: {static[0]}")
                try:
                    await s.read_resource("demo://resource/dynamic/text/1")
                    check(False, "a resource outside the data scope is refused")
                except MCPError as e:
                    check(e.code == DENIED and e.data["reason"] == "data_scope",
                          f"a resource outside the data scope is refused: {e.message}")

                progress: list = []

                async def on_progress(value, total, message):
                    progress.append(message)

                call = asyncio.create_task(s.call_tool("everything.get-sum", {"a": 2, "b": 3},
                                                       progress_callback=on_progress))
                held = await pending_approval("everything.get-sum")
                check(not call.done(), "the approval-required call waits")
                deadline = time.monotonic() + 20
                while not progress and time.monotonic() < deadline:
                    await asyncio.sleep(0.2)
                check(bool(progress) and held["id"] in progress[0],
                      f"the held call keeps the client alive with progress: {progress[:1]}")
                approve(held["id"])
                result = await asyncio.wait_for(call, 60)
                check("5" in result.content[0].text,
                      f"approved call completes: {result.content[0].text!r}")

                # Held, then abandoned by the agent: never executed, and the
                # approval given later is still there for the agent's retry.
                before = ledger_lines()
                payee = f"bob-{mode}"
                call = asyncio.create_task(s.call_tool("ledger.pay", {"to": payee, "amount": 7}))
                held = await pending_approval("ledger.pay")
                call.cancel()
                try:
                    await call
                except asyncio.CancelledError:
                    pass
                await asyncio.sleep(1)  # let the cancellation reach the gateway
                approve(held["id"])
                r = await asyncio.wait_for(s.call_tool("ledger.pay", {"to": payee, "amount": 7}), 60)
                check(not r.is_error and payee in r.content[0].text,
                      f"the retried call runs on the approval the abandoned one left: {r.content[0].text!r}")
                await asyncio.sleep(2)  # a late forward of the abandoned call would land by now
                added = ledger_lines()[len(before):]
                check(added == [f"{payee} 7"], f"the payment was made exactly once: {added}")
                a = admin.get(f"/v1/approvals/{held['id']}").json()
                check(a["state"] == "consumed", f"the approval was used once, by the retry: {a['state']}")

    # The TypeScript SDK (1.x: 2025-11-25) as the agent.
    print("-- TypeScript SDK")
    ts = await asyncio.to_thread(
        subprocess.run, ["node", str(ROOT / "tests/mcp/ts_client_test.mjs")], cwd=ROOT / "tests/mcp",
        env=dict(os.environ, MCP_URL=mcp_url, TOKEN=token, BRIDLE_URL=bridle, ADMIN=ADMIN,
                 APPROVER=approver, LEDGER_FILE=str(ledger)),
        capture_output=True, text=True, timeout=180)
    print(ts.stdout, end="")
    check(ts.returncode == 0, f"the TypeScript SDK client passed {ts.stderr[-2000:]}")

    # The stdio upstream dies; the gateway restarts it.
    def everything_upstream() -> list:
        return [c for c in children(gateway.pid)
                if b"server-everything" in Path(f"/proc/{c}/cmdline").read_bytes()]

    def started(pid: int) -> int:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])

    async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=120)) as http:
        async with Client(streamable_http_client(mcp_url, http_client=http)) as s:
            # The shared connection's process is the first; a 2025-11-25
            # session that has not ended yet still has its own (its link).
            upstream = everything_upstream()
            check(len(upstream) >= 1, f"an everything upstream process: {upstream}")
            shared = min(upstream, key=started)
            os.kill(shared, 9)
            deadline = time.monotonic() + 60
            while True:
                try:
                    r = await s.call_tool("everything.echo", {"message": "again"})
                    if not r.is_error:
                        break
                except MCPError as e:
                    check(e.code != DENIED, f"an upstream failure is not a denial: {e.message}")
                if time.monotonic() > deadline:
                    raise SystemExit("FAIL: the upstream was not restarted")
                await asyncio.sleep(0.2)
            restarted = everything_upstream()
            check(shared not in restarted and any(p not in upstream for p in restarted),
                  f"a killed stdio upstream is restarted ({upstream} -> {restarted})")

    # A wrong pep key stops `bridle gateway` at start-up, naming the variable.
    bad = subprocess.run([BIN, "gateway", "--config", str(config)], capture_output=True, text=True,
                         env=dict(env, BRIDLE_PEP_KEY="bk_not-a-key-of-anyone-0123456789"), timeout=60)
    check(bad.returncode != 0 and "`BRIDLE_PEP_KEY`" in bad.stderr,
          f"a wrong pep key stops the gateway: {bad.stderr.strip()}")

    # `serve --gateway` on an empty database: no key to give, and it works.
    port2, gw2 = free_port(), free_port()
    config2 = tmp / "gateway2.yaml"
    config2.write_text(
        f"listen: 127.0.0.1:{gw2}\n"
        f"bridle_url: http://127.0.0.1:{port2}\n"
        "upstreams:\n"
        "  - name: ledger\n"
        f"    command: [\"{sys.executable}\", \"{ROOT / 'tests/mcp/ledger_server.py'}\"]\n"
        "    prefix: ledger.\n")
    first = {k: v for k, v in env.items() if k not in ("BRIDLE_PEP_KEY", "BRIDLE_ADMIN_TOKEN")}
    serve = subprocess.Popen([BIN, "serve", "--listen", f"127.0.0.1:{port2}",
                              "--db", f"sqlite://{tmp}/first.db", "--gateway", str(config2)],
                             env=first, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs.append(serve)
    wait_http(f"http://127.0.0.1:{gw2}/healthz", 60)
    health = httpx2.get(f"http://127.0.0.1:{gw2}/healthz").json()
    check(serve.poll() is None and health == {"status": "ok", "bridle": "reachable",
                                               "upstreams": {"ledger": "connected"}},
          f"serve --gateway works on a first start; /healthz: {health}")
    r = httpx2.post(f"http://127.0.0.1:{gw2}/mcp", json={}, headers={"Authorization": "Bearer nope"})
    check(r.status_code == 401, "its gateway checks tokens with the in-process key")

    # A streamable-HTTP upstream that wants a key: `headers_from_env` sends
    # it (the upstream refuses anything else), and when the upstream goes
    # away and comes back on its port, the gateway reconnects by itself.
    up_port, gw3 = free_port(), free_port()
    key = "ledger-key-5d1c9a"

    def ledger_http() -> subprocess.Popen:
        p = subprocess.Popen([sys.executable, str(ROOT / "tests/mcp/ledger_server.py"), "http",
                              str(up_port)], env=dict(env, LEDGER_KEY=key, LEDGER_FILE=str(ledger)))
        procs.append(p)
        return p

    def upstream_state(gw: int) -> str:
        return httpx2.get(f"http://127.0.0.1:{gw}/healthz").json()["upstreams"]["ledger"]

    def gateway_http(gw: int, sent_key: str) -> None:
        cfg = tmp / f"gateway-{gw}.yaml"
        cfg.write_text(
            f"listen: 127.0.0.1:{gw}\n"
            f"bridle_url: {bridle}\n"
            "upstreams:\n"
            "  - name: ledger\n"
            f"    url: http://127.0.0.1:{up_port}/mcp\n"
            "    prefix: ledger.\n"
            "    headers_from_env: { X-Ledger-Key: LEDGER_UPSTREAM_KEY }\n")
        procs.append(subprocess.Popen([BIN, "gateway", "--config", str(cfg)],
                                      env=dict(env, BRIDLE_PEP_KEY=pep, LEDGER_UPSTREAM_KEY=sent_key),
                                      stdout=subprocess.DEVNULL))
        wait_http(f"http://127.0.0.1:{gw}/healthz", 30, ok=(200, 503))

    def wait_state(gw: int, want: str, seconds: float) -> str:
        deadline = time.monotonic() + seconds
        while (state := upstream_state(gw)) != want and time.monotonic() < deadline:
            time.sleep(0.2)
        return state

    up = ledger_http()
    wait_http(f"http://127.0.0.1:{up_port}/mcp", 30, ok=(401,))
    gateway_http(gw3, key)
    check(wait_state(gw3, "connected", 30) == "connected",
          "an HTTP upstream is reached with the header headers_from_env names")
    gw_wrong = free_port()
    gateway_http(gw_wrong, "not-the-key")
    time.sleep(2)
    check(upstream_state(gw_wrong) == "disconnected",
          "with the wrong value in that variable the upstream refuses the gateway")
    up.terminate()
    up.wait(10)
    check(wait_state(gw3, "disconnected", 30) == "disconnected",
          "an upstream that goes away is reported disconnected on /healthz")
    ledger_http()
    check(wait_state(gw3, "connected", 45) == "connected",
          "the gateway reconnects by itself once the upstream is back")


if __name__ == "__main__":
    run(main, "gateway interoperability: all checks passed")
