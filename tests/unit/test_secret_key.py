"""The key that signs download links: configured, or made once and kept in the data dir."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from pydantic import ValidationError

from infrastructure.secret_key import load_secret_key
from infrastructure.settings import Settings


def settings(data_dir: Path, **values) -> Settings:
    return Settings(_env_file=None, data_dir=data_dir, **values)


def test_processes_starting_together_agree_on_one_key(tmp_path: Path) -> None:
    with ThreadPoolExecutor(8) as pool:
        keys = set(pool.map(lambda _: load_secret_key(settings(tmp_path)), range(32)))
    assert len(keys) == 1 and len(keys.pop()) >= 32
    assert [p.name for p in tmp_path.iterdir()] == ["secret_key"]  # no temporary files left
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0  # only the owner may read it


def test_a_configured_key_wins_and_a_broken_key_file_is_reported(tmp_path: Path) -> None:
    assert load_secret_key(settings(tmp_path, secret_key="s" * 32)) == b"s" * 32
    assert not (tmp_path / "secret_key").exists()
    (tmp_path / "secret_key").write_text("\n")
    with pytest.raises(RuntimeError, match="delete it"):
        load_secret_key(settings(tmp_path))


def test_key_and_public_url_are_checked_when_the_settings_load(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="at least 32 characters"):
        settings(tmp_path, secret_key="short")
    assert settings(tmp_path, secret_key="").secret_key is None  # VKCP_SECRET_KEY= means unset
    with pytest.raises(ValidationError, match="absolute http"):
        settings(tmp_path, public_url="vkcp.example.com")
    assert settings(tmp_path, public_url="https://vkcp.example.com/tools/").public_url == "https://vkcp.example.com/tools"
