"""The ``mai`` command.

::

    mai run pkg.module:obj [ARGS...] [--store URL] [--run-id ID] [--trace]
    mai runs list|show|steps|resume|cancel|send ...
    mai trace RUN_ID
    mai plan pkg.module:obj [--mermaid | --json]
    mai plugins
    mai worker --store URL --app pkg.module [--queue Q ...]
    mai ui [--store URL] [--port N] [--app pkg.module]
    mai mcp serve pkg.module:obj [--http [--host H --port P --allow-remote]]

Errors are one line on stderr with a non-zero exit code (1: the run or operation failed,
2: usage); ``MAI_DEBUG=1`` shows the traceback. Only the result goes to stdout: progress,
the trace and the library's log lines go to stderr. The durable runtime is imported by the
commands that use it, not by ``mai --help``. Nothing printed carries the store URL's password
(``mai.redact_url``); keep the password out of the command line with ``MAI_STORE``,
``PGPASSWORD`` or a ``~/.pgpass`` file.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import inspect
import json
import os
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio
from pydantic_core import to_json

import mai

from ._args import UsageError, bind_cli_args, load_target

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from mai import Runtime

EXIT_FAILED = 1
EXIT_USAGE = 2


def _store_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--store",
        metavar="URL",
        default=None,
        help="store URL (default: $MAI_STORE or sqlite:///.mai/mai.db); "
        "prefer MAI_STORE or PGPASSWORD for a password, which ps would show here",
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mai",
        description="Run, inspect and serve pymai workflows.",
        epilog="Set MAI_DEBUG=1 to see tracebacks.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = sub.add_parser("run", help="run a module or graph durably and print its result")
    run.add_argument(
        "target", metavar="pkg.module:obj", help="the module, graph or function to run"
    )
    run.add_argument(
        "args",
        nargs="*",
        metavar="ARG",
        help="arguments: values in order, or name=value; JSON for structured ones",
    )
    _store_arg(run)
    run.add_argument(
        "--run-id", metavar="ID", help="run id (default: a new one); an existing id attaches"
    )
    run.add_argument("--trace", action="store_true", help="print the run's trace tree at the end")
    run.add_argument("--deadline", type=float, metavar="SECONDS", help="deadline for the whole run")
    run.add_argument("--quiet", action="store_true", help="no progress output")

    runs = sub.add_parser("runs", help="list and manage durable runs")
    rsub = runs.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = rsub.add_parser("list", help="list runs, newest first")
    _store_arg(p)
    p.add_argument(
        "--status",
        help="only runs with this status (pending, running, succeeded, failed, cancelled, dead)",
    )
    p.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    for name, text in (("show", "show one run"), ("steps", "list a run's recorded steps")):
        p = rsub.add_parser(name, help=text)
        p.add_argument("run_id", metavar="RUN_ID")
        _store_arg(p)
        p.add_argument("--json", action="store_true", help="machine-readable output")
    p = rsub.add_parser("resume", help="resume an unfinished run in this process and wait for it")
    p.add_argument("run_id", metavar="RUN_ID")
    _store_arg(p)
    p.add_argument(
        "--app", metavar="pkg.module", help="import this module first (it defines the workflow)"
    )
    p = rsub.add_parser(
        "retry", help="requeue a DEAD or FAILED run (keeps its id and steps) and wait for it"
    )
    p.add_argument("run_id", metavar="RUN_ID")
    _store_arg(p)
    p.add_argument(
        "--app", metavar="pkg.module", help="import this module first (it defines the workflow)"
    )
    p = rsub.add_parser("cancel", help="cancel a run")
    p.add_argument("run_id", metavar="RUN_ID")
    _store_arg(p)
    p = rsub.add_parser("send", help="send a message to a run waiting in mai.wait_for()")
    p.add_argument("run_id", metavar="RUN_ID")
    p.add_argument("topic", metavar="TOPIC")
    p.add_argument(
        "payload", nargs="?", default="null", metavar="JSON", help="payload as JSON (default null)"
    )
    _store_arg(p)

    p = sub.add_parser("trace", help="show a run's recorded trace as a tree")
    p.add_argument("run_id", metavar="RUN_ID")
    _store_arg(p)
    p.add_argument("--json", action="store_true", help="the trace as JSON")

    p = sub.add_parser("plan", help="show the plan of a module or graph")
    p.add_argument("target", metavar="pkg.module:obj")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--mermaid", action="store_true", help="Mermaid flowchart text")
    fmt.add_argument("--json", action="store_true", help="the plan as JSON")

    p = sub.add_parser("plugins", help="list installed plugins and where they come from")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = sub.add_parser("worker", help="serve queued durable runs from a shared store")
    _store_arg(p)
    p.add_argument(
        "--app", metavar="pkg.module", required=True, help="module defining the workflows"
    )
    p.add_argument(
        "--queue",
        action="append",
        dest="queues",
        metavar="NAME",
        help="queue to serve (repeatable; default: default)",
    )
    p.formatter_class = _WorkerHelp
    p.add_argument("--concurrency", type=int, help="runs executed at once by this worker")
    p.add_argument(
        "--lease", type=float, metavar="SECONDS", help="seconds a claimed run's lease lasts"
    )
    p.add_argument(
        "--poll-interval", type=float, metavar="SECONDS", help="seconds between polls of the store"
    )
    p.add_argument("--max-attempts", type=int, help="attempts of a run before it is dead-lettered")
    p.add_argument("--name", help="worker name (default: host name)")
    p.add_argument(
        "--executor",
        metavar="NAME",
        help="run on a remote executor plugin (e.g. temporal; its address from the environment)",
    )

    from ._ui import add_parser as add_ui_parser  # noqa: PLC0415 - mai ui lives in its own file

    add_ui_parser(sub, _store_arg)

    from ._mcp import add_parser as add_mcp_parser  # noqa: PLC0415 - `mai mcp`, its own module

    add_mcp_parser(sub)
    return parser


#: ``mai worker`` options that are :class:`mai.Worker` parameters of the same name.
_WORKER_OPTIONS = ("concurrency", "lease", "poll_interval", "max_attempts")


def _worker_defaults() -> dict[str, Any]:
    """:class:`mai.Worker`'s own defaults: the one place they are written."""
    params = inspect.signature(mai.Worker).parameters
    return {name: params[name].default for name in _WORKER_OPTIONS}


