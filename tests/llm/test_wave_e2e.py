"""The wave's closing loop, end to end with real parts only.

A durable agent (``wave_app.forecast``) on the real model server (llama.cpp's ``llama-server``
with the scripted tiny model, behind a counting proxy) whose tool comes from a real MCP server
(``weather_mcp.py``, a stdio subprocess) and needs a person's approval:

1. ``mai run`` starts it in a subprocess; the model asks for the tool, the run waits for the
   approval; the process is SIGKILLed there;
2. ``mai runs resume ID --app wave_app`` takes the run over in another subprocess (turn 1 is
   replayed from the record, not asked again) and waits for the approval again;
3. ``mai ui`` (a third subprocess) serves the store; headless Chromium opens the run, sees the
   tool call waiting, clicks Approve and confirms;
4. the resumed run calls the MCP tool once and finishes with the model's answer;
5. a recognisable API key (and, on PostgreSQL, the store password of a role that must
   authenticate with it by scram-sha-256) is searched for in the store, every process's logs
   (stderr with debug logging on, stdout), the OpenTelemetry spans every process exported
   (message content captured), and every page and JSON response the UI served for the run:
   found nowhere, while the proxy saw the key on every model request.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx
import pytest
from counting_proxy import CountingProxy
from tinymodel import AFTER_TOOL

if TYPE_CHECKING:
    from collections.abc import Iterator

    from llmserver import LlamaServer

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "ui"))

from uihelpers import CHROMIUM, CHROMIUM_ARGS, _unavailable, wait_until  # noqa: E402

MAI = str(Path(sys.executable).with_name("mai"))
KEY = "sk-mai-wave-9d41e7-RECOGNISABLE"
PASSWORD = "Pl0ugh/xyzzy@wave"  # noqa: S105 - the recognisable store password (needs %-encoding)
RUN = "wave-1"
QUESTION = "What is the weather in Paris?"
WAIT = 120.0
WAIT_MS = 60_000


@pytest.fixture
def proxy(llama_server: LlamaServer) -> Iterator[CountingProxy]:
    """A counting proxy in front of the session's llama-server."""
    p = CountingProxy(llama_server.base_url)
    try:
        yield p
    finally:
        p.close()


@pytest.fixture
def password_store(tmp_path: Path) -> Iterator[tuple[str, Any]]:
    """A database on a throwaway PostgreSQL cluster, owned by a role that must give PASSWORD.

    Yields the store URL with the password in it (percent-encoded) and the cluster.
    """
    try:
        import psycopg  # noqa: F401
        from mai_postgres.testing import PostgresCluster, find_bindir
    except ImportError as exc:
        _pg_unavailable(
            f"the PostgreSQL plugin is missing ({exc}): pip install -e plugins/mai-postgres"
        )
    if find_bindir() is None:
        _pg_unavailable("PostgreSQL server binaries not found: apt-get install postgresql")
    cluster = PostgresCluster().start()
    try:
        role, dbname = "wave_owner", "wave"
        hba = cluster.data / "pg_hba.conf"
        hba.write_text(f"host all {role} 127.0.0.1/32 scram-sha-256\n{hba.read_text()}")
        cluster.sql(f"CREATE ROLE {role} LOGIN PASSWORD '{PASSWORD}'")
        cluster.sql(f'CREATE DATABASE "{dbname}" OWNER {role}')
        cluster.sql(f"ALTER SCHEMA public OWNER TO {role}", dbname=dbname)
        cluster.sql("SELECT pg_reload_conf()")
        url = f"postgresql://{role}:{quote(PASSWORD, safe='')}@127.0.0.1:{cluster.port}/{dbname}"
        yield url, cluster
    finally:
        cluster.destroy()


def _pg_unavailable(message: str) -> None:
    from realparts import unavailable

    unavailable("MAI_REQUIRE_POSTGRES", message)


def _env(proxy: CountingProxy, tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"MAI_STORE", "MAI_DEBUG"}}
    env.update(
        {
            "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH")])),
            "MAI_E2E_BASE_URL": proxy.base_url,
            "MAI_E2E_KEY": KEY,
            "WEATHER_LOG": str(tmp / "weather.log"),
            "MAI_E2E_SPANS": str(tmp / "spans.jsonl"),
            "MAI_E2E_LOGS": "1",
            "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "true",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def _query(url: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Rows of ``sql`` (``?`` placeholders) read straight from the store's database (none
    while the store is not created yet)."""
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        if not path.exists():
            return []
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            return conn.execute(sql, params).fetchall()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return []
            raise
        finally:
            conn.close()
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        try:
            return conn.execute(sql.replace("?", "%s"), params).fetchall()  # type: ignore[arg-type]
        except psycopg.errors.UndefinedTable:
            return []


def _store_contents(url: str, tmp: Path) -> dict[str, bytes]:
    """Everything the store holds: the SQLite files' bytes, or every row of every table."""
    if url.startswith("sqlite:///"):
        db = Path(url.removeprefix("sqlite:///"))
        return {f"store file {p.name}": p.read_bytes() for p in tmp.glob(f"{db.name}*")}
    tables = _query(
        url, "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
    )
    assert tables
    return {
        f"store table {name}": "\n".join(
            str(row[0])
            for row in _query(url, f'SELECT t::text FROM "{name}" t')  # noqa: S608
        ).encode()
        for (name,) in tables
    }


