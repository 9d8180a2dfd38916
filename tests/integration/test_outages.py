"""Outages in the middle of a real collection, on the production stack, with real processes.

Every test runs its own system: a private PostgreSQL cluster and a private Redis
(``tests.faults``; the shared services are never touched), the VK emulator at 3 requests/s
with single calls (``VKCP_VK_EXECUTE=0``: a collection takes a while), ``vkcp migrate``,
``vkcp token create``, ``vkcp serve`` and one or two ``vkcp worker``. The test talks to the
API over HTTP GraphQL only: ``addGroup``, ``startParse``, and during the whole run a light
client loop (``comments``, ``stats``, ``tasks``, ``setCommentState``) that records every HTTP
status and ``errors[].extensions.code``. A monitor reads the task's progress and the stored
comment count straight from PostgreSQL twice a second.

Then a dependency breaks in the middle of the collection (Redis restarted empty, down 20 s,
flapping; PostgreSQL restarted, down 10 s, its connections killed; a worker killed with -9),
and each collection scenario must end with:

- the task SUCCEEDED, and every comment of the emulator's world stored exactly once;
- no answer without a JSON error code: every HTTP 5xx carries ``errors[].extensions.code``,
  nothing is a 500 or INTERNAL_SERVER_ERROR, and the API always answers (503
  SERVICE_UNAVAILABLE is fine);
- no service process dead (except the worker the test killed);
- recovery: from the moment the dependency answered again until the task's progress (done
  posts or stored comments) moves again at most ``RECOVERY_BOUND`` seconds (printed: run
  with ``-s``); for a killed worker, another one makes its first progress on the task within
  ``TAKEOVER_BOUND`` seconds of the kill. The recovery is the system's own: the test never calls
  ``recover_orphaned`` or restarts anything but the dependency.

Besides: a parse started while Redis is down moves within seconds of its return (its job was
lost; the workers re-offer it as soon as they see Redis again); an idle worker must outlive a
Redis restart and then run a parse; after a Redis
restart ``addGroup`` must work within seconds and an open ``taskEvents`` subscription must
not go silent. A no-fault baseline checks the harness itself (and that healthy progress
never stands still long enough to make a recovery time meaningless), and a harness test
checks that the dependencies really go down and come back.

A failure lists every problem at once, with the fault timeline, the progress timeline (with
the runner's heartbeat), the API answers and the tails of the serve/worker logs, taken after
the processes were stopped so that their shutdown shows too (all logs stay in tmp_path).

    .venv/bin/pytest -q tests/integration/test_outages.py -s      # ~16 minutes
    .venv/bin/pytest -q -m "not faults"                            # everything else
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from graphql_api.ids import NodeType, parse_id
from infrastructure.vk.world import generated_world
from tests.faults import PrivatePostgres, PrivateRedis, private_postgres, private_redis  # noqa: F401
from tests.faults import tail as file_tail
from tests.processes import free_port, spawn, stop, wait_http

pytestmark = pytest.mark.faults

ROOT = Path(__file__).resolve().parents[2]
VK_TOKEN = "vk1.a.outage-test-token"
DATABASE = "vkcp"

# Issue #19: collection moves again within 15 s of Redis's return (41 s measured before), and
# another worker takes a killed one's task over within 40 s (71 s measured before).
RECOVERY_BOUND = 15.0  # seconds from a dependency's return until the collection moves again
# How long to look for that movement before calling the run stalled: the lease (20 s) plus more
# than a minute, so a recovery that only comes from a once-a-minute scheduler is still measured.
RECOVERY_WATCH = 90.0
TAKEOVER_BOUND = 40.0  # seconds from a worker's kill -9 until another worker's first progress on its task
SAMPLE_EVERY = 0.5  # the progress monitor's period


# --- the world ------------------------------------------------------------------------------


@dataclass(frozen=True)
class WorldSpec:
    """The emulator's generated world. At 3 single calls a second a post with comments costs
    about a third of a second (more with long reply threads)."""

    posts: int = 130
    comments: int = 12
    communities: int = 1
    seed: int = 31

    def build(self):
        return generated_world(self.seed, communities=self.communities, posts_per_community=self.posts,
                               comments_per_post=self.comments, closed_comment_posts=0, closed_communities=0)

    def emulator_args(self, port: int) -> list[str]:
        return ["-m", "infrastructure.vk.emulator", "--port", str(port), "--rps", "3", "--world", "generated",
                "--seed", str(self.seed), "--communities", str(self.communities), "--posts", str(self.posts),
                "--comments", str(self.comments), "--closed-comment-posts", "0", "--closed-communities", "0",
                "--token", VK_TOKEN]


# --- watching the run -----------------------------------------------------------------------


@dataclass
class Sample:
    t: float
    state: str
    done: int
    total: int | None
    stored: int
    attempts: int
    worker: str | None
    heartbeat_age: float | None  # seconds since the runner last renewed its lease

    @property
    def progress(self) -> tuple[int, int]:
        return self.done, self.stored


class ProgressMonitor:
    """The task's row and the stored comment count, read from PostgreSQL every half second
    (reconnecting whenever the database went away)."""

    def __init__(self, dsn: str, task_id: int, origin: float) -> None:
        self.dsn, self.task_id, self.origin = dsn, task_id, origin
        self.samples: list[Sample] = []
        self.errors: list[tuple[float, str]] = []
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        import asyncpg

        conn = None
        while True:
            started = time.monotonic()
            try:
                if conn is None or conn.is_closed():
                    conn = await asyncpg.connect(self.dsn, timeout=2)
                row = await conn.fetchrow(
                    "SELECT state, progress_done, progress_total, attempts, worker_id, "
                    "extract(epoch FROM now() - heartbeat_at)::float AS heartbeat_age, "
                    "(SELECT count(*) FROM comments) AS stored FROM tasks WHERE id = $1", self.task_id, timeout=2)
                if row is not None:
                    self.samples.append(Sample(time.monotonic(), row["state"], row["progress_done"],
                                               row["progress_total"], row["stored"], row["attempts"],
                                               row["worker_id"], row["heartbeat_age"]))
            except asyncio.CancelledError:
                if conn is not None:
                    conn.terminate()
                raise
            except Exception as e:  # the database is down: that is the point
                if not self.errors or self.errors[-1][1] != type(e).__name__:
                    self.errors.append((time.monotonic(), type(e).__name__))
                if conn is not None:
                    conn.terminate()
                conn = None
            await asyncio.sleep(max(0.0, SAMPLE_EVERY - (time.monotonic() - started)))

    @property
    def last(self) -> Sample | None:
        return self.samples[-1] if self.samples else None

    def moved_after(self, t0: float) -> float | None:
        """Seconds from ``t0`` until progress moved: the first sample read after ``t0`` is the
        baseline (reads from before an outage may miss writes made just before it), and the
        first later sample that differs is the movement. 0 when the task had already
        SUCCEEDED; None when it had failed (it will never move again)."""
        after = [s for s in self.samples if s.t >= t0]
        if not after:
            return None
        base = after[0]
        if base.state == "SUCCEEDED":
            return 0.0
        if base.state in ("FAILED", "CANCELLED"):
            return None
        for s in after[1:]:
            if s.progress != base.progress or (s.state != base.state and s.state == "SUCCEEDED"):
                return s.t - t0
        return None

    async def wait_moved(self, t0: float, timeout: float) -> float | None:
        deadline = t0 + timeout
        while time.monotonic() < deadline:
            moved = self.moved_after(t0)
            if moved is not None:
                return moved
            if self.last is not None and self.last.state in ("FAILED", "CANCELLED"):
                return None
            await asyncio.sleep(0.1)
        return self.moved_after(t0)

    async def wait(self, predicate: Callable[[Sample], bool], timeout: float) -> Sample | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.last is not None and predicate(self.last):
                return self.last
            await asyncio.sleep(0.1)
        return None

    async def wait_terminal(self, timeout: float, stall: float | None = None) -> Sample | None:
        """The first sample in a final state; None after ``timeout``, or as soon as progress
        has stood still for ``stall`` seconds (no point waiting out the timeout then)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            last = self.last
            if last is not None and last.state in ("SUCCEEDED", "FAILED", "CANCELLED"):
                return last
            if stall is not None and self.still_for() > stall:
                return None
            await asyncio.sleep(0.1)
        return None

    def still_for(self) -> float:
        """Seconds since progress last changed (0 before the first reading)."""
        if not self.samples:
            return 0.0
        current = self.samples[-1].progress
        since = self.samples[-1].t
        for s in reversed(self.samples):
            if s.progress != current:
                break
            since = s.t
        return time.monotonic() - since

    def longest_stall(self, since: float, until: float) -> float:
        """The longest time progress stood still between two samples in [since, until], while
        the task was running."""
        window = [s for s in self.samples if since <= s.t <= until]
        longest, still_since = 0.0, None
        for prev, cur in itertools.pairwise(window):
            if cur.progress == prev.progress and cur.state == "RUNNING":
                still_since = still_since if still_since is not None else prev.t
                longest = max(longest, cur.t - still_since)
            else:
                still_since = None
        return longest

    def timeline(self, every: float = 5.0) -> str:
        """A sample every few seconds, every change of state, attempts or worker, and every gap
        in the readings (the database was down)."""
        lines, shown, prev = [], None, None
        for s in self.samples:
            changed = prev is None or (s.state, s.attempts, s.worker) != (prev.state, prev.attempts, prev.worker)
            gap = prev is not None and s.t - prev.t > 2 * SAMPLE_EVERY + 1
            if changed or gap or shown is None or s.t - shown.t >= every or s is self.samples[-1]:
                note = " (no readings for %.1fs before)" % (s.t - prev.t) if gap else ""
                beat = f"{s.heartbeat_age:.0f}s ago" if s.heartbeat_age is not None else "-"
                lines.append(f"  t={s.t - self.origin:7.1f}s {s.state:9} done={s.done}/{s.total} "
                             f"stored={s.stored} attempts={s.attempts} worker={s.worker} heartbeat={beat}{note}")
                shown = s
            prev = s
        errors = ", ".join(f"t={t - self.origin:.1f}s {e}" for t, e in self.errors[:20])
        return "\n".join(lines) + (f"\n  monitor read errors: {errors}" if errors else "")


