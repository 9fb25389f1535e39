"""The plugin registry: tracers, casters, stores and models, from entry points or code.

Four entry-point groups, each discovered lazily, the first time it is needed (``import mai``
reads no package metadata):

==================  ==========================================================  ===============
group               an entry point resolves to                                  discovered at
==================  ==========================================================  ===============
``mai.tracers``     an :class:`~mai._seam.Interceptor` (``async (call,          the first
                    proceed)``), or a factory called once with no arguments     top-level call
                    that returns one; installed for every run from then on
``mai.casters``     a ``(source_type, target_type, fn)`` tuple, or an object    the first cast
                    with ``source``, ``target`` attributes that is itself       that misses the
                    callable (:class:`CasterPlugin`)                            exact-type path
``mai.stores``      ``factory(url) -> store``; the entry point's name is the    the first
                    URL scheme (``sqlite``, ``memory``, ``postgresql``)         store lookup
``mai.models``      ``factory(model_name) -> model``; the entry point's name    the first model
                    is the provider in model strings (``"openai:gpt-4o"``)      string resolved
==================  ==========================================================  ===============

:func:`plugins` discovers every group and lists what it found. A plugin that fails to import or
does not satisfy its protocol is skipped with a :class:`PluginWarning` naming the distribution
and the entry point; it never makes ``import mai`` (or a run) fail. Stores and models are
imported one by one, when their scheme or provider is first looked up (a process that opens a
PostgreSQL store imports no other store plugin); :func:`plugins` imports them all.
Applications can register and unregister plugins in code too; a plugin registered in code wins
over an entry point of the same name.
"""

from __future__ import annotations

import importlib.machinery
import inspect
import os
import sys
import threading
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from mai import _casting
from mai._errors import short_repr
from mai._seam import add_interceptor, add_run_hook, remove_interceptor
from mai.core._records import record

if TYPE_CHECKING:
    from collections.abc import Callable
    from importlib.metadata import EntryPoint
    from types import FrameType

    from mai._seam import Interceptor

TRACERS = "mai.tracers"
CASTERS = "mai.casters"
STORES = "mai.stores"
MODELS = "mai.models"
#: The entry-point groups pymai reads.
GROUPS = (TRACERS, CASTERS, STORES, MODELS)


class PluginWarning(UserWarning):
    """A plugin could not be loaded, or does not satisfy its protocol, and was skipped.

    The message names the entry point, its group, the distribution that declared it and why it
    was rejected.
    """


@record
class PluginInfo:
    """What :func:`mai.plugins` reports about one plugin.

    Attributes:
        group: ``"mai.tracers"``, ``"mai.casters"`` or ``"mai.stores"``.
        name: The entry point's name (for stores, the URL scheme).
        value: Where the object lives (``"package.module:attribute"``).
        distribution: The distribution that declared the entry point (``None`` for code).
        version: That distribution's version.
        status: ``"ok"``, or ``"broken"`` when it was skipped.
        reason: Why it was skipped (``None`` when ok).
        origin: ``"entry point"``, or ``"code"`` for plugins registered by the application.
    """

    group: str
    name: str
    value: str
    distribution: str | None
    version: str | None
    status: Literal["ok", "broken"]
    reason: str | None = None
    origin: Literal["entry point", "code"] = "entry point"


class CasterPlugin(Protocol):
    """A casting adapter as an object: converts values of exactly ``source`` to ``target``."""

    source: type
    target: Any

    def __call__(self, value: Any, /) -> Any:
        """Return ``value`` converted to ``target``."""
        ...


class StoreFactory(Protocol):
    """Opens a durable store from its URL (``sqlite:///runs.db``, ``memory://``, ...)."""

    def __call__(self, url: str, /) -> Any:
        """Return a store for ``url``."""
        ...


class _Invalid(Exception):
    """A plugin object that does not satisfy its group's protocol (the reason is the message)."""


_lock = threading.RLock()
_discovered: set[str] = set()
_discovering: set[str] = set()
_infos: dict[tuple[str, str], PluginInfo] = {}
_tracers: dict[str, Interceptor] = {}
_casters: dict[str, tuple[type, Any, Callable[[Any], Any]]] = {}
_stores: dict[str, StoreFactory] = {}
_models: dict[str, Callable[[str], Any]] = {}
#: Store and model entry points found but not imported yet, by (group, lookup key): a store or
#: a model provider is imported when it is first looked up, so a process that opens a
#: ``postgresql://`` store never imports the Temporal plugin (and temporalio) beside it.
_deferred: dict[tuple[str, str], tuple[EntryPoint, str | None, str | None]] = {}


