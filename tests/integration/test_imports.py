"""Importing a module builds nothing: no settings read, no engine, client or loop made, no
connection opened. A fresh interpreter imports every module of the service with settings that
cannot load (``VKCP_AUTH=bogus``) and with every socket connection refused; a module that
read the settings or connected at import would fail here. And a process that imports the
composition root can run every kind of task."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("domain", "infrastructure", "graphql_api", "jobs", "entrypoints")

SCRIPT = """
import importlib, socket, sys

def refuse(*args, **kwargs):
    raise AssertionError(f"a connection at import time: {args!r}")

socket.socket.connect = socket.socket.connect_ex = refuse
socket.create_connection = refuse

from infrastructure.settings import Settings
try:
    Settings()
except ValueError:
    pass
else:
    sys.exit("these settings were meant not to load")

for name in sys.argv[1:]:
    importlib.import_module(name)
print(len(sys.argv) - 1)
"""


def _modules() -> list[str]:
    names = ["bootstrap"]
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if "migrations" in parts:  # Alembic's scripts run inside Alembic, not on import
                continue
            names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def test_every_module_imports_with_settings_that_cannot_load_and_no_network() -> None:
    modules = _modules()
    assert {"bootstrap", "entrypoints.cli", "entrypoints.worker", "jobs.worker", "graphql_api.app"} <= set(modules)
    env = {
        **os.environ,
        "VKCP_AUTH": "bogus",
        "VKCP_DATABASE_URL": "postgresql+asyncpg://nobody@127.0.0.1:1/nothing",
        "VKCP_REDIS_URL": "redis://127.0.0.1:1/0",
    }
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, *modules], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == str(len(modules))


def test_a_process_that_builds_the_system_can_run_every_kind_of_task() -> None:
    """Use cases register their handlers when imported; the composition root imports them all.
    A fresh interpreter, so nothing this test session imported helps."""
    script = (
        "import bootstrap\n"
        "from domain.models import TaskKind\n"
        "from domain.tasks import HANDLERS\n"
        "print(sorted(set(TaskKind) - set(HANDLERS)))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
