"""Activity bodies under Trio: ``activity_runner="trio"`` on the worker."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
import temporal_flows as f
from test_failures import wait_for_line

import mai

if TYPE_CHECKING:
    from pathlib import Path


@pytest.fixture
def ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A side-effect ledger file the activities append to."""
    path = tmp_path / "ledger.txt"
    path.touch()
    monkeypatch.setenv("MAI_TEST_LEDGER", str(path))
    return path


async def test_a_body_using_trio_only_apis_runs_under_the_trio_runner(url: str) -> None:
    """With activity_runner="trio" a body calling trio.lowlevel APIs succeeds; sync ones too."""
    async with mai.Runtime(url, worker=True, activity_runner="trio") as rt:
        assert await (await rt.start(f.trio_flow, 4)).result() == 9
        assert await (await rt.start(f.sequential, 3)).result() == 12  # a sync body (inc)
        assert await (await rt.start(f.traced, 3, run_id="trio-nested")).result() == 13
        steps = await rt.steps("trio-nested")
        assert [s.step_id for s in steps] == ["1.1", "1.2", "1.2.1", "1.2.2"]


async def test_the_same_body_fails_on_the_asyncio_runner(url: str) -> None:
    """On the default runner the Trio-only body fails (the option is what makes it work)."""
    async with mai.Runtime(url, worker=True) as rt:
        with pytest.raises(RuntimeError):
            await (await rt.start(f.trio_flow, 4)).result()


async def test_a_race_loser_under_trio_is_cancelled(url: str, ledger: Path) -> None:
    """Cancelling a Race loser's activity cancels its Trio body (its finally runs)."""
    async with mai.Runtime(url, worker=True, activity_runner="trio") as rt:
        assert await (await rt.start(f.race, 7)).result() == 14
        assert "slow-end 1.1" in wait_for_line(ledger, "slow-end 1.1")


async def test_a_module_timeout_cancels_the_trio_body(url: str, ledger: Path) -> None:
    """A leaf's own timeout (a workflow timer) cancels its activity and its Trio body."""
    async with mai.Runtime(url, worker=True, activity_runner="trio") as rt:
        with pytest.raises(mai.DeadlineExceeded):
            await (await rt.start(f.slow_leaf, 1)).result()
        assert "slow-end 1" in wait_for_line(ledger, "slow-end 1")


def test_an_unknown_runner_is_a_config_error() -> None:
    """activity_runner accepts asyncio or trio; anything else names the valid choices."""
    from mai_temporal import parse_options

    assert parse_options("temporal://h:1/ns?activity_runner=Trio").activity_runner == "trio"
    with pytest.raises(mai.ConfigError, match="activity_runner expects one of asyncio, trio"):
        parse_options(activity_runner="curio")
