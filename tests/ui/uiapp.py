"""Workflows the `mai ui` tests run for real (imported by a worker with --app uiapp)."""

from __future__ import annotations

import contextlib
import sys

import trio

import mai


@mai.module
async def fetch(order: int) -> dict[str, int]:
    """Look an order up (a little work, so the timeline has width)."""
    await trio.sleep(0.03)
    return {"order": order, "amount": order * 10}


@mai.module
async def score(order: int) -> float:
    """Score an order, in parallel with fetching it."""
    await trio.sleep(0.05)
    return order / 7


@mai.module
async def decide(pair: tuple[dict[str, int], float]) -> str:
    """Decide from both branches."""
    await trio.sleep(0.01)
    details, risk = pair
    return f"order {details['order']}: {'review' if risk > 5 else 'ok'}"


checkout = mai.Sequential(mai.Parallel(fetch, score), decide).with_(name="checkout")


@mai.module
async def explode(details: dict[str, int]) -> int:
    """Fail on purpose."""
    raise ValueError(f"order {details['order']} has no customer")


broken = mai.Sequential(fetch, explode).with_(name="broken")


@mai.module
async def approval(order: int) -> str:
    """Wait for a person to approve the order (a durable wait)."""
    details = await fetch(order)
    answer = await mai.wait_for("approve")
    return f"order {details['order']} approved={answer}"


@mai.module
async def stuck(order: int) -> str:
    """Wait for an event nobody sends (it is cancelled instead)."""
    await mai.wait_for("never")
    return f"order {order}"


async def populate(url: str, n_extra: int = 0) -> None:
    """Run a composite and a failing run to the end; submit the two waiting runs to the queue."""
    async with mai.Runtime(url) as rt:
        await (await rt.start(checkout, 42, run_id="checkout-42")).result()
        with_error = await rt.start(broken, 7, run_id="broken-7")
        with contextlib.suppress(ValueError):  # the run's own error: it ran in this process
            await with_error.result()
        await rt.submit(approval, 5, run_id="approval-5")
        await rt.submit(stuck, 6, run_id="stuck-6")
        for i in range(n_extra):
            await (await rt.start(checkout, i, run_id=f"bulk-{i:03d}")).result()


if __name__ == "__main__":
    import uiapp  # the workflows' plans must name this module, not __main__

    trio.run(uiapp.populate, sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 0)
