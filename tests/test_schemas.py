"""JSON Schemas of builtin scalars are written out without pydantic, exactly as pydantic would."""

from __future__ import annotations

import inspect
import itertools
import json
from typing import Any

import pytest
import trio

import mai
from mai import _casting
from mai._casting import Payload, json_schema, make_type_adapter

SCALARS = [int, str, float, bool]
DEFAULTS = [inspect.Parameter.empty, None, 0, 3, "a", "", True, False, 1.5]
NAMES = ["x", "max_tokens", "x1y", "a_b_c", "URL", "camelCase", "x__y", "ünï", "_private"]


def test_scalar_schemas_equal_pydantics() -> None:
    """int, str, float and bool: the written-out schema is pydantic's, byte for byte."""
    for ann in SCALARS:
        assert json.dumps(json_schema(ann)) == json.dumps(make_type_adapter(ann).json_schema())


@pytest.mark.parametrize("module_name", ["one", "my_module", "pkg.mod_name", ""])
def test_scalar_input_schemas_equal_pydantics(module_name: str) -> None:
    """Input schemas of scalar parameters (names, defaults, required) equal pydantic's."""
    compared = 0
    for (ann, default), pname in itertools.product(itertools.product(SCALARS, DEFAULTS), NAMES):
        for extra in ({}, {"y": (int, inspect.Parameter.empty)}, {"z_z": (str, "d")}):
            payload = Payload(module_name, {pname: (ann, default), **extra}, int)
            expected = json.dumps(payload.input_model.model_json_schema())
            assert json.dumps(payload.input_schema()) == expected, (pname, ann, default, extra)
            compared += payload._scalar_input_schema() is not None
    assert compared > 500  # most of them went the fast way (not names pydantic treats apart)


def test_other_annotations_still_go_through_pydantic() -> None:
    """A list, a model or an unusual default: no fast path, pydantic's schema."""
    assert (
        Payload("m", {"xs": (list[int], inspect.Parameter.empty)}, int)._scalar_input_schema()
        is None
    )
    assert Payload("m", {"f": (float, float("inf"))}, int)._scalar_input_schema() is None
    assert json_schema(list[int]) == {"items": {"type": "integer"}, "type": "array"}


async def test_a_durable_plan_of_scalar_steps_builds_no_type_adapter(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Starting a durable run of int steps never builds a pydantic TypeAdapter for its plan."""

    @mai.module
    async def bump(x: int, by: int = 1) -> int:
        return x + by

    built: list[Any] = []

    def recording(real: Any) -> Any:
        def build(*args: Any, **kwargs: Any) -> Any:
            built.append(args[0] if args else kwargs)
            return real(*args, **kwargs)

        return build

    monkeypatch.setattr(_casting, "TypeAdapter", recording(_casting.TypeAdapter))
    monkeypatch.setattr(_casting, "create_model", recording(_casting.create_model))
    async with mai.Runtime("memory://schemas") as rt:
        handle = await rt.start(bump, 1, run_id="s")
        assert await handle.result() == 2
    await trio.lowlevel.checkpoint()
    assert built == []
