"""VK over HTTP: the ``domain.ports.VkGateway`` adapter, built as an auto-batcher.

Every gateway method queues one API call and awaits its future. One dispatcher per token
waits for its next rate-limiter slot and only then takes up to 25 queued calls, so the
``execute`` it sends is as full as the collector's concurrency allows: a token's 3 requests per
second become 75 calls per second. Results are fanned back out to the callers' futures.

Failures, as VK answers them (``docs/vk-api.md``):
- the whole request (network, timeout, HTTP 5xx, errors 1/6/9/10): bounded exponential backoff
  with full jitter (the ``backoff`` library), each retry on a fresh limiter slot; then
  ``VkUnavailable``;
- one inner call of an ``execute`` (``false`` plus ``execute_errors``): transient codes are
  queued again (bounded), token-level codes are the token's problem (below), the rest become
  that call's domain error;
- error 13 (the answer was too big): the batch is split in halves and queued again;
- 5/28/1117: the token is revoked; 29: parked until the quota is back (``quota_park``; VK does
  not say when, so by default until the next 00:00 UTC); 14/17: parked (no one solves a
  captcha). Whether VK says so for the whole request or for inner calls of an ``execute``, the
  affected calls go back to the front of the queue for the other tokens and the batch's other
  calls are answered: nothing fails while a token can work. When every token rests, waiting
  calls fail with ``VkTokensResting`` (the task runner waits); when every one is revoked, with
  ``VkAuthFailed``.

Every call sent is counted per token per UTC day and method (``call_counts.py``; shared through
Redis like the states), and added to the ``domain.budget`` meter of the context that asked for
it, so a parse knows the calls it cost even while other parses share the gateway.

With Redis, the pool's states are shared by every process (``token_pool.py``): a token retired
here is retired everywhere within ``SYNC_INTERVAL``, and ``token_states`` reports what all of
them know. Without Redis (the embedded mode) the states are this process's alone.

Tokens travel only in the POST body: never in a URL, a log line, a repr or an error message.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import re
import time
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import backoff
import httpx
import orjson
import structlog

from domain.budget import vk_calls_meter
from domain.errors import (
    VkAccessDenied,
    VkAuthFailed,
    VkCommentsClosed,
    VkError,
    VkNotFound,
    VkRateLimited,
    VkTokensResting,
    VkUnavailable,
)
from domain.models import Author, Comment, Group, Post
from domain.ports import CommentPage, WallPage
from domain.vk import GatewayStats, TokenState, TokenStatus
from infrastructure.redis_client import REDIS_ERRORS
from infrastructure.vk.call_counts import DailyCallCounts
from infrastructure.vk.limiter import InProcessRateLimiter, RateLimiter
from infrastructure.vk.token_pool import RedisTokenStates, SharedTokenState

log = structlog.get_logger(__name__)

MAX_BATCH = 25  # calls in one execute
THREAD_INLINE = 10
TRANSIENT = frozenset({1, 6, 9, 10})
TOKEN_REVOKED = frozenset({5, 28, 1117})
QUOTA = 29
CAPTCHA = frozenset({14, 17})
TOKEN_LEVEL = TOKEN_REVOKED | CAPTCHA | {QUOTA}
# VK does not say when a daily quota comes back: by default a parked token rests until the next
# 00:00 UTC, and at least this long (a 29 at 23:59 would otherwise be tried again at once).
MIN_QUOTA_PARK = timedelta(hours=1)
ACCESS_DENIED = frozenset({15, 18, 19, 30, 203})
NOT_FOUND = frozenset({100, 104})
COMMENTS_CLOSED = 212
TOO_BIG = 13
SYNC_INTERVAL = 1.0  # seconds between two reads of the shared token states, while calls run
# Seconds without asking Redis again after it failed to answer: during an outage every ask
# costs its reconnect attempts (~0.7 s), and many callers must not pay that one after another.
SYNC_OUTAGE_PAUSE = 1.0


CAPTCHA_CODE_IN_REASON = re.compile(r"VK error (14|17)\b")


def token_fingerprint(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:8]


def quota_rest_until(now: datetime, park: timedelta | None) -> datetime:
    """When a token that met its daily quota is tried again: ``park`` from now when set, else
    the next 00:00 UTC but at least ``MIN_QUOTA_PARK`` away."""
    if park is not None:
        return now + park
    midnight = (now.astimezone(UTC) + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return max(midnight, now + MIN_QUOTA_PARK)


def vk_error(code: int, message: str) -> VkError:
    """The domain error for a VK error code; the message keeps VK's reason for the user."""
    text = f"VK error {code}: {message}"
    if code in ACCESS_DENIED:
        return VkAccessDenied(text, vk_code=code)
    if code == COMMENTS_CLOSED:
        return VkCommentsClosed(text, vk_code=code)
    if code in NOT_FOUND:
        return VkNotFound(text, vk_code=code)
    if code in TOKEN_REVOKED:
        return VkAuthFailed(text, vk_code=code)
    if code == QUOTA or code in CAPTCHA:
        return VkRateLimited(text, vk_code=code)
    if code in TRANSIENT:
        return VkUnavailable(text, vk_code=code)
    return VkError(text, vk_code=code)


