"""Apply the Alembic migrations: from the CLI (``upgrade``) or from async code (``upgrade_async``)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(url: str) -> Config:
    """A configuration built in code: works from an installed package, with no alembic.ini."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    # Passed as an attribute, not an ini option: a URL may hold "%" (configparser syntax).
    config.attributes["url"] = url
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database at ``url`` to ``revision``. Not callable from a running event loop
    (the migration environment runs its own); async callers use ``upgrade_async``."""
    command.upgrade(alembic_config(url), revision)


async def upgrade_async(url: str, revision: str = "head") -> None:
    # A worker thread has no event loop, so the environment's asyncio.run() can start one.
    await asyncio.to_thread(upgrade, url, revision)
