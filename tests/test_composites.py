"""Composites: Sequential, Parallel, Map, Race, Conditional, delays and Loop (virtual clock)."""

import pytest
import trio

import mai


def _sleeper(name: str, seconds: float, value: object, log: list | None = None) -> mai.Module:
    """A module that sleeps ``seconds``, logs ``(name, finish time)``, and returns ``value``."""

    @mai.module(name=name)
    async def body(*_: object) -> object:
        await trio.sleep(seconds)
        if log is not None:
            log.append((name, trio.current_time()))
        return value

    return body


def _failer(name: str, seconds: float, exc: BaseException) -> mai.Module:
    """A module that sleeps ``seconds`` and raises ``exc``."""

    @mai.module(name=name)
    async def body(*_: object) -> None:
        await trio.sleep(seconds)
        raise exc

    return body


@mai.module
async def as_text(x: int) -> str:
    return str(x)


@mai.module
def plus_one(x: int) -> int:
    return x + 1


@mai.module
async def twice(x: int) -> int:
    return 2 * x


# ---------------------------------------------------------------------------------------------
# Sequential
# ---------------------------------------------------------------------------------------------


async def test_sequential_feeds_each_output_to_the_next():
    """Sequential(a, b, c) passes a's output to b and b's to c, casting on the way."""
    got = []

    @mai.module
    async def a(x: int) -> str:
        return str(x)  # "3"

    @mai.module
    async def b(y: int) -> int:
        got.append(y)
        return y + 1

    @mai.module
    def c(z: int) -> int:
        return z * 10

    assert await mai.Sequential(a, b, c)(3) == 40
    assert got == [3]
    assert type(got[0]) is int


async def test_rshift_builds_a_sequential():
    """a >> b is a Sequential that casts a str output to b's int parameter."""
    pipeline = as_text >> plus_one >> twice
    assert isinstance(pipeline, mai.Sequential)
    assert await pipeline(3) == 8


async def test_sequential_wraps_plain_functions():
    """Plain functions in a Sequential (and on the left of >>) become modules."""
    assert await mai.Sequential(lambda x: x * 3, plus_one)(2) == 7
    assert await ((lambda x: x - 1) >> twice)(5) == 8


async def test_sequential_runs_steps_one_after_another(autojump_clock):
    """Sequential steps do not overlap: total time is the sum of the steps."""
    log = []
    seq = mai.Sequential(_sleeper("a", 1, 1, log), _sleeper("b", 2, 2, log))
    start = trio.current_time()
    assert await seq(0) == 2
    assert [(n, t - start) for n, t in log] == [("a", 1), ("b", 3)]


async def test_sequential_cast_error_names_the_step():
    """A value that cannot be cast between steps raises CastError naming the receiving step."""

    @mai.module
    async def word(x: object) -> str:
        return "three"

    with pytest.raises(mai.CastError) as info:
        await (word >> plus_one)(1)
    assert "plus_one" in str(info.value)


# ---------------------------------------------------------------------------------------------
# Parallel
# ---------------------------------------------------------------------------------------------


async def test_parallel_positional_gives_a_tuple(autojump_clock):
    """Parallel(a, b) gives every branch the same input and returns a tuple, concurrently."""
    start = trio.current_time()
    assert await mai.Parallel(plus_one, twice, _sleeper("s", 2, "slept"))(5) == (6, 10, "slept")
    assert trio.current_time() - start == 2


async def test_parallel_keywords_give_a_dict():
    """Parallel(x=a, y=b) returns a dict keyed like the branches."""
    assert await mai.Parallel(x=plus_one, y=twice)(5) == {"x": 6, "y": 10}


async def test_parallel_branches_run_concurrently(autojump_clock):
    """Parallel branches overlap: total time is the longest branch."""
    log = []
    par = mai.Parallel(_sleeper("a", 3, "a", log), _sleeper("b", 1, "b", log))
    start = trio.current_time()
    assert await par(None) == ("a", "b")
    assert [(n, t - start) for n, t in log] == [("b", 1), ("a", 3)]


