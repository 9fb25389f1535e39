"""Which plan a run was recorded under, and whether changed code may resume it.

A run records the plan of its workflow (nodes keyed by their step path, with module name, kind
and input/output JSON Schemas) and the plan's hash. On resume, an identical hash resumes at once;
otherwise the two plans are compared node by node:

- compatible: nodes appended after the recorded ones (a new last step of a Sequential, a new
  branch at the end of a Parallel), and changes of module bodies (code is not in the plan);
- incompatible: a removed node, a node inserted before recorded ones, a changed module name,
  kind or type. The run is refused before any new step runs, naming the first divergent step.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

from mai._composites import Composite, Map

from ._errors import PlanMismatchError

if TYPE_CHECKING:
    from mai._module import Module


def _describe(module: Module[..., Any], path: str, out: dict[str, dict[str, Any]]) -> None:
    payload = module.payload
    out[path] = {
        "kind": type(module).__name__,
        "name": module.name,
        "input": payload.input_schema(),
        "output": payload.output_schema(),
    }
    if isinstance(module, Composite):
        children = module.children()
        if isinstance(module, Map):
            _describe(children[0], f"{path}.*", out)
            return
        for i, child in enumerate(children, 1):
            _describe(child, f"{path}.{i}", out)


def plan_for(module: Module[..., Any]) -> tuple[str, str]:
    """Return ``(hash, json)`` of the module's structural plan (stable across processes)."""
    nodes: dict[str, dict[str, Any]] = {}
    _describe(module, "1", nodes)
    text = json.dumps({"format": 1, "nodes": nodes}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest(), text


def _key(path: str) -> tuple[int, ...]:
    return tuple(-1 if p == "*" else int(p) for p in path.split("."))


def plan_changes(old_json: str, new_json: str) -> list[tuple[str, bool, str]]:
    """List ``(step path, compatible, description)`` for every difference, in step order."""
    old = json.loads(old_json).get("nodes", {})
    new = json.loads(new_json).get("nodes", {})
    changes: list[tuple[str, bool, str]] = []
    for path in sorted(set(old) | set(new), key=_key):
        a, b = old.get(path), new.get(path)
        if a == b:
            continue
        if b is None:
            changes.append((path, False, f"step {path} ({a['name']}) was removed"))
        elif a is None:
            parent, _, last = path.rpartition(".")
            siblings = [
                int(p.rpartition(".")[2])
                for p in old
                if p.rpartition(".")[0] == parent and p.rpartition(".")[2] != "*"
            ]
            appended = last != "*" and (not siblings or int(last) > max(siblings))
            what = "appended" if appended else "inserted before recorded steps"
            changes.append((path, appended, f"step {path} ({b['name']}) was {what}"))
        else:
            diffs = [k for k in ("kind", "name", "input", "output") if a.get(k) != b.get(k)]
            detail = ", ".join(diffs)
            changes.append(
                (path, False, f"step {path} changed ({detail}): {a['name']!r} -> {b['name']!r}")
            )
    return changes


def check_resumable(
    run_id: str, recorded_hash: str, recorded_plan: str, module: Module[..., Any]
) -> None:
    """Raise :class:`PlanMismatchError` if ``module`` cannot resume the recorded run."""
    new_hash, new_plan = plan_for(module)
    if new_hash == recorded_hash or not recorded_plan:
        return
    bad = [c for c in plan_changes(recorded_plan, new_plan) if not c[1]]
    if bad:
        path, _, description = bad[0]
        raise PlanMismatchError(
            f"run {run_id!r} cannot resume under the current code: {description} "
            f"(first divergent step {path}; {len(bad)} incompatible change"
            f"{'' if len(bad) == 1 else 's'}). Finish it with the code it started with, "
            "or cancel it.",
            run_id=run_id,
            step_id=path,
            module_name=module.name,
        )
