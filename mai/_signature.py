"""Binding call arguments to a module's signature, and casting them on the way."""

from __future__ import annotations

import contextlib
import inspect
import typing
from typing import TYPE_CHECKING, Any

from ._casting import RETURN, Caster, caster_for
from ._errors import ArgumentError, ConfigError

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

_P = inspect.Parameter
_POSITIONAL = (_P.POSITIONAL_ONLY, _P.POSITIONAL_OR_KEYWORD)


class Spec:
    """What the kernel knows about a module body's signature.

    ``fast_n`` is the number of positional arguments that can be passed straight through
    (after casting) without binding; ``-1`` when the signature needs the general binder.
    Annotations are resolved on first use so forward references defined later still work.
    """

    __slots__ = (
        "_fn",
        "casters",
        "fast_n",
        "is_async",
        "params",
        "passthrough",
        "pos_casters",
        "ready",
        "ret",
        "return_annotation",
        "signature",
    )

    def __init__(self, fn: Callable[..., Any], *, skip_first: bool = False) -> None:
        """Inspect ``fn``; ``skip_first`` drops ``self`` from an unbound ``forward``."""
        self._fn = fn
        sig = inspect.signature(fn)
        params = list(sig.parameters.values())
        if skip_first and params:
            params = params[1:]
        self.params: list[inspect.Parameter] = params
        self.signature = sig.replace(parameters=params)
        call = getattr(fn, "__call__", None)  # noqa: B004 - async callable objects count too
        self.is_async = inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(call)
        self.passthrough = [p.kind for p in params] == [_P.VAR_POSITIONAL, _P.VAR_KEYWORD] and all(
            p.annotation is _P.empty for p in params
        )
        required_kwonly = any(p.kind is _P.KEYWORD_ONLY and p.default is _P.empty for p in params)
        var = any(p.kind in (_P.VAR_POSITIONAL, _P.VAR_KEYWORD) for p in params)
        n_pos = sum(p.kind in _POSITIONAL for p in params)
        self.fast_n = -1 if (required_kwonly or var) else n_pos
        self.casters: dict[str, Caster | None] = {}
        self.pos_casters: tuple[tuple[int, str, Caster], ...] = ()
        self.ret: Caster | None = None
        self.return_annotation: Any = sig.return_annotation
        self.ready = False
        # A forward reference not defined yet is resolved again on the first call.
        with contextlib.suppress(NameError):
            self.resolve()

    def resolve(self) -> None:
        """Resolve annotations (``get_type_hints``) and build one caster per parameter."""
        fn = self._fn
        target: Any = fn
        if not (inspect.isfunction(fn) or inspect.ismethod(fn)) and callable(fn):
            target = type(fn).__call__
        try:
            hints = typing.get_type_hints(target, include_extras=True)
        except NameError:
            raise
        except Exception:
            hints = {}
        casters: dict[str, Caster | None] = {}
        for p in self.params:
            ann = hints.get(p.name, p.annotation)
            if isinstance(ann, str):
                raise ConfigError(f"cannot resolve the annotation {ann!r} of parameter {p.name!r}")
            casters[p.name] = caster_for(ann)
        self.casters = casters
        self.pos_casters = tuple(
            (i, p.name, c)
            for i, p in enumerate(self.params)
            if p.kind in _POSITIONAL and (c := casters[p.name]) is not None
        )
        ret = hints.get("return", self.signature.return_annotation)
        if isinstance(ret, str):
            raise ConfigError(f"cannot resolve the return annotation {ret!r}")
        self.return_annotation = ret
        self.ret = caster_for(ret)
        self.ready = True

    @property
    def parameter_names(self) -> tuple[str, ...]:
        """Names of the named (non-variadic) parameters, in order."""
        return tuple(
            p.name for p in self.params if p.kind not in (_P.VAR_POSITIONAL, _P.VAR_KEYWORD)
        )

    def annotations(self) -> dict[str, tuple[Any, Any]]:
        """Map each named parameter to ``(annotation, default)`` for the Payload model."""
        if not self.ready:
            self.resolve()
        out: dict[str, tuple[Any, Any]] = {}
        for p in self.params:
            if p.kind in (_P.VAR_POSITIONAL, _P.VAR_KEYWORD):
                continue
            c = self.casters.get(p.name)
            out[p.name] = (c.annotation if c is not None else Any, p.default)
        return out

    def cast_one(self, module: str, name: str, value: Any, step_id: str | None = None) -> Any:
        """Cast one argument for parameter ``name``."""
        if not self.ready:
            self.resolve()
        c = self.casters.get(name)
        if c is None:
            var_kw = next((p for p in self.params if p.kind is _P.VAR_KEYWORD), None)
            c = self.casters.get(var_kw.name) if var_kw is not None else None
        return value if c is None else c.cast(value, module, name, step_id)

    def cast_return(self, module: str, value: Any, step_id: str | None = None) -> Any:
        """Cast a return value to the return annotation."""
        c = self.ret
        if c is None or type(value) is c.exact:
            return value
        return c.cast(value, module, RETURN, step_id)

    def bind(
        self,
        module: str,
        args: tuple[Any, ...],
        kwargs: Mapping[str, Any],
        bound: Mapping[str, Any],
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """Bind and cast arguments; return what to call the body with.

        Positional arguments fill the parameters that ``with_()`` left free, in order; keyword
        arguments may override bound values (like ``functools.partial``).
        """
        if not self.ready:
            self.resolve()
        values: dict[str, Any] = {}
        extra: tuple[Any, ...] = ()
        free = [p for p in self.params if p.kind in _POSITIONAL and p.name not in bound]
        var_pos = next((p for p in self.params if p.kind is _P.VAR_POSITIONAL), None)
        var_kw = next((p for p in self.params if p.kind is _P.VAR_KEYWORD), None)
        if len(args) > len(free):
            if var_pos is None:
                raise ArgumentError(
                    f"module {module!r} takes {len(free)} positional argument"
                    f"{'' if len(free) == 1 else 's'} but {len(args)} were given",
                    module_name=module,
                )
            extra = args[len(free) :]
        for p, v in zip(free, args, strict=False):
            values[p.name] = v
        names = {
            p.name: p for p in self.params if p.kind not in (_P.VAR_POSITIONAL, _P.VAR_KEYWORD)
        }
        for k, v in bound.items():
            values.setdefault(k, v)
        extra_kw: dict[str, Any] = {}
        for k, v in kwargs.items():
            named = names.get(k)
            if named is None or named.kind is _P.POSITIONAL_ONLY:
                if var_kw is None:
                    raise ArgumentError(
                        f"module {module!r} got an unexpected keyword argument {k!r}; "
                        f"parameters: {', '.join(names) or '(none)'}",
                        module_name=module,
                    )
                extra_kw[k] = v
                continue
            if k in values and k not in bound:
                raise ArgumentError(
                    f"module {module!r} got multiple values for argument {k!r}", module_name=module
                )
            values[k] = v
        missing = [n for n, p in names.items() if n not in values and p.default is _P.empty]
        if missing:
            raise ArgumentError(
                f"module {module!r} is missing required argument"
                f"{'' if len(missing) == 1 else 's'}: {', '.join(repr(m) for m in missing)}",
                module_name=module,
            )
        for k, v in values.items():
            c = self.casters[k]
            if c is not None:
                values[k] = c.cast(v, module, k)
        if extra and var_pos is not None and (c := self.casters[var_pos.name]) is not None:
            extra = tuple(c.cast(v, module, var_pos.name) for v in extra)
        if extra_kw and var_kw is not None and (c := self.casters[var_kw.name]) is not None:
            extra_kw = {k: c.cast(v, module, var_kw.name) for k, v in extra_kw.items()}
        call_args: list[Any] = []
        for p in self.params:
            if p.kind not in _POSITIONAL:
                break
            if p.name not in values:
                if extra:
                    raise ArgumentError(
                        f"module {module!r}: extra positional arguments given while "
                        f"{p.name!r} is not",
                        module_name=module,
                    )
                break
            if p.kind is _P.POSITIONAL_ONLY or extra:
                call_args.append(values.pop(p.name))
        call_args.extend(extra)
        values.update(extra_kw)
        return tuple(call_args), values