# --- the API client loop --------------------------------------------------------------------


@dataclass
class Call:
    t: float
    op: str
    status: int | None  # None: no HTTP answer at all
    codes: tuple[str | None, ...]  # errors[].extensions.code (None: an error without a code)
    user_errors: tuple[str, ...]  # a mutation payload's errors[].code
    detail: str = ""

    @property
    def violation(self) -> str | None:
        if self.status is None:
            return "no HTTP answer"
        if self.status >= 500 and (not self.codes or None in self.codes):
            return f"HTTP {self.status} without an error code"
        if self.status == 500:
            return "HTTP 500"
        if "INTERNAL_SERVER_ERROR" in self.codes:
            return "INTERNAL_SERVER_ERROR"
        return None


COMMENTS_Q = "query { comments(first: 20) { totalCount edges { node { id vkId viewed } } } }"
STATS_Q = "query { stats { totals { posts comments replies authors } } }"
TASKS_Q = "query { tasks(first: 10) { edges { node { id state attempts progress { done total } } } } }"
SET_STATE_M = """mutation($ids: [ID!]!, $viewed: Boolean) {
  setCommentState(ids: $ids, viewed: $viewed) { comments { id viewed } errors { code message } } }"""


class ApiProbe:
    """A user clicking around the console while the collection runs: one request at a time,
    a few a second, every answer recorded."""

    def __init__(self, system: System) -> None:
        self.system = system
        self.calls: list[Call] = []
        self._task: asyncio.Task | None = None
        self._comment_ids: list[str] = []
        self._flip = False
        self._stopping = False

    def start(self) -> None:
        self._stopping = False
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """After the request in flight (cancelling it would show up in the server's log as a
        client that went away)."""
        if self._task is not None:
            self._stopping = True
            with contextlib.suppress(TimeoutError):  # wait_for cancelled it
                await asyncio.wait_for(self._task, 50)

    async def _run(self) -> None:
        async with httpx.AsyncClient(timeout=45) as client:
            while not self._stopping:
                for op in ("comments", "stats", "tasks", "setCommentState"):
                    if self._stopping:
                        return
                    await self._one(client, op)
                    await asyncio.sleep(0.2)

    async def _one(self, client: httpx.AsyncClient, op: str) -> None:
        if op == "comments":
            query, variables = COMMENTS_Q, {}
        elif op == "stats":
            query, variables = STATS_Q, {}
        elif op == "tasks":
            query, variables = TASKS_Q, {}
        else:
            if not self._comment_ids:
                return
            self._flip = not self._flip
            query, variables = SET_STATE_M, {"ids": self._comment_ids[:3], "viewed": self._flip}
        t = time.monotonic()
        try:
            response = await client.post(self.system.graphql_url, json={"query": query, "variables": variables},
                                          headers={"Authorization": f"Bearer {self.system.token}"})
        except httpx.HTTPError as e:
            self.calls.append(Call(t, op, None, (), (), f"{type(e).__name__}: {e}"[:300]))
            await asyncio.sleep(0.5)
            return
        codes: tuple[str | None, ...] = ()
        user_errors: tuple[str, ...] = ()
        detail = ""
        try:
            body = response.json()
        except ValueError:
            body = None
            detail = response.text[:300]
        if isinstance(body, dict):
            errors = body.get("errors") or []
            codes = tuple((e.get("extensions") or {}).get("code") for e in errors if isinstance(e, dict))
            if errors:
                detail = "; ".join(str(e.get("message"))[:200] for e in errors[:2] if isinstance(e, dict))
            data = body.get("data") or {}
            if op == "comments" and data.get("comments"):
                self._comment_ids = [e["node"]["id"] for e in data["comments"]["edges"]] or self._comment_ids
            if op == "setCommentState" and data.get("setCommentState"):
                user_errors = tuple(e.get("code") for e in data["setCommentState"]["errors"])
                if user_errors:
                    detail = "; ".join(e.get("message", "")[:200] for e in data["setCommentState"]["errors"][:2])
        self.calls.append(Call(t, op, response.status_code, codes, user_errors, detail))

    def violations(self) -> list[Call]:
        return [c for c in self.calls if c.violation]

    def summary(self, origin: float) -> str:
        counts = Counter((c.op, c.status, c.codes, c.user_errors) for c in self.calls)
        lines = [f"  {n:5} x {op} -> HTTP {status} codes={list(codes)} userErrors={list(ue)}"
                 for (op, status, codes, ue), n in sorted(counts.items(), key=lambda kv: -kv[1])]
        bad = self.violations()
        if bad:
            lines.append(f"  {len(bad)} answers break the rule; the first ones:")
            lines += [f"    t={c.t - origin:7.1f}s {c.op}: {c.violation}: {c.detail}" for c in bad[:8]]
        not_ok = [c for c in self.calls if not c.violation and (c.status != 200 or c.codes or c.user_errors)]
        if not_ok:
            lines.append("  errors with a code (allowed), the first ones:")
            lines += [f"    t={c.t - origin:7.1f}s {c.op}: HTTP {c.status} {list(c.codes or c.user_errors)} {c.detail}"
                      for c in not_ok[:5]]
        return "\n".join(lines) if lines else "  (no calls)"


