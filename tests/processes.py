"""Real processes for end-to-end tests and benchmarks: `vkcp serve`, `vkcp worker`, the VK
emulator. Each writes to its own log file, which failures quote."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def log_events(text: str) -> list[dict]:
    """Each line of a process's output as the log event it must be: one JSON object with an
    ``event`` and a ``level`` (fails on any other line)."""
    events = []
    for line in text.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            raise AssertionError(f"not a JSON line: {line!r}") from None
        assert isinstance(event, dict) and "event" in event and "level" in event, line
        events.append(event)
    return events


def first_admin_token(data_dir: Path) -> str:
    """The one-time admin token a first ``vkcp serve`` whose output no terminal reads leaves in
    its data dir (it is never logged)."""
    from entrypoints.cli import FIRST_ADMIN_TOKEN_FILE

    return (data_dir / FIRST_ADMIN_TOKEN_FILE).read_text().strip()


def spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    """``python <args>`` from the repository root, in its own session (so kill -9 is clean)."""
    return subprocess.Popen(
        [sys.executable, *args], cwd=ROOT, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def wait_http(url: str, proc: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    """Until ``url`` answers below 500; fails with the process's log if it dies or never does."""
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise AssertionError(f"process exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                if (await client.get(url, timeout=2)).status_code < 500:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)
    raise AssertionError(f"{url} did not come up:\n{log.read_text()[-3000:]}")


@contextlib.contextmanager
def vk_emulator(args: list[str], log: Path) -> Iterator[str]:
    """The VK emulator as a real HTTP server (``python -m infrastructure.vk.emulator --port <free>
    <args>``) until the block ends, its output in ``log``; yields its API's base URL."""
    port = free_port()
    proc = spawn(["-m", "infrastructure.vk.emulator", "--port", str(port), *args],
                 {**os.environ, "PYTHONPATH": str(ROOT)}, log)
    try:
        asyncio.run(wait_http(f"http://127.0.0.1:{port}/_stats", proc, log))
        yield f"http://127.0.0.1:{port}/method"
    finally:
        stop(proc)


@contextlib.contextmanager
def embedded_serve(workdir: Path, **env: str) -> Iterator[tuple[str, str, Path]]:
    """`vkcp serve` as the README's first command runs it (embedded SQLite in ``workdir``,
    in-process jobs, sandbox VK, no other ``VKCP_`` setting of this environment) on a free port,
    until the block ends; yields its base URL, the first admin token and its log. ``env`` adds
    settings; ``{url}`` in a value is the base URL (``VKCP_PUBLIC_URL="{url}"``)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    environment = {k: v for k, v in os.environ.items() if not k.startswith("VKCP_")}
    environment.update(PYTHONPATH=str(ROOT), VKCP_DATA_DIR=str(workdir / "data"), VKCP_VK_SANDBOX="1")
    environment.update({name: value.format(url=url) for name, value in env.items()})
    log = workdir / "serve.log"
    proc = spawn(["-m", "entrypoints.cli", "serve", "--port", str(port)], environment, log)
    try:
        asyncio.run(wait_http(f"{url}/healthz", proc, log))
        yield url, first_admin_token(workdir / "data"), log
    finally:
        stop(proc)
