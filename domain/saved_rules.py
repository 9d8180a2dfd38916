"""Saved rules: a name, a rule-language query (``domain.rules``) and an optional category.

A saved rule is usable by name in any query (``rule:<name>``) and so in every filter. Its query
is checked when it is saved: it parses, the keywords and rules it names exist, and it does not
refer to itself through other rules. A rule that others refer to cannot be removed or renamed
(they would break); its query can change, and they follow.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from domain.errors import Conflict, InvalidInput, NotFound
from domain.rules import RuleCatalog, parse, references, resolve, rule_key, validate_rule_name
from domain.text import checked_text

MAX_CATEGORY = 100


@dataclass(frozen=True)
class SavedRule:
    id: int
    name: str
    query: str
    category: str | None
    created_at: datetime
    updated_at: datetime
    # When its matches were last stored complete (``domain.rule_index``); None while they are
    # being built, or when its query no longer resolves.
    indexed_at: datetime | None = None


class RuleStore(RuleCatalog, Protocol):
    async def list_rules(self, *, category: str | None = None) -> list[SavedRule]: ...
    async def rules_by_ids(self, ids: Iterable[int]) -> list[SavedRule]: ...
    async def add_rule(
        self, name: str, name_key: str, query: str, category: str | None, now: datetime
    ) -> SavedRule:
        """Raises ``Conflict`` when the name is taken."""
        ...

    async def change_rule(
        self, rule_id: int, *, name: str, name_key: str, query: str, category: str | None, now: datetime
    ) -> SavedRule | None: ...
    async def delete_rule(self, rule_id: int) -> bool: ...


def _category(category: str | None) -> str | None:
    if category is None:
        return None
    checked_text(category, field="category")
    category = " ".join(category.split())
    if len(category) > MAX_CATEGORY:
        raise InvalidInput(f"A category is at most {MAX_CATEGORY} characters", field="category")
    return category or None


async def _checked_query(store: RuleStore, query: str, name_key: str) -> str:
    checked_text(query, field="query")
    query = query.strip()
    # Resolving says whether every reference exists, and refuses the rule's own name anywhere
    # in what it refers to (seen), so no saved rule loops.
    await resolve(parse(query), store, seen=frozenset((name_key,)))
    return query


async def _referring(store: RuleStore, name_key: str, *, other_than: int) -> list[SavedRule]:
    found = []
    for rule in await store.list_rules():
        if rule.id == other_than:
            continue
        try:
            if name_key in references(parse(rule.query)).rule_names:
                found.append(rule)
        except InvalidInput:
            continue
    return found


async def create_rule(store: RuleStore, *, name: str, query: str, category: str | None, now: datetime) -> SavedRule:
    name = validate_rule_name(name)
    key = rule_key(name)
    query = await _checked_query(store, query, key)
    return await store.add_rule(name, key, query, _category(category), now)


async def update_rule(
    store: RuleStore, rule_id: int, *, name: str | None, query: str | None, category: str | None,
    clear_category: bool, now: datetime,
) -> SavedRule:
    current = next(iter(await store.rules_by_ids([rule_id])), None)
    if current is None:
        raise NotFound("No such rule", field="id")
    new_name = validate_rule_name(name) if name is not None else current.name
    key = rule_key(new_name)
    if key != rule_key(current.name):
        users = await _referring(store, rule_key(current.name), other_than=rule_id)
        if users:
            raise Conflict(
                "Rules " + ", ".join(f'"{r.name}"' for r in users) + " refer to this rule by name", field="name"
            )
    new_query = await _checked_query(store, query if query is not None else current.query, key)
    new_category = None if clear_category else _category(category) if category is not None else current.category
    changed = await store.change_rule(
        rule_id, name=new_name, name_key=key, query=new_query, category=new_category, now=now
    )
    if changed is None:
        raise NotFound("No such rule", field="id")
    return changed


async def remove_rule(store: RuleStore, rule_id: int) -> SavedRule:
    current = next(iter(await store.rules_by_ids([rule_id])), None)
    if current is None:
        raise NotFound("No such rule", field="id")
    users = await _referring(store, rule_key(current.name), other_than=rule_id)
    if users:
        raise Conflict("Rules " + ", ".join(f'"{r.name}"' for r in users) + " refer to this rule", field="id")
    await store.delete_rule(rule_id)
    return current
