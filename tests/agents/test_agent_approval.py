"""Tools that need a human's approval: waiting in place in a durable run, a callback outside."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
import trio

import mai
from mai.agents import Approval, ApprovalRequest, ApprovalRequiredError, approval_topic
from mai.testing import ScriptedModel, tool_call

_names = itertools.count()


class _Stop(Exception):
    """Leaves the runtime block abruptly (the process 'dies' mid-run)."""


def _transfer(calls: list[int]) -> mai.Tool:
    @mai.module
    async def transfer(amount: int) -> str:
        """Move money."""
        calls.append(amount)
        return f"moved {amount}"

    return mai.tool(transfer, requires_approval=lambda args: args["amount"] > 100)


def _agent(calls: list[int], amount: int = 500) -> tuple[mai.Agent, ScriptedModel]:
    model = ScriptedModel([tool_call("transfer", {"amount": amount}), "finished"])
    return mai.Agent(model, tools=[_transfer(calls)], name="banker"), model


async def _waiting(rt: mai.Runtime, run_id: str) -> str:
    """Wait until the run recorded its approval request; return the topic."""
    with trio.fail_after(5):
        while True:
            for s in await rt.steps(run_id):
                if s.name == "approval_request":
                    topic: str = s.output
                    return topic
            await trio.sleep(0.001)


def _told(model: ScriptedModel) -> Any:
    """What the model was told about the transfer call (the last request's tool return)."""
    return model.requests[-1].last.parts[0].content


@pytest.mark.parametrize(
    ("decision", "ran", "told"),
    [
        ("approve", [500], "moved 500"),
        (True, [500], "moved 500"),
        ({"approved": True, "args": {"amount": 120}}, [120], "moved 120"),
        ("deny", [], "was not approved and did not run"),
        ({"approved": False, "reason": "too much"}, [], "not approved and did not run: too much"),
        ({"approved": True, "args": {"amount": "lots"}}, [], "edited arguments do not fit"),
        (42, [], "could not be read"),
    ],
)
async def test_a_durable_run_waits_in_place_for_the_decision(
    decision: Any, ran: list[int], told: str
) -> None:
    """The run records the request, waits on approval:<id>, and acts on rt.send's decision."""
    calls: list[int] = []
    agent, model = _agent(calls)
    async with mai.Runtime(f"memory://approval-{next(_names)}", workflows=[agent]) as rt:
        handle = await rt.start(agent, "pay", run_id="pay-1")
        topic = await _waiting(rt, "pay-1")
        assert topic == approval_topic("call_1")
        assert calls == []
        await rt.send("pay-1", topic, decision)
        assert await handle.result() == "finished"
        steps = [(s.step_id, s.name) for s in (await rt.steps("pay-1"))]
        request = next(s for s in (await rt.steps("pay-1")) if s.name == "approval_request")
    assert calls == ran
    assert told in _told(model)
    assert request.input["args"][1:] == ["transfer", {"amount": 500}]
    assert steps[:3] == [
        ("1.1", "model_request"),
        ("1.2", "approval_request"),
        ("1.3", "mai.wait_for"),
    ]


async def test_an_approval_sent_while_the_process_is_down_resumes_without_asking_again() -> None:
    """Crash while waiting; the decision arrives; the resumed run asks nobody anything twice."""
    calls: list[int] = []
    agent, model = _agent(calls)
    url = f"memory://approval-{next(_names)}"

    async def interrupted() -> None:
        async with mai.Runtime(url, workflows=[agent]) as rt:
            await rt.start(agent, "pay", run_id="pay-2")
            await _waiting(rt, "pay-2")
            raise _Stop

    with pytest.raises(_Stop):
        await interrupted()
    async with mai.Runtime(url, workflows=[agent]) as rt:
        await rt.send("pay-2", approval_topic("call_1"), "approve")
    async with mai.Runtime(url, workflows=[agent]) as rt:
        (handle,) = await rt.recover()
        assert await handle.result() == "finished"
        names = [s.name for s in (await rt.steps("pay-2"))]
    assert calls == [500]
    assert len(model.requests) == 2  # turn 1 replayed
    assert names.count("approval_request") == 1


async def test_an_approval_timeout_is_a_denial_the_model_is_told_about() -> None:
    """Nobody answers within approval_timeout: the tool does not run, the model hears why."""
    calls: list[int] = []

    @mai.module
    async def wipe(disk: str) -> str:
        """Erase a disk."""
        calls.append(1)
        return "wiped"

    model = ScriptedModel([tool_call("wipe", {"disk": "sda"}), "ok"])
    agent = mai.Agent(
        model, tools=[mai.tool(wipe, requires_approval=True, approval_timeout=0.05)], name="ops"
    )
    async with mai.Runtime(f"memory://approval-{next(_names)}", workflows=[agent]) as rt:
        handle = await rt.start(agent, "wipe it", run_id="ops-1")
        with trio.fail_after(10):
            assert await handle.result() == "ok"
    assert calls == []
    assert "no decision within 0.05 s" in _told(model)


async def test_outside_a_durable_run_the_approver_decides() -> None:
    """The approver callback (sync or async) sees the request and its decision is applied."""
    seen: list[ApprovalRequest] = []

    async def approver(request: ApprovalRequest) -> Approval:
        seen.append(request)
        return Approval(approved=True, args={"amount": 101})

    calls: list[int] = []
    agent, _model = _agent(calls)
    assert (await agent.run("pay", approver=approver)).output == "finished"
    assert calls == [101]
    assert (seen[0].tool_name, seen[0].args, seen[0].topic) == (
        "transfer",
        {"amount": 500},
        "approval:call_1",
    )
    calls2: list[int] = []
    agent2, model2 = _agent(calls2)
    agent2.approver = lambda request: "deny"
    assert await agent2("pay") == "finished"
    assert calls2 == []
    assert "not approved" in _told(model2)


async def test_a_call_the_predicate_lets_through_needs_no_approver() -> None:
    """Only calls the predicate selects wait for a decision."""
    calls: list[int] = []
    agent, _ = _agent(calls, amount=50)
    assert await agent("pay") == "finished"
    assert calls == [50]


async def test_without_an_approver_outside_a_durable_run_the_error_says_what_to_do() -> None:
    """A clear typed error: approvals need a durable run or an approver callback."""
    calls: list[int] = []
    agent, _ = _agent(calls)
    with pytest.raises(ApprovalRequiredError, match="approver=") as info:
        await agent("pay")
    assert info.value.tool_name == "transfer"
    assert isinstance(info.value, mai.MaiError)
    assert calls == []


async def test_an_approver_that_does_not_answer_in_time_denies(autojump_clock: Any) -> None:
    """approval_timeout bounds the callback too (virtual time)."""

    @mai.module
    async def deploy(env: str) -> str:
        """Deploy."""
        return "deployed"

    async def slow(request: ApprovalRequest) -> str:
        await trio.sleep(3600)
        return "approve"

    model = ScriptedModel([tool_call("deploy", {"env": "prod"}), "ok"])
    tool = mai.tool(deploy, requires_approval=True, approval_timeout=60)
    assert await mai.Agent(model, tools=[tool], approver=slow)("go") == "ok"
    assert "no decision within 60 s" in _told(model)


def test_bad_approval_options_are_typed_errors() -> None:
    """requires_approval must be a bool or a predicate; approval_timeout positive seconds."""

    def f(x: int) -> int:
        return x

    with pytest.raises(TypeError, match="requires_approval"):
        mai.tool(f, requires_approval="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="approval_timeout"):
        mai.tool(f, approval_timeout=0)
