"""What the view derives from records: conversations, plan drawings, plan differences, actions."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from functools import partial
from pathlib import Path

import httpx
import pytest
import trio

import mai
from mai.core.durable import StepInfo, StepRecord
from mai.core.ui import serve_ui
from mai.core.ui._conversation import conversation
from mai.core.ui._plansvg import plan_svg


def step(step_id: str, name: str, input_: object, output: object, worker: str) -> StepInfo:
    """A committed step as the store returns it."""
    return StepInfo(
        StepRecord(
            "r", step_id, name, "call", json.dumps(input_), json.dumps(output), worker=worker
        )
    )


def request(*parts: dict) -> dict:
    """A recorded model_request input: turn and ModelRequest."""
    return {"args": [1, {"kind": "request", "parts": list(parts)}], "kwargs": {}}


def response(*parts: dict, tokens: tuple[int, int]) -> dict:
    """A recorded ModelResponse."""
    usage = {"requests": 1, "input_tokens": tokens[0], "output_tokens": tokens[1]}
    return {"kind": "response", "parts": list(parts), "usage": usage, "model_name": "m"}


def test_a_conversation_separates_billed_from_replayed_turns():
    """Turns recorded by an earlier attempt count as replayed; retries and waits are kept."""
    steps = [
        step(
            "1.1",
            "model_request",
            request({"kind": "system", "content": "be brief"}, {"kind": "user", "content": "hi"}),
            response(
                {"kind": "tool-call", "tool_name": "pay", "args": {"n": 1}, "tool_call_id": "c1"},
                tokens=(10, 2),
            ),
            worker="old-process",
        ),
        step("1.2", "pay", {"args": [1]}, "ok", worker="old-process"),
        StepInfo(StepRecord("r", "1.2.1", "mai.wait_for", "event", '"approve"', "true")),
        step(
            "1.3",
            "model_request",
            request(
                {"kind": "retry-prompt", "content": "n must be > 0", "tool_name": "pay"},
                {"kind": "tool-return", "tool_name": "pay", "tool_call_id": "c1", "content": 1},
            ),
            response({"kind": "text", "content": "done"}, tokens=(20, 3)),
            worker="new-process",
        ),
    ]
    conv = conversation(steps, owner="new-process")
    assert conv is not None
    assert conv["usage"]["input_tokens"] == 30
    assert conv["replayed"] == {"input_tokens": 10, "output_tokens": 2}
    first, second = conv["turns"]
    assert first["replayed"] is True
    assert second["replayed"] is False
    assert [m["role"] for m in first["request"]] == ["system", "user"]
    assert first["response"][0] == {
        "role": "tool-call",
        "tool_name": "pay",
        "tool_call_id": "c1",
        "args": {"n": 1},
    }
    assert [w["step_id"] for w in second["waits"]] == ["1.2.1"]
    assert [m["role"] for m in second["request"]] == ["retry", "tool"]
    assert second["response"] == [{"role": "assistant", "text": "done"}]


def test_approvals_show_after_the_turn_that_asked_pending_or_with_their_decision():
    """An approval_request is pending until its wait records a decision, which is shown."""
    call = {"kind": "tool-call", "tool_name": "ship", "args": {"n": 1}, "tool_call_id": "c1"}
    asked = {"args": ["approval:c1", "ship", {"n": 1}], "kwargs": {}}
    steps = [
        step("1.1", "model_request", request(), response(call, tokens=(5, 1)), worker="w"),
        step("1.2", "approval_request", asked, "approval:c1", worker="w"),
    ]
    (turn,) = conversation(steps, owner="w")["turns"]  # type: ignore[index]
    assert turn["approvals"] == [
        {
            "step_id": "1.2",
            "topic": "approval:c1",
            "tool_name": "ship",
            "args": {"n": 1},
            "decided": False,
            "decision": None,
        }
    ]
    decided = StepInfo(
        StepRecord("r", "1.3", "mai.wait_for", "event", "null", '{"payload": "deny"}')
    )
    (turn,) = conversation([*steps, decided], owner="w")["turns"]  # type: ignore[index]
    assert (turn["approvals"][0]["decided"], turn["approvals"][0]["decision"]) == (True, "deny")


def test_steps_without_model_requests_have_no_conversation():
    """An ordinary run shows no conversation section."""
    steps = [step("1.1", "fetch", {"args": [1]}, {"kind": "response"}, worker="w")]
    assert conversation(steps, owner="w") is None


@mai.module
async def inc(x: int) -> int:
    """Add one."""
    return x + 1


def test_the_plan_drawing_nests_composites_and_escapes_names():
    """Composites become boxes around their children; names are escaped as SVG text."""
    risky = inc.with_(name="<b>&inc")
    drawn = plan_svg(mai.plan(mai.Sequential(mai.Parallel(inc, risky), inc)).to_dict())
    assert drawn.count('class="plan-group') == 2
    assert drawn.count('class="plan-node"') == 3
    assert "&lt;b&gt;&amp;inc" in drawn
    assert "<b>" not in drawn
    single = plan_svg(mai.plan(inc).to_dict())
    assert single.count('class="plan-node"') == 1


@mai.module
async def double(x: int) -> int:
    """Double a number."""
    return 2 * x


@mai.module(name="double")
async def double_v2(x: str) -> str:
    """The same workflow name, with another input type (an incompatible change)."""
    return x * 2


async def test_with_app_the_plan_page_lists_changes_and_a_finished_run_is_not_requeued(tmp_path):
    """--app's workflows are compared with the recorded plan; a SUCCEEDED run is not requeued."""
    async with mai.Runtime(f"sqlite:///{tmp_path}/app.db") as rt, trio.open_nursery() as nursery:
        await (await rt.start(double, 2, run_id="d")).result()
        address = await nursery.start(partial(serve_ui, rt, port=0, workflows=[double_v2]))
        headers = {"authorization": f"Bearer {address.token}"}
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{address.port}") as client:
            plan = (await client.get("/api/runs/d/plan", headers=headers)).json()
            session = (await client.get("/api/session", headers=headers)).json()
            action = {**headers, "origin": f"http://127.0.0.1:{address.port}"}
            action["x-csrf-token"] = session["csrf"]
            requeue = await client.post("/api/runs/d/requeue", headers=action, json={})
        nursery.cancel_scope.cancel()
    assert plan["current"]["same"] is False
    assert any(not c["compatible"] for c in plan["current"]["changes"])
    assert session["app"] == ["double"]
    assert session["actions"]["requeue"] is True
    assert requeue.status_code == 409  # a SUCCEEDED run is not requeued
    assert "only a DEAD or FAILED run" in requeue.json()["error"]


