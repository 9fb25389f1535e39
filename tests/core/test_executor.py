"""The remote-executor API: the call's configuration, run_step, module references, errors."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

import mai
from mai._seam import Call, intercept
from mai.core.executor import (
    RemoteError,
    decode_error,
    encode_error,
    module_at,
    module_ref,
    resolve_module_ref,
    run_step,
    tree_paths,
)

sys.path.insert(0, str(Path(__file__).parent))
import executor_flows as flows


def test_module_ref_round_trips_with_bindings_and_configuration() -> None:
    """A with_ variant's reference carries its bound parameters and configuration."""
    variant = flows.add.with_(y=5, timeout=3, retries=2, backoff=mai.Backoff(initial=0.5))
    ref = module_ref(variant)
    assert ref is not None
    assert ref.startswith("executor_flows:add?")
    again = resolve_module_ref(ref)
    assert (again.bound["y"], again.config.timeout, again.config.retries) == (5, 3.0, 2)
    assert again.config.backoff == mai.Backoff(initial=0.5)
    assert module_ref(flows.pipeline) == "executor_flows:pipeline"


def test_module_ref_is_none_when_it_cannot_be_imported() -> None:
    """A module defined inside a function has no reference; a bad reference is a clear error."""

    @mai.module
    async def local(x: int) -> int:
        return x

    assert module_ref(local) is None
    with pytest.raises(mai.ConfigError, match=r"nowhere\.at\.all"):
        resolve_module_ref("nowhere.at.all:thing")


def test_tree_paths_find_every_module_again() -> None:
    """Every module of a workflow's tree is found again at its path."""
    paths = tree_paths(flows.pipeline)
    parallel = flows.pipeline.steps[1]
    bound = parallel.branches[0]
    assert module_at(flows.pipeline, paths[id(bound)]) is bound
    with pytest.raises(mai.ConfigError, match="no child at path"):
        module_at(flows.pipeline, [7])


async def test_run_step_runs_as_the_given_step_of_the_given_run() -> None:
    """Inside run_step the context reports the run, step, key and attempt it was given."""
    seen: dict[str, Any] = {}

    @mai.module
    async def inner(x: int) -> int:
        seen["inner"] = mai.Context.get().step_id
        return x

    @mai.module
    async def probe(x: int) -> int:
        ctx = mai.Context.get()
        seen.update(step=ctx.step_id, run=ctx.run_id, key=ctx.idempotency_key, n=ctx.retry_count)
        return await inner(x) + 1

    assert await run_step(probe, ["4"], run_id="r", step_id="1.2.3", retry_count=2) == 5
    assert seen == {"step": "1.2.3", "run": "r", "key": "r/1.2.3", "n": 2, "inner": "1.2.3.1"}


async def test_run_step_applies_the_timeout(autojump_clock: Any) -> None:
    """run_step's timeout bounds the attempt with pymai's DeadlineExceeded."""

    @mai.module
    async def sleepy(x: int) -> int:
        await mai.sleep(10)
        return x

    with pytest.raises(mai.DeadlineExceeded):
        await run_step(sleepy, [1], run_id="r", step_id="1", timeout=2)


async def test_call_exposes_configuration_and_execute_applies_retries(autojump_clock: Any) -> None:
    """Call.config and Call.leaf describe the call; Call.execute retries a remote body."""
    tries: list[int] = []
    seen: list[tuple[str, bool, int]] = []

    async def remote(call: Call, proceed: Any) -> Any:
        seen.append((call.name, call.leaf, call.config.retries))
        if not call.leaf:
            return await proceed()

        async def body(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            tries.append(mai.Context.get().retry_count)
            if len(tries) < 3:
                raise ConnectionError("not yet")
            x = args[0] if args else kwargs["x"]
            return str(x * 2)

        return await call.execute(body)

    flaky = flows.add.with_(retries=2, backoff=0.5)
    with intercept(remote):
        assert await mai.Sequential(flaky)(4) == 8
    assert tries == [0, 1, 2]
    assert seen == [("Sequential", False, 0), ("add", True, 2)]


def test_error_codec_keeps_type_message_and_attributes() -> None:
    """Errors travel as data and come back with their type, message and attributes."""
    err = mai.DeadlineExceeded("too slow", module_name="m", step_id="1.2")
    back = decode_error(encode_error(err))
    assert type(back) is mai.DeadlineExceeded
    assert (str(back), back.module_name, back.step_id) == ("too slow", "m", "1.2")
    unknown = decode_error({"type": "no.such:Error", "message": "gone"})
    assert isinstance(unknown, RemoteError)
    assert str(unknown) == "Error: gone"
    group = decode_error(encode_error(ExceptionGroup("two", [ValueError("a"), KeyError("b")])))
    assert isinstance(group, ExceptionGroup)
    assert [type(e) for e in group.exceptions] == [ValueError, KeyError]


def test_runtime_stays_the_embedded_one_for_sqlite() -> None:
    """mai.Runtime on a sqlite URL is the embedded runtime (no executor lookup)."""
    assert type(mai.Runtime("sqlite:///x.db")) is mai.Runtime
