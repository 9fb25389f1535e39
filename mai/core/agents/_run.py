"""One agent run: its state, the model-request step, and what run() and stream() receive.

The history of a run lives in :class:`AgentRun` (in a context variable while the agent's body
runs), not in any step's input: the ``model_request`` step is called with the turn number and
the new request only.
"""

from __future__ import annotations

import contextlib
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import anyio

from mai._context import current_frame
from mai._module import Module

from . import _genai as genai
from ._messages import ModelMessage, ModelResponse, Usage, construct, dump_messages
from ._model import ResponseDone
from ._output import OUTPUT_TOOL
from ._stream import AgentEvent, OutputDelta

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Mapping

    from anyio.streams.memory import MemoryObjectSendStream

    from ._agent import Agent
    from ._limits import UsageLimits
    from ._model import Model, ModelSettings, RequestParameters

OutputT = TypeVar("OutputT")


@dataclass(frozen=True, slots=True)
class AgentRunResult(Generic[OutputT]):
    """What :meth:`Agent.run` returns.

    Attributes:
        output: The validated output.
        new_messages: The messages this run added (its request(s) and the model's responses).
        all_messages: The whole history, the one passed in included.
        usage: What the run spent (sub-agents called as tools included).
    """

    output: OutputT
    new_messages: list[ModelMessage]
    all_messages: list[ModelMessage]
    usage: Usage

    def new_messages_json(self) -> bytes:
        """The new messages as JSON (load them with :func:`mai.agents.load_messages`)."""
        return dump_messages(self.new_messages)

    def all_messages_json(self) -> bytes:
        """The whole history as JSON."""
        return dump_messages(self.all_messages)


class Invocation:
    """How :meth:`Agent.run` and :meth:`Agent.stream` receive more than the output."""

    __slots__ = ("result", "send")

    def __init__(self, send: MemoryObjectSendStream[AgentEvent] | None = None) -> None:
        self.result: AgentRunResult[Any] | None = None
        self.send = send


invocation: ContextVar[Invocation | None] = ContextVar("mai.agent.invocation", default=None)


class AgentRun:
    """The state of one agent run (the history lives here, not in any step's input)."""

    __slots__ = (
        "agent",
        "deps",
        "failures",
        "history",
        "limits",
        "model",
        "output_failures",
        "params",
        "send",
        "settings",
        "turn",
        "usage",
    )

    def __init__(
        self,
        agent: Agent[Any],
        model: Model,
        history: list[ModelMessage],
        settings: ModelSettings,
        params: RequestParameters,
        limits: UsageLimits,
        deps: Mapping[str, Any] | None,
        send: MemoryObjectSendStream[AgentEvent] | None,
    ) -> None:
        self.agent = agent
        self.model = model
        self.history = history
        self.settings = settings
        self.params = params
        self.limits = limits
        self.deps = deps
        self.send = send
        self.usage = construct(Usage)
        self.turn = 0
        self.failures: dict[str, int] = {}
        self.output_failures = 0


current_run: ContextVar[AgentRun | None] = ContextVar("mai.agent.run", default=None)


class ModelStep(Module[..., ModelResponse]):
    """One model request of an agent run (a child step of the agent's call)."""

    async def forward(self, turn: Any, request: Any) -> ModelResponse:  # noqa: ARG002 - recorded
        """Send the run's history (which ends with ``request``) to the model."""
        run = current_run.get()
        if run is None:  # pragma: no cover - only the agent calls this module
            raise RuntimeError("model_request is called by an agent only")
        span = current_frame.get().span
        if span is not None and genai.capture_content():
            span.set_attribute(genai.INPUT_MESSAGES, dump_messages(run.history).decode())
        send = run.send
        if send is None:
            response = await run.model.request(run.history, run.settings, run.params)
        else:
            response = await _streamed(run, send)
        if span is not None and genai.capture_content():
            span.set_attribute(genai.OUTPUT_MESSAGES, dump_messages([response]).decode())
        return response


async def _streamed(run: AgentRun, send: MemoryObjectSendStream[AgentEvent]) -> ModelResponse:
    spec = run.agent._output
    output_args: dict[int, str] = {}
    output_index: int | None = None
    response: ModelResponse | None = None
    async with (
        run.model.stream(run.history, run.settings, run.params) as events,
        _closing(events),
    ):
        async for event in events:
            if isinstance(event, ResponseDone):
                response = event.response
                continue
            await send.send(event)
            if spec.mode == "tool" and event.kind == "tool-call-delta":
                if event.tool_name == OUTPUT_TOOL:
                    output_index = event.index
                if event.index == output_index:
                    text = output_args.get(event.index, "") + event.args_delta
                    output_args[event.index] = text
                    partial = spec.partial(text)
                    if partial is not None:
                        await send.send(OutputDelta(partial))
    if response is None:
        raise RuntimeError(
            f"model {run.model.model_name!r}: the stream ended without its final response"
        )
    return response


@contextlib.asynccontextmanager
async def _closing(events: Any) -> AsyncIterator[None]:
    """Close a model's event generator when the stream ends early (cancel, error)."""
    try:
        yield
    finally:
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            with anyio.CancelScope(shield=True):
                await aclose()


def chat_hint(run: AgentRun) -> tuple[str, dict[str, Any], str]:
    """The ``chat {model}`` client span of a model request (OpenTelemetry on only)."""
    model = run.model
    s = run.settings
    attrs: dict[str, Any] = {
        genai.OPERATION: genai.OP_CHAT,
        genai.PROVIDER: model.provider,
        genai.REQUEST_MODEL: model.model_name,
    }
    if s.temperature is not None:
        attrs[genai.REQUEST_TEMPERATURE] = s.temperature
    if s.max_tokens is not None:
        attrs[genai.REQUEST_MAX_TOKENS] = s.max_tokens
    if s.seed is not None:
        attrs[genai.REQUEST_SEED] = s.seed
    return f"{genai.OP_CHAT} {model.model_name}", attrs, "client"
