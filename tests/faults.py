"""Dependencies a test may break: a private Redis server and a private PostgreSQL cluster.

The shared services (PostgreSQL on 5432, Redis on 6379) are never touched: a test that stops,
restarts or kills a dependency starts its own, on a free port, in a temporary directory.

- ``PrivateRedis``: ``redis-server --save '' --appendonly no`` (nothing survives a restart: a
  restart is a restart *empty*). ``stop()`` kills it with SIGKILL, ``start()`` starts it again
  on the same port, ``restart(down_seconds)``, ``down_for(seconds)`` and ``flap(...)`` (down
  2 s every 5 s for a while; run it as a background asyncio task).
- ``PrivatePostgres``: ``initdb`` (trust auth, no fsync) into a directory owned by the
  ``postgres`` OS user when we run as root (PostgreSQL refuses to run as root), then
  ``pg_ctl start``. ``stop()`` (``-m fast``), ``start()``, ``restart()`` (``pg_ctl restart -m
  fast``), ``down_for(seconds)``, ``terminate_backends(database)``.

Every fault is recorded in ``events`` as ``(monotonic time, what)``; the methods that bring a
dependency back return the monotonic time at which it answered again, which is what recovery
times are measured from. The methods are async (blocking work runs in a thread) so that the
test's own client loop and progress monitor keep running while a dependency goes down.

Fixtures: ``private_redis`` and ``private_postgres`` (function scope: a test that leaves its
dependency down or broken cannot spoil the next one). Missing binaries skip the tests locally
and fail them with ``CI=true``, like the shared services (``tests.conftest.require_service``).
"""

from __future__ import annotations

