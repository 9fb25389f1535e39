"""Streaming an agent run: the events, and the stream object a caller iterates."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

import anyio

from ._model import ResponseDone, TextDelta, ToolCallDelta

if TYPE_CHECKING:
    from anyio.streams.memory import MemoryObjectReceiveStream

    from ._messages import RetryPrompt, ToolReturn
    from ._run import AgentRunResult

OutputT = TypeVar("OutputT")


@dataclass(frozen=True, slots=True)
class ToolCallStarted:
    """A tool call is about to run (arguments validated).

    Attributes:
        tool_name: The tool.
        tool_call_id: The call's id.
        args: The validated arguments (dependencies excluded).
    """

    tool_name: str
    tool_call_id: str
    args: dict[str, Any]
    kind: Literal["tool-call-started"] = "tool-call-started"


@dataclass(frozen=True, slots=True)
class ToolCallFinished:
    """A tool call ended: its return (``result.error`` when it failed) or a retry prompt.

    Attributes:
        tool_name: The tool.
        tool_call_id: The call's id.
        result: What goes back to the model for this call.
    """

    tool_name: str
    tool_call_id: str
    result: ToolReturn | RetryPrompt
    kind: Literal["tool-call-finished"] = "tool-call-finished"


@dataclass(frozen=True, slots=True)
class OutputDelta:
    """The structured output so far, partially validated, while it streams.

    Attributes:
        partial: The output parsed from the JSON received so far (fields may be missing).
    """

    partial: Any
    kind: Literal["output-delta"] = "output-delta"


@dataclass(frozen=True, slots=True)
class FinalOutput(Generic[OutputT]):
    """The run's validated output (the last event of a successful stream).

    Attributes:
        output: The output.
    """

    output: OutputT
    kind: Literal["final-output"] = "final-output"


AgentEvent = (
    TextDelta
    | ToolCallDelta
    | ResponseDone
    | ToolCallStarted
    | ToolCallFinished
    | OutputDelta
    | FinalOutput[Any]
)


class AgentStream(Generic[OutputT]):
    """The events of one streamed agent run; iterate it with ``async for``.

    Events arrive through a bounded channel: a slow consumer slows the run down (backpressure)
    instead of letting events pile up. Leaving the ``async with agent.stream(...)`` block before
    the end cancels the run and closes the model's HTTP stream.
    """

    __slots__ = ("_receive", "result")

    def __init__(self, receive: MemoryObjectReceiveStream[AgentEvent]) -> None:
        """Wrap the receiving end of the run's channel."""
        self._receive = receive
        #: The :class:`~mai.agents.AgentRunResult`, once the run has finished.
        self.result: AgentRunResult[OutputT] | None = None

    def __aiter__(self) -> AgentStream[OutputT]:
        """Iterate over the events until the run ends (no generator is left half-consumed)."""
        return self

    async def __anext__(self) -> AgentEvent:
        """The next event."""
        try:
            return await self._receive.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            raise StopAsyncIteration from None

    async def get_output(self) -> OutputT:
        """Consume the remaining events and return the final output.

        Raises:
            RuntimeError: When the stream ended without a final output.
        """
        async for event in self._receive:
            if isinstance(event, FinalOutput):
                return event.output  # type: ignore[no-any-return]
        if self.result is not None:
            return self.result.output
        raise RuntimeError("the agent stream ended without a final output")
