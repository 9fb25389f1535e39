"""A durable agent killed with SIGKILL mid-run and resumed in a new process, without re-asking.

The agent plans a trip: it asks for the weather of three cities, one tool call per turn, then
answers. The first process runs it on SQLite and is killed (SIGKILL, no cleanup) while the
third tool call runs. A second process resumes the run: the recorded turns are replayed from
the store, so the model is asked only for what was never answered. The output says, turn by
turn, which turns were replayed and which were asked.

By default the model is scripted (offline: it reads the tool results in the conversation and
decides the next call from them). To use a real endpoint, name it explicitly::

    MAI_DEMO_MODEL=openai:gpt-4o-mini OPENAI_API_KEY=... python examples/agent_durable_demo.py
    MAI_DEMO_MODEL=openai:tiny OPENAI_BASE_URL=http://127.0.0.1:8080/v1 python ...
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import trio

import mai
from mai.agents import ModelRequest, ResponseDone, ToolReturn, TurnReplayed
from mai.testing import ScriptedModel, tool_call

CITIES = ["Paris", "Lyon", "Nice"]
WEATHER = {"Paris": "18 C, rain", "Lyon": "21 C, sun", "Nice": "24 C, sun"}
RUN_ID = "trip"


def scripted_turn(messages: list[Any], params: Any) -> Any:  # noqa: ARG001 - the signature
    """The offline model: ask for the next city's weather, then answer from the results."""
    results = [
        p.content
        for m in messages
        if isinstance(m, ModelRequest)
        for p in m.parts
        if isinstance(p, ToolReturn)
    ]
    if len(results) < len(CITIES):
        return tool_call("get_weather", {"city": CITIES[len(results)]})
    best = max(zip(CITIES, results, strict=True), key=lambda cr: int(str(cr[1]).split()[0]))
    return f"Go to {best[0]}: {best[1]}."


@mai.module
async def get_weather(city: str) -> str:
    """Current weather of a city.

    Args:
        city: The city's name.
    """
    print(f"    tool get_weather({city!r}) runs", flush=True)
    hang = os.environ.get("DEMO_HANG_ON")
    if hang == city:
        await trio.Path(os.environ["DEMO_MARKER"]).write_text(city)
        await trio.sleep_forever()  # the parent kills this process here
    return WEATHER.get(city, "unknown")


def make_model() -> Any:
    """The model: scripted by default, a real endpoint only with MAI_DEMO_MODEL."""
    name = os.environ.get("MAI_DEMO_MODEL")
    if name:
        return mai.agents.resolve_model(name)
    return ScriptedModel(scripted_turn, model_name="scripted-planner")


MODEL = make_model()
AGENT: mai.Agent[str] = mai.Agent(
    MODEL,
    instructions="Plan a trip: get the weather of Paris, Lyon and Nice (one call each), then "
    "name the warmest city.",
    tools=[get_weather],
    model_settings=mai.ModelSettings(temperature=0, max_tokens=200),
    name="trip_planner",
)


@mai.module
async def plan_trip(prompt: str) -> str:
    """Stream the agent, printing each turn: asked of the model, or replayed from the record."""
    turn = 0
    async with AGENT.stream(prompt, buffer=0) as events:  # printed as they happen
        async for event in events:
            if isinstance(event, TurnReplayed):
                turn = event.turn
                print(f"  turn {turn}: replayed from the record (no model request)", flush=True)
            elif isinstance(event, ResponseDone):
                turn += 1
                r = event.response
                said = ", ".join(f"{c.tool_name}({c.args_json()})" for c in r.tool_calls) or repr(
                    r.text
                )
                print(f"  turn {turn}: asked {r.model_name} -> {said}", flush=True)
        result = events.result
    if result is None:
        raise RuntimeError("the agent stream ended without a result")
    print(
        f"  usage: billed {result.billed.requests} request(s) "
        f"({result.billed.total_tokens} tokens), replayed {result.replayed.requests} "
        f"({result.replayed.total_tokens} tokens)",
        flush=True,
    )
    return str(result.output)


async def child(mode: str, url: str) -> None:
    """One process's part: start the run, or resume it."""
    async with mai.Runtime(url, workflows=[plan_trip]) as rt:
        if mode == "start":
            handle = await rt.start(plan_trip, "Where should I go this weekend?", run_id=RUN_ID)
        else:
            handle = await rt.resume(RUN_ID, plan_trip)
        output = await handle.result()
    asked = len(MODEL.requests) if isinstance(MODEL, ScriptedModel) else None
    print(json.dumps({"output": output, "asked": asked}), flush=True)


def parent() -> None:
    """Run the first process, kill it mid-run, resume in a second one."""
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/runs.db"
        marker = Path(tmp) / "hanging"
        env = {**os.environ, "DEMO_HANG_ON": CITIES[-1], "DEMO_MARKER": str(marker)}
        if not os.environ.get("MAI_DEMO_MODEL"):
            print("(offline: a scripted model; set MAI_DEMO_MODEL=provider:model for a real one)")
        first = subprocess.Popen([sys.executable, __file__, "--child", "start", url], env=env)  # noqa: S603
        print(f"== process 1 (pid {first.pid}) starts the durable run {RUN_ID!r} on {url}")
        deadline = time.monotonic() + 120
        while not marker.exists():
            if first.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the first process ended before the tool call to kill it in")
            time.sleep(0.02)
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
        print(f"== SIGKILL to process 1 while get_weather({CITIES[-1]!r}) runs")
        second = subprocess.run(  # noqa: S603 - this very script
            [sys.executable, __file__, "--child", "resume", url],
            env=os.environ,
            capture_output=True,
            text=True,
            check=True,
        )
        lines = second.stdout.rstrip().splitlines()
        print("== process 2 resumes the run")
        print("\n".join(lines[:-1]))
        summary = json.loads(lines[-1])
        print(f"== output: {summary['output']}")
        if summary["asked"] is not None:
            print(
                f"== the model was asked {summary['asked']} time(s) by process 2; "
                "every other turn came from the record"
            )


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        trio.run(child, sys.argv[2], sys.argv[3])
    else:
        parent()
