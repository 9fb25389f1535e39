"""A throwaway PostgreSQL cluster started from the installed server binaries (tests, benchmarks).

``initdb`` and ``pg_ctl`` are found on ``PATH`` or under ``/usr/lib/postgresql/*/bin``. The
cluster lives in a new directory under ``/tmp``, listens on ``127.0.0.1`` on a free port (and a
Unix socket in the same directory), trusts local connections as user ``postgres``, and is
removed by :meth:`PostgresCluster.destroy`. PostgreSQL refuses to run as root, so when the
caller is root the binaries run as the ``postgres`` user through ``runuser``, and the
directory is handed to that user.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Self

#: The command that installs the server binaries on Debian and Ubuntu.
INSTALL_HINT = "apt-get install postgresql"


def find_bindir() -> Path | None:
    """The directory holding ``initdb`` and ``pg_ctl``, or ``None`` when they are not installed."""
    initdb = shutil.which("initdb")
    if initdb is not None:
        bindir = Path(os.path.realpath(initdb)).parent
        if (bindir / "pg_ctl").exists():
            return bindir
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), reverse=True):
        bindir = candidate.parent
        if (bindir / "pg_ctl").exists():
            return bindir
    return None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresCluster:
    """A private PostgreSQL server for tests and benchmarks; also a context manager.

    Example::

        with PostgresCluster() as cluster:
            url = cluster.create_database("mai_test")
            ...

    Args:
        bindir: Where ``initdb``/``pg_ctl`` live (default: :func:`find_bindir`).
        settings: Extra server settings (``-c name=value``), e.g. ``{"fsync": "on"}``.

    Raises:
        FileNotFoundError: When the server binaries are not installed (the message says how to
            install them).
    """

    def __init__(self, bindir: Path | None = None, settings: dict[str, str] | None = None) -> None:
        """Locate the binaries; nothing is created until :meth:`start`."""
        found = bindir or find_bindir()
        if found is None:
            raise FileNotFoundError(
                f"PostgreSQL server binaries not found; install them with: {INSTALL_HINT}"
            )
        self.bindir = found
        self.settings = {"fsync": "on", "max_connections": "200", **(settings or {})}
        self.port = 0
        self.base: Path | None = None
        self._as_root = os.geteuid() == 0

    @property
    def data(self) -> Path:
        """The data directory."""
        assert self.base is not None, "the cluster was not created"  # noqa: S101
        return self.base / "data"

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        cmd = list(args)
        if self._as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(  # noqa: S603 - fixed binaries, our own arguments
            cmd, check=True, capture_output=True, text=True, timeout=120
        )

    def start(self) -> Self:
        """Create the cluster (first time only) and start the server; wait until it accepts."""
        if self.base is None:
            self.base = Path(tempfile.mkdtemp(prefix="mai-pg-", dir="/tmp"))
            if self._as_root:
                shutil.chown(self.base, "postgres", "postgres")
            self._run(
                str(self.bindir / "initdb"),
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
                "--no-instructions",
            )
            self.port = free_port()
            # A port chosen free can be taken before the server binds it (another process's
            # outgoing connection may get it as its local port): try fresh ones, five times.
            for attempt in range(5):
                try:
                    return self._pg_ctl_start()
                except subprocess.CalledProcessError:
                    log = (self.base / "server.log").read_text(errors="replace")
                    if attempt == 4 or "could not bind" not in log:
                        raise
                    self.port = free_port()
        return self._pg_ctl_start()  # a restart keeps its port: URLs handed out name it

    def _pg_ctl_start(self) -> Self:
        assert self.base is not None  # noqa: S101
        opts = f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1"
        opts += "".join(f" -c {k}={v}" for k, v in self.settings.items())
        self._run(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.base / "server.log"),
            "-o",
            opts,
            "-w",
            "-t",
            "60",
            "start",
        )
        return self

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``mode``: ``smart``, ``fast`` or ``immediate``, as for pg_ctl)."""
        if self.base is not None and (self.data / "postmaster.pid").exists():
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def restart(self, mode: str = "immediate") -> None:
        """Stop the server with ``mode`` and start it again on the same port."""
        self.stop(mode)
        self.start()

    def destroy(self) -> None:
        """Stop the server and remove every file of the cluster."""
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            self.stop("immediate")
        if self.base is not None:
            shutil.rmtree(self.base, ignore_errors=True)
            self.base = None

    def url(self, dbname: str = "postgres") -> str:
        """A ``postgresql://`` URL for ``dbname`` over TCP on 127.0.0.1."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def log(self) -> str:
        """The server log so far (for failure messages)."""
        if self.base is None:
            return ""
        with contextlib.suppress(OSError):
            return (self.base / "server.log").read_text()
        return ""

    def create_database(self, name: str) -> str:
        """Create database ``name`` and return its URL."""
        self.sql(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop database ``name``, disconnecting its sessions."""
        self.sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def sql(self, statement: str, dbname: str = "postgres") -> list[tuple[object, ...]]:
        """Run one statement (autocommit) as ``postgres``; return its rows, if any."""
        import psycopg  # noqa: PLC0415 - the driver is needed only here

        with psycopg.connect(self.url(dbname), autocommit=True) as conn:
            cur = conn.execute(statement.encode())
            return list(cur.fetchall()) if cur.description else []

    def __enter__(self) -> Self:
        """Start the cluster."""
        return self.start()

    def __exit__(self, *exc: object) -> None:
        """Destroy the cluster."""
        self.destroy()