# --- the system under test ------------------------------------------------------------------

_FRAME = re.compile(r"^\s+(File |\^|~)|^\s{4,}\S|^(During handling|The above exception|Traceback)")
_NOTABLE = re.compile(r"Error|Exception|failed|crashed|Connect call|Traceback|exited", re.IGNORECASE)


def render(line: str) -> str | None:
    """One log line, readable: a JSON record as ``time level event key=value ... exception's
    last line``; a traceback's frames dropped; the API's fine requests dropped (None)."""
    line = line.rstrip()
    frame = re.match(r'\s+File "([^"]+)", line (\d+), in (\S+)', line)
    if frame:  # keep the project's own frames: where it happened
        path = frame.group(1)
        if path.startswith(str(ROOT)) and "site-packages" not in path:
            return f"    at {Path(path).relative_to(ROOT)}:{frame.group(2)} {frame.group(3)}"
        return None
    if not line or _FRAME.search(line):
        return None
    try:
        record = json.loads(line)
    except ValueError:
        return line[:300]
    if not isinstance(record, dict):
        return line[:300]
    if record.get("event") == "graphql.request" and record.get("outcome") == "ok":
        return None
    exception = _exception_line(record.pop("exception", "") or "")
    head = " ".join(str(record.pop(k, "")) for k in ("timestamp", "level", "event"))
    rest = " ".join(f"{k}={v}" for k, v in record.items())
    text = f"{head} {rest}"[:300]
    return text + (f" !! {exception[:250]}" if exception else "")


def _exception_line(traceback: str) -> str:
    """A traceback's final ``SomeError: message`` line (SQLAlchemy appends notes after it)."""
    lines = [line for line in traceback.strip().splitlines() if line and not line[0].isspace()]
    for line in reversed(lines):
        if re.match(r"[\w.]+(Error|Exception|Exit|Interrupt|Timeout)\b", line):
            return line
    return lines[-1] if lines else ""


def _collapse(lines: list[str]) -> list[str]:
    """Runs of the same line, or of the same pair of lines (an error and its request line),
    but for numbers, ids and times, as one occurrence and a count."""
    keys = [re.sub(r"\b[0-9a-f]{6,}\b|\d+", "#", line) for line in lines]
    out: list[str] = []
    i = 0
    while i < len(lines):
        for size in (1, 2):
            block, n = keys[i:i + size], 1
            while len(block) == size and keys[i + n * size:i + (n + 1) * size] == block:
                n += 1
            if n > 1:
                break
        if n > 1:
            out += lines[i:i + size]
            last = lines[i + (n - 1) * size]
            out[-1] += f"   [{'this line' if size == 1 else 'these 2 lines'} x{n}, the last: {last[:27]}]"
            i += n * size
        else:
            out.append(lines[i])
            i += 1
    return out


def log_tail(path: Path, lines: int = 25) -> str:
    """The end of a service log, plus its first distinct warnings and errors (which the end
    may no longer show)."""
    try:
        raw = path.read_text(errors="replace").splitlines()
    except OSError as e:
        return f"<{e}>"
    kept = _collapse([r for r in map(render, raw) if r is not None])
    notable, seen = [], set()
    for line in kept:
        is_json_problem = re.search(r" (warning|error|critical) ", line[:60])
        if is_json_problem or (not line[:4].isdigit() and _NOTABLE.search(line)):
            key = re.sub(r"\d+", "#", line[28:140] if line[:4].isdigit() else line[:120])
            if key not in seen:
                seen.add(key)
                notable.append(line)
    out = ""
    if notable:
        out += f"  [first distinct warnings/errors: {len(notable)}]\n  " + "\n  ".join(notable[:12]) + "\n"
    return out + f"  [last {min(lines, len(kept))} lines]\n  " + "\n  ".join(kept[-lines:])