async def test_parallel_first_failure_cancels_siblings(autojump_clock):
    """The first failing branch cancels its siblings; the caller sees its own exception type."""
    log = []
    par = mai.Parallel(_sleeper("slow", 10, "done", log), _failer("bad", 1, KeyError("k")))
    start = trio.current_time()
    with pytest.raises(KeyError) as info:
        await par(None)
    assert type(info.value) is KeyError
    assert trio.current_time() - start == 1
    await trio.sleep(20)
    assert log == []


async def test_parallel_failure_in_nested_branch_is_not_an_exception_group(autojump_clock):
    """A failure in a branch that is a nested Sequential surfaces as the original exception."""
    par = mai.Parallel(
        _sleeper("slow", 10, "done"), mai.Sequential(twice, _failer("bad", 2, ValueError("v")))
    )
    with pytest.raises(ValueError, match="v"):
        await par(1)


async def test_parallel_simultaneous_failures_give_an_exception_group(autojump_clock):
    """Several branches failing on their own (same virtual time) give an ExceptionGroup of them."""
    log = []
    go = trio.Event()

    def failer(name: str, exc: Exception) -> mai.Module:
        @mai.module(name=name)
        async def body(_: object) -> None:
            await go.wait()  # woken normally (not cancelled) together with its sibling
            raise exc

        return body

    @mai.module
    async def trigger(_: object) -> None:
        await trio.sleep(1)
        go.set()
        await trio.sleep(10)
        log.append("trigger finished")

    par = mai.Parallel(
        failer("a", ValueError("a")),
        failer("b", KeyError("b")),
        trigger,
        _sleeper("slow", 10, "done", log),
    )
    start = trio.current_time()
    with pytest.raises(ExceptionGroup) as info:
        await par(None)
    assert trio.current_time() - start == 1
    group = info.value
    assert sorted(type(e).__name__ for e in group.exceptions) == ["KeyError", "ValueError"]
    assert not any(isinstance(e, trio.Cancelled) for e in group.exceptions)
    assert log == []


async def test_parallel_simultaneous_immediate_failures_give_an_exception_group():
    """Two async branches that both raise before any checkpoint give an ExceptionGroup."""

    @mai.module
    async def a(_: object) -> None:
        raise ValueError("a")

    @mai.module
    async def b(_: object) -> None:
        raise KeyError("b")

    with pytest.raises(ExceptionGroup) as info:
        await mai.Parallel(a, b)(None)
    assert sorted(type(e).__name__ for e in info.value.exceptions) == ["KeyError", "ValueError"]


async def test_parallel_cancelled_from_outside_propagates_cancellation(autojump_clock):
    """Cancelling a Parallel from outside cancels every branch without an error."""
    log = []
    par = mai.Parallel(_sleeper("a", 5, 1, log), _sleeper("b", 6, 2, log))
    with trio.move_on_after(2) as scope:
        await par(None)
    assert scope.cancelled_caught
    await trio.sleep(10)
    assert log == []


# ---------------------------------------------------------------------------------------------
# Map
# ---------------------------------------------------------------------------------------------


async def test_map_keeps_input_order(autojump_clock):
    """Map returns results in input order even when items finish in reverse order."""
    finished = []

    @mai.module
    async def slow_then_fast(x: int) -> int:
        await trio.sleep(10 - x)
        finished.append(x)
        return x * x

    start = trio.current_time()
    assert await mai.Map(slow_then_fast)([1, 2, 3, 4]) == [1, 4, 9, 16]
    assert finished == [4, 3, 2, 1]
    assert trio.current_time() - start == 9


async def test_map_casts_each_item():
    """Map casts each item to the mapped module's parameter type."""
    assert await mai.Map(plus_one)(["1", 2, "3"]) == [2, 3, 4]


