"""``@record`` classes behave as the frozen dataclasses they replace; the record twins match."""

from __future__ import annotations

import copy
import dataclasses
import inspect
import pickle
from dataclasses import dataclass, field

import pytest
from hypothesis import given
from hypothesis import strategies as st

import mai
from mai.core._records import record
from mai.core.durable import _store
from mai.core.durable._store import RunRecord, RunStatus, StepRecord, new_run, new_step


@record
class Point:
    """A record under test."""

    x: int
    y: str | None = None
    note: str = field(default="", compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class PointDC:
    """The same fields as a frozen dataclass, the reference."""

    x: int
    y: str | None = None
    note: str = field(default="", compare=False, repr=False)


@record
class One:
    """A record with one field."""

    value: int


@record
class Shown:
    """A record that writes its own repr."""

    value: int

    def __repr__(self) -> str:
        """Its own."""
        return f"<shown {self.value}>"


@given(st.integers(), st.one_of(st.none(), st.text(max_size=5)), st.text(max_size=3))
def test_a_record_has_the_repr_equality_and_hash_of_a_frozen_dataclass(
    x: int, y: str | None, note: str
) -> None:
    """repr, ==, hash, replace, asdict and astuple of a record equal a frozen dataclass's."""
    p, ref = Point(x, y, note), PointDC(x, y, note)
    assert repr(p) == repr(ref).replace("PointDC", "Point")
    assert hash(p) == hash(ref)
    assert p == Point(x, y, note + "other")  # a compare=False field is not compared
    assert p != Point(x + 1, y, note)
    assert p != ref  # another class is never equal (NotImplemented both ways)
    assert dataclasses.asdict(p) == dataclasses.asdict(ref)
    assert dataclasses.astuple(p) == dataclasses.astuple(ref)
    assert dataclasses.replace(p, x=x + 1) == Point(x + 1, y, note)
    assert Point.__match_args__ == PointDC.__match_args__


def test_a_record_is_a_frozen_slotted_dataclass_that_pickles_and_copies() -> None:
    """Assigning or deleting a field raises FrozenInstanceError; no __dict__; pickle/copy."""
    p = Point(1, "a", "n")
    assert dataclasses.is_dataclass(p)
    assert [f.name for f in dataclasses.fields(p)] == ["x", "y", "note"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.x = 2  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        del p.y  # type: ignore[misc]
    assert not hasattr(p, "__dict__")
    assert pickle.loads(pickle.dumps(p)) == p  # noqa: S301 - our own bytes
    assert copy.deepcopy(p) == p
    match p:
        case Point(1, "a"):
            matched = True
        case _:
            matched = False
    assert matched


def test_one_field_records_and_own_methods() -> None:
    """A one-field record hashes as a dataclass does; a repr the class writes is kept."""
    assert hash(One(3)) == hash((3,))
    assert One(3) == One(3)
    assert One(3) != One(4)
    assert {One(3), One(3)} == {One(3)}
    assert repr(Shown(2)) == "<shown 2>"
    assert repr(One(3)) == "One(value=3)"


def test_public_records_keep_their_dataclass_behaviour() -> None:
    """The public records built with @record compare, hash and print by their fields."""
    backoff = mai.Backoff()
    assert backoff == dataclasses.replace(backoff)
    assert backoff != dataclasses.replace(backoff, initial=backoff.initial + 1)
    assert hash(backoff) == hash(dataclasses.replace(backoff))
    assert repr(backoff).startswith("Backoff(initial=")
    run = RunRecord("r", "w", None, "h", "p", "{}")
    assert repr(run).startswith("RunRecord(run_id='r', workflow='w', ref=None,")
    assert run == dataclasses.replace(run)
    assert run != dataclasses.replace(run, epoch=1)
    assert hash(run) == hash(dataclasses.replace(run))


@pytest.mark.parametrize(
    ("cls", "twin", "build"),
    [(RunRecord, _store._RunBuilder, new_run), (StepRecord, _store._StepBuilder, new_step)],
)
def test_each_record_twin_has_its_records_fields_order_and_defaults(
    cls: type, twin: type, build: object
) -> None:
    """The written-out builder twins take the record's parameters, in order, with its defaults."""
    fields = dataclasses.fields(cls)
    params = list(inspect.signature(twin.__init__).parameters.values())[1:]
    assert [p.name for p in params] == [f.name for f in fields]
    for p, f in zip(params, fields, strict=True):
        expected = inspect.Parameter.empty if f.default is dataclasses.MISSING else f.default
        assert p.default == expected, f.name
    assert set(twin.__slots__) == set(cls.__slots__)  # type: ignore[attr-defined]
    assert inspect.signature(twin.__init__).parameters.keys() - {"self"} == set(
        inspect.signature(cls).parameters
    )
    args = [f"v{i}" for i, f in enumerate(fields) if f.default is dataclasses.MISSING]
    built = build(*args)  # type: ignore[operator]
    assert type(built) is cls
    assert built == cls(*args)
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.run_id = "x"
    assert new_run("r", "w", None, "h", "p", "{}").status is RunStatus.PENDING
