"""A conformance suite every durable store must pass (memory, SQLite, plugins such as PostgreSQL).

Use it from pytest by subclassing :class:`StoreConformance` and saying how to make a fresh,
empty store::

    class TestMyStore(mai.testing.StoreConformance):
        def make_store(self):
            return MyStore("mystore://...")

or call :func:`check_store` from anywhere; it raises ``AssertionError`` naming the first check
that failed. Each check gets a new store from the factory, opens it, and closes it afterwards.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from typing import TYPE_CHECKING, Any, ClassVar

import trio

from mai.core.durable import (
    ExecutorStore,
    LeaseLostError,
    RunQuery,
    RunRecord,
    RunStatus,
    StepRecord,
    Store,
)

if TYPE_CHECKING:
    from collections.abc import Callable


def _run(run_id: str | None = None, **changes: Any) -> RunRecord:
    fields: dict[str, Any] = {
        "run_id": run_id or f"run-{uuid.uuid4().hex[:8]}",
        "workflow": "wf",
        "ref": "pkg.mod:wf",
        "plan_hash": "h1",
        "plan": '{"nodes":{}}',
        "input": '{"args":[1],"kwargs":{}}',
        "created_at": time.time(),
    }
    fields.update(changes)
    return RunRecord(**fields)


def _step(run_id: str, step_id: str, output: str = "1") -> StepRecord:
    now = time.time()
    return StepRecord(
        run_id, step_id, "step", "call", '{"args":[],"kwargs":{}}', output, "json", now, now, 1, "w"
    )


def _write(store: Store, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    with store.transaction():
        return fn(*args, **kwargs)


def _claimed(store: Store, owner: str = "owner-a", lease: float = 30.0) -> RunRecord:
    run, created = _write(store, store.create_run, _run())
    assert created, "create_run must report a new run as created"
    claimed = _write(store, store.claim_run, run.run_id, owner, lease)
    assert claimed is not None, "a PENDING run without owner must be claimable"
    return claimed  # type: ignore[no-any-return]


def check_create_is_idempotent(store: Store) -> None:
    """create_run inserts once; a second create with the same id returns the stored run."""
    first, created = _write(store, store.create_run, _run("same", input='{"args":[1],"kwargs":{}}'))
    assert created
    assert first.status == RunStatus.PENDING
    again, created_again = _write(
        store, store.create_run, _run("same", input='{"args":[2],"kwargs":{}}')
    )
    assert not created_again, "creating an existing run id must attach, not insert"
    assert again.input == '{"args":[1],"kwargs":{}}', "the stored run must not be overwritten"
    assert store.get_run("same") == again
    assert store.get_run("missing") is None


def check_list_runs_filters_by_status(store: Store) -> None:
    """list_runs returns every run, or only those with the given status."""
    a, _ = _write(store, store.create_run, _run("a", created_at=1.0))
    b = _claimed(store)
    names = {r.run_id for r in store.list_runs()}
    assert {a.run_id, b.run_id} <= names
    assert [r.run_id for r in store.list_runs(RunStatus.RUNNING)] == [b.run_id]
    assert a.run_id in {r.run_id for r in store.list_runs(RunStatus.PENDING)}


def check_claim_takes_free_or_expired_leases_only(store: Store) -> None:
    """A live lease cannot be claimed; an expired one can, with a higher epoch."""
    run = _claimed(store, "owner-a")
    assert run.status == RunStatus.RUNNING
    assert run.owner == "owner-a"
    assert run.epoch == 1
    assert run.attempts == 1
    assert _write(store, store.claim_run, run.run_id, "owner-b", 30.0) is None
    stolen = _write(store, store.claim_run, run.run_id, "owner-b", 30.0, steal_from="owner-a")
    assert stolen is not None, "steal_from names a dead owner whose run may be taken"
    assert stolen.owner == "owner-b"
    assert stolen.epoch == 2
    expired = _claimed(store, "owner-a", lease=-1.0)
    taken = _write(store, store.claim_run, expired.run_id, "owner-c", 30.0)
    assert taken is not None, "a run whose lease expired must be claimable"
    assert taken.epoch == expired.epoch + 1


def check_steps_are_recorded_exactly_once_and_fenced(store: Store) -> None:
    """put_step records once, never overwrites, and rejects a stale owner or epoch."""
    run = _claimed(store, "owner-a")
    assert (
        _write(store, store.put_step, _step(run.run_id, "1.1", "10"), "owner-a", run.epoch) is True
    )
    assert (
        _write(store, store.put_step, _step(run.run_id, "1.1", "99"), "owner-a", run.epoch) is False
    )
    (only,) = store.load_steps(run.run_id)
    assert only.output == "10", "a recorded step must never be overwritten"
    for owner, epoch in (("owner-b", run.epoch), ("owner-a", run.epoch + 7)):
        try:
            _write(store, store.put_step, _step(run.run_id, "1.2"), owner, epoch)
        except LeaseLostError:
            pass
        else:
            raise AssertionError(f"put_step by ({owner}, {epoch}) must raise LeaseLostError")
    assert [s.step_id for s in store.load_steps(run.run_id)] == ["1.1"]


def check_step_records_round_trip(store: Store) -> None:
    """load_steps returns exactly what put_step stored."""
    run = _claimed(store)
    record = _step(run.run_id, "1.3", '{"a": [1, 2]}')
    _write(store, store.put_step, record, run.owner, run.epoch)
    assert store.load_steps(run.run_id) == [record]


def check_finish_is_exactly_once_and_fenced(store: Store) -> None:
    """finish_run records one outcome; a stale epoch or second call changes nothing."""
    run = _claimed(store, "owner-a")
    assert not _write(
        store, store.finish_run, run.run_id, "owner-a", run.epoch + 1, RunStatus.FAILED, None, "{}"
    )
    assert _write(
        store, store.finish_run, run.run_id, "owner-a", run.epoch, RunStatus.SUCCEEDED, "2", None
    )
    assert not _write(
        store, store.finish_run, run.run_id, "owner-a", run.epoch, RunStatus.FAILED, None, "{}"
    )
    done = store.get_run(run.run_id)
    assert done is not None
    assert done.status == RunStatus.SUCCEEDED
    assert done.output == "2"
    assert _write(store, store.claim_run, run.run_id, "owner-b", 30.0) is None, (
        "terminal runs stay closed"
    )


def check_renew_and_release(store: Store) -> None:
    """renew_lease works only for the owner; release_run makes the run claimable at once."""
    run = _claimed(store, "owner-a")
    assert _write(store, store.renew_lease, run.run_id, "owner-a", run.epoch, 30.0)
    assert not _write(store, store.renew_lease, run.run_id, "owner-b", run.epoch, 30.0)
    assert not _write(store, store.release_run, run.run_id, "owner-b", run.epoch)
    assert _write(store, store.release_run, run.run_id, "owner-a", run.epoch)
    released = store.get_run(run.run_id)
    assert released is not None
    assert released.status == RunStatus.PENDING
    assert released.owner is None
    assert _write(store, store.claim_run, run.run_id, "owner-b", 30.0) is not None


def check_claim_next_takes_at_most_limit_oldest_first(store: Store) -> None:
    """claim_next returns at most ``limit`` runs of the asked queues, oldest first, once each."""
    base = time.time()
    ids = [f"cn-{uuid.uuid4().hex[:6]}-{i}" for i in range(5)]
    for i, run_id in enumerate(ids):
        _write(store, store.create_run, _run(run_id, created_at=base + i, queue="cn"))
    _write(store, store.create_run, _run(created_at=base - 10, queue="elsewhere"))
    assert _write(store, store.claim_next, ["cn"], "owner-a", 30.0, 0) == []
    first = _write(store, store.claim_next, ["cn"], "owner-a", 30.0, 2)
    assert [r.run_id for r in first] == ids[:2], (
        "claims must be oldest first, never more than asked"
    )
    for run in first:
        assert (run.status, run.owner, run.epoch, run.attempts) == (
            RunStatus.RUNNING,
            "owner-a",
            1,
            1,
        )
        assert run.lease_until is not None
    rest = _write(store, store.claim_next, ["cn", "missing"], "owner-b", 30.0, 10)
    assert [r.run_id for r in rest] == ids[2:], "a live lease is never claimed twice"
    assert _write(store, store.claim_next, ["cn"], "owner-c", 30.0, 10) == []


def check_claim_next_sweeps_expired_and_skips_parked(store: Store) -> None:
    """claim_next takes RUNNING runs whose lease expired, and not PENDING runs parked till later."""
    expired = _claimed(store, "owner-a", lease=-1.0)
    parked, _ = _write(
        store, store.create_run, _run(queue=expired.queue, lease_until=time.time() + 3600)
    )
    taken = _write(store, store.claim_next, [expired.queue], "owner-b", 30.0, 10)
    assert [r.run_id for r in taken] == [expired.run_id], "only the expired lease is claimable"
    assert taken[0].epoch == expired.epoch + 1
    assert taken[0].owner == "owner-b"
    assert not _write(store, store.renew_lease, expired.run_id, "owner-a", expired.epoch, 30.0)
    assert store.get_run(parked.run_id).status == RunStatus.PENDING  # type: ignore[union-attr]


def check_claim_next_honours_queue_limits(store: Store) -> None:
    """A queue limit caps the runs RUNNING with a live lease in that queue, across owners."""
    queue = f"limited-{uuid.uuid4().hex[:6]}"
    for i in range(4):
        _write(store, store.create_run, _run(queue=queue, created_at=time.time() + i))
    limits = {queue: 2}
    a = _write(store, store.claim_next, [queue], "owner-a", 30.0, 1, limits)
    b = _write(store, store.claim_next, [queue], "owner-b", 30.0, 5, limits)
    assert (len(a), len(b)) == (1, 1), "the global limit of 2 must hold across owners"
    assert _write(store, store.claim_next, [queue], "owner-c", 30.0, 5, limits) == []
    assert _write(
        store, store.finish_run, a[0].run_id, "owner-a", 1, RunStatus.SUCCEEDED, "1", None
    )
    c = _write(store, store.claim_next, [queue], "owner-c", 30.0, 5, limits)
    assert len(c) == 1, "a finished run frees its slot"
    unlimited = _write(store, store.claim_next, [queue], "owner-d", 30.0, 5)
    assert len(unlimited) == 1, "without limits the rest is claimable"


def check_release_does_not_count_an_attempt(store: Store) -> None:
    """release_run hands the run back without counting the attempt towards dead-lettering."""
    run = _claimed(store, "owner-a")
    assert run.attempts == 1
    assert _write(store, store.release_run, run.run_id, "owner-a", run.epoch)
    released = store.get_run(run.run_id)
    assert released is not None
    assert released.attempts == 0
    again = _write(store, store.claim_run, run.run_id, "owner-b", 30.0)
    assert again is not None
    assert (again.attempts, again.epoch) == (1, run.epoch + 1)


def check_progress_resets_attempts(store: Store) -> None:
    """mark_progress sets the count of starts without progress back to 1, for the owner only."""
    run = _claimed(store, "owner-a", lease=-1.0)
    again = _write(store, store.claim_run, run.run_id, "owner-b", 30.0)
    assert again is not None
    assert again.attempts == 2
    assert not _write(store, store.mark_progress, run.run_id, "owner-a", run.epoch)
    assert _write(store, store.mark_progress, run.run_id, "owner-b", again.epoch)
    progressed = store.get_run(run.run_id)
    assert progressed is not None
    assert progressed.attempts == 1


def check_dead_letter_once_with_reason(store: Store) -> None:
    """dead_letter marks a live run DEAD with its reason, once."""
    run, _ = _write(store, store.create_run, _run())
    assert _write(store, store.dead_letter, run.run_id, "invalid JSON input")
    assert not _write(store, store.dead_letter, run.run_id, "again")
    dead = store.get_run(run.run_id)
    assert dead is not None
    assert dead.status == RunStatus.DEAD
    assert dead.error == "invalid JSON input"


def check_requeue_keeps_steps_and_history(store: Store) -> None:
    """requeue_run brings a DEAD or FAILED run back PENDING, keeping its steps and its outcome."""
    live = _claimed(store)
    assert _write(store, store.requeue_run, live.run_id) is None, "a RUNNING run is not requeued"
    assert store.load_history(live.run_id) == []
    _write(store, store.put_step, _step(live.run_id, "1"), live.owner, live.epoch)
    error = '{"type": "ValueError", "message": "boom"}'
    assert _write(
        store, store.finish_run, live.run_id, live.owner, live.epoch, RunStatus.FAILED, None, error
    )
    again = _write(store, store.requeue_run, live.run_id)
    assert again is not None, "a FAILED run must be requeued"
    assert again.status == RunStatus.PENDING
    assert (again.owner, again.lease_until, again.output, again.error) == (None, None, None, None)
    assert again.attempts == 0
    assert [s.step_id for s in store.load_steps(live.run_id)] == ["1"]
    (first,) = store.load_history(live.run_id)
    assert (first.seq, first.status, first.error) == (1, "FAILED", error)
    dead, _ = _write(store, store.create_run, _run())
    assert _write(store, store.dead_letter, dead.run_id, "poison")
    assert _write(store, store.requeue_run, dead.run_id) is not None
    assert [(h.seq, h.status, h.error) for h in store.load_history(dead.run_id)] == [
        (1, "DEAD", "poison")
    ]
    assert _write(store, store.requeue_run, "no-such-run") is None


def check_cancel_requests(store: Store) -> None:
    """request_cancel cancels an unowned run at once and flags an owned one."""
    free, _ = _write(store, store.create_run, _run())
    cancelled = _write(store, store.request_cancel, free.run_id)
    assert cancelled.status == RunStatus.CANCELLED
    owned = _claimed(store, "owner-a")
    flagged = _write(store, store.request_cancel, owned.run_id)
    assert flagged.status == RunStatus.RUNNING
    assert flagged.cancel_requested
    assert _write(store, store.request_cancel, "missing") is None


def check_events_are_taken_once_in_order(store: Store) -> None:
    """Messages are consumed oldest first, once, and idempotently per step."""
    run, _ = _write(store, store.create_run, _run())
    _write(store, store.add_event, run.run_id, "t", '"first"')
    _write(store, store.add_event, run.run_id, "t", '"second"')
    _write(store, store.add_event, run.run_id, "other", '"x"')
    a = _write(store, store.take_event, run.run_id, "t", "1.1")
    assert a is not None
    assert a.payload == '"first"'
    again = _write(store, store.take_event, run.run_id, "t", "1.1")
    assert again is not None
    assert again.event_id == a.event_id, "taking again for the same step returns the same message"
    b = _write(store, store.take_event, run.run_id, "t", "1.2")
    assert b is not None
    assert b.payload == '"second"'
    assert _write(store, store.take_event, run.run_id, "t", "1.3") is None


def check_transactions_roll_back(store: Store) -> None:
    """A transaction that raises leaves no trace."""
    marker = f"rolled-back-{uuid.uuid4().hex[:6]}"

    def fail() -> None:
        with store.transaction():
            store.create_run(_run(marker))
            raise _Rollback

    with contextlib.suppress(_Rollback):
        fail()
    assert store.get_run(marker) is None


def check_the_async_interface_drives_a_run(store: Store) -> None:
    """The async interface (ExecutorStore) over the store does every operation of a run's life.

    Create, claim, commit steps, renew, progress, messages, a page of runs, the outcome with
    what finished before it, requeue and history, release, cancel and dead-letter: each
    through the coroutine the runtime, workers, CLI and web view use, on the store's thread.
    """
    trio.run(_drive_async, store)


async def _drive_async(store: Store) -> None:
    astore = ExecutorStore(store)
    astore.executor.start()
    try:
        assert astore.url == store.url
        assert abs(await astore.now() - time.time()) < 3600, "now() must be epoch seconds"
        run, created = await astore.create_run(_run("async-a"))
        assert created
        assert await astore.get_run("async-a") == run
        claimed = await astore.claim("async-a", "owner-a", 30.0, None)
        assert claimed is not None
        assert claimed.owner == "owner-a"
        assert await astore.claim("async-a", "owner-b", 30.0, None) is None, "a live lease holds"
        epoch = claimed.epoch
        assert await astore.put_step(_step("async-a", "1"), "owner-a", epoch) is True
        await astore.put_steps([_step("async-a", "2"), _step("async-a", "3")], "owner-a", epoch)
        steps = await astore.load_steps("async-a")
        assert sorted(s.step_id for s in steps) == ["1", "2", "3"]
        assert await astore.renew("async-a", "owner-a", epoch, 30.0) == (True, False)
        assert await astore.renew("async-a", "owner-b", epoch, 30.0) == (False, False)
        await astore.mark_progress("async-a", "owner-a", epoch)
        assert (await astore.get_run("async-a")).attempts == 1  # type: ignore[union-attr]
        await astore.add_event("async-a", "go", '{"n": 1}')
        got = await astore.take_event("async-a", "go", "4", "owner-a", epoch, False, "owner-a")
        assert got is not None
        assert got.kind == "event"
        assert await astore.take_event("async-a", "go", "5", "owner-a", epoch, False, "w") is None
        timed = await astore.take_event("async-a", "go", "5", "owner-a", epoch, True, "w")
        assert timed is not None, "a timed-out wait is recorded as the wait's step"
        page, _cursor = await astore.page_runs(RunQuery(), None, 10)
        assert "async-a" in {r.run_id for r in page}
        late = _step("async-a", "6")
        assert (
            await astore.finish([late], "async-a", "owner-b", epoch, RunStatus.SUCCEEDED, "1", None)
            is False
        ), "finish by a stale owner must be fenced"
        assert await astore.finish(
            [late], "async-a", "owner-a", epoch, RunStatus.FAILED, None, '{"type": "E"}'
        )
        assert "6" in {s.step_id for s in await astore.load_steps("async-a")}, (
            "finish commits the steps that finished before the outcome"
        )
        requeued = await astore.requeue_run("async-a")
        assert requeued is not None
        assert requeued.status == RunStatus.PENDING
        assert [h.status for h in await astore.load_history("async-a")] == ["FAILED"]
        (queued,) = await astore.claim_next(["default"], "owner-c", 30.0, 5, None)
        assert queued.run_id == "async-a"
        assert await astore.release([], "async-a", "owner-c", queued.epoch)
        assert (await astore.get_run("async-a")).status == RunStatus.PENDING  # type: ignore[union-attr]
        await astore.create_run(_run("async-b"))
        assert (await astore.request_cancel("async-b")) is not None
        await astore.create_run(_run("async-c"))
        assert await astore.dead_letter("async-c", "poisoned")
        statuses = {r.run_id: r.status for r in await astore.list_runs(None, 100)}
        assert statuses["async-b"] == RunStatus.CANCELLED
        assert statuses["async-c"] == RunStatus.DEAD
        assert astore.blocking(store.get_run, "async-c").error == "poisoned"
    finally:
        astore.executor.stop()


class _Rollback(Exception):
    """Raised to abort a transaction on purpose."""


CHECKS: tuple[Callable[[Store], None], ...] = (
    check_create_is_idempotent,
    check_list_runs_filters_by_status,
    check_claim_takes_free_or_expired_leases_only,
    check_steps_are_recorded_exactly_once_and_fenced,
    check_step_records_round_trip,
    check_finish_is_exactly_once_and_fenced,
    check_renew_and_release,
    check_claim_next_takes_at_most_limit_oldest_first,
    check_claim_next_sweeps_expired_and_skips_parked,
    check_claim_next_honours_queue_limits,
    check_release_does_not_count_an_attempt,
    check_progress_resets_attempts,
    check_dead_letter_once_with_reason,
    check_requeue_keeps_steps_and_history,
    check_cancel_requests,
    check_events_are_taken_once_in_order,
    check_transactions_roll_back,
    check_the_async_interface_drives_a_run,
)


def check_store(make_store: Callable[[], Store]) -> None:
    """Run every conformance check against fresh stores from ``make_store``.

    Raises:
        AssertionError: Naming the check that failed and why.
    """
    for check in CHECKS:
        _run_check(make_store, check)


def _run_check(make_store: Callable[[], Store], check: Callable[[Store], None]) -> None:
    store = make_store()
    assert isinstance(store, Store), (
        f"{type(store).__name__} does not implement mai's Store protocol"
    )
    store.open()
    try:
        assert store.schema_version() >= 1
        check(store)
    except AssertionError as exc:
        raise AssertionError(f"store conformance check {check.__name__} failed: {exc}") from exc
    finally:
        store.close()


class StoreConformance:
    """Subclass in a pytest module and implement :meth:`make_store` to test a store.

    Every check in the suite becomes a test method (``test_check_create_is_idempotent``, ...).
    """

    checks: ClassVar[tuple[Callable[[Store], None], ...]] = CHECKS

    def make_store(self) -> Store:
        """Return a new, empty, unopened store."""
        raise NotImplementedError

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Nothing to do: the test methods are defined on this base class."""
        super().__init_subclass__(**kwargs)


def _make_test(check: Callable[[Store], None]) -> Callable[[StoreConformance], None]:
    def test(self: StoreConformance) -> None:
        _run_check(self.make_store, check)

    test.__name__ = f"test_{check.__name__}"
    test.__doc__ = (check.__doc__ or "").strip().splitlines()[0]  # its one-line summary
    return test


for _check in CHECKS:
    setattr(StoreConformance, f"test_{_check.__name__}", _make_test(_check))
