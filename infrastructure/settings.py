"""Typed configuration from ``VKCP_*`` environment variables (and a ``.env`` file).

Any setting may instead come from a file named by ``VKCP_<SETTING>_FILE`` (Docker and
Kubernetes secrets: ``VKCP_DATABASE_URL_FILE=/run/secrets/database_url``), so secrets need
not sit in the environment or in compose files.
"""

from __future__ import annotations

import os
import re
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

from domain.budget import DOCUMENTED_LIMITS
from domain.errors import InvalidInput
from domain.export import time_zone
from domain.ports import DEFAULT_EXPORT_TIME_ZONE

ENV_PREFIX = "VKCP_"


class SettingsFileError(ValueError):
    """A ``VKCP_*_FILE`` variable that cannot be used; the message says which and why."""


class _FileVariables(PydanticBaseSettingsSource):
    """``VKCP_<SETTING>_FILE``: the setting's value is the named file's content, less the final
    newline. Setting both the variable and its ``_FILE`` is refused: one of them would be
    silently ignored."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # __call__ reads every field at once

    def __call__(self) -> dict[str, Any]:
        environ = {k.upper(): v for k, v in os.environ.items()}
        values: dict[str, Any] = {}
        for name in self.settings_cls.model_fields:
            variable = f"{ENV_PREFIX}{name.upper()}"
            path = environ.get(variable + "_FILE")
            if not path:
                continue
            if environ.get(variable):
                raise SettingsFileError(f"{variable} and {variable}_FILE are both set: keep one")
            try:
                values[name] = Path(path).read_text(encoding="utf-8").rstrip("\r\n")
            except OSError as e:
                raise SettingsFileError(f"{variable}_FILE={path}: cannot read it ({e.strerror})") from None
        return values

MIN_SECRET_KEY_LENGTH = 32


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_file=".env", extra="ignore")

    @classmethod
    def settings_customise_sources(
        cls, settings_cls, init_settings, env_settings, dotenv_settings, file_secret_settings
    ):
        return init_settings, env_settings, _FileVariables(settings_cls), dotenv_settings, file_secret_settings

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
    # How long a token rests after VK's daily quota (29): VK does not say when a quota comes
    # back. Unset: until the next 00:00 UTC, at least an hour; a number: that many hours.
    vk_quota_park_hours: float | None = Field(default=None, gt=0)
    # How long a token rests after a captcha or validation request (14, 17): nobody solves it.
    vk_captcha_park_minutes: float = Field(default=60.0, gt=0)
    # Calls per token per UTC day VK allows, by method ("wall.get=5000,wall.getComments=10000"):
    # `vkTokens.quotas` and `vkBudget` count against them; a method not named has no known limit.
    vk_daily_limits: Annotated[dict[str, int], NoDecode] = Field(default_factory=lambda: dict(DOCUMENTED_LIMITS))
    auth: bool = True
    recent_window_hours: float = 0.0  # re-read comments of posts this recent even if unchanged
    collect_concurrency: int = 64
    export_ttl_hours: float = 24.0
    export_link_minutes: float = 15.0  # how long a signed download link (Task.export.url) works
    # Exports write times in this IANA zone unless the export names another (startExport's timeZone).
    export_time_zone: str = DEFAULT_EXPORT_TIME_ZONE
    # Signs download links. Unset: a random key kept in the data dir (see infrastructure/secret_key.py).
    secret_key: SecretStr | None = None
    # The API's address as browsers reach it, for absolute links; unset: each request's own.
    public_url: str | None = None
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Request headers browsers may send besides the API's own (tracing, client names).
    cors_headers: Annotated[list[str], NoDecode] = Field(default_factory=list)
    graphiql: bool = True
    introspection: bool = True
    # Answer the queries it knows with the compiled read plan (graphql_api/plan.py); off: every
    # operation on Strawberry's executor (for comparisons, or to rule the plan out).
    read_plan: bool = True
    request_timeout: float = 30.0  # seconds a GraphQL HTTP request may run
    # Bytes of one HTTP request body: 4 MiB holds an import of 10,000 keywords even with every
    # Cyrillic letter escaped (\uXXXX); bigger bodies are refused with 413 while they stream in.
    max_body_bytes: int = Field(default=4 * 1024 * 1024, gt=0)
    # Bytes of one WebSocket message (a subscribe with its variables); bigger closes with 1009.
    ws_max_message_bytes: int = Field(default=1024 * 1024, gt=0)
    log_level: str = "INFO"
    redis_prefix: str = "vkcp:"
    # A RUNNING task whose progress does not move for this long is stalled: logged, counted in
    # /metrics, shown on the task, and run again by another runner (see domain/tasks.py).
    task_stall_seconds: float = 600.0
    # How long an alert delivery a process took stays its own: after a crash, others send it
    # (again, with the same webhook-id) once this has passed.
    alert_lease_seconds: float = Field(default=120.0, gt=0)

    @field_validator("vk_tokens", mode="before")
    @classmethod
    def _split_tokens(cls, value):
        if isinstance(value, str):  # commas, or one token a line (a secret file)
            return [t for t in re.split(r"[,\s]+", value) if t]
        return value

    @field_validator("vk_daily_limits", mode="before")
    @classmethod
    def _split_limits(cls, value):
        if not isinstance(value, str):
            return value
        limits = {}
        for item in (i.strip() for i in value.split(",")):
            if not item:
                continue
            method, _, number = item.partition("=")
            if not method.strip() or not number.strip().isdigit():
                raise ValueError(f"expected METHOD=CALLS[,METHOD=CALLS...], e.g. wall.get=5000; got {item!r}")
            limits[method.strip()] = int(number)
        return limits

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

    @field_validator("export_time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            return time_zone(value).key
        except InvalidInput as e:
            raise ValueError(e.message) from None

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