class _WorkerHelp(argparse.HelpFormatter):
    """Shows mai.Worker's defaults in ``mai worker --help`` (the worker loads only then)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help
        if action.dest in _WORKER_OPTIONS:
            text = f"{text} (default {_worker_defaults()[action.dest]:g})"
        return text


def main_exit() -> None:
    """Console-script entry point: run :func:`main` and exit with its code."""
    sys.exit(main())


def _fail(message: str, code: int = EXIT_FAILED, *, store: str = "") -> int:
    if store:
        from mai.core.durable._urls import redact_text  # noqa: PLC0415

        message = redact_text(message, store)
    print(f"mai: error: {message}", file=sys.stderr)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``mai`` command; return its exit code."""
    parser = _parser()
    ns = parser.parse_args(argv)
    handlers: dict[str, Callable[[argparse.Namespace], int]] = {
        "run": _cmd_run,
        "runs": _cmd_runs,
        "trace": _cmd_trace,
        "plan": _cmd_plan,
        "plugins": _cmd_plugins,
        "worker": _cmd_worker,
        "ui": _cmd_ui,
        "mcp": _cmd_mcp,
    }
    # a third-party store may quote its URL in an error: no message shows the password
    store = getattr(ns, "store", None) or os.environ.get("MAI_STORE") or ""
    try:
        return handlers[ns.command](ns)
    except UsageError as exc:
        return _fail(str(exc), EXIT_USAGE, store=store)
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    except Exception as exc:  # one clear line, not a traceback
        if os.environ.get("MAI_DEBUG"):
            raise
        while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
            exc = exc.exceptions[0]  # type: ignore[assignment]
        if isinstance(exc, UsageError):
            return _fail(str(exc), EXIT_USAGE, store=store)
        return _fail(f"{type(exc).__name__}: {exc}", store=store)