import asyncio
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.conftest import require_service


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tail(path: Path, chars: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError as e:
        return f"<{path}: {e}>"


# --- binaries -------------------------------------------------------------------------------


def redis_server_binary() -> str | None:
    return shutil.which("redis-server") or next(
        (p for p in ("/usr/bin/redis-server", "/usr/local/bin/redis-server") if os.access(p, os.X_OK)), None
    )


def postgres_bin_dir() -> Path | None:
    """Where ``initdb`` and ``pg_ctl`` are: on PATH, else the newest /usr/lib/postgresql/*/bin
    (Debian's packages do not put them on PATH)."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(os.path.realpath(found)).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb") + glob.glob("/usr/pgsql-*/bin/initdb"),
                        key=lambda p: [int(x) for x in "".join(c if c.isdigit() else " " for c in p).split()])
    return Path(candidates[-1]).parent if candidates else None


def postgres_os_user() -> str | None:
    """The user PostgreSQL runs as: ``postgres`` when we are root, else ourselves (None)."""
    return "postgres" if os.geteuid() == 0 else None


def _redis_problem() -> str | None:
    return None if redis_server_binary() else "redis-server binary not found (install redis-server)"


def _postgres_problem() -> str | None:
    bin_dir = postgres_bin_dir()
    if bin_dir is None or not (bin_dir / "pg_ctl").exists():
        return "initdb/pg_ctl not found on PATH nor in /usr/lib/postgresql/*/bin (install postgresql)"
    user = postgres_os_user()
    if user is not None:
        try:
            pwd.getpwnam(user)
        except KeyError:
            return f"running as root, but there is no {user!r} OS user to run a private cluster as"
        if not (shutil.which("runuser") or shutil.which("su")):
            return "neither runuser nor su is available to run PostgreSQL as the postgres user"
    return None


# --- Redis ----------------------------------------------------------------------------------


class _Breakable:
    """What both private services share: an outage of a given length, recorded in ``outages``.
    Subclasses give ``stop()`` and ``start()``, each returning the monotonic time it took effect."""

    outages: list[tuple[float, float]]

    async def down_for(self, seconds: float) -> float:
        """Down for ``seconds`` and back (a Redis comes back empty); returns the moment it
        answered again."""
        down = await self.stop()  # type: ignore[attr-defined]
        await asyncio.sleep(max(0.0, seconds - (time.monotonic() - down)))
        up = await self.start()  # type: ignore[attr-defined]
        self.outages.append((down, up))
        return up


class PrivateRedis(_Breakable):
    """A redis-server of its own. Nothing persists: every start is an empty Redis."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.log = workdir / "redis.log"
        self.proc: subprocess.Popen | None = None
        self.events: list[tuple[float, str]] = []
        self.outages: list[tuple[float, float]] = []  # (went down, answered again)

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    # sync core (fixtures, teardown)

    def start_sync(self, timeout: float = 20) -> float:
        if self.running:
            return time.monotonic()
        binary = redis_server_binary()
        assert binary, "redis-server not found"
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.workdir), "--protected-mode", "no", "--loglevel", "notice"],
            stdout=self.log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"redis-server exited with {self.proc.returncode}:\n{tail(self.log)}")
            if self._ping():
                up = time.monotonic()
                self.events.append((up, "redis up"))
                return up
            time.sleep(0.05)
        raise AssertionError(f"redis-server on port {self.port} did not answer PING:\n{tail(self.log)}")

    def stop_sync(self) -> float:
        """SIGKILL, like a crash or an OOM kill: clients see their connections reset."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        assert not self._ping(), f"Redis on port {self.port} still answers after being killed"
        down = time.monotonic()
        self.events.append((down, "redis down"))
        return down

    def _ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def close(self) -> None:
        self.stop_sync()

    # async API (for use while the system under test keeps running)

    async def start(self) -> float:
        """Start again on the same port (empty); returns when it answers PING (monotonic time)."""
        return await asyncio.to_thread(self.start_sync)

    async def stop(self) -> float:
        return await asyncio.to_thread(self.stop_sync)

    async def restart(self, down_seconds: float = 0.0) -> float:
        return await self.down_for(down_seconds)

    async def flap(self, duration: float, *, down: float = 2.0, period: float = 5.0) -> float:
        """Down ``down`` seconds out of every ``period`` for ``duration`` seconds; returns the
        moment it answered again after the last outage (it is up when this returns)."""
        started = time.monotonic()
        up = started
        while time.monotonic() - started < duration:
            cycle = time.monotonic()
            up = await self.down_for(down)
            await asyncio.sleep(max(0.0, period - (time.monotonic() - cycle)))
        return up


# --- PostgreSQL -----------------------------------------------------------------------------


class PrivatePostgres(_Breakable):
    """A PostgreSQL cluster of its own (``initdb``, trust auth, no fsync), on a free port.

    The data directory lives outside pytest's tmp_path (which only root can enter) in a
    temporary directory owned by the ``postgres`` OS user when we run as root."""

    SUPERUSER = "postgres"

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.bin_dir = postgres_bin_dir()
        assert self.bin_dir is not None, "initdb not found"
        self.os_user = postgres_os_user()
        self.root = Path(tempfile.mkdtemp(prefix="vkcp-pg-", dir=_dir_others_can_enter()))
        self.data = self.root / "data"
        self.sockets = self.root / "sockets"
        self.log = self.root / "postgresql.log"
        self.events: list[tuple[float, str]] = []
        self.outages: list[tuple[float, float]] = []
        self.sockets.mkdir()
        os.chmod(self.root, 0o755)  # /tmp/vkcp-pg-*: the postgres user must enter it
        if self.os_user is not None:
            entry = pwd.getpwnam(self.os_user)
            for path in (self.root, self.sockets):
                os.chown(path, entry.pw_uid, entry.pw_gid)

    # helpers

    def _as_postgres(self, *args: str) -> list[str]:
        if self.os_user is None:
            return list(args)
        if shutil.which("runuser"):
            return ["runuser", "-u", self.os_user, "--", *args]
        return ["su", self.os_user, "-s", "/bin/sh", "-c", " ".join(_quote(a) for a in args)]

    def _run(self, *args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run(self._as_postgres(*args), capture_output=True, text=True, timeout=timeout,
                              cwd=self.root)
        if check and done.returncode != 0:
            raise AssertionError(
                f"{' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}\n{tail(self.log)}"
            )
        return done

    def _bin(self, name: str) -> str:
        return str(self.bin_dir / name)

    def dsn(self, database: str = "postgres") -> str:
        """For asyncpg / psql."""
        return f"postgresql://{self.SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def url(self, database: str) -> str:
        """For the service (SQLAlchemy async)."""
        return f"postgresql+asyncpg://{self.SUPERUSER}@127.0.0.1:{self.port}/{database}"

    # lifecycle (sync: fixtures and teardown)

    def init(self) -> None:
        self._run(self._bin("initdb"), "-D", str(self.data), "-U", self.SUPERUSER, "-A", "trust", "-E", "UTF8",
                  "--locale=C", "--no-sync", "--no-instructions")
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(
                "\n# vkcp fault tests: fast and disposable\n"
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
                "listen_addresses = '127.0.0.1'\nmax_connections = 200\nshared_buffers = 64MB\n"
                "log_min_messages = warning\nlog_connections = off\nlog_disconnections = off\n"
            )

    def _options(self) -> str:
        return f"-p {self.port} -k {self.sockets}"

    def start_sync(self) -> float:
        self._run(self._bin("pg_ctl"), "-D", str(self.data), "-o", self._options(), "-l", str(self.log),
                  "-w", "-t", "60", "start")
        self._wait_ready()
        up = time.monotonic()
        self.events.append((up, "postgres up"))
        return up

    def stop_sync(self, mode: str = "fast") -> float:
        self._run(self._bin("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop", check=False)
        assert not self._accepts(), f"PostgreSQL on port {self.port} still accepts connections:\n{tail(self.log)}"
        down = time.monotonic()
        self.events.append((down, f"postgres down ({mode})"))
        return down

    def restart_sync(self, mode: str = "fast") -> float:
        self.events.append((time.monotonic(), f"postgres restart ({mode})"))
        self._run(self._bin("pg_ctl"), "-D", str(self.data), "-o", self._options(), "-l", str(self.log),
                  "-m", mode, "-w", "-t", "60", "restart")
        self._wait_ready()
        up = time.monotonic()
        self.events.append((up, "postgres up"))
        return up

    def is_running(self) -> bool:
        return self._run(self._bin("pg_ctl"), "-D", str(self.data), "status", check=False).returncode == 0

    def _accepts(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def _wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._accepts():
                return
            time.sleep(0.05)
        raise AssertionError(f"PostgreSQL on port {self.port} does not accept connections:\n{tail(self.log)}")

    def cleanup(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run(self._bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "-t", "30", "stop",
                      check=False)
        shutil.rmtree(self.root, ignore_errors=True)

    # async API (for use while the system under test keeps running)

    async def start(self) -> float:
        return await asyncio.to_thread(self.start_sync)

    async def stop(self, mode: str = "fast") -> float:
        return await asyncio.to_thread(self.stop_sync, mode)

    async def restart(self, mode: str = "fast") -> float:
        """``pg_ctl restart -m fast``; returns the moment it accepts connections again."""
        started = time.monotonic()
        up = await asyncio.to_thread(self.restart_sync, mode)
        self.outages.append((started, up))
        return up

    async def create_database(self, name: str) -> None:
        import asyncpg

        conn = await asyncpg.connect(self.dsn(), timeout=10)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    async def terminate_backends(self, database: str) -> int:
        """``pg_terminate_backend`` for every other connection to ``database``; how many."""
        import asyncpg

        conn = await asyncpg.connect(self.dsn(), timeout=10)
        try:
            killed = await conn.fetchval(
                "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = $1 AND pid <> pg_backend_pid()) t", database)
        finally:
            await conn.close()
        self.events.append((time.monotonic(), f"postgres: {killed} backends of {database} terminated"))
        return int(killed)


def _dir_others_can_enter() -> str:
    """The temporary directory, if every directory above it lets other users through (the
    postgres user must reach its data directory); else /tmp."""
    base = Path(tempfile.gettempdir()).resolve()
    if os.geteuid() != 0:
        return str(base)
    for path in (base, *base.parents):
        if not os.stat(path).st_mode & 0o001:
            return "/tmp"
    return str(base)


def _quote(arg: str) -> str:
    import shlex

    return shlex.quote(arg)


# --- fixtures -------------------------------------------------------------------------------


@pytest.fixture
async def private_redis(tmp_path: Path) -> AsyncIterator[PrivateRedis]:
    """A running, empty Redis of this test's own (``.url()``); stopped afterwards."""
    require_service("redis-server (private instance)", _redis_problem())
    redis = PrivateRedis(tmp_path / "redis")
    await redis.start()
    try:
        yield redis
    finally:
        redis.close()


@pytest.fixture
async def private_postgres() -> AsyncIterator[PrivatePostgres]:
    """A running PostgreSQL cluster of this test's own (``.url(database)``); removed afterwards."""
    require_service("PostgreSQL binaries (private cluster)", _postgres_problem())
    cluster = PrivatePostgres()
    try:
        await asyncio.to_thread(cluster.init)
        await cluster.start()
        yield cluster
    finally:
        await asyncio.to_thread(cluster.cleanup)
