"""What a remote executor needs to run pymai modules somewhere else (for example on Temporal).

A remote executor runs a workflow's composite control flow in one place (a Temporal workflow)
and each leaf module call somewhere else (an activity, on any worker). Three things make that
possible without reaching into the kernel:

* **A stable module reference.** :func:`module_ref` names a module so that another process can
  import it again with :func:`resolve_module_ref`: ``pkg.mod:attr``, plus the ``with_``
  configuration and bound parameters when the module is a ``with_`` variant of an importable one
  (``pkg.mod:attr?{"timeout": 5, "x": 2}``). Leaves deep inside a workflow are named by their
  position in the workflow's tree (:func:`tree_paths`, :func:`module_at`): the path of child
  indexes from the workflow's module, stable as long as the workflow's structure is.
* **Running one step.** :func:`run_step` runs module M as step S of run R, attempt n: inside it
  ``Context.step_id``, ``Context.idempotency_key`` and ``Context.retry_count`` are exactly those
  the workflow computed, and the module's nested calls get the step ids S.1, S.2, ...
* **The call's configuration, on the workflow side.** An interceptor sees a
  :class:`~mai._seam.Call` with its ``config`` (``timeout``, ``retries``, ``backoff``,
  ``retry_on``, ``max_concurrency``), whether it is a ``leaf``, and can hand the attempts to the
  kernel's own deadline/retry/limit machinery with a remote body (:meth:`Call.execute`).

Errors travel as data: :func:`encode_error` turns an exception into JSON-compatible data (type,
message, arguments and simple attributes) and :func:`decode_error` rebuilds an exception of the
same type, so a caller catches what the step raised. A scheme registered in the ``mai.stores``
entry-point group by a factory whose ``remote_executor`` attribute is true opens an executor
instead of a store: ``mai.Runtime("temporal://...")`` then returns that executor's runtime.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import math
import sys
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from mai._backend import current_backend
from mai._config import Backoff, Config
from mai._context import Frame, RunState, current_frame
from mai._errors import ConfigError, MaiError
from mai._module import Module
from mai._seam import active_interceptors

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

__all__ = [
    "RemoteError",
    "decode_error",
    "dumps",
    "encode_error",
    "encode_input",
    "executor_factory",
    "loads",
    "module_at",
    "module_ref",
    "resolve_module_ref",
    "run_step",
    "tree_paths",
]

_JSON_CONFIG = ("name", "timeout", "retries", "backoff", "max_concurrency", "inline")


class RemoteError(MaiError, RuntimeError):
    """An error raised by a step that ran elsewhere, whose type could not be rebuilt here.

    Attributes:
        error_type: The qualified name of the original exception type.
        error_message: Its message.
    """

    def __init__(self, message: str, *, error_type: str = "", error_message: str = "") -> None:
        """Create the error with the original type's name and message."""
        super().__init__(message)
        self.error_type = error_type
        self.error_message = error_message


# -- module references ----------------------------------------------------------------------------


def _import(mod_name: str, qual: str) -> Any:
    target: Any = importlib.import_module(mod_name)
    for part in qual.split("."):
        target = getattr(target, part)
    return target


def _plain_ref(module: Module[..., Any]) -> str | None:
    """``pkg.mod:attr`` when ``module`` itself is importable under that name."""
    candidates: list[tuple[str, str]] = []
    fn = getattr(module, "__wrapped__", None)
    if fn is not None:
        candidates.append((fn.__module__, fn.__qualname__))
    mod_name = getattr(module, "__module__", None) or type(module).__module__
    if mod_name and mod_name != "__main__":
        try:
            mod = importlib.import_module(mod_name)
        except ImportError:
            mod = None
        if mod is not None:
            candidates += [(mod_name, a) for a, v in vars(mod).items() if v is module]
    if not candidates:  # a composite: look for it in the modules loaded so far
        for name, mod in list(sys.modules.items()):
            if name == "__main__" or name.startswith(("mai.", "_")) or mod is None:
                continue
            found = [a for a, v in list(getattr(mod, "__dict__", {}).items()) if v is module]
            candidates += [(name, a) for a in found]
    for mod_name, qual in candidates:
        if mod_name == "__main__" or "<locals>" in qual:
            continue
        try:
            if _import(mod_name, qual) is module:
                return f"{mod_name}:{qual}"
        except (ImportError, AttributeError):
            continue
    return None


