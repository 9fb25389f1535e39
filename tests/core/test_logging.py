"""structlog: log lines inside modules carry module, step_id (and run_id) without user code."""

from __future__ import annotations

import pytest
import structlog
import trio
from structlog.contextvars import bind_contextvars, get_contextvars, merge_contextvars
from structlog.testing import capture_logs

import mai
from mai.core import logging as mai_logging

log = structlog.get_logger("user")


@mai.module
async def talk(x: int) -> int:
    """Log from an async body."""
    log.info("async says", x=x)
    return x


@mai.module
def talk_in_thread(x: int) -> int:
    """Log from a sync body in a worker thread."""
    log.info("thread says", x=x)
    return x


@mai.module
async def outside_named(x: int) -> int:
    """Log with an explicit module key (it must win)."""
    log.info("explicit", module="mine")
    return x


PIPELINE = mai.Sequential(talk, mai.Parallel(talk_in_thread, talk.with_(name="branch")))


def _fields(logs: list[dict]) -> list[tuple]:
    return sorted((e["event"], e.get("module"), e.get("step_id"), e.get("run_id")) for e in logs)


EXPECTED = [
    ("async says", "branch", "1.2.2", None),
    ("async says", "talk", "1.1", None),
    ("thread says", "talk_in_thread", "1.2.1", None),
]


async def test_the_processor_adds_module_and_step():
    """mai.log_context adds module and step_id to lines of async, thread and branch bodies."""
    with capture_logs(processors=[mai.log_context]) as logs:
        await PIPELINE(1)
        log.info("after the run")
    assert _fields(logs) == [("after the run", None, None, None), *EXPECTED]


async def test_automatic_binding_through_structlog_contextvars():
    """With merge_contextvars configured, every call binds module and step_id in contextvars."""
    with capture_logs(processors=[merge_contextvars]) as logs:
        await PIPELINE(1)
    assert _fields(logs) == EXPECTED


async def test_binding_is_restored_exactly():
    """Keys bound before the run come back unchanged after it, and none leak."""
    bind_contextvars(module="app", request="r1")
    try:
        with capture_logs(processors=[merge_contextvars]) as logs:
            await PIPELINE(1)
            log.info("after")
        assert get_contextvars() == {"module": "app", "request": "r1"}
        assert logs[-1]["module"] == "app"
        assert {e["request"] for e in logs} == {"r1"}
    finally:
        structlog.contextvars.clear_contextvars()


async def test_keys_passed_by_the_log_call_win():
    """An explicit module= on the log call is kept, both ways."""
    with capture_logs(processors=[mai.log_context]) as logs:
        await outside_named(1)
    assert logs[0]["module"] == "mine"
    assert logs[0]["step_id"] == "1"
    with capture_logs(processors=[merge_contextvars]) as logs:
        await outside_named(1)
    assert logs[0]["module"] == "mine"


class _RunId:
    """Give the run an id, the way the durable runtime does."""

    async def __call__(self, call, proceed):
        call.frame.run.run_id = "run-7"
        return await proceed()


async def test_run_id_is_added_when_the_run_has_one():
    """A run with an id adds run_id to the lines of its calls, both ways."""
    from mai._seam import intercept

    with intercept(_RunId()), capture_logs(processors=[mai.log_context]) as logs:
        await PIPELINE(1)
    assert {e["run_id"] for e in logs} == {"run-7"}
    with intercept(_RunId()), capture_logs(processors=[merge_contextvars]) as logs:
        await mai.Sequential(talk)(1)
    assert logs[0]["run_id"] == "run-7"


def test_binding_is_installed_only_when_structlog_merges_contextvars():
    """The run hook installs the binder only when merge_contextvars is a configured processor."""
    with capture_logs():
        assert mai_logging._hook() is None
    with capture_logs(processors=[merge_contextvars]):
        assert mai_logging._hook() is not None


def test_structlogs_builtin_defaults_do_not_turn_binding_on():
    """structlog imported but never configured (its defaults merge contextvars) binds nothing."""
    structlog.reset_defaults()
    assert merge_contextvars in structlog.get_config()["processors"]
    assert not structlog.is_configured()
    assert mai_logging._hook() is None
    structlog.configure(processors=[merge_contextvars])
    assert mai_logging._hook() is not None


async def test_auto_bind_can_be_turned_off():
    """auto_bind(False) stops the automatic binding; the processor keeps working."""
    mai_logging.auto_bind(False)
    try:
        with capture_logs(processors=[merge_contextvars]) as logs:
            await talk(1)
        assert "module" not in logs[0]
        with capture_logs(processors=[mai.log_context]) as logs:
            await talk(1)
        assert logs[0]["module"] == "talk"
    finally:
        mai_logging.auto_bind(True)


async def test_the_library_logs_retries_timeouts_and_failures(autojump_clock):
    """Retries are warnings, exhausted retries errors and fired deadlines info, with the step."""

    @mai.module(retries=1, backoff=1)
    async def flaky(x: int) -> int:
        raise ConnectionError("down")

    @mai.module(timeout=1)
    async def slow(x: int) -> int:
        await trio.sleep(2)
        return x

    with capture_logs() as logs:
        with pytest.raises(ConnectionError):
            await flaky(1)
        with pytest.raises(mai.DeadlineExceeded):
            await slow(1)
    assert [(e["event"], e["log_level"], e["module"], e["step_id"]) for e in logs] == [
        ("mai.retry", "warning", "flaky", "1"),
        ("mai.retries_exhausted", "error", "flaky", "1"),
        ("mai.deadline_exceeded", "info", "slow", "1"),
    ]
    assert logs[0]["attempt"] == 1
    assert logs[0]["delay"] == 1
    assert logs[1]["attempts"] == 2
