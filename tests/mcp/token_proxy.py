"""A small reverse proxy that adds `Authorization: Bearer $BRIDLE_TOKEN` to
every request: the MCP conformance suite has no way to send a token, the
gateway refuses requests without one. Streams responses (SSE) as they come.
Without BRIDLE_TOKEN the client's own Authorization goes through. With
PROXY_LOG, each exchange is appended to that file as a JSON line (the
request's MCP-Protocol-Version and Mcp-Method headers, its body, the status
and the response body): what a client that shows less of the wire sent and
got (tests/mcp/inspector_test.py).

    BRIDLE_TOKEN=… python token_proxy.py http://127.0.0.1:8090 8091
"""

import json
import os
import sys

import httpx2
import uvicorn
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.responses import StreamingResponse
from starlette.routing import Route

UPSTREAM = sys.argv[1].rstrip("/")
PORT = int(sys.argv[2])
TOKEN = os.environ.get("BRIDLE_TOKEN")
LOG = os.environ.get("PROXY_LOG")
DROP = {"content-length", "transfer-encoding", "connection", "content-encoding"} | \
    ({"authorization"} if TOKEN else set())
client = httpx2.AsyncClient(timeout=httpx2.Timeout(30, read=300))


async def proxy(request):
    headers = {k: v for k, v in request.headers.items() if k.lower() not in DROP}
    if TOKEN:
        headers["authorization"] = f"Bearer {TOKEN}"
    url = UPSTREAM + request.url.path + (f"?{request.url.query}" if request.url.query else "")
    body = await request.body()
    upstream = client.build_request(request.method, url, headers=headers, content=body)
    resp = await client.send(upstream, stream=True)
    out = {k: v for k, v in resp.headers.items() if k.lower() not in DROP}
    chunks: list = []

    async def relay():
        async for chunk in resp.aiter_raw():
            chunks.append(chunk)
            yield chunk

    async def done():
        await resp.aclose()
        if LOG:
            with open(LOG, "a", encoding="utf-8") as f:
                f.write(json.dumps({
                    "protocol_version": request.headers.get("mcp-protocol-version"),
                    "mcp_method": request.headers.get("mcp-method"),
                    "request": body.decode(errors="replace"), "status": resp.status_code,
                    "response": b"".join(chunks).decode(errors="replace")}) + "\n")

    return StreamingResponse(relay(), status_code=resp.status_code, headers=out,
                             background=BackgroundTask(done))


app = Starlette(routes=[Route("/{path:path}", proxy, methods=["GET", "POST", "DELETE"])])

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=PORT, log_level="warning")
