"""Human approval of tool calls: who decides, how a decision reads, and where a run waits.

A tool made with ``requires_approval`` (``True``, or a predicate over the call's arguments)
does not run until someone decides:

* inside a durable run the agent records an ``approval_request`` step (tool, arguments and the
  topic to answer on) and waits in place with :func:`mai.wait_for` on the topic
  ``approval:<tool_call_id>``; the decision is sent with ``rt.send(run_id, topic, decision)`` or
  ``mai runs send RUN TOPIC DECISION`` (from any process), and is recorded, so nothing is asked
  twice on resume;
* outside a durable run the caller's ``approver`` callback decides (given to the agent or to
  the call); without one the run raises :class:`ApprovalRequiredError`.

A decision is ``"approve"`` / ``True``, ``"deny"`` / ``False``, or an object
``{"approved": bool, "reason": str, "args": {...}}`` (``args`` replaces the arguments the model
chose; they are validated against the tool's schema). A denial, an expired ``approval_timeout``
and an unreadable decision are told to the model as the tool call's result; the tool does not
run.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import anyio
from pydantic import BaseModel, ConfigDict, ValidationError

from mai._context import current_frame
from mai._module import Module

from ._errors import AgentError

if TYPE_CHECKING:
    from ._tools import Tool

APPROVAL_PREFIX = "approval:"


def approval_topic(tool_call_id: str) -> str:
    """The :func:`mai.wait_for` topic a durable run waits on for one tool call's decision.

    Args:
        tool_call_id: The model's id of the tool call (recorded with the model's response,
            so the topic is the same after a resume).
    """
    return f"{APPROVAL_PREFIX}{tool_call_id}"


class ApprovalRequiredError(AgentError):
    """A tool needs approval and nobody can give it (no durable run, no approver callback).

    Attributes:
        tool_name: The tool that asked for approval.
    """

    def __init__(self, message: str, *, agent: str | None = None, tool_name: str = "") -> None:
        """Create the error naming the tool."""
        super().__init__(message, agent=agent)
        self.tool_name = tool_name


@dataclass(frozen=True, slots=True)
class ApprovalRequest:
    """A tool call waiting for a decision (what an approver callback receives).

    Attributes:
        agent: The agent's name.
        tool_name: The tool.
        tool_call_id: The model's id of the call.
        args: The arguments the model chose (validated; dependencies excluded).
        topic: Where a durable run waits for the decision (:func:`approval_topic`).
    """

    agent: str
    tool_name: str
    tool_call_id: str
    args: dict[str, Any]
    topic: str
    kind: Literal["approval-requested"] = "approval-requested"


class Approval(BaseModel):
    """A decision about one tool call.

    Attributes:
        approved: Whether the tool may run.
        reason: Why (told to the model on a denial).
        args: Arguments that replace the model's (an edited call), or ``None``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")
    approved: bool
    reason: str | None = None
    args: dict[str, Any] | None = None


_WORDS = {
    "approve": True,
    "approved": True,
    "yes": True,
    "deny": False,
    "denied": False,
    "no": False,
}


def read_decision(payload: Any) -> Approval:
    """Read a decision (see the module's documentation); an unreadable one is a denial."""
    if isinstance(payload, Approval):
        return payload
    if isinstance(payload, bool):
        return Approval(approved=payload)
    if isinstance(payload, str) and payload.strip().lower() in _WORDS:
        return Approval(approved=_WORDS[payload.strip().lower()])
    if isinstance(payload, dict):
        try:
            return Approval.model_validate(payload)
        except ValidationError as exc:
            why = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or '(decision)'}: {e['msg']}"
                for e in exc.errors(include_url=False)
            )
            return Approval(approved=False, reason=f"the decision could not be read ({why})")
    return Approval(
        approved=False,
        reason=f"the decision could not be read (expected 'approve', 'deny' or an object, "
        f"received {payload!r})",
    )


def needs_approval(tool: Tool, args: dict[str, Any]) -> bool:
    """Whether this call of ``tool`` with ``args`` waits for a decision."""
    rule = tool.requires_approval
    if rule is True or rule is False:
        return rule
    return bool(rule(args))


def in_durable_run() -> bool:
    """Whether the current task runs inside a durable run."""
    run = current_frame.get().run
    return run is not None and getattr(run, "durable", None) is not None


class ApprovalStep(Module[..., str]):
    """The recorded request for a decision (a child step of the agent: what it waits for)."""

    async def forward(self, topic: str, tool_name: str, args: Any) -> str:  # noqa: ARG002
        """Return the topic the run waits on (the inputs are the record)."""
        return topic


async def decide(
    agent: str,
    step: ApprovalStep,
    tool: Tool,
    tool_call_id: str,
    args: dict[str, Any],
    approver: Any,
) -> Approval:
    """Get the decision about one call: wait in place (durable) or ask the approver."""
    topic = approval_topic(tool_call_id)
    timeout = tool.approval_timeout
    if in_durable_run():
        from mai.core.durable import WaitTimeoutError, wait_for  # noqa: PLC0415 - durable only

        await step(topic, tool.name, args)
        try:
            payload = await wait_for(topic, timeout=timeout)
        except WaitTimeoutError:
            return Approval(approved=False, reason=f"no decision within {timeout:g} s")
        return read_decision(payload)
    if approver is None:
        raise ApprovalRequiredError(
            f"agent {agent!r}: tool {tool.name!r} needs approval, which waits in place inside "
            "a durable run (mai.Runtime(...).start(agent, ...)); outside one pass "
            "approver=<callback> to mai.Agent(...) or to the call",
            agent=agent,
            tool_name=tool.name,
        )
    request = ApprovalRequest(agent, tool.name, tool_call_id, args, topic)
    with anyio.move_on_after(timeout) as scope:
        answer = approver(request)
        if inspect.isawaitable(answer):
            answer = await answer
    if scope.cancelled_caught:
        return Approval(approved=False, reason=f"no decision within {timeout:g} s")
    return read_decision(answer)


def denial_text(tool_name: str, decision: Approval) -> str:
    """What the model is told when a call was not approved."""
    why = f": {decision.reason}" if decision.reason else ""
    return f"The call of {tool_name!r} was not approved and did not run{why}"
