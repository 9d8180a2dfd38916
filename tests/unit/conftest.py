"""Unit tests need no services: no PostgreSQL, Redis, network server, browser or child process.

Every unit test runs with network connections (IPv4 and IPv6, any host or port) and process
spawning refused. An attempt raises ``ServiceNeeded`` where it is made and, should the code
under test swallow that, still fails the test when it ends: a test that needs a service
belongs in ``tests/integration`` (or ``tests/e2e`` when it goes through the API). Unix sockets
(the event loop's self-pipe) and embedded SQLite files are not services and stay allowed.
"""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator

import pytest

_NETWORK = (socket.AF_INET, socket.AF_INET6)


class ServiceNeeded(AssertionError):
    """A unit test reached for the network or a child process. Not an ``OSError``, so no
    outage handling under test mistakes it for a service that is down."""


@pytest.fixture(autouse=True)
def no_services(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    attempts: list[str] = []

    def refuse(what: str) -> ServiceNeeded:
        attempts.append(what)
        return ServiceNeeded(f"a unit test tried to {what}: move it to tests/integration")

    connect, connect_ex = socket.socket.connect, socket.socket.connect_ex

    def guarded_connect(self: socket.socket, address: object) -> None:
        if self.family in _NETWORK:
            raise refuse(f"connect to {address!r}")
        connect(self, address)  # type: ignore[arg-type]

    def guarded_connect_ex(self: socket.socket, address: object) -> int:
        if self.family in _NETWORK:
            raise refuse(f"connect to {address!r}")
        return connect_ex(self, address)  # type: ignore[arg-type]

    def refused_spawn(self: subprocess.Popen[bytes], args: object, *rest: object, **options: object) -> None:
        raise refuse(f"start a process {args!r}")

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", guarded_connect_ex)
    monkeypatch.setattr(subprocess.Popen, "__init__", refused_spawn)
    yield attempts
    if attempts:
        pytest.fail(f"a unit test needs a service: {attempts[0]} (move it to tests/integration)", pytrace=False)
