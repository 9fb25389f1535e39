"""Record the replay corpus: run each workflow durably and save its history as JSON.

Run from the repository root: ``MAI_CORPUS_OLD=1 .venv/bin/python tests/durable/corpus/record.py``
(the old version of the deliberately changed workflow is recorded). The files are committed;
``tests/durable/test_replay_corpus.py`` replays them against the current code on every run.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import trio

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import corpus_workflows  # noqa: E402

import mai  # noqa: E402
from mai.core.durable import MemoryStore  # noqa: E402


async def main() -> None:
    """Record one history per workflow."""
    async with mai.Runtime("memory://corpus-recording") as rt:
        for name, (module, arg) in corpus_workflows.WORKFLOWS.items():
            handle = await rt.start(module, arg, run_id=f"corpus-{name}")
            result = await handle.result()
            store = rt.store
            assert isinstance(store, MemoryStore)
            run = store.get_run(f"corpus-{name}")
            steps = store.load_steps(f"corpus-{name}")
            history = {
                "workflow": name,
                "run": dataclasses.asdict(run),
                "steps": [dataclasses.asdict(s) for s in steps],
                "result": json.loads(mai.core.durable._serde.dumps(result, what="result")),
            }
            out = HERE / f"{name}.json"
            out.write_text(json.dumps(history, indent=1, sort_keys=True) + "\n")
            print(f"recorded {out.name}: {len(steps)} steps")


if __name__ == "__main__":
    trio.run(main)
