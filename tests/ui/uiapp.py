"""Workflows the `mai ui` tests run for real (imported by a worker with --app uiapp)."""

from __future__ import annotations

import contextlib
import json
import sys
from typing import Any

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
        await (await rt.start(support, "Where is order 9?", run_id="support-9")).result()
        for i in range(n_extra):
            await (await rt.start(checkout, i, run_id=f"bulk-{i:03d}")).result()


@mai.module
async def model_request(turn: int, request: dict[str, Any]) -> dict[str, Any]:
    """A scripted model turn recorded in the agent layer's message shapes (ModelResponse)."""
    if turn == 1:
        parts = [
            {
                "kind": "tool-call",
                "tool_name": "lookup",
                "args": '{"order": 9}',
                "tool_call_id": "call-1",
            }
        ]
        usage = {"requests": 1, "input_tokens": 31, "output_tokens": 12}
    else:
        parts = [{"kind": "text", "content": "Order 9 ships tomorrow."}]
        usage = {"requests": 1, "input_tokens": 58, "output_tokens": 7}
    return {
        "kind": "response",
        "parts": parts,
        "usage": usage,
        "model_name": "scripted-1",
        "provider": "scripted",
        "finish_reason": "stop" if turn > 1 else "tool_calls",
    }


@mai.module
async def lookup(order: int) -> dict[str, Any]:
    """The tool the scripted model calls."""
    return {"order": order, "eta": "tomorrow"}


@mai.module
async def support(question: str) -> str:
    """A two-turn conversation with a tool call, recorded step by step like an agent's."""
    first = {
        "kind": "request",
        "parts": [
            {"kind": "system", "content": "You answer questions about orders."},
            {"kind": "user", "content": question},
        ],
    }
    answer = await model_request(1, first)
    call = answer["parts"][0]
    result = await lookup(**json.loads(call["args"]))
    second = {
        "kind": "request",
        "parts": [
            {
                "kind": "tool-return",
                "tool_name": "lookup",
                "tool_call_id": call["tool_call_id"],
                "content": result,
            }
        ],
    }
    final = await model_request(2, second)
    return str(final["parts"][0]["content"])


async def late(url: str, run_id: str) -> None:
    """Start one more run while the page is open (live updates)."""
    async with mai.Runtime(url) as rt:
        await (await rt.start(checkout, 3, run_id=run_id)).result()


if __name__ == "__main__":
    import uiapp  # the workflows' plans must name this module, not __main__

    command, url = sys.argv[1], sys.argv[2]
    if command == "populate":
        trio.run(uiapp.populate, url, int(sys.argv[3]) if len(sys.argv) > 3 else 0)
    elif command == "late":
        trio.run(uiapp.late, url, sys.argv[3])
    else:  # a worker with a short lease, so a cancel requested in the UI lands quickly
        sys.exit(mai.Worker(url, app=uiapp, lease=1.5, poll_interval=0.2).serve())
