"""Give memory that Python freed back to the operating system, now and then.

A long-running API or worker allocates and frees megabytes per request or page: response
bodies, rows, parsed VK pages. CPython hands large blocks back to glibc's malloc, which keeps
them in its heaps (one per thread that ever allocated) for reuse instead of returning them, and
whatever stays in use in the middle of a heap pins the pages around it. The process's RSS
then creeps up for hours although the live objects do not grow. ``malloc_trim(0)`` returns the
free pages of every heap (glibc ≥ 2.8 also releases those in the middle, with ``madvise``).

Measured with ``bench/soak.py`` (30 clients, two parses, PostgreSQL + Redis): a trim every
30 s gave back 5–10 MB of the API's RSS and 4–6 MB of the worker's each time.

Large blocks are the other half. glibc serves a block over its mmap threshold (128 KB) with
its own mapping, returned whole on free, but it raises that threshold to the size of every
such block freed, up to 32 MB: after the first VK ``execute`` answer or page of results, those
half-megabyte buffers come from the heap, and every one left in use pins the pages around it.
``configure_allocator`` fixes the threshold (which turns the raising off) and keeps the number
of heaps small: these processes run one event loop, the few threads (DNS lookups, SQLite)
need no heap each.

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


MMAP_THRESHOLD = 256 * 1024  # bytes: larger blocks get their own mapping, whatever was freed before
ARENA_MAX = 2
# mallopt parameters, from glibc's malloc.h
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8


def _glibc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.malloc_trim, libc.mallopt  # noqa: B018 - both or neither: glibc
    except (OSError, AttributeError):  # not glibc
        return None
    libc.malloc_trim.argtypes = [ctypes.c_size_t]
    libc.malloc_trim.restype = ctypes.c_int
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    libc.mallopt.restype = ctypes.c_int
    return libc


_libc = _glibc()
_malloc_trim: Callable[[int], int] | None = _libc.malloc_trim if _libc is not None else None


def configure_allocator() -> bool:
    """Fix glibc's mmap threshold and cap its heaps, once at start; False off glibc."""
    if _libc is None:
        return False
    return bool(_libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(_libc.mallopt(_M_ARENA_MAX, ARENA_MAX))


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
