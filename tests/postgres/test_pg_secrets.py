"""A PostgreSQL store URL's password on a real server: never printed, logged, raised or traced.

The session cluster trusts local connections, so a password in the URL is accepted and ignored
there: every command and the runtime's threads, logs, traces and OpenTelemetry spans are searched
for it. For real password authentication a role with a password (with characters that need
percent-encoding) gets a ``scram-sha-256`` rule in ``pg_hba.conf``.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

import psycopg
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from structlog.testing import capture_logs

import mai
from mai.core.tracing import instrument

if TYPE_CHECKING:
    from collections.abc import Iterator

    from mai_postgres.testing import PostgresCluster

SECRET = "xyzzy-Pl0ugh"  # noqa: S105 - the recognisable password the tests hunt for
#: A password libpq would need percent-encoded in a URL (and could quote back when it is bad).
HARD = "p@ss/w%rd:xyzzy 42"
_roles = itertools.count()
MAI = Path(sys.executable).with_name("mai")

APP = textwrap.dedent(
    """
    import mai

    @mai.module
    async def double(n: int) -> int:
        return 2 * n
    """
)


@mai.module
async def double(n: int) -> int:
    """One step."""
    return 2 * n


def with_password(url: str, password: str = SECRET) -> str:
    """``url`` with ``password`` (percent-encoded) for its user."""
    scheme, _, rest = url.partition("://")
    user, _, host = rest.partition("@")
    return f"{scheme}://{user}:{quote(password, safe='')}@{host}"


def assert_no_secret(text: str, *secrets: str) -> None:
    """No form of the passwords appears in ``text``."""
    for secret in secrets or (SECRET,):
        for form in {secret, quote(secret, safe=""), "xyzzy"}:
            assert form not in text, text


def run_mai(cwd: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """Run the `mai` console script; return its exit code, stdout and stderr."""
    full = {k: v for k, v in os.environ.items() if k not in {"MAI_STORE", "MAI_DEBUG"}}
    full["PYTHONPATH"] = str(cwd)
    full.update(env or {})
    done = subprocess.run(
        [str(MAI), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env=full,
        check=False,
    )
    return done.returncode, done.stdout, done.stderr


def test_every_command_on_a_real_store_hides_the_password(pg_url: str, tmp_path: Path) -> None:
    """run, runs list/show/steps/send/cancel/resume and trace work and never show it."""
    (tmp_path / "secretapp.py").write_text(APP)
    url = with_password(pg_url)
    shown = mai.redact_url(url)
    code, out, err = run_mai(
        tmp_path, "run", "secretapp:double", "21", "--run-id", "r1", "--store", url
    )
    assert code == 0, err
    assert json.loads(out) == 42
    assert f"run r1: double on {shown}" in err
    assert ":***@127.0.0.1" in shown
    assert_no_secret(out + err)
    commands = [
        ["runs", "list", "--json"],
        ["runs", "show", "r1"],
        ["runs", "steps", "r1"],
        ["trace", "r1"],
        ["runs", "resume", "r1", "--app", "secretapp"],
        ["runs", "send", "r1", "go", "1"],
        ["runs", "cancel", "r1"],
        ["runs", "show", "nope"],
    ]
    for command in commands:
        for env, extra in (({}, ["--store", url]), ({"MAI_STORE": url}, [])):
            code, out, err = run_mai(tmp_path, *command, *extra, env=env)
            assert_no_secret(out + err)
            if command[-1] == "nope":
                continue
            if command[:2] == ["runs", "send"]:  # r1 has finished: nothing is sent, exit 1
                assert code == 1, (command, err)
                assert "not waiting" in err
            else:
                assert code == 0, (command, err)
    code, out, err = run_mai(tmp_path, "runs", "list", "--json", env={"MAI_STORE": url})
    assert [r["run_id"] for r in json.loads(out)] == ["r1"]


def test_a_worker_on_a_real_store_hides_the_password(pg_url: str, tmp_path: Path) -> None:
    """`mai worker` runs a queued run, logs, drains on SIGTERM: no output carries it."""
    (tmp_path / "secretapp.py").write_text(APP)
    url = with_password(pg_url)

    submit = (
        "import mai, secretapp, trio\n"
        "async def main():\n"
        "    async with mai.Runtime() as rt:\n"
        "        await rt.submit(secretapp.double, 4, run_id='w1')\n"
        "trio.run(main)\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in {"MAI_STORE", "MAI_DEBUG"}}
    env.update({"PYTHONPATH": str(tmp_path), "PYTHONUNBUFFERED": "1", "MAI_STORE": url})
    subprocess.run([sys.executable, "-c", submit], env=env, check=True, timeout=60)
    proc = subprocess.Popen(
        [str(MAI), "worker", "--app", "secretapp", "--name", "w"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        give_up = time.monotonic() + 60
        while _status(pg_url, "w1") not in {"SUCCEEDED", "FAILED", "DEAD"}:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < give_up, "the worker never finished run w1"
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    assert _status(pg_url, "w1") == "SUCCEEDED", out + err
    assert proc.returncode == 0, err
    assert "worker_started" in out + err  # the logs are among what was searched
    assert_no_secret(out + err)


def _status(url: str, run_id: str) -> str | None:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT status FROM mai_runs WHERE run_id = %s", (run_id,)).fetchone()
    return None if row is None else str(row[0])


async def test_threads_logs_traces_and_spans_hide_the_password(pg_url: str) -> None:
    """While a run executes: thread names, log lines, the trace and OTel spans are clean."""
    url = with_password(pg_url)
    provider = TracerProvider()
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    names: list[str] = []

    @mai.module
    async def look(n: int) -> int:
        names.extend(t.name for t in threading.enumerate())
        return n + 1

    try:
        with instrument(provider), capture_logs() as logs:
            async with mai.Runtime(url) as rt:
                assert (
                    await (
                        await rt.start((look >> double).with_(name="look-double"), 1, run_id="t1")
                    ).result()
                    == 4
                )
                assert_no_secret(repr(rt.store) + rt.store.url)
                trace = (await rt.trace("t1")).to_json()
    finally:
        provider.shutdown()
    assert any(n.startswith("mai-store postgresql://postgres:***@") for n in names), names
    spans = exporter.get_finished_spans()
    assert spans
    attributes = [dict(s.attributes or {}) for s in spans]
    assert_no_secret(
        json.dumps(names)
        + json.dumps(attributes, default=str)
        + trace
        + json.dumps(logs, default=str)
    )


def test_store_errors_on_a_real_server_hide_the_password(
    pg_cluster: PostgresCluster, pg_url: str
) -> None:
    """Unreachable server, missing database, newer schema, bad option: no message has it."""
    from mai_postgres import PostgresStore
    from mai_postgres.testing import free_port

    def opened(url: str) -> mai.StoreError:
        s = PostgresStore(url)
        assert_no_secret(repr(s) + s.url)
        with pytest.raises(mai.StoreError) as info:
            s.open()
        _assert_clean(info.value)
        return info.value

    dead = f"postgresql://mai:{SECRET}@127.0.0.1:{free_port()}/mai?reconnect_timeout=0.1"
    assert isinstance(opened(dead), mai.StoreUnavailableError)
    missing = with_password(f"postgresql://postgres@127.0.0.1:{pg_cluster.port}/no_such_db")
    assert "no_such_db" in str(opened(missing))
    s = PostgresStore(pg_url)
    s.open()
    s.close()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("UPDATE mai_meta SET value = '99' WHERE key = 'schema_version'")
    assert isinstance(opened(with_password(pg_url)), mai.StoreSchemaError)
    assert "sslmode" in str(opened(with_password(pg_url) + "?sslmode=bogus"))
    with pytest.raises(ValueError, match="schema") as info:
        PostgresStore(with_password(pg_url) + "?schema=Not-An-Identifier")
    assert_no_secret(str(info.value))


def test_driver_errors_during_queries_hide_the_password(
    pg_cluster: PostgresCluster, pg_url: str
) -> None:
    """A connection killed mid-transaction and a read-only database: clean translated errors."""
    from mai_postgres import PostgresStore

    from mai.core.durable import RunRecord

    def record(run_id: str) -> RunRecord:
        return RunRecord(
            run_id=run_id, workflow="wf", ref=None, plan_hash="h", plan="{}", input="{}"
        )

    dbname = pg_url.rsplit("/", 1)[1]
    s = PostgresStore(with_password(pg_url) + "?reconnect_timeout=1")
    s.open()

    def write_after_the_server_dropped_us() -> None:
        with s.transaction():
            with psycopg.connect(pg_cluster.url(), autocommit=True) as admin:
                admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = %s AND pid <> pg_backend_pid()",
                    (dbname,),
                )
            s.create_run(record("a"))

    try:
        with pytest.raises(mai.StoreUnavailableError) as lost:
            write_after_the_server_dropped_us()
        _assert_clean(lost.value)
        assert "connection lost" in str(lost.value)
    finally:
        s.close()
    pg_cluster.sql(f'ALTER DATABASE "{dbname}" SET default_transaction_read_only = on')
    s = PostgresStore(with_password(pg_url))
    s.open()

    def write() -> None:
        with s.transaction():
            s.create_run(record("b"))

    try:
        with pytest.raises(mai.StoreReadOnlyError) as refused:
            write()
        _assert_clean(refused.value)
        assert "refuses writes" in str(refused.value)
    finally:
        s.close()
        pg_cluster.sql(f'ALTER DATABASE "{dbname}" RESET default_transaction_read_only')


def _assert_clean(exc: BaseException) -> None:
    """The error, its attributes and every chained cause are free of the password."""
    seen: BaseException | None = exc
    while seen is not None:
        assert_no_secret(f"{seen!s} {seen!r} {vars(seen)!r}")
        seen = seen.__cause__ or seen.__context__


@pytest.fixture
def password_role(pg_cluster: PostgresCluster, pg_url: str) -> Iterator[tuple[str, str]]:
    """A role with the password ``HARD`` that must authenticate by scram-sha-256 over TCP.

    Yields the URL of ``pg_url``'s database for that role without a password, and the role.
    """
    role = f"mai_pw_{os.getpid()}_{next(_roles)}"
    hba = pg_cluster.data / "pg_hba.conf"
    before = hba.read_text()
    hba.write_text(f"host all {role} 127.0.0.1/32 scram-sha-256\n{before}")
    dbname = pg_url.rsplit("/", 1)[1]
    literal = HARD.replace("'", "''")
    pg_cluster.sql(f"CREATE ROLE {role} LOGIN PASSWORD '{literal}'")
    pg_cluster.sql(f'ALTER DATABASE "{dbname}" OWNER TO {role}')
    pg_cluster.sql(f"ALTER SCHEMA public OWNER TO {role}", dbname=dbname)
    pg_cluster.sql("SELECT pg_reload_conf()")
    try:
        yield f"postgresql://{role}@127.0.0.1:{pg_cluster.port}/{dbname}", role
    finally:
        hba.write_text(before)
        pg_cluster.sql("SELECT pg_reload_conf()")


async def _runs_a_step(url: str) -> int:
    async with mai.Runtime(url) as rt:
        return int(await (await rt.start(double, 3)).result())


async def test_a_password_authenticates_from_the_url_the_query_or_the_environment(
    password_role: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real password works percent-encoded, as ?password= and from PGPASSWORD."""
    bare, _ = password_role
    assert await _runs_a_step(with_password(bare, HARD)) == 6
    assert await _runs_a_step(f"{bare}?password={quote(HARD, safe='')}") == 6
    monkeypatch.setenv("PGPASSWORD", HARD)
    assert await _runs_a_step(bare) == 6


def test_a_wrong_password_is_refused_without_showing_either(
    password_role: tuple[str, str], tmp_path: Path
) -> None:
    """A refused login names the store and the user, never the password tried (nor the real one)."""
    bare, role = password_role
    wrong = with_password(bare, SECRET)
    (tmp_path / "secretapp.py").write_text(APP)
    code, out, err = run_mai(tmp_path, "runs", "list", "--store", wrong)
    assert code == 1
    assert "password authentication failed" in err
    assert role in err
    assert_no_secret(out + err, SECRET, HARD)
    code, out, err = run_mai(tmp_path, "runs", "list", env={"MAI_STORE": wrong, "MAI_DEBUG": "1"})
    assert "Traceback" in err
    assert_no_secret(out + err, SECRET, HARD)
