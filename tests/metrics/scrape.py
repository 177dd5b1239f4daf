"""What `GET /metrics` serves, read by the official Prometheus Python parser.

scripts/metrics.sh starts `bridle serve` and runs this with BRIDLE_URL,
BRIDLE_ADMIN_KEY and BRIDLE_METRICS_TOKEN set. It loads an agent, makes a
few decisions, scrapes with the metrics token, and parses the text with
`prometheus_client.parser.text_string_to_metric_families`: any parse error,
missing family, wrong type or wrong count fails (exit 1). Standard library
HTTP only; the parser is the one pinned dependency.
"""

import base64
import json
import os
import sys
import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

BASE = os.environ["BRIDLE_URL"].rstrip("/")
ADMIN = os.environ["BRIDLE_ADMIN_KEY"]
METRICS_TOKEN = os.environ["BRIDLE_METRICS_TOKEN"]
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

MANIFEST = """\
agent: metrics-bot
owner: admin
purpose: Exercise the metrics endpoint
environment: dev
expires: 2099-12-31
tools:
  - name: files.read
forbid: [files.delete]
"""

# Family name (as the parser names it: counters without `_total`) -> type.
FAMILIES = {
    "bridle_decisions": "counter",
    "bridle_decision_duration_seconds": "histogram",
    "bridle_audit_append_duration_seconds": "histogram",
    "bridle_audit_batch_size": "histogram",
    "bridle_approvals_pending": "gauge",
    "bridle_approval_pending_oldest_seconds": "gauge",
    "bridle_tokens_issued": "counter",
    "bridle_tokens_refused": "counter",
    "bridle_cache_hits": "counter",
    "bridle_cache_misses": "counter",
    "bridle_store_errors": "counter",
    "bridle_build_info": "gauge",
}

passed = 0
failed = 0


def check(ok, what):
    global passed, failed
    if ok:
        passed += 1
        print(f"ok   {what}")
    else:
        failed += 1
        print(f"FAIL {what}")


def call(method, path, key=None, body=None, content_type="application/json", basic=None):
    """(status, content type, body text) of one request."""
    data = None
    headers = {}
    if body is not None:
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        headers["Content-Type"] = content_type
    if key:
        headers["Authorization"] = f"Bearer {key}"
    if basic:
        headers["Authorization"] = basic
    req = urllib.request.Request(BASE + path, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read().decode()


def ok_json(method, path, key=None, body=None, **kw):
    status, _, text = call(method, path, key, body, **kw)
    if status // 100 != 2:
        sys.exit(f"{method} {path}: {status} {text}")
    return json.loads(text) if text else None


def token_request(client_id, secret):
    basic = "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return call(
        "POST", "/oauth/token", body="grant_type=client_credentials",
        content_type="application/x-www-form-urlencoded", basic=basic,
    )


def token():
    """An access token, after one refused token request (a wrong secret)."""
    creds = ok_json("POST", "/v1/agents/metrics-bot/credentials", ADMIN, {})
    status, _, text = token_request(creds["client_id"], "wrong")
    if status != 401:
        sys.exit(f"a wrong secret: {status} {text}")
    status, _, text = token_request(creds["client_id"], creds["client_secret"])
    if status != 200:
        sys.exit(f"POST /oauth/token: {status} {text}")
    return json.loads(text)["access_token"]


def sample(families, family, name, **labels):
    for s in families[family].samples:
        if s.name == name and s.labels == labels:
            return s.value
    return None


def main():
    ok_json("PUT", "/v1/agents/metrics-bot", ADMIN, MANIFEST, content_type="application/yaml")
    agent = token()
    decisions = [("files.read", "allow")] * 3 + [("files.delete", "deny")] * 2
    for action, expected in decisions:
        d = ok_json("POST", "/v1/decisions", agent, {"action": action, "args": {}})
        if d["decision"] != expected:
            sys.exit(f"{action}: {d}")

    status, content_type, text = call("GET", "/metrics", METRICS_TOKEN)
    check(status == 200, f"the metrics token scrapes (status {status})")
    check(content_type == CONTENT_TYPE, f"content type `{content_type}`")
    try:
        families = {f.name: f for f in text_string_to_metric_families(text)}
    except Exception as e:  # the parser raises ValueError and others on bad text
        check(False, f"the text parses: {e!r}")
        print(text)
        return
    check(True, f"the text parses ({len(families)} families)")
    for name, kind in FAMILIES.items():
        check(name in families and families[name].type == kind, f"{name} is a {kind}")
    if failed:
        print(text)
        return

    allowed = sample(families, "bridle_decisions", "bridle_decisions_total",
                     effect="allow", reason="granted")
    denied = sample(families, "bridle_decisions", "bridle_decisions_total",
                    effect="deny", reason="forbidden")
    check(allowed == 3, f"3 allowed decisions counted ({allowed})")
    check(denied == 2, f"2 denied decisions counted ({denied})")
    count = sample(families, "bridle_decision_duration_seconds",
                   "bridle_decision_duration_seconds_count")
    inf = sample(families, "bridle_decision_duration_seconds",
                 "bridle_decision_duration_seconds_bucket", le="+Inf")
    check(count == 5 and inf == 5, f"5 decisions timed ({count}, +Inf bucket {inf})")
    issued = sample(families, "bridle_tokens_issued", "bridle_tokens_issued_total",
                    grant="client_credentials")
    check(issued == 1, f"1 token issued ({issued})")
    refused = sample(families, "bridle_tokens_refused", "bridle_tokens_refused_total",
                     reason="invalid_client")
    check(refused == 1, f"1 token request refused ({refused})")
    check(families["bridle_build_info"].samples[0].labels.get("version"), "build version")

    status, _, _ = call("GET", "/metrics", METRICS_TOKEN + "x")
    check(status == 401, f"a wrong metrics token is refused ({status})")
    status, _, _ = call("GET", "/metrics", agent)
    check(status == 403, f"an agent token is refused ({status})")
    status, _, _ = call("GET", "/metrics", ADMIN)
    check(status == 200, f"the admin scrapes ({status})")


if __name__ == "__main__":
    main()
    print(f"metrics: {passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)
