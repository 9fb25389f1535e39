"""A durable worker process for the crash tests: recover, start what is missing, wait, report.

Usage::

    python worker_script.py DB [--workflow chain20] [--runs 100] [--prefix run]
                               [--extra RUN_ID=WORKFLOW ...] [--deadline SECONDS]
                               [--max-attempts N]

Opens ``sqlite:///DB?synchronous=normal`` with every workflow of :mod:`workflows` registered,
prints ``open <pid>`` once the store is open, calls ``recover()``, starts each of the runs
``<prefix>-000`` ... (and the ``--extra`` runs) that does not exist yet (starting an existing id
attaches to it), waits for every run, prints one JSON line ``{"pid": ..., "status": {...}}`` and
exits 0. ``$MAI_TRACE`` names a file to which every store transaction and the runs and steps it
writes are appended (unbuffered, so the record survives SIGKILL): ``B``/``C``/``R`` for begin,
commit and rollback, then ``create``, ``claim``, ``step``, ``finish``, ``dead`` lines.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent))

import crashhook
import workflows

import mai

if TYPE_CHECKING:
    from collections.abc import Iterator


def install_trace(path: str) -> None:
    """Append every store transaction and the writes inside it to ``path`` (survives SIGKILL)."""
    from mai.core.durable import SQLiteStore

    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def emit(*fields: object) -> None:
        os.write(fd, (" ".join(str(f) for f in fields) + "\n").encode())

    transaction = SQLiteStore.transaction

    @contextlib.contextmanager
    def traced(self: SQLiteStore) -> Iterator[None]:
        with transaction(self):
            emit("B")
            try:
                yield
            except BaseException:
                emit("R")
                raise
            emit("C?")  # about to commit: "C?" without "C" means the commit did not return
        emit("C")

    def wrap(name: str, describe: Any) -> None:
        original = getattr(SQLiteStore, name)

        def method(self: SQLiteStore, *args: Any, **kwargs: Any) -> Any:
            emit(*describe(*args))
            return original(self, *args, **kwargs)

        setattr(SQLiteStore, name, method)

    SQLiteStore.transaction = traced  # type: ignore[method-assign]
    wrap("create_run", lambda record: ("create", record.run_id))
    wrap("claim_run", lambda run_id, owner, *_: ("claim", run_id, owner))
    wrap("put_step", lambda record, owner, epoch: ("step", record.run_id, record.step_id))
    wrap("finish_run", lambda run_id, owner, epoch, status, *_: ("finish", run_id, status))
    wrap("dead_letter", lambda run_id, reason: ("dead", run_id))


async def outcome(handle: mai.RunHandle) -> str:
    """Wait for a run; return its final status (or the error that ended the wait)."""
    try:
        await handle.result()
    except mai.MaiError as exc:
        return f"{type(exc).__name__}: {exc}"
    return "SUCCEEDED"


async def main(args: argparse.Namespace) -> None:
    """Run the worker (see the module docstring)."""
    url = f"sqlite:///{args.db}?synchronous=normal"
    wanted = [(f"{args.prefix}-{i:03d}", args.workflow) for i in range(args.runs)]
    for extra in args.extra:
        run_id, _, name = extra.partition("=")
        wanted.append((run_id, name))
    async with mai.Runtime(
        url, workflows=list(workflows.WORKFLOWS.values()), max_attempts=args.max_attempts
    ) as rt:
        print("open", os.getpid(), flush=True)
        handles = {h.run_id: h for h in await rt.recover()}
        for run_id, name in wanted:
            try:
                await rt.get(run_id)
            except mai.RunNotFoundError:
                module = workflows.WORKFLOWS[name]
                handles[run_id] = await rt.start(
                    module, run_id, run_id=run_id, deadline=args.deadline
                )
            else:
                handles.setdefault(run_id, mai.RunHandle(rt, run_id))
        print("started", len(handles), flush=True)
        status = {run_id: await outcome(h) for run_id, h in sorted(handles.items())}
    print(json.dumps({"pid": os.getpid(), "status": status}), flush=True)


def parse(argv: list[str]) -> argparse.Namespace:
    """Parse the command line."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("db")
    p.add_argument("--workflow", default="chain20", choices=sorted(workflows.WORKFLOWS))
    p.add_argument("--runs", type=int, default=100)
    p.add_argument("--prefix", default="run")
    p.add_argument("--extra", action="append", default=[])
    p.add_argument("--deadline", type=float, default=None)
    p.add_argument("--max-attempts", type=int, default=5)
    return p.parse_args(argv)


if __name__ == "__main__":
    arguments = parse(sys.argv[1:])
    if os.environ.get("MAI_TRACE"):
        install_trace(os.environ["MAI_TRACE"])
    crashhook.install_from_env()  # the test injects its fault hook; mai reads no variable
    trio.run(main, arguments)