def _json(value: Any) -> str:

    return to_json(value, indent=2, fallback=repr).decode()


def _with_runtime(ns: argparse.Namespace, fn: Callable[[Runtime], Any]) -> Any:
    """Open the runtime on ``--store`` and run ``await fn(rt)`` under Trio."""

    async def go() -> Any:
        async with mai.Runtime(ns.store) as rt:
            return await fn(rt)

    return trio.run(go)


# -- mai run -----------------------------------------------------------------------------------


def _cmd_run(ns: argparse.Namespace) -> int:
    from mai.core.durable import redact_url  # noqa: PLC0415 - the durable runtime loads on use

    module = load_target(ns.target)
    ref = ns.target  # how `mai runs resume` finds the workflow again (same directory rules)
    args, kwargs = bind_cli_args(module, ns.args)
    run_id = ns.run_id or uuid.uuid4().hex[:12]
    out = sys.stderr

    async def go(rt: Runtime) -> Any:
        progress = mai.Progress(out=out, live=out.isatty() and not ns.quiet)
        done = trio.Event()
        with mai.intercept(*([] if ns.quiet else [progress])):
            handle = await rt.start(
                module, *args, run_id=run_id, deadline=ns.deadline, ref=ref, **kwargs
            )
        if not ns.quiet:
            print(f"run {run_id}: {module.name} on {redact_url(rt.url)}", file=out)
        try:
            async with trio.open_nursery() as nursery:
                if not ns.quiet:
                    nursery.start_soon(progress.animate, done)
                try:
                    return await handle.result()
                finally:
                    done.set()
        finally:
            if not ns.quiet:
                print(progress.summary(), file=out)
            if ns.trace:
                print((await rt.trace(run_id)).render(colour=out.isatty()), file=out)

    result = _with_runtime(ns, go)
    print(_json(result))
    return 0


# -- mai runs ...  -----------------------------------------------------------------------------


def _cmd_runs(ns: argparse.Namespace) -> int:
    action = ns.action
    if action == "list":
        return _runs_list(ns)
    if action == "show":
        return _runs_show(ns)
    if action == "steps":
        return _runs_steps(ns)
    if action == "resume":
        return _runs_resume(ns)
    if action == "retry":
        return _runs_resume(ns, retry=True)
    if action == "cancel":
        return _runs_cancel(ns)
    return _runs_send(ns)


def _when(epoch: float | None) -> str:

    if not epoch:
        return "-"
    return dt.datetime.fromtimestamp(epoch, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(header, widths, strict=True)).rstrip()]
    lines += [
        "  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
    ]
    return "\n".join(lines)


def _runs_list(ns: argparse.Namespace) -> int:
    async def go(rt: Runtime) -> Any:
        runs = await rt.list_runs(status=ns.status, limit=ns.limit)
        return [(r, _owner_gone(rt, r)) for r in runs]

    if ns.status:
        valid = [s.value.lower() for s in mai.RunStatus]
        if ns.status.lower() not in valid:
            raise UsageError(f"--status must be one of {', '.join(valid)}, got {ns.status!r}")
    runs = _with_runtime(ns, go)
    if ns.json:
        print(
            _json(
                [
                    {**_run_dict(r), "owner_alive": None if gone is None else not gone}
                    for r, gone in runs
                ]
            )
        )
        return 0
    rows = [
        [
            r.run_id,
            r.workflow,
            f"{r.status.value} (owner gone)" if gone else r.status.value,
            _when(r.created_at),
            _when(r.updated_at),
            str(r.attempts),
        ]
        for r, gone in runs
    ]
    print(
        _table(rows, ["RUN", "WORKFLOW", "STATUS", "CREATED (UTC)", "UPDATED (UTC)", "ATTEMPTS"])
        if rows
        else "no runs"
    )
    return 0


def _run_dict(info: Any) -> dict[str, Any]:
    return {
        "run_id": info.run_id,
        "workflow": info.workflow,
        "status": info.status.value,
        "input": info.input,
        "output": info.output,
        "error": info.error,
        "deadline": info.deadline,
        "created_at": info.created_at,
        "updated_at": info.updated_at,
        "attempts": info.attempts,
        "owner": info.owner,
        "plan_hash": info.plan_hash,
    }


