"""The application of the closing end-to-end test: a durable agent with an MCP tool that needs
approval, on the real model server.

``forecast(question)`` opens the MCP server of ``weather_mcp.py`` (a stdio subprocess), lists its
tools (a recorded step), and runs an agent on an :class:`~mai.agents.OpenAIModel` whose one tool
is the server's ``get_weather``, made to need a person's approval. The tiny scripted model calls
it once and answers in text after its result.

Configured by the environment, as an application would be: ``MAI_E2E_BASE_URL`` and
``MAI_E2E_KEY`` (the model server and its API key), ``WEATHER_LOG`` (the MCP server's call
ledger), ``MAI_E2E_SPANS`` (this process exports its OpenTelemetry spans there, one JSON object
a line, message content included) and ``MAI_E2E_LOGS=1`` (debug logs of every library on
stderr; structlog's as JSON, with the module, step and run pymai binds). Imported by
``mai run``, ``mai runs resume --app`` and ``mai ui --app``.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import structlog

import mai
from mai.agents import ModelSettings, OpenAIModel

HERE = Path(__file__).resolve().parent
MODEL_ALIAS = "tiny"  # tinymodel.MODEL_ALIAS (not imported: this module stays light)
QUESTION = "What is the weather in Paris?"

weather = mai.MCPToolset(
    command=[sys.executable, str(HERE / "weather_mcp.py")],
    name="weather",
    env={"WEATHER_LOG": os.environ.get("WEATHER_LOG", os.devnull)},
)


@mai.module
async def forecast(question: str) -> str:
    """Ask the weather agent; its MCP tool waits for a person's approval."""
    base_url, key = os.environ["MAI_E2E_BASE_URL"], os.environ["MAI_E2E_KEY"]
    structlog.get_logger().info("forecast.asked", question=question, model=MODEL_ALIAS)
    async with (
        OpenAIModel(MODEL_ALIAS, base_url=base_url, api_key=key) as model,
        weather.connect() as session,
    ):
        tools = [mai.tool(t, requires_approval=True) for t in await session.list_tools()]
        agent = mai.Agent(
            model,
            instructions="You report the weather.",
            tools=tools,
            model_settings=ModelSettings(temperature=0, seed=42, max_tokens=64, tool_choice="auto"),
            name="weather_agent",
        )
        return await agent(question)


def _observe() -> None:
    """What an application does at start-up: logs to stderr, spans to an exporter."""
    if os.environ.get("MAI_E2E_LOGS") == "1":
        logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
        structlog.configure(
            processors=[
                structlog.contextvars.merge_contextvars,  # pymai binds module, step and run
                structlog.processors.add_log_level,
                structlog.processors.JSONRenderer(),
            ],
            logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        )
    spans = os.environ.get("MAI_E2E_SPANS")
    if spans:
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import (
            ConsoleSpanExporter,
            SimpleSpanProcessor,
        )

        out = open(spans, "a", buffering=1)  # noqa: PTH123, SIM115 - open for the process's life
        exporter = ConsoleSpanExporter(out=out, formatter=lambda s: s.to_json(indent=None) + "\n")
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)


_observe()
