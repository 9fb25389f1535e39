"""MCP both ways: an MCP server's tools as modules, and modules served as an MCP server.

Built on the official ``mcp`` SDK (``pip install 'pymai[mcp]'``), imported only when a session
connects or a server starts, so ``import mai`` does not need it.
"""

from ._client import MCPSession as MCPSession
from ._client import MCPTool as MCPTool
from ._client import MCPToolset as MCPToolset
from ._errors import MCPConnectionError as MCPConnectionError
from ._errors import MCPServerError as MCPServerError
from ._errors import MCPToolChangedError as MCPToolChangedError
from ._errors import MCPToolError as MCPToolError
from ._server import mcp_http_app as mcp_http_app
from ._server import mcp_server as mcp_server
from ._server import serve_mcp as serve_mcp

__all__ = [
    "MCPConnectionError",
    "MCPServerError",
    "MCPSession",
    "MCPTool",
    "MCPToolChangedError",
    "MCPToolError",
    "MCPToolset",
    "mcp_http_app",
    "mcp_server",
    "serve_mcp",
]
