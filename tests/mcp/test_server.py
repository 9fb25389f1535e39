"""Our MCP server driven by the SDK's own client (a third-party client) over stdio and HTTP."""

from __future__ import annotations

import functools
import importlib.util
import os
import subprocess
import sys
from typing import Any

import pytest
import trio
from mcp_helpers import HERE

import mai

SERVED = str(HERE / "served_tools.py")
MAI_MCP_SERVE = [sys.executable, "-m", "mai", "mcp", "serve", f"{SERVED}:TOOLS"]


def served_module() -> Any:
    """The served modules, imported in this process (for the in-process HTTP server)."""
    spec = importlib.util.spec_from_file_location("served_tools", SERVED)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def text_of(result: Any) -> str:
    """The text content of a CallToolResult."""
    return "\n".join(c.text for c in result.content)


async def serve_http(nursery: trio.Nursery, tools: Any, **kw: Any) -> str:
    """Start serve_mcp over HTTP on a free port; return the endpoint URL."""
    url: str = await nursery.start(
        functools.partial(mai.serve_mcp, tools, transport="http", port=0, **kw)
    )
    return url


# -- stdio, through the `mai mcp serve` command -------------------------------------------------


async def test_stdio_cli_serves_modules_to_the_sdk_client():
    """`mai mcp serve` on stdio: schemas, descriptions, structured output, errors, keeps serving."""
    from mcp import Client, MCPError, StdioServerParameters

    params = StdioServerParameters(
        command=sys.executable, args=["-m", "mai", "mcp", "serve", f"{SERVED}:TOOLS"]
    )
    with trio.fail_after(60):
        async with Client(params) as client:
            tools = {t.name: t for t in (await client.list_tools()).tools}
            assert set(tools) == {"add", "forecast", "refuse", "flaky", "too_slow", "wait_forever"}
            add = tools["add"]
            assert add.description == "Add two integers."
            assert add.input_schema["required"] == ["a", "b"]
            assert add.input_schema["properties"]["a"]["description"] == "The first number."
            assert add.output_schema == {
                "type": "object",
                "properties": {"result": {"type": "integer"}},
                "required": ["result"],
            }
            assert tools["forecast"].output_schema is not None
            assert tools["forecast"].output_schema["properties"]["summary"]["type"] == "string"

            result = await client.call_tool("add", {"a": 2, "b": 40})
            assert not result.is_error
            assert result.structured_content == {"result": 42}
            assert text_of(result) == "42"

            result = await client.call_tool("forecast", {"city": "Oslo"})
            assert result.structured_content == {
                "city": "Oslo",
                "days": 3,
                "summary": "sunny in Oslo for 3 days",
            }

            bad = await client.call_tool("add", {"a": "many", "b": 1})
            assert bad.is_error
            assert "a:" in text_of(bad)
            assert "'add'" in text_of(bad)

            with pytest.raises(MCPError, match="Unknown tool: 'nope'"):
                await client.call_tool("nope", {})

            refused = await client.call_tool("refuse", {"reason": "no"})
            assert refused.is_error
            assert text_of(refused) == "try again: no"

            # A module that logs its retries does not corrupt the stdio wire.
            flaky = await client.call_tool("flaky", {"key": "stdio"})
            assert flaky.structured_content == {"result": "stdio after 3 attempts"}

            # Still serving after the errors.
            assert (await client.call_tool("add", {"a": 1, "b": 1})).structured_content == {
                "result": 2
            }


# -- HTTP, in this Trio process -----------------------------------------------------------------


async def test_http_calls_run_with_the_modules_retries_and_timeout(nursery: trio.Nursery):
    """Over streamable HTTP: retries make a flaky module succeed; a timeout is an error result."""
    from mcp import Client

    served = served_module()
    url = await serve_http(nursery, served.TOOLS)
    assert url.startswith("http://127.0.0.1:")
    with trio.fail_after(60):
        async with Client(url) as client:
            ok = await client.call_tool("flaky", {"key": "k1"})
            assert not ok.is_error
            assert ok.structured_content == {"result": "k1 after 3 attempts"}
            slow = await client.call_tool("too_slow", {})
            assert slow.is_error
            assert "DeadlineExceeded" in text_of(slow)
            assert "too_slow" in text_of(slow)


async def test_http_client_cancel_cancels_the_call(nursery: trio.Nursery):
    """A client that cancels its request cancels the module call on the server."""
    from mcp import Client

    served = served_module()
    url = await serve_http(nursery, served.TOOLS)
    with trio.fail_after(60):
        async with Client(url) as client:
            with trio.CancelScope() as scope:

                async def cancel_when_started() -> None:
                    await served.STARTED.wait()
                    scope.cancel()

                nursery.start_soon(cancel_when_started)
                await client.call_tool("wait_forever", {})
            await served.CANCELLED.wait()
            # The server keeps serving the same client.
            assert (await client.call_tool("add", {"a": 1, "b": 2})).structured_content == {
                "result": 3
            }


async def test_our_client_against_our_server(nursery: trio.Nursery):
    """MCPToolset over HTTP against serve_mcp: modules in, modules out, errors typed."""
    served = served_module()
    url = await serve_http(nursery, served.TOOLS)
    async with mai.MCPToolset(url, name="ours").connect() as session:
        assert await session.call("add", a=20, b=22) == {"result": 42}
        with pytest.raises(mai.MCPToolError, match="try again: later"):
            await session.call("refuse", reason="later")


# -- security -------------------------------------------------------------------------------------


async def post(url: str, headers: dict[str, str] | None = None) -> Any:
    """POST an initialize-shaped JSON-RPC request with raw HTTP (to see status and body)."""
    import httpx2

    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    async with httpx2.AsyncClient() as http:
        return await http.post(
            url,
            json=body,
            headers={"accept": "application/json, text/event-stream", **(headers or {})},
        )


