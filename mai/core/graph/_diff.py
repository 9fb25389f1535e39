"""Differences between two plans, each classified as compatible or not with resuming a run.

The question a change answers: may a durable run recorded under the old plan resume under the
new one? It may when every step the run may have recorded still exists under the same step id,
with the same module, inputs and types. So:

- compatible: an added (appended) node or step and the edges and casts into it; an added
  input with a default; configuration (name, timeout, retries, backoff, concurrency, inline,
  sync/async); options that change how, not what (``max_concurrency``, ``max_iterations``,
  delays); outputs; fusion.
- incompatible: a removed or renamed node (a run records each step's name); a node whose
  module, kind, step, parameter or output types,
  bound values or constants changed; an edge added to, removed from or rewired on an existing
  node (and its cast); a removed input, an input whose type changed, an added input without a
  default; options that change what is computed (``collect``, ``pred``, ``until``); the kind
  of the plan itself; the format version; a composite's contract (an agent's instructions,
  model settings, tools' schemas and output: what its recorded model responses answered).
"""

from __future__ import annotations

from typing import Any

from mai.core._records import record

from ._plan import _SEMANTIC_OPTIONS


@record
class PlanChange:
    """One difference between two plans, as :meth:`WorkflowPlan.diff` reports it.

    Attributes:
        kind: What changed: ``node_added``, ``node_removed``, ``module_changed``,
            ``type_changed``, ``binding_changed``, ``config_changed``, ``edge_added``,
            ``edge_removed``, ``edge_changed``, ``cast_added``, ``cast_removed``,
            ``cast_changed``, ``input_added``, ``input_removed``, ``input_changed``,
            ``option_changed``, ``output_changed``, ``fusion_changed``, ``kind_changed``,
            ``step_changed``, ``format_changed``, ``contract_changed``.
        node: The node concerned (``"n3"``; ``"n3/n1"`` inside a composite node), if any.
        step: That node's step path relative to the plan's own call (``"3"``, ``"3.1"``;
            ``"*"`` for data-dependent steps). The call's step id is ``<call step id>.<step>``.
        description: A sentence naming what changed, from what to what.
        compatible: Whether a run recorded under the old plan may resume under the new one:
            every step it may have recorded still exists with the same id, module, inputs and
            types. Added nodes and steps, new inputs with defaults, configuration (timeouts,
            retries, names), outputs and fusion are compatible; anything else is not.
    """

    kind: str
    node: str | None
    step: str | None
    description: str
    compatible: bool

    def __str__(self) -> str:
        """``[compatible] ...`` or ``[incompatible] ...``."""
        return f"[{'compatible' if self.compatible else 'incompatible'}] {self.description}"


_NODE_TYPES = ("params", "input_schema", "output_type", "output_schema")


