"""docker-compose.yml is for our users and cannot be started here (no Docker engine), so its
shape is checked: every service the README promises, commands the CLI has, settings it knows."""

from __future__ import annotations

from pathlib import Path

import yaml

from entrypoints.cli import main
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
    known = {f"VKCP_{name.upper()}{suffix}" for name in Settings.model_fields for suffix in ("", "_FILE")}
    for name, service in _compose()["services"].items():
        env = service.get("environment") or {}
        unknown = {key for key in env if key.startswith("VKCP_")} - known
        assert not unknown, f"{name}: {unknown}"
    env = _compose()["services"]["api"]["environment"]
    assert env["VKCP_REDIS_URL"].startswith("redis://")


def test_cli_commands_of_the_contract_exist(capsys) -> None:
    for command in (["serve", "--help"], ["worker", "--help"], ["migrate", "--help"], ["token", "create", "--help"],
                    ["token", "list", "--help"], ["token", "revoke", "--help"]):
        try:
            main(command)
        except SystemExit as e:
            assert e.code == 0
    out = capsys.readouterr().out
    assert "--role" in out and "--port" in out and "--check" in out and "NAME_OR_ID" in out


def _secret_paths(service: dict) -> dict[str, str]:
    """The service's ``*_FILE`` variables and the paths they name."""
    return {k: v for k, v in (service.get("environment") or {}).items() if k.endswith("_FILE")}


def test_compose_keeps_secrets_in_files_not_in_the_environment() -> None:
    compose = _compose()
    declared = compose["secrets"]
    for name, service in compose["services"].items():
        env = service.get("environment") or {}
        for key, value in env.items():
            assert "PASSWORD" not in key or key.endswith("_FILE"), f"{name}: {key} is inline"
            assert "@" not in str(value), f"{name}: {key} carries credentials inline"
        assert "VKCP_VK_TOKENS" not in env and "VKCP_DATABASE_URL" not in env, name
        mounted = set(service.get("secrets") or [])
        for key, path in _secret_paths(service).items():
            secret = path.removeprefix("/run/secrets/")
            assert path.startswith("/run/secrets/") and secret in mounted and secret in declared, (name, key)
    for name in ("api", "worker", "migrate"):
        files = _secret_paths(compose["services"][name])
        assert set(files) >= {"VKCP_DATABASE_URL_FILE", "VKCP_VK_TOKENS_FILE"}, name
    assert "POSTGRES_PASSWORD_FILE" in compose["services"]["postgres"]["environment"]


def test_compose_checks_health_where_it_matters_and_rotates_logs() -> None:
    services = _compose()["services"]
    api = " ".join(services["api"]["healthcheck"]["test"])
    assert "/readyz" in api and "/healthz" not in api
    check = services["worker"]["healthcheck"]["test"]
    assert check[-3:] == ["vkcp", "worker", "--check"]
    for name, service in services.items():
        options = service["logging"]["options"]
        assert service["logging"]["driver"] == "json-file" and options["max-size"] and int(options["max-file"]) > 1, name


def test_the_image_runs_pinned_versions_as_a_user() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    users = [line.split()[1] for line in dockerfile.splitlines() if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")
    assert "--constraint constraints.txt" in dockerfile and "COPY constraints.txt" in dockerfile
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[name.lower().replace("_", "-")] = version
    import tomllib

    from packaging.requirements import Requirement

    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for requirement in map(Requirement, declared):
        name = requirement.name.lower().replace("_", "-")
        assert name in pins, f"{name} is not pinned in constraints.txt"
        assert requirement.specifier.contains(pins[name]), f"{name}=={pins[name]} is outside {requirement.specifier}"


def test_serve_runs_on_uvloop_where_it_is_installed() -> None:
    import asyncio
    import importlib.util

    from entrypoints.cli import run_served

    async def loop_module() -> str:
        return type(asyncio.get_running_loop()).__module__

    expected = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    assert run_served(loop_module()).split(".")[0] == expected


def test_compose_monitors_the_api_with_the_shipped_rules_and_dashboard() -> None:
    """Prometheus scrapes the API and loads deploy/prometheus/alerts.yml; Grafana is provisioned
    with that Prometheus and deploy/grafana/vkcp.json. (promtool checks the rules themselves in
    tests/integration/test_prometheus_rules.py; the series they name, tests/e2e/test_dashboards.py.)"""
    import json

    services = _compose()["services"]

    def mounts(name: str) -> dict[str, str]:
        found = {}
        for volume in services[name]["volumes"]:
            source, target, *_ = volume.split(":")
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name} mounts {source}, which does not exist"
                found[target] = source
        return found

    prometheus = mounts("prometheus")
    config_path = next(arg.split("=", 1)[1] for arg in services["prometheus"]["command"] if arg.startswith("--config.file="))
    config = yaml.safe_load((ROOT / prometheus[config_path]).read_text())
    for rule_file in config["rule_files"]:
        target = str(Path(config_path).parent / rule_file)
        assert prometheus[target] == "./deploy/prometheus/alerts.yml"
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "vkcp" and job["metrics_path"] == "/metrics"
    assert job["static_configs"][0]["targets"] == ["api:8000"]  # the api service's port
    assert "8000:8000" in services["api"]["ports"]

    grafana = mounts("grafana")
    provisioning = ROOT / grafana["/etc/grafana/provisioning"]
    (source,) = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())["datasources"]
    assert source["url"] == "http://prometheus:9090" and source["type"] == "prometheus"
    (provider,) = yaml.safe_load((provisioning / "dashboards" / "vkcp.yml").read_text())["providers"]
    dashboard_dir = provider["options"]["path"]
    dashboards = {t: s for t, s in grafana.items() if t.startswith(dashboard_dir + "/")}
    assert list(dashboards.values()) == ["./deploy/grafana/vkcp.json"]
    dashboard = json.loads((ROOT / "deploy/grafana/vkcp.json").read_text())
    used = {t["datasource"]["uid"] for p in dashboard["panels"] for t in p.get("targets", [])}
    assert used == {source["uid"]}  # every panel reads the provisioned Prometheus


def test_the_dashboard_is_a_grafana_dashboard_model() -> None:
    """What Grafana needs to load vkcp.json from provisioning: a uid, unique panel ids, panels
    that fit its 24-column grid without overlapping, and queries with unique refIds."""
    import json

    dashboard = json.loads((ROOT / "deploy/grafana/vkcp.json").read_text())
    assert dashboard["uid"] and dashboard["title"] and dashboard["schemaVersion"] >= 36
    panels = dashboard["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for p in panels:
        g = p["gridPos"]
        assert g["x"] >= 0 and g["x"] + g["w"] <= 24 and g["h"] > 0, p["title"]
        mine = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not cells & mine, f"{p['title']} overlaps another panel"
        cells |= mine
        if p["type"] == "row":
            continue
        assert p["type"] in {"timeseries", "stat"}, p["type"]
        refs = [t["refId"] for t in p["targets"]]
        assert refs and len(refs) == len(set(refs)) and all(t["expr"].strip() for t in p["targets"]), p["title"]
    assert {p["title"] for p in panels if p["type"] == "row"} >= {"API", "Tasks", "Collection", "VK", "Alert deliveries"}