# -- protocols ------------------------------------------------------------------------------------


def _is_interceptor(obj: Any) -> bool:
    """Whether ``obj`` is an async callable that accepts ``(call, proceed)``."""
    if inspect.isclass(obj) or not callable(obj):
        return False
    fn = obj if inspect.isfunction(obj) or inspect.ismethod(obj) else obj.__call__
    if not inspect.iscoroutinefunction(fn):
        return False
    try:
        inspect.signature(fn).bind(None, None)
    except (TypeError, ValueError):
        return False
    return True


def _as_tracer(obj: Any) -> Interceptor:
    """Return the interceptor ``obj`` is or makes (a factory is called once, without arguments)."""
    if _is_interceptor(obj):
        return obj  # type: ignore[no-any-return]
    if not callable(obj):
        raise _Invalid(
            f"expected an interceptor (async callable taking (call, proceed)) or a factory "
            f"returning one, found {short_repr(obj)}"
        )
    try:
        made = obj()
    except Exception as exc:
        raise _Invalid(
            f"{short_repr(obj)} is not an interceptor, and calling it as a factory with no "
            f"arguments failed: {exc!r}"
        ) from exc
    if not _is_interceptor(made):
        raise _Invalid(
            f"the factory returned {short_repr(made)}, not an interceptor (an async callable "
            "taking (call, proceed))"
        )
    return made  # type: ignore[no-any-return]


def _as_caster(obj: Any) -> tuple[type, Any, Callable[[Any], Any]]:
    """Return ``(source, target, fn)`` from a 3-tuple or a :class:`CasterPlugin` object."""
    if isinstance(obj, tuple):
        if len(obj) != 3:
            raise _Invalid(f"expected a (source, target, fn) tuple, found {len(obj)} items")
        source, target, fn = obj
    else:
        source, target, fn = getattr(obj, "source", None), getattr(obj, "target", None), obj
        if source is None or target is None:
            raise _Invalid(
                "expected a (source, target, fn) tuple or an object with source and target "
                f"attributes that is callable, found {short_repr(obj)}"
            )
    if not isinstance(source, type):
        raise _Invalid(f"the source type must be a class, found {short_repr(source)}")
    if not callable(fn):
        raise _Invalid(f"the conversion function must be callable, found {short_repr(fn)}")
    return source, target, fn


def check_store_factory(obj: Any) -> StoreFactory:
    """Return ``obj`` if it can serve as a store factory, else raise ``TypeError``.

    For now a store factory only has to be callable as ``factory(url)``; the check tightens
    once the store protocol exists.
    """
    if not callable(obj):
        raise TypeError(
            f"a store factory must be callable as factory(url) -> store, found {short_repr(obj)}"
        )
    return obj  # type: ignore[no-any-return]


# -- installing -----------------------------------------------------------------------------------


def _install(group: str, name: str, obj: Any) -> None:
    """Validate ``obj`` for ``group`` and make it active under ``name`` (replacing any other)."""
    if group == TRACERS:
        interceptor = _as_tracer(obj)
        _drop(group, name)
        _tracers[name] = interceptor
        add_interceptor(interceptor)
    elif group == CASTERS:
        source, target, fn = _as_caster(obj)
        _drop(group, name)
        _casting.register_adapter(source, target, fn)
        _casters[name] = (source, target, fn)
    elif group == MODELS:
        if not callable(obj):
            raise _Invalid(
                f"a model factory must be callable as factory(model_name) -> model, found "
                f"{short_repr(obj)}"
            )
        _models[name] = obj
    else:
        try:
            factory = check_store_factory(obj)
        except TypeError as exc:
            raise _Invalid(str(exc)) from None
        _stores[name.lower()] = factory


