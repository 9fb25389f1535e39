"""Worker processes: claim runs from named queues, execute them, hand them back on shutdown.

A :class:`Worker` is a claim policy over the runtime's run owners: clients enqueue runs with
:meth:`Runtime.submit` and any number of workers, on any number of hosts, claim them from the
store (``claim_next``: ``FOR UPDATE SKIP LOCKED`` on PostgreSQL). The worker decides only what
to claim, how many and when (its queues, its concurrency and per-queue limits, not while a
suspect runs alone); each claimed run goes through the same admission policy as in a
:class:`~mai.Runtime` (``Host.admit``) and is executed by its one
:class:`~mai.core.durable._owner.RunOwner`: leases renewed by heartbeats, fencing on
``(owner, epoch)``, a lost lease cancelling the run's in-flight steps, release on shutdown,
dead-lettering after ``max_attempts``, the plan compatibility check.

The claim loop is also the recovery sweep: it runs continuously and a run whose lease expired
(its worker died or was paused) is claimable again, judged by the store's clock.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
import types
import uuid
from typing import TYPE_CHECKING, Any

import anyio

from mai._errors import MaiError
from mai._module import Module

from ._errors import StoreError, WorkflowNotFoundError
from ._owner import _HOST, _log
from ._runtime import Runtime, default_url
from ._urls import redact_text

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence
    from types import ModuleType

    from ._owner import Host, RunOwner
    from ._store import RunRecord


def load_app(app: str | ModuleType | Iterable[Any]) -> list[Module[..., Any]]:
    """The workflows of an application: every :class:`mai.Module` at module level.

    Args:
        app: A module, its import name (``"myapp.workflows"``; several separated by commas),
            or an iterable of modules.

    Raises:
        ImportError: When the named module cannot be imported.
    """
    if isinstance(app, str):
        found: list[Module[..., Any]] = []
        for name in filter(None, (part.strip() for part in app.split(","))):
            found += load_app(importlib.import_module(name))
        return found
    if isinstance(app, types.ModuleType):
        return [v for v in vars(app).values() if isinstance(v, Module)]
    items: Iterable[Any] = app
    return [m for m in items if isinstance(m, Module)]


class Worker:
    """A worker process: claims runs from named queues of a store and executes them.

    Example::

        worker = mai.Worker("postgresql://db.example/mai", app="myapp.workflows")
        worker.serve()  # until SIGTERM/SIGINT: then drains and hands its runs back

    Args:
        url: Store URL (``postgresql://...`` with the ``mai-postgres`` plugin, or
            ``sqlite:///...`` for several processes on one host).
        app: The application's workflows: a module, an import name (``"myapp.workflows"``) or
            an iterable of modules. Every :class:`mai.Module` found at module level is
            registered under its identity (its name, or for a composite with a default name
            ``pkg.mod:attr``). Runs of workflows it does not know are handed back untouched
            (they may belong to another application sharing the store).
        workflows: More workflow modules to register.
        queues: Names of the queues to claim from.
        concurrency: Most runs this worker executes at once (its per-worker limit).
        name: Worker name (default ``"worker"``); its identity in the store is
            ``host:pid:name:incarnation``, with a random incarnation per process, so a
            restarted worker never inherits its predecessor's leases.
        lease: Seconds a claimed run's lease lasts (judged by the store's clock); renewed
            every third of it. A worker that dies or pauses longer loses its runs to others.
        poll_interval: Seconds between claim sweeps when no notification arrives (the
            fallback when the store has no LISTEN/NOTIFY).
        max_attempts: A run whose execution started this many times without finishing (its
            worker died each time) is dead-lettered instead of started again.
        queue_limits: Global limits per queue: at most this many runs of the queue execute
            at once across every worker (give every worker the same limits).
        worker_queue_limits: Per-worker limits per queue (on top of ``concurrency``).

    Attributes:
        owner: The worker's identity in the store (``host:pid:name:incarnation``).
        runtime: The open :class:`mai.Runtime` while :meth:`run` runs, else ``None``.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        app: str | ModuleType | Iterable[Any] | None = None,
        workflows: Iterable[Module[..., Any]] = (),
        queues: Sequence[str] = ("default",),
        concurrency: int = 10,
        name: str | None = None,
        lease: float = 10.0,
        poll_interval: float = 1.0,
        max_attempts: int = 5,
        queue_limits: Mapping[str, int] | None = None,
        worker_queue_limits: Mapping[str, int] | None = None,
    ) -> None:
        """Configure the worker; nothing is opened before :meth:`run`."""
        if isinstance(queues, str):
            queues = (queues,)
        if not queues:
            raise ValueError("a Worker needs at least one queue name")
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, received {concurrency!r}")
        self.url = url
        self.modules = [*(load_app(app) if app is not None else []), *workflows]
        self.queues = tuple(dict.fromkeys(queues))
        self.concurrency = int(concurrency)
        self.name = name or "worker"
        self.incarnation = uuid.uuid4().hex[:12]
        self.owner = f"{_HOST}:{os.getpid()}:{self.name}:{self.incarnation}"
        self.lease = float(lease)
        self.poll_interval = float(poll_interval)
        self.max_attempts = int(max_attempts)
        self.queue_limits = dict(queue_limits or {})
        self.worker_queue_limits = dict(worker_queue_limits or {})
        self.runtime: Runtime | None = None
        self._mine: dict[str, RunOwner] = {}
        self._wake: anyio.Event | None = None
        self._hungry = True  # claim even one free slot (see _claim)
        self._tg: Any = None

    def __repr__(self) -> str:
        """Return a short description."""
        return f"<Worker {self.owner} queues={list(self.queues)}>"

    # -- running -------------------------------------------------------------------------------

    async def run(self, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        """Claim and execute runs until cancelled; then hand every unfinished run back.

        On cancellation (for example by :meth:`serve` on SIGTERM) the in-flight steps are
        cancelled through their cancel scopes, nothing more is committed for them, and each
        run is released at once (PENDING, no owner) so another worker resumes it without
        waiting for the lease to expire.

        Args:
            task_status: For ``nursery.start(worker.run)``: started once the store is open.
        """
        self.owner = f"{_HOST}:{os.getpid()}:{self.name}:{self.incarnation}"
        rt = Runtime(
            self.url,
            workflows=self.modules,
            lease=self.lease,
            max_attempts=self.max_attempts,
            poll_interval=self.poll_interval,
        )
        rt.owner = self.owner
        self._wake = anyio.Event()
        async with rt:
            self.runtime = rt
            try:
                async with anyio.create_task_group() as tg:
                    self._tg = tg
                    # finished runs matter only to a worker with global queue limits
                    listener = rt.async_store.listener(slots=bool(self.queue_limits))
                    if listener is not None:
                        # LISTEN before claiming: a run submitted from now on wakes us
                        self._notified(await anyio.to_thread.run_sync(listener.wait, 0.0))
                        tg.start_soon(self._listen, listener)
                    tg.start_soon(self._claim_loop, rt)
                    _log().info("mai.worker_started", worker=self.owner, queues=self.queues)
                    task_status.started(self)
            finally:
                self.runtime = None
                _log().info("mai.worker_stopping", worker=self.owner, runs=len(rt._active))

    def serve(self, *, on_started: Callable[[Worker], object] | None = None) -> int:
        """Run the worker under ``trio.run`` until SIGTERM or SIGINT; then drain and return 0.

        Args:
            on_started: Called with the worker once its store is open and it claims runs.

        Returns:
            The process exit code: 0 after a drain, 1 when the worker failed (logged).
        """
        import trio  # noqa: PLC0415

        async def main() -> int:
            with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                async with trio.open_nursery() as nursery:
                    await nursery.start(self.run)
                    if on_started is not None:
                        on_started(self)

                    async def stop_on_signal() -> None:
                        async for signum in signals:
                            _log().info("mai.worker_draining", worker=self.owner, signal=signum)
                            nursery.cancel_scope.cancel()
                            return

                    nursery.start_soon(stop_on_signal)
            return 0

        try:
            return trio.run(main)
        except MaiError as exc:
            text = redact_text(f"{type(exc).__name__}: {exc}", self.url or default_url())
            print(f"mai worker: {text}", file=sys.stderr)  # noqa: T201 - a CLI
            return 1

    # -- the claim loop (also the continuous recovery sweep) -----------------------------------

    async def _claim_loop(self, rt: Runtime) -> None:
        host = rt._host
        assert host is not None  # noqa: S101
        host.finished = self._finished
        backoff = self.poll_interval
        while True:
            self._wake = anyio.Event()
            try:
                claimed = await self._claim(rt, host)
            except StoreError as exc:
                host.report(exc)
                await anyio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
                continue
            backoff = self.poll_interval
            handed_back = 0
            for record in await host.isolate(claimed, busy=bool(self._mine)):
                found = rt._module_for(record)
                # a run of another application sharing the store is handed back untouched
                handed_back += isinstance(found, WorkflowNotFoundError)
                owner = await host.admit(record, found, claimed=True)
                if owner is not None:
                    self._mine[record.run_id] = owner
            if claimed and handed_back < len(claimed) and len(self._mine) < self.concurrency:
                continue  # there may be more waiting (not only runs of other applications)
            with anyio.move_on_after(self.poll_interval) as waited:
                await self._wake.wait()
            # a poll (not a finishing run) claims even a few free slots; see _claim
            self._hungry = waited.cancel_called

    async def _claim(self, rt: Runtime, host: Host) -> list[RunRecord]:
        free = self.concurrency - len(self._mine)
        if self._mine and free < max(1, self.concurrency // 4) and not self._hungry:
            return []  # busy: claim in bulk once a quarter of the slots are free
        if free <= 0 or host.isolating():
            return []  # full, or executing a suspect alone until it makes progress
        store = host.store
        if not self.worker_queue_limits:
            return await store.claim_next(
                self.queues, host.owner, rt.lease, free, self.queue_limits
            )
        out: list[RunRecord] = []
        for queue in self.queues:
            mine = sum(1 for a in self._mine.values() if a.record.queue == queue)
            room = min(free - len(out), self.worker_queue_limits.get(queue, free) - mine)
            if room > 0:
                out += await store.claim_next(
                    [queue], host.owner, rt.lease, room, self.queue_limits
                )
        return out

    def _finished(self, active: RunOwner) -> None:
        """A run ended here (the host calls this): its slot is free."""
        if self._mine.get(active.run_id) is active:
            del self._mine[active.run_id]
        self._poke()

    def _poke(self) -> None:
        if self._wake is not None:
            self._wake.set()

    # -- notifications (LISTEN/NOTIFY on PostgreSQL) -------------------------------------------

    async def _listen(self, listener: Any) -> None:
        """Wake the claim loop and waiting runs as soon as the store notifies."""
        try:
            while True:
                notes = await anyio.to_thread.run_sync(listener.wait, 0.5)
                self._notified(notes)
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(listener.close)

    def _notified(self, notes: list[tuple[str, str]]) -> None:
        rt = self.runtime
        for channel, payload in notes:
            if channel == "events" and rt is not None:
                active = rt._active.get(payload)
                if active is not None:  # a message for a run waiting in mai.wait_for
                    active.wake()
            elif channel == "runs" and payload in self.queues:
                self._poke()
            elif channel == "reconnected":
                self._poke()
                for active in list(rt._active.values()) if rt is not None else []:
                    active.wake()


def run_worker(
    store_url: str,
    app: str,
    queues: Sequence[str] = ("default",),
    concurrency: int = 10,
    name: str | None = None,
    **options: Any,
) -> int:
    """Run a worker process until SIGTERM/SIGINT; return its exit code (for ``mai worker``).

    Args:
        store_url: The store URL (``--store``).
        app: Import name of the module holding the workflows (``--app myapp.workflows``).
        queues: Queue names (``--queue``, repeatable).
        concurrency: Runs executed at once (``--concurrency``).
        name: Worker name (``--name``).
        **options: Other :class:`Worker` options (``lease``, ``poll_interval``, ...).

    Returns:
        0 after a clean drain, 1 when the worker failed (store unreachable, ...), 2 when the
        application could not be loaded.
    """
    try:
        worker = Worker(
            store_url, app=app, queues=queues, concurrency=concurrency, name=name, **options
        )
    except (ImportError, ValueError) as exc:
        print(f"mai worker: cannot load {app!r}: {exc}", file=sys.stderr)  # noqa: T201
        return 2
    if not worker.modules:
        print(f"mai worker: {app!r} has no mai modules at module level", file=sys.stderr)  # noqa: T201
        return 2
    return worker.serve()
