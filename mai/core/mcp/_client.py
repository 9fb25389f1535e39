"""An MCP server's tools as pymai modules (the client direction).

An :class:`MCPToolset` describes how to reach one server: a URL (streamable HTTP) or a command
(a stdio subprocess). ``async with toolset.connect() as session`` opens **one** MCP session for
the block; every tool module of that toolset called inside the block (in this task or in any
task it starts) uses it. A tool module called with no session open opens one for that call only.

Structured concurrency: the session lives in a task group that the caller's ``async with``
enters, and a single *owner task* inside it both opens and closes the SDK's ``Client``. The
owner is shielded from outside cancellation and closed by the block's exit with a bounded grace
period, so a cancel or a deadline can never leave a session half-closed nor exit the SDK's
cancel scopes from another task; the SDK reaps a stdio server process inside its own shield
(stdin closed, then SIGTERM, then SIGKILL).

Durable runs: listing the tools is a module call (a recorded step) and so is every tool call.
On resume the recorded listing is used and recorded calls return their recorded results without
contacting the server; the session connects only when a tool call really runs, and then lists
the tools once more (unrecorded) and refuses with :class:`MCPToolChangedError` if the tool
vanished or changed its schema.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import shlex
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import anyio

from mai._casting import Payload
from mai._composites import Composite
from mai._context import current_frame
from mai._errors import ArgumentError, ConfigError
from mai._module import Module

from ._errors import MCPConnectionError, MCPServerError, MCPToolChangedError, MCPToolError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Mapping, Sequence

    from anyio.abc import TaskGroup
    from mcp import Client
    from mcp_types import CallToolResult

_INSTALL = "pip install 'pymai[mcp]'"

# The open sessions visible from the current task: (toolset, session) pairs, innermost last.
_open: ContextVar[tuple[tuple[MCPToolset, MCPSession], ...]] = ContextVar("mai.mcp", default=())


def _sdk() -> Any:
    """Import the MCP SDK, or say how to install it."""
    try:
        import mcp  # noqa: PLC0415 - optional dependency, imported when first needed
    except ImportError as exc:  # pragma: no cover - the test venv has the extra
        raise ConfigError(f"MCP support needs the 'mcp' package: {_INSTALL}") from exc
    return mcp


class MCPToolset:
    """How to reach one MCP server, and the factory of its tools as modules.

    Give exactly one of ``url`` (streamable HTTP) or ``command`` (a stdio subprocess)::

        docs = mai.MCPToolset("http://127.0.0.1:8000/mcp", bearer_token_env="DOCS_TOKEN")
        calc = mai.MCPToolset(command=["python", "calc_server.py"], prefix="calc_")

        async with calc.connect() as session:
            tools = await session.list_tools()          # modules, one per server tool
            print(await session.call("add", a=1, b=2))  # or: await tools[0](a=1, b=2)

    Secrets are read from the environment when a session connects and are never stored on the
    toolset, printed, or put in a ``repr`` or an error message.

    Args:
        url: The server's streamable HTTP endpoint (``http://host:port/mcp``).
        command: The server command and its arguments, started as a subprocess speaking MCP on
            its standard input and output.
        name: The server's name in errors, traces and step names (default: the URL's host and
            port, or the command's program name).
        prefix: Prepended to every tool's name, to tell apart the tools of two servers whose
            names clash (``prefix="github_"`` turns ``search`` into ``github_search``).
        env: Environment variables for the subprocess, added to a minimal safe environment
            (``PATH``, ``HOME``, ...); the parent's other variables are not passed on.
        cwd: Working directory of the subprocess.
        headers: Extra HTTP headers that are not secret.
        headers_from_env: HTTP headers whose values are read from environment variables:
            ``{"X-Api-Key": "MY_API_KEY"}`` sends ``$MY_API_KEY`` as ``X-Api-Key``.
        bearer_token_env: Name of an environment variable holding a bearer token, sent as
            ``Authorization: Bearer ...``.
        close_timeout: Seconds a closing HTTP session may take to say goodbye to the server.

    Raises:
        ConfigError: Neither or both of ``url`` and ``command``, or an empty command.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        command: Sequence[str] | str | None = None,
        name: str | None = None,
        prefix: str = "",
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        headers: Mapping[str, str] | None = None,
        headers_from_env: Mapping[str, str] | None = None,
        bearer_token_env: str | None = None,
        close_timeout: float = 5.0,
    ) -> None:
        """Describe the server; nothing connects until a session needs it."""
        if (url is None) == (command is None):
            raise ConfigError("MCPToolset needs exactly one of url=... or command=[...]")
        cmd: tuple[str, ...] = ()
        if command is not None:
            cmd = tuple(shlex.split(command) if isinstance(command, str) else command)
            if not cmd or not all(isinstance(c, str) and c for c in cmd):
                raise ConfigError(
                    "MCPToolset(command=...) expects a non-empty list of strings, "
                    f"received {command!r}"
                )
        if url is not None:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ConfigError(
                    "MCPToolset(url=...) expects an http:// or https:// URL with a host"
                )
        if url is None and (headers or headers_from_env or bearer_token_env):
            raise ConfigError("HTTP headers and bearer tokens apply to url=... servers only")
        if command is None and (env or cwd):
            raise ConfigError("env= and cwd= apply to command=[...] servers only")
        if not isinstance(prefix, str):
            raise ConfigError(f"MCPToolset(prefix=...) expects a string, received {prefix!r}")
        self._url = url
        self._command = cmd
        self._env = dict(env or {})
        self._cwd = cwd
        self._headers = dict(headers or {})
        self._headers_from_env = dict(headers_from_env or {})
        self._bearer_env = bearer_token_env
        self._close_timeout = float(close_timeout)
        self.prefix = prefix
        self.name = name or _default_name(url, cmd)

    def __repr__(self) -> str:
        """Return ``<mai.MCPToolset name>`` (never a URL, header, token or environment)."""
        return f"<mai.MCPToolset {self.name!r}>"

    @property
    def transport(self) -> str:
        """``"http"`` or ``"stdio"``."""
        return "http" if self._url is not None else "stdio"

    @contextlib.asynccontextmanager
    async def connect(self) -> AsyncIterator[MCPSession]:
        """Open one MCP session for the block; tools of this toolset called inside use it.

        The connection itself is made when first needed (a listing or a call that really runs),
        so a durable run that replays recorded steps never contacts the server. Leaving the
        block closes the session, in the task that opened it, even when the block is cancelled;
        a stdio server process is always reaped.
        """
        session: MCPSession | None = None
        try:
            async with anyio.create_task_group() as tg:
                session = MCPSession(self, tg)
                token = _open.set((*_open.get(), (self, session)))
                try:
                    yield session
                finally:
                    _open.reset(token)
                    session._begin_close()
        except BaseExceptionGroup as group:
            # The owner task never raises: a single exception is the block's own.
            if len(group.exceptions) == 1:
                raise group.exceptions[0] from None
            raise

    def session(self) -> MCPSession | None:
        """The session of this toolset open in the current task, if any."""
        for toolset, session in reversed(_open.get()):
            if toolset is self:
                return session
        return None

    def around(self, module: Module[..., Any]) -> Module[..., Any]:
        """A module that runs ``module`` inside one session of this toolset per call.

        Every MCP tool of this toolset that ``module`` calls (a composite, an agent given these
        tools) shares that session; it closes when the call ends, however it ends. The wrapper
        is a composite: in a durable run it is not a step itself, ``module``'s calls are.
        """
        return _SessionScope(self, module)

    async def list_tools(self) -> list[MCPTool]:
        """List the server's tools as modules (in the open session, or a session of its own)."""
        session = self.session()
        if session is not None:
            return await session.list_tools()
        async with self.connect() as own:
            return await own.list_tools()

    # -- connecting ----------------------------------------------------------------------------

    def _secrets(self) -> dict[str, str]:
        """Read the secret headers from the environment (at connect time, never stored)."""
        out: dict[str, str] = {}
        for header, var in self._headers_from_env.items():
            out[header] = _from_env(self.name, var, f"header {header!r}")
        if self._bearer_env is not None:
            out["Authorization"] = (
                f"Bearer {_from_env(self.name, self._bearer_env, 'the bearer token')}"
            )
        return out

    def _scrub(self, text: str, secrets: Sequence[str] = ()) -> str:
        """Remove the URL and any secret value from a message."""
        if self._url:
            text = text.replace(self._url, f"<{self.name}>")
        for value in secrets:
            for part in (value, value.removeprefix("Bearer ")):
                if part:
                    text = text.replace(part, "***")
        for value in self._env.values():
            if len(value) >= 4:
                text = text.replace(value, "***")
        return text

    @contextlib.asynccontextmanager
    async def _client(self) -> AsyncIterator[Client]:
        """Enter the SDK's client for this server (in the session's owner task only)."""
        mcp = _sdk()
        if self._url is not None:
            import httpx2  # noqa: PLC0415 - the SDK's HTTP client, with the SDK
            from mcp.client.streamable_http import streamable_http_client  # noqa: PLC0415

            headers = {**self._headers, **self._secrets()}
            http = httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30.0, read=300.0))
            async with (
                http,
                mcp.Client(streamable_http_client(self._url, http_client=http)) as client,
            ):
                yield client
        else:
            params = mcp.StdioServerParameters(
                command=self._command[0],
                args=list(self._command[1:]),
                env=self._env or None,
                cwd=self._cwd,
            )
            async with mcp.Client(params) as client:
                yield client


