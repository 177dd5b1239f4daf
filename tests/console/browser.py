"""The web console end to end in Chromium (scripts/console-tests.sh).

Usage: browser.py BASE_URL DEMO_LOG SCREENSHOT_DIR AXE_JS
Reads the keys and the procurement agent's client credentials from the
demo's output, drives the console as frank (approver), alice's admin
stand-in (the admin key, who owns nothing but manages everything) and an
auditor, and records every request the browser makes."""

import base64
import hashlib
import json
import re
import sys
import threading
import urllib.parse
import urllib.request

from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from playwright.sync_api import sync_playwright

BASE, LOG, SHOTS, AXE = sys.argv[1:5]
ORIGIN = urllib.parse.urlsplit(BASE)
log = open(LOG).read()
ADMIN = re.search(r"Admin API key:\s+(\S+)", log).group(1)
FRANK = re.search(r"frank \(finance-approvers\):\s+(\S+)", log).group(1)
ALICE = re.search(r"alice \(owns procurement-bot\):\s+(\S+)", log).group(1)
AUDITOR = re.search(r"ann \(auditor\):\s+(\S+)", log).group(1)
CLIENT, SECRET = re.search(r"curl -s -u '([^:]+):([^']+)'", log).groups()
AXE_SOURCE = open(AXE).read()
CREATE = "procurement.create_purchase_request"

results = []


def check(name, ok, detail=""):
    results.append((name, ok))
    print(("PASS " if ok else "FAIL ") + name + ("" if ok else f": {detail}"))


def api(method, path, key=None, body=None, form=None, basic=None):
    headers = {}
    data = None
    if key:
        headers["Authorization"] = f"Bearer {key}"
    if body is not None:
        data = json.dumps(body).encode()
        headers["content-type"] = "application/json"
    if form is not None:
        data = urllib.parse.urlencode(form).encode()
        headers["content-type"] = "application/x-www-form-urlencoded"
    if basic:
        headers["Authorization"] = "Basic " + base64.b64encode(basic.encode()).decode()
    req = urllib.request.Request(BASE + path, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def agent_token():
    status, body = api("POST", "/oauth/token", form={"grant_type": "client_credentials"},
                       basic=f"{CLIENT}:{SECRET}")
    assert status == 200, body
    return body["access_token"]


def decide(token, amount):
    return api("POST", "/v1/decisions", key=token,
               body={"action": CREATE, "args": {"vendor": "acme", "amount": amount}})


foreign = []
console_errors = []


def watch(page):
    def on_request(req):
        u = urllib.parse.urlsplit(req.url)
        if u.scheme in ("http", "https") and (u.scheme, u.netloc) != (ORIGIN.scheme, ORIGIN.netloc):
            foreign.append(req.url)
        elif u.scheme not in ("http", "https", "data", "about"):
            foreign.append(req.url)
    page.on("request", on_request)
    page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)


def axe(page, name):
    page.evaluate(AXE_SOURCE)
    found = page.evaluate("async () => (await axe.run()).violations.map(v => ({id: v.id, impact: v.impact, nodes: v.nodes.length}))")
    bad = [v for v in found if v["impact"] in ("serious", "critical")]
    check(f"axe: no serious or critical violation on {name}", not bad, json.dumps(bad))


def shot(page, name):
    page.screenshot(path=f"{SHOTS}/{name}.png", full_page=True)


