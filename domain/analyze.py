"""How an analyze works: match stored comments against the keywords again, without VK.

Needed after keywords change. Comments are read in batches in id order (a keyset, so comments
stored meanwhile are simply picked up at the end), matched in memory and written back one
transaction per batch, with progress after each batch and cancellation honoured between them.

Scope:
- all keywords: every match of the comments is replaced by what the active keywords find, so
  matches of removed or deactivated keywords disappear;
- some keywords (``keywordIds``): only those keywords' matches are replaced; an inactive one
  among them loses its matches, the other keywords' matches are left alone.

Every batch publishes ``{"commentIds": [...]}`` of the comments that matched on
``COMMENTS_MATCHED_CHANNEL``, as the collector does for new comments.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from domain.alerts import record_matched
from domain.errors import NotFound
from domain.models import Keyword, Task, TaskKind
from domain.ports import Adapters, ProgressCallback
from domain.progress import Say
from domain.rule_index import index_comments
from domain.tasks import register_handler, start_task

COMMENTS_MATCHED_CHANNEL = "comments:matched"
ANALYZE_BATCH = 1000  # comments per read-match-write round (one transaction)


async def publish_matched(adapters: Adapters, comment_ids: Sequence[int]) -> None:
    """Tell live subscribers (``commentMatched``) which comments just got matches."""
    if comment_ids:
        await adapters.events.publish(COMMENTS_MATCHED_CHANNEL, {"commentIds": list(comment_ids)})


async def start_analyze(
    adapters: Adapters,
    *,
    group_ids: Sequence[int] | None = None,
    keyword_ids: Sequence[int] | None = None,
    priority: int = 5,
) -> Task:
    """Queue an ANALYZE task; unknown groups or keywords are refused up front."""
    params: dict[str, Any] = {"groupIds": None, "keywordIds": None}
    async with adapters.uow_factory() as uow:
        if group_ids is not None:
            for group_id in dict.fromkeys(group_ids):
                if await uow.groups.get(group_id) is None:
                    raise NotFound(f"Group {group_id} not found", field="groupIds")
            params["groupIds"] = sorted(set(group_ids))
        if keyword_ids is not None:
            for keyword_id in dict.fromkeys(keyword_ids):
                if await uow.keywords.get(keyword_id) is None:
                    raise NotFound(f"Keyword {keyword_id} not found", field="keywordIds")
            params["keywordIds"] = sorted(set(keyword_ids))
    return await start_task(adapters, TaskKind.ANALYZE, params, priority=priority)


async def run_analyze(adapters: Adapters, task: Task, report: ProgressCallback) -> dict[str, Any]:
    group_ids: list[int] | None = task.params.get("groupIds")
    keyword_ids: list[int] | None = task.params.get("keywordIds")
    async with adapters.uow_factory() as uow:
        if keyword_ids is None:
            keywords: list[Keyword] = await uow.keywords.list_active()
        else:
            wanted = set(keyword_ids)
            keywords = [k for k in await uow.keywords.list() if k.id in wanted and k.active]
        if group_ids is None:
            total = await uow.comments.count()
        else:
            total = sum([await uow.comments.count(group_id=g) for g in group_ids])
    factory = adapters.matcher_factory
    matcher = factory(keywords) if factory is not None and keywords else None

    done = matched_comments = matches_found = 0
    after_id = 0
    await report(0, total, Say.comments_checked(0, total))
    while True:
        async with adapters.uow_factory() as uow:
            rows = await uow.comments.iter_texts(group_ids=group_ids, after_id=after_id, limit=ANALYZE_BATCH)
            if not rows:
                break
            matches = matcher(rows) if matcher is not None else []
            await uow.matches.replace_for_comments([i for i, _ in rows], matches, keyword_ids=keyword_ids)
            if keyword_ids is None:
                # The saved rules' matches of these comments, in the same transaction. A
                # re-analysis of some keywords leaves them: the texts did not change, and the
                # rules naming those keywords were rebuilt when the keywords changed.
                await index_comments(uow, rows)
            # The alerts' outbox, in the same transaction (a comment a rule alerted is never again).
            await record_matched(uow, sorted({m.comment_id for m in matches}), adapters.clock.now())
            await uow.commit()
        after_id = rows[-1][0]
        matched_ids = sorted({m.comment_id for m in matches})
        await publish_matched(adapters, matched_ids)
        done += len(rows)
        matched_comments += len(matched_ids)
        matches_found += len(matches)
        # Comments stored since the count make done overtake total: keep the total honest.
        total = max(total, done)
        await report(done, total, Say.comments_checked(done, total, matched_comments))
        await asyncio.sleep(0)  # matching is CPU work: let the API breathe between batches
    return {
        "comments": done,
        "matchedComments": matched_comments,
        "matches": matches_found,
        "keywords": len(keywords),
    }


register_handler(TaskKind.ANALYZE, run_analyze)
