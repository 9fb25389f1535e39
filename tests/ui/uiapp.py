"""Workflows the `mai ui` tests run for real (imported by a worker with --app uiapp)."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Any

import trio

import mai
from mai.testing import ScriptedModel, tool_call


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


@mai.module
def settle(details: dict[str, int]) -> str:
    """Charge an order: fails until its cause is fixed (the file named by $MAI_UI_FIX exists)."""
    fix = os.environ.get("MAI_UI_FIX")
    if not fix or not Path(fix).exists():
        raise RuntimeError(f"order {details['order']}: the payment service is down")
    return f"order {details['order']} settled for {details['amount']}"


flaky = mai.Sequential(fetch, settle).with_(name="flaky")


async def failed(url: str, run_ids: list[str]) -> None:
    """Run ``flaky`` under each id until it fails (the cause is not fixed yet)."""
    async with mai.Runtime(url) as rt:
        for i, run_id in enumerate(run_ids):
            handle = await rt.start(flaky, 80 + i, run_id=run_id)
            with contextlib.suppress(RuntimeError):  # the run's own error: it ran here
                await handle.result()


@mai.module
async def tick(n: int) -> int:
    """One small step."""
    return n + 1


@mai.module
async def long_run(n: int) -> int:
    """``n`` steps in a row (more than a run's page sends at first)."""
    x = 0
    for _ in range(n):
        x = await tick(x)
    return x


async def populate(url: str, n_extra: int = 0) -> None:
    """Run a composite and a failing run to the end; submit the two waiting runs to the queue."""
    async with mai.Runtime(url) as rt:
        await (await rt.start(checkout, 42, run_id="checkout-42")).result()
        with_error = await rt.start(broken, 7, run_id="broken-7")
        with contextlib.suppress(ValueError):  # the run's own error: it ran in this process
            await with_error.result()
        await rt.submit(approval, 5, run_id="approval-5")
        await rt.submit(stuck, 6, run_id="stuck-6")
        await (await rt.start(support, "Where is order 9?", run_id="support-9")).result()
        await rt.submit(shipper, "Ship order 9, please.", run_id="ship-9")
        await (await rt.start(long_run, 400, run_id="long-400")).result()
        for i in range(n_extra):
            await (await rt.start(checkout, i, run_id=f"bulk-{i:03d}")).result()


@mai.module
async def lookup(order: int) -> dict[str, Any]:
    """Look an order's delivery up.

    Args:
        order: The order number.
    """
    return {"order": order, "eta": "tomorrow"}


@mai.module
async def ship(order: int) -> str:
    """Ship an order once a person approves it (a durable wait inside the tool).

    Args:
        order: The order number.
    """
    approved = await mai.wait_for("approve")
    return f"order {order} shipped" if approved else f"order {order} held"


def answer(tool: str, done: str) -> Any:
    """A scripted model: call ``tool`` for order 9, then answer ``done`` (replay-safe)."""

    def reply(messages: list[Any], _params: Any) -> Any:
        if any(p.kind == "tool-return" for p in messages[-1].parts):
            return done
        return tool_call(tool, {"order": 9})

    return ScriptedModel(reply, model_name="scripted-1")


support = mai.Agent(
    answer("lookup", "Order 9 ships tomorrow."),
    instructions="You answer questions about orders.",
    tools=[lookup],
    name="support",
)
shipper = mai.Agent(
    answer("ship", "Order 9 is on its way."),
    instructions="You ship orders; shipping needs a person's approval.",
    tools=[ship],
    name="shipper",
)


async def late(url: str, run_id: str) -> None:
    """Start one more run while the page is open (live updates)."""
    async with mai.Runtime(url) as rt:
        await (await rt.start(checkout, 3, run_id=run_id)).result()


if __name__ == "__main__":
    import uiapp  # the workflows' plans must name this module, not __main__

    command, url = sys.argv[1], sys.argv[2]
    if command == "populate":
        trio.run(uiapp.populate, url, int(sys.argv[3]) if len(sys.argv) > 3 else 0)
    elif command == "failed":
        trio.run(uiapp.failed, url, sys.argv[3:])
    elif command == "late":
        trio.run(uiapp.late, url, sys.argv[3])
    else:  # a worker with a short lease, so a cancel requested in the UI lands quickly
        sys.exit(mai.Worker(url, app=uiapp, lease=1.5, poll_interval=0.2).serve())
