"""The in-process limiter keeps every 1-second window at or under rps, per token."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from infrastructure.vk.limiter import InProcessRateLimiter, slot_interval


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


def max_in_any_second(times: list[float]) -> int:
    times = sorted(times)
    return max(sum(1 for t in times if start <= t < start + 1.0) for start in times)


@pytest.mark.parametrize("rps", [1, 3, 20, 2.5])
async def test_no_second_holds_more_than_rps(rps):
    fake = FakeTime()
    limiter = InProcessRateLimiter(rps, clock=fake.clock, sleep=fake.sleep)
    grants = []
    for _ in range(50):
        await limiter.acquire("token-a")
        grants.append(fake.now)
    assert max_in_any_second(grants) <= rps
    # Evenly spaced, with the 5% safety margin and nothing more.
    assert grants[-1] - grants[0] == pytest.approx(49 * slot_interval(rps))


async def test_keys_are_independent_and_waits_are_reported():
    fake = FakeTime()
    limiter = InProcessRateLimiter(3, clock=fake.clock, sleep=fake.sleep)
    assert await limiter.acquire("a") == 0
    assert await limiter.acquire("b") == 0
    assert await limiter.acquire("a") == pytest.approx(0.35)


async def test_concurrent_callers_get_distinct_slots():
    limiter = InProcessRateLimiter(20)
    loop = asyncio.get_running_loop()
    start = loop.time()

    async def one() -> float:
        await limiter.acquire("k")
        return loop.time() - start

    # 30 callers at once, more than a second's worth: the limit has to bite.
    times = sorted(await asyncio.gather(*(one() for _ in range(30))))
    assert max_in_any_second(times) <= 20
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= slot_interval(20) - 0.002  # no two callers share a slot (loop timer slack)
