"""Build real mai modules from a program description; their bodies write the side-effect ledger.

The ledger (``$LEDGER``) is a file outside the mai store: one JSON line per body execution,
appended with one ``write`` on an ``O_APPEND`` descriptor and ``fsync``-ed before the body
returns or raises, so it survives SIGKILL and shows which process executed what:

``{"kind": "leaf"|"code"|"woke", "run": run id, "key": idempotency key, "attempt": retry count
in this process, "sid": step id, "pid": ..., "name": module name, "outcome": "ok"|"fail",
"out": digest of the result, "reads": readings, "t": wall clock}``

``woke`` lines are written by plain-code bodies right after each ``mai.sleep`` returns (with
the index of the sleep's operation in ``op``), to check that no timer fired early.

Only the public API of mai is used.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import trio

import mai

from .generator import (
    Node,
    Program,
    digest,
    leaf_value,
    payload_value,
    pred_value,
    split_value,
    until_value,
)

_OUT_TYPES: dict[str, Any] = {"int": int, "str": str, "any": Any}


class FlakyError(RuntimeError):
    """A flaky leaf failing one of its first executions (or a Race loser failing always)."""


def ledger_write(kind: str, outcome: str = "ok", **fields: Any) -> None:
    """Append one line for the current step body to ``$LEDGER`` (one write, then fsync)."""
    path = os.environ.get("LEDGER")
    if not path:
        return
    ctx = mai.Context.get()
    line = {
        "kind": kind,
        "run": ctx.run_id,
        "key": _key(),
        "attempt": ctx.retry_count,
        "sid": ctx.step_id,
        "pid": os.getpid(),
        "name": ctx.module_name,
        "outcome": outcome,
        "t": time.time(),
        **fields,
    }
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (json.dumps(line, separators=(",", ":")) + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def _key() -> str:
    """The idempotency key of the running step (``local/<step id>`` outside a durable run)."""
    ctx = mai.Context.get()
    return ctx.idempotency_key or f"local/{ctx.step_id}"


def ledger_count(key: str) -> int:
    """How many leaf executions of the step with idempotency key ``key`` the ledger holds."""
    path = os.environ.get("LEDGER")
    if not path or not os.path.exists(path):  # noqa: PTH110 - plain os, like the writes
        return 0
    with open(path, encoding="utf-8") as f:  # noqa: PTH123
        return sum(
            1
            for line in f
            if f'"key":"{key}"' in line and (e := json.loads(line))["kind"] == "leaf"
            if e["key"] == key
        )


def _typed(fn: Any, out: str) -> Any:
    fn.__annotations__ = {"x": Any, "tag": Any, "return": _OUT_TYPES[out]}
    return fn


def build_leaf(node: Node) -> mai.Module[..., Any]:
    """A leaf: take a little time, fail its first ``fail_k`` executions, then compute."""
    name, out, k, seconds = node.name, node.out, node.fail_k, node.seconds

    async def leaf(x: Any, tag: Any = None) -> Any:
        if seconds:
            await trio.sleep(seconds)
        key = _key()
        if k and ledger_count(key) < k:
            ledger_write("leaf", "fail")
            raise FlakyError(f"{name} fails (one of its first {k} executions of {key})")
        value = leaf_value(name, out, x)
        ledger_write("leaf", out=digest(value))
        return value

    cfg: dict[str, Any] = {"retries": node.retries, "backoff": 0.01} if node.retries else {}
    return mai.module(_typed(leaf, out), name=name, **cfg)


def build_doom(node: Node) -> mai.Module[..., Any]:
    """A Race loser that always fails."""
    name, seconds = node.name, node.seconds

    async def doom(x: Any, tag: Any = None) -> Any:
        if seconds:
            await trio.sleep(seconds)
        ledger_write("leaf", "fail")
        raise FlakyError(f"{name} always fails")

    return mai.module(_typed(doom, "any"), name=name)


def _pred_module(name: str, value: Any) -> mai.Module[..., Any]:
    async def decide(x: Any) -> bool:
        result = bool(value(x))
        ledger_write("leaf", out=digest(result))
        return result

    return mai.module(decide, name=name)


def build_split(node: Node) -> mai.Module[..., Any]:
    """A Map's splitter: the items of the Map."""
    name, n = node.name, node.n

    async def split(x: Any) -> list[int]:
        items = split_value(name, n, x)
        ledger_write("leaf", out=digest(items))
        return items

    return mai.module(split, name=f"{name}_split")


