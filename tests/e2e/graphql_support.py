"""Shared pieces of the GraphQL e2e tests: a real container over a fresh SQLite database, an
HTTP client bound to the app, tokens of each role, and a ``gql`` helper.

Test modules import the fixtures they use from here (``from tests.e2e.graphql_support import ...``).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from bootstrap import Container, build_container
from domain.auth import create_api_token
from entrypoints.cli import server_config
from graphql_api.app import create_app
from infrastructure.db.migrate import upgrade_async
from infrastructure.settings import Settings


def make_settings(data_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"data_dir": data_dir, "vk_sandbox": True, "auth": True, "redis_url": None}
    values.update(overrides)
    return Settings(_env_file=None, **values)


async def start_container(settings: Settings) -> Container:
    await upgrade_async(settings.effective_database_url)
    return await build_container(settings)


@pytest.fixture
async def container(tmp_path: Path) -> AsyncIterator[Container]:
    c = await start_container(make_settings(tmp_path))
    try:
        yield c
    finally:
        await c.aclose()


@pytest.fixture
async def tokens(container: Container) -> dict[str, str]:
    """A plain token per role."""
    made = {}
    for role in ("viewer", "operator", "admin"):
        made[role], _ = await create_api_token(container.adapters.uow_factory, f"{role} token", role)
    return made


@pytest.fixture
async def client(container: Container) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(container))
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as c:
        yield c


class Api:
    """Posts GraphQL documents with a role's token and returns the decoded body."""

    def __init__(self, client: httpx.AsyncClient, tokens: dict[str, str]) -> None:
        self.client = client
        self.tokens = tokens

    async def post(self, query: str, variables: dict | None = None, *, role: str | None = "operator") -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.tokens[role]}"} if role else {}
        return await self.client.post("/graphql", json={"query": query, "variables": variables or {}}, headers=headers)

    async def __call__(self, query: str, variables: dict | None = None, *, role: str = "operator") -> dict:
        response = await self.post(query, variables, role=role)
        assert response.status_code == 200, response.text
        body = response.json()
        assert "errors" not in body, body["errors"]
        return body["data"]


@contextlib.asynccontextmanager
async def serve_app(container: Container) -> AsyncIterator[str]:
    """The app served by uvicorn on a free port (for WebSocket clients); yields host:port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    host, port = sock.getsockname()
    config = server_config(create_app(container), container.settings, lifespan="off", log_level="warning")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield f"{host}:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()


@pytest.fixture
async def server(container: Container) -> AsyncIterator[str]:
    async with serve_app(container) as base:
        yield base


@pytest.fixture
def api(client: httpx.AsyncClient, tokens: dict[str, str]) -> Api:
    return Api(client, tokens)


async def wait_for_task(api: Api, task_id: str, timeout: float = 30.0) -> dict:
    """Poll ``task(id)`` until it reaches a final state."""
    query = "query($id: ID!) { task(id: $id) { id state error result progress { done total } } }"
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        task = (await api(query, {"id": task_id}, role="viewer"))["task"]
        if task["state"] in ("SUCCEEDED", "FAILED", "CANCELLED"):
            return task
        assert asyncio.get_running_loop().time() < deadline, f"task {task_id} still {task['state']}"
        await asyncio.sleep(0.05)