# --- tokens ---------------------------------------------------------------------------------


@dataclass(eq=False)
class _Token:
    secret: str = field(repr=False)
    fingerprint: str
    status: TokenStatus = TokenStatus.ACTIVE
    parked_until: float = 0.0  # time.monotonic()
    until: datetime | None = None
    reason: str | None = None
    requests: int = 0  # sent by this process: a counter per process, as metrics want it

    def refresh(self) -> None:
        if self.status is TokenStatus.PARKED and time.monotonic() >= self.parked_until:
            self.status, self.until, self.reason = TokenStatus.ACTIVE, None, None

    def revoke(self, reason: str | None) -> None:
        self.status, self.reason, self.until = TokenStatus.REVOKED, reason, None

    def park(self, until: datetime, reason: str | None) -> None:
        self.status, self.reason, self.until = TokenStatus.PARKED, reason, until
        self.parked_until = time.monotonic() + (until - datetime.now(UTC)).total_seconds()

    def shared_state(self) -> SharedTokenState | None:
        if self.status is TokenStatus.ACTIVE:
            return None
        return SharedTokenState(self.status.value, self.until, self.reason)

    def adopt(self, shared: SharedTokenState | None) -> bool:
        """Take what another process learned when it is worse news than ours; True if it was."""
        if shared is None or self.status is TokenStatus.REVOKED:
            return False
        if shared.status == TokenStatus.REVOKED:
            self.revoke(shared.reason)
            return True
        if shared.until is not None and shared.until > datetime.now(UTC) and (
            self.status is TokenStatus.ACTIVE or (self.until is not None and shared.until > self.until)
        ):
            self.park(shared.until, shared.reason)
            return True
        return False

    def news_for(self, shared: SharedTokenState | None) -> SharedTokenState | None:
        """Our state, if the shared one lacks it (never recorded, or lost by a Redis restart)."""
        mine = self.shared_state()
        if mine is None or (shared is not None and shared.status == TokenStatus.REVOKED):
            return None
        if shared is None or mine.status == TokenStatus.REVOKED:
            return mine
        if mine.until is not None and (shared.until is None or mine.until > shared.until + timedelta(seconds=1)):
            return mine
        return None


# --- calls and their failures ---------------------------------------------------------------


@dataclass(eq=False)
class _Call:
    method: str
    params: dict[str, Any]
    future: asyncio.Future
    attempts: int = 0
    max_batch: int = MAX_BATCH  # lowered when an execute holding it was too big
    meter: Counter[str] | None = None  # the caller's calls meter (``domain.budget``)


@dataclass(frozen=True)
class _Failed:
    """One call's VK error, as found in ``execute_errors`` or a plain call's answer."""

    code: int
    message: str


class _Transient(Exception):
    """The whole request failed in a way worth retrying."""


