"""Saved rules' matches, stored: which comments each saved rule matches, kept exact.

A filter that is a saved rule (``rule:"name"``), a rule's ``matchesCount`` and ``stats.topRules``
read the stored set (``rule_matches``), counted and paged off its index, instead of deciding
every candidate comment in Python. The set is written by the domain's one matcher
(``domain.rules.RuleSet`` over every saved rule, resolved):

- with the keyword matches, in the same transaction, whenever comments are stored or analyzed
  again (``index_comments``): a comment edited so it no longer matches loses its row;
- from scratch by an INDEX_RULES task (``run_index_rules``) when a rule is created or its query
  changes, and when a keyword or a saved rule it names (``kw:12``, ``kw:word``, ``rule:name``)
  changes or goes: the change itself marks the rules that depend on it unindexed and drops their
  rows (``dependents``, in the change's transaction), the task rebuilds them in bounded batches.

A rule whose set is being built is unindexed (``indexed_at`` NULL) and readers then run its
query as before: a count is never taken from an incomplete set. Every invalidation adds one to
the rule's ``index_generation``; a build marks the rule indexed only if its generation is still
the one it started with. Writers see rule changes in order: on PostgreSQL the transactions that
write rule matches hold ``rules`` in SHARE mode, which every change to ``rules`` waits for.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from domain.errors import InvalidInput
from domain.matching import Lemmatizer
from domain.models import Task, TaskKind
from domain.ports import Adapters, ProgressCallback, UnitOfWork, UnitOfWorkFactory
from domain.progress import Say
from domain.rules import (
    AnyOf,
    Expr,
    KeywordTerm,
    Narrowing,
    RuleSet,
    StaticCatalog,
    WordForms,
    narrowing_of,
    parse,
    references,
    resolve,
)
from domain.tasks import register_handler, start_task

INDEX_BATCH = 2000  # comments (by id range) per transaction of a rebuild
# A rebuild of more rules reads every comment of a range: the database would test each row
# against every rule's substrings (200 rules: ~400 LIKEs a row, 85 s at 250,000 comments), where
# the ``RuleSet`` finds all the rules' terms in one pass and looks only at rules one occurs in.
MAX_NARROWED_RULES = 8


@dataclass(frozen=True)
class StoredRule:
    """A saved rule as the index sees it."""

    id: int
    name_key: str
    query: str
    generation: int = 0


@dataclass(frozen=True)
class CompiledRules:
    """Saved rules resolved and matched together: ``rule_ids[i]`` is ``rule_set``'s query ``i``.
    Rules whose query no longer resolves (a keyword they name was removed) are left out:
    ``broken``. Rules in ``dropped`` (changed since) are matched no more."""

    rule_ids: tuple[int, ...]
    generations: tuple[int, ...]
    rule_set: RuleSet | None
    narrowing: Narrowing  # implied by a match of any of them (None: any text may match)
    broken: tuple[int, ...] = ()
    dropped: frozenset[int] = frozenset()

    @property
    def live(self) -> list[tuple[int, int]]:
        """(rule id, generation) of the rules matched."""
        return [(i, g) for i, g in zip(self.rule_ids, self.generations, strict=True) if i not in self.dropped]

    def matching(self, comments: Iterable[tuple[int, str]]) -> list[tuple[int, int]]:
        """(rule id, comment id) of every rule each comment's text matches."""
        if self.rule_set is None:
            return []
        ids, dropped = self.rule_ids, self.dropped
        return [
            (ids[i], comment_id)
            for comment_id, text in comments
            for i in self.rule_set.matching(text)
            if ids[i] not in dropped
        ]


NO_RULES = CompiledRules((), (), None, None)


def needed_keywords(rules: Iterable[StoredRule]) -> tuple[set[int], set[str]]:
    """The keyword ids and words (``keyword_key``) the rules name."""
    ids: set[int] = set()
    words: set[str] = set()
    for rule in rules:
        try:
            refs = references(parse(rule.query))
        except InvalidInput:
            continue
        ids |= refs.keyword_ids
        words |= refs.keyword_words
    return ids, words


def compile_rules(
    rules: Sequence[StoredRule], every_rule: Sequence[StoredRule], keywords: Sequence[KeywordTerm],
    lemmatizer: Lemmatizer, stems: WordForms | None = None,
) -> CompiledRules:
    """``rules`` resolved against ``every_rule`` (what ``rule:`` names) and ``keywords``, in one
    ``RuleSet``. Resolution never waits: everything it looks up is given."""
    catalog = StaticCatalog(keywords, {r.name_key: r.query for r in every_rule})
    exprs: list[Expr] = []
    ids: list[int] = []
    generations: list[int] = []
    broken: list[int] = []
    for rule in rules:
        coroutine = resolve(parse(rule.query), catalog) if _parses(rule.query) else None
        if coroutine is None:
            broken.append(rule.id)
            continue
        try:
            coroutine.send(None)
        except StopIteration as done:
            exprs.append(done.value)
            ids.append(rule.id)
            generations.append(rule.generation)
            continue
        except InvalidInput:
            broken.append(rule.id)
            continue
        coroutine.close()
        raise RuntimeError("a static catalog never waits")
    if not exprs:
        return CompiledRules((), (), None, None, tuple(broken))
    narrowing: Narrowing = None
    if len(exprs) <= MAX_NARROWED_RULES:
        narrowings = [narrowing_of(e, stems) for e in exprs]
        narrowing = None if any(n is None for n in narrowings) else AnyOf(tuple(narrowings))
    return CompiledRules(tuple(ids), tuple(generations), RuleSet(exprs, lemmatizer), narrowing, tuple(broken))


