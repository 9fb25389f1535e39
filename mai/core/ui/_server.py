"""Serving ``mai ui``: hypercorn's Trio worker, on 127.0.0.1 unless told otherwise.

:func:`serve_ui` binds the socket itself (so port 0 picks a free port and the printed URL is
exact), builds the application over an open :class:`~mai.Runtime`, wraps it in the security
rules of ``_security`` and serves until cancelled.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import trio

from mai._errors import MaiError

from ._data import UIData
from ._routes import build_app
from ._security import Guard, new_token

if TYPE_CHECKING:
    from collections.abc import Iterable

    from mai import Module, Runtime

INSTALL = "pip install 'pymai[ui]'"


class UIConfigError(MaiError, ValueError):
    """``mai ui`` was asked to listen somewhere it must not without an explicit flag."""


@dataclass(frozen=True, slots=True)
class UIAddress:
    """Where a started ``mai ui`` listens.

    Attributes:
        url: The URL to open, with its token (``http://127.0.0.1:PORT/?token=...``).
        host: The address it is bound to.
        port: The port.
        token: The secret token.
    """

    url: str
    host: str
    port: int
    token: str


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (or ``localhost``)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host.strip("[]"), port))
    except OSError:
        sock.close()
        raise
    return sock


def _host_names(host: str, port: int, extra: Iterable[str]) -> set[str]:
    shown = f"[{host.strip('[]')}]" if ":" in host else host
    names = {f"{shown}:{port}"}
    if is_loopback(host) or host in {"0.0.0.0", "::"}:  # noqa: S104 - names, not a bind
        names |= {f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}"}
    names |= {name if ":" in name.strip("[]") else f"{name}:{port}" for name in extra}
    return names


async def serve_ui(
    runtime: Runtime,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    allow_remote: bool = False,
    allowed_hosts: Iterable[str] = (),
    token: str | None = None,
    workflows: list[Module[..., Any]] | None = None,
    task_status: trio.TaskStatus[UIAddress] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the web view of ``runtime``'s store until cancelled.

    Args:
        runtime: An open :class:`~mai.Runtime` (its store is the one shown).
        host: Address to bind; anything but a loopback address needs ``allow_remote``.
        port: Port (0: a free one).
        allow_remote: Permit a non-loopback ``host`` (anyone who can reach it and has the
            token can read the runs and act on them).
        allowed_hosts: Extra names the ``Host`` header may carry (``name`` or ``name:port``).
        token: The secret (default: a new random one).
        workflows: The application's workflows (``--app``): plans to compare with.
        task_status: Receives the :class:`UIAddress` once the server listens.

    Raises:
        UIConfigError: For a non-loopback ``host`` without ``allow_remote``.
        ImportError: When the ``ui`` extra (Starlette, Hypercorn) is not installed.
    """
    if not is_loopback(host) and not allow_remote:
        raise UIConfigError(
            f"mai ui binds to {host!r} only with --allow-remote: anyone who can reach that "
            "address and has the token could read every run's data and act on runs"
        )
    try:
        from hypercorn.config import Config  # noqa: PLC0415
        from hypercorn.trio import serve  # noqa: PLC0415
    except ImportError as exc:
        raise ImportError(f"mai ui needs Starlette and Hypercorn: {INSTALL}") from exc
    secret = token or new_token()
    sock = _bind(host, port)
    bound_port = int(sock.getsockname()[1])
    hosts = _host_names(host, bound_port, allowed_hosts)
    guard_cookie = f"mai_ui_{bound_port}"
    data = UIData(runtime, workflows)
    probe = Guard(build_app(data, ""), secret, hosts, guard_cookie)
    app = Guard(build_app(data, probe.csrf), secret, hosts, guard_cookie)
    config = Config()
    config.bind = [f"fd://{sock.detach()}"]
    config.loglevel = "WARNING"
    config.accesslog = None
    config.graceful_timeout = 1.0
    shown = f"[{host.strip('[]')}]" if ":" in host else host
    address = UIAddress(f"http://{shown}:{bound_port}/?token={secret}", host, bound_port, secret)

    async def run(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        await serve(app, config, task_status=task_status)  # type: ignore[arg-type]

    async with trio.open_nursery() as nursery:
        await nursery.start(run)
        task_status.started(address)
