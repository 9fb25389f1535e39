"""Our MCP client against a real third-party MCP server (the SDK's MCPServer): stdio and HTTP."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import pytest
import trio
from mcp_helpers import alive, calc_command, read_pid

import mai

if TYPE_CHECKING:
    from pathlib import Path


def calc(**kw: Any) -> mai.MCPToolset:
    """The stdio test server as a toolset."""
    return mai.MCPToolset(command=calc_command(), name="calc", **kw)


async def test_stdio_tools_are_modules_with_schemas_and_descriptions():
    """Listed tools are modules named prefix+tool, with the server's schemas and description."""
    async with calc(prefix="c_").connect() as session:
        tools = {t.name: t for t in await session.list_tools()}
        add = tools["c_add"]
        assert isinstance(add, mai.Module)
        assert add.tool_name == "add"
        assert add.__doc__ is not None
        assert add.__doc__.startswith("Add two integers.")
        schema = add.payload.input_schema()
        assert schema["required"] == ["a", "b"]
        assert schema["properties"]["a"]["type"] == "integer"
        assert add.payload.output_schema()["properties"]["total"]["type"] == "integer"
        assert await add(a=1, b=2) == {"total": 3}
        assert await add({"a": 2, "b": 2}) == {"total": 4}


async def test_one_session_serves_every_call_of_the_block():
    """All calls inside connect() share one server process (one session)."""
    async with calc().connect() as session:
        env = await session.tool("env")
        first = await env(name="CALC_PID_PROBE")
        assert first == {"result": ""}
        assert session.connected
        results = []
        async with trio.open_nursery() as nursery:
            for n in range(5):

                async def one(n: int = n) -> None:
                    results.append(await session.call("count", n=n))

                nursery.start_soon(one)
        assert sorted(r["result"] for r in results) == [0, 1, 2, 3, 4]


async def test_tools_compose_in_a_sequential():
    """MCP tools are ordinary modules in composites (the mapping flows from step to step)."""
    async with calc().connect() as session:
        add = await session.tool("add")

        @mai.module
        def to_text(out: dict[str, int]) -> dict[str, str]:
            return {"text": f"total {out['total']}"}

        shout = await session.tool("shout")
        pipeline = mai.Sequential(add, to_text, shout)
        assert await pipeline({"a": 20, "b": 22}) == {"result": "TOTAL 42"}


async def test_a_tool_called_outside_a_session_opens_its_own():
    """A tool module called with no open session opens and closes one for that call."""
    tools = await calc().list_tools()
    add = next(t for t in tools if t.tool_name == "add")
    assert await add(a=3, b=4) == {"total": 7}


async def test_prefixes_tell_two_servers_apart():
    """Two servers with the same tool names are told apart by the prefix the user chose."""
    one, two = calc(prefix="one_"), calc(prefix="two_")
    async with one.connect() as s1, two.connect() as s2:
        names = {t.name for t in await s1.list_tools()} | {t.name for t in await s2.list_tools()}
        assert {"one_add", "two_add"} <= names
        assert await (await s2.tool("add"))(a=1, b=1) == {"total": 2}


async def test_environment_is_the_servers_own():
    """env= reaches the subprocess; the parent's other variables do not."""
    os.environ["MAI_TEST_PARENT_ONLY"] = "leak"
    try:
        async with calc(env={"CALC_GREETING": "hello"}).connect() as session:
            assert await session.call("env", name="CALC_GREETING") == {"result": "hello"}
            assert await session.call("env", name="MAI_TEST_PARENT_ONLY") == {"result": ""}
    finally:
        del os.environ["MAI_TEST_PARENT_ONLY"]


async def test_tool_error_is_a_typed_tool_error():
    """An error reported by the server is an MCPToolError naming server and tool, with its text."""
    async with calc().connect() as session:
        with pytest.raises(mai.MCPToolError) as info:
            await session.call("fail", reason="no reason")
        assert info.value.server == "calc"
        assert info.value.tool == "fail"
        assert "cannot do that: no reason" in info.value.text
        # The session keeps working after a tool error.
        assert await session.call("add", a=1, b=1) == {"total": 2}


async def test_bad_arguments_come_back_as_a_tool_error_naming_the_field():
    """Arguments that do not fit the schema are the server's tool error, naming the field."""
    async with calc().connect() as session:
        with pytest.raises(mai.MCPToolError) as info:
            await session.call("add", a="not a number", b=1)
        assert "a\n" in info.value.text or "'a'" in info.value.text or " a " in info.value.text


async def test_unknown_tool_is_a_lookup_error():
    """Asking a session for a tool the server does not have names the tool."""
    async with calc().connect() as session:
        with pytest.raises(LookupError, match="no tool 'nope'"):
            await session.tool("nope")


async def test_server_dying_mid_call_is_a_connection_error_naming_server_and_tool(fifo: Path):
    """A server process that exits during a call: MCPConnectionError naming server and tool."""
    pid = 0
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery, calc().connect() as session:

            async def watch() -> None:
                nonlocal pid
                pid = await read_pid(fifo)

            nursery.start_soon(watch)
            with pytest.raises(mai.MCPConnectionError) as info:
                await session.call("die", fifo=str(fifo))
    assert info.value.server == "calc"
    assert info.value.tool == "die"
    assert "'calc'" in str(info.value)
    assert "'die'" in str(info.value)
    assert pid
    assert not alive(pid)


