"""``mai ui``: serve the local web view of a store's runs (see :mod:`mai.core.ui`)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from ._args import UsageError

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable


def add_parser(
    sub: Any, store_arg: Callable[[argparse.ArgumentParser], None]
) -> argparse.ArgumentParser:
    """Declare ``mai ui`` and its options on the ``mai`` sub-command parser."""
    p: argparse.ArgumentParser = sub.add_parser(
        "ui", help="serve a local web view of runs, steps, conversations and plans"
    )
    store_arg(p)
    p.add_argument("--port", type=int, default=8765, help="port (default 8765; 0: any free one)")
    p.add_argument(
        "--host",
        default="127.0.0.1",
        metavar="ADDR",
        help="address to listen on (default 127.0.0.1); another needs --allow-remote",
    )
    p.add_argument(
        "--allow-remote",
        action="store_true",
        help="permit a non-loopback --host: whoever reaches it with the token sees every run",
    )
    p.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="NAME",
        help="another name the Host header may carry (repeatable), e.g. behind a proxy",
    )
    p.add_argument(
        "--app",
        metavar="pkg.module",
        help="the application's workflows: requeued runs resume here, plans are compared",
    )
    return p


def run(ns: argparse.Namespace) -> int:
    """Serve until interrupted; print the URL (with its token) first."""
    import trio  # noqa: PLC0415

    import mai  # noqa: PLC0415
    from mai.core.durable import load_app, redact_url  # noqa: PLC0415

    try:
        from mai.core.ui import UIConfigError, serve_ui  # noqa: PLC0415
        from mai.core.ui._server import is_loopback  # noqa: PLC0415
    except ImportError as exc:  # pragma: no cover - the extra is missing
        raise UsageError(str(exc)) from None
    if not is_loopback(ns.host) and not ns.allow_remote:  # refused before the store is opened
        raise UsageError(
            f"mai ui binds to {ns.host!r} only with --allow-remote: anyone who can reach that "
            "address and has the token could read every run's data and act on runs"
        )
    workflows: list[Any] = []
    if ns.app:
        try:
            workflows = load_app(ns.app)
        except ImportError as exc:
            raise UsageError(f"cannot import --app {ns.app!r}: {exc}") from exc

    async def go() -> None:
        async with mai.Runtime(ns.store, workflows=workflows) as rt, trio.open_nursery() as n:
            try:
                address = await n.start(
                    lambda task_status: serve_ui(
                        rt,
                        host=ns.host,
                        port=ns.port,
                        allow_remote=ns.allow_remote,
                        allowed_hosts=ns.allow_host,
                        workflows=workflows,
                        task_status=task_status,
                    )
                )
            except UIConfigError as exc:
                raise UsageError(str(exc)) from None
            print(f"mai ui: {redact_url(rt.url)}", file=sys.stderr)
            print(address.url, flush=True)

    trio.run(go)
    return 0