class _Diff:
    def __init__(self) -> None:
        self.changes: list[PlanChange] = []

    def add(
        self, kind: str, node: str | None, step: str | None, description: str, compatible: bool
    ) -> None:
        self.changes.append(PlanChange(kind, node, step, description, compatible))

    def body(self, a: dict[str, Any], b: dict[str, Any], prefix: str, steps: str) -> None:
        self.inputs(a["inputs"], b["inputs"], prefix)
        self.contract(a.get("contract"), b.get("contract"), prefix, steps)
        self.options(a.get("options", {}), b.get("options", {}), prefix)
        a_nodes = {n["id"]: n for n in a["nodes"]}
        b_nodes = {n["id"]: n for n in b["nodes"]}
        a_edges = {(e["target"], e["parameter"]): e for e in a["edges"]}
        b_edges = {(e["target"], e["parameter"]): e for e in b["edges"]}
        a_casts = {(c["target"], c["parameter"]): c for c in a["casts"]}
        b_casts = {(c["target"], c["parameter"]): c for c in b["casts"]}
        order = [*a_nodes, *(i for i in b_nodes if i not in a_nodes)]
        for nid in order:
            old, new = a_nodes.get(nid), b_nodes.get(nid)
            ref = f"{prefix}{nid}"
            step = _step(steps, (new or old or {}).get("step", "?"))
            if new is None:
                assert old is not None  # noqa: S101 - every id comes from one of the two plans
                self.add(
                    "node_removed", ref, step, f"node {ref} ({old['name']!r}) was removed", False
                )
                continue
            if old is None:
                self.add("node_added", ref, step, f"node {ref} ({new['name']!r}) was added", True)
            else:
                self.node(old, new, ref, step)
            fresh = old is None
            self.keyed(a_edges, b_edges, nid, ref, step, fresh, "edge", _edge_text)
            self.keyed(a_casts, b_casts, nid, ref, step, fresh, "cast", _cast_text)
            if old is not None and "plan" in old and "plan" in new and old["kind"] == new["kind"]:
                self.body(old["plan"], new["plan"], f"{ref}/", step)
        if a["outputs"] != b["outputs"]:
            self.add(
                "output_changed",
                None,
                None,
                f"{prefix or 'plan '}outputs changed from {_outs(a)} to {_outs(b)}",
                True,
            )
        if a.get("fused", []) != b.get("fused", []):
            self.add(
                "fusion_changed",
                None,
                None,
                f"{prefix or 'plan '}fused chains changed from {a.get('fused', [])} to "
                f"{b.get('fused', [])}",
                True,
            )

    def inputs(self, a: list[dict[str, Any]], b: list[dict[str, Any]], prefix: str) -> None:
        a_in = {i["name"]: i for i in a}
        b_in = {i["name"]: i for i in b}
        where = prefix or "plan "
        for name, old in a_in.items():
            new = b_in.get(name)
            if new is None:
                assert old is not None  # noqa: S101 - every id comes from one of the two plans
                self.add("input_removed", None, None, f"{where}input {name!r} was removed", False)
            elif (old["type"], old["schema"]) != (new["type"], new["schema"]):
                self.add(
                    "input_changed",
                    None,
                    None,
                    f"{where}input {name!r} changed type from {old['type']} to {new['type']}",
                    False,
                )
            elif old.get("default") != new.get("default"):
                self.add(
                    "input_changed",
                    None,
                    None,
                    f"{where}input {name!r} changed its default",
                    True,
                )
        for name, new in b_in.items():
            if name not in a_in:
                has_default = "default" in new
                self.add(
                    "input_added",
                    None,
                    None,
                    f"{where}input {name!r} was added "
                    f"({'with a default' if has_default else 'without a default'})",
                    has_default,
                )

    def contract(self, a: Any, b: Any, prefix: str, steps: str) -> None:
        """A composite's contract (an agent's instructions, settings, tools): any change."""
        if a == b:
            return
        a, b = a or {}, b or {}
        keys = [k for k in sorted({*a, *b}) if a.get(k) != b.get(k)]
        self.add(
            "contract_changed",
            prefix.rstrip("/") or None,
            steps or None,
            f"{prefix or 'the workflow '}changed its {', '.join(keys)} since the run was "
            "recorded (its recorded steps were produced under the old ones)",
            False,
        )

    def options(self, a: dict[str, Any], b: dict[str, Any], prefix: str) -> None:
        for key in sorted({*a, *b}):
            if a.get(key) != b.get(key):
                self.add(
                    "option_changed",
                    None,
                    None,
                    f"{prefix or 'plan '}option {key!r} changed from {a.get(key)!r} to "
                    f"{b.get(key)!r}",
                    key not in _SEMANTIC_OPTIONS,
                )

    def node(self, old: dict[str, Any], new: dict[str, Any], ref: str, step: str) -> None:
        label = f"node {ref} ({new['name']!r})"
        renamed = old["name"] != new["name"] and old["module"] == new["module"]
        if renamed:  # a durable run records each step's name, so it cannot resume past this
            self.add(
                "renamed",
                ref,
                step,
                f"node {ref} was renamed from {old['name']!r} to {new['name']!r}",
                False,
            )
        if old["kind"] != new["kind"]:
            self.add(
                "kind_changed",
                ref,
                step,
                f"{label} changed kind from {old['kind']} to {new['kind']}",
                False,
            )
        if old["module"] != new["module"]:
            self.add(
                "module_changed",
                ref,
                step,
                f"{label} now runs {new['module']} instead of {old['module']}",
                False,
            )
        if old["step"] != new["step"]:
            self.add(
                "step_changed",
                ref,
                step,
                f"{label} moved from step {old['step']} to {new['step']}",
                False,
            )
        for key in _NODE_TYPES:
            if _untitled(old.get(key)) != _untitled(new.get(key)):
                what = {
                    "params": f"parameter types from {old.get('params')} to {new.get('params')}",
                    "input_schema": "input schema",
                    "output_type": f"output type from {old.get('output_type')} to "
                    f"{new.get('output_type')}",
                    "output_schema": "output schema",
                }[key]
                self.add("type_changed", ref, step, f"{label} changed its {what}", False)
                break
        for key in ("bound", "consts"):
            if old.get(key) != new.get(key):
                self.add(
                    "binding_changed",
                    ref,
                    step,
                    f"{label} changed its {'bound values' if key == 'bound' else 'constants'} "
                    f"from {old.get(key)} to {new.get(key)}",
                    False,
                )
        cfg_keys = [
            k
            for k in sorted({*old["config"], *new["config"]})
            if old["config"].get(k) != new["config"].get(k) and not (renamed and k == "name")
        ]
        if old.get("mode") != new.get("mode"):
            cfg_keys.append("mode")
        if cfg_keys:
            self.add(
                "config_changed",
                ref,
                step,
                f"{label} changed its configuration ({', '.join(cfg_keys)})",
                True,
            )

    def keyed(
        self,
        a: dict[tuple[str, str], dict[str, Any]],
        b: dict[tuple[str, str], dict[str, Any]],
        nid: str,
        ref: str,
        step: str,
        fresh: bool,
        what: str,
        text: Any,
    ) -> None:
        keys = [k for k in a if k[0] == nid] + [k for k in b if k[0] == nid and k not in a]
        for key in keys:
            old, new = a.get(key), b.get(key)
            where = f"{ref}.{key[1]}"
            if new is None:
                assert old is not None  # noqa: S101 - every id comes from one of the two plans
                self.add(f"{what}_removed", ref, step, f"{text(old)} was removed", False)
            elif old is None:
                self.add(f"{what}_added", ref, step, f"{text(new)} was added", fresh)
            elif _strip(old) != _strip(new):
                self.add(
                    f"{what}_changed",
                    ref,
                    step,
                    f"{what} into {where} changed: {text(old)} is now {text(new)}",
                    False,
                )