def _runs_show(ns: argparse.Namespace) -> int:
    from ._agents import agent_summary, render_agent_summary  # noqa: PLC0415

    async def go(rt: Runtime) -> Any:
        return await rt.get(ns.run_id), list(await rt.steps(ns.run_id))

    info, steps = _with_runtime(ns, go)
    data = _run_dict(info)
    data["steps"] = len(steps)
    if ns.json:
        data["agent"] = agent_summary(steps)
        print(_json(data))
        return 0
    for key, value in data.items():
        shown = _when(value) if key in {"created_at", "updated_at", "deadline"} and value else value
        print(f"{key:>11}: {json.dumps(shown) if isinstance(shown, (dict, list)) else shown}")
    if agents := render_agent_summary(ns.run_id, steps):
        print(agents)
    return 0


def _runs_steps(ns: argparse.Namespace) -> int:
    async def go(rt: Runtime) -> Any:
        await rt.get(ns.run_id)
        return await rt.steps(ns.run_id)

    steps = _with_runtime(ns, go)
    if ns.json:
        print(
            _json(
                [
                    {
                        "step_id": s.step_id,
                        "name": s.name,
                        "kind": s.kind,
                        "input": s.input,
                        "output": s.output,
                        "started_at": s.started_at,
                        "duration": s.duration,
                        "attempts": s.attempts,
                        "worker": s.worker,
                    }
                    for s in steps
                ]
            )
        )
        return 0
    rows = [
        [
            s.step_id,
            s.name,
            s.kind,
            f"{s.duration * 1e3:.1f} ms",
            str(s.attempts),
            json.dumps(s.output)[:60],
        ]
        for s in steps
    ]
    print(
        _table(rows, ["STEP", "NAME", "KIND", "DURATION", "ATTEMPTS", "OUTPUT"])
        if rows
        else "no recorded steps"
    )
    from ._agents import render_agent_summary  # noqa: PLC0415

    if agents := render_agent_summary(ns.run_id, list(steps)):
        print(agents)
    return 0


def _import_app(app: str | None) -> list[Any]:
    """Import ``--app`` (from the current directory, as ``mai run`` does); its workflows."""
    from mai.core.durable import load_app  # noqa: PLC0415 - the durable runtime loads lazily

    if str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    if not app:
        return []
    try:
        return load_app(app)
    except ImportError as exc:
        raise UsageError(f"cannot import --app {app!r}: {exc}") from exc


def _runs_resume(ns: argparse.Namespace, *, retry: bool = False) -> int:
    modules = _import_app(ns.app)

    async def go(rt: Runtime) -> Any:
        for module in modules:
            rt.register(module)
        handle = await (rt.retry(ns.run_id) if retry else rt.resume(ns.run_id))
        if ns.run_id not in rt._active:
            info = await rt.get(ns.run_id)
            if not info.status.terminal and info.owner is not None:
                print(
                    f"run {ns.run_id} is owned by {info.owner}, a process that is still alive "
                    "or whose lease has not expired yet; waiting for it to finish (the run is "
                    "taken over here if its lease expires)",
                    file=sys.stderr,
                )
        return await handle.result()

    print(_json(_with_runtime(ns, go)))
    return 0


def _runs_cancel(ns: argparse.Namespace) -> int:
    async def go(rt: Runtime) -> Any:
        await rt.cancel(ns.run_id)
        return (await rt.get(ns.run_id)).status

    status = _with_runtime(ns, go)
    print(f"run {ns.run_id}: {status.value}")
    return 0


