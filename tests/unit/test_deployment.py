"""docker-compose.yml is for our users and cannot be started here (no Docker engine), so its
shape is checked: every service the README promises, commands the CLI has, settings it knows."""

from __future__ import annotations

from pathlib import Path

import yaml

from infrastructure.cli import main
from infrastructure.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_runs_the_full_stack() -> None:
    services = _compose()["services"]
    assert set(services) >= {"postgres", "redis", "migrate", "api", "worker"}
    assert services["migrate"]["command"] == ["vkcp", "migrate"]
    assert services["worker"]["command"] == ["vkcp", "worker"]
    assert services["api"]["command"][:2] == ["vkcp", "serve"]
    # The API and workers start only after the schema is migrated.
    for name in ("api", "worker"):
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_compose_sets_only_settings_the_service_knows() -> None:
    known = {f"VKCP_{name.upper()}" for name in Settings.model_fields}
    for name, service in _compose()["services"].items():
        env = service.get("environment") or {}
        unknown = {key for key in env if key.startswith("VKCP_")} - known
        assert not unknown, f"{name}: {unknown}"
    env = _compose()["services"]["api"]["environment"]
    assert env["VKCP_DATABASE_URL"].startswith("postgresql+asyncpg://")
    assert env["VKCP_REDIS_URL"].startswith("redis://")


def test_cli_commands_of_the_contract_exist(capsys) -> None:
    for command in (["serve", "--help"], ["worker", "--help"], ["migrate", "--help"], ["token", "create", "--help"]):
        try:
            main(command)
        except SystemExit as e:
            assert e.code == 0
    out = capsys.readouterr().out
    assert "--role" in out and "--port" in out
