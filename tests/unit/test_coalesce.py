"""Concurrent identical requests share one computation; nothing outlives it."""

from __future__ import annotations

import asyncio

import pytest

from selfheal.api.coalesce import Coalescer


async def test_callers_arriving_together_share_one_computation() -> None:
    calls = 0
    release = asyncio.Event()

    async def compute() -> int:
        nonlocal calls
        calls += 1
        await release.wait()
        return calls

    coalescer: Coalescer[int] = Coalescer()
    waiters = [asyncio.create_task(coalescer.run("k", compute)) for _ in range(16)]
    other = asyncio.create_task(coalescer.run("other key", compute))
    await asyncio.sleep(0)
    release.set()
    assert await asyncio.gather(*waiters) == [waiters[0].result()] * 16
    await other
    assert calls == 2  # one per key
    # finished computations are not kept: the next caller gets a fresh answer
    assert await coalescer.run("k", compute) == 3


async def test_an_error_reaches_every_waiter_and_is_not_remembered() -> None:
    fail = True

    async def compute() -> str:
        await asyncio.sleep(0)
        if fail:
            raise RuntimeError("database down")
        return "ok"

    coalescer: Coalescer[str] = Coalescer()
    results = await asyncio.gather(
        coalescer.run("k", compute), coalescer.run("k", compute), return_exceptions=True
    )
    assert all(isinstance(r, RuntimeError) for r in results)
    fail = False
    assert await coalescer.run("k", compute) == "ok"


async def test_a_caller_that_gives_up_does_not_cancel_the_others() -> None:
    release = asyncio.Event()

    async def compute() -> str:
        await release.wait()
        return "answer"

    coalescer: Coalescer[str] = Coalescer()
    quitter = asyncio.create_task(coalescer.run("k", compute))
    stayer = asyncio.create_task(coalescer.run("k", compute))
    await asyncio.sleep(0)
    quitter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await quitter
    release.set()
    assert await stayer == "answer"
