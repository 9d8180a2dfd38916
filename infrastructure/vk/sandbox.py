"""The sandbox: the real VK adapter talking to the emulated sandbox world, in-process.

Demos and first runs need no token and no network, yet exercise the same batching,
parsing and error handling as production: only the transport differs.
"""

from __future__ import annotations

import httpx

from infrastructure.vk.emulator import VkEmulator
from infrastructure.vk.gateway import HttpVkGateway
from infrastructure.vk.world import sandbox_world

SANDBOX_TOKEN = "sandbox"
SANDBOX_URL = "http://vk-sandbox/method"
SANDBOX_RPS = 50.0  # generous, so a demo collection takes seconds


def sandbox_gateway(*, rps: float = SANDBOX_RPS) -> HttpVkGateway:
    app = VkEmulator(sandbox_world(), rps=rps, tokens=[SANDBOX_TOKEN])
    return HttpVkGateway(SANDBOX_URL, [SANDBOX_TOKEN], rps=rps, transport=httpx.ASGITransport(app=app))
