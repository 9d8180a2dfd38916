"""A request stopped in the middle of a read is answered with a coded 503/504, or not at all
when the client is gone: never a 500, never a traceback ending in a bare ``CancelledError``.

Three ways a read gets stopped, each for real:

- the request timeout (``VKCP_REQUEST_TIMEOUT``) expires while a statement waits on a locked
  table, with more requests than the pool has connections (so checkouts wait, and connections
  past the pool's size are closed as they come back);
- the client hangs up while its statement waits, or in the middle of sending its body;
- a read awaits something another task cancelled (a shared future: the request itself was
  not cancelled), which reached uvicorn as a bare ``CancelledError``, answered 500;
- the soak's 500: the request timeout expiring after the read plan handed a document over to
  the normal executor (a failed ``asyncio.TaskGroup`` on Python 3.11 had left the task marked
  as cancelled, so ``asyncio.timeout`` let its own cancellation through as a bare
  ``CancelledError``).

The first two run ``vkcp serve`` (uvicorn, as in production) on PostgreSQL and read its log;
the others run the app under uvicorn in-process, on both databases.
"""

from __future__ import annotations

import asyncio
import collections
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import httpx
import pytest

from graphql_api.app import INTERRUPTED_MESSAGE, create_app
from tests.conftest import postgres_database
from tests.e2e.graphql_support import make_settings, start_container
from tests.processes import free_port, spawn, stop, wait_http

ROOT = Path(__file__).resolve().parents[2]
REQUEST_TIMEOUT = 1.0  # the server's VKCP_REQUEST_TIMEOUT in these tests
LOCKED = "comments, posts, groups, authors, tasks, keywords, matches"
READS = [
    "{ comments(first: 20) { totalCount edges { node { id text author { name } group { name } } } } }",
    "{ groups(first: 5) { totalCount edges { node { id name } } } }",
    "{ tasks(first: 5) { edges { node { id state } } } }",
    "{ keywords(first: 5) { edges { node { id word } } } }",
]
# What the server's log must never show (uvicorn's 500 line, a traceback, SQLAlchemy's
# "Exception closing connection" with a cancelled close, our own unexpected-error record).
BAD_LOG = ("Traceback", "CancelledError", "Exception in ASGI application", "Exception closing",
           "http.unexpected_error", '"status": 500')


def _dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def _post(client: httpx.AsyncClient, url: str, query: str) -> tuple[int | None, str]:
    try:
        response = await client.post(url, json={"query": query})
    except httpx.HTTPError as e:
        return None, type(e).__name__
    codes = [((e.get("extensions") or {}).get("code")) for e in response.json().get("errors", [])] \
        if response.headers.get("content-type", "").startswith("application/") else []
    return response.status_code, ",".join(str(c) for c in codes)


@pytest.mark.postgres
async def test_timeouts_and_hang_ups_during_slow_statements_never_answer_500(tmp_path: Path) -> None:
    async with postgres_database() as url:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "VKCP_DATABASE_URL": url, "VKCP_REDIS_URL": "",
               "VKCP_DATA_DIR": str(tmp_path / "data"), "VKCP_AUTH": "off", "VKCP_VK_SANDBOX": "1",
               "VKCP_REQUEST_TIMEOUT": str(REQUEST_TIMEOUT), "VKCP_LOG_LEVEL": "INFO"}
        done = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "entrypoints.cli", "migrate"],
                                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stderr
        port, log = free_port(), tmp_path / "serve.log"
        server = spawn(["-m", "entrypoints.cli", "serve", "--port", str(port)], env, log)
        endpoint = f"http://127.0.0.1:{port}/graphql"
        locker = None
        try:
            await wait_http(f"http://127.0.0.1:{port}/healthz", server, log)
            async with httpx.AsyncClient(timeout=30) as client:
                for query in READS:  # warm: every read works, and its statements are prepared
                    assert (await _post(client, endpoint, query))[0] == 200

            locker = await asyncpg.connect(_dsn(url))
            answers: collections.Counter = collections.Counter()

            async def locked_for(seconds: float, *work) -> None:
                async with locker.transaction():
                    await locker.execute(f"LOCK TABLE {LOCKED} IN ACCESS EXCLUSIVE MODE")
                    results = await asyncio.gather(*work, asyncio.sleep(seconds))
                for result in results[:-1]:
                    answers.update(result if isinstance(result, list) else [result])

            async def timed_out(n: int) -> tuple:  # waits past the server's timeout
                async with httpx.AsyncClient(timeout=30) as client:
                    return ("timeout",) + await _post(client, endpoint, READS[n % len(READS)])

            async def hung_up(n: int) -> tuple:  # gives up before the server's timeout
                async with httpx.AsyncClient(timeout=httpx.Timeout(REQUEST_TIMEOUT / 3, connect=10)) as client:
                    return ("hang-up",) + await _post(client, endpoint, READS[n % len(READS)])

            async def half_a_body() -> tuple:  # hangs up in the middle of sending its body
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                body = b'{"query": "{ groups(first: 5) { totalCount } }"}'
                writer.write(b"POST /graphql HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\n\r\n" % (len(body) + 100) + body)
                await writer.drain()
                await asyncio.sleep(0.2)
                writer.transport.abort()
                return ("half a body", None, "")

            # More requests than the pool's 30 connections, all stopped by the timeout: checkouts
            # wait, statements are cancelled, connections past the pool's size are closed.
            await locked_for(REQUEST_TIMEOUT + 2, *(timed_out(n) for n in range(40)))
            await locked_for(REQUEST_TIMEOUT + 1, *(hung_up(n) for n in range(20)), half_a_body())
            # Mixed: some give up, some wait, while the lock comes and goes.
            for _ in range(3):
                await locked_for(REQUEST_TIMEOUT * 0.8, *(timed_out(n) for n in range(10)),
                                 *(hung_up(n) for n in range(10)))

            unexpected = {a: n for a, n in answers.items()
                          if not (a[0] in ("hang-up", "half a body") and a[1] is None)
                          and not (a[0] == "timeout" and (a[1], a[2]) in ((504, "TIMEOUT"), (200, "")))}
            assert not unexpected, f"answers other than 504 TIMEOUT / 200 / no answer: {dict(answers)}"
            assert answers[("timeout", 504, "TIMEOUT")] >= 40, dict(answers)

            # The service is fine afterwards: every read answers at once, and no statement the
            # stopped requests started is still running on the server.
            async with httpx.AsyncClient(timeout=10) as client:
                began = time.monotonic()
                for _ in range(5):
                    for query in READS:
                        assert await _post(client, endpoint, query) == (200, "")
                assert time.monotonic() - began < 10
            deadline = time.monotonic() + 10
            while True:
                busy = await locker.fetch(
                    "SELECT pid, state, query FROM pg_stat_activity WHERE datname = current_database() "
                    "AND pid <> pg_backend_pid() AND state <> 'idle'")
                if not busy or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.2)
            assert not busy, f"statements of stopped requests still running: {[tuple(r) for r in busy]}"
        finally:
            if locker is not None:
                await locker.close()
            stop(server)
        text = log.read_text(errors="replace")
        bad = [line[:600] for line in text.splitlines() if any(mark in line for mark in BAD_LOG)]
        assert not bad, "the server's log:\n" + "\n".join(bad[:5])


