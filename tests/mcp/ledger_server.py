"""An upstream MCP server (stdio) whose one tool has a side effect a test
can observe: `pay` appends a line to the file named by LEDGER_FILE. A held
call the agent abandoned must never add a line; an approved one adds one.

Run by the gateway (tests/mcp/gateway_test.py) as `python ledger_server.py`.
"""

import os

from mcp.server.mcpserver import MCPServer

server = MCPServer("ledger")


@server.tool()
def pay(to: str, amount: int) -> str:
    """Pay `amount` to `to` (appends to the ledger file)."""
    with open(os.environ["LEDGER_FILE"], "a", encoding="utf-8") as f:
        f.write(f"{to} {amount}\n")
    return f"paid {amount} to {to}"


if __name__ == "__main__":
    server.run("stdio")
