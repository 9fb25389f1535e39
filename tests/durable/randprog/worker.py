"""A durable worker process running random programs: recover, start what is missing, wait, report.

Usage::

    python worker.py DB --seeds 1,2,3 [--start N] [--budget B] [--depth D] [--width W]
                        [--exclude SHAPE,...] [--max-attempts N] [--busy-timeout SECONDS]

Regenerates the programs of the seeds (the same trees as the test's), opens
``sqlite:///DB?synchronous=normal`` with their workflows registered (public API only), prints
``open <pid>``, calls ``recover()``, starts the run ``rp-<seed>`` of each of the first
``--start`` programs (default: all) that does not exist yet, waits for every run and prints
one JSON line ``{"pid": ..., "results": {run_id: outcome}}`` where an outcome is
``{"ok": value}`` or ``{"error": type, "message": text}``. Step bodies write the side-effect
ledger named by ``$LEDGER``.
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import structlog
import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import mai
from randprog.builder import build_program
from randprog.generator import Shapes, generate


async def outcome(handle: mai.RunHandle) -> dict[str, Any]:
    """Wait for a run; its result or the error that ended it."""
    try:
        value = await handle.result()
    except Exception as exc:
        return {"error": type(exc).__name__, "message": str(exc)[:2000]}
    return {"ok": value}


async def patiently(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Call ``fn`` again while it raises a StoreError (the test's faults are brief), up to 10 s.

    ``recover()`` and ``start()`` report a store that stayed locked past ``busy_timeout`` or
    an I/O error to their caller, as documented; a worker waits such a fault out.
    """
    for _ in range(100):
        try:
            return await fn(*args, **kwargs)
        except mai.StoreError as exc:
            print("store error, trying again:", exc, file=sys.stderr, flush=True)
            await trio.sleep(0.1)
    return await fn(*args, **kwargs)


async def main(args: argparse.Namespace) -> None:
    """Run the worker (see the module docstring)."""
    shapes = Shapes(
        budget=args.budget,
        max_depth=args.depth,
        width=args.width,
        exclude=frozenset(filter(None, args.exclude.split(","))),
    )
    programs = [generate(int(s), shapes) for s in args.seeds.split(",") if s]
    modules = {p.run_id: build_program(p) for p in programs}
    url = f"sqlite:///{args.db}?synchronous=normal"
    if args.busy_timeout is not None:
        url += f"&busy_timeout={args.busy_timeout}"
    start = programs if args.start is None else programs[: args.start]
    async with mai.Runtime(
        url, workflows=list(modules.values()), max_attempts=args.max_attempts
    ) as rt:
        print("open", os.getpid(), flush=True)
        handles = {h.run_id: h for h in await patiently(rt.recover)}
        for p in start:
            try:
                await rt.get(p.run_id)
            except mai.RunNotFoundError:
                module = modules[p.run_id]
                handles[p.run_id] = await patiently(rt.start, module, p.x0, run_id=p.run_id)
            else:
                handles.setdefault(p.run_id, mai.RunHandle(rt, p.run_id))
        print("started", len(handles), flush=True)
        results = {run_id: await outcome(h) for run_id, h in sorted(handles.items())}
    print(json.dumps({"pid": os.getpid(), "results": results}), flush=True)


def parse(argv: list[str]) -> argparse.Namespace:
    """Parse the command line."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("db")
    p.add_argument("--seeds", required=True)
    p.add_argument("--start", type=int, default=None)
    p.add_argument("--busy-timeout", type=float, default=None)
    p.add_argument("--budget", type=int, default=Shapes.budget)
    p.add_argument("--depth", type=int, default=Shapes.max_depth)
    p.add_argument("--width", type=int, default=Shapes.width)
    p.add_argument("--exclude", default="")
    p.add_argument("--max-attempts", type=int, default=1000)
    return p.parse_args(argv)


if __name__ == "__main__":
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # the runner asks a stuck worker
    if os.environ.get("WORKER_LOG"):  # logs to a file: a full stdout pipe would block the worker
        log = Path(os.environ["WORKER_LOG"]).open("a", encoding="utf-8")  # noqa: SIM115
        structlog.configure(logger_factory=structlog.PrintLoggerFactory(log))
    trio.run(main, parse(sys.argv[1:]))