def _config_changes(base: Config, cfg: Config) -> dict[str, Any] | None:
    """The JSON form of what ``cfg`` changes from ``base``; ``None`` when it cannot be said."""
    if cfg.retry_on is not base.retry_on and cfg.retry_on != base.retry_on:
        return None
    changes: dict[str, Any] = {}
    for key in _JSON_CONFIG:
        value = getattr(cfg, key)
        if value != getattr(base, key):
            changes[key] = dataclasses.asdict(value) if isinstance(value, Backoff) else value
    return changes


def module_ref(module: Module[..., Any]) -> str | None:
    """A reference another process can import with :func:`resolve_module_ref`, or ``None``.

    ``pkg.mod:attr`` names a module-level module. A ``with_`` variant of an importable
    ``@mai.module`` function (bound parameters and configuration included) is named
    ``pkg.mod:attr?{json}``; the JSON holds the keys to pass to ``with_`` again. Modules defined
    in ``__main__`` or inside functions, and variants whose ``retry_on`` or bound values are not
    JSON data, have no reference.
    """
    plain = _plain_ref(module)
    if plain is not None:
        return plain
    fn = getattr(module, "__wrapped__", None)
    if fn is None:
        return None
    try:
        base = _import(fn.__module__, fn.__qualname__)
    except (ImportError, AttributeError):
        return None
    if not isinstance(base, Module) or base.__wrapped__ is not fn:  # type: ignore[attr-defined]
        return None
    base_ref = _plain_ref(base)
    changes = _config_changes(base.config, module.config)
    if base_ref is None or changes is None:
        return None
    extra = {k: v for k, v in module.bound.items() if base.bound.get(k, _MISSING) is not v}
    try:
        text = json.dumps({**changes, **extra}, sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError):
        return None
    return f"{base_ref}?{text}"


_MISSING = object()


def resolve_module_ref(ref: str) -> Module[..., Any]:
    """Import the module a :func:`module_ref` reference names (applying its ``with_`` keys).

    Raises:
        ConfigError: (a ``TypeError``) when the reference cannot be imported or does not name
            a module; the message names the reference.
    """
    target_ref, _, cfg_text = ref.partition("?")
    mod_name, sep, qual = target_ref.partition(":")
    if not sep or not mod_name or not qual:
        raise ConfigError(f"module reference {ref!r} is not of the form 'pkg.mod:attr'")
    try:
        target = _import(mod_name, qual)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"cannot import module reference {ref!r}: {exc}") from exc
    if not isinstance(target, Module):
        raise ConfigError(f"module reference {ref!r} names {type(target).__name__}, not a module")
    if cfg_text:
        cfg = json.loads(cfg_text)
        if isinstance(cfg.get("backoff"), dict):
            cfg["backoff"] = Backoff(**cfg["backoff"])
        target = target.with_(**cfg)
    return target  # type: ignore[no-any-return]


def tree_paths(root: Module[..., Any]) -> dict[int, tuple[int, ...]]:
    """Map ``id(module)`` to its path of child indexes from ``root``, for every module in it.

    A module that occurs several times gets its first path (any path finds the same object).
    """
    paths: dict[int, tuple[int, ...]] = {}
    todo: list[tuple[Module[..., Any], tuple[int, ...]]] = [(root, ())]
    while todo:
        m, path = todo.pop()
        if id(m) in paths:
            continue
        paths[id(m)] = path
        todo.extend((c, (*path, i)) for i, c in enumerate(m.children()))
    return paths


