"""The unit suite's guard (``tests/unit/conftest.py``) refuses services, loudly, even when the
code under test catches what it raises. (What it raises is an ``AssertionError``, never an
``OSError`` that outage handling would take for a service that is down.)"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys

import pytest


async def test_a_connection_to_postgresql_or_redis_is_refused(no_services: list[str]) -> None:
    for port in (5432, 6379):
        with pytest.raises(AssertionError, match="tests/integration"):
            await asyncio.open_connection("127.0.0.1", port)
    with pytest.raises(AssertionError), socket.create_connection(("127.0.0.1", 5432), timeout=1):
        pass
    assert len(no_services) == 3
    no_services.clear()  # this test meant to try; any other test fails at its end


def test_a_child_process_is_refused(no_services: list[str]) -> None:
    with pytest.raises(AssertionError, match="start a process"):
        subprocess.run([sys.executable, "-c", "pass"], check=True)
    no_services.clear()


async def test_the_event_loop_and_unix_sockets_still_work() -> None:
    left, right = socket.socketpair()
    with left, right:
        left.sendall(b"ok")
        assert right.recv(2) == b"ok"
    assert await asyncio.sleep(0, "still") == "still"
