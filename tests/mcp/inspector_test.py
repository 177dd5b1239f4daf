"""The MCP Inspector's CLI (@modelcontextprotocol/inspector, pinned in
tests/mcp/package.json), the real binary from tests/mcp/node_modules on the
Node 22 it needs, as an agent through `bridle gateway` (streamable HTTP),
in both of its protocol eras: `--protocol-era modern` (it negotiates
2026-07-28) and `--protocol-era legacy` (2025-11-25).

The same stack as tests/mcp/gateway_test.py (its `start_stack`), with the
agent tests/mcp/inspector-bot.yaml. Each era, one CLI process per request,
the bearer token sent with `--header`: the negotiated revision; tools/list
shows exactly the listed tools; an allowed call pays (a line in the ledger
upstream's file); a call Bridle refuses fails with -32001 "denied by
Bridle" and pays nothing; a call that needs approval waits in the CLI until
an approver approves it through the API, then pays once; a held call whose
CLI is killed while it waits is never executed, not even once it is
approved and the gateway's 5 s poll has come round, and the retry pays
exactly once, on that approval.

The Inspector's CLI calls only a tool its tools/list returned (otherwise it
exits 5, `tool_not_found`, without sending the call), so a forbidden,
hidden tool never reaches the gateway from it: that is checked as what it
is, and Bridle's refusals are checked on listed tools the manifest does not
grant (get-sum, named only by an elevation) or grants only within argument
constraints (paying mallory).

Run by scripts/gateway-tests.sh (which installs the pinned packages).
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx2

from gateway_test import DENIED, ROOT, check, free_port, run, start_stack, wait_http

HERE = ROOT / "tests/mcp"
NODE = str(HERE / "node_modules/.bin/node")
INSPECTOR = str(HERE / "node_modules/@modelcontextprotocol/inspector/clients/launcher/build/index.js")
VERSION = json.loads((HERE / "node_modules/@modelcontextprotocol/inspector/package.json").read_text())["version"]
ERAS = (("modern", "2026-07-28"), ("legacy", "2025-11-25"))
TOOL_ERROR = 5  # the CLI's exit code for a failed tool call


async def main(tmp: Path, procs: list) -> None:
    st = start_stack(tmp, procs, agent="inspector-bot")
    home = tmp / "home"  # the Inspector keeps its catalog and state under ~/.mcp-inspector
    home.mkdir()
    cli_env = dict(os.environ, HOME=str(home))

    deadline = time.monotonic() + 60
    while True:  # the upstreams start in the background
        r = httpx2.get(f"http://127.0.0.1:{st.gw_port}/healthz")
        if r.status_code == 200 and set(r.json()["upstreams"].values()) == {"connected"}:
            break
        if time.monotonic() > deadline:
            raise SystemExit(f"FAIL: upstreams not connected: {r.text}")
        time.sleep(0.2)

    # The CLI shows neither the revision on the wire nor a JSON-RPC error's
    # code: for the checks of those, it goes through a proxy that logs
    # each exchange (tests/mcp/token_proxy.py, passing its token on).
    proxy_port, wire = free_port(), tmp / "wire.jsonl"
    procs.append(subprocess.Popen(
        [sys.executable, str(HERE / "token_proxy.py"), f"http://127.0.0.1:{st.gw_port}", str(proxy_port)],
        env={k: v for k, v in dict(os.environ, PROXY_LOG=str(wire)).items() if k != "BRIDLE_TOKEN"}))
    wait_http(f"http://127.0.0.1:{proxy_port}/healthz")
    logged = f"http://127.0.0.1:{proxy_port}/mcp"

    def exchanges() -> list:
        return [json.loads(line) for line in wire.read_text().splitlines()] if wire.exists() else []

    def messages(body: str) -> list:
        """The JSON-RPC messages of a body: JSON, or SSE `data:` lines."""
        try:
            one = json.loads(body)
            return one if isinstance(one, list) else [one]
        except json.JSONDecodeError:
            return [json.loads(line[5:]) for line in body.splitlines()
                    if line.startswith("data:") and line[5:].strip()]

    def argv(era: str, url: str, *args: str) -> list:
        return [NODE, INSPECTOR, "--cli", url, "--transport", "http", "--protocol-era", era,
                "--header", f"Authorization: Bearer {st.token}", "--format", "json", *args]

    def start(era: str, *args: str, url: str = st.mcp_url) -> subprocess.Popen:
        # Its own process group, so that killing it kills all of it.
        return subprocess.Popen(argv(era, url, *args), env=cli_env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)

    def finish(p: subprocess.Popen) -> tuple:
        """The exit code, and the JSON of stdout (the result) or of stderr's
        last line (the CLI's error envelope)."""
        out, err = p.communicate(timeout=120)
        text = out if p.returncode == 0 else (err.strip().splitlines() or [""])[-1]
        try:
            return p.returncode, json.loads(text)
        except json.JSONDecodeError:
            raise SystemExit(f"FAIL: not JSON from the Inspector (exit {p.returncode}): {out!r} {err!r}")

    def inspect(era: str, *args: str, url: str = st.mcp_url) -> tuple:
        return finish(start(era, *args, url=url))

    def pay(era: str, to: str, amount: int, url: str = st.mcp_url) -> subprocess.Popen:
        return start(era, "--method", "tools/call", "--tool-name", "ledger.pay",
                     "--tool-arg", f"to={to}", f"amount={amount}", url=url)

    def paid(rc: int, out: dict, to: str, amount: int) -> bool:
        result = out.get("result", {})
        return rc == 0 and not result.get("isError") and \
            result.get("content", [{}])[0].get("text") == f"paid {amount} to {to}"

    def denied(rc: int, out: dict, since: int, tool: str, reason: str) -> str:
        """The denial, if the CLI failed with Bridle's message for `reason`
        and the wire shows the call of `tool` answered with -32001 for it."""
        shown = out.get("error", {}).get("message", "")
        errors = [m["error"] for e in exchanges()[since:]
                  if any(r.get("method") == "tools/call" and r.get("params", {}).get("name") == tool
                         for r in messages(e["request"]))
                  for m in messages(e["response"]) if "error" in m]
        ok = rc != 0 and shown.startswith(f"denied by Bridle ({reason})") and len(errors) == 1 \
            and errors[0]["code"] == DENIED and errors[0].get("data", {}).get("reason") == reason
        return f"{shown} (on the wire: {errors})" if ok else ""

    for era, revision in ERAS:
        print(f"-- MCP Inspector {VERSION} CLI, --protocol-era {era}")
        since = len(exchanges())
        rc, out = inspect(era, "--method", "initialize", url=logged)
        got = out.get("result", {}).get("protocolVersion")
        sent = {e["protocol_version"] for e in exchanges()[since:]}
        check(rc == 0 and got == revision and sent - {None} == {revision},
              f"negotiated {got}; MCP-Protocol-Version sent: {sorted(sent, key=str)}")

        rc, out = inspect(era, "--method", "tools/list")
        names = sorted(t["name"] for t in out.get("result", {}).get("tools", []))
        check(rc == 0 and names == ["everything.echo", "everything.get-sum", "ledger.pay"],
              f"exactly the listed tools (the granted ones and the elevation's), "
              f"not the forbidden or ungranted ones: {names}")

        before = st.ledger_lines()
        payee = f"ann-{era}"
        rc, out = finish(pay(era, payee, 3))
        added = st.ledger_lines()[len(before):]
        check(paid(rc, out, payee, 3) and added == [f"{payee} 3"],
              f"an allowed call pays, once: {out.get('result', out)} {added}")

        rc, out = inspect(era, "--method", "tools/call", "--tool-name", "everything.get-env")
        check(rc == TOOL_ERROR and out.get("error", {}).get("code") == "tool_not_found",
              f"the CLI refuses a forbidden (hidden) tool itself, sending nothing: {out}")
        since = len(exchanges())
        rc, out = inspect(era, "--method", "tools/call", "--tool-name", "everything.get-sum",
                          "--tool-arg", "a=2", "b=3", url=logged)
        message = denied(rc, out, since, "everything.get-sum", "not_granted")
        check(bool(message), f"an ungranted call is denied by Bridle: {message or (rc, out)}")
        before, since = st.ledger_lines(), len(exchanges())
        rc, out = finish(pay(era, "mallory", 5, url=logged))
        message = denied(rc, out, since, "ledger.pay", "arg_constraint")
        check(bool(message) and st.ledger_lines() == before,
              f"a call outside the grant's constraints is denied by Bridle and pays nothing: "
              f"{message or (rc, out)}")

        # Held, then approved while the CLI waits: paid once.
        before = st.ledger_lines()
        payee = f"bea-{era}"
        cli = pay(era, payee, 500)
        held = st.pending_approval("ledger.pay")
        time.sleep(1)
        check(cli.poll() is None and st.ledger_lines() == before,
              f"the call over 100 is held ({held['id']}), the CLI waits, nothing is paid")
        st.approve(held["id"])
        rc, out = finish(cli)
        time.sleep(1)
        added = st.ledger_lines()[len(before):]
        check(paid(rc, out, payee, 500) and added == [f"{payee} 500"],
              f"approved, the held call completes and pays once: {out.get('result', out)} {added}")

        # Held, then abandoned (the CLI killed while it waits): never paid,
        # not even once approved; the retry pays once, on that approval.
        before = st.ledger_lines()
        payee = f"cid-{era}"
        cli = pay(era, payee, 700)
        held = st.pending_approval("ledger.pay")
        os.killpg(cli.pid, signal.SIGKILL)
        cli.wait(10)
        time.sleep(1)  # the closed connection reaches the gateway
        st.approve(held["id"])
        time.sleep(7)  # past the gateway's 5 s poll of the approval
        a = st.admin.get(f"/v1/approvals/{held['id']}").json()
        what = (f"the killed CLI's held call is not executed once approved: "
                f"{st.ledger_lines()[len(before):]}, approval {a['state']}")
        check(st.ledger_lines() == before and a["state"] == "approved", what)
        rc, out = finish(pay(era, payee, 700))
        time.sleep(2)  # a late forward of the abandoned call would land by now
        added = st.ledger_lines()[len(before):]
        a = st.admin.get(f"/v1/approvals/{held['id']}").json()
        check(paid(rc, out, payee, 700) and added == [f"{payee} 700"] and a["state"] == "consumed",
              f"the retry runs on the approval the abandoned call left, paying once: "
              f"{out.get('result', out)} {added}, approval {a['state']}")


if __name__ == "__main__":
    run(main, lambda: "MCP Inspector CLI through the gateway: all checks passed")
