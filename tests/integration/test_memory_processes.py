"""Freed memory goes back to the system: on glibc (every machine this runs on in CI and
Docker) the trim really runs, and a large freed allocation leaves the process's RSS."""

from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path

import pytest

glibc = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")


# Each check runs in a fresh interpreter: a long test process's heap holds other free chunks
# already. Every script starts with this.
_PRELUDE = """
import ctypes
from infrastructure import memory

def rss_kb():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))

libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
"""

_HOLES = """
# Chunks below the mmap threshold land in the heap, each followed by a small one that stays:
# freed, the big ones are holes free() cannot give back, only a trim (madvise) can.
chunks, pins = [], []
for _ in range(1600):  # 100 MB
    chunks.append(libc.malloc(64 * 1024))
    pins.append(libc.malloc(16))
for chunk in chunks:
    ctypes.memset(chunk, 1, 64 * 1024)
for chunk in chunks:
    libc.free(chunk)
before = rss_kb()
assert memory.release_free_memory() is True
print(before, rss_kb())
"""


def _in_fresh_interpreter(script: str, *args: str) -> str:
    """What ``_PRELUDE`` + ``script`` prints, run from the repository root."""
    return subprocess.run(
        [sys.executable, "-c", _PRELUDE + script, *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    ).stdout


@glibc
def test_trim_returns_freed_heap_pages_to_the_system() -> None:
    before, after = map(int, _in_fresh_interpreter(_HOLES).split())
    assert before - after > 50_000, (before, after)


# Half-megabyte buffers (a VK execute answer, a page of results), freed and allocated again
# while a small block stays in use after each: what the API and the worker do all day.
_BIG_BLOCKS = """
import sys

if sys.argv[1] == "configured":
    assert memory.configure_allocator() is True
first = libc.malloc(512 * 1024)
ctypes.memset(first, 1, 512 * 1024)
libc.free(first)  # glibc raises its mmap threshold to 512 KB here, unless it was fixed
start = rss_kb()
blocks, pins = [], []
for _ in range(200):  # 100 MB
    block = libc.malloc(512 * 1024)
    ctypes.memset(block, 1, 512 * 1024)
    blocks.append(block)
    pins.append(libc.malloc(64))
for block in blocks:
    libc.free(block)
print(rss_kb() - start)
"""


@glibc
def test_large_blocks_go_back_to_the_system_when_freed() -> None:
    def kept_kb(mode: str) -> int:
        return int(_in_fresh_interpreter(_BIG_BLOCKS, mode))

    assert kept_kb("configured") < 10_000  # each block had its own mapping
    assert kept_kb("default") > 50_000  # glibc's default keeps them in the heap
