"""A durable agent against the real model server, run in its own process by the tests.

Usage: ``python durable_agent_worker.py MODE STORE_URL RUN_ID`` with MODE ``run`` (start the
run and wait for its result) or ``resume`` (resume the recorded run). The environment says the
rest: ``MAI_TEST_BASE_URL`` (the server, or a counting proxy in front of it), ``MAI_TEST_KEY``
(the API key: the tests search every record for it), ``MAI_TEST_INSTRUCTIONS``,
``MAI_TEST_HANG=1`` (the tool blocks after writing ``MAI_TEST_MARKER``: the test SIGKILLs the
process there), ``MAI_TEST_APPROVAL=1`` (the tool needs approval), ``MAI_TEST_SPANS`` (write
the run's OpenTelemetry spans there as JSON). The last stdout line is a JSON object:
``{"output": ...}``, or ``{"refused": message, "step_id": ...}`` when the plan changed.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import structlog
import trio
from tinymodel import MODEL_ALIAS, TOOL_NAME

import mai
from mai.agents import ModelSettings, OpenAIModel

DEFAULT_INSTRUCTIONS = "You report the weather."


@mai.module(name=TOOL_NAME)
async def get_weather(city: str) -> str:
    """Current weather of a city.

    Args:
        city: The city's name.
    """
    marker = os.environ.get("MAI_TEST_MARKER")
    if marker:
        await trio.Path(marker).write_text(city)
    if os.environ.get("MAI_TEST_HANG") == "1":
        await trio.sleep_forever()  # the test kills the process here
    return "sunny"


def make_agent(model: OpenAIModel) -> mai.Agent[str]:
    """The durable weather agent, configured from the environment."""
    approval = os.environ.get("MAI_TEST_APPROVAL") == "1"
    return mai.Agent(
        model,
        instructions=os.environ.get("MAI_TEST_INSTRUCTIONS", DEFAULT_INSTRUCTIONS),
        tools=[mai.tool(get_weather, requires_approval=approval)],
        model_settings=ModelSettings(temperature=0, seed=42, max_tokens=64, tool_choice="auto"),
        name="weather_agent",
    )


async def main(mode: str, url: str, run_id: str) -> dict[str, Any]:
    """Run or resume the agent; return what the test reads."""
    key = os.environ["MAI_TEST_KEY"]
    async with OpenAIModel(MODEL_ALIAS, base_url=os.environ["MAI_TEST_BASE_URL"], api_key=key) as m:
        agent = make_agent(m)
        async with mai.Runtime(url, workflows=[agent]) as rt:
            if mode == "run":
                handle = await rt.start(agent, "What is the weather in Paris?", run_id=run_id)
            else:
                try:
                    handle = await rt.resume(run_id, agent)
                except mai.PlanMismatchError as exc:
                    return {"refused": str(exc), "step_id": exc.step_id}
            return {"output": await handle.result()}


def _configure_logs() -> None:
    logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.JSONRenderer(),
        ],
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )


if __name__ == "__main__":
    _configure_logs()
    spans_path = os.environ.get("MAI_TEST_SPANS")
    if spans_path:
        from mai.testing import capture_otel_spans

        with capture_otel_spans() as spans:
            result = trio.run(main, *sys.argv[1:4])
        Path(spans_path).write_text("\n".join(s.to_json() for s in spans))
    else:
        result = trio.run(main, *sys.argv[1:4])
    print(json.dumps(result), flush=True)
