"""API tokens and roles.

A token is shown to its owner once, at creation; only its SHA-256 hash is stored, so a leaked
database does not leak usable tokens. Roles are ordered: each one may do what the one before it
may, plus more.
"""

from __future__ import annotations

import enum
import hashlib
import secrets
from collections.abc import Awaitable, Callable
from datetime import timedelta

from domain.errors import Conflict, InvalidInput, NotFound
from domain.models import ApiToken
from domain.ports import Clock, UnitOfWorkFactory

TOKEN_PREFIX = "vkcp_"  # makes a leaked token recognisable to secret scanners
TOUCH_INTERVAL = timedelta(minutes=5)  # last_used_at is a hint, not an audit log: few writes


class Role(enum.StrEnum):
    """viewer: queries and subscriptions; operator: also mutations; admin: everything."""

    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return _RANKS[self]

    def allows(self, needed: Role) -> bool:
        return self.rank >= needed.rank


_RANKS = {Role.VIEWER: 0, Role.OPERATOR: 1, Role.ADMIN: 2}


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def parse_role(value: str) -> Role:
    try:
        return Role(value.strip().lower())
    except ValueError:
        choices = ", ".join(r.value for r in Role)
        raise InvalidInput(f"Unknown role '{value}': use one of {choices}", field="role") from None


async def create_api_token(uow_factory: UnitOfWorkFactory, name: str, role: Role | str) -> tuple[str, ApiToken]:
    """Store a new token; returns the plain token (to show once) and its record."""
    name = name.strip()
    if not name:
        raise InvalidInput("A token needs a name", field="name")
    role = role if isinstance(role, Role) else parse_role(role)
    plain = new_token()
    async with uow_factory() as uow:
        record = await uow.api_tokens.add(name=name, role=role.value, token_hash=hash_token(plain))
        await uow.commit()
    return plain, record


async def authenticate(
    uow_factory: UnitOfWorkFactory, token: str, *, clock: Clock | None = None,
    find: Callable[[str], Awaitable[ApiToken | None]] | None = None,
) -> tuple[Role, ApiToken] | None:
    """The role and record of a presented token; None when it is unknown or revoked.

    Also records when the token was last used (at most every ``TOUCH_INTERVAL``). ``find``
    looks a token up by its hash without a unit of work (the read model's
    ``api_token_by_hash``: every API request asks, and a transaction around one SELECT tripled
    its round trips); a unit of work is opened only to record the use.
    """
    if not token:
        return None
    if find is not None:
        record = await find(hash_token(token))
    else:
        async with uow_factory() as uow:
            record = await uow.api_tokens.find_by_hash(hash_token(token))
    if record is None or record.revoked_at is not None:
        return None
    try:
        role = Role(record.role)
    except ValueError:  # a role this version does not know: no access rather than a guess
        return None
    if clock is not None:
        now = clock.now()
        last = record.last_used_at
        if last is not None and last.tzinfo is None and now.tzinfo is not None:
            last = last.replace(tzinfo=now.tzinfo)  # SQLite hands back naive UTC
        if last is None or now - last >= TOUCH_INTERVAL:
            async with uow_factory() as uow:
                await uow.api_tokens.touch(record.id, now)
                await uow.commit()
    return role, record


async def list_api_tokens(uow_factory: UnitOfWorkFactory) -> list[ApiToken]:
    """Every token ever created, revoked ones included (their hashes stay: revocation is final)."""
    async with uow_factory() as uow:
        return await uow.api_tokens.list()


async def revoke_api_token(uow_factory: UnitOfWorkFactory, name_or_id: str | int) -> ApiToken:
    """Revoke one live token at once (its next request is refused); returns its record, revoked.

    An ``int`` is an id (the API's ``revokeApiToken``); a string is an id or a name (``vkcp
    token revoke``). Names need not be unique: when several live tokens share one, nothing is
    revoked and the caller is asked for the id, since revoking the wrong one would leave a
    leaked token usable. Revoking twice is NOT_FOUND.
    """
    by_id = isinstance(name_or_id, int)
    key = str(name_or_id).strip()
    field = "id" if by_id else "token"
    async with uow_factory() as uow:
        tokens = await uow.api_tokens.list()
        live = [t for t in tokens if t.revoked_at is None]
        chosen = [t for t in live if key.isdigit() and t.id == int(key)]
        if not chosen and not by_id:
            chosen = [t for t in live if t.name == key]
        if not chosen:
            what = f"id {key}" if by_id else f"the id or name '{key}'"
            raise NotFound(f"No live API token has {what}", field=field)
        if len(chosen) > 1:
            ids = ", ".join(str(t.id) for t in chosen)
            raise Conflict(
                f"{len(chosen)} live API tokens are named '{key}' (ids {ids}): revoke one by id", field=field
            )
        await uow.api_tokens.revoke(chosen[0].id)
        await uow.commit()
        tokens = await uow.api_tokens.list()
    return next(t for t in tokens if t.id == chosen[0].id)
