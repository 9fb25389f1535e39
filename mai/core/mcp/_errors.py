"""Errors of the MCP bridge (both directions).

::

    MaiError
    ├── MCPToolError(ModelRetry, RuntimeError)      the server ran the tool and reported an error
    ├── MCPServerError(MaiError, RuntimeError)      the server failed a request (protocol error)
    ├── MCPConnectionError(MaiError, ConnectionError) cannot connect, or the server died mid-call
    └── MCPToolChangedError(MaiError, LookupError)  a recorded tool vanished or changed its schema

Messages name the server (the toolset's ``name``, never a URL with credentials, a header or a
token) and the tool.
"""

from __future__ import annotations

from mai._errors import MaiError, ModelRetry


class MCPToolError(ModelRetry, RuntimeError):
    """An MCP server ran a tool and reported an error (a ``CallToolResult`` with ``isError``).

    This is the tool's answer, not a broken connection. It is a :class:`mai.ModelRetry`: inside
    an agent the text goes back to the model as the call's error, so it can correct its call.

    Attributes:
        server: The toolset's name.
        tool: The tool's name on the server.
        text: The error text the server returned.
    """

    def __init__(
        self,
        message: str,
        *,
        server: str = "",
        tool: str = "",
        text: str = "",
        module_name: str | None = None,
    ) -> None:
        """Create the error naming the server and the tool."""
        super().__init__(message)
        self.module_name = module_name
        self.server = server
        self.tool = tool
        self.text = text


class _ServerFault(MaiError):
    """An MCP failure that names the server and the tool (``None`` while listing or connecting)."""

    def __init__(
        self,
        message: str,
        *,
        server: str = "",
        tool: str | None = None,
        module_name: str | None = None,
    ) -> None:
        """Create the error naming the server and the tool."""
        super().__init__(message, module_name=module_name)
        self.server = server
        self.tool = tool


class MCPServerError(_ServerFault, RuntimeError):
    """An MCP server failed a request (a JSON-RPC error, a malformed answer).

    Attributes:
        server: The toolset's name.
        tool: The tool being called or listed (``None`` while listing or connecting).
    """


class MCPConnectionError(_ServerFault, ConnectionError):
    """An MCP server cannot be reached or started, or went away in the middle of a call.

    Attributes:
        server: The toolset's name.
        tool: The tool being called (``None`` while listing or connecting).
    """


class MCPToolChangedError(MaiError, LookupError):
    """A tool recorded by a durable run vanished from the server or changed its schema.

    Raised on resume, before the first new call of that tool, so a run never sends arguments
    shaped for an old schema to a new tool.

    Attributes:
        server: The toolset's name.
        tool: The tool's name on the server.
    """

    def __init__(
        self, message: str, *, server: str = "", tool: str = "", module_name: str | None = None
    ) -> None:
        """Create the error naming the server and the tool."""
        super().__init__(message, module_name=module_name)
        self.server = server
        self.tool = tool