def _drop(group: str, name: str) -> bool:
    """Deactivate the plugin ``name`` of ``group``; tell whether there was one."""
    _infos.pop((group, name), None)
    deferred = _deferred.pop(_key(group, name), None) is not None  # found, not imported yet
    if group == TRACERS:
        interceptor = _tracers.pop(name, None)
        if interceptor is not None:
            remove_interceptor(interceptor)
        return interceptor is not None
    if group == CASTERS:
        entry = _casters.pop(name, None)
        if entry is not None and all(e[:2] != entry[:2] for e in _casters.values()):
            _casting.unregister_adapter(entry[0], entry[1])
        return entry is not None
    if group == MODELS:
        return _models.pop(name, None) is not None or deferred
    return _stores.pop(name.lower(), None) is not None or deferred


def _where(obj: Any) -> str:
    module = getattr(obj, "__module__", None) or type(obj).__module__
    qualname = getattr(obj, "__qualname__", None) or type(obj).__qualname__
    return f"{module}:{qualname}"


# -- discovery ------------------------------------------------------------------------------------


def _entry_points(group: str) -> list[EntryPoint]:
    if not _may_declare(group):
        return []  # no distribution names the group: importlib.metadata need not be loaded
    from importlib.metadata import entry_points  # noqa: PLC0415 - costly; only on discovery

    return list(entry_points(group=group))


def _may_declare(group: str) -> bool:
    """Whether a distribution on ``sys.path`` may declare ``group``: a cheap, conservative scan.

    Loading :mod:`importlib.metadata` and parsing every distribution's metadata costs a fresh
    process about 12 ms per run, for groups that are usually empty. This reads only the
    ``entry_points.txt`` of each ``*.dist-info`` / ``*.egg-info`` directory on ``sys.path`` and
    answers ``False`` only when none mentions the group. Anything it cannot read plainly (a zip
    or egg on the path, a meta-path finder that provides distributions of its own) answers
    ``True``, and :mod:`importlib.metadata` decides.
    """
    if any(
        finder is not importlib.machinery.PathFinder and hasattr(finder, "find_distributions")
        for finder in sys.meta_path
    ):
        return True
    needle = group.encode()
    for entry in sys.path:
        if entry.endswith(".egg"):
            return True
        texts = _entry_point_texts(entry or ".")
        if texts is None or any(needle in text for text in texts):
            return True
    return False


def _entry_point_texts(where: str) -> tuple[bytes, ...] | None:
    """The ``entry_points.txt`` files of the distributions in one ``sys.path`` directory.

    ``None`` for an entry that is not a directory (a zip file). Cached by the directory's
    modification time: installing or removing a distribution adds or removes a directory there.
    """
    try:
        stamp = os.stat(where).st_mtime_ns  # noqa: PTH116 - see below
    except OSError:
        return ()  # a path entry that does not exist: nothing is found there either
    cached = _ep_texts.get(where)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    try:
        with os.scandir(where) as found:
            names = [e.name for e in found if e.name.endswith((".dist-info", ".egg-info"))]
    except NotADirectoryError:
        return None
    except OSError:
        return ()
    texts = []
    for name in names:
        # plain strings, not Path objects: this runs for every distribution in a fresh process;
        # most have no entry points, and asking costs less than a failed open (an exception)
        path = f"{where}{os.sep}{name}{os.sep}entry_points.txt"
        if not os.access(path, os.F_OK):
            continue  # no entry points (or an egg-info file, not a directory)
        try:
            with open(path, "rb") as f:  # noqa: PTH123
                texts.append(f.read())
        except OSError:
            continue  # unreadable: nothing to read there
    _ep_texts[where] = (stamp, tuple(texts))
    return _ep_texts[where][1]


#: ``sys.path`` directory -> (its mtime, the entry_points.txt files found in it).
_ep_texts: dict[str, tuple[int, tuple[bytes, ...]]] = {}


def _discover(group: str) -> None:
    """Load the entry points of ``group`` once; warn about each one that is broken."""
    if group in _discovered:
        return
    broken: list[PluginInfo] = []
    with _lock:  # other threads wait here until the group is loaded
        if group in _discovered or group in _discovering:
            return  # done, or re-entered from a plugin this thread is loading
        _discovering.add(group)
        try:
            _load_group(group, broken)
        finally:
            _discovering.discard(group)
            _discovered.add(group)
    _warn(broken)