def build_code(node: Node, children: list[mai.Module[..., Any]]) -> mai.Module[..., Any]:
    """A plain-code module: its operations in order; returns ``[x, readings]``."""
    ops, kinds = node.ops, [c.kind for c in node.children]

    async def code(x: Any, tag: Any = None) -> Any:
        reads: list[Any] = []
        last: Any = None
        run_id = mai.Context.get().run_id or "local"
        for i, op in enumerate(ops):
            if op.kind == "call":
                child = children[op.child]
                if kinds[op.child] in {"leaf", "code"}:
                    x = await child(x, tag=last)
                else:
                    x = await child(x)
            elif op.kind == "now":
                last = {"now": mai.now()}
                reads.append(last)
            elif op.kind == "random":
                last = {"rand": mai.random().randrange(1_000_000)}
                reads.append(last)
            elif op.kind == "sleep":
                await mai.sleep(op.seconds)
                ledger_write("woke", op=i, seconds=op.seconds)
            else:
                payload = await mai.wait_for(op.topic, timeout=op.timeout)
                assert payload == payload_value(run_id, op.topic), payload
                x = [x, payload]
        value = [x, reads]
        ledger_write("code", out=digest(value), reads=reads)
        return value

    cfg: dict[str, Any] = {"retries": node.retries, "backoff": 0.01} if node.retries else {}
    return mai.module(_typed(code, "any"), name=node.name, **cfg)


def build(node: Node) -> mai.Module[..., Any]:
    """The mai module of ``node`` and its subtree."""
    kind, name = node.kind, node.name
    if kind == "leaf":
        return build_leaf(node)
    if kind == "doom":
        return build_doom(node)
    kids = [build(c) for c in node.children]
    if kind == "code":
        return build_code(node, kids)
    cfg: dict[str, Any] = {"retries": node.retries, "backoff": 0.01} if node.retries else {}
    if kind == "seq":
        return mai.Sequential(*kids, name=name, **cfg)
    if kind == "par":
        if node.named:
            return mai.Parallel(name=name, **cfg, **{f"k{i}": k for i, k in enumerate(kids)})
        return mai.Parallel(*kids, name=name, **cfg)
    if kind == "map":
        fan = mai.Map(kids[0], node.mc, name=f"{name}_map")
        return mai.Sequential(build_split(node), fan, name=name, **cfg)
    if kind == "race":
        return mai.Race(*kids, name=name, **cfg)
    if kind == "cond":
        pred: Any = lambda x: pred_value(name, x)  # noqa: E731 - a plain-function predicate
        if node.pred_module:
            pred = _pred_module(f"{name}_pred", pred)
        otherwise = kids[1] if len(kids) > 1 else None
        return mai.Conditional(pred, kids[0], otherwise, name=name, **cfg)
    if kind == "loop":
        until: Any = None
        if node.modulus is not None:
            modulus = node.modulus
            until = lambda x: until_value(name, modulus, x)  # noqa: E731
            if node.pred_module:
                until = _pred_module(f"{name}_until", until)
        return mai.Loop(kids[0], until, max_iterations=node.n, name=name, **cfg)
    if kind == "delay":
        return mai.BlockingDelay(node.seconds, name=name, **cfg)
    if kind == "nbd":
        return mai.NonBlockingDelay(node.seconds, kids[0], name=name, **cfg)
    msg = f"unknown node kind {kind!r}"
    raise ValueError(msg)


def build_program(program: Program) -> mai.Module[..., Any]:
    """The workflow module of ``program``."""
    return build(program.root)
