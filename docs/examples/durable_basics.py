"""Durable runs: checkpointed steps, attach by id, replay after an interruption, events."""

from __future__ import annotations

import tempfile
from pathlib import Path

import trio

import mai

executed: list[str] = []


@mai.module
async def fetch(order: int) -> dict[str, int]:
    """Pretend to call a slow external service."""
    executed.append(f"fetch({order})")
    return {"order": order, "amount": order * 10}


@mai.module
async def charge(invoice: dict[str, int]) -> str:
    """An external side effect: use the idempotency key to make retries safe."""
    key = mai.Context.get().idempotency_key
    executed.append(f"charge({invoice['order']}) key={key}")
    return f"charged {invoice['amount']} (idempotency key {key})"


@mai.module
async def approve_then_charge(order: int) -> str:
    """Wait durably for a human decision, then charge."""
    invoice = await fetch(order)
    decision = await mai.wait_for("approval", timeout=60)
    if decision != "yes":
        return "rejected"
    return await charge(invoice)


#: A workflow's name is how another process finds it to resume its runs.
checkout = mai.Sequential(fetch, charge, name="checkout")


async def main() -> None:
    """Run, attach, inspect, and answer a human-in-the-loop wait."""
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'demo.db'}"
        async with mai.Runtime(url) as rt:
            handle = await rt.start(checkout, 7, run_id="order-7")
            print(await handle.result())
            # Starting the same id attaches: nothing runs twice.
            again = await rt.start(checkout, 7, run_id="order-7")
            print(await again.result())
            assert executed == ["fetch(7)", "charge(7) key=order-7/1.2"]
            for step in await rt.steps("order-7"):
                print(f"  step {step.step_id} {step.name}: {step.output}")

            waiting = await rt.start(approve_then_charge, 8, run_id="order-8")
            await rt.send("order-8", "approval", "yes")
            print(await waiting.result())
            assert (await rt.get("order-8")).status == mai.RunStatus.SUCCEEDED


if __name__ == "__main__":
    trio.run(main)