def _warn(broken: list[PluginInfo]) -> None:
    """One :class:`PluginWarning` per broken plugin, pointing at the user's line."""
    if broken:  # finding the user's frame costs imports: only when there is something to say
        level = _outside_mai()
        for info in broken:
            warnings.warn(_warning_text(info), PluginWarning, stacklevel=level)


def _key(group: str, name: str) -> tuple[str, str]:
    """The lookup key of a plugin: store schemes are case-insensitive."""
    return (group, name.lower() if group == STORES else name)


def _resolve(group: str, name: str) -> None:
    """Import the deferred store or model entry point named ``name``, if there is one."""
    if _key(group, name) not in _deferred:  # the common case: found and imported already
        return
    broken: list[PluginInfo] = []
    with _lock:
        found = _deferred.pop(_key(group, name), None)
        if found is not None:
            _load_one(group, *found, broken)
    _warn(broken)


def _resolve_all(group: str) -> None:
    for g, name in [k for k in _deferred if k[0] == group]:
        _resolve(g, name)


def _package_dirs() -> tuple[str, ...]:
    """Where mai and the event-loop machinery between it and the user's code live."""
    import asyncio  # noqa: PLC0415 - only when a broken plugin is reported
    import contextlib  # noqa: PLC0415

    import anyio  # noqa: PLC0415
    import trio  # noqa: PLC0415

    dirs = [f"{Path(m.__file__ or '').parent}{os.sep}" for m in (_casting, trio, anyio, asyncio)]
    return (*dirs, contextlib.__file__ or "")


def _outside_mai() -> int:
    """The ``stacklevel`` of the first caller outside mai and the event loop (the user's line).

    Discovery starts from many places (a first run, a first cast, ``mai.plugins()``), at
    different depths and sometimes inside a Trio or asyncio task, so a fixed level would name
    mai's own code.
    """
    skip = _package_dirs()
    level = 2  # level 1 is this function's caller, _warn
    frame: FrameType | None = sys._getframe(2)
    while frame is not None and frame.f_code.co_filename.startswith(skip):
        frame = frame.f_back
        level += 1
    return level if frame is not None else 2


def _load_group(group: str, broken: list[PluginInfo]) -> None:
    """Install the entry points of ``group``; append a record for each broken one to ``broken``."""
    try:
        eps = _entry_points(group)
    except Exception as exc:  # unreadable metadata must not break the caller
        eps = []
        broken.append(PluginInfo(group, "*", "", None, None, "broken", repr(exc)))
    for ep in eps:
        dist = getattr(ep, "dist", None)
        dist_name = getattr(dist, "name", None)
        version = getattr(dist, "version", None)
        known = _infos.get((group, ep.name))
        if known is not None and known.origin == "code":
            continue  # the application's own registration wins
        waiting = _deferred.get(_key(group, ep.name))
        if waiting is not None:  # a store or provider found earlier in this round
            first, first_dist = waiting[0], waiting[1]
            known = PluginInfo(group, ep.name, first.value, first_dist, waiting[2], "ok")
        if known is not None and known.status == "ok":
            reason = (
                f"the name {ep.name!r} is already provided by distribution "
                f"{known.distribution} ({known.value})"
            )
            broken.append(
                PluginInfo(group, ep.name, ep.value, dist_name, version, "broken", reason)
            )
            continue
        if group in (STORES, MODELS):
            _deferred[_key(group, ep.name)] = (ep, dist_name, version)  # imported on lookup
            continue
        _load_one(group, ep, dist_name, version, broken)
    if group == CASTERS:
        for name, (source, target, fn) in _casters.items():
            if _infos[(CASTERS, name)].origin == "code":  # the application's own wins
                _casting.register_adapter(source, target, fn)
        _activate_adapter_table()


def _load_one(
    group: str, ep: EntryPoint, dist_name: str | None, version: str | None, broken: list[PluginInfo]
) -> None:
    """Import one entry point and install it; record it, as ok or broken."""
    try:
        _install(group, ep.name, ep.load())
    except _Invalid as exc:
        reason = f"it does not satisfy the {group} protocol: {exc}"
    except Exception as exc:
        reason = f"loading it raised {exc!r}"
    else:
        _infos[(group, ep.name)] = PluginInfo(group, ep.name, ep.value, dist_name, version, "ok")
        return
    info = PluginInfo(group, ep.name, ep.value, dist_name, version, "broken", reason)
    _infos[(group, ep.name)] = info
    broken.append(info)


