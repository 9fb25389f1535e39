"""Durable agents: the claims of the Agents page's durability, approval and inspection sections.

Run: ``python docs/examples/agents_durable.py`` (offline: a scripted model, SQLite in a
temporary directory). A process "dies" by leaving the runtime's block with an exception while a
tool runs; ``examples/agent_durable_demo.py`` does the same with a real SIGKILL.
"""

from __future__ import annotations

import contextlib
import tempfile

import trio

import mai
from mai.agents import approval_topic
from mai.testing import ScriptedModel, tool_call


class Crash(Exception):
    """The 'process' dies here."""


release = trio.Event()


# [start durable]
@mai.module
async def get_weather(city: str) -> str:
    """Current weather of a city."""
    if not release.is_set():
        await trio.sleep_forever()  # the first 'process' dies while this runs
    return f"{city}: 21 C"


model = ScriptedModel([tool_call("get_weather", {"city": "Lyon"}), "It is 21 C in Lyon."])
agent = mai.Agent(model, instructions="Report the weather.", tools=[get_weather], name="weather")


async def first_process(url: str) -> None:
    async with mai.Runtime(url, workflows=[agent]) as rt:
        await rt.start(agent, "Weather in Lyon?", run_id="lyon")
        while len(await rt.steps("lyon")) < 1:  # noqa: ASYNC110 - turn 1 recorded; the tool blocks
            await trio.sleep(0.01)
        raise Crash


async def durability(url: str) -> None:
    with contextlib.suppress(Crash):
        await first_process(url)
    assert len(model.requests) == 1
    release.set()
    async with mai.Runtime(url, workflows=[agent]) as rt:  # a new 'process'
        handle = await rt.resume("lyon", agent)
        assert await handle.result() == "It is 21 C in Lyon."
    assert len(model.requests) == 2  # turn 1 was replayed, never asked twice
    # [end durable]

    # [start refused]
    changed = mai.Agent(model, instructions="Write a poem.", tools=[get_weather], name="weather")
    (change,) = [c for c in mai.plan(agent).diff(mai.plan(changed)) if not c.compatible]
    print(change.kind, "-", change.description)  # contract_changed - ... its instructions ...
    # [end refused]


# [start approval]
@mai.module
async def transfer(amount: int) -> str:
    """Move money."""
    return f"moved {amount}"


bank_model = ScriptedModel([tool_call("transfer", {"amount": 500}), "Done."])
banker = mai.Agent(
    bank_model,
    tools=[mai.tool(transfer, requires_approval=lambda args: args["amount"] > 100)],
    name="banker",
)


async def approval(url: str) -> None:
    async with mai.Runtime(url, workflows=[banker]) as rt:
        handle = await rt.start(banker, "Pay the rent", run_id="rent")
        while not any(s.name == "approval_request" for s in (await rt.steps("rent"))):  # noqa: ASYNC110
            await trio.sleep(0.01)
        # from any process: mai runs send rent approval:call_1 '"approve"'
        await rt.send("rent", approval_topic("call_1"), {"approved": True, "args": {"amount": 450}})
        assert await handle.result() == "Done."
        steps = [(s.step_id, s.name) for s in (await rt.steps("rent"))]
    assert steps == [
        ("1.1", "model_request"),
        ("1.2", "approval_request"),
        ("1.3", "mai.wait_for"),
        ("1.4", "transfer"),
        ("1.5", "model_request"),
    ]
    assert bank_model.requests[1].last.parts[0].content == "moved 450"
    # outside a durable run, a callback decides
    again = ScriptedModel([tool_call("transfer", {"amount": 500}), "Not paid."])
    result = await banker.run("Pay the rent", model=again, approver=lambda _request: "deny")
    print("denied:", result.all_messages[2].parts[0].content)
    # [end approval]


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        await durability(f"sqlite:///{tmp}/runs.db")
        await approval(f"sqlite:///{tmp}/runs.db")
    print("durable agents: replayed, refused, approved")


if __name__ == "__main__":
    trio.run(main)