def _parses(query: str) -> bool:
    try:
        parse(query)
    except InvalidInput:
        return False
    return True


def dependents(
    rules: Sequence[StoredRule], *, rule_ids: Iterable[int] = (), keyword_ids: Iterable[int] = (),
    keyword_words: Iterable[str] = (), rule_names: Iterable[str] = (),
) -> set[int]:
    """Ids of the saved rules whose matches change with these: the rules ``rule_ids``, the rules
    naming these keywords (by id or ``keyword_key``) or these rules (``rule_key``), and the rules
    naming any of those, and so on."""
    ids, words, names = set(keyword_ids), set(keyword_words), set(rule_names)
    refs: dict[int, Any] = {}
    for rule in rules:
        try:
            refs[rule.id] = references(parse(rule.query))
        except InvalidInput:
            continue
    by_id: Mapping[int, StoredRule] = {r.id: r for r in rules}
    found = {i for i in rule_ids if i in by_id}
    for rule_id, ref in refs.items():
        if ref.keyword_ids & ids or ref.keyword_words & words or ref.rule_names & names:
            found.add(rule_id)
    # Rules that name a rule found, until nothing is added.
    while True:
        named = {by_id[i].name_key for i in found}
        more = {rule_id for rule_id, ref in refs.items() if rule_id not in found and ref.rule_names & named}
        if not more:
            return found
        found |= more


async def index_comments(uow: UnitOfWork, comments: Sequence[tuple[int, str]]) -> int:
    """Make the stored rule matches of these comments (id, text) what every saved rule's query
    says of their texts now; in the caller's transaction. How many rows it stored."""
    if not comments:
        return 0
    compiled = await uow.rule_matches.compiled()
    if compiled.rule_set is None:
        return 0  # no rule resolves: none has stored matches (invalidating one emptied it)
    found = compiled.matching(comments)
    await uow.rule_matches.replace_for_comments([i for i, _ in comments], found)
    return len(found)


# --- rebuilding: the INDEX_RULES task --------------------------------------------------------


async def start_rule_indexing(adapters: Adapters) -> Task | None:
    """Queue an INDEX_RULES task when some saved rule's matches are not stored (yet)."""
    async with adapters.uow_factory() as uow:
        if not await uow.rule_matches.unindexed_count():
            return None
    return await start_task(adapters, TaskKind.INDEX_RULES, {}, priority=4)


async def run_index_rules(adapters: Adapters, task: Task, report: ProgressCallback) -> dict[str, Any]:
    return await rebuild_rule_matches(adapters.uow_factory, adapters.clock.now, report)


async def _no_report(done: int, total: int | None, message: str) -> None:
    return None


async def rebuild_rule_matches(
    uow_factory: UnitOfWorkFactory, now: Callable[[], datetime], report: ProgressCallback = _no_report
) -> dict[str, Any]:
    """Build the stored matches of every unindexed saved rule: the comments in id ranges of
    ``INDEX_BATCH``, narrowed in SQL as a filter is, matched by the rules' ``RuleSet``, one
    transaction a range. Rows the analysis wrote meanwhile are kept (they are right: written
    with the rules as they are now). A rule invalidated meanwhile is dropped (its generation
    moved; the next round builds it); a rule whose query does not resolve stays unindexed
    (readers run it and say why)."""
    seen: set[tuple[int, int]] = set()  # (rule id, generation) built, dropped or found broken
    built = rows = rounds = 0
    while True:
        async with uow_factory() as uow:
            compiled = await uow.rule_matches.compiled(unindexed_only=True, skip=seen)
            last_id = await uow.rule_matches.last_comment_id()
        seen.update(zip(compiled.rule_ids, compiled.generations, strict=True))
        if compiled.rule_set is None:
            break
        rounds += 1
        after = 0
        total = max(last_id, 1)
        await report(0, total, Say.comments_checked(0, total))
        while after < last_id and compiled.live:
            upto = after + INDEX_BATCH
            async with uow_factory() as uow:
                # The candidates first (locked: an edit waits until their rows are stored),
                # then the rules' generations (every change to a rule waits for this).
                candidates = await uow.rule_matches.candidates(compiled.narrowing, after=after, upto=upto)
                current = await uow.rule_matches.generations([i for i, _ in compiled.live])
                compiled = still_current(compiled, current)
                found = compiled.matching(candidates)
                await uow.rule_matches.add(found)
                await uow.commit()
            rows += len(found)
            after = upto
            await report(min(after, total), total, Say.comments_checked(min(after, total), total))
            await asyncio.sleep(0)  # matching is CPU work: let the API breathe between batches
        async with uow_factory() as uow:
            built += await uow.rule_matches.mark_indexed(compiled.live, now())
            await uow.commit()
    return {"rules": built, "ruleMatches": rows, "rounds": rounds}


def still_current(compiled: CompiledRules, current: Mapping[int, int]) -> CompiledRules:
    """``compiled`` with the rules whose generation moved (or which are gone) dropped."""
    moved = {i for i, g in compiled.live if current.get(i) != g}
    return replace(compiled, dropped=compiled.dropped | moved) if moved else compiled


register_handler(TaskKind.INDEX_RULES, run_index_rules)
