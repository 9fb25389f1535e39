"""Start-up cost of fresh processes, as ratios to floors measured in the same run.

Run: ``make bench`` or ``.venv/bin/python benchmarks/startup.py [--rounds N]``.

Each command runs in a fresh interpreter; the commands are interleaved round by round and the
minimum of each is kept (the least disturbed run on a shared machine):

* ``import trio`` — the floor of every ratio below;
* the kernel's own dependencies: ``import trio, anyio`` and pydantic's ``BaseModel`` /
  ``TypeAdapter``;
* ``import mai`` — target at most 1.1x the kernel's dependencies;
* ``mai --help`` — target at most 2x ``import trio``;
* a fresh process that imports ``mai`` and completes a 1-step durable run on a new SQLite file
  — target at most 1.8x ``import trio``.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PY = sys.executable
MAI = str(Path(PY).with_name("mai"))

ONE_STEP = """
import sys, trio, mai

@mai.module
async def one(x: int) -> int:
    return x + 1

async def main():
    async with mai.Runtime(sys.argv[1]) as rt:
        handle = await rt.start(one, 1, run_id="r")
        assert await handle.result() == 2

trio.run(main)
"""


def timed(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)  # noqa: S603 - our own commands
    return time.perf_counter() - start


def main(rounds: int) -> None:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "0"}
    with tempfile.TemporaryDirectory() as d:
        script = Path(d, "one_step.py")
        script.write_text(ONE_STEP)
        commands = {
            "trio": [PY, "-c", "import trio"],
            "kernel deps": [
                PY,
                "-c",
                "import trio, anyio; from pydantic import BaseModel, TypeAdapter",
            ],
            "import mai": [PY, "-c", "import mai"],
            "mai --help": [MAI, "--help"],
        }
        best: dict[str, float] = dict.fromkeys([*commands, "1-step durable run"], float("inf"))
        for cmd in commands.values():  # warm the OS cache and the bytecode caches once
            timed(cmd, env)
        for r in range(rounds):
            for name, cmd in commands.items():
                best[name] = min(best[name], timed(cmd, env))
            url = f"sqlite:///{d}/fresh-{r}.db"
            best["1-step durable run"] = min(
                best["1-step durable run"], timed([PY, str(script), url], env)
            )
    trio_s, deps_s = best["trio"], best["kernel deps"]
    load = os.getloadavg()[0]
    print(
        f"startup: {platform.python_implementation()} {platform.python_version()}, "
        f"{os.cpu_count()} cores, load {load:.2f}, min of {rounds} rounds"
    )
    for name, seconds in best.items():
        print(f"  {name:<20} {seconds * 1000:7.1f} ms")
    print(f"  import mai / kernel deps:      {best['import mai'] / deps_s:.2f}x (target <= 1.1x)")
    print(f"  mai --help / import trio:      {best['mai --help'] / trio_s:.2f}x (target <= 2x)")
    print(
        f"  1-step durable / import trio:  {best['1-step durable run'] / trio_s:.2f}x "
        "(target <= 1.8x)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    main(parser.parse_args().rounds)
