"""API tokens (``domain.auth``) through the unit of work's ``api_tokens`` port, on the fakes."""

from __future__ import annotations

import pytest

from domain.auth import (
    Role,
    authenticate,
    create_api_token,
    list_api_tokens,
    revoke_api_token,
)
from domain.errors import Conflict, NotFound
from tests.fakes import FakeClock, InMemoryStore


async def test_a_token_works_until_it_is_revoked_and_only_its_hash_is_stored() -> None:
    store = InMemoryStore()
    plain, record = await create_api_token(store.uow_factory, "ci", "operator")
    assert plain not in {t.token_hash for t in store.api_tokens.values()}
    role, found = await authenticate(store.uow_factory, plain)  # type: ignore[misc]
    assert role is Role.OPERATOR and found.id == record.id
    assert (await revoke_api_token(store.uow_factory, "ci")).revoked_at is not None
    assert await authenticate(store.uow_factory, plain) is None
    with pytest.raises(NotFound):  # revoking twice
        await revoke_api_token(store.uow_factory, record.id)


async def test_a_name_shared_by_live_tokens_revokes_nothing() -> None:
    store = InMemoryStore()
    first = (await create_api_token(store.uow_factory, "desk", Role.VIEWER))[1]
    await create_api_token(store.uow_factory, "desk", Role.VIEWER)
    with pytest.raises(Conflict):
        await revoke_api_token(store.uow_factory, "desk")
    assert all(t.revoked_at is None for t in await list_api_tokens(store.uow_factory))
    assert (await revoke_api_token(store.uow_factory, str(first.id))).id == first.id


async def test_last_use_is_recorded_at_most_every_few_minutes() -> None:
    store = InMemoryStore()
    clock = FakeClock()
    plain, record = await create_api_token(store.uow_factory, "ci", Role.ADMIN)
    await authenticate(store.uow_factory, plain, clock=clock)
    first_use = store.api_tokens[record.id].last_used_at
    assert first_use == clock.now()
    clock.advance(minutes=1)
    await authenticate(store.uow_factory, plain, clock=clock)
    assert store.api_tokens[record.id].last_used_at == first_use
    clock.advance(minutes=5)
    await authenticate(store.uow_factory, plain, clock=clock)
    assert store.api_tokens[record.id].last_used_at == clock.now()


async def test_a_read_model_lookup_needs_a_unit_of_work_only_to_record_the_use() -> None:
    """The API looks tokens up through the read model (``find``: one statement, no transaction);
    revocation and the last use behave as through the unit of work."""
    store = InMemoryStore()
    clock = FakeClock()
    plain, record = await create_api_token(store.uow_factory, "ci", Role.OPERATOR)
    opened = []

    def counting_uow_factory():
        opened.append(1)
        return store.uow_factory()

    async def find(token_hash: str):
        return next((t for t in store.api_tokens.values() if t.token_hash == token_hash), None)

    role, found = await authenticate(counting_uow_factory, plain, clock=clock, find=find)  # type: ignore[misc]
    assert role is Role.OPERATOR and found.id == record.id
    assert len(opened) == 1 and store.api_tokens[record.id].last_used_at == clock.now()  # the first use, recorded
    clock.advance(minutes=1)
    assert await authenticate(counting_uow_factory, plain, clock=clock, find=find) is not None
    assert len(opened) == 1  # nothing to record: no unit of work
    assert await authenticate(counting_uow_factory, "not-a-token", clock=clock, find=find) is None
    await revoke_api_token(store.uow_factory, record.id)
    assert await authenticate(counting_uow_factory, plain, clock=clock, find=find) is None
    assert len(opened) == 1
