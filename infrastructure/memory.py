"""Give memory that Python freed back to the operating system, now and then.

A long-running API or worker allocates and frees megabytes per request or page: response
bodies, rows, parsed VK pages. CPython hands large blocks back to glibc's malloc, which keeps
them in its heaps (one per thread that ever allocated) for reuse instead of returning them, and
whatever stays in use in the middle of a heap pins the pages around it. The process's RSS
then creeps up for hours although the live objects do not grow. ``malloc_trim(0)`` returns the
free pages of every heap (glibc ≥ 2.8 also releases those in the middle, with ``madvise``).

Measured with ``bench/soak.py`` (30 clients, two parses, PostgreSQL + Redis): a trim every
30 s gave back 5–10 MB of the API's RSS and 4–6 MB of the worker's each time.

Elsewhere than glibc (musl, macOS) there is nothing to call, and this does nothing.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
from collections.abc import Callable

import structlog

log = structlog.get_logger(__name__)

TRIM_EVERY = 60.0  # seconds: a trim takes a few milliseconds of a mostly idle heap walk


def _load_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


_malloc_trim = _load_trim()


def release_free_memory() -> bool:
    """Return malloc's free pages to the system; False where the C library cannot."""
    if _malloc_trim is None:
        return False
    _malloc_trim(0)
    return True


async def release_free_memory_forever(every: float = TRIM_EVERY) -> None:
    """``release_free_memory`` every ``every`` seconds, for the life of the process."""
    if _malloc_trim is None:
        log.info("memory.trim_unavailable", detail="not glibc: freed memory stays with the allocator")
        return
    while True:
        await asyncio.sleep(every)
        release_free_memory()
