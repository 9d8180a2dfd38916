"""Two operators importing the same keyword at the same moment: one adds it, the other is
told it exists. Neither gets an internal error, and the keyword is stored once."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from domain.keywords import DuplicateKeyword, KeywordInput, add_keywords


async def test_concurrent_imports_of_one_word_store_it_once(uow_factory) -> None:
    adapters = SimpleNamespace(uow_factory=uow_factory, cache=None)
    batches = [[KeywordInput("кошка"), KeywordInput(f"слово{i}")] for i in range(4)]
    results = await asyncio.gather(*(add_keywords(adapters, batch) for batch in batches))

    cat_results = [batch[0] for batch in results]
    added = [r for r in cat_results if r.error is None]
    duplicates = [r for r in cat_results if r.error is not None]
    assert len(added) == 1
    assert all(isinstance(r.error, DuplicateKeyword) for r in duplicates) and len(duplicates) == 3
    assert {r.keyword.id for r in cat_results} == {added[0].keyword.id}
    async with uow_factory() as uow:
        stored = [k.word for k in await uow.keywords.list()]
    assert sorted(stored) == sorted(["кошка", "слово0", "слово1", "слово2", "слово3"])
