"""``mai mcp serve pkg.module:obj``: serve modules as MCP tools (stdio or streamable HTTP).

``obj`` is a module or function, a list of them, or a dict of tool name -> module. Over HTTP the
server binds 127.0.0.1 unless ``--host`` names another address, which also needs
``--allow-remote`` and a bearer token in ``$MAI_MCP_TOKEN`` (or the variable ``--token-env``
names); the token is read from the environment, never from the command line.
"""

from __future__ import annotations

import functools
import os
import sys
from typing import TYPE_CHECKING, Any

from ._args import UsageError, load_object

if TYPE_CHECKING:
    import argparse


def add_parser(sub: Any) -> None:
    """Add ``mai mcp serve`` to the command's sub-parsers."""
    mcp = sub.add_parser("mcp", help="serve modules as an MCP server")
    msub = mcp.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = msub.add_parser(
        "serve",
        help="serve pkg.module:obj (a module, a list or a dict of modules) as MCP tools",
    )
    p.add_argument("target", metavar="pkg.module:obj", help="the module(s) to serve")
    p.add_argument("--http", action="store_true", help="streamable HTTP instead of stdio")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port to bind (default 8000)")
    p.add_argument("--path", default="/mcp", help="endpoint path (default /mcp)")
    p.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow binding an address other than loopback (needs a bearer token)",
    )
    p.add_argument(
        "--token-env",
        metavar="VAR",
        default="MAI_MCP_TOKEN",
        help="environment variable holding the bearer token (default MAI_MCP_TOKEN)",
    )
    p.add_argument(
        "--allowed-host",
        action="append",
        dest="allowed_hosts",
        metavar="HOST[:PORT|:*]",
        help="Host header value to accept (repeatable; default: loopback names and --host)",
    )
    p.add_argument("--name", default="pymai", help="server name sent to clients")


def cmd_mcp(ns: argparse.Namespace) -> int:
    """Run ``mai mcp serve``."""
    import trio  # noqa: PLC0415

    from mai.core.mcp import serve_mcp  # noqa: PLC0415

    target = load_object(ns.target)
    token = os.environ.get(ns.token_env) or None
    if ns.http:

        async def report() -> None:
            async with trio.open_nursery() as nursery:
                url = await nursery.start(
                    functools.partial(
                        serve_mcp,
                        target,
                        transport="http",
                        host=ns.host,
                        port=ns.port,
                        path=ns.path,
                        allow_remote=ns.allow_remote,
                        bearer_token=token,
                        allowed_hosts=ns.allowed_hosts,
                        name=ns.name,
                    )
                )
                # stdout carries the URL (a script can read it); nothing else is printed.
                print(f"serving MCP on {url}", flush=True)

        trio.run(report)
        return 0
    if ns.allow_remote or ns.host != "127.0.0.1":
        raise UsageError("--host and --allow-remote apply to --http only")
    # stdio: standard output is the protocol; messages go to standard error.
    print(f"mai: serving {ns.target} as MCP tools on stdio", file=sys.stderr)
    trio.run(functools.partial(serve_mcp, target, transport="stdio", name=ns.name))
    return 0