async def test_cancel_mid_call_reaps_the_server_process(fifo: Path):
    """Cancelling the block in the middle of a call closes the session and reaps the process."""
    pid = 0
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            with trio.CancelScope() as scope:

                async def cancel_when_started() -> None:
                    nonlocal pid
                    pid = await read_pid(fifo)
                    scope.cancel()

                nursery.start_soon(cancel_when_started)
                async with calc().connect() as session:
                    await session.call("block", fifo=str(fifo))
    assert scope.cancelled_caught
    assert pid
    assert not alive(pid)


async def test_deadline_mid_call_is_deadline_exceeded_and_reaps():
    """A tool's deadline firing in the middle of a call raises DeadlineExceeded; nothing is left."""
    with trio.fail_after(60):
        async with calc().connect() as session:
            pid = (await session.call("pid"))["result"]
            hang = (await session.tool("hang")).with_(timeout=0.5)
            with pytest.raises(mai.DeadlineExceeded) as info:
                await hang()
            assert info.value.module_name == "hang"
            # The session survives a cancelled call.
            assert await session.call("add", a=1, b=1) == {"total": 2}
    assert not alive(pid)


async def test_a_server_that_cannot_start_is_a_connection_error():
    """A command that does not exist: MCPConnectionError naming the server, no traceback soup."""
    toolset = mai.MCPToolset(command=["/nonexistent/mcp-server"], name="ghost")
    with pytest.raises(mai.MCPConnectionError, match="cannot connect to MCP server 'ghost'"):
        await toolset.list_tools()


def test_toolset_configuration_errors():
    """A toolset needs exactly one of url/command, and transport-specific options fit it."""
    with pytest.raises(mai.ConfigError, match="exactly one"):
        mai.MCPToolset()
    with pytest.raises(mai.ConfigError, match="exactly one"):
        mai.MCPToolset("http://127.0.0.1:1/mcp", command=["x"])
    with pytest.raises(mai.ConfigError, match="http"):
        mai.MCPToolset("ftp://example.com/mcp")
    with pytest.raises(mai.ConfigError, match="url"):
        mai.MCPToolset(command=["x"], bearer_token_env="TOKEN")  # noqa: S106 - a variable name
    with pytest.raises(mai.ConfigError, match="command"):
        mai.MCPToolset("http://127.0.0.1:1/mcp", env={"A": "b"})


def test_repr_never_shows_url_headers_or_environment():
    """The repr names the server only: no URL (credentials), header, token or env value."""
    toolset = mai.MCPToolset(
        "http://user:pw@127.0.0.1:9/mcp?key=SECRETQUERY",
        headers={"X-Plain": "PLAINVALUE"},
        bearer_token_env="SOME_TOKEN",  # noqa: S106 - a variable name
    )
    assert repr(toolset) == "<mai.MCPToolset '127.0.0.1:9'>"
    stdio = mai.MCPToolset(command=["server"], env={"API_KEY": "SECRETENV"})
    assert "SECRETENV" not in repr(stdio)


# -- streamable HTTP --------------------------------------------------------------------------


async def test_http_tools_and_calls(calc_http: tuple[str, Any]):
    """Over streamable HTTP on 127.0.0.1: listing, a call, a tool error."""
    url, _ = calc_http
    toolset = mai.MCPToolset(url, prefix="h_")
    assert toolset.name.startswith("127.0.0.1:")
    async with toolset.connect() as session:
        names = {t.name for t in await session.list_tools()}
        assert {"h_add", "h_shout"} <= names
        assert await session.call("add", a=40, b=2) == {"total": 42}
        with pytest.raises(mai.MCPToolError):
            await session.call("fail", reason="http")


async def test_http_cancel_mid_call_leaves_no_session(calc_http: tuple[str, Any], fifo: Path):
    """Cancelling in the middle of an HTTP call cancels the server's handler; no session remains."""
    url, calc = calc_http
    handler_cancelled = trio.Event()
    calc.ON_CANCEL.append(handler_cancelled.set)
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            with trio.CancelScope() as scope:

                async def cancel_when_started() -> None:
                    await read_pid(fifo)
                    scope.cancel()

                nursery.start_soon(cancel_when_started)
                async with mai.MCPToolset(url).connect() as session:
                    await session.call("block", fifo=str(fifo))
    assert scope.cancelled_caught
    with trio.fail_after(60):
        await handler_cancelled.wait()  # the call does not run on, orphaned, on the server
    assert calc.server.session_manager._server_instances == {}


async def test_http_unreachable_server_is_a_connection_error_without_the_url():
    """A refused connection names the server, not the URL (which may carry credentials)."""
    with trio.socket.socket() as sock:
        await sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    toolset = mai.MCPToolset(f"http://127.0.0.1:{port}/mcp?token=SECRETQUERY", name="down")
    with trio.fail_after(60), pytest.raises(mai.MCPConnectionError) as info:
        await toolset.list_tools()
    assert "SECRETQUERY" not in str(info.value)
    assert "'down'" in str(info.value)


async def test_an_error_in_the_block_propagates_as_itself_and_reaps():
    """An exception raised inside connect() comes out unwrapped; the server process is reaped."""
    pid = 0

    async def fail_inside() -> None:
        nonlocal pid
        async with calc().connect() as session:
            pid = (await session.call("pid"))["result"]
            await session.call("fail", reason="inside the block")

    with trio.fail_after(60), pytest.raises(mai.MCPToolError) as info:
        await fail_inside()
    assert "inside the block" in info.value.text
    assert pid
    assert not alive(pid)
