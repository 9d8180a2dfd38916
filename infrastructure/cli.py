"""The ``vkcp`` command: serve, worker, migrate, token create / list / revoke."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import sys
import time
from datetime import timedelta
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

import structlog

from infrastructure.logging import configure_logging
from infrastructure.settings import Settings

if TYPE_CHECKING:
    import uvicorn

log = structlog.get_logger("vkcp")
T = TypeVar("T")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vkcp", description="VK Comments Parser")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the GraphQL API (and, without Redis, the jobs)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)

    worker = commands.add_parser("worker", help="run an ARQ worker (needs VKCP_REDIS_URL)")
    worker.add_argument("--check", action="store_true",
                        help="exit 0 when the worker on this host reported itself alive recently (a healthcheck)")
    commands.add_parser("migrate", help="apply database migrations")

    token = commands.add_parser("token", help="manage API tokens")
    token_commands = token.add_subparsers(dest="token_command", required=True)
    create = token_commands.add_parser("create", help="create an API token and print it once")
    create.add_argument("--name", required=True)
    create.add_argument("--role", required=True, choices=["viewer", "operator", "admin"])
    token_commands.add_parser("list", help="list API tokens (never their secrets)")
    revoke = token_commands.add_parser("revoke", help="revoke an API token at once")
    revoke.add_argument("token", metavar="NAME_OR_ID")

    args = parser.parse_args(argv)
    try:
        settings = Settings()
    except ValueError as e:  # pydantic's ValidationError included: one readable line, no traceback
        print(f"vkcp: configuration error: {e}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    if args.command in ("serve", "worker") and not getattr(args, "check", False):
        from infrastructure.memory import configure_allocator

        configure_allocator()  # long-running processes: before they allocate in earnest
    if args.command == "serve":
        return run_served(_serve(settings, args.host, args.port))
    if args.command == "worker":
        return _worker(settings, check=args.check)
    if args.command == "migrate":
        from infrastructure.db.migrate import upgrade

        upgrade(settings.effective_database_url)
        print("database is up to date")
        return 0
    if args.command == "token":
        command = {
            "create": lambda uow_factory: _token_create(uow_factory, args.name, args.role),
            "list": _token_list,
            "revoke": lambda uow_factory: _token_revoke(uow_factory, args.token),
        }[args.token_command]
        return asyncio.run(_with_token_store(settings, command))
    return 2


async def _serve(settings: Settings, host: str, port: int) -> int:
    import uvicorn

    from domain.tasks import watch_tasks
    from graphql_api.app import create_app
    from infrastructure.bootstrap import build_container, freeze_startup_objects, resume_unfinished
    from infrastructure.memory import release_free_memory_forever

    # Claim the port before anything is announced: a taken port is one clear line, not a
    # GraphiQL URL that leads to someone else's server followed by a traceback.
    try:
        listening = _listen(host, port)
    except OSError as e:
        print(f"vkcp serve: cannot listen on {host}:{port}: {e.strerror or e}; choose another --port", file=sys.stderr)
        return 1
    if settings.is_sqlite:
        from infrastructure.db.migrate import upgrade_async

        await upgrade_async(settings.effective_database_url)
    if not settings.auth:
        log.warning("auth.disabled", detail="VKCP_AUTH=off: every request is admin; local development only")
    container = await build_container(settings)
    vk_missing = not settings.vk_sandbox and not settings.vk_tokens
    if vk_missing:
        log.warning("vk.not_configured", detail="no VK tokens: set VKCP_VK_TOKENS (or VKCP_VK_SANDBOX=1 for the "
                    "offline demo); stored data is served, adding and parsing communities answer VK_UNAVAILABLE")
    if settings.auth:
        await _first_token(container)
    if not settings.redis_url:
        await resume_unfinished(container)
    app = create_app(container)
    freeze_startup_objects()
    config = server_config(app, settings, host=host, port=port, log_config=None, access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    mode = "sandbox VK" if settings.vk_sandbox else "VK not configured (set VKCP_VK_TOKENS)" if vk_missing else settings.vk_api_url
    jobs = "ARQ workers" if settings.redis_url else "in-process jobs"
    db = "SQLite" if settings.is_sqlite else "PostgreSQL"
    print(f"VK Comments Parser: {db}, {jobs}, {mode}", flush=True)
    print(f"Console: http://{host}:{port}/", flush=True)
    print(f"GraphiQL: http://{host}:{port}/graphql", flush=True)
    # Without Redis there are no ARQ workers: this process is the scheduler and the recovery loop.
    background = [asyncio.create_task(release_free_memory_forever())]
    if not settings.redis_url:
        background += [
            asyncio.create_task(_scheduler_loop(container)),
            asyncio.create_task(
                watch_tasks(container.adapters, stall_after=timedelta(seconds=settings.task_stall_seconds))
            ),
        ]
    try:
        await server.serve(sockets=[listening])
    finally:
        listening.close()
        for task in background:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    return 0


def _listen(host: str, port: int) -> socket.socket:
    """A bound socket for uvicorn (which listens on it), as uvicorn would bind it itself."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is no reason to fail
        sock.bind(address)
        sock.set_inheritable(True)
    except OSError:
        sock.close()
        raise
    return sock


# uvicorn's event loop choice: "auto" is uvloop where installed (uvicorn[standard] brings it).
SERVE_LOOP = "auto"


