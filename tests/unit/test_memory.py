"""The trim loop runs until cancelled, and without glibc it does nothing. (That a trim really
gives freed heap pages back, measured in a fresh interpreter: ``tests/integration/test_memory_processes.py``.)"""

from __future__ import annotations

import asyncio
import platform

import pytest

from infrastructure import memory

glibc = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")


@glibc
async def test_the_loop_trims_until_cancelled(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    monkeypatch.setattr(memory, "_malloc_trim", lambda pad: calls.append(pad) or 1)
    task = asyncio.create_task(memory.release_free_memory_forever(every=0.01))
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(calls) >= 3 and set(calls) == {0}


async def test_without_glibc_nothing_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory, "_malloc_trim", None)
    assert memory.release_free_memory() is False
    await asyncio.wait_for(memory.release_free_memory_forever(every=0.01), 1)  # returns at once
