"""Kernel overhead against a raw Trio floor measured in the same process.

Run: ``make bench`` or ``.venv/bin/python benchmarks/kernel.py [--quick] [--otel]``.

1. A 10-step ``Sequential`` of trivial ``async (x: int) -> int`` modules against the same
   10 plain awaits. Reported: added cost per step in microseconds (target: at most 2 us).
2. ``Parallel`` and ``Map`` over 10,000 trivial branches against a raw Trio nursery doing the
   same. Reported: wall-time ratio (target: at most 1.3x) and peak-memory-growth ratio
   (target: at most 1.5x), memory measured with tracemalloc in separate passes.

With ``--otel`` the per-step figure is also measured with an OpenTelemetry SDK tracer provider
and an in-memory exporter installed (the "tracing on" cost: pymai's OpenTelemetry interceptor
emits one span per step), and with the other observability switches: ``mai.trace``'s
TraceHandle recorder, and structlog's automatic contextvars binding.
"""

from __future__ import annotations

import argparse
import gc
import platform
import statistics
import sys
import time
import tracemalloc

import trio

import mai

STEPS = 10
FANOUT = 10_000


async def _raw_step(x: int) -> int:
    return x + 1


@mai.module
async def step(x: int) -> int:
    """A trivial typed module."""
    return x + 1


async def raw_chain(x: int) -> int:
    for _ in range(STEPS):
        x = await _raw_step(x)
    return x


PIPELINE = mai.Sequential(*[step] * STEPS)


def _best(samples: list[float]) -> float:
    """Best-of quartile mean: robust against a noisy neighbour on a 2-core machine."""
    samples = sorted(samples)
    q = samples[: max(1, len(samples) // 4)]
    return statistics.fmean(q)


async def bench_sequential(rounds: int, inner: int) -> tuple[float, float]:
    raw: list[float] = []
    ours: list[float] = []
    for _ in range(rounds):
        t = time.perf_counter()
        for _ in range(inner):
            await raw_chain(0)
        raw.append((time.perf_counter() - t) / inner)
        t = time.perf_counter()
        for _ in range(inner):
            await PIPELINE(0)
        ours.append((time.perf_counter() - t) / inner)
    return _best(raw), _best(ours)


async def raw_fanout(n: int) -> list[int]:
    results = [0] * n

    async def one(i: int) -> None:
        results[i] = await _raw_step(i)

    async with trio.open_nursery() as nursery:
        for i in range(n):
            nursery.start_soon(one, i)
    return results


PAR = mai.Parallel(*[step] * FANOUT)
MAP = mai.Map(step)


async def run_par() -> object:
    return await PAR(1)


async def run_map() -> object:
    return await MAP(list(range(FANOUT)))


async def run_raw() -> object:
    return await raw_fanout(FANOUT)


async def timed(fn: object, rounds: int) -> float:
    samples = []
    for _ in range(rounds):
        gc.collect()
        t = time.perf_counter()
        await fn()  # type: ignore[operator]
        samples.append(time.perf_counter() - t)
    return _best(samples)


async def peak_memory(fn: object) -> int:
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    await fn()  # type: ignore[operator]
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak - base


def install_otel() -> object:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    class CountingExporter(InMemorySpanExporter):
        """Counts what it receives and drops it, so memory stays flat over a long run."""

        exported = 0

        def export(self, spans):
            self.exported += len(spans)
            result = super().export(spans)
            self.clear()
            return result

    exporter = CountingExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return exporter


async def bench_observability(rounds: int, inner: int) -> None:
    """Per-step cost of the TraceHandle recorder and of structlog's contextvars binding."""
    import structlog
    from structlog.testing import capture_logs

    from mai.testing import capture_spans

    with capture_spans():
        raw, ours = await bench_sequential(rounds, inner)
    added = (ours - raw) / STEPS * 1e6
    print(f"sequential under mai.testing.capture_spans: added {added:.2f} us/step")
    with capture_logs(processors=[structlog.contextvars.merge_contextvars]):
        raw, ours = await bench_sequential(rounds, inner)
    added = (ours - raw) / STEPS * 1e6
    print(f"sequential with structlog contextvars binding: added {added:.2f} us/step")


async def main(quick: bool, otel: bool) -> None:
    rounds, inner = (5, 500) if quick else (30, 2000)
    py = f"{platform.python_implementation()} {platform.python_version()}"
    print(f"# pymai kernel benchmark - {py}, {platform.machine()}, trio {trio.__version__}")
    raw, ours = await bench_sequential(rounds, inner)
    added = (ours - raw) / STEPS * 1e6
    print(
        f"sequential/{STEPS} steps: raw {raw * 1e6:.2f} us/chain, mai {ours * 1e6:.2f} us/chain, "
        f"added {added:.2f} us/step (target <= 2.00)"
    )
    frounds = 3 if quick else 9
    t_raw = await timed(run_raw, frounds)
    t_par = await timed(run_par, frounds)
    t_map = await timed(run_map, frounds)
    m_raw = await peak_memory(run_raw)
    m_par = await peak_memory(run_par)
    m_map = await peak_memory(run_map)
    print(f"fan-out {FANOUT}: raw nursery {t_raw * 1e3:.1f} ms, {m_raw / 1e6:.2f} MB peak")
    print(
        f"  Parallel: {t_par * 1e3:.1f} ms = {t_par / t_raw:.2f}x time (target <= 1.30), "
        f"{m_par / 1e6:.2f} MB = {m_par / m_raw:.2f}x memory (target <= 1.50)"
    )
    print(
        f"  Map:      {t_map * 1e3:.1f} ms = {t_map / t_raw:.2f}x time (target <= 1.30), "
        f"{m_map / 1e6:.2f} MB = {m_map / m_raw:.2f}x memory (target <= 1.50)"
    )
    if otel:  # last: the global provider cannot be removed once set
        await bench_observability(rounds, inner)
        exporter = install_otel()
        raw2, ours2 = await bench_sequential(rounds, inner)
        added2 = (ours2 - raw2) / STEPS * 1e6
        print(f"sequential with OTel SDK + in-memory exporter: added {added2:.2f} us/step")
        print(f"  ({exporter.exported} spans exported)")  # type: ignore[attr-defined]


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer rounds (CI smoke run)")
    ap.add_argument("--otel", action="store_true", help="also measure with an OTel SDK installed")
    ns = ap.parse_args()
    sys.setrecursionlimit(10_000)
    trio.run(main, ns.quick, ns.otel)