class System:
    """A whole installation of our own: private PostgreSQL + private Redis + the VK emulator
    + ``vkcp serve`` + ``vkcp worker`` processes, all with logs in ``workdir``."""

    def __init__(self, workdir: Path, postgres: PrivatePostgres, redis: PrivateRedis, world: WorldSpec) -> None:
        self.workdir, self.postgres, self.redis, self.spec = workdir, postgres, redis, world
        self.world = world.build()
        self.origin = time.monotonic()
        self.origin_wall = datetime.now(UTC)
        self.vk_port, self.api_port = free_port(), free_port()
        self.env = {**os.environ, "PYTHONPATH": str(ROOT), "VKCP_DATABASE_URL": postgres.url(DATABASE),
                    "VKCP_REDIS_URL": redis.url(0), "VKCP_REDIS_PREFIX": "vkcp:",
                    "VKCP_VK_API_URL": f"http://127.0.0.1:{self.vk_port}/method", "VKCP_VK_TOKENS": VK_TOKEN,
                    "VKCP_VK_RPS": "3", "VKCP_VK_EXECUTE": "0", "VKCP_VK_SANDBOX": "0",
                    "VKCP_DATA_DIR": str(workdir / "data"), "VKCP_AUTH": "on", "VKCP_LOG_LEVEL": "INFO"}
        self.graphql_url = f"http://127.0.0.1:{self.api_port}/graphql"
        self.token = ""
        self.emulator: subprocess.Popen | None = None
        self.server: subprocess.Popen | None = None
        self.workers: list[tuple[subprocess.Popen, Path]] = []
        self.killed: set[int] = set()  # pids the test killed on purpose
        self.events: list[tuple[float, str]] = []
        self.probe = ApiProbe(self)
        self.monitor: ProgressMonitor | None = None

    def note(self, what: str) -> float:
        t = time.monotonic()
        self.events.append((t, what))
        print(f"[outages] t={t - self.origin:6.1f}s {what}", flush=True)
        return t

    # processes

    def cli(self, *args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "entrypoints.cli", *args], cwd=ROOT, env=self.env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"vkcp {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    async def start(self, workers: int = 1) -> None:
        (self.workdir / "data").mkdir(parents=True, exist_ok=True)
        self.emulator = spawn(self.spec.emulator_args(self.vk_port), {**os.environ, "PYTHONPATH": str(ROOT)},
                              self.workdir / "emulator.log")
        await self.postgres.create_database(DATABASE)
        await asyncio.to_thread(self.cli, "migrate")
        self.token = (await asyncio.to_thread(self.cli, "token", "create", "--name", "t", "--role", "admin")
                      ).strip().splitlines()[-1]
        await wait_http(f"http://127.0.0.1:{self.vk_port}/_stats", self.emulator, self.workdir / "emulator.log")
        self.server = spawn(["-m", "entrypoints.cli", "serve", "--port", str(self.api_port)], self.env,
                            self.workdir / "serve.log")
        for _ in range(workers):
            self.start_worker()
        await asyncio.gather(wait_http(f"http://127.0.0.1:{self.api_port}/healthz", self.server,
                                       self.workdir / "serve.log"),
                             *(self.wait_worker_ready(p, log) for p, log in self.workers))
        self.note(f"system up: serve, {workers} worker(s), {self.world.total_comments()} comments in the world")

    def start_worker(self) -> subprocess.Popen:
        log = self.workdir / f"worker-{len(self.workers) + 1}.log"
        proc = spawn(["-m", "entrypoints.cli", "worker"], self.env, log)
        self.workers.append((proc, log))
        return proc

    async def wait_worker_ready(self, proc: subprocess.Popen, log: Path, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise AssertionError(f"worker exited with {proc.returncode}:\n{file_tail(log)}")
            if "Starting worker" in log.read_text(errors="replace"):
                return
            await asyncio.sleep(0.2)
        raise AssertionError(f"worker did not start:\n{file_tail(log)}")

    def kill_worker(self, proc: subprocess.Popen) -> None:
        self.killed.add(proc.pid)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)

    def dead_processes(self) -> list[str]:
        procs = [("serve", self.server, self.workdir / "serve.log"),
                 ("emulator", self.emulator, self.workdir / "emulator.log")]
        procs += [(log.stem, p, log) for p, log in self.workers]
        return [f"{name} (pid {p.pid}) exited with {p.returncode}" for name, p, _ in procs
                if p is not None and p.poll() is not None and p.pid not in self.killed]

    async def aclose(self) -> None:
        await self.probe.stop()
        if self.monitor is not None:
            await self.monitor.stop()
        await asyncio.gather(*(asyncio.to_thread(stop, proc) for proc in [p for p, _ in self.workers] + [self.server]
                               if proc is not None))
        if self.emulator is not None:
            await asyncio.to_thread(stop, self.emulator)

    # the API

    async def gql(self, query: str, timeout: float = 30, **variables: Any) -> tuple[int, dict]:
        async with httpx.AsyncClient(timeout=timeout) as client:
            response = await client.post(self.graphql_url, json={"query": query, "variables": variables},
                                         headers={"Authorization": f"Bearer {self.token}"})
        try:
            return response.status_code, response.json()
        except ValueError:
            return response.status_code, {"raw": response.text[:500]}

    async def gql_ok(self, query: str, **variables: Any) -> dict:
        status, body = await self.gql(query, **variables)
        assert status == 200 and "errors" not in body, f"HTTP {status}: {body}\n{self.diagnostics()}"
        return body["data"]

    async def add_group(self, owner_id: int) -> str:
        screen_name = self.world.groups[-owner_id].screen_name
        data = await self.gql_ok(ADD_GROUP, ref=f"https://vk.com/{screen_name}")
        assert data["addGroup"]["errors"] == [], data
        return data["addGroup"]["group"]["id"]

    async def start_parse(self, group_id: str) -> int:
        data = await self.gql_ok(START_PARSE, ids=[group_id])
        assert data["startParse"]["errors"] == [], data
        return parse_id(data["startParse"]["tasks"][0]["id"], NodeType.TASK)

    # the database, directly

    async def stored_keys(self) -> list[tuple[int, int]]:
        import asyncpg

        conn = await asyncpg.connect(self.postgres.dsn(DATABASE), timeout=10)
        try:
            return [(r["owner_id"], r["vk_id"]) for r in await conn.fetch("SELECT owner_id, vk_id FROM comments")]
        finally:
            await conn.close()

    def expected_keys(self, owner_ids: list[int] | None = None) -> set[tuple[int, int]]:
        owners = owner_ids if owner_ids is not None else self.world.open_owner_ids()
        return {(o, c) for o in owners for c in self.world.expected_comments(o)}

    # what a failure shows

    def diagnostics(self, dead: list[str] | None = None) -> str:
        parts = [f"logs in {self.workdir}; t=0 is {self.origin_wall:%H:%M:%S.%f} UTC in the logs' timestamps"]
        events = sorted(self.events + self.redis.events + self.postgres.events)
        parts.append("timeline:\n" + "\n".join(f"  t={t - self.origin:7.1f}s {what}" for t, what in events))
        dead = self.dead_processes() if dead is None else dead
        if dead:
            parts.append("dead processes:\n  " + "\n  ".join(dead))
        if self.monitor is not None:
            parts.append("progress (read from PostgreSQL):\n" + self.monitor.timeline())
        parts.append("API answers during the run:\n" + self.probe.summary(self.origin))
        parts.append("--- serve.log ---\n" + log_tail(self.workdir / "serve.log"))
        for _, log in self.workers:
            parts.append(f"--- {log.name} ---\n" + log_tail(log))
        return "\n".join(parts)


