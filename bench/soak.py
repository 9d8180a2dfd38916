"""Soak benchmark: the production stack under a steady mixed load for ten minutes.

Starts the VK emulator (3 requests/s per token, a generated world big enough that collecting it
outlasts the soak), and the production stack as its own processes: PostgreSQL (a fresh
database, dropped at the end), Redis (a key prefix of its own, deleted at the end),
``vkcp serve`` and one ``vkcp worker``. It seeds keywords (so comments get matches), adds the
communities, starts parses and keeps ``--parses`` PARSE tasks active for the whole run (the next
community, or a ``full`` re-parse of one already collected), so the worker writes comments while
the API serves; now and then it starts an ANALYZE task.

Then ``--clients`` concurrent clients (closed loop: the next request as soon as the answer
arrives) run for ``--duration`` seconds from a few client processes:

- reading comments like the review screen does: pages of 100 and of 10 with every comment's
  group, post, author and matches { keyword { word } }, filtered (matched, text search, one
  community, a date range, a keyword, the review queue) and sorted, then following
  ``pageInfo.endCursor`` to deeper pages; a first page of 10 sometimes asks for ``totalCount``;
- ``stats``, ``tasks``, ``groups`` (with per-community counts), ``keywords`` (with match counts);
- mutations: ``setCommentState`` on a few ids just read, ``updateKeyword`` and ``addKeywords``
  occasionally (``startParse`` and the rare ``startAnalyze`` come from the run's driver);
- long-lived WebSocket subscriptions (graphql-transport-ws, the token in ``connection_init``):
  ``taskEvents``, ``taskProgress`` (of a running parse; the next one when it ends) and
  ``commentMatched`` (unfiltered and by keyword), counting what they receive.

Every 30 s a line; at the end per operation kind: requests, req/s, p50/p95/p99 latency, errors by
HTTP status and by ``errors[].extensions.code`` (and mutations' ``UserError`` codes), events per
subscription, comments stored over time, and the RSS of the API process and of the worker
(with any children; ``/proc/<pid>/status`` VmRSS every 5 s): after warm-up (``--warmup`` of the
duration), at the end, peak, growth after warm-up, and a JSON summary line (``SOAK_SUMMARY``).
Targets: no HTTP 5xx; RSS growth after warm-up under 10% for both processes. Each gets a
PASS/FAIL verdict; the exit status is 0 unless the benchmark itself broke (a process of the
stack died, a client process crashed, the collection never started, no request got through).

Besides: CPU per process group from ``/proc/<pid>/task/*/schedstat`` — time on a core and time
runnable but waiting for one — and the whole machine's busy share (measured before the stack
starts too), so a result taken on a shared, busy machine says so; the API's CPU per request,
which does not depend on what else runs; tasks whose progress stops moving for two minutes
(STALLED); warnings, errors and tracebacks in the processes' logs, during the load and after.

The machine has two cores for everything; all but the API process (and PostgreSQL, which is
shared) run at nice 10, so the API process is what is measured.

    PYTHONPATH=. .venv/bin/python -m bench.soak [--duration 600] [--clients 30] [--processes 2]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import multiprocessing
import os
import queue as queue_module
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
from redis.asyncio import Redis
from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

from tests.processes import free_port, spawn, stop, wait_http

ROOT = Path(__file__).resolve().parent.parent
BACKGROUND_NICE = 10
POSTGRES_ADMIN_URL = os.environ.get("VKCP_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("VKCP_TEST_REDIS_URL", "redis://127.0.0.1:6379/9")
VK_TOKEN = "soak-vk-token"
SAMPLE_EVERY = 5.0  # seconds: RSS, CPU, client snapshots
REPORT_EVERY = 30.0
COUNT_EVERY = 15.0  # comments stored (count(*) on PostgreSQL)
TARGET_GROWTH_PCT = 10.0
REQUEST_TIMEOUT = 60.0  # the server stops a request at 30 s (504); beyond that it hangs
STALL_AFTER = 120.0  # seconds without progress after which a running task counts as stalled

# Words of the generated world's themes (infrastructure/vk/world.py): they match, in every form.
KEYWORDS = [
    ("кошка", "pets"), ("котёнок", "pets"), ("ветеринар", "pets"), ("приют", "pets"), ("корм", "pets"),
    ("дорога", "town"), ("автобус", "town"), ("ремонт", "town"), ("администрация", "town"), ("мост", "town"),
    ("борщ", "kitchen"), ("пирог", "kitchen"), ("бабушка", "kitchen"), ("духовка", "kitchen"),
    ("велосипед", "bikes"), ("дорожка", "bikes"),
]
TEXT_SEARCHES = ["кошка", "дорога", "ремонт моста", "велосипед", "бабушка", "автобус опоздал", "спасибо",
                 "духовка", "приют", "лучшее"]
WORLD_DAYS = 90  # generated_world's default span of post dates

COMMENT_FIELDS = """
  id vkId text publishedAt likes deleted viewed archived matchesCount
  group { id name screenName }
  post { id vkId text publishedAt }
  author { vkId name screenName }
  matches { keyword { id word } matchedText start end snippet }
"""
COMMENTS = f"""query Comments($first: Int!, $after: String, $filter: CommentFilter, $orderBy: CommentOrder) {{
  comments(first: $first, after: $after, filter: $filter, orderBy: $orderBy) {{
    edges {{ cursor node {{ {COMMENT_FIELDS} }} }}
    pageInfo {{ hasNextPage endCursor }}
  }}
}}"""
COMMENTS_COUNTED = COMMENTS.replace("pageInfo {", "totalCount pageInfo {").replace(
    "query Comments(", "query CommentsCounted(")
STATS = """query Stats {
  stats(top: 10) {
    since until
    totals { groups posts comments replies matchedComments matches authors keywords }
    groups { groupId name comments matchedComments lastCollectedAt }
    topKeywords { keywordId word matches comments }
    topAuthors { vkId name comments }
    days { day comments matchedComments matches }
  }
}"""
TASKS = """query Tasks($filter: TaskFilter, $first: Int!) {
  tasks(filter: $filter, first: $first) {
    totalCount
    edges { cursor node { id kind state priority attempts cancelRequested progress { done total message }
                          createdAt startedAt finishedAt updatedAt error result group { id name } } }
    pageInfo { hasNextPage endCursor }
  }
}"""
GROUPS = """query Groups {
  groups(first: 50) {
    totalCount
    edges { node { id vkId screenName name isClosed membersCount active maxPosts commentsCount
                   monitoring { enabled intervalMinutes nextRunAt lastRunAt lastSuccessAt lastError } } }
    pageInfo { hasNextPage endCursor }
  }
}"""
KEYWORDS_QUERY = """query Keywords($filter: KeywordFilter) {
  keywords(first: 100, filter: $filter) {
    totalCount
    edges { node { id word category active caseSensitive wholeWord morphology matchesCount } }
    pageInfo { hasNextPage endCursor }
  }
}"""
SET_STATE = """mutation SetState($ids: [ID!]!, $viewed: Boolean, $archived: Boolean) {
  setCommentState(ids: $ids, viewed: $viewed, archived: $archived) {
    comments { id viewed archived } errors { code message field }
  }
}"""
ADD_KEYWORDS = """mutation AddKeywords($input: [KeywordInput!]!) {
  addKeywords(input: $input) {
    results { word keyword { id word } errors { code message field } }
    keywords { id } errors { code message field }
  }
}"""
UPDATE_KEYWORD = """mutation UpdateKeyword($id: ID!, $input: UpdateKeywordInput!) {
  updateKeyword(id: $id, input: $input) { keyword { id word category active } errors { code message field } }
}"""
START_PARSE = """mutation StartParse($input: StartParseInput!) {
  startParse(input: $input) { tasks { id state group { id } } errors { code message field } }
}"""
START_ANALYZE = """mutation StartAnalyze($input: StartAnalyzeInput) {
  startAnalyze(input: $input) { task { id state } errors { code message field } }
}"""
ADD_GROUPS = """mutation AddGroups($refs: [String!]!) {
  addGroups(refs: $refs) { results { ref group { id screenName } errors { code message } } errors { code message } }
}"""
SUB_TASK_EVENTS = "subscription TaskEvents { taskEvents { id kind state updatedAt progress { done total message } } }"
SUB_TASK_PROGRESS = """subscription TaskProgress($id: ID!) {
  taskProgress(id: $id) { id state updatedAt progress { done total message } } }"""
SUB_COMMENT_MATCHED = """subscription CommentMatched($filter: CommentFilter) {
  commentMatched(filter: $filter) {
    id text publishedAt group { id name } matches { keyword { id word } matchedText } } }"""


# --- measuring ------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Recorder:
    """What one process measured since its last snapshot."""

    def __init__(self) -> None:
        self.latency: dict[str, list[float]] = defaultdict(list)  # kind -> seconds
        self.filters: dict[str, list[float]] = defaultdict(list)  # comments' filter -> seconds (not totals)
        self.status: Counter = Counter()  # (kind, HTTP status or "no response: X")
        self.codes: Counter = Counter()  # (kind, errors[].extensions.code)
        self.user_codes: Counter = Counter()  # (kind, UserError.code)
        self.sub_events: Counter = Counter()  # subscription -> events
        self.sub_meta: Counter = Counter()  # (subscription, connects | completed | failed | errors)
        self.sub_lag: dict[str, list[float]] = defaultdict(list)  # receive time - updatedAt
        self.examples: dict[str, str] = {}  # one example message per kind of trouble

    def example(self, key: str, text: str) -> None:
        if key not in self.examples and len(self.examples) < 50:
            self.examples[key] = text[:600]

    def take(self) -> dict:
        snapshot = {name: value for name, value in vars(self).items()}
        type(self).__init__(self)
        return snapshot


class Totals:
    """Everything measured in the run, merged from every process's snapshots."""

    def __init__(self) -> None:
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.filters: dict[str, list[float]] = defaultdict(list)
        self.status: Counter = Counter()
        self.codes: Counter = Counter()
        self.user_codes: Counter = Counter()
        self.sub_events: Counter = Counter()
        self.sub_meta: Counter = Counter()
        self.sub_lag: dict[str, list[float]] = defaultdict(list)
        self.examples: dict[str, str] = {}
        self.window: dict[str, list[float]] = defaultdict(list)  # since the last periodic line
        self.client_requests = 0

    def merge(self, snap: dict) -> None:
        for name in ("latency", "filters", "sub_lag"):
            for key, values in snap[name].items():
                getattr(self, name)[key].extend(values)
        for key, values in snap["latency"].items():
            self.window[key].extend(values)
        for name in ("status", "codes", "user_codes", "sub_events", "sub_meta"):
            getattr(self, name).update(snap[name])
        for key, text in snap["examples"].items():
            self.examples.setdefault(key, text)

    def requests(self) -> int:
        return sum(len(v) for v in self.latency.values())

    def status_5xx(self) -> int:
        return sum(n for (_, s), n in self.status.items() if isinstance(s, int) and s >= 500)

    def graphql_errors(self) -> int:
        return sum(self.codes.values())


