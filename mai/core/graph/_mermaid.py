"""Drawing a plan as a Mermaid flowchart.

Inputs and outputs are stadium shapes, nodes are boxes labelled with their module name, a
composite node is a subgraph holding its own plan, a fused chain is a subgraph marked
"fused", and an edge with a casting layer is labelled with the cast.
"""

from __future__ import annotations

from typing import Any


def _text(s: str) -> str:
    return s.replace('"', "#quot;")


class _Drawing:
    def __init__(self) -> None:
        self.lines = ["flowchart LR"]

    def body(self, body: dict[str, Any], prefix: str, indent: str) -> tuple[dict[str, str], str]:
        """Draw a plan body; return the ids its inputs and outputs map to."""
        ids: dict[str, str] = {}
        for i in body["inputs"]:
            key = f"input:{i['name']}"
            ids[key] = f"{prefix}in_{i['name']}"
            if not prefix:
                self.lines.append(f'{indent}{ids[key]}(["{_text(i["name"])}: {_text(i["type"])}"])')
        fused = {nid: k for k, chain in enumerate(body.get("fused", []), 1) for nid in chain}
        open_chain = 0
        for node in body["nodes"]:
            nid = f"{prefix}{node['id']}"
            ids[node["id"]] = nid
            chain = fused.get(node["id"], 0)
            if chain != open_chain:
                if open_chain:
                    self.lines.append(f"{indent}end")
                if chain:
                    self.lines.append(
                        f'{indent}subgraph {prefix}fused_{chain} ["fused: one thread hop"]'
                    )
                open_chain = chain
            self.node(node, nid, indent + ("  " if chain else ""))
        if open_chain:
            self.lines.append(f"{indent}end")
        for e in body["edges"]:
            src = ids.get(e["source"], f"{prefix}{e['source'].replace(':', '_')}")
            dst = ids[e["target"]]
            if prefix and e["source"].startswith("input:"):
                continue  # a composite's inputs are the arrows into the subgraph itself
            cast = next((c for c in body["casts"] if c["id"] == e.get("cast")), None)
            if cast is not None:
                label = f"cast {cast['from']} to {cast['to']}"
                self.lines.append(f'{indent}{src} -->|"{_text(label)}"| {dst}')
            elif e.get("each"):
                self.lines.append(f'{indent}{src} -->|"each item"| {dst}')
            else:
                self.lines.append(f"{indent}{src} --> {dst}")
        return ids, prefix

    def node(self, node: dict[str, Any], nid: str, indent: str) -> None:
        name = _text(node["name"])
        if "plan" not in node:
            self.lines.append(f'{indent}{nid}["{name}"]')
            return
        self.lines.append(f'{indent}subgraph {nid} ["{name} ({node["kind"]})"]')
        self.lines.append(f"{indent}  direction LR")
        inner = node["plan"]
        if not inner["nodes"]:
            self.lines.append(f'{indent}  {nid}_pass["{_text(node["kind"])}"]')
        self.body(inner, f"{nid}_", indent + "  ")
        self.lines.append(f"{indent}end")


def mermaid(data: dict[str, Any]) -> str:
    """Return a Mermaid flowchart of plan data."""
    d = _Drawing()
    ids, _ = d.body(data, "", "  ")
    for k, out in enumerate(data["outputs"]):
        oid = f"out_{k}"
        label = out["name"] or "output"
        if "when" in out:
            label = f"{label} ({'then' if out['when'] else 'otherwise'})"
        d.lines.append(f'  {oid}(["{_text(label)}"])')
        source = ids.get(out["source"])
        if source is not None:
            d.lines.append(f"  {source} --> {oid}")
    return "\n".join(d.lines) + "\n"
