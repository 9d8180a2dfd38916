"""The ``vkcp`` command: serve, worker, migrate, token create / list / revoke.

What ``serve``, ``worker`` and ``migrate`` write is log events, one JSON object a line on
stderr (``infrastructure.logging``): their output goes to log aggregators. ``serve`` keeps its
friendly banner for a person at a terminal, and the first start's one-time admin token, a
secret, never enters a log: it is shown on the terminal, or else written to a file only the
service's user can read (``FIRST_ADMIN_TOKEN_FILE``), whose path is logged. The ``token``
commands are for people and scripts: ``create`` prints the token alone, ``list`` a table.

Every command reads the settings once, here, and builds what it needs through ``bootstrap``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import socket
import sys
from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import structlog

from infrastructure.logging import configure_logging
from infrastructure.settings import Settings

if TYPE_CHECKING:
    import uvicorn
    from starlette.types import ASGIApp

    from bootstrap import Container
    from domain.ports import UnitOfWork

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
    configure_logging()  # the settings name the level, and reading them may fail: say so as an event
    try:
        settings = Settings()
    except ValueError as e:  # pydantic's ValidationError included: one event, no traceback
        log.error("config.invalid", error=str(e))
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
        from bootstrap import migrate

        migrate(settings)
        log.info("database.up_to_date")
        return 0
    if args.command == "token":
        command: TokenCommand = {
            "create": lambda uow_factory: _token_create(uow_factory, args.name, args.role),
            "list": _token_list,
            "revoke": lambda uow_factory: _token_revoke(uow_factory, args.token),
        }[args.token_command]
        return asyncio.run(_with_token_store(settings, command))
    return 2


async def _serve(settings: Settings, host: str, port: int) -> int:
    import uvicorn

    from bootstrap import build_container, freeze_startup_objects, migrate_embedded, resume_unfinished, start_loops
    from graphql_api.app import create_app

    # Claim the port before anything is announced: a taken port is one clear line, not a
    # GraphiQL URL that leads to someone else's server followed by a traceback.
    try:
        listening = _listen(host, port)
    except OSError as e:
        log.error("serve.cannot_listen", address=f"{host}:{port}", error=str(e.strerror or e),
                  detail="choose another --port")
        return 1
    await migrate_embedded(settings)
    if not settings.auth:
        log.warning("auth.disabled", detail="VKCP_AUTH=off: every request is admin; local development only")
    container = await build_container(settings)
    if settings.public_url is None:  # alerts link to the console as this server is reached
        container.adapters.public_url = f"http://{host}:{port}"
    vk_missing = not settings.vk_sandbox and not settings.vk_tokens
    if vk_missing:
        log.warning("vk.not_configured", detail="no VK tokens: set VKCP_VK_TOKENS (or VKCP_VK_SANDBOX=1 for the "
                    "offline demo); stored data is served, adding and parsing communities answer VK_UNAVAILABLE")
    if settings.auth:
        await _first_token(container, settings.data_dir / FIRST_ADMIN_TOKEN_FILE)
    if not settings.redis_url:
        await resume_unfinished(container)
    app = create_app(container)
    freeze_startup_objects()
    config = server_config(app, settings, host=host, port=port, log_config=None, access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    mode = (
        "sandbox VK" if settings.vk_sandbox
        else "VK not configured (set VKCP_VK_TOKENS)" if vk_missing
        else settings.vk_api_url
    )
    jobs = "ARQ workers" if settings.redis_url else "in-process jobs"
    db = "SQLite" if settings.is_sqlite else "PostgreSQL"
    console, graphiql = f"http://{host}:{port}/", f"http://{host}:{port}/graphql"
    if _at_terminal():
        print(f"VK Comments Parser: {db}, {jobs}, {mode}\nConsole: {console}\nGraphiQL: {graphiql}", flush=True)
    else:
        log.info("serve.starting", database=db, jobs=jobs, vk=mode, console=console, graphiql=graphiql)
    # Without Redis there are no ARQ workers: this process is the scheduler and the recovery loop.
    embedded = not settings.redis_url
    start_loops(container, recover=embedded, schedule=embedded)
    try:
        await server.serve(sockets=[listening])
    finally:
        listening.close()
        await container.aclose()  # the app's shutdown closed it, unless the server never started
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


def server_config(app: ASGIApp, settings: Settings, **options: Any) -> uvicorn.Config:
    """uvicorn's configuration for the API, as ``serve`` runs it (and tests serve it): the
    limits that protect the server from its clients, plus ``options``."""
    import uvicorn

    return uvicorn.Config(app, ws_max_size=settings.ws_max_message_bytes, loop=SERVE_LOOP, **options)


MORE_TOKENS = "vkcp token create --name NAME --role viewer|operator|admin (vkcp token list shows them)"
# Where a first start with no terminal leaves the one-time admin token (in the data dir).
FIRST_ADMIN_TOKEN_FILE = "first-admin-token"


def _at_terminal() -> bool:
    """Whether a person reads ``serve``'s standard output (rather than a log collector)."""
    return sys.stdout.isatty()