# The read model's reads of a groups page: as objects, and written by PostgreSQL (the plan's).
GROUPS_READS = ("groups_page", "groups_page_projected")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database(request: pytest.FixtureRequest, tmp_path: Path):
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'vkcp.sqlite3'}"
        return
    async with postgres_database() as url:
        yield url


@pytest.mark.parametrize("read_plan", [True, False], ids=["plan", "executor"])
async def test_a_read_that_meets_a_cancellation_not_its_own_is_a_coded_503(
    database: str, read_plan: bool, tmp_path: Path, monkeypatch
) -> None:
    """A read awaiting a future that another task cancelled (a dataloader's shared future,
    a statement another waiter gave up on) raises ``CancelledError`` although the request was
    not cancelled: answered 503 ``SERVICE_UNAVAILABLE`` with ``Retry-After``, served by uvicorn."""
    import uvicorn

    container = await start_container(make_settings(tmp_path, database_url=database, auth=False))

    async def interrupted(*args, **kwargs):
        shared = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_soon(shared.cancel)  # another awaiter gave up on it
        await shared

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(container, read_plan=read_plan), lifespan="off",
                                           log_level="warning"))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            await asyncio.sleep(0.01)
        endpoint = f"http://127.0.0.1:{port}/graphql"
        async with httpx.AsyncClient(timeout=10) as client:
            # A groups page is read as objects, or written by PostgreSQL (``groups_page_projected``).
            for read in GROUPS_READS:
                monkeypatch.setattr(container.read_model, read, interrupted)
            response = await client.post(endpoint, json={"query": READS[1]})
            assert response.status_code == 503, response.text
            assert response.headers["retry-after"] == "5"
            [error] = response.json()["errors"]
            assert error["extensions"]["code"] == "SERVICE_UNAVAILABLE" and error["message"] == INTERRUPTED_MESSAGE
            monkeypatch.undo()
            assert (await client.post(endpoint, json={"query": READS[1]})).status_code == 200
    finally:
        server.should_exit = True
        await serving
        sock.close()
        await container.aclose()


async def test_a_timeout_after_the_plan_handed_over_is_a_504_not_a_500(database: str, tmp_path: Path, monkeypatch) -> None:
    """The soak's 500: the read plan met something it hands over to the normal executor
    (here a read failing once, in a document with two root fields, read concurrently), and the
    request timeout then expired during the normal executor's slow read. On Python 3.11 a
    failed ``asyncio.TaskGroup`` leaves its parent task marked as being cancelled, after which
    ``asyncio.timeout`` no longer recognises its own cancellation: the request ended with a bare
    ``CancelledError``, answered 500 by uvicorn. It must be the 504 TIMEOUT."""
    import uvicorn

    container = await start_container(make_settings(tmp_path, database_url=database, auth=False, request_timeout=1.0))
    calls = []

    def failing_then_slow(original):
        async def read(*args, **kwargs):
            calls.append(1)
            if len(calls) == 1:
                raise RuntimeError("the plan hands this document over")
            await asyncio.sleep(5)  # the normal executor's read: past the request timeout
            return await original(*args, **kwargs)

        return read

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(container, read_plan=True), lifespan="off", log_level="warning"))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            await asyncio.sleep(0.01)
        endpoint = f"http://127.0.0.1:{port}/graphql"
        for read in GROUPS_READS:  # as objects, or written by PostgreSQL
            monkeypatch.setattr(container.read_model, read, failing_then_slow(getattr(container.read_model, read)))
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.post(endpoint, json={"query": "{ a: groups(first: 5) { edges { node { id name } } } "
                                                                  "b: groups(first: 3) { edges { node { id } } } }"})
            # The plan's two reads, then the normal executor's.
            assert len(calls) >= 3, f"the plan did not hand the document over: {response.status_code} {response.text}"
            assert response.status_code == 504, response.text
            [error] = response.json()["errors"]
            assert error["extensions"]["code"] == "TIMEOUT"
            monkeypatch.undo()
            assert (await client.post(endpoint, json={"query": READS[1]})).status_code == 200
    finally:
        server.should_exit = True
        await serving
        sock.close()
        await container.aclose()
