"""structlog glue: every log line inside a module call names the module, step and run.

Two ways, both keyed ``module``, ``step_id`` and ``run_id`` (the last only when the run has an
id); values the log call passes itself always win:

* :func:`log_context`, a structlog processor. Add it to your processor chain; it reads the
  current call when a line is logged and costs nothing on calls that do not log.
* Automatic binding through ``structlog.contextvars``: when, at the start of a run, the
  application has configured structlog (``structlog.configure``) with
  ``structlog.contextvars.merge_contextvars`` among its processors, each module call binds the
  three keys with ``bind_contextvars`` and restores exactly what was there before when it
  returns. This puts every call of the run on the interceptor path; :func:`auto_bind` turns it
  off. structlog's builtin defaults (structlog imported but never configured) do not count,
  although they include ``merge_contextvars``: otherwise merely importing structlog, which the
  kernel itself does on its first retry log, would slow every later call down.

The library's own events (``mai.retry``, ``mai.retries_exhausted``, ``mai.deadline_exceeded``)
are logged with structlog by the kernel.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from mai._context import current_frame
from mai._seam import add_run_hook

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, MutableMapping

    from mai._seam import Call, Interceptor

_enabled = True


def log_context(
    _logger: Any, _method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Structlog processor: add ``module``, ``step_id`` and ``run_id`` of the current call.

    Configure it once in the application::

        structlog.configure(processors=[mai.log_context, ..., structlog.dev.ConsoleRenderer()])

    Inside a module body (async, in a worker thread, in a Parallel branch) each line then
    carries the call's module name and step id, and the run id when the run has one. Outside
    module calls nothing is added. Keys the log call sets itself are kept.

    Args:
        _logger: The wrapped logger (unused).
        _method_name: The log method's name (unused).
        event_dict: The event being logged.

    Returns:
        ``event_dict``, with the keys added.
    """
    frame = current_frame.get()
    run = frame.run
    if run is None or frame.parent is None:
        return event_dict
    event_dict.setdefault("module", frame.name)
    event_dict.setdefault("step_id", frame.step_id)
    if run.run_id is not None:
        event_dict.setdefault("run_id", run.run_id)
    return event_dict


class _Binder:
    """Interceptor: bind the call's keys in structlog's contextvars around it, then restore."""

    __slots__ = ("_bind", "_reset")

    def __init__(self, structlog: Any) -> None:
        self._bind = structlog.contextvars.bind_contextvars
        self._reset = structlog.contextvars.reset_contextvars

    async def __call__(self, call: Call, proceed: Callable[[], Awaitable[Any]]) -> Any:
        run_id = call.frame.run.run_id  # type: ignore[union-attr]
        if run_id is None:
            tokens = self._bind(module=call.name, step_id=call.step_id)
        else:
            tokens = self._bind(module=call.name, step_id=call.step_id, run_id=run_id)
        try:
            return await proceed()
        finally:
            self._reset(**tokens)


_binder: _Binder | None = None


def _hook() -> Interceptor | None:
    """Run hook: the binding interceptor when structlog merges contextvars."""
    if not _enabled:
        return None
    structlog = sys.modules.get("structlog")
    if structlog is None:
        return None
    try:
        if not structlog.is_configured():
            return None
        processors = structlog.get_config()["processors"]
        merge = structlog.contextvars.merge_contextvars
    except Exception:  # an unexpected structlog: no automatic binding
        return None
    if not any(p is merge for p in processors):
        return None
    global _binder  # noqa: PLW0603 - built once, when structlog is first seen
    binder = _binder
    if binder is None:
        binder = _binder = _Binder(structlog)
    return binder


def auto_bind(enabled: bool) -> None:
    """Turn the automatic ``structlog.contextvars`` binding on or off for runs started later.

    It is on by default. Turn it off when you log through :func:`log_context` instead: then
    module calls that do not log cost nothing extra.

    Args:
        enabled: ``True`` to bind (the default), ``False`` not to.
    """
    global _enabled  # noqa: PLW0603 - a process-wide switch
    _enabled = bool(enabled)


add_run_hook(_hook)
