"""Modules: the decorator, sync bodies in threads, casting, and ``with_``."""

import inspect
import threading
from typing import Any

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

import mai


class Doc(BaseModel):
    """A small pydantic model used as a parameter and return type."""

    title: str
    pages: int


class Opaque:
    """An object pydantic has no schema for."""

    __slots__ = ("lock",)

    def __init__(self) -> None:
        self.lock = threading.Lock()


# ---------------------------------------------------------------------------------------------
# 1. the decorator
# ---------------------------------------------------------------------------------------------


async def test_decorates_async_def_without_arguments():
    """A bare @mai.module on an async def gives a Module whose call awaits the body."""

    @mai.module
    async def double(x: int) -> int:
        return 2 * x

    assert isinstance(double, mai.Module)
    assert await double(21) == 42


async def test_decorates_sync_def_without_arguments():
    """A bare @mai.module on a plain def gives a Module whose call awaits the body."""

    @mai.module
    def double(x: int) -> int:
        return 2 * x

    assert isinstance(double, mai.Module)
    assert await double(21) == 42


async def test_decorates_with_arguments():
    """@mai.module(timeout=5) works on async def and def and applies the configuration."""

    @mai.module(timeout=5)
    async def a(x: int) -> int:
        return x + 1

    @mai.module(timeout=5, name="bee")
    def b(x: int) -> int:
        return x + 2

    assert a.config.timeout == 5
    assert b.config.timeout == 5
    assert b.name == "bee"
    assert await a(1) == 2
    assert await b(1) == 3


@pytest.mark.parametrize("kind", ["async", "sync"])
def test_keeps_name_docstring_and_signature(kind):
    """A decorated function keeps its __name__, __doc__ and inspect.signature."""

    async def fetch_async(url: str, *, retries: int = 2) -> bytes:
        """Fetch a URL."""
        return b""

    def fetch_sync(url: str, *, retries: int = 2) -> bytes:
        """Fetch a URL."""
        return b""

    fn = fetch_async if kind == "async" else fetch_sync
    for m in (mai.module(fn), mai.module(timeout=5)(fn)):
        assert m.__name__ == fn.__name__
        assert m.__doc__ == "Fetch a URL."
        assert inspect.signature(m) == inspect.signature(fn)
        assert m.name == fn.__name__


async def test_sync_body_runs_in_a_worker_thread():
    """A plain def body runs in a thread other than the caller's."""
    seen = []

    @mai.module
    def where() -> None:
        seen.append(threading.get_ident())

    await where()
    assert seen
    assert seen[0] != threading.get_ident()


async def test_sync_body_sees_the_callers_context():
    """A sync body in a worker thread sees the metadata its caller set with Context.set."""

    @mai.module
    def who() -> str:
        return mai.Context.get().metadata["user"]

    token = mai.Context.set(metadata={"user": "ada"})
    try:
        assert await who() == "ada"
    finally:
        mai.Context.reset(token)


async def test_inline_sync_body_runs_in_the_calling_thread():
    """inline=True runs a sync body in the caller's thread (decorator and with_)."""
    seen = []

    @mai.module(inline=True)
    def here() -> None:
        seen.append(threading.get_ident())

    @mai.module
    def there() -> None:
        seen.append(threading.get_ident())

    await here()
    await there.with_(inline=True)()
    assert seen == [threading.get_ident()] * 2


async def test_inline_sync_body_sees_the_callers_context():
    """An inline sync body sees the metadata its caller set."""

    @mai.module(inline=True)
    def who() -> str:
        return mai.Context.get().metadata["user"]

    token = mai.Context.set(metadata={"user": "bob"})
    try:
        assert await who() == "bob"
    finally:
        mai.Context.reset(token)


async def test_module_subclass_with_async_forward():
    """A Module subclass with async forward is called like a decorated function and casts."""

    class Add(mai.Module):
        """Add two numbers."""

        async def forward(self, x: int, y: int = 1) -> int:
            return x + y

    add = Add()
    assert await add("2", y="3") == 5

    async def reference(x: int, y: int = 1) -> int:
        return x + y

    assert inspect.signature(add) == inspect.signature(reference)
    assert add.name == "Add"


