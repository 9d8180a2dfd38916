"""Typed configuration from ``VKCP_*`` environment variables (and a ``.env`` file)."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from typing import Annotated

MIN_SECRET_KEY_LENGTH = 32


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VKCP_", env_file=".env", extra="ignore")

    data_dir: Path = Path("./.vkcp")
    database_url: str | None = None
    redis_url: str | None = None
    # Tokens are secrets: SecretStr keeps them out of reprs, logs and tracebacks.
    vk_tokens: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    vk_api_url: str = "https://api.vk.com/method"
    vk_rps: float = 3.0
    vk_sandbox: bool = False
    vk_execute: bool = True  # pack calls into `execute`; off for tokens that may not call it
    vk_timeout: float = 30.0
    vk_max_retries: int = 6
    auth: bool = True
    recent_window_hours: float = 0.0  # re-read comments of posts this recent even if unchanged
    collect_concurrency: int = 64
    export_ttl_hours: float = 24.0
    export_link_minutes: float = 15.0  # how long a signed download link (Task.export.url) works
    # Signs download links. Unset: a random key kept in the data dir (see infrastructure/secret_key.py).
    secret_key: SecretStr | None = None
    # The API's address as browsers reach it, for absolute links; unset: each request's own.
    public_url: str | None = None
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Request headers browsers may send besides the API's own (tracing, client names).
    cors_headers: Annotated[list[str], NoDecode] = Field(default_factory=list)
    graphiql: bool = True
    introspection: bool = True
    request_timeout: float = 30.0  # seconds a GraphQL HTTP request may run
    log_level: str = "INFO"
    redis_prefix: str = "vkcp:"
    # A RUNNING task whose progress does not move for this long is stalled: logged, counted in
    # /metrics, shown on the task, and run again by another runner (see domain/tasks.py).
    task_stall_seconds: float = 600.0

    @field_validator("vk_tokens", mode="before")
    @classmethod
    def _split_tokens(cls, value):
        if isinstance(value, str):
            return [t.strip() for t in value.split(",") if t.strip()]
        return value

    @field_validator("cors_origins", "cors_headers", mode="before")
    @classmethod
    def _split_origins(cls, value):
        if isinstance(value, str):
            return [o.strip() for o in value.split(",") if o.strip()]
        return value

    @field_validator("secret_key", mode="before")
    @classmethod
    def _long_enough(cls, value):
        if value is None or value == "":
            return None
        if len(value.get_secret_value() if isinstance(value, SecretStr) else str(value)) < MIN_SECRET_KEY_LENGTH:
            raise ValueError(
                f"must be at least {MIN_SECRET_KEY_LENGTH} characters, e.g. the output of "
                "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
            )
        return value

    @field_validator("public_url")
    @classmethod
    def _absolute_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an absolute http:// or https:// URL, e.g. https://vkcp.example.com")
        return value.rstrip("/")

    @cached_property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'vkcp.sqlite3').resolve()}"

    @property
    def is_sqlite(self) -> bool:
        return self.effective_database_url.startswith("sqlite")

    @property
    def exports_dir(self) -> Path:
        return self.data_dir / "exports"
