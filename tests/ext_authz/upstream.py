"""The API behind Envoy in the ext_authz test: answers every request with
what it received, and counts requests, so a test can tell whether a refused
request ever reached it. Usage: python upstream.py PORT"""

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SEEN = []


class Handler(BaseHTTPRequestHandler):
    def _answer(self):
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        if self.path == "/__seen":
            payload = {"seen": SEEN}
        else:
            SEEN.append({"method": self.command, "path": self.path})
            payload = {
                "upstream": True,
                "method": self.command,
                "path": self.path,
                "body": body,
                "decision_id": self.headers.get("x-bridle-decision-id"),
                # The agent's token must reach the API only if the route lets it.
                "authorization": self.headers.get("authorization") is not None,
            }
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _answer

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