@pytest.mark.slow
def test_the_wheel_ships_the_page_files(tmp_path):
    """The built wheel contains the page's HTML, script and styles."""
    root = Path(__file__).resolve().parents[2]
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(root),
        ],
        check=True,
    )
    (wheel,) = tmp_path.glob("pymai-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in ["index.html", "app.js", "app.css"]:
        assert f"mai/core/ui/static/{name}" in names


async def test_a_run_page_is_answered_again_for_a_second_and_an_action_forgets_it(tmp_path):
    """Polls within fresh_for reuse the page; later ones and any action through the view read."""
    from mai.core.ui._data import UIData

    now = [0.0]
    async with mai.Runtime(f"sqlite:///{tmp_path}/fresh.db") as rt:
        await (await rt.start(inc, 1, run_id="a")).result()
        data = UIData(rt, fresh_for=1.0, clock=lambda: now[0])
        first = await data.run("a")
        now[0] = 0.9
        assert await data.run("a") is first  # within a second: the same page, no read
        assert await data.run("a", steps_limit=1) is not first  # another window is its own page
        now[0] = 1.0
        again = await data.run("a")
        assert again is not first
        assert await data.run("a") is again
        await data.cancel("a")  # an action through the view: its next page is read afresh
        assert await data.run("a") is not again