TASK_Q = "query($id: ID!) { task(id: $id) { state error attempts progress { done total message } } }"
ADD_GROUP = """mutation($ref: String!) { addGroup(ref: $ref) {
  group { id vkId screenName } errors { code message field } } }"""
START_PARSE = """mutation($ids: [ID!]!) { startParse(input: {groupIds: $ids}) {
  tasks { id state } errors { code message } } }"""


@pytest.fixture
async def make_system(tmp_path: Path, private_postgres: PrivatePostgres, private_redis: PrivateRedis,
                      ) -> AsyncIterator[Callable[..., Awaitable[System]]]:
    systems: list[System] = []

    async def make(world: WorldSpec = WorldSpec(), workers: int = 1) -> System:
        system = System(tmp_path, private_postgres, private_redis, world)
        systems.append(system)
        await system.start(workers)
        return system

    try:
        yield make
    finally:
        for system in systems:
            await system.aclose()
            assert VK_TOKEN not in "".join(file_tail(p, 10**8) for p in tmp_path.glob("*.log")), "a VK token leaked"


# --- a collection through a fault -----------------------------------------------------------


@dataclass
class Outcome:
    problems: list[str] = field(default_factory=list)
    recovery: float | None = None


Fault = Callable[[System], Awaitable[float]]  # breaks something; returns when it is back (monotonic)


async def collect_through(system: System, name: str, fault: Fault | None, *, fault_at: float = 0.15,
                          recovery_bound: float = RECOVERY_BOUND, finish_within: float = 150,
                          back: str = "the return") -> Outcome:
    """Start a parse through the API, break something once ``fault_at`` of the comments are
    stored, and check everything this module's docstring promises. Returns the outcome; the
    caller asserts (so that a scenario can add its own checks first)."""
    [owner_id] = system.world.open_owner_ids()
    expected = system.expected_keys([owner_id])
    group_id = await system.add_group(owner_id)
    task_id = await system.start_parse(group_id)
    began = system.note(f"parse started: task {task_id}, {len(expected)} comments to collect")
    system.monitor = monitor = ProgressMonitor(system.postgres.dsn(DATABASE), task_id, system.origin)
    monitor.start()
    system.probe.start()
    out = Outcome()

    returned = None
    if fault is not None:
        wanted = int(len(expected) * fault_at)
        reached = await monitor.wait(lambda s: s.stored >= wanted or (s.state != "RUNNING" and s.state != "QUEUED"), 90)
        assert reached is not None and reached.state == "RUNNING" and reached.stored < len(expected), (
            f"the collection was not under way before the fault (wanted {wanted} stored while RUNNING): "
            f"{reached}\n{system.diagnostics()}")
        system.note(f"fault: {name} (stored {reached.stored}/{len(expected)}, done {reached.done}/{reached.total})")
        returned = await fault(system)
        system.note(f"{name}: the dependency is back" if back == "the return" else f"{name}: measuring from {back}")
        moved = await monitor.wait_moved(returned, RECOVERY_WATCH)
        out.recovery = moved
        if moved is None:
            last = monitor.last
            if last is not None and last.state in ("FAILED", "CANCELLED"):
                why = f"the task ended {last.state} instead"
            else:
                why = f"no progress within {RECOVERY_WATCH:.0f}s"
            system.note(f"after {back}: {why}")
            print(f"[outages] {name}: recovery time: none ({why})", flush=True)
            out.problems.append(f"the collection did not move again after {back} ({why}; "
                                f"bound {recovery_bound:.0f}s)")
        else:
            system.note(f"progress moved {moved:.1f}s after {back}")
            print(f"[outages] {name}: recovery time {moved:.1f}s after {back} (bound {recovery_bound:.0f}s)",
                  flush=True)
            if moved > recovery_bound:
                out.problems.append(f"recovery took {moved:.1f}s after {back} > {recovery_bound:.0f}s")

    stalled = fault is not None and out.recovery is None
    final = await monitor.wait_terminal(5 if stalled else finish_within, stall=RECOVERY_WATCH)
    if final is None and not stalled and monitor.still_for() > RECOVERY_WATCH:
        system.note(f"progress stood still for {monitor.still_for():.0f}s: stopped waiting")
        out.problems.append(f"the collection stalled again after it had moved: no progress for "
                            f"{monitor.still_for():.0f}s")
    ended = system.note(f"task {task_id}: {final.state if final else 'not finished'}")
    if fault is None:
        stall = monitor.longest_stall(began, ended)
        print(f"[outages] {name}: collection took {ended - began:.1f}s; longest progress stall {stall:.1f}s",
              flush=True)
        if stall > RECOVERY_BOUND / 3:
            out.problems.append(f"healthy progress stood still for {stall:.1f}s: recovery times would mean nothing")
    await system.probe.stop()
    await monitor.stop()

    last = monitor.last
    if final is None or final.state != "SUCCEEDED":
        error = ""
        with contextlib.suppress(Exception):
            _, body = await system.gql(TASK_Q, timeout=10, id=str(task_id))
            error = f" (API: {json.dumps(body.get('data') or body, ensure_ascii=False)[:500]})"
        out.problems.append(f"task {task_id} did not SUCCEED: last seen {last.state if last else '?'} "
                            f"done={last.done if last else '?'}/{last.total if last else '?'}{error}")
    await check_comments(system, expected, out)
    check_api_and_processes(system, out)
    return out


async def check_comments(system: System, expected: set[tuple[int, int]], out: Outcome) -> None:
    try:
        keys = await system.stored_keys()
    except Exception as e:
        out.problems.append(f"could not read the stored comments: {type(e).__name__}: {e}")
        return
    duplicates = len(keys) - len(set(keys))
    if duplicates:
        out.problems.append(f"{duplicates} comments stored more than once")
    missing, extra = expected - set(keys), set(keys) - expected
    if missing or extra:
        out.problems.append(f"stored comments differ from the world's: {len(set(keys))} stored, "
                            f"{len(expected)} expected, {len(missing)} missing, {len(extra)} not in the world")


