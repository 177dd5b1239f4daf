"""An upstream MCP server (stdio) whose one tool has a side effect a test
can observe: `pay` appends a line to the file named by LEDGER_FILE. A held
call the agent abandoned must never add a line; an approved one adds one.

Run by the gateway (tests/mcp/gateway_test.py) as `python ledger_server.py`
(stdio), or by the test itself as `python ledger_server.py http PORT`:
streamable HTTP on 127.0.0.1:PORT/mcp, answering only requests whose
`X-Ledger-Key` header is the value of LEDGER_KEY (the header the gateway's
`headers_from_env` sends).
"""

import os
import sys

from mcp.server.mcpserver import MCPServer

server = MCPServer("ledger")


@server.tool()
def pay(to: str, amount: int) -> str:
    """Pay `amount` to `to` (appends to the ledger file)."""
    with open(os.environ["LEDGER_FILE"], "a", encoding="utf-8") as f:
        f.write(f"{to} {amount}\n")
    return f"paid {amount} to {to}"


def keyed(app, key: str):
    """The ASGI app, refusing (401) any HTTP request without the key."""
    async def guarded(scope, receive, send):
        if scope["type"] == "http" and dict(scope["headers"]).get(b"x-ledger-key") != key.encode():
            await send({"type": "http.response.start", "status": 401,
                        "headers": [(b"content-type", b"text/plain")]})
            await send({"type": "http.response.body", "body": b"no or wrong X-Ledger-Key"})
            return
        await app(scope, receive, send)
    return guarded


if __name__ == "__main__":
    if sys.argv[1:2] == ["http"]:
        import uvicorn
        uvicorn.run(keyed(server.streamable_http_app(), os.environ["LEDGER_KEY"]),
                    host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
    else:
        server.run("stdio")
