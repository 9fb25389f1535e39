"""A workflow plan drawn as SVG, from the plan's JSON alone (no JavaScript library).

Layout: data flows left to right. In each plan (and recursively inside each composite's inner
plan) a node's column is one more than the deepest node feeding it; nodes of a column stack
vertically, so the branches of a Parallel sit one above the other and a Sequential reads as a
row. A composite is a box around its inner plan; edges are curves from a node's right side to
the next node's left side, and the plan's inputs enter from the left edge of their box.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape
from typing import Any

_LEAF_W, _LEAF_H = 150, 38
_GAP_X, _GAP_Y = 46, 16
_PAD, _HEAD = 12, 24
_CHAR_W = 7.0


@dataclass
class _Box:
    node: dict[str, Any]
    w: float
    h: float
    children: list[_Box] = field(default_factory=list)
    edges: list[tuple[str, str]] = field(default_factory=list)
    ids: dict[str, _Box] = field(default_factory=dict)
    x: float = 0.0
    y: float = 0.0


def _label(node: dict[str, Any]) -> str:
    return str(node.get("name") or node.get("id") or "?")


def _measure(node: dict[str, Any]) -> _Box:
    """Size a node; for a composite, lay out its inner plan inside it."""
    inner = node.get("plan") if isinstance(node.get("plan"), dict) else None
    nodes = [n for n in (inner or {}).get("nodes", []) if isinstance(n, dict)]
    label_w = len(_label(node)) * _CHAR_W + 2 * _PAD + 40
    if not nodes:
        return _Box(node, max(_LEAF_W, label_w), _LEAF_H)
    box = _Box(node, 0, 0)
    _layout_into(box, inner or {}, nodes)
    box.w = max(box.w, label_w)
    return box


def _layout_into(box: _Box, plan: dict[str, Any], nodes: list[dict[str, Any]]) -> None:
    kids = [_measure(n) for n in nodes]
    box.children = kids
    box.ids = {str(k.node.get("id")): k for k in kids}
    sources: dict[str, list[str]] = {i: [] for i in box.ids}
    for e in plan.get("edges", []):
        src, dst = str(e.get("source", "")), str(e.get("target", ""))
        if dst in sources:
            sources[dst].append(src)
            box.edges.append((src, dst))
    column: dict[str, int] = {}

    def col(node_id: str, seen: frozenset[str] = frozenset()) -> int:
        if node_id in column:
            return column[node_id]
        feeding = [s for s in sources.get(node_id, []) if s in box.ids and s not in seen]
        column[node_id] = 1 + max(col(s, seen | {node_id}) for s in feeding) if feeding else 0
        return column[node_id]

    for node_id in box.ids:
        col(node_id)
    columns: dict[int, list[_Box]] = {}
    for k in kids:
        columns.setdefault(column[str(k.node.get("id"))], []).append(k)
    x = float(_PAD)
    height = 0.0
    for c in sorted(columns):
        members = columns[c]
        width = max(k.w for k in members)
        y = float(_HEAD + _PAD)
        for k in members:
            k.x, k.y = x + (width - k.w) / 2, y
            y += k.h + _GAP_Y
        height = max(height, y - _GAP_Y)
        x += width + _GAP_X
    box.w = x - _GAP_X + _PAD
    box.h = height + _PAD


def _draw(box: _Box, ox: float, oy: float, out: list[str], depth: int) -> None:
    x, y = ox + box.x, oy + box.y
    node = box.node
    kind = str(node.get("kind", "module"))
    step = node.get("step")
    title = f"{_label(node)} ({kind}{', step ' + str(step) if step else ''})"
    if box.children:
        out.append(
            f'<g class="plan-group depth-{depth % 3}" data-kind="{escape(kind)}">'
            f"<title>{escape(title)}</title>"
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{box.w:.1f}" height="{box.h:.1f}" rx="8"/>'
            f'<text x="{x + _PAD:.1f}" y="{y + 17:.1f}">{escape(_label(node))}'
            f'<tspan class="kind"> {escape(kind)}</tspan></text></g>'
        )
        for src, dst in box.edges:
            target = box.ids[dst]
            tx, ty = x + target.x, y + target.y + target.h / 2
            if src in box.ids:
                source = box.ids[src]
                sx, sy = x + source.x + source.w, y + source.y + source.h / 2
            else:  # from the plan's inputs: enter from the box's left edge
                sx, sy = x, ty
            mid = (sx + tx) / 2
            out.append(
                f'<path class="plan-edge" d="M{sx:.1f},{sy:.1f} C{mid:.1f},{sy:.1f} '
                f'{mid:.1f},{ty:.1f} {tx:.1f},{ty:.1f}" marker-end="url(#arrow)"/>'
            )
        for child in box.children:
            _draw(child, x, y, out, depth + 1)
        return
    out.append(
        f'<g class="plan-node" data-kind="{escape(kind)}"><title>{escape(title)}</title>'
        f'<rect x="{x:.1f}" y="{y:.1f}" width="{box.w:.1f}" height="{box.h:.1f}" rx="6"/>'
        f'<text x="{x + box.w / 2:.1f}" y="{y + box.h / 2 + 4:.1f}" text-anchor="middle">'
        f"{escape(_label(node))}</text></g>"
    )


def plan_svg(plan: dict[str, Any]) -> str:
    """Draw ``plan`` (a ``WorkflowPlan`` as JSON data) as an SVG document fragment."""
    top = {"name": plan.get("name", "plan"), "kind": plan.get("kind", "module"), "plan": plan}
    if not plan.get("nodes"):  # a single module: its plan has no inner nodes
        top = {**top, "plan": None}
    root = _measure(top)
    out: list[str] = []
    _draw(root, 0, 0, out, 0)
    w, h = root.w + 2, root.h + 2
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="plan-svg" viewBox="-1 -1 {w:.0f} '
        f'{h:.0f}" width="{w:.0f}" height="{h:.0f}" role="img" aria-label="workflow plan">'
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z"/></marker>'
        "</defs>" + "".join(out) + "</svg>"
    )
