"""pymai modules served as MCP tools (the server direction).

The tools are described exactly as for agents (:func:`mai.core.agents._tools.as_tool`: name,
docstring description and parameter descriptions, input JSON Schema, output schema), and served
by the SDK's low-level ``Server`` over stdio or streamable HTTP. HTTP is served by hypercorn's
Trio worker, so the whole server is one Trio process.

Each call validates the arguments against the tool's input model (a misfit is an MCP error
*result* naming the field, the server keeps serving), then runs the module as a top-level call,
with its own ``timeout`` and ``retries``; a client that cancels its request cancels the call.
An unknown tool is a JSON-RPC error (``INVALID_PARAMS``), not a crash.

Security of the HTTP transport: it binds 127.0.0.1 unless told otherwise, checks the ``Host``
and ``Origin`` headers (no DNS rebinding), and binding any other address needs
``allow_remote=True`` *and* a bearer token; every request without the token gets a bare 401.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
from typing import TYPE_CHECKING, Any, Literal

import anyio

from mai._errors import ConfigError, ModelRetry

from ._client import _sdk

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable, Mapping

    from anyio.abc import TaskStatus

    from mai.core.agents._tools import Tool

    ASGIApp = Callable[
        [dict[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]],
        Awaitable[None],
    ]

_LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _tools(objs: Iterable[Any]) -> dict[str, Tool]:
    """Describe each module, function or Tool as a Tool (the agents' definitions), by name."""
    from mai.core.agents._tools import as_tool  # noqa: PLC0415 - the agent layer, loaded lazily

    out: dict[str, Tool] = {}
    for obj in objs:
        tool = as_tool(obj)
        if tool.name in out:
            raise ConfigError(
                f"two tools are named {tool.name!r}; rename one with .with_(name=...)",
                key=tool.name,
            )
        out[tool.name] = tool
    if not out:
        raise ConfigError("an MCP server needs at least one module to serve")
    return out


def _as_list(target: Any) -> list[Any]:
    """Accept one module, a list/tuple of them, or a mapping of name -> module."""
    from mai._module import Module  # noqa: PLC0415

    if isinstance(target, Module) or (callable(target) and not isinstance(target, type)):
        return [target]
    if isinstance(target, dict):
        from mai.core.agents._tools import Tool  # noqa: PLC0415

        return [Tool(m, name=name) if not isinstance(m, Tool) else m for name, m in target.items()]
    if isinstance(target, list | tuple):
        return list(target)
    raise ConfigError(
        f"cannot serve a {type(target).__name__}: give a module, a function, a list of them, "
        "or a dict of name -> module"
    )


def _wrapped_output(schema: dict[str, Any] | None) -> tuple[dict[str, Any] | None, bool]:
    """MCP structured output must be an object: wrap any other schema as ``{"result": ...}``."""
    if schema is None:
        return None, False
    if schema.get("type") == "object":
        return schema, False
    return {"type": "object", "properties": {"result": schema}, "required": ["result"]}, True


def mcp_server(
    tools: Any,
    *,
    name: str = "pymai",
    instructions: str | None = None,
    deps: Mapping[str, Any] | None = None,
) -> Any:
    """Build the SDK's low-level MCP ``Server`` that serves ``tools``.

    Most code calls :func:`serve_mcp`; this is for embedding the server in another transport.

    Args:
        tools: A module or function, a list of them (or of :class:`mai.Tool`), or a mapping of
            tool name -> module.
        name: The server's name, sent to clients.
        instructions: Text sent to clients that describes the server.
        deps: Values for the tools' ``Dep[...]`` parameters, by parameter name.

    Returns:
        An ``mcp.server.lowlevel.Server``.

    Raises:
        ConfigError: No tools, two tools with one name, or something that is not a module.
    """
    _sdk()
    import mcp_types as types  # noqa: PLC0415 - the SDK's protocol types
    from mcp import MCPError  # noqa: PLC0415
    from mcp.server.lowlevel import Server  # noqa: PLC0415

    import mai  # noqa: PLC0415 - the version

    served = _tools(_as_list(tools))
    wrapped: dict[str, bool] = {}
    listing: list[Any] = []
    for tool in served.values():
        d = tool.definition
        out, wrap = _wrapped_output(d.output_schema)
        wrapped[d.name] = wrap
        listing.append(
            types.Tool(
                name=d.name,
                description=d.description,
                input_schema=d.parameters,
                output_schema=out,
            )
        )
    run_deps = dict(deps or {})

    async def list_tools(_ctx: Any, _params: Any) -> Any:
        return types.ListToolsResult(tools=listing)

    async def call_tool(_ctx: Any, params: Any) -> Any:
        tool = served.get(params.name)
        if tool is None:
            raise MCPError(
                types.INVALID_PARAMS,
                f"Unknown tool: {params.name!r}; this server has {', '.join(map(repr, served))}",
            )
        from mai.core.agents._errors import ToolArgumentsError  # noqa: PLC0415

        try:
            arguments = tool.validate_args(params.arguments or {})
        except ToolArgumentsError as exc:
            return _error(str(exc))
        try:
            value = await tool.call(arguments, run_deps)
        except ModelRetry as exc:
            return _error(str(exc))
        except Exception as exc:  # the tool failed: an error result, the server keeps serving
            return _error(f"{type(exc).__name__}: {exc}")
        return _result(value, wrap=wrapped[tool.name], structured=tool.definition.output_schema)

    def input_schema(tool_name: str) -> Mapping[str, Any] | None:
        tool = served.get(tool_name)
        return None if tool is None else tool.definition.parameters

    return Server(
        name,
        version=mai.__version__,
        instructions=instructions,
        get_tool_input_schema=input_schema,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )


def _error(text: str) -> Any:
    import mcp_types as types  # noqa: PLC0415

    return types.CallToolResult(content=[types.TextContent(type="text", text=text)], is_error=True)


def _result(value: Any, *, wrap: bool, structured: dict[str, Any] | None) -> Any:
    """A module's return value as a ``CallToolResult``: text, plus structured content if typed."""
    import mcp_types as types  # noqa: PLC0415
    from pydantic_core import to_jsonable_python  # noqa: PLC0415

    plain = to_jsonable_python(value, fallback=repr)
    text = plain if isinstance(plain, str) else json.dumps(plain, ensure_ascii=False)
    content = [types.TextContent(type="text", text=text)]
    if structured is None:
        return types.CallToolResult(content=content)
    payload = {"result": plain} if wrap else plain
    return types.CallToolResult(content=content, structured_content=payload)


# -- transports ---------------------------------------------------------------------------------


def _bearer_guard(app: ASGIApp, token: str) -> ASGIApp:
    """Answer every HTTP request without ``Authorization: Bearer <token>`` with a bare 401."""
    expected = f"Bearer {token}".encode()

    async def guarded(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            given = dict(scope.get("headers") or ()).get(b"authorization", b"")
            if not hmac.compare_digest(given, expected):
                await send(
                    {
                        "type": "http.response.start",
                        "status": 401,
                        "headers": [(b"www-authenticate", b"Bearer"), (b"content-length", b"0")],
                    }
                )
                await send({"type": "http.response.body", "body": b""})
                return
        await app(scope, receive, send)

    return guarded


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def mcp_http_app(
    tools: Any,
    *,
    host: str = "127.0.0.1",
    path: str = "/mcp",
    allow_remote: bool = False,
    bearer_token: str | None = None,
    allowed_hosts: Iterable[str] | None = None,
    allowed_origins: Iterable[str] | None = None,
    name: str = "pymai",
    instructions: str | None = None,
    deps: Mapping[str, Any] | None = None,
) -> ASGIApp:
    """The ASGI app that serves ``tools`` over streamable HTTP, with its security checks.

    See :func:`serve_mcp` for the arguments; serve the app with any ASGI server that runs its
    lifespan (hypercorn's Trio worker in :func:`serve_mcp`).

    Raises:
        ConfigError: A non-loopback ``host`` without ``allow_remote=True`` and a bearer token,
            or a wildcard address without ``allowed_hosts``.
    """
    from mcp.server.transport_security import TransportSecuritySettings  # noqa: PLC0415

    loopback = _is_loopback(host)
    if not loopback:
        if not allow_remote:
            raise ConfigError(
                f"refusing to serve MCP on {host!r}: only 127.0.0.1 is served unless you pass "
                "allow_remote=True (--allow-remote) and a bearer token"
            )
        if not bearer_token:
            raise ConfigError(
                f"serving MCP on {host!r} needs a bearer token (bearer_token=..., or "
                "$MAI_MCP_TOKEN for `mai mcp serve`); every request without it gets 401"
            )
    hosts = list(allowed_hosts or ())
    if not hosts:
        if host in ("0.0.0.0", "::", ""):  # noqa: S104 - checking, not binding
            raise ConfigError(
                f"serving MCP on the wildcard address {host!r} needs allowed_hosts=[...] (the "
                "Host header values clients use), to keep DNS rebinding out"
            )
        hosts = ["127.0.0.1:*", "localhost:*", "[::1]:*"]
        if not loopback:
            hosts.append(f"[{host}]:*" if ":" in host else f"{host}:*")
    origins = list(allowed_origins or ())
    if not origins:
        origins = [f"http://{h}" for h in hosts] + [f"https://{h}" for h in hosts]
    security = TransportSecuritySettings(
        enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins
    )
    server = mcp_server(tools, name=name, instructions=instructions, deps=deps)
    app: ASGIApp = server.streamable_http_app(
        streamable_http_path=path, transport_security=security, host=host
    )
    return _bearer_guard(app, bearer_token) if bearer_token else app


async def serve_mcp(
    tools: Any,
    *,
    transport: Literal["stdio", "http"] = "stdio",
    host: str = "127.0.0.1",
    port: int = 8000,
    path: str = "/mcp",
    allow_remote: bool = False,
    bearer_token: str | None = None,
    allowed_hosts: Iterable[str] | None = None,
    allowed_origins: Iterable[str] | None = None,
    name: str = "pymai",
    instructions: str | None = None,
    deps: Mapping[str, Any] | None = None,
    task_status: TaskStatus[str] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve modules as MCP tools until cancelled (or, on stdio, until the client leaves).

    Example::

        trio.run(functools.partial(mai.serve_mcp, [add, search], transport="http", port=8765))

    Tool names, descriptions and input schemas come from the modules exactly as for agent tools
    (:class:`mai.Tool`); a module's output type becomes the tool's structured output schema.

    Args:
        tools: A module or function, a list of them (or of :class:`mai.Tool`), or a mapping of
            tool name -> module.
        transport: ``"stdio"`` (standard input and output) or ``"http"`` (streamable HTTP).
        host: Address to bind (HTTP). Anything but loopback needs ``allow_remote`` and a token.
        port: Port to bind (HTTP); 0 picks a free one (reported through ``task_status``).
        path: The MCP endpoint's path (HTTP).
        allow_remote: Allow binding an address other than loopback (HTTP).
        bearer_token: Require ``Authorization: Bearer <token>`` on every request (HTTP).
        allowed_hosts: ``Host`` header values accepted (``"name:*"`` allows any port); default:
            the loopback names and ``host``.
        allowed_origins: ``Origin`` header values accepted; default: ``http(s)://`` + each
            allowed host.
        name: The server's name, sent to clients.
        instructions: Text sent to clients that describes the server.
        deps: Values for the tools' ``Dep[...]`` parameters, by parameter name.
        task_status: Reports the endpoint's URL (HTTP) or ``"stdio"`` once serving.

    Raises:
        ConfigError: Bad tools, or an unsafe HTTP configuration (see :func:`mcp_http_app`).
    """
    if transport == "stdio":
        from mcp.server.stdio import stdio_server  # noqa: PLC0415

        server = mcp_server(tools, name=name, instructions=instructions, deps=deps)
        async with stdio_server() as (read, write):
            task_status.started("stdio")
            await server.run(read, write, server.create_initialization_options())
        return
    if transport != "http":
        raise ConfigError(f"serve_mcp(transport=...) expects 'stdio' or 'http', got {transport!r}")
    app = mcp_http_app(
        tools,
        host=host,
        path=path,
        allow_remote=allow_remote,
        bearer_token=bearer_token,
        allowed_hosts=allowed_hosts,
        allowed_origins=allowed_origins,
        name=name,
        instructions=instructions,
        deps=deps,
    )
    import trio  # noqa: PLC0415 - hypercorn's worker is Trio's
    from hypercorn.config import Config  # noqa: PLC0415
    from hypercorn.trio import serve  # noqa: PLC0415

    config = Config()
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.accesslog = None
    config.errorlog = None

    async def run(task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED) -> None:
        await serve(app, config, task_status=task_status)  # type: ignore[arg-type]

    async with trio.open_nursery() as nursery:
        binds: list[str] = await nursery.start(run)
        task_status.started(f"{binds[0]}{path}")
