"""Saved rules in SQL, and the rule language's look-ups (``domain.rules.RuleCatalog``).

``rule_compiler`` is what every reader of a ``CommentFilter`` with a ``query`` uses: references
resolved here, morphology from pymorphy3 (loaded on the first query, not at startup).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from domain.errors import Conflict
from domain.rules import KeywordTerm, QueryCompiler
from domain.saved_rules import SavedRule
from infrastructure.db.tables import keywords, rules


def _rule(row) -> SavedRule:
    return SavedRule(
        id=row.id, name=row.name, query=row.query, category=row.category, created_at=row.created_at,
        updated_at=row.updated_at,
    )


class SqlRules:
    """Saved rules (``domain.saved_rules.RuleStore``) and the look-ups of references."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        self._engine: AsyncEngine = sessions.kw["bind"]

    # --- RuleCatalog ---

    async def keywords_for(self, ids: Iterable[int], words: Iterable[str]) -> list[KeywordTerm]:
        ids, words = list(ids), list(words)
        k = keywords.c
        conditions = []
        if ids:
            conditions.append(k.id.in_(ids))
        if words:
            conditions.append(k.word_key.in_(words))
        if not conditions:
            return []
        query = select(k.id, k.word, k.case_sensitive, k.whole_word, k.morphology).where(or_(*conditions))
        async with self._engine.connect() as connection:  # a Core connection: no ORM session per look-up
            rows = (await connection.execute(query)).all()
        return [KeywordTerm(r.id, r.word, r.case_sensitive, r.whole_word, r.morphology) for r in rows]

    async def rule_queries(self, names: Iterable[str]) -> dict[str, str]:
        names = list(names)
        if not names:
            return {}
        async with self._engine.connect() as connection:
            rows = await connection.execute(select(rules.c.name_key, rules.c.query).where(rules.c.name_key.in_(names)))
            return {r.name_key: r.query for r in rows}

    # --- RuleStore ---

    async def list_rules(self, *, category: str | None = None) -> list[SavedRule]:
        query = select(rules).order_by(rules.c.name_key)
        if category is not None:
            query = query.where(rules.c.category == category)
        async with self._sessions() as session:
            return [_rule(r) for r in await session.execute(query)]

    async def rules_by_ids(self, ids: Iterable[int]) -> list[SavedRule]:
        ids = list(ids)
        if not ids:
            return []
        async with self._sessions() as session:
            return [_rule(r) for r in await session.execute(select(rules).where(rules.c.id.in_(ids)))]

    async def count_rules(self) -> int:
        async with self._sessions() as session:
            return int((await session.execute(select(func.count()).select_from(rules))).scalar_one())

    async def add_rule(self, name: str, name_key: str, query: str, category: str | None, now: datetime) -> SavedRule:
        values = dict(name=name, name_key=name_key, query=query, category=category, created_at=now, updated_at=now)
        try:
            async with self._sessions.begin() as session:
                row = (await session.execute(insert(rules).values(**values).returning(rules))).one()
        except IntegrityError:
            raise Conflict(f'A rule named "{name}" exists already', field="name") from None
        return _rule(row)

    async def change_rule(
        self, rule_id: int, *, name: str, name_key: str, query: str, category: str | None, now: datetime
    ) -> SavedRule | None:
        values = dict(name=name, name_key=name_key, query=query, category=category, updated_at=now)
        try:
            async with self._sessions.begin() as session:
                row = (
                    await session.execute(update(rules).where(rules.c.id == rule_id).values(**values).returning(rules))
                ).one_or_none()
        except IntegrityError:
            raise Conflict(f'A rule named "{name}" exists already', field="name") from None
        return _rule(row) if row is not None else None

    async def delete_rule(self, rule_id: int) -> bool:
        async with self._sessions.begin() as session:
            result = await session.execute(delete(rules).where(rules.c.id == rule_id).returning(rules.c.id))
            return result.one_or_none() is not None


def rule_compiler(sessions: async_sessionmaker[AsyncSession]) -> QueryCompiler:
    from infrastructure.morphology import get_lemmatizer

    lemmatizer = get_lemmatizer()
    return QueryCompiler(SqlRules(sessions), lemmatizer, lemmatizer)