def check_api_and_processes(system: System, out: Outcome) -> None:
    bad = system.probe.violations()
    if bad:
        kinds = Counter(f"{c.op}: {c.violation}" for c in bad)
        out.problems.append(f"{len(bad)} of {len(system.probe.calls)} API answers without a proper error code: "
                            + ", ".join(f"{k} x{n}" for k, n in kinds.most_common()))
    if not system.probe.calls:
        out.problems.append("the client loop made no calls")
    dead = system.dead_processes()
    if dead:
        out.problems.append("service processes died: " + "; ".join(dead))


async def verdict(system: System, name: str, out: Outcome) -> None:
    """Fail with every problem at once. The processes are stopped (SIGTERM) first, so that the
    log tails also show how each one shut down (an ongoing job, a background task's error)."""
    if out.problems:
        dead = system.dead_processes()
        await system.aclose()
        problems = "\n".join(f"- {p}" for p in out.problems)
        pytest.fail(f"{name}:\n{problems}\n\n{system.diagnostics(dead)}", pytrace=False)


# --- the scenarios --------------------------------------------------------------------------


async def test_the_harness_breaks_and_restores_its_dependencies(private_redis, private_postgres) -> None:
    """What the scenarios rely on: a stopped dependency really refuses connections, a restarted
    Redis is empty, PostgreSQL keeps its data, and terminate_backends cuts live connections."""
    import asyncpg
    from redis.asyncio import Redis
    from redis.exceptions import ConnectionError as RedisConnectionError

    client = Redis.from_url(private_redis.url(), socket_connect_timeout=1)
    try:
        await client.set("k", "v")
        await private_redis.stop()
        with pytest.raises(RedisConnectionError):
            await client.get("k")
        await private_redis.start()
        assert await client.get("k") is None, "a restarted Redis must be empty"
        began = time.monotonic()
        up = await private_redis.flap(6, down=1, period=3)
        assert len(private_redis.outages) == 2 and all(b - a >= 1 for a, b in private_redis.outages)
        assert up >= began + 4 and await client.ping()
    finally:
        await client.aclose()

    await private_postgres.create_database("probe")
    dsn = private_postgres.dsn("probe")
    conn = await asyncpg.connect(dsn)
    await conn.execute("CREATE TABLE t (x int); INSERT INTO t VALUES (1)")
    assert await private_postgres.terminate_backends("probe") == 1
    with pytest.raises(Exception):  # noqa: B017  (any error: the connection is gone)
        await conn.fetchval("SELECT 1")
    conn.terminate()
    await private_postgres.stop()
    with pytest.raises(OSError):
        await asyncpg.connect(dsn, timeout=2)
    await private_postgres.start()
    conn = await asyncpg.connect(dsn)
    up = await private_postgres.restart()
    with pytest.raises(Exception):  # noqa: B017  (any error: the connection is gone)
        await conn.fetchval("SELECT 1")
    conn.terminate()
    assert up <= time.monotonic()
    began = time.monotonic()
    await private_postgres.down_for(2)
    assert time.monotonic() - began >= 2
    conn = await asyncpg.connect(dsn)
    try:
        assert await conn.fetchval("SELECT x FROM t") == 1, "PostgreSQL keeps its data across restarts"
    finally:
        await conn.close()


async def test_no_fault_baseline(make_system) -> None:
    """The harness itself: the same run without a fault succeeds, exactly, with steady progress
    (so a recovery time measured against it means something) and clean API answers."""
    system = await make_system()
    out = await collect_through(system, "baseline", None)
    await verdict(system, "baseline", out)


async def test_redis_restarted_empty_mid_collection(make_system) -> None:
    system = await make_system()

    async def fault(s: System) -> float:
        return await s.redis.restart(down_seconds=0.5)

    await verdict(system, "redis restarted empty", await collect_through(system, "redis restarted empty", fault))


async def test_redis_down_20s_mid_collection(make_system) -> None:
    system = await make_system()

    async def fault(s: System) -> float:
        return await s.redis.down_for(20)

    await verdict(system, "redis down 20s", await collect_through(system, "redis down 20s", fault))


async def test_redis_flapping_mid_collection(make_system) -> None:
    """Down 2 s of every 5 for a minute, with two workers."""
    system = await make_system(WorldSpec(posts=220), workers=2)

    async def fault(s: System) -> float:
        up = await s.redis.flap(60, down=2, period=5)
        s.note(f"redis flapped {len(s.redis.outages)} times")
        return up

    await verdict(system, "redis flapping", await collect_through(system, "redis flapping", fault, fault_at=0.05))


async def test_postgres_restarted_mid_collection(make_system) -> None:
    system = await make_system(workers=2)

    async def fault(s: System) -> float:
        return await s.postgres.restart("fast")

    await verdict(system, "postgres restarted", await collect_through(system, "postgres restarted", fault))


async def test_postgres_down_10s_mid_collection(make_system) -> None:
    system = await make_system()

    async def fault(s: System) -> float:
        return await s.postgres.down_for(10)

    await verdict(system, "postgres down 10s", await collect_through(system, "postgres down 10s", fault))


async def test_postgres_connections_killed_mid_collection(make_system) -> None:
    """pg_terminate_backend on every connection of the database, 5 times, 3 s apart."""
    system = await make_system()

    async def fault(s: System) -> float:
        killed = []
        for i in range(5):
            if i:
                await asyncio.sleep(3)
            killed.append(await s.postgres.terminate_backends(DATABASE))
        s.note(f"backends terminated: {killed}")
        assert sum(killed) > 0, "pg_terminate_backend found no connection to kill"
        return time.monotonic()

    await verdict(system, "postgres connections killed",
            await collect_through(system, "postgres connections killed", fault))


async def outside_wall_seconds(lo: float, hi: float) -> None:
    """Until the wall clock's second within the minute is outside [lo, hi) (at once if it is)."""
    now = time.time() % 60
    if lo <= now < hi:
        await asyncio.sleep(hi - now)