async def _first_token(container: Container, saved_at: Path) -> None:
    """With auth on and no token yet, make a one-time admin token so the quickstart works.

    The token is a secret shown once, so it never goes into a log event (logs are shipped and
    kept): a person at a terminal sees it there; otherwise it is written to ``saved_at``, which
    only the service's user can read, and the event says where. The file is for the operator
    to read once and delete; an admin can revoke the token (``first-admin``) any time."""
    from domain.auth import Role, create_api_token, revoke_api_token

    async with container.adapters.uow_factory() as uow:
        existing = await uow.api_tokens.list()
    if existing:
        if _at_terminal():
            print(f"API tokens: {MORE_TOKENS}", flush=True)
        else:
            log.info("auth.tokens_exist", detail=MORE_TOKENS)
        if saved_at.exists():
            log.warning("auth.first_admin_token_file_left", path=str(saved_at),
                        detail="it holds an admin token: delete it once you have the token")
        return
    token, made = await create_api_token(container.adapters.uow_factory, "first-admin", Role.ADMIN)
    if _at_terminal():
        print(
            "No API token existed, so an admin token was created. It is shown once; keep it:\n"
            f"  {token}\n"
            'In GraphiQL open "Headers" and paste: {"Authorization": "Bearer ' + token + '"}\n'
            f"More tokens: {MORE_TOKENS}",
            flush=True,
        )
        return
    try:
        _write_private(saved_at, token)
    except OSError as e:  # nobody could ever read it: it must not stay valid
        await revoke_api_token(container.adapters.uow_factory, made.id)
        log.error("auth.first_admin_token_not_saved", path=str(saved_at), error=str(e),
                  detail=f"the token made could not be saved, so it was revoked; make one: {MORE_TOKENS}")
        return
    log.warning("auth.first_admin_token_created", path=str(saved_at), token_name="first-admin",
                detail="no API token existed, so an admin token was made and written to that file (never "
                f"to a log): read it once, then delete the file. More tokens: {MORE_TOKENS}")


def _write_private(path: Path, text: str) -> None:
    """``text`` in ``path``, readable by this user alone from its first byte: written under a
    temporary name created with those permissions, then renamed into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as file:
            file.write(text + "\n")
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)


def _worker(settings: Settings, *, check: bool = False) -> int:
    if not settings.redis_url:
        log.error("worker.needs_redis",
                  detail="vkcp worker needs VKCP_REDIS_URL; without Redis `vkcp serve` runs the jobs itself")
        return 2
    from entrypoints import worker

    return worker.check(settings) if check else worker.run(settings)


UowFactory = Callable[[], "UnitOfWork"]
TokenCommand = Callable[[UowFactory], Awaitable[int]]


async def _with_token_store(settings: Settings, command: TokenCommand) -> int:
    """Run a token command on the database alone: managing API tokens needs neither VK nor Redis."""
    from bootstrap import token_store
    from domain.errors import DomainError

    try:
        async with token_store(settings) as uow_factory:
            return await command(uow_factory)
    except DomainError as e:
        print(f"vkcp token: {e.message}", file=sys.stderr)
        return 1


async def _token_create(uow_factory: UowFactory, name: str, role: str) -> int:
    from domain.auth import Role, create_api_token

    token, _ = await create_api_token(uow_factory, name, Role(role))
    print(token)
    return 0


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else "-"


async def _token_list(uow_factory: UowFactory) -> int:
    """One line per token; the secret is not stored, so it cannot be shown."""
    async with uow_factory() as uow:
        tokens = await uow.api_tokens.list()
    rows = [("ID", "NAME", "ROLE", "CREATED", "LAST USED", "REVOKED")]
    rows += [
        (str(t.id), t.name, str(t.role), _when(t.created_at), _when(t.last_used_at), _when(t.revoked_at))
        for t in tokens
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return 0


async def _token_revoke(uow_factory: UowFactory, name_or_id: str | int) -> int:
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
