"""Running modules: mai.run from sync code, inside a user's trio.run, and on asyncio."""

import threading

import pytest
import trio

import mai


@mai.module
async def add(x: int, y: int = 1) -> int:
    await trio.lowlevel.checkpoint()
    return x + y


@mai.module
def shout(text: str) -> str:
    return text.upper()


def test_run_from_sync_code():
    """mai.run(module, *args) runs a module from synchronous code and returns its result."""
    assert mai.run(add, 2) == 3
    assert mai.run(add, "2", y="5") == 7


def test_run_sync_body_module():
    """mai.run runs a module whose body is a plain def (in a worker thread)."""
    assert mai.run(shout, "hi") == "HI"


def test_run_composite():
    """mai.run runs composites like any module."""
    assert mai.run(mai.Parallel(add, add.with_(y=10)), 1) == (2, 11)
    assert mai.run(add >> add, 1) == 3


def test_run_propagates_errors_unchanged():
    """mai.run lets a module's exception out as itself (not wrapped)."""

    @mai.module
    async def boom() -> None:
        raise KeyError("boom")

    with pytest.raises(KeyError):
        mai.run(boom)
    with pytest.raises(mai.CastError):
        mai.run(add, "not a number")


def test_run_inside_a_user_trio_run():
    """Modules work inside a user's own trio.run(main)."""

    async def main():
        async with trio.open_nursery() as nursery:
            results = []

            async def one(i):
                results.append(await add(i))

            for i in range(3):
                nursery.start_soon(one, i)
        return sorted(results), await shout("ok")

    assert trio.run(main) == ([1, 2, 3], "OK")


def test_run_on_asyncio():
    """mai.run(m, x, backend="asyncio") runs the module on asyncio."""

    @mai.module
    async def which(x: int) -> tuple:
        import sniffio

        return sniffio.current_async_library(), x

    assert mai.run(which, "5", backend="asyncio") == ("asyncio", 5)
    assert mai.run(which, 5) == ("trio", 5)
    assert mai.run(shout, "a", backend="asyncio") == "A"


def test_run_inside_event_loop_is_refused():
    """mai.run called from inside a running event loop fails instead of nesting loops."""

    async def main():
        with pytest.raises(RuntimeError):
            mai.run(add, 1)

    trio.run(main)


def test_run_is_usable_from_several_threads():
    """Independent mai.run calls in different threads do not interfere."""
    results = {}

    def worker(i):
        results[i] = mai.run(add, i, y=i)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert results == {i: 2 * i for i in range(4)}


def test_run_accepts_a_plain_function():
    """mai.run(lambda x: x + 1, 1) runs a plain callable as a module."""
    assert mai.run(lambda x: x + 1, 1) == 2

    assert mai.run(lambda x: x * 2, "ab") == "abab"

    async def entry(x: int) -> int:
        return await add(x, 2)

    assert mai.run(entry, 1) == 3  # an async function is an entry point, as with trio.run


def test_run_refuses_what_is_not_callable():
    """mai.run given something that is not a module or a function says so (a ConfigError)."""
    with pytest.raises(mai.ConfigError, match="module or a function"):
        mai.run(42, 1)  # type: ignore[arg-type]


async def test_run_inside_an_event_loop_says_to_await():
    """mai.run inside a running event loop tells the user to await the module instead."""
    with pytest.raises(mai.MaiError, match=r"await add\(\.\.\.\)") as info:
        mai.run(add, 1)
    assert isinstance(info.value, RuntimeError)


def test_run_inside_asyncio_says_to_await():
    """mai.run inside a running asyncio loop also tells the user to await."""
    import asyncio

    async def main():
        with pytest.raises(mai.MaiError, match="await"):
            mai.run(add, 1)

    asyncio.run(main())