class _TokenProblem(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class _TooBig(Exception):
    pass


# --- the gateway ----------------------------------------------------------------------------


class HttpVkGateway:
    def __init__(
        self,
        api_url: str,
        tokens: Sequence[str],
        *,
        rps: float = 3.0,
        limiter: RateLimiter | None = None,
        use_execute: bool = True,
        timeout: float = 30.0,
        max_retries: int = 6,
        transport: httpx.AsyncBaseTransport | None = None,
        api_version: str = "5.199",
        max_in_flight: int = 8,
        linger: float = 0.01,
        backoff_factor: float = 0.5,
        backoff_max: float = 30.0,
        quota_park: timedelta | None = None,
        captcha_park: timedelta = timedelta(hours=1),
        shared_states: RedisTokenStates | None = None,
        call_counts: DailyCallCounts | None = None,
        sync_interval: float = SYNC_INTERVAL,
    ) -> None:
        if not tokens:
            raise ValueError("at least one VK token is needed")
        self.api_url = api_url.rstrip("/")
        self.api_version = api_version
        self.use_execute = use_execute
        self.max_retries = max(1, max_retries)
        self.limiter: RateLimiter = limiter or InProcessRateLimiter(rps)
        self.linger = linger
        self.backoff_factor = backoff_factor
        self.backoff_max = backoff_max
        self.quota_park = quota_park  # None: until the next 00:00 UTC (``quota_rest_until``)
        self.captcha_park = captcha_park
        # In memory unless given one over Redis, which is exchanged with the states (so it
        # needs ``shared_states``; ``build_vk`` gives both or neither).
        self.call_counts = call_counts or DailyCallCounts()
        self.max_in_flight = max_in_flight
        self.shared_states = shared_states
        self.sync_interval = sync_interval
        self._shared_reachable = True
        self._shared_retry_at = 0.0  # time.monotonic(): no ask before it, after a failed one
        self._first_sync: asyncio.Future | None = None
        self._sync_lock = asyncio.Lock()
        self.stats = GatewayStats()
        self._tokens = [_Token(t, token_fingerprint(t)) for t in dict.fromkeys(tokens)]
        self._client = httpx.AsyncClient(
            timeout=timeout, transport=transport,
            limits=httpx.Limits(max_connections=max_in_flight * len(self._tokens) + 4),
        )
        self._pending: deque[_Call] = deque()
        self._has_pending = asyncio.Event()
        self._grew = asyncio.Event()
        self._dispatchers: list[asyncio.Task] = []
        self._sending: set[asyncio.Task] = set()
        self._closed = False

    def __repr__(self) -> str:
        return f"HttpVkGateway({self.api_url!r}, tokens={[t.fingerprint for t in self._tokens]})"

    async def token_states(self) -> list[TokenState]:
        """The pool as every process sharing it knows it; with no Redis, or while Redis is
        unreachable, as this process knows it (its own findings and the last ones it read)."""
        if self.shared_states is not None:
            await self.sync_token_states()  # the call counts too
        for token in self._tokens:
            token.refresh()
        return [TokenState(t.fingerprint, t.status, t.requests, t.until, t.reason,
                           dict(self.call_counts.calls_today(t.fingerprint))) for t in self._tokens]

    async def sync_token_states(self) -> None:
        """Exchange states with the other processes: ours where theirs lack them, theirs where
        they are worse news. A Redis outage leaves the local states as they are."""
        if self.shared_states is None:
            return
        async with self._sync_lock:  # one exchange at a time
            for token in self._tokens:
                token.refresh()
            if not self._shared_reachable and time.monotonic() < self._shared_retry_at:
                return
            try:
                found = await self.shared_states.read([t.fingerprint for t in self._tokens])
                for token in self._tokens:
                    news = token.news_for(found[token.fingerprint])
                    if news is not None:
                        await self.shared_states.record(token.fingerprint, news)
                # This process's call totals (an outage's included), and the others'.
                await self.call_counts.flush()
                await self.call_counts.read([t.fingerprint for t in self._tokens])
            except REDIS_ERRORS as e:
                if self._shared_reachable:
                    log.warning("vk.token_states_unavailable", error=type(e).__name__)
                self._shared_reachable = False
                self._shared_retry_at = time.monotonic() + SYNC_OUTAGE_PAUSE
                return
            if not self._shared_reachable:
                log.info("vk.token_states_available")
            self._shared_reachable = True
            self._adopt(found)

    def _adopt(self, found: dict[str, SharedTokenState | None]) -> None:
        changed = False
        for token in self._tokens:
            if token.adopt(found[token.fingerprint]):
                changed = True
                log.warning("vk.token_retired_elsewhere", token=token.fingerprint, status=token.status.value,
                            reason=token.reason)
        if changed and self._dispatchers:
            self._raise_if_no_token(fail_pending=True)

    async def _watch_shared_states(self) -> None:
        while not self._closed:
            try:
                await self.sync_token_states()
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug here must not stop the sync for good
                log.exception("vk.token_sync_crashed")
            await asyncio.sleep(self.sync_interval)

    async def aclose(self) -> None:
        if self._dispatchers and self.shared_states is not None and not self._closed:
            # The last findings, for the processes that go on.
            with contextlib.suppress(TimeoutError, *REDIS_ERRORS):
                await asyncio.wait_for(self.sync_token_states(), 2)
        self._closed = True
        if self._first_sync is not None:
            self._first_sync.cancel()
        for task in [*self._dispatchers, *self._sending]:
            task.cancel()
        await asyncio.gather(*self._dispatchers, *self._sending, return_exceptions=True)
        self._dispatchers.clear()
        self._fail_pending(VkUnavailable("the VK gateway was closed"))
        await self._client.aclose()

    # --- VkGateway ---------------------------------------------------------------------------

    async def resolve_screen_name(self, screen_name: str) -> tuple[str, int] | None:
        found = await self.call("utils.resolveScreenName", {"screen_name": screen_name})
        if not found:
            return None  # VK answers [] for a name it does not know
        return found["type"], int(found["object_id"])

    async def get_groups(self, group_ids: Sequence[int]) -> list[Group]:
        if not group_ids:
            return []
        answer = await self.call("groups.getById", {
            "group_ids": ",".join(str(abs(int(i))) for i in group_ids),
            "fields": "members_count,description,photo_100",
        })
        items = answer["groups"] if isinstance(answer, dict) else answer  # 5.199 / older shapes
        return [_group(g) for g in items]

    async def wall_page(self, owner_id: int, offset: int, count: int = 100) -> WallPage:
        answer = await self.call("wall.get", {"owner_id": owner_id, "offset": offset, "count": count, "extended": 1})
        return WallPage(total=answer["count"], posts=[_post(p) for p in answer["items"]], authors=_authors(answer))

    async def comments_page(
        self, owner_id: int, post_id: int, offset: int, count: int = 100, *, start_comment_id: int | None = None
    ) -> CommentPage:
        params = {"owner_id": owner_id, "post_id": post_id, "offset": offset, "count": count, "sort": "asc",
                  "thread_items_count": THREAD_INLINE, "need_likes": 1, "extended": 1, "preview_length": 0}
        if start_comment_id is not None:
            params["start_comment_id"] = start_comment_id
        answer = await self.call("wall.getComments", params)
        comments: list[Comment] = []
        threads: dict[int, tuple[int, int]] = {}
        for item in answer["items"]:
            comments.append(_comment(item, owner_id, post_id, thread_root=None))
            thread = item.get("thread") or {}
            inline = thread.get("items") or []
            comments += [_comment(reply, owner_id, post_id, thread_root=item["id"]) for reply in inline]
            if thread.get("count"):
                threads[item["id"]] = (thread["count"], len(inline))
        return CommentPage(total=answer["count"], level_count=answer.get("current_level_count", answer["count"]),
                           comments=comments, threads=threads, authors=_authors(answer))

    async def thread_page(
        self, owner_id: int, post_id: int, comment_id: int, offset: int, count: int = 100,
        *, start_comment_id: int | None = None,
    ) -> CommentPage:
        params = {"owner_id": owner_id, "post_id": post_id, "comment_id": comment_id, "offset": offset,
                  "count": count, "sort": "asc", "need_likes": 1, "extended": 1, "preview_length": 0}
        if start_comment_id is not None:
            params["start_comment_id"] = start_comment_id
        answer = await self.call("wall.getComments", params)
        comments = [_comment(item, owner_id, post_id, thread_root=comment_id) for item in answer["items"]]
        return CommentPage(total=answer["count"], level_count=answer.get("current_level_count", answer["count"]),
                           comments=comments, authors=_authors(answer))

    async def get_users(self, user_ids: Sequence[int]) -> list[Author]:
        if not user_ids:
            return []
        params = {"user_ids": ",".join(map(str, user_ids)), "fields": "screen_name,photo_100"}
        users = await self.call("users.get", params)
        return [_user(u) for u in users]

    # --- the batcher -------------------------------------------------------------------------

    async def call(self, method: str, params: dict[str, Any]) -> Any:
        """One VK API call, sent in whichever request has room for it; returns ``response``."""
        if self._closed:
            raise VkUnavailable("the VK gateway was closed")
        if self.shared_states is not None and not self._dispatchers:
            # The first calls: what the other processes know first, read once for all of them.
            if self._first_sync is None:
                self._first_sync = asyncio.ensure_future(self.sync_token_states())
            await asyncio.shield(self._first_sync)
        self._raise_if_no_token()
        self._start_dispatchers()
        call = _Call(method, params, asyncio.get_running_loop().create_future(), meter=vk_calls_meter())
        self._queue([call])
        return await call.future

    def _queue(self, calls: list[_Call], *, front: bool = False) -> None:
        if front:
            self._pending.extendleft(reversed(calls))
        else:
            self._pending.extend(calls)
        self._has_pending.set()
        self._grew.set()

    def _start_dispatchers(self) -> None:
        """One supervised dispatcher per token, started on the first call (``_supervise``
        restarts one that crashed; a revoked token's ends for good)."""
        if not self._dispatchers:
            self._dispatchers = [asyncio.create_task(self._supervise(t)) for t in self._tokens]
            if self.shared_states is not None:
                self._dispatchers.append(asyncio.create_task(self._watch_shared_states()))

    async def _supervise(self, token: _Token) -> None:
        """The dispatcher, restarted after anything it did not expect: a dispatcher that died
        would leave every later call of its token waiting forever."""
        failures = 0
        while not self._closed:
            try:
                await self._dispatch(token)
                return  # the token was revoked
            except asyncio.CancelledError:
                raise
            except Exception:
                failures += 1
                log.exception("vk.dispatcher_crashed", token=token.fingerprint, restarts=failures)
                await asyncio.sleep(min(5.0, 0.1 * 2**failures))

    async def _dispatch(self, token: _Token) -> None:
        # httpx loads its async backend on the first request (~40 ms): load it now, or the
        # first request leaves late and lands too close to the ones after it.
        await anyio.sleep(0)
        in_flight = asyncio.Semaphore(self.max_in_flight)
        while token.status is not TokenStatus.REVOKED:
            if token.status is TokenStatus.PARKED:
                await asyncio.sleep(max(0.0, token.parked_until - time.monotonic()))
                token.refresh()
                continue
            await self._has_pending.wait()
            await in_flight.acquire()
            # The slot first, the calls second: whatever queued while we waited rides along.
            try:
                waited = await self.limiter.acquire(token.fingerprint)
            except BaseException:
                in_flight.release()
                raise
            self.stats.limiter_wait += waited
            if waited < self.linger:
                await self._linger()
            batch = self._take() if token.status is TokenStatus.ACTIVE else []
            if not batch:
                in_flight.release()
                continue
            task = asyncio.create_task(self._send(token, batch))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)
            task.add_done_callback(lambda _: in_flight.release())

    async def _linger(self) -> None:
        """A few milliseconds for callers woken by the last answer to queue their next pages."""
        deadline = time.monotonic() + self.linger
        while len(self._pending) < MAX_BATCH and (left := deadline - time.monotonic()) > 0:
            self._grew.clear()
            try:
                await asyncio.wait_for(self._grew.wait(), left)
            except TimeoutError:
                break

    def _take(self) -> list[_Call]:
        limit = MAX_BATCH if self.use_execute else 1
        batch: list[_Call] = []
        while self._pending and len(batch) < limit:
            call = self._pending[0]
            if call.future.done():  # its caller gave up (cancelled)
                self._pending.popleft()
                continue
            if batch and len(batch) >= call.max_batch:
                break
            limit = min(limit, call.max_batch)
            batch.append(self._pending.popleft())
        if not self._pending:
            self._has_pending.clear()
        return batch

    async def _send(self, token: _Token, batch: list[_Call]) -> None:
        attempt = 0

        async def post_once() -> list[Any]:
            nonlocal attempt
            attempt += 1
            if attempt > 1:  # a retry is a request like any other: it needs its own slot
                self.stats.retries += 1
                self.stats.limiter_wait += await self.limiter.acquire(token.fingerprint)
            return await self._post(token, batch)

        post = backoff.on_exception(
            backoff.expo, _Transient, max_tries=self.max_retries, jitter=backoff.full_jitter,
            factor=self.backoff_factor, max_value=self.backoff_max, logger=None,
        )(post_once)
        try:
            outcomes = await post()
        except _Transient as e:
            log.warning("vk.request_failed", token=token.fingerprint, attempts=attempt, reason=str(e))
            self._settle(batch, VkUnavailable(f"VK did not answer after {attempt} attempts: {e}"))
        except _TooBig:
            self.stats.splits += 1
            half = max(1, len(batch) // 2)
            for call in batch:
                call.max_batch = min(call.max_batch, half)
            self._queue(batch, front=True)
        except _TokenProblem as e:
            await self._hand_over(token, e.code, e.message, batch)
        except asyncio.CancelledError:
            self._settle(batch, VkUnavailable("the VK gateway was closed"))
            raise
        except Exception as e:  # a bug here must not leave callers waiting forever
            log.exception("vk.batch_crashed", token=token.fingerprint)
            self._settle(batch, VkUnavailable(f"internal error in the VK gateway ({type(e).__name__})"))
        else:
            problem, affected = self._deliver(batch, outcomes)
            if problem is not None:
                await self._hand_over(token, problem.code, problem.message, affected)

    async def _hand_over(self, token: _Token, code: int, message: str, calls: list[_Call]) -> None:
        """The token cannot work (quota, captcha, rejected): retire it and give its calls to the
        other tokens, first in line; when none is left, every waiting call learns why."""
        self._retire(token, code, message)
        self._uncount(token, calls)  # VK refused them: they cost the token nothing, and go again
        self._queue(calls, front=True)  # the other tokens carry on meanwhile
        if self.shared_states is not None:  # the other processes learn it before our callers do
            await self.sync_token_states()
        self._raise_if_no_token(fail_pending=True)

    def _uncount(self, token: _Token, calls: list[_Call]) -> None:
        self.call_counts.add(token.fingerprint, (c.method for c in calls), -1)
        for call in calls:
            if call.meter is not None:
                call.meter[call.method] -= 1

    def _deliver(self, batch: list[_Call], outcomes: list[Any]) -> tuple[_Failed | None, list[_Call]]:
        """Answer each call; returns the worst token-level error among them (revoked before
        parked) and the calls it hit, which are the token's problem, not theirs."""
        again: list[_Call] = []
        problem: _Failed | None = None
        affected: list[_Call] = []
        for call, outcome in zip(batch, outcomes, strict=True):
            if call.future.done():
                continue
            if not isinstance(outcome, _Failed):
                call.future.set_result(outcome)
                continue
            self.stats.errors[outcome.code] += 1
            if outcome.code in TOKEN_LEVEL:
                affected.append(call)
                if problem is None or (outcome.code in TOKEN_REVOKED and problem.code not in TOKEN_REVOKED):
                    problem = _Failed(outcome.code, f"{outcome.message} (in execute, {call.method})")
                continue
            call.attempts += 1
            if outcome.code in TRANSIENT and call.attempts < self.max_retries:
                again.append(call)
            else:
                call.future.set_exception(vk_error(outcome.code, outcome.message))
        if again:
            self._queue(again, front=True)
        return problem, affected

    def _settle(self, batch: list[_Call], error: VkError) -> None:
        for call in batch:
            if not call.future.done():
                call.future.set_exception(error)

    async def _post(self, token: _Token, batch: list[_Call]) -> list[Any]:
        """One HTTP request for the batch: a plain call or an execute. Returns one outcome
        (``response`` value or ``_Failed``) per call; raises for whole-request failures."""
        plain = len(batch) == 1
        if plain:
            method, data = batch[0].method, dict(batch[0].params)
        else:
            method, data = "execute", {"code": execute_code((c.method, c.params) for c in batch)}
        data["v"] = self.api_version
        data["access_token"] = token.secret
        token.requests += 1
        self.stats.requests += 1
        self.stats.calls += len(batch)
        # Counted as sent (VK counts a call it ran whatever became of its answer), less those
        # VK says it did not run: refused for the token's sake, or the request refused as a
        # whole (``_uncount``). A request lost in transport stays counted: VK may have run it.
        self.call_counts.add(token.fingerprint, (c.method for c in batch))
        for call in batch:
            if call.meter is not None:
                call.meter[call.method] += 1
        try:
            response = await self._client.post(f"{self.api_url}/{method}", data=data)
        except httpx.HTTPError as e:
            self.stats.network_errors += 1
            raise _Transient(self._scrub(f"{type(e).__name__}: {e}")) from None
        if response.status_code != 200:
            self.stats.network_errors += 1
            raise _Transient(f"HTTP {response.status_code}")
        try:
            body = orjson.loads(response.content)  # the stdlib decoder was a tenth of a parse's CPU
        except ValueError:
            self.stats.network_errors += 1
            raise _Transient("VK answered with broken JSON") from None
        if "error" in body:
            if int(body["error"].get("error_code", 0)) in TRANSIENT:
                self._uncount(token, batch)  # refused as a whole (too many per second, flood...): none ran
            return self._request_error(body["error"], plain, len(batch))
        if plain:
            return [body["response"]]
        return _unpack_execute(body, len(batch))

    def _request_error(self, error: dict[str, Any], plain: bool, size: int) -> list[Any]:
        code, message = int(error.get("error_code", 0)), str(error.get("error_msg", ""))
        if code in TRANSIENT:
            self.stats.errors[code] += 1
            raise _Transient(f"VK error {code}: {message}")
        if code == TOO_BIG and not plain:
            self.stats.errors[code] += 1
            raise _TooBig(message)
        if code in TOKEN_REVOKED or code == QUOTA or code in CAPTCHA:
            self.stats.errors[code] += 1
            raise _TokenProblem(code, message)
        # Anything else concerns the call(s) themselves (access denied, not found, ...).
        return [_Failed(code, message)] * size

    def _retire(self, token: _Token, code: int, message: str) -> None:
        reason = f"VK error {code}: {message}"
        if token.status is TokenStatus.REVOKED:
            return  # a late answer of a batch in flight: rejected stays rejected
        if code in TOKEN_REVOKED:
            token.revoke(reason)
        else:
            now = datetime.now(UTC)
            token.park(quota_rest_until(now, self.quota_park) if code == QUOTA else now + self.captcha_park, reason)
        log.warning("vk.token_retired", token=token.fingerprint, status=token.status.value, reason=reason)

    def _raise_if_no_token(self, *, fail_pending: bool = False) -> None:
        for token in self._tokens:
            token.refresh()
        if any(t.status is TokenStatus.ACTIVE for t in self._tokens):
            return
        parked = [t for t in self._tokens if t.status is TokenStatus.PARKED]
        if parked:
            latest = datetime.max.replace(tzinfo=UTC)
            first = min((t for t in parked if t.until is not None), key=lambda t: t.until or latest)
            until = first.until
            assert until is not None
            # The code of the rest that ends first (its reason reads "VK error <code>: ..."): a
            # captcha and a quota are worded apart where the wait is shown.
            code = CAPTCHA_CODE_IN_REASON.match(first.reason or "")
            error: VkError = VkTokensResting(
                f"every VK token is parked (quota or captcha) until {until:%Y-%m-%d %H:%M} UTC: {first.reason}",
                until=until, vk_code=int(code.group(1)) if code else QUOTA,
            )
        else:
            error = VkAuthFailed(f"no usable VK token: every token was rejected ({self._tokens[0].reason})", vk_code=5)
        if fail_pending:
            self._fail_pending(error)
        else:
            raise error

    def _fail_pending(self, error: VkError) -> None:
        while self._pending:
            call = self._pending.popleft()
            if not call.future.done():
                call.future.set_exception(error)
        self._has_pending.clear()

    def _scrub(self, text: str) -> str:
        for token in self._tokens:
            text = text.replace(token.secret, f"<token {token.fingerprint}>")
        return text


# --- wire format ----------------------------------------------------------------------------


def execute_code(calls) -> str:
    """The plain VKScript every VK client generates: ``return [API.m({...}), ...];``."""
    parts = [
        f"API.{method}({json.dumps(params, ensure_ascii=False, separators=(',', ':'))})" for method, params in calls
    ]
    return f"return [{','.join(parts)}];"


def _unpack_execute(body: dict[str, Any], size: int) -> list[Any]:
    results = body.get("response")
    if not isinstance(results, list) or len(results) != size:
        raise _Transient("VK answered execute with a malformed response")
    errors = iter(body.get("execute_errors") or [])
    outcomes: list[Any] = []
    for result in results:
        if result is False:  # a failed inner call; its error is the next in execute_errors
            err: dict[str, Any] = next(errors, {})
            outcomes.append(_Failed(int(err.get("error_code", 0)), str(err.get("error_msg", "unknown error"))))
        else:
            outcomes.append(result)
    return outcomes


def _time(ts: int) -> datetime:
    return datetime.fromtimestamp(int(ts), UTC)


def _count(item: dict[str, Any], name: str) -> int:
    value = item.get(name)
    return int(value.get("count", 0)) if isinstance(value, dict) else 0


def _post(p: dict[str, Any]) -> Post:
    # comments.can_post == 0 only says nobody may write; reading may still work, so
    # comments_closed stays False until wall.getComments answers 212.
    return Post(
        owner_id=int(p["owner_id"]), vk_id=int(p["id"]), from_id=p.get("from_id"), text=p.get("text") or "",
        published_at=_time(p["date"]), comments_count=_count(p, "comments"), likes=_count(p, "likes"),
        reposts=_count(p, "reposts"), views=_count(p, "views"), is_pinned=bool(p.get("is_pinned")),
    )


def _comment(item: dict[str, Any], owner_id: int, post_id: int, *, thread_root: int | None) -> Comment:
    stack = item.get("parents_stack") or []
    root = stack[0] if stack else thread_root
    return Comment(
        owner_id=int(item.get("owner_id", owner_id)), vk_id=int(item["id"]),
        post_vk_id=int(item.get("post_id", post_id)), from_id=int(item.get("from_id", 0)),
        text=item.get("text") or "", published_at=_time(item["date"]), likes=_count(item, "likes"),
        deleted=bool(item.get("deleted")), thread_vk_id=root,
        parent_vk_id=(item.get("reply_to_comment") or root) if root is not None else None,
        reply_to_user=item.get("reply_to_user"),
    )


def _user(u: dict[str, Any]) -> Author:
    name = f"{u.get('first_name', '')} {u.get('last_name', '')}".strip()
    return Author(vk_id=int(u["id"]), name=name, screen_name=u.get("screen_name"), photo_url=u.get("photo_100"))


def _authors(answer: dict[str, Any]) -> list[Author]:
    authors = [_user(u) for u in answer.get("profiles") or []]
    authors += [Author(vk_id=-int(g["id"]), name=g.get("name", ""), screen_name=g.get("screen_name"),
                       photo_url=g.get("photo_100")) for g in answer.get("groups") or []]
    return authors


def _group(g: dict[str, Any]) -> Group:
    return Group(
        vk_id=int(g["id"]), screen_name=g.get("screen_name") or f"club{g['id']}", name=g.get("name", ""),
        is_closed=bool(g.get("is_closed", 0)), members_count=g.get("members_count"),
        photo_url=g.get("photo_100"), description=g.get("description") or None, deactivated=g.get("deactivated"),
    )