def _warning_text(info: PluginInfo) -> str:
    dist = f"{info.distribution} {info.version}" if info.distribution else "an unknown distribution"
    return (
        f"mai: skipping plugin {info.name!r} (entry point {info.value!r} in group "
        f"{info.group!r}, distribution {dist}): {info.reason}"
    )


class _PendingAdapters(dict[tuple[type, Any], Any]):
    """Stands in for the kernel's adapter table until ``mai.casters`` has been discovered.

    It looks non-empty, so the first cast that misses the exact-type path asks it for an
    adapter; that lookup discovers the group and puts a plain dict back in its place, so later
    casts pay nothing.
    """

    def __len__(self) -> int:
        return 1

    def get(self, key: tuple[type, Any], default: Any = None) -> Any:
        _discover(CASTERS)
        table = _casting._adapters
        if table is self:  # re-entered while discovery is loading a plugin
            return dict.get(self, key, default)
        return table.get(key, default)


def _activate_adapter_table() -> None:
    with _casting._adapter_lock:
        table = _casting._adapters
        if isinstance(table, _PendingAdapters):
            _casting._adapters = dict(dict.items(table))


def _install_pending_table() -> None:
    with _casting._adapter_lock:
        if CASTERS not in _discovered and not isinstance(_casting._adapters, _PendingAdapters):
            pending = _PendingAdapters()
            pending.update(_casting._adapters)
            _casting._adapters = pending


def _tracer_hook() -> None:
    """Run hook: discover ``mai.tracers`` on the first top-level call (they install themselves)."""
    if TRACERS not in _discovered:
        _discover(TRACERS)


# -- public API -----------------------------------------------------------------------------------


def plugins(group: str | None = None) -> list[PluginInfo]:
    """Discover the plugins (once) and list them, broken ones included.

    Args:
        group: Only this entry-point group (``"mai.tracers"``, ``"mai.casters"``,
            ``"mai.stores"``, ``"mai.models"``); default: all of them.

    Returns:
        One :class:`PluginInfo` per plugin, sorted by group and name: where it came from
        (distribution and version, or ``"code"``), and whether it is active.

    Raises:
        ValueError: For an unknown group.
    """
    groups = GROUPS if group is None else (_check_group(group),)
    for g in groups:
        _discover(g)
        _resolve_all(g)  # listing says whether each one loads: stores and models import now
    with _lock:
        found = [info for (g, _), info in _infos.items() if g in groups]
    return sorted(found, key=lambda i: (GROUPS.index(i.group), i.name))


def _check_group(group: str) -> str:
    if group not in GROUPS:
        raise ValueError(f"unknown plugin group {group!r}; valid: {', '.join(GROUPS)}")
    return group


def _register(group: str, name: str, obj: Any) -> None:
    with _lock:
        try:
            _install(group, name, obj)
        except _Invalid as exc:
            raise TypeError(f"cannot register {name!r} in {group}: {exc}") from None
        _deferred.pop(_key(group, name), None)  # the application's own wins
        where = _where(obj[2] if isinstance(obj, tuple) else obj)
        _infos[(group, name)] = PluginInfo(group, name, where, None, None, "ok", origin="code")


def _unregister(group: str, name: str) -> bool:
    _discover(group)  # so that a later discovery cannot bring it back
    with _lock:
        return _drop(group, name)


def register_tracer(name: str, tracer: Interceptor | Callable[[], Interceptor]) -> None:
    """Install a tracer for every run started from now on, as an entry point would.

    Args:
        name: The tracer's name (replaces a plugin of the same name).
        tracer: An interceptor (``async def __call__(call, proceed)``), or a factory called
            once, with no arguments, that returns one.

    Raises:
        TypeError: When ``tracer`` is neither; the message says why.
    """
    _register(TRACERS, name, tracer)


def unregister_tracer(name: str) -> bool:
    """Stop installing the tracer ``name`` (registered in code or found as an entry point).

    Returns:
        Whether there was such a tracer.
    """
    return _unregister(TRACERS, name)


def _caster_name(source: type, target: Any) -> str:
    return f"{getattr(source, '__qualname__', repr(source))}->{_casting.type_name(target)}"


