"""Saved rules' matches, stored: which comments each saved rule matches, kept exact.

A filter that is a saved rule (``rule:"name"``), a rule's ``matchesCount`` and ``stats.topRules``
read the stored set (``rule_matches``), counted and paged off its index, instead of deciding
every candidate comment in Python. The set is written by the domain's one matcher
(``domain.rules.RuleSet`` over every saved rule, resolved: ``domain.compiled_rules``):

- with the keyword matches, in the same transaction, whenever comments are stored or analyzed
  again (``index_comments``): a comment edited so it no longer matches loses its row;
- from scratch by an INDEX_RULES task (``run_index_rules``) when a rule is created or its query
  changes, and when a keyword or a saved rule it names (``kw:12``, ``kw:word``, ``rule:name``)
  changes or goes: the change itself marks the rules that depend on it unindexed and drops their
  rows (``compiled_rules.dependents``, in the change's transaction), the task rebuilds them in
  bounded batches.

A rule whose set is being built is unindexed (``indexed_at`` NULL) and readers then run its
query as before: a count is never taken from an incomplete set. Every invalidation adds one to
the rule's ``index_generation``; a build marks the rule indexed only if its generation is still
the one it started with. Writers see rule changes in order: on PostgreSQL the transactions that
write rule matches hold ``rules`` in SHARE mode, which every change to ``rules`` waits for.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from domain.compiled_rules import still_current
from domain.models import Task, TaskKind
from domain.ports import Adapters, ProgressCallback, UnitOfWork, UnitOfWorkFactory
from domain.progress import Say
from domain.tasks import register_handler, start_task

INDEX_BATCH = 2000  # comments (by id range) per transaction of a rebuild


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


register_handler(TaskKind.INDEX_RULES, run_index_rules)
