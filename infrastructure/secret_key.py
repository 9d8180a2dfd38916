"""The server's secret key: it signs what the API hands out and must recognise later (the
short-lived download links of exports).

``VKCP_SECRET_KEY`` when it is set. Otherwise a random key is made on the first start and kept
in the data dir, beside the export files: every process that can serve a download has those
files, so it reads the same key, and a restart does not break the links already given out.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

from infrastructure.settings import MIN_SECRET_KEY_LENGTH, Settings

KEY_FILE = "secret_key"


def load_secret_key(settings: Settings) -> bytes:
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value().encode()
    path = settings.data_dir / KEY_FILE
    key = _read(path)
    if key is None:
        _create(path)
        key = _read(path)
        assert key is not None  # linked into place by us or by a process that was first
    return key


def _read(path: Path) -> bytes | None:
    try:
        key = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return None
    if len(key) < MIN_SECRET_KEY_LENGTH:
        raise RuntimeError(f"{path} does not hold a usable secret key; delete it and a new one is made")
    return key.encode()


def _create(path: Path) -> None:
    """Write a new key under a temporary name, then link it into place. The link fails when
    another process starting at the same moment was first (its key wins), and nobody ever
    reads half a key."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{KEY_FILE}.{secrets.token_hex(8)}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as file:
            file.write(secrets.token_urlsafe(32) + "\n")
        with contextlib.suppress(FileExistsError):
            os.link(temp, path)
    finally:
        temp.unlink(missing_ok=True)
