"""Usage limits of an agent run: requests, tool calls and tokens."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ._errors import UsageLimitExceeded

if TYPE_CHECKING:
    from ._messages import Usage


@dataclass(frozen=True, slots=True, kw_only=True)
class UsageLimits:
    """Bounds on what one agent run may spend; ``None`` means unbounded.

    Checked before each model request (requests, and tokens already spent), before each batch
    of tool calls (tool calls) and after each response (tokens). Exceeding one raises
    :class:`~mai.agents.UsageLimitExceeded` naming the limit and the figure.

    Attributes:
        request_limit: Model requests (default 50, a guard against endless loops).
        tool_calls_limit: Tool calls executed.
        input_tokens_limit: Prompt tokens, summed over the run.
        output_tokens_limit: Completion tokens, summed over the run.
        total_tokens_limit: Prompt plus completion tokens.
    """

    request_limit: int | None = 50
    tool_calls_limit: int | None = None
    input_tokens_limit: int | None = None
    output_tokens_limit: int | None = None
    total_tokens_limit: int | None = None

    def check_before_request(self, usage: Usage, agent: str | None = None) -> None:
        """Raise when one more request, or the tokens spent so far, would exceed a limit."""
        limit = self.request_limit
        if limit is not None and usage.requests + 1 > limit:
            _raise(agent, "request_limit", usage.requests + 1, limit, "requests")
        self.check_tokens(usage, agent)

    def check_tokens(self, usage: Usage, agent: str | None = None) -> None:
        """Raise when the tokens spent exceed a token limit."""
        if (
            self.input_tokens_limit is None
            and self.output_tokens_limit is None
            and self.total_tokens_limit is None
        ):
            return
        for name, value in (
            ("input_tokens_limit", usage.input_tokens),
            ("output_tokens_limit", usage.output_tokens),
            ("total_tokens_limit", usage.total_tokens),
        ):
            limit = getattr(self, name)
            if limit is not None and value > limit:
                _raise(agent, name, value, limit, "tokens")

    def check_tool_calls(self, usage: Usage, new_calls: int, agent: str | None = None) -> None:
        """Raise when ``new_calls`` more tool calls would exceed the limit."""
        limit = self.tool_calls_limit
        if limit is not None and usage.tool_calls + new_calls > limit:
            _raise(agent, "tool_calls_limit", usage.tool_calls + new_calls, limit, "tool calls")


def _raise(agent: str | None, name: str, value: int, limit: int, what: str) -> None:
    who = f"agent {agent!r}" if agent else "the agent run"
    raise UsageLimitExceeded(
        f"{who} would exceed {name}={limit}: {value} {what}",
        agent=agent,
        limit=name,
        value=value,
        maximum=limit,
    )
