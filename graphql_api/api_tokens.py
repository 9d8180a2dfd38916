"""API-token management over GraphQL, for admins: list, create (the secret is shown once),
revoke. The rules live in ``domain.auth``; these resolvers only translate."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Annotated

import strawberry
from graphql import GraphQLError

from domain import auth, models
from domain.errors import DomainError, NotFound, Unavailable
from graphql_api.auth import IsAdmin
from graphql_api.codes import code_of
from graphql_api.context import Info
from graphql_api.ids import NodeType, find_id
from graphql_api.types import Node, UserError


@strawberry.enum(description="What an API token may do; each role may do everything the one before it may.")
class ApiRole(enum.Enum):
    value: str  # what strawberry.enum_value leaves as a member's value (mypy sees its definition)

    VIEWER = strawberry.enum_value("viewer", description="Queries and subscriptions.")
    OPERATOR = strawberry.enum_value("operator", description="Also mutations.")
    ADMIN = strawberry.enum_value("admin", description="Also the VK token pool and API tokens.")


@strawberry.type(description="An API token as admins see it: never the secret, which is shown once at creation.")
class ApiToken(Node):
    NODE_TYPE = NodeType.API_TOKEN
    name: str = strawberry.field(description="Who or what the token is for.")
    role: ApiRole = strawberry.field(description="What the token may do.")
    created_at: datetime | None = strawberry.field(description="When the token was created.")
    last_used_at: datetime | None = strawberry.field(description="Roughly when it was last used (to 5 minutes).")
    revoked_at: datetime | None = strawberry.field(description="When it was revoked; null while it works.")

    @classmethod
    def from_domain(cls, token: models.ApiToken) -> ApiToken:
        return cls(
            **cls.ids(token.id), name=token.name, role=ApiRole(token.role), created_at=token.created_at,
            last_used_at=token.last_used_at, revoked_at=token.revoked_at,
        )


@strawberry.type(description="Result of createApiToken.")
class CreateApiTokenPayload:
    api_token: ApiToken | None = strawberry.field(description="The new token's record; null on failure.")
    secret: str | None = strawberry.field(description="The token to send as `Authorization: Bearer <secret>`. "
                                          "Shown only here, once: only its hash is stored.")
    errors: list[UserError] = strawberry.field(description="Why it could not be created; empty on success.")


@strawberry.type(description="Result of revokeApiToken.")
class RevokeApiTokenPayload:
    api_token: ApiToken | None = strawberry.field(description="The token as it is now (revoked); null on failure.")
    errors: list[UserError] = strawberry.field(description="Why it could not be revoked; empty on success.")


def _errors(e: DomainError) -> list[UserError]:
    if isinstance(e, Unavailable):  # an outage is not an expected failure: HTTP 503, as everywhere
        raise e
    return [UserError(code=code_of(e), message=e.message, field=e.field)]


async def resolve_api_tokens(info: Info) -> list[ApiToken]:
    return [ApiToken.from_domain(t) for t in await auth.list_api_tokens(info.context.adapters.uow_factory)]


async def load_api_token(info: Info, token_id: int) -> ApiToken | None:
    """One token by row id, for ``node``: admins only, as ``apiTokens``."""
    if not IsAdmin().has_permission(None, info):
        raise GraphQLError(IsAdmin.message, extensions=IsAdmin.error_extensions)
    found = [t for t in await auth.list_api_tokens(info.context.adapters.uow_factory) if t.id == token_id]
    return ApiToken.from_domain(found[0]) if found else None


async def create_api_token(
    info: Info,
    name: Annotated[str, strawberry.argument(description="Who or what the token is for.")],
    role: Annotated[ApiRole, strawberry.argument(description="What the token may do.")],
) -> CreateApiTokenPayload:
    try:
        secret, token = await auth.create_api_token(info.context.adapters.uow_factory, name, role.value)
    except DomainError as e:
        return CreateApiTokenPayload(api_token=None, secret=None, errors=_errors(e))
    return CreateApiTokenPayload(api_token=ApiToken.from_domain(token), secret=secret, errors=[])


async def revoke_api_token(
    info: Info,
    id: Annotated[strawberry.ID, strawberry.argument(description="The token's id (global or row id; not its secret).")],
) -> RevokeApiTokenPayload:
    try:
        token_id = find_id(id, NodeType.API_TOKEN)
        if token_id is None:
            raise NotFound(f"No live API token with id {id}", field="id")
        token = await auth.revoke_api_token(info.context.adapters.uow_factory, token_id)
    except DomainError as e:
        return RevokeApiTokenPayload(api_token=None, errors=_errors(e))
    return RevokeApiTokenPayload(api_token=ApiToken.from_domain(token), errors=[])
