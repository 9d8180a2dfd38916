"""Async engines for SQLite (the embedded default) and PostgreSQL, and their session factory."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import QueuePool

from infrastructure.db.faults import UnavailableAware, translate_errors

# Execution option a unit of work sets on its connection: on SQLite its transaction starts
# with BEGIN IMMEDIATE (see _configure_sqlite).
SQLITE_IMMEDIATE = "vkcp_sqlite_immediate"
SQLITE_BUSY_TIMEOUT_MS = 30_000
CONNECT_TIMEOUT = 5.0  # seconds to open a PostgreSQL connection
POOL_TIMEOUT = 10.0  # seconds to wait for a free pooled connection
# Connections a process keeps to PostgreSQL, and the most it ever opens: requests beyond them
# wait for one (POOL_TIMEOUT) instead of opening more. Measured under bench/soak.py (30 clients,
# two parses, 2 cores): with 10 kept and 20 more opened on demand, ~40 backends competed for
# the two cores, and every connection opened past the 10 was closed again when handed back, so
# the next burst paid a new backend, asyncpg's type introspection and a re-plan of every
# statement in an empty prepared-statement cache. A fixed pool keeps plans and queues the rest.
DEFAULT_POOL_SIZE = 10
# Every PostgreSQL connection's session settings. No JIT: the read model's statements are short
# and planned once per connection, and the planner's cost estimates of a count or a page with
# correlated subqueries crossed jit_above_cost, so a statement spent more CPU compiling
# expressions than running them.
SERVER_SETTINGS = {"jit": "off"}


def create_engine(url: str, *, pool_size: int = DEFAULT_POOL_SIZE) -> AsyncEngine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = _sqlite_engine(url)
    else:
        # Timeouts keep a vanished server from hanging callers: a connect gives up after
        # CONNECT_TIMEOUT, a pool wait after POOL_TIMEOUT. No pool_pre_ping: it cost three
        # round trips (BEGIN, a ping, ROLLBACK) per checkout; _replace_closed below finds
        # the connections a restart closed without any, and faults.py answers the rest.
        # No overflow: see DEFAULT_POOL_SIZE.
        engine = create_async_engine(
            url, pool_size=pool_size, max_overflow=0, pool_timeout=POOL_TIMEOUT,
            connect_args={"timeout": CONNECT_TIMEOUT, "server_settings": dict(SERVER_SETTINGS)},
        )
        _replace_closed(engine)
    translate_errors(engine)
    return engine


def pool_usage(engine: AsyncEngine) -> tuple[int, int] | None:
    """(connections checked out, the pool's size) of a queue pool (PostgreSQL's, a SQLite
    file's); None for a pool that keeps no count (an in-memory SQLite's)."""
    pool = engine.pool
    if isinstance(pool, QueuePool):
        return pool.checkedout(), pool.size()
    return None


def _replace_closed(engine: AsyncEngine) -> None:
    """A pooled connection the server closed meanwhile (a restart, a failover,
    ``pg_terminate_backend``) is replaced at checkout: the server's goodbye or the socket's
    end already reached asyncpg, whose ``is_closed()`` says so without a round trip. A
    connection that died silently (no FIN: a network partition) fails at its first
    statement instead, and faults.py turns that into ``Unavailable`` (HTTP 503)."""

    @event.listens_for(engine.sync_engine, "checkout")
    def _on_checkout(_dbapi_connection, record, _proxy) -> None:
        if record.driver_connection.is_closed():
            raise sa_exc.DisconnectionError("the server closed this pooled connection")  # the pool reconnects


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    # Rows are read into plain domain objects, never ORM instances: nothing to expire.
    return async_sessionmaker(engine, class_=UnavailableAware, expire_on_commit=False, autoflush=False)


def read_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions for the read model: each of its reads is one statement, so on PostgreSQL it
    runs in autocommit, without the BEGIN and ROLLBACK round trips around it. SQLite keeps
    its transactions (the engine emits BEGIN itself, see _configure_sqlite; no network)."""
    if engine.dialect.name == "postgresql":
        engine = engine.execution_options(isolation_level="AUTOCOMMIT")
    return session_factory(engine)


def _sqlite_engine(url: str) -> AsyncEngine:
    database = make_url(url).database
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
    _configure_sqlite(engine)
    return engine


def _configure_sqlite(engine: AsyncEngine) -> None:
    """WAL (readers never block the writer), foreign keys, waiting on locks.

    The driver's own transaction handling is switched off so that SQLAlchemy emits BEGIN
    itself: a unit of work, which reads and then writes, must take the write lock at its
    start (BEGIN IMMEDIATE). A deferred transaction that upgrades to a writer fails with
    "database is locked" at once when another writer committed meanwhile, without waiting.
    """

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")  # safe with WAL, much faster commits
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection) -> None:
        immediate = connection.get_execution_options().get(SQLITE_IMMEDIATE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