def _step_names(url: str) -> list[str]:
    rows = _query(url, "SELECT name FROM mai_steps WHERE run_id = ? ORDER BY step_id", RUN)
    return [str(name) for (name,) in rows]


def _owner(url: str) -> str:
    rows = _query(url, "SELECT owner, status FROM mai_runs WHERE run_id = ?", RUN)
    return f"{rows[0][0]} {rows[0][1]}" if rows else ""


def _alive(proc: subprocess.Popen[bytes], log: Path) -> bool:
    """True while ``proc`` runs; a process that exited fails the test with its log."""
    if proc.poll() is not None:
        pytest.fail(f"{proc.args} exited with {proc.returncode}: {log.read_text()[-3000:]}")
    return True


def _popen(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as err:
        return subprocess.Popen(
            args, env=env, stdout=subprocess.PIPE, stderr=err, start_new_session=True
        )


def _first_line(proc: subprocess.Popen[bytes], log: Path) -> str:
    lines: queue.Queue[bytes] = queue.Queue()
    assert proc.stdout is not None
    out = proc.stdout
    threading.Thread(target=lambda: lines.put(out.readline()), daemon=True).start()
    try:
        return lines.get(timeout=WAIT).decode().strip()
    except queue.Empty:
        pytest.fail(f"no line from {proc.args}: {log.read_text()[-3000:]}")


def _reap(proc: subprocess.Popen[bytes]) -> bytes:
    """Stop a process we started (SIGTERM, then SIGKILL) and its group (an MCP server child)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    out = proc.stdout.read() if proc.stdout is not None and not proc.stdout.closed else b""
    proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()
    return out


def _secrets(url: str) -> dict[str, bytes]:
    found = {"the API key": KEY.encode(), "the API key's core": b"9d41e7"}
    if not url.startswith("sqlite"):
        found["the store password"] = PASSWORD.encode()
        found["the store password, %-encoded"] = quote(PASSWORD, safe="").encode()
        found["the store password's core"] = b"xyzzy"
    return found


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_killed_agent_resumed_by_the_cli_approved_in_the_browser_leaks_no_secret(
    proxy: CountingProxy, tmp_path: Path, kind: str, request: pytest.FixtureRequest
) -> None:
    """Killed, resumed by `mai runs resume`, approved in `mai ui`: right answer, no secret leaks."""
    if not CHROMIUM.exists():
        _unavailable(f"{CHROMIUM} is not installed (apt-get install chromium)")
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        _unavailable("playwright is not installed (pip install 'pymai[ui-test]')")
    cluster = None
    if kind == "sqlite":
        url = f"sqlite:///{tmp_path}/wave.db"
    else:
        url, cluster = request.getfixturevalue("password_store")
    env = _env(proxy, tmp_path)
    logs = {name: tmp_path / f"{name}.log" for name in ("killed", "resumed", "ui")}
    outputs: dict[str, bytes] = {}

    # 1. the run starts, the model asks for the MCP tool, the run waits for approval: SIGKILL
    first = _popen(
        [MAI, "run", "wave_app:forecast", QUESTION, "--run-id", RUN, "--store", url],
        env,
        logs["killed"],
    )
    try:
        wait_until(
            lambda: _alive(first, logs["killed"]) and "approval_request" in _step_names(url),
            "the run to wait for the approval",
            timeout=WAIT,
        )
        killed_owner = _owner(url)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    finally:
        outputs["killed stdout"] = _reap(first)
    assert first.returncode == -signal.SIGKILL, logs["killed"].read_text()[-3000:]
    assert proxy.chat_requests == 1
    assert not (tmp_path / "weather.log").exists()  # the MCP tool never ran: not approved yet
    assert _owner(url).endswith("RUNNING")

    # 2. `mai runs resume` takes the run over (its owner died) and waits for the approval again
    resumed = _popen(
        [MAI, "runs", "resume", RUN, "--app", "wave_app", "--store", url], env, logs["resumed"]
    )
    ui = None
    try:
        wait_until(
            lambda: _alive(resumed, logs["resumed"]) and _owner(url) not in {killed_owner, ""},
            "`mai runs resume` to take the run over",
            timeout=WAIT,
        )
        # 3. `mai ui` on the same store; the browser approves the waiting tool call
        ui = _popen(
            [MAI, "ui", "--store", url, "--port", "0", "--app", "wave_app"], env, logs["ui"]
        )
        printed = _first_line(ui, logs["ui"])
        assert printed.startswith("http://127.0.0.1:"), printed
        base, token = printed.split("/?token=")
        pages: dict[str, bytes] = {}
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
            )
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                errors: list[str] = []
                page.on("pageerror", lambda exc: errors.append(str(exc)))
                page.goto(printed)
                page.goto(f"{base}/#/run/{RUN}")
                expect(page.locator("h1 .badge")).to_have_text("RUNNING", timeout=WAIT_MS)
                chat = page.locator(".chat")
                expect(chat.locator(".msg.tool-call")).to_contain_text('"city": "Paris"')
                pending = chat.locator(".msg.approval.pending")
                expect(pending).to_contain_text("get_weather")
                _shoot(page, tmp_path, "agent-approval")
                pages["run page, waiting"] = page.content().encode()
                pending.locator("button[data-action=approve]").click()
                expect(page.locator("#confirm-text")).to_contain_text("get_weather")
                page.click("#confirm-yes")
                expect(page.locator("#outcome")).to_contain_text("sent", timeout=WAIT_MS)
                expect(page.locator("h1 .badge")).to_have_text("SUCCEEDED", timeout=WAIT_MS)
                expect(page.locator("#sec-output")).to_contain_text(AFTER_TOOL)
                expect(chat.locator(".msg.approval.decided")).to_contain_text('"approve"')
                expect(chat.locator(".msg.tool")).to_contain_text("sunny")
                expect(chat.locator(".msg.assistant")).to_contain_text(AFTER_TOOL)
                expect(chat.locator(".usage")).to_contain_text("replayed from the record")
                _shoot(page, tmp_path, "agent-approved-e2e")
                for step in page.locator("details.step summary").all():
                    step.click()  # every step's recorded input and output, opened
                pages["run page, finished, steps open"] = page.content().encode()
                page.goto(f"{base}/#/runs")
                expect(page.locator(f'tr[data-run="{RUN}"] .badge')).to_have_text("SUCCEEDED")
                pages["runs list"] = page.content().encode()
                page.goto(f"{base}/#/plan/{RUN}")
                expect(page.locator("#plan-graph svg")).to_be_visible()
                pages["plan page"] = page.content().encode()
                assert not errors, errors
            finally:
                browser.close()
        with httpx.Client(base_url=base, headers={"authorization": f"Bearer {token}"}) as http:
            for path in (
                "/api/session",
                "/api/runs",
                f"/api/runs?q={RUN}",
                "/api/runs?status=SUCCEEDED",
                f"/api/runs/{RUN}",
                f"/api/runs/{RUN}/plan",
                "/",
                "/static/app.js",
            ):
                response = http.get(path)
                assert response.status_code == 200, (path, response.text)
                pages[f"GET {path}"] = response.content
        run_json = json.loads(pages[f"GET /api/runs/{RUN}"])

        # 4. the resumed process finishes with the model's answer
        out, _ = resumed.communicate(timeout=WAIT)
        outputs["resumed stdout"] = out
        assert resumed.returncode == 0, logs["resumed"].read_text()[-3000:]
        assert json.loads(out.decode().strip().splitlines()[-1]) == AFTER_TOOL
    finally:
        outputs["resumed stdout"] = outputs.get("resumed stdout", b"") + _reap(resumed)
        if ui is not None:
            outputs["ui stdout"] = _reap(ui)

    assert run_json["status"] == "SUCCEEDED"
    assert run_json["output"] == AFTER_TOOL
    names = [s["name"] for s in run_json["steps"]]
    assert names == [
        "forecast",
        "weather:tools/list",
        "model_request",
        "approval_request",
        "mai.wait_for",
        "get_weather",
        "model_request",
    ]
    assert (tmp_path / "weather.log").read_text() == "call Paris\n"  # the MCP tool ran once
    assert proxy.chat_requests == 2  # turn 1 was not asked again after the kill
    assert proxy.authorizations == [f"Bearer {KEY}"] * 2  # the key was really used

    # 5. the key and the password: nowhere
    spans = (tmp_path / "spans.jsonl").read_bytes()
    for name in (b'"chat tiny"', b'"execute_tool get_weather"', QUESTION.encode()):
        assert name in spans  # spans were exported by the processes, message content included
    records: dict[str, bytes] = {
        **_store_contents(url, tmp_path),
        **{f"{name} log (stderr)": path.read_bytes() for name, path in logs.items()},
        **outputs,
        "exported spans": spans,
        **{f"page: {name}": body for name, body in pages.items()},
    }
    if cluster is not None:
        records["the PostgreSQL server log"] = cluster.log().encode()
    for name in ("killed", "resumed"):  # the application's logs, with what pymai binds to them
        assert b'"run_id": "wave-1"' in records[f"{name} log (stderr)"]
    assert AFTER_TOOL.encode() in records["page: GET /api/runs/wave-1"]
    for what, secret in _secrets(url).items():
        for where, data in records.items():
            assert secret not in data, f"{what} was found in {where}"


def _shoot(page: Any, tmp: Path, name: str) -> None:
    """A screenshot kept with the test (and in $MAI_UI_SCREENSHOTS for the docs)."""
    import shutil

    path = tmp / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    target = os.environ.get("MAI_UI_SCREENSHOTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(target) / path.name)
