"""Saved rules' stored matches in SQL (``domain.ports.RuleMatchRepository``; the use cases are
``domain.rule_index``).

Locks (PostgreSQL; SQLite's writers take turns anyway). A transaction that writes rule matches
for comments it stores or analyzes locks its comments first (the keyword matches' replacement
does), then holds the ``rules`` table in SHARE mode: every change to ``rules`` (a rule saved, an
invalidation) waits for it, and it sees the rules as the last change left them. A rebuild's
batch locks its candidate comments FOR SHARE (an edit waits until their rows are stored), then
the rows of the rules it builds FOR SHARE (an invalidation of one of them waits; the generation
it reads is final until it commits). An invalidation comes last in its transaction, after any
comment it updates.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from datetime import datetime

from sqlalchemy import Select, delete, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from domain.bounded import BoundedDict
from domain.compiled_rules import NO_RULES, CompiledRules, StoredRule, compile_rules, dependents, needed_keywords
from domain.rules import Narrowing
from infrastructure.db.bulk import bulk_insert, in_values
from infrastructure.db.filters import narrowing_condition
from infrastructure.db.rules import _keyword_terms, _keywords_query
from infrastructure.db.tables import comments, rule_matches, rules

IN_CHUNK = 5000

# Compiled rule sets by what they were compiled from: the collector stores a batch every few
# seconds, and resolving and compiling 200 rules each time would be most of its work.
_COMPILED: BoundedDict[tuple, CompiledRules] = BoundedDict(8)
# The keywords the rules name, by the rules: a walk of 200 parsed queries a batch otherwise.
_NEEDED: BoundedDict[tuple, tuple[set[int], set[str]]] = BoundedDict(8)


def _chunks(values: Sequence, size: int = IN_CHUNK) -> Iterable[Sequence]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _stored(row) -> StoredRule:
    return StoredRule(row.id, row.name_key, row.query, row.index_generation)


async def hold_rules(session: AsyncSession) -> None:
    """PostgreSQL: ``rules`` in SHARE mode until the transaction ends (see the module's doc)."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text("LOCK TABLE rules IN SHARE MODE"))


async def invalidate(
    session: AsyncSession, *, rule_ids: Iterable[int] = (), keyword_ids: Iterable[int] = (),
    keyword_words: Iterable[str] = (), rule_names: Iterable[str] = (),
) -> list[int]:
    """``RuleMatchRepository.invalidate`` in ``session``'s transaction."""
    every = [_stored(r) for r in await session.execute(select(rules))]
    ids = sorted(dependents(
        every, rule_ids=rule_ids, keyword_ids=keyword_ids, keyword_words=keyword_words, rule_names=rule_names
    ))
    if not ids:
        return []
    dialect = session.get_bind().dialect.name
    await session.execute(
        update(rules)
        .where(in_values(dialect, rules.c.id, ids))
        .values(indexed_at=None, index_generation=rules.c.index_generation + 1)
    )
    await session.execute(delete(rule_matches).where(in_values(dialect, rule_matches.c.rule_id, ids)))
    return ids


class SqlRuleMatchRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self._dialect = session.get_bind().dialect.name

    async def compiled(
        self, *, unindexed_only: bool = False, skip: Collection[tuple[int, int]] = ()
    ) -> CompiledRules:
        if not unindexed_only:
            await hold_rules(self.session)
        query = select(
            rules.c.id, rules.c.name_key, rules.c.query, rules.c.index_generation,
            rules.c.indexed_at.is_(None).label("unindexed"),
        ).order_by(rules.c.id)
        rows = (await self.session.execute(query)).all()
        if not rows:
            return NO_RULES
        # Plain tuples as the caches' keys (hashed and compared in C): this runs every batch
        # of every analysis and collection, and the rules seldom change.
        rules_now = tuple((r.id, r.name_key, r.query, r.index_generation) for r in rows)
        wanted_ids = tuple(
            r.id for r in rows if (not unindexed_only or r.unindexed) and (r.id, r.index_generation) not in skip
        )
        if not wanted_ids:
            return NO_RULES
        needed = _NEEDED.get(rules_now)
        if needed is None:
            needed = _NEEDED[rules_now] = needed_keywords([StoredRule(*r) for r in rules_now])
        ids, words = needed
        named = _keywords_query(sorted(ids), sorted(words))
        keywords = _keyword_terms((await self.session.execute(named)).all()) if named is not None else []
        key = (wanted_ids, rules_now, tuple(keywords))
        found = _COMPILED.get(key)
        if found is None:
            from infrastructure.morphology import get_lemmatizer

            every = [StoredRule(*r) for r in rules_now]
            chosen = set(wanted_ids)
            lemmatizer = get_lemmatizer()
            found = compile_rules([s for s in every if s.id in chosen], every, keywords, lemmatizer, lemmatizer)
            _COMPILED[key] = found
        return found

    async def _published(self, comment_ids: Sequence[int]) -> dict[int, datetime]:
        found: dict[int, datetime] = {}
        for chunk in _chunks(sorted(set(comment_ids))):
            query = select(comments.c.id, comments.c.published_at).where(in_values(self._dialect, comments.c.id, chunk))
            found.update((r.id, r.published_at) for r in await self.session.execute(query))
        return found

    async def _insert(self, found: Sequence[tuple[int, int]]) -> None:
        published = await self._published([c for _, c in found])
        rows = [
            {"rule_id": r, "comment_id": c, "published_at": published[c]}
            for r, c in sorted(set(found)) if c in published
        ]
        for chunk in _chunks(rows):
            stmt, params = bulk_insert(self._dialect, rule_matches, chunk)
            await self.session.execute(stmt.on_conflict_do_nothing(), params)

    def _among(self, column, ids: Sequence[int]):
        """``column`` among ``ids`` (sorted) or, when they fill most of their range (an
        analysis reads comments in id order), in that range: one walk of the index instead of
        a probe per id. The caller drops the rows of ids not asked for."""
        if ids[-1] - ids[0] < 2 * len(ids):
            return column.between(ids[0], ids[-1])
        return in_values(self._dialect, column, ids)

    async def replace_for_comments(self, comment_ids: Sequence[int], found: Sequence[tuple[int, int]]) -> None:
        # Rows read first and only the difference written: an analysis finds, comment after
        # comment, the rows already stored (the texts did not change), and deleting and
        # inserting them again cost more than matching them (dead rows, index entries, WAL).
        ids = sorted(set(comment_ids))
        scope = set(ids)
        wanted = {(r, c) for r, c in found if c in scope}
        stored: set[tuple[int, int]] = set()
        moved: set[int] = set()  # comments whose time changed since their rows were written
        for chunk in _chunks(ids):
            query = (
                select(
                    rule_matches.c.rule_id, rule_matches.c.comment_id,
                    (rule_matches.c.published_at == comments.c.published_at).label("current"),
                )
                .join(comments, comments.c.id == rule_matches.c.comment_id)
                .where(self._among(rule_matches.c.comment_id, chunk), self._among(comments.c.id, chunk))
            )
            for row in await self.session.execute(query):
                if row.comment_id not in scope:
                    continue  # in the id range, not among the comments
                stored.add((row.rule_id, row.comment_id))
                if not row.current:
                    moved.add(row.comment_id)
        # A comment that lost a rule, or whose time moved, loses all its rows and gets back
        # those it keeps.
        changed = sorted({c for _, c in stored - wanted} | moved)
        for chunk in _chunks(changed):
            await self.session.execute(
                delete(rule_matches).where(in_values(self._dialect, rule_matches.c.comment_id, chunk))
            )
        again = set(changed)
        await self._insert([(r, c) for r, c in wanted if (r, c) not in stored or c in again])

    async def add(self, found: Sequence[tuple[int, int]]) -> None:
        await self._insert(found)

    async def unindexed_count(self) -> int:
        query = select(func.count()).select_from(rules).where(rules.c.indexed_at.is_(None))
        return int((await self.session.execute(query)).scalar_one())

    async def last_comment_id(self) -> int:
        return int((await self.session.execute(select(func.coalesce(func.max(comments.c.id), 0)))).scalar_one())

    async def candidates(self, narrowing: Narrowing, *, after: int, upto: int) -> list[tuple[int, str]]:
        query: Select = select(comments.c.id, comments.c.text).where(comments.c.id > after, comments.c.id <= upto)
        if (narrowed := narrowing_condition(narrowing, self._dialect)) is not None:
            query = query.where(narrowed)
        # FOR SHARE: an edit of one of them waits until what is read here is stored.
        query = query.order_by(comments.c.id).with_for_update(read=True)
        return [(r.id, r.text) for r in await self.session.execute(query)]

    async def generations(self, rule_ids: Sequence[int]) -> dict[int, int]:
        if not rule_ids:
            return {}
        # The rows FOR SHARE, not the table: an invalidation writes these rows and so waits
        # until this transaction ends, and a rebuild never queues behind a change to the table
        # that waits for a collector (which may wait for the comments the rebuild holds).
        query = (
            select(rules.c.id, rules.c.index_generation)
            .where(in_values(self._dialect, rules.c.id, sorted(rule_ids)))
            .order_by(rules.c.id)
            .with_for_update(read=True)
        )
        return {r.id: r.index_generation for r in await self.session.execute(query)}

    async def mark_indexed(self, pairs: Sequence[tuple[int, int]], now: datetime) -> int:
        marked = 0
        for rule_id, generation in pairs:
            result = await self.session.execute(
                update(rules)
                .where(rules.c.id == rule_id, rules.c.index_generation == generation)
                .values(indexed_at=now)
            )
            marked += max(0, getattr(result, "rowcount", 0) or 0)
        return marked

    async def invalidate(
        self, *, rule_ids: Iterable[int] = (), keyword_ids: Iterable[int] = (), keyword_words: Iterable[str] = (),
        rule_names: Iterable[str] = (),
    ) -> list[int]:
        return await invalidate(
            self.session, rule_ids=rule_ids, keyword_ids=keyword_ids, keyword_words=keyword_words,
            rule_names=rule_names,
        )
