"""The built-in stores pass the public store conformance suite."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

import pytest

import mai.testing
from mai.core.durable import MemoryStore, SQLiteStore, Store

if TYPE_CHECKING:
    from pathlib import Path

_ids = itertools.count()


class TestMemoryStore(mai.testing.StoreConformance):
    """The in-memory store conforms."""

    def make_store(self) -> Store:
        """A fresh named memory store."""
        return MemoryStore(f"memory://conformance-{next(_ids)}")


class TestSQLiteStore(mai.testing.StoreConformance):
    """The SQLite store conforms (on a real file)."""

    @pytest.fixture(autouse=True)
    def _dir(self, tmp_path: Path) -> None:
        """Each test gets its own directory."""
        self.dir = tmp_path

    def make_store(self) -> Store:
        """A fresh SQLite file."""
        return SQLiteStore(f"sqlite:///{self.dir}/store-{next(_ids)}.db")


def test_check_store_names_the_failing_check() -> None:
    """check_store reports which conformance check a broken store fails."""

    class Forgetful(MemoryStore):
        def put_step(self, record, owner, epoch):  # type: ignore[no-untyped-def]
            super().put_step(record, owner, epoch)
            return True  # claims every write was new: breaks exactly-once reporting

    with pytest.raises(AssertionError, match="check_steps_are_recorded_exactly_once_and_fenced"):
        mai.testing.check_store(lambda: Forgetful(f"memory://forgetful-{next(_ids)}"))


def test_memory_transaction_rolls_back_only_its_own_changes():
    """A failed memory transaction undoes exactly its changes; earlier commits stay."""
    from mai.core.durable import MemoryStore, RunRecord

    store = MemoryStore()

    def record(run_id: str) -> RunRecord:
        return RunRecord(run_id=run_id, workflow="w", ref=None, plan_hash="h", plan="{}", input="")

    store.create_run(record("kept"))

    def failing() -> None:
        with store.transaction():
            store.create_run(record("lost"))
            store.add_event("kept", "topic", "1")
            raise RuntimeError

    with pytest.raises(RuntimeError):
        failing()
    assert store.get_run("kept") is not None
    assert store.get_run("lost") is None
    assert store.take_event("kept", "topic", "s1") is None


async def test_inline_store_runs_calls_without_the_store_thread():
    """A non-blocking store's calls run in the calling task while the store thread is idle."""
    import threading

    from mai.core.durable import MemoryStore
    from mai.core.durable._executor import StoreExecutor

    seen = []

    class Probe(MemoryStore):
        def now(self):
            seen.append(threading.get_ident())
            return super().now()

    executor = StoreExecutor(Probe())
    executor.start()
    try:
        await executor.read(executor.store.now)
        await executor.write(executor.store.now)
    finally:
        executor.stop()
    assert seen == [threading.get_ident()] * 2
    assert executor.commits == 1
