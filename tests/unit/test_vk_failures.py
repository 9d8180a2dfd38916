"""What the gateway does when VK fails: retry, split, retire tokens, map errors, hide tokens."""

from __future__ import annotations

import asyncio

import httpx
import orjson
import pytest

from domain.errors import (
    VkAccessDenied,
    VkAuthFailed,
    VkCommentsClosed,
    VkNotFound,
    VkRateLimited,
    VkUnavailable,
)
from domain.vk import TokenStatus
from infrastructure.vk.emulator import VkEmulator
from infrastructure.vk.gateway import HttpVkGateway, token_fingerprint
from infrastructure.vk.world import sandbox_world

WORLD = sandbox_world()
SECRET = "vk1.a.super-secret-token-value"


class Scripted:
    """Answers the next requests from a script, then lets the emulator answer."""

    def __init__(self, app, script: list) -> None:
        self.app = app
        self.script = list(script)
        self.seen = 0

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and self.script:
            self.seen += 1
            step = self.script.pop(0)
            if step == "drop":
                raise ConnectionResetError("connection reset by peer")
            status, body = (502, b"bad gateway") if step == 502 else (200, orjson.dumps(step))
            await send({"type": "http.response.start", "status": status, "headers": []})
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)


def vk_error(code: int, msg: str = "boom") -> dict:
    return {"error": {"error_code": code, "error_msg": msg, "request_params": []}}


def gateway(app, tokens=(SECRET,), **options) -> HttpVkGateway:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    options.setdefault("backoff_factor", 0.001)
    return HttpVkGateway("http://vk/method", list(tokens), rps=1000, transport=transport, **options)


async def test_transient_request_failures_are_retried():
    app = Scripted(VkEmulator(WORLD), [502, "drop", vk_error(10), vk_error(6), vk_error(1)])
    vk = gateway(app)
    assert await vk.resolve_screen_name("koshki_spb") == ("page", 11001)
    await vk.aclose()
    assert vk.stats.retries == 5 and vk.stats.requests == 6


async def test_gives_up_after_max_retries():
    app = Scripted(VkEmulator(WORLD), [502] * 3)
    vk = gateway(app, max_retries=3)
    with pytest.raises(VkUnavailable):
        await vk.resolve_screen_name("koshki_spb")
    await vk.aclose()
    assert app.seen == 3


async def test_a_failed_inner_call_is_retried_alone():
    first = {"response": [False, {"object_id": 11002, "type": "page"}],
             "execute_errors": [{"method": "utils.resolveScreenName", "error_code": 10, "error_msg": "Internal"}]}
    app = Scripted(VkEmulator(WORLD), [first])
    vk = gateway(app)
    results = await asyncio.gather(vk.resolve_screen_name("koshki_spb"), vk.resolve_screen_name("zarechye_news"))
    await vk.aclose()
    assert results == [("page", 11001), ("page", 11002)]
    assert vk.stats.requests == 2


async def test_vk_errors_become_domain_errors_with_vk_reason():
    owner, closed_post = -11002, WORLD.closed_comment_posts(-11002)[0]
    vk = gateway(VkEmulator(WORLD))
    results = await asyncio.gather(
        vk.wall_page(-11005, 0), vk.comments_page(owner, closed_post, 0), vk.get_groups([987654321]),
        vk.resolve_screen_name("no_such_name"), return_exceptions=True,
    )
    await vk.aclose()
    denied, closed, missing, unknown = results
    assert isinstance(denied, VkAccessDenied) and "available only for community members" in denied.message
    assert denied.vk_code == 15
    assert isinstance(closed, VkCommentsClosed) and closed.vk_code == 212
    assert isinstance(missing, VkNotFound) and missing.vk_code == 100
    assert unknown is None
    assert vk.stats.requests == 1  # all four in one execute


async def test_a_revoked_token_leaves_the_pool_and_others_carry_on():
    app = VkEmulator(WORLD, tokens=["good"])
    vk = gateway(app, tokens=["expired", "good"])
    results = await asyncio.gather(*(vk.resolve_screen_name("koshki_spb") for _ in range(60)))
    states = {s.fingerprint: s for s in await vk.token_states()}
    await vk.aclose()
    assert set(results) == {("page", 11001)}
    assert states[token_fingerprint("expired")].status is TokenStatus.REVOKED
    assert "authorization failed" in states[token_fingerprint("expired")].reason
    assert states[token_fingerprint("good")].status is TokenStatus.ACTIVE


async def test_no_usable_token_fails_fast_with_auth_error():
    vk = gateway(VkEmulator(WORLD, tokens=["good"]), tokens=[SECRET])
    with pytest.raises(VkAuthFailed) as first:
        await vk.resolve_screen_name("koshki_spb")
    with pytest.raises(VkAuthFailed):
        await vk.resolve_screen_name("koshki_spb")  # no request any more: the pool is empty
    await vk.aclose()
    assert vk.stats.requests == 1
    assert SECRET not in str(first.value) and SECRET not in repr(vk)


@pytest.mark.parametrize(("code", "reason"), [(29, "Rate limit"), (14, "Captcha"), (17, "Validation")])
async def test_quota_and_captcha_park_the_token(code, reason):
    app = VkEmulator(WORLD, token_errors={"tired": code})
    vk = gateway(app, tokens=["tired"])
    with pytest.raises(VkRateLimited) as error:
        await vk.resolve_screen_name("koshki_spb")
    [state] = await vk.token_states()
    await vk.aclose()
    assert state.status is TokenStatus.PARKED and state.until is not None
    assert reason in state.reason and "parked" in error.value.message


async def test_parked_token_hands_its_calls_to_the_others():
    app = VkEmulator(WORLD, token_errors={"tired": 29})
    vk = gateway(app, tokens=["tired", "fresh"])
    results = await asyncio.gather(*(vk.resolve_screen_name("koshki_spb") for _ in range(40)))
    await vk.aclose()
    assert set(results) == {("page", 11001)}


class _Refused(httpx.AsyncBaseTransport):
    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        # Some libraries put the whole request in their message: make sure we scrub it.
        raise httpx.ConnectError(f"cannot connect for {request.content.decode()}", request=request)


async def test_network_errors_never_reveal_the_token():
    vk = HttpVkGateway("http://vk/method", [SECRET], rps=1000, transport=_Refused(), max_retries=2,
                       backoff_factor=0.001)
    with pytest.raises(VkUnavailable) as error:
        await vk.wall_page(-11001, 0)
    await vk.aclose()
    assert SECRET not in str(error.value) and "<token" in str(error.value)