def _default_name(url: str | None, command: tuple[str, ...]) -> str:
    if url is not None:
        parts = urlsplit(url)
        host = parts.hostname or "mcp"
        return f"{host}:{parts.port}" if parts.port else host
    program = Path(command[0]).name
    if program.startswith("python") and len(command) > 1:
        # python server.py / python -m pkg.server: the script or module says more.
        rest = command[2] if command[1] == "-m" and len(command) > 2 else command[1]
        return Path(rest).stem if rest.endswith(".py") else rest
    return program


def _from_env(server: str, var: str, what: str) -> str:
    value = os.environ.get(var)
    if not value:
        raise ConfigError(
            f"MCP server {server!r}: environment variable {var!r} ({what}) is not set"
        )
    return value


class MCPSession:
    """One open MCP session of a toolset (made by :meth:`MCPToolset.connect`).

    Tool calls may run concurrently from several tasks; they share the session.
    """

    def __init__(self, toolset: MCPToolset, tg: TaskGroup) -> None:
        """Prepare a session; only :meth:`MCPToolset.connect` creates these."""
        self.toolset = toolset
        self._tg = tg
        self._state = "idle"  # idle -> connecting -> ready | failed; closed at the end
        self._client: Client | None = None
        self._error: BaseException | None = None
        self._ready = anyio.Event()
        self._closing = anyio.Event()
        self._life: anyio.CancelScope | None = None
        self._live_listings = 0
        self._live_tools: dict[str, dict[str, Any]] | None = None
        self._verified: set[str] = set()
        self._tools: list[MCPTool] | None = None

    def __repr__(self) -> str:
        """Return ``<mai.MCPSession name state>``."""
        return f"<mai.MCPSession {self.toolset.name!r} {self._state}>"

    @property
    def connected(self) -> bool:
        """Whether the connection to the server is open."""
        return self._state == "ready"

    # -- the owner task ------------------------------------------------------------------------

    async def _own(self) -> None:
        """Open the SDK client, wait for the end of the session, close it: all in this task."""
        with anyio.CancelScope(shield=True), anyio.CancelScope() as life:
            self._life = life
            if self._closing.is_set():
                life.cancel()
            try:
                async with self.toolset._client() as client:
                    self._client = client
                    self._state = "ready"
                    self._ready.set()
                    await self._closing.wait()
            except Exception as exc:
                self._error = exc
            finally:
                self._client = None
                if self._state == "connecting":
                    self._state = "failed"
                self._ready.set()

    def _begin_close(self) -> None:
        """Tell the owner task to close (synchronous: called from the block's exit)."""
        connected = self._state == "ready"
        self._state = "closed"
        self._closing.set()
        life = self._life
        if life is not None:
            if connected:
                life.deadline = anyio.current_time() + self.toolset._close_timeout
            else:
                life.cancel()

    async def _connected(self, tool: str | None) -> Client:
        """The SDK client, connecting on first use."""
        name = self.toolset.name
        if self._state == "idle":
            self._state = "connecting"
            self._tg.start_soon(self._own, name=f"mcp session {name}")
        if self._state == "closed":
            raise MCPServerError(
                f"the session with MCP server {name!r} is closed; call its tools inside "
                "`async with toolset.connect()`",
                server=name,
                tool=tool,
            )
        await self._ready.wait()
        client = self._client
        if client is None:
            err = self._error
            detail = self.toolset._scrub(f"{type(err).__name__}: {err}") if err else "closed"
            raise MCPConnectionError(
                f"cannot connect to MCP server {name!r}"
                f"{f' (for tool {tool!r})' if tool else ''}: {detail}",
                server=name,
                tool=tool,
            ) from None
        return client

    # -- listing and calling -------------------------------------------------------------------

    async def list_tools(self, *, refresh: bool = False) -> list[MCPTool]:
        """List the server's tools as modules (a recorded step inside a durable run).

        The listing is kept for the session: later calls (and :meth:`tool`, :meth:`call`)
        reuse it unless ``refresh`` is true.
        """
        if self._tools is not None and not refresh:
            return list(self._tools)
        before = self._live_listings
        definitions = await _ListTools(self.toolset)()
        replayed = self._live_listings == before
        self._tools = [MCPTool(self.toolset, d, verify=replayed) for d in definitions]
        return list(self._tools)

    async def tool(self, name: str) -> MCPTool:
        """The tool called ``name`` on the server (without the prefix), as a module.

        Raises:
            LookupError: (an :class:`MCPServerError` too) when the server has no such tool.
        """
        for t in await self.list_tools():
            if t.tool_name == name:
                return t
        raise _UnknownToolError(
            f"MCP server {self.toolset.name!r} has no tool {name!r}",
            server=self.toolset.name,
            tool=name,
        )

    async def call(
        self, name: str, arguments: Mapping[str, Any] | None = None, /, **kwargs: Any
    ) -> Any:
        """Call the tool ``name`` (without the prefix) through its module."""
        return await (await self.tool(name))(arguments, **kwargs)

    async def _list_live(self) -> list[dict[str, Any]]:
        """Fetch the complete listing from the server (all pages)."""
        client = await self._connected(None)
        out: list[dict[str, Any]] = []
        cursor: str | None = None
        mcp = _sdk()
        try:
            for _ in range(1000):
                page = await client.list_tools(cursor=cursor, cache_mode="refresh")
                out.extend(_definition(t) for t in page.tools)
                cursor = page.next_cursor
                if cursor is None:
                    break
        except mcp.MCPError as exc:
            raise self._failure(exc, None) from None
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
            raise self._failure(exc, None) from None
        self._live_listings += 1
        self._live_tools = {d["name"]: d for d in out}
        return out

    async def _call(self, tool: MCPTool, arguments: dict[str, Any]) -> Any:
        client = await self._connected(tool.tool_name)
        if tool._verify and tool.tool_name not in self._verified:
            await self._check_unchanged(tool)
        mcp = _sdk()
        try:
            result = await client.call_tool(tool.tool_name, arguments)
        except mcp.MCPError as exc:
            raise self._failure(exc, tool.tool_name, tool.name) from None
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
            raise self._failure(exc, tool.tool_name, tool.name) from None
        return _result_value(self.toolset.name, tool, result)

    async def _check_unchanged(self, tool: MCPTool) -> None:
        """Refuse a tool recorded by a durable run that vanished or changed on the server."""
        live = self._live_tools if self._live_tools is not None else None
        if live is None:
            await self._list_live()
            live = self._live_tools or {}
        current = live.get(tool.tool_name)
        name = self.toolset.name
        if current is None:
            raise MCPToolChangedError(
                f"MCP server {name!r} no longer has the tool {tool.tool_name!r} that this run "
                "recorded; the run cannot continue with it",
                server=name,
                tool=tool.tool_name,
                module_name=tool.name,
            )
        for key in ("input_schema", "output_schema"):
            if current.get(key) != tool.definition.get(key):
                raise MCPToolChangedError(
                    f"MCP server {name!r} changed the {key.replace('_', ' ')} of tool "
                    f"{tool.tool_name!r} since this run recorded it; the run cannot continue "
                    "with it",
                    server=name,
                    tool=tool.tool_name,
                    module_name=tool.name,
                )
        self._verified.add(tool.tool_name)

    def _failure(
        self, exc: BaseException, tool: str | None, module_name: str | None = None
    ) -> MCPServerError | MCPConnectionError:
        name = self.toolset.name
        what = f"a call of tool {tool!r}" if tool else "listing its tools"
        mcp = _sdk()
        detail = self.toolset._scrub(str(exc) or type(exc).__name__)
        if isinstance(exc, mcp.MCPError) and exc.error.code != _CONNECTION_CLOSED:
            return MCPServerError(
                f"MCP server {name!r} refused {what}: {detail}",
                server=name,
                tool=tool,
                module_name=module_name,
            )
        return MCPConnectionError(
            f"MCP server {name!r} went away during {what}: {detail}",
            server=name,
            tool=tool,
            module_name=module_name,
        )


