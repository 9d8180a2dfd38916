"""Operators see the VK token pool as it is, whichever process found out: a token VK rejects in
a worker shows REVOKED in the API's ``vkTokens`` and ``/readyz``, though the API never used it.

The API and the worker are two containers built as ``vkcp serve`` and ``vkcp worker`` build
theirs, sharing one Redis; VK is the emulator running as its own HTTP server, accepting only
another token.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bootstrap import build_container
from domain.auth import create_api_token
from domain.errors import VkAuthFailed
from graphql_api.app import create_app
from infrastructure.vk.gateway import token_fingerprint
from tests.e2e.graphql_support import make_settings, start_container
from tests.processes import ROOT, free_port, spawn, stop, wait_http

REJECTED = "vk1.a.a-token-vk-no-longer-accepts"


@pytest.fixture
def vk_url(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    log = tmp_path / "emulator.log"
    proc = spawn(["-m", "infrastructure.vk.emulator", "--port", str(port), "--world", "sandbox",
                  "--token", "vk1.a.the-only-token-vk-accepts"], {**os.environ, "PYTHONPATH": str(ROOT)}, log)
    try:
        asyncio.run(wait_http(f"http://127.0.0.1:{port}/_stats", proc, log))
        yield f"http://127.0.0.1:{port}/method"
    finally:
        stop(proc)


async def test_a_token_revoked_in_a_worker_shows_revoked_in_the_api(tmp_path, vk_url, redis_url, redis_prefix):
    def settings(name: str):
        return make_settings(tmp_path / name, vk_sandbox=False, vk_tokens=REJECTED, vk_api_url=vk_url,
                             redis_url=redis_url, redis_prefix=redis_prefix)

    api = await start_container(settings("api"))
    worker = await build_container(settings("worker"))
    fingerprint = token_fingerprint(REJECTED)
    admin, _ = await create_api_token(api.adapters.uow_factory, "admin", "admin")
    query = "{ vkTokens { fingerprint state parkedUntil reason requests } }"
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(api)), base_url="http://t") as http:
            async def pool() -> list[dict]:
                response = await http.post("/graphql", json={"query": query},
                                           headers={"Authorization": f"Bearer {admin}"})
                return response.json()["data"]["vkTokens"]

            async def ready() -> httpx.Response:
                return await http.get("/readyz", headers={"Authorization": f"Bearer {admin}"})

            assert await pool() == [{"fingerprint": fingerprint, "state": "ACTIVE", "parkedUntil": None,
                                     "reason": None, "requests": 0}]
            assert (await ready()).json()["checks"]["vk"] == "1/1 tokens active"

            with pytest.raises(VkAuthFailed):  # the worker's parse meets VK's error 5
                await worker.adapters.vk.wall_page(-1, 0)

            [token] = await pool()
            assert token["fingerprint"] == fingerprint and token["state"] == "REVOKED"
            assert token["reason"].startswith("VK error 5: User authorization failed")
            assert token["requests"] == 0  # counted where they were sent: the API sent none
            response = await ready()
            # VK trouble shows, but keeps the API (stored comments stay readable) in rotation.
            assert response.status_code == 200
            body = response.json()
            assert body["checks"] == {"database": "ok", "redis": "ok", "vk": "error: no usable token"}
            assert body["vkTokens"] == [{"fingerprint": fingerprint, "state": "REVOKED", "parkedUntil": None}]
            assert REJECTED not in response.text
    finally:
        await worker.aclose()
        await api.aclose()
