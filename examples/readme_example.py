"""The twenty-line example from README.md (kept identical; tests check both)."""

import trio

import mai


@mai.module
async def fetch(url: str) -> str:
    await trio.sleep(0.1)  # pretend I/O
    return f"<html>{url}</html>"


@mai.module(inline=True)
def size(page: str) -> int:
    return len(page)


@mai.module(timeout=2, retries=2, backoff=0.1)
async def summarize(sizes: list[int]) -> str:
    return f"{len(sizes)} pages, {sum(sizes)} bytes"


pipeline = mai.Map(fetch >> size, max_concurrency=4) >> summarize

if __name__ == "__main__":
    print(mai.run(pipeline, ["a.example", "b.example", "c.example"]))