class Api:
    """GraphQL over HTTP with the measurements: one request, its latency, status and errors."""

    def __init__(self, client: httpx.AsyncClient, url: str, token: str, rec: Recorder) -> None:
        self.client, self.url, self.rec = client, url, rec
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    async def call(self, kind: str, query: str, variables: dict | None = None, *, filter_name: str | None = None
                   ) -> dict | None:
        body = orjson.dumps({"query": query, "variables": variables or {}})
        started = time.perf_counter()
        try:
            response = await self.client.post(self.url, content=body, headers=self.headers)
        except httpx.HTTPError as e:
            seconds = time.perf_counter() - started
            self.rec.latency[kind].append(seconds)
            key = f"no response: {type(e).__name__}"
            self.rec.status[(kind, key)] += 1
            self.rec.example(f"{kind} {key}", f"after {seconds:.1f} s: {e!r}")
            return None
        seconds = time.perf_counter() - started
        self.rec.latency[kind].append(seconds)
        if filter_name is not None:
            self.rec.filters[filter_name].append(seconds)
        self.rec.status[(kind, response.status_code)] += 1
        try:
            payload = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            self.rec.example(f"{kind} HTTP {response.status_code} (not JSON)", response.text)
            return None
        if response.status_code != 200:
            self.rec.example(f"{kind} HTTP {response.status_code}", response.text)
        for error in payload.get("errors") or []:
            code = (error.get("extensions") or {}).get("code") or "NO_CODE"
            self.rec.codes[(kind, code)] += 1
            self.rec.example(f"{kind} {code}", json.dumps(error, ensure_ascii=False))
        data = payload.get("data")
        if isinstance(data, dict) and query.lstrip().startswith("mutation"):
            self._user_errors(kind, data)
        return data

    def _user_errors(self, kind: str, value: Any) -> None:
        """A mutation payload's expected failures (``UserError``s), per item ones included."""
        if isinstance(value, list):
            for item in value:
                self._user_errors(kind, item)
        elif isinstance(value, dict):
            for key, item in value.items():
                if key == "errors" and isinstance(item, list):
                    for error in item:
                        self.rec.user_codes[(kind, error.get("code"))] += 1
                        text = json.dumps(error, ensure_ascii=False)
                        self.rec.example(f"{kind} user error {error.get('code')}", text)
                else:
                    self._user_errors(kind, item)


# --- the clients ----------------------------------------------------------------------------


@dataclass
class ClientConfig:
    url: str
    ws_url: str
    token: str
    deadline: float  # wall clock
    clients: int
    group_ids: list[str]
    keyword_ids: list[str]
    seed: int
    index: int
    think: float
    subscriptions: dict[str, int] = field(default_factory=dict)  # kind -> sockets in this process


def _filters(cfg: ClientConfig, rng: random.Random) -> tuple[str, dict | None]:
    base = datetime.now(UTC)
    roll = rng.random()
    if roll < 0.25:
        return "none", None
    if roll < 0.40:
        return "matched", {"matched": True}
    if roll < 0.52:
        return "text", {"text": rng.choice(TEXT_SEARCHES)}
    if roll < 0.64:
        return "group", {"groupIds": [rng.choice(cfg.group_ids)]}
    if roll < 0.76:
        since = base - timedelta(days=rng.uniform(7, WORLD_DAYS + 30))
        until = since + timedelta(days=rng.choice((1, 7, 30)))
        return "dates", {"since": since.isoformat(), "until": until.isoformat()}
    if roll < 0.86:
        return "keyword", {"keywordIds": [rng.choice(cfg.keyword_ids)]}
    if roll < 0.94:  # the review queue
        return "review", {"matched": True, "viewed": False, "archived": False, "groupIds": [rng.choice(cfg.group_ids)]}
    return "group+text", {"groupIds": [rng.choice(cfg.group_ids)], "text": rng.choice(TEXT_SEARCHES)}


def _order(rng: random.Random) -> dict | None:
    roll = rng.random()
    if roll < 0.8:
        return None
    return {"field": "LIKES" if roll < 0.9 else "MATCHES_COUNT", "direction": "DESC"}


async def _browse(api: Api, cfg: ClientConfig, rng: random.Random, seen: list[str]) -> None:
    """A page of comments, then (often) the next pages by cursor; sometimes a deep dive."""
    first = 100 if rng.random() < 0.5 else 10
    name, flt = _filters(cfg, rng)
    roll = rng.random()
    pages = 1 if roll < 0.4 else rng.randint(2, 5) if roll < 0.9 else rng.randint(10, 40)
    order = _order(rng)
    after = None
    for page in range(pages):
        if page and time.time() >= cfg.deadline:
            return
        counted = page == 0 and first == 10 and rng.random() < 0.3
        kind = f"comments{first}" + (".next" if page else ".count" if counted else "")
        data = await api.call(kind, COMMENTS_COUNTED if counted else COMMENTS,
                              {"first": first, "after": after, "filter": flt, "orderBy": order}, filter_name=name)
        if not data or not data.get("comments"):
            return
        connection = data["comments"]
        edges = connection["edges"]
        if edges:
            seen[:] = [e["node"]["id"] for e in edges[: 20]]
        if not connection["pageInfo"]["hasNextPage"]:
            return
        after = connection["pageInfo"]["endCursor"]