_CONNECTION_CLOSED = -32000


class _UnknownToolError(MCPServerError, LookupError):
    """The server has no tool of that name."""


def _definition(tool: Any) -> dict[str, Any]:
    """The JSON-able definition of an SDK ``Tool`` (what a durable run records)."""
    return {
        "name": tool.name,
        "description": tool.description or "",
        "input_schema": dict(tool.input_schema or {"type": "object"}),
        "output_schema": dict(tool.output_schema) if tool.output_schema is not None else None,
    }


def _result_value(server: str, tool: MCPTool, result: CallToolResult) -> Any:
    """A tool's answer as a plain value: structured content, text, or content blocks."""
    texts = [getattr(c, "text", None) for c in result.content]
    if result.is_error:
        text = "\n".join(t for t in texts if t) or "(no message)"
        raise MCPToolError(
            f"MCP tool {tool.tool_name!r} on server {server!r} reported an error: {text}",
            server=server,
            tool=tool.tool_name,
            text=text,
            module_name=tool.name,
        )
    if result.structured_content is not None:
        return result.structured_content
    if all(getattr(c, "type", None) == "text" for c in result.content):
        return "\n".join(t or "" for t in texts)
    return [c.model_dump(mode="json", by_alias=True, exclude_none=True) for c in result.content]


