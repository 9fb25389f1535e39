"""Durable agents against the real model server (llama.cpp's llama-server), requests counted.

A counting proxy on 127.0.0.1 sits in front of the server; each agent runs in its own process
(``durable_agent_worker.py``), which the tests SIGKILL while a tool call runs, after the first
model turn was recorded. llama-server is used because it answers the tool result in text, so
the agent's loop ends (llama-cpp-python's handler ends it with empty text).
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import trio
from counting_proxy import CountingProxy
from tinymodel import AFTER_TOOL, MODEL_ALIAS, TOOL_ARGUMENTS, TOOL_NAME

import mai
from mai.agents import ModelSettings, OpenAIModel

if TYPE_CHECKING:
    from collections.abc import Iterator

    from llmserver import LlamaServer

WORKER = Path(__file__).with_name("durable_agent_worker.py")
KEY = "sk-mai-durable-7f3a9c-RECOGNISABLE"
MAI = [sys.executable, "-m", "mai"]
_names = itertools.count()


@pytest.fixture
def proxy(llama_server: LlamaServer) -> Iterator[CountingProxy]:
    """A counting proxy in front of the session's llama-server."""
    p = CountingProxy(llama_server.base_url)
    try:
        yield p
    finally:
        p.close()


@pytest.fixture
def pg_store() -> Iterator[str]:
    """A fresh database on a throwaway PostgreSQL cluster (skips, or fails in CI, without one)."""
    require = os.environ.get("MAI_REQUIRE_POSTGRES") == "1"
    try:
        import psycopg  # noqa: F401
        from mai_postgres.testing import PostgresCluster, find_bindir
    except ImportError as exc:
        if require:
            pytest.fail(f"the PostgreSQL plugin is missing ({exc}) (MAI_REQUIRE_POSTGRES=1)")
        pytest.skip(f"the PostgreSQL plugin is missing ({exc})")
    if find_bindir() is None:
        if require:
            pytest.fail("PostgreSQL server binaries not found (MAI_REQUIRE_POSTGRES=1)")
        pytest.skip("PostgreSQL server binaries not found: apt-get install postgresql")
    cluster = PostgresCluster().start()
    try:
        yield cluster.create_database(f"mai_agents_{os.getpid()}_{next(_names)}")
    finally:
        cluster.destroy()


def _env(proxy: CountingProxy, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "MAI_TEST_BASE_URL": proxy.base_url,
        "MAI_TEST_KEY": KEY,
        **extra,
    }


def _worker(
    mode: str, url: str, run_id: str, env: dict[str, str], log: Path
) -> subprocess.Popen[bytes]:
    with log.open("ab") as err:
        return subprocess.Popen(
            [sys.executable, str(WORKER), mode, url, run_id],
            env=env,
            stdout=subprocess.PIPE,
            stderr=err,
        )


def _finish(process: subprocess.Popen[bytes], log: Path) -> dict[str, Any]:
    out, _ = process.communicate(timeout=120)
    assert process.returncode == 0, log.read_text()[-3000:]
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return result