def _untitled(value: Any) -> Any:
    """A schema without its top-level title (made from the module's name: a rename says so)."""
    if isinstance(value, dict) and "title" in value:
        return {k: v for k, v in value.items() if k != "title"}
    return value


def _strip(item: dict[str, Any]) -> dict[str, Any]:
    """Cast ids are positional labels; compare what they stand for."""
    return {k: v for k, v in item.items() if k not in ("cast", "id")}


def _edge_text(e: dict[str, Any]) -> str:
    return f"edge {e['source']} -> {e['target']}.{e['parameter']}"


def _cast_text(c: dict[str, Any]) -> str:
    return (
        f"cast {c['from']} -> {c['to']} ({c['rule']}) on {c['source']} -> "
        f"{c['target']}.{c['parameter']}"
    )


def _outs(body: dict[str, Any]) -> str:
    return ", ".join(f"{o['name'] or 'output'}<-{o['source']}" for o in body["outputs"]) or "-"


def _step(prefix: str, step: str) -> str:
    if not prefix:
        return step
    return f"{prefix}.{step}" if step else prefix


def diff(a: dict[str, Any], b: dict[str, Any]) -> list[PlanChange]:
    """The changes from plan data ``a`` to plan data ``b``."""
    d = _Diff()
    if a["format_version"] != b["format_version"]:
        d.add(
            "format_changed",
            None,
            None,
            f"format version changed from {a['format_version']} to {b['format_version']}",
            False,
        )
    if a["kind"] != b["kind"] or a["module"] != b["module"]:
        d.add(
            "kind_changed",
            None,
            None,
            f"the plan is now a {b['kind']} ({b['module']}) instead of a {a['kind']} "
            f"({a['module']})",
            False,
        )
        return d.changes
    if a["config"] != b["config"] or a["name"] != b["name"]:
        keys = [k for k in sorted(a["config"]) if a["config"].get(k) != b["config"].get(k)]
        d.add(
            "config_changed",
            None,
            None,
            f"plan {b['name']!r} changed its configuration ({', '.join(keys) or 'name'})",
            True,
        )
    d.body(a, b, "", "")
    return d.changes