async def test_module_subclass_with_sync_forward_runs_in_a_thread_with_context():
    """A Module subclass with sync forward runs in a worker thread and sees the caller's Context."""
    seen = []

    class Who(mai.Module):
        def forward(self) -> str:
            seen.append(threading.get_ident())
            return mai.Context.get().metadata["user"]

    token = mai.Context.set(metadata={"user": "cy"})
    try:
        assert await Who()() == "cy"
    finally:
        mai.Context.reset(token)
    assert seen[0] != threading.get_ident()


async def test_module_subclass_inline_runs_in_the_calling_thread():
    """A Module subclass with inline=True runs its sync forward in the caller's thread."""
    seen = []

    class Here(mai.Module):
        def forward(self) -> None:
            seen.append(threading.get_ident())

    await Here(inline=True)()
    await Here().with_(inline=True)()
    assert seen == [threading.get_ident()] * 2


# ---------------------------------------------------------------------------------------------
# 2. casting
# ---------------------------------------------------------------------------------------------


async def test_casts_numeric_string_argument_to_int():
    """An argument "3" for an int parameter arrives as the int 3."""
    got = []

    @mai.module
    async def take(x: int) -> None:
        got.append(x)

    await take("3")
    await take(x="4")
    assert got == [3, 4]
    assert all(type(v) is int for v in got)


async def test_casts_dict_to_pydantic_model():
    """A dict for a pydantic-model parameter arrives as the model."""

    @mai.module
    async def title(doc: Doc) -> str:
        assert isinstance(doc, Doc)
        return doc.title

    assert await title({"title": "T", "pages": "3"}) == "T"


async def test_casts_list_of_dicts_to_list_of_models():
    """A list of dicts for a list[Model] parameter arrives as a list of models."""

    @mai.module
    def total(docs: list[Doc]) -> int:
        assert all(isinstance(d, Doc) for d in docs)
        return sum(d.pages for d in docs)

    assert await total([{"title": "a", "pages": 1}, {"title": "b", "pages": "2"}]) == 3


async def test_casts_return_value_to_annotation():
    """The return value is cast to the return annotation (str to int, dict to model)."""

    @mai.module
    async def number() -> int:
        return "7"

    @mai.module
    def make() -> Doc:
        return {"title": "x", "pages": 2}

    @mai.module
    async def many() -> list[Doc]:
        return [{"title": "x", "pages": 2}]

    n = await number()
    assert n == 7
    assert type(n) is int
    assert await make() == Doc(title="x", pages=2)
    assert await many() == [Doc(title="x", pages=2)]


async def test_bad_argument_raises_cast_error_naming_module_parameter_and_value():
    """An argument that cannot be cast raises CastError naming module, parameter and value."""

    @mai.module
    async def count(n: int) -> int:
        return n

    with pytest.raises(mai.CastError) as info:
        await count("many")
    err = info.value
    assert isinstance(err, mai.MaiError)
    assert isinstance(err, ValueError | TypeError)
    msg = str(err)
    assert "count" in msg
    assert "'n'" in msg
    assert "'many'" in msg
    assert err.module_name == "count"
    assert err.parameter == "n"
    assert err.value == "many"


async def test_bad_model_argument_raises_cast_error():
    """A dict that does not fit a model parameter raises CastError naming the parameter."""

    @mai.module
    def title(doc: Doc) -> str:
        return doc.title

    with pytest.raises(mai.CastError) as info:
        await title({"title": "T"})
    assert "'doc'" in str(info.value)
    assert "title" in str(info.value)


async def test_bad_return_value_raises_cast_error_naming_return_value():
    """A return value that cannot be cast raises CastError naming module and "return value"."""

    @mai.module
    async def broken() -> int:
        return "lots"

    with pytest.raises(mai.CastError) as info:
        await broken()
    err = info.value
    assert isinstance(err, ValueError | TypeError)
    assert "broken" in str(err)
    assert "return value" in str(err)
    assert "'lots'" in str(err)
    assert err.parameter == "return value"


async def test_cast_error_is_not_a_bare_pydantic_error():
    """A failed cast never surfaces a pydantic ValidationError (nor chains one as the cause)."""
    from pydantic import ValidationError

    @mai.module
    async def count(n: int) -> int:
        return n

    with pytest.raises(mai.CastError) as info:
        await count("x")
    assert not isinstance(info.value, ValidationError)
    assert not isinstance(info.value.__cause__, ValidationError)


