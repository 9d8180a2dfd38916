"""What an operator meets running the real ``vkcp`` command: a first start with nothing
configured, API token management, a taken port, the logs and readiness. Every test runs the
CLI as a subprocess, as a user would."""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from domain.models import TaskKind, TaskState
from tests.processes import first_admin_token, free_port, log_events, spawn, stop, wait_http

ROOT = Path(__file__).resolve().parents[2]

ADD = """mutation($ref: String!) { addGroup(ref: $ref) { group { id } errors { code message field } } }"""


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A first run: no VK tokens, no sandbox, no Redis, the embedded SQLite database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VKCP_")}
    env.update(PYTHONPATH=str(ROOT), VKCP_DATA_DIR=str(tmp_path / "data"))
    return env


def vkcp(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "entrypoints.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


async def _serve(env: dict[str, str], log: Path, port: int) -> subprocess.Popen:
    proc = spawn(["-m", "entrypoints.cli", "serve", "--port", str(port)], env, log)
    await wait_http(f"http://127.0.0.1:{port}/healthz", proc, log)
    return proc


async def test_serve_starts_without_vk_and_says_what_is_missing(env, tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "serve.log"
    proc = await _serve(env, log, port)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            output = log.read_text()
            events = {e["event"]: e for e in log_events(output)}  # stdout and stderr: JSON lines only
            admin = first_admin_token(tmp_path / "data")  # the first start's admin token
            assert events["auth.first_admin_token_created"]["path"] == str(tmp_path / "data" / "first-admin-token")
            assert (tmp_path / "data" / "first-admin-token").stat().st_mode & 0o077 == 0  # the user's alone
            assert admin not in output  # a secret: never in a log line
            assert "VKCP_VK_TOKENS" in events["vk.not_configured"]["detail"] and "Traceback" not in output, output

            ready = await client.get("/readyz")
            assert ready.status_code == 200, ready.text  # stored data stays readable
            assert ready.json()["checks"]["vk"] == "not configured"

            added = await client.post("/graphql", json={"query": ADD, "variables": {"ref": "durov"}},
                                      headers={"Authorization": f"Bearer {admin}"})
            result = added.json()["data"]["addGroup"]
            assert result["group"] is None
            assert result["errors"][0]["code"] == "VK_UNAVAILABLE"
            assert "VKCP_VK_TOKENS" in result["errors"][0]["message"]
    finally:
        stop(proc)

    # Later starts do not mint another admin token; they say how to get one, and that the
    # file holding the first one should go.
    second = tmp_path / "serve-2.log"
    proc = await _serve(env, second, port)
    stop(proc)
    events = {e["event"]: e for e in log_events(second.read_text())}
    assert "vkcp token create --name NAME --role" in events["auth.tokens_exist"]["detail"]
    assert events["auth.first_admin_token_file_left"]["level"] == "warning"
    assert not re.search(r"vkcp_[\w\-]{20,}", second.read_text())


async def test_token_create_list_revoke_need_no_vk(env, tmp_path: Path) -> None:
    created = vkcp(env, "token", "create", "--name", "ci-bot", "--role", "operator")
    assert created.returncode == 0 and "Traceback" not in created.stderr, created.stderr
    token = created.stdout.strip()
    assert re.fullmatch(r"vkcp_[\w\-]+", token)
    vkcp(env, "token", "create", "--name", "dashboard", "--role", "viewer")

    listed = vkcp(env, "token", "list")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].split()[:3] == ["ID", "NAME", "ROLE"]
    assert any("ci-bot" in line and "operator" in line for line in lines)
    assert any("dashboard" in line and "viewer" in line for line in lines)
    assert "vkcp_" not in listed.stdout + listed.stderr  # never a secret after creation

    port = free_port()
    proc = await _serve(env, tmp_path / "serve.log", port)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            query = {"query": "{ groups { totalCount } }"}
            auth = {"Authorization": f"Bearer {token}"}
            assert (await client.post("/graphql", json=query, headers=auth)).status_code == 200

            revoked = vkcp(env, "token", "revoke", "ci-bot")
            assert revoked.returncode == 0, revoked.stderr
            assert "vkcp_" not in revoked.stdout
            # Revocation takes effect on the running server at once.
            assert (await client.post("/graphql", json=query, headers=auth)).status_code == 401
    finally:
        stop(proc)

    listed = vkcp(env, "token", "list").stdout
    ci_line = next(line for line in listed.splitlines() if "ci-bot" in line)
    assert ci_line.rstrip().endswith("UTC")  # the revoked column has its time
    assert vkcp(env, "token", "revoke", "ci-bot").returncode == 1  # no live token by that name now
    unknown = vkcp(env, "token", "revoke", "nobody")
    assert unknown.returncode == 1 and "nobody" in unknown.stderr and "Traceback" not in unknown.stderr


def test_revoking_an_ambiguous_name_asks_for_the_id(env) -> None:
    for role in ("viewer", "admin"):
        assert vkcp(env, "token", "create", "--name", "twin", "--role", role).returncode == 0
    ambiguous = vkcp(env, "token", "revoke", "twin")
    assert ambiguous.returncode == 1 and "by id" in ambiguous.stderr
    assert vkcp(env, "token", "revoke", "2").returncode == 0
    lines = [line for line in vkcp(env, "token", "list").stdout.splitlines() if "twin" in line]
    assert lines[0].rstrip().endswith("-") and lines[1].rstrip().endswith("UTC")  # only id 2 revoked
    # The global id the API and the console show works too (base64 of "ApiToken:1").
    assert vkcp(env, "token", "revoke", "QXBpVG9rZW46MQ==").returncode == 0
    lines = [line for line in vkcp(env, "token", "list").stdout.splitlines() if "twin" in line]
    assert lines[0].rstrip().endswith("UTC")


def test_a_taken_port_is_one_clear_line_before_any_banner(env) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = vkcp({**env, "VKCP_VK_SANDBOX": "1"}, "serve", "--port", str(port))
    assert done.returncode == 1
    assert "graphql" not in done.stdout + done.stderr  # no URL that leads to someone else's server
    [error] = log_events(done.stderr)  # the port is claimed before anything else happens
    assert error["event"] == "serve.cannot_listen" and error["level"] == "error", done.stderr
    assert error["address"] == f"127.0.0.1:{port}" and "--port" in error["detail"]


def test_migrate_writes_json_events_and_no_alembic_lines(env) -> None:
    migrated = vkcp(env, "migrate")
    assert migrated.returncode == 0, migrated.stderr
    assert "INFO  [alembic" not in migrated.stdout + migrated.stderr
    events = log_events(migrated.stdout + migrated.stderr)  # every line one JSON object
    assert [e["event"] for e in events] == ["database.migrated", "database.up_to_date"], events
    assert events[0]["applied"][0] == "0001" and events[0]["revision"] == events[0]["applied"][-1]
    again = vkcp(env, "migrate")  # nothing left to apply
    assert [e["event"] for e in log_events(again.stdout + again.stderr)] == ["database.up_to_date"]


def test_token_commands_print_for_people_and_scripts_and_log_nothing_else(env) -> None:
    created = vkcp(env, "token", "create", "--name", "ci", "--role", "viewer")  # migrates SQLite first
    assert created.returncode == 0, created.stderr
    assert re.fullmatch(r"vkcp_[\w\-]+\n", created.stdout)  # the token alone: `$(vkcp token create ...)`
    assert [e["event"] for e in log_events(created.stderr)] == ["database.migrated"]
    listed = vkcp(env, "token", "list")
    assert listed.stdout.split()[:3] == ["ID", "NAME", "ROLE"] and listed.stderr == ""


PARSE = "mutation($g: ID!) { startParse(input: {groupIds: [$g], maxPosts: 2}) { tasks { id } errors { code } } }"
TASK = "query($id: ID!) { task(id: $id) { state } }"


def _samples(text: str) -> dict[str, list]:
    from prometheus_client.parser import text_string_to_metric_families

    found: dict[str, list] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append(sample)
    return found


def _value(found: dict[str, list], name: str, **labels: str) -> float | None:
    return next((s.value for s in found.get(name, []) if all(s.labels.get(k) == v for k, v in labels.items())), None)


async def test_a_session_logs_json_lines_only_and_metrics_show_it(env, tmp_path: Path) -> None:
    """start, requests, a parse, WebSocket connects (one refused, one subscribing), stop: every
    line on stderr is one JSON object; /metrics shows the subscription and the task's run time."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed, InvalidStatus

    port = free_port()
    out, err = tmp_path / "stdout.log", tmp_path / "stderr.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "entrypoints.cli", "serve", "--port", str(port)], cwd=ROOT,
        env={**env, "VKCP_VK_SANDBOX": "1"}, stdout=out.open("wb"), stderr=err.open("wb"), start_new_session=True,
    )
    base = f"127.0.0.1:{port}"
    try:
        await wait_http(f"http://{base}/healthz", proc, err)
        admin = first_admin_token(tmp_path / "data")
        auth = {"Authorization": f"Bearer {admin}"}
        async with httpx.AsyncClient(base_url=f"http://{base}", timeout=30, headers=auth) as client:
            async def gql(query: str, **variables) -> dict:
                body = (await client.post("/graphql", json={"query": query, "variables": variables})).json()
                assert "errors" not in body, body
                return body["data"]

            assert (await client.post("/graphql", json={"query": "{ groups { totalCount } }"},
                                      headers={"Authorization": "Bearer wrong"})).status_code == 401

            refused = await connect(f"ws://{base}/graphql", subprotocols=["graphql-transport-ws"])
            await refused.send(json.dumps({"type": "connection_init", "payload": {"Authorization": "Bearer wrong"}}))
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(refused.recv(), 20)
            with pytest.raises(InvalidStatus):  # a page on another origin may not connect
                await connect(f"ws://{base}/graphql", subprotocols=["graphql-transport-ws"],
                              origin="http://evil.example")

            async with connect(f"ws://{base}/graphql", subprotocols=["graphql-transport-ws"]) as ws:
                await ws.send(json.dumps({"type": "connection_init", "payload": auth}))
                assert json.loads(await asyncio.wait_for(ws.recv(), 20))["type"] == "connection_ack"
                await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {
                    "query": "subscription Watch { taskEvents { id state } }"}}))
                group = (await gql('mutation { addGroup(ref: "koshki_spb") { group { id } } }'))["addGroup"]["group"]
                task_id = (await gql(PARSE, g=group["id"]))["startParse"]["tasks"][0]["id"]
                for _ in range(300):
                    if (await gql(TASK, id=task_id))["task"]["state"] == "SUCCEEDED":
                        break
                    await asyncio.sleep(0.2)
                await asyncio.sleep(0.5)  # the metrics listener hears the finish on the event stream
                found = _samples((await client.get("/metrics")).text)
                assert _value(found, "vkcp_graphql_subscriptions_active", field="taskEvents") == 1
                assert _value(found, "vkcp_websocket_connections_open") == 1

            found = _samples(text := (await client.get("/metrics")).text)
            assert _value(found, "vkcp_task_duration_seconds_count", kind="PARSE", state="SUCCEEDED") == 1
            assert _value(found, "vkcp_tasks", kind="EXPORT", state="CANCELLED") == 0  # zeros are series too
            assert len(found["vkcp_tasks"]) == len(TaskKind) * len(TaskState)  # every kind in every state
            assert _value(found, "process_cpu_seconds_total") > 0
            assert "_created" not in text
            for _ in range(50):  # the socket's close reaches the server
                if _value(found, "vkcp_websocket_connections_open") == 0:
                    break
                await asyncio.sleep(0.1)
                found = _samples((await client.get("/metrics")).text)
            assert _value(found, "vkcp_websocket_connections_open") == 0
            assert _value(found, "vkcp_graphql_subscriptions_active", field="taskEvents") == 0
    finally:
        stop(proc)

    events = log_events(err.read_text())
    assert len(events) > 10 and log_events(out.read_text()) == []  # the banner is events on stderr too
    loggers = {e.get("logger") for e in events}
    assert any(str(n).startswith("uvicorn") for n in loggers), loggers
    assert not any(str(n).startswith("alembic") for n in loggers), loggers  # our own event says it
    named = {e["event"]: e for e in events}
    assert named["database.migrated"]["applied"][0] == "0001"
    assert named["serve.starting"]["graphiql"] == f"http://{base}/graphql"
    for event in ("auth.failed", "websocket.connected", "subscription.started", "subscription.ended"):
        assert named.get(event, {}).get("request_id"), (event, named.get(event))
    assert {e["transport"] for e in events if e["event"] == "auth.failed"} == {"http", "websocket"}
    assert named["subscription.started"]["field"] == "taskEvents"
    rejected = named["websocket.origin_rejected"]
    assert "VKCP_CORS_ORIGINS" in rejected["detail"] and "allowed_origins" not in err.read_text()
    assert admin not in err.read_text()


async def test_worker_check_tells_whether_this_hosts_worker_is_alive(env, tmp_path: Path) -> None:
    from tests.conftest import _redis_problem, require_service

    require_service("Redis", await _redis_problem())
    env = {**env, "VKCP_REDIS_URL": "redis://127.0.0.1:6379/9", "VKCP_REDIS_PREFIX": f"vkcp-check-{os.getpid()}-{free_port()}:"}
    assert vkcp(env, "migrate").returncode == 0
    assert vkcp(env, "worker", "--check").returncode == 1  # no worker has run here
    log = tmp_path / "worker.log"
    worker = spawn(["-m", "entrypoints.cli", "worker"], env, log)
    try:
        for _ in range(120):
            if vkcp(env, "worker", "--check").returncode == 0:
                break
            assert worker.poll() is None, log.read_text()
            await asyncio.sleep(0.5)
        else:
            raise AssertionError(f"the worker never reported itself alive:\n{log.read_text()[-3000:]}")
    finally:
        stop(worker)


def test_secrets_can_come_from_files(env, tmp_path: Path) -> None:
    """VKCP_<SETTING>_FILE, as Docker and Kubernetes mount secrets."""
    from infrastructure.settings import Settings, SettingsFileError

    database = tmp_path / "database_url"
    database.write_text(f"sqlite+aiosqlite:///{tmp_path / 'from-file.sqlite3'}\n")
    tokens = tmp_path / "vk_tokens"
    tokens.write_text("vk1.a.first\nvk1.a.second\n")
    files = {"VKCP_DATABASE_URL_FILE": str(database), "VKCP_VK_TOKENS_FILE": str(tokens)}
    with pytest.MonkeyPatch.context() as patch:
        for name, value in files.items():
            patch.setenv(name, value)
        patch.delenv("VKCP_DATABASE_URL", raising=False)
        patch.delenv("VKCP_VK_TOKENS", raising=False)
        settings = Settings(_env_file=None)
        assert settings.database_url == f"sqlite+aiosqlite:///{tmp_path / 'from-file.sqlite3'}"
        assert [t.get_secret_value() for t in settings.vk_tokens] == ["vk1.a.first", "vk1.a.second"]
        patch.setenv("VKCP_VK_TOKENS", "vk1.a.inline")
        with pytest.raises(SettingsFileError, match="both set"):
            Settings(_env_file=None)

    # The real command uses it: a token created through the file-named database lands there.
    created = vkcp({**env, **files}, "token", "create", "--name", "from-file", "--role", "viewer")
    assert created.returncode == 0, created.stderr
    assert (tmp_path / "from-file.sqlite3").exists()
    missing = vkcp({**env, "VKCP_DATABASE_URL_FILE": str(tmp_path / "absent")}, "token", "list")
    assert missing.returncode == 2 and "VKCP_DATABASE_URL_FILE" in missing.stderr and "Traceback" not in missing.stderr


async def test_a_first_admin_token_that_cannot_be_saved_is_revoked(tmp_path: Path) -> None:
    """Without a terminal the token is only ever in its file: if that cannot be written, nobody
    could read the token, so it must not stay valid."""
    import structlog

    from entrypoints.cli import _first_token
    from tests.e2e.graphql_support import make_settings, start_container

    container = await start_container(make_settings(tmp_path / "data"))
    (tmp_path / "a-file").write_text("")
    try:
        with structlog.testing.capture_logs() as logs:
            await _first_token(container, tmp_path / "a-file" / "first-admin-token")  # not a directory
        async with container.adapters.uow_factory() as uow:
            [token] = await uow.api_tokens.list()
    finally:
        await container.aclose()
    assert token.name == "first-admin" and token.revoked_at is not None
    assert [e["event"] for e in logs] == ["auth.first_admin_token_not_saved"]
    assert "vkcp token create" in logs[0]["detail"]
