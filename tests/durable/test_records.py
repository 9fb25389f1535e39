"""Store records built by the fast builders are the very records their classes build."""

from __future__ import annotations

import dataclasses
import pickle

import pytest

from mai.core.durable import RunRecord, RunStatus, StepRecord
from mai.core.durable._store import new_run, new_step

STEP = ("run-1", "1.2", "inc", "call", '{"args":[0],"kwargs":{}}', "1", "json", 1.5, 2.5, 2, "w")


def test_new_step_equals_the_class_constructor() -> None:
    """new_step builds a StepRecord equal (and hashing equal) to StepRecord(...)."""
    built, made = new_step(*STEP), StepRecord(*STEP)
    assert type(built) is StepRecord
    assert built == made
    assert hash(built) == hash(made)
    assert repr(built) == repr(made)
    assert new_step(*STEP[:6]) == StepRecord(*STEP[:6])  # the defaults are the class's
    assert new_step(run_id="r", step_id="1", name="n", kind="now", input=None, output="0") == (
        StepRecord(run_id="r", step_id="1", name="n", kind="now", input=None, output="0")
    )


def test_new_run_equals_the_class_constructor() -> None:
    """new_run builds a RunRecord equal to RunRecord(...), defaults and keywords included."""
    kwargs = {"status": RunStatus.RUNNING, "attempts": 3, "owner": "h:1:x", "epoch": 4}
    built = new_run("r", "wf", None, "hash", "{}", "{}", **kwargs)
    made = RunRecord("r", "wf", None, "hash", "{}", "{}", **kwargs)  # type: ignore[arg-type]
    assert type(built) is RunRecord
    assert built == made
    assert [f.name for f in dataclasses.fields(built)] == [f.name for f in dataclasses.fields(made)]
    assert dataclasses.replace(built, attempts=1) == dataclasses.replace(made, attempts=1)


def test_built_records_are_frozen_and_round_trip() -> None:
    """A built record refuses assignment like any frozen record, and pickles as its class."""
    record = new_step(*STEP)
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.output = "2"  # type: ignore[misc]
    assert pickle.loads(pickle.dumps(record)) == record  # noqa: S301 - our own bytes


def test_builders_check_their_arguments() -> None:
    """A missing or unknown field is a TypeError, as with the class itself."""
    with pytest.raises(TypeError):
        new_step("r", "1")
    with pytest.raises(TypeError):
        new_run("r", "wf", None, "hash", "{}", "{}", colour="red")