async def test_worker_killed_mid_collection_is_taken_over(make_system) -> None:
    """kill -9 of the worker running the parse, and a new worker: the system itself (no
    ``recover_orphaned`` from the test) hands the task over within TAKEOVER_BOUND seconds.

    The kill never happens between seconds 15 and 35 of the wall-clock minute: a recovery that
    only runs once a minute at second 0 meets the bound only when a minute starts 28-40 s
    after the kill (the lease must have gone stale first), i.e. at those phases. So a bound
    that must hold at any phase is tested every time, not passed or failed by luck."""
    system = await make_system()
    state: dict[str, float] = {}

    async def fault(s: System) -> float:
        await outside_wall_seconds(15, 35)
        [(first, _)] = s.workers
        s.kill_worker(first)
        state["killed"] = s.note(f"worker-1 (pid {first.pid}) killed with -9 at second "
                                 f"{time.time() % 60:.0f} of the minute")
        s.start_worker()
        await s.wait_worker_ready(*s.workers[-1])
        s.note("worker-2 started")
        return state["killed"]

    out = await collect_through(system, "worker killed", fault, recovery_bound=TAKEOVER_BOUND, back="the kill")
    monitor = system.monitor
    assert monitor is not None
    taken = next((s for s in monitor.samples if s.t >= state["killed"] and s.attempts >= 2), None)
    if taken is None:
        out.problems.append("the task was never taken over by another worker (attempts stayed 1)")
        print("[outages] worker killed: takeover: none", flush=True)
    else:
        took = taken.t - state["killed"]
        system.note(f"taken over by {taken.worker} {took:.1f}s after the kill")
        # The new runner's own first progress: stored comments or done posts beyond what the
        # killed one had left (the claim itself moves nothing).
        left = max((s for s in monitor.samples if s.attempts < 2), key=lambda s: s.t)
        moved = next((s for s in monitor.samples if (s.t >= taken.t and s.progress != left.progress)
                      or s.state == "SUCCEEDED"), None)
        progressed = moved.t - state["killed"] if moved is not None else None
        print(f"[outages] worker killed: takeover {took:.1f}s after the kill; the new runner's first progress "
              f"{'none' if progressed is None else f'{progressed:.1f}s'} after the kill (bound {TAKEOVER_BOUND:.0f}s)",
              flush=True)
        if progressed is None:
            out.problems.append("the new runner never made progress")
        elif progressed > TAKEOVER_BOUND:
            out.problems.append(f"the new runner's first progress came {progressed:.1f}s > {TAKEOVER_BOUND:.0f}s "
                                "after the kill")
    await verdict(system, "worker killed", out)


async def test_idle_worker_survives_a_redis_restart(make_system) -> None:
    """An idle ``vkcp worker`` through a Redis restart: still alive afterwards, and it runs
    the next parse to SUCCEEDED."""
    spec = WorldSpec(posts=40)
    system = await make_system(spec)
    system.probe.start()
    out = Outcome()
    await asyncio.sleep(3)  # idle: polling the queue
    await system.redis.restart(down_seconds=2)
    system.note("redis restarted empty")
    await asyncio.sleep(10)
    [(worker, _log)] = system.workers
    if worker.poll() is not None:
        out.problems.append(f"the idle worker died through the Redis restart (exit code {worker.returncode})")
        system.note("worker died")
    else:
        [owner_id] = system.world.open_owner_ids()
        group_id = await system.add_group(owner_id)
        status, body = await system.gql(START_PARSE, ids=[group_id])
        if status != 200 or body.get("errors") or (body.get("data") or {}).get("startParse", {}).get("errors"):
            out.problems.append(f"startParse after the Redis restart failed: HTTP {status} {body}")
            status, body = await system.gql(START_PARSE, ids=[group_id])  # see whether the worker runs it at all
        tasks = ((body.get("data") or {}).get("startParse") or {}).get("tasks") or []
        if tasks:
            task_id = parse_id(tasks[0]["id"], NodeType.TASK)
            system.note(f"parse started: task {task_id}")
            system.monitor = monitor = ProgressMonitor(system.postgres.dsn(DATABASE), task_id, system.origin)
            monitor.start()
            final = await monitor.wait_terminal(90)
            system.note(f"task {task_id}: {final.state if final else 'not finished'}")
            if final is None or final.state != "SUCCEEDED":
                last = monitor.last
                out.problems.append(f"the parse after the restart did not SUCCEED within 90s: last seen "
                                    f"{last.state if last else 'nothing'}")
            await check_comments(system, system.expected_keys([owner_id]), out)
    await system.probe.stop()
    check_api_and_processes(system, out)
    await verdict(system, "idle worker through a redis restart", out)


QUEUED_BACK_BOUND = 6.0  # seconds from Redis's return until a parse started while it was down moves (~2 s; 8.6 s without the wake)


async def test_a_parse_started_while_redis_is_down_runs_as_soon_as_redis_returns(make_system) -> None:
    """``startParse`` while Redis is down answers the task (QUEUED) and its job is lost; once
    Redis answers again the workers re-offer it at once (not after ``queued_grace`` and a pass),
    and its collection moves within QUEUED_BACK_BOUND seconds of the return."""
    spec = WorldSpec(posts=40)
    system = await make_system(spec)
    out = Outcome()
    [owner_id] = system.world.open_owner_ids()
    group_id = await system.add_group(owner_id)
    system.probe.start()
    await system.redis.stop()
    system.note("redis stopped")
    await asyncio.sleep(3)  # the worker's poll loop meets the outage
    # Started just before Redis returns: ``queued_grace`` alone would re-offer it ~10 s later.
    status, body = await system.gql(START_PARSE, ids=[group_id])
    tasks = ((body.get("data") or {}).get("startParse") or {}).get("tasks") or []
    assert status == 200 and tasks and tasks[0]["state"] == "QUEUED", f"HTTP {status}: {body}"
    task_id = parse_id(tasks[0]["id"], NodeType.TASK)
    system.note(f"parse started while redis is down: task {task_id}")
    returned = await system.redis.start()
    system.note("redis is back")
    system.monitor = monitor = ProgressMonitor(system.postgres.dsn(DATABASE), task_id, system.origin)
    monitor.start()
    moved = await monitor.wait(lambda s: s.stored > 0 or s.state == "SUCCEEDED", 60)
    if moved is None:
        out.problems.append("the parse never moved after Redis returned")
        print("[outages] parse started while redis was down: never moved", flush=True)
    else:
        took = moved.t - returned
        system.note(f"the parse moved {took:.1f}s after redis returned")
        print(f"[outages] parse started while redis was down: moved {took:.1f}s after the return "
              f"(bound {QUEUED_BACK_BOUND:.0f}s)", flush=True)
        if took > QUEUED_BACK_BOUND:
            out.problems.append(f"the parse moved {took:.1f}s > {QUEUED_BACK_BOUND:.0f}s after Redis returned")
    final = await monitor.wait_terminal(90)
    if final is None or final.state != "SUCCEEDED":
        out.problems.append(f"the parse did not SUCCEED: {final}")
    await system.probe.stop()
    await check_comments(system, system.expected_keys([owner_id]), out)
    check_api_and_processes(system, out)
    await verdict(system, "parse started while redis was down", out)