def _current_session(toolset: MCPToolset) -> MCPSession | None:
    for ts, session in reversed(_open.get()):
        if ts is toolset:
            return session
    return None


class _ListTools(Module[[], list[dict[str, Any]]]):
    """List an MCP server's tools (a module, so a durable run records the listing)."""

    def __init__(self, toolset: MCPToolset) -> None:
        super().__init__(name=f"{toolset.name}:tools/list")
        self._toolset = toolset

    async def forward(self) -> list[dict[str, Any]]:
        session = _current_session(self._toolset)
        if session is None:  # pragma: no cover - MCPSession.list_tools always runs inside one
            async with self._toolset.connect() as own:
                return await own._list_live()
        return await session._list_live()


class _SchemaPayload(Payload):
    """A Payload whose schemas are the MCP tool's own JSON Schemas."""

    __slots__ = ("_input", "_output")

    declared_schema = True

    def __init__(self, name: str, definition: Mapping[str, Any]) -> None:
        schema = definition.get("input_schema") or {"type": "object"}
        required = set(schema.get("required", ()))
        params = {
            p: (Any, inspect.Parameter.empty if p in required else None)
            for p in schema.get("properties", {})
        }
        super().__init__(name, params, Any)
        self._input: dict[str, Any] = dict(schema)
        out = definition.get("output_schema")
        self._output: dict[str, Any] = dict(out) if out else {}

    def input_schema(self) -> dict[str, Any]:
        """The tool's input JSON Schema, as the server declared it."""
        return dict(self._input)

    def output_schema(self) -> dict[str, Any]:
        """The tool's output JSON Schema (``{}`` when the server declared none)."""
        return dict(self._output)