def module_at(root: Module[..., Any], path: tuple[int, ...] | list[int]) -> Module[..., Any]:
    """The module at ``path`` (child indexes) under ``root``.

    Raises:
        ConfigError: When the path does not exist in ``root``'s tree (the code changed).
    """
    m = root
    for depth, i in enumerate(path):
        kids = m.children()
        if not 0 <= i < len(kids):
            raise ConfigError(
                f"module {root.name!r} has no child at path {list(path)!r} (stopped at "
                f"{m.name!r}, depth {depth}); the workflow's structure changed since the step "
                "was scheduled",
                module_name=root.name,
            )
        m = kids[i]
    return m


# -- running one step -----------------------------------------------------------------------------


async def run_step(
    module: Module[..., Any],
    args: tuple[Any, ...] | list[Any],
    kwargs: Mapping[str, Any] | None = None,
    *,
    run_id: str,
    step_id: str,
    retry_count: int = 0,
    timeout: float | None = None,  # noqa: ASYNC109 - a deadline handed over from elsewhere
    metadata: Mapping[str, Any] | None = None,
) -> Any:
    """Run module M as step ``step_id`` of run ``run_id``, attempt ``retry_count``: one attempt.

    The arguments are cast to the module's types and the result to its return type. Inside the
    body, ``Context.get()`` reports this ``run_id``, ``step_id``, ``retry_count`` and the
    idempotency key ``"<run_id>/<step_id>"``; nested module calls are the steps
    ``<step_id>.1``, ``<step_id>.2``, ... The module's own ``retries`` are not applied (the
    caller decides about another attempt); its ``timeout`` and ``timeout`` here both bound the
    attempt. Interceptors installed in this process (tracers) see the call.

    Args:
        module: The module to run (a leaf; a composite runs its children here too).
        args: Positional arguments (JSON data is fine: they are cast).
        kwargs: Keyword arguments.
        run_id: The run the step belongs to.
        step_id: The step's hierarchical id, for example ``"1.2.3"``.
        retry_count: 0 for the first attempt, then 1, 2, ...
        timeout: Seconds this attempt may take (``None``: no limit beyond the module's own).
        metadata: Context metadata for the call.

    Raises:
        ConfigError: When ``step_id`` is not a hierarchical id.
        Exception: Whatever the module raises (a deadline as :class:`~mai.DeadlineExceeded`).
    """
    parent_id, _, last = step_id.rpartition(".")
    if not last.isdigit() or not all(p.isdigit() for p in parent_id.split(".") if parent_id):
        raise ConfigError(f"run_step: step_id {step_id!r} is not a hierarchical id like '1.2.3'")
    backend = current_backend()
    run = RunState(backend, active_interceptors())
    run.run_id = run_id
    meta: Mapping[str, Any] = MappingProxyType(dict(metadata or {}))
    deadline = math.inf if timeout is None else backend.current_time() + timeout
    owner = None if deadline == math.inf else module.name
    root = Frame(None, 0, None, run, deadline, owner, deadline == math.inf, timeout, meta, None)
    parent = root
    if parent_id:
        parent = Frame(root, 0, None, run, deadline, owner, root.enforced, timeout, meta, None)
        parent._step_id = parent_id
    single = module if module.config.retries == 0 else module.with_config(retries=0)
    token = current_frame.set(parent)
    try:
        frame, cargs, ckwargs = single._enter(parent, int(last), tuple(args), dict(kwargs or {}))
        frame._step_id = step_id
        frame.retry_count = retry_count
        frame.attempts = retry_count + 1
        return await single._run_frame(frame, cargs, ckwargs)
    finally:
        current_frame.reset(token)


# -- errors as data -------------------------------------------------------------------------------


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def encode_error(exc: BaseException) -> dict[str, Any]:
    """Describe ``exc`` as JSON-compatible data: type, message, arguments, simple attributes.

    Exception groups keep their sub-exceptions; notes are kept.
    """
    cls = type(exc)
    data: dict[str, Any] = {
        "type": f"{cls.__module__}:{cls.__qualname__}",
        "message": str(exc),
        "args": [a if _jsonable(a) else repr(a) for a in exc.args],
        "attrs": {
            k: v
            for k, v in vars(exc).items()
            if not k.startswith("__") and k != "_mai_running" and _jsonable(v)
        },
    }
    notes = getattr(exc, "__notes__", None)
    if notes:
        data["notes"] = [str(n) for n in notes]
    if isinstance(exc, BaseExceptionGroup):
        data["exceptions"] = [encode_error(e) for e in exc.exceptions]
    return data


