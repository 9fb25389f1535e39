"""PostgreSQL fixtures: a throwaway cluster per test session, a fresh database per test.

Under pytest-xdist the workers share the session's cluster (see ``pg_cluster``). The cluster
comes from the installed server binaries (``initdb``/``pg_ctl`` on ``PATH`` or
under ``/usr/lib/postgresql/*/bin``; as root they run as ``postgres`` through ``runuser``), on
127.0.0.1 with a free port, and is removed afterwards. Without the binaries the tests skip with
the install command, unless ``MAI_REQUIRE_POSTGRES=1`` (set by ``.ci/run``), which turns every
skipped PostgreSQL test into a failure. The long chaos variants are deselected unless the
marker expression asks for them (``pytest -m chaos``, ``make chaos``).
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from realparts import unavailable

if TYPE_CHECKING:
    from collections.abc import Iterator

    from mai_postgres.testing import PostgresCluster

_names = itertools.count()


def _unstarted() -> PostgresCluster:
    """A cluster handle (binaries located) that is not started: to attach to a running one."""
    from mai_postgres.testing import PostgresCluster

    return PostgresCluster()


def new_cluster() -> PostgresCluster:
    """Start a new throwaway cluster, or skip (fail in CI) when PostgreSQL is missing."""
    try:
        import psycopg  # noqa: F401
        from mai_postgres.testing import PostgresCluster, find_bindir
    except ImportError as exc:
        unavailable(
            "MAI_REQUIRE_POSTGRES",
            f"the PostgreSQL plugin or driver is missing ({exc}); install them with: "
            "pip install -e plugins/mai-postgres",
        )
        raise
    if find_bindir() is None:
        unavailable(
            "MAI_REQUIRE_POSTGRES",
            "PostgreSQL server binaries not found; install them with: apt-get install postgresql",
        )
    return PostgresCluster().start()


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` shared by the xdist worker processes of this session."""
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def pg_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresCluster]:
    """One throwaway PostgreSQL cluster for the whole session, shared by the xdist workers.

    Under ``pytest -n N`` the first worker that needs it starts it and records where it is; the
    others attach (each test still gets a database of its own); the last one to finish removes
    it. Without xdist it is simply this process's cluster.
    """
    if os.environ.get("PYTEST_XDIST_WORKER") is None:
        cluster = new_cluster()
        try:
            yield cluster
        finally:
            cluster.destroy()
        return
    shared = tmp_path_factory.getbasetemp().parent  # the same directory for every worker
    lock, info = shared / "pg-cluster.lock", shared / "pg-cluster.json"
    with _locked(lock):
        if info.exists():
            data = json.loads(info.read_text())
            cluster = _unstarted()
            cluster.base, cluster.port = Path(data["base"]), data["port"]
            data["users"] += 1
        else:
            cluster = new_cluster()
            data = {"base": str(cluster.base), "port": cluster.port, "users": 1}
        info.write_text(json.dumps(data))
    try:
        yield cluster
    finally:
        with _locked(lock):
            data = json.loads(info.read_text())
            data["users"] -= 1
            if data["users"] == 0:
                info.unlink()
                cluster.destroy()
            else:
                info.write_text(json.dumps(data))


@pytest.fixture
def own_cluster() -> Iterator[PostgresCluster]:
    """A cluster of this test's own (for tests that restart the server)."""
    cluster = new_cluster()
    try:
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture
def pg_url(pg_cluster: PostgresCluster) -> Iterator[str]:
    """A fresh, empty database on the session cluster; dropped afterwards."""
    name = f"mai_test_{os.getpid()}_{next(_names)}"
    url = pg_cluster.create_database(name)
    try:
        yield url
    finally:
        pg_cluster.drop_database(name)
