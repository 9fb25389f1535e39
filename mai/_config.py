"""Execution configuration of a module: name, timeout, retries, backoff, concurrency, inline."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

from mai.core._records import record

from ._errors import ConfigError, DeadlineExceeded, ModelRetry

FRAMEWORK_KEYS = ("name", "timeout", "retries", "backoff", "retry_on", "max_concurrency", "inline")


@record
class Backoff:
    """Exponential backoff between retries: ``initial * factor ** (attempt - 1)``, capped.

    Attributes:
        initial: Delay before the first retry, in seconds.
        factor: Multiplier applied for each further retry.
        max: Upper bound of any single delay, in seconds.
        jitter: Fraction of random spread (0.1 = up to ±10%); 0 keeps delays deterministic.
    """

    initial: float = 0.1
    factor: float = 2.0
    max: float = 30.0
    jitter: float = 0.0

    def delay(self, attempt: int) -> float:
        """Return the delay before retry number ``attempt`` (1 for the first retry)."""
        base = min(self.initial * self.factor ** max(attempt - 1, 0), self.max)
        if self.jitter:
            import random  # noqa: PLC0415 - jitter is rare; keep it off import mai

            base *= 1.0 + random.uniform(-self.jitter, self.jitter)  # noqa: S311 - not crypto
        return max(base, 0.0)


RetryOn = tuple[type[BaseException], ...] | Callable[[BaseException], bool]


def _default_retryable(exc: BaseException) -> bool:
    """Retry any ordinary error except a deadline that already fired or a ``ModelRetry``."""
    return not isinstance(exc, DeadlineExceeded | ModelRetry)


@record
class Config:
    """How a module call executes; built by ``@mai.module(...)`` and ``with_()``.

    Attributes:
        name: Name used in step ids, traces and error messages.
        timeout: Seconds the call may take (retries and backoff included); ``None`` for no limit.
        retries: How many times a failing call is tried again (0 = no retry).
        backoff: Delay policy between attempts.
        retry_on: Exception types that are retried, or a predicate on the exception.
        max_concurrency: At most this many calls of this module run at once (``None``: no limit).
        inline: Run a sync body in the calling task instead of a worker thread.
    """

    name: str
    timeout: float | None = None
    retries: int = 0
    backoff: Backoff = Backoff()
    retry_on: RetryOn = _default_retryable
    max_concurrency: int | None = None
    inline: bool = False

    @property
    def plain(self) -> bool:
        """True when the call needs none of the slower machinery (timeout, retries, limit)."""
        return self.timeout is None and self.retries == 0 and self.max_concurrency is None

    def retryable(self, exc: BaseException) -> bool:
        """Tell whether ``exc`` may be retried under this configuration."""
        retry_on = self.retry_on
        if isinstance(retry_on, tuple):
            return isinstance(exc, retry_on) and not isinstance(exc, DeadlineExceeded | ModelRetry)
        return bool(retry_on(exc))

    def replace(self, module: str, **changes: Any) -> Config:
        """Return a validated copy with ``changes`` applied."""
        for key, value in changes.items():
            changes[key] = _validate(module, key, value)
        return dataclasses.replace(self, **changes)


def _validate(module: str, key: str, value: Any) -> Any:
    def bad(expected: str) -> ConfigError:
        return ConfigError(
            f"module {module!r}: {key}= expects {expected}, received {value!r}",
            module_name=module,
            key=key,
            valid=FRAMEWORK_KEYS,
        )

    if key == "name":
        if not isinstance(value, str) or not value:
            raise bad("a non-empty string")
        return value
    if key == "timeout":
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
            raise bad("a positive number of seconds or None")
        return float(value) if not math.isinf(value) else None
    if key == "retries":
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise bad("a non-negative integer")
        return value
    if key == "backoff":
        if isinstance(value, Backoff):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
            return Backoff(initial=float(value))
        raise bad("a number of seconds or a mai.Backoff")
    if key == "retry_on":
        if isinstance(value, type) and issubclass(value, BaseException):
            return (value,)
        if (
            isinstance(value, tuple)
            and value
            and all(isinstance(t, type) and issubclass(t, BaseException) for t in value)
        ):
            return value
        if callable(value):
            return value
        raise bad("an exception type, a tuple of them, or a predicate")
    if key == "max_concurrency":
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise bad("a positive integer or None")
        return value
    if key == "inline":
        if not isinstance(value, bool):
            raise bad("True or False")
        return value
    raise ConfigError(
        f"module {module!r}: unknown configuration key {key!r}; "
        f"valid keys: {', '.join(FRAMEWORK_KEYS)}",
        module_name=module,
        key=key,
        valid=FRAMEWORK_KEYS,
    )