EVENTS = "subscription { taskEvents { id state progress { done } } }"
ADD_GROUP_BOUND = 5.0  # "within a few seconds" of Redis's return


async def test_api_after_a_redis_restart_adds_groups_and_streams_events(make_system) -> None:
    """After Redis restarts empty, ``addGroup`` (VK through the API's own client and rate
    limiter) succeeds within a few seconds, and an open ``taskEvents`` subscription either
    receives events again or ends with an error carrying ``extensions.code``: never silence."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    system = await make_system(WorldSpec(posts=120, communities=2))
    first_owner, second_owner = system.world.open_owner_ids()
    out = Outcome()
    ws = await connect(f"ws://127.0.0.1:{system.api_port}/graphql", subprotocols=["graphql-transport-ws"])
    messages: list[tuple[float, dict]] = []
    closed: list[str] = []

    async def read() -> None:
        try:
            async for raw in ws:
                messages.append((time.monotonic(), json.loads(raw)))
        except ConnectionClosed as e:
            closed.append(f"closed: {e}")
        else:
            closed.append(f"closed: code {ws.close_code} {ws.close_reason}")

    try:
        await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {system.token}"}}))
        assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "connection_ack"
        await ws.send(json.dumps({"id": "events", "type": "subscribe", "payload": {"query": EVENTS}}))
        reader = asyncio.create_task(read())
        await asyncio.sleep(0.5)
        task_id = await system.start_parse(await system.add_group(first_owner))
        system.note(f"parse started: task {task_id}")
        system.probe.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(
                m.get("type") == "next" and _event_key(m)[1] == "RUNNING" for _, m in messages):
            await asyncio.sleep(0.2)
        before = {_event_key(m) for _, m in messages if m.get("type") == "next"}
        assert before, f"no events before the fault: {messages} {closed}\n{system.diagnostics()}"
        await asyncio.sleep(2)

        returned = await system.redis.restart(down_seconds=0.5)
        system.note("redis restarted empty")

        # addGroup right away: it must work within a few seconds of Redis's return.
        added, attempts = None, []
        ref = f"https://vk.com/{system.world.groups[-second_owner].screen_name}"
        while time.monotonic() - returned < ADD_GROUP_BOUND and added is None:
            t = time.monotonic()
            try:
                status, body = await system.gql(ADD_GROUP, timeout=max(1.0, returned + ADD_GROUP_BOUND - t), ref=ref)
            except httpx.HTTPError as e:
                attempts.append(Call(t, "addGroup", None, (), (), f"{type(e).__name__}: {e}"))
                continue
            payload = (body.get("data") or {}).get("addGroup") or {}
            if status == 200 and not body.get("errors") and payload.get("group") and not payload.get("errors"):
                added = payload["group"]["id"]
            else:
                codes = tuple((e.get("extensions") or {}).get("code") for e in body.get("errors") or [])
                attempts.append(Call(t, "addGroup", status, codes,
                                     tuple(e.get("code") for e in payload.get("errors") or []),
                                     json.dumps(body, ensure_ascii=False)[:300]))
                await asyncio.sleep(0.3)
        failed = [f"HTTP {c.status} {list(c.codes or c.user_errors)} {c.detail[:200]}" for c in attempts]
        bad = [c for c in attempts if c.violation]
        if bad:
            out.problems.append(f"addGroup after the restart answered without a proper error code: "
                                f"{[f'{c.violation}: {c.detail[:200]}' for c in bad[:3]]}")
        if added is None:
            out.problems.append(f"addGroup did not succeed within {ADD_GROUP_BOUND:.0f}s of Redis's return: "
                                f"{failed[:5]}")
            print(f"[outages] addGroup after redis restart: no success in {ADD_GROUP_BOUND:.0f}s: {failed[:3]}",
                  flush=True)
        else:
            took = time.monotonic() - returned
            system.note(f"addGroup succeeded {took:.1f}s after Redis's return ({len(attempts)} failed attempts)")
            print(f"[outages] addGroup after redis restart: {took:.1f}s, failed attempts: {failed[:3]}", flush=True)
            status, body = await system.gql(START_PARSE, ids=[added])
            system.note(f"second parse: HTTP {status} {json.dumps(body, ensure_ascii=False)[:200]}")

        # The subscription: events again (or an error with a code) within RECOVERY_BOUND.
        verdict_at = time.monotonic() + RECOVERY_BOUND
        seen = None
        while time.monotonic() < verdict_at and seen is None:
            for t, m in messages:
                if t < returned:
                    continue
                if m.get("type") == "next" and (m["payload"].get("data") or {}).get("taskEvents") \
                        and _event_key(m) not in before:
                    seen = f"a new event {(t - returned):.1f}s after the return: {m['payload']['data']}"
                elif m.get("type") in ("error", "next") and _error_codes(m):
                    codes = _error_codes(m)
                    seen = f"{m['type']} with codes {codes} {(t - returned):.1f}s after the return"
                    if None in codes or "INTERNAL_SERVER_ERROR" in codes:
                        out.problems.append(f"the subscription ended with an error without a proper code: {m}")
                elif m.get("type") == "complete":
                    seen = "complete"
                    out.problems.append("the subscription completed without an error code after the restart")
                if seen:
                    break
            if closed and seen is None:
                seen = closed[0]
                out.problems.append(f"the subscription's connection ended without an error code: {closed[0]}")
            await asyncio.sleep(0.2)
        print(f"[outages] taskEvents after redis restart: {seen or 'silent'}", flush=True)
        system.note(f"subscription after the restart: {seen or 'silent'}")
        if seen is None:
            out.problems.append(f"the taskEvents subscription went silent: nothing within {RECOVERY_BOUND:.0f}s "
                                f"of Redis's return ({len(messages)} messages before)")
        reader.cancel()
    finally:
        await ws.close()
    await system.probe.stop()
    check_api_and_processes(system, out)
    await verdict(system, "api after a redis restart", out)


def _event_key(message: dict) -> tuple:
    event = ((message.get("payload") or {}).get("data") or {}).get("taskEvents") or {}
    return event.get("id"), event.get("state"), (event.get("progress") or {}).get("done")


def _error_codes(message: dict) -> list[str | None]:
    payload = message.get("payload")
    errors = payload if isinstance(payload, list) else (payload or {}).get("errors") or []
    return [(e.get("extensions") or {}).get("code") for e in errors if isinstance(e, dict)]
