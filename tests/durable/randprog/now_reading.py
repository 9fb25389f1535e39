"""Reproducer of issue 11, defect 11: a ``mai.now()`` reading lost on a transient store error.

``python now_reading.py DB`` starts the run ``now`` of :data:`reader` on ``DB`` with a
``busy_timeout`` of 0.2 s. Its body holds the write lock from another connection while it takes
a ``mai.now()`` reading (so the reading's write meets a locked store), releases it, passes the
reading to the step ``echo`` (whose commit lands), and then the process SIGKILLs itself. The
test resumes the run in its own process: the reading must replay, so ``echo`` sees the same
input and the run returns the reading.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import sys
from pathlib import Path

import trio

import mai

URL = "sqlite:///{db}?busy_timeout=0.2"


@mai.module
async def echo(t: float) -> float:
    """Return the reading it was given (its recorded input is the reading)."""
    return t


@mai.module
async def reader(db: str) -> float:
    """Take a reading while the store is locked, pass it to a step, then crash (first time)."""
    if os.environ.get("NOW_READING_CRASH") == "1":
        lock = sqlite3.connect(db, isolation_level=None)
        lock.execute("BEGIN IMMEDIATE")
        t = mai.now()
        await trio.sleep(0.6)  # the reading's write waits behind the lock past busy_timeout
        lock.execute("ROLLBACK")
        lock.close()
    else:
        t = mai.now()
    y = await echo(t)
    if os.environ.get("NOW_READING_CRASH") == "1":
        os.kill(os.getpid(), signal.SIGKILL)
    return y


async def main(db: str) -> None:
    """Start the run and wait for it (the workflow kills this process first)."""
    async with mai.Runtime(URL.format(db=db), workflows=[reader]) as rt:
        handle = await rt.start(reader, db, run_id="now")
        await handle.result()


if __name__ == "__main__":  # run the package's copy, so the recorded plan names randprog.*
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from randprog.now_reading import main as package_main

    trio.run(package_main, sys.argv[1])
