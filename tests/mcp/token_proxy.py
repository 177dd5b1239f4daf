"""A small reverse proxy that adds `Authorization: Bearer $BRIDLE_TOKEN` to
every request: the MCP conformance suite has no way to send a token, the
gateway refuses requests without one. Streams responses (SSE) as they come.

    BRIDLE_TOKEN=… python token_proxy.py http://127.0.0.1:8090 8091
"""

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
TOKEN = os.environ["BRIDLE_TOKEN"]
DROP = {"content-length", "transfer-encoding", "connection", "authorization", "content-encoding"}
client = httpx2.AsyncClient(timeout=httpx2.Timeout(30, read=300))


async def proxy(request):
    headers = {k: v for k, v in request.headers.items() if k.lower() not in DROP}
    headers["authorization"] = f"Bearer {TOKEN}"
    url = UPSTREAM + request.url.path + (f"?{request.url.query}" if request.url.query else "")
    upstream = client.build_request(request.method, url, headers=headers, content=await request.body())
    resp = await client.send(upstream, stream=True)
    out = {k: v for k, v in resp.headers.items() if k.lower() not in DROP}
    return StreamingResponse(resp.aiter_raw(), status_code=resp.status_code, headers=out,
                             background=BackgroundTask(resp.aclose))


app = Starlette(routes=[Route("/{path:path}", proxy, methods=["GET", "POST", "DELETE"])])

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=PORT, log_level="warning")
