"""Which plan a run was recorded under, and whether changed code may resume it.

A run records the :class:`~mai.WorkflowPlan` of its workflow and the plan's hash. On resume an
identical hash resumes at once; otherwise ``WorkflowPlan.diff`` classifies every change:
compatible ones (appended steps, configuration, module bodies, which are not in the plan) let
the run resume; an incompatible one (a removed or inserted step, a changed module, edge or type)
refuses it before any new step runs, naming the first divergent step.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._errors import PlanMismatchError

if TYPE_CHECKING:
    from mai._module import Module


def plan_for(module: Module[..., Any]) -> tuple[str, str]:
    """Return ``(hash, json)`` of the module's :class:`~mai.WorkflowPlan`."""
    from mai.core.graph import plan  # noqa: PLC0415 - plans are built only when a run starts

    p = plan(module)
    return p.hash, p.to_json()


def _absolute(step: str | None) -> str:
    """A plan step path (relative to the top-level call, whose step id is "1") as a step id."""
    return f"1.{step}" if step else "1"


def check_resumable(
    run_id: str, recorded_hash: str, recorded_plan: str, module: Module[..., Any]
) -> None:
    """Raise :class:`PlanMismatchError` if ``module`` cannot resume the recorded run."""
    from mai.core.graph import WorkflowPlan, plan  # noqa: PLC0415

    new = plan(module)
    if new.hash == recorded_hash or not recorded_plan:
        return
    try:
        old = WorkflowPlan.from_json(recorded_plan)
    except Exception as exc:  # an unreadable recorded plan cannot vouch for anything
        raise PlanMismatchError(
            f"run {run_id!r} cannot resume: its recorded plan cannot be read ({exc})",
            run_id=run_id,
            module_name=module.name,
        ) from exc
    bad = [c for c in old.diff(new) if not c.compatible]
    if bad:
        first = bad[0]
        step = _absolute(first.step)
        raise PlanMismatchError(
            f"run {run_id!r} cannot resume under the current code: {first.description} "
            f"(first divergent step {step}; {len(bad)} incompatible change"
            f"{'' if len(bad) == 1 else 's'}). Finish it with the code it started with, "
            "or cancel it.",
            run_id=run_id,
            step_id=step,
            module_name=module.name,
        )