class MCPTool(Module[..., Any]):
    """One tool of an MCP server, as a module.

    Call it with keyword arguments (``await add(a=1, b=2)``) or with one mapping of arguments
    (what a ``Sequential`` passes along). It returns the tool's structured content when the
    server sends some, else its text, else its content blocks as JSON-able dicts. The module's
    name is the toolset's prefix plus the tool's name; its docstring is the tool's description
    and its payload schemas are the tool's input and output schemas. ``with_(timeout=...,
    retries=...)`` works as for any module.

    Raises:
        MCPToolError: The server ran the tool and reported an error.
        MCPConnectionError: The server cannot be reached or died during the call.
        MCPServerError: The server refused the request.
        MCPToolChangedError: In a resumed durable run, the recorded tool vanished or changed.
    """

    def __init__(
        self, toolset: MCPToolset, definition: Mapping[str, Any], *, verify: bool = False
    ) -> None:
        """Wrap one tool definition; normally made by :meth:`MCPSession.list_tools`."""
        super().__init__(name=f"{toolset.prefix}{definition['name']}")
        self.toolset = toolset
        self.definition: dict[str, Any] = dict(definition)
        self.tool_name: str = definition["name"]
        self.description: str = definition.get("description") or ""
        self.__doc__ = self.description
        self._verify = verify

    def __repr__(self) -> str:
        """Return ``<mai.MCPTool name on server>``."""
        return f"<mai.MCPTool {self.name!r} on {self.toolset.name!r}>"

    @property
    def payload(self) -> Payload:
        """The tool's input and output schemas, as the server declared them."""
        p = self._payload
        if p is None:
            p = self._payload = _SchemaPayload(self.name, self.definition)
        return p

    async def forward(self, arguments: Any = None, /, **kwargs: Any) -> Any:
        """Call the tool on the server."""
        if arguments is None:
            args: dict[str, Any] = {}
        elif isinstance(arguments, dict):
            args = dict(arguments)
        elif hasattr(arguments, "model_dump"):
            args = arguments.model_dump(mode="json")
        else:
            raise ArgumentError(
                f"MCP tool {self.name!r} takes keyword arguments or one mapping of arguments, "
                f"received {type(arguments).__name__}",
                module_name=self.name,
            )
        args.update(kwargs)
        session = _current_session(self.toolset)
        if session is None:
            async with self.toolset.connect() as own:
                return await own._call(self, args)
        return await session._call(self, args)


class _SessionScope(Composite):
    """Runs a module inside one session of a toolset per call (:meth:`MCPToolset.around`)."""

    def __init__(self, toolset: MCPToolset, inner: Module[..., Any]) -> None:
        if not isinstance(inner, Module):
            raise ConfigError(f"MCPToolset.around() expects a module, received {inner!r}")
        self.toolset = toolset
        self.inner = inner
        super().__init__(inner.name)
        self._input_from(inner)

    def children(self) -> tuple[Module[..., Any], ...]:
        """The wrapped module."""
        return (self.inner,)

    @property
    def output_type(self) -> Any:
        """The wrapped module's output type."""
        return self.inner.output_type

    async def forward(self, *args: Any, **kwargs: Any) -> Any:
        """Open the session, run the wrapped module in it, close the session."""
        frame = current_frame.get()
        index = frame.reserve(1) + 1
        async with self.toolset.connect():
            return await self.inner._step(frame, index, args, kwargs)