def consent_client():
    """Serve a client metadata document and its redirect URI on a loopback
    port (the demo allows plain-http documents from loopback)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    origin = f"http://127.0.0.1:{server.server_address[1]}"
    client = {"id": origin + "/client.json", "redirect": origin + "/callback"}
    doc = json.dumps({"client_id": client["id"], "client_name": "Browser Test Client",
                      "redirect_uris": [client["redirect"]],
                      "token_endpoint_auth_method": "none"}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            path = urllib.parse.urlsplit(self.path).path
            body, kind = (doc, "application/json") if path == "/client.json" else (b"<!doctype html><title>done</title>", "text/html")
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server.RequestHandlerClass = Handler
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return client


def sign_in(page, key):
    page.goto(BASE + "/console/signin")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(BASE + "/console/")


with sync_playwright() as p:
    browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])

    # The approver: a pending request appears in the inbox without a reload.
    ctx = browser.new_context()
    page = ctx.new_page()
    watch(page)
    page.goto(BASE + "/console/signin")
    shot(page, "signin")
    axe(page, "sign-in")
    sign_in(page, FRANK)
    page.goto(BASE + "/console/approvals")
    token = agent_token()
    status, first = decide(token, 7321)
    check("the agent's request needs approval", first["decision"] == "approval_required", first)
    approval = first["approval_id"]
    card = page.locator(f"#a-{approval}")
    card.wait_for(timeout=15000)
    check("the request appeared without a reload, with its arguments", "7321" in card.inner_text())
    shot(page, "approvals")
    axe(page, "approvals")
    card.get_by_label("Comment").fill("within budget")
    with page.expect_response(lambda r: r.url.endswith("/console/approvals/pending"), timeout=15000):
        pass
    page.wait_for_load_state("networkidle")
    check("a comment being written survives the inbox's refresh",
          card.get_by_label("Comment").input_value() == "within budget")
    card.get_by_role("button", name="Approve").click()
    page.wait_for_url(BASE + "/console/approvals")
    status, again = decide(token, 7321)
    check("after Approve the identical decision is allowed", again["decision"] == "allow", again)
    ctx.close()

    # The admin: every page, suspend an agent, its token is refused.
    ctx = browser.new_context()
    page = ctx.new_page()
    watch(page)
    sign_in(page, ADMIN)
    shot(page, "inventory")
    axe(page, "inventory")
    for name, path in [("agent", "/console/agents/procurement-bot"), ("audit", "/console/audit"),
                       ("posture", "/console/posture")]:
        page.goto(BASE + path)
        page.wait_for_load_state("networkidle")
        check(f"{name} has one h1", page.locator("h1").count() == 1)
        shot(page, name)
        axe(page, name)
    page.goto(BASE + "/console/audit")
    page.locator("table a").first.click()
    shot(page, "audit-event")
    axe(page, "audit event")
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(BASE + "/console/signin")
    ctx.close()

    # The owner: suspends her agent from its page, and its token is refused.
    ctx = browser.new_context()
    page = ctx.new_page()
    watch(page)
    sign_in(page, ALICE)
    check("the owner sees her agent", page.locator("a", has_text="procurement-bot").count() == 1)
    page.goto(BASE + "/console/agents/procurement-bot")
    page.get_by_label("Reason").fill("browser test")
    page.get_by_role("button", name="Suspend").click()
    page.wait_for_url(BASE + "/console/agents/procurement-bot")
    check("the page shows the suspension", "suspended" in page.locator("dl.facts").inner_text())
    shot(page, "agent-suspended")
    status, body = decide(token, 10)
    refused = status == 401 or (status == 200 and body["decision"] == "deny"
                                 and "suspended" in json.dumps(body["reasons"]))
    check("the suspended agent's token is refused", refused, (status, body))
    page.get_by_label("Reason").fill("browser test done")
    page.get_by_role("button", name="Resume").click()
    page.wait_for_url(BASE + "/console/agents/procurement-bot")
    status, body = decide(agent_token(), 10)
    check("resumed, a new token works again", status == 200 and body["decision"] == "allow", (status, body))
    # A POST without the CSRF token, from the page itself.
    status = page.evaluate("""async () => (await fetch('/console/agents/procurement-bot/lifecycle',
        {method: 'POST', headers: {'content-type': 'application/x-www-form-urlencoded'},
         body: 'action=suspend&reason=x'})).status""")
    check("a POST without the CSRF token is refused", status == 403, status)
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(BASE + "/console/signin")
    ctx.close()

    # The auditor: sees everything, can change nothing.
    ctx = browser.new_context()
    page = ctx.new_page()
    watch(page)
    sign_in(page, AUDITOR)
    check("the auditor sees the fleet", page.locator("table tbody tr").count() >= 5)
    page.goto(BASE + "/console/agents/procurement-bot")
    buttons = page.get_by_role("button", name=re.compile("^(Suspend|Resume|Retire|Approve|Deny)$"))
    check("the auditor gets no action button", buttons.count() == 0)
    csrf = page.locator("input[name=csrf]").first.get_attribute("value")
    status = page.evaluate("""async (csrf) => (await fetch('/console/agents/procurement-bot/lifecycle',
        {method: 'POST', headers: {'content-type': 'application/x-www-form-urlencoded'},
         body: 'action=suspend&reason=x&csrf=' + csrf})).status""", csrf)
    check("the auditor's direct POST is refused", status == 403, status)
    status, rec = api("GET", "/v1/agents/procurement-bot", key=ADMIN)
    check("nothing changed", rec["state"] == "active", rec)
    ctx.close()

    # The owner consents to an interactive OAuth client (docs/oauth.md):
    # the client's metadata document and its redirect URI are served here,
    # on another loopback port (another origin, so this page is not
    # watched for foreign requests; CSP errors still count).
    client = consent_client()
    verifier = "browser-test-verifier-" + "0123456789" * 4
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    query = urllib.parse.urlencode({
        "response_type": "code", "client_id": client["id"], "redirect_uri": client["redirect"],
        "state": "browser-state", "code_challenge": challenge, "code_challenge_method": "S256",
    })
    ctx = browser.new_context()
    page = ctx.new_page()
    page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
    page.goto(BASE + "/oauth/authorize?" + query)
    check("an authorization request asks the owner to sign in", "/console/signin?next=" in page.url, page.url)
    page.get_by_label("API key").fill(ALICE)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(re.escape(BASE) + r"/console/oauth/consent\?request="))
    check("the consent page names the client", page.get_by_text("Browser Test Client").count() > 0)
    shot(page, "consent")
    axe(page, "consent")
    page.get_by_role("button", name="Allow").click()
    page.wait_for_url(re.compile(re.escape(client["redirect"]) + r"\?"))
    back = urllib.parse.parse_qs(urllib.parse.urlsplit(page.url).query)
    check("Allow goes back to the client with a code, the state and iss",
          back.get("state") == ["browser-state"] and back.get("iss") == [BASE] and "code" in back, page.url)
    status, body = api("POST", "/oauth/token", form={
        "grant_type": "authorization_code", "code": back.get("code", [""])[0],
        "redirect_uri": client["redirect"], "client_id": client["id"], "code_verifier": verifier,
    })
    check("the code is redeemed for procurement-bot's token", status == 200, body)
    if status == 200:
        status, d = api("POST", "/v1/decisions", key=body["access_token"],
                        body={"action": "procurement.list_vendors", "args": {}})
        check("the token is the agent's at /v1/decisions", status == 200 and d["decision"] == "allow", d)
    ctx.close()
    browser.close()

check("no request went to another origin", not foreign, foreign)
check("no CSP or script error in the console", not [e for e in console_errors if "Content Security Policy" in e or "Uncaught" in e], console_errors)
passed = sum(1 for _, ok in results if ok)
failed = len(results) - passed
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
