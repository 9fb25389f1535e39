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