@pytest.mark.parametrize("limit", [1, 2, 3])
async def test_map_never_exceeds_max_concurrency(limit, meter, autojump_clock):
    """Map(m, max_concurrency=N) runs at most N items at once, and reaches N."""

    @mai.module
    async def work(x: int) -> int:
        with meter:
            await trio.sleep(1)
        return x

    start = trio.current_time()
    assert await mai.Map(work, max_concurrency=limit)(range(7)) == list(range(7))
    assert meter.peak == limit
    assert trio.current_time() - start == -(-7 // limit)


async def test_map_with_limit_keeps_order_when_items_finish_out_of_order(autojump_clock):
    """A bounded Map keeps input order when later items finish first."""

    @mai.module
    async def work(x: int) -> int:
        await trio.sleep(6 - x)
        return x

    assert await mai.Map(work, max_concurrency=2)([1, 2, 3, 4, 5]) == [1, 2, 3, 4, 5]


async def test_map_failure_cancels_other_items(autojump_clock):
    """A failing Map item cancels the others and surfaces as its own exception."""
    done = []

    @mai.module
    async def work(x: int) -> int:
        await trio.sleep(x)
        if x == 2:
            raise ValueError(x)
        done.append(x)
        return x

    start = trio.current_time()
    with pytest.raises(ValueError):
        await mai.Map(work)([1, 2, 5, 8])
    assert trio.current_time() - start == 2
    await trio.sleep(10)
    assert done == [1]


async def test_map_bad_max_concurrency_is_a_config_error():
    """Map rejects a max_concurrency that is not a positive integer."""
    with pytest.raises(mai.ConfigError):
        mai.Map(plus_one, max_concurrency=0)


# ---------------------------------------------------------------------------------------------
# Race
# ---------------------------------------------------------------------------------------------


async def test_race_returns_first_success_and_cancels_the_rest(autojump_clock):
    """Race returns the first branch to succeed and cancels the slower ones."""
    log = []
    race = mai.Race(_sleeper("slow", 5, "slow", log), _sleeper("fast", 2, "fast", log))
    start = trio.current_time()
    assert await race(None) == "fast"
    assert trio.current_time() - start == 2
    await trio.sleep(10)
    assert log == [("fast", start + 2)]


async def test_race_skips_failures_when_another_branch_succeeds(autojump_clock):
    """A failing branch does not end a Race that another branch later wins."""
    race = mai.Race(_failer("bad", 1, ValueError("x")), _sleeper("good", 3, "ok"))
    start = trio.current_time()
    assert await race(None) == "ok"
    assert trio.current_time() - start == 3


async def test_race_all_failing_raises_a_group_of_all_failures(autojump_clock):
    """If every branch of a Race fails, the caller gets an ExceptionGroup with each failure."""
    race = mai.Race(_failer("a", 1, ValueError("a")), _failer("b", 2, KeyError("b")))
    start = trio.current_time()
    with pytest.raises(ExceptionGroup) as info:
        await race(None)
    assert trio.current_time() - start == 2
    assert sorted(type(e).__name__ for e in info.value.exceptions) == ["KeyError", "ValueError"]


async def test_race_single_failing_branch_raises_that_failure():
    """A one-branch Race that fails raises that branch's exception itself."""
    with pytest.raises(ValueError, match="only"):
        await mai.Race(_failer("only", 0, ValueError("only")))(None)


# ---------------------------------------------------------------------------------------------
# Conditional
# ---------------------------------------------------------------------------------------------


async def test_conditional_with_plain_function_predicate():
    """Conditional routes by a plain-function predicate to then or otherwise."""
    cond = mai.Conditional(lambda x: x > 0, plus_one, twice)
    assert await cond(5) == 6
    assert await cond(-5) == -10


async def test_conditional_with_async_function_predicate():
    """Conditional accepts an async plain-function predicate."""

    async def positive(x):
        await trio.lowlevel.checkpoint()
        return x > 0

    cond = mai.Conditional(positive, plus_one, twice)
    assert await cond(1) == 2
    assert await cond(-1) == -2


async def test_conditional_with_module_predicate():
    """Conditional accepts a module as predicate (its input cast like any module's)."""
    seen = []

    @mai.module
    def is_big(x: int) -> bool:
        seen.append(x)
        return x > 10

    cond = mai.Conditional(is_big, twice, plus_one)
    assert await cond("20") == 40
    assert await cond(3) == 4
    assert seen == [20, 3]


async def test_conditional_without_otherwise_passes_input_through():
    """A false predicate without otherwise returns the input unchanged."""
    cond = mai.Conditional(lambda x: False, twice)
    assert await cond(7) == 7


# ---------------------------------------------------------------------------------------------
# BlockingDelay / NonBlockingDelay
# ---------------------------------------------------------------------------------------------


async def test_blocking_delay_pauses_only_its_branch(autojump_clock):
    """BlockingDelay in one Parallel branch lets a sibling make progress meanwhile."""
    ticks = []
    delayed = []
    start = trio.current_time()

    @mai.module
    async def ticker(x: int) -> int:
        for _ in range(3):
            await trio.sleep(1)
            ticks.append(trio.current_time() - start)
        return x

    @mai.module
    async def after(x: int) -> int:
        delayed.append(trio.current_time() - start)
        return x + 100

    par = mai.Parallel(mai.Sequential(mai.BlockingDelay(5), after), ticker)
    assert await par(1) == (101, 1)
    assert ticks == [1, 2, 3]
    assert delayed == [5]
    assert trio.current_time() - start == 5


async def test_blocking_delay_passes_input_on(autojump_clock):
    """BlockingDelay(s) returns its input after s seconds."""
    start = trio.current_time()
    assert await mai.BlockingDelay(2.5)("x") == "x"
    assert trio.current_time() - start == 2.5


def _background(log: list, start_ref: list, duration: float) -> mai.Module:
    """A module that logs its start and end (relative to ``start_ref[0]``) and its input."""

    @mai.module
    async def later(x: int) -> None:
        log.append(("start", trio.current_time() - start_ref[0], x))
        await trio.sleep(duration)
        log.append(("end", trio.current_time() - start_ref[0], x))

    return later


async def test_non_blocking_delay_passes_input_on_at_once(autojump_clock):
    """NonBlockingDelay passes its input on at once (the next step runs at t=0)."""
    log = []
    start = [trio.current_time()]

    @mai.module
    async def nxt(x: int) -> int:
        log.append(("next", trio.current_time() - start[0], x))
        return x + 1

    seq = mai.Sequential(mai.NonBlockingDelay(2, _background(log, start, 3)), nxt)
    assert await seq(7) == 8
    assert log[0] == ("next", 0, 7)


async def test_non_blocking_delay_runs_later_and_the_top_call_waits(autojump_clock):
    """NonBlockingDelay runs m(input) after s seconds; the top-level call returns after m ends."""
    log = []
    start = [trio.current_time()]
    seq = mai.Sequential(mai.NonBlockingDelay(2, _background(log, start, 3)), plus_one)
    assert await seq(7) == 8
    assert trio.current_time() - start[0] == 5
    assert log == [("start", 2, 7), ("end", 5, 7)]


async def test_non_blocking_delay_is_cancelled_with_the_top_call(autojump_clock):
    """Cancelling the top-level call cancels the pending NonBlockingDelay module."""
    log = []
    start = [trio.current_time()]
    seq = mai.Sequential(mai.NonBlockingDelay(2, _background(log, start, 3)), plus_one)
    with trio.move_on_after(1) as scope:
        await seq(7)
    assert scope.cancelled_caught
    await trio.sleep(20)
    assert log == []


async def test_non_blocking_delay_running_module_is_cancelled_with_the_top_call(autojump_clock):
    """Cancelling the top-level call while the delayed module runs stops it before it ends."""
    log = []
    start = [trio.current_time()]
    seq = mai.Sequential(mai.NonBlockingDelay(2, _background(log, start, 3)), plus_one)
    with trio.move_on_after(3):
        await seq(7)
    await trio.sleep(20)
    assert log == [("start", 2, 7)]


async def test_non_blocking_delay_failure_fails_the_top_call(autojump_clock):
    """A failure of the delayed module fails the top-level call with that exception."""
    seq = mai.Sequential(mai.NonBlockingDelay(1, _failer("bg", 1, KeyError("bg"))), plus_one)
    start = trio.current_time()
    with pytest.raises(KeyError):
        await seq(1)
    assert trio.current_time() - start == 2


async def test_non_blocking_delay_is_bounded_by_the_top_level_deadline(autojump_clock):
    """The delayed module is bounded by the top-level call's deadline, which names that call."""
    log = []
    start = [trio.current_time()]
    seq = mai.Sequential(mai.NonBlockingDelay(2, _background(log, start, 10)), plus_one)
    with pytest.raises(mai.DeadlineExceeded) as info:
        await seq.with_(timeout=5, name="top")(7)
    assert trio.current_time() - start[0] == 5
    assert log == [("start", 2, 7)]
    assert info.value.module_name == "top"


# ---------------------------------------------------------------------------------------------
# Loop
# ---------------------------------------------------------------------------------------------


async def test_loop_stops_when_until_holds():
    """Loop feeds each output back in and stops as soon as until holds."""
    calls = []

    @mai.module
    async def step(x: int) -> int:
        calls.append(x)
        return x + 1

    assert await mai.Loop(step, until=lambda x: x >= 3, max_iterations=10)(0) == 3
    assert calls == [0, 1, 2]


async def test_loop_until_may_be_a_module():
    """Loop accepts a module as its until condition."""

    @mai.module
    def done(x: int) -> bool:
        return x >= 16

    assert await mai.Loop(twice, until=done, max_iterations=10)(1) == 16


async def test_loop_exceeding_max_iterations_raises_loop_limit_exceeded():
    """Loop raises LoopLimitExceeded (a MaiError) when until never holds within max_iterations."""
    calls = []

    @mai.module
    async def step(x: int) -> int:
        calls.append(x)
        return x + 1

    with pytest.raises(mai.LoopLimitExceeded) as info:
        await mai.Loop(step, until=lambda x: x > 100, max_iterations=4)(0)
    err = info.value
    assert isinstance(err, mai.MaiError)
    assert err.max_iterations == 4
    assert err.last_value == 4
    assert calls == [0, 1, 2, 3]


async def test_loop_without_until_runs_max_iterations():
    """Without until, Loop runs the body exactly max_iterations times."""
    assert await mai.Loop(twice, max_iterations=5)(1) == 32


# ---------------------------------------------------------------------------------------------
# composites are modules
# ---------------------------------------------------------------------------------------------


async def test_composites_nest():
    """Composites nest inside each other like any module."""
    inner = mai.Parallel(plus_one, twice)

    @mai.module
    def total(pair: tuple[int, int]) -> int:
        return sum(pair)

    assert await mai.Sequential(as_text, inner, total)(3) == 10
    assert await mai.Sequential(mai.Map(plus_one), sum)([1, 2]) == 5


async def test_composite_with_timeout(autojump_clock):
    """A composite takes with_(timeout=...) and fails at that time naming itself."""
    seq = mai.Sequential(_sleeper("a", 2, 1), _sleeper("b", 2, 2)).with_(timeout=3, name="pipe")
    start = trio.current_time()
    with pytest.raises(mai.DeadlineExceeded) as info:
        await seq(None)
    assert trio.current_time() - start == 3
    assert info.value.module_name == "pipe"


# ---------------------------------------------------------------------------------------------
# issue 10: Map refuses what it cannot (or should not) iterate
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "kind"), [(5, "int"), ("abc", "str"), (b"abc", "bytes"), ({"a": 1}, "dict")]
)
async def test_map_refuses_non_lists_naming_itself(value, kind):
    """Map given a non-iterable, a str, bytes or a dict raises a CastError naming the Map."""

    @mai.module
    async def echo(x: object) -> object:
        return x

    with pytest.raises(mai.CastError) as info:
        await mai.Map(echo, name="per_item")(value)
    err = info.value
    assert isinstance(err, TypeError)
    assert err.module_name == "per_item"
    assert "'per_item'" in str(err)
    assert kind in str(err)
    assert err.value == value


async def test_map_refusal_says_how_to_map_deliberately():
    """The refusal of a str says how to map over its characters on purpose."""

    @mai.module
    async def echo(x: object) -> object:
        return x

    with pytest.raises(mai.CastError, match=r"list\(") as info:
        await mai.Map(echo)("abc")
    assert "step 1" in str(info.value)
    assert await mai.Map(echo)(list("ab")) == ["a", "b"]
    assert await mai.Map(echo)(x for x in (1, 2)) == [1, 2]
    assert await mai.Map(echo)((1, 2)) == [1, 2]
