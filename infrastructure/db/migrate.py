"""Apply the Alembic migrations: from the CLI (``upgrade``) or from async code (``upgrade_async``).

What was applied is one ``database.migrated`` log event, in our own words: Alembic's INFO lines
(its context, each step) are not logged (``infrastructure.logging``).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import structlog
from alembic import command
from alembic.config import Config

MIGRATIONS = Path(__file__).resolve().parent / "migrations"

log = structlog.get_logger("vkcp.db")


def alembic_config(url: str) -> Config:
    """A configuration built in code: works from an installed package, with no alembic.ini."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    # Passed as an attribute, not an ini option: a URL may hold "%" (configparser syntax).
    config.attributes["url"] = url
    return config


def upgrade(url: str, revision: str = "head") -> list[str]:
    """Bring the database at ``url`` to ``revision``; the revisions applied, in order. Not
    callable from a running event loop (the migration environment runs its own); async
    callers use ``upgrade_async``."""
    applied: list[str] = []

    def record(*, step: Any, **_: Any) -> None:  # called by migrations/env.py after each step
        applied.append(step.up_revision_id)

    config = alembic_config(url)
    config.attributes["on_version_apply"] = record
    command.upgrade(config, revision)
    if applied:
        log.info("database.migrated", applied=applied, revision=applied[-1])
    return applied


async def upgrade_async(url: str, revision: str = "head") -> list[str]:
    # A worker thread has no event loop, so the environment's asyncio.run() can start one.
    return await asyncio.to_thread(upgrade, url, revision)