def _wait_for(path: Path, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 120
    while not path.exists():
        assert process.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


def _kill_in_tool(
    proxy: CountingProxy, url: str, run_id: str, tmp: Path, **extra: str
) -> tuple[Path, list[bytes]]:
    """Start the agent, SIGKILL it inside its tool call; return its log and the bodies sent."""
    log, marker = tmp / f"{run_id}-killed.log", tmp / f"{run_id}.marker"
    env = _env(proxy, MAI_TEST_HANG="1", MAI_TEST_MARKER=str(marker), **extra)
    process = _worker("run", url, run_id, env, log)
    try:
        _wait_for(marker, process, log)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.communicate()
    assert marker.read_text() == TOOL_ARGUMENTS["city"]
    return log, list(proxy.bodies)


def _stores(tmp: Path, kind: str, pg: str | None) -> tuple[str, str]:
    if kind == "sqlite":
        return f"sqlite:///{tmp}/whole.db", f"sqlite:///{tmp}/killed.db"
    assert pg is not None
    return pg, pg


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_a_killed_durable_agent_resumes_without_asking_again(
    proxy: CountingProxy, tmp_path: Path, kind: str, request: pytest.FixtureRequest
) -> None:
    """SIGKILL after turn 1; the new process asks only the unrecorded turn; same output."""
    pg = request.getfixturevalue("pg_store") if kind == "postgres" else None
    whole_url, killed_url = _stores(tmp_path, kind, pg)
    whole = _finish(
        _worker("run", whole_url, "whole", _env(proxy), tmp_path / "whole.log"),
        tmp_path / "whole.log",
    )
    assert whole == {"output": AFTER_TOOL}
    uninterrupted = proxy.chat_requests
    assert uninterrupted == 2  # the tool call, then the text answer
    proxy.bodies.clear()
    proxy.chat_requests = 0

    _, before = _kill_in_tool(proxy, killed_url, "killed", tmp_path)
    assert len(before) == 1  # turn 1 was asked (and recorded) before the kill
    log = tmp_path / "resume.log"
    resumed = _finish(_worker("resume", killed_url, "killed", _env(proxy), log), log)
    assert resumed == whole
    after = proxy.bodies[len(before) :]
    assert len(after) == uninterrupted - len(before)  # zero repeated requests
    assert not set(after) & set(before)


def test_changed_instructions_are_refused_before_any_request(
    proxy: CountingProxy, tmp_path: Path
) -> None:
    """Other instructions after the crash: the resume is refused naming the step, nothing asked."""
    url = f"sqlite:///{tmp_path}/runs.db"
    _kill_in_tool(proxy, url, "changed", tmp_path)
    asked = proxy.chat_requests
    log = tmp_path / "refused.log"
    env = _env(proxy, MAI_TEST_INSTRUCTIONS="You write poems instead.")
    refused = _finish(_worker("resume", url, "changed", env, log), log)
    assert proxy.chat_requests == asked
    assert refused["step_id"] == "1"
    assert "instructions" in refused["refused"]


def _cli(*args: str) -> str:
    done = subprocess.run([*MAI, *args], capture_output=True, check=False, timeout=120)
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.decode()


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_an_approval_sent_with_mai_runs_send_resumes_the_waiting_run(
    proxy: CountingProxy, tmp_path: Path, kind: str, request: pytest.FixtureRequest
) -> None:
    """The run waits on approval:<call id>; `mai runs send` from another process lets it go on."""
    pg = request.getfixturevalue("pg_store") if kind == "postgres" else None
    url = _stores(tmp_path, kind, pg)[1]
    log = tmp_path / "approval.log"
    process = _worker("run", url, "approve", _env(proxy, MAI_TEST_APPROVAL="1"), log)
    try:
        deadline = time.monotonic() + 120
        topic = None
        while topic is None:
            assert process.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "the run never asked for approval"
            listed = subprocess.run(
                [*MAI, "runs", "steps", "approve", "--store", url, "--json"],
                capture_output=True,
                check=False,
                timeout=120,
            )
            if listed.returncode == 0:  # else the run is not created yet
                steps = json.loads(listed.stdout)
                topic = next((s["output"] for s in steps if s["name"] == "approval_request"), None)
            time.sleep(0.05)
        shown = _cli("runs", "show", "approve", "--store", url)
        assert "waiting for approval" in shown
        assert TOOL_NAME in shown
        assert proxy.chat_requests == 1
        _cli("runs", "send", "approve", topic, '"approve"', "--store", url)
        assert _finish(process, log) == {"output": AFTER_TOOL}
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()
    assert proxy.chat_requests == 2


def test_the_api_key_is_never_recorded(proxy: CountingProxy, tmp_path: Path) -> None:
    """The key is sent to the server, and found in no record: store, CLI, trace, logs, spans."""
    db = tmp_path / "runs.db"
    url = f"sqlite:///{db}"
    killed_log, _ = _kill_in_tool(proxy, url, "keyed", tmp_path)
    spans = tmp_path / "spans.json"
    log = tmp_path / "resume.log"
    env = _env(
        proxy, MAI_TEST_SPANS=str(spans), OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT="true"
    )
    assert _finish(_worker("resume", url, "keyed", env, log), log) == {"output": AFTER_TOOL}
    assert proxy.chat_requests == 2
    secret = KEY.encode()
    records: dict[str, bytes] = {p.name: p.read_bytes() for p in tmp_path.glob("runs.db*")}
    records["resume.log"] = log.read_bytes()
    records["killed.log"] = killed_log.read_bytes()
    records["spans.json"] = spans.read_bytes()
    for args in (
        ["runs", "show", "keyed"],
        ["runs", "steps", "keyed", "--json"],
        ["trace", "keyed"],
    ):
        records[" ".join(args)] = _cli(*args, "--store", url).encode()
    assert b"chat tiny" in records["spans.json"]  # the spans were exported, content included
    assert b"model_request" in records["runs steps keyed --json"]
    assert len(records["resume.log"]) > 0
    for name, data in records.items():
        assert secret not in data, f"the API key was found in {name}"


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def test_a_deadline_during_a_tool_call_of_a_durable_agent(
    proxy: CountingProxy, tmp_path: Path, kind: str, request: pytest.FixtureRequest
) -> None:
    """The run's deadline fires while a tool runs: the run fails with it, turn 1 stays recorded."""
    started = trio.Event()

    @mai.module(name=TOOL_NAME)
    async def get_weather(city: str) -> str:
        """Current weather of a city."""
        started.set()
        await trio.sleep_forever()
        return "never"

    pg = request.getfixturevalue("pg_store") if kind == "postgres" else None
    url = _stores(tmp_path, kind, pg)[1]
    settings = ModelSettings(temperature=0, seed=42, max_tokens=64, tool_choice="auto")
    async with OpenAIModel(MODEL_ALIAS, base_url=proxy.base_url, api_key=KEY) as model:
        agent = mai.Agent(model, tools=[get_weather], model_settings=settings, name="slow_agent")
        async with mai.Runtime(url, workflows=[agent]) as rt:
            # 5 s: turn 1 (well under a second here) is recorded, then the tool blocks
            handle = await rt.start(
                agent, "What is the weather in Paris?", run_id="late", deadline=5
            )
            with trio.fail_after(120), pytest.raises(mai.MaiError) as info:
                await handle.result()
            status = (await rt.get("late")).status
            steps = [(s.step_id, s.name) for s in (await rt.steps("late"))]
    assert started.is_set()
    assert "deadline" in str(info.value).lower()
    assert status == mai.RunStatus.FAILED
    assert steps == [("1.1", "model_request")]  # turn 1 recorded; the tool never finished
    assert proxy.chat_requests == 1