async def test_unannotated_and_any_parameters_are_not_validated():
    """Unannotated and Any parameters and returns pass any object through by identity."""
    obj = Opaque()

    @mai.module
    async def bare(x):
        return x

    @mai.module
    def anything(x: Any) -> Any:
        return x

    @mai.module(inline=True)
    def untyped_return(x: Any):
        return x

    assert await bare(obj) is obj
    assert await anything(obj) is obj
    assert await untyped_return(obj) is obj


@mai.module(inline=True)
def _as_int(x: int) -> int:
    return x


@given(st.integers() | st.integers().map(str))
def test_any_int_or_numeric_string_round_trips(value):
    """Any int, or its decimal string, arrives at an int parameter as that int."""
    result = mai.run(_as_int, value)
    assert type(result) is int
    assert result == int(value)


_NO_DIGITS = st.text(
    alphabet=st.characters(exclude_categories=("Nd", "Nl", "No", "Cs")), max_size=40
)


@given(_NO_DIGITS)
def test_any_non_numeric_text_is_rejected_naming_the_parameter(text):
    """Any text without digits is rejected for an int parameter, naming module, parameter, value."""
    with pytest.raises(mai.CastError) as info:
        mai.run(_as_int, text)
    msg = str(info.value)
    assert "'_as_int'" in msg
    assert "parameter 'x'" in msg
    assert repr(text)[:100] in msg
    assert info.value.value == text


# ---------------------------------------------------------------------------------------------
# 3. with_
# ---------------------------------------------------------------------------------------------


@mai.module
async def _add(x: int, y: int) -> int:
    return x + y


async def test_with_returns_a_new_module_and_leaves_the_original_alone():
    """with_() returns a different module; the original's config, bindings and signature stay."""
    before_sig = inspect.signature(_add)
    before_cfg = _add.config
    new = _add.with_(y=1, name="inc", timeout=3, retries=2)
    assert new is not _add
    assert _add.config == before_cfg
    assert _add.config is before_cfg
    assert dict(_add.bound) == {}
    assert inspect.signature(_add) == before_sig
    assert _add.name == "_add"
    with pytest.raises(mai.ArgumentError):
        await _add(1)
    assert await _add(1, 2) == 3


async def test_with_binds_parameters():
    """Keys that name parameters bind them like functools.partial (and are cast)."""
    inc = _add.with_(y="1")
    assert await inc(41) == 42
    assert dict(inc.bound) == {"y": 1}
    assert list(inspect.signature(inc).parameters) == ["x"]


async def test_with_binding_a_badly_typed_value_fails_at_with_time():
    """Binding a value that cannot be cast raises CastError naming the parameter at with_ time."""
    with pytest.raises(mai.CastError) as info:
        _add.with_(y="one")
    assert "'y'" in str(info.value)


@pytest.mark.parametrize(
    ("key", "value", "attr", "expected"),
    [
        ("name", "renamed", "name", "renamed"),
        ("timeout", 2, "timeout", 2.0),
        ("retries", 3, "retries", 3),
        ("backoff", mai.Backoff(initial=0.5), "backoff", mai.Backoff(initial=0.5)),
        ("retry_on", (KeyError,), "retry_on", (KeyError,)),
        ("max_concurrency", 4, "max_concurrency", 4),
        ("inline", True, "inline", True),
    ],
)
def test_with_framework_keys_configure_execution(key, value, attr, expected):
    """Every framework key given to with_() sets the new module's configuration only."""

    @mai.module
    def body(x: int) -> int:
        return x

    new = body.with_(**{key: value})
    assert getattr(new.config, attr) == expected
    assert getattr(body.config, attr) != expected
    assert dict(new.bound) == {}


def test_with_unknown_key_is_a_type_error_listing_valid_keys():
    """An unknown with_() key raises ConfigError (a TypeError) listing every valid key."""
    with pytest.raises(TypeError) as info:
        _add.with_(tiemout=3)
    err = info.value
    assert isinstance(err, mai.ConfigError)
    msg = str(err)
    assert "tiemout" in msg
    for key in ("name", "timeout", "retries", "backoff", "retry_on", "max_concurrency", "inline"):
        assert key in msg
        assert key in err.valid


