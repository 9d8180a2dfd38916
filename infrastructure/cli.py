"""The ``vkcp`` command: serve, worker, migrate, token create."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import structlog

from infrastructure.logging import configure_logging
from infrastructure.settings import Settings

if TYPE_CHECKING:
    import uvicorn

log = structlog.get_logger("vkcp")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vkcp", description="VK Comments Parser")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the GraphQL API (and, without Redis, the jobs)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)

    commands.add_parser("worker", help="run an ARQ worker (needs VKCP_REDIS_URL)")
    commands.add_parser("migrate", help="apply database migrations")

    token = commands.add_parser("token", help="manage API tokens")
    token_commands = token.add_subparsers(dest="token_command", required=True)
    create = token_commands.add_parser("create", help="create an API token and print it once")
    create.add_argument("--name", required=True)
    create.add_argument("--role", required=True, choices=["viewer", "operator", "admin"])

    args = parser.parse_args(argv)
    settings = Settings()
    configure_logging(settings.log_level)
    if args.command == "serve":
        return asyncio.run(_serve(settings, args.host, args.port))
    if args.command == "worker":
        return _worker(settings)
    if args.command == "migrate":
        from infrastructure.db.migrate import upgrade

        upgrade(settings.effective_database_url)
        print("database is up to date")
        return 0
    if args.command == "token":
        return asyncio.run(_token_create(settings, args.name, args.role))
    return 2


async def _serve(settings: Settings, host: str, port: int) -> int:
    import uvicorn

    from domain.tasks import watch_tasks
    from graphql_api.app import create_app
    from infrastructure.bootstrap import build_container, freeze_startup_objects, resume_unfinished

    if settings.is_sqlite:
        from infrastructure.db.migrate import upgrade_async

        await upgrade_async(settings.effective_database_url)
    if not settings.auth:
        log.warning("auth.disabled", detail="VKCP_AUTH=off: every request is admin; local development only")
    container = await build_container(settings)
    if settings.auth:
        await _first_token(container)
    if not settings.redis_url:
        await resume_unfinished(container)
    app = create_app(container)
    freeze_startup_objects()
    config = server_config(app, settings, host=host, port=port, log_config=None, access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    mode = "sandbox VK" if settings.vk_sandbox else settings.vk_api_url
    jobs = "ARQ workers" if settings.redis_url else "in-process jobs"
    db = "SQLite" if settings.is_sqlite else "PostgreSQL"
    print(f"VK Comments Parser: {db}, {jobs}, {mode}", flush=True)
    print(f"Console: http://{host}:{port}/", flush=True)
    print(f"GraphiQL: http://{host}:{port}/graphql", flush=True)
    # Without Redis there are no ARQ workers: this process is the scheduler and the recovery loop.
    background = [] if settings.redis_url else [
        asyncio.create_task(_scheduler_loop(container)),
        asyncio.create_task(watch_tasks(container.adapters, stall_after=timedelta(seconds=settings.task_stall_seconds))),
    ]
    try:
        await server.serve()
    finally:
        for task in background:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    return 0


def server_config(app, settings: Settings, **options: Any) -> uvicorn.Config:
    """uvicorn's configuration for the API, as ``serve`` runs it (and tests serve it): the
    limits that protect the server from its clients, plus ``options``."""
    import uvicorn

    return uvicorn.Config(app, ws_max_size=settings.ws_max_message_bytes, **options)


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
        return
    token, _ = await create_api_token(container.adapters.uow_factory, "first-admin", Role.ADMIN)
    print(
        "No API token existed, so an admin token was created. It is shown once; keep it:\n"
        f"  {token}\n"
        'In GraphiQL open "Headers" and paste: {"Authorization": "Bearer ' + token + '"}\n'
        "More tokens: vkcp token create --name NAME --role viewer|operator|admin",
        flush=True,
    )


def _worker(settings: Settings) -> int:
    if not settings.redis_url:
        print("vkcp worker needs VKCP_REDIS_URL; without Redis `vkcp serve` runs the jobs itself", file=sys.stderr)
        return 2
    from arq.worker import get_kwargs

    from jobs.arq_compat import ResilientWorker
    from jobs.worker import WorkerSettings

    ResilientWorker(**{**get_kwargs(WorkerSettings), "redis_settings": WorkerSettings.redis()}).run()
    return 0


async def _token_create(settings: Settings, name: str, role: str) -> int:
    from domain.auth import Role, create_api_token
    from infrastructure.bootstrap import build_container

    if settings.is_sqlite:
        from infrastructure.db.migrate import upgrade_async

        await upgrade_async(settings.effective_database_url)
    container = await build_container(settings)
    try:
        token, _ = await create_api_token(container.adapters.uow_factory, name, Role(role))
    finally:
        await container.aclose()
    print(token)
    return 0


if __name__ == "__main__":
    sys.exit(main())
