"""One long-lived thread per store, fed by a queue, committing whatever has accumulated.

``trio.to_thread.run_sync`` costs about 70 us a call here, more than a SQLite commit at
``synchronous=normal``; so store calls never hop threads one by one. Calls are queued; the
store thread takes everything queued, runs the reads, then runs all the writes inside one
transaction (one commit, one fsync) and wakes each waiting task with its own result. A fan-out
of 1,000 branches therefore pays a handful of commits, not 1,000.

A batch whose transaction failed because the connection to a database server was lost (a
:class:`StoreError` with ``retryable`` set) is run again once the store has reconnected, for up
to the store's ``retry_seconds``; every write method is conditional, so a re-run is safe.

Waiting for a write is shielded: a commit that has been handed to the store thread is never
abandoned because the waiting task was cancelled; the cancellation is delivered afterwards.

A store whose calls never block (``inline = True``, the in-memory store) skips the thread when it
is idle: the call runs in the calling task as a batch of one (one transaction, the same crash
points and error handling), so a short run pays no cross-thread hand-off per step. A local
store (``local = True``, the SQLite file) does the same under Trio when, besides, no other task
is ready to run: blocking the loop's thread for a commit then delays nobody. Such a call does
not yield to the scheduler each time (a scheduler pass cost more than the call): the loop is
handed back once per millisecond of them (``_SLICE``).

A store that can insert many steps with one statement (``BatchedSteps``, PostgreSQL) gets a
batch's step commits that way: one network round trip instead of one per step; likewise the
outcomes of the runs that finished together (``BatchedFinish``).
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from typing import TYPE_CHECKING, Any

import outcome
import sniffio

from mai._module import library_logger

from ._errors import StoreError
from ._faults import fault_point
from ._store import (
    BatchedFinish,
    BatchedSteps,
    InlineStore,
    LocalStore,
    OneStatementWrites,
    Reconnecting,
)
from ._urls import redact_url

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine

    from ._store import Store

_STOP = object()
_UNKNOWN = object()
_MAX_BATCH = 2000


#: Seconds of store calls made on the event loop's thread between two real yields to it.
_SLICE = 0.001


def _trio_or_none() -> Any:
    """The ``trio`` module when called from Trio, else ``None`` (asyncio, through anyio)."""
    if sniffio.current_async_library() != "trio":
        return None
    import trio  # noqa: PLC0415

    return trio


class _Item:
    """One queued call, and who waits for it: ``deliver(result)``, or a Trio task.

    A Trio task is woken through its run's token (``trio``: ``(token, task)``), so that every
    task of one run answered by a batch is woken with a single call into its event loop.
    """

    __slots__ = ("args", "deliver", "fn", "trio", "write")

    def __init__(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        write: bool,
        deliver: Callable[[outcome.Outcome[Any]], None] | None,
        trio: tuple[Any, Any] | None = None,
    ) -> None:
        self.fn = fn
        self.args = args
        self.write = write
        self.deliver = deliver
        self.trio = trio


def _reschedule_all(woken: list[tuple[Any, outcome.Outcome[Any]]]) -> None:
    """Reschedule Trio tasks with their results (in their event loop's thread)."""
    from trio.lowlevel import reschedule  # noqa: PLC0415 - only under Trio

    for task, result in woken:
        reschedule(task, result)


def _deliver(items: list[_Item], results: list[outcome.Outcome[Any]]) -> None:
    """Answer each item's waiter: one call into each Trio run (a socket write), not one each."""
    runs: dict[Any, list[tuple[Any, outcome.Outcome[Any]]]] = {}
    for item, result in zip(items, results, strict=True):
        if item.trio is None:
            item.deliver(result)  # type: ignore[misc]
        else:
            token, task = item.trio
            runs.setdefault(token, []).append((task, result))
    for token, woken in runs.items():
        token.run_sync_soon(_reschedule_all, woken)


class StoreExecutor:
    """Runs store methods on the store's own thread, grouping writes into transactions.

    Attributes:
        commits: Number of write transactions committed (for tests and benchmarks).
        writes: Number of write calls executed.
    """

    def __init__(self, store: Store) -> None:
        """Prepare an executor for ``store``; call :meth:`start` to begin."""
        self.store = store
        self._queue: queue.SimpleQueue[_Item | object] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self.commits = 0
        self.writes = 0
        # Inline calls: allowed for a non-blocking store while nothing is queued; ``_busy`` is
        # held by whoever runs store calls (the thread for a batch, or an inline caller).
        self._inline = isinstance(store, InlineStore) and store.inline is True
        # Capabilities are checked once here (a runtime-checkable isinstance costs ~20 us).
        self._alone = store.runs_alone if isinstance(store, OneStatementWrites) else None
        self._patience = float(store.retry_seconds) if isinstance(store, Reconnecting) else 0.0
        self._batched = isinstance(store, BatchedSteps)
        self._finishes = isinstance(store, BatchedFinish)
        # A local store's lone call runs on the loop's thread when nothing else is ready there.
        self._local = isinstance(store, LocalStore) and store.local is True
        # What is queued is counted only where a call may run inline (the count says when).
        self._counted = self._inline or self._local
        self._pending = 0
        #: ``trio`` when the calls come from Trio, else ``None`` (found on the first call).
        self._trio: Any = _UNKNOWN
        #: When (``time.perf_counter``) a call made on the loop's thread last yielded to it.
        self._yielded = 0.0
        #: The task that last found the loop idle, and when (see :meth:`_idle`).
        self._idle_task: object = None
        self._idle_at = 0.0
        self._lock = threading.Lock()
        self._busy = threading.Lock()

    def start(self) -> None:
        """Start the store thread."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._loop, name=f"mai-store {redact_url(self.store.url)}", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        """Ask the thread to finish what is queued and stop; wait for it."""
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join()
            self._thread = None

    def read(self, fn: Callable[..., Any], *args: Any) -> Coroutine[Any, Any, Any]:
        """Run ``fn(*args)`` (a store method) on the store thread, outside a transaction."""
        return self._submit(fn, args, write=False)

    def write(self, fn: Callable[..., Any], *args: Any) -> Coroutine[Any, Any, Any]:
        """Run ``fn(*args)`` inside a (grouped) write transaction; wait for its commit."""
        return self._submit(fn, args, write=True)

    def write_nowait(self, fn: Callable[..., Any], *args: Any) -> None:
        """Queue a write without waiting (write-behind); a later awaited write commits after it.

        A failure is logged; use it only for records whose loss a replay can tolerate.
        """

        def deliver(result: outcome.Outcome[Any]) -> None:
            if isinstance(result, outcome.Error):
                library_logger().warning("mai.store.write_failed", error=repr(result.error))

        self._put(_Item(fn, args, True, deliver))

    def _put(self, item: _Item) -> None:
        if self._counted:
            with self._lock:
                self._pending += 1
        self._queue.put(item)

    def _idle(self, trio: Any) -> bool:
        """Whether no other Trio task is ready to run (so blocking this thread delays nobody).

        Trio's statistics cost ~2 us (a local write ~15 us), so a yes is reused by the same
        task for one ``_SLICE``. Another task asking checks again; a task made ready meanwhile
        by the asking task itself waits at most that slice, the bound pacing already allows.
        """
        task = trio.lowlevel.current_task()
        now = time.perf_counter()
        if task is self._idle_task and now - self._idle_at < _SLICE:
            return True
        if trio.lowlevel.current_statistics().tasks_runnable:
            self._idle_task = None
            return False
        self._idle_task, self._idle_at = task, now
        return True

    async def _pace(self) -> None:
        """Yield to the scheduler after calls made on the loop's thread for ``_SLICE``.

        A call made here returns at once, so nothing else runs meanwhile; a real yield (a
        scheduler pass, ~3 us) after every one of them cost more than the call itself. The
        loop is handed back once ``_SLICE`` has passed since the last yield, so other tasks
        and I/O wait at most that long. A yield never raises a pending cancellation (as a wait
        for the store thread does not): the call's result is always returned.
        """
        self._yielded = time.perf_counter()
        trio = self._trio
        if trio is not None:
            await trio.lowlevel.cancel_shielded_checkpoint()
            return
        import anyio  # noqa: PLC0415

        with anyio.CancelScope(shield=True):
            await anyio.lowlevel.checkpoint()

    def _retrying(self, exc: StoreError, give_up: float | None) -> float | None:
        """Whether to run a failed write (or batch) again: when to give up, or ``None`` to stop.

        A lost connection rolled the transaction back: the write runs again once the store has
        reconnected, within its own limit (``retry_seconds``), 50 ms apart. ``give_up`` is
        ``None`` on the first failure.
        """
        now = time.monotonic()
        if give_up is None:
            give_up = now + self._patience
        if getattr(exc, "retryable", False) and now < give_up:
            time.sleep(0.05)
            return give_up
        return None

    def _run_one(self, fn: Callable[..., Any], args: tuple[Any, ...], write: bool) -> Any:
        """Run one call as :meth:`_run_batch` runs a batch of one, returning or raising.

        A read runs outside a transaction. A write runs in its own transaction (or alone, see
        ``runs_alone``); a :class:`StoreError` rolls it back (a reconnecting store's is retried
        within ``retry_seconds``); any other error is the call's answer, after the commit.
        """
        if not write:
            return fn(*args)
        alone = self._alone
        single = alone is not None and alone(fn)
        give_up: float | None = None
        while True:
            error: BaseException | None = None
            try:
                with contextlib.nullcontext() if single else self.store.transaction():
                    try:
                        result = fn(*args)
                    except StoreError:
                        raise
                    except BaseException as exc:  # the call's answer (as in a batch)
                        error = exc
            except StoreError as exc:
                give_up = self._retrying(exc, give_up)
                if give_up is not None:
                    continue
                raise
            break
        self.commits += 1
        self.writes += 1
        fault_point("after_commit")
        if error is not None:
            raise error
        return result

    def call_blocking(self, fn: Callable[..., Any], *args: Any, write: bool = False) -> Any:
        """Run ``fn(*args)`` on the store thread from synchronous code and wait for it."""
        done = threading.Event()
        box: list[outcome.Outcome[Any]] = []

        def deliver(result: outcome.Outcome[Any]) -> None:
            box.append(result)
            done.set()

        self._put(_Item(fn, args, write, deliver))
        done.wait()
        return box[0].unwrap()

    async def _submit(self, fn: Callable[..., Any], args: tuple[Any, ...], *, write: bool) -> Any:
        trio = self._trio
        if trio is _UNKNOWN:
            trio = self._trio = _trio_or_none()
        if (
            not self._pending
            and (self._inline or (write and self._local and trio is not None and self._idle(trio)))
            and self._busy.acquire(blocking=False)  # the store thread is not running a batch
        ):
            # On this thread, as a batch of one: the same transaction, crash points and errors.
            try:
                done = self._run_one(fn, args, write)
            finally:
                self._busy.release()
            if time.perf_counter() - self._yielded >= _SLICE:
                await self._pace()
            return done
        if trio is not None:
            waiter = (trio.lowlevel.current_trio_token(), trio.lowlevel.current_task())
            self._put(_Item(fn, args, write, None, waiter))
            # Abort.FAILED: the wait cannot be cancelled; the commit is never abandoned.
            return await trio.lowlevel.wait_task_rescheduled(lambda _: trio.lowlevel.Abort.FAILED)
        import asyncio  # noqa: PLC0415

        import anyio  # noqa: PLC0415

        loop = asyncio.get_running_loop()
        future: asyncio.Future[outcome.Outcome[Any]] = loop.create_future()

        def deliver_aio(result: outcome.Outcome[Any]) -> None:
            loop.call_soon_threadsafe(future.set_result, result)

        self._put(_Item(fn, args, write, deliver_aio))
        with anyio.CancelScope(shield=True):
            result = await future
        return result.unwrap()

    # -- the store thread ----------------------------------------------------------------------

    def _loop(self) -> None:
        q = self._queue
        while True:
            first = q.get()
            if first is _STOP:
                return
            batch: list[_Item] = [first]  # type: ignore[list-item]
            stop = False
            while len(batch) < _MAX_BATCH:
                try:
                    item = q.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stop = True
                    break
                batch.append(item)  # type: ignore[arg-type]
            with self._busy:
                answers = self._run_batch(batch)
            if self._counted:
                with self._lock:
                    self._pending -= len(batch)
            for items, results in answers:  # once idle: a woken task's next write may go inline
                _deliver(items, results)
            if stop:
                return

    def _at_once(self, writes: list[_Item]) -> dict[_Item, outcome.Outcome[Any]]:
        """Run the batch's step commits, then its outcomes, each with one statement.

        On a database server each ``put_step`` or ``finish_run`` is a network round trip; a
        worker with dozens of runs in flight commits dozens of steps and several outcomes per
        transaction, so this is where its time went. Step commits inserted here are answered
        ``True``; the others (already recorded, or a run no longer owned) still run one by
        one, in order, and decide for themselves. Every outcome written here is answered (a
        second outcome of the same run in the batch is left to ``finish_run``, after).
        Calls of different runs commute, and a run's own calls never share a batch out of
        order (each waits for its commit), so answering these first keeps every answer.
        """
        done: dict[_Item, outcome.Outcome[Any]] = {}
        store = self.store
        if self._batched and isinstance(store, BatchedSteps):  # checked once: __init__
            put_step = store.put_step
            items: list[_Item] = []
            keys: set[tuple[str, str]] = set()
            for item in writes:
                if item.fn == put_step:
                    record = item.args[0]
                    key = (record.run_id, record.step_id)
                    if key not in keys:  # a repeated step is left to put_step (reports False)
                        keys.add(key)
                        items.append(item)
            if len(items) >= 2:
                inserted = store.put_step_batch([item.args for item in items])
                for item, ok in zip(items, inserted, strict=True):
                    if ok:
                        done[item] = outcome.Value(True)
        if self._finishes and isinstance(store, BatchedFinish):
            finish_run = store.finish_run
            items = []
            runs: set[str] = set()
            for item in writes:
                if item.fn == finish_run and item.args[0] not in runs:
                    runs.add(item.args[0])
                    items.append(item)
            if len(items) >= 2:
                recorded = store.finish_run_batch([item.args for item in items])
                for item, ok in zip(items, recorded, strict=True):
                    done[item] = outcome.Value(ok)
        return done

    def _run_batch(
        self, batch: list[_Item]
    ) -> list[tuple[list[_Item], list[outcome.Outcome[Any]]]]:
        """Run a batch (its writes in one transaction); return the answers to deliver.

        The caller delivers them once the executor is idle again, so a task woken by its
        answer finds nothing pending (its next lone write can run inline).
        """
        answers: list[tuple[list[_Item], list[outcome.Outcome[Any]]]] = []
        writes: list[_Item] = []
        reads: list[_Item] = []
        for item in batch:
            (writes if item.write else reads).append(item)
        if reads:
            answers.append((reads, [outcome.capture(item.fn, *item.args) for item in reads]))
        if not writes:
            return answers
        give_up: float | None = None
        # A lone write that the store can make atomic with one statement skips BEGIN/COMMIT
        # (two network round trips on a database server); see ``runs_alone`` in stores.
        alone = self._alone
        single = len(writes) == 1 and alone is not None and alone(writes[0].fn)
        while True:
            results: list[outcome.Outcome[Any]] = []
            try:
                with contextlib.nullcontext() if single else self.store.transaction():
                    answered = self._at_once(writes) if not single else {}
                    for item in writes:
                        if item in answered:  # written by a batched statement above
                            results.append(answered[item])
                            continue
                        result = outcome.capture(item.fn, *item.args)
                        if isinstance(result, outcome.Error) and isinstance(
                            result.error, StoreError
                        ):
                            result.unwrap()  # a storage failure fails the whole batch
                        results.append(result)
            except StoreError as exc:
                give_up = self._retrying(exc, give_up)
                if give_up is not None:
                    continue
                answers.append((writes, [outcome.Error(exc) for _ in writes]))
                return answers
            except BaseException as exc:  # every waiter must be woken with the error
                answers.append((writes, [outcome.Error(exc) for _ in writes]))
                return answers
            break
        self.commits += 1
        self.writes += len(writes)
        fault_point("after_commit")
        answers.append((writes, results))
        return answers