def register_caster(source: type, target: Any, fn: Callable[[Any], Any]) -> None:
    """Convert values of exactly type ``source`` to the annotation ``target`` with ``fn``.

    From then on every cast to ``target`` (module arguments and results, composites feeding
    one module's output to the next) uses ``fn`` for a value whose type is exactly ``source``.
    Precedence: a value already of type ``target`` is passed through; then an adapter for the
    exact ``(type(value), target)`` pair; then pydantic validation. An exception raised by
    ``fn`` becomes a :class:`~mai.CastError` naming the module and parameter.

    Args:
        source: The type converted from (matched exactly, not by subclass).
        target: The annotation converted to (a class, or a form like ``list[Doc]``).
        fn: ``fn(value) -> target`` value.

    Raises:
        TypeError: When ``source`` is not a class or ``fn`` is not callable.
    """
    _register(CASTERS, _caster_name(source, target), (source, target, fn))


def unregister_caster(source: type, target: Any) -> bool:
    """Remove the adapter for ``(source, target)``, whether registered in code or by a plugin.

    Returns:
        Whether there was one.
    """
    _discover(CASTERS)
    with _lock:
        names = [n for n, e in _casters.items() if e[:2] == (source, target)]
        for n in names:
            _drop(CASTERS, n)
        had = _casting.find_adapter(source, target) is not None
        _casting.unregister_adapter(source, target)
    return bool(names) or had


def register_store(scheme: str, factory: StoreFactory | Callable[[str], Any]) -> None:
    """Make ``factory(url)`` open stores for URLs of the scheme ``scheme``.

    Args:
        scheme: The URL scheme, without ``://`` (``"sqlite"``, ``"memory"``, ...).
        factory: Called with the full URL; returns a store.

    Raises:
        TypeError: When ``factory`` is not callable.
        ValueError: When ``scheme`` is empty or contains ``:`` or ``/``.
    """
    if not scheme or ":" in scheme or "/" in scheme:
        raise ValueError(f"a store scheme is a bare URL scheme like 'sqlite', received {scheme!r}")
    _register(STORES, scheme, factory)


def unregister_store(scheme: str) -> bool:
    """Remove the store factory of ``scheme`` (registered in code or found as an entry point).

    Returns:
        Whether there was one.
    """
    return _unregister(STORES, scheme)


def store_factory(scheme: str) -> StoreFactory | None:
    """Return the factory that opens stores for ``scheme``, or ``None`` when there is none.

    The durable runtime uses this for URL schemes it does not handle itself; it reports an
    unknown scheme with the install command of a plugin that would handle it.

    Args:
        scheme: ``"postgresql"``, or a whole URL such as ``"postgresql://host/db"``.
    """
    name = scheme.partition(":")[0].lower()
    _discover(STORES)
    _resolve(STORES, name)
    with _lock:
        return _stores.get(name)


_install_pending_table()
add_run_hook(_tracer_hook)


def register_model(provider: str, factory: Callable[[str], Any]) -> None:
    """Make ``factory(model_name)`` build the models of model strings ``"provider:..."``.

    Args:
        provider: The provider part of model strings (``"acme"`` for ``"acme:large"``).
        factory: Called with the model name (the part after ``:``); returns a
            :class:`mai.agents.Model`.

    Raises:
        TypeError: When ``factory`` is not callable.
        ValueError: When ``provider`` is empty or contains ``:``.
    """
    if not provider or ":" in provider:
        raise ValueError(f"a model provider is a bare name like 'openai', received {provider!r}")
    _register(MODELS, provider, factory)


def unregister_model(provider: str) -> bool:
    """Remove the model provider ``provider`` (registered in code or found as an entry point).

    Returns:
        Whether there was one.
    """
    return _unregister(MODELS, provider)


def model_factory(provider: str) -> Callable[[str], Any] | None:
    """Return the factory of the model provider ``provider``, or ``None``."""
    _discover(MODELS)
    _resolve(MODELS, provider)
    with _lock:
        return _models.get(provider)


def model_providers() -> list[str]:
    """The model providers found (entry points and code), sorted."""
    _discover(MODELS)
    _resolve_all(MODELS)
    with _lock:
        return sorted(_models)