def _error_class(type_name: str) -> type[BaseException] | None:
    mod_name, _, qual = type_name.partition(":")
    try:
        cls = _import(mod_name, qual)
    except (ImportError, AttributeError, ValueError):
        return None
    return cls if isinstance(cls, type) and issubclass(cls, Exception) else None


def decode_error(data: Mapping[str, Any]) -> Exception:
    """Rebuild the exception :func:`encode_error` described: same type, message and attributes.

    When the type cannot be imported here (or refuses to be rebuilt) the result is a
    :class:`RemoteError` naming the original type and message.
    """
    type_name = str(data.get("type", ""))
    message = str(data.get("message", ""))
    cls = _error_class(type_name)
    exc: Any = None
    if cls is not None:
        try:
            if issubclass(cls, BaseExceptionGroup):
                subs = [decode_error(e) for e in data.get("exceptions", [])]
                exc = cls(message.partition(" (")[0], subs)
            else:
                exc = cls.__new__(cls, *data.get("args", []))
                exc.args = tuple(data.get("args", []))
                for key, value in dict(data.get("attrs", {})).items():
                    setattr(exc, key, value)
        except Exception:  # any type that refuses to be rebuilt becomes a RemoteError
            exc = None
    if exc is None:
        short = type_name.rpartition(":")[2] or "Exception"
        exc = RemoteError(f"{short}: {message}", error_type=type_name, error_message=message)
    for note in data.get("notes", []):
        exc.add_note(note)
    return exc  # type: ignore[no-any-return]


# -- executors behind store URLs ------------------------------------------------------------------


def executor_factory(url: str) -> Callable[..., Any] | None:
    """The factory of the remote executor registered for ``url``'s scheme, if it is one.

    A ``mai.stores`` plugin is an executor when its factory has a true ``remote_executor``
    attribute; ``factory(url, **options)`` then returns a runtime with the methods of
    :class:`mai.Runtime` (``start``, ``submit``, ``get``, ``list_runs``, ``steps``, ``cancel``,
    ``send``, ``resume``) and ``serve(app, queues, concurrency, name)`` for ``mai worker``.
    """
    scheme = url.partition("://")[0].lower()
    if scheme in {"sqlite", "memory", ""} or "://" not in url:
        return None
    from .plugins import store_factory  # noqa: PLC0415 - reads entry points on first use

    factory = store_factory(scheme)
    return factory if getattr(factory, "remote_executor", False) else None


# -- values as data -------------------------------------------------------------------------------


def dumps(value: Any, *, what: str) -> str:
    """JSON text of ``value`` as a durable run records it (pydantic models and dataclasses too).

    Raises:
        SerializationError: When the value cannot be recorded as JSON; the message names ``what``.
    """
    from .durable import _serde  # noqa: PLC0415 - the durable wing is imported on use

    return _serde.dumps(value, what=what)


def loads(text: str) -> Any:
    """Decode JSON text written by :func:`dumps`."""
    return json.loads(text)


def encode_input(module: Module[..., Any], args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> str:
    """Validate a run's input against ``module``'s types and return it as JSON text.

    The text is ``{"args": [...], "kwargs": {...}}``, exactly what a durable run records.

    Raises:
        CastError: When the input does not fit the module's types.
        SerializationError: When it cannot be recorded as JSON.
    """
    from .durable._runtime import _validate_input  # noqa: PLC0415

    cast_args, cast_kwargs = _validate_input(module, args, dict(kwargs))
    return dumps({"args": cast_args, "kwargs": cast_kwargs}, what="the run's input")