def test_with_bad_value_for_a_framework_key_is_a_config_error():
    """A framework key with a value of the wrong kind raises ConfigError naming the key."""
    with pytest.raises(mai.ConfigError) as info:
        _add.with_(timeout=-1)
    assert "timeout" in str(info.value)


def test_decorator_unknown_key_is_a_config_error():
    """@mai.module with an unknown key raises ConfigError listing valid keys."""
    with pytest.raises(mai.ConfigError) as info:
        mai.module(retires=3)(lambda x: x)
    assert "retries" in str(info.value)


@pytest.mark.parametrize("limit", [1, 3])
async def test_max_concurrency_limits_concurrent_calls_exactly(limit, meter, autojump_clock):
    """max_concurrency=N lets exactly N calls of the module run at once, never more."""

    @mai.module
    async def work(i: int) -> int:
        with meter:
            await trio.sleep(1)
        return i

    limited = work.with_(max_concurrency=limit)
    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        for i in range(10):
            nursery.start_soon(limited, i)
    assert meter.peak == limit
    assert meter.entered == 10
    assert trio.current_time() - start == -(-10 // limit)


async def test_max_concurrency_does_not_limit_the_original(meter, autojump_clock):
    """Setting max_concurrency on a with_() copy leaves the original unlimited."""

    @mai.module
    async def work() -> None:
        with meter:
            await trio.sleep(1)

    work.with_(max_concurrency=1)
    async with trio.open_nursery() as nursery:
        for _ in range(5):
            nursery.start_soon(work)
    assert meter.peak == 5


async def test_max_concurrency_applies_to_sync_bodies(meter):
    """max_concurrency also bounds sync bodies running in worker threads (real clock)."""
    gate = threading.Event()

    @mai.module(max_concurrency=2)
    def work() -> None:
        with meter:
            gate.wait(0.05)

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            for _ in range(6):
                nursery.start_soon(work)
    assert meter.peak == 2
    assert meter.entered == 6


@pytest.mark.parametrize("call_original_first", [False, True])
async def test_with_copy_has_its_own_concurrency_limit(call_original_first, meter, autojump_clock):
    """A with_() copy is a new module: its calls never count against the original's limit."""

    @mai.module(max_concurrency=1)
    async def work(tag: str, y: int = 0) -> None:
        with meter:
            await trio.sleep(1)

    if call_original_first:
        await work("warm-up")
    bound = work.with_(y=1)
    meter.peak = 0
    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(work, "original")
        nursery.start_soon(bound, "copy")
    assert meter.peak == 2
    assert trio.current_time() - start == 1


async def test_with_on_a_module_subclass_leaves_the_original_alone():
    """with_() on a Module subclass instance returns a new instance and leaves the original."""

    class Scale(mai.Module):
        async def forward(self, x: int, factor: int = 2) -> int:
            return x * factor

    original = Scale()
    tripled = original.with_(factor=3, name="triple", timeout=4)
    assert await tripled(2) == 6
    assert await original(2) == 4
    assert original.name == "Scale"
    assert original.config.timeout is None
    assert tripled.name == "triple"


def test_callable_without_signature_is_a_config_error():
    """A callable whose signature cannot be read (a builtin like str) gives a ConfigError."""
    with pytest.raises(mai.ConfigError, match="cannot read the signature"):
        mai.module(str)


@pytest.mark.parametrize(
    "cls", [mai.Module, mai.Sequential, mai.Parallel, mai.Map, mai.Loop, mai.Race]
)
def test_classes_have_readable_signatures(cls):
    """inspect.signature works on the Module class and every composite class (IDE help)."""
    sig = inspect.signature(cls)
    assert isinstance(sig, inspect.Signature)


def test_composite_class_signature_shows_its_parameters():
    """inspect.signature(mai.Map) shows the constructor's parameters, not a property."""
    assert list(inspect.signature(mai.Map).parameters)[:2] == ["fn", "max_concurrency"]
    assert "max_iterations" in inspect.signature(mai.Loop).parameters


def test_instance_signature_is_still_the_body():
    """A module instance still reports its body's signature, bound parameters removed."""

    @mai.module
    async def greet(name: str, punctuation: str = "!") -> str:
        return name + punctuation

    assert list(inspect.signature(greet).parameters) == ["name", "punctuation"]
    assert list(inspect.signature(greet.with_(punctuation="?")).parameters) == ["name"]