def _runs_send(ns: argparse.Namespace) -> int:
    try:
        payload = json.loads(ns.payload)
    except ValueError as exc:
        raise UsageError(f"PAYLOAD must be JSON, got {ns.payload!r} ({exc})") from None

    async def go(rt: Runtime) -> Any:
        info = await rt.get(ns.run_id)
        if info.status.terminal:
            return info, False, False
        gone = bool(_owner_gone(rt, info))
        await rt.send(ns.run_id, ns.topic, payload)
        return info, True, gone

    info, sent, gone = _with_runtime(ns, go)
    if not sent:
        return _fail(
            f"run {ns.run_id} is not waiting for messages: it has finished "
            f"({info.status.value.lower()}); nothing was sent"
        )
    note = (
        f"; the owner is gone ({info.owner}), so the run receives it when it is resumed "
        "(mai runs resume, or a worker)"
        if gone
        else ""
    )
    print(f"sent {ns.topic!r} to run {ns.run_id}{note}")
    return 0


def _owner_gone(rt: Runtime, info: Any) -> bool | None:
    """For a RUNNING run, whether its owner is certainly gone; ``None`` for other statuses.

    Gone: its lease expired on the store's clock, or (same host) its process no longer exists.
    """
    if info.status != mai.RunStatus.RUNNING:
        return None
    from mai.core.durable._owner import _owner_dead  # noqa: PLC0415 - durable loads on use

    lease = info.record.lease_until
    return (lease is not None and lease < rt.store_clock()) or _owner_dead(info.owner)


# -- mai trace / plan / plugins / worker -------------------------------------------------------


def _cmd_trace(ns: argparse.Namespace) -> int:
    from ._agents import render_agent_summary  # noqa: PLC0415

    async def go(rt: Runtime) -> Any:
        return await rt.trace(ns.run_id), list(await rt.steps(ns.run_id))

    handle, steps = _with_runtime(ns, go)
    if ns.json:
        print(handle.to_json(indent=2))
    else:
        print(handle.render(colour=sys.stdout.isatty()))
        if agents := render_agent_summary(ns.run_id, steps):
            print(agents)
    return 0


def _cmd_plan(ns: argparse.Namespace) -> int:

    plan = mai.plan(load_target(ns.target))
    if ns.mermaid:
        print(plan.to_mermaid())
    elif ns.json:
        print(plan.to_json(indent=2))
    else:
        print(f"plan {plan.hash[:16]}  ({ns.target})")
        print(plan.to_mermaid())
    return 0


def _cmd_mcp(ns: argparse.Namespace) -> int:
    from ._mcp import cmd_mcp  # noqa: PLC0415 - `mai mcp serve` lives in its own module

    return cmd_mcp(ns)


def _cmd_plugins(ns: argparse.Namespace) -> int:

    found = mai.plugins()
    if ns.json:
        print(_json([dataclasses.asdict(p) for p in found]))
        return 0
    rows = [
        [
            p.group,
            p.name,
            p.status,
            p.origin if p.distribution is None else f"{p.distribution} {p.version}",
            p.value,
            p.reason or "",
        ]
        for p in found
    ]
    print(
        _table(rows, ["GROUP", "NAME", "STATUS", "FROM", "OBJECT", "REASON"])
        if rows
        else "no plugins installed"
    )
    return 0


def _cmd_ui(ns: argparse.Namespace) -> int:
    from ._ui import run  # noqa: PLC0415

    return run(ns)


def _cmd_worker(ns: argparse.Namespace) -> int:
    from mai.core.durable import run_worker  # noqa: PLC0415 - the durable runtime loads on use
    from mai.core.durable._runtime import default_url  # noqa: PLC0415
    from mai.core.executor import executor_factory  # noqa: PLC0415

    options = {k: v for k in _WORKER_OPTIONS if (v := getattr(ns, k)) is not None}
    options = {**_worker_defaults(), **options}
    queues = ns.queues or ["default"]
    url = ns.store or (f"{ns.executor}://" if ns.executor else default_url())
    factory = executor_factory(url)
    if factory is not None:
        return factory(url).serve(ns.app, queues, options["concurrency"], ns.name)  # type: ignore[no-any-return]
    if ns.executor:
        raise UsageError(
            f"--executor {ns.executor!r}: no installed plugin provides it "
            f"(for Temporal: pip install mai-temporal)"
        )
    return run_worker(url, ns.app, queues, name=ns.name, **options)