def run_served(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro``, which serves uvicorn, on the loop uvicorn's "auto" would pick: uvloop where
    installed (uvicorn[standard] brings it), else asyncio's own.

    ``serve`` builds the container before uvicorn starts, so it owns the loop; a plain
    ``asyncio.run`` would always be asyncio's own loop and the installed uvloop never used.
    (uvicorn's ``Config.get_loop_factory`` says the same, but only from uvicorn 0.36 on.)
    """
    try:
        import uvloop
    except ImportError:
        loop_factory = None
    else:
        loop_factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(coro)


def server_config(app, settings: Settings, **options: Any) -> uvicorn.Config:
    """uvicorn's configuration for the API, as ``serve`` runs it (and tests serve it): the
    limits that protect the server from its clients, plus ``options``."""
    import uvicorn

    return uvicorn.Config(app, ws_max_size=settings.ws_max_message_bytes, loop=SERVE_LOOP, **options)


SCHEDULER_INTERVAL = 60.0  # seconds: monitoring's granularity is a minute


async def _scheduler_loop(container) -> None:
    """Embedded mode's once-a-minute monitoring (``vkcp worker`` uses ARQ cron)."""
    from domain.errors import Unavailable
    from domain.monitoring import scheduler_tick

    while True:
        try:
            await scheduler_tick(container.adapters)
        except Unavailable as e:  # the database is away: the next minute's tick catches up
            log.warning("scheduler.tick_deferred", error=e.message)
        except Exception:  # a bug in one tick must not end monitoring
            log.exception("scheduler.tick_failed")
        await asyncio.sleep(SCHEDULER_INTERVAL - time.time() % SCHEDULER_INTERVAL)


async def _first_token(container) -> None:
    """With auth on and no token yet, print a one-time admin token so the quickstart works."""
    from domain.auth import Role, create_api_token

    async with container.adapters.uow_factory() as uow:
        existing = await uow.api_tokens.list()
    if existing:
        print("API tokens: vkcp token create --name NAME --role viewer|operator|admin (vkcp token list shows them)", flush=True)
        return
    token, _ = await create_api_token(container.adapters.uow_factory, "first-admin", Role.ADMIN)
    print(
        "No API token existed, so an admin token was created. It is shown once; keep it:\n"
        f"  {token}\n"
        'In GraphiQL open "Headers" and paste: {"Authorization": "Bearer ' + token + '"}\n'
        "More tokens: vkcp token create --name NAME --role viewer|operator|admin",
        flush=True,
    )


WORKER_HEALTH_INTERVAL = 30  # seconds between a worker's "alive" marks; the mark lives a second longer


def _worker(settings: Settings, *, check: bool = False) -> int:
    if not settings.redis_url:
        print("vkcp worker needs VKCP_REDIS_URL; without Redis `vkcp serve` runs the jobs itself", file=sys.stderr)
        return 2
    from arq.worker import async_check_health, get_kwargs

    from jobs.arq_compat import ResilientWorker
    from jobs.worker import WorkerSettings

    # One health key per host (per container), not ARQ's one per queue: a worker's healthcheck
    # must fail when *this* worker is gone, even while its siblings are fine.
    health_key = f"{WorkerSettings.queue_name}:health-check:{socket.gethostname()}"
    if check:
        return asyncio.run(async_check_health(WorkerSettings.redis(), health_key, WorkerSettings.queue_name))
    ResilientWorker(**{
        **get_kwargs(WorkerSettings), "redis_settings": WorkerSettings.redis(),
        "health_check_key": health_key, "health_check_interval": WORKER_HEALTH_INTERVAL,
    }).run()
    return 0


async def _with_token_store(settings: Settings, command) -> int:
    """Run a token command on the database alone: managing API tokens needs neither VK nor Redis."""
    from domain.errors import DomainError
    from infrastructure.db.engine import create_engine, session_factory
    from infrastructure.db.uow import SqlUnitOfWork

    if settings.is_sqlite:
        from infrastructure.db.migrate import upgrade_async

        settings.data_dir.mkdir(parents=True, exist_ok=True)
        await upgrade_async(settings.effective_database_url)
    engine = create_engine(settings.effective_database_url)
    sessions = session_factory(engine)
    try:
        return await command(lambda: SqlUnitOfWork(sessions))
    except DomainError as e:
        print(f"vkcp token: {e.message}", file=sys.stderr)
        return 1
    finally:
        await engine.dispose()


async def _token_create(uow_factory, name: str, role: str) -> int:
    from domain.auth import Role, create_api_token

    token, _ = await create_api_token(uow_factory, name, Role(role))
    print(token)
    return 0


def _when(moment) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else "-"


async def _token_list(uow_factory) -> int:
    """One line per token; the secret is not stored, so it cannot be shown."""
    async with uow_factory() as uow:
        tokens = await uow.api_tokens.list()
    rows = [("ID", "NAME", "ROLE", "CREATED", "LAST USED", "REVOKED")]
    rows += [(str(t.id), t.name, t.role, _when(t.created_at), _when(t.last_used_at), _when(t.revoked_at)) for t in tokens]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    return 0


async def _token_revoke(uow_factory, name_or_id: str | int) -> int:
    from domain.auth import revoke_api_token
    from graphql_api.ids import NodeType, decode_id

    # `token list` shows row ids; the API and the console show global ids: either one works.
    decoded = decode_id(str(name_or_id))
    if decoded is not None and decoded[0] is NodeType.API_TOKEN:
        name_or_id = decoded[1]
    token = await revoke_api_token(uow_factory, name_or_id)
    print(f"revoked token {token.id} ({token.name}, {token.role})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
