// The official MCP TypeScript SDK (@modelcontextprotocol/sdk 1.x, pinned in
// package-lock.json; it speaks 2025-11-25) as an agent through the gateway.
// Run by gateway_test.py with MCP_URL, TOKEN, BRIDLE_URL, ADMIN, APPROVER and
// LEDGER_FILE set: list, allowed call, forbidden call, held-then-approved
// call, and a held call the agent cancels (never paid; the retry pays once).
import { readFileSync, existsSync } from "node:fs";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const env = process.env;
const DENIED = -32001;

function check(cond, what) {
  if (!cond) {
    console.log(`FAIL: ${what}`);
    process.exit(1);
  }
  console.log(`ok: ${what}`);
}

async function api(method, path, key, body) {
  const r = await fetch(`${env.BRIDLE_URL}${path}`, {
    method,
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!r.ok) throw new Error(`${path}: ${r.status} ${await r.text()}`);
  return r.json();
}

async function pending(tool) {
  const deadline = Date.now() + 30000;
  for (;;) {
    const { approvals } = await api("GET", "/v1/approvals?state=pending", env.ADMIN);
    const a = approvals.find((a) => a.action === tool);
    if (a) return a;
    if (Date.now() > deadline) throw new Error(`no pending approval for ${tool}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const ledger = () => (existsSync(env.LEDGER_FILE) ? readFileSync(env.LEDGER_FILE, "utf8").split("\n").filter(Boolean) : []);

const transport = new StreamableHTTPClientTransport(new URL(env.MCP_URL), {
  requestInit: { headers: { authorization: `Bearer ${env.TOKEN}` } },
});
const client = new Client({ name: "bridle-ts-test", version: "1.0.0" });
await client.connect(transport);
check(transport.protocolVersion === "2025-11-25", `TypeScript SDK negotiated ${transport.protocolVersion}`);

const names = (await client.listTools()).tools.map((t) => t.name).sort();
check(JSON.stringify(names) === JSON.stringify(["everything.echo", "everything.get-sum", "everything.get-tiny-image", "ledger.pay"]),
  `exactly the granted tools are listed: ${names}`);

const echo = await client.callTool({ name: "everything.echo", arguments: { message: "hello" } });
check(!echo.isError && echo.content[0].text.includes("hello"), `allowed call returns the upstream result: ${echo.content[0].text}`);

try {
  await client.callTool({ name: "everything.get-env", arguments: {} });
  check(false, "forbidden call is refused");
} catch (e) {
  check(e.code === DENIED && e.data?.reason === "forbidden", `forbidden call is refused with its reason: ${e.message}`);
}

const sum = client.callTool({ name: "everything.get-sum", arguments: { a: 2, b: 3 } });
let held = await pending("everything.get-sum");
await api("POST", `/v1/approvals/${held.id}/approve`, env.APPROVER, {});
const r = await sum;
check(r.content[0].text.includes("5"), `approved call completes: ${r.content[0].text}`);

const before = ledger();
const abort = new AbortController();
const pay = client.callTool({ name: "ledger.pay", arguments: { to: "bob-ts", amount: 9 } }, undefined, { signal: abort.signal });
held = await pending("ledger.pay");
abort.abort("the agent gave up");
await pay.then(() => check(false, "the cancelled call does not complete"), () => {});
await new Promise((r) => setTimeout(r, 1000));
await api("POST", `/v1/approvals/${held.id}/approve`, env.APPROVER, {});
const retry = await client.callTool({ name: "ledger.pay", arguments: { to: "bob-ts", amount: 9 } });
check(!retry.isError && retry.content[0].text.includes("bob-ts"), `the retried call runs on the approval the cancelled one left: ${retry.content[0].text}`);
await new Promise((r) => setTimeout(r, 2000));
const added = ledger().slice(before.length);
check(JSON.stringify(added) === JSON.stringify(["bob-ts 9"]), `the payment was made exactly once: ${added}`);
const a = await api("GET", `/v1/approvals/${held.id}`, env.ADMIN);
check(a.state === "consumed", `the approval was used once, by the retry: ${a.state}`);
await client.close();