async def _client(cfg: ClientConfig, api: Api, rng: random.Random, shared: dict) -> None:
    seen: list[str] = []
    ops = [("browse", 60), ("stats", 8), ("tasks", 8), ("groups", 5), ("keywords", 5), ("setCommentState", 6),
           ("updateKeyword", 0.7), ("addKeywords", 0.3)]
    names, weights = zip(*ops, strict=True)
    while time.time() < cfg.deadline:
        op = rng.choices(names, weights)[0]
        if op == "browse":
            await _browse(api, cfg, rng, seen)
        elif op == "stats":
            await api.call("stats", STATS)
        elif op == "tasks":
            flt = rng.choice([None, {"kinds": ["PARSE"]}, {"states": ["RUNNING", "QUEUED"]},
                              {"groupIds": [rng.choice(cfg.group_ids)]}])
            await api.call("tasks", TASKS, {"filter": flt, "first": rng.choice((10, 20, 50))})
        elif op == "groups":
            await api.call("groups", GROUPS)
        elif op == "keywords":
            keyword_filter = rng.choice([None, None, {"active": True}, {"category": "pets"}, {"text": "до"}])
            await api.call("keywords", KEYWORDS_QUERY, {"filter": keyword_filter})
        elif op == "setCommentState":
            if not seen:
                continue
            ids = rng.sample(seen, min(len(seen), rng.randint(1, 5)))
            variables: dict[str, Any] = {"ids": ids, "viewed": rng.random() < 0.7}
            if rng.random() < 0.3:
                variables["archived"] = rng.random() < 0.5
            await api.call("setCommentState", SET_STATE, variables)
        elif op == "updateKeyword":
            kid = rng.choice(cfg.keyword_ids)
            await api.call("updateKeyword", UPDATE_KEYWORD,
                           {"id": kid, "input": {"category": rng.choice(("pets", "town", "kitchen", "bikes", "soak"))}})
        elif op == "addKeywords":
            shared["added"] += 1
            word = f"soakword{cfg.index}x{shared['added']}x{rng.randrange(10**6)}"
            batch = [{"word": word, "category": "soak"}]
            if rng.random() < 0.5:  # and a duplicate of a seeded one: a DUPLICATE UserError, by design
                batch.append({"word": rng.choice(KEYWORDS)[0]})
            await api.call("addKeywords", ADD_KEYWORDS, {"input": batch})
        if cfg.think:
            await asyncio.sleep(rng.expovariate(1 / cfg.think))


async def _running_parse(api: Api) -> str | None:
    data = await api.call("tasks", TASKS, {"filter": {"kinds": ["PARSE"], "states": ["RUNNING"]}, "first": 10})
    edges = (data or {}).get("tasks", {}).get("edges") or []
    return edges[0]["node"]["id"] if edges else None


async def _subscription(cfg: ClientConfig, api: Api, rec: Recorder, kind: str, number: int) -> None:
    """One long-lived subscription on its own socket; a new one when the server completes it."""
    label = f"{kind}#{number}"
    while time.time() < cfg.deadline:
        variables: dict[str, Any] = {}
        if kind == "taskProgress":
            task_id = await _running_parse(api)
            if task_id is None:
                await asyncio.sleep(2)
                continue
            query, variables = SUB_TASK_PROGRESS, {"id": task_id}
        elif kind == "taskEvents":
            query = SUB_TASK_EVENTS
        elif kind == "commentMatched":
            query = SUB_COMMENT_MATCHED
            if number % 2:  # every other one filtered by a keyword
                variables = {"filter": {"keywordIds": [cfg.keyword_ids[number % len(cfg.keyword_ids)]]}}
        else:
            raise ValueError(kind)
        try:
            async with connect(cfg.ws_url, subprotocols=[Subprotocol("graphql-transport-ws")], compression=None,
                               open_timeout=30, ping_interval=None, max_queue=None) as ws:
                await ws.send(orjson.dumps({"type": "connection_init",
                                            "payload": {"Authorization": f"Bearer {cfg.token}"}}).decode())
                ack = orjson.loads(await asyncio.wait_for(ws.recv(), 30))
                if ack.get("type") != "connection_ack":
                    rec.sub_meta[(kind, "refused")] += 1
                    rec.example(f"{kind} refused", str(ack))
                    await asyncio.sleep(2)
                    continue
                rec.sub_meta[(kind, "connects")] += 1
                items = 0
                await ws.send(orjson.dumps({"id": "1", "type": "subscribe",
                                            "payload": {"query": query, "variables": variables}}).decode())
                while True:
                    remaining = cfg.deadline - time.time()
                    if remaining <= 0:
                        break
                    try:
                        raw = await asyncio.wait_for(ws.recv(), remaining)
                    except TimeoutError:
                        break
                    received = time.time()
                    message = orjson.loads(raw)
                    mtype = message.get("type")
                    if mtype == "next":
                        payload = message.get("payload") or {}
                        if payload.get("errors"):
                            rec.sub_meta[(kind, "errors")] += 1
                            rec.example(f"{kind} error in next", json.dumps(payload["errors"], ensure_ascii=False))
                        item = (payload.get("data") or {}).get(kind)
                        if item is None:
                            continue
                        rec.sub_events[kind] += 1
                        items += 1
                        # taskProgress's first item is the task as it is, stored a while ago.
                        if item.get("updatedAt") and not (kind == "taskProgress" and items == 1):
                            stored = datetime.fromisoformat(item["updatedAt"]).timestamp()
                            rec.sub_lag[kind].append(received - stored)
                    elif mtype == "ping":
                        await ws.send('{"type":"pong"}')
                    elif mtype == "complete":
                        rec.sub_meta[(kind, "completed")] += 1
                        break
                    elif mtype == "error":
                        rec.sub_meta[(kind, "errors")] += 1
                        rec.example(f"{kind} error", str(message)[:600])
                        break
        except Exception as e:  # a bench reports, it does not stop at the first failure
            if time.time() < cfg.deadline:
                rec.sub_meta[(kind, "failed")] += 1
                rec.example(f"{kind} {type(e).__name__}", f"{label}: {e!r}")
                await asyncio.sleep(1)
        if kind != "taskProgress" and time.time() < cfg.deadline:
            await asyncio.sleep(0.5)  # completed by the server (a slow subscriber is dropped): again


async def _client_main(cfg: ClientConfig, out: Any) -> None:
    rec = Recorder()
    rng = random.Random(cfg.seed)
    limits = httpx.Limits(max_connections=cfg.clients + 8, max_keepalive_connections=cfg.clients + 8)
    async with httpx.AsyncClient(timeout=REQUEST_TIMEOUT, limits=limits) as client:
        api = Api(client, cfg.url, cfg.token, rec)
        shared = {"added": 0}
        workers = [asyncio.create_task(_client(cfg, api, random.Random(rng.random()), shared))
                   for _ in range(cfg.clients)]
        number = 0
        for kind, count in cfg.subscriptions.items():
            for _ in range(count):
                workers.append(asyncio.create_task(_subscription(cfg, api, rec, kind, number + cfg.index)))
                number += 1

        async def flush() -> None:
            while True:
                await asyncio.sleep(SAMPLE_EVERY)
                out.put(("snapshot", cfg.index, rec.take()))

        flusher = asyncio.create_task(flush())
        try:
            results = await asyncio.gather(*workers, return_exceptions=True)
            for result in results:
                if isinstance(result, BaseException):
                    rec.example(f"client crashed {type(result).__name__}",
                                "".join(traceback.format_exception(result))[-1500:])
        finally:
            flusher.cancel()
            out.put(("snapshot", cfg.index, rec.take()))


def client_process(cfg: ClientConfig, out: Any) -> None:
    os.nice(BACKGROUND_NICE)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    try:
        asyncio.run(_client_main(cfg, out))
        out.put(("done", cfg.index, None))
    except BaseException as e:
        out.put(("crashed", cfg.index, "".join(traceback.format_exception(e))[-3000:]))


# --- the stack ------------------------------------------------------------------------------


def _tree(pid: int) -> list[int]:
    """The process and its descendants (threads' children included)."""
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        with contextlib.suppress(OSError):
            for tid in os.listdir(f"/proc/{current}/task"):
                with contextlib.suppress(OSError):
                    todo += [int(c) for c in Path(f"/proc/{current}/task/{tid}/children").read_text().split()]
    return pids


