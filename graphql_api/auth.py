"""Who is calling: Bearer tokens to roles, and the permission every mutation checks.

HTTP requests authenticate from the ``Authorization`` header (no or a bad token: 401 before any
GraphQL runs). WebSocket connections authenticate from the graphql-transport-ws
``connection_init`` payload, ``{"Authorization": "Bearer <token>"}``. With ``VKCP_AUTH=off``
everyone is an admin.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import structlog
from strawberry.permission import BasePermission

from domain.auth import Role, authenticate
from domain.models import ApiToken
from domain.ports import Adapters
from domain.queries import ReadModel
from graphql_api.codes import ErrorCode

log = structlog.get_logger(__name__)


def bearer_token(value: Any) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` value, else None."""
    if not isinstance(value, str):
        return None
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def header_of(params: Mapping[str, Any] | None, name: str) -> Any:
    """A header-like entry, matched case-insensitively (clients spell ``Authorization`` variously)."""
    if not params:
        return None
    lowered = name.lower()
    for key, value in params.items():
        if isinstance(key, str) and key.lower() == lowered:
            return value
    return None


async def resolve_role(
    adapters: Adapters, read_model: ReadModel, authorization: Any
) -> tuple[Role, ApiToken] | None:
    """The caller's role from an Authorization value; None when it is missing or not valid."""
    token = bearer_token(authorization)
    if token is None:
        return None
    return await authenticate(adapters.uow_factory, token, clock=adapters.clock, find=read_model.api_token_by_hash)


def warn_if_auth_disabled(auth_enabled: bool) -> None:
    if not auth_enabled:
        log.warning("auth.disabled", detail="VKCP_AUTH=off: every caller is an admin; use only for local development")


class _RolePermission(BasePermission):
    needed: Role = Role.OPERATOR
    # Strawberry's BasePermission declares it per instance; this default is never changed.
    error_extensions = {"code": ErrorCode.FORBIDDEN.value}  # noqa: RUF012

    def has_permission(self, source: Any, info: Any, **kwargs: Any) -> bool:
        role = getattr(info.context, "role", None)
        return role is not None and role.allows(self.needed)


class IsOperator(_RolePermission):
    """Mutations: operators and admins."""

    needed = Role.OPERATOR
    message = "This needs an operator or admin token"


class IsAdmin(_RolePermission):
    needed = Role.ADMIN
    message = "This needs an admin token"


class IsViewer(_RolePermission):
    """Anything at all: guards subscriptions opened before a WebSocket was authenticated."""

    needed = Role.VIEWER
    message = "This needs an API token"