async def test_host_and_origin_are_checked(nursery: trio.Nursery):
    """DNS rebinding: a foreign Host or Origin header is refused before any MCP handling."""
    served = served_module()
    url = await serve_http(nursery, served.TOOLS)
    with trio.fail_after(60):
        bad_host = await post(url, {"host": "evil.example"})
        assert bad_host.status_code == 421
        bad_origin = await post(url, {"origin": "http://evil.example"})
        assert bad_origin.status_code == 403
        good_origin = await post(url, {"origin": url.rsplit("/", 1)[0]})
        assert good_origin.status_code not in (401, 403, 421)


async def test_bearer_token_401_and_nothing_else(nursery: trio.Nursery):
    """With a bearer token, a request without it (or with another) gets 401 and an empty body."""
    served = served_module()
    url = await serve_http(nursery, served.TOOLS, bearer_token="s3cret-token")  # noqa: S106
    with trio.fail_after(60):
        for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": "s3cret-token"}):
            response = await post(url, headers)
            assert response.status_code == 401
            assert response.content == b""
        os.environ["MAI_TEST_MCP_TOKEN"] = "s3cret-token"  # noqa: S105 - a test token
        try:
            toolset = mai.MCPToolset(url, bearer_token_env="MAI_TEST_MCP_TOKEN")  # noqa: S106
            async with toolset.connect() as session:
                assert await session.call("add", a=1, b=2) == {"result": 3}
        finally:
            del os.environ["MAI_TEST_MCP_TOKEN"]
        toolset = mai.MCPToolset(url, name="locked")
        with pytest.raises(mai.MCPConnectionError, match="'locked'") as info:
            await toolset.list_tools()
        assert "s3cret" not in str(info.value)


async def test_remote_binding_needs_the_flag_and_a_token(nursery: trio.Nursery):
    """Binding a non-loopback address needs allow_remote AND a token (AND allowed hosts)."""
    served = served_module()
    with pytest.raises(mai.ConfigError, match="allow_remote"):
        mai.mcp_http_app(served.TOOLS, host="0.0.0.0")  # noqa: S104 - refused, never bound
    with pytest.raises(mai.ConfigError, match="bearer token"):
        mai.mcp_http_app(served.TOOLS, host="0.0.0.0", allow_remote=True)  # noqa: S104
    with pytest.raises(mai.ConfigError, match="allowed_hosts"):
        mai.mcp_http_app(
            served.TOOLS,
            host="0.0.0.0",  # noqa: S104
            allow_remote=True,
            bearer_token="t0ken-value",  # noqa: S106 - a test token
        )
    url = await serve_http(
        nursery,
        served.TOOLS,
        host="0.0.0.0",  # noqa: S104 - the point of the test; a token guards it
        allow_remote=True,
        bearer_token="t0ken-value",  # noqa: S106 - a test token
        allowed_hosts=["127.0.0.1:*"],
    )
    port = url.split(":")[2].split("/")[0]
    local = f"http://127.0.0.1:{port}/mcp"
    with trio.fail_after(60):
        assert (await post(local)).status_code == 401
        ok = await post(local, {"authorization": "Bearer t0ken-value"})
        assert ok.status_code not in (401, 403, 421)


def test_cli_refuses_remote_binding_without_the_flag():
    """`mai mcp serve --http --host 0.0.0.0` without --allow-remote: one error line, exit 1."""
    proc = subprocess.run(
        [*MAI_MCP_SERVE, "--http", "--host", "0.0.0.0", "--port", "0"],  # noqa: S104
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 1
    assert "allow_remote" in proc.stderr
    assert "Traceback" not in proc.stderr


async def test_cli_http_serves_until_stopped():
    """`mai mcp serve --http --port 0` prints its URL and serves our client."""
    proc = await trio.lowlevel.open_process(
        [*MAI_MCP_SERVE, "--http", "--port", "0"],
        stdout=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = b""
        with trio.fail_after(60):
            while not line.endswith(b"\n"):
                chunk = await proc.stdout.receive_some(1)
                assert chunk, "the server exited before printing its URL"
                line += chunk
        url = line.decode().strip().removeprefix("serving MCP on ")
        assert url.startswith("http://127.0.0.1:")
        async with mai.MCPToolset(url).connect() as session:
            assert await session.call("add", a=3, b=4) == {"result": 7}
    finally:
        proc.kill()
        await proc.wait()


async def test_http_server_dying_mid_call_is_a_connection_error(fifo: Any):
    """An HTTP server killed during a call: MCPConnectionError naming server and tool, no hang."""
    from mcp_helpers import read_pid

    proc = await trio.lowlevel.open_process(
        [*MAI_MCP_SERVE, "--http", "--port", "0"],
        stdout=subprocess.PIPE,
        env={**os.environ, "SERVED_FIFO": str(fifo)},
    )
    try:
        assert proc.stdout is not None
        line = b""
        with trio.fail_after(60):
            while not line.endswith(b"\n"):
                chunk = await proc.stdout.receive_some(1)
                assert chunk, "the server exited before printing its URL"
                line += chunk
        url = line.decode().strip().removeprefix("serving MCP on ")
        with trio.fail_after(60):
            async with trio.open_nursery() as nursery:

                async def kill_when_started() -> None:
                    await read_pid(fifo)
                    proc.kill()

                nursery.start_soon(kill_when_started)
                async with mai.MCPToolset(url, name="doomed").connect() as session:
                    with pytest.raises(mai.MCPConnectionError) as info:
                        await session.call("wait_forever")
        assert info.value.server == "doomed"
        assert info.value.tool == "wait_forever"
    finally:
        proc.kill()
        await proc.wait()