def rss_mb(pid: int) -> tuple[float, int]:
    """VmRSS of the process and its children, in MB, and how many processes that is."""
    total, count = 0, 0
    for p in _tree(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
                    count += 1
                    break
    return total / 1024, count


def sched_times(pid: int) -> tuple[float, float]:
    """Seconds a process's threads ran, and waited for a CPU while runnable (/proc/.../schedstat)."""
    ran = waited = 0
    with contextlib.suppress(OSError):
        for tid in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                fields = Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()
                ran, waited = ran + int(fields[0]), waited + int(fields[1])
    return ran / 1e9, waited / 1e9


def machine_times() -> tuple[float, float, float]:
    """Seconds of CPU time the whole machine spent busy, stolen by the hypervisor, and in all."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    tick = os.sysconf("SC_CLK_TCK")
    return (user + nice + system + irq + softirq) / tick, steal / tick, sum(fields) / tick


class CpuMeter:
    """CPU used (and, per process, time spent runnable but waiting for a CPU) by named groups of
    processes since the soak started. Processes that appear later count from their start;
    processes that end keep what they used."""

    def __init__(self) -> None:
        self.last: dict[int, tuple[float, float]] = {}
        self.used: defaultdict[str, float] = defaultdict(float)  # group -> seconds on a CPU
        self.waited: defaultdict[str, float] = defaultdict(float)  # group -> seconds runnable, waiting
        self.machine0 = machine_times()
        self.machine: tuple[float, ...] = (0.0, 0.0, 0.0)
        self.first = True

    def sample(self, groups: dict[str, list[int]]) -> None:
        for name, pids in groups.items():
            for pid in pids:
                ran, waited = sched_times(pid)
                before = self.last.get(pid, (ran, waited) if self.first else (0.0, 0.0))
                if ran >= before[0]:
                    self.used[name] += ran - before[0]
                    self.waited[name] += max(0.0, waited - before[1])
                self.last[pid] = (ran, waited)
        self.first = False
        now = machine_times()
        self.machine = tuple(a - b for a, b in zip(now, self.machine0, strict=True))

    def snapshot(self) -> dict:
        return {"used": dict(self.used), "waited": dict(self.waited), "machine": self.machine}


def cpu_between(marks: list[tuple[float, dict]], start: float, end: float) -> dict:
    """Per group: % of a core used and % of the time waiting for a CPU, between the samples
    nearest ``start`` and ``end``; and the machine: busy and stolen, % of all its cores."""
    a = min(marks, key=lambda m: abs(m[0] - start))
    b = min(marks, key=lambda m: abs(m[0] - end))
    wall = b[0] - a[0]
    if wall <= 0:
        return {}
    out: dict[str, Any] = {}
    for name, used in b[1]["used"].items():
        out[name] = {"cpu_pct": round((used - a[1]["used"].get(name, 0.0)) / wall * 100, 1),
                     "wait_pct": round((b[1]["waited"].get(name, 0.0) - a[1]["waited"].get(name, 0.0)) / wall * 100, 1)}
    busy, steal, total = (y - x for x, y in zip(a[1]["machine"], b[1]["machine"], strict=True))
    cores = os.cpu_count() or 1
    out["machine"] = {"busy_pct": round(busy / total * 100, 1) if total else None,
                      "steal_pct": round(steal / total * 100, 1) if total else None, "cores": cores}
    return out


@dataclass
class Series:
    """(seconds since the soak started, value) samples."""

    points: list[tuple[float, float]] = field(default_factory=list)

    def at(self, t: float) -> float:
        """The first sample at or after ``t`` (the last one if none is)."""
        for when, value in self.points:
            if when >= t:
                return value
        return self.points[-1][1] if self.points else float("nan")

    def slope_per_min(self, since: float) -> float:
        pts = [(t, v) for t, v in self.points if t >= since]
        if len(pts) < 3:
            return float("nan")
        mt = sum(t for t, _ in pts) / len(pts)
        mv = sum(v for _, v in pts) / len(pts)
        var = sum((t - mt) ** 2 for t, _ in pts)
        return sum((t - mt) * (v - mv) for t, v in pts) / var * 60 if var else float("nan")


class Stack:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.workdir = Path(tempfile.mkdtemp(prefix="vkcp-soak-"))
        self.database = f"vkcp_soak_{uuid.uuid4().hex[:8]}"
        self.prefix = f"{self.database}:"
        self.procs: dict[str, subprocess.Popen] = {}
        self.env: dict[str, str] = {}
        self.token = ""
        self.api_port = free_port()
        self.vk_port = free_port()
        self.dsn = POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{self.database}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}/graphql"

    def log(self, name: str) -> Path:
        return self.workdir / f"{name}.log"

    async def start(self) -> None:
        a = self.args
        self.procs["emulator"] = spawn(
            ["-m", "infrastructure.vk.emulator", "--port", str(self.vk_port), "--rps", str(a.rps), "--world",
             "generated", "--seed", str(a.seed), "--communities", str(a.communities), "--posts", str(a.posts),
             "--comments", str(a.comments), "--closed-communities", "0", "--closed-comment-posts", "1",
             "--token", VK_TOKEN],
            {**os.environ, "PYTHONPATH": str(ROOT)}, self.log("emulator"))
        os.setpriority(os.PRIO_PROCESS, self.procs["emulator"].pid, BACKGROUND_NICE)
        admin = await asyncpg.connect(POSTGRES_ADMIN_URL)
        try:
            await admin.execute(f'CREATE DATABASE "{self.database}"')
        finally:
            await admin.close()
        self.env = {**os.environ, "PYTHONPATH": str(ROOT), "VKCP_DATA_DIR": str(self.workdir / "data"),
                    "VKCP_DATABASE_URL": self.dsn.replace("postgresql://", "postgresql+asyncpg://", 1),
                    "VKCP_REDIS_URL": REDIS_URL, "VKCP_REDIS_PREFIX": self.prefix,
                    "VKCP_VK_API_URL": f"http://127.0.0.1:{self.vk_port}/method", "VKCP_VK_TOKENS": VK_TOKEN,
                    "VKCP_VK_RPS": str(a.rps), "VKCP_VK_SANDBOX": "0", "VKCP_AUTH": "on",
                    "VKCP_LOG_LEVEL": a.log_level}
        cli = [sys.executable, "-m", "entrypoints.cli"]
        subprocess.run([*cli, "migrate"], env=self.env, cwd=ROOT, check=True, capture_output=True)
        done = subprocess.run([*cli, "token", "create", "--name", "soak", "--role", "admin"], env=self.env, cwd=ROOT,
                              check=True, capture_output=True, text=True)
        self.token = done.stdout.strip().splitlines()[-1].strip()
        self.procs["serve"] = spawn(["-m", "entrypoints.cli", "serve", "--port", str(self.api_port)], self.env,
                                    self.log("serve"))
        self.procs["worker"] = spawn(["-m", "entrypoints.cli", "worker"], self.env, self.log("worker"))
        os.setpriority(os.PRIO_PROCESS, self.procs["worker"].pid, BACKGROUND_NICE)
        await wait_http(f"http://127.0.0.1:{self.vk_port}/_stats", self.procs["emulator"], self.log("emulator"), 300)
        await wait_http(f"http://127.0.0.1:{self.api_port}/healthz", self.procs["serve"], self.log("serve"), 120)

    def dead(self) -> list[str]:
        return [f"{name} (exit {p.returncode})" for name, p in self.procs.items() if p.poll() is not None]

    async def comments_stored(self) -> int:
        conn = await asyncpg.connect(self.dsn)
        try:
            return await conn.fetchval("SELECT count(*) FROM comments")
        finally:
            await conn.close()

    async def sql(self, query: str) -> list:
        conn = await asyncpg.connect(self.dsn)
        try:
            return await conn.fetch(query)
        finally:
            await conn.close()

    async def close(self) -> None:
        for proc in self.procs.values():
            stop(proc)
        with contextlib.suppress(Exception):
            admin = await asyncpg.connect(POSTGRES_ADMIN_URL)
            try:
                await admin.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
            finally:
                await admin.close()
        with contextlib.suppress(Exception):
            redis = Redis.from_url(REDIS_URL)
            try:
                # ARQ keeps job and result keys as arq:job:<queue name>..., the queue name under our prefix.
                keys = [k async for k in redis.scan_iter(match=f"*{self.prefix}*", count=1000)]
                for start in range(0, len(keys), 500):
                    await redis.delete(*keys[start : start + 500])
            finally:
                await redis.aclose()


_CHAINED = ("During handling of the above exception, another exception occurred:",
            "The above exception was the direct cause of the following exception:")


def log_trouble(path: Path, start: int = 0, end: int | None = None, limit: int = 8) -> tuple[Counter, list[str]]:
    """What a process logged at warning level and above: structured records by event, and plain
    tracebacks (a chain of them is one incident) by the line before them and their last
    exception. Counts by (level, what), and a few examples."""
    counts: Counter = Counter()
    examples: list[str] = []
    if not path.exists():
        return counts, examples
    incidents: list[dict] = []
    current: dict | None = None
    previous = ""  # the last non-blank plain line
    with path.open("rb") as f:
        f.seek(start)
        text = f.read(None if end is None else max(0, end - start)).decode(errors="replace")
    for line in text.splitlines():
        stripped = line.strip()
        if line.startswith("{"):
            current, previous = None, ""
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                level, event = str(record.get("level", "")).lower(), str(record.get("event"))
                if level in ("warning", "error", "critical", "exception"):
                    counts[(level, event)] += 1
                    if len(examples) < limit and counts[(level, event)] == 1:
                        examples.append(line[:1200])
            continue
        if stripped.startswith("Traceback (most recent call last)"):
            if current is None or previous not in _CHAINED:
                if current is not None and current["raised"] and current["raised"][-1] == previous:
                    current["raised"].pop()  # that line was the next incident's header
                header = previous if previous and not previous.startswith("Traceback") else ""
                current = {"header": header, "raised": [], "text": [header] if header else []}
                incidents.append(current)
        elif current is not None and stripped and not line[0].isspace() and stripped not in _CHAINED:
            current["raised"].append(stripped)
        elif current is None and re.search(r"\b(ERROR|CRITICAL)\b", line):
            counts[("error", stripped[:160])] += 1
        if current is not None and len(current["text"]) < 80:
            current["text"].append(line)
        if stripped:
            previous = stripped
    for incident in incidents:
        what = " / ".join(filter(None, [incident["header"][:100],
                                        (incident["raised"] or ["?"])[-1][:160]]))
        counts[("traceback", what)] += 1
        if len(examples) < limit and counts[("traceback", what)] == 1:
            examples.append("\n".join(incident["text"])[-1500:])
    return counts, examples


# --- the run --------------------------------------------------------------------------------


class Driver:
    """Keeps ``--parses`` PARSE tasks active (the next community, or a full re-parse of one
    already collected) and starts an ANALYZE task every ``--analyze-every`` seconds."""

    def __init__(self, api: Api, group_ids: list[str], keyword_ids: list[str], target: int, rng: random.Random):
        self.api, self.group_ids, self.keyword_ids, self.target, self.rng = api, group_ids, keyword_ids, target, rng
        self.next_group = 0
        self.started: set[str] = set()
        self.parses_started: Counter[str] = Counter()  # "first" | "full"
        self.analyzes = 0
        # Running tasks' progress: id -> (kind, progress seen, when it last changed: monotonic)
        self.progress: dict[str, tuple[str, tuple, float]] = {}

    def stalled(self, seconds: float = STALL_AFTER) -> dict[str, tuple[str, tuple, float]]:
        """Tasks still running whose progress has not moved for ``seconds``: id -> (kind, progress, stalled for)."""
        now = time.monotonic()
        return {tid: (kind, seen, now - since) for tid, (kind, seen, since) in self.progress.items()
                if now - since >= seconds}

    async def parses(self) -> None:
        data = await self.api.call("tasks", TASKS, {"filter": {"states": ["QUEUED", "RUNNING"]}, "first": 50})
        if data is None:
            return
        nodes = [e["node"] for e in data["tasks"]["edges"]]
        now = time.monotonic()
        running = {n["id"]: (n["kind"], (n["progress"]["done"], n["progress"]["message"]))
                   for n in nodes if n["state"] == "RUNNING"}
        for tid, (kind, seen) in running.items():
            before = self.progress.get(tid)
            self.progress[tid] = (kind, seen, before[2] if before and before[1] == seen else now)
        for tid in set(self.progress) - set(running):
            del self.progress[tid]
        active = {n["group"]["id"] for n in nodes if n["kind"] == "PARSE" and n["group"]}
        for _ in range(len(self.group_ids)):
            if len(active) >= self.target:
                break
            gid = self.group_ids[self.next_group % len(self.group_ids)]
            self.next_group += 1
            if gid in active:
                continue
            full = gid in self.started
            result = await self.api.call("startParse", START_PARSE, {"input": {"groupIds": [gid], "full": full}})
            if result and result["startParse"]["tasks"]:
                active.add(gid)
                self.started.add(gid)
                self.parses_started["full re-parse" if full else "first parse"] += 1

    async def run(self, t0: float, duration: float, analyze_every: float) -> None:
        """Parses checked every 5 s; the first ANALYZE at a quarter of the run, then every
        ``analyze_every`` seconds."""
        next_analyze = duration * 0.25 if analyze_every else math.inf
        while (now := time.monotonic() - t0) < duration:
            try:
                await self.parses()
                if now >= next_analyze:
                    await self.analyze()
                    next_analyze = now + analyze_every
            except Exception as e:  # recorded; the run goes on
                self.api.rec.example(f"driver {type(e).__name__}", repr(e))
            await asyncio.sleep(5)

    async def analyze(self) -> None:
        data = await self.api.call("tasks", TASKS, {"filter": {"kinds": ["ANALYZE"], "states": ["QUEUED", "RUNNING"]},
                                                    "first": 5})
        if data is None or data["tasks"]["edges"]:
            return
        kid = self.rng.choice(self.keyword_ids)
        result = await self.api.call("startAnalyze", START_ANALYZE, {"input": {"keywordIds": [kid], "priority": 3}})
        if result and result["startAnalyze"]["task"]:
            self.analyzes += 1


def world_size(args: argparse.Namespace) -> None:
    """Posts per community such that collecting everything outlasts the soak: about
    ``--collect-rate`` comments/s (about 1,150 on this machine under the soak's load), 41 comments
    per post with replies (at ``--comments 20``), and a margin of 30%."""
    if args.posts is None:
        per_post = 2.05 * args.comments
        wanted = args.collect_rate * (args.duration + 60) * 1.3
        args.posts = max(100, math.ceil(wanted / per_post / args.communities))


def fmt_ms(seconds: float) -> str:
    return "-" if math.isnan(seconds) else f"{seconds * 1000:.0f}" if seconds >= 0.1 else f"{seconds * 1000:.1f}"


async def run(args: argparse.Namespace) -> int:
    stack = Stack(args)
    totals = Totals()
    rng = random.Random(args.seed)
    processes: list[multiprocessing.process.BaseProcess] = []
    broke: list[str] = []
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    print(f"soak: {args.duration} s, {args.clients} clients in {args.processes} processes, "
          f"world {args.communities} communities x {args.posts} posts x ~{args.comments} comments (+ replies), "
          f"VK {args.rps} req/s, {args.parses} parses kept active; logs in {stack.workdir}", flush=True)
    main_rec = Recorder()
    before = machine_times()
    await asyncio.sleep(3)
    busy, _steal, total = (b - a for a, b in zip(before, machine_times(), strict=True))
    idle_busy_pct = args.idle_busy_pct = round(busy / total * 100, 1)
    print(f"machine before the soak: {idle_busy_pct}% of {os.cpu_count()} cores busy (other work), "
          f"load average {Path('/proc/loadavg').read_text().split()[0]}", flush=True)
    try:
        t_setup = time.monotonic()
        await stack.start()
        serve_pid, worker_pid = stack.procs["serve"].pid, stack.procs["worker"].pid
        limits = httpx.Limits(max_connections=8)
        async with httpx.AsyncClient(timeout=REQUEST_TIMEOUT, limits=limits) as client:
            api = Api(client, stack.url, stack.token, main_rec)
            refs = [f"community{k + 1}" for k in range(args.communities)]
            added = await api.call("addGroups", ADD_GROUPS, {"refs": refs})
            group_ids = [r["group"]["id"] for r in (added or {}).get("addGroups", {}).get("results", []) if r["group"]]
            if len(group_ids) != args.communities:
                raise RuntimeError(f"addGroups failed: {added}")
            words = [{"word": w, "category": c} for w, c in KEYWORDS]
            kw = await api.call("addKeywords", ADD_KEYWORDS, {"input": words})
            keyword_ids = [k["id"] for k in (kw or {}).get("addKeywords", {}).get("keywords", [])]
            if len(keyword_ids) != len(KEYWORDS):
                raise RuntimeError(f"addKeywords failed: {kw}")
            driver = Driver(api, group_ids, keyword_ids, args.parses, rng)
            await driver.parses()
            t_parse = time.monotonic()
            # Some data before the clock starts: comment pages of an empty database say little.
            while (stored := await stack.comments_stored()) < args.prefill and time.monotonic() - t_parse < 180:
                if stack.dead():
                    raise RuntimeError(f"died while prefilling: {stack.dead()}")
                await asyncio.sleep(1)
            if stored < args.prefill:
                tasks = await api.call("tasks", TASKS, {"first": 10})
                listed = json.dumps(tasks, ensure_ascii=False)[:1500]
                raise RuntimeError(f"only {stored} comments stored {time.monotonic() - t_setup:.0f} s after the start: "
                                   f"the collection does not progress; tasks: {listed}")
            print(f"stack up and {stored:,} comments stored in {time.monotonic() - t_setup:.0f} s; "
                  f"API pid {serve_pid}, worker pid {worker_pid}", flush=True)
            main_rec.take()  # setup requests are not part of the soak

            t0_wall = time.time()
            t0 = time.monotonic()
            deadline = t0_wall + args.duration
            shares = [
                args.clients // args.processes + (i < args.clients % args.processes) for i in range(args.processes)
            ]
            subs = {"taskEvents": args.subscriptions, "taskProgress": args.subscriptions,
                    "commentMatched": args.subscriptions}
            for i, n in enumerate(shares):
                mine = {k: v // args.processes + (i < v % args.processes) for k, v in subs.items()}
                cfg = ClientConfig(url=stack.url, ws_url=stack.url.replace("http://", "ws://"), token=stack.token,
                                   deadline=deadline, clients=n, group_ids=group_ids, keyword_ids=keyword_ids,
                                   seed=args.seed * 1000 + i, index=i, think=args.think_ms / 1000, subscriptions=mine)
                proc = context.Process(target=client_process, args=(cfg, out), daemon=True)
                proc.start()
                processes.append(proc)

            rss = {"serve": Series(), "worker": Series()}
            nproc = {"serve": 1, "worker": 1}
            meter = CpuMeter()
            cpu_marks: list[tuple[float, dict]] = []  # (t, meter snapshot)
            monitor = await asyncpg.connect(stack.dsn)  # counts comments, finds this database's backends

            async def cpu_groups() -> dict[str, list[int]]:
                backends = await monitor.fetch("SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> $2",
                                               stack.database, monitor.get_server_pid())
                return {"serve": _tree(serve_pid), "worker": _tree(worker_pid),
                        "emulator": [stack.procs["emulator"].pid],
                        "clients": [p.pid for p in processes if p.pid], "bench": [os.getpid()],
                        "postgres": [r["pid"] for r in backends]}

            meter.sample(await cpu_groups())
            cpu_marks.append((0.0, meter.snapshot()))
            stored_series = Series([(0.0, float(stored))])
            finished: set[int] = set()
            next_sample = next_count = 0.0
            next_report = REPORT_EVERY
            last_report = 0.0
            timeline: list[dict] = []  # one row per periodic line
            log_marks: dict[str, int] | None = None  # log sizes as the load ends
            gone_at: float | None = None
            # The driver's requests wait in line with the clients': its own task, so sampling keeps time.
            driving = asyncio.create_task(driver.run(t0, args.duration, args.analyze_every))
            while True:
                now = time.monotonic() - t0
                while True:  # the clients' snapshots
                    try:
                        what, index, payload = out.get_nowait()
                    except queue_module.Empty:
                        break
                    if what == "snapshot":
                        totals.merge(payload)
                        totals.client_requests += sum(len(v) for v in payload["latency"].values())
                    elif what == "done":
                        finished.add(index)
                    else:
                        finished.add(index)
                        broke.append(f"client process {index} crashed:\n{payload}")
                if len(finished) == len(processes) or now > args.duration + 90:
                    break
                if gone := [i for i, p in enumerate(processes) if p.exitcode is not None and i not in finished]:
                    gone_at = gone_at or now  # a few seconds for its last messages to come through the queue
                    if now - gone_at > 5:
                        broke.append(f"client processes {gone} exited (codes {[processes[i].exitcode for i in gone]}) "
                                     "without finishing")
                        break
                if dead := stack.dead():
                    broke.append(f"stack process died: {', '.join(dead)}")
                    break
                if now >= next_sample and now <= args.duration + 1:
                    for name, pid in (("serve", serve_pid), ("worker", worker_pid)):
                        mb, count = rss_mb(pid)
                        rss[name].points.append((now, mb))
                        nproc[name] = max(nproc[name], count)
                    meter.sample(await cpu_groups())
                    cpu_marks.append((now, meter.snapshot()))
                    next_sample += SAMPLE_EVERY
                if now >= args.duration - 2 and log_marks is None:  # before the clients disconnect
                    log_marks = {name: stack.log(name).stat().st_size for name in ("serve", "worker", "emulator")}
                if now < args.duration and now >= next_count:
                    stored_series.points.append((now, float(await monitor.fetchval("SELECT count(*) FROM comments"))))
                    next_count += COUNT_EVERY
                totals.merge(main_rec.take())
                if now >= next_report and now <= args.duration + 1:
                    requests, errors_5xx = totals.requests(), totals.status_5xx()
                    t_prev = last_report
                    last_report = now
                    window = [v for values in totals.window.values() for v in values]
                    page = totals.window.get("comments100", [])
                    used = cpu_between(cpu_marks, t_prev, now)
                    row = {"t": round(now), "rps": round(len(window) / (now - t_prev), 1),
                           "p50_ms": round(percentile(window, 0.5) * 1000),
                           "p99_ms": round(percentile(window, 0.99) * 1000),
                           "page100_p50_ms": round(percentile(page, 0.5) * 1000) if page else None,
                           "comments": int(stored_series.points[-1][1]),
                           "rss_api_mb": round(rss["serve"].points[-1][1]),
                           "rss_worker_mb": round(rss["worker"].points[-1][1]),
                           "api_cpu_pct": used.get("serve", {}).get("cpu_pct"),
                           "api_wait_pct": used.get("serve", {}).get("wait_pct"),
                           "pg_cpu_pct": used.get("postgres", {}).get("cpu_pct"),
                           "machine_busy_pct": used.get("machine", {}).get("busy_pct")}
                    if window and row["api_cpu_pct"] is not None:
                        row["api_cpu_ms_per_req"] = round(row["api_cpu_pct"] * 10 * (now - t_prev) / len(window), 1)
                    timeline.append(row)
                    totals.window.clear()
                    stalled = "".join(f" | STALLED: task {tid} {kind} at {seen[1]!r} for {for_s:.0f} s"
                                      for tid, (kind, seen, for_s) in driver.stalled().items())
                    print(f"[{now:4.0f} s] {requests:,} req, last {now - t_prev:.0f} s: {row['rps']}/s, p50 "
                          f"{row['p50_ms']} ms, p99 {row['p99_ms']} ms (page of 100: p50 {row['page100_p50_ms']} ms) | "
                          f"5xx {errors_5xx}, GraphQL errors {totals.graphql_errors()} | subscription events "
                          f"{sum(totals.sub_events.values()):,} | comments stored {row['comments']:,} | RSS API "
                          f"{row['rss_api_mb']} MB, worker {row['rss_worker_mb']} MB | CPU: API {row['api_cpu_pct']}% "
                          f"(+{row['api_wait_pct']}% waiting for a core), machine {row['machine_busy_pct']}% busy"
                          + stalled, flush=True)
                    next_report += REPORT_EVERY
                await asyncio.sleep(0.5)
            driving.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await driving
            elapsed = min(time.monotonic() - t0, args.duration)
            stored_now = float(await monitor.fetchval("SELECT count(*) FROM comments"))
            stored_series.points.append((time.monotonic() - t0, stored_now))
            await monitor.close()
            cpu_use = cpu_between(cpu_marks, 0.0, args.duration)
            tasks_by_state = await stack.sql(
                "SELECT kind, state, count(*) AS n FROM tasks GROUP BY kind, state ORDER BY kind, state")
            task_rows = await stack.sql(
                "SELECT id, kind, state, group_id, params, progress_done, progress_total, progress_message, error, "
                "EXTRACT(EPOCH FROM (coalesce(finished_at, now()) - started_at)) AS seconds FROM tasks ORDER BY id")
        for spawned in processes:
            spawned.join(10)
        totals.merge(main_rec.take())
        if args.clients and totals.client_requests == 0:
            broke.append("the clients made no request")
        report(args, stack, totals, elapsed, rss, nproc, cpu_use, stored_series, driver, tasks_by_state, task_rows,
               timeline, log_marks or {}, broke)
    except Exception:
        traceback.print_exc()
        broke.append("the benchmark raised")
        for name in ("serve", "worker", "emulator"):
            if stack.log(name).exists():
                print(f"--- {name} log (tail) ---\n{stack.log(name).read_text(errors='replace')[-2000:]}")
    finally:
        for spawned in processes:
            if spawned.is_alive():
                spawned.terminate()
        await stack.close()
    if broke:
        print("BENCHMARK BROKE: " + "; ".join(broke))
        return 1
    return 0


def report(args, stack: Stack, totals: Totals, elapsed: float, rss: dict[str, Series], nproc: dict[str, int],
           cpu: dict, stored: Series, driver: Driver, tasks_by_state, task_rows, timeline: list[dict],
           log_marks: dict[str, int], broke) -> None:
    print()
    print(f"=== soak: {elapsed:.0f} s, {args.clients} clients ===")
    requests = totals.requests()
    print(f"requests: {requests:,} ({requests / elapsed:.1f}/s)")
    print()
    print(f"{'operation':<20} {'requests':>9} {'req/s':>7} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8} "
          f"{'errors':>7}")
    per_kind = {}
    bad_by_kind: Counter[str] = Counter()
    for (kind, status), n in totals.status.items():
        if status != 200:
            bad_by_kind[kind] += n
    for (kind, _), n in totals.codes.items():
        bad_by_kind[kind] += n
    for kind in sorted(totals.latency, key=lambda k: -len(totals.latency[k])):
        values = totals.latency[kind]
        row = {"requests": len(values), "rps": round(len(values) / elapsed, 2),
               "p50_ms": round(percentile(values, 0.5) * 1000, 1), "p95_ms": round(percentile(values, 0.95) * 1000, 1),
               "p99_ms": round(percentile(values, 0.99) * 1000, 1), "max_ms": round(max(values) * 1000, 1),
               "errors": bad_by_kind[kind]}
        per_kind[kind] = row
        print(f"{kind:<20} {len(values):>9,} {row['rps']:>7.1f} {fmt_ms(percentile(values, 0.5)):>8} "
              f"{fmt_ms(percentile(values, 0.95)):>8} {fmt_ms(percentile(values, 0.99)):>8} "
              f"{fmt_ms(max(values)):>8} {bad_by_kind[kind]:>7}")
    print()
    print("over time (each row: the 30 s before it):")
    print(f"  {'t s':>5} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'page100 p50':>11} {'comments':>10} "
          f"{'RSS API':>8} {'RSS worker':>10} {'API CPU%':>8} {'API wait%':>9} {'CPU ms/req':>10} {'PG CPU%':>8} "
          f"{'machine%':>8}")
    for row in timeline:
        print(f"  {row['t']:>5} {row['rps']:>7} {row['p50_ms']:>7} {row['p99_ms']:>7} "
              f"{row['page100_p50_ms'] or '-':>11} "
              f"{row['comments']:>10,} {row['rss_api_mb']:>8} {row['rss_worker_mb']:>10} {row['api_cpu_pct']:>8} "
              f"{row['api_wait_pct']:>9} {row.get('api_cpu_ms_per_req', '-'):>10} {row['pg_cpu_pct']:>8} "
              f"{row['machine_busy_pct']:>8}")
    print()
    print("comment pages by filter (every page size and depth):")
    for name in sorted(totals.filters, key=lambda k: -len(totals.filters[k])):
        values = totals.filters[name]
        print(f"  {name:<12} {len(values):>8,}  p50 {fmt_ms(percentile(values, 0.5)):>6} ms  "
              f"p95 {fmt_ms(percentile(values, 0.95)):>6} ms  p99 {fmt_ms(percentile(values, 0.99)):>6} ms  "
              f"max {fmt_ms(max(values)):>6} ms")
    print()
    by_status: Counter[str] = Counter()
    for (_, status), n in totals.status.items():
        by_status[str(status)] += n
    by_code: Counter[str] = Counter()
    for (_, code), n in totals.codes.items():
        by_code[code] += n
    by_user_code: Counter[str] = Counter()
    for (_, code), n in totals.user_codes.items():
        by_user_code[str(code)] += n
    print("HTTP status: " + ", ".join(f"{s}: {n:,}" for s, n in sorted(by_status.items())))
    print("errors[].extensions.code: " + (", ".join(f"{c}: {n:,}" for c, n in by_code.most_common()) or "none"))
    for (kind, code), n in sorted(totals.codes.items()):
        print(f"  {kind}: {code} x{n}")
    print("mutations' UserError codes: " + (", ".join(f"{c}: {n:,}" for c, n in by_user_code.most_common()) or "none")
          + " (addKeywords sends a duplicate of a seeded word half the time: DUPLICATE is expected)")
    print()
    print("subscriptions (events received; connects, completed by the server, failures):")
    subs = {}
    for kind in ("taskEvents", "taskProgress", "commentMatched"):
        meta = {m: totals.sub_meta[(kind, m)] for m in ("connects", "completed", "failed", "refused", "errors")}
        lag = totals.sub_lag.get(kind, [])
        subs[kind] = {"events": totals.sub_events[kind], **meta,
                      "lag_p50_ms": round(percentile(lag, 0.5) * 1000, 1) if lag else None,
                      "lag_p99_ms": round(percentile(lag, 0.99) * 1000, 1) if lag else None}
        lag_text = f", delivery lag p50 {fmt_ms(percentile(lag, 0.5))} ms p99 {fmt_ms(percentile(lag, 0.99))} ms" \
            if lag else ""
        print(f"  {kind:<15} {totals.sub_events[kind]:>9,} events; " + ", ".join(f"{m} {n}" for m, n in meta.items())
              + lag_text)
    print()
    first, last = stored.points[0], stored.points[-1]
    rate = (last[1] - first[1]) / max(1e-9, last[0] - first[0])
    marks = [stored.at(args.duration * f) for f in (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)]
    print(f"collection: comments stored {first[1]:,.0f} at the start -> {last[1]:,.0f} at the end "
          f"({rate:.0f}/s); at 0/20/40/60/80/100%: " + " / ".join(f"{m:,.0f}" for m in marks))
    print(f"  parses started by the driver: {dict(driver.parses_started)}; ANALYZE tasks started: {driver.analyzes}")
    print("  tasks by kind and state: " + ", ".join(f"{r['kind']} {r['state']}: {r['n']}" for r in tasks_by_state))
    for r in task_rows:
        what = f"group {r['group_id']}" if r["kind"] == "PARSE" else json.dumps(r["params"], ensure_ascii=False)
        took = f"{r['seconds']:.0f} s" if r["seconds"] is not None else "not started"
        print(f"    task {r['id']} {r['kind']} {what}: {r['state']} after {took}, progress {r['progress_done']:,}/"
              f"{r['progress_total'] or 0:,} ({r['progress_message']})"
              + (f", error: {r['error']}" if r["error"] else ""))
    stalled = driver.stalled()
    for tid, (kind, seen, for_s) in stalled.items():
        print(f"  STALLED: task {tid} ({kind}) still running, progress unchanged ({seen[0]:,}, {seen[1]!r}) "
              f"for the last {for_s:.0f} s")
    world_total = args.communities * args.posts * 2.05 * args.comments
    if last[1] >= 0.97 * world_total:
        print(f"  note: the world (~{world_total:,.0f} comments) was collected completely before the end; "
              "the rest were full re-parses (raise --posts for growth to the end)")
    print()
    warm_t = args.duration * args.warmup
    results_rss = {}
    for name, label in (("serve", "API (vkcp serve)"), ("worker", "worker (vkcp worker)")):
        series = rss[name]
        warm, end = series.at(warm_t), series.points[-1][1]
        peak = max(v for _, v in series.points)
        growth = (end - warm) / warm * 100
        slope = series.slope_per_min(warm_t)
        results_rss[name] = {"start_mb": round(series.points[0][1], 1), "warm_mb": round(warm, 1),
                             "end_mb": round(end, 1), "peak_mb": round(peak, 1), "growth_pct": round(growth, 2),
                             "slope_mb_per_min": round(slope, 2), "processes": nproc[name]}
        print(f"RSS {label}: {series.points[0][1]:.0f} MB at the start, {warm:.0f} MB after warm-up "
              f"({args.warmup:.0%} = {warm_t:.0f} s), {end:.0f} MB at the end, peak {peak:.0f} MB; growth after "
              f"warm-up {growth:+.1f}% (trend after warm-up {slope:+.2f} MB/min); processes {nproc[name]}")
    rss_marks = " | ".join(f"{t:.0f}s {rss['serve'].at(t):.0f}/{rss['worker'].at(t):.0f}"
                       for t in [args.duration * f / 10 for f in range(11)])
    print(f"  RSS API/worker MB over time: {rss_marks}")
    print()
    machine = cpu.get("machine", {})
    print(f"CPU over the soak (% of one core; the machine has {machine.get('cores')}): " + ", ".join(
        f"{name} {v['cpu_pct']:.0f}%" + (f" (+{v['wait_pct']:.0f}% runnable, waiting for a core)"
                                         if name in ("serve", "worker") else "")
        for name, v in cpu.items() if name != "machine"))
    if "serve" in cpu and requests:
        per_request = cpu["serve"]["cpu_pct"] * 10 * elapsed / requests
        cpu["serve"]["ms_per_request"] = round(per_request, 1)
        print(f"  API process CPU per request: {per_request:.0f} ms (what it would need of a core of its own: "
              f"{requests / elapsed * per_request / 10:.0f}% at this rate; a whole core would serve "
              f"~{1000 / per_request:.0f} req/s of this mix)")
    mine = sum(v["cpu_pct"] for name, v in cpu.items() if name != "machine")
    busy = (machine.get("busy_pct") or 0) * (machine.get("cores") or 1)
    print(f"  machine: {machine.get('busy_pct')}% of all cores busy, {machine.get('steal_pct')}% stolen by the "
          f"hypervisor; processes outside this soak (other work on the machine, PostgreSQL's own) "
          f"~{max(0.0, busy - mine):.0f}% of a core")
    print()
    trouble: dict[str, dict] = {}
    for name in ("serve", "worker", "emulator"):
        mark = log_marks.get(name)
        for part, (since, until) in (("during the load", (0, mark)),
                                     ("after it (clients disconnecting, the stack stopping)", (mark or 0, None))):
            if mark is None and since:
                continue
            counts, examples = log_trouble(stack.log(name), since, until)
            if counts:
                trouble[f"{name} {part}"] = {f"{lvl}: {ev}": n for (lvl, ev), n in counts.most_common(20)}
                print(f"{name} log {part}, warnings and errors: " + "; ".join(
                    f"{ev} ({lvl}) x{n}" for (lvl, ev), n in counts.most_common(10)))
                for text in examples[:2]:
                    print("    " + text[-700:].replace("\n", "\n    "))
    if totals.examples:
        print("examples of what went wrong (first of each kind):")
        for key, text in list(totals.examples.items())[:20]:
            print(f"  [{key}] {text[:400]}")
    print()
    n5xx = totals.status_5xx()
    verdicts = {
        "no HTTP 5xx": (n5xx == 0, f"{n5xx} responses with 5xx"),
        "API RSS growth after warm-up < 10%": (results_rss["serve"]["growth_pct"] < TARGET_GROWTH_PCT,
                                               f"{results_rss['serve']['growth_pct']:+.1f}%"),
        "worker RSS growth after warm-up < 10%": (results_rss["worker"]["growth_pct"] < TARGET_GROWTH_PCT,
                                                  f"{results_rss['worker']['growth_pct']:+.1f}%"),
    }
    for name, (ok, detail) in verdicts.items():
        print(f"  [{'PASS' if ok else 'FAIL'}] {name}: {detail}")
    no_response = sum(n for (_, s), n in totals.status.items() if isinstance(s, str))
    if no_response:
        print(f"  (also {no_response} requests got no response at all)")
    summary = {
        "duration_s": round(elapsed, 1), "clients": args.clients, "requests": requests,
        "rps": round(requests / elapsed, 1), "operations": per_kind,
        "filters": {k: {"requests": len(v), "p50_ms": round(percentile(v, 0.5) * 1000, 1),
                        "p99_ms": round(percentile(v, 0.99) * 1000, 1)} for k, v in totals.filters.items()},
        "http_status": dict(by_status), "graphql_error_codes": dict(by_code), "user_error_codes": dict(by_user_code),
        "http_5xx": n5xx, "no_response": no_response, "subscriptions": subs,
        "comments_stored": {"start": int(first[1]), "end": int(last[1]), "per_s": round(rate, 1)},
        "stalled_tasks": {tid: {"kind": kind, "progress": seen[1], "for_s": round(for_s)}
                          for tid, (kind, seen, for_s) in stalled.items()},
        "parses_started": dict(driver.parses_started), "analyzes_started": driver.analyzes,
        "tasks": {f"{r['kind']}:{r['state']}": r["n"] for r in tasks_by_state},
        "task_list": [{"id": r["id"], "kind": r["kind"], "state": r["state"],
                       "seconds": round(float(r["seconds"] or 0)), "done": r["progress_done"],
                       "total": r["progress_total"]} for r in task_rows],
        "rss": results_rss, "cpu": cpu, "machine_busy_before_pct": args.idle_busy_pct, "timeline": timeline,
        "log_trouble": trouble,
        "verdicts": {name: "PASS" if ok else "FAIL" for name, (ok, _) in verdicts.items()},
        "broke": broke,
    }
    print("SOAK_SUMMARY " + json.dumps(summary, ensure_ascii=False, default=str))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=600, help="seconds of load")
    parser.add_argument("--clients", type=int, default=30, help="concurrent HTTP clients (closed loop)")
    parser.add_argument("--processes", type=int, default=2, help="client processes the clients are spread over")
    parser.add_argument("--subscriptions", type=int, default=2, help="WebSocket subscriptions of each kind")
    parser.add_argument("--think-ms", type=float, default=0.0, help="mean pause between a client's requests")
    parser.add_argument("--warmup", type=float, default=0.2, help="share of the duration before RSS is the baseline")
    parser.add_argument("--parses", type=int, default=2, help="PARSE tasks kept active")
    parser.add_argument("--analyze-every", type=float, default=180.0, help="seconds between ANALYZE tasks (0: none)")
    parser.add_argument("--communities", type=int, default=6)
    parser.add_argument("--posts", type=int, default=None, help="per community (default: sized from the duration)")
    parser.add_argument("--comments", type=int, default=20, help="mean top-level comments per post")
    parser.add_argument("--collect-rate", type=float, default=1200.0,
                        help="comments/s the worker is expected to store under load (sizes the world)")
    parser.add_argument("--prefill", type=int, default=5000, help="comments stored before the clock starts")
    parser.add_argument("--rps", type=float, default=3.0, help="VK requests per second per token")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--log-level", default="WARNING", help="VKCP_LOG_LEVEL of serve and worker")
    args = parser.parse_args()
    world_size(args)
    # A TERM (timeout, CI) unwinds like Ctrl-C, so the processes, database and Redis keys go.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        code = asyncio.run(run(args))
    except KeyboardInterrupt:
        code = 130
    sys.exit(code)


if __name__ == "__main__":
    main()
