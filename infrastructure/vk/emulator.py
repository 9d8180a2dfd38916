"""A VK API emulator: serves a ``VkWorld`` over HTTP the way api.vk.com does (``docs/vk-api.md``).

A raw ASGI app, so the same object runs in-process behind ``httpx.ASGITransport`` (sandbox,
unit tests) and as a real server under uvicorn (integration tests, benchmarks). It enforces
VK's rules that shape a client: the per-token requests-per-second limit (error 6), page sizes,
``execute`` with at most 25 calls and a 5 MB answer (error 13), and, on demand, VK's bad days
(``fail_rate``: errors 1 and 10, dropped connections, HTTP 502, 2-second stalls), and, with
``drift``, a wall that moves while it is read (``world.WallDrift``: comments and posts deleted
and written between requests). Besides VK's methods it answers ``/_stats``, ``/_reset`` and
``/_world`` (GET: what a complete collection holds now; POST: edit or delete a comment between
two runs, for tests of an emulator in another process).

Token trouble, as real VK shows it (``docs/vk-api.md``, "What real VK does"), on demand:
- ``quotas`` / ``token_quotas``: calls of a method each token may make per UTC day; past it a
  plain call answers error 29 and a call inside ``execute`` becomes ``false`` plus an
  ``execute_errors`` entry (the batch's other calls still answer);
- ``captcha_after``: after that many calls the token must solve a captcha (nobody will): error
  14 with ``captcha_sid``, ``captcha_img`` and the 2025 fields, at the top level and inside
  ``execute``;
- ``expire_after``: after that many calls the token is invalid (error 5): inside the
  ``execute`` where it happens, then at the top level.

    python -m infrastructure.vk.emulator --port 8765 --rps 3 --world generated --communities 4 \
        --quota wall.getComments=500 --captcha-after TOKEN=100
    python -m infrastructure.vk.emulator --world generated --drift 0.5 --drift-seed 3 --drift-budget 200
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import random
import re
import sys
import time
from collections import Counter, defaultdict, deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import parse_qsl

import orjson

from infrastructure.vk.world import (
    INLINE_REPLIES,
    PAGE,
    VkWorld,
    WallDrift,
    WorldComment,
    WorldPost,
)

MAX_EXECUTE_CALLS = 25
MAX_EXECUTE_BYTES = 5 * 1024 * 1024
_CALL = re.compile(r"\s*API\.([A-Za-z]+(?:\.[A-Za-z]+)?)\s*\(")


class ApiError(Exception):
    def __init__(self, code: int, message: str, extra: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.extra = extra or {}  # more fields of VK's error object (a captcha's)


def fingerprint(token: str) -> str:
    """How tokens are named in stats and logs: never the token itself."""
    return hashlib.sha256(token.encode()).hexdigest()[:8]


# --- execute --------------------------------------------------------------------------------


def parse_execute(code: str) -> list[tuple[str, dict[str, Any]]]:
    """The plain form only: ``return [API.a.b({...}), ...];`` or ``return API.a.b({...});``."""
    text = code.strip().removesuffix(";").rstrip()
    if not text.startswith("return"):
        raise _compile_error("expected 'return'")
    body = text.removeprefix("return").strip()
    single = not (body.startswith("[") and body.endswith("]"))
    inner = body if single else body[1:-1]
    decoder = json.JSONDecoder()
    calls: list[tuple[str, dict[str, Any]]] = []
    pos = _skip_spaces(inner, 0)
    while pos < len(inner):
        m = _CALL.match(inner, pos)
        if not m:
            raise _compile_error(f"expected an API call at {pos}")
        pos = _skip_spaces(inner, m.end())
        args: Any = {}
        if not inner.startswith(")", pos):
            try:
                args, pos = decoder.raw_decode(inner, pos)  # the JSON object literal
            except json.JSONDecodeError as e:
                raise _compile_error(e.msg) from None
            pos = _skip_spaces(inner, pos)
        if not isinstance(args, dict) or not inner.startswith(")", pos):
            raise _compile_error("arguments must be one object literal")
        calls.append((m.group(1), args))
        pos = _skip_spaces(inner, pos + 1)
        if pos < len(inner):
            if single or inner[pos] != ",":
                raise _compile_error(f"unexpected {inner[pos]!r} at {pos}")
            pos = _skip_spaces(inner, pos + 1)
    if single and len(calls) != 1:
        raise _compile_error("expected one API call or a list of them")
    return calls


def _skip_spaces(text: str, pos: int) -> int:
    while pos < len(text) and text[pos].isspace():
        pos += 1
    return pos


def _compile_error(detail: str) -> ApiError:
    return ApiError(12, f"Unable to compile code: {detail}")


# --- the methods ----------------------------------------------------------------------------


def _int(params: dict[str, Any], name: str, default: int | None = None) -> int:
    value = params.get(name, default)
    if value is None or value == "":
        if default is not None:
            return default
        raise ApiError(100, f"One of the parameters specified was missing or invalid: {name} is undefined")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ApiError(100, f"One of the parameters specified was missing or invalid: {name} not integer") from None


def _flag(params: dict[str, Any], name: str) -> bool:
    return str(params.get(name, "0")).lower() in ("1", "true")


def _ids(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(v) for v in value]
    return [v.strip() for v in str(value or "").split(",") if v.strip()]


class VkMethods:
    """VK's answers for one world; each method takes the call's parameters."""

    def __init__(self, world: VkWorld) -> None:
        self.world = world
        self.table: dict[str, Callable[[dict[str, Any]], Any]] = {
            "utils.resolveScreenName": self.resolve_screen_name,
            "groups.getById": self.groups_get_by_id,
            "wall.get": self.wall_get,
            "wall.getComments": self.wall_get_comments,
            "users.get": self.users_get,
        }

    def call(self, method: str, params: dict[str, Any]) -> Any:
        handler = self.table.get(method)
        if handler is None:
            raise ApiError(3, "Unknown method passed")
        return handler(params)

    # shapes

    def _group(self, group, extra: bool = False) -> dict[str, Any]:
        out = {"id": group.id, "name": group.name, "screen_name": group.screen_name,
               "is_closed": group.is_closed, "type": group.type, "photo_50": group.photo_100,
               "photo_100": group.photo_100, "photo_200": group.photo_100}
        if group.deactivated:
            out["deactivated"] = group.deactivated
        if extra:
            out["members_count"] = group.members_count
            out["description"] = group.description
        return out

    def _user(self, user) -> dict[str, Any]:
        return {"id": user.id, "first_name": user.first_name, "last_name": user.last_name,
                "screen_name": user.screen_name, "sex": user.sex, "photo_50": user.photo_100,
                "photo_100": user.photo_100, "online": 0, "can_access_closed": True, "is_closed": False}

    def _post(self, post: WorldPost) -> dict[str, Any]:
        out = {"id": post.id, "owner_id": post.owner_id, "from_id": post.from_id, "date": post.date,
               "post_type": "post", "text": post.text, "marked_as_ads": 0, "attachments": [],
               "comments": {"count": post.comments_count, "can_post": 0 if post.comments_closed else 1,
                            "groups_can_post": True},
               "likes": {"count": post.likes, "user_likes": 0, "can_like": 1},
               "reposts": {"count": post.reposts, "user_reposted": 0},
               "views": {"count": post.views}}
        if post.is_pinned:
            out["is_pinned"] = 1
        return out

    def _comment(self, c: WorldComment, need_likes: bool) -> dict[str, Any]:
        out: dict[str, Any] = {"id": c.id, "from_id": c.from_id, "date": c.date, "text": c.text,
                               "post_id": c.post_id, "owner_id": c.owner_id,
                               "parents_stack": [c.thread_root] if c.thread_root else []}
        if c.deleted:
            out["deleted"] = True
        if c.reply_to_comment is not None:
            out["reply_to_comment"] = c.reply_to_comment
            out["reply_to_user"] = c.reply_to_user
        if need_likes and not c.deleted:
            out["likes"] = {"count": c.likes, "user_likes": 0, "can_like": 1}
        if c.attachments:
            out["attachments"] = c.attachments
        return out

    def _authors(self, from_ids: set[int]) -> tuple[list[dict], list[dict]]:
        profiles = [self._user(self.world.users[i]) for i in sorted(from_ids) if i > 0 and i in self.world.users]
        groups = [self._group(self.world.groups[-i]) for i in sorted(from_ids) if i < 0 and -i in self.world.groups]
        return profiles, groups

    # methods

    def resolve_screen_name(self, params: dict[str, Any]) -> Any:
        name = str(params.get("screen_name", "")).strip()
        if not name:
            raise ApiError(100, "One of the parameters specified was missing or invalid: screen_name is undefined")
        group = self.world.group_by_ref(name)
        if group is not None:
            return {"object_id": group.id, "type": "group" if group.type == "group" else "page"}
        found = self.world.resolve(name)
        return {"object_id": found[1], "type": found[0]} if found else []

    def groups_get_by_id(self, params: dict[str, Any]) -> Any:
        refs = _ids(params.get("group_ids")) or _ids(params.get("group_id"))
        if not refs:
            raise ApiError(100, "One of the parameters specified was missing or invalid: group_ids is undefined")
        if len(refs) > 500:
            raise ApiError(100, "One of the parameters specified was missing or invalid: too many group_ids")
        found = [g for g in (self.world.group_by_ref(r) for r in refs) if g is not None]
        if not found:
            raise ApiError(100, "One of the parameters specified was missing or invalid: group_ids is undefined")
        extra = bool(params.get("fields"))
        return {"groups": [self._group(g, extra) for g in found], "profiles": []}

    def _wall_owner(self, params: dict[str, Any]) -> int:
        if params.get("domain"):
            group = self.world.group_by_ref(str(params["domain"]))
            if group is None:
                raise ApiError(100, "One of the parameters specified was missing or invalid: domain is invalid")
            owner_id = -group.id
        else:
            owner_id = _int(params, "owner_id")
        group = self.world.groups.get(-owner_id)
        if group is None:
            raise ApiError(100, "One of the parameters specified was missing or invalid: owner_id is undefined")
        if group.deactivated:
            raise ApiError(15, "Access denied: community is blocked")
        if group.is_closed == 1:
            raise ApiError(15, "Access denied: this wall available only for community members")
        if group.is_closed == 2:
            raise ApiError(15, "Access denied: this community is private")
        return owner_id

    def wall_get(self, params: dict[str, Any]) -> Any:
        owner_id = self._wall_owner(params)
        offset, count = _int(params, "offset", 0), _int(params, "count", 20)
        if not 0 <= count <= PAGE:
            raise ApiError(
                100, "One of the parameters specified was missing or invalid: count should be less or equal to 100"
            )
        wall = self.world.walls.get(owner_id, [])
        posts = wall[offset:offset + count]
        out: dict[str, Any] = {"count": len(wall), "items": [self._post(p) for p in posts]}
        if _flag(params, "extended"):
            out["profiles"], out["groups"] = self._authors({p.from_id for p in posts})
        return out

    def wall_get_comments(self, params: dict[str, Any]) -> Any:
        owner_id = self._wall_owner(params)
        post = self.world.posts.get((owner_id, _int(params, "post_id")))
        if post is None:  # never was, or deleted since the wall was read
            raise ApiError(15, "Access denied: post was not found check post_id param")
        if post.comments_closed:
            raise ApiError(212, "Access to post comments denied")
        offset, count = _int(params, "offset", 0), _int(params, "count", 10)
        if not 0 <= count <= PAGE:
            raise ApiError(
                100, "One of the parameters specified was missing or invalid: count should be less or equal to 100"
            )
        inline = min(_int(params, "thread_items_count", 0), INLINE_REPLIES)
        need_likes = _flag(params, "need_likes")
        if params.get("comment_id") not in (None, "", 0, "0"):
            root = self.world.comments.get((owner_id, _int(params, "comment_id")))
            if root is None or root.post_id != post.id or root.thread_root is not None:
                raise ApiError(100, "One of the parameters specified was missing or invalid: comment_id is invalid")
            level, total = root.replies, len(root.replies)
        else:
            level, total = post.comments, post.comments_count
        descending = str(params.get("sort", "asc")) == "desc"
        if descending:
            level = level[::-1]
        if params.get("start_comment_id") not in (None, "", 0, "0"):
            offset += _start_index(level, _int(params, "start_comment_id"), descending)
        page = level[offset:offset + count]
        items, authors = [], set()
        for c in page:
            item = self._comment(c, need_likes)
            authors.add(c.from_id)
            if c.thread_root is None:
                shown = c.replies[:inline]
                item["thread"] = {"count": len(c.replies), "items": [self._comment(r, need_likes) for r in shown],
                                  "can_post": True, "show_reply_button": True, "groups_can_post": True}
                authors.update(r.from_id for r in shown)
            items.append(item)
        out: dict[str, Any] = {"count": total, "current_level_count": len(level), "can_post": True,
                               "show_reply_button": True, "groups_can_post": True, "items": items}
        if _flag(params, "extended"):
            out["profiles"], out["groups"] = self._authors(authors)
        return out

    def users_get(self, params: dict[str, Any]) -> Any:
        ids = _ids(params.get("user_ids"))
        if len(ids) > 1000:
            raise ApiError(100, "One of the parameters specified was missing or invalid: too many user_ids")
        users = []
        for ref in ids:
            found = self.world.users.get(int(ref)) if ref.isdigit() else None
            if found is None and not ref.isdigit():
                hit = self.world.resolve(ref)
                found = self.world.users.get(hit[1]) if hit and hit[0] == "user" else None
            if found is not None:
                users.append(self._user(found))
        return users


def _start_index(level: list[WorldComment], start: int, descending: bool) -> int:
    """Where a page asked with ``start_comment_id`` begins: at that comment, or, when it is
    gone, at the nearest earlier one of the level (the level's start when none is)."""
    found = 0
    for index, comment in enumerate(level):
        if comment.id == start:
            return index
        if (comment.id > start) if descending else (comment.id < start):
            found = index
        else:
            break
    return found


# --- the app --------------------------------------------------------------------------------


class VkEmulator:
    """The ASGI app. ``rps`` is enforced per token over a sliding 1-second window."""

    FAILURES = ("error1", "error10", "drop", "http502", "stall")

    def __init__(
        self,
        world: VkWorld,
        *,
        rps: float | None = None,
        fail_rate: float = 0.0,
        tokens: list[str] | None = None,
        token_errors: dict[str, int] | None = None,
        quotas: dict[str, int] | None = None,
        token_quotas: dict[str, dict[str, int]] | None = None,
        captcha_after: dict[str, int] | None = None,
        expire_after: dict[str, int] | None = None,
        seed: int = 0,
        stall_seconds: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        today: Callable[[], str] = lambda: time.strftime("%Y%m%d", time.gmtime()),
        drift: float = 0.0,
        drift_seed: int = 0,
        drift_budget: int | None = None,
    ) -> None:
        self.methods = VkMethods(world)
        # The wall moves: ``drift`` changes per request on average (see ``WallDrift``).
        self.drift = WallDrift(world, rate=drift, seed=drift_seed, budget=drift_budget) if drift else None
        self.world = world
        self.rps = rps
        self.fail_rate = fail_rate
        self.tokens = set(tokens) if tokens is not None else None
        # Per-token forced errors on every request (5: revoked, 29: quota, 14: captcha...).
        self.token_errors = dict(token_errors or {})
        # Daily calls per method, for every token, and per token (which wins over the former).
        self.quotas = dict(quotas or {})
        self.token_quotas = {token: dict(q) for token, q in (token_quotas or {}).items()}
        # Calls a token may make before VK wants a captcha solved / declares it invalid.
        self.captcha_after = dict(captcha_after or {})
        self.expire_after = dict(expire_after or {})
        self.today = today
        self.stall_seconds = stall_seconds
        self.clock = clock
        self._seed = seed
        self._answering = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vk-emulator")
        self.reset()

    def reset(self) -> None:
        self.rng = random.Random(self._seed)
        self.call_rng = random.Random(self._seed + 1)  # used on the answering thread
        self.windows: dict[str, deque[float]] = defaultdict(deque)
        self.arrivals: dict[str, deque[float]] = defaultdict(lambda: deque(maxlen=64))
        self.tightest: dict[str, float] = {}
        self.requests: Counter[str] = Counter()
        self.calls = 0
        self.errors: Counter[int] = Counter()
        self.call_errors: Counter[int] = Counter()
        self.failures: Counter[str] = Counter()
        self.bytes_sent = 0
        # Calls answered per (token fingerprint, UTC day), by method: what quotas count.
        self.daily: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
        self.token_calls: Counter[str] = Counter()  # answered calls per token fingerprint, ever

    def stats(self) -> dict[str, Any]:
        return {
            "requests": dict(self.requests),
            "requests_total": sum(self.requests.values()),
            "calls": self.calls,
            "error6": self.errors[6],
            "errors": {str(k): v for k, v in sorted(self.errors.items())},
            "call_errors": {str(k): v for k, v in sorted(self.call_errors.items())},
            "failures": dict(self.failures),
            # per token fingerprint: today's answered calls by method (what the quotas count)
            "calls_today": {fp: dict(c) for (fp, day), c in self.daily.items() if day == self.today()},
            "bytes": self.bytes_sent,
            # per token: the shortest time in which rps+1 requests arrived (>= 1 s: within the limit)
            "tightest_window": {k: round(v, 4) for k, v in self.tightest.items()},
            "drift": dict(self.drift.made) if self.drift is not None else {},
        }

    def world_now(self) -> dict[str, Any]:
        """Per open wall and post, the comment ids a complete collection stores now, and the
        posts deleted since the world was built (their comments are gone with them)."""
        expected: dict[str, dict[str, list[int]]] = {}
        for owner in self.world.open_owner_ids():
            expected[str(owner)] = {
                str(post.id): sorted([c.id for c in post.comments] + [r.id for c in post.comments for r in c.replies])
                for post in self.world.readable_posts(owner)
            }
        return {
            "expected": expected,
            "deleted_posts": sorted([o, p] for o, p in self.world.deleted_posts),
            "drift": dict(self.drift.made) if self.drift is not None else {},
        }

    # ASGI

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if path == "/_stats":
            await _respond(send, 200, orjson.dumps(self.stats()))
        elif path == "/_world" and scope["method"] == "GET":  # what a complete collection holds now
            # In the world's thread.
            now = await asyncio.get_running_loop().run_in_executor(self._answering, self.world_now)
            await _respond(send, 200, orjson.dumps(now))
        elif path == "/_reset" and scope["method"] == "POST":
            self.reset()
            await _respond(send, 200, b'{"ok":true}')
        elif path == "/_world" and scope["method"] == "POST":
            await _respond(send, *self._change_world(body))
        elif path.startswith("/method/"):
            params: dict[str, Any] = dict(parse_qsl(scope.get("query_string", b"").decode(), keep_blank_values=True))
            params.update(parse_qsl(body.decode(), keep_blank_values=True))
            await self._method(path.removeprefix("/method/"), params, send)
        else:
            await _respond(send, 404, b'{"error":"not found"}')

    def _change_world(self, body: bytes) -> tuple[int, bytes]:
        """What people do on VK between two runs, for tests of a separate emulator process:
        ``{"edit": {"owner_id", "comment_id", "text"}}`` or ``{"delete": {"owner_id", "comment_id"}}``
        (``VkWorld.edit_comment`` / ``delete_comment``)."""
        try:
            change = orjson.loads(body)
            if "edit" in change:
                e = change["edit"]
                self.world.edit_comment(int(e["owner_id"]), int(e["comment_id"]), str(e["text"]))
            elif "delete" in change:
                d = change["delete"]
                self.world.delete_comment(int(d["owner_id"]), int(d["comment_id"]))
            else:
                raise ValueError("expected edit or delete")
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as e:
            return 400, orjson.dumps({"error": str(e)})
        return 200, b'{"ok":true}'

    async def _method(self, method: str, params: dict[str, Any], send) -> None:
        token = params.pop("access_token", "")
        try:
            self._check_request(token, params)
            failure = self._pick_failure()
            if failure == "stall":
                await asyncio.sleep(self.stall_seconds)
            elif failure == "drop":
                # Headers and half a body, then the connection dies: a client sees a broken read.
                await send({"type": "http.response.start", "status": 200,
                            "headers": [(b"content-type", b"application/json"), (b"content-length", b"200")]})
                await send({"type": "http.response.body", "body": b'{"response": {', "more_body": True})
                raise ConnectionAbortedError("emulated dropped connection")
            elif failure == "http502":
                await _respond(send, 502, b"<html>502 Bad Gateway</html>", b"text/html")
                return
            elif failure in ("error1", "error10"):
                code = 1 if failure == "error1" else 10
                raise ApiError(code, "Unknown error occurred" if code == 1 else "Internal server error")
            # Answers are built on one worker thread: the event loop stays free to timestamp
            # arriving requests, so the rate limit is judged on arrival times, as VK does.
            payload = await asyncio.get_running_loop().run_in_executor(
                self._answering, self._answer, method, params, token)
        except ApiError as e:
            self.errors[e.code] += 1
            payload = _error(e, method, params)
        self.bytes_sent += len(payload)
        await _respond(send, 200, payload)

    def _check_request(self, token: str, params: dict[str, Any]) -> None:
        if not token:
            raise ApiError(5, "User authorization failed: no access_token passed.")
        key = fingerprint(token)
        self.requests[key] += 1
        if self.tokens is not None and token not in self.tokens:
            raise ApiError(5, "User authorization failed: invalid access_token (4).")
        if token in self.token_errors:
            code = self.token_errors[token]
            raise ApiError(code, _TOKEN_ERROR_TEXT.get(code, "Token error"))
        # A token already invalid, or already asked for a captcha, fails the whole request.
        self._check_token_trouble(token, key)
        if not params.get("v"):
            raise ApiError(8, "Invalid request: v is required")
        if self.rps:
            now = self.clock()
            recent = self.arrivals[key]
            recent.append(now)
            if len(recent) > self.rps:  # how close rps+1 arrivals came: < 1 s means error 6
                span = now - recent[-int(self.rps) - 1]
                self.tightest[key] = min(self.tightest.get(key, span), span)
            window = self.windows[key]
            while window and window[0] <= now - 1.0:
                window.popleft()
            if len(window) >= self.rps:
                raise ApiError(6, "Too many requests per second")
            window.append(now)

    def _pick_failure(self) -> str | None:
        if self.fail_rate and self.rng.random() < self.fail_rate:
            kind = self.rng.choice(self.FAILURES)
            self.failures[kind] += 1
            return kind
        return None

    def _check_token_trouble(self, token: str, key: str) -> None:
        calls = self.token_calls[key]
        if token in self.expire_after and calls >= self.expire_after[token]:
            raise ApiError(5, _TOKEN_ERROR_TEXT[5])
        if token in self.captcha_after and calls >= self.captcha_after[token]:
            raise ApiError(14, _TOKEN_ERROR_TEXT[14], _captcha_fields(key, calls))

    def _count_call(self, token: str, method: str) -> None:
        """One call by ``token``: refused as VK would (invalid, captcha, quota) or counted."""
        key = fingerprint(token)
        self._check_token_trouble(token, key)
        limit = self.token_quotas.get(token, {}).get(method, self.quotas.get(method))
        used = self.daily[(key, self.today())]
        if limit is not None and used[method] >= limit:
            raise ApiError(29, _TOKEN_ERROR_TEXT[29])
        used[method] += 1
        self.token_calls[key] += 1

    def _answer(self, method: str, params: dict[str, Any], token: str = "") -> bytes:
        if self.drift is not None:  # the world changed since the last request
            self.drift.step()
        if method != "execute":
            self.calls += 1
            self._count_call(token, method)  # its error is the request's: top-level 29, 14, 5
            return orjson.dumps({"response": self._call(method, params)})
        calls = parse_execute(str(params.get("code", "")))
        if len(calls) > MAX_EXECUTE_CALLS:
            raise ApiError(13, "Runtime error occurred during code invocation: Too many API calls")
        results: list[Any] = []
        errors: list[dict[str, Any]] = []
        for name, args in calls:
            self.calls += 1
            try:
                # Inside execute VK also fails now and then, one call at a time.
                if self.fail_rate and self.call_rng.random() < self.fail_rate / 4:
                    raise ApiError(10, "Internal server error")
                self._count_call(token, name)
                results.append(self._call(name, args))
            except ApiError as e:
                self.call_errors[e.code] += 1
                results.append(False)
                errors.append({"method": name, "error_code": e.code, "error_msg": e.message, **e.extra})
        body: dict[str, Any] = {"response": results}
        if errors:
            body["execute_errors"] = errors
        payload = orjson.dumps(body)
        if len(payload) > MAX_EXECUTE_BYTES:
            raise ApiError(13, "Runtime error occurred during code invocation: response size is too big")
        return payload

    def _call(self, method: str, params: dict[str, Any]) -> Any:
        return self.methods.call(method, params)


_TOKEN_ERROR_TEXT = {
    5: "User authorization failed: access_token has expired.",
    28: "Application authorization failed: access_token was given to another application.",
    1117: "Token expired",
    29: "Rate limit reached",
    14: "Captcha needed",
    17: "Validation required: please open redirect_uri in browser",
}


def _captcha_fields(key: str, attempt: int) -> dict[str, Any]:
    """Error 14's fields, in the 2025 format (``redirect_uri`` and after it are new there)."""
    sid = str(int(hashlib.sha256(f"{key}:{attempt}".encode()).hexdigest()[:12], 16))
    return {
        "captcha_sid": sid,
        "captcha_img": f"https://api.vk.com/captcha.php?sid={sid}&s=1",
        "redirect_uri": f"https://id.vk.com/not_robot_captcha?domain=vk.com&session_token=emulated-{sid}",
        "captcha_ts": round(time.time(), 3),
        "captcha_attempt": 1,
        "is_refresh_enabled": True,
        "captcha_track": f"emulated-{sid}",
    }


def _error(e: ApiError, method: str, params: dict[str, Any]) -> bytes:
    # VK echoes the request's parameters, never the access token (it was popped already).
    echoed = [{"key": "method", "value": method}, {"key": "oauth", "value": "1"}]
    echoed += [{"key": k, "value": str(v)} for k, v in params.items() if k != "access_token"]
    return orjson.dumps({"error": {"error_code": e.code, "error_msg": e.message, **e.extra, "request_params": echoed}})


async def _respond(send, status: int, body: bytes, content_type: bytes = b"application/json") -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


# --- as a process ---------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    from infrastructure.vk.world import generated_world, sandbox_world

    parser = argparse.ArgumentParser(description="Serve a VK world over VK's HTTP API")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--rps", type=float, default=3.0, help="requests per second per token (0: no limit)")
    parser.add_argument("--world", choices=("sandbox", "generated"), default="sandbox")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--communities", type=int, default=3)
    parser.add_argument("--posts", type=int, default=50)
    parser.add_argument("--comments", type=int, default=20, help="mean top-level comments per post")
    parser.add_argument("--closed-comment-posts", type=int, default=1, help="per community, error 212")
    parser.add_argument("--closed-communities", type=int, default=1)
    parser.add_argument("--fail-rate", type=float, default=0.0)
    parser.add_argument("--token", action="append", dest="tokens", help="a valid token (repeat); default: any")
    parser.add_argument("--quota", action="append", default=[], metavar="METHOD=N",
                        help="calls of METHOD each token may make per UTC day; then error 29 (repeat)")
    parser.add_argument("--token-quota", action="append", default=[], metavar="TOKEN:METHOD=N",
                        help="the same for one token (repeat)")
    parser.add_argument("--captcha-after", action="append", default=[], metavar="TOKEN=N",
                        help="after N calls the token must solve a captcha (error 14) (repeat)")
    parser.add_argument("--expire-after", action="append", default=[], metavar="TOKEN=N",
                        help="after N calls the token is invalid (error 5) (repeat)")
    parser.add_argument("--drift", type=float, default=0.0,
                        help="changes to the walls (deletions, new comments and posts) per request, on average")
    parser.add_argument("--drift-seed", type=int, default=0)
    parser.add_argument("--drift-budget", type=int, default=None, help="changes in all, then the walls stay still")
    args = parser.parse_args(argv)
    token_quotas: dict[str, dict[str, int]] = {}
    for token, method, n in (_assignment(a, ":") for a in args.token_quota):
        token_quotas.setdefault(token, {})[method] = n

    if args.world == "sandbox":
        world = sandbox_world()
    else:
        world = generated_world(args.seed, communities=args.communities, posts_per_community=args.posts,
                                comments_per_post=args.comments, closed_comment_posts=args.closed_comment_posts,
                                closed_communities=args.closed_communities)
    # Answers are built on a worker thread; a short GIL switch interval lets the event loop
    # timestamp an arriving request within a millisecond instead of up to 5 ms per hand-off.
    sys.setswitchinterval(0.001)
    app = VkEmulator(world, rps=args.rps or None, fail_rate=args.fail_rate, tokens=args.tokens, seed=args.seed,
                     quotas=dict(_assignment(a)[1:] for a in args.quota), token_quotas=token_quotas,
                     captcha_after=dict(_assignment(a)[1:] for a in args.captcha_after),
                     expire_after=dict(_assignment(a)[1:] for a in args.expire_after),
                     drift=args.drift, drift_seed=args.drift_seed, drift_budget=args.drift_budget)
    print(f"VK emulator: http://{args.host}:{args.port}/method ({world.total_comments()} comments)", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)


def _assignment(text: str, prefix_separator: str | None = None) -> tuple[str, str, int]:
    """``NAME=N`` → ("", NAME, N); with a separator, ``A:NAME=N`` → (A, NAME, N)."""
    name, _, number = text.rpartition("=")
    prefix = ""
    if prefix_separator is not None:
        prefix, _, name = name.partition(prefix_separator)
    if not name or not number.isdigit():
        raise SystemExit(f"expected NAME=N, got {text!r}")
    return prefix, name, int(number)


if __name__ == "__main__":
    main()
