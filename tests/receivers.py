"""Real alert receivers on loopback, for tests and ``bench/alerts.py``.

``WebhookReceiver``: an HTTP server (uvicorn + Starlette) that records every request, verifies
its Standard Webhooks signature with the ``standardwebhooks`` package and counts duplicates
(the same ``webhook-id`` twice); it can answer an error status, or be stopped and started
again on the same port (a receiver that is down). ``SmtpReceiver``: an ``aiosmtpd`` server
that keeps every mail.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import orjson
import uvicorn
from standardwebhooks.webhooks import Webhook
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    at: float  # time.time() when it arrived
    payload: Any = field(default=None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class WebhookReceiver:
    def __init__(self, *, status: int = 204, port: int | None = None, path: str = "/hook", delay: float = 0.0) -> None:
        self.status = status
        self.delay = delay  # seconds before each answer (a slow receiver)
        self.port = port or free_port()
        self.path = path
        self.received: list[Received] = []
        self.arrived = asyncio.Event()
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    async def _hook(self, request: Request) -> Response:
        body = await request.body()
        if self.delay:
            await asyncio.sleep(self.delay)
        self.received.append(Received(dict(request.headers), body, time.time(), orjson.loads(body) if body else None))
        self.arrived.set()
        if self.status >= 400:
            return Response("down", status_code=self.status)
        return Response(status_code=self.status)

    async def start(self) -> None:
        app = Starlette(routes=[Route(self.path, self._hook, methods=["POST"])])
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off",
                                access_log=False)
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task
        self._server = self._task = None

    async def __aenter__(self) -> WebhookReceiver:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def ids(self) -> list[str]:
        return [r.headers["webhook-id"] for r in self.received]

    def duplicates(self) -> int:
        return sum(n - 1 for n in Counter(self.ids()).values())

    def verify_all(self, secret: str) -> None:
        """Every request carries a valid signature (raises otherwise)."""
        hook = Webhook(secret)
        for r in self.received:
            hook.verify(r.body, r.headers)

    async def wait_for(self, count: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.received) < count:
            left = deadline - time.monotonic()
            assert left > 0, f"{len(self.received)} of {count} webhooks arrived"
            self.arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.arrived.wait(), min(left, 0.5))


class SmtpReceiver:
    """An SMTP server on loopback (``aiosmtpd``) that keeps every message it is given."""

    def __init__(self) -> None:
        self.port = free_port()
        self.messages: list[Any] = []
        self._controller: Any = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(envelope)
        return "250 Message accepted for delivery"

    def __enter__(self) -> SmtpReceiver:
        from aiosmtpd.controller import Controller

        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self._controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._controller.stop()
