"""Saved rules in SQL, and the rule language's look-ups (``domain.rules.RuleCatalog``).

``rule_compiler`` is what every reader of a ``CommentFilter`` with a ``query`` uses: references
resolved here, morphology from pymorphy3 (loaded on the first query, not at startup).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import Row, Select, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from domain.errors import Conflict
from domain.rules import KeywordTerm, QueryCompiler
from domain.saved_rules import SavedRule
from infrastructure.db.tables import keywords, rules


def _rule(row) -> SavedRule:
    return SavedRule(
        id=row.id, name=row.name, query=row.query, category=row.category, created_at=row.created_at,
        updated_at=row.updated_at, indexed_at=row.indexed_at,
    )


class SqlRules:
    """Saved rules (``domain.saved_rules.RuleStore``) and the look-ups of references."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        self._engine: AsyncEngine = sessions.kw["bind"]

    # --- RuleCatalog ---

    async def keywords_for(self, ids: Iterable[int], words: Iterable[str]) -> list[KeywordTerm]:
        query = _keywords_query(ids, words)
        if query is None:
            return []
        async with self._engine.connect() as connection:  # a Core connection: no ORM session per look-up
            return _keyword_terms((await connection.execute(query)).all())

    async def rule_queries(self, names: Iterable[str]) -> dict[str, str]:
        query = _rules_query(names)
        if query is None:
            return {}
        async with self._engine.connect() as connection:
            return {r.name_key: r.query for r in await connection.execute(query)}

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
                # A new rule starts unindexed (indexed_at NULL): an INDEX_RULES task builds its
                # matches. Rules naming it cannot exist yet (a name must exist to be named).
        except IntegrityError:
            raise Conflict(f'A rule named "{name}" exists already', field="name") from None
        return _rule(row)

    async def change_rule(
        self, rule_id: int, *, name: str, name_key: str, query: str, category: str | None, now: datetime
    ) -> SavedRule | None:
        values = dict(name=name, name_key=name_key, query=query, category=category, updated_at=now)
        try:
            async with self._sessions.begin() as session:
                before = (
                    await session.execute(select(rules.c.query, rules.c.name_key).where(rules.c.id == rule_id))
                ).one_or_none()
                row = (
                    await session.execute(update(rules).where(rules.c.id == rule_id).values(**values).returning(rules))
                ).one_or_none()
                if row is not None and before is not None and before.query != query:
                    # Its matches, and those of every rule naming it, are built again.
                    from infrastructure.db.rule_matches import invalidate

                    await invalidate(session, rule_ids=[rule_id], rule_names=[before.name_key, name_key])
                    row = (await session.execute(select(rules).where(rules.c.id == rule_id))).one()
        except IntegrityError:
            raise Conflict(f'A rule named "{name}" exists already', field="name") from None
        return _rule(row) if row is not None else None

    async def delete_rule(self, rule_id: int) -> bool:
        async with self._sessions.begin() as session:
            result = await session.execute(delete(rules).where(rules.c.id == rule_id).returning(rules.c.id))
            return result.one_or_none() is not None


def _keywords_query(ids: Iterable[int], words: Iterable[str]) -> Select | None:
    ids, words = list(ids), list(words)
    k = keywords.c
    conditions = []
    if ids:
        conditions.append(k.id.in_(ids))
    if words:
        conditions.append(k.word_key.in_(words))
    if not conditions:
        return None
    return select(k.id, k.word, k.case_sensitive, k.whole_word, k.morphology).where(or_(*conditions))


def _keyword_terms(rows: Sequence[Row]) -> list[KeywordTerm]:
    return [KeywordTerm(r.id, r.word, r.case_sensitive, r.whole_word, r.morphology) for r in rows]


def _rules_query(names: Iterable[str]) -> Select | None:
    names = list(names)
    return select(rules.c.name_key, rules.c.query).where(rules.c.name_key.in_(names)) if names else None


class SessionCatalog:
    """The keywords and saved rules a query names, read in a session already open (the
    transaction that stores matches and queues their alerts): no second connection."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def keywords_for(self, ids: Iterable[int], words: Iterable[str]) -> list[KeywordTerm]:
        query = _keywords_query(ids, words)
        return [] if query is None else _keyword_terms((await self.session.execute(query)).all())

    async def rule_queries(self, names: Iterable[str]) -> dict[str, str]:
        query = _rules_query(names)
        return {} if query is None else {r.name_key: r.query for r in await self.session.execute(query)}


def session_compiler(session: AsyncSession) -> QueryCompiler:
    """A ``QueryCompiler`` reading references in ``session`` (nothing kept past it)."""
    from infrastructure.morphology import get_lemmatizer

    lemmatizer = get_lemmatizer()
    return QueryCompiler(SessionCatalog(session), lemmatizer, lemmatizer, resolved_for=0.0)


def rule_compiler(sessions: async_sessionmaker[AsyncSession]) -> QueryCompiler:
    from infrastructure.morphology import get_lemmatizer

    lemmatizer = get_lemmatizer()
    return QueryCompiler(SqlRules(sessions), lemmatizer, lemmatizer)
