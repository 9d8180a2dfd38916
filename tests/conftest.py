"""Fixtures shared by the whole suite: databases (SQLite and PostgreSQL) and Redis.

A service that is not reachable skips the tests that need it on a laptop, but fails them
when ``CI=true``: in CI a missing service is a broken pipeline, never a silent skip.

Overrides: ``VKCP_TEST_POSTGRES_URL`` (an admin DSN, default the local ``postgres`` user) and
``VKCP_TEST_REDIS_URL`` (default ``redis://127.0.0.1:6379/9``).
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from infrastructure.db.engine import create_engine, session_factory
from infrastructure.db.migrate import upgrade_async

POSTGRES_ADMIN_URL = os.environ.get("VKCP_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("VKCP_TEST_REDIS_URL", "redis://127.0.0.1:6379/9")

_unreachable: dict[str, str | None] = {}  # service -> why it is unreachable (None: it is fine)

# The server secret key of the tests' units of work (it seals alert credentials).
TEST_SECRET_KEY = b"the tests' server secret key, 32+ bytes long"


def require_service(service: str, problem: str | None) -> None:
    """Skip (locally) or fail (CI) the current test when ``problem`` says a service is down."""
    if problem is None:
        return
    message = f"{service} is not reachable: {problem}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message} (CI=true: required)", pytrace=False)
    pytest.skip(message)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # `-m "not redis"` / `-m "not postgres"` select runs without those services.
    for item in items:
        fixtures = getattr(item, "fixturenames", ())
        if "redis_url" in fixtures:
            item.add_marker(pytest.mark.redis)
        callspec = getattr(item, "callspec", None)
        if callspec is not None and callspec.params.get("database_url") == "postgres":
            item.add_marker(pytest.mark.postgres)


# --- databases ------------------------------------------------------------------------------


async def _postgres_problem() -> str | None:
    if "postgres" not in _unreachable:
        import asyncpg

        try:
            conn = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=3)
            await conn.close()
            _unreachable["postgres"] = None
        except (OSError, asyncpg.PostgresError, TimeoutError) as e:
            _unreachable["postgres"] = f"{type(e).__name__}: {e}"
    return _unreachable["postgres"]


def _async_url(dsn: str, database: str) -> str:
    base = dsn.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    return f"{base}/{database}"


@contextlib.asynccontextmanager
async def postgres_database() -> AsyncIterator[str]:
    """A fresh, empty ``vkcp_test_<random>`` database on PostgreSQL (skips or fails when it is
    down, see ``require_service``); yields its SQLAlchemy URL and drops it afterwards."""
    require_service("PostgreSQL", await _postgres_problem())
    import asyncpg

    name = f"vkcp_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(POSTGRES_ADMIN_URL)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield _async_url(POSTGRES_ADMIN_URL, name)
    finally:
        admin = await asyncpg.connect(POSTGRES_ADMIN_URL)
        try:
            # FORCE: a test that failed may have left a connection open.
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@pytest.fixture(params=["sqlite", "postgres"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh, empty database: a temporary SQLite file, or ``vkcp_test_<random>`` on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'vkcp.sqlite3'}"
        return
    async with postgres_database() as url:
        yield url


@pytest.fixture
async def migrated_db(database_url: str):
    """The migrated database as ``(engine, session_factory)``."""
    await upgrade_async(database_url)
    engine = create_engine(database_url)
    try:
        yield engine, session_factory(engine)
    finally:
        await engine.dispose()


# --- Redis ----------------------------------------------------------------------------------


async def _redis_problem() -> str | None:
    if "redis" not in _unreachable:
        from redis.asyncio import Redis
        from redis.exceptions import RedisError

        client = Redis.from_url(REDIS_URL, socket_connect_timeout=2)
        try:
            await client.ping()
            _unreachable["redis"] = None
        except (OSError, RedisError) as e:
            _unreachable["redis"] = f"{type(e).__name__}: {e}"
        finally:
            await client.aclose()
    return _unreachable["redis"]


@pytest.fixture
async def redis_url() -> str:
    require_service("Redis", await _redis_problem())
    return REDIS_URL


@pytest.fixture
async def redis_prefix(redis_url: str) -> AsyncIterator[str]:
    """A key prefix no other test (or concurrent test run) uses; its keys are deleted after."""
    from redis.asyncio import Redis

    prefix = f"vkcp-test-{uuid.uuid4().hex[:10]}:"
    yield prefix
    client = Redis.from_url(redis_url)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*", count=1000)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.fixture
def uow_factory(migrated_db):
    """``domain.ports.UnitOfWorkFactory`` over the migrated database."""
    from infrastructure.db.uow import SqlUnitOfWork
    from infrastructure.sealed import Sealer

    _, sessions = migrated_db
    sealer = Sealer(TEST_SECRET_KEY)
    return lambda: SqlUnitOfWork(sessions, sealer)
